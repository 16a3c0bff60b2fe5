from __future__ import annotations

import time

import pytest
from pydantic import BaseModel

from promptkit import ConfigurationError, ParseError, PydanticParser, TextParser
from promptkit._parsers import extract_json_candidates


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


def test_fence_scanner_is_linear_on_adversarial_input() -> None:
    # A fence followed by many spaces makes a backtracking regex take seconds.
    reply = "```" + " " * 200_000 + "\n" + "x" * 10
    start = time.perf_counter()
    with pytest.raises(ParseError):
        PydanticParser(City).parse(reply)
    assert time.perf_counter() - start < 2.0
