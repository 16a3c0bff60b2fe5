"""JSON replies: ``JsonParser`` (any JSON value) and ``PydanticParser`` (a validated type).

Which JSON is "the" answer
--------------------------
Candidates are grouped and tried group by group: fenced blocks tagged ``json``, then other
fenced blocks, then the bare text (the whole reply, balanced ``{...}``/``[...]`` spans in prose,
and the tail from the first bracket). The first group holding a valid candidate decides. Inside
it, ``prefer="last"`` (the default) takes the last valid candidate, because models that draft or
show an example answer last; ``"first"`` takes the first; ``"unique"`` raises a ``ParseError``
when valid candidates differ.

Policies (safe by default)
--------------------------
* ``lenient=False``: only strict JSON; a syntax error names its line and column in the reply.
  ``lenient=True`` repairs what models emit (comments, trailing commas, single quotes, missing
  brackets) with ``json-repair``, on candidates up to ``repair_limit`` characters (its cost grows
  faster than linearly, so larger candidates are not repaired).
* ``duplicate_keys="reject"``: ``{"a": 1, "a": 2}`` is an error; ``"last"`` keeps the last value.
* ``allow_nan=False``: ``NaN`` and ``Infinity`` are errors, and so is a number too large for a
  float (``1e400``), which would otherwise be read as infinity.
* ``extra="forbid"`` (``PydanticParser``): unknown fields are errors; ``"ignore"`` drops them,
  ``None`` follows the model's own configuration.

Each candidate is parsed once with jiter under these policies (its duplicate-key check and its
NaN switch), then ``PydanticParser`` validates the same text: validation alone keeps the last of
two equal keys and reads ``NaN``, so the parse is what enforces them. It costs about what the
validation does (``benchmarks/parsers.py``), a few microseconds on a reply that took far longer
to arrive.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import jiter

from .._errors import ConfigurationError, ParseError
from ..backends._contract import Constraint, OutputSchema
from ._base import BaseParser, StreamState, Throttle, require_text, snippet
from ._extract import (
    JSON_INFOS,
    Candidate,
    JsonSyntaxError,
    candidate_groups,
    fenced_blocks,
    holds_non_finite,
    line_column,
    load_json,
    max_depth,
)
from ._schema import schema_name, strict_json_schema
from ._stream import MISSING, JsonBuilder

if TYPE_CHECKING:
    import pydantic

__all__ = ["JsonParser", "PydanticParser"]

T = TypeVar("T")

Prefer = Literal["first", "last", "unique"]
Mode = Literal["prompt", "native", "auto"]

REPAIR_LIMIT = 20_000
"""Largest candidate (in characters) handed to json-repair in lenient mode."""

_JSONISH = re.compile(r'[{\["0-9-]|true|false|null')
_SPACE = " \t\r\n\ufeff"
_SCALAR_TAIL = "0123456789.eE+-truefalsnNaIiy"  # characters an unfinished number or literal ends with


class _CandidateError(Exception):
    """Why one candidate failed: ``detail``, the reply ``position``, and a parsed ``value``."""

    def __init__(self, detail: str, *, position: int | None = None, value: Any = MISSING) -> None:
        super().__init__(detail)
        self.detail = detail
        self.position = position
        self.value = value


class _JsonBase(BaseParser[T]):
    """Candidate search, strict/lenient loading and the ambiguity rule, shared by JSON parsers."""

    def __init__(
        self,
        *,
        lenient: bool = False,
        prefer: Prefer = "last",
        duplicate_keys: Literal["reject", "last"] = "reject",
        allow_nan: bool = False,
        repair_limit: int = REPAIR_LIMIT,
    ) -> None:
        if prefer not in ("first", "last", "unique"):
            raise ConfigurationError(f"prefer must be 'first', 'last' or 'unique', not {prefer!r}")
        if duplicate_keys not in ("reject", "last"):
            raise ConfigurationError(f"duplicate_keys must be 'reject' or 'last', not {duplicate_keys!r}")
        self.lenient = lenient
        self.prefer = prefer
        self.duplicate_keys = duplicate_keys
        self.allow_nan = allow_nan
        self.repair_limit = repair_limit

    # -- what subclasses define ---------------------------------------------------------------
    def _expected(self) -> str:
        raise NotImplementedError

    def _subject(self) -> str:
        return "valid JSON"

    def _convert(self, json_text: str, loaded: Any) -> T:
        """Turn loaded JSON into the result; raise ``_CandidateError`` when it is not valid."""
        raise NotImplementedError

    # -- parsing --------------------------------------------------------------------------------
    def _load(self, cand: Candidate) -> tuple[str, Any]:
        try:
            return cand.text, load_json(
                cand.text, allow_nan=self.allow_nan, duplicate_keys=self.duplicate_keys == "last"
            )
        except JsonSyntaxError as exc:
            reason = exc.reason.split(" at line ")[0]
            position = cand.start + exc.offset if exc.offset is not None else None
            if position is not None and cand.text.startswith(("NaN", "Infinity", "-Infinity"), exc.offset or 0):
                reason = "NaN and Infinity are not JSON (pass allow_nan=True to accept them)"
            if self.lenient:
                repaired = self._repair(cand.text)
                if repaired is not None:
                    try:
                        return repaired, load_json(
                            repaired, allow_nan=self.allow_nan, duplicate_keys=self.duplicate_keys == "last"
                        )
                    except JsonSyntaxError:
                        pass
            raise _CandidateError(reason, position=position) from None

    def _candidate(self, cand: Candidate) -> T:
        """The value of one candidate, or ``_CandidateError``."""
        json_text, loaded = self._load(cand)
        return self._convert(json_text, loaded)

    def _repair(self, text: str) -> str | None:
        stripped = text.strip()
        if not stripped.startswith(("{", "[")) or len(stripped) > self.repair_limit:
            return None
        if max_depth(stripped, 64) > 64:
            return None  # json-repair recurses; deep input would exhaust the stack
        import json_repair

        try:
            repaired = json_repair.repair_json(stripped, skip_json_loads=True, ensure_ascii=False)
        except Exception:  # a third-party repair of untrusted text must never crash a parse
            return None
        return repaired if isinstance(repaired, str) and repaired.strip() not in ("", '""') else None

    def parse(self, text: str) -> T:
        require_text(text, self)
        fenced = fenced_blocks(text)
        if len(fenced) == 1 and fenced[0][0] in JSON_INFOS:
            # The common reply: one json block, which decides when it is valid (the general loop
            # below would pick it for every ``prefer``). Anything else takes the general loop.
            _, start, end = fenced[0]
            try:
                return self._candidate(Candidate("json-block", start, end, text[start:end]))
            except _CandidateError:
                pass
        problems: list[tuple[tuple[int, int, int, int], _CandidateError]] = []  # only the best is kept
        for group_index, group in enumerate(candidate_groups(text, fenced)):
            valid: list[T] = []
            indexed = list(enumerate(group))
            for index, cand in reversed(indexed) if self.prefer == "last" else indexed:
                try:
                    value = self._candidate(cand)
                except _CandidateError as problem:
                    not_jsonish = not cand.text.lstrip().startswith(("{", "["))
                    rank = (int(problem.value is MISSING), group_index, int(not_jsonish), index)
                    if not problems or rank < problems[0][0]:
                        problems[:] = [(rank, problem)]
                    continue
                if self.prefer != "unique":
                    return value
                valid.append(value)
            if valid:
                distinct: list[T] = []
                for v in valid:
                    if all(v != d for d in distinct):
                        distinct.append(v)
                if len(distinct) > 1:
                    raise ParseError(
                        f"the reply holds {len(distinct)} different valid values; prefer='unique' forbids guessing",
                        text=text,
                        expected=f"exactly one {self._expected()}",
                        last_value=distinct[-1],
                    )
                return valid[0]
        subject = f"reply is not {self._subject()}"
        rank, best = min(problems, key=lambda p: p[0]) if problems else ((1, 0, 1, 0), None)
        if best is None or (best.value is MISSING and rank[2] and not _JSONISH.match(text.lstrip(_SPACE))):
            raise ParseError(f"{subject}: no JSON found in {snippet(text)}", text=text, expected=self._expected())
        where = ""
        if best.position is not None:
            line, column = line_column(text, best.position)
            where = f" at line {line}, column {column} of the reply"
        kind = "invalid JSON" if best.value is MISSING else "JSON does not validate"
        raise ParseError(
            f"{subject}: {kind}{where}: {best.detail}",
            text=text,
            expected=self._expected(),
            last_value=None if best.value is MISSING else best.value,
            position=best.position,
        )

    # -- previews ---------------------------------------------------------------------------------
    def _partial_json(self, text: str) -> Any:
        """jiter's partial parse of ``text`` from its first bracket, an unfinished last scalar cut off."""
        require_text(text, self)
        starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
        if not starts:
            return MISSING
        body = text[min(starts) :]
        cut = len(body.rstrip(_SCALAR_TAIL))
        if cut < len(body):
            before = body[:cut].rstrip()
            if before.endswith((":", ",", "[")):
                body = before[:-1] if before.endswith(",") else before
        try:
            return jiter.from_json(body.encode(), partial_mode="trailing-strings", allow_inf_nan=True)
        except ValueError:
            return MISSING


class JsonParser(_JsonBase[Any]):
    """Any JSON value found in the reply (see the module notes for the rules and policies).

    >>> JsonParser().parse('Result:\\n```json\\n{"ok": true}\\n```')
    {'ok': True}
    """

    def _expected(self) -> str:
        return "a JSON value"

    def _convert(self, json_text: str, loaded: Any) -> Any:
        return loaded

    def parse_partial(self, text: str) -> Any:
        value = self._partial_json(text)
        return None if value is MISSING else value

    def stream_state(self) -> StreamState[Any]:
        return _JsonStream(self, lambda builder: builder.snapshot())

    def instructions(self) -> str:
        return "Reply with valid JSON only, with no other text."

    def __repr__(self) -> str:
        return "JsonParser(lenient=True)" if self.lenient else "JsonParser()"


class PydanticParser(_JsonBase[T]):
    """Validate the JSON in a reply against a pydantic model, a dataclass or a ``TypedDict``.

    ``mode`` chooses how the format is asked for: ``"prompt"`` puts the JSON schema in the
    instructions; ``"native"`` asks the backend for its structured-output mode (the backend must
    list ``output_schema`` in ``supported_params``); ``"auto"`` uses native output when the backend
    offers it. Replies are validated the same way in every mode.

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    ...     population: int
    >>> PydanticParser(City).parse('```json\\n{"name": "Oslo", "population": 709000}\\n```').name
    'Oslo'
    """

    def __init__(
        self,
        model: type[T],
        *,
        mode: Mode = "prompt",
        extra: Literal["forbid", "ignore", "allow"] | None = "forbid",
        lenient: bool = False,
        prefer: Prefer = "last",
        duplicate_keys: Literal["reject", "last"] = "reject",
        allow_nan: bool = False,
        repair_limit: int = REPAIR_LIMIT,
    ) -> None:
        import pydantic
        from typing_extensions import is_typeddict

        super().__init__(
            lenient=lenient,
            prefer=prefer,
            duplicate_keys=duplicate_keys,
            allow_nan=allow_nan,
            repair_limit=repair_limit,
        )
        is_model = isinstance(model, type) and issubclass(model, pydantic.BaseModel)
        is_typed = is_model or (isinstance(model, type) and dataclasses.is_dataclass(model)) or is_typeddict(model)
        if not is_typed:
            raise ConfigurationError(
                f"PydanticParser needs a pydantic model, a dataclass or a TypedDict, not {model!r}"
            )
        if mode not in ("prompt", "native", "auto"):
            raise ConfigurationError(f"mode must be 'prompt', 'native' or 'auto', not {mode!r}")
        if extra not in ("forbid", "ignore", "allow", None):
            raise ConfigurationError(f"extra must be 'forbid', 'ignore', 'allow' or None, not {extra!r}")
        self.model = model
        self.mode: Mode = mode
        self.extra = extra
        self._is_model = is_model
        self._adapter: pydantic.TypeAdapter[T] = pydantic.TypeAdapter(model)
        self._previewer = _Previewer(model)
        self._instructions: str | None = None
        self._output_schema: OutputSchema | None = None

    @property
    def name(self) -> str:
        return getattr(self.model, "__name__", repr(self.model))

    def _expected(self) -> str:
        return f"a JSON object matching {self.name}"

    def _subject(self) -> str:
        return f"a valid {self.name}"

    def _convert(self, json_text: str, loaded: Any) -> T:
        import pydantic

        try:
            if self._is_model:  # the model's own validator, as model_validate_json calls it
                return self.model.__pydantic_validator__.validate_json(json_text, extra=self.extra)  # type: ignore[attr-defined,no-any-return]
            return self._adapter.validate_json(json_text, extra=self.extra)
        except pydantic.ValidationError as exc:
            raise _CandidateError(_summarise(exc), value=loaded) from None

    def validate(self, value: Any) -> T:
        """Validate an already-parsed value (e.g. a tool call's arguments) with the same policies.

        ``extra`` applies as in :meth:`parse`, and so does ``allow_nan``: ``json.loads`` reads
        ``NaN`` and ``Infinity``, so a non-finite float in ``value`` is an error unless allowed.
        """
        import pydantic

        problem: str | None = None
        try:
            if not self.allow_nan and holds_non_finite(value):
                problem = "NaN and Infinity are not JSON (pass allow_nan=True to accept them)"
            else:
                return self._adapter.validate_python(value, extra=self.extra)
        except pydantic.ValidationError as exc:
            problem = _summarise(exc)
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError, RecursionError):  # circular or exotic: a repr still shows it
            text = repr(value)
        raise ParseError(
            f"value is not a valid {self.name}: {problem}",
            text=text,
            expected=self._expected(),
            last_value=value,
        )

    # -- instructions and native output ---------------------------------------------------------
    def instructions(self) -> str:
        if self._instructions is None:
            schema = json.dumps(self._adapter.json_schema(), separators=(",", ":"))
            self._instructions = (
                f"Reply with a single JSON object that matches this JSON schema, and nothing else:\n{schema}"
            )
        return self._instructions

    def native_instructions(self) -> str:
        """The shorter instructions used when the provider enforces the schema itself."""
        return f"Reply with a JSON object for {self.name}."

    def output_schema(self) -> OutputSchema:
        """The ``output_schema`` parameter for native structured output (strict JSON schema)."""
        if self._output_schema is None:  # made once: the schema walk is not free
            self._output_schema = {
                "name": schema_name(self.model),
                "schema": strict_json_schema(self.model),
                "strict": True,
            }
        return self._output_schema

    def constraint(self) -> Constraint:
        """The model's JSON schema (the one the instructions show), for a server's JSON decoding."""
        return {"json": self._adapter.json_schema()}

    def uses_native(self, supported_params: frozenset[str]) -> bool:
        """Whether a backend supporting ``supported_params`` should get native output for this parser."""
        if self.mode == "prompt":
            return False
        if self.mode == "auto":
            return "output_schema" in supported_params
        return True

    # -- previews -------------------------------------------------------------------------------
    def parse_partial(self, text: str) -> T | None:
        raw = self._partial_json(text)
        if raw is MISSING:
            return None
        spine: set[int] = set()
        node = raw
        while isinstance(node, (dict, list)) and node:
            spine.add(id(node))
            node = node[-1] if isinstance(node, list) else next(reversed(node.values()))
        if isinstance(node, (dict, list)):
            spine.add(id(node))
        value: T | None = self._previewer.preview(raw, spine, None, _Memo())
        return None if value is MISSING else value

    def stream_state(self) -> StreamState[T]:
        memo = _Memo()  # what this stream has validated; never shared with another stream
        previewer = self._previewer
        return _JsonStream(self, lambda builder: previewer.from_builder(builder, memo))

    def __repr__(self) -> str:
        mode = f", mode={self.mode!r}" if self.mode != "prompt" else ""
        return f"PydanticParser({self.name}{mode})"


def _summarise(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


class _JsonStream:
    """Feeds a :class:`JsonBuilder` and asks ``preview`` for a value when one is due."""

    def __init__(self, parser: _JsonBase[Any], preview: Any) -> None:
        self._parser = parser
        self._preview = preview
        self._builder = JsonBuilder()
        self._parts: list[str] = []
        self._throttle = Throttle()
        self._seen = -1
        self._last: Any = MISSING

    def feed(self, chunk: str) -> list[Any]:
        require_text(chunk, self._parser)
        self._parts.append(chunk)
        builder = self._builder
        builder.feed(chunk)
        self._throttle.add(len(chunk))
        if builder.version == self._seen or builder.done or not self._throttle.due(builder.preview_cost()):
            return []
        value = self._preview(builder)
        if value is MISSING or value is None:
            return []
        self._throttle.reset()
        self._seen = builder.version
        # Text arrived but nothing that validates changed (e.g. half of a Literal): no new preview.
        # The comparison costs about what building the preview did, so the total stays linear.
        if self._last is not MISSING and value == self._last:
            return []
        self._last = value
        return [value]

    def finish(self) -> Any:
        return self._parser.parse("".join(self._parts))


class _Memo:
    """One stream's validated pieces, so each finished piece is validated once.

    Keys are object ids of the stream's own containers; each entry keeps its container alive, so
    an id cannot be reused for another object while its entry exists. A syntax error that makes
    the builder start over (a new ``generation``) empties the memo.
    """

    __slots__ = ("done", "generation", "lists")

    def __init__(self) -> None:
        self.done: dict[tuple[int, int], tuple[Any, Any]] = {}  # (annotation, container) -> (container, value)
        self.lists: dict[int, tuple[list[Any], list[Any], int]] = {}  # list -> (list, valid items, items seen)
        self.generation = -1


class _Previewer:
    """Partial typed values for a stream, validating each finished piece once.

    A model preview is built with ``model_construct``: fields that arrived and validate are set
    (and listed in ``model_fields_set``); the others keep their default, or ``None`` when they
    have none. A list field shows its finished, valid items. Model validators run only on the
    final value. The previewer holds what is the same for every stream (the type adapters); what
    one stream has seen lives in its :class:`_Memo`.
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self._adapters: dict[int, tuple[Any, pydantic.TypeAdapter[Any]]] = {}
        self._annotations: dict[tuple[type[Any], str], Any] = {}

    def from_builder(self, builder: JsonBuilder, memo: _Memo) -> Any:
        if builder.generation != memo.generation:
            memo.done.clear()
            memo.lists.clear()
            memo.generation = builder.generation
        if not builder.stack:
            return MISSING
        spine = {id(c) for c in builder.stack}
        partial = builder.partial_string()
        slot = None
        if partial is not MISSING and isinstance(builder.stack[-1], dict) and builder.keys[-1] is not None:
            slot = (id(builder.stack[-1]), builder.keys[-1], partial)
        return self.preview(builder.stack[0], spine, slot, memo)

    def preview(self, raw: Any, spine: set[int], slot: tuple[int, str, Any] | None, memo: _Memo) -> Any:
        import pydantic

        target = self.target
        if isinstance(target, type) and issubclass(target, pydantic.BaseModel):
            if not isinstance(raw, dict):
                return MISSING
            return self._model(target, raw, spine, slot, memo)
        try:  # dataclasses and TypedDicts: pydantic's own partial validation
            return self._adapter(target).validate_python(raw, experimental_allow_partial="trailing-strings")
        except (pydantic.ValidationError, ValueError, TypeError):
            return MISSING

    def _adapter(self, annotation: Any) -> pydantic.TypeAdapter[Any]:
        import pydantic

        # Keyed by identity: annotations may be unhashable; the entry keeps the object alive.
        entry = self._adapters.get(id(annotation))
        if entry is None:
            entry = self._adapters[id(annotation)] = (annotation, pydantic.TypeAdapter(annotation))
        return entry[1]

    def _annotation(self, cls: type[pydantic.BaseModel], name: str) -> Any:
        annotation = self._annotations.get((cls, name))
        if annotation is None:
            info = cls.model_fields[name]
            args = (info.annotation, *info.metadata)
            annotation = Annotated[args] if info.metadata else info.annotation
            self._annotations[(cls, name)] = annotation
        return annotation

    def _model(
        self, cls: type[pydantic.BaseModel], raw: dict[str, Any], spine: set[int], slot: Any, memo: _Memo
    ) -> Any:
        values: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            key = info.alias if isinstance(info.alias, str) else name
            if slot is not None and slot[0] == id(raw) and slot[1] == key:
                value = slot[2]
            elif key in raw:
                value = raw[key]
            else:
                continue
            out = self._value(self._annotation(cls, name), value, spine, slot, memo)
            if out is not MISSING:
                values[name] = out
        fields_set = set(values)
        for name, info in cls.model_fields.items():
            if name not in values and info.is_required():
                values[name] = None
        return cls.model_construct(_fields_set=fields_set, **values)

    def _value(self, annotation: Any, value: Any, spine: set[int], slot: Any, memo: _Memo) -> Any:
        import pydantic

        if isinstance(value, (dict, list)) and id(value) in spine:
            inner = _unwrap_optional(annotation)
            if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel) and isinstance(value, dict):
                return self._model(inner, value, spine, slot, memo)
            if get_origin(inner) in (list, Sequence) and isinstance(value, list):
                args = get_args(inner)
                return self._list(args[0] if args else Any, value, spine, memo)
            return MISSING  # other open containers appear once they are finished
        key = id(value) if isinstance(value, (dict, list)) else None
        if key is not None and (id(annotation), key) in memo.done:
            return memo.done[(id(annotation), key)][1]
        try:
            out = self._adapter(annotation).validate_python(value)
        except (pydantic.ValidationError, ValueError, TypeError):
            out = MISSING
        if key is not None:
            memo.done[(id(annotation), key)] = (value, out)
        return out

    def _list(self, item: Any, live: list[Any], spine: set[int], memo: _Memo) -> list[Any]:
        import pydantic

        _, validated, seen = memo.lists.get(id(live), (live, [], 0))
        finished = len(live) - 1 if live and isinstance(live[-1], (dict, list)) and id(live[-1]) in spine else len(live)
        adapter = self._adapter(item)
        for raw in live[seen:finished]:
            try:
                validated.append(adapter.validate_python(raw))
            except (pydantic.ValidationError, ValueError, TypeError):
                pass
        memo.lists[id(live)] = (live, validated, max(seen, finished))
        return list(validated)


def _unwrap_optional(annotation: Any) -> Any:
    """``X`` for ``X | None``, ``Optional[X]`` and ``Annotated[X, ...]``; otherwise the annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap_optional(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap_optional(args[0])
    return annotation
