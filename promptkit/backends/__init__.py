"""The one backend contract: ``Backend``, ``BaseBackend``, requests, streams and the factory.

Every backend, real or fake, offers ``complete``/``acomplete``/``stream``/``astream`` with the same
keyword parameters. ``BaseBackend`` validates those parameters once, so a concrete backend only
implements ``_complete``/``_acomplete``/``_stream``/``_astream`` on a validated :class:`Request`,
and wrappers (retry, cache, ...) can wrap any backend at that level.

>>> from promptkit.testing import MockBackend
>>> with MockBackend(["4"]) as llm:
...     llm.complete("2+2?", temperature=0).text
'4'
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict, runtime_checkable

from .._errors import (
    ConfigurationError,
    IncompleteStreamError,
    MissingDependencyError,
    RealBackendBlockedError,
    UnsupportedCapabilityError,
    UnsupportedParameterError,
)
from .._messages import Chunk, Completion, FinishReason, Message, MessagesLike, Usage, coerce_messages
from .._utils import publish as _publish

if TYPE_CHECKING:
    from types import ModuleType

    from typing_extensions import Self, Unpack

__all__ = [
    "AsyncStream",
    "Backend",
    "BaseBackend",
    "OutputSchema",
    "Params",
    "Request",
    "Stream",
    "allow_real_requests",
    "backend",
    "real_requests_allowed",
]


class OutputSchema(TypedDict):
    """A request for the provider's native structured output: a JSON schema the reply must match.

    ``schema`` is already in the strict form providers accept (every property required,
    ``additionalProperties: false``); ``name`` is a short identifier for it.
    """

    name: str
    schema: Mapping[str, Any]
    strict: bool


class Params(TypedDict, total=False):
    """The keyword parameters every backend method accepts.

    ``timeout`` is one total deadline in seconds for the whole call, retries included.
    ``output_schema`` asks for native structured output; only backends that list it in
    ``supported_params`` accept it. ``extra`` passes provider-specific fields through unchanged
    (e.g. ``{"logprobs": True}``); a backend that cannot pass extras through rejects it.
    """

    temperature: float
    max_tokens: int
    stop: str | Sequence[str]
    seed: int
    top_p: float
    timeout: float
    output_schema: OutputSchema
    extra: Mapping[str, Any]


ALL_PARAMS: frozenset[str] = frozenset(Params.__annotations__)
COMMON_PARAMS: frozenset[str] = ALL_PARAMS - {"output_schema"}
"""What a backend supports unless it says otherwise; native structured output is opt-in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A validated call: messages plus only the parameters the caller actually set.

    ``params`` never contains unset parameters, so a backend forwards exactly what was asked.
    """

    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __hash__(self) -> int:
        return hash((self.messages, _freeze(self.params)))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@runtime_checkable
class Backend(Protocol):
    """What :class:`~promptkit.Prompt` needs from a model: four ways to ask it one question."""

    @property
    def name(self) -> str:
        """A short identifier such as ``"openai:gpt-4o-mini"`` or ``"mock"``."""
        ...

    def complete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion: ...

    async def acomplete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion: ...

    def stream(self, messages: MessagesLike, **params: Unpack[Params]) -> Stream: ...

    def astream(self, messages: MessagesLike, **params: Unpack[Params]) -> AsyncStream: ...


class _StreamBase:
    """What sync and async streams share: accumulation of deltas into a final Completion."""

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._parts: list[str] = []
        self._model: str | None = None
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._raw: list[Any] = []
        self._done = False

    def _absorb(self, chunk: Chunk) -> str:
        if chunk.text:
            self._parts.append(chunk.text)
        if chunk.model is not None:
            self._model = chunk.model
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.finish_reason is not None:
            self._finish = chunk.finish_reason
        if chunk.raw is not None:
            self._raw.append(chunk.raw)
        return chunk.text

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        """True once the stream has ended normally."""
        return self._done

    @property
    def completion(self) -> Completion:
        """The whole reply with usage; available once the stream has been consumed."""
        if not self._done:
            raise UnsupportedCapabilityError(
                "the stream has not finished yet; iterate it to the end before reading .completion"
            )
        return Completion(
            text=self.text,
            model=self._model,
            usage=self._usage if self._usage is not None else Usage(),
            finish_reason=self._finish,
            raw=tuple(self._raw) or None,
        )


class Stream(_StreamBase):
    """A streamed reply: iterate it for text deltas, then read :attr:`completion`.

    >>> from promptkit.testing import MockBackend
    >>> s = MockBackend(["Hello there"], chunk_size=5).stream("Hi")
    >>> list(s)
    ['Hello', ' ther', 'e']
    >>> s.completion.text
    'Hello there'
    """

    def __init__(self, chunks: Iterator[Chunk], *, backend: str = "") -> None:
        super().__init__(backend)
        self._chunks = chunks

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            text = self._absorb(chunk)
            if text:
                yield text
        self._done = True

    def close(self) -> None:
        """Stop the stream early and release its connection."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<Stream {self._backend} {state} chars={sum(map(len, self._parts))}>"


class AsyncStream(_StreamBase):
    """The async twin of :class:`Stream`: ``async for delta in stream``, then ``.completion``."""

    def __init__(self, chunks: AsyncIterator[Chunk], *, backend: str = "") -> None:
        super().__init__(backend)
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[str]:
        async for chunk in self._chunks:
            text = self._absorb(chunk)
            if text:
                yield text
        self._done = True

    async def aclose(self) -> None:
        """Stop the stream early and release its connection."""
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<AsyncStream {self._backend} {state} chars={sum(map(len, self._parts))}>"


def _check_number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")
    return value


def validate_params(params: Mapping[str, Any], *, supported: frozenset[str], backend: str) -> dict[str, Any]:
    """Check names, types and ranges of ``params``; return them normalised (``stop`` as a tuple)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in ALL_PARAMS and key not in supported:
            raise UnsupportedParameterError(
                key, backend, hint=f"known parameters: {', '.join(sorted(ALL_PARAMS | supported))}"
            )
        if key not in supported:
            raise UnsupportedParameterError(key, backend)
        if key == "temperature":
            value = _check_number(key, value, low=0.0, high=2.0)
        elif key == "top_p":
            value = _check_number(key, value, low=0.0, high=1.0)
        elif key in ("max_tokens", "seed"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"{key} must be an int, not {value!r}")
            if key == "max_tokens" and value < 1:
                raise ConfigurationError(f"max_tokens must be >= 1, got {value}")
        elif key == "stop":
            seq = (value,) if isinstance(value, str) else tuple(value)
            if not seq or not all(isinstance(s, str) and s for s in seq):
                raise ConfigurationError(f"stop must be a non-empty str or a sequence of them, not {value!r}")
            value = seq
        elif key == "timeout":
            value = _check_number(key, value, low=0.0)
            if value == 0:
                raise ConfigurationError("timeout must be > 0 seconds")
        elif key == "output_schema":
            if not isinstance(value, Mapping) or not {"name", "schema"} <= set(value):
                raise ConfigurationError("output_schema must be a mapping with 'name' and 'schema'")
            value = MappingProxyType({"strict": True, **value})
        elif key == "extra":
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"extra must be a mapping of provider fields, not {value!r}")
            value = MappingProxyType(dict(value))
        out[key] = value
    return out


class BaseBackend:
    """Validation, async defaults and context management shared by all backends.

    Subclasses set ``supported_params`` and implement ``_complete`` (and, where they can,
    ``_acomplete``, ``_stream`` and ``_astream``). Anything not implemented raises
    :class:`~promptkit.UnsupportedCapabilityError` naming the class.
    """

    supported_params: ClassVar[frozenset[str]] = COMMON_PARAMS

    @property
    def name(self) -> str:
        return type(self).__name__

    # -- public API ---------------------------------------------------------------------------
    def build_request(self, messages: MessagesLike, params: Mapping[str, Any]) -> Request:
        """Validate messages and params into a :class:`Request` without sending it."""
        clean = validate_params(params, supported=self.supported_params, backend=type(self).__name__)
        return Request(messages=coerce_messages(messages), params=MappingProxyType(clean))

    def complete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion:
        """Send ``messages`` and return the whole reply."""
        return self._complete(self.build_request(messages, params))

    async def acomplete(self, messages: MessagesLike, **params: Unpack[Params]) -> Completion:
        """Async :meth:`complete`."""
        return await self._acomplete(self.build_request(messages, params))

    def stream(self, messages: MessagesLike, **params: Unpack[Params]) -> Stream:
        """Send ``messages`` and return a :class:`Stream` of text deltas."""
        request = self.build_request(messages, params)
        return Stream(self._stream(request), backend=self.name)

    def astream(self, messages: MessagesLike, **params: Unpack[Params]) -> AsyncStream:
        """Async :meth:`stream`: ``async for delta in backend.astream(...)``."""
        request = self.build_request(messages, params)
        return AsyncStream(self._astream(request), backend=self.name)

    # -- what subclasses implement ------------------------------------------------------------
    def _complete(self, request: Request) -> Completion:
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support complete()")

    async def _acomplete(self, request: Request) -> Completion:
        # Default: run the sync path in a worker thread, so the event loop is never blocked.
        import asyncio  # already loaded by whoever runs this coroutine; kept off import time

        return await asyncio.to_thread(self._complete, request)

    def _stream(self, request: Request) -> Iterator[Chunk]:
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support streaming")

    def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        # Subclasses write this as an ``async def`` generator; the default refuses at once.
        raise UnsupportedCapabilityError(f"{type(self).__name__} does not support async streaming")

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release clients and connections. Called by ``with backend:``."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def stream_incomplete(provider: str, text: str, detail: str = "") -> IncompleteStreamError:
    """The error for a stream that ended before its final event, keeping the partial text."""
    msg = "the stream ended before its final event"
    return IncompleteStreamError(f"{msg}: {detail}" if detail else msg, partial_text=text, provider=provider)


# -- blocking real requests under test ----------------------------------------------------------
class _Gate:
    blocked = False
    reason = ""


def real_requests_allowed() -> bool:
    """False while real provider calls are blocked (the pytest plugin blocks them by default)."""
    return not _Gate.blocked


@contextlib.contextmanager
def allow_real_requests(allowed: bool = True) -> Iterator[None]:
    """Temporarily allow (or block) real provider requests.

    The pytest plugin blocks them for every test; ``@pytest.mark.allow_real_backends`` or the
    ``allow_real_backends`` fixture use this to switch them back on.
    """
    previous = _Gate.blocked
    _Gate.blocked = not allowed
    try:
        yield
    finally:
        _Gate.blocked = previous


def _is_loopback(base_url: str | None) -> bool:
    if not base_url:
        return False
    import ipaddress  # only real backends ask, and they are rare in a process that only renders
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_real_request(backend: str, base_url: str | None) -> None:
    """Raise :class:`RealBackendBlockedError` when real requests are blocked.

    A server on the loopback interface (such as :class:`promptkit.testing.ProviderServer`) is
    never a real provider, so requests to it are always allowed.
    """
    if _Gate.blocked and not _is_loopback(base_url):
        raise RealBackendBlockedError(
            f"{backend} tried to call a real provider ({base_url or 'default endpoint'}) under test; "
            "use promptkit.testing.MockBackend, or allow it with @pytest.mark.allow_real_backends "
            "or the allow_real_backends fixture",
            provider=backend,
        )


# -- the factory --------------------------------------------------------------------------------
_PROVIDERS: dict[str, tuple[str, str, str]] = {
    # prefix: (module, class, extra)
    "openai": ("promptkit.backends.openai", "OpenAIBackend", "openai"),
    "openai-compatible": ("promptkit.backends.openai", "OpenAIBackend", "openai"),
    "anthropic": ("promptkit.backends.anthropic", "AnthropicBackend", "anthropic"),
}


def _provider_module(module: str, extra: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise MissingDependencyError(
                f"the {extra!r} backend is not available in this version of promptkit"
            ) from exc
        raise


def backend(spec: str, **options: Any) -> Backend:
    """Build a backend from a ``"provider:model"`` string.

    ``"mock"`` gives a :class:`promptkit.testing.MockBackend`; ``"openai:<model>"``,
    ``"anthropic:<model>"`` and ``"openai-compatible:<model>@<base_url>"`` build the real ones
    (their SDKs are optional extras). ``options`` go to the backend's constructor.

    >>> backend("mock", replies=["hi"]).complete("hello").text
    'hi'
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigurationError(f"backend spec must be a non-empty string like 'openai:gpt-4o-mini', not {spec!r}")
    if spec == "mock":
        from ..testing import MockBackend

        return MockBackend(**options)
    provider, sep, model = spec.partition(":")
    if provider not in _PROVIDERS:
        known = ", ".join(["mock", *sorted(_PROVIDERS)])
        raise ConfigurationError(f"unknown backend provider {provider!r} in {spec!r}; known providers: {known}")
    if not sep or not model:
        raise ConfigurationError(f"backend spec {spec!r} needs a model, e.g. '{provider}:<model>'")
    module_name, class_name, extra = _PROVIDERS[provider]
    module = _provider_module(module_name, extra)
    cls = getattr(module, class_name)
    if provider == "openai-compatible":
        model, at, base_url = model.rpartition("@")
        if not at or not model or not base_url:
            raise ConfigurationError(f"backend spec {spec!r} must look like 'openai-compatible:<model>@<base_url>'")
        options.setdefault("base_url", base_url)
    result: Backend = cls(model=model, **options)
    return result


_publish(__name__, __all__, globals())  # public paths in reprs and pickles (see promptkit._utils)
