"""AnthropicBackend over the real ``anthropic`` SDK against the local provider server (loopback only)."""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import AsyncIterable, Iterable, Iterator

import pytest

from promptkit._cost import cost_of
from promptkit._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    IncompleteStreamError,
    RateLimitError,
    RealBackendBlockedError,
    ResponseError,
    ServerError,
    UnsupportedParameterError,
)
from promptkit._messages import ImagePart, Message, TextPart, Usage
from promptkit.backends import allow_real_requests, backend
from promptkit.backends._retry import RetryPolicy
from promptkit.testing._server import ProviderServer, ServerReply, http_date

anthropic = pytest.importorskip("anthropic")
from promptkit.backends.anthropic import DEFAULT_MAX_TOKENS, AnthropicBackend  # noqa: E402

KEY = "sk-ant-test-secret-0123456789abcdef"
FAST = RetryPolicy(max_attempts=3, backoff=0.01, max_backoff=0.05, deadline=10.0)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


@pytest.fixture
def llm(server: ProviderServer) -> Iterator[AnthropicBackend]:
    with AnthropicBackend(model="claude-test", base_url=server.anthropic_base_url, api_key=KEY, retry=FAST) as b:
        yield b


def _drain(stream: Iterable[str], into: list[str]) -> None:
    for delta in stream:
        into.append(delta)


async def _adrain(stream: AsyncIterable[str], into: list[str]) -> None:
    async for delta in stream:
        into.append(delta)


def _sdk_retry_counts(server: ProviderServer) -> list[str]:
    return [r.headers.get("x-stainless-retry-count", "?") for r in server.requests]


# -- the happy paths --------------------------------------------------------------------------------
def test_complete_splits_system_and_maps_params(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply(text="Paris", input_tokens=12, output_tokens=1, finish_reason="length"))
    result = llm.complete(
        [("system", "Be brief."), ("system", "Answer in English."), "Capital of France?"],
        temperature=0.0,
        top_p=0.5,
        stop=("END",),
        extra={"metadata": {"user_id": "u1"}},
    )
    assert result.text == "Paris"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 1)
    assert result.finish_reason == "length"
    assert result.model == "claude-test"
    [req] = server.requests
    body = req.body
    assert req.path == "/v1/messages"
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0.0, 0.5, ["END"])
    assert body["metadata"] == {"user_id": "u1"}
    assert KEY not in str(req.headers)
    assert _sdk_retry_counts(server) == ["0"]


def test_max_tokens_and_default(server: ProviderServer) -> None:
    server.default = "ok"
    with AnthropicBackend(model="c", base_url=server.anthropic_base_url, api_key=KEY, default_max_tokens=77) as b:
        b.complete("hi")
        b.complete("hi", max_tokens=5)
    assert [r.body["max_tokens"] for r in server.requests] == [77, 5]


def test_seed_is_not_supported(llm: AnthropicBackend) -> None:
    with pytest.raises(UnsupportedParameterError):
        llm.complete("hi", seed=1)


def test_images_become_content_blocks(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add("a cat")
    content = (
        TextPart(text="What is this?"),
        ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
        ImagePart(url="https://example.invalid/cat.jpg"),
    )
    llm.complete([Message("user", content)])
    blocks = server.requests[0].body["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "What is this?"}
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.invalid/cat.jpg"}


def test_output_schema_becomes_output_config_format(server: ProviderServer, llm: AnthropicBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    server.add('{"a": 1}')
    result = llm.complete("give a", output_schema={"name": "Answer", "schema": schema, "strict": True})
    assert result.text == '{"a": 1}'
    assert server.requests[0].body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_stream_yields_deltas_then_provider_usage(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply(text="Hello streaming world", chunk_size=5, input_tokens=9, output_tokens=3))
    stream = llm.stream("hi")
    assert list(stream) == ["Hello", " stre", "aming", " worl", "d"]
    done = stream.completion
    assert done.text == "Hello streaming world"
    assert (done.usage.input_tokens, done.usage.output_tokens) == (9, 3)
    assert done.finish_reason == "stop"
    assert done.model == "claude-test"


def test_cache_and_thinking_tokens_are_counted_the_promptkit_way(server: ProviderServer, llm: AnthropicBackend) -> None:
    counts = {"input_tokens": 1000, "output_tokens": 500, "cached_input_tokens": 400, "cache_write_tokens": 100}
    server.add(ServerReply(text="done", reasoning_tokens=200, **counts))
    server.add(ServerReply(text="done", reasoning_tokens=200, **counts))
    completion = llm.complete("hi")
    stream = llm.stream("hi")
    assert "".join(stream) == "done"
    # On the wire input_tokens leaves the cache out (500); promptkit's counts it in.
    wire = completion.raw.usage
    assert (wire.input_tokens, wire.cache_read_input_tokens, wire.cache_creation_input_tokens) == (500, 400, 100)
    expected = Usage(
        input_tokens=1000, output_tokens=500, cached_input_tokens=400, cache_write_tokens=100, reasoning_tokens=200
    )
    assert completion.usage == stream.completion.usage == expected
    assert completion.provider == stream.completion.provider == "anthropic"


def test_a_reply_is_priced_for_its_model_with_cache_rates(server: ProviderServer) -> None:
    server.add(
        ServerReply(text="ok", input_tokens=1000, output_tokens=500, cached_input_tokens=400, cache_write_tokens=100)
    )
    with AnthropicBackend(model="claude-haiku-4-5", base_url=server.anthropic_base_url, api_key=KEY) as b:
        completion = b.complete("hi")
    # genai-prices' table for claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 cache write, $5 output
    # per million: 500 * 1 + 400 * 0.1 + 100 * 1.25 + 500 * 5 = 3165 millionths of a dollar
    assert cost_of(completion.usage, completion.model, completion.provider) == 0.003165


def test_async_complete_and_stream(server: ProviderServer) -> None:
    server.default = "async reply"

    async def main() -> tuple[str, str, int]:
        async with AnthropicBackend(model="c", base_url=server.anthropic_base_url, api_key=KEY, retry=FAST) as b:
            first = await b.acomplete("hi")
            stream = b.astream("hi")
            parts: list[str] = []
            await _adrain(stream, parts)
            return first.text, "".join(parts), stream.completion.usage.output_tokens

    assert asyncio.run(main()) == ("async reply", "async reply", 2)


def test_user_client_is_used_without_sdk_retries_and_left_open(server: ProviderServer) -> None:
    mine = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=KEY, max_retries=5)
    server.add(ServerReply.error(529), "never reached")
    b = AnthropicBackend(model="c", client=mine, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RateLimitError):
        b.complete("hi")
    assert len(server.requests) == 1
    b.close()
    assert not mine.is_closed()
    mine.close()


def test_factory_builds_anthropic_backend(server: ProviderServer) -> None:
    b = backend("anthropic:claude-haiku-4-5", base_url=server.anthropic_base_url, api_key=KEY)
    assert isinstance(b, AnthropicBackend)
    assert b.name == "anthropic:claude-haiku-4-5"
    server.add("hi")
    with b:
        assert b.complete("hello").text == "hi"


# -- retries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 529, 408, 409])
def test_transient_status_then_success_is_retried_once(
    server: ProviderServer, llm: AnthropicBackend, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(ServerReply.error(status), "recovered")
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        assert llm.complete("hi").text == "recovered"
    assert len(server.requests) == 2
    assert _sdk_retry_counts(server) == ["0", "0"]
    assert f"HTTP {status}" in caplog.text


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, BadRequestError),
        (422, BadRequestError),
    ],
)
def test_client_errors_are_never_retried(
    server: ProviderServer, llm: AnthropicBackend, status: int, error: type[Exception]
) -> None:
    server.add(ServerReply.error(status), "not reached")
    with pytest.raises(error):
        llm.complete("hi")
    assert len(server.requests) == 1


def test_retry_after_is_honoured_and_capped(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.error(429, retry_after=0.3), "ok")
    start = time.monotonic()
    assert llm.complete("hi").text == "ok"
    assert time.monotonic() - start >= 0.3
    # The installed SDK would sleep for the whole hour; promptkit fails fast with the value.
    server.add(ServerReply.error(429, retry_after=3600))
    with pytest.raises(RateLimitError) as info:
        llm.complete("hi")
    assert info.value.retry_after == 3600
    assert server.pending == 0
    server.add(ServerReply.error(529, retry_after=http_date(900)))
    with pytest.raises(RateLimitError) as info:
        llm.complete("hi")
    assert info.value.retry_after is not None
    assert info.value.retry_after > 60
    assert len(server.requests) == 4


def test_reset_before_reply_then_success_is_retried(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.reset(), "after reset")
    assert llm.complete("hi").text == "after reset"
    assert len(server.requests) == 2


def test_attempts_are_bounded(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(*[ServerReply.error(503)] * 5)
    with pytest.raises(ServerError):
        llm.complete("hi")
    assert len(server.requests) == 3


def test_stream_error_event_before_text_is_retried(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.stream_error(after=1), ServerReply(text="second try"))
    assert "".join(llm.stream("hi")) == "second try"
    assert len(server.requests) == 2


# -- faults after the first chunk -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (ServerReply.reset_mid_stream(after=5, text="abcdefghijkl"), BackendConnectionError),
        (ServerReply.malformed_sse(after=5, text="abcdefghijkl"), ResponseError),
        (ServerReply.invalid_utf8(after=5, text="abcdefghijkl"), ResponseError),
        (ServerReply.stream_error(after=5, text="abcdefghijkl"), RateLimitError),
        (ServerReply.cut(after=5, text="abcdefghijkl"), None),
    ],
)
def test_stream_failing_after_first_chunk_keeps_partial_text(
    server: ProviderServer, llm: AnthropicBackend, fault: ServerReply, cause: type[Exception] | None
) -> None:
    server.add(fault, "must not be used")
    received: list[str] = []
    with pytest.raises(IncompleteStreamError) as info:
        _drain(llm.stream("hi"), received)
    # message_start, content_block_start, ping, then two 4-character deltas
    assert "".join(received) == "abcdefgh"
    assert info.value.partial_text == "abcdefgh"
    assert len(server.requests) == 1
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)


def test_async_stream_reset_keeps_partial_text(server: ProviderServer) -> None:
    server.add(ServerReply.reset_mid_stream(after=4, text="abcdefgh"))

    async def main() -> tuple[list[str], IncompleteStreamError]:
        async with AnthropicBackend(
            model="c", base_url=server.anthropic_base_url, api_key=KEY, retry=FAST, async_http="httpx"
        ) as b:
            got: list[str] = []
            with pytest.raises(IncompleteStreamError) as info:
                await _adrain(b.astream("hi"), got)
            return got, info.value

    got, err = asyncio.run(main())
    assert got == ["abcd"]
    assert err.partial_text == "abcd"
    assert isinstance(err.__cause__, BackendConnectionError)


def test_html_200_is_a_response_error(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.html())
    with pytest.raises(ResponseError, match="not JSON"):
        llm.complete("hi")


def test_html_200_to_a_stream_is_a_response_error(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.html())
    with pytest.raises(ResponseError, match="text/html"):
        list(llm.stream("hi"))
    assert len(server.requests) == 1


def test_json_where_sse_expected_is_a_response_error(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.json_for_stream())
    with pytest.raises(ResponseError, match="application/json"):
        list(llm.stream("hi"))


# -- deadlines --------------------------------------------------------------------------------------
def test_slow_first_byte_hits_the_total_deadline(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply(text="late", delay=20))
    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match="total deadline"):
        list(llm.stream("hi", timeout=0.4))
    assert time.monotonic() - start < 10  # the fault alone would take 20 s


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_slow_trickle_cannot_outlive_the_deadline(server: ProviderServer, llm: AnthropicBackend, mode: str) -> None:
    server.add(ServerReply(text="x" * 400, trickle=0.05))
    call = (
        (lambda: llm.complete("hi", timeout=0.6))
        if mode == "complete"
        else (lambda: list(llm.stream("hi", timeout=0.6)))
    )
    start = time.monotonic()
    with pytest.raises((BackendTimeoutError, IncompleteStreamError), match="deadline"):
        call()
    assert time.monotonic() - start < 10  # the fault alone would take 20 s
    assert len(server.requests) == 1


def test_async_slow_trickle_cannot_outlive_the_deadline(server: ProviderServer) -> None:
    server.add(ServerReply(text="x" * 400, trickle=0.05))

    async def main() -> None:
        async with AnthropicBackend(model="c", base_url=server.anthropic_base_url, api_key=KEY, retry=FAST) as b:
            await b.acomplete("hi", timeout=0.6)

    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match="deadline"):
        asyncio.run(main())
    assert time.monotonic() - start < 10  # the fault alone would take 20 s


# -- secrets, pickling, gating -----------------------------------------------------------------------
def test_pickled_errors_drop_the_sdk_cause_and_its_headers(server: ProviderServer, llm: AnthropicBackend) -> None:
    server.add(ServerReply.error(401, message=f"invalid x-api-key {KEY}"))
    with pytest.raises(AuthenticationError) as info:
        llm.complete("hi")
    err = info.value
    assert KEY not in str(err)
    assert isinstance(err.__cause__, anthropic.AuthenticationError)
    data = pickle.dumps(err)
    assert KEY.encode() not in data
    clone = pickle.loads(data)
    assert clone.status_code == 401
    assert clone.__cause__ is None
    assert KEY not in repr(llm)


def test_real_provider_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    b = AnthropicBackend(model="c", api_key=KEY)
    with allow_real_requests(False), pytest.raises(RealBackendBlockedError):
        b.complete("hi")


def test_bad_default_max_tokens() -> None:
    with pytest.raises(ConfigurationError):
        AnthropicBackend(model="c", api_key=KEY, default_max_tokens=0)


# -- malformed replies are ResponseErrors, cut streams IncompleteStreamErrors ---------------------
def _start() -> dict[str, object]:
    return {"type": "message_start", "message": _message()}


def _message() -> dict[str, object]:
    return {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _delta(delta: dict[str, object]) -> dict[str, object]:
    return {"type": "content_block_delta", "index": 0, "delta": delta}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_text_delta_without_text_is_a_response_error(
    server: ProviderServer, llm: AnthropicBackend, mode: str
) -> None:
    server.add(
        ServerReply.raw_stream(_start(), _delta({"type": "text_delta", "text": "ok "}), _delta({"type": "text_delta"}))
    )
    got: list[str] = []

    async def adrain() -> None:
        async for delta in llm.astream("hi"):
            got.append(delta)

    call = (lambda: got.extend(llm.stream("hi"))) if mode == "sync" else (lambda: asyncio.run(adrain()))
    with pytest.raises((ResponseError, IncompleteStreamError)) as info:
        call()
    assert got == ["ok "]
    assert "text_delta event carries no text" in str(info.value)
    assert (info.value.status_code, info.value.request_id) == (200, "req_test")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_cut_raw_stream_is_an_incomplete_stream_error(
    server: ProviderServer, llm: AnthropicBackend, mode: str
) -> None:
    server.add(ServerReply.raw_stream(_start(), _delta({"type": "text_delta", "text": "partial"})))

    async def adrain() -> str:
        return "".join([delta async for delta in llm.astream("hi")])

    call = (lambda: "".join(llm.stream("hi"))) if mode == "sync" else (lambda: asyncio.run(adrain()))
    with pytest.raises(IncompleteStreamError) as info:
        call()
    assert info.value.partial_text == "partial"
    assert info.value.request_id == "req_test"


@pytest.mark.parametrize("block", [{"type": "text"}, {"type": "text", "text": 5}])
def test_a_text_block_without_text_is_a_response_error(
    server: ProviderServer, llm: AnthropicBackend, block: dict[str, object]
) -> None:
    body = {**_message(), "content": [block], "stop_reason": "end_turn"}
    server.add(ServerReply.raw(body))
    with pytest.raises(ResponseError) as info:
        llm.complete("hi")
    assert (info.value.status_code, info.value.request_id) == (200, "req_test")
