"""``.prompt`` files: YAML front matter (name, model, params, input and output schema, examples)
and a chat-template body, loaded into a ready :class:`~promptkit.Prompt` or a :class:`PromptFile`.

The format is described in ``docs/prompt-files.md``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ._errors import ConfigurationError, TemplateSyntaxError
from ._parsers import Parser, PydanticParser, TextParser
from ._prompt import Prompt
from ._templates import ChatTemplate, PromptLibrary, Template
from .backends import Backend, Params
from .backends import backend as make_backend

if TYPE_CHECKING:
    import pydantic

__all__ = ["PromptFile", "load_prompt", "load_prompt_file", "parse_prompt_file"]

_KEYS = frozenset(
    {"name", "description", "model", "params", "input", "output", "examples", "example_template", "metadata"}
)
_ROLE_TAG = re.compile(r"{%[-+]?\s*(?:role|messages)\b")
_SCALARS: dict[str, Any] = {
    "str": str,
    "string": str,
    "int": int,
    "integer": int,
    "float": float,
    "number": float,
    "bool": bool,
    "boolean": bool,
    "any": Any,
    "dict": dict[str, Any],
    "object": dict[str, Any],
    "list": list[Any],
    "array": list[Any],
    "null": None,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptFile:
    """A parsed ``.prompt`` file: its template plus the metadata from the front matter.

    ``template`` is a :class:`ChatTemplate` when the body uses role blocks, else a
    :class:`Template` (sent as one user message). ``parser`` comes from ``output``; ``inputs``
    from ``input`` (already attached to the template, which validates them).
    :meth:`to_prompt` builds the :class:`~promptkit.Prompt`.
    """

    name: str
    template: Template | ChatTemplate
    description: str | None = None
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    parser: Parser[Any] = field(default_factory=TextParser)
    examples: tuple[Mapping[str, Any], ...] = ()
    example_template: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    path: Path | None = None

    def to_prompt(self, backend: Backend | str | None = None) -> Prompt[Any]:
        """A :class:`~promptkit.Prompt` on ``backend`` (default: the file's ``model``)."""
        chosen = backend if backend is not None else self.model
        params: Params = dict(self.params)  # type: ignore[assignment]  # the backend checks names and values
        prompt: Prompt[Any] = Prompt(
            self.template,
            make_backend(chosen) if isinstance(chosen, str) else chosen,
            parser=self.parser,
            examples=list(self.examples) or None,
            example_template=self.example_template,
            params=params,
        )
        return prompt

    def _repr_html_(self) -> str:
        return self.template._repr_html_()


def load_prompt(
    path: str | os.PathLike[str],
    *,
    backend: Backend | str | None = None,
    library: PromptLibrary | None = None,
) -> Prompt[Any] | PromptFile:
    """Load a ``.prompt`` file: a ready :class:`~promptkit.Prompt` when a backend is known.

    The backend is ``backend`` if given, else the front matter's ``model`` when it is a backend
    spec (``"mock"`` or ``"provider:model"``). Otherwise (no model, or a bare model name kept as
    metadata) the result is a :class:`PromptFile`: the template plus its metadata. Includes in the
    body resolve in ``library`` (default: the file's folder).

    >>> prompt = load_prompt("prompts/summarise.prompt")  # doctest: +SKIP
    >>> prompt.complete(document="...")  # doctest: +SKIP
    """
    parsed = load_prompt_file(path, library=library)
    if backend is not None or (parsed.model is not None and (parsed.model == "mock" or ":" in parsed.model)):
        return parsed.to_prompt(backend)
    return parsed


def load_prompt_file(path: str | os.PathLike[str], *, library: PromptLibrary | None = None) -> PromptFile:
    """Parse a ``.prompt`` file into a :class:`PromptFile` without resolving a backend."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read prompt file {os.fspath(path)!r}: {exc.strerror}") from exc
    lib = library if library is not None else PromptLibrary(file.parent)
    parsed = parse_prompt_file(text, name=file.name, library=lib)
    return PromptFile(
        name=parsed.name,
        template=parsed.template,
        description=parsed.description,
        model=parsed.model,
        params=parsed.params,
        parser=parsed.parser,
        examples=parsed.examples,
        example_template=parsed.example_template,
        metadata=parsed.metadata,
        path=file,
    )


def _split_front_matter(text: str, name: str) -> tuple[str, str, int]:
    """(front matter, body, line of the body's first line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return "", text, 1
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 2
    raise TemplateSyntaxError("front matter opened with '---' is never closed by a '---' line", template=name, lineno=1)


def parse_prompt_file(text: str, *, name: str = "<prompt>", library: PromptLibrary | None = None) -> PromptFile:
    """Parse the text of a ``.prompt`` file (see :func:`load_prompt`)."""
    import yaml  # a runtime dependency, imported on first use to keep `import promptkit` light

    header, body, body_line = _split_front_matter(text, name)
    lines: dict[str, int] = {}
    data: Any = {}
    if header.strip():
        try:
            node = yaml.compose(header, Loader=yaml.SafeLoader)
            data = yaml.load(header, Loader=yaml.SafeLoader)  # SafeLoader: plain data only
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 2 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise TemplateSyntaxError(f"malformed front matter: {problem}", template=name, lineno=line) from exc
        if not isinstance(data, dict):
            raise TemplateSyntaxError("front matter must be a mapping of keys to values", template=name, lineno=2)
        for key_node, _value in getattr(node, "value", []):
            lines[str(key_node.value)] = key_node.start_mark.line + 2

    def fail(key: str, message: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(f"front matter {key!r}: {message}", template=name, lineno=lines.get(key))

    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(_KEYS))} (put extras under 'metadata')")
    for key in ("name", "description", "model", "example_template"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise fail(key, f"must be a string, not {type(data[key]).__name__}")
    for key in ("params", "metadata"):
        if key in data and not isinstance(data[key], dict):
            raise fail(key, "must be a mapping")
    title = data.get("name") or name

    try:
        inputs = _inputs(data.get("input"), title)
    except _spec_errors() as exc:
        raise fail("input", str(exc)) from exc
    try:
        parser = _parser(data.get("output"), title)
    except _spec_errors() as exc:
        raise fail("output", str(exc)) from exc
    examples = data.get("examples") or []
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise fail("examples", "must be a list of mappings")

    offset = body_line - 1
    template: Template | ChatTemplate
    if _ROLE_TAG.search(body):
        template = ChatTemplate.from_source(body, name=title, inputs=inputs, library=library, _line_offset=offset)
    else:
        # Leading newlines after the front matter are layout, not prompt text.
        stripped = body.lstrip("\n")
        offset += body.count("\n", 0, len(body) - len(stripped))
        template = Template(stripped, name=title, inputs=inputs, library=library, _line_offset=offset)
    return PromptFile(
        name=title,
        template=template,
        description=data.get("description"),
        model=data.get("model"),
        params=MappingProxyType(dict(data.get("params") or {})),
        parser=parser,
        examples=tuple(examples),
        example_template=data.get("example_template"),
        metadata=MappingProxyType(dict(data.get("metadata") or {})),
    )


# -- schemas -----------------------------------------------------------------------------------


def _spec_errors() -> tuple[type[Exception], ...]:
    """What a bad input or output spec raises; pydantic's own error only once pydantic is loaded."""
    errors = sys.modules.get("pydantic.errors")
    if errors is None:  # pydantic not loaded: it cannot have raised
        return (ConfigurationError, TypeError)
    return (ConfigurationError, TypeError, errors.PydanticUserError)


def _inputs(spec: Any, title: str) -> dict[str, Any] | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigurationError("must be a mapping of input names to types")
    out: dict[str, Any] = {}
    for key, sub in spec.items():
        tp = _type(sub, f"{_model_name(title)}_{key}")
        if isinstance(sub, dict) and "default" in sub:
            out[str(key)] = (tp, sub["default"])
        else:
            out[str(key)] = tp
    return out


def _parser(spec: Any, title: str) -> Parser[Any]:
    if spec is None or spec == "text":
        return TextParser()
    if isinstance(spec, str):
        raise ConfigurationError(f"unknown parser {spec!r}; use 'text' or a JSON schema of an object")
    if not isinstance(spec, dict):
        raise ConfigurationError("must be 'text' or a JSON schema of an object")
    return PydanticParser(_object_model(spec, _model_name(title)))


def _model_name(title: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", title.rsplit(".", 1)[0]) or ["Output"]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name if name[0].isalpha() else "Prompt" + name


def _object_model(schema: Mapping[str, Any], name: str) -> type[pydantic.BaseModel]:
    if schema.get("type", "object") != "object":
        raise ConfigurationError("the output schema must describe an object (type: object)")
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise ConfigurationError("an object schema needs 'properties'")
    import pydantic

    required = schema.get("required", list(props))
    fields: dict[str, Any] = {}
    for key, sub in props.items():
        tp = _type(sub, f"{name}{str(key).title().replace('_', '')}")
        description = sub.get("description") if isinstance(sub, dict) else None
        if key in required:
            fields[str(key)] = (tp, pydantic.Field(description=description))
        else:
            default = sub.get("default") if isinstance(sub, dict) else None
            fields[str(key)] = (tp | None, pydantic.Field(default=default, description=description))
    model: type[pydantic.BaseModel] = pydantic.create_model(name, **fields)
    return model


def _type(spec: Any, name: str) -> Any:
    """A Python type from a shorthand (``str``, ``list[int]``) or a JSON-schema-ish mapping."""
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith(("list[", "array[")) and text.endswith("]"):
            return list[_type(text[text.index("[") + 1 : -1], name)]  # type: ignore[misc]
        if text not in _SCALARS:
            raise ConfigurationError(f"unknown type {spec!r}; use one of {', '.join(sorted(_SCALARS))} or list[...]")
        return _SCALARS[text]
    if not isinstance(spec, dict):
        raise ConfigurationError(f"a type must be a name or a mapping with 'type', not {spec!r:.60}")
    if "enum" in spec:
        values = spec["enum"]
        if not isinstance(values, list) or not values:
            raise ConfigurationError("'enum' must be a non-empty list")
        return Literal[tuple(values)]
    kind = spec.get("type", "string")
    if kind == "array":
        return list[_type(spec.get("items", "any"), name)]  # type: ignore[misc]
    if kind == "object" and "properties" in spec:
        return _object_model(spec, name)
    if not isinstance(kind, str):
        raise ConfigurationError(f"'type' must be a string, not {kind!r}")
    return _type(kind, name)
