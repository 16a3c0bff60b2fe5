"""The spending caps and the shared rate limits: wrappers the batch puts around a prompt's backend."""

from __future__ import annotations

import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import SpendingCapError
from .._messages import Completion
from ..backends import Backend, RateLimiter, Request, WrapperBackend
from ..backends._ratelimit import estimate_input_tokens
from ._results import usd

if TYPE_CHECKING:
    from ..backends import AsyncStream, Stream

__all__ = [
    "ITEM",
    "CappedBackend",
    "ItemState",
    "Spend",
    "reply_cost",
    "request_cost",
    "shared_limiter",
    "split_name",
]


@dataclass
class ItemState:
    """What the backend wrappers learn about the item whose call is running (per thread or task)."""

    sent: int = 0


ITEM: ContextVar[ItemState | None] = ContextVar("promptkit_batch_item", default=None)


def split_name(backend_name: str) -> tuple[str | None, str | None]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``: who serves a request, and which model."""
    provider, sep, model = backend_name.partition(":")
    return (provider or None, model or None) if sep else (None, None)


def request_cost(backend_name: str, input_tokens: int, output_tokens: int) -> float | None:
    """What a request of that size costs on the backend called ``backend_name`` (``None``: no price)."""
    from .._cost import estimate_cost

    provider, model = split_name(backend_name)
    return estimate_cost(model, input_tokens=input_tokens, output_tokens=output_tokens, provider=provider)


def reply_cost(completion: Completion, backend_name: str) -> float | None:
    """What a reply cost, priced for the model and provider that answered."""
    from .._cost import cost_of

    provider, model = split_name(backend_name)
    return cost_of(completion.usage, completion.model or model, completion.provider or provider)


class Spend:
    """A batch's cap in ``unit`` (tokens or USD): every request reserves its worst case before it is sent."""

    def __init__(self, limit: float, *, unit: str, option: str) -> None:
        self.limit = limit
        self.unit = unit
        self.option = option
        self.used = 0.0
        self.reserved = 0.0
        self._lock = threading.Lock()

    def _show(self, amount: float) -> str:
        return usd(amount) if self.unit == "USD" else f"{amount:g} tokens"

    def reserve(self, needed: float) -> None:
        with self._lock:
            committed = self.used + self.reserved
            if committed + needed > self.limit:
                raise SpendingCapError(
                    f"not sent: this request could use {self._show(needed)} and {self._show(committed)} of "
                    f"{self.option}={self._show(self.limit)} are used or reserved",
                    limit=self.limit,
                    committed=committed,
                    needed=needed,
                    unit=self.unit,
                )
            self.reserved += needed

    def settle(self, needed: float, used: float) -> None:
        with self._lock:
            self.reserved -= needed
            self.used += used


class CappedBackend(WrapperBackend):
    """Reserves each request's worst case (input tokens plus ``max_tokens``, and its price) before sending."""

    def __init__(self, inner: Backend, *, tokens: Spend | None, money: Spend | None) -> None:
        super().__init__(inner)
        self.tokens = tokens
        self.money = money

    def _open(self, request: Request) -> tuple[int, float]:
        max_tokens = request.params.get("max_tokens")
        output = max_tokens if isinstance(max_tokens, int) else 0
        input_tokens = estimate_input_tokens(request.messages, request.backend)
        needed = input_tokens + output
        price = 0.0
        if self.money is not None:
            estimate = request_cost(request.backend, input_tokens, output)
            if estimate is None:
                raise SpendingCapError(
                    f"not sent: {request.backend} has no known price, so max_cost cannot be kept; "
                    "set one with promptkit.set_price(...)",
                    limit=self.money.limit,
                    unit="USD",
                )
            price = estimate
        if self.tokens is not None:
            self.tokens.reserve(needed)
        if self.money is not None:
            try:
                self.money.reserve(price)
            except SpendingCapError:
                if self.tokens is not None:
                    self.tokens.settle(needed, 0)
                raise
        state = ITEM.get()
        if state is not None:
            state.sent += 1
        return needed, price

    def _close(self, reserved: tuple[int, float], completion: Completion | None) -> None:
        needed, price = reserved
        if self.tokens is not None:
            used = completion.usage.total_tokens if completion is not None else 0
            self.tokens.settle(needed, used if completion is None or used else needed)
        if self.money is not None:
            cost = reply_cost(completion, self.name) if completion is not None else 0.0
            self.money.settle(price, price if cost is None else cost)

    def complete_request(self, request: Request) -> Completion:
        reserved = self._open(request)
        completion = None
        try:
            completion = self.inner.complete_request(request)
        finally:
            self._close(reserved, completion)
        return completion

    async def acomplete_request(self, request: Request) -> Completion:
        reserved = self._open(request)
        completion = None
        try:
            completion = await self.inner.acomplete_request(request)
        finally:
            self._close(reserved, completion)
        return completion

    def stream_request(self, request: Request) -> Stream:
        reserved = self._open(request)  # a stream keeps its whole reservation
        self._keep(reserved)
        return self.inner.stream_request(request)

    def astream_request(self, request: Request) -> AsyncStream:
        reserved = self._open(request)
        self._keep(reserved)
        return self.inner.astream_request(request)

    def _keep(self, reserved: tuple[int, float]) -> None:
        if self.tokens is not None:
            self.tokens.settle(reserved[0], reserved[0])
        if self.money is not None:
            self.money.settle(reserved[1], reserved[1])


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
