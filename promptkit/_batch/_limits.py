"""The spending cap and the shared rate limits: wrappers the batch puts around a prompt's backend."""

from __future__ import annotations

import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import SpendingCapError
from .._messages import Completion
from ..backends import Backend, RateLimiter, Request, WrapperBackend
from ..backends._ratelimit import estimate_tokens

if TYPE_CHECKING:
    from ..backends import AsyncStream, Stream

__all__ = ["ITEM", "CappedBackend", "ItemState", "Spend", "shared_limiter"]


@dataclass
class ItemState:
    """What the backend wrappers learn about the item whose call is running (per thread or task)."""

    sent: int = 0


ITEM: ContextVar[ItemState | None] = ContextVar("promptkit_batch_item", default=None)


class Spend:
    """A batch's token cap: every request reserves its worst case before it is sent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.reserved = 0
        self._lock = threading.Lock()

    def reserve(self, needed: int) -> None:
        with self._lock:
            committed = self.used + self.reserved
            if committed + needed > self.limit:
                raise SpendingCapError(
                    f"not sent: this request could use {needed} tokens and {committed} of max_tokens_total="
                    f"{self.limit} are used or reserved",
                    limit=self.limit,
                    committed=committed,
                    needed=needed,
                )
            self.reserved += needed

    def settle(self, needed: int, used: int) -> None:
        with self._lock:
            self.reserved -= needed
            self.used += used


class CappedBackend(WrapperBackend):
    """Reserves each request's worst case (input tokens plus ``max_tokens``) under the cap before sending."""

    def __init__(self, inner: Backend, spend: Spend) -> None:
        super().__init__(inner)
        self.spend = spend

    def _open(self, request: Request) -> int:
        needed = estimate_tokens(request)
        self.spend.reserve(needed)
        state = ITEM.get()
        if state is not None:
            state.sent += 1
        return needed

    def _close(self, needed: int, completion: Completion | None) -> None:
        used = completion.usage.total_tokens if completion is not None else 0
        self.spend.settle(needed, used if completion is None or used else needed)

    def complete_request(self, request: Request) -> Completion:
        needed = self._open(request)
        completion = None
        try:
            completion = self.inner.complete_request(request)
        finally:
            self._close(needed, completion)
        return completion

    async def acomplete_request(self, request: Request) -> Completion:
        needed = self._open(request)
        completion = None
        try:
            completion = await self.inner.acomplete_request(request)
        finally:
            self._close(needed, completion)
        return completion

    def stream_request(self, request: Request) -> Stream:
        needed = self._open(request)  # a stream keeps its whole reservation
        self.spend.settle(needed, needed)
        return self.inner.stream_request(request)

    def astream_request(self, request: Request) -> AsyncStream:
        needed = self._open(request)
        self.spend.settle(needed, needed)
        return self.inner.astream_request(request)


# -- shared rate limits ---------------------------------------------------------------------------
_LIMITERS: weakref.WeakKeyDictionary[Any, RateLimiter] = weakref.WeakKeyDictionary()
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(backend: Backend, requests_per_minute: float | None, tokens_per_minute: float | None) -> RateLimiter:
    """The limiter every batch on ``backend`` shares; batches with other limits get a new one."""
    with _LIMITERS_LOCK:
        try:
            limiter = _LIMITERS.get(backend)
        except TypeError:  # a backend that cannot be weakly referenced: a limiter of its own
            return RateLimiter(requests_per_minute, tokens_per_minute)
        wanted = RateLimiter(requests_per_minute, tokens_per_minute)
        if (
            limiter is not None
            and limiter.requests_per_minute == wanted.requests_per_minute
            and limiter.tokens_per_minute == wanted.tokens_per_minute
        ):
            return limiter
        _LIMITERS[backend] = wanted
        return wanted
