"""The backend contract: parameter validation, streams, the factory and the real-request gate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import promptkit
from promptkit import (
    Backend,
    BaseBackend,
    Completion,
    ConfigurationError,
    MissingDependencyError,
    RealBackendBlockedError,
    UnsupportedCapabilityError,
    UnsupportedParameterError,
)
from promptkit.backends import (
    Request,
    allow_real_requests,
    check_real_request,
    real_requests_allowed,
)
from promptkit.testing import FunctionBackend, MockBackend


class OnlyComplete(BaseBackend):
    supported_params = frozenset({"temperature"})

    def _complete(self, request: Request) -> Completion:
        return Completion(text=f"{len(request.messages)}:{dict(request.params)}")


def test_mock_and_function_backends_satisfy_the_protocol() -> None:
    assert isinstance(MockBackend(), Backend)
    assert isinstance(FunctionBackend(lambda m, p: "x"), Backend)
    assert isinstance(OnlyComplete(), Backend)


def test_only_set_params_reach_the_backend() -> None:
    assert OnlyComplete().complete("hi").text == "1:{}"
    assert OnlyComplete().complete("hi", temperature=0.5).text == "1:{'temperature': 0.5}"


def test_unsupported_param_names_param_and_class() -> None:
    with pytest.raises(UnsupportedParameterError, match="OnlyComplete does not support the parameter 'seed'"):
        OnlyComplete().complete("hi", seed=1)


def test_unknown_param_lists_known_ones() -> None:
    with pytest.raises(UnsupportedParameterError, match=r"known parameters:.*temperature") as info:
        OnlyComplete().complete("hi", temprature=0.5)  # type: ignore[call-arg]
    assert info.value.param == "temprature"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"temperature": -1}, "temperature must be between"),
        ({"temperature": float("nan")}, "finite number"),
        ({"temperature": True}, "finite number"),
        ({"top_p": 1.5}, "top_p must be between"),
        ({"max_tokens": 0}, "max_tokens must be >= 1"),
        ({"max_tokens": 1.5}, "max_tokens must be an int"),
        ({"seed": "1"}, "seed must be an int"),
        ({"stop": []}, "stop must be"),
        ({"stop": ["", "x"]}, "stop must be"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"extra": ["x"]}, "extra must be a mapping"),
    ],
)
def test_param_validation(params: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        MockBackend(["x"]).complete("hi", **params)  # type: ignore[arg-type]


def test_params_are_normalised() -> None:
    mock = MockBackend(["x"])
    mock.complete("hi", stop="END", extra={"logprobs": True}, max_tokens=5, timeout=2)
    params = mock.last_request.params
    assert params["stop"] == ("END",)
    assert dict(params["extra"]) == {"logprobs": True}
    assert params["max_tokens"] == 5


def test_output_schema_is_opt_in() -> None:
    schema = {"name": "answer", "schema": {"type": "object"}}
    with pytest.raises(UnsupportedParameterError, match="output_schema"):
        MockBackend(["{}"]).complete("hi", output_schema=schema)  # type: ignore[typeddict-item]
    mock = MockBackend(["{}"], native_output=True)
    mock.complete("hi", output_schema=schema)  # type: ignore[typeddict-item]
    assert mock.last_request.params["output_schema"]["strict"] is True


def test_missing_capabilities_raise_naming_the_class() -> None:
    backend = OnlyComplete()
    with pytest.raises(UnsupportedCapabilityError, match="OnlyComplete does not support streaming"):
        backend.stream("hi")
    with pytest.raises(UnsupportedCapabilityError, match="OnlyComplete does not support async streaming"):
        backend.astream("hi")


@pytest.mark.anyio
async def test_default_acomplete_runs_sync_path_off_the_loop() -> None:
    assert (await OnlyComplete().acomplete("hi")).text == "1:{}"


def test_request_is_hashable_for_cache_keys() -> None:
    backend = MockBackend(["a", "b"])
    r1 = backend.build_request("hi", {"stop": ["x"], "extra": {"a": [1]}})
    r2 = backend.build_request([("user", "hi")], {"stop": "x", "extra": {"a": [1]}})
    assert hash(r1) == hash(r2)
    assert r1 == r2


def test_stream_completion_only_after_the_end() -> None:
    stream = MockBackend(["one two"]).stream("hi")
    with pytest.raises(UnsupportedCapabilityError, match="has not finished"):
        _ = stream.completion
    it = iter(stream)
    assert next(it) == "one "
    assert stream.text == "one "
    assert not stream.done
    assert list(it) == ["two"]
    assert stream.done
    assert stream.completion.text == "one two"
    assert stream.completion.finish_reason == "stop"


def test_stream_close_closes_the_source() -> None:
    closed = []

    def chunks() -> Iterator[promptkit.Chunk]:
        try:
            yield promptkit.Chunk(text="a")
            yield promptkit.Chunk(text="b")
        finally:
            closed.append(True)

    stream = promptkit.Stream(chunks(), backend="t")
    with stream:
        assert next(iter(stream)) == "a"
    assert closed == [True]
    assert "open" in repr(stream)


def test_backend_is_a_context_manager() -> None:
    closed = []

    class Closing(OnlyComplete):
        def close(self) -> None:
            closed.append(True)

    with Closing() as b:
        b.complete("x")
    assert closed == [True]


@pytest.mark.anyio
async def test_async_context_manager_closes() -> None:
    closed = []

    class Closing(OnlyComplete):
        def close(self) -> None:
            closed.append(True)

    async with Closing():
        pass
    assert closed == [True]


def test_factory_mock() -> None:
    backend = promptkit.backend("mock", replies=["hi"])
    assert isinstance(backend, MockBackend)
    assert backend.complete("x").text == "hi"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "non-empty string"),
        ("gemini:pro", "unknown backend provider 'gemini'.*known providers: mock, anthropic, openai"),
        ("openai", "needs a model"),
        ("openai:", "needs a model"),
    ],
)
def test_factory_errors(spec: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        promptkit.backend(spec)


def test_factory_reports_missing_provider_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit import backends

    monkeypatch.setitem(backends._PROVIDERS, "openai", ("promptkit.backends._no_such_module", "X", "openai"))
    with pytest.raises(MissingDependencyError, match="openai"):
        promptkit.backend("openai:gpt-4o-mini")


def test_real_requests_blocked_under_pytest() -> None:
    assert not real_requests_allowed()
    with pytest.raises(RealBackendBlockedError, match="allow_real_backends"):
        check_real_request("openai:gpt-4o", "https://api.openai.com/v1")
    with pytest.raises(RealBackendBlockedError):
        check_real_request("openai:gpt-4o", None)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:1234", "http://[::1]:9/v1"])
def test_loopback_servers_are_always_allowed(url: str) -> None:
    check_real_request("openai:local", url)


@pytest.mark.allow_real_backends
def test_marker_allows_real_requests() -> None:
    assert real_requests_allowed()
    check_real_request("openai:gpt-4o", "https://api.openai.com/v1")


def test_fixture_allows_real_requests(allow_real_backends: None) -> None:
    assert real_requests_allowed()


def test_allow_real_requests_context_restores() -> None:
    with allow_real_requests():
        assert real_requests_allowed()
    assert not real_requests_allowed()
