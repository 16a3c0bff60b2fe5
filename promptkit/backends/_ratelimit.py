"""Requests and tokens per minute: a :class:`RateLimiter` and the :class:`RateLimitedBackend` using it.

A limiter is two token buckets (requests, tokens), each holding one minute of quota and refilling
continuously. A call reserves its share first and then waits until the bucket has caught up, so
callers are served in arrival order and the arithmetic is exact (no polling). Tokens are estimated
before the call (the messages counted with :func:`promptkit.count_tokens`, plus ``max_tokens`` when
set) and corrected with the usage the reply reports. One limiter serves threads and event loops
alike; wrap a backend once and give the wrapper to several prompts to make them share a quota.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from .._errors import BackendError, ConfigurationError, TokenizerError
from .._messages import Chunk, Completion
from ._contract import Backend, Request
from ._streams import AsyncStream, Stream, final_chunk
from ._wrapper import WrapperBackend

if TYPE_CHECKING:
    from .._messages import Message

__all__ = ["RateLimitedBackend", "RateLimiter", "estimate_input_tokens", "estimate_tokens"]

_FALLBACK_MODEL = "gpt-4o-mini"  # o200k_base: the encoding for backends with no known tokenizer


def _model_of(backend_name: str) -> str:
    """``"openai:gpt-4o-mini"`` -> ``"openai:gpt-4o-mini"``; a backend without a known tokenizer -> the fallback."""
    from .._tokens import encoding_for_model

    try:
        encoding_for_model(backend_name)
    except (TokenizerError, ConfigurationError):
        return _FALLBACK_MODEL
    return backend_name


def estimate_input_tokens(messages: tuple[Message, ...] | list[Message], backend_name: str) -> int:
    """The input tokens of ``messages`` for the backend called ``backend_name``.

    Counted with the model's tokenizer when the name gives one (``"openai:gpt-4o-mini"``), with
    o200k_base otherwise (test doubles, unknown models): an estimate, as any count before the call.
    """
    from .._tokens import count_tokens

    return int(count_tokens(list(messages), model=_model_of(backend_name)))


def estimate_tokens(request: Request) -> int:
    """What a request may use before the provider reports it: its input tokens plus ``max_tokens``.

    Without ``max_tokens`` the reply's length is unknown and only the input is counted; the
    limiter corrects the count with the reported usage once the reply is in.
    """
    max_tokens = request.params.get("max_tokens")
    return estimate_input_tokens(request.messages, request.backend) + (max_tokens if isinstance(max_tokens, int) else 0)


class _Bucket:
    """One token bucket: ``per_minute`` units of capacity, refilled at ``per_minute / 60`` a second."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` (the level may go below zero); the seconds until the level is back at zero."""
        self._refill(now)
        self.level -= amount
        return max(0.0, -self.level / self.rate)

    def give(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)


def _check_limit(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number or None, not {value!r}")
    return float(value)


class RateLimiter:
    """A quota of requests and tokens per minute, shared by every call that goes through it.

    Each limit is a token bucket holding one minute of quota (a burst of up to the limit, then the
    refill rate). :meth:`acquire` (or :meth:`aacquire`) reserves one request and ``tokens`` tokens
    and sleeps until the buckets cover them; :meth:`settle` corrects the tokens once the real usage
    is known; :meth:`release` gives back a reservation whose call was never made. ``clock``,
    ``sleep`` and ``asleep`` are injectable, so tests run without real time. Thread-safe.

    >>> t = [0.0]
    >>> limiter = RateLimiter(requests_per_minute=60, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    >>> limiter.reserve(tokens=0, requests=60)  # a burst of the whole minute's quota: no wait
    0.0
    >>> limiter.reserve(tokens=0)  # the 61st request waits for one second's refill
    1.0
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.requests_per_minute = _check_limit("requests_per_minute", requests_per_minute)
        self.tokens_per_minute = _check_limit("tokens_per_minute", tokens_per_minute)
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ConfigurationError("a RateLimiter needs requests_per_minute=, tokens_per_minute= or both")
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        now = clock()
        self._requests = _Bucket(self.requests_per_minute, now) if self.requests_per_minute is not None else None
        self._tokens = _Bucket(self.tokens_per_minute, now) if self.tokens_per_minute is not None else None
        self._lock = threading.Lock()
        self.waited = 0.0
        """Seconds callers have been told to wait, in total (what the limits cost)."""

    @property
    def counts_tokens(self) -> bool:
        """Whether there is a token limit (only then are requests' tokens estimated)."""
        return self._tokens is not None

    def reserve(self, *, tokens: int, requests: int = 1) -> float:
        """Reserve ``requests`` and ``tokens`` now; the seconds to wait before sending.

        A reservation larger than a whole minute's token quota could never be served: it raises
        :class:`~promptkit.ConfigurationError` instead of waiting forever.
        """
        if self._tokens is not None and tokens > self._tokens.capacity:
            raise ConfigurationError(
                f"a request estimated at {tokens} tokens can never fit tokens_per_minute={self.tokens_per_minute:g}; "
                "raise the limit or lower max_tokens"
            )
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self._requests is not None:
                wait = self._requests.take(requests, now)
            if self._tokens is not None:
                wait = max(wait, self._tokens.take(tokens, now))
            self.waited += wait
            return wait

    def release(self, *, tokens: int, requests: int = 1) -> None:
        """Give back a reservation whose call was never sent."""
        with self._lock:
            now = self._clock()
            if self._requests is not None:
                self._requests.give(requests, now)
            if self._tokens is not None:
                self._tokens.give(tokens, now)

    def settle(self, *, reserved: int, used: int) -> None:
        """Correct a call's reserved tokens with what it used (a refund, or a debt later calls wait for)."""
        if self._tokens is None or reserved == used:
            return
        with self._lock:
            now = self._clock()
            if used < reserved:
                self._tokens.give(reserved - used, now)
            else:
                self._tokens.take(used - reserved, now)

    def acquire(self, tokens: int = 0) -> None:
        """Reserve one request and ``tokens``, and sleep until they are covered."""
        wait = self.reserve(tokens=tokens)
        if wait > 0:
            try:
                self._sleep(wait)
            except BaseException:
                self.release(tokens=tokens)
                raise

    async def aacquire(self, tokens: int = 0) -> None:
        """Async :meth:`acquire`: waits with ``asyncio.sleep`` (or the injected ``asleep``)."""
        wait = self.reserve(tokens=tokens)
        if wait > 0:
            asleep = self._asleep
            if asleep is None:
                import asyncio

                asleep = asyncio.sleep
            try:
                await asleep(wait)
            except BaseException:  # cancelled while waiting: the call is never made
                self.release(tokens=tokens)
                raise

    def __repr__(self) -> str:
        limits = []
        if self.requests_per_minute is not None:
            limits.append(f"requests_per_minute={self.requests_per_minute:g}")
        if self.tokens_per_minute is not None:
            limits.append(f"tokens_per_minute={self.tokens_per_minute:g}")
        return f"<RateLimiter {' '.join(limits)}>"


class RateLimitedBackend(WrapperBackend):
    """A backend that keeps every call through it within requests and tokens per minute.

    Give the limits, or a :class:`RateLimiter` to share one quota between several wrappers. Every
    prompt using this backend shares its quota. A call's tokens are estimated before it is sent
    (messages plus ``max_tokens``) and corrected with the reported usage; a stream keeps its
    estimate. Retries made inside the wrapped backend count as the one request they belong to.

    >>> from promptkit.testing import MockBackend
    >>> llm = RateLimitedBackend(MockBackend(["ok"]), requests_per_minute=600)
    >>> llm.complete("hi").text
    'ok'
    """

    def __init__(
        self,
        inner: Backend,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        limiter: RateLimiter | None = None,
        estimate: Callable[[Request], int] = estimate_tokens,
    ) -> None:
        super().__init__(inner)
        if limiter is not None:
            if requests_per_minute is not None or tokens_per_minute is not None:
                raise ConfigurationError("give RateLimitedBackend a limiter= or the limits, not both")
        else:
            limiter = RateLimiter(requests_per_minute, tokens_per_minute)
        self.limiter = limiter
        self._estimate = estimate

    def _reserve_tokens(self, request: Request) -> int:
        return self._estimate(request) if self.limiter.counts_tokens else 0

    def _settle(self, reserved: int, completion: Completion) -> None:
        used = completion.usage.total_tokens
        if used:  # a backend that reports no usage keeps its estimate
            self.limiter.settle(reserved=reserved, used=used)

    def complete_request(self, request: Request) -> Completion:
        tokens = self._reserve_tokens(request)
        self.limiter.acquire(tokens)
        try:
            completion = self.inner.complete_request(request)
        except BackendError:
            self.limiter.settle(reserved=tokens, used=0)  # a failed call is not billed its tokens
            raise
        self._settle(tokens, completion)
        return completion

    async def acomplete_request(self, request: Request) -> Completion:
        tokens = self._reserve_tokens(request)
        await self.limiter.aacquire(tokens)
        try:
            completion = await self.inner.acomplete_request(request)
        except BackendError:
            self.limiter.settle(reserved=tokens, used=0)
            raise
        self._settle(tokens, completion)
        return completion

    def stream_request(self, request: Request) -> Stream:
        tokens = self._reserve_tokens(request)
        self.limiter.acquire(tokens)
        return Stream(self._relay(request, tokens), backend=self.name)

    def astream_request(self, request: Request) -> AsyncStream:
        return AsyncStream(self._arelay(request), backend=self.name)

    def _relay(self, request: Request, tokens: int) -> Iterator[Chunk]:
        with self.inner.stream_request(request) as stream:
            for delta in stream:
                yield Chunk(text=delta)
            completion = stream.completion
        self._settle(tokens, completion)
        yield final_chunk(completion)

    async def _arelay(self, request: Request) -> AsyncIterator[Chunk]:
        tokens = self._reserve_tokens(request)
        await self.limiter.aacquire(tokens)  # waits when the stream is first iterated
        async with self.inner.astream_request(request) as stream:
            async for delta in stream:
                yield Chunk(text=delta)
            completion = stream.completion
        self._settle(tokens, completion)
        yield final_chunk(completion)

    def __repr__(self) -> str:
        return f"<RateLimitedBackend {self.limiter!r} over {self.inner!r}>"
