"""What the OpenAI and Anthropic backends share: lazy SDK clients, retries, deadlines, lifecycle.

A provider module subclasses :class:`SDKBackend` and supplies the wire details: building its SDK
clients, turning a :class:`~promptkit.backends.Request` into SDK arguments, sending them, turning
replies and stream events into :class:`~promptkit.Completion` and :class:`~promptkit.Chunk`, and
mapping the SDK's errors (one function per adapter). Everything here runs the same way for both.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol

from promptkit._errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    IncompleteStreamError,
    MissingDependencyError,
    RateLimitError,
    ResponseError,
    ServerError,
)
from promptkit._images import check_images
from promptkit._messages import Chunk, Completion
from promptkit._utils import mask_key, require

from ._contract import BaseBackend, Request
from ._gate import check_real_request
from ._preview import mask_header
from ._retry import (
    Deadline,
    RetryPolicy,
    aretry_call,
    astream_with_retries,
    parse_retry_after,
    retry_call,
    stream_with_retries,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["SDKBackend", "error_for_status", "fallback_error", "is_timeout", "raise_typed", "request_id_of"]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 600.0


class StreamAccumulator(Protocol):
    """Per-provider state of one stream: takes SDK events, returns their text deltas."""

    def absorb(self, event: Any) -> str: ...


class SDKBackend(BaseBackend):
    """A backend over an official provider SDK. Subclasses set the class variables and hooks."""

    provider: ClassVar[str] = ""
    sdk_module: ClassVar[str] = ""
    extra_name: ClassVar[str] = ""
    env_key: ClassVar[str] = ""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        client: Any = None,
        async_client: Any = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        async_http: str = "auto",
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"model must be a non-empty string, not {model!r}")
        for label, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{label} must be a positive number of seconds, not {value!r}")
        if async_http not in ("auto", "httpx", "aiohttp"):
            raise ConfigurationError(f"async_http must be 'auto', 'httpx' or 'aiohttp', not {async_http!r}")
        if client is None and async_client is None and importlib.util.find_spec(self.sdk_module) is None:
            raise MissingDependencyError(
                f"{type(self).__name__} needs the {self.sdk_module!r} package; "
                f'install it with: pip install "promptkit[{self.extra_name}]"'
            )
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get(self.env_key)
        self._base_url = base_url
        self._connect_timeout = float(connect_timeout)
        self._read_timeout = float(read_timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self._async_http = async_http
        self._lock = threading.Lock()
        self._sdk: ModuleType | None = None
        self._user_sync: Any = None
        self._user_async: Any = None
        for given in (client, async_client):
            if given is not None:
                if _is_async_client(given):
                    self._user_async = given
                else:
                    self._user_sync = given
        self._sync_client: Any = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._closing: set[Any] = set()  # close tasks scheduled on running loops, kept alive
        self._user_async_ready: Any = None
        if self._base_url is None:
            given_client = self._user_sync or self._user_async
            self._base_url = str(given_client.base_url) if given_client is not None else self._default_base_url()

    # -- subclass hooks ---------------------------------------------------------------------------
    def _default_base_url(self) -> str | None:
        return None

    def _make_sync_client(self, sdk: ModuleType) -> Any:
        raise NotImplementedError

    def _make_async_client(self, sdk: ModuleType) -> Any:
        raise NotImplementedError

    def _send(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        raise NotImplementedError

    async def _asend(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        raise NotImplementedError

    def _to_completion(self, reply: Any) -> Completion:
        raise NotImplementedError

    def _new_stream_state(self) -> StreamAccumulator:
        raise NotImplementedError

    def _check_stream(self, stream: Any) -> None:
        """Reject a stream the provider answered with something other than server-sent events."""
        response = getattr(stream, "response", None)
        ctype = response.headers.get("content-type", "") if response is not None else "text/event-stream"
        if not ctype.startswith("text/event-stream"):
            raise ResponseError(
                f"{self.name}: expected an event stream but the server answered {ctype or 'no content type'}",
                provider=self.name,
                status_code=getattr(response, "status_code", None),
            )

    def _finish(self, state: Any) -> Chunk:
        """The final chunk (usage, finish reason), or a typed error for a stream cut short."""
        raise NotImplementedError

    def _completion_of(self, reply: Any) -> Completion:
        """The Completion for an SDK reply; anything malformed in it is a ResponseError."""
        request_id = getattr(reply, "_request_id", None)
        try:
            return self._to_completion(reply)
        except BackendError as exc:
            _stamp(exc, 200, request_id)
            raise
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
            raise ResponseError(
                f"{self.name}: malformed reply ({type(exc).__name__}: {exc})",
                provider=self.name,
                status_code=200,
                request_id=request_id,
            ) from exc

    def _absorb(self, state: StreamAccumulator, event: Any) -> str:
        try:
            return state.absorb(event)
        except BackendError:
            raise
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
            raise ResponseError(
                f"{self.name}: malformed stream event ({type(exc).__name__}: {exc})", provider=self.name
            ) from exc

    def _final(self, state: Any, response: Any) -> Chunk:
        try:
            return self._finish(state)
        except BackendError as exc:
            _stamp_from(exc, response)
            raise

    def _events(self, stream: Any, deadline: Deadline) -> Iterator[Chunk]:
        from ._http import wrap_body

        state = self._new_stream_state()
        response = getattr(stream, "response", None)
        try:
            self._check_stream(stream)
            wrap_body(stream.response, deadline)
            for event in stream:
                text = self._absorb(state, event)
                if text:
                    yield Chunk(text=text)
        except Exception as exc:
            raise_typed(_stamp_from(self._map_error(exc, deadline), response), exc)
        finally:
            stream.close()
        yield self._final(state, response)

    async def _aevents(self, stream: Any, deadline: Deadline) -> AsyncIterator[Chunk]:
        state = self._new_stream_state()
        response = getattr(stream, "response", None)
        try:
            self._check_stream(stream)
            async for event in stream:
                text = self._absorb(state, event)
                if text:
                    yield Chunk(text=text)
        except Exception as exc:
            raise_typed(_stamp_from(self._map_error(exc, deadline), response), exc)
        finally:
            await stream.close()
        yield self._final(state, response)

    def _map_error(self, exc: BaseException, deadline: Deadline | None = None) -> BackendError:
        raise NotImplementedError

    # -- previews ---------------------------------------------------------------------------------
    def _preview_headers(self, fallback: Mapping[str, str]) -> dict[str, str]:
        """The headers the client sends on every request, secrets masked (no network call).

        They are read from the client (built now if need be, as a call would); when it cannot be
        built (no API key), ``fallback``, the headers the backend sets itself, stands in.
        """
        try:
            client = self.sync_client()
        except AuthenticationError:
            headers: Any = fallback
        else:
            sdk_headers = getattr(client, "default_headers", None)
            if sdk_headers is not None:  # an SDK client; its credentials may sit apart
                headers = {**sdk_headers, **(getattr(client, "auth_headers", None) or {})}
            else:  # the direct HTTP client
                headers = getattr(client, "headers", None) or fallback
        return {str(k).lower(): mask_header(str(k), v) for k, v in headers.items() if isinstance(v, str)}

    # -- identity ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def base_url(self) -> str | None:
        """The endpoint requests go to (``None``: the SDK's default, the provider's API)."""
        return self._base_url

    def __repr__(self) -> str:
        where = f" base_url={self._base_url!r}" if self._base_url else ""
        return f"<{type(self).__name__} {self.name}{where} api_key={mask_key(self._api_key)}>"

    # -- clients ----------------------------------------------------------------------------------
    def _module(self) -> ModuleType:
        sdk = self._sdk
        if sdk is None:
            sdk = self._sdk = require(self.sdk_module, extra=self.extra_name)
        return sdk

    def _require_key(self) -> str:
        if self._api_key:
            return self._api_key
        if self._base_url is not None and not _is_official(self._base_url):
            return "unused"  # OpenAI-compatible local servers take any key
        raise AuthenticationError(
            f"{self.name}: no API key; pass api_key=... or set {self.env_key}", provider=self.name
        )

    def sync_client(self) -> Any:
        """The SDK client used for sync calls: built once (``max_retries=0``) and reused."""
        client = self._sync_client
        if client is not None:
            return client
        with self._lock:
            if self._sync_client is None:
                if self._user_sync is not None:
                    self._sync_client = self._user_sync.with_options(max_retries=0)
                else:
                    self._sync_client = self._make_sync_client(self._module())
            return self._sync_client

    def async_client(self) -> Any:
        """The SDK client for async calls on the running event loop: built once per loop and reused."""
        if self._user_async is not None:
            if self._user_async_ready is None:
                self._user_async_ready = self._user_async.with_options(max_retries=0)
            return self._user_async_ready
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            entry = self._async_clients[loop] = _LoopClient(self._make_async_client(self._module()))
        return entry.client

    def _use_aiohttp(self) -> bool:
        if self._async_http == "aiohttp":
            return True
        return self._async_http == "auto" and importlib.util.find_spec("aiohttp") is not None

    def close(self) -> None:
        """Close the SDK clients this backend built (never a client that was handed in).

        An async client belongs to the event loop it was built on: it is closed on that loop,
        now if the loop is idle, soon if it is running, and at the latest when ``asyncio.run``
        shuts the loop down (so a sync ``with backend:`` around ``asyncio.run(...)`` leaves no
        session open).
        """
        client, self._sync_client = self._sync_client, None
        if client is not None and self._user_sync is None:
            client.close()
        entries, self._async_clients = list(self._async_clients.items()), weakref.WeakKeyDictionary()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, entry in entries:
            if loop.is_closed() or entry.closed:
                continue
            if loop is running:
                task = loop.create_task(entry.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            elif loop.is_running():  # another thread's loop
                asyncio.run_coroutine_threadsafe(entry.aclose(), loop)
            else:
                loop.run_until_complete(entry.aclose())

    async def aclose(self) -> None:
        """Close the clients this backend built, the async one of the running loop included."""
        loop = asyncio.get_running_loop()
        entry = self._async_clients.pop(loop, None)
        if entry is not None:
            await entry.aclose()
        self.close()

    # -- calls ------------------------------------------------------------------------------------
    def _deadline(self, request: Request) -> Deadline:
        timeout = request.params.get("timeout")
        return Deadline(timeout if timeout is not None else self.retry.deadline)

    def _complete(self, request: Request) -> Completion:
        check_images(request.messages, self.provider)  # a refused image fails now, not inside retries
        client = self.sync_client()  # built (and its SDK imported) before the deadline starts
        deadline = self._deadline(request)
        from ._http import deadline_scope

        def attempt() -> Completion:
            check_real_request(self.name, self._base_url)
            try:
                with deadline_scope(deadline):
                    reply = self._send(client, request, deadline, stream=False)
                return self._completion_of(reply)
            except Exception as exc:
                raise_typed(self._map_error(exc, deadline), exc)

        return retry_call(attempt, policy=self.retry, deadline=deadline, provider=self.name)

    async def _acomplete(self, request: Request) -> Completion:
        check_images(request.messages, self.provider)  # a refused image fails now, not inside retries
        client = self.async_client()
        deadline = self._deadline(request)

        async def attempt() -> Completion:
            check_real_request(self.name, self._base_url)
            try:
                reply = await self._asend(client, request, deadline, stream=False)
                return self._completion_of(reply)
            except Exception as exc:
                raise_typed(self._map_error(exc, deadline), exc)

        return await aretry_call(attempt, policy=self.retry, deadline=deadline, provider=self.name)

    def _stream(self, request: Request) -> Iterator[Chunk]:
        check_images(request.messages, self.provider)  # a refused image fails now, not inside retries
        self.sync_client()  # built before the deadline starts, as for complete()
        deadline = self._deadline(request)

        def open_chunks() -> Iterator[Chunk]:
            check_real_request(self.name, self._base_url)
            from ._http import deadline_scope

            try:
                with deadline_scope(deadline):  # bounds the wait for the headers too
                    stream = self._send(self.sync_client(), request, deadline, stream=True)
            except Exception as exc:
                raise_typed(self._map_error(exc, deadline), exc)
            return self._events(stream, deadline)

        return stream_with_retries(open_chunks, policy=self.retry, deadline=deadline, provider=self.name)

    def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        check_images(request.messages, self.provider)  # a refused image fails now, not inside retries
        deadline = self._deadline(request)

        async def opened() -> AsyncIterator[Chunk]:
            check_real_request(self.name, self._base_url)
            try:
                stream = await self._asend(self.async_client(), request, deadline, stream=True)
            except Exception as exc:
                raise_typed(self._map_error(exc, deadline), exc)
            events = self._aevents(stream, deadline)
            try:
                async for chunk in events:
                    yield chunk
            finally:
                await events.aclose()  # type: ignore[attr-defined]

        return astream_with_retries(opened, policy=self.retry, deadline=deadline, provider=self.name)


def _stamp(err: BackendError, status: int | None, request_id: str | None) -> BackendError:
    """Fill in the reply's request id, and for a bad reply its status, where ``err`` lacks them."""
    if err.request_id is None:
        err.request_id = request_id
    if err.status_code is None and isinstance(err, (ResponseError, IncompleteStreamError)):
        err.status_code = status
    return err


def _stamp_from(err: BackendError, response: Any) -> BackendError:
    if response is None:
        return err
    return _stamp(err, getattr(response, "status_code", None), request_id_of(getattr(response, "headers", None)))


class _LoopClient:
    """An async SDK client and the guard that closes it when its event loop shuts down.

    The guard is an async generator started on the loop and parked at its ``yield``. The loop
    tracks it as one of its live async generators, so ``asyncio.run`` (through
    ``loop.shutdown_asyncgens()``) closes it before the loop closes, and its ``finally`` closes
    the client while the loop can still run the client's cleanup.
    """

    __slots__ = ("_guard", "client", "closed")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.closed = False
        self._guard = self._close_at_loop_end()
        step = self._guard.__anext__()  # registers the generator with the running loop
        try:
            step.send(None)  # runs up to the ``yield``, which never awaits
        except StopIteration:
            pass

    async def _close_at_loop_end(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not self.closed:
                self.closed = True
                await self.client.close()

    async def aclose(self) -> None:
        await self._guard.aclose()


def raise_typed(mapped: BackendError, exc: BaseException) -> NoReturn:
    """Raise ``mapped`` chained to ``exc``; an ``exc`` that is already typed keeps its own cause."""
    if mapped is exc:
        raise mapped
    raise mapped from exc


def _is_async_client(client: Any) -> bool:
    return asyncio.iscoroutinefunction(getattr(client, "close", None))


def _is_official(base_url: str) -> bool:
    return any(host in base_url for host in ("api.openai.com", "api.anthropic.com"))


# -- error mapping both adapters share ---------------------------------------------------------------
def is_timeout(exc: BaseException, sdk: Any) -> bool:
    """True for a timeout from the SDK, the socket or the HTTP layer."""
    if isinstance(exc, TimeoutError):
        return True
    if sdk is not None and isinstance(exc, sdk.APITimeoutError):
        return True
    httpx2 = sys.modules.get("httpx2")
    return httpx2 is not None and isinstance(exc, (httpx2.TimeoutException, httpx2.StreamError, httpx2.ReadError))


def error_for_status(
    status: int, message: str, headers: Any, provider: str, *, overloaded: tuple[int, ...] = ()
) -> BackendError:
    """The typed error for an HTTP status; ``overloaded`` lists provider statuses meaning "busy"."""
    text = f"{provider}: HTTP {status}: {message}"
    retry_after = parse_retry_after(headers)
    request_id = request_id_of(headers)
    if status in (401, 403):
        return AuthenticationError(text, provider=provider, status_code=status, request_id=request_id)
    if status == 429 or status in overloaded:
        return RateLimitError(
            text, provider=provider, status_code=status, retry_after=retry_after, request_id=request_id
        )
    if status == 408:
        return BackendTimeoutError(
            text, provider=provider, status_code=status, retry_after=retry_after, request_id=request_id
        )
    if status == 409:  # a conflict (e.g. a concurrent request with the same key): worth another try
        return BackendError(
            text,
            provider=provider,
            status_code=status,
            retry_after=retry_after,
            request_id=request_id,
            retryable=True,
        )
    if 400 <= status < 500:
        return BadRequestError(text, provider=provider, status_code=status, request_id=request_id)
    if status >= 500:
        return ServerError(text, provider=provider, status_code=status, retry_after=retry_after, request_id=request_id)
    return ResponseError(text, provider=provider, status_code=status, request_id=request_id)


def request_id_of(headers: Any) -> str | None:
    """The provider's id for a reply: its ``x-request-id`` (OpenAI) or ``request-id`` (Anthropic)."""
    if headers is None:
        return None
    value = headers.get("x-request-id") or headers.get("request-id")
    return str(value) if value else None


def fallback_error(exc: BaseException, provider: str, sdk_error: type[BaseException] | None) -> BackendError:
    """The typed error for what no status or SDK-specific rule covered."""
    from ._http import map_transport_error

    mapped = map_transport_error(exc, provider)
    if mapped is not None:
        return mapped
    if isinstance(exc, ValueError):
        return ResponseError(f"{provider}: malformed reply ({type(exc).__name__}: {exc})", provider=provider)
    if sdk_error is not None and isinstance(exc, sdk_error):
        return BackendError(f"{provider}: {type(exc).__name__}: {exc}", provider=provider)
    return BackendError(f"{provider}: unexpected {type(exc).__name__}: {exc}", provider=provider)
