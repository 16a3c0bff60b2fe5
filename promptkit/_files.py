"""``.prompt`` files: YAML front matter (name, model, params, input and output schema, examples)
and a chat-template body, loaded into a :class:`~promptkit.Prompt` (:func:`load_prompt`) or read
as a :class:`PromptFile` with all its metadata (:func:`load_prompt_file`).

The format is described in ``docs/prompt-files.md``.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from ._errors import ConfigurationError, TemplateSyntaxError
from ._parsers import Parser, PydanticParser, TextParser
from ._prompt import Prompt
from ._templates import ChatTemplate, PromptLibrary, Template
from .backends import COMMON_PARAMS, Backend, Params
from .backends import backend as make_backend

if TYPE_CHECKING:
    import pydantic

__all__ = ["PromptFile", "PromptFileWarning", "load_prompt", "load_prompt_file", "parse_prompt_file"]


class PromptFileWarning(UserWarning):
    """A ``.prompt`` file that loads but probably does not mean what it says; the message names it.

    Raised (as a warning) for front matter that lacks its opening ``---`` line, which would
    otherwise be sent to the model as prompt text.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = parse_prompt_file("model: mock\\n---\\nHi", name="hi.prompt")
    >>> caught[0].category.__name__
    'PromptFileWarning'
    """


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


def _suggested_specs(model: str) -> str:
    """The backend specs a bare model name most likely meant."""
    lowered = model.lower()
    if lowered.startswith("claude"):
        return f"'anthropic:{model}'"
    if lowered.startswith(("gpt", "chatgpt", "o1", "o3", "o4", "text-", "davinci")):
        return f"'openai:{model}'"
    return f"'openai:{model}', 'anthropic:{model}' or 'openai-compatible:{model}@<base_url>'"


class _UnresolvedBackend:
    """Stands in for the backend of a ``.prompt`` file whose ``model`` is not a backend spec.

    The prompt still renders; every call raises a :class:`~promptkit.ConfigurationError` that says
    which spec to write (``openai:gpt-4o`` for ``gpt-4o``) or to pass ``backend=``.
    """

    supported_params: frozenset[str] = COMMON_PARAMS

    def __init__(self, model: str, source: str) -> None:
        self.model = model
        self.source = source

    @property
    def name(self) -> str:
        return f"unresolved:{self.model}"

    def _fail(self) -> NoReturn:
        raise ConfigurationError(
            f"the model {self.model!r} in {self.source!r} is not a backend spec, so this prompt cannot be "
            f"sent; write model: {_suggested_specs(self.model)} in the front matter, or pass "
            "backend=... to load_prompt (or use prompt.with_backend(...))"
        )

    def build_request(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def complete(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    async def acomplete(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def stream(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def astream(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def complete_request(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    async def acomplete_request(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def stream_request(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def astream_request(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def close(self) -> None:
        """Nothing to close."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def __repr__(self) -> str:
        return f"<unresolved backend {self.model!r}: not a backend spec>"


def _resolve_backend(model: str | None, source: str) -> Backend | None:
    """The backend a file's ``model`` names: a real one for ``mock``/``provider:model``, else a stand-in."""
    if model is None:
        return None
    if model == "mock" or ":" in model:
        return make_backend(model)
    unresolved: Backend = _UnresolvedBackend(model, source)
    return unresolved


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptFile:
    """A parsed ``.prompt`` file: its template plus the metadata from the front matter.

    ``template`` is a :class:`ChatTemplate` when the body uses role blocks, else a
    :class:`Template` (sent as one user message). ``parser`` comes from ``output``; ``inputs``
    from ``input`` (already attached to the template, which validates them).
    :meth:`to_prompt` builds the :class:`~promptkit.Prompt`; this object keeps what the prompt does
    not (``description``, ``model``, ``metadata``, ``path``).

    >>> info = parse_prompt_file("---\\nmodel: gpt-4o\\nmetadata: {owner: docs}\\n---\\nHi {{ who }}")
    >>> info.model, dict(info.metadata)
    ('gpt-4o', {'owner': 'docs'})
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
        """A :class:`~promptkit.Prompt` on ``backend`` (default: the file's ``model``).

        A ``model`` that is not a backend spec (``gpt-4o`` rather than ``openai:gpt-4o``) still
        gives a prompt that renders; calling it raises a :class:`~promptkit.ConfigurationError`
        naming the spec to write.
        """
        if backend is None:
            chosen: Backend | None = _resolve_backend(self.model, self.path.name if self.path else self.name)
        else:
            chosen = make_backend(backend) if isinstance(backend, str) else backend
        params: Params = dict(self.params)  # type: ignore[assignment]  # the backend checks names and values
        prompt: Prompt[Any] = Prompt(
            self.template,
            chosen,
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
) -> Prompt[Any]:
    """Load a ``.prompt`` file as a :class:`~promptkit.Prompt`.

    The backend is ``backend`` if given, else the front matter's ``model`` (``"mock"`` or
    ``"provider:model"``). Without either the prompt renders, and a call raises a
    :class:`~promptkit.ConfigurationError`: for a bare model name such as ``gpt-4o`` it names the
    spec to write (``openai:gpt-4o``). Includes in the body resolve in ``library`` (default: the
    file's folder). The file's metadata (description, model, metadata) is on
    :func:`load_prompt_file`'s :class:`PromptFile`.

    >>> prompt = load_prompt("prompts/summarise.prompt")  # doctest: +SKIP
    >>> prompt.complete(document="...")  # doctest: +SKIP
    """
    return load_prompt_file(path, library=library).to_prompt(backend)


def load_prompt_file(path: str | os.PathLike[str], *, library: PromptLibrary | None = None) -> PromptFile:
    """Parse a ``.prompt`` file into a :class:`PromptFile` (template plus metadata), resolving no backend.

    >>> info = load_prompt_file("prompts/summarise.prompt")  # doctest: +SKIP
    >>> info.metadata["owner"], info.to_prompt("mock")  # doctest: +SKIP
    """
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
        _warn_if_unopened(lines, name)
        return "", text, 1
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 2
    raise TemplateSyntaxError("front matter opened with '---' is never closed by a '---' line", template=name, lineno=1)


_FRONT_MATTER_KEY = re.compile(r"^([A-Za-z_]+)\s*:")


def _warn_if_unopened(lines: list[str], name: str) -> None:
    """Warn when the text starts like front matter (``model: x``, then a ``---`` line) without its opening ``---``."""
    first = _FRONT_MATTER_KEY.match(lines[0]) if lines else None
    if first is None or first.group(1) not in _KEYS:
        return
    closing = next((i for i, line in enumerate(lines) if line.strip() == "---"), None)
    if closing is None:
        return
    warnings.warn(
        f"{name}: the text starts with front matter ({first.group(1)}: ...) closed by '---' on line "
        f"{closing + 1} but not opened by a '---' first line, so it is sent as prompt text; "
        "add '---' as the first line",
        PromptFileWarning,
        stacklevel=4,
    )


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
