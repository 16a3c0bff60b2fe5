"""FallbackBackend: which errors move on, which propagate, streams, deadlines, and the real SDKs."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from promptkit import (
    AuthenticationError,
    BackendError,
    BadRequestError,
    ConfigurationError,
    FallbackError,
    IncompleteStreamError,
    Message,
    Prompt,
    RateLimitError,
    RealBackendBlockedError,
    ScriptExhaustedError,
    ServerError,
    UnsupportedParameterError,
)
from promptkit.backends import FallbackBackend, allow_real_requests
from promptkit.backends._retry import RetryPolicy
from promptkit.testing import FunctionBackend, MockBackend, MockReply, rate_limit_error, server_error, timeout_error
from promptkit.testing._server import ProviderServer, ServerReply

KEY = "sk-test-secret-0123456789abcdef"
FAST = RetryPolicy(max_attempts=2, backoff=0.01, max_backoff=0.05, deadline=30.0)


# -- which errors fall back ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [server_error(503), rate_limit_error(), timeout_error(), AuthenticationError("bad key", status_code=401)],
    ids=["5xx", "429", "timeout", "401"],
)
def test_answers_from_the_second_after_the_first_fails(error: BackendError) -> None:
    first, second = MockBackend([error], model="a"), MockBackend(["from b"], model="b")
    llm = FallbackBackend([first, second])
    reply = llm.complete("hi", temperature=0)
    assert reply.text == "from b"
    assert reply.model == "b"
    assert llm.last_backend == "mock:b"
    assert len(first.calls) == len(second.calls) == 1
    assert second.last_request.params == {"temperature": 0}
    assert second.last_request.backend == "mock:b"  # built by the member: caches below it key on its name


@pytest.mark.parametrize(
    "error",
    [BadRequestError("bad", status_code=400), BackendError("malformed"), ServerError("deadline", retryable=False)],
    ids=["400", "not-retryable", "spent-deadline"],
)
def test_errors_another_backend_would_repeat_are_raised_as_they_are(error: BackendError) -> None:
    second = MockBackend(["never"])
    llm = FallbackBackend([MockBackend([error]), second])
    with pytest.raises(type(error)) as info:
        llm.complete("hi")
    assert info.value is error
    assert second.calls == []


def test_guard_errors_are_never_caught() -> None:
    second = MockBackend(["never"])
    with pytest.raises(ScriptExhaustedError):
        FallbackBackend([MockBackend([]), second]).complete("hi")
    real = pytest.importorskip("promptkit.backends.openai").OpenAIBackend(
        model="m", api_key=KEY, base_url="https://api.openai.com/v1"
    )
    with allow_real_requests(False), pytest.raises(RealBackendBlockedError):
        FallbackBackend([real, second]).complete("hi")
    assert second.calls == []
    real.close()


def test_a_custom_rule_decides_what_falls_back() -> None:
    llm = FallbackBackend(
        [MockBackend([BadRequestError("context too long")]), MockBackend(["long context model"])],
        fall_back_on=lambda err: isinstance(err, BadRequestError),
    )
    assert llm.complete("hi").text == "long context model"
    with pytest.raises(RateLimitError):
        FallbackBackend([MockBackend([rate_limit_error()]), MockBackend(["x"])], fall_back_on=lambda e: False).complete(
            "hi"
        )


def test_every_failure_is_kept_when_all_fail() -> None:
    errors = [server_error(503), rate_limit_error(retry_after=3.0), AuthenticationError("bad key", status_code=401)]
    llm = FallbackBackend([MockBackend([e], model=m) for e, m in zip(errors, "abc", strict=True)])
    with pytest.raises(FallbackError) as info:
        llm.complete("hi")
    err = info.value
    assert [name for name, _ in err.errors] == ["mock:a", "mock:b", "mock:c"]
    assert [e for _, e in err.errors] == errors
    assert err.__cause__ is errors[-1]
    assert str(err).startswith("every backend of fallback(mock:a,mock:b,mock:c) failed: mock:a: ServerError:")
    assert "mock:b: RateLimitError" in str(err)
    assert "mock:c: AuthenticationError" in str(err)
    assert (err.retryable, err.retry_after, err.provider) == (True, 3.0, llm.name)
    assert isinstance(err, BackendError)  # an outer fallback or batch handles it like any provider error
    clone = pickle.loads(pickle.dumps(err))
    assert [name for name, _ in clone.errors] == ["mock:a", "mock:b", "mock:c"]


def test_logs_each_fallback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="promptkit"):
        FallbackBackend([MockBackend([server_error(502)], model="a"), MockBackend(["ok"])]).complete("hi")
    assert "mock:a failed (ServerError" in caplog.text


# -- async and streams ----------------------------------------------------------------------------------
def test_async_falls_back_and_keeps_guards() -> None:
    async def main() -> None:
        llm = FallbackBackend([MockBackend([server_error()]), MockBackend(["async b"], model="b")])
        assert (await llm.acomplete("hi")).text == "async b"
        with pytest.raises(ScriptExhaustedError):
            await FallbackBackend([MockBackend([]), MockBackend(["x"])]).acomplete("hi")
        with pytest.raises(FallbackError):
            await FallbackBackend([MockBackend([server_error()]), MockBackend([timeout_error()])]).acomplete("hi")

    asyncio.run(main())


def test_stream_that_fails_before_its_first_chunk_falls_back() -> None:
    second = MockBackend(["streamed from b"], model="b", chunk_size=4)
    llm = FallbackBackend([MockBackend([MockReply(chunks=[], error=server_error())]), second])
    with llm.stream("hi") as stream:
        assert "".join(stream) == "streamed from b"
    assert stream.completion.text == "streamed from b"
    assert stream.completion.model == "b"
    assert llm.last_backend == "mock:b"


def test_stream_that_fails_after_text_raises_and_never_switches() -> None:
    cut = IncompleteStreamError("cut", partial_text="Hel")
    second = MockBackend(["never"])
    llm = FallbackBackend([MockBackend([MockReply(chunks=["Hel"], error=cut)]), second])
    seen: list[str] = []
    with pytest.raises(IncompleteStreamError) as info:
        seen.extend(llm.stream("hi"))
    assert seen == ["Hel"]
    assert info.value.partial_text == "Hel"
    assert second.calls == []


def test_async_stream_falls_back_before_text_and_raises_after() -> None:
    async def main() -> None:
        llm = FallbackBackend([MockBackend([rate_limit_error()]), MockBackend(["abc def"], chunk_size=3)])
        async with llm.astream("hi") as stream:
            parts = [d async for d in stream]
        assert "".join(parts) == "abc def"
        assert stream.completion.text == "abc def"
        cut = IncompleteStreamError("cut", partial_text="ab")
        broken = FallbackBackend([MockBackend([MockReply(chunks=["ab"], error=cut)]), MockBackend(["never"])])
        with pytest.raises(IncompleteStreamError):
            async for _ in broken.astream("hi"):
                pass
        with pytest.raises(FallbackError):
            async for _ in FallbackBackend([MockBackend([server_error()])]).astream("hi"):
                pass

    asyncio.run(main())


# -- parameters, deadline, identity -----------------------------------------------------------------------
def test_supported_params_are_those_every_member_supports() -> None:
    native = MockBackend(["{}"], native_output=True)
    plain = FunctionBackend(lambda m, p: "x")
    llm = FallbackBackend([native, plain])
    assert llm.supported_params == native.supported_params & plain.supported_params
    assert "output_schema" not in llm.supported_params
    with pytest.raises(UnsupportedParameterError, match=r"not supported by function:<lambda>") as info:
        llm.complete("hi", output_schema={"name": "x", "schema": {}})
    assert info.value.param == "output_schema"


def test_a_later_member_gets_what_is_left_of_the_total_timeout() -> None:
    now = [100.0]
    seen: list[Mapping[str, Any]] = []

    def slow_failure(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        seen.append(params)
        now[0] += 4.0
        raise ServerError("busy")

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        seen.append(params)
        return "ok"

    llm = FallbackBackend([FunctionBackend(slow_failure), FunctionBackend(answer)])
    llm._clock = lambda: now[0]
    assert llm.complete("hi", timeout=10).text == "ok"
    assert [p["timeout"] for p in seen] == [10, pytest.approx(6.0)]

    spent = FallbackBackend([FunctionBackend(slow_failure), FunctionBackend(slow_failure), FunctionBackend(answer)])
    spent._clock = lambda: now[0]
    seen.clear()
    with pytest.raises(FallbackError, match="total timeout of 6s passed before function:answer was tried") as info:
        spent.complete("hi", timeout=6)
    assert len(seen) == 2
    assert info.value.retryable  # the server errors were; the spent deadline is not
    assert info.value.errors[-1][1].retryable is False


def test_name_repr_sample_and_close() -> None:
    closed: list[str] = []

    class Closing(MockBackend):
        def close(self) -> None:
            closed.append(self.name)

    a, b = Closing(["x"], model="a"), Closing(["y"], model="b")
    llm = FallbackBackend([a, b])
    assert llm.name == "fallback(mock:a,mock:b)"
    assert repr(llm).startswith("<FallbackBackend <MockBackend mock:a")
    from dataclasses import replace

    request = replace(llm.build_request("hi"), sample=2)
    llm.complete_request(request)
    assert a.last_request.sample == 2
    with llm:
        pass
    assert closed == ["mock:a", "mock:b"]
    assert llm.max_choices == 1  # several choices per request are not forwarded


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        FallbackBackend([])
    with pytest.raises(ConfigurationError, match="list of backends"):
        FallbackBackend(MockBackend())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="item 1 is a str"):
        FallbackBackend([MockBackend(), "openai:gpt-4o"])  # type: ignore[list-item]


def test_prompt_result_shows_who_answered() -> None:
    llm = FallbackBackend([MockBackend([server_error()], model="primary"), MockBackend(["4"], model="secondary")])
    result = Prompt("What is {{ a }} + {{ b }}?", backend=llm).run(a=2, b=2)
    assert result.value == "4"
    assert result.completion.model == "secondary"


# -- over the real SDKs, against the local provider server -----------------------------------------------
@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def test_openai_falls_back_to_anthropic_after_its_retries(server: ProviderServer) -> None:
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    from promptkit.backends.anthropic import AnthropicBackend
    from promptkit.backends.openai import OpenAIBackend

    server.add(ServerReply.error(503), ServerReply.error(503), "from claude")
    primary = OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key=KEY, retry=FAST)
    secondary = AnthropicBackend(model="claude-test", base_url=server.anthropic_base_url, api_key=KEY, retry=FAST)
    with FallbackBackend([primary, secondary]) as llm:
        assert llm.name == "fallback(openai:gpt-test,anthropic:claude-test)"
        reply = llm.complete("hi", max_tokens=20)
        assert (reply.text, reply.provider, llm.last_backend) == ("from claude", "anthropic", "anthropic:claude-test")
        assert [r.provider for r in server.requests] == ["openai", "openai", "anthropic"]
        server.add(ServerReply.error(401), "streamed from claude")
        stream = llm.stream("hi", max_tokens=20)
        assert "".join(stream) == "streamed from claude"
        assert stream.completion.provider == "anthropic"
