"""Batches: order, per-item errors, the wire under faults, cancellation, checkpoints, caps and estimates."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import (
    BadRequestError,
    BatchResult,
    CheckpointWarning,
    Completion,
    ConfigurationError,
    Latency,
    Message,
    NumberParser,
    ParseError,
    Prompt,
    ScriptExhaustedError,
    SpendingCapError,
    UndefinedVariableError,
    Usage,
    count_tokens,
)
from promptkit.backends import RateLimitedBackend, RateLimiter
from promptkit.backends._ratelimit import estimate_tokens
from promptkit.testing import FunctionBackend, MockBackend, server_error

ITEMS = [{"n": i} for i in range(10)]


def echo() -> MockBackend:
    """A mock that answers every request with its last message, upper-cased."""
    return MockBackend(lambda request: request.messages[-1].text.upper())


def test_results_come_back_in_input_order_even_when_calls_finish_out_of_order() -> None:
    release = threading.Event()

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        text = messages[-1].text
        if text == "item 0":
            assert release.wait(30), "the last item never ran while the first was held"
        if text == "item 4":
            release.set()
        return text

    prompt = Prompt("item {{ n }}", FunctionBackend(answer))
    result = prompt.batch([{"n": i} for i in range(5)], max_concurrency=2, progress=False)
    assert result.values == [f"item {i}" for i in range(5)]
    assert [item.index for item in result] == [0, 1, 2, 3, 4]
    assert release.is_set()


def test_item_errors_are_results_and_the_others_are_kept() -> None:
    llm = MockBackend(
        lambda request: {"1": "one", "2": "two", "4": BadRequestError("refused", status_code=400)}.get(
            request.messages[-1].text, "3"
        )
    )
    prompt = Prompt("{{ n }}", llm, parser=NumberParser(int), repair=0, append_instructions=False)
    inputs: list[Any] = [{"n": 3}, {}, {"n": 4}, "not a mapping", {"n": 1}, {"params": 1}]
    result = prompt.batch(inputs, progress=False)
    assert [item.status for item in result] == ["ok", "failed", "failed", "failed", "failed", "failed"]
    assert result.values == [3]
    errors = result.errors
    assert isinstance(errors[0], UndefinedVariableError)  # a missing variable is an item error
    assert isinstance(errors[1], BadRequestError)
    assert isinstance(errors[2], ConfigurationError)
    assert "mapping" in str(errors[2])
    assert isinstance(errors[3], ParseError)  # "one" is not an int
    assert "params" in str(errors[4])
    with pytest.raises(ParseError):
        _ = result[4].value
    assert result.counts == {"ok": 1, "failed": 5, "skipped": 0, "cancelled": 0}
    assert result[4].usage.output_tokens == 1  # the unparsable reply's tokens still count


def test_a_test_guard_stops_the_batch_instead_of_failing_every_item() -> None:
    prompt = Prompt("{{ n }}", MockBackend(["a", "b"]))
    with pytest.raises(ScriptExhaustedError):
        prompt.batch(ITEMS, max_concurrency=1, progress=False)


@pytest.mark.anyio
async def test_a_test_guard_stops_the_async_batch_too() -> None:
    prompt = Prompt("{{ n }}", MockBackend(["a"]))
    with pytest.raises(ScriptExhaustedError):
        await prompt.abatch(ITEMS, max_concurrency=2, progress=False)


def test_configuration_that_fails_every_item_is_raised_before_anything_is_sent() -> None:
    llm = MockBackend(["x"])
    with pytest.raises(ConfigurationError, match="no backend"):
        Prompt("{{ n }}").batch(ITEMS, progress=False)
    with pytest.raises(ConfigurationError, match="temperature"):
        Prompt("{{ n }}", llm).batch(ITEMS, params={"temperature": 9}, progress=False)
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        Prompt("{{ n }}", llm).batch(ITEMS, max_concurrency=0, progress=False)
    with pytest.raises(ConfigurationError, match="single dict"):
        Prompt("{{ n }}", llm).batch({"n": 1}, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="progress"):
        Prompt("{{ n }}", llm).batch(ITEMS, progress="yes")  # type: ignore[arg-type]
    assert llm.calls == []


def test_params_apply_to_every_call() -> None:
    llm = echo()
    Prompt("{{ n }}", llm).batch(ITEMS[:3], params={"temperature": 0.5}, progress=False)
    assert [call.params["temperature"] for call in llm.calls] == [0.5, 0.5, 0.5]


def test_a_scripted_mock_is_consumed_once_per_reply_from_many_threads() -> None:
    replies = [f"r{i}" for i in range(200)]
    llm = MockBackend(replies)
    result = Prompt("{{ n }}", llm).batch([{"n": i} for i in range(200)], max_concurrency=16, progress=False)
    assert sorted(result.values) == sorted(replies)
    assert llm.remaining == 0
    assert len(llm.calls) == 200


def test_the_result_adds_up_usage_and_latency_and_shows_itself() -> None:
    result = Prompt("say {{ n }}", echo()).batch(ITEMS, progress=False)
    assert result.usage.input_tokens == 20
    assert result.usage.output_tokens == 20
    latency = result.latency
    assert latency is not None
    assert latency.count == 10
    assert 0 <= latency.p50 <= latency.p90 <= latency.p99 <= latency.max
    assert result.elapsed > 0
    assert repr(result).startswith("<BatchResult 10 items: 10 ok")
    assert "p50=" in result._repr_html_()
    assert Latency.of([]) is None
    assert Latency.of([2.0]) == Latency(count=1, p50=2.0, p90=2.0, p99=2.0, mean=2.0, max=2.0)
    assert Latency.of([float(n) for n in range(1, 101)]).p90 == pytest.approx(90.1)  # type: ignore[union-attr]


# -- several prompts ------------------------------------------------------------------------------------
def test_several_prompts_over_the_same_inputs_give_results_per_prompt_per_input() -> None:
    llm = echo()
    grid = promptkit.batch(
        {"short": Prompt("{{ n }}", llm), "long": Prompt("number {{ n }}", llm)}, ITEMS[:3], progress=False
    )
    assert list(grid) == ["short", "long"]
    assert grid["long"].values == ["NUMBER 0", "NUMBER 1", "NUMBER 2"]
    assert {key: item.value for key, item in grid.row(1).items()} == {"short": "1", "long": "NUMBER 1"}
    assert grid.usage.output_tokens == 9
    # the calls go input by input, so an interrupted run leaves whole rows
    assert [c.messages[-1].text for c in llm.calls[:2]] == ["0", "number 0"] or len(llm.calls) == 6
    positional = promptkit.batch([Prompt("{{ n }}", llm)], ITEMS[:1], progress=False)
    assert list(positional) == [0]
    assert "BatchGrid" in repr(grid)
    assert "BatchGrid" in grid._repr_html_()
    with pytest.raises(ConfigurationError, match=r"prompt\.batch"):
        promptkit.batch(Prompt("{{ n }}", llm), ITEMS)  # type: ignore[call-overload]


@pytest.mark.anyio
async def test_async_batches_of_one_and_several_prompts() -> None:
    llm = echo()
    result = await Prompt("{{ n }}", llm).abatch(ITEMS, max_concurrency=3, progress=False)
    assert result.values == [str(i) for i in range(10)]
    grid = await promptkit.abatch([Prompt("a{{ n }}", llm), Prompt("b{{ n }}", llm)], ITEMS[:2], progress=False)
    assert grid[1].values == ["B0", "B1"]


@pytest.mark.anyio
async def test_the_sync_batch_works_inside_a_running_event_loop() -> None:
    asyncio.get_running_loop()  # as in a notebook cell
    result = Prompt("{{ n }}", echo()).batch(ITEMS, progress=False)
    assert len(result.values) == 10


# -- cancellation ---------------------------------------------------------------------------------------
def _interrupting(after: int) -> tuple[FunctionBackend, list[int]]:
    calls: list[int] = []
    lock = threading.Lock()

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        with lock:
            calls.append(1)
            n = len(calls)
        if n > after:
            raise KeyboardInterrupt
        return messages[-1].text

    return FunctionBackend(answer), calls


def test_ctrl_c_in_the_sync_path_returns_what_finished_and_cancels_the_rest() -> None:
    llm, _ = _interrupting(after=4)
    result = Prompt("{{ n }}", llm).batch(ITEMS, max_concurrency=1, progress=False)
    assert [item.status for item in result] == ["ok"] * 4 + ["cancelled"] * 6
    assert result.values == ["0", "1", "2", "3"]
    assert len(result.cancelled) == 6


def test_ctrl_c_with_calls_in_flight_keeps_every_finished_result() -> None:
    llm, _ = _interrupting(after=20)
    result = Prompt("{{ n }}", llm).batch([{"n": i} for i in range(100)], max_concurrency=4, progress=False)
    statuses = collections.Counter(item.status for item in result)
    assert set(statuses) == {"ok", "cancelled"}
    assert statuses["ok"] <= 20
    assert all(item.value == str(item.index) for item in result.ok)


@pytest.mark.anyio
async def test_cancelling_the_async_batch_returns_what_finished() -> None:
    holder: dict[str, asyncio.Task[Any]] = {}
    count = [0]
    never = asyncio.Event()

    async def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        count[0] += 1
        if count[0] > 5:
            holder["task"].cancel()
            await never.wait()  # in flight when the cancellation lands
        return messages[-1].text

    prompt = Prompt("{{ n }}", FunctionBackend(answer))
    holder["task"] = asyncio.ensure_future(prompt.abatch(ITEMS, max_concurrency=2, progress=False))
    result = await holder["task"]
    assert isinstance(result, BatchResult)
    assert result.values == ["0", "1", "2", "3", "4"]
    assert [item.status for item in result][5:] == ["cancelled"] * 5


@pytest.mark.anyio
async def test_a_keyboard_interrupt_inside_an_async_call_is_a_cancellation_not_a_crash() -> None:
    async def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        if messages[-1].text == "3":
            raise KeyboardInterrupt
        return messages[-1].text

    result = await Prompt("{{ n }}", FunctionBackend(answer)).abatch(ITEMS, max_concurrency=1, progress=False)
    assert result.values == ["0", "1", "2"]
    assert len(result.cancelled) == 7


# -- checkpoints ----------------------------------------------------------------------------------------
def _counting(crash_after: int | None = None) -> tuple[FunctionBackend, list[str]]:
    sent: list[str] = []
    lock = threading.Lock()

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        with lock:
            if crash_after is not None and len(sent) >= crash_after:
                raise KeyboardInterrupt  # the process dies mid-batch
            sent.append(messages[-1].text)
        return str(len(messages[-1].text) * 10)

    return FunctionBackend(answer), sent


def test_a_rerun_after_a_crash_sends_only_the_unfinished_items(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    inputs = [{"word": "x" * (i + 1)} for i in range(12)]
    llm, sent = _counting(crash_after=5)
    first = Prompt("{{ word }}", llm, parser=NumberParser(int), append_instructions=False).batch(
        inputs, checkpoint=path, max_concurrency=1, progress=False
    )
    assert len(first.ok) == 5
    assert len(first.cancelled) == 7
    assert len(path.read_text().splitlines()) == 5

    llm, sent = _counting()
    again = Prompt("{{ word }}", llm, parser=NumberParser(int), append_instructions=False).batch(
        inputs, checkpoint=path, progress=False
    )
    assert len(sent) == 7  # only the unfinished ones
    assert again.values == [10 * (i + 1) for i in range(12)]  # restored values are re-parsed: ints
    assert again.restored == 5
    assert all(item.restored for item in again[:5])
    assert again[0].result is not None
    assert again[0].result.info["restored_from"] == str(path)
    assert again.usage.output_tokens == sum(item.usage.output_tokens for item in again[5:])

    llm, sent = _counting()
    Prompt("{{ word }}", llm, parser=NumberParser(int), append_instructions=False).batch(
        inputs, checkpoint=path, progress=False
    )
    assert sent == []  # everything finished: nothing is sent


def test_a_changed_prompt_or_input_does_not_reuse_stale_answers(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    llm, sent = _counting()
    Prompt("{{ word }}", llm).batch([{"word": "a"}, {"word": "b"}], checkpoint=path, progress=False)
    Prompt("Word: {{ word }}", llm).batch([{"word": "a"}, {"word": "b"}], checkpoint=path, progress=False)
    Prompt("{{ word }}", llm, params={"temperature": 0}).batch([{"word": "a"}], checkpoint=path, progress=False)
    Prompt("{{ word }}", llm).batch([{"word": "a"}, {"word": "c"}], checkpoint=path, progress=False)
    assert sent == ["a", "b", "Word: a", "Word: b", "a", "c"]


def test_failed_items_are_not_checkpointed_and_are_retried(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    llm = MockBackend(["ok 0", server_error(), "ok 2"])
    first = Prompt("{{ n }}", llm).batch(ITEMS[:3], checkpoint=path, max_concurrency=1, progress=False)
    assert [item.status for item in first] == ["ok", "failed", "ok"]
    llm.add("ok 1")
    again = Prompt("{{ n }}", llm).batch(ITEMS[:3], checkpoint=path, progress=False)
    assert again.values == ["ok 0", "ok 1", "ok 2"]
    assert len(llm.calls) == 4


def test_a_corrupt_trailing_line_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    llm = echo()
    Prompt("{{ n }}", llm).batch(ITEMS[:3], checkpoint=path, progress=False)
    lines = path.read_text().splitlines()
    cut = json.loads(lines[2])["index"]
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # a crash mid-write
    llm.reset()
    with pytest.warns(CheckpointWarning, match="last line"):
        again = Prompt("{{ n }}", llm).batch(ITEMS[:3], checkpoint=path, progress=False)
    assert again.values == ["0", "1", "2"]
    assert len(llm.calls) == 1
    records = [json.loads(line) for line in path.read_text().splitlines()[-1:]]
    assert records[0]["index"] == cut  # appended on a fresh line after the cut one


def test_the_checkpoint_stores_no_inputs_or_secrets(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    prompt = Prompt("{{ note }}", MockBackend(lambda r: "fine"), params={"extra": {"api_key": secret}})
    prompt.batch([{"note": f"private note {secret}"}], checkpoint=path, progress=False)
    text = path.read_text()
    assert secret not in text
    assert "private note" not in text
    record = json.loads(text)
    assert set(record) == {"v", "key", "index", "replies", "seconds"}
    assert record["replies"] == [
        {"text": "fine", "model": "mock", "finish_reason": "stop", "usage": {"input_tokens": 3, "output_tokens": 1}}
    ]


def test_restored_results_are_rebuilt_by_the_prompts_own_strategy(tmp_path: Path) -> None:
    from promptkit import ChainOfThought, SelfConsistency

    path = tmp_path / "run.jsonl"
    cot_reply = "<reasoning>two and two</reasoning><answer>4</answer>"
    llm = MockBackend(lambda request: cot_reply)
    cot = Prompt("{{ q }}", llm, parser=NumberParser(int), strategy=ChainOfThought())
    first = cot.batch([{"q": "2+2?"}], checkpoint=path, progress=False)
    again = cot.batch([{"q": "2+2?"}], checkpoint=path, progress=False)
    assert len(llm.calls) == 1
    assert again.restored == 1
    assert again[0].value == first[0].value == 4
    assert again[0].result is not None
    assert again[0].result.reasoning == "two and two"

    votes = iter(["7", "8", "7"] * 2)
    voter = MockBackend(lambda request: next(votes))
    vote = Prompt("{{ q }}", voter, parser=NumberParser(int), strategy=SelfConsistency(3))
    vote.batch([{"q": "?"}], checkpoint=path, progress=False)
    restored = vote.batch([{"q": "?"}], checkpoint=path, progress=False)
    assert len(voter.calls) == 3  # the samples were replayed, not sent again
    assert restored[0].value == 7
    assert restored.restored == 1
    # another strategy over the same prompt is another item: not restored
    plain = Prompt("{{ q }}", voter, parser=NumberParser(int))
    assert plain.batch([{"q": "?"}], checkpoint=path, progress=False).restored == 0


# -- the spending cap -----------------------------------------------------------------------------------
def test_the_token_cap_stops_the_batch_before_a_request_could_pass_it() -> None:
    llm = MockBackend(lambda request: Completion(text="ok", usage=Usage(input_tokens=10, output_tokens=5)))
    prompt = Prompt("Question number {{ n }}", llm, params={"max_tokens": 5})
    need = estimate_tokens(llm.build_request(prompt.render(n=0), {"max_tokens": 5}))
    cap = 60 + need  # four replies of 15 tokens, then one more worst case
    result = prompt.batch(ITEMS, max_tokens_total=cap, max_concurrency=1, progress=False)
    assert len(llm.calls) == 5  # after five replies (75 tokens) the next worst case would pass the cap
    assert [item.status for item in result] == ["ok"] * 5 + ["skipped"] * 5
    assert result.usage.total_tokens == 75 <= cap
    skipped = result.skipped[0]
    assert isinstance(skipped.error, SpendingCapError)
    assert (skipped.error.limit, skipped.error.committed, skipped.error.needed) == (cap, 75, need)
    assert skipped.seconds is None  # never sent
    assert all(item.error is skipped.error for item in result.skipped)


def test_the_cap_holds_with_many_calls_in_flight() -> None:
    def worst_case(messages: tuple[Message, ...], params: Mapping[str, Any]) -> Completion:
        used = count_tokens(list(messages), model="gpt-4o-mini")
        return Completion(text="ok", usage=Usage(input_tokens=used, output_tokens=params["max_tokens"]))

    llm = FunctionBackend(worst_case)
    prompt = Prompt("{{ n }}", llm, params={"max_tokens": 50})
    result = prompt.batch([{"n": i} for i in range(100)], max_tokens_total=1000, max_concurrency=8, progress=False)
    assert 0 < result.usage.total_tokens <= 1000  # every reply used its whole worst case, and still fits
    per_call = estimate_tokens(llm.build_request(prompt.render(n=42), {"max_tokens": 50}))
    assert len(result.ok) == len(llm.calls) == 1000 // per_call
    assert len(result.skipped) == 100 - len(llm.calls)


def test_a_cap_without_max_tokens_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_tokens_total needs max_tokens"):
        Prompt("{{ n }}", echo()).batch(ITEMS, max_tokens_total=100, progress=False)


# -- estimates ------------------------------------------------------------------------------------------
def test_estimate_counts_calls_and_tokens_without_sending() -> None:
    llm = echo()
    prompt = Prompt("Tell me about {{ n }}", llm)
    inputs: list[Any] = [*ITEMS[:4], {}]
    estimate = prompt.estimate_batch(inputs)
    assert llm.calls == []
    assert estimate.items == 5
    assert estimate.calls == 4
    assert estimate.input_tokens == sum(count_tokens(prompt.render(**i), model="gpt-4o-mini") for i in ITEMS[:4])
    assert estimate.output_tokens is None
    assert estimate.total_tokens is None
    assert [index for index, _ in estimate.errors] == [4]
    assert estimate.exact is False  # a test double has no tokenizer of its own
    bounded = prompt.estimate_batch(ITEMS[:4], params={"max_tokens": 10})
    assert bounded.output_tokens == 40
    assert bounded.total_tokens == estimate.input_tokens + 40
    both = promptkit.estimate_batch([prompt, prompt], ITEMS[:4])
    assert both.calls == 8
    assert both.input_tokens == 2 * estimate.input_tokens


def test_estimate_leaves_out_what_a_checkpoint_holds(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    llm, _ = _counting(crash_after=3)
    prompt = Prompt("{{ n }}", llm)
    prompt.batch(ITEMS, checkpoint=path, max_concurrency=1, progress=False)
    estimate = prompt.estimate_batch(ITEMS, checkpoint=path)
    assert (estimate.finished, estimate.calls) == (3, 7)


# -- limits and progress --------------------------------------------------------------------------------
def test_batches_on_one_backend_share_one_limiter() -> None:
    from promptkit._batch._limits import shared_limiter

    llm = echo()
    Prompt("{{ n }}", llm).batch(ITEMS, requests_per_minute=10_000, progress=False)
    Prompt("other {{ n }}", llm).batch(ITEMS, requests_per_minute=10_000, progress=False)
    limiter = shared_limiter(llm, 10_000, None)
    assert shared_limiter(llm, 10_000, None) is limiter
    assert shared_limiter(llm, 5, None) is not limiter  # other limits: a new quota
    assert limiter.requests_per_minute == 10_000


def test_a_user_limiter_paces_the_batch() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(requests_per_minute=3, clock=lambda: now[0], sleep=sleep)
    prompt = Prompt("{{ n }}", RateLimitedBackend(echo(), limiter=limiter))
    result = prompt.batch(ITEMS[:6], max_concurrency=1, progress=False)
    assert len(result.values) == 6
    assert sleeps == [pytest.approx(20.0)] * 3  # three free, then one every 20 s
    with pytest.raises(ConfigurationError, match="already a RateLimitedBackend"):
        prompt.batch(ITEMS, requests_per_minute=5, progress=False)


def test_the_progress_bar_shows_done_failed_and_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    Prompt("{{ n }}", echo()).batch([*ITEMS[:3], {}], progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err
    assert "failed=1" in err
    assert "tokens=6" in err


def test_no_bar_when_nobody_can_see_it(capsys: pytest.CaptureFixture[str]) -> None:
    Prompt("{{ n }}", echo()).batch(ITEMS[:3])  # stderr is captured, not a terminal
    assert capsys.readouterr().err == ""


# -- the wire: 1,000 items against the local provider server --------------------------------------------
openai = pytest.importorskip("openai")


@pytest.fixture
def faulty_server() -> Iterator[tuple[Any, collections.Counter[str]]]:
    from promptkit.testing import ProviderServer, ServerReply

    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    faults = [
        ServerReply.error(429, retry_after=0.001),
        ServerReply.error(500),
        ServerReply.reset(),
        ServerReply.error(503),
    ]

    def rule(request: Any) -> Any:
        text = request.body["messages"][-1]["content"]
        n = int(text.split()[-1])
        with lock:
            seen[text] += 1
            first = seen[text] == 1
        if n % 200 == 7:
            return ServerReply.error(400, message="permanently refused")
        if first and n % 5 == 0:  # 20% fail once, transiently
            return faults[(n // 5) % len(faults)]
        return ServerReply(text=f"answer {n}")

    with ProviderServer(rule=rule) as server:
        yield server, seen


def _wire_backend(server: Any) -> Any:
    from promptkit import RetryPolicy
    from promptkit.backends.openai import OpenAIBackend

    policy = RetryPolicy(max_attempts=3, backoff=0.001, max_backoff=0.005, deadline=30.0)
    return OpenAIBackend(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-test-key", retry=policy)


def test_a_thousand_items_over_the_wire_with_transient_and_permanent_faults(
    faulty_server: tuple[Any, collections.Counter[str]],
) -> None:
    server, seen = faulty_server
    with _wire_backend(server) as llm:
        result = Prompt("question {{ n }}", llm).batch(
            [{"n": n} for n in range(1000)], max_concurrency=16, progress=False
        )
    permanent = [n for n in range(1000) if n % 200 == 7]
    assert len(permanent) == 5
    assert len(result) == 1000
    assert [item.index for item in result] == list(range(1000))
    assert len(result.values) == 995
    assert len(result.errors) == 5
    assert [item.index for item in result.failed] == permanent
    assert all(isinstance(e, BadRequestError) for e in result.errors)
    assert result.values == [f"answer {n}" for n in range(1000) if n not in permanent]
    # the retry policy allows 3 attempts; each transient fault cost exactly one more request
    assert max(seen.values()) <= 3
    for n in range(1000):
        expected = 2 if (n % 5 == 0 and n not in permanent) else 1
        assert seen[f"question {n}"] == expected, n
    assert len(server.requests) == 1000 + 200  # one retry for each of the 20%


@pytest.mark.anyio
async def test_the_async_batch_over_the_wire_retries_the_same_way(
    faulty_server: tuple[Any, collections.Counter[str]],
) -> None:
    server, seen = faulty_server
    async with _wire_backend(server) as llm:
        result = await Prompt("question {{ n }}", llm).abatch(
            [{"n": n} for n in range(200)], max_concurrency=16, progress=False
        )
    assert len(result.values) == 199
    assert [item.index for item in result.failed] == [7]
    assert max(seen.values()) == 2
    assert sum(seen.values()) == 200 + 40


# -- cost -----------------------------------------------------------------------------------------------
@pytest.fixture
def house_price() -> Iterator[promptkit.Price]:
    price = promptkit.Price(input=1.0, output=2.0)  # USD per million tokens
    promptkit.set_price("house-model", price)
    yield price
    promptkit.set_price("house-model", None)


def _house(reply: Usage) -> MockBackend:
    return MockBackend(lambda request: Completion(text="ok", model="house-model", usage=reply), model="house-model")


def test_the_batch_adds_up_cost_and_the_bar_shows_it(
    house_price: promptkit.Price, capsys: pytest.CaptureFixture[str]
) -> None:
    llm = _house(Usage(input_tokens=1000, output_tokens=500))
    result = Prompt("{{ n }}", llm).batch(ITEMS[:4], progress=True)
    assert result.cost == pytest.approx(4 * (1000 * 1.0 + 500 * 2.0) / 1e6)
    assert result[0].cost == pytest.approx(0.002)
    assert "cost=$0.0080" in capsys.readouterr().err
    grid = promptkit.batch([Prompt("{{ n }}", llm), Prompt("again {{ n }}", llm)], ITEMS[:1], progress=False)
    assert grid.cost == pytest.approx(0.004)
    assert Prompt("{{ n }}", echo()).batch(ITEMS[:1], progress=False).cost is None  # the mock has no price


def test_the_money_cap_stops_the_batch_before_it_could_be_passed(house_price: promptkit.Price) -> None:
    llm = _house(Usage(input_tokens=5, output_tokens=100))  # within the counted worst case
    prompt = Prompt("{{ n }}", llm, params={"max_tokens": 100})
    one = (5 * 1.0 + 100 * 2.0) / 1e6  # what each reply costs
    worst = promptkit.estimate_cost(
        "house-model", input_tokens=estimate_tokens(llm.build_request("5", {})), output_tokens=100
    )
    assert worst is not None
    cap = 3 * one + worst  # three replies, then room for one more worst case
    result = prompt.batch(ITEMS, max_cost=cap, max_concurrency=1, progress=False)
    assert [item.status for item in result] == ["ok"] * 4 + ["skipped"] * 6
    assert result.cost is not None
    assert result.cost <= cap
    error = result.skipped[0].error
    assert isinstance(error, SpendingCapError)
    assert error.unit == "USD"
    assert "max_cost=" in str(error)


def test_a_money_cap_needs_a_price_and_max_tokens(house_price: promptkit.Price) -> None:
    with pytest.raises(ConfigurationError, match="needs a price"):
        Prompt("{{ n }}", echo(), params={"max_tokens": 5}).batch(ITEMS, max_cost=1.0, progress=False)
    with pytest.raises(ConfigurationError, match="max_cost needs max_tokens"):
        Prompt("{{ n }}", _house(Usage())).batch(ITEMS, max_cost=1.0, progress=False)
    with pytest.raises(ConfigurationError, match="positive amount"):
        Prompt("{{ n }}", _house(Usage())).batch(ITEMS, max_cost=0, progress=False)


def test_the_estimate_prices_the_worst_case(house_price: promptkit.Price) -> None:
    llm = _house(Usage())
    prompt = Prompt("{{ n }}", llm, params={"max_tokens": 100})
    estimate = prompt.estimate_batch(ITEMS[:3])
    assert estimate.cost == pytest.approx((estimate.input_tokens * 1.0 + 300 * 2.0) / 1e6)
    assert Prompt("{{ n }}", llm).estimate_batch(ITEMS[:3]).cost is None  # no max_tokens: output unknown
    assert llm.calls == []


def test_the_dry_run_counts_every_call_a_strategy_plans() -> None:
    from promptkit import SelfConsistency, SelfRefine, estimate_batch

    base = Prompt("Hi {{ name }}", MockBackend(), params={"max_tokens": 5, "temperature": 0.7})
    inputs = [{"name": "Ada"}, {"name": "Bo"}]
    direct = estimate_batch(base, inputs)
    voted = estimate_batch(base.with_strategy(SelfConsistency(5)), inputs)
    refined = estimate_batch(base.with_strategy(SelfRefine(rounds=2)), inputs)
    assert (direct.calls, voted.calls, refined.calls) == (2, 10, 10)
    assert voted.input_tokens == 5 * direct.input_tokens
    assert voted.output_tokens == 5 * 2 * 5
    assert not voted.exact
