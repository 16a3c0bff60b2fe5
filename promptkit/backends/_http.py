"""HTTP helpers shared by the OpenAI and Anthropic adapters (both SDKs run on ``httpx2``).

Imported only by the provider modules, after their SDK: per-attempt timeouts cut to the call's
remaining deadline, response bodies that enforce the deadline between chunks (so a server
trickling one byte at a time cannot keep a call alive past it) and during a read that blocks (a
server that stalls mid-body), and the mapping of transport and decoding errors to promptkit
errors.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import httpx2

from promptkit._errors import BackendConnectionError, BackendError, BackendTimeoutError, ResponseError

__all__ = [
    "attempt_timeout",
    "deadline_hook",
    "deadline_scope",
    "install_deadline_network",
    "map_transport_error",
    "wrap_body",
]


class Deadline(Protocol):
    """What these helpers need from :class:`promptkit.backends._retry.Deadline` (no import needed)."""

    at: float | None

    def remaining(self) -> float | None: ...


_DEADLINE_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar("promptkit_deadline_at", default=None)


class _Watchdog:
    """Shuts down the socket of a body read still going at its call's deadline.

    A blocked ``recv`` waits out its read timeout, which is at most the time left when the attempt
    began, so a server that stalls mid-body could keep a call past its deadline by up to that much.
    Shutting the socket down at the deadline wakes the read at once; the body then reports a
    timeout. One daemon thread serves every call and starts on first use. It sleeps until the
    earliest deadline it knows of and is woken only by an earlier one, so calls with ever later
    deadlines never wake it. A watch is released before its connection can go back to the pool,
    so a reused connection is never cut; released watches are dropped when their time comes, or
    in bulk once they outnumber the live ones.
    """

    def __init__(self) -> None:
        self._tokens = itertools.count()
        self._reset()

    def _reset(self) -> None:
        """Start empty, with no thread (also in a forked child, which has none of the parent's)."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._sockets: dict[int, socket.socket] = {}
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread wakes next, unless notified

    def watch(self, at: float, sock: socket.socket) -> int:
        with self._cond:
            token = next(self._tokens)
            self._sockets[token] = sock
            heapq.heappush(self._heap, (at, token))
            if len(self._heap) > 2 * len(self._sockets) + 64:
                self._heap = [entry for entry in self._heap if entry[1] in self._sockets]
                heapq.heapify(self._heap)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="promptkit-deadlines", daemon=True)
                self._thread.start()
            elif at < self._wake_at:
                self._cond.notify()
        return token

    def release(self, token: int) -> None:
        with self._cond:
            self._sockets.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                heap = self._heap
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    sock = self._sockets.pop(heapq.heappop(heap)[1], None)
                    if sock is not None:  # still reading at its deadline
                        try:
                            # The plain socket's shutdown, also under TLS: SSLSocket's own would
                            # drop its SSL object under the reading thread's feet.
                            socket.socket.shutdown(sock, socket.SHUT_RDWR)
                        except OSError:
                            pass  # already closed
                self._wake_at = heap[0][0] if heap else math.inf
                self._cond.wait(None if not heap else self._wake_at - now)


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):  # a forked worker (multiprocessing, Ray) starts its own thread
    os.register_at_fork(after_in_child=_WATCHDOG._reset)


def _socket_of(response: httpx2.Response) -> socket.socket | None:
    """The socket under an HTTP/1 response (an HTTP/2 socket carries other calls too)."""
    if response.extensions.get("http_version") not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    info = getattr(response.extensions.get("network_stream"), "get_extra_info", None)
    sock = info("socket") if info is not None else None
    return sock if isinstance(sock, socket.socket) else None


class _DeadlineBody(httpx2.SyncByteStream):
    """A response body that raises ``ReadTimeout`` once the call's deadline has passed.

    It checks between chunks, and with a socket, has :class:`_Watchdog` cut a read that is
    blocked at the deadline.
    """

    def __init__(self, inner: Any, at: float, sock: socket.socket | None = None) -> None:
        self._inner = inner
        self._at = at
        self._sock = sock
        self._watch: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        at = self._at
        if self._sock is not None:
            self._watch = _WATCHDOG.watch(at, self._sock)
        try:
            for chunk in self._inner:
                if time.monotonic() >= at:
                    raise httpx2.ReadTimeout("the call's total deadline passed while reading the body")
                yield chunk
        except (httpx2.TransportError, OSError) as exc:
            if time.monotonic() >= at:  # the watchdog cut a read that was still waiting
                raise httpx2.ReadTimeout("the call's total deadline passed while reading the body") from exc
            raise
        finally:
            self._release()

    def _release(self) -> None:
        if self._watch is not None:
            _WATCHDOG.release(self._watch)
            self._watch = None

    def close(self) -> None:
        self._release()  # before the connection can go back to the pool
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def wrap_body(response: httpx2.Response, deadline: Deadline) -> None:
    """Make ``response``'s body enforce ``deadline`` (sync responses only)."""
    if deadline.at is not None and not isinstance(response.stream, _DeadlineBody):
        response.stream = _DeadlineBody(response.stream, deadline.at, _socket_of(response))


def deadline_hook(response: httpx2.Response) -> None:
    """A response event hook for clients promptkit builds: applies the deadline in scope."""
    at = _DEADLINE_AT.get()
    if at is not None and not isinstance(response.stream, _DeadlineBody):
        response.stream = _DeadlineBody(response.stream, at, _socket_of(response))


class deadline_scope:  # noqa: N801 - used like a function: ``with deadline_scope(d):``
    """Put ``deadline`` in scope for :func:`deadline_hook` during a synchronous call."""

    __slots__ = ("_at", "_token")

    def __init__(self, deadline: Deadline) -> None:
        self._at = deadline.at

    def __enter__(self) -> None:
        self._token = _DEADLINE_AT.set(self._at)

    def __exit__(self, *exc: object) -> None:
        _DEADLINE_AT.reset(self._token)


def _bounded_timeout(timeout: float | None) -> float | None:
    """``timeout`` cut to the time left before the deadline in scope; raises once it has passed."""
    at = _DEADLINE_AT.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        import httpcore2

        raise httpcore2.ReadTimeout("the call's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream:
    """A network stream whose every read and write waits at most until the call's deadline.

    Each wait for bytes gets the smaller of its own timeout and the time left, so a server that
    trickles the response headers one byte at a time (each byte well within the read timeout)
    still cannot keep a sync call past its total deadline. The deadline is the one that
    :class:`deadline_scope` puts in scope for the calling thread.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._inner.read(max_bytes, _bounded_timeout(timeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded_timeout(timeout))

    def start_tls(self, *args: Any, **kwargs: Any) -> _DeadlineStream:
        return _DeadlineStream(self._inner.start_tls(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _DeadlineNetwork:
    """A network backend whose connections are :class:`_DeadlineStream` objects."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> _DeadlineStream:
        if "timeout" in kwargs:
            kwargs["timeout"] = _bounded_timeout(kwargs["timeout"])
        return _DeadlineStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> _DeadlineStream:
        return _DeadlineStream(self._inner.connect_unix_socket(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_deadline_network(client: httpx2.Client) -> httpx2.Client:
    """Make every connection of a sync ``client`` honour the deadline in scope (headers too).

    It reaches into the transport's connection pool (``_pool._network_backend``); a transport
    without one is left as it is, and then only the body is bounded (see :func:`deadline_hook`).
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineNetwork):
            pool._network_backend = _DeadlineNetwork(backend)  # type: ignore[union-attr]  # checked above
    return client


_TIMEOUTS: dict[tuple[float, float], httpx2.Timeout] = {}


def attempt_timeout(connect: float, read: float, deadline: Deadline) -> httpx2.Timeout:
    """Connect/read/write/pool timeouts for one attempt, none longer than the time left."""
    remaining = deadline.remaining()
    if remaining is None or remaining >= read + connect:
        timeout = _TIMEOUTS.get((connect, read))
        if timeout is None:
            timeout = _TIMEOUTS[(connect, read)] = httpx2.Timeout(read, connect=connect)
        return timeout
    remaining = max(remaining, 0.001)
    short_read = min(read, remaining)
    return httpx2.Timeout(connect=min(connect, remaining), read=short_read, write=short_read, pool=short_read)


def map_transport_error(exc: BaseException, provider: str) -> BackendError | None:
    """Map an ``httpx2`` transport/decoding error or a raw decode error; ``None`` if not one."""
    name = type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        return BackendTimeoutError(f"{provider}: the request timed out ({name})", provider=provider)
    if isinstance(exc, httpx2.DecodingError):
        return ResponseError(f"{provider}: the response body could not be decoded ({name})", provider=provider)
    if isinstance(exc, (httpx2.TransportError, httpx2.StreamError)):
        return BackendConnectionError(f"{provider}: the connection failed ({name}: {exc})", provider=provider)
    if isinstance(exc, json.JSONDecodeError):
        return ResponseError(f"{provider}: the reply is not valid JSON ({exc})", provider=provider)
    if isinstance(exc, UnicodeDecodeError):
        return ResponseError(f"{provider}: the reply is not valid UTF-8 ({exc.reason})", provider=provider)
    return None
