from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
import json
import math
import re
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from promptkit import ConfigurationError, ParseError, PydanticParser, TextParser
from promptkit._parsers import (
    BaseParser,
    BoolParser,
    ChoiceParser,
    DateParser,
    JsonParser,
    ListParser,
    NativeOutputParser,
    NumberParser,
    RegexParser,
    StreamingParser,
    XmlTagParser,
    extract_json_candidates,
    strict_json_schema,
)
from promptkit._parsers._extract import find_candidates


class City(BaseModel):
    name: str
    population: int


def test_text_parser() -> None:
    assert TextParser().parse("  hi \n") == "hi"
    assert TextParser(strip=False).parse(" hi ") == " hi "
    assert TextParser().instructions() == ""


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "Oslo", "population": 709000}',
        'Sure!\n```json\n{"name": "Oslo", "population": 709000}\n```\nHope that helps.',
        '```\n{"name": "Oslo", "population": 709000}\n```',
        'The answer is {"name": "Oslo", "population": 709000} as requested.',
        '~~~json\n{"name": "Oslo", "population": 709000}\n~~~',
    ],
)
def test_pydantic_parser_finds_json(reply: str) -> None:
    assert PydanticParser(City).parse(reply) == City(name="Oslo", population=709000)


def test_pydantic_parser_error_keeps_text_and_says_what_was_expected() -> None:
    reply = '{"name": "Oslo", "population": "many"}'
    with pytest.raises(ParseError) as info:
        PydanticParser(City).parse(reply)
    err = info.value
    assert err.text == reply
    assert "population" in str(err)
    assert "expected a JSON object matching City" in str(err)


def test_pydantic_parser_no_json() -> None:
    with pytest.raises(ParseError, match="not a valid City"):
        PydanticParser(City).parse("I don't know")


def test_instructions_include_schema() -> None:
    text = PydanticParser(City).instructions()
    assert '"population"' in text
    assert "JSON" in text


def test_pydantic_parser_needs_a_model() -> None:
    with pytest.raises(ConfigurationError):
        PydanticParser(dict)  # type: ignore[type-var]


def test_json_block_preferred_over_other_blocks() -> None:
    reply = '```python\nprint(1)\n```\n```json\n{"a": 1}\n```'
    assert extract_json_candidates(reply)[0] == '{"a": 1}'


def test_fence_scanner_matches_each_line_start_once_on_adversarial_input() -> None:
    # A fence followed by many spaces makes a backtracking regex take seconds. What bounds the
    # work is that the anchored fence pattern is tried once per candidate line, never per
    # character: count the tries (benchmarks/parsers.py times it at 1 MB and 4 MB).
    from promptkit._parsers import _extract

    tries = 0
    real = _extract._FENCE

    class Counting:
        def match(self, text: str, pos: int) -> re.Match[str] | None:
            nonlocal tries
            tries += 1
            return real.match(text, pos)

    reply = "```" + " " * 200_000 + "\n" + ("x" * 10 + "\n```\n") * 50
    _extract._FENCE = Counting()  # type: ignore[assignment]  # a counting stand-in for the pattern
    try:
        with pytest.raises(ParseError):
            PydanticParser(City).parse(reply)
    finally:
        _extract._FENCE = real
    assert 0 < tries <= 2 * (reply.count("```") + 1)  # at most one try per fence marker, per pass


# -- JSON extraction and policies --------------------------------------------------------------
class Item(BaseModel):
    name: str
    qty: int


class Order(BaseModel):
    id: str
    items: list[Item]
    note: str | None = None


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("42", 42),
        ('"hi"', "hi"),
        ('\ufeff{"a": 1}', {"a": 1}),
        ('Sure! {"a": [1, {"b": "}"}]} Anything else?', {"a": [1, {"b": "}"}]}),
        ("[1, 2]\n\nThat is the list.", [1, 2]),
        ('```JSON\n{"a": 1}\n```', {"a": 1}),
        ('    ```json\n{"a": 1}\n```', {"a": 1}),  # indented beyond a fence: still found as text span
    ],
)
def test_json_parser_finds_the_value(reply: str, value: Any) -> None:
    assert JsonParser().parse(reply) == value


def test_json_block_wins_over_other_blocks_and_prose() -> None:
    reply = 'Example: {"a": 0}\n```python\n{"a": 1}\n```\n```json\n{"a": 2}\n```'
    assert JsonParser().parse(reply) == {"a": 2}


def test_several_valid_blocks_rule_last_first_unique() -> None:
    reply = '```json\n{"a": 1}\n```\nor better\n```json\n{"a": 2}\n```'
    assert JsonParser().parse(reply) == {"a": 2}
    assert JsonParser(prefer="first").parse(reply) == {"a": 1}
    with pytest.raises(ParseError, match="2 different valid values") as info:
        JsonParser(prefer="unique").parse(reply)
    assert info.value.last_value == {"a": 2}
    same = '```json\n{"a": 1}\n```\n```json\n{"a": 1}\n```'
    assert JsonParser(prefer="unique").parse(same) == {"a": 1}


def test_invalid_example_block_is_skipped_for_the_valid_one() -> None:
    reply = '```json\n{"name": "<city>", "population": "<n>"}\n```\n```json\n{"name": "Oslo", "population": 1}\n```'
    assert PydanticParser(City, prefer="first").parse(reply) == City(name="Oslo", population=1)


def test_an_invalid_json_block_falls_back_to_the_rest_of_the_reply() -> None:
    reply = '```json\n{"name": "<city>"}\n```\nActually: {"name": "Oslo", "population": 1}'
    assert PydanticParser(City).parse(reply) == City(name="Oslo", population=1)
    assert JsonParser().parse('```json\n[1, 2,]\n```\nfixed: {"a": 1}') == {"a": 1}


def test_strict_mode_reports_exact_position() -> None:
    reply = 'Here it is:\n```json\n{"name": "Oslo",\n  "population" 709000}\n```'
    with pytest.raises(ParseError) as info:
        PydanticParser(City).parse(reply)
    err = info.value
    assert "line 4, column 16" in str(err)
    assert err.position is not None
    assert reply[err.position] == "7"
    assert err.text == reply


@pytest.mark.parametrize(
    "reply",
    [
        "{'name': 'Oslo', 'population': 709000}",
        '{"name": "Oslo", "population": 709000,}',
        '{"name": "Oslo", // the capital\n "population": 709000}',
        'Answer: {"name": "Oslo", "population": 709000',
    ],
)
def test_lenient_mode_repairs_what_models_emit(reply: str) -> None:
    with pytest.raises(ParseError):
        PydanticParser(City).parse(reply)
    assert PydanticParser(City, lenient=True).parse(reply) == City(name="Oslo", population=709000)


def test_lenient_repair_input_is_bounded() -> None:
    reply = "{'name': 'Oslo', 'population': 709000}"
    with pytest.raises(ParseError):
        PydanticParser(City, lenient=True, repair_limit=10).parse(reply)


def test_duplicate_keys_rejected_by_default() -> None:
    reply = '{"name": "Oslo", "name": "Bergen", "population": 1}'
    with pytest.raises(ParseError, match="duplicate key"):
        PydanticParser(City).parse(reply)
    assert PydanticParser(City, duplicate_keys="last").parse(reply).name == "Bergen"
    assert JsonParser(duplicate_keys="last").parse('{"a": 1, "a": 2}') == {"a": 2}
    with pytest.raises(ConfigurationError):
        JsonParser(duplicate_keys="first")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "reply",
    [
        '{"a": 1, "a": 2}',
        '{"a": 1, "\\u0061": 2}',  # the same key once escaped
        '{"a\\"b": 1, "a\\u0022b": 2}',  # an escaped quote both ways
        '{"\\u00e9": 1, "\u00e9": 2}',  # a non-ASCII key, escaped and literal
        '{"outer": {"k": 1, "k": 2}}',
        '[{"k": 1}, {"k": 1, "j": 2, "k": 3}]',
        '{"x": [1, {"deep": [{"a": 1, "b": 2, "a": 3}]}]}',
        '{"a": 1, "b": {"c": 2}, "a": 3}',  # repeated around a nested object
    ],
)
def test_duplicate_keys_found_anywhere(reply: str) -> None:
    with pytest.raises(ParseError, match="duplicate key"):
        JsonParser().parse(reply)
    JsonParser(duplicate_keys="last").parse(reply)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('[{"k": 1}, {"k": 2}]', [{"k": 1}, {"k": 2}]),  # the same key in sibling objects
        ('{"k": {"k": {"k": 1}}}', {"k": {"k": {"k": 1}}}),  # the same key at each level
        ('{"a": "\\"a\\": 1", "b": "a"}', {"a": '"a": 1', "b": "a"}),  # a key's text inside a value
        ('{"a\\"": 1, "a": 2}', {'a"': 1, "a": 2}),  # keys that differ by an escaped quote
        ('{"a": 1, "A": 2, "a ": 3}', {"a": 1, "A": 2, "a ": 3}),  # case and spacing matter
        ('{"\\u0061b": 1, "ab ": 2}', {"ab": 1, "ab ": 2}),
    ],
)
def test_distinct_keys_accepted(reply: str, expected: Any) -> None:
    assert JsonParser().parse(reply) == expected


def test_duplicate_key_error_names_the_key_and_place() -> None:
    reply = 'Here:\n```json\n{"name": "Oslo",\n "\\u006eame": "Bergen", "population": 1}\n```'
    with pytest.raises(ParseError, match='duplicate key "name"') as info:
        PydanticParser(City).parse(reply)
    assert "at line 4, column 14 of the reply" in str(info.value)
    assert info.value.position == reply.index(': "Bergen"') + 1  # where jiter stops, after the key


def test_nan_and_infinity_rejected_by_default() -> None:
    class Score(BaseModel):
        value: float

    for token in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ParseError, match="NaN and Infinity"):
            PydanticParser(Score).parse(f'{{"value": {token}}}')
    assert PydanticParser(Score, allow_nan=True).parse('{"value": Infinity}').value == float("inf")


def test_extra_fields_forbidden_by_default() -> None:
    reply = '{"name": "Oslo", "population": 1, "country": "NO"}'
    with pytest.raises(ParseError, match="country") as info:
        PydanticParser(City).parse(reply)
    assert info.value.last_value == {"name": "Oslo", "population": 1, "country": "NO"}
    assert PydanticParser(City, extra="ignore").parse(reply) == City(name="Oslo", population=1)
    assert PydanticParser(City, extra=None).parse(reply) == City(name="Oslo", population=1)


def test_pydantic_parser_accepts_dataclass_and_typeddict() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Movie(TypedDict):
        title: str
        year: int

    assert PydanticParser(Point).parse('{"x": 1, "y": 2}') == Point(1, 2)
    assert PydanticParser(Movie).parse('```json\n{"title": "Heat", "year": 1995}\n```') == {
        "title": "Heat",
        "year": 1995,
    }
    with pytest.raises(ParseError, match="Movie"):
        PydanticParser(Movie).parse('{"title": "Heat"}')
    assert "title" in PydanticParser(Movie).instructions()


def test_validate_reuses_policies() -> None:
    parser = PydanticParser(City)
    assert parser.validate({"name": "Oslo", "population": 1}).name == "Oslo"
    with pytest.raises(ParseError) as info:
        parser.validate({"name": "Oslo"})
    assert info.value.last_value == {"name": "Oslo"}
    with pytest.raises(ParseError, match="country: Extra inputs are not permitted"):
        parser.validate({"name": "Oslo", "population": 1, "country": "NO"})


def test_validate_applies_the_nan_policy_at_any_depth() -> None:
    class Series(BaseModel):
        points: list[dict[str, float]]

    loaded = json.loads('{"points": [{"x": 1.0}, {"x": NaN}]}')  # json.loads reads NaN
    with pytest.raises(ParseError, match="NaN and Infinity") as info:
        PydanticParser(Series).validate(loaded)
    assert info.value.last_value is loaded
    assert math.isnan(PydanticParser(Series, allow_nan=True).validate(loaded).points[1]["x"])
    shared: list[Any] = [1.0]
    shared.append(shared)  # a value built in Python may contain itself: the check still ends
    with pytest.raises(ParseError):
        PydanticParser(Series).validate({"points": shared})


def test_no_json_and_empty_reply() -> None:
    for reply in ("", "   ", "I cannot help with that."):
        with pytest.raises(ParseError, match="no JSON found"):
            JsonParser().parse(reply)


def test_parser_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        JsonParser(prefer="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        PydanticParser(City, mode="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        PydanticParser(City, extra="sometimes")  # type: ignore[arg-type]


def test_parsers_satisfy_protocols() -> None:
    parsers: list[Any] = [
        TextParser(),
        JsonParser(),
        PydanticParser(City),
        ListParser(),
        ChoiceParser(["a", "b"]),
        BoolParser(),
        NumberParser(),
        DateParser(),
        RegexParser(r"(?P<a>x)"),
        XmlTagParser("a"),
    ]
    for parser in parsers:
        assert isinstance(parser, StreamingParser)
        assert isinstance(parser.instructions(), str)
        assert repr(parser)
    assert isinstance(PydanticParser(City), NativeOutputParser)
    assert not isinstance(JsonParser(), NativeOutputParser)


# -- previews and streaming ---------------------------------------------------------------------
def test_parse_partial_never_presents_an_unfinished_number() -> None:
    doc = '{"a": -12.5e3, "b": [1, 22, 333], "c": true}'
    parser = JsonParser()
    for end in range(len(doc) + 1):
        preview = parser.parse_partial(doc[:end])
        if preview is None:
            continue
        if "a" in preview:
            assert preview["a"] == -12500.0, doc[:end]
        for n in preview.get("b", []):
            assert n in (1, 22, 333), doc[:end]
        if "c" in preview:
            assert preview["c"] is True
    assert parser.parse_partial("no json yet") is None


def test_parse_partial_model_has_missing_fields_unset() -> None:
    parser = PydanticParser(Order)
    preview = parser.parse_partial('```json\n{"id": "A1", "items": [{"name": "apple", "qty": 2}, {"name": "pe')
    assert preview is not None
    assert preview.id == "A1"
    assert preview.items == [Item(name="apple", qty=2)]
    assert preview.model_fields_set == {"id", "items"}
    assert preview.note is None
    assert parser.parse_partial("nothing") is None


def test_parse_stream_previews_then_validated_value_last() -> None:
    order = Order(id="A1", items=[Item(name=f"item {i}", qty=i) for i in range(30)], note="x" * 3000)
    reply = "Sure:\n```json\n" + order.model_dump_json(indent=2) + "\n```\nAnything else?"
    chunks = [reply[i : i + 4] for i in range(0, len(reply), 4)]
    values = list(PydanticParser(Order).parse_stream(chunks))
    assert values[-1] == order
    previews = values[:-1]
    assert len(previews) > 10
    item_counts = [len(p.items) for p in previews if "items" in p.model_fields_set]
    assert item_counts == sorted(item_counts)  # items only ever accumulate
    notes = [p.note for p in previews if "note" in p.model_fields_set]
    assert notes
    assert all(order.note.startswith(n or "") for n in notes)  # type: ignore[union-attr]


def test_stream_yields_a_fresh_preview_at_least_every_kb() -> None:
    doc = json.dumps({"rows": [{"id": i, "text": "lorem ipsum " * 3} for i in range(600)]})
    state = JsonParser().stream_state()
    last_preview_at, worst_gap, fed = 0, 0, 0
    for i in range(0, len(doc), 4):
        fed += len(doc[i : i + 4])
        if state.feed(doc[i : i + 4]):
            worst_gap = max(worst_gap, fed - last_preview_at)
            last_preview_at = fed
    assert worst_gap <= 1024 + 4
    assert state.finish() == json.loads(doc)


def test_stream_never_repeats_an_unchanged_preview() -> None:
    class Verdict(BaseModel):
        label: Literal["positive", "negative", "neutral"]
        confidence: float

    reply = '{"label": "neutral", "confidence": 0.64}'
    values = list(PydanticParser(Verdict).parse_stream(reply[i : i + 2] for i in range(0, len(reply), 2)))
    assert values[-1] == Verdict(label="neutral", confidence=0.64)
    assert all(a != b for a, b in itertools.pairwise(values))


def test_stream_previews_are_snapshots() -> None:
    doc = json.dumps({"a": [1, 2, 3, 4, 5, 6, 7, 8], "b": "text"})
    previews = list(JsonParser().parse_stream(doc[i : i + 2] for i in range(0, len(doc), 2)))
    firsts = [json.dumps(p) for p in previews]
    assert firsts == [json.dumps(p) for p in previews]  # nothing changed after being yielded
    assert previews[-1] == json.loads(doc)
    assert any(p != previews[-1] for p in previews[:-1])


def test_stream_skips_prose_brackets_and_restarts() -> None:
    reply = 'Note [see below]: {"a": [1, 2], "b": "x\\"y"}'
    values = list(JsonParser().parse_stream(reply[i : i + 3] for i in range(0, len(reply), 3)))
    assert values[-1] == {"a": [1, 2], "b": 'x"y'}


def test_stream_of_invalid_reply_raises_at_the_end() -> None:
    with pytest.raises(ParseError):
        list(PydanticParser(City).parse_stream(['{"name": ', '"Oslo"}']))


@pytest.mark.anyio
async def test_aparse_stream() -> None:
    async def chunks() -> Any:
        for piece in ('{"name": "Os', 'lo", "popul', 'ation": 5}'):
            yield piece

    values = [v async for v in PydanticParser(City).aparse_stream(chunks())]
    assert values[-1] == City(name="Oslo", population=5)


def test_typeddict_stream_previews() -> None:
    class Movie(TypedDict):
        title: str
        tags: list[str]

    doc = '{"title": "Heat", "tags": ["crime", "drama", "thriller"]}'
    values = list(PydanticParser(Movie).parse_stream(doc[i : i + 3] for i in range(0, len(doc), 3)))
    assert values[-1] == {"title": "Heat", "tags": ["crime", "drama", "thriller"]}


def test_list_parser_stream_previews_complete_lines() -> None:
    reply = "Here:\n- apples\n- pears\n- plums\n"
    values = list(ListParser().parse_stream(reply[i : i + 3] for i in range(0, len(reply), 3)))
    assert values[-1] == ["apples", "pears", "plums"]
    assert all(v == ["apples", "pears", "plums"][: len(v)] for v in values)
    assert ListParser().parse_partial("- a\n- b") == ["a"]


def test_text_parser_stream_and_stop_markers() -> None:
    parser = TextParser(stop="\nUser:")
    values = list(parser.parse_stream(["Hel", "lo\nUs", "er: more"]))
    assert values[-1] == "Hello"
    assert TextParser(stop=["END"]).parse("a END b") == "a"
    with pytest.raises(ConfigurationError):
        TextParser(stop=[""])


def test_final_only_parsers_stream_their_value() -> None:
    assert list(BoolParser().parse_stream(["Ye", "s."])) == [True]
    assert NumberParser().parse_partial("abc") is None


# -- strict JSON schema ---------------------------------------------------------------------------
class Address(BaseModel):
    street: str
    city: str | None = None


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"
    good: bool = True


class Colour(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Person(BaseModel):
    """A person."""

    name: str = Field(description="full name")
    age: int | None = None
    home: Address
    work: Address | None = Field(default=None, description="where they work")
    office: Address = Field(description="main office")
    past: list[Address] = []
    pet: Cat | Dog | None = None
    colour: Colour = Colour.RED
    tags: tuple[str, ...] = ()


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    schema = strict_json_schema(Person)
    for node in _walk(schema):
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
        assert "oneOf" not in node
        assert node.get("default", 0) is not None
        if "$ref" in node:
            assert len(node) == 1
    age = schema["properties"]["age"]
    assert {"type": "null"} in age["anyOf"]


def test_strict_schema_matches_the_openai_sdk_helper() -> None:
    openai_pydantic = pytest.importorskip("openai.lib._pydantic")
    for model in (City, Order, Address, Person):
        assert strict_json_schema(model) == openai_pydantic.to_strict_json_schema(model), model


def test_strict_schema_discriminated_union_becomes_any_of() -> None:
    from typing import Annotated, Union

    class Owner(BaseModel):
        pet: Annotated[Union[Cat, Dog], Field(discriminator="kind")]  # noqa: UP007

    schema = strict_json_schema(Owner)
    pet = schema["properties"]["pet"]
    assert "anyOf" in pet
    assert "discriminator" not in pet


def test_strict_schema_is_accepted_by_anthropic_transform() -> None:
    transform = pytest.importorskip("anthropic.lib._parse._transform")
    out = transform.transform_schema(strict_json_schema(Person))
    assert out["additionalProperties"] is False
    assert set(out["required"]) == set(Person.model_fields)


def test_output_schema_for_native_mode() -> None:
    parser = PydanticParser(Order, mode="native")
    spec = parser.output_schema()
    assert spec["name"] == "Order"
    assert spec["strict"] is True
    assert spec["schema"]["additionalProperties"] is False
    assert parser.uses_native(frozenset())
    assert not PydanticParser(Order).uses_native(frozenset({"output_schema"}))
    auto = PydanticParser(Order, mode="auto")
    assert auto.uses_native(frozenset({"output_schema"}))
    assert not auto.uses_native(frozenset({"temperature"}))
    assert "Order" in parser.native_instructions()


def test_strict_schema_rejects_unschematic_types() -> None:
    class Opaque:
        pass

    with pytest.raises(ConfigurationError):
        strict_json_schema(Opaque)


# -- small answers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "items"),
    [
        ("apples\npears\nplums", ["apples", "pears", "plums"]),
        ("Here they are:\n1. apples\n2) pears\n3. plums\nEnjoy!", ["apples", "pears", "plums"]),
        ("* **apples**\n* pears", ["apples", "pears"]),
        ("\u2022 apples\n\u2022 pears", ["apples", "pears"]),
        ("apples, pears, and plums", ["apples", "pears", "plums"]),
        ("apples; pears", ["apples", "pears"]),
        ('["apples", "pears, ripe"]', ["apples", "pears, ripe"]),
        ("salt and pepper", ["salt and pepper"]),
    ],
)
def test_list_parser(reply: str, items: list[str]) -> None:
    assert ListParser().parse(reply) == items


def test_list_parser_options() -> None:
    assert ListParser(separator="comma").parse("a, b\nc") == ["a", "b\nc"]
    assert ListParser(separator="lines").parse("a, b") == ["a, b"]
    assert ListParser(item_parser=NumberParser(int)).parse("- 1\n- 2") == [1, 2]
    with pytest.raises(ParseError, match="list item 2"):
        ListParser(item_parser=NumberParser(int)).parse("- 1\n- two")
    with pytest.raises(ParseError, match="at least 1"):
        ListParser().parse("   ")
    with pytest.raises(ParseError, match="at most 2"):
        ListParser(max_items=2).parse("a\nb\nc")
    assert "comma" in ListParser(separator="comma").instructions()
    with pytest.raises(ConfigurationError):
        ListParser(separator="tabs")  # type: ignore[arg-type]


def test_choice_parser_is_tolerant_and_strict_about_ambiguity() -> None:
    parser = ChoiceParser(["positive", "negative", "very positive"], synonyms={"positive": ["good", "pos"]})
    assert parser.parse("Positive") == "positive"
    assert parser.parse("  **NEGATIVE**.\n") == "negative"
    assert parser.parse("good!") == "positive"
    assert parser.parse("Very positive") == "very positive"
    assert parser.parse("negative\nBecause the text says it is awful.") == "negative"
    assert parser.parse("The sentiment here is negative overall.") == "negative"
    with pytest.raises(ParseError, match="several choices"):
        parser.parse("It is positive and negative.")
    with pytest.raises(ParseError, match="none of the choices") as info:
        parser.parse("neutral")
    assert "'positive'" in str(info.value)
    assert "positive, negative" in parser.instructions()


def test_choice_parser_with_enum() -> None:
    assert ChoiceParser(Colour).parse("Blue.") is Colour.BLUE
    assert ChoiceParser(Colour, synonyms={"red": "crimson"}).parse("crimson") is Colour.RED
    with pytest.raises(ConfigurationError):
        ChoiceParser(["only"])
    with pytest.raises(ConfigurationError):
        ChoiceParser(["a", "b"], synonyms={"c": "d"})
    with pytest.raises(ConfigurationError):
        ChoiceParser("ab")  # type: ignore[call-overload]


def test_bool_parser() -> None:
    parser = BoolParser()
    assert parser.parse("Yes") is True
    assert parser.parse("no, it is not") is False
    assert parser.parse("**TRUE**") is True
    assert parser.parse("The statement is incorrect.") is False
    with pytest.raises(ParseError, match="yes or no"):
        parser.parse("maybe")
    with pytest.raises(ParseError):
        parser.parse("It could be true or false.")
    assert BoolParser(true=["si"], false=["nein"]).parse("Nein!") is False


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("Yes.", True),
        ("**Yes**", True),
        ("No, because the claim that it is true was refuted.", False),
        ("No - it is correct only in part.", False),
        ('  "No"  ', False),
        ("I would say yes", True),
        ("The answer is: no.", False),
        ("Incorrect, the correct date is 1990.", False),
        ("no, no, no", False),
        ("Yes, true.", True),
        ("Of  course!", True),
    ],
)
def test_bool_parser_reads_an_opening_answer_and_its_explanation(reply: str, value: bool) -> None:
    assert BoolParser(true=["yes", "true", "y", "correct", "of course"]).parse(reply) is value


@pytest.mark.parametrize("reply", ["YES NO", "NO YES", "yes and no", "No, yes.", "No. Yes.", "Yes but no"])
def test_bool_parser_raises_when_a_reply_says_both(reply: str) -> None:
    with pytest.raises(ParseError, match="both a yes and a no") as info:
        BoolParser().parse(reply)
    assert info.value.text == reply


def test_bool_parser_words_are_whole_words_and_distinct() -> None:
    for reply in ("yes-man", "nobody knows", "the yes-men won"):
        with pytest.raises(ParseError, match="no clear yes or no"):
            BoolParser().parse(reply)
    with pytest.raises(ConfigurationError, match="distinct"):
        BoolParser(true=["yes", "ok"], false=["no", "OK"])


@pytest.mark.parametrize(
    ("reply", "items"),
    [
        ('"foo, foo2",bar,baz', ["foo, foo2", "bar", "baz"]),
        ('"a ""quoted"" b", c', ['a "quoted" b', "c"]),
        ('a, "b and c"', ["a", "b and c"]),
        ('"x" y, z', ['"x" y', "z"]),  # a quote mid-field is plain text, as in csv
        ('"a, b', ['"a', "b"]),  # an unclosed quote too
        ("a; b; c", ["a", "b", "c"]),
        ("red, green and blue", ["red", "green", "blue"]),
        ("salt and pepper", ["salt and pepper"]),
    ],
)
def test_list_parser_comma_mode_keeps_quoted_items_whole(reply: str, items: list[str]) -> None:
    assert ListParser(separator="comma").parse(reply) == items
    assert ListParser().parse(reply) == items


def _every_parser() -> list[Any]:
    return [
        TextParser(),
        JsonParser(),
        PydanticParser(City),
        ListParser(),
        ChoiceParser(["a", "b"]),
        BoolParser(),
        NumberParser(),
        DateParser(),
        RegexParser(r"(?P<x>\d)"),
        XmlTagParser("answer"),
    ]


@pytest.mark.parametrize("bad", [None, b'{"a": 1}', 42, {"a": 1}])
def test_a_reply_that_is_not_a_str_is_a_type_error_naming_the_type(bad: Any) -> None:
    for parser in _every_parser():
        name = type(parser).__name__
        message = f"{name} needs the reply as a str, not {type(bad).__name__}"
        with pytest.raises(TypeError, match=re.escape(message)):
            parser.parse(bad)
        with pytest.raises(TypeError, match=re.escape(message)):
            parser.parse_partial(bad)
        with pytest.raises(TypeError, match=re.escape(message)):
            list(parser.parse_stream(["ok", bad]))


def test_number_parser() -> None:
    assert NumberParser().parse("3.5") == 3.5
    assert NumberParser(int).parse("About 1,234 people.") == 1234
    assert NumberParser(Decimal).parse("0.1") == Decimal("0.1")
    assert NumberParser().parse("\u22122.5") == -2.5
    assert NumberParser().parse("-1e3") == -1000.0
    with pytest.raises(ParseError, match="several numbers"):
        NumberParser().parse("between 3 and 4")
    assert NumberParser(prefer="last").parse("between 3 and 4") == 4
    assert NumberParser(prefer="first").parse("between 3 and 4") == 3
    with pytest.raises(ParseError, match="whole number"):
        NumberParser(int).parse("2.5")
    with pytest.raises(ParseError, match="no number"):
        NumberParser().parse("NaN")
    with pytest.raises(ConfigurationError):
        NumberParser(complex)  # type: ignore[call-overload]


def test_date_parser() -> None:
    assert DateParser().parse("Signed on 2024-03-05.") == dt.date(2024, 3, 5)
    assert DateParser(dt.datetime).parse("2024-03-05T10:00:00Z") == dt.datetime(2024, 3, 5, 10, tzinfo=dt.timezone.utc)
    assert DateParser(dt.date).parse("2024-03-05 10:00") == dt.date(2024, 3, 5)
    assert DateParser(formats=["%d/%m/%Y"]).parse("05/03/2024") == dt.date(2024, 3, 5)
    with pytest.raises(ParseError, match="several dates"):
        DateParser().parse("2024-01-01 to 2024-02-01")
    with pytest.raises(ParseError, match="not a valid date"):
        DateParser().parse("2024-13-45")
    with pytest.raises(ParseError, match="no date"):
        DateParser().parse("yesterday")
    assert "ISO 8601" in DateParser(dt.datetime).instructions()


def test_regex_parser() -> None:
    parser = RegexParser(r"(?P<score>\d+)/(?P<out_of>\d+)", instructions="Give a score like 7/10.")
    assert parser.parse("I'd say 7/10.") == {"score": "7", "out_of": "10"}
    assert parser.instructions() == "Give a score like 7/10."
    with pytest.raises(ParseError, match="no match"):
        parser.parse("great")
    with pytest.raises(ConfigurationError, match="named groups"):
        RegexParser(r"\d+")
    with pytest.raises(ConfigurationError, match="invalid regular expression"):
        RegexParser(r"(?P<x>")


def test_xml_tag_parser() -> None:
    parser = XmlTagParser("answer")
    assert parser.parse("<answer>1</answer> then <answer> 2 </answer>") == "2"
    assert XmlTagParser("answer", prefer="first").parse("<answer>1</answer><answer>2</answer>") == "1"
    with pytest.raises(ParseError, match="different"):
        XmlTagParser("answer", prefer="unique").parse("<answer>1</answer><answer>2</answer>")
    assert parser.parse("<answer>a <answer>b</answer> c</answer>") == "a <answer>b</answer> c"
    assert parser.parse('<answer id="x">ok</answer>') == "ok"
    with pytest.raises(ParseError, match="no <answer>"):
        parser.parse("<answer>unfinished")
    assert parser.parse_partial("<answer>unfinished") is None
    with pytest.raises(ConfigurationError):
        XmlTagParser("bad tag")
    assert "<answer>" in parser.instructions()


def test_xml_tag_parser_into_a_model() -> None:
    class Verdict(BaseModel):
        score: int
        reason: str

    parser = XmlTagParser("verdict", model=Verdict)
    reply = "Thinking...\n<verdict>\n<score>4</score>\n<reason>clear & short</reason>\n</verdict>"
    assert parser.parse(reply) == Verdict(score=4, reason="clear & short")
    with pytest.raises(ParseError, match="score") as info:
        parser.parse("<verdict><score>high</score><reason>x</reason></verdict>")
    assert info.value.last_value == {"score": "high", "reason": "x"}
    assert "<score>" in parser.instructions()
    with pytest.raises(ConfigurationError):
        XmlTagParser("v", model=dict)  # type: ignore[call-overload]


def test_base_parser_defaults() -> None:
    class Upper(BaseParser[str]):
        def parse(self, text: str) -> str:
            if not text:
                raise ParseError("empty", text=text)
            return text.upper()

    assert Upper().instructions() == ""
    assert Upper().parse_partial("") is None
    assert list(Upper().parse_stream(["a", "b"])) == ["AB"]
    with pytest.raises(NotImplementedError):
        BaseParser[str]().parse("x")


def test_one_pass_policy_keeps_errors_precise() -> None:
    parser = PydanticParser(City, duplicate_keys="last")
    assert parser.parse('{"name": "Oslo", "name": "Bergen", "population": 1}').name == "Bergen"
    with pytest.raises(ParseError, match="line 2, column 15") as info:
        parser.parse('{"name": "Oslo",\n "population" 1}')
    assert info.value.position == 31
    with pytest.raises(ParseError) as info:
        parser.parse('{"name": "Oslo", "population": "many"}')
    assert info.value.last_value == {"name": "Oslo", "population": "many"}
    with pytest.raises(ParseError, match="NaN"):
        PydanticParser(City, duplicate_keys="last").parse('{"name": "x", "population": NaN}')
    lenient = PydanticParser(City, duplicate_keys="last", lenient=True)
    assert lenient.parse("{'name': 'Oslo', 'population': 1,}") == City(name="Oslo", population=1)


def test_many_blocks_are_bounded_and_inline_backticks_are_not_fences() -> None:
    reply = "".join(f'```json\n{{"a": {i}}}\n```\n' for i in range(200))
    assert JsonParser().parse(reply) == {"a": 199}
    assert JsonParser(prefer="first").parse(reply) == {"a": 0}
    assert len(find_candidates(reply)) < 100
    assert JsonParser().parse('Run ```a` `b``` first.\n```json\n{"a": 1}\n```') == {"a": 1}


def test_strict_schema_inlines_refs_with_siblings() -> None:
    schema = strict_json_schema(Person)
    office = schema["properties"]["office"]
    assert office.get("description") == "main office"
    assert "$ref" not in office
    assert office["additionalProperties"] is False


# -- stream previews belong to their stream ---------------------------------------------------
class Inner(BaseModel):
    v: int


class Outer(BaseModel):
    a: Inner
    tags: list[Inner]
    b: str


def test_interleaved_streams_on_one_parser_never_show_each_others_pieces() -> None:
    # Streams start and finish in waves, so containers of finished streams are freed and their
    # ids handed to the next streams' containers: any preview state shared by id would leak.
    parser = PydanticParser(Outer)
    replies = {
        i: json.dumps({"a": {"v": i}, "tags": [{"v": i}, {"v": -i}], "b": f"stream {i} " * 3}) for i in range(240)
    }
    pending = list(replies)
    live: dict[int, tuple[Any, list[str]]] = {}
    previews = 0
    while pending or live:
        while pending and len(live) < 6:
            i = pending.pop()
            text = replies[i]
            live[i] = (parser.stream_state(), [text[k : k + 3] for k in range(0, len(text), 3)])
        for i in list(live):
            state, chunks = live[i]
            if chunks:
                for preview in state.feed(chunks.pop(0)):
                    previews += 1
                    if "a" in preview.model_fields_set and "v" in preview.a.model_fields_set:
                        assert preview.a.v == i
                    if "tags" in preview.model_fields_set:
                        assert all(t.v in (i, -i) for t in preview.tags)
            else:
                assert state.finish() == Outer.model_validate_json(replies[i])
                del live[i]
    assert previews > 240 * 5


def test_parse_partial_calls_share_no_state() -> None:
    parser = PydanticParser(Outer)
    for i in range(200):
        preview = parser.parse_partial(f'{{"a": {{"v": {i}}}, "tags": [{{"v": {i}}}], "b": "x')
        assert preview is not None
        assert preview.a == Inner(v=i)
        assert preview.tags == [Inner(v=i)]


def test_parser_html_shows_its_kind_and_instructions_escaped() -> None:
    from promptkit import ChoiceParser

    shown = ChoiceParser(["<yes>", "no"])._repr_html_()
    assert "<b>ChoiceParser</b>" in shown
    assert "format instructions" in shown
    assert "<yes>" not in shown
    assert "&lt;yes&gt;" in shown
    assert "no format instructions" in TextParser()._repr_html_()


def test_parser_html_cuts_long_instructions() -> None:
    class Long(BaseParser[str]):
        def instructions(self) -> str:
            return "word " * 1000

    shown = Long()._repr_html_()
    assert "<b>Long</b>" in shown
    assert "(5,000 characters)" in shown
    assert shown.count("word") < 200
