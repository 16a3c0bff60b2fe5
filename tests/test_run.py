"""The drivers behind every Prompt call: attempts, timing, and the stream objects."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel

import promptkit
from promptkit import ConfigurationError, ParseError, Prompt, PydanticParser, Usage
from promptkit.testing import MockBackend, MockReply

GOOD = '{"label": "positive", "score": 0.9}'


class Sentiment(BaseModel):
    label: str
    score: float


def _prompt(mock: MockBackend, **options: object) -> Prompt[Sentiment]:
    return Prompt("Classify: {{ text }}", mock, parser=PydanticParser(Sentiment), **options)  # type: ignore[arg-type]


def _replies() -> list[MockReply]:
    return [
        MockReply(text='{"label": "positive"}', usage=Usage(input_tokens=10, output_tokens=4)),
        MockReply(text=GOOD, usage=Usage(input_tokens=30, output_tokens=6)),
    ]


def test_every_attempt_is_on_the_result_with_its_verdict_and_time() -> None:
    result = _prompt(MockBackend(_replies())).run(text="x")
    first, second = result.attempts
    assert (first.purpose, second.purpose) == ("answer", "repair")
    assert isinstance(first.error, ParseError)
    assert not first.ok
    assert second.ok
    assert second.completion is result.completion
    assert len(second.messages) == 3  # the original, the bad reply, the note
    assert first.seconds >= 0
    assert result.elapsed >= first.seconds + second.seconds
    assert result.usage == Usage(input_tokens=40, output_tokens=10)
    assert [c.text for c in result.completions] == ['{"label": "positive"}', GOOD]
    assert result.strategy == "direct"
    assert result.samples == ()


def test_a_stream_gives_the_whole_result_with_usage_once_finished() -> None:
    mock = MockBackend([MockReply(text=GOOD, usage=Usage(input_tokens=7, output_tokens=5))], chunk_size=4)
    stream = _prompt(mock).stream(text="x")
    assert not stream.done
    with pytest.raises(ConfigurationError, match="not finished"):
        _ = stream.result
    values = list(stream)
    assert values[-1] == Sentiment(label="positive", score=0.9)
    assert stream.done
    assert stream.value == values[-1]
    assert stream.result.usage == Usage(input_tokens=7, output_tokens=5)
    assert stream.result.attempts[0].purpose == "answer"
    assert list(stream) == []  # a finished stream yields nothing more
    assert "done" in repr(stream)


def test_a_repaired_stream_counts_both_calls() -> None:
    stream = _prompt(MockBackend(_replies(), chunk_size=5)).stream(text="x")
    assert list(stream)[-1].score == 0.9
    assert stream.result.usage == Usage(input_tokens=40, output_tokens=10)
    assert [a.purpose for a in stream.result.attempts] == ["answer", "repair"]


def test_a_stream_renders_at_the_call_so_input_errors_surface_there() -> None:
    from promptkit import UndefinedVariableError

    with pytest.raises(UndefinedVariableError):
        _prompt(MockBackend([GOOD])).stream()


def test_closing_a_stream_early_releases_it() -> None:
    mock = MockBackend(["one two three four"], chunk_size=2)
    with Prompt("{{ q }}", mock).stream(q="x") as stream:
        for _ in stream:
            break
    assert not stream.done
    assert "open" in repr(stream)


@pytest.mark.anyio
async def test_an_async_stream_gives_the_result_too() -> None:
    mock = MockBackend([MockReply(text=GOOD, usage=Usage(input_tokens=7, output_tokens=5))], chunk_size=4)
    stream = _prompt(mock).astream(text="x")
    assert not stream.done
    with pytest.raises(ConfigurationError, match="not finished"):
        _ = stream.value
    values = [v async for v in stream]
    assert values[-1].label == "positive"
    assert stream.done
    assert stream.value == values[-1]
    assert stream.result.usage.output_tokens == 5
    assert "done" in repr(stream)


@pytest.mark.anyio
async def test_an_async_stream_closes_early() -> None:
    async with Prompt("{{ q }}", MockBackend(["one two three"], chunk_size=2)).astream(q="x") as stream:
        async for _ in stream:
            break
    assert not stream.done


@pytest.mark.anyio
async def test_async_attempts_match_sync_ones() -> None:
    result = await _prompt(MockBackend(_replies())).arun(text="x")
    assert [a.purpose for a in result.attempts] == ["answer", "repair"]
    assert result.usage == Usage(input_tokens=40, output_tokens=10)


def test_result_notebook_view_shows_calls_and_time() -> None:
    view = _prompt(MockBackend(_replies())).run(text="x")._repr_html_()
    assert "direct: 2 call(s)" in view


class _Counting:
    """Counts calls per request-level method; written against public names only."""

    @staticmethod
    def build() -> tuple[object, dict[str, int]]:
        from promptkit.backends import AsyncStream, Request, Stream, WrapperBackend

        counts = {"complete": 0, "acomplete": 0, "stream": 0, "astream": 0}

        class Counting(WrapperBackend):
            def complete_request(self, request: Request) -> promptkit.Completion:
                counts["complete"] += 1
                return super().complete_request(request)

            async def acomplete_request(self, request: Request) -> promptkit.Completion:
                counts["acomplete"] += 1
                return await super().acomplete_request(request)

            def stream_request(self, request: Request) -> Stream:
                counts["stream"] += 1
                return super().stream_request(request)

            def astream_request(self, request: Request) -> AsyncStream:
                counts["astream"] += 1
                return super().astream_request(request)

        return Counting(MockBackend([GOOD] * 4, chunk_size=3)), counts


@pytest.mark.anyio
async def test_a_wrapper_over_the_request_level_api_sees_every_prompt_call() -> None:
    backend, counts = _Counting.build()
    prompt = Prompt("{{ q }}", backend, parser=PydanticParser(Sentiment))  # type: ignore[arg-type]
    assert prompt.complete(q="x").score == 0.9
    assert (await prompt.acomplete(q="x")).score == 0.9
    assert list(prompt.stream(q="x"))[-1].score == 0.9
    assert [v async for v in prompt.astream(q="x")][-1].score == 0.9
    assert counts == {"complete": 1, "acomplete": 1, "stream": 1, "astream": 1}


def test_samples_reach_the_request_and_its_digest() -> None:
    from promptkit.backends import Request

    base = Request(messages=(promptkit.Message("user", "hi"),))
    first, second = (dataclasses.replace(base, sample=i) for i in (0, 1))
    assert len({base.digest, first.digest, second.digest}) == 3
