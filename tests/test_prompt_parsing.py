"""Prompt with parsers: repair by re-asking, streaming typed previews, native structured output."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from promptkit import (
    ParseError,
    Prompt,
    PydanticParser,
    RateLimitError,
    UnsupportedCapabilityError,
    Usage,
)
from promptkit._parsers import JsonParser, ListParser
from promptkit.testing import MockBackend, MockReply
from promptkit.testing._mock import rate_limit_error

GOOD = '{"label": "positive", "score": 0.9}'


class Sentiment(BaseModel):
    label: str
    score: float


def _prompt(mock: MockBackend, **options: Any) -> Prompt[Sentiment]:
    return Prompt("Classify: {{ text }}\n{{ format_instructions }}", mock, parser=PydanticParser(Sentiment), **options)


# -- repair -----------------------------------------------------------------------------------
def test_repair_reasks_with_the_bad_reply_and_the_error() -> None:
    mock = MockBackend(
        [
            MockReply(text='{"label": "positive"}', usage=Usage(input_tokens=10, output_tokens=4)),
            MockReply(text=GOOD, usage=Usage(input_tokens=30, output_tokens=6)),
        ]
    )
    result = _prompt(mock).run(text="great")
    assert result.value == Sentiment(label="positive", score=0.9)
    assert [c.text for c in result.completions] == ['{"label": "positive"}', GOOD]
    assert result.usage == Usage(input_tokens=40, output_tokens=10)  # the cost of repair is visible
    assert result.completion.text == GOOD
    assert len(result.messages) == 1  # the original request
    first, second = mock.calls
    assert second.messages[: len(first.messages)] == first.messages
    assistant, note = second.messages[-2:]
    assert assistant.role == "assistant"
    assert assistant.text == '{"label": "positive"}'
    assert note.role == "user"
    assert "score" in note.text
    assert "Field required" in note.text


def test_repair_budget_exhausted_raises_with_every_reply() -> None:
    replies = ["nope", '{"label": 1}', '{"label": "x", "score": "high"}']
    mock = MockBackend(replies)
    with pytest.raises(ParseError, match="no valid reply after 3 attempts") as info:
        _prompt(mock, repair=2).complete(text="x")
    err = info.value
    assert err.attempts == replies
    assert err.text == replies[-1]
    assert err.last_value == {"label": "x", "score": "high"}
    assert isinstance(err.__cause__, ParseError)
    assert len(mock.calls) == 3
    # The cost of the failed repair stays visible: every attempt's completion with its usage.
    assert [c.text for c in err.completions] == replies
    assert all(c.usage.output_tokens > 0 for c in err.completions)


def test_repair_zero_calls_once() -> None:
    mock = MockBackend(["nope", GOOD])
    with pytest.raises(ParseError) as info:
        _prompt(mock, repair=0).complete(text="x")
    assert info.value.attempts == ["nope"]
    assert mock.remaining == 1


def test_transport_errors_are_never_fed_back_to_the_model() -> None:
    mock = MockBackend([rate_limit_error(retry_after=1)])
    with pytest.raises(RateLimitError):
        _prompt(mock).complete(text="x")
    assert len(mock.calls) == 1
    mock = MockBackend(["nope", rate_limit_error()])
    with pytest.raises(RateLimitError):
        _prompt(mock).complete(text="x")
    assert all("could not be used" not in m.text for call in mock.calls[:1] for m in call.messages)


def test_repair_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="repair"):
        Prompt("{{ q }}", repair=-1)
    with pytest.raises(ValueError, match="repair"):
        Prompt("{{ q }}", repair=True)


@pytest.mark.anyio
async def test_async_repair() -> None:
    mock = MockBackend(["nope", GOOD])
    result = await _prompt(mock).arun(text="x")
    assert result.value.label == "positive"
    assert len(result.completions) == 2
    with pytest.raises(ParseError):
        await _prompt(MockBackend(["a", "b"])).acomplete(text="x")


# -- streaming --------------------------------------------------------------------------------
def test_stream_yields_partial_models_then_the_value() -> None:
    reply = '```json\n{"label": "positive", "score": 0.875}\n```'
    mock = MockBackend([reply], chunk_size=3)
    values = list(_prompt(mock).stream(text="x"))
    assert values[-1] == Sentiment(label="positive", score=0.875)
    previews = values[:-1]
    assert previews
    assert all(isinstance(v, Sentiment) for v in previews)
    labels = [v.label for v in previews if "label" in v.model_fields_set]
    assert all("positive".startswith(label) for label in labels)
    assert all(v.score in (None, 0.875) for v in previews)  # an unfinished number is never shown


def test_stream_text_and_lists() -> None:
    assert list(Prompt("{{ q }}", MockBackend(["Hello there"], chunk_size=2)).stream(q="x"))[-1] == "Hello there"
    prompt = Prompt("{{ q }}", MockBackend(["- a\n- b\n- c"], chunk_size=2), parser=ListParser())
    values = list(prompt.stream(q="x"))
    assert values[-1] == ["a", "b", "c"]


def test_stream_repairs_without_streaming() -> None:
    mock = MockBackend(['{"label": "positive"}', GOOD], chunk_size=5)
    values = list(_prompt(mock).stream(text="x"))
    assert values[-1] == Sentiment(label="positive", score=0.9)
    assert len(mock.calls) == 2


def test_stream_raises_after_budget() -> None:
    with pytest.raises(ParseError):
        list(_prompt(MockBackend(["nope"]), repair=0).stream(text="x"))


def test_stream_with_a_plain_parser() -> None:
    class Shout:
        def parse(self, text: str) -> str:
            return text.upper()

        def instructions(self) -> str:
            return ""

    prompt = Prompt("{{ q }}", MockBackend(["hey you"]), parser=Shout())
    assert list(prompt.stream(q="x")) == ["HEY YOU"]


@pytest.mark.anyio
async def test_astream() -> None:
    mock = MockBackend(['{"a": [1, 2, 3]}', '{"label": "x"}', GOOD], chunk_size=2)
    prompt = Prompt("{{ q }}", mock, parser=JsonParser())
    values = [v async for v in prompt.astream(q="x")]
    assert values[-1] == {"a": [1, 2, 3]}
    values = [v async for v in _prompt(mock).astream(text="x")]
    assert values[-1].score == 0.9
    with pytest.raises(ParseError):
        _ = [v async for v in _prompt(MockBackend(["no"]), repair=0).astream(text="x")]


# -- native structured output -----------------------------------------------------------------
def test_native_mode_sends_the_strict_schema() -> None:
    mock = MockBackend([GOOD], native_output=True)
    prompt = Prompt(
        "Classify: {{ text }}\n{{ format_instructions }}", mock, parser=PydanticParser(Sentiment, mode="native")
    )
    assert prompt.complete(text="x") == Sentiment(label="positive", score=0.9)
    params = mock.last_request.params
    schema = params["output_schema"]
    assert schema["name"] == "Sentiment"
    assert schema["strict"] is True
    assert schema["schema"]["required"] == ["label", "score"]
    assert schema["schema"]["additionalProperties"] is False
    text = mock.last_request.messages[0].text
    assert '"properties"' not in text  # the schema travels natively, not in the prompt
    assert "JSON" in text


def test_auto_mode_falls_back_to_instructions() -> None:
    mock = MockBackend([GOOD])
    prompt = Prompt("{{ format_instructions }}", mock, parser=PydanticParser(Sentiment, mode="auto"))
    assert prompt.complete().score == 0.9
    assert "output_schema" not in mock.last_request.params
    assert '"properties"' in mock.last_request.messages[0].text
    native = MockBackend([GOOD], native_output=True)
    prompt.with_backend(native).complete()
    assert "output_schema" in native.last_request.params
    assert '"properties"' not in prompt.with_backend(native).render()[0].text


def test_native_mode_on_a_backend_without_it_is_an_error() -> None:
    prompt = Prompt("{{ q }}", MockBackend([GOOD]), parser=PydanticParser(Sentiment, mode="native"))
    with pytest.raises(UnsupportedCapabilityError, match="MockBackend"):
        prompt.complete(q="x")


def test_explicit_output_schema_param_wins() -> None:
    mock = MockBackend([GOOD], native_output=True)
    mine = {"name": "mine", "schema": {"type": "object"}, "strict": False}
    prompt = Prompt("{{ q }}", mock, parser=PydanticParser(Sentiment, mode="native"), params={"output_schema": mine})
    prompt.complete(q="x")
    assert mock.last_request.params["output_schema"]["name"] == "mine"


def test_native_mode_repair_keeps_the_schema() -> None:
    mock = MockBackend(['{"label": "x"}', GOOD], native_output=True)
    prompt = Prompt("{{ q }}", mock, parser=PydanticParser(Sentiment, mode="native"))
    assert prompt.complete(q="x").score == 0.9
    assert all("output_schema" in call.params for call in mock.calls)
