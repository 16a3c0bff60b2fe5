"""CI gates: thresholds, rates, cost, latency and regressions against a stored baseline, the
cached run that makes a re-run offline, the baseline file's life cycle and the pytest fixture."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import (
    Cell,
    Completion,
    EvalGateError,
    EvalReport,
    EvaluationError,
    GateResult,
    GateRunner,
    MemoryCache,
    Price,
    Prompt,
    Row,
    Score,
    Trial,
    Usage,
    assert_gate,
    check_gate,
    evaluate,
    run_gate,
    set_price,
)
from promptkit._eval._gate_run import UPDATE_BASELINE_ENV, baseline_outdated, update_requested
from promptkit._eval._summary import compare_columns
from promptkit._eval._types import TrialStatus
from promptkit.testing import FunctionBackend

ROWS = [{"id": f"q{n:02d}", "question": f"What is {n} plus {n}?", "expected": str(2 * n)} for n in range(50)]
BASELINE_WRONG = frozenset({3, 11, 19, 27, 40})  # right on 45 of 50
REGRESSED = frozenset({0, 6, 9, 12, 15, 18, 21, 24, 30, 33, 36, 39, 42, 45, 48})  # 15 more wrong: 30 of 50


def quiz_model(wrong: frozenset[int], *, model: str = "function") -> FunctionBackend:
    """A scripted model: doubles the number in the question, off by one on the ``wrong`` ones."""

    def answer(messages: Any, params: Any) -> Completion:
        n = int(re.findall(r"What is (\d+) plus", messages[-1].text)[-1])
        text = str(2 * n + (1 if n in wrong else 0))
        return Completion(text=text, model=model, finish_reason="stop", usage=Usage(input_tokens=12, output_tokens=2))

    return FunctionBackend(answer, model=model)


def exact(prediction: Any, row: Row) -> bool:
    return bool(prediction == row.expected)


def quiz(backend: FunctionBackend) -> dict[str, Prompt[Any]]:
    return {"quiz": Prompt("{{ question }}", backend)}


def ids(numbers: Iterable[int]) -> list[str]:
    return [f"q{n:02d}" for n in sorted(numbers)]


@pytest.fixture(autouse=True)
def _no_update_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPDATE_BASELINE_ENV, raising=False)


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    path = tmp_path / "baseline.json"
    evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS, exact, progress=False).to_json(path)
    return path


# -- the acceptance criteria: a scripted regression fails, noise passes -------------------------------
def test_a_scripted_regression_fails_the_gate_listing_exactly_the_regressed_rows(
    baseline: Path, tmp_path: Path
) -> None:
    llm = quiz_model(BASELINE_WRONG | REGRESSED)
    with pytest.raises(EvalGateError) as caught:
        run_gate(quiz(llm), ROWS, exact, cache=tmp_path / "cache.sqlite", baseline=baseline)
    error = caught.value
    assert isinstance(error, AssertionError)
    message = str(error)
    assert message.startswith("evaluation gate failed: 1 of 1 checks failed")
    listed = re.search(r"regressed rows: (.*)$", message, re.M)
    assert listed is not None
    assert listed.group(1).split(", ") == ids(REGRESSED)
    assert "exact 0.900 -> 0.600 against the baseline" in message
    assert "McNemar exact; significantly worse: p=6.1e-05 < 0.05" in message
    assert "q06: '12' -> '13' (exact 1 -> 0)" in message
    result = error.result
    assert isinstance(result, GateResult)
    assert not result.passed
    (failure,) = result.failures
    assert failure.kind == "regression"
    assert [row.row_id for row in failure.regressed] == ids(REGRESSED)
    assert {(row.baseline_prediction, row.prediction) for row in failure.regressed} >= {("0", "1"), ("96", "97")}
    comparison = result.comparisons[("quiz", "exact")]
    assert comparison.test == "mcnemar_exact"
    assert (len(comparison.regressed), len(comparison.improved)) == (15, 0)
    assert comparison.effect == pytest.approx(-0.3)


def test_noise_passes_the_gate(baseline: Path, tmp_path: Path) -> None:
    noisy = (BASELINE_WRONG - {3, 11}) | {5, 22, 31}  # 2 wrong -> right, 3 right -> wrong
    result = run_gate(quiz(quiz_model(noisy)), ROWS, exact, cache=tmp_path / "cache.sqlite", baseline=baseline)
    assert result.passed
    (check,) = result.checks
    assert check.kind == "regression"
    assert check.passed
    assert check.comparison is not None
    assert check.comparison.regressed == tuple(ids({5, 22, 31}))
    assert check.comparison.improved == tuple(ids({3, 11}))
    assert "within noise" in check.message
    assert str(result).startswith("evaluation gate passed: 1 checks")
    assert result.report is not None
    assert result.report.summary("quiz")["exact"].mean == pytest.approx(0.88)


def test_a_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    llm = quiz_model(BASELINE_WRONG)
    cache = tmp_path / "gates" / "cache.sqlite"
    first = run_gate(quiz(llm), ROWS, exact, cache=cache, min_scores={"exact": 0.8})
    assert len(llm.calls) == 50
    assert cache.exists()
    again = run_gate(quiz(llm), ROWS, exact, cache=cache, min_scores={"exact": 0.8})
    assert len(llm.calls) == 50  # not one model call
    assert first.report is not None
    assert again.report is not None
    assert [c.prediction for c in again.report.cells["quiz"]] == [c.prediction for c in first.report.cells["quiz"]]


def test_a_judge_metric_is_cached_too() -> None:
    from promptkit import LLMJudge

    judge_llm = FunctionBackend(lambda messages, params: '{"reasoning": "A number.", "verdict": "pass"}')
    judge = LLMJudge(judge_llm, "The answer is a number.")
    llm = quiz_model(BASELINE_WRONG)
    cache = MemoryCache()
    run_gate(quiz(llm), ROWS[:5], [exact, judge], cache=cache, min_scores={"judge": 0.5})
    sent = (len(llm.calls), len(judge_llm.calls))
    assert sent == (5, 5)
    run_gate(quiz(llm), ROWS[:5], [exact, judge], cache=cache, min_scores={"judge": 0.5})
    assert (len(llm.calls), len(judge_llm.calls)) == sent


def test_without_a_cache_every_run_calls_the_model() -> None:
    llm = quiz_model(BASELINE_WRONG)
    run_gate(quiz(llm), ROWS[:4], exact, cache=None, min_scores={"exact": 0.5})
    run_gate(quiz(llm), ROWS[:4], exact, cache=None, min_scores={"exact": 0.5})
    assert len(llm.calls) == 8


def test_a_tolerance_lets_a_small_significant_drop_pass(tmp_path: Path) -> None:
    rows = [{"id": f"q{n:03d}", "question": f"What is {n} plus {n}?", "expected": str(2 * n)} for n in range(200)]
    base = evaluate(quiz(quiz_model(frozenset())), rows, exact, progress=False)
    dropped = evaluate(quiz(quiz_model(frozenset(range(0, 200, 20)))), rows, exact, progress=False)  # 10 of 200
    strict = check_gate(dropped, baseline=base)
    assert not strict.passed  # McNemar (0, 10): p = 0.002
    assert check_gate(dropped, baseline=base, tolerance=0.06).passed  # -0.05 is within 0.06
    assert check_gate(dropped, baseline=base, alpha=0.001).passed
    assert "beyond the tolerance 0.04" in str(check_gate(dropped, baseline=base, tolerance=0.04))


def test_rows_only_in_one_report_are_listed_not_dropped(tmp_path: Path) -> None:
    base = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:40], exact, progress=False)
    now = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[10:], exact, progress=False)
    result = check_gate(now, baseline=base)
    assert result.only_in_baseline == tuple(ids(range(10)))
    assert result.only_in_report == tuple(ids(range(40, 50)))
    assert result.comparisons[("quiz", "exact")].n == 30
    text = str(result)
    assert "rows in the baseline only (10, not compared): q00, q01" in text
    assert "rows in this run only (10, not compared): q40" in text


def test_a_baseline_without_the_variant_or_metric_fails(tmp_path: Path) -> None:
    base = evaluate({"other": Prompt("{{ question }}", quiz_model(BASELINE_WRONG))}, ROWS[:5], exact, progress=False)
    now = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:5], exact, progress=False)
    (failure,) = check_gate(now, baseline=base).failures
    assert failure.kind == "baseline"
    assert "the baseline has no such variant (it has 'other')" in failure.message

    def close(prediction: Any, row: Row) -> float:
        return 1.0

    two = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:5], [exact, close], progress=False)
    base_one = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:5], exact, progress=False)
    result = check_gate(two, baseline=base_one)
    assert [c.kind for c in result.checks] == ["regression", "baseline"]
    assert "no metric 'close'" in result.failures[0].message
    assert check_gate(two, baseline=base_one, baseline_metrics=["exact"]).passed


def test_graded_scores_use_the_permutation_test() -> None:
    row_ids = [f"r{i}" for i in range(30)]
    before = [0.9] * 30
    after = [0.5] * 30
    comparison = compare_columns(row_ids, before, after, a="old", b="new", metric="f1")
    assert comparison.test == "sign_flip_permutation"
    assert comparison.p_value < 0.001
    assert comparison.regressed == tuple(row_ids)


# -- the baseline file ------------------------------------------------------------------------------
def test_a_missing_baseline_fails_saying_how_to_write_it(tmp_path: Path) -> None:
    path = tmp_path / "gates" / "quiz.json"
    with pytest.raises(EvalGateError) as caught:
        run_gate(quiz(quiz_model(BASELINE_WRONG)), ROWS, exact, cache=None, baseline=path, min_scores={"exact": 0.8})
    message = str(caught.value)
    assert f"FAIL baseline: no baseline report at {path}" in message
    assert "pytest --promptkit-update-baseline" in message
    assert f"{UPDATE_BASELINE_ENV}=1" in message
    assert "pass score: quiz: exact mean 0.900" in message  # the other checks still ran
    assert not path.exists()


def test_an_unreadable_baseline_fails_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "quiz.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(EvalGateError, match=r"the baseline .*quiz.json cannot be read \(not a JSON evaluation report"):
        run_gate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:3], exact, cache=None, baseline=path)


def test_updating_writes_a_missing_baseline_then_leaves_an_unchanged_one(tmp_path: Path) -> None:
    path = tmp_path / "gates" / "quiz.json"
    llm = quiz_model(BASELINE_WRONG)
    cache = tmp_path / "cache.sqlite"
    written = run_gate(quiz(llm), ROWS, exact, cache=cache, baseline=path, update_baseline=True)
    assert written.passed
    assert path.exists()
    assert written.notes[0] == f"baseline written from this run: {path} (50 rows, variants quiz)"
    assert "comparison with the baseline was skipped" in written.notes[1]
    assert EvalReport.load(path).summary("quiz")["exact"].mean == pytest.approx(0.9)
    text = path.read_text(encoding="utf-8")

    same = run_gate(quiz(llm), ROWS, exact, cache=cache, baseline=path, update_baseline=True)
    assert same.notes[0] == f"the baseline {path} is up to date"
    assert path.read_text(encoding="utf-8") == text  # timings changed, the file did not

    # without the update the stored baseline now gates the same run: it passes
    assert run_gate(quiz(llm), ROWS, exact, cache=cache, baseline=path).passed


def test_updating_rewrites_an_outdated_baseline_and_still_checks_the_limits(
    baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regressed = quiz(quiz_model(BASELINE_WRONG | REGRESSED))
    monkeypatch.setenv(UPDATE_BASELINE_ENV, "1")
    result = run_gate(regressed, ROWS, exact, cache=None, baseline=baseline)
    assert result.passed
    assert result.notes[0].startswith(f"baseline rewritten from this run: {baseline}")
    assert EvalReport.load(baseline).summary("quiz")["exact"].mean == pytest.approx(0.6)
    with pytest.raises(EvalGateError, match=r"exact mean 0\.600 is below 0\.800"):
        run_gate(regressed, ROWS, exact, cache=None, baseline=baseline, min_scores={"exact": 0.8})
    monkeypatch.setenv(UPDATE_BASELINE_ENV, "0")
    assert run_gate(regressed, ROWS, exact, cache=None, baseline=baseline).passed  # the new baseline holds


def test_the_update_flag_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert update_requested() is False
    for value, expected in (("1", True), ("yes", True), ("TRUE", True), ("0", False), ("off", False)):
        monkeypatch.setenv(UPDATE_BASELINE_ENV, value)
        assert update_requested() is expected
    assert update_requested(False) is False  # an explicit choice wins
    monkeypatch.setenv(UPDATE_BASELINE_ENV, "maybe")
    with pytest.raises(EvaluationError, match="PROMPTKIT_UPDATE_BASELINE must be 1 or 0"):
        update_requested()


def test_baseline_outdated_compares_outcomes_not_timings() -> None:
    first = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:6], exact, progress=False)
    again = evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:6], exact, progress=False)
    changed = evaluate(quiz(quiz_model(frozenset({1}))), ROWS[:6], exact, progress=False)
    stored = EvalReport.from_json(first.to_json())
    assert not baseline_outdated(stored, again)
    assert baseline_outdated(stored, changed)
    assert baseline_outdated(stored, evaluate(quiz(quiz_model(BASELINE_WRONG)), ROWS[:5], exact, progress=False))


# -- limits on one report -------------------------------------------------------------------------
def make_report(
    columns: Mapping[str, Sequence[float | None]],
    *,
    statuses: Mapping[str, Sequence[TrialStatus]] | None = None,
    seconds: Mapping[str, Sequence[float | None]] | None = None,
    cost: float | None = 0.001,
    prediction: Any = "answer",
) -> EvalReport:
    """A report built by hand: one value of the metric ``exact`` per row for each variant."""
    size = len(next(iter(columns.values())))
    rows = [Row(id=f"r{i}", inputs={"q": i}) for i in range(size)]
    cells: dict[str, list[Cell]] = {}
    for variant, values in columns.items():
        cells[variant] = []
        for i, value in enumerate(values):
            status: TrialStatus = (statuses or {}).get(variant, ["ok"] * size)[i]
            scored = status in ("ok", "parse_error")
            trial = Trial(
                epoch=0,
                status=status,
                prediction=prediction if status == "ok" else None,
                scores={"exact": Score(value=value)} if scored and value is not None else {},
                cost=cost,
                seconds=(seconds or {}).get(variant, [0.5] * size)[i],
            )
            cells[variant].append(
                Cell(
                    variant=variant,
                    row_id=f"r{i}",
                    trials=(trial,),
                    scores={"exact": value if scored else None},
                    prediction=trial.prediction,
                )
            )
    return EvalReport(variants=list(columns), metrics=["exact"], rows=rows, cells=cells)


def test_min_scores_for_every_variant_and_for_one() -> None:
    report = make_report({"a": [1.0] * 9 + [0.0], "b": [1.0] * 7 + [0.0] * 3})
    shared = check_gate(report, min_scores={"exact": 0.8})
    assert [(c.variant, c.passed) for c in shared.checks] == [("a", True), ("b", False)]
    assert shared.failures[0].message == "b: exact mean 0.700 is below 0.800 (n=10)"
    assert shared.failures[0].value == pytest.approx(0.7)
    assert shared.failures[0].limit == 0.8
    own = check_gate(report, min_scores={"exact": 0.8, "b": {"exact": 0.6}})  # b's own limit wins
    assert own.passed
    assert [c.limit for c in own.checks] == [0.8, 0.6]
    assert check_gate(report, min_scores={"exact": 0.8}, variants=["a"]).passed


def test_use_low_holds_the_interval_to_the_limit() -> None:
    report = make_report({"a": [1.0] * 9 + [0.0]})  # 0.9 [0.596, 0.982] (Wilson)
    assert check_gate(report, min_scores={"exact": 0.8}).passed
    low = check_gate(report, min_scores={"exact": 0.8}, use="low")
    assert not low.passed
    assert low.failures[0].message.startswith("a: exact lower bound 0.596 (95% wilson, mean 0.900) is below 0.800")


def test_a_metric_with_no_scored_row_fails() -> None:
    report = make_report({"a": [None, None]}, statuses={"a": ["error", "error"]})
    (failure,) = check_gate(report, min_scores={"exact": 0.1}).failures
    assert "has no scored rows" in failure.message


def test_error_and_parse_failure_rates() -> None:
    ok: list[TrialStatus] = ["ok"] * 7
    statuses: dict[str, list[TrialStatus]] = {"a": [*ok, "error", "parse_error", "parse_error"]}
    report = make_report({"a": [1.0] * 7 + [None, 0.0, 0.0]}, statuses=statuses)
    result = check_gate(report, max_error_rate=0.05, max_parse_failure_rate=0.25)
    assert [c.passed for c in result.checks] == [False, True]
    assert result.failures[0].message == "a: errors 10.0% of 10 rows is over 5.0%"
    assert result.checks[1].message == "a: parse failures 22.2% of 9 replies is within 25.0%"
    assert check_gate(report, max_error_rate=0.1).passed


def test_cost_limits_with_a_set_price(tmp_path: Path) -> None:
    set_price("gate-model", Price(input=1_000, output=1_000))
    try:
        report = evaluate(quiz(quiz_model(BASELINE_WRONG, model="gate-model")), ROWS[:10], exact, progress=False)
        total = report.summary("quiz").total_cost
        assert total is not None
        assert total > 0
        assert check_gate(report, max_cost=total * 1.01).passed
        (failure,) = check_gate(report, max_cost=total / 2).failures
        assert failure.kind == "cost"
        assert failure.message == f"quiz: cost ${total:.6g} is over ${total / 2:g}"
    finally:
        set_price("gate-model", None)


def test_an_unknown_price_fails_the_cost_gate_saying_so() -> None:
    report = evaluate(quiz(quiz_model(BASELINE_WRONG, model="unpriced-model")), ROWS[:3], exact, progress=False)
    (failure,) = check_gate(report, max_cost=100.0).failures
    assert failure.message == (
        "quiz: cost unknown (no price for model 'unpriced-model'; set one with promptkit.set_price),"
        " so it cannot be held to $100"
    )
    loaded = EvalReport.from_json(report.to_json())  # no live results: the model is not known
    assert "a call's price is unknown" in check_gate(loaded, max_cost=1.0).failures[0].message


def test_latency_limits_at_a_percentile() -> None:
    times = [0.1 * (i + 1) for i in range(10)]  # 0.1 ... 1.0 s
    report = make_report({"a": [1.0] * 10}, seconds={"a": times})
    p90 = report.summary("a").latency
    assert p90 is not None
    assert check_gate(report, max_latency=1.0).passed
    (failure,) = check_gate(report, max_latency=0.9).failures  # p90 is 0.91 s
    assert failure.message == "a: p90 latency 0.91 s over 10 calls is over 0.9 s"
    assert check_gate(report, max_latency=0.6, latency_percentile="p50").passed
    assert not check_gate(report, max_latency=0.99, latency_percentile="max").passed


def test_latency_without_timings_fails_and_cached_replies_are_not_timed(tmp_path: Path) -> None:
    untimed = make_report({"a": [1.0, 1.0]}, seconds={"a": [None, None]})
    assert "no call was timed" in check_gate(untimed, max_latency=1.0).failures[0].message
    llm = quiz_model(BASELINE_WRONG)
    cache = MemoryCache()
    run_gate(quiz(llm), ROWS[:4], exact, cache=cache, max_latency=60.0)
    again = run_gate(quiz(llm), ROWS[:4], exact, cache=cache, max_latency=1e-9)
    (check,) = again.checks
    assert check.passed
    assert check.message == "quiz: latency not measured, every reply came from the response cache (limit 1e-09 s)"


def test_bad_limits_are_refused() -> None:
    report = make_report({"a": [1.0, 0.0]})
    with pytest.raises(EvaluationError, match="the gate checks nothing"):
        check_gate(report)
    with pytest.raises(EvaluationError, match="no metric 'accuracy'"):
        check_gate(report, min_scores={"accuracy": 0.8})
    with pytest.raises(EvaluationError, match="no variant 'b'"):
        check_gate(report, min_scores={"b": {"exact": 0.8}})
    with pytest.raises(EvaluationError, match="no variant 'z'"):
        check_gate(report, max_error_rate=0.1, variants=["z"])
    with pytest.raises(EvaluationError, match=r"min_scores\['exact'\] must be a number in \[0, 1\], not 1.5"):
        check_gate(report, min_scores={"exact": 1.5})
    with pytest.raises(EvaluationError, match="max_cost must be a number >= 0"):
        check_gate(report, max_cost=-1)
    with pytest.raises(EvaluationError, match="max_latency must be a number > 0"):
        check_gate(report, max_latency=0)
    with pytest.raises(EvaluationError, match="alpha must be a number"):
        check_gate(report, max_error_rate=0.1, alpha=0)
    with pytest.raises(EvaluationError, match="use must be 'mean' or 'low'"):
        check_gate(report, min_scores={"exact": 0.5}, use="median")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="unknown gate limit"):
        check_gate(report, min_score=0.5)  # type: ignore[call-arg]
    with pytest.raises(EvaluationError, match="baseline must be an EvalReport or the path"):
        check_gate(report, baseline=42)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="run_gate keeps its baseline in a file"):
        run_gate(quiz(quiz_model(frozenset())), ROWS[:2], exact, cache=None, baseline=report)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="cache must be the path of an SQLite cache file"):
        run_gate(quiz(quiz_model(frozenset())), ROWS[:2], exact, cache=3, min_scores={"exact": 0.5})  # type: ignore[arg-type]


# -- the verdict for people -------------------------------------------------------------------------
def test_assert_gate_raises_an_assertion_error_with_the_verdict() -> None:
    report = make_report({"a": [1.0] * 5 + [0.0] * 5})
    assert assert_gate(report, min_scores={"exact": 0.5}).passed
    with pytest.raises(AssertionError) as caught:
        assert_gate(report, min_scores={"exact": 0.6})
    assert isinstance(caught.value, EvalGateError)
    assert isinstance(caught.value, EvaluationError)
    assert str(caught.value) == (
        "evaluation gate failed: 1 of 1 checks failed\n  FAIL score: a: exact mean 0.500 is below 0.600 (n=10)"
    )


def test_the_verdict_escapes_model_output() -> None:
    hostile = "<script>alert(1)</script>\x1b[31m"
    base = make_report({"a": [1.0] * 20}, prediction="fine")
    now = make_report({"a": [0.0] * 20}, prediction=hostile)
    result = check_gate(now, baseline=base, min_scores={"exact": 0.5})
    text = str(result)
    assert "\x1b" not in text
    assert "r0: 'fine' -> '<script>alert(1)</script>\\x1b[31m' (exact 1 -> 0)" in text
    assert "... and 0 more" not in text
    page = result._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "20 rows regressed" in page
    assert repr(result) == "<GateResult failed 2 of 2 checks>"


def test_many_regressed_rows_are_shown_up_to_a_limit() -> None:
    base = make_report({"a": [1.0] * 30})
    now = make_report({"a": [0.0] * 30})
    text = str(check_gate(now, baseline=base))
    assert "      r19: " in text
    assert "      r20: " not in text
    assert "      ... and 10 more (see .regressed)" in text
    listed = re.search(r"regressed rows: (.*)$", text, re.M)
    assert listed is not None
    assert listed.group(1).split(", ") == [f"r{i}" for i in range(30)]  # the one-line message lists them all


def test_the_public_names() -> None:
    for name in ("check_gate", "assert_gate", "run_gate", "GateResult", "GateCheck", "RegressedRow", "GateRunner"):
        assert name in promptkit.__all__
    assert issubclass(promptkit.EvalGateError, AssertionError)


# -- the pytest fixture -----------------------------------------------------------------------------
def test_gate_runner_binds_the_defaults(tmp_path: Path) -> None:
    heard: list[str] = []
    runner = GateRunner(cache=tmp_path / "c.sqlite", baseline=tmp_path / "b.json", on_notes=heard.extend)
    with pytest.raises(EvalGateError):
        runner(quiz(quiz_model(BASELINE_WRONG)), ROWS[:4], exact)
    runner.update_baseline = True
    runner(quiz(quiz_model(BASELINE_WRONG)), ROWS[:4], exact)
    assert heard[0].startswith("baseline written from this run")
    assert runner(quiz(quiz_model(BASELINE_WRONG)), ROWS[:4], exact, baseline=None, min_scores={"exact": 0.1}).passed


USER_TESTS = '''
import re

from promptkit import Prompt
from promptkit.testing import FunctionBackend

ROWS = [{"id": f"q{n:02d}", "question": f"What is {n} plus {n}?", "expected": str(2 * n)} for n in range(50)]
TEMPLATE = "{{ question }}"


def model(messages, params):
    """Wrong on a few rows, and on more of them when the prompt says "Quick"."""
    text = messages[-1].text
    n = int(re.findall(r"What is (\\d+) plus", text)[-1])
    wrong = n in BASELINE_WRONG or (text.startswith("Quick") and n in REGRESSED)
    return str(2 * n + wrong)


def exact(prediction, row):
    return prediction == row.expected


def test_quiz_gate(promptkit_gate):
    variants = {"quiz": Prompt(TEMPLATE, FunctionBackend(model))}
    promptkit_gate(variants, ROWS, exact, min_scores={"exact": 0.5})
'''


def user_tests(template: str) -> str:
    return (
        USER_TESTS.replace('TEMPLATE = "{{ question }}"', f"TEMPLATE = {template!r}")
        + f"\nBASELINE_WRONG = {set(BASELINE_WRONG)!r}\nREGRESSED = {set(REGRESSED)!r}\n"
    )


def test_a_failing_gate_in_a_real_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=user_tests("{{ question }}"))
    written = pytester.runpytest("-p", "no:cacheprovider", "--promptkit-update-baseline")
    written.assert_outcomes(passed=1)
    baseline = pytester.path / "gates" / "test_user" / "test_quiz_gate.json"
    assert json.loads(baseline.read_text(encoding="utf-8"))["variants"] == ["quiz"]
    assert (pytester.path / "gates" / "test_user" / "test_quiz_gate.sqlite").exists()
    written.stdout.fnmatch_lines(["*promptkit gates*", "*test_quiz_gate: baseline written from this run*"])

    pytester.makepyfile(test_user=user_tests("Quick: {{ question }}"))  # a prompt change that regresses
    failed = pytester.runpytest("-p", "no:cacheprovider")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        [
            "*EvalGateError: evaluation gate failed: 1 of 2 checks failed",
            "*FAIL regression: quiz: exact 0.900 -> 0.600 against the baseline*regressed rows: "
            + ", ".join(ids(REGRESSED)),
            "*q00: '0' -> '1' (exact 1 -> 0)",
        ]
    )
