"""The duplicate-key and NaN policies of ``PydanticParser``, applied without a second parse when possible.

``validate_json`` keeps the last of two equal keys without saying so, and accepts ``NaN`` and
``Infinity``. The plain way to apply both policies is a second, full parse (jiter's
``catch_duplicate_keys`` and ``allow_inf_nan``), which costs about as much as the validation. For
most schemas this module settles both for far less, and the answer is always exact; when it cannot
prove a reply clean, the caller makes the full parse.

Duplicate keys, by counting:

* ``keys_at_most(text, n)`` bounds the keys in the JSON text: every key is followed by a colon of
  its own, and a colon inside a string only makes the bound larger.
* a *key counter*, compiled once from the core schema, counts the distinct keys a validated value
  shows: each model's ``__pydantic_fields_set__`` (a field is set only by a key of its own object)
  and each dict's length, and never counts a key the input did not have.

An object has at least as many keys as distinct keys, so a bound no larger than the count leaves no
room for a repeated key anywhere.

``NaN``: a ``NaN`` or ``Infinity`` token fails validation unless the schema has a float, a decimal, a
complex number, an enum or ``Any`` somewhere. Where the only such parts are floats in models, lists
and dicts, a compiled check of the validated floats (``math.isfinite`` at C speed) replaces the
text scan; a non-finite float sends the caller to the full parse, which tells a ``NaN`` token from
a number too large for a float.

The counter follows models, lists, tuples, sets, dicts, unions, ``Any`` and plain scalars. Anything
that runs user code or makes objects from other input could report keys the input never had, so:

* a model whose fields hold such code (validators, ``Json[...]``, dataclasses, ``TypedDict``, models
  with their own code) counts its own keys, and what the fields validated after the last such
  field hold: field code cannot touch the instance, which does not exist yet, but a field
  validator sees the fields validated before it (``info.data``, in definition order) and could
  change them;
* a model with code of its own (model validators, a custom ``__init__``, ``model_post_init``, a
  root model) or with alias paths cannot be counted: inside another model it is field code as
  above; at the top there is no counter and the full parse decides.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from math import isfinite
from typing import Any, NamedTuple

from ._extract import compact

__all__ = ["UNKNOWN_FACTS", "FiniteCheck", "KeyCounter", "SchemaFacts", "keys_at_most", "schema_facts"]

KeyCounter = Callable[[Any], int]
FiniteCheck = Callable[[Any], bool]

_SCALARS = frozenset(
    {
        "none",
        "bool",
        "int",
        "float",
        "decimal",
        "complex",
        "str",
        "bytes",
        "date",
        "time",
        "datetime",
        "timedelta",
        "literal",
        "enum",
        "uuid",
        "url",
        "multi-host-url",
    }
)
_TAKES_NAN = frozenset({"float", "decimal", "complex", "enum", "any"})
"""Kinds a ``NaN``/``Infinity`` token can validate as (dates and integers refuse it)."""
_FIELDS_SET = operator.attrgetter("__pydantic_fields_set__")
_SPARSE = 128
"""Characters per key above which a full parse checks duplicates faster than the byte scan."""


class _UnsupportedError(Exception):
    """The schema holds something a key counter cannot vouch for."""


def keys_at_most(text: str, count: int) -> bool:
    """Whether the JSON ``text`` provably holds at most ``count`` object keys (no = maybe more).

    Every key is followed by a colon of its own, so the colons bound the keys; a colon inside a
    string only makes the bound larger. Most replies are settled by one C-speed count.

    >>> keys_at_most('{"a": {"b": 1}, "c": [2]}', 3), keys_at_most('{"a": "10:30"}', 1)
    (True, True)
    """
    if text.count(":") <= count:
        return True
    if count * _SPARSE < len(text):
        return False  # few keys for the length (long strings): the exact parse is the cheaper check
    # Tighter, for strings holding colons (times, URLs): with JSON whitespace deleted, a key's
    # colon follows its closing quote; one inside a string rarely does.
    return compact(text).count(b'":') <= count


class SchemaFacts(NamedTuple):
    """What a core schema tells the JSON policies, found once per parser."""

    counter: KeyCounter | None
    """Counts the distinct keys a validated value shows; ``None``: the schema is not understood."""
    takes_nan: bool
    """Whether a ``NaN``/``Infinity`` token could validate somewhere (``True`` when not understood).

    When it cannot, such a token fails validation, so the NaN policy needs no check of its own.
    """
    finite: FiniteCheck | None = None
    """Whether a validated value holds only finite floats; ``None``: scan the text for the tokens."""


UNKNOWN_FACTS = SchemaFacts(None, True)
"""For a schema that is not understood: check both policies with a full parse."""


def schema_facts(core_schema: Mapping[str, Any]) -> SchemaFacts:
    """The key counter and NaN facts of a pydantic core schema (see the module notes).

    >>> from pydantic import BaseModel, TypeAdapter
    >>> class Point(BaseModel):
    ...     x: int
    ...     y: float
    >>> facts = schema_facts(TypeAdapter(Point).core_schema)
    >>> facts.counter(Point(x=1, y=2.5)), facts.takes_nan, facts.finite(Point(x=1, y=float("nan")))
    (2, True, False)
    """
    counting = _Counter()
    try:
        counter = counting.compile(core_schema)
    except (_UnsupportedError, KeyError, TypeError, AttributeError):
        return UNKNOWN_FACTS
    takes_nan = bool(counting.kinds & _TAKES_NAN)
    finite: FiniteCheck | None = None
    if takes_nan:
        try:
            finite = _Finite().compile(core_schema) or _all_finite
        except (_UnsupportedError, KeyError, TypeError, AttributeError):
            finite = None  # decimals, enums, Any...: the text scan decides
    return SchemaFacts(counter if counter is not None else _zero, takes_nan, finite)


def _zero(value: Any) -> int:
    return 0


class _Walk:
    """Compiles a function of validated values from a core schema, following definitions and refs.

    Subclasses give ``_compile`` for one node (``None``: nothing to do for it) and ``_default``, what
    a recursive reference does before its target is compiled.
    """

    def __init__(self) -> None:
        self.definitions: dict[str, Mapping[str, Any]] = {}
        self.compiled: dict[str, Callable[[Any], Any] | None] = {}

    def compile(self, schema: Mapping[str, Any]) -> Any:
        kind = schema["type"]
        if kind == "definitions":
            for definition in schema["definitions"]:
                self.definitions[definition["ref"]] = definition
            return self.compile(schema["schema"])
        if kind == "definition-ref":
            ref = schema["schema_ref"]
            return self._by_ref(ref, self.definitions[ref])
        ref = schema.get("ref")
        if ref is not None:
            return self._by_ref(ref, schema)
        return self._compile(kind, schema)

    def _by_ref(self, ref: str, schema: Mapping[str, Any]) -> Any:
        if ref in self.compiled:
            return self.compiled[ref]
        # A recursive schema meets itself while compiling: hand out a forwarder until it is done.
        slot: list[Callable[[Any], Any] | None] = []
        default = self._default

        def forward(value: Any) -> Any:  # a target that failed to compile does nothing
            target = slot[0] if slot else None
            return target(value) if target is not None else default

        self.compiled[ref] = forward
        result = self._compile(schema["type"], schema)
        slot.append(result)
        self.compiled[ref] = result
        return result

    _default: Any = None

    def _compile(self, kind: str, schema: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class _Counter(_Walk):
    """Compiles a key counter; ``None`` stands for "holds no objects"."""

    _default = 0

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[type, KeyCounter] = {}  # for values whose schema is only known at run time
        self.kinds: set[str] = set()  # every kind met, for the NaN facts

    def _compile(self, kind: str, schema: Mapping[str, Any]) -> KeyCounter | None:
        self.kinds.add(kind)
        if kind in _SCALARS:
            return None
        if kind == "model":
            return self._model(schema)
        if kind in ("nullable", "default"):
            # A default is used only for a missing key, and model counters skip unset fields.
            inner: KeyCounter | None = self.compile(schema["schema"])
            if inner is None or kind == "default":
                return inner
            return lambda value: 0 if value is None else inner(value)
        if kind in ("list", "set", "frozenset"):
            item = self.compile(schema["items_schema"]) if "items_schema" in schema else self._any()
            if item is None:
                return None
            if item is _flat_model:  # models without nested objects: count at C speed
                return lambda value: sum(map(len, map(_FIELDS_SET, value)))
            return lambda value: sum(map(item, value))
        if kind == "dict":
            if "keys_schema" in schema:
                self.compile(schema["keys_schema"])  # only to refuse what it cannot vouch for
            values = self.compile(schema["values_schema"]) if "values_schema" in schema else self._any()
            if values is None:
                return len
            return lambda value: len(value) + sum(map(values, value.values()))
        if kind == "any":
            return self._any()
        if kind in ("tuple", "union", "tagged-union"):
            if kind == "tuple":
                parts = list(schema.get("items_schema", []))
            elif kind == "union":
                parts = [c[0] if isinstance(c, tuple) else c for c in schema["choices"]]
            else:
                parts = list(schema["choices"].values())
            counters = [self.compile(part) for part in parts]
            return self._generic if any(c is not None for c in counters) else None
        raise _UnsupportedError(kind)

    def _model(self, schema: Mapping[str, Any]) -> KeyCounter:
        if schema.get("root_model") or schema.get("custom_init") or schema.get("post_init"):
            raise _UnsupportedError("model")
        fields_schema = schema["schema"]
        if fields_schema["type"] != "model-fields":  # a model validator wraps it
            raise _UnsupportedError(fields_schema["type"])
        if "allow" in (fields_schema.get("extra_behavior"), schema.get("config", {}).get("extra_fields_behavior")):
            self.kinds.add("any")  # extra values are kept as parsed, NaN included
        seen: set[str] = set()
        for name, field in fields_schema["fields"].items():
            alias = field.get("validation_alias")
            if alias is not None and not isinstance(alias, str):
                raise _UnsupportedError("alias path")  # one key could set several fields
            keys = {name} if alias is None else {name, alias}
            if keys & seen:
                raise _UnsupportedError("shared key")
            seen |= keys
        nested: list[tuple[str, KeyCounter]] = []
        code_after = False  # whether a field validated later runs code
        for name, field in reversed(fields_schema["fields"].items()):
            try:
                counter = self.compile(field["schema"])
            except _UnsupportedError:
                # Code runs in this field (a validator, Json[...], a dataclass...): its value is
                # not counted, nor are the fields validated before it, which its validator sees
                # (and could change) through info.data. The model's own keys still count: no field
                # code can reach the instance, which does not exist yet.
                self.kinds.add("any")
                code_after = True
                continue
            if counter is not None and not code_after:
                nested.append((name, counter))
        if not nested:
            count = _flat_model
        else:

            def count(value: Any) -> int:
                fields_set = value.__pydantic_fields_set__
                total = len(fields_set)
                for name, counter in nested:
                    if name in fields_set:
                        total += counter(getattr(value, name))
                return total

        self.models[schema["cls"]] = count
        return count

    def _any(self) -> KeyCounter:
        """The counter of a part typed ``Any`` (also a list or dict with no item schema)."""
        self.kinds.add("any")
        return self._generic

    def _generic(self, value: Any) -> int:
        """Count a value whose schema is chosen at run time (``Any``, unions, tuples)."""
        if isinstance(value, dict):
            return len(value) + sum(map(self._generic, value.values()))
        if isinstance(value, (list, tuple, set, frozenset)):
            return sum(map(self._generic, value))
        counter = self.models.get(type(value))
        return counter(value) if counter is not None else 0


def _flat_model(value: Any) -> int:
    return len(value.__pydantic_fields_set__)


def _optional_finite(value: Any) -> bool:
    return value is None or isfinite(value)


def _all_finite(values: Iterable[Any]) -> bool:
    """Whether every float in ``values`` is finite (``None`` and ``0.0`` are skipped, at C speed)."""
    return all(map(isfinite, filter(None, values)))


class _Finite(_Walk):
    """Compiles a check that a validated value holds only finite floats (``None``: holds no float).

    Only floats, plain or optional, in models, lists, sets and dicts are followed; anything else
    that can hold a non-finite number (decimals, complex numbers, enums, ``Any``, unions, extra
    values) raises ``_UnsupportedError`` and the caller scans the text instead. Fields left at their
    default are checked too: a non-finite default only costs the full parse, never a wrong answer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.columns: dict[FiniteCheck, list[Callable[[Any], Any]]] = {}  # models of plain floats only

    _default = True

    def _compile(self, kind: str, schema: Mapping[str, Any]) -> Any:
        if kind == "float":
            return isfinite
        if kind in _SCALARS and kind not in _TAKES_NAN:
            return None
        if kind == "default":
            return self.compile(schema["schema"])
        if kind == "nullable":
            inner = self.compile(schema["schema"])
            if inner is None or inner is isfinite:
                return inner and _optional_finite
            return lambda value: value is None or inner(value)
        if kind in ("list", "set", "frozenset", "dict"):
            item = self.compile(schema["values_schema" if kind == "dict" else "items_schema"])
            if item is None:
                return None
            if kind == "dict":
                return lambda value: all(map(item, value.values()))
            if item is isfinite or item is _optional_finite:
                return _all_finite
            columns = self.columns.get(item)
            if columns is not None and len(columns) == 1:  # the float column of a list of models
                column = columns[0]
                return lambda value: _all_finite(map(column, value))
            if columns is not None:
                return lambda value: all(_all_finite(map(column, value)) for column in columns)
            return lambda value: all(map(item, value))
        if kind == "model":
            return self._floats_of(schema)
        raise _UnsupportedError(kind)

    def _floats_of(self, schema: Mapping[str, Any]) -> FiniteCheck | None:
        fields_schema = schema["schema"]
        if "allow" in (fields_schema.get("extra_behavior"), schema.get("config", {}).get("extra_fields_behavior")):
            raise _UnsupportedError("extra values")
        plain: list[str] = []
        nested: list[tuple[str, FiniteCheck]] = []
        for name, field in fields_schema["fields"].items():
            field_check: FiniteCheck | None = self.compile(field["schema"])
            if field_check is isfinite or field_check is _optional_finite:
                plain.append(name)
            elif field_check is not None:
                nested.append((name, field_check))
        floats: FiniteCheck | None = None
        if len(plain) == 1:
            getter = operator.attrgetter(plain[0])
            floats = lambda value: _all_finite((getter(value),))  # noqa: E731
        elif plain:
            getters = operator.attrgetter(*plain)  # a tuple of the values, at C speed
            floats = lambda value: _all_finite(getters(value))  # noqa: E731
        if not nested:
            if floats is not None:
                self.columns[floats] = [operator.attrgetter(name) for name in plain]
            return floats
        if floats is None and len(nested) == 1:
            name, inner = nested[0]
            field = operator.attrgetter(name)
            return lambda value: inner(field(value))

        def check(value: Any) -> bool:
            if floats is not None and not floats(value):
                return False
            return all(inner(getattr(value, name)) for name, inner in nested)

        return check
