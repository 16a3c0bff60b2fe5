"""The config file of ``promptkit eval``: a small YAML or TOML file naming the variants (``.prompt``
files, each with an optional model, strategy and few-shot examples), the dataset, the metrics and
the run's options.

The file is checked with pydantic models before anything is built, so a mistake names the file
and the key (``config.yaml: metrics[1]: unknown metric 'exact'; ...``) and exits with status 2.
This module reads and checks; :mod:`._plan` builds what the checked config names.
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "METRICS",
    "STRATEGIES",
    "SUFFIXES",
    "ConfigFileError",
    "ConfigSpec",
    "DatasetSpec",
    "JudgeOptions",
    "Loc",
    "SchemaOptions",
    "VariantSpec",
    "named_options",
    "read_config",
    "unknown",
    "validated",
]

SUFFIXES = (".yaml", ".yml", ".toml")
"""The config file's extensions: YAML (``.yaml``, ``.yml``) or TOML (``.toml``)."""

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class ConfigFileError(click.ClickException):
    """A config that cannot be used: ``promptkit: error: FILE: KEY: what is wrong`` and exit status 2."""

    exit_code = 2

    def __init__(self, source: Path, where: Loc | str, message: str) -> None:
        place = where if isinstance(where, str) else _where(where)
        super().__init__(f"{source}: {place}: {message}" if place else f"{source}: {message}")


def _where(loc: Loc) -> str:
    """A location as a person reads it: ``variants.cot.strategy``, ``metrics[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- the schema -----------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Name = Annotated[str, Field(min_length=1)]
Probability = Annotated[float, Field(gt=0, lt=1)]


def _shorthand(key: str) -> Callable[[Any], Any]:
    """A before-validator: a plain string stands for ``{key: string}``."""

    def expand(value: Any) -> Any:
        return {key: value} if isinstance(value, str) else value

    return expand


def _listed(value: Any) -> Any:
    """A before-validator: a plain string stands for a list of that one string."""
    return [value] if isinstance(value, str) else value


class DatasetSpec(_Strict):
    """``dataset:``: a path, or a mapping with the columns :func:`promptkit.load_dataset` takes."""

    path: Name
    inputs: list[Name] | None = None
    expected: str | None = "expected"
    id: str | None = "id"
    metadata: list[Name] | None = None


class VariantSpec(_Strict):
    """One variant: a ``.prompt`` file, with what the config changes about it."""

    prompt: Name
    model: Name | None = None
    params: dict[str, Any] | None = None
    strategy: Any = None  # a name, or {name: options}: checked by _strategy
    examples: Name | None = None
    selector: Literal["fixed", "random", "semantic", "mmr", "bm25"] | None = None
    k: Annotated[int, Field(ge=1)] | None = None
    fields: list[Name] | None = None
    seed: int | None = None
    embedder: Literal["default", "hashing"] | None = None
    diversity: Annotated[float, Field(ge=0, le=1)] | None = None
    fetch_k: Annotated[int, Field(ge=1)] | None = None
    example_template: str | None = None


class ConfigSpec(_Strict):
    """The whole file."""

    variants: Annotated[dict[Name, VariantSpec], Field(min_length=1)]
    dataset: DatasetSpec
    metrics: Annotated[list[Any], Field(min_length=1)]  # each checked by _metric
    epochs: Annotated[int, Field(ge=1)] = 1
    reducer: Name = "mean"
    max_concurrency: Annotated[int, Field(ge=1)] = 8
    max_cost: Annotated[float, Field(gt=0)] | None = None
    max_tokens_total: Annotated[int, Field(ge=1)] | None = None
    requests_per_minute: Annotated[float, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[float, Field(gt=0)] | None = None
    params: dict[str, Any] | None = None
    confidence: Probability = 0.95
    exclude_similar: Annotated[float, Field(gt=0, le=1)] | None = None
    checkpoint: Name | None = None
    compare: Annotated[list[Name], Field(min_length=2, max_length=2)] | None = None

    @field_validator("variants", mode="before")
    @classmethod
    def _prompt_paths(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: {"prompt": v} if isinstance(v, str) else v for name, v in value.items()}
        return value

    _dataset_path = field_validator("dataset", mode="before")(_shorthand("path"))


# -- metric and strategy options --------------------------------------------------------------------
class _Named(_Strict):
    name: Name | None = None


class _ExactOptions(_Named):
    field: Name | None = None
    case_sensitive: bool = False
    strip: bool = True
    normalize_whitespace: bool = True
    ignore_punctuation: bool = False


class _ContainsOptions(_Named):
    substring: list[str] | None = None  # one string, or a list: any of them
    case_sensitive: bool = False

    _one = field_validator("substring", mode="before")(_listed)


class _RegexOptions(_Named):
    pattern: Name
    full: bool = False
    max_chars: Annotated[int, Field(ge=1)] | None = None


class _ChoiceOptions(_Named):
    labels: list[Any] | None = None  # ChoiceAccuracy checks them


class _NumericOptions(_Named):
    abs_tol: Annotated[float, Field(ge=0)] = 0.0
    rel_tol: Annotated[float, Field(ge=0)] = 0.0
    prefer: Literal["first", "last", "unique"] = "last"


class SchemaOptions(_Named):
    schema_: Annotated[dict[str, Any], Field(alias="schema")]


class _FieldOptions(_Named):
    fields: list[Name] | None = None
    weights: dict[str, Annotated[float, Field(ge=0)]] | None = None


class JudgeOptions(_Named):
    rubric: Name
    model: Name | None = None
    scale: list[Any] | None = None  # labels worst to best, or whole numbers: LLMJudge checks them
    include_reference: bool = True


class _CotOptions(_Strict):
    tag: Name | None = None
    instruction: Name | None = None


class _ConsistencyOptions(_Strict):
    n: Annotated[int, Field(ge=1)] = 5
    temperature: Annotated[float, Field(gt=0)] | None = None
    base: Literal["direct", "chain_of_thought"] = "direct"


class _RefineOptions(_Strict):
    rounds: Annotated[int, Field(ge=1)] | None = None
    stop: Name | None = None
    critique: Name | None = None


_NO_OPTIONS = _Strict


@dataclass(frozen=True, slots=True)
class _Kind:
    """A metric or strategy the config can name: its options, the option a bare value fills, and
    whether it can do without options."""

    options: type[BaseModel]
    shorthand: str | None = None
    needs_options: bool = False


METRICS: dict[str, _Kind] = {
    "exact_match": _Kind(_ExactOptions),
    "contains": _Kind(_ContainsOptions, "substring"),
    "regex": _Kind(_RegexOptions, "pattern", needs_options=True),
    "choice_accuracy": _Kind(_ChoiceOptions, "labels"),
    "numeric": _Kind(_NumericOptions),
    "json_valid": _Kind(_Named),
    "schema_valid": _Kind(SchemaOptions, "schema", needs_options=True),
    "field_match": _Kind(_FieldOptions, "fields"),
    "token_f1": _Kind(_Named),
    "judge": _Kind(JudgeOptions, "rubric", needs_options=True),
}
"""The metrics a config names, as ``- name`` or ``- name: options`` (``regex: PATTERN``...)."""

STRATEGIES: dict[str, _Kind] = {
    "direct": _Kind(_NO_OPTIONS),
    "chain_of_thought": _Kind(_CotOptions),
    "self_consistency": _Kind(_ConsistencyOptions, "n"),
    "self_refine": _Kind(_RefineOptions, "rounds"),
}
"""The strategies a variant names, as ``strategy: name`` or ``strategy: {name: options}``."""


# -- reading and checking ----------------------------------------------------------------------------
def read_config(path: Path) -> dict[str, Any]:
    """The config file's data: YAML for ``.yaml``/``.yml``, TOML for ``.toml``; a mapping."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigFileError(path, (), "a config is a YAML (.yaml, .yml) or TOML (.toml) file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigFileError(path, (), f"cannot read it: {reason}") from exc
    data: Any
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - the tomli backport, a dependency on Python 3.10 only
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(path, (), f"malformed TOML: {exc}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = f" on line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigFileError(path, (), f"malformed YAML{line}: {problem}") from exc
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise ConfigFileError(path, (), f"a config is a mapping of keys (variants, dataset, metrics...), not {found}")
    return data


def _unwrap(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and an optional ``None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _model_at(model: Any, loc: Loc) -> Any:
    """The pydantic model found at ``loc`` below ``model`` (through dicts and lists), or ``None``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[str(part)].annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _keys(model: Any) -> list[str]:
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def unknown(kind: str, name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {kind} {name!r}; {guess}choose from {', '.join(known)}"


def _problem(model: type[BaseModel], error: Mapping[str, Any]) -> tuple[Loc, str]:
    """One pydantic error as (where, what is wrong) in the config's terms."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return loc[:-1], unknown("key", str(loc[-1]), _keys(_model_at(model, loc[:-1])))
    if kind == "missing":
        return loc[:-1], f"missing key {loc[-1]!r}"
    message = str(error["msg"])
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    message = re.sub(r"^Input ", "", message)
    message = message[:1].lower() + message[1:]
    given = error.get("input")
    if not isinstance(given, (dict, list)):
        shown = repr(given)
        message += f"; got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return loc, message


def validated(model: type[M], data: Any, source: Path, where: Loc = ()) -> M:
    """``data`` checked against ``model``; the first problem raises :class:`ConfigFileError` at ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # an unknown key first: a misspelt key is also reported missing, and the typo says more
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        loc, message = _problem(model, errors[0])
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more {'problem' if len(errors) == 2 else 'problems'})"
        raise ConfigFileError(source, (*where, *loc), message) from None


def named_options(spec: Any, kinds: Mapping[str, _Kind], what: str, source: Path, where: Loc) -> tuple[str, Any]:
    """``name`` or ``{name: options}`` (options a mapping, ``None``, or the shorthand's value)."""
    if isinstance(spec, str):
        name, given = spec, None
    elif isinstance(spec, dict) and len(spec) == 1:
        name, given = next(iter(spec.items()))
    else:
        raise ConfigFileError(
            source, where, f"a {what} is a name or a mapping of one name to its options, not {spec!r:.60}"
        )
    if not isinstance(name, str) or name not in kinds:
        raise ConfigFileError(source, where, unknown(what, str(name), list(kinds)))
    kind = kinds[name]
    if given is None:
        if kind.needs_options:
            example = f"{name}: {kind.shorthand.upper()}" if kind.shorthand else f"{name}: {{...}}"
            raise ConfigFileError(source, where, f"{name} needs options, e.g. '{example}'")
        given = {}
    elif not isinstance(given, dict):
        if kind.shorthand is None:
            raise ConfigFileError(source, (*where, name), f"the options of {name} are a mapping, not {given!r:.60}")
        given = {kind.shorthand: given}
    return name, validated(kind.options, given, source, (*where, name))
