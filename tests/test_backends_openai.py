"""OpenAIBackend over the real ``openai`` SDK against the local provider server (loopback only)."""

from __future__ import annotations

import asyncio
import logging
import pickle
import subprocess
import sys
import time
from collections.abc import AsyncIterable, Iterable, Iterator

import pytest

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
)
from promptkit._messages import Usage
from promptkit.backends import allow_real_requests, backend
from promptkit.backends._retry import RetryPolicy
from promptkit.testing._server import ProviderServer, ServerReply, embedding_for, http_date

openai = pytest.importorskip("openai")
from promptkit.backends.openai import OpenAIBackend  # noqa: E402

KEY = "sk-test-secret-0123456789abcdef"
FAST = RetryPolicy(max_attempts=3, backoff=0.01, max_backoff=0.05, deadline=10.0)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


@pytest.fixture
def llm(server: ProviderServer) -> Iterator[OpenAIBackend]:
    with OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key=KEY, retry=FAST) as b:
        yield b


def _drain(stream: Iterable[str], into: list[str]) -> list[str]:
    for delta in stream:
        into.append(delta)
    return []


async def _adrain(stream: AsyncIterable[str], into: list[str]) -> None:
    async for delta in stream:
        into.append(delta)


def _sdk_retry_counts(server: ProviderServer) -> list[str]:
    return [r.headers.get("x-stainless-retry-count", "?") for r in server.requests]


# -- the happy paths --------------------------------------------------------------------------------
def test_complete_maps_text_usage_finish_and_params(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply(text="Paris", input_tokens=11, output_tokens=2, finish_reason="length"))
    result = llm.complete(
        [("system", "Be brief."), "Capital of France?"],
        temperature=0.2,
        max_tokens=5,
        stop=["\n"],
        seed=7,
        top_p=0.9,
        extra={"logprobs": True},
    )
    assert result.text == "Paris"
    assert result.usage.input_tokens == 11
    assert result.usage.output_tokens == 2
    assert result.finish_reason == "length"
    assert result.model == "gpt-test"
    [req] = server.requests
    body = req.body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"], body["top_p"]) == (
        0.2,
        5,
        ["\n"],
        7,
        0.9,
    )
    assert body["logprobs"] is True
    assert req.headers["authorization"] == "***"
    assert _sdk_retry_counts(server) == ["0"]


def test_official_endpoint_uses_max_completion_tokens(server: ProviderServer) -> None:
    b = OpenAIBackend(model="m", base_url=server.openai_base_url, api_key=KEY, max_tokens_field="max_completion_tokens")
    server.add("ok")
    with b:
        b.complete("hi", max_tokens=3)
    assert server.requests[0].body["max_completion_tokens"] == 3
    assert "max_tokens" not in server.requests[0].body


def test_output_schema_becomes_strict_json_schema_response_format(server: ProviderServer, llm: OpenAIBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    server.add('{"a": 1}')
    result = llm.complete("give a", output_schema={"name": "Answer", "schema": schema, "strict": True})
    assert result.text == '{"a": 1}'
    assert server.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": schema, "strict": True},
    }


def test_stream_yields_deltas_then_provider_usage(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply(text="Hello streaming world", chunk_size=5, output_tokens=3))
    stream = llm.stream("hi")
    assert list(stream) == ["Hello", " stre", "aming", " worl", "d"]
    done = stream.completion
    assert done.text == "Hello streaming world"
    assert done.usage.output_tokens == 3
    assert done.finish_reason == "stop"
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


def test_cached_and_reasoning_tokens_come_from_the_usage_details(server: ProviderServer, llm: OpenAIBackend) -> None:
    counts = {"input_tokens": 120, "output_tokens": 30, "cached_input_tokens": 100, "reasoning_tokens": 20}
    server.add(ServerReply(text="done", **counts), ServerReply(text="done", **counts))
    expected = Usage(input_tokens=120, output_tokens=30, cached_input_tokens=100, reasoning_tokens=20)
    completion = llm.complete("hi")
    stream = llm.stream("hi")
    assert "".join(stream) == "done"
    assert completion.usage == stream.completion.usage == expected
    # another server behind base_url: priced only by your own prices, never as OpenAI's
    assert completion.provider == stream.completion.provider == "openai-compatible"
    usage = completion.raw.usage
    assert (usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens) == (100, 20)


def test_cache_write_tokens_are_read_when_the_server_reports_them(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply(text="ok", input_tokens=50, output_tokens=1, cache_write_tokens=40))
    assert llm.complete("hi").usage == Usage(input_tokens=50, output_tokens=1, cache_write_tokens=40)


def test_replies_from_openai_itself_name_openai_as_provider() -> None:
    official = OpenAIBackend(model="gpt-4o-mini", api_key=KEY)
    reply = openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010},
        }
    )
    completion = official._to_completion(reply)
    assert (completion.provider, completion.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert completion.usage == Usage(input_tokens=1000, output_tokens=10)  # no details: no parts


def test_async_complete_stream_and_client_reuse(server: ProviderServer) -> None:
    server.default = "async reply"

    async def main() -> tuple[str, list[str], int]:
        async with OpenAIBackend(model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST) as b:
            first = await b.acomplete("hi")
            client = b.async_client()
            stream = b.astream("hi")
            parts = [p async for p in stream]
            assert b.async_client() is client
            return first.text, parts, stream.completion.usage.output_tokens

    text, parts, out = asyncio.run(main())
    assert text == "async reply"
    assert "".join(parts) == "async reply"
    assert out == 2


def test_sync_client_is_built_once_and_closed(server: ProviderServer) -> None:
    b = OpenAIBackend(model="m", base_url=server.openai_base_url, api_key=KEY)
    client = b.sync_client()
    assert b.sync_client() is client
    assert client.max_retries == 0
    b.close()
    assert client.is_closed()


def test_user_client_is_used_without_sdk_retries_and_left_open(server: ProviderServer) -> None:
    mine = openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=5)
    server.add(ServerReply.error(500), "never reached")
    b = OpenAIBackend(model="m", client=mine, retry=RetryPolicy(max_attempts=1))
    assert b.base_url == server.openai_base_url + "/"
    with pytest.raises(ServerError):
        b.complete("hi")
    assert len(server.requests) == 1  # the SDK's own 5 retries never ran
    b.close()
    assert not mine.is_closed()
    mine.close()


def test_factory_builds_openai_compatible_backend(server: ProviderServer) -> None:
    b = backend(f"openai-compatible:llama3@{server.openai_base_url}", retry=FAST)
    assert isinstance(b, OpenAIBackend)
    server.add("from llama")
    with b:
        assert b.complete("hi").text == "from llama"
    assert server.requests[0].body["model"] == "llama3"


def test_embed_and_aembed_return_server_vectors_in_order(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.default = "unused"
    assert llm.embed(["alpha", "beta"]) == [embedding_for("alpha", 8), embedding_for("beta", 8)]
    assert llm.embed([]) == []
    vectors = asyncio.run(_aembed(llm, ["gamma"], dimensions=4))
    assert vectors == [embedding_for("gamma", 4)]
    assert server.requests[0].body["model"] == "text-embedding-3-small"
    with pytest.raises(ConfigurationError):
        llm.embed("not a list")  # type: ignore[arg-type]


async def _aembed(llm: OpenAIBackend, texts: list[str], **kw: int) -> list[list[float]]:
    try:
        return await llm.aembed(texts, **kw)
    finally:
        await llm.aclose()


def test_embed_retries_a_500(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(500))
    server.default = "unused"
    assert len(llm.embed(["x"])) == 1
    assert len(server.requests) == 2


# -- retries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 503, 408, 409])
def test_transient_status_then_success_is_retried_once(
    server: ProviderServer, llm: OpenAIBackend, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(ServerReply.error(status), "recovered")
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        assert llm.complete("hi").text == "recovered"
    assert len(server.requests) == 2
    assert _sdk_retry_counts(server) == ["0", "0"]  # the SDK never retried by itself
    assert f"HTTP {status}" in caplog.text
    assert "attempt 1 of 3" in caplog.text


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
    server: ProviderServer, llm: OpenAIBackend, status: int, error: type[Exception]
) -> None:
    server.add(ServerReply.error(status), "not reached")
    with pytest.raises(error) as info:
        llm.complete("hi")
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert len(server.requests) == 1


def test_retry_after_seconds_is_honoured(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(429, retry_after=0.3), "ok")
    start = time.monotonic()
    assert llm.complete("hi").text == "ok"
    assert time.monotonic() - start >= 0.3


def test_retry_after_above_cap_fails_fast_with_the_value(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(429, retry_after=3600), "not reached")
    start = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        llm.complete("hi")
    assert info.value.retry_after == 3600
    assert time.monotonic() - start < 5  # the header asked for an hour
    assert len(server.requests) == 1


def test_retry_after_http_date_above_cap_fails_fast(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(503, retry_after=http_date(600)), "not reached")
    with pytest.raises(ServerError) as info:
        llm.complete("hi")
    assert info.value.retry_after is not None
    assert 500 < info.value.retry_after <= 600
    assert len(server.requests) == 1


def test_attempts_are_bounded(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(*[ServerReply.error(500)] * 5)
    with pytest.raises(ServerError):
        llm.complete("hi")
    assert len(server.requests) == 3


def test_reset_before_reply_then_success_is_retried(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.reset(), "after reset")
    assert llm.complete("hi").text == "after reset"
    assert len(server.requests) == 2


def test_reset_every_time_raises_connection_error(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(*[ServerReply.reset()] * 3)
    with pytest.raises(BackendConnectionError):
        llm.complete("hi")
    assert len(server.requests) == 3


def test_stream_error_before_first_chunk_is_retried(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(500), ServerReply(text="whole reply", chunk_size=3))
    stream = llm.stream("hi")
    assert "".join(stream) == "whole reply"
    assert len(server.requests) == 2
    assert stream.completion.attempts == 2


def test_attempts_reach_the_completion_and_the_error(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(503), "ok", ServerReply.error(500), ServerReply.error(500), ServerReply.error(500))
    assert llm.complete("hi").attempts == 2
    with pytest.raises(ServerError) as info:
        llm.complete("hi")
    assert info.value.attempts == FAST.max_attempts
    assert info.value.request_id == "req_test"


# -- faults after the first chunk: typed, partial text kept, never retried ------------------------
@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (ServerReply.reset_mid_stream(after=3, text="abcdefghijkl"), BackendConnectionError),
        (ServerReply.malformed_sse(after=3, text="abcdefghijkl"), ResponseError),
        (ServerReply.invalid_utf8(after=3, text="abcdefghijkl"), ResponseError),
        (ServerReply.cut(after=3, text="abcdefghijkl"), None),
    ],
)
def test_stream_failing_after_first_chunk_keeps_partial_text(
    server: ProviderServer, llm: OpenAIBackend, fault: ServerReply, cause: type[Exception] | None
) -> None:
    server.add(fault, "must not be used")
    received: list[str] = []
    with pytest.raises(IncompleteStreamError) as info:
        received.extend(_drain(llm.stream("hi"), received))
    # role chunk + 2 text chunks of 4 characters were sent before the fault
    assert "".join(received) == "abcdefgh"
    assert info.value.partial_text == "abcdefgh"
    assert len(server.requests) == 1
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)


def test_async_stream_cut_keeps_partial_text(server: ProviderServer) -> None:
    server.add(ServerReply.cut(after=2, text="abcdefgh"))

    async def main() -> tuple[list[str], IncompleteStreamError]:
        async with OpenAIBackend(model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST) as b:
            got: list[str] = []
            with pytest.raises(IncompleteStreamError) as info:
                await _adrain(b.astream("hi"), got)
            return got, info.value

    got, err = asyncio.run(main())
    assert got == ["abcd"]
    assert err.partial_text == "abcd"


def test_stream_without_usage_needs_stream_usage_off(server: ProviderServer) -> None:
    b = OpenAIBackend(model="m", base_url=server.openai_base_url, api_key=KEY, stream_usage=False)
    server.add("no usage asked")
    with b:
        stream = b.stream("hi")
        assert "".join(stream) == "no usage asked"
    assert "stream_options" not in server.requests[0].body


def test_malformed_sse_before_any_text_is_a_response_error(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.malformed_sse(after=1), "not reached")
    with pytest.raises(ResponseError) as info:
        list(llm.stream("hi"))
    assert not isinstance(info.value, IncompleteStreamError)
    assert len(server.requests) == 1


def test_html_200_is_a_response_error_not_text(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.html())
    with pytest.raises(ResponseError, match="not JSON"):
        llm.complete("hi")


def test_html_200_to_a_stream_is_a_response_error(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.html())
    with pytest.raises(ResponseError, match="text/html"):
        list(llm.stream("hi"))
    assert len(server.requests) == 1


def test_json_where_sse_expected_is_a_response_error(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.json_for_stream())
    with pytest.raises(ResponseError, match="application/json"):
        list(llm.stream("hi"))


# -- deadlines --------------------------------------------------------------------------------------
def test_slow_first_byte_hits_the_total_deadline(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply(text="late", delay=20))
    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match="total deadline"):
        llm.complete("hi", timeout=0.4)
    assert time.monotonic() - start < 10  # the fault alone would take 20 s


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_slow_trickle_cannot_outlive_the_deadline(server: ProviderServer, llm: OpenAIBackend, mode: str) -> None:
    server.add(ServerReply(text="x" * 400, trickle=0.05))
    start = time.monotonic()
    call = (
        (lambda: llm.complete("hi", timeout=0.6))
        if mode == "complete"
        else (lambda: list(llm.stream("hi", timeout=0.6)))
    )
    with pytest.raises((BackendTimeoutError, IncompleteStreamError)) as info:
        call()
    assert time.monotonic() - start < 10  # the fault alone would take 20 s
    assert "deadline" in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_async_slow_trickle_cannot_outlive_the_deadline(server: ProviderServer, mode: str) -> None:
    server.add(ServerReply(text="x" * 400, trickle=0.05))

    async def main() -> None:
        async with OpenAIBackend(
            model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST, async_http="httpx"
        ) as b:
            if mode == "complete":
                await b.acomplete("hi", timeout=0.6)
            else:
                async for _ in b.astream("hi", timeout=0.6):
                    pass

    start = time.monotonic()
    with pytest.raises((BackendTimeoutError, IncompleteStreamError), match="deadline"):
        asyncio.run(main())
    assert time.monotonic() - start < 10  # the fault alone would take 20 s


# -- secrets, pickling, gating, laziness -----------------------------------------------------------
def test_retry_logs_never_show_the_key(
    server: ProviderServer, llm: OpenAIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(ServerReply.error(429, message=f"quota for key {KEY} exceeded"), "ok")
    with caplog.at_level(logging.DEBUG):
        assert llm.complete("hi").text == "ok"
    assert "quota for key" in caplog.text
    assert KEY not in caplog.text


def test_errors_and_reprs_never_show_the_key(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply.error(401, message=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(AuthenticationError) as info:
        llm.complete("hi")
    err = info.value
    assert KEY not in str(err)
    assert KEY not in repr(llm)
    assert isinstance(err.__cause__, openai.AuthenticationError)
    assert KEY in str(err.__cause__.response.request.headers.get("authorization"))  # what pickling must drop
    data = pickle.dumps(err)
    assert KEY.encode() not in data
    clone = pickle.loads(data)
    assert type(clone) is AuthenticationError
    assert clone.status_code == 401
    assert clone.__cause__ is None


def test_real_provider_is_blocked_but_loopback_is_not(server: ProviderServer) -> None:
    real = OpenAIBackend(model="m", api_key=KEY, base_url="https://api.openai.com/v1")
    local = OpenAIBackend(model="m", api_key=KEY, base_url=server.openai_base_url)
    server.add("local ok")
    with allow_real_requests(False):
        with pytest.raises(RealBackendBlockedError):
            real.complete("hi")
        assert local.complete("hi").text == "local ok"
    real.close()
    local.close()


def test_missing_key_for_openai_itself_is_an_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    b = OpenAIBackend(model="m")
    with allow_real_requests(True), pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        b.complete("hi")


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        OpenAIBackend(model="")
    with pytest.raises(ConfigurationError):
        OpenAIBackend(model="m", read_timeout=0)
    with pytest.raises(ConfigurationError):
        OpenAIBackend(model="m", async_http="curl")  # type: ignore[arg-type]


def test_import_promptkit_backends_does_not_import_the_sdk() -> None:
    code = (
        "import sys, promptkit.backends, promptkit.backends.openai as m;"
        "b = m.OpenAIBackend(model='x', api_key='k');"
        "print('openai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_closing_a_stream_early_releases_it(server: ProviderServer, llm: OpenAIBackend) -> None:
    server.add(ServerReply(text="a" * 200, chunk_size=1), "next")
    with llm.stream("hi") as stream:
        first = next(iter(stream))
    assert first == "a"
    assert llm.complete("again").text == "next"


def test_closing_an_async_stream_early_releases_it(server: ProviderServer) -> None:
    server.add(ServerReply(text="b" * 200, chunk_size=1), "next")

    async def main() -> tuple[str, str]:
        async with OpenAIBackend(model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST) as b:
            async with b.astream("hi") as stream:
                async for delta in stream:
                    first = delta
                    break
            return first, (await b.acomplete("again")).text

    assert asyncio.run(main()) == ("b", "next")


_LOOP_SCRIPT = """
import asyncio, sys
from promptkit.backends.openai import OpenAIBackend
from promptkit.testing import ProviderServer

with ProviderServer(default="hi") as server:
    for http in ("aiohttp", "httpx"):
        with OpenAIBackend(model="m", base_url=server.openai_base_url, api_key="k", async_http=http) as llm:
            print(asyncio.run(llm.acomplete("x")).text, llm.complete("y").text)
            print(asyncio.run(llm.acomplete("again")).text)
    llm = OpenAIBackend(model="m", base_url=server.openai_base_url, api_key="k")
    print(asyncio.run(llm.acomplete("no with")).text)
"""


def test_async_clients_are_closed_when_their_loop_ends() -> None:
    run = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "always", "-c", _LOOP_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["hi"] * 7
    assert "unclosed" not in run.stderr.lower(), run.stderr


# -- malformed replies are ResponseErrors, with the status and the request id ---------------------
def _completion_body(content: object) -> dict[str, object]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


def _chunk(delta: object, finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]}


@pytest.mark.parametrize("body", [_completion_body(5), _completion_body(["x"]), {"choices": [{"message": 5}]}])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_malformed_completion_is_a_response_error(
    server: ProviderServer, llm: OpenAIBackend, body: object, mode: str
) -> None:
    server.add(ServerReply.raw(body))
    call = (lambda: llm.complete("hi")) if mode == "sync" else (lambda: asyncio.run(llm.acomplete("hi")))
    with pytest.raises(ResponseError) as info:
        call()
    assert (info.value.status_code, info.value.request_id, info.value.retryable) == (200, "req_test", False)
    assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_malformed_stream_delta_is_a_response_error(server: ProviderServer, llm: OpenAIBackend, mode: str) -> None:
    server.add(ServerReply.raw_stream(_chunk({"content": "ok "}), _chunk({"content": 5}), _chunk({}, "stop")))
    got: list[str] = []
    call = (
        (lambda: _drain(llm.stream("hi"), got))
        if mode == "sync"
        else (lambda: asyncio.run(_adrain(llm.astream("hi"), got)))
    )
    with pytest.raises((ResponseError, IncompleteStreamError)) as info:
        call()
    assert got == ["ok "]
    assert all(isinstance(delta, str) for delta in got)
    assert "int, not text" in str(info.value)
    assert (info.value.status_code, info.value.request_id) == (200, "req_test")
