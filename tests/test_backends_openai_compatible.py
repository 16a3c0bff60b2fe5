"""OpenAICompatibleBackend against the local provider server: the same requests, results and
errors as OpenAIBackend (the SDK adapter) for the same scripted replies and faults."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from promptkit import Completion, PromptkitError
from promptkit._errors import (
    AuthenticationError,
    BackendTimeoutError,
    ConfigurationError,
    IncompleteStreamError,
    RealBackendBlockedError,
    ServerError,
)
from promptkit.backends import allow_real_requests, backend
from promptkit.backends._openai_compatible import _SSE
from promptkit.backends._retry import RetryPolicy
from promptkit.testing._server import ProviderServer, ReplyLike, ServerReply, http_date

pytest.importorskip("openai")
pytest.importorskip("aiohttp")
from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

KEY = "sk-test-secret-0123456789abcdef"
FAST = RetryPolicy(max_attempts=3, backoff=0.01, max_backoff=0.05, deadline=10.0)
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
PARAMS: dict[str, Any] = {
    "temperature": 0.2,
    "max_tokens": 5,
    "stop": ["\n"],
    "seed": 7,
    "top_p": 0.9,
    "extra": {"logprobs": True, "top_k": 3},
    "output_schema": {"name": "Answer", "schema": SCHEMA, "strict": True},
}


def _completion_body(content: object, **more: object) -> dict[str, object]:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice], **more}


def _chunk(delta: object, finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]}


_USAGE = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": []}
_USAGE["usage"] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}

# name -> (script, same message text in both adapters)
CALLS: dict[str, tuple[list[ReplyLike], bool]] = {
    "text, usage, finish": (
        [ServerReply(text="Paris", input_tokens=11, output_tokens=2, finish_reason="length")],
        True,
    ),
    "refusal as text": (
        [ServerReply.raw(_completion_body(None) | {"choices": [{"message": {"refusal": "no"}}]})],
        True,
    ),
    "no usage": ([ServerReply.raw(_completion_body("hi"))], True),
    "429 then ok": ([ServerReply.error(429, retry_after=0.05), "ok"], True),
    "500, 503 then ok": ([ServerReply.error(500), ServerReply.error(503), "ok"], True),
    "500 every time": ([ServerReply.error(500)] * 3, True),
    "408 then ok": ([ServerReply.error(408), "ok"], True),
    "409 then ok": ([ServerReply.error(409), "ok"], True),
    "429 above the cap": ([ServerReply.error(429, retry_after=3600, message="slow down")], True),
    "503 above the cap": ([ServerReply.error(503, retry_after=900)], True),
    "400": ([ServerReply.error(400, message="bad field")], True),
    "401 with the key in it": ([ServerReply.error(401, message=f"Incorrect API key provided: {KEY}")], True),
    "403": ([ServerReply.error(403)], True),
    "404": ([ServerReply.error(404)], True),
    "422": ([ServerReply.error(422)], True),
    "reset then ok": ([ServerReply.reset(), "after reset"], True),
    "reset every time": ([ServerReply.reset()] * 3, False),  # the transports word their causes apart
    "html 200": ([ServerReply.html()], True),
    "content is a number": ([ServerReply.raw(_completion_body(5))], True),
    "content is a list": ([ServerReply.raw(_completion_body(["x"]))], True),
    "message is a number": ([ServerReply.raw({"choices": [{"message": 5}]})], False),
    "no choices": ([ServerReply.raw({"model": "m", "choices": []})], True),
    "slow first byte": ([ServerReply(text="late", delay=20)], True),
}

STREAMS: dict[str, tuple[list[ReplyLike], bool]] = {
    "deltas and usage": ([ServerReply(text="Hello streaming world", chunk_size=5, output_tokens=3)], True),
    "500 then a stream": ([ServerReply.error(500), ServerReply(text="whole reply", chunk_size=3)], True),
    "429 above the cap": ([ServerReply.error(429, retry_after=3600)], True),
    "401": ([ServerReply.error(401)], True),
    "reset before the reply": ([ServerReply.reset(), "after reset"], True),
    "reset mid-stream": ([ServerReply.reset_mid_stream(after=3, text="abcdefghijkl")], False),
    "cut after 3 events": ([ServerReply.cut(after=3, text="abcdefghijkl")], True),
    "cut before text": ([ServerReply.cut(after=1), "not reached"], True),
    "malformed sse after text": ([ServerReply.malformed_sse(after=3, text="abcdefghijkl")], True),
    "malformed sse first": ([ServerReply.malformed_sse(after=1), "not reached"], True),
    "invalid utf-8": ([ServerReply.invalid_utf8(after=3, text="abcdefghijkl")], True),
    "html 200": ([ServerReply.html()], True),
    "json where sse expected": ([ServerReply.json_for_stream()], True),
    "error event after text": (
        [ServerReply.raw_stream(_chunk({"content": "ok "}), {"error": {"message": "overloaded"}})],
        True,
    ),
    "error event first": ([ServerReply.raw_stream({"error": {"message": "busy"}}), "second try"], True),
    "error event without message": ([ServerReply.raw_stream({"error": "x"})] * 3, True),
    "delta content is a number": (
        [ServerReply.raw_stream(_chunk({"content": "ok "}), _chunk({"content": 5}), _chunk({}, "stop"))],
        True,
    ),
    "reasoning deltas apart from the content": (
        [
            ServerReply.raw_stream(
                _chunk({"reasoning_content": "two and "}),
                _chunk({"reasoning_content": "two"}),
                _chunk({"content": "4"}, "stop"),
                _USAGE,
            )
        ],
        True,
    ),
    "no usage after the finish": ([ServerReply.raw_stream(_chunk({"content": "hi"}), _chunk({}, "length"))], True),
    "raw events with usage": (
        [ServerReply.raw_stream(_chunk({"content": "a"}), _chunk({"content": "b"}, "stop"), _USAGE)],
        True,
    ),
    "slow first byte": ([ServerReply(text="late", delay=20)], True),
}


def _describe_error(err: PromptkitError, same_text: bool) -> dict[str, Any]:
    cause = err.__cause__
    return {
        "type": type(err).__name__,
        "message": str(err) if same_text else None,
        "status_code": getattr(err, "status_code", None),
        "retry_after": getattr(err, "retry_after", None),
        "request_id": getattr(err, "request_id", None),
        "attempts": getattr(err, "attempts", None),
        "retryable": getattr(err, "retryable", None),
        "partial_text": getattr(err, "partial_text", None),
        "cause": type(cause).__name__ if isinstance(cause, PromptkitError) else None,
        "key shown": KEY in str(err) or KEY.encode() in pickle.dumps(err),
    }


def _describe(done: Completion, deltas: list[str] | None) -> dict[str, Any]:
    return {
        "text": done.text,
        "model": done.model,
        "usage": done.usage,
        "finish_reason": done.finish_reason,
        "attempts": done.attempts,
        "reasoning": done.reasoning,
        "deltas": deltas,
    }


def _outcome(cls: type[Any], script: list[ReplyLike], mode: str, http: str, same_text: bool) -> dict[str, Any]:
    params = dict(PARAMS)
    if any(isinstance(r, ServerReply) and r.delay for r in script):
        params["timeout"] = 0.4  # the total deadline cuts the slow first byte
    with ProviderServer(script) as server:
        llm = cls(model="gpt-test", base_url=server.openai_base_url, api_key=KEY, retry=FAST, async_http=http)

        async def run_async() -> dict[str, Any]:
            async with llm:
                if mode == "async":
                    return _describe(await llm.acomplete("Capital of France?", **params), None)
                stream = llm.astream("Tell me", **params)
                deltas = [d async for d in stream]
                return _describe(stream.completion, deltas)

        try:
            if mode == "sync":
                with llm:
                    got = _describe(llm.complete([("system", "Be brief."), "Capital of France?"], **params), None)
            elif mode == "stream":
                with llm:
                    stream = llm.stream("Tell me", **params)
                    deltas = list(stream)
                    got = _describe(stream.completion, deltas)
            else:
                got = asyncio.run(run_async())
        except PromptkitError as err:
            got = _describe_error(err, same_text)
        got["requests"] = [(r.path, r.body) for r in server.requests]
    return got


# The SDK's aiohttp transport reports a connection reset before the reply as a timeout; the direct
# client calls it a connection error on both transports, as the SDK does on httpx.
_SDK_ON_HTTPX = {"reset every time"}


def _compare(script: list[ReplyLike], mode: str, http: str, same_text: bool, case: str = "") -> dict[str, Any]:
    sdk = _outcome(OpenAIBackend, script, mode, "httpx" if case in _SDK_ON_HTTPX else http, same_text)
    wire = _outcome(OpenAICompatibleBackend, script, mode, http, same_text)
    assert wire == sdk
    return wire


@pytest.mark.parametrize(("mode", "http"), [("sync", "httpx"), ("async", "aiohttp"), ("async", "httpx")])
@pytest.mark.parametrize("case", list(CALLS))
def test_calls_give_what_the_sdk_adapter_gives(case: str, mode: str, http: str) -> None:
    script, same_text = CALLS[case]
    got = _compare(script, mode, http, same_text, case)
    assert got["requests"], "the server saw the call"
    assert not got.get("key shown")


@pytest.mark.parametrize(("mode", "http"), [("stream", "httpx"), ("astream", "aiohttp"), ("astream", "httpx")])
@pytest.mark.parametrize("case", list(STREAMS))
def test_streams_give_what_the_sdk_adapter_gives(case: str, mode: str, http: str) -> None:
    script, same_text = STREAMS[case]
    _compare(script, mode, http, same_text, case)


def test_the_compared_outcomes_are_the_expected_ones() -> None:
    """The parity above compares real behaviour: a few outcomes spelled out."""
    ok = _compare(CALLS["text, usage, finish"][0], "sync", "httpx", True)
    assert (ok["text"], ok["finish_reason"], ok["usage"].input_tokens) == ("Paris", "length", 11)
    body = ok["requests"][0][1]
    assert body["response_format"]["json_schema"]["name"] == "Answer"
    assert (body["max_tokens"], body["logprobs"], body["top_k"]) == (5, True, 3)
    capped = _compare(CALLS["429 above the cap"][0], "async", "aiohttp", True)
    assert (capped["type"], capped["retry_after"], capped["attempts"]) == ("RateLimitError", 3600.0, 1)
    assert "slow down" in capped["message"]
    thought = _compare(STREAMS["reasoning deltas apart from the content"][0], "stream", "httpx", True)
    assert (thought["text"], thought["reasoning"], thought["deltas"]) == ("4", "two and two", ["4"])
    cut = _compare(STREAMS["reset mid-stream"][0], "astream", "aiohttp", False, "reset mid-stream")
    assert (cut["type"], cut["partial_text"], cut["cause"]) == (
        "IncompleteStreamError",
        "abcdefgh",
        "BackendConnectionError",
    )
    retried = _compare(STREAMS["error event first"][0], "stream", "httpx", True)
    assert (retried["text"], retried["attempts"]) == ("second try", 2)
    late = _compare(CALLS["slow first byte"][0], "sync", "httpx", True)
    assert (late["type"], late["retryable"]) == ("BackendTimeoutError", False)


# -- what only the direct client has to show -------------------------------------------------------
@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def test_raw_is_the_reply_json_and_the_request_id_comes_through(server: ProviderServer) -> None:
    server.add("hello", ServerReply.error(500), ServerReply.error(500))
    with OpenAICompatibleBackend(
        model="m", base_url=server.openai_base_url, api_key=KEY, retry=RetryPolicy(max_attempts=2)
    ) as llm:
        done = llm.complete("hi")
        assert isinstance(done.raw, dict)
        assert done.raw["choices"][0]["message"]["content"] == "hello"
        with pytest.raises(ServerError) as info:
            llm.complete("hi")
    assert (info.value.request_id, info.value.attempts) == ("req_test", 2)
    headers = server.requests[0].headers
    assert headers["authorization"] == "***"
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
def test_async_requests_send_json_with_the_key_and_organization(server: ProviderServer, http: str) -> None:
    server.default = "hi"

    async def main() -> None:
        async with OpenAICompatibleBackend(
            model="m", base_url=server.openai_base_url, api_key=KEY, organization="org-1", async_http=http
        ) as llm:
            await llm.acomplete("x")
            assert "".join([d async for d in llm.astream("y")]) == "hi"

    asyncio.run(main())
    for request in server.requests:
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"] == "***"  # masked by the server: it was sent
        assert request.headers["openai-organization"] == "org-1"
    assert [r.stream for r in server.requests] == [False, True]


def test_retry_after_as_an_http_date_is_honoured_like_seconds(server: ProviderServer) -> None:
    server.add(ServerReply.error(503, retry_after=http_date(600)), "not reached")
    with OpenAICompatibleBackend(model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST) as llm:
        with pytest.raises(ServerError) as info:
            llm.complete("hi")
    assert info.value.retry_after is not None
    assert 500 < info.value.retry_after <= 600
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_a_sync_trickle_cannot_outlive_the_deadline(server: ProviderServer, mode: str) -> None:
    server.add(ServerReply(text="x" * 400, trickle=0.05))
    llm = OpenAICompatibleBackend(model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST)
    start = time.monotonic()
    call = (
        (lambda: llm.complete("hi", timeout=0.6))
        if mode == "complete"
        else (lambda: list(llm.stream("hi", timeout=0.6)))
    )
    with llm, pytest.raises((BackendTimeoutError, IncompleteStreamError), match="deadline"):
        call()
    assert time.monotonic() - start < 10  # the trickle alone takes 20 s
    assert len(server.requests) == 1


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_an_async_trickle_cannot_outlive_the_deadline(server: ProviderServer, mode: str, http: str) -> None:
    server.add(ServerReply(text="x" * 400, trickle=0.05))

    async def main() -> None:
        async with OpenAICompatibleBackend(
            model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST, async_http=http
        ) as llm:
            if mode == "complete":
                await llm.acomplete("hi", timeout=0.6)
            else:
                async for _ in llm.astream("hi", timeout=0.6):
                    pass

    start = time.monotonic()
    with pytest.raises((BackendTimeoutError, IncompleteStreamError), match="deadline"):
        asyncio.run(main())
    assert time.monotonic() - start < 10


def test_a_server_stalling_mid_body_is_cut_at_the_deadline(server: ProviderServer) -> None:
    server.add(ServerReply.stall(30, text="a reply that stalls half-way"))
    with OpenAICompatibleBackend(model="m", base_url=server.openai_base_url, api_key=KEY, retry=FAST) as llm:
        start = time.monotonic()
        with pytest.raises(BackendTimeoutError, match="deadline"):
            llm.complete("hi", timeout=0.5)
    assert time.monotonic() - start < 10  # the stall alone takes 30 s


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
def test_closing_streams_early_releases_them(server: ProviderServer, http: str) -> None:
    server.add(ServerReply(text="a" * 200, chunk_size=1), "next", ServerReply(text="b" * 200, chunk_size=1), "again")
    llm = OpenAICompatibleBackend(model="m", base_url=server.openai_base_url, api_key=KEY, async_http=http)
    with llm, llm.stream("hi") as stream:
        assert next(iter(stream)) == "a"
    assert llm.complete("x").text == "next"

    async def main() -> tuple[str, str]:
        async with llm, llm.astream("hi") as astream:
            async for delta in astream:
                first = delta
                break
            return first, (await llm.acomplete("x")).text

    assert asyncio.run(main()) == ("b", "again")


def test_many_concurrent_calls_share_one_client_per_loop(server: ProviderServer) -> None:
    server.rule = lambda request: f"echo {request.body['messages'][0]['content']}"

    async def main() -> list[str]:
        async with OpenAICompatibleBackend(model="m", base_url=server.openai_base_url, api_key=KEY) as llm:
            client = llm.async_client()
            replies = await asyncio.gather(*(llm.acomplete(f"n{i}") for i in range(40)))
            assert llm.async_client() is client
            return [r.text for r in replies]

    assert asyncio.run(main()) == [f"echo n{i}" for i in range(40)]


_LOOP_SCRIPT = """
import asyncio
from promptkit.backends.openai import OpenAICompatibleBackend
from promptkit.testing import ProviderServer

with ProviderServer(default="hi") as server:
    for http in ("aiohttp", "httpx"):
        with OpenAICompatibleBackend(model="m", base_url=server.openai_base_url, async_http=http) as llm:
            print(asyncio.run(llm.acomplete("x")).text, llm.complete("y").text)
            print(asyncio.run(llm.acomplete("again")).text)
    llm = OpenAICompatibleBackend(model="m", base_url=server.openai_base_url)
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


def test_import_loads_no_http_client_and_no_sdk() -> None:
    code = (
        "import sys, promptkit.backends.openai as m;"
        "b = m.OpenAICompatibleBackend(model='x', base_url='http://127.0.0.1:1/v1');"
        "print(sorted(n for n in ('openai', 'httpx2', 'aiohttp') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_real_provider_is_blocked_and_a_key_is_needed_for_openai_itself(server: ProviderServer) -> None:
    real = OpenAICompatibleBackend(model="m", api_key=KEY)
    assert real.base_url == "https://api.openai.com/v1"
    with allow_real_requests(False), pytest.raises(RealBackendBlockedError):
        real.complete("hi")
    real.close()
    with allow_real_requests(True), pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        OpenAICompatibleBackend(model="m").complete("hi")
    assert KEY not in repr(real)


def test_factory_rows_for_local_servers(server: ProviderServer) -> None:
    vllm = backend("vllm:meta-llama/Llama-3.1-8B-Instruct")
    assert isinstance(vllm, OpenAICompatibleBackend)
    assert (vllm.model, vllm.base_url) == ("meta-llama/Llama-3.1-8B-Instruct", "http://127.0.0.1:8000/v1")
    assert backend("sglang:m").base_url == "http://127.0.0.1:30000/v1"  # type: ignore[attr-defined]
    assert backend("llama.cpp:m").base_url == "http://127.0.0.1:8080/v1"  # type: ignore[attr-defined]
    server.add("from vllm")
    with backend(f"vllm:qwen@{server.openai_base_url}", retry=FAST) as local:
        assert local.complete("hi").text == "from vllm"
    assert server.requests[0].body["model"] == "qwen"
    with pytest.raises(ConfigurationError, match="<model>"):
        backend("vllm:@http://x")
    with pytest.raises(ConfigurationError):
        backend("vllm:")


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        OpenAICompatibleBackend(model="")
    with pytest.raises(ConfigurationError):
        OpenAICompatibleBackend(model="m", connect_timeout=-1)
    with pytest.raises(ConfigurationError, match="max_tokens_field"):
        OpenAICompatibleBackend(model="m", max_tokens_field="tokens")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="async_http"):
        OpenAICompatibleBackend(model="m", async_http="curl")  # type: ignore[arg-type]


# -- server-sent events ------------------------------------------------------------------------------
def _decode(chunks: list[bytes]) -> list[str]:
    sse = _SSE()
    out = [data for chunk in chunks for data in sse.feed(chunk)]
    return [*out, *sse.finish()]


@pytest.mark.parametrize(
    ("chunks", "events"),
    [
        ([b'data: {"a": 1}\n\ndata: [DONE]\n\n'], ['{"a": 1}', "[DONE]"]),
        ([b"da", b"ta: x", b"\n", b"\n"], ["x"]),  # split anywhere
        ([b"data: x\r", b"\n\r\n"], ["x"]),  # \r\n split across chunks is one line end
        ([b"data: x\r\rdata: y\r\r"], ["x", "y"]),  # bare \r line ends
        ([b": comment\nevent: delta\nid: 3\ndata:x\n\n"], ["x"]),  # other fields skipped, space optional
        ([b"data: a\ndata: b\n\n"], ["a\nb"]),  # multi-line data
        ([b"data: open at the end\n"], []),  # no blank line: the event never completed
        ([b"\n\n\n"], []),
    ],
)
def test_sse_decoding(chunks: list[bytes], events: list[str]) -> None:
    assert _decode(chunks) == events


def test_sse_invalid_utf8_raises() -> None:
    with pytest.raises(UnicodeDecodeError):
        _decode([b"data: \xff\n\n"])


def test_usage_details_provider_and_reasoning_match_the_sdk_adapter(server: ProviderServer) -> None:
    from promptkit import Usage

    counts = {"input_tokens": 120, "output_tokens": 30, "cached_input_tokens": 100, "reasoning_tokens": 20}
    body = _completion_body("4", usage={"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10})
    body["choices"][0]["message"]["reasoning_content"] = "2+2"  # type: ignore[index]
    seen = []
    for make in (OpenAIBackend, OpenAICompatibleBackend):
        server.add(ServerReply(text="done", **counts), ServerReply(text="done", **counts), ServerReply.raw(body))
        with make(model="m", base_url=server.openai_base_url, api_key=KEY) as llm:
            completion = llm.complete("hi")
            stream = llm.stream("hi")
            assert "".join(stream) == "done"
            thought = llm.complete("hi")
        seen.append((completion.usage, stream.completion.usage, completion.provider, thought.reasoning))
    expected = Usage(input_tokens=120, output_tokens=30, cached_input_tokens=100, reasoning_tokens=20)
    assert seen[0] == seen[1] == (expected, expected, "openai-compatible", "2+2")


@pytest.mark.parametrize("make", [OpenAIBackend, OpenAICompatibleBackend])
@pytest.mark.anyio
async def test_self_consistency_asks_for_n_choices_in_one_request(server: ProviderServer, make: Any) -> None:
    from promptkit import ChoiceParser, Prompt, SelfConsistency

    body = _completion_body("yes", usage={"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43})
    body["choices"] = [  # type: ignore[assignment]
        {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        for i, text in enumerate(["yes", "no", "yes"])
    ]
    server.add(ServerReply.raw(body), ServerReply.raw(body))
    with make(model="m", base_url=server.openai_base_url, api_key=KEY) as llm:
        prompt = Prompt("Q", llm, parser=ChoiceParser(["yes", "no"]), strategy=SelfConsistency(3, temperature=0.8))
        result = prompt.run()
        assert (await prompt.arun()).value == "yes"
        # a server that ignores n answers with one choice: the two missing samples are asked again
        server.add("no", "yes", "no")
        fallback = prompt.run()
    assert result.value == "yes"
    assert result.info["votes"] == (("yes", 2), ("no", 1))
    assert result.usage.input_tokens == 40  # the prompt paid once for three samples
    assert [r.body.get("n") for r in server.requests] == [3, 3, 3, None, None]
    assert server.requests[0].body["temperature"] == 0.8
    assert fallback.info["votes"] == (("no", 2), ("yes", 1))
