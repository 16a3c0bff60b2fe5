"""The duplicate-key and NaN policies of the JSON parsers, as behaviour.

A reply is rejected for a duplicate key if and only if a full parse with jiter's duplicate check
rejects it, whatever the schema, the whitespace or the strings hold; ``NaN``, ``Infinity`` and
numbers too large for a float are rejected unless ``allow_nan=True``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from decimal import Decimal
from typing import Any, Literal

import jiter
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    RootModel,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from promptkit import ParseError
from promptkit._parsers import JsonParser, PydanticParser


class Item(BaseModel):
    sku: str
    price: float
    tags: list[str] = []


class Order(BaseModel):
    id: str
    items: list[Item]
    meta: dict[str, Any] = {}
    note: str | None = None
    ship_to: Item | None = None


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


class Mixed(BaseModel):
    kind: Literal["a", "b"]
    value: int | Item | list[Item]
    pairs: tuple[Item, int] | None = None
    scores: dict[str, Item] = {}


@dataclasses.dataclass
class Point:
    x: int


class PathAliased(BaseModel):
    a: int = Field(validation_alias=AliasPath("data", 0))
    b: int = Field(validation_alias=AliasPath("data", 1))


class ChoiceAliased(BaseModel):
    a: int = Field(validation_alias=AliasChoices("a", "alpha"))


class Validated(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def check(cls, value: str) -> str:
        return value


class ModelValidated(BaseModel):
    name: str

    @model_validator(mode="after")
    def check(self) -> ModelValidated:
        return self


class PostInit(BaseModel):
    name: str

    def model_post_init(self, context: Any) -> None:
        self.name = self.name


class CustomInit(BaseModel):
    name: str

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)


class Embedded(BaseModel):
    raw: Json[dict[str, int]]


class WithDataclass(BaseModel):
    point: Point


class Rooted(BaseModel):
    root: RootModel[list[int]]


class Movie(TypedDict):
    title: str


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Cat | Dog = Field(discriminator="kind")


def test_duplicate_keys_are_caught_in_every_kind_of_object() -> None:
    parser = PydanticParser(Order)
    replies = [
        '{"id": "A", "id": "B", "items": []}',
        '{"id": "A", "items": [{"sku": "x", "price": 1, "price": 2}]}',
        '{"id": "A", "items": [], "meta": {"k": 1, "k": 2}}',
        '{"id": "A", "items": [], "meta": {"k": [{"x": 1, "x": 1}]}}',
        '{"id": "A", "items": [], "note": "at 10:30", "ship_to": {"sku": "s", "sku": "t", "price": 1}}',
        '{"id": "A", "\\u0069d": "B", "items": []}',  # the same key, escaped
        '{"id" : "A", "items" : [], "id" : "C"}',
    ]
    for reply in replies:
        with pytest.raises(ParseError, match="duplicate key"):
            parser.parse(reply)


@pytest.mark.parametrize(
    "model",
    [Validated, ModelValidated, PostInit, CustomInit, PathAliased, ChoiceAliased, Movie, WithDataclass, Embedded],
)
def test_duplicates_are_caught_whatever_code_the_model_runs(model: Any) -> None:
    # Validators, aliases, dataclasses and TypedDicts keep the last of two equal keys; the parse does not.
    replies = {
        PathAliased: '{"data": [1, 2], "data": [3, 4]}',
        ChoiceAliased: '{"alpha": 1, "alpha": 2}',
        WithDataclass: '{"point": {"x": 1, "x": 2}}',
        Embedded: '{"raw": "{}", "raw": "{}"}',
    }
    reply = replies.get(model, '{"name": "a", "name": "b"}')
    with pytest.raises(ParseError, match="duplicate key"):
        PydanticParser(model).parse(reply)


def test_duplicates_in_a_discriminated_union_and_a_root_model() -> None:
    with pytest.raises(ParseError, match="duplicate key"):
        PydanticParser(Pet).parse('{"pet": {"kind": "dog", "good": true, "good": false}}')
    with pytest.raises(ParseError, match="duplicate key"):
        PydanticParser(Rooted).parse('{"root": [1], "root": [2]}')
    assert PydanticParser(Pet).parse('{"pet": {"kind": "cat", "lives": 9}}').pet == Cat(kind="cat", lives=9)


def test_duplicate_keys_last_keeps_the_last_value() -> None:
    assert PydanticParser(Validated, duplicate_keys="last").parse('{"name": "a", "name": "b"}').name == "b"
    assert JsonParser(duplicate_keys="last").parse('{"a": 1, "a": 2}') == {"a": 2}
    with pytest.raises(ParseError, match="duplicate key"):
        JsonParser().parse('{"a": 1, "a": 2}')


def test_colons_in_strings_are_not_keys() -> None:
    reply = json.dumps({"id": "A:B:C", "items": [{"sku": ":x:", "price": 1.5, "tags": [":", "a:b"]}], "note": ": "})
    assert PydanticParser(Order).parse(reply) == Order.model_validate_json(reply)


def test_nan_in_a_schema_without_floats_fails_validation_with_the_nan_message() -> None:
    with pytest.raises(ParseError, match="NaN and Infinity are not JSON"):
        PydanticParser(Tree).parse('{"name": "r", "children": NaN}')


def test_nan_and_infinity_words_inside_strings_are_not_tokens() -> None:
    reply = '{"id": "NaN bread", "items": [{"sku": "Infinity pool", "price": 1.0, "tags": ["-Infinity"]}]}'
    assert PydanticParser(Order).parse(reply).items[0].sku == "Infinity pool"


def test_extra_allow_scans_extras_for_nan() -> None:
    with pytest.raises(ParseError, match="NaN and Infinity"):
        PydanticParser(Tree, extra="allow").parse('{"name": "r", "other": NaN}')


# -- exactness under random replies ------------------------------------------------------------------

_KEY = st.sampled_from(["a", "b", "c", "id", ":", "a:b", "é"])
_SCALAR = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet='ab: "\\\n', max_size=6),
    st.none(),
    st.booleans(),
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(_KEY, inner), max_size=4),  # key/value pairs: repeats make duplicates
    ),
    max_leaves=12,
)


def _dump(value: Any, style: int) -> str:
    """JSON text with possibly repeated keys, in one of three whitespace styles."""
    colon, comma = [(":", ","), (": ", ", "), (" :\n ", " ,\t")][style]
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return "{" + comma.join(json.dumps(k) + colon + _dump(v, style) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + comma.join(_dump(v, style) for v in value) + "]"
    return json.dumps(value)


class AnyHolder(BaseModel):
    model_config = ConfigDict(extra="ignore")
    a: Any = None
    b: dict[str, Any] = {}
    c: list[Any] = []


def _has_duplicate(text: str) -> bool:
    try:
        jiter.from_json(text.encode(), catch_duplicate_keys=True)
    except ValueError as exc:
        return "duplicate" in str(exc).lower()
    return False


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "x"]), _JSON), max_size=5), style=st.integers(0, 2))
def test_reject_equals_a_full_duplicate_check(body: list[tuple[str, Any]], style: int) -> None:
    text = _dump(body, style) if body else "{}"
    strict = PydanticParser(AnyHolder)
    relaxed = PydanticParser(AnyHolder, duplicate_keys="last")
    try:
        expected = relaxed.parse(text)
    except ParseError:
        return  # not valid for the model at all: nothing for the duplicate policy to decide
    if _has_duplicate(text):
        with pytest.raises(ParseError, match=re.compile("duplicate key")):
            strict.parse(text)
    else:
        assert strict.parse(text) == expected


_ITEM = st.fixed_dictionaries(
    {"sku": st.text(alphabet="ab:é ", max_size=4), "price": st.floats(-10, 10)},
    optional={"tags": st.lists(st.text(alphabet="x:", max_size=3), max_size=2)},
)
_ORDER = st.fixed_dictionaries(
    {"id": st.text(alphabet="A:1", max_size=3), "items": st.lists(_ITEM, max_size=4)},
    optional={
        "meta": st.dictionaries(st.sampled_from(["k", "j", "é"]), _JSON, max_size=2),
        "note": st.none() | st.text(alphabet="n: ", max_size=5),
        "ship_to": st.none() | _ITEM,
    },
)


def _dump_repeating(value: Any, target: int, seen: list[int]) -> str:
    """JSON text of ``value`` in which the ``target``-th object (depth first) repeats its first key."""
    if isinstance(value, dict):
        index = len(seen)
        seen.append(index)
        pairs = [json.dumps(k) + ": " + _dump_repeating(v, target, seen) for k, v in value.items()]
        if index == target and pairs:
            pairs.append(pairs[0])
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump_repeating(v, target, seen) for v in value) + "]"
    return json.dumps(value)


class CheckedOrder(Order):
    @field_validator("note")
    @classmethod
    def touch(cls, value: str | None, info: ValidationInfo) -> str | None:
        for item in info.data.get("items", []):
            item.tags = item.tags  # marks "tags" as set on every item, sent or not
        return value


class EarlyCheckedOrder(Order):
    @field_validator("id")
    @classmethod
    def upper(cls, value: str) -> str:
        return value.upper()  # runs first: it sees no other field


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(order=_ORDER, target=st.integers(-1, 8), model=st.sampled_from([Order, CheckedOrder, EarlyCheckedOrder]))
def test_reject_is_exact_for_nested_models(order: dict[str, Any], target: int, model: type[Order]) -> None:
    text = _dump_repeating(order, target, [])
    if _has_duplicate(text):
        with pytest.raises(ParseError, match="duplicate key"):
            PydanticParser(model).parse(text)
    else:
        assert PydanticParser(model).parse(text) == model.model_validate_json(text)


# -- NaN from the validated floats ---------------------------------------------------------------


class Reading(BaseModel):
    value: float
    low: float | None = None
    history: list[float] = []
    by_name: dict[str, float] = {}


class Station(BaseModel):
    name: str
    readings: list[Reading]
    latest: Reading | None = None
    peak: float = float("nan")  # a default that is not finite


class Sensor(BaseModel):
    level: float
    parts: list[Sensor] = []


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_tokens_in_float_fields_are_rejected_wherever_they_are(token: str) -> None:
    reply = f'{{"name": "Nord", "peak": 1, "readings": [{{"value": 1}}, {{"value": 2, "history": [1, {token}]}}]}}'
    with pytest.raises(ParseError, match="NaN and Infinity are not JSON"):
        PydanticParser(Station).parse(reply)
    assert PydanticParser(Station, allow_nan=True).parse(reply).readings[1].history[1] != 1.0


def test_a_non_finite_default_is_left_alone() -> None:
    station = PydanticParser(Station).parse('{"name": "Nord", "readings": [{"value": 1e300}]}')
    assert station.readings[0].value == 1e300
    assert station.peak != station.peak  # the NaN default, untouched


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5E+309", "1e0400", "1" * 400 + ".0"])
def test_a_number_too_large_for_a_float_is_non_finite_too(number: str) -> None:
    reply = f'{{"name": "Nord", "readings": [{{"value": {number}}}]}}'
    with pytest.raises(ParseError, match="too large for a float") as info:
        PydanticParser(Station).parse(reply)
    assert "allow_nan=True" in str(info.value)
    with pytest.raises(ParseError, match="too large for a float"):
        JsonParser().parse(f'{{"score": {number}}}')
    with pytest.raises(ParseError, match="too large for a float"):
        list(JsonParser().parse_stream([reply[:10], reply[10:]]))  # the stream's final value too
    assert abs(PydanticParser(Station, allow_nan=True).parse(reply).readings[0].value) == float("inf")
    assert abs(JsonParser(allow_nan=True).parse(f'{{"score": {number}}}')["score"]) == float("inf")


def test_big_integers_and_numbers_in_strings_are_not_overflows() -> None:
    big = "1" + "0" * 400
    assert JsonParser().parse(f'{{"n": {big}}}') == {"n": int(big)}
    assert JsonParser().parse('{"s": "1e400", "t": "x1e999"}') == {"s": "1e400", "t": "x1e999"}
    assert JsonParser().parse('{"x": 1e308}') == {"x": 1e308}


@pytest.mark.parametrize(
    "annotation",
    [Decimal, complex, Any, float | str],
)
def test_nan_is_rejected_for_every_kind_of_number(annotation: Any) -> None:
    model = create_model("Holder", x=(annotation, ...))
    with pytest.raises(ParseError, match="NaN and Infinity"):
        PydanticParser(model).parse('{"x": NaN}')


def test_a_deep_value_in_a_deep_call_stack_is_parsed_exactly() -> None:
    depth = 99  # near pydantic's JSON nesting limit
    sensor = '{"level": 1, "parts": [' * depth + '{"level": 2}' + "]}" * depth
    station = sensor.replace('"level": 2}', '"level": NaN}')

    def near_the_limit(frames: int, text: str) -> Sensor:
        return PydanticParser(Sensor).parse(text) if frames <= 0 else near_the_limit(frames - 1, text)

    room = sys.getrecursionlimit() - len(inspect.stack(0)) - 120  # few frames left for any walk
    assert near_the_limit(room, sensor) == Sensor.model_validate_json(sensor)
    with pytest.raises(ParseError, match="NaN and Infinity"):
        near_the_limit(room, station)
