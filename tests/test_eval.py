"""evaluate/aevaluate: statuses, scoring, epochs and reducers, dry runs, caps, cancellation,
checkpoints, the cache, few-shot leakage, async parity and scoring a run log."""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import (
    BM25Selector,
    CachedBackend,
    ChainOfThought,
    EvalEstimate,
    EvaluationError,
    Example,
    FixedSelector,
    HashingEmbedder,
    MemoryCache,
    Message,
    MetricError,
    MMRSelector,
    NumberParser,
    Prompt,
    RandomSelector,
    RateLimitError,
    Row,
    Score,
    ScriptExhaustedError,
    SelfConsistency,
    SemanticSelector,
    Template,
    TokenBudgetSelector,
    Trial,
    aevaluate,
    evaluate,
    evaluate_log,
    load_dataset,
)
from promptkit._eval._leakage import LeakGuard
from promptkit.testing import FunctionBackend, MockBackend, server_error

ROWS = [{"q": f"{n}+{n}?", "expected": str(2 * n)} for n in range(6)]


QUESTION = re.compile(r"(\d+)\+\d+\?")


def answer_to(text: str) -> str:
    """Twice the first number of the question 'n+n?' in ``text``, in an answer tag when asked for one."""
    found = QUESTION.findall(text)
    value = str(2 * int(found[-1])) if found else "?"
    return f"<answer>{value}</answer>" if "<answer>" in text else value


def adder(wrong: set[str] | None = None) -> FunctionBackend:
    """Answers 'n+n?' with 2n (or 'nope' for the questions in ``wrong``)."""

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        question = messages[-1].text.split("\n")[0].split()[-1]
        if wrong and question in wrong:
            return "nope"
        return answer_to(messages[-1].text)

    return FunctionBackend(answer)


def exact(prediction: Any, row: Row) -> bool:
    return str(prediction) == row.expected


class Contains:
    name = "contains"

    def score(self, prediction: Any, row: Row) -> Score:
        found = str(row.expected) in str(prediction)
        return Score(value=1.0 if found else 0.0, detail="found" if found else "missing")


# -- the basics ------------------------------------------------------------------------------------------
def test_every_variant_runs_on_every_row_and_is_scored_per_metric() -> None:
    llm = adder(wrong={"3+3?"})
    report = evaluate(
        {"plain": Prompt("{{ q }}", llm), "polite": Prompt("Please answer {{ q }}", llm)},
        ROWS,
        [exact, Contains()],
        progress=False,
    )
    assert report.variants == ("plain", "polite")
    assert report.metrics == ("exact", "contains")
    assert tuple(row.id for row in report.rows) == load_dataset(ROWS).ids
    for variant in report.variants:
        cells = report.cells[variant]
        assert [cell.status for cell in cells] == ["ok"] * 6
        assert [cell.scores["exact"] for cell in cells] == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
        assert cells[3].prediction == "nope"
        assert cells[3].trials[0].scores["contains"].detail == "missing"
        assert cells[0].trials[0].text == "0"
    assert len(llm.calls) == 12
    assert report.epochs == 1
    assert report.reducer == "mean"
    assert report.exclusions == {"plain": 0, "polite": 0}
    cell = report.cell("polite", report.rows[2].id)
    assert cell.trials[0].result is not None
    assert cell.trials[0].result.messages[-1].text == "Please answer 2+2?"


def test_one_prompt_is_the_variant_named_prompt_and_a_dataset_is_taken_as_it_is() -> None:
    data = load_dataset(ROWS)
    report = evaluate(Prompt("{{ q }}", adder()), data, exact, progress=False)
    assert report.variants == ("prompt",)
    assert report.rows == tuple(data)


def test_each_variant_gets_only_the_inputs_its_template_takes() -> None:
    rows = [{"q": "1+1?", "context": "sums", "expected": "2"}]
    llm = adder()
    report = evaluate(
        {"short": Prompt("{{ q }}", llm), "long": Prompt("About {{ context }}: {{ q }}", llm)},
        rows,
        exact,
        progress=False,
    )
    assert [report.cells[v][0].status for v in ("short", "long")] == ["ok", "ok"]
    assert [request.messages[-1].text for request in llm.calls] == ["1+1?", "About sums: 1+1?"]


def test_a_variable_no_row_has_is_refused_before_any_call() -> None:
    llm = MockBackend(["x"] * 10)
    with pytest.raises(EvaluationError, match=r"variant 'ctx' needs the input\(s\) context, which no row has"):
        evaluate({"ok": Prompt("{{ q }}", llm), "ctx": Prompt("{{ context }} {{ q }}", llm)}, ROWS, exact)
    assert llm.calls == []


def test_bad_arguments_are_refused_with_clear_errors() -> None:
    prompt = Prompt("{{ q }}", MockBackend())
    with pytest.raises(EvaluationError, match="at least one metric"):
        evaluate(prompt, ROWS, [])
    with pytest.raises(EvaluationError, match="two metrics are named 'exact'"):
        evaluate(prompt, ROWS, [exact, exact])
    with pytest.raises(EvaluationError, match="epochs must be"):
        evaluate(prompt, ROWS, exact, epochs=0)
    with pytest.raises(EvaluationError, match="not a Prompt"):
        evaluate({"x": "{{ q }}"}, ROWS, exact)  # type: ignore[dict-item]
    with pytest.raises(EvaluationError, match="unknown reducer 'median'"):
        evaluate(prompt, ROWS, exact, reducer="median")
    with pytest.raises(EvaluationError, match="pass@3 needs at least 3 epochs"):
        evaluate(prompt, ROWS, exact, epochs=2, reducer="pass@3")
    with pytest.raises(EvaluationError, match="confidence"):
        evaluate(prompt, ROWS, exact, confidence=95.0)
    with pytest.raises(promptkit.ConfigurationError, match="exclude_similar"):
        evaluate(prompt, ROWS, exact, exclude_similar=1.5)


# -- statuses -----------------------------------------------------------------------------------------
def test_a_reply_that_does_not_parse_scores_zero_and_a_failed_call_is_never_scored() -> None:
    script = ["0", "not a number", server_error(503), "6", "8", "10"]
    llm = MockBackend(script)
    prompt = Prompt("{{ q }}", llm, parser=NumberParser(int), append_instructions=False, repair=0)
    report = evaluate(prompt, ROWS, exact, max_concurrency=1, progress=False)
    cells = report.cells["prompt"]
    assert [cell.status for cell in cells] == ["ok", "parse_error", "error", "ok", "ok", "ok"]
    parse_failed = cells[1].trials[0]
    assert parse_failed.text == "not a number"
    assert parse_failed.error_type == "ParseError"
    assert parse_failed.scores["exact"].value == 0.0
    assert cells[1].scores == {"exact": 0.0}
    failed = cells[2].trials[0]
    assert failed.scores == {}
    assert failed.error_type == "ServerError"
    assert "503" in (failed.error or "")
    assert cells[2].scores == {"exact": None}
    assert cells[0].prediction == 0  # the parsed value, typed


def test_a_test_guard_propagates_instead_of_becoming_an_error_trial() -> None:
    with pytest.raises(ScriptExhaustedError):
        evaluate(Prompt("{{ q }}", MockBackend(["0"])), ROWS, exact, progress=False)


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (lambda p, r: 1 / 0, r"metric 'broken' failed on row '.+': ZeroDivisionError"),
        (lambda p, r: 1.5, r"metric 'broken' scored 1.5 on row"),
        (lambda p, r: math.nan, r"returned nan"),
        (lambda p, r: "yes", r"returned 'yes'"),
        (lambda p, r: Score(value=-0.1), r"scored -0.1"),
    ],
)
def test_a_broken_metric_raises_naming_itself_and_the_row(metric: Any, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        evaluate(Prompt("{{ q }}", adder()), ROWS[:2], {"broken": metric}, progress=False)


def test_a_lambda_metric_needs_a_name() -> None:
    with pytest.raises(MetricError, match="needs a name"):
        evaluate(Prompt("{{ q }}", adder()), ROWS[:2], [lambda p, r: 1.0], progress=False)


def test_a_mapping_names_the_metrics() -> None:
    report = evaluate(
        Prompt("{{ q }}", adder()), ROWS[:2], {"always": lambda p, r: True, "exact": exact}, progress=False
    )
    assert report.metrics == ("always", "exact")
    assert report.cells["prompt"][0].scores["always"] == 1.0


class FlakyJudge:
    """A metric whose provider call fails on one row: that trial is an error, not a wrong answer."""

    name = "judge"

    def __init__(self, failing: str) -> None:
        self.failing = failing

    def score(self, prediction: Any, row: Row) -> float:
        if row.id == self.failing:
            raise RateLimitError("judge: rate limited", status_code=429, provider="mock")
        return 1.0

    async def ascore(self, prediction: Any, row: Row) -> float:
        return self.score(prediction, row)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_judge_provider_error_makes_an_error_trial_never_a_wrong_answer(driver: str) -> None:
    data = load_dataset(ROWS[:3])
    failing = data[1].id
    prompt = Prompt("{{ q }}", adder())
    metrics = [exact, FlakyJudge(failing)]
    if driver == "sync":
        report = evaluate(prompt, data, metrics, progress=False)
    else:
        report = asyncio.run(aevaluate(prompt, data, metrics, progress=False))
    cell = report.cell("prompt", failing)
    assert cell.status == "error"
    assert cell.scores == {"exact": None, "judge": None}
    trial = cell.trials[0]
    assert trial.error_type == "RateLimitError"
    assert "metric 'judge' could not score this reply" in (trial.error or "")
    assert trial.prediction is not None  # the reply is kept
    others = [c for c in report.cells["prompt"] if c.row_id != failing]
    assert [c.scores["judge"] for c in others] == [1.0, 1.0]
    assert report.summary("prompt").error_rate == pytest.approx(1 / 3)


def test_sync_metrics_are_scored_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=60)

    def judge(prediction: Any, row: Row) -> bool:
        barrier.wait()  # two scorings at once, or this breaks
        return True

    report = evaluate(Prompt("{{ q }}", adder()), ROWS[:2], judge, max_concurrency=2, progress=False)
    assert [cell.scores["judge"] for cell in report.cells["prompt"]] == [1.0, 1.0]


# -- epochs and reducers --------------------------------------------------------------------------------
def test_each_epoch_is_a_distinct_request_and_the_mean_reduces_them() -> None:
    replies = iter(["0", "0", "1"] * 2)
    lock = threading.Lock()

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        with lock:
            return next(replies)

    llm = FunctionBackend(answer)
    report = evaluate(Prompt("{{ q }}", llm), ROWS[:2], exact, epochs=3, max_concurrency=1, progress=False)
    assert sorted((r.messages[-1].text, r.sample or -1) for r in llm.calls) == [
        ("0+0?", -1),
        ("0+0?", 1000),
        ("0+0?", 2000),
        ("1+1?", -1),
        ("1+1?", 1000),
        ("1+1?", 2000),
    ]
    cell = report.cells["prompt"][0]
    assert [trial.epoch for trial in cell.trials] == [0, 1, 2]
    assert [trial.prediction for trial in cell.trials] == ["0", "0", "1"]
    assert cell.scores["exact"] == pytest.approx(2 / 3)
    assert report.epochs == 3


def test_a_seeded_prompt_is_drawn_with_another_seed_each_epoch() -> None:
    llm = FunctionBackend(lambda messages, params: str(params.get("seed")), supported_params=["seed"])
    report = evaluate(Prompt("{{ q }}", llm, params={"seed": 7}), ROWS[:1], exact, epochs=3, progress=False)
    assert sorted(trial.prediction for trial in report.cells["prompt"][0].trials) == ["1007", "2007", "7"]


def test_epochs_keep_a_sampling_strategys_own_samples_apart() -> None:
    llm = MockBackend(lambda request: "2")
    prompt = Prompt("{{ q }}", llm, strategy=SelfConsistency(2), params={"temperature": 0.7})
    evaluate(prompt, ROWS[1:2], exact, epochs=2, progress=False)
    assert sorted(r.sample for r in llm.calls) == [0, 1, 1001, 1002]


def _scripted(replies: list[str]) -> Prompt[str]:
    queue = iter(replies)
    lock = threading.Lock()

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        with lock:
            return next(queue)

    return Prompt("{{ q }}", FunctionBackend(answer))


def test_majority_keeps_the_most_common_prediction_and_its_score() -> None:
    report = evaluate(
        _scripted(["4", "5", "4"]), [{"q": "2+2?", "expected": "4"}], exact,
        epochs=3, reducer="majority", max_concurrency=1, progress=False,
    )  # fmt: skip
    cell = report.cells["prompt"][0]
    assert cell.prediction == "4"
    assert cell.scores == {"exact": 1.0}
    tie = evaluate(
        _scripted(["5", "4"]), [{"q": "2+2?", "expected": "4"}], exact,
        epochs=2, reducer="majority", max_concurrency=1, progress=False,
    )  # fmt: skip
    assert tie.cells["prompt"][0].prediction == "5"  # a tie goes to the first
    assert tie.cells["prompt"][0].scores == {"exact": 0.0}


def test_pass_at_k_is_the_unbiased_estimate_and_bare_k_means_any_epoch_passed() -> None:
    rows = [{"q": "2+2?", "expected": "4"}]
    replies = ["4", "x", "x", "x"]  # one pass in four
    two = evaluate(_scripted(replies), rows, exact, epochs=4, reducer="pass@2", max_concurrency=1, progress=False)
    assert two.cells["prompt"][0].scores["exact"] == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))
    assert two.reducer == "pass@2"
    anyone = evaluate(_scripted(replies), rows, exact, epochs=4, reducer="pass@k", max_concurrency=1, progress=False)
    assert anyone.cells["prompt"][0].scores["exact"] == 1.0
    none = evaluate(_scripted(["x"] * 4), rows, exact, epochs=4, reducer="pass@k", max_concurrency=1, progress=False)
    assert none.cells["prompt"][0].scores["exact"] == 0.0


def test_a_reducer_can_be_a_function_of_the_trials() -> None:
    seen: list[tuple[int, str]] = []

    def best(trials: list[Trial], metric: str) -> float | None:
        seen.append((len(trials), metric))
        return max(t.scores[metric].value for t in trials)

    rows = [{"q": "2+2?", "expected": "4"}]
    report = evaluate(_scripted(["x", "4"]), rows, exact, epochs=2, reducer=best, max_concurrency=1, progress=False)
    assert report.cells["prompt"][0].scores == {"exact": 1.0}
    assert seen == [(2, "exact")]
    assert report.reducer == "best"
    with pytest.raises(EvaluationError, match="reducer 'bad' returned 2"):
        evaluate(_scripted(["x", "4"]), rows, exact, epochs=2, reducer=lambda_bad(), progress=False)


def lambda_bad() -> Any:
    def bad(trials: list[Trial], metric: str) -> float:
        return 2.0

    return bad


def test_errors_are_left_out_of_the_reduction_not_counted_as_failures() -> None:
    llm = MockBackend(["4", server_error(500), "4"])
    report = evaluate(
        Prompt("{{ q }}", llm), [{"q": "2+2?", "expected": "4"}], exact,
        epochs=3, max_concurrency=1, progress=False,
    )  # fmt: skip
    cell = report.cells["prompt"][0]
    assert sorted(t.status for t in cell.trials) == ["error", "ok", "ok"]
    assert cell.scores == {"exact": 1.0}


# -- dry run, spending cap ----------------------------------------------------------------------------
def test_a_dry_run_counts_calls_tokens_and_cost_times_epochs_and_sends_nothing() -> None:
    llm = MockBackend(["x"])
    variants = {
        "a": Prompt("{{ q }}", llm, params={"max_tokens": 10}),
        "b": Prompt("Answer: {{ q }}", llm, params={"max_tokens": 20}),
    }
    estimate = evaluate(variants, ROWS, exact, epochs=2, dry_run=True)
    assert isinstance(estimate, EvalEstimate)
    assert llm.calls == []
    assert estimate.calls == 2 * 6 * 2
    assert estimate.output_tokens == (10 + 20) * 6 * 2
    one_a = variants["a"].estimate_batch([{"q": r["q"]} for r in ROWS])
    one_b = variants["b"].estimate_batch([{"q": r["q"]} for r in ROWS])
    assert estimate.input_tokens == 2 * (one_a.input_tokens + one_b.input_tokens)
    assert estimate.per_variant["a"].calls == 12
    assert estimate.total_tokens == estimate.input_tokens + estimate.output_tokens
    assert estimate.cost is None  # the mock has no price
    assert "2 variants x 6 rows x 2 epochs: 24 calls" in str(estimate)
    unbounded = evaluate(Prompt("{{ q }}", llm), ROWS, exact, dry_run=True)
    assert unbounded.output_tokens is None
    assert unbounded.total_tokens is None


def test_the_spending_cap_skips_what_would_pass_it_and_loses_no_row() -> None:
    llm = adder()
    prompt = Prompt("{{ q }}", llm, params={"max_tokens": 5})
    request_tokens = promptkit.backends._ratelimit.estimate_input_tokens(
        llm.build_request("0+0?", {}).messages, llm.name
    )
    cap = 3 * (request_tokens + 5)
    report = evaluate(prompt, ROWS, exact, max_tokens_total=cap, max_concurrency=1, progress=False)
    statuses = [cell.status for cell in report.cells["prompt"]]
    assert len(statuses) == 6
    assert statuses[:3] == ["ok"] * 3
    assert set(statuses[3:]) == {"skipped"}
    skipped = report.cells["prompt"][5].trials[0]
    assert skipped.error_type == "SpendingCapError"
    assert "max_tokens_total" in (skipped.error or "")
    assert report.cells["prompt"][5].scores == {"exact": None}
    assert len(llm.calls) == 3


# -- cancellation, checkpoints, the cache ----------------------------------------------------------------
def _stopping(after: int) -> tuple[FunctionBackend, list[str]]:
    sent: list[str] = []
    lock = threading.Lock()

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        with lock:
            if len(sent) >= after:
                raise KeyboardInterrupt
            sent.append(messages[-1].text)
        return answer_to(messages[-1].text)

    return FunctionBackend(answer), sent


def test_ctrl_c_returns_a_report_with_the_rest_cancelled() -> None:
    llm, sent = _stopping(after=3)
    report = evaluate(Prompt("{{ q }}", llm), ROWS, exact, max_concurrency=1, progress=False)
    assert [cell.status for cell in report.cells["prompt"]] == ["ok"] * 3 + ["cancelled"] * 3
    assert [cell.scores["exact"] for cell in report.cells["prompt"]] == [1.0] * 3 + [None] * 3
    assert len(sent) == 3


@pytest.mark.anyio
async def test_cancelling_the_async_evaluation_returns_the_report_of_what_finished() -> None:
    holder: dict[str, asyncio.Task[Any]] = {}
    count = [0]
    never = asyncio.Event()

    async def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        count[0] += 1
        if count[0] > 2:
            holder["task"].cancel()
            await never.wait()
        return answer_to(messages[-1].text)

    prompt = Prompt("{{ q }}", FunctionBackend(answer))
    holder["task"] = asyncio.ensure_future(aevaluate(prompt, ROWS, exact, max_concurrency=1, progress=False))
    report = await holder["task"]
    assert [cell.status for cell in report.cells["prompt"]] == ["ok"] * 2 + ["cancelled"] * 4


def test_a_checkpointed_evaluation_resumes_sending_only_what_is_left(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    variants = lambda llm: {"a": Prompt("{{ q }}", llm), "b": Prompt("Q: {{ q }}", llm)}  # noqa: E731
    llm, sent = _stopping(after=5)
    first = evaluate(variants(llm), ROWS, exact, epochs=2, checkpoint=path, max_concurrency=1, progress=False)
    finished = sum(t.status == "ok" for v in first.variants for c in first.cells[v] for t in c.trials)
    assert finished == 5
    llm, sent = _stopping(after=100)
    again = evaluate(variants(llm), ROWS, exact, epochs=2, checkpoint=path, max_concurrency=1, progress=False)
    assert len(sent) == 2 * 6 * 2 - 5
    assert all(cell.status == "ok" and cell.scores["exact"] == 1.0 for v in again.variants for cell in again.cells[v])
    llm, sent = _stopping(after=100)
    evaluate(variants(llm), ROWS, exact, epochs=2, checkpoint=path, progress=False)
    assert sent == []


def test_a_cached_rerun_of_the_same_evaluation_is_served_entirely_from_the_cache() -> None:
    cache = MemoryCache()
    llm = adder()
    cached = CachedBackend(llm, cache=cache)
    variants = {"a": Prompt("{{ q }}", cached), "cot": Prompt("{{ q }}", cached, strategy=ChainOfThought())}
    first = evaluate(variants, ROWS, exact, epochs=2, progress=False)
    sent = len(llm.calls)
    assert sent == 2 * 6 * 2
    again = evaluate(variants, ROWS, exact, epochs=2, progress=False)
    assert len(llm.calls) == sent  # nothing new was sent
    assert cached.stats.hits == sent
    for variant in first.variants:
        assert [c.scores for c in again.cells[variant]] == [c.scores for c in first.cells[variant]]


# -- few-shot leakage ---------------------------------------------------------------------------------
POOL = [{"q": r["q"], "a": r["expected"]} for r in ROWS] + [{"q": f"{n}+{n}?", "a": str(2 * n)} for n in (10, 11)]


def _shown(llm: FunctionBackend | MockBackend) -> dict[str, str]:
    """Each question sent, with the whole conversation's text."""
    out = {}
    for request in llm.calls:
        text = "\n".join(m.text for m in request.messages)
        out[request.messages[-1].text.rsplit("\n", 1)[-1]] = text
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda: FixedSelector(POOL),
        lambda: RandomSelector(POOL, k=7, seed=3),
        lambda: SemanticSelector(POOL, k=3, fields=["q"], embedder=HashingEmbedder()),
        lambda: MMRSelector(POOL, k=3, fields=["q"], embedder=HashingEmbedder()),
        lambda: BM25Selector(POOL, k=3, fields=["q"]),
        lambda: TokenBudgetSelector(POOL, max_tokens=1000),
    ],
    ids=["fixed", "random", "semantic", "mmr", "bm25", "budget"],
)
def test_a_row_never_sees_its_own_example_and_the_report_counts_the_exclusions(make: Any) -> None:
    llm = adder()
    prompt = Prompt("{{ examples }}\n{{ q }}", llm, examples=make(), example_template="{{ q }} = {{ a }}")
    report = evaluate({"fewshot": prompt}, ROWS, exact, epochs=2, progress=False)
    shown = _shown(llm)
    for row in ROWS:
        assert f"{row['q']} = {row['expected']}" not in shown[row["q"]]
    assert report.exclusions == {"fewshot": 6 * 2}
    assert all(t.excluded_examples == 1 for cell in report.cells["fewshot"] for t in cell.trials)


def test_pool_selectors_still_pick_k_examples_when_the_row_is_excluded() -> None:
    selector = SemanticSelector(POOL, k=3, fields=["q"], embedder=HashingEmbedder())
    guard = LeakGuard(selector)
    for row in ROWS:
        picked = guard.select({"q": row["q"]})
        assert len(picked) == 3
        assert row["q"] not in [e["q"] for e in picked]
        assert guard.excluded_for({"q": row["q"]}) == 1


def test_equality_is_on_normalised_values_of_the_shared_keys() -> None:
    guard = LeakGuard(FixedSelector([{"q": "  What IS 2+2? ", "a": "4"}, {"q": "other", "a": "x"}, {"n": 2}]))
    assert [e.fields.get("q") for e in guard.select({"q": "what is 2+2?"})] == ["other", None]
    assert [e.fields.get("n") for e in guard.select({"n": 2.0})] == [None, None]  # 2.0 is 2
    assert len(guard.select({"unrelated": "x"})) == 3  # nothing shared: nothing is equal


@pytest.mark.parametrize(
    "make",
    [
        lambda: FixedSelector(POOL),
        lambda: RandomSelector(POOL, k=3, seed=1),
        lambda: SemanticSelector(POOL, k=3, fields=["q"], embedder=HashingEmbedder()),
        lambda: MMRSelector(POOL, k=3, fetch_k=5, diversity=0.7, embedder=HashingEmbedder()),
        lambda: BM25Selector(POOL, k=4),
        lambda: TokenBudgetSelector(POOL, max_tokens=12),
        lambda: TokenBudgetSelector(
            candidates=MMRSelector(k=4, candidates=BM25Selector(POOL, k=6), embedder=HashingEmbedder()),
            max_tokens=20,
        ),
    ],
    ids=["fixed", "random", "semantic", "mmr", "bm25", "budget", "chain"],
)
def test_selection_is_unchanged_when_nothing_is_excluded(make: Any) -> None:
    plain, guarded = make(), LeakGuard(make(), threshold=0.99)
    for q in ["7+7?", "what is 12 + 12", "reset my password", "2+2? please", "1+2"]:
        expected = plain.select({"q": q})
        got = guarded.select({"q": q})
        assert list(got) == list(expected), q
        assert got.indices == getattr(expected, "indices", got.indices)
        assert got.scores == getattr(expected, "scores", got.scores)


def test_chains_exclude_the_row_at_every_stage() -> None:
    pool = [{"q": f"how do I {verb} my {thing}", "a": f"{verb}-{thing}"} for verb in ("reset", "change", "find")
            for thing in ("password", "email", "parcel")]  # fmt: skip
    chain = TokenBudgetSelector(
        candidates=MMRSelector(k=3, candidates=BM25Selector(pool, k=5), embedder=HashingEmbedder()),
        max_tokens=200,
    )
    guard = LeakGuard(chain)
    for example in pool:
        picked = guard.select({"q": example["q"]})
        assert example["q"] not in [e["q"] for e in picked]
        assert len(picked) == 3
        assert guard.excluded_for({"q": example["q"]}) == 1


def test_near_duplicates_are_excluded_on_request_by_words_or_by_the_selectors_embedding() -> None:
    pool = [{"q": "how do I reset my password", "a": "settings"}, {"q": "track my parcel", "a": "orders page"}]
    row = {"q": "how do I reset my password please"}
    fixed = LeakGuard(FixedSelector(pool), threshold=0.8)
    assert [e["q"] for e in fixed.select(row)] == ["track my parcel"]  # Jaccard 6/7
    assert len(LeakGuard(FixedSelector(pool)).select(row)) == 2  # without a threshold: only equal rows
    random = LeakGuard(RandomSelector(pool, k=2), threshold=0.8)
    assert [e["q"] for e in random.select(row)] == ["track my parcel"]
    semantic = SemanticSelector(pool, k=2, fields=["q"], embedder=HashingEmbedder())
    guard = LeakGuard(semantic, threshold=0.6)
    cosine = float(semantic.select(row).scores[0] or 0)
    assert cosine >= 0.6
    assert [e["q"] for e in guard.select(row)] == ["track my parcel"]
    assert guard.excluded_for(row) == 1


def test_an_unknown_selector_has_the_row_filtered_out_of_what_it_returns() -> None:
    class Mine:
        def select(self, inputs: Mapping[str, Any]) -> list[Example]:
            return [Example({"q": "2+2?", "a": "4"}), Example({"q": "9+9?", "a": "18"})]

    guard = LeakGuard(Mine())
    assert [e["q"] for e in guard.select({"q": "2+2?"})] == ["9+9?"]
    assert guard.excluded_for({"q": "2+2?"}) == 1


@pytest.mark.anyio
async def test_the_async_selection_excludes_the_same_examples() -> None:
    for make in (
        lambda: SemanticSelector(POOL, k=3, fields=["q"], embedder=HashingEmbedder()),
        lambda: TokenBudgetSelector(candidates=BM25Selector(POOL, k=4), max_tokens=100),
        lambda: FixedSelector(POOL),
    ):
        guard = LeakGuard(make(), threshold=0.95)
        for row in ROWS:
            assert list(await guard.aselect({"q": row["q"]})) == list(guard.select({"q": row["q"]}))


def test_the_leak_guard_is_safe_across_threads() -> None:
    pool = [{"q": f"question {i}", "a": str(i)} for i in range(500)]
    guard = LeakGuard(RandomSelector(pool, k=5, seed=0), threshold=0.9)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, 500, 4):
                picked = guard.select({"q": f"question {i}"})
                assert f"question {i}" not in [e["q"] for e in picked]
                assert len(picked) == 5
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(guard.excluded_for({"q": f"question {i}"}) for i in range(500)) == 500


def test_exclusions_work_over_a_large_pool() -> None:
    pool = [{"q": f"what is {i} plus {i}", "a": str(2 * i)} for i in range(20_000)]
    guard = LeakGuard(RandomSelector(pool, k=4, seed=0), threshold=0.9)
    for i in range(0, 20_000, 500):
        picked = guard.select({"q": f"what is {i} plus {i}"})
        assert f"what is {i} plus {i}" not in [e["q"] for e in picked]
        assert guard.excluded_for({"q": f"what is {i} plus {i}"}) == 1


# -- async parity ---------------------------------------------------------------------------------------
class AsyncJudge:
    name = "judge"

    def __init__(self) -> None:
        self.awaited = 0

    def score(self, prediction: Any, row: Row) -> float:  # pragma: no cover - the async path awaits ascore
        raise AssertionError("ascore should have been awaited")

    async def ascore(self, prediction: Any, row: Row) -> Score:
        await asyncio.sleep(0)
        self.awaited += 1
        return Score(value=1.0 if prediction == row.expected else 0.0, detail="judged")


@pytest.mark.anyio
async def test_aevaluate_gives_what_evaluate_gives_and_awaits_async_metrics() -> None:
    variants = {"plain": Prompt("{{ q }}", adder({"2+2?"})), "again": Prompt("Q {{ q }}", adder())}
    sync = evaluate(variants, ROWS, exact, epochs=2, progress=False)
    judge = AsyncJudge()
    done = await aevaluate(variants, ROWS, [exact, judge], epochs=2, progress=False)
    for variant in sync.variants:
        assert [c.scores["exact"] for c in done.cells[variant]] == [c.scores["exact"] for c in sync.cells[variant]]
        assert [c.scores["judge"] for c in done.cells[variant]] == [c.scores["exact"] for c in sync.cells[variant]]
        assert [c.prediction for c in done.cells[variant]] == [c.prediction for c in sync.cells[variant]]
    assert judge.awaited == 2 * 6 * 2
    estimate = await aevaluate(variants, ROWS, exact, dry_run=True)
    assert estimate.calls == 12


@pytest.mark.anyio
async def test_aevaluate_excludes_the_row_from_few_shot_examples() -> None:
    llm = adder()
    selector = SemanticSelector(POOL, k=2, fields=["q"], embedder=HashingEmbedder())
    prompt = Prompt("{{ examples }}\n{{ q }}", llm, examples=selector, example_template="{{ q }} = {{ a }}")
    report = await aevaluate(prompt, ROWS, exact, progress=False)
    shown = _shown(llm)
    assert all(f"{r['q']} = {r['expected']}" not in shown[r["q"]] for r in ROWS)
    assert report.exclusions == {"prompt": 6}


# -- scoring a run log ----------------------------------------------------------------------------------
def test_a_run_log_is_scored_without_calling_the_model(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    quiz = Prompt(Template("{{ q }}", name="quiz"), adder({"2+2?"}))
    other = Prompt(Template("Q: {{ q }}", name="other"), MockBackend(["0", "oops"]), parser=NumberParser(int))
    with promptkit.log_runs(path):
        quiz.batch([{"q": r["q"]} for r in ROWS[:4]], progress=False)
        other.with_repair(0).batch([{"q": "0+0?"}, {"q": "1+1?"}], max_concurrency=1, progress=False)
    report = evaluate_log(path, ROWS, exact)
    assert report.variants == ("quiz", "other")
    quiz_cells = report.cells["quiz"]
    assert [c.status for c in quiz_cells] == ["ok", "ok", "ok", "ok", "error", "error"]
    assert [c.scores["exact"] for c in quiz_cells] == [1.0, 1.0, 0.0, 1.0, None, None]
    assert quiz_cells[4].trials[0].error == "no run in the log has this row's inputs"
    assert [c.status for c in report.cells["other"][:2]] == ["ok", "parse_error"]
    assert report.cells["other"][1].trials[0].text == "oops"
    assert report.cells["other"][1].scores["exact"] == 0.0
    by_prompt = evaluate_log(list(promptkit.read_run_log(path)), ROWS, exact, variants={"mine": quiz})
    assert by_prompt.variants == ("mine",)
    assert [c.scores["exact"] for c in by_prompt.cells["mine"]][:4] == [1.0, 1.0, 0.0, 1.0]
    one = evaluate_log(path, ROWS, exact, variants="other")
    assert one.variants == ("other",)
    with pytest.raises(EvaluationError, match="no run in the log has the prompt name 'missing'"):
        evaluate_log(path, ROWS, exact, variants="missing")


def test_a_run_log_matches_rows_on_the_inputs_the_prompt_used_and_keeps_the_latest_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    script = MockBackend(["old", "4", "5"])
    prompt = Prompt("{{ q }}", script)
    with promptkit.log_runs(path):
        for _ in range(3):
            prompt.complete(q="2+2?")
    rows = [{"q": "2+2?", "context": "not used by the prompt", "expected": "4"}]
    latest = evaluate_log(path, rows, exact)
    assert latest.variants == ("prompt",)
    assert latest.cells["prompt"][0].prediction == "5"
    two = evaluate_log(path, rows, exact, epochs=2)
    assert [t.prediction for t in two.cells["prompt"][0].trials] == ["4", "5"]
    assert two.cells["prompt"][0].scores["exact"] == 0.5


def test_a_bad_run_log_is_an_evaluation_error(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="cannot read the run log"):
        evaluate_log(tmp_path / "missing.jsonl", ROWS, exact)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"version": 99}) + "\n")
    with pytest.raises(EvaluationError, match="version 99"):
        evaluate_log(bad, ROWS, exact)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(EvaluationError, match="holds no runs"):
        evaluate_log(empty, ROWS, exact)


def test_an_unknown_option_is_named() -> None:
    with pytest.raises(EvaluationError, match=r"unknown option\(s\) concurrency"):
        evaluate(Prompt("{{ q }}", adder()), ROWS[:1], exact, concurrency=2, progress=False)  # type: ignore[call-overload]
