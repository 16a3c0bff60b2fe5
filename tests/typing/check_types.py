"""Type-checked with ``mypy --strict`` in CI: pins the public types users rely on."""

from __future__ import annotations

from pydantic import BaseModel
from typing_extensions import assert_type

from promptkit import Completion, Prompt, PydanticParser, Result, Stream
from promptkit.testing import MockBackend


class Answer(BaseModel):
    text: str


def check() -> None:
    backend = MockBackend(['{"text": "hi"}', "plain"])
    typed = Prompt("{{ q }}", backend, parser=PydanticParser(Answer))
    assert_type(typed, Prompt[Answer])
    assert_type(typed.complete(q="x"), Answer)
    assert_type(typed.run(q="x"), Result[Answer])
    plain = Prompt("{{ q }}", backend)
    assert_type(plain, Prompt[str])
    assert_type(plain.complete(q="x"), str)
    assert_type(backend.complete("hi"), Completion)
    assert_type(backend.stream("hi"), Stream)
    assert_type(plain.with_parser(PydanticParser(Answer)), Prompt[Answer])
