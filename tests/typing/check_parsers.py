"""Type-checked with ``mypy --strict``: pins the value types of the parsers and of Prompt.stream."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from decimal import Decimal

from pydantic import BaseModel
from typing_extensions import TypedDict, assert_type

from promptkit import AsyncPromptStream, Prompt, PromptStream
from promptkit._parsers import (
    BoolParser,
    ChoiceParser,
    DateParser,
    ListParser,
    NumberParser,
    PydanticParser,
    XmlTagParser,
)
from promptkit.testing import MockBackend


class Answer(BaseModel):
    text: str


class Movie(TypedDict):
    title: str


@dataclasses.dataclass
class Point:
    x: int


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def check() -> None:
    assert_type(PydanticParser(Answer).parse("{}"), Answer)
    assert_type(PydanticParser(Point).parse("{}"), Point)
    assert_type(PydanticParser(Movie, mode="native").parse("{}"), Movie)
    assert_type(PydanticParser(Answer).parse_partial("{"), Answer | None)
    assert_type(ListParser().parse(""), list[str])
    assert_type(ListParser(item_parser=NumberParser(int)).parse(""), list[int])
    assert_type(ChoiceParser(["a", "b"]).parse(""), str)
    assert_type(ChoiceParser(Colour).parse(""), Colour)
    assert_type(BoolParser().parse(""), bool)
    assert_type(NumberParser().parse(""), float)
    assert_type(NumberParser(Decimal).parse(""), Decimal)
    assert_type(DateParser().parse(""), dt.date)
    assert_type(DateParser(dt.datetime).parse(""), dt.datetime)
    assert_type(XmlTagParser("a").parse(""), str)
    assert_type(XmlTagParser("a", model=Answer).parse(""), Answer)
    prompt = Prompt("{{ q }}", MockBackend(), parser=PydanticParser(Answer), repair=2)
    assert_type(prompt.stream(q="x"), PromptStream[Answer])
    assert_type(prompt.astream(q="x"), AsyncPromptStream[Answer])
    assert_type(Prompt("{{ q }}", MockBackend(), parser=BoolParser()), Prompt[bool])
