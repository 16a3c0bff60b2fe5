"""The public test doubles: MockBackend, FunctionBackend and the pytest plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from promptkit import (
    BackendError,
    BackendTimeoutError,
    Completion,
    ConfigurationError,
    IncompleteStreamError,
    Message,
    RateLimitError,
    ScriptExhaustedError,
    ServerError,
    UnsupportedCapabilityError,
    Usage,
)
from promptkit.backends import Request
from promptkit.testing import (
    FunctionBackend,
    MockBackend,
    MockReply,
    ProviderServer,
    rate_limit_error,
    server_error,
    timeout_error,
)


def test_script_is_consumed_in_order_and_calls_recorded() -> None:
    mock = MockBackend(["first", "second"])
    assert mock.complete("a", temperature=0).text == "first"
    assert mock.complete([("system", "s"), "b"]).text == "second"
    assert mock.remaining == 0
    assert [c.messages[-1].content for c in mock.calls] == ["a", "b"]
    assert mock.calls[0].params == {"temperature": 0}
    assert mock.calls[1].messages[0] == Message("system", "s")


def test_exhausted_script_shows_the_unanswered_request() -> None:
    mock = MockBackend(["only"])
    mock.complete("one")
    with pytest.raises(ScriptExhaustedError, match=r"request #2 .*last user: 'what now\?'") as info:
        mock.complete("what now?", max_tokens=3)
    assert "max_tokens=3" in str(info.value)
    assert isinstance(info.value.request, Request)


def test_rule_maps_requests_to_replies() -> None:
    mock = MockBackend(lambda req: req.messages[-1].text[::-1])
    assert mock.complete("abc").text == "cba"
    assert mock.complete("xy").text == "yx"
    with pytest.raises(ConfigurationError, match="rule"):
        mock.add("x")


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (rate_limit_error(retry_after=2), RateLimitError),
        (timeout_error(), BackendTimeoutError),
        (server_error(503), ServerError),
    ],
)
def test_scripted_errors(error: BackendError, cls: type[BackendError]) -> None:
    mock = MockBackend([error, "ok"])
    with pytest.raises(cls):
        mock.complete("x")
    assert mock.complete("x").text == "ok"
    assert len(mock.calls) == 2


def test_scripted_error_attributes() -> None:
    err = rate_limit_error(retry_after=2)
    assert (err.status_code, err.retry_after) == (429, 2)
    assert server_error(502).status_code == 502


def test_usage_defaults_to_word_counts_and_can_be_scripted() -> None:
    mock = MockBackend(["one two three", MockReply(text="x", usage=Usage(input_tokens=7, output_tokens=1))])
    assert mock.complete("a b").usage == Usage(input_tokens=2, output_tokens=3)
    assert mock.complete("a").usage == Usage(input_tokens=7, output_tokens=1)


def test_completion_reply_passes_through() -> None:
    mock = MockBackend([Completion(text="t", model="m2", finish_reason="length")])
    c = mock.complete("x")
    assert (c.text, c.model, c.finish_reason) == ("t", "m2", "length")


def test_stream_splits_words_and_reports_usage() -> None:
    mock = MockBackend(["Hello big world"])
    stream = mock.stream("hi")
    assert list(stream) == ["Hello ", "big ", "world"]
    assert stream.completion.usage == Usage(input_tokens=1, output_tokens=3)
    assert stream.completion.model == "mock"


def test_stream_with_explicit_chunks_and_mid_stream_error() -> None:
    mock = MockBackend([MockReply(chunks=["Hel", "lo"], error=IncompleteStreamError("cut", partial_text="Hello"))])
    stream = mock.stream("hi")
    received: list[str] = []
    with pytest.raises(IncompleteStreamError):
        received.extend(stream)
    assert received == ["Hel", "lo"]
    assert stream.text == "Hello"
    assert not stream.done


def test_chunk_size() -> None:
    assert list(MockBackend(["abcdefg"], chunk_size=3).stream("x")) == ["abc", "def", "g"]
    with pytest.raises(ConfigurationError):
        MockBackend(chunk_size=0)


def test_mock_reply_text_and_chunks_must_agree() -> None:
    with pytest.raises(ConfigurationError, match="disagree"):
        MockReply(text="abc", chunks=["x"])


def test_bad_script_values() -> None:
    with pytest.raises(ConfigurationError, match="wrap a single reply"):
        MockBackend("oops")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        MockBackend(["a"], replies=["b"])
    mock = MockBackend([42])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="not int"):
        mock.complete("x")


def test_last_request_and_reset() -> None:
    mock = MockBackend(["a"])
    with pytest.raises(ConfigurationError, match="no requests"):
        _ = mock.last_request
    mock.complete("q")
    assert mock.last_request.messages[0].content == "q"
    mock.reset()
    assert mock.calls == []
    assert "MockBackend mock" in repr(mock)
    assert MockBackend(model="gpt-x").name == "mock:gpt-x"


@pytest.mark.anyio
async def test_mock_async_and_async_stream() -> None:
    mock = MockBackend(["a b", "c d", timeout_error()])
    assert (await mock.acomplete("x")).text == "a b"
    stream = mock.astream("y")
    assert [piece async for piece in stream] == ["c ", "d"]
    assert stream.completion.text == "c d"
    with pytest.raises(BackendTimeoutError):
        await mock.acomplete("z")


@pytest.mark.anyio
async def test_async_stream_context_manager() -> None:
    async with MockBackend(["a b"]).astream("x") as stream:
        async for _ in stream:
            break
    assert "AsyncStream" in repr(stream)


def test_function_backend_receives_messages_and_params() -> None:
    seen: list[tuple[tuple[Message, ...], Mapping[str, Any]]] = []

    def fn(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        seen.append((messages, params))
        return "ok"

    backend = FunctionBackend(fn)
    assert backend.complete("hi", temperature=1).text == "ok"
    assert seen[0][0] == (Message("user", "hi"),)
    assert seen[0][1] == {"temperature": 1}
    assert backend.name == "function:fn"
    assert FunctionBackend(fn, model="house-model").name == "function:house-model"  # priced as that model
    assert list(backend.stream("x")) == ["ok"]


def test_function_backend_may_return_a_completion() -> None:
    backend = FunctionBackend(lambda m, p: Completion(text="c", usage=Usage(input_tokens=1, output_tokens=2)))
    assert backend.complete("x").usage.total_tokens == 3


def test_function_backend_bad_return_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="must return a str or a Completion"):
        FunctionBackend(lambda m, p: 42).complete("x")  # type: ignore[arg-type,return-value]


def test_function_backend_validation() -> None:
    with pytest.raises(ConfigurationError, match="callable"):
        FunctionBackend("nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        FunctionBackend(lambda m, p: "", supported_params=["bogus"])
    FunctionBackend(lambda m, p: "{}", supported_params=["output_schema"]).complete(
        "x",
        output_schema={"name": "n", "schema": {}},  # type: ignore[typeddict-item]
    )


@pytest.mark.anyio
async def test_async_function_backend() -> None:
    async def fn(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        return messages[-1].text + "!"

    backend = FunctionBackend(fn)
    assert (await backend.acomplete("hi")).text == "hi!"
    assert [p async for p in backend.astream("yo")] == ["yo!"]
    with pytest.raises(UnsupportedCapabilityError, match="coroutine function"):
        backend.complete("hi")


def test_mock_backend_fixture(mock_backend: MockBackend) -> None:
    mock_backend.add("scripted")
    assert mock_backend.complete("x").text == "scripted"


def test_plugin_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from promptkit import RealBackendBlockedError
        from promptkit.backends import check_real_request

        def test_fixture(mock_backend):
            mock_backend.add("hi")
            assert mock_backend.complete("x").text == "hi"

        def test_blocked():
            with pytest.raises(RealBackendBlockedError):
                check_real_request("openai:gpt-4o", "https://api.openai.com/v1")

        @pytest.mark.allow_real_backends
        def test_marker():
            check_real_request("openai:gpt-4o", "https://api.openai.com/v1")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3)


def test_plugin_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npromptkit_allow_real_backends = true\n")
    pytester.makepyfile(
        """
        from promptkit.backends import check_real_request

        def test_allowed():
            check_real_request("openai:gpt-4o", "https://api.openai.com/v1")
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_provider_server_fixture_serves_real_sdk_backends(provider_server: ProviderServer) -> None:
    import promptkit

    provider_server.add("Bonjour")
    with promptkit.backend(f"openai-compatible:local-model@{provider_server.openai_base_url}", api_key="k") as llm:
        completion = llm.complete("Say hello in French", max_tokens=5)
    assert completion.text == "Bonjour"
    (request,) = provider_server.requests
    assert request.body["model"] == "local-model"
    assert request.body["max_tokens"] == 5
