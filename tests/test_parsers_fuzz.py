"""Robustness: any text in, a value or a ParseError out; no RecursionError, no crash, no hang.

Hypothesis feeds random text and random JSON; a hand-written corpus covers what models really
send (prose around JSON, several fences, truncation, unicode, BOM, NaN, deep nesting, 10 MB).
Example counts are kept small so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from promptkit import ParseError
from promptkit._parsers import (
    BoolParser,
    ChoiceParser,
    DateParser,
    JsonParser,
    ListParser,
    NumberParser,
    PydanticParser,
    RegexParser,
    TextParser,
    XmlTagParser,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Row(BaseModel):
    id: int
    name: str
    tags: list[str] = []


class Table(BaseModel):
    rows: list[Row]
    title: str | None = None


PARSERS: list[Any] = [
    TextParser(stop="END"),
    JsonParser(),
    JsonParser(lenient=True),
    JsonParser(prefer="unique"),
    PydanticParser(Table),
    PydanticParser(Table, lenient=True, extra="ignore"),
    ListParser(),
    ListParser(item_parser=NumberParser(int)),
    ChoiceParser(["yes", "no", "maybe not"]),
    BoolParser(),
    NumberParser(),
    DateParser(),
    RegexParser(r"score: (?P<score>\d+)"),
    XmlTagParser("answer"),
    XmlTagParser("answer", model=Row),
]


def _chunks(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


def _exercise(parser: Any, text: str, chunk: int = 7) -> None:
    """Every entry point of ``parser`` on ``text``: a value, ``None`` or a ParseError, nothing else."""
    try:
        parser.parse(text)
    except ParseError as err:
        error: ParseError | None = err
    else:
        error = None
    assert error is None or error.text == text
    parser.parse_partial(text)
    parser.parse_partial(text[: len(text) // 2])
    try:
        for _ in parser.parse_stream(_chunks(text, chunk)):
            pass
    except ParseError:
        pass


# -- hypothesis -------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
containers = st.one_of(
    st.lists(json_values, min_size=1, max_size=5), st.dictionaries(st.text(max_size=8), json_values, max_size=5)
)
noise = st.text(alphabet=st.characters(blacklist_characters="{}[]`~\"'"), max_size=40)


@FAST
@given(text=st.text(max_size=300), chunk=st.integers(min_value=1, max_value=9))
def test_random_text_only_ever_raises_parse_error(text: str, chunk: int) -> None:
    for parser in PARSERS:
        _exercise(parser, text, chunk)


@FAST
@given(
    text=st.lists(
        st.sampled_from(
            ['{"', '"}', "[", "]", "{", "}", ",", ":", '"', "\\", "```json\n", "\n```", "1", "-", "e", "tru"]
        ),
        max_size=60,
    ).map("".join),
    chunk=st.integers(min_value=1, max_value=5),
)
def test_json_shaped_garbage_only_ever_raises_parse_error(text: str, chunk: int) -> None:
    for parser in PARSERS[1:6]:
        _exercise(parser, text, chunk)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@FAST
@given(value=containers, before=noise, after=noise, indent=st.sampled_from([None, 2]))
def test_json_is_found_wherever_it_sits(value: Any, before: str, after: str, indent: int | None) -> None:
    doc = json.dumps(value, indent=indent, ensure_ascii=False)
    for reply in (doc, f"{before}\n```json\n{doc}\n```\n{after}", f"{before} {doc} {after}".strip()):
        assert _same(JsonParser().parse(reply), value), reply


@FAST
@given(value=containers, chunk=st.integers(min_value=1, max_value=12))
def test_stream_final_value_matches_parse_for_any_chunking(value: Any, chunk: int) -> None:
    doc = "Here you go:\n```json\n" + json.dumps(value) + "\n```"
    values = list(JsonParser().parse_stream(_chunks(doc, chunk)))
    assert _same(values[-1], value)
    for preview in values[:-1]:
        assert isinstance(preview, type(value))


@FAST
@given(value=containers)
def test_partial_prefixes_never_raise(value: Any) -> None:
    doc = json.dumps(value)
    parser = JsonParser()
    for end in range(0, len(doc) + 1, max(1, len(doc) // 15)):
        parser.parse_partial(doc[:end])


# -- a corpus of real-looking replies ------------------------------------------------------------
GOOD_TABLE = '{"rows": [{"id": 1, "name": "Ann", "tags": ["a"]}, {"id": 2, "name": "Bo"}], "title": "T"}'
CORPUS = [
    f"Sure! Here is the table you asked for:\n\n```json\n{GOOD_TABLE}\n```\n\nLet me know if you need more.",
    f"```\n{GOOD_TABLE}\n```",
    f'Here is an example:\n```json\n{{"rows": []}}\n```\nAnd the answer:\n```json\n{GOOD_TABLE}\n```',
    "```json\n" + GOOD_TABLE[:50],  # truncated mid-stream
    GOOD_TABLE[:-1],
    "\ufeff" + GOOD_TABLE,
    '{"rows": [{"id": 1, "name": "Zo\u00eb \U0001f600 \u4e2d\u6587", "tags": []}]}',
    '{"rows": [{"id": NaN, "name": "x"}]}',
    '{"rows": [{"id": Infinity, "name": "x"}]}',
    '{"rows": [], "rows": []}',
    "{'rows': [{'id': 1, 'name': 'single quotes',}],}",
    '{"rows": [/* comment */ {"id": 1, "name": "c"}]} // trailing',
    "I'm sorry, I can't help with that.",
    "",
    "```json\n```",
    "```" + " " * 5000 + "\n",
    "<answer>yes</answer> <answer><id>1</id><name>x</name></answer>",
    "<answer " * 2000,
    "- 1\n- 2\n- three\n",
    "score: 99999999999999999999999",
    "2024-02-30 or 2024-13-01",
    "\x00\x01\x02 control \u2028 separators \ud7ff",
    '"' * 1000,
    "\\" * 1001,
    "[" * 3000 + '"',
    "x and " * 20_000,  # a lookahead per "and" would make comma splitting quadratic
    'x {\\" ' * 20_000,  # unterminated strings in many spans on one line
    "1" * 50_000 + "x",
    "`" * 30_000 + "\n" + "~" * 30_000,
]


@pytest.mark.parametrize("reply", CORPUS, ids=range(len(CORPUS)))
def test_corpus(reply: str) -> None:
    for parser in PARSERS:
        _exercise(parser, reply, chunk=11)


def test_corpus_expectations() -> None:
    table = PydanticParser(Table)
    assert len(table.parse(CORPUS[0]).rows) == 2
    assert table.parse(CORPUS[2]).title == "T"  # the last valid block wins
    assert table.parse(CORPUS[5]).title == "T"  # a byte-order mark is ignored
    for bad in (CORPUS[3], CORPUS[4], CORPUS[7], CORPUS[9], CORPUS[10]):
        with pytest.raises(ParseError):
            table.parse(bad)
    assert PydanticParser(Table, lenient=True).parse(CORPUS[10]).rows[0].name == "single quotes"
    assert PydanticParser(Table, lenient=True).parse(CORPUS[11]).rows[0].id == 1


# -- extremes: deep nesting and very long replies -----------------------------------------------
@pytest.mark.parametrize("opener", ["[", '{"a": '])
def test_ten_thousand_deep_nesting_is_a_parse_error(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    for reply in (opener * 10_000, opener * 10_000 + "1" + closer * 10_000, "```json\n" + opener * 10_000):
        for parser in PARSERS[1:6]:
            with pytest.raises(ParseError):
                parser.parse(reply)
            parser.parse_partial(reply)
            with pytest.raises(ParseError):
                list(parser.parse_stream(_chunks(reply, 512)))


def test_ten_megabyte_replies() -> None:
    rows = ",".join(f'{{"id": {i}, "name": "row {i}"}}' for i in range(330_000))
    big_json = '{"rows": [' + rows + "]}"
    assert len(big_json) > 10_000_000
    assert len(JsonParser().parse("```json\n" + big_json + "\n```")["rows"]) == 330_000
    prose = "All good. " * 1_000_000
    fence = "```" + " " * 10_000_000
    for reply in (prose, fence, big_json[:-2]):
        for p in (JsonParser(), JsonParser(lenient=True), PydanticParser(Table)):
            with pytest.raises(ParseError) as info:
                p.parse(reply)
            assert len(str(info.value)) < 2_000  # messages stay short; the text is on the error
            assert info.value.text is reply


def test_one_megabyte_stream() -> None:
    rows = ",".join(f'{{"id": {i}, "name": "row {i}"}}' for i in range(33_000))
    big_json = '```json\n{"rows": [' + rows + "]}\n```"
    values = list(PydanticParser(Table).parse_stream(_chunks(big_json, 4096)))
    assert len(values[-1].rows) == 33_000
    counts = [len(v.rows) for v in values[:-1]]
    assert counts == sorted(counts)
    assert len(counts) > 200
