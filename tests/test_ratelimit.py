"""RateLimiter and RateLimitedBackend: the bucket arithmetic on a fake clock, sharing, and the wrapper."""

from __future__ import annotations

import asyncio
import threading

import pytest

from promptkit import Completion, ConfigurationError, Prompt, Usage
from promptkit.backends import RateLimitedBackend, RateLimiter, Request
from promptkit.backends._ratelimit import estimate_tokens
from promptkit.testing import FunctionBackend, MockBackend, server_error


class FakeClock:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def _limiter(clock: FakeClock, **limits: float) -> RateLimiter:
    return RateLimiter(**limits, clock=clock, sleep=clock.sleep, asleep=clock.asleep)


def test_requests_bucket_allows_a_minute_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=120)  # 2 a second
    assert [limiter.reserve(tokens=0) for _ in range(120)] == [0.0] * 120
    assert limiter.reserve(tokens=0) == pytest.approx(0.5)  # the 121st waits for one refill
    assert limiter.reserve(tokens=0) == pytest.approx(1.0)  # reservations queue up in arrival order
    clock.now = 10.0  # 20 requests refilled, 2 of them already promised
    assert limiter.reserve(tokens=0, requests=18) == 0.0
    assert limiter.reserve(tokens=0) == pytest.approx(0.5)


def test_acquire_sleeps_exactly_the_wait() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=60)
    for _ in range(62):
        limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]
    assert limiter.waited == pytest.approx(2.0)


def test_tokens_bucket_waits_for_the_deficit_and_settles_with_the_real_usage() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, tokens_per_minute=600)  # 10 tokens a second
    assert limiter.reserve(tokens=500) == 0.0
    assert limiter.reserve(tokens=200) == pytest.approx(10.0)  # 100 short: 10 s
    limiter.settle(reserved=200, used=100)  # the reply was shorter: 100 back
    assert limiter.reserve(tokens=0) == 0.0
    limiter.settle(reserved=0, used=50)  # a longer reply than reserved becomes a debt
    assert limiter.reserve(tokens=10) == pytest.approx(6.0)


def test_both_limits_wait_for_the_slower_bucket() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=60, tokens_per_minute=60)
    assert limiter.reserve(tokens=60) == 0.0
    assert limiter.reserve(tokens=30) == pytest.approx(30.0)  # tokens, not requests, are short


def test_release_gives_a_reservation_back() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=1)
    assert limiter.reserve(tokens=0) == 0.0
    assert limiter.reserve(tokens=0) == pytest.approx(60.0)
    limiter.release(tokens=0)
    assert limiter.reserve(tokens=0) == pytest.approx(60.0)  # the freed slot goes to the next caller


def test_a_request_larger_than_a_minute_of_tokens_is_refused_not_waited_for() -> None:
    limiter = _limiter(FakeClock(), tokens_per_minute=100)
    with pytest.raises(ConfigurationError, match="can never fit tokens_per_minute=100"):
        limiter.reserve(tokens=101)


@pytest.mark.parametrize(
    "limits",
    [{}, {"requests_per_minute": 0}, {"tokens_per_minute": -5}, {"requests_per_minute": float("inf")}],
)
def test_bad_limits_are_configuration_errors(limits: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(**limits)


def test_cancelled_async_wait_releases_the_reservation() -> None:
    clock = FakeClock()

    async def never(seconds: float) -> None:
        raise asyncio.CancelledError

    limiter = RateLimiter(requests_per_minute=1, clock=clock, asleep=never)
    limiter.reserve(tokens=0)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await limiter.aacquire()

    asyncio.run(main())
    assert limiter.reserve(tokens=0) == pytest.approx(60.0)  # as if the cancelled call never queued


def test_threads_share_one_limiter_without_losing_a_reservation() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            wait = limiter.reserve(tokens=0)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 100 reservations on a frozen clock: 60 free, then one more second of wait each
    assert sorted(waits) == pytest.approx([0.0] * 60 + [float(n) for n in range(1, 41)])


# -- the wrapper ----------------------------------------------------------------------------------------
def test_wrapper_estimates_with_max_tokens_and_settles_with_usage() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, tokens_per_minute=1000)
    seen: list[int] = []

    def estimate(request: Request) -> int:
        seen.append(estimate_tokens(request))
        return 100

    inner = FunctionBackend(lambda m, p: Completion(text="ok", usage=Usage(input_tokens=20, output_tokens=5)))
    llm = RateLimitedBackend(inner, limiter=limiter, estimate=estimate)
    llm.complete("hello there", max_tokens=50)
    assert seen[0] > 50  # the messages counted, plus max_tokens
    # 100 reserved, 25 used: 975 left of 1000
    assert limiter.reserve(tokens=975) == 0.0
    assert limiter.reserve(tokens=1) > 0


def test_estimate_counts_messages_plus_max_tokens() -> None:
    request = MockBackend().build_request("one two three", {"max_tokens": 7})
    plain = MockBackend().build_request("one two three")
    assert estimate_tokens(request) == estimate_tokens(plain) + 7
    assert estimate_tokens(plain) > 3  # the chat format's overhead is counted too


def test_failed_calls_give_their_tokens_back_but_keep_the_request() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=2, tokens_per_minute=100)
    llm = RateLimitedBackend(MockBackend([server_error()]), limiter=limiter, estimate=lambda r: 80)
    with pytest.raises(Exception, match="server error"):
        llm.complete("hi")
    assert limiter.reserve(tokens=100, requests=1) == 0.0  # all tokens back, one request left
    assert limiter.reserve(tokens=0) > 0


def test_prompts_sharing_a_wrapper_share_its_quota() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=2)
    llm = RateLimitedBackend(MockBackend(lambda r: "ok"), limiter=limiter)
    a, b = Prompt("a {{ x }}", llm), Prompt("b {{ x }}", llm)
    a.complete(x=1)
    b.complete(x=1)
    assert clock.sleeps == []
    a.complete(x=2)
    assert clock.sleeps == [pytest.approx(30.0)]


def test_streams_are_limited_and_settled() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, tokens_per_minute=100)
    llm = RateLimitedBackend(MockBackend(["a b c"]), limiter=limiter, estimate=lambda r: 50)
    with llm.stream("x y") as stream:
        assert "".join(stream) == "a b c"
    assert stream.completion.usage.output_tokens == 3
    assert limiter.reserve(tokens=95) == 0.0  # 50 reserved, 5 used (2 in, 3 out)


@pytest.mark.anyio
async def test_async_calls_and_streams_wait_on_the_injected_sleep() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, requests_per_minute=1)
    llm = RateLimitedBackend(MockBackend(["one", "two"]), limiter=limiter)
    assert (await llm.acomplete("hi")).text == "one"
    stream = llm.astream("hi")
    assert "".join([d async for d in stream]) == "two"
    assert clock.sleeps == [pytest.approx(60.0)]


def test_wrapper_rejects_both_limiter_and_limits() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        RateLimitedBackend(MockBackend(), limiter=RateLimiter(requests_per_minute=1), requests_per_minute=2)
    assert "requests_per_minute=5" in repr(RateLimitedBackend(MockBackend(), requests_per_minute=5))
