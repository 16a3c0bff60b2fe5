"""Retry policy, Retry-After parsing, deadlines and the stream rule, without any network."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate

import pytest

from promptkit._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    IncompleteStreamError,
    RateLimitError,
    ResponseError,
    ServerError,
)
from promptkit._messages import Chunk, Usage
from promptkit.backends._retry import (
    Deadline,
    RetryPolicy,
    aretry_call,
    astream_with_retries,
    parse_retry_after,
    retry_call,
    should_retry,
    stream_with_retries,
)

FAST = RetryPolicy(max_attempts=4, backoff=0.001, max_backoff=0.002, deadline=5.0)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None
    now = 1_700_000_000.0
    date = formatdate(now + 120, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(120, abs=1)
    past = formatdate(now - 120, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitError("x", status_code=429), True),
        (RateLimitError("x", status_code=429, retry_after=30), True),
        (RateLimitError("x", status_code=429, retry_after=61), False),
        (ServerError("x", status_code=500, retry_after=3600), False),
        (ServerError("x", status_code=503), True),
        (BackendConnectionError("x"), True),
        (BackendTimeoutError("x"), True),
        (BackendError("x", status_code=409), False),  # the base class is not retryable by default
        (BackendError("x", status_code=409, retryable=True), True),
        (ServerError("x", status_code=503, retryable=False), False),
        (BadRequestError("x", status_code=400), False),
        (BadRequestError("x", status_code=404), False),
        (BadRequestError("x", status_code=422), False),
        (AuthenticationError("x", status_code=401), False),
        (AuthenticationError("x", status_code=403), False),
        (ResponseError("x"), False),
        (IncompleteStreamError("x", partial_text="a"), False),
        (ValueError("not ours"), False),
        (Deadline(1).error("p"), False),
    ],
)
def test_what_is_retried(error: BaseException, expected: bool) -> None:
    assert should_retry(error, RetryPolicy()) is expected


def test_policy_validation() -> None:
    for bad in (
        {"max_attempts": 0},
        {"max_attempts": True},
        {"backoff": -1},
        {"deadline": 0},
        {"deadline": float("inf")},
    ):
        with pytest.raises(ConfigurationError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    assert RetryPolicy(deadline=None).deadline is None


def test_deadline() -> None:
    assert Deadline(None).remaining() is None
    assert not Deadline(None).expired()
    d = Deadline(10)
    remaining = d.remaining()
    assert remaining is not None
    assert 9 < remaining <= 10
    gone = Deadline(0.001)
    time.sleep(0.01)
    assert gone.expired()
    with pytest.raises(BackendTimeoutError, match=r"total deadline of 0\.001 s"):
        gone.check("p")


class Flaky:
    """Fails with the given errors, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_call_recovers_and_logs_each_retry(caplog: pytest.LogCaptureFixture) -> None:
    fn = Flaky(ServerError("boom", status_code=502), RateLimitError("slow down", status_code=429))
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        assert retry_call(fn, policy=FAST, deadline=Deadline(5), provider="p") == "ok"
    assert fn.calls == 3
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "attempt 1 of 4 failed (ServerError: boom)" in messages[0]
    assert "RateLimitError: slow down" in messages[1]


def test_retry_call_stops_on_a_non_retryable_error() -> None:
    fn = Flaky(BadRequestError("bad", status_code=400))
    with pytest.raises(BadRequestError):
        retry_call(fn, policy=FAST, deadline=Deadline(5), provider="p")
    assert fn.calls == 1


def test_retry_call_bounds_attempts() -> None:
    fn = Flaky(*[ServerError("x", status_code=500)] * 10)
    with pytest.raises(ServerError):
        retry_call(fn, policy=FAST, deadline=Deadline(5), provider="p")
    assert fn.calls == 4
    once = Flaky(ServerError("x", status_code=500))
    with pytest.raises(ServerError):
        retry_call(once, policy=RetryPolicy(max_attempts=1), deadline=Deadline(5), provider="p")
    assert once.calls == 1


def test_retry_after_longer_than_the_deadline_stops_at_once() -> None:
    fn = Flaky(RateLimitError("x", status_code=429, retry_after=30))
    start = time.monotonic()
    with pytest.raises(RateLimitError):
        retry_call(fn, policy=FAST, deadline=Deadline(1), provider="p")
    assert time.monotonic() - start < 5  # the header asked for 30 s
    assert fn.calls == 1


def test_waits_honour_retry_after() -> None:
    fn = Flaky(RateLimitError("x", status_code=429, retry_after=0.2))
    start = time.monotonic()
    assert retry_call(fn, policy=FAST, deadline=Deadline(5), provider="p") == "ok"
    assert time.monotonic() - start >= 0.2


def test_backoff_grows_with_jitter_within_its_cap() -> None:
    # Uncapped, the waits would be up to 5 + 10 + 20 s; the cap keeps each at most 0.03 s.
    policy = RetryPolicy(max_attempts=4, backoff=5.0, max_backoff=0.03, deadline=60.0)
    fn = Flaky(*[ServerError("x")] * 3)
    start = time.monotonic()
    retry_call(fn, policy=policy, deadline=Deadline(60), provider="p")
    assert time.monotonic() - start < 15


def test_expired_deadline_fails_before_calling() -> None:
    fn = Flaky()
    gone = Deadline(0.001)
    time.sleep(0.01)
    with pytest.raises(BackendTimeoutError):
        retry_call(fn, policy=FAST, deadline=gone, provider="p")
    assert fn.calls == 0


def test_aretry_call_recovers_and_bounds_each_attempt_by_the_deadline() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BackendConnectionError("reset")
        return "ok"

    async def hangs() -> str:
        await asyncio.sleep(10)
        return "never"

    assert asyncio.run(aretry_call(flaky, policy=FAST, deadline=Deadline(5), provider="p")) == "ok"
    assert calls == 2
    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match="deadline"):
        asyncio.run(aretry_call(hangs, policy=FAST, deadline=Deadline(0.2), provider="p"))
    assert time.monotonic() - start < 5  # the call alone would take 10 s


# -- streams ----------------------------------------------------------------------------------------
FINAL = Chunk(usage=Usage(input_tokens=1, output_tokens=2), finish_reason="stop", model="m")


def _opener(*scripts: list[Chunk | BackendError]) -> tuple[list[int], object]:
    opened = [0]
    queue = list(scripts)

    def open_chunks() -> Iterator[Chunk]:
        opened[0] += 1
        script = queue.pop(0)

        def gen() -> Iterator[Chunk]:
            for item in script:
                if isinstance(item, BackendError):
                    raise item
                yield item

        return gen()

    return opened, open_chunks


def test_stream_is_retried_until_its_first_chunk() -> None:
    opened, open_chunks = _opener(
        [ServerError("before anything")],
        [Chunk(text=""), BackendConnectionError("still nothing")],
        [Chunk(text="Hel"), Chunk(text="lo"), FINAL],
    )
    chunks = list(stream_with_retries(open_chunks, policy=FAST, deadline=Deadline(5), provider="p"))  # type: ignore[arg-type]
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[-1].usage == FINAL.usage
    assert opened[0] == 3


def test_stream_is_never_retried_after_its_first_chunk() -> None:
    opened, open_chunks = _opener(
        [Chunk(text="Hel"), BackendConnectionError("reset")],
        [Chunk(text="Hello"), FINAL],
    )
    got: list[str] = []
    stream = stream_with_retries(open_chunks, policy=FAST, deadline=Deadline(5), provider="p")  # type: ignore[arg-type]
    with pytest.raises(IncompleteStreamError) as info:
        got.extend(c.text for c in stream)
    assert info.value.partial_text == "Hel"
    assert isinstance(info.value.__cause__, BackendConnectionError)
    assert "not retried" in str(info.value)
    assert opened[0] == 1


def test_incomplete_stream_error_passes_through_unchanged() -> None:
    cut = IncompleteStreamError("cut", partial_text="Hel")
    _, open_chunks = _opener([Chunk(text="Hel"), cut])
    with pytest.raises(IncompleteStreamError) as info:
        list(stream_with_retries(open_chunks, policy=FAST, deadline=Deadline(5), provider="p"))  # type: ignore[arg-type]
    assert info.value is cut


def test_async_stream_rule_and_deadline() -> None:
    attempts = 0

    async def open_chunks() -> AsyncIterator[Chunk]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ServerError("first open fails")
        yield Chunk(text="a")
        yield Chunk(text="b")
        await asyncio.sleep(10)
        yield FINAL

    async def main() -> list[str]:
        got: list[str] = []
        async for chunk in astream_with_retries(open_chunks, policy=FAST, deadline=Deadline(0.3), provider="p"):
            got.append(chunk.text)
        return got

    start = time.monotonic()
    with pytest.raises(IncompleteStreamError) as info:
        asyncio.run(main())
    assert time.monotonic() - start < 5  # the stream alone would take 10 s
    assert info.value.partial_text == "ab"
    assert isinstance(info.value.__cause__, BackendTimeoutError)
    assert attempts == 2


def test_a_retry_after_above_the_cap_says_why_it_was_not_retried() -> None:
    fn = Flaky(RateLimitError("rate limited", status_code=429, retry_after=120))
    policy = RetryPolicy(max_attempts=3, retry_after_cap=30)
    with pytest.raises(RateLimitError) as info:
        retry_call(fn, policy=policy, deadline=Deadline(5), provider="p")
    assert fn.calls == 1
    message = str(info.value)
    assert message.startswith("rate limited; not retried")
    assert "wait 120 s (Retry-After)" in message
    assert "retry_after_cap=30 s" in message
    assert (info.value.retry_after, info.value.attempts) == (120, 1)


def test_attempts_are_recorded_on_the_error_and_the_completion() -> None:
    from promptkit import Completion

    fails = Flaky(*[ServerError(str(i)) for i in range(FAST.max_attempts)])
    with pytest.raises(ServerError) as info:
        retry_call(fails, policy=FAST, deadline=Deadline(5), provider="p")
    assert info.value.attempts == FAST.max_attempts

    errors = [ServerError("x")]

    def twice() -> Completion:
        if errors:
            raise errors.pop()
        return Completion(text="ok")

    assert retry_call(twice, policy=FAST, deadline=Deadline(5), provider="p").attempts == 2
    assert retry_call(lambda: Completion(text="ok"), policy=FAST, deadline=Deadline(5), provider="p").attempts == 1
