"""The backend contract: parameter validation, streams, the factory and the real-request gate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType

import pytest

import promptkit
from promptkit import (
    Backend,
    BaseBackend,
    Completion,
    ConfigurationError,
    ImagePart,
    Message,
    MissingDependencyError,
    RealBackendBlockedError,
    TextPart,
    UnsupportedCapabilityError,
    UnsupportedParameterError,
)
from promptkit.backends import (
    ALL_PARAMS,
    COMMON_PARAMS,
    AsyncStream,
    Request,
    Stream,
    WrapperBackend,
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
        ("gemini:pro", "unknown backend provider 'gemini'.*known providers: anthropic, llama.cpp, mock, openai"),
        ("gpt-4o", "did you mean 'openai:gpt-4o'"),
        ("claude-haiku-4-5", "did you mean 'anthropic:claude-haiku-4-5'"),
        ("llama3", "no provider; write it as 'provider:model'.*'openai:llama3'.*known providers: anthropic"),
        ("mock:", "empty model"),
        ("openai", "needs a model"),
        ("openai:", "needs a model"),
    ],
)
def test_factory_errors(spec: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        promptkit.backend(spec)


def test_factory_reports_missing_provider_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.backends import _factory

    monkeypatch.setitem(
        _factory._PROVIDERS, "openai", _factory._Provider("promptkit.backends._no_such_module", "X", "openai")
    )
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


def test_allow_real_requests_here_is_one_task_only() -> None:
    from promptkit.backends._gate import allow_real_requests_here

    real = ("openai:gpt-4o", "https://api.openai.com/v1")
    entered = asyncio.Event()
    outcomes: list[str] = []

    async def recording() -> None:
        with allow_real_requests_here():
            entered.set()
            await asyncio.sleep(0)
            check_real_request(*real)  # allowed here
            outcomes.append("recorded")
        with pytest.raises(RealBackendBlockedError):
            check_real_request(*real)  # and no longer once the block is left

    async def other() -> None:
        await entered.wait()
        with pytest.raises(RealBackendBlockedError):
            check_real_request(*real)  # another task, at the same time: still blocked
        outcomes.append("blocked")

    async def main() -> None:
        await asyncio.gather(recording(), other())

    asyncio.run(main())
    assert sorted(outcomes) == ["blocked", "recorded"]


# -- the request level and wrappers ---------------------------------------------------------------
class Counting(WrapperBackend):
    """A wrapper written only against public names: counts what passes through it."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.counts: dict[str, int] = {"complete": 0, "acomplete": 0, "stream": 0, "astream": 0}
        self.digests: list[str] = []

    def _count(self, kind: str, request: Request) -> None:
        self.counts[kind] += 1
        self.digests.append(request.digest)

    def complete_request(self, request: Request) -> Completion:
        self._count("complete", request)
        return super().complete_request(request)

    async def acomplete_request(self, request: Request) -> Completion:
        self._count("acomplete", request)
        return await super().acomplete_request(request)

    def stream_request(self, request: Request) -> Stream:
        self._count("stream", request)
        return super().stream_request(request)

    def astream_request(self, request: Request) -> AsyncStream:
        self._count("astream", request)
        return super().astream_request(request)


def _exercise(wrapper: Counting) -> list[str]:
    async def run_async() -> list[str]:
        first = await wrapper.acomplete("b", temperature=0)
        stream = wrapper.astream("d")
        second = "".join([delta async for delta in stream])
        return [first.text, second]

    texts = [wrapper.complete("a", temperature=0).text]
    texts.append("".join(wrapper.stream("c")))
    texts.extend(asyncio.run(run_async()))
    return texts


def test_a_counting_wrapper_sees_all_four_calls_over_the_mock() -> None:
    inner = MockBackend(["one", "two", "three", "four"])
    with Counting(inner) as wrapper:
        assert isinstance(wrapper, Backend)
        assert wrapper.name == "mock"
        assert wrapper.supported_params == inner.supported_params
        assert _exercise(wrapper) == ["one", "two", "three", "four"]
    assert wrapper.counts == {"complete": 1, "acomplete": 1, "stream": 1, "astream": 1}
    assert [r.digest for r in inner.calls] == wrapper.digests
    assert all(r.backend == "mock" for r in inner.calls)


def test_a_wrapper_validates_against_the_inner_backends_params() -> None:
    wrapper = Counting(OnlyComplete())
    with pytest.raises(UnsupportedParameterError, match="OnlyComplete does not support the parameter 'seed'"):
        wrapper.complete("hi", seed=1)
    assert wrapper.counts["complete"] == 0
    assert wrapper.complete("hi", temperature=0.5).text == "1:{'temperature': 0.5}"


def test_a_counting_wrapper_over_the_real_openai_backend() -> None:
    pytest.importorskip("openai")
    from promptkit.backends.openai import OpenAIBackend
    from promptkit.testing import ProviderServer

    with ProviderServer(["one", "two", "three", "four"]) as server:
        inner = OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key="sk-test-0123456789")
        with Counting(inner) as wrapper:
            assert wrapper.name == "openai:gpt-test"
            assert "output_schema" in wrapper.supported_params
            assert _exercise(wrapper) == ["one", "two", "three", "four"]
        assert wrapper.counts == {"complete": 1, "acomplete": 1, "stream": 1, "astream": 1}
        assert len(server.requests) == 4


def test_complete_is_complete_request_of_build_request() -> None:
    mock = MockBackend(["x", "y"])
    request = mock.build_request([("system", "s"), "hi"], {"temperature": 0.5})
    assert request.backend == "mock"
    assert mock.complete_request(request).text == "x"
    assert mock.calls[-1] is request
    assert mock.complete([("system", "s"), "hi"], temperature=0.5).text == "y"
    assert mock.calls[-1] == request
    assert mock.build_request("hi").params == {}


def test_mock_and_function_backends_declare_supported_params_like_the_base() -> None:
    assert MockBackend().supported_params == COMMON_PARAMS
    assert MockBackend(native_output=True).supported_params == COMMON_PARAMS | {"output_schema"}
    assert MockBackend(native_output=True).native_output
    both = FunctionBackend(lambda m, p: "", supported_params=["output_schema", "constraint"])
    assert both.supported_params == ALL_PARAMS
    assert OnlyComplete().supported_params == frozenset({"temperature"})


# -- Request.digest -----------------------------------------------------------------------------
_PINNED = Request(
    messages=(Message("system", "Be brief."), Message("user", "Capital of France?")),
    params=MappingProxyType({"temperature": 0, "max_tokens": 5, "stop": ("\n",)}),
    backend="openai:gpt-4o-mini",
)


def test_the_digest_format_is_pinned() -> None:
    # A change here invalidates every cache: bump DIGEST_VERSION when it is deliberate.
    assert _PINNED.canonical_json() == (
        '{"backend":"openai:gpt-4o-mini","messages":[{"role":"system","text":"Be brief."},'
        '{"role":"user","text":"Capital of France?"}],"params":{"max_tokens":5,"stop":["\\n"],'
        '"temperature":0.0},"v":1}'
    )
    assert _PINNED.digest == "3e4fc9b22127b62f010636cabd12ae3f22742f0d470270761e3ea5b5b7bcd0de"


_DIGEST_SCRIPT = """
from types import MappingProxyType
from promptkit import Message
from promptkit.backends import Request
r = Request(
    messages=(Message("system", "Be brief."), Message("user", "Capital of France?")),
    params=MappingProxyType({"temperature": 0, "max_tokens": 5, "stop": ("\\n",)}),
    backend="openai:gpt-4o-mini",
)
print(r.digest, hash(r))
"""


def test_the_digest_is_the_same_in_every_process() -> None:
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT], check=False, capture_output=True, text=True, env=env
        )
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout.strip())
    assert outputs == {f"{_PINNED.digest} {hash(_PINNED)}"}


def test_the_digest_covers_what_changes_the_output_and_nothing_else() -> None:
    mock = MockBackend()
    base = mock.build_request("hi", {"temperature": 0})
    assert mock.build_request("hi", {"temperature": 0.0}).digest == base.digest
    assert mock.build_request("hi", {"temperature": 0, "timeout": 3}).digest == base.digest
    assert hash(mock.build_request("hi", {"temperature": 0, "timeout": 3})) == hash(base)
    different = [
        mock.build_request("hi", {"temperature": 0.5}),
        mock.build_request("ho", {"temperature": 0}),
        mock.build_request([("system", "hi")], {"temperature": 0}),
        mock.build_request("hi", {"temperature": 0, "seed": 1}),
        mock.build_request("hi", {"temperature": 0, "extra": {"logprobs": True}}),
        replace(base, backend="openai:gpt-4o"),
        replace(base, sample=0),
        replace(base, sample=1),
    ]
    digests = {r.digest for r in different}
    assert len(digests) == len(different)
    assert base.digest not in digests


def test_the_digest_identifies_inline_images_by_their_bytes() -> None:
    def with_image(data: bytes) -> Request:
        url = "data:image/png;base64," + base64.b64encode(data).decode()
        return Request(messages=(Message("user", (TextPart(text="what?"), ImagePart(url=url))),))

    a, b = with_image(b"\x89PNG one"), with_image(b"\x89PNG two")
    assert a.digest != b.digest
    assert a.digest == with_image(b"\x89PNG one").digest
    assert hashlib.sha256(b"\x89PNG one").hexdigest() in a.canonical_json()
    assert base64.b64encode(b"\x89PNG one").decode() not in a.canonical_json()


def test_the_digest_never_holds_a_secret() -> None:
    # Credential-like keys of ``extra`` and key-like values are excluded (not redacted): they
    # do not change the reply, so a rotated key keeps the same digest.
    key = "sk-proj-abcdef0123456789SECRET"
    mock = MockBackend()
    plain = mock.build_request("hi", {"extra": {"logprobs": True}})
    secret = mock.build_request(
        "hi",
        {
            "extra": {
                "logprobs": True,
                "api_key": key,
                "extra_headers": {"Authorization": f"Bearer {key}"},
                "metadata": {"note": key},
            }
        },
    )
    text = secret.canonical_json()
    assert key not in text
    assert "SECRET" not in text
    assert "Bearer" not in text
    assert "api_key" not in text
    assert "extra_headers" not in text
    assert '"logprobs":true' in text
    assert secret.digest != plain.digest  # "metadata" stays, as an empty mapping
    assert mock.build_request("hi", {"extra": {"logprobs": True, "api_key": "sk-other-9876543210"}}).digest == (
        plain.digest
    )


def test_a_request_repr_masks_secrets_in_extra() -> None:
    from promptkit.testing import MockBackend

    key = "sk-live-0123456789abcdefghijklmnop"
    request = MockBackend().build_request("Hi", {"extra": {"api_key": key, "headers": {"x": "y"}, "note": key, "n": 2}})
    shown = repr(request)
    assert key not in shown
    assert "'n': 2" in shown
    assert "Hi" in shown


def test_backend_html_names_the_model_provider_and_wrappers_escaped() -> None:
    from promptkit import CachedBackend, FallbackBackend
    from promptkit.testing import MockBackend

    mock = MockBackend(["hi"], model="<b>tiny</b>")
    shown = mock._repr_html_()
    assert "<b>MockBackend</b>" in shown
    assert "<b>tiny</b>" not in shown
    assert "name</th><td>mock:&lt;b&gt;tiny&lt;/b&gt;</td>" in shown
    assert "model</th><td>&lt;b&gt;tiny&lt;/b&gt;</td>" in shown
    assert "provider</th><td>mock</td>" in shown
    assert "max_tokens" in shown
    assert "wrappers" not in shown

    wrapped = CachedBackend(mock)._repr_html_()
    assert "<b>CachedBackend</b>" in wrapped
    assert "wrappers</th><td>CachedBackend → MockBackend</td>" in wrapped

    fallback = FallbackBackend([MockBackend(["a"], model="one"), CachedBackend(MockBackend(["b"], model="two"))])
    members = fallback._repr_html_()
    assert "tried in order" in members
    assert members.index("mock:one") < members.index("mock:two")
    assert "CachedBackend → MockBackend" in members


def test_sdk_backend_html_shows_its_endpoint_and_never_its_key() -> None:
    from promptkit.backends.openai import OpenAIBackend

    llm = OpenAIBackend(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-secret-0123456789")
    shown = llm._repr_html_()
    assert "name</th><td>openai:gpt-4o-mini</td>" in shown
    assert "provider</th><td>openai</td>" in shown
    assert "base url</th><td>http://127.0.0.1:9/v1</td>" in shown
    assert "sk-secret" not in shown
    assert "0123456789" not in shown
