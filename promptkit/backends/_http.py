"""HTTP helpers shared by the OpenAI and Anthropic adapters (both SDKs run on ``httpx2``).

Imported only by the provider modules, after their SDK: per-attempt timeouts cut to the call's
remaining deadline, response bodies that enforce the deadline between chunks (so a server
trickling one byte at a time cannot keep a call alive past it), and the mapping of transport
and decoding errors to promptkit errors.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Iterator
from typing import Any, Protocol

import httpx2

from promptkit._errors import BackendConnectionError, BackendError, BackendTimeoutError, ResponseError

__all__ = ["attempt_timeout", "deadline_hook", "deadline_scope", "map_transport_error", "wrap_body"]


class Deadline(Protocol):
    """What these helpers need from :class:`promptkit.backends._retry.Deadline` (no import needed)."""

    at: float | None

    def remaining(self) -> float | None: ...


_DEADLINE_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar("promptkit_deadline_at", default=None)


class _DeadlineBody(httpx2.SyncByteStream):
    """A response body that raises ``ReadTimeout`` once the call's deadline has passed."""

    def __init__(self, inner: Any, at: float) -> None:
        self._inner = inner
        self._at = at

    def __iter__(self) -> Iterator[bytes]:
        at = self._at
        for chunk in self._inner:
            if time.monotonic() >= at:
                raise httpx2.ReadTimeout("the call's total deadline passed while reading the body")
            yield chunk

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def wrap_body(response: httpx2.Response, deadline: Deadline) -> None:
    """Make ``response``'s body enforce ``deadline`` between chunks (sync responses only)."""
    if deadline.at is not None and not isinstance(response.stream, _DeadlineBody):
        response.stream = _DeadlineBody(response.stream, deadline.at)


def deadline_hook(response: httpx2.Response) -> None:
    """A response event hook for clients promptkit builds: applies the deadline in scope."""
    at = _DEADLINE_AT.get()
    if at is not None and not isinstance(response.stream, _DeadlineBody):
        response.stream = _DeadlineBody(response.stream, at)


class deadline_scope:  # noqa: N801 - used like a function: ``with deadline_scope(d):``
    """Put ``deadline`` in scope for :func:`deadline_hook` during a synchronous call."""

    __slots__ = ("_at", "_token")

    def __init__(self, deadline: Deadline) -> None:
        self._at = deadline.at

    def __enter__(self) -> None:
        self._token = _DEADLINE_AT.set(self._at)

    def __exit__(self, *exc: object) -> None:
        _DEADLINE_AT.reset(self._token)


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
