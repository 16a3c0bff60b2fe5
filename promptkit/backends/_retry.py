"""Retries and deadlines owned by promptkit, shared by the real backends.

The SDKs' own retries are switched off (``max_retries=0``), so a call is retried in exactly one
place: here, with tenacity. What is retried: 408, 409, 429, 5xx, timeouts and connection errors;
never 400, 401, 403, 404, 422 or a malformed reply. Waits grow exponentially with full jitter,
unless the provider sent ``Retry-After`` (seconds or an HTTP date), which is honoured up to
:attr:`RetryPolicy.retry_after_cap`; above the cap the call fails at once with a
:class:`~promptkit.RateLimitError` carrying the value. Attempts are bounded, and so is the total
time: one :class:`Deadline` covers every attempt and every wait of a call.

A stream is retried only until its first text chunk has been handed to the caller; a failure after
that raises :class:`~promptkit.IncompleteStreamError` with the text received so far, so nothing is
silently duplicated.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, cast

import tenacity

from promptkit._errors import (
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    IncompleteStreamError,
)
from promptkit._messages import Chunk, Completion

__all__ = [
    "Deadline",
    "RetryPolicy",
    "aretry_call",
    "astream_with_retries",
    "parse_retry_after",
    "retry_call",
    "should_retry",
    "stream_with_retries",
]

logger = logging.getLogger("promptkit")

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a backend retries a failed call.

    ``max_attempts`` counts the first try (1 disables retries). ``deadline`` is the default total
    time in seconds for one call across all attempts and waits (a call's ``timeout=`` overrides
    it; ``None`` means no total bound). Backoff is ``backoff * 2**n`` seconds with full jitter,
    capped at ``max_backoff``. A ``Retry-After`` above ``retry_after_cap`` seconds is not waited
    for: the call fails fast with a ``RateLimitError`` whose ``retry_after`` holds the value.

    >>> RetryPolicy(max_attempts=5, deadline=30.0).max_attempts
    5
    """

    max_attempts: int = 3
    deadline: float | None = 900.0
    backoff: float = 0.5
    max_backoff: float = 8.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        for name in ("backoff", "max_backoff", "retry_after_cap"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.deadline is not None and (
            not isinstance(self.deadline, (int, float)) or not math.isfinite(self.deadline) or self.deadline <= 0
        ):
            raise ConfigurationError(f"deadline must be a positive number of seconds or None, not {self.deadline!r}")


class Deadline:
    """An absolute point in time (monotonic clock) by which a whole call must be over.

    >>> Deadline(None).remaining() is None
    True
    """

    __slots__ = ("at", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a deadline."""
        if self.at is None:
            return None
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def error(self, provider: str) -> BackendTimeoutError:
        """The error for an exceeded deadline (marked so that it is never retried)."""
        # Not retryable: the time for every attempt is used up.
        return BackendTimeoutError(
            f"the call exceeded its total deadline of {self.seconds:g} s", provider=provider, retryable=False
        )

    def check(self, provider: str) -> None:
        """Raise :class:`BackendTimeoutError` once the deadline has passed."""
        if self.at is not None and time.monotonic() >= self.at:
            raise self.error(provider)


def parse_retry_after(headers: Mapping[str, str] | Any, *, now: float | None = None) -> float | None:
    """Read a wait in seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    >>> parse_retry_after({"retry-after": "2"})
    2.0
    >>> parse_retry_after({"retry-after": "soon"}) is None
    True
    """
    if headers is None:
        return None
    getter = headers.get
    raw_ms = getter("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = getter("retry-after")
    if raw is None:
        return None
    raw = str(raw).strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    return value if math.isfinite(value) and value >= 0 else None


def should_retry(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``exc`` is worth another attempt under ``policy``: a retryable
    :class:`~promptkit.BackendError` whose ``Retry-After`` (if any) is within the cap.

    A cut stream (:class:`~promptkit.IncompleteStreamError`) is retryable as a request but is
    never retried here: the stream layer decides, before any text reached the caller.
    """
    if isinstance(exc, IncompleteStreamError) or not isinstance(exc, BackendError):
        return False
    if _above_cap(exc, policy):
        return False  # fail fast: the provider asked for a longer wait than we accept
    return exc.retryable


def _above_cap(exc: BackendError, policy: RetryPolicy) -> bool:
    return exc.retry_after is not None and exc.retry_after > policy.retry_after_cap


def _give_up(exc: BackendError, policy: RetryPolicy, attempts: int) -> BackendError:
    """Record the attempts on ``exc`` and say when the cap on ``Retry-After`` stopped a retry."""
    exc.attempts = attempts
    if exc.retryable and _above_cap(exc, policy) and "(Retry-After), more than" not in exc.message:
        note = (
            f"; not retried: the server asked to wait {exc.retry_after:g} s (Retry-After), "
            f"more than RetryPolicy.retry_after_cap={policy.retry_after_cap:g} s"
        )
        exc.message += note
        exc.args = (exc.message,)
    return exc


def _make_wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_random_exponential(multiplier=policy.backoff, max=policy.max_backoff)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            return float(retry_after)
        return float(backoff(state))

    return wait


def _make_stop(policy: RetryPolicy, deadline: Deadline) -> Callable[[tenacity.RetryCallState], bool]:
    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        remaining = deadline.remaining()
        return remaining is not None and (state.upcoming_sleep or 0.0) >= remaining

    return stop


def _make_log(policy: RetryPolicy, provider: str) -> Callable[[tenacity.RetryCallState], None]:
    def log(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning(
            "%s: attempt %d of %d failed (%s: %s); retrying in %.2f s",
            provider,
            state.attempt_number,
            policy.max_attempts,
            type(exc).__name__,
            exc,
            state.upcoming_sleep,
        )
        if exc is not None:  # hooks, spans and run logs see the retry on the call it belongs to
            from promptkit._tracing import retried

            retried(provider, state.attempt_number, exc, state.upcoming_sleep or 0.0)

    return log


def _kwargs(policy: RetryPolicy, deadline: Deadline, provider: str) -> dict[str, Any]:
    return {
        "retry": tenacity.retry_if_exception(lambda exc: should_retry(exc, policy)),
        "wait": _make_wait(policy),
        "stop": _make_stop(policy, deadline),
        "before_sleep": _make_log(policy, provider),
        "reraise": True,
    }


def retry_call(fn: Callable[[], T], *, policy: RetryPolicy, deadline: Deadline, provider: str) -> T:
    """Call ``fn`` until it succeeds, a non-retryable error occurs, or attempts or time run out.

    ``fn`` must raise promptkit errors only (the adapters map SDK errors first). The first
    attempt runs directly; tenacity takes over only once it has failed with a retryable error.
    The number of tries lands on the error's ``attempts``, or on a returned Completion's.
    """
    deadline.check(provider)
    tries = 0

    def attempt() -> T:
        nonlocal tries
        tries += 1
        return fn()

    try:
        return _stamp(attempt(), tries)
    except BackendError as exc:
        if policy.max_attempts == 1 or not should_retry(exc, policy):
            _give_up(exc, policy, tries)
            raise
        first: list[BaseException] = [exc]

    def again() -> T:
        if first:
            raise first.pop()  # replays attempt 1 so tenacity counts, waits and logs it
        deadline.check(provider)
        return attempt()

    try:
        result = tenacity.Retrying(**_kwargs(policy, deadline, provider))(again)
    except BackendError as exc:
        _give_up(exc, policy, tries)
        raise
    return _stamp(result, tries)


async def aretry_call(fn: Callable[[], Awaitable[T]], *, policy: RetryPolicy, deadline: Deadline, provider: str) -> T:
    """Async :func:`retry_call`; each attempt is also bounded by the remaining deadline."""
    tries = 0

    async def attempt() -> T:
        nonlocal tries
        tries += 1
        return await _bounded(fn, deadline, provider)

    try:
        return _stamp(await attempt(), tries)
    except BackendError as exc:
        if policy.max_attempts == 1 or not should_retry(exc, policy):
            _give_up(exc, policy, tries)
            raise
        first: list[BaseException] = [exc]

    async def again() -> T:
        if first:
            raise first.pop()
        return await attempt()

    try:
        result: T = await tenacity.AsyncRetrying(**_kwargs(policy, deadline, provider))(again)
    except BackendError as exc:
        _give_up(exc, policy, tries)
        raise
    return _stamp(result, tries)


def _stamp(result: T, tries: int) -> T:
    """A Completion that took more than one try says so on ``attempts``."""
    if tries > 1 and isinstance(result, Completion):
        return cast("T", replace(result, attempts=tries))
    return result


async def _bounded(fn: Callable[[], Awaitable[T]], deadline: Deadline, provider: str) -> T:
    remaining = deadline.remaining()
    if remaining is None:
        return await fn()
    if remaining <= 0:
        raise deadline.error(provider)
    try:
        return await wait_within(fn(), remaining)
    except TimeoutError as exc:
        if isinstance(exc, BackendError):
            raise
        raise deadline.error(provider) from None


if sys.version_info >= (3, 11):

    async def wait_within(awaitable: Awaitable[T], seconds: float) -> T:
        """Await ``awaitable`` for at most ``seconds`` (raises the builtin ``TimeoutError``)."""
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def wait_within(awaitable: Awaitable[T], seconds: float) -> T:
        """Await ``awaitable`` for at most ``seconds`` (raises the builtin ``TimeoutError``)."""
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError as exc:
            raise TimeoutError from exc


# -- streams ----------------------------------------------------------------------------------------
def _is_first(chunk: Chunk) -> bool:
    return bool(chunk.text) or chunk.finish_reason is not None or chunk.usage is not None


def _after_first(exc: BackendError, text: str, provider: str) -> IncompleteStreamError:
    err = IncompleteStreamError(
        f"the stream failed after its first chunk ({type(exc).__name__}: {exc}); "
        f"{len(text)} characters arrived and are kept on .partial_text; it was not retried",
        partial_text=text,
        provider=provider,
    )
    err.status_code = exc.status_code
    err.request_id = exc.request_id
    return err


def stream_with_retries(
    open_chunks: Callable[[], Iterator[Chunk]], *, policy: RetryPolicy, deadline: Deadline, provider: str
) -> Iterator[Chunk]:
    """Run a stream: retry opening it until its first chunk arrives, then never again.

    ``open_chunks`` returns an iterator of chunks that raises promptkit errors only (its final
    chunk carries usage and finish reason; it raises ``IncompleteStreamError`` itself when the
    provider's terminal event never came).
    """

    tries = 0

    def first() -> tuple[Iterator[Chunk], list[Chunk]]:
        nonlocal tries
        tries += 1
        it = open_chunks()
        head: list[Chunk] = []
        try:
            for chunk in it:
                head.append(chunk)
                if _is_first(chunk):
                    break
        except BaseException:
            _close(it)
            raise
        return it, head

    it, head = retry_call(first, policy=policy, deadline=deadline, provider=provider)
    parts: list[str] = []
    try:
        for chunk in head:
            parts.append(chunk.text)
            yield _mark(chunk, tries)
        try:
            for chunk in it:
                parts.append(chunk.text)
                yield _mark(chunk, tries)
        except IncompleteStreamError:
            raise
        except BackendError as exc:
            raise _after_first(exc, "".join(parts), provider) from exc
    finally:
        _close(it)


async def astream_with_retries(
    open_chunks: Callable[[], AsyncIterator[Chunk]], *, policy: RetryPolicy, deadline: Deadline, provider: str
) -> AsyncIterator[Chunk]:
    """Async :func:`stream_with_retries`; every wait for a chunk is bounded by the deadline."""

    tries = 0

    async def first() -> tuple[AsyncIterator[Chunk], list[Chunk]]:
        nonlocal tries
        tries += 1
        it = open_chunks()
        head: list[Chunk] = []
        try:
            while True:
                try:
                    chunk = await _next_within(it, deadline, provider)
                except StopAsyncIteration:
                    break
                head.append(chunk)
                if _is_first(chunk):
                    break
        except BaseException:
            await _aclose(it)
            raise
        return it, head

    it, head = await aretry_call(first, policy=policy, deadline=deadline, provider=provider)
    parts: list[str] = []
    try:
        for chunk in head:
            parts.append(chunk.text)
            yield _mark(chunk, tries)
        try:
            while True:
                try:
                    chunk = await _next_within(it, deadline, provider)
                except StopAsyncIteration:
                    break
                parts.append(chunk.text)
                yield _mark(chunk, tries)
        except IncompleteStreamError:
            raise
        except BackendError as exc:
            raise _after_first(exc, "".join(parts), provider) from exc
    finally:
        await _aclose(it)


async def _next_within(it: AsyncIterator[Chunk], deadline: Deadline, provider: str) -> Chunk:
    remaining = deadline.remaining()
    if remaining is None:
        return await it.__anext__()
    if remaining <= 0:
        raise deadline.error(provider)
    try:
        return await wait_within(it.__anext__(), remaining)
    except TimeoutError as exc:
        if isinstance(exc, BackendError):
            raise
        raise deadline.error(provider) from None


def _mark(chunk: Chunk, tries: int) -> Chunk:
    """The final chunk (usage or finish reason) of a stream that took several tries says so."""
    if tries > 1 and (chunk.usage is not None or chunk.finish_reason is not None):
        return replace(chunk, attempts=tries)
    return chunk


def _close(it: Iterator[Chunk]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


async def _aclose(it: AsyncIterator[Chunk]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()
