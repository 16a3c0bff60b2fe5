"""EvalReport built by hand from rows, trials and cells: summaries, comparisons, tables, HTML,
pandas, JSON round trips and the plot."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest

import promptkit
from promptkit import (
    Cell,
    Comparison,
    EvalReport,
    EvaluationError,
    MetricSummary,
    MissingDependencyError,
    Row,
    Score,
    Trial,
    Usage,
    VariantSummary,
)
from promptkit._eval._stats import mcnemar_exact, paired_bootstrap, paired_permutation, wilson_interval
from promptkit._eval._types import TrialStatus

HOSTILE = "<script>alert('x')</script>"


def make_cell(
    variant: str,
    row_id: str,
    scores: Mapping[str, float | None],
    *,
    status: TrialStatus = "ok",
    prediction: Any = "answer",
    usage: Usage | None = None,
    cost: float | None = 0.001,
    seconds: float | None = 0.5,
    judge: Score | None = None,
    epochs: int = 1,
) -> Cell:
    scored = status in ("ok", "parse_error")
    trials = []
    for epoch in range(epochs):
        trial_scores: dict[str, Score] = {}
        if scored:
            for name, value in scores.items():
                if value is not None:
                    trial_scores[name] = judge if judge is not None and name == "judge" else Score(value=value)
        trials.append(
            Trial(
                epoch=epoch,
                status=status,
                prediction=prediction if status == "ok" else None,
                text=str(prediction),
                scores=trial_scores,
                error="BackendError: boom" if status == "error" else None,
                error_type="ServerError" if status == "error" else None,
                usage=usage if usage is not None else Usage(input_tokens=10, output_tokens=2),
                cost=cost,
                seconds=seconds,
            )
        )
    return Cell(
        variant=variant,
        row_id=row_id,
        trials=tuple(trials),
        scores={name: (value if scored else None) for name, value in scores.items()},
        prediction=prediction if status == "ok" else None,
    )


def make_report(
    columns: Mapping[str, Sequence[float | None]],
    *,
    metric: str = "exact",
    predictions: Mapping[str, Sequence[Any]] | None = None,
    **kwargs: Any,
) -> EvalReport:
    """One metric; ``None`` marks an errored cell."""
    n = len(next(iter(columns.values())))
    rows = [Row(id=f"r{i}", inputs={"q": f"question {i}"}, expected="yes") for i in range(n)]
    cells = {
        variant: [
            make_cell(
                variant,
                row.id,
                {metric: value},
                status="ok" if value is not None else "error",
                prediction=(predictions or {}).get(variant, [f"{variant}-{i}" for i in range(n)])[i],
            )
            for i, (row, value) in enumerate(zip(rows, values, strict=True))
        ]
        for variant, values in columns.items()
    }
    return EvalReport(variants=list(columns), metrics=[metric], rows=rows, cells=cells, **kwargs)


# -- summaries ----------------------------------------------------------------------------------------


def test_binary_metric_gets_a_wilson_interval() -> None:
    report = make_report({"a": [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]})
    summary = report.summary("a")
    assert isinstance(summary, VariantSummary)
    exact = summary["exact"]
    assert isinstance(exact, MetricSummary)
    assert (exact.method, exact.n, exact.mean) == ("wilson", 10, 0.8)
    assert (exact.low, exact.high) == wilson_interval(8, 10)
    assert list(summary) == [exact]
    assert str(exact) == "0.800 [0.490, 0.943]"


def test_graded_metric_gets_a_bootstrap_interval() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7, 1.0, 0.0, 0.6]
    exact = make_report({"a": values}).summary("a")["exact"]
    assert exact.method == "bootstrap"
    assert exact.mean == pytest.approx(sum(values) / len(values))
    assert exact.low is not None
    assert exact.high is not None
    assert exact.low < exact.mean < exact.high


def test_errors_are_not_scored_and_rates_are_counted() -> None:
    rows = [Row(id=f"r{i}", inputs={"q": i}) for i in range(6)]
    cells = [
        make_cell("a", "r0", {"exact": 1.0}),
        make_cell("a", "r1", {"exact": 0.0}, status="parse_error", prediction=None),
        make_cell("a", "r2", {"exact": None}, status="error"),
        make_cell("a", "r3", {"exact": None}, status="skipped", cost=0.0, seconds=None),
        make_cell("a", "r4", {"exact": None}, status="cancelled", cost=0.0, seconds=None),
        make_cell("a", "r5", {"exact": 1.0}),
    ]
    report = EvalReport(variants=["a"], metrics=["exact"], rows=rows, cells={"a": cells}, exclusions={"a": 4})
    summary = report.summary("a")
    assert summary["exact"].n == 3  # the error, the skipped and the cancelled rows are not wrong answers
    assert summary["exact"].mean == pytest.approx(2 / 3)
    assert (summary.cells, summary.scored, summary.errors, summary.skipped, summary.cancelled) == (6, 3, 1, 1, 1)
    assert summary.error_rate == pytest.approx(1 / 6)
    assert (summary.replies, summary.parse_failures) == (3, 1)
    assert summary.parse_failure_rate == pytest.approx(1 / 3)
    assert summary.excluded_examples == 4
    assert summary.usage == Usage(input_tokens=60, output_tokens=12)
    assert summary.cost == pytest.approx(0.004)
    assert summary.latency is not None
    assert (summary.latency.count, summary.latency.p50) == (4, 0.5)


def test_no_scored_cell_gives_no_mean() -> None:
    exact = make_report({"a": [None, None]}).summary("a")["exact"]
    assert (exact.mean, exact.low, exact.high, exact.n) == (None, None, None, 0)
    assert str(exact) == "n/a"


def test_cost_is_unknown_when_any_price_is() -> None:
    rows = [Row(id="r0", inputs={}), Row(id="r1", inputs={})]
    cells = [make_cell("a", "r0", {"exact": 1.0}), make_cell("a", "r1", {"exact": 1.0}, cost=None)]
    summary = EvalReport(variants=["a"], metrics=["exact"], rows=rows, cells={"a": cells}).summary("a")
    assert summary.cost is None
    assert summary.total_cost is None


def test_judge_usage_and_cost_are_apart_from_the_variants() -> None:
    judged = Score(value=1.0, detail="fine", usage=Usage(input_tokens=100, output_tokens=7), cost=0.01)
    rows = [Row(id=f"r{i}", inputs={}) for i in range(3)]
    cells = [make_cell("a", row.id, {"judge": 1.0}, judge=judged, epochs=2) for row in rows]
    summary = EvalReport(variants=["a"], metrics=["judge"], rows=rows, cells={"a": cells}).summary("a")
    assert summary.judge_usage == Usage(input_tokens=600, output_tokens=42)
    assert summary.judge_cost == pytest.approx(0.06)
    assert summary.usage == Usage(input_tokens=60, output_tokens=12)
    assert summary.cost == pytest.approx(0.006)
    assert summary.total_cost == pytest.approx(0.066)
    unknown = Score(value=1.0, cost=None)
    cells = [make_cell("a", row.id, {"judge": 1.0}, judge=unknown) for row in rows]
    assert EvalReport(variants=["a"], metrics=["judge"], rows=rows, cells={"a": cells}).summary("a").judge_cost is None


def test_summaries_are_cached_and_in_order() -> None:
    report = make_report({"b": [1.0, 0.0], "a": [0.0, 0.0]})
    assert list(report.summaries) == ["b", "a"]
    assert report.summary("a") is report.summaries["a"]


def test_unknown_variant_or_metric_names_the_choices() -> None:
    report = make_report({"zero": [1.0], "few": [1.0]})
    with pytest.raises(EvaluationError, match=r"no variant 'cot'; the report has 'zero', 'few'"):
        report.summary("cot")
    with pytest.raises(EvaluationError, match=r"no metric 'f1'; the report has 'exact'"):
        report.compare("zero", "few", metric="f1")
    with pytest.raises(EvaluationError, match="no variant"):
        report.compare("zero", "cot")
    with pytest.raises(EvaluationError, match="no row with id 'r9'"):
        report.row("r9")


def test_report_settings_are_checked() -> None:
    with pytest.raises(EvaluationError, match="confidence"):
        make_report({"a": [1.0]}, confidence=1.5)
    with pytest.raises(EvaluationError, match="resamples"):
        make_report({"a": [1.0]}, resamples=0)


def test_confidence_changes_the_intervals() -> None:
    values = [1.0] * 30 + [0.0] * 10
    wide = make_report({"a": values}, confidence=0.99).summary("a")["exact"]
    narrow = make_report({"a": values}, confidence=0.8).summary("a")["exact"]
    assert (wide.low, wide.high) == wilson_interval(30, 40, 0.99)
    assert wide.low is not None
    assert narrow.low is not None
    assert wide.low < narrow.low


# -- comparisons ---------------------------------------------------------------------------------------


def test_binary_comparison_uses_mcnemar() -> None:
    a = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    b = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    report = make_report({"a": a, "b": b})
    comparison = report.compare("a", "b")
    assert isinstance(comparison, Comparison)
    assert comparison.test == "mcnemar_exact"
    assert comparison.improved == ("r0", "r1", "r2", "r5", "r7", "r8", "r9", "r10")
    assert comparison.regressed == ("r4",)
    assert comparison.ties == ("r3", "r6", "r11")
    assert comparison.p_value == mcnemar_exact(8, 1)
    assert comparison.effect == pytest.approx((10 - 3) / 12)
    assert comparison.low < comparison.effect < comparison.high
    assert comparison.significant()
    assert not comparison.significant(alpha=0.01)
    assert (comparison.mean_a, comparison.mean_b) == (pytest.approx(3 / 12), pytest.approx(10 / 12))
    assert report.compare("a", "b") is comparison  # cached
    reverse = report.compare("b", "a")
    assert reverse.improved == comparison.regressed
    assert reverse.effect == pytest.approx(-comparison.effect)
    assert reverse.p_value == comparison.p_value


def test_comparison_pairs_only_rows_scored_on_both_sides() -> None:
    report = make_report({"a": [1.0, None, 0.0, 0.0], "b": [1.0, 1.0, None, 1.0]})
    comparison = report.compare("a", "b")
    assert (comparison.n, comparison.unpaired) == (2, 2)
    assert comparison.improved == ("r3",)
    assert comparison.ties == ("r0",)
    assert "2 unpaired" in str(comparison)


def test_no_discordant_rows_is_no_evidence() -> None:
    comparison = make_report({"a": [1.0, 0.0, 1.0], "b": [1.0, 0.0, 1.0]}).compare("a", "b")
    assert (comparison.p_value, comparison.effect) == (1.0, 0.0)
    assert not comparison.significant()
    nothing = make_report({"a": [None, None], "b": [1.0, 1.0]}).compare("a", "b")
    assert (nothing.n, nothing.p_value, nothing.mean_a) == (0, 1.0, None)


def test_graded_comparison_uses_the_sign_flip_permutation() -> None:
    a = [0.1, 0.5, 0.3, 0.9, 0.2, 0.4]
    b = [0.3, 0.6, 0.2, 1.0, 0.5, 0.4]
    comparison = make_report({"a": a, "b": b}).compare("a", "b")
    assert comparison.test == "sign_flip_permutation"
    assert comparison.p_value == pytest.approx(paired_permutation(a, b))
    assert comparison.effect == pytest.approx(paired_bootstrap(a, b)[0])
    assert comparison.improved == ("r0", "r1", "r3", "r4")
    assert comparison.regressed == ("r2",)
    assert comparison.ties == ("r5",)
    assert "sign-flip permutation" in repr(comparison)


def test_binary_against_graded_is_not_mcnemar() -> None:
    comparison = make_report({"a": [1.0, 0.0, 1.0], "b": [0.5, 1.0, 1.0]}).compare("a", "b")
    assert comparison.test == "sign_flip_permutation"


def test_large_graded_comparison_reuses_the_summaries_draws() -> None:
    import random

    rng = random.Random(3)
    a = [rng.random() for _ in range(500)]
    b = [min(1.0, x + rng.gauss(0.03, 0.1)) for x in a]
    report = make_report({"a": a, "b": b})
    _ = report.summaries
    comparison = report.compare("a", "b")
    effect, low, high, _p = paired_bootstrap(a, b)
    assert (comparison.effect, comparison.low, comparison.high) == pytest.approx((effect, low, high), abs=1e-12)


def test_compare_defaults_to_the_first_metric() -> None:
    rows = [Row(id="r0", inputs={}), Row(id="r1", inputs={})]
    cells = {v: [make_cell(v, r.id, {"f1": 0.5, "exact": 1.0}) for r in rows] for v in ("a", "b")}
    report = EvalReport(variants=["a", "b"], metrics=["f1", "exact"], rows=rows, cells=cells)
    assert report.compare("a", "b").metric == "f1"
    assert report.compare("a", "b", metric="exact").metric == "exact"


def test_comparison_repr_and_html() -> None:
    report = make_report({"<a>": [0.0, 0.0, 1.0], "b": [1.0, 1.0, 0.0]})
    comparison = report.compare("<a>", "b")
    text = repr(comparison)
    assert text.startswith("<Comparison exact: b - <a> = +0.333 [")
    assert "McNemar exact p=1; 2 improved, 1 regressed, 0 tied of 3 paired rows" in text
    page = comparison._repr_html_()
    assert "&lt;a&gt;" in page
    assert "<a>" not in page
    assert "regressed (1)" in page
    assert "r2" in page


# -- rows ---------------------------------------------------------------------------------------------


def test_row_lists_each_variants_cell() -> None:
    report = make_report({"a": [1.0, 0.0], "b": [0.0, 0.0]})
    row = report.row("r0")
    assert list(row) == ["a", "b"]
    assert row["a"].prediction == "a-0"
    assert row["b"].scores == {"exact": 0.0}


def test_rows_table_puts_predictions_side_by_side() -> None:
    report = make_report(
        {"a": [1.0, 0.0, None], "b": [0.0, 1.0, 1.0]},
        predictions={"a": ["Paris", "evil\x1b[2J\nline", "x"], "b": ["Lyon", "ok", "a" * 80]},
    )
    table = report.rows_table()
    lines = table.splitlines()
    assert lines[0].split() == ["row", "a", "exact", "b", "exact"]
    assert "Paris" in lines[2]
    assert "Lyon" in lines[2]
    assert "\x1b" not in table
    assert "evil\\x1b[2J\\nline" in table
    assert "<error>" in lines[4]
    assert "…" in lines[4]  # cut to the width
    assert "error" in lines[4].split()  # the score column says why there is no score
    only = report.rows_table(["r1"], width=10)
    assert len(only.splitlines()) == 3
    with pytest.raises(EvaluationError, match="no row with id 'nope'"):
        report.rows_table(["nope"])
    with pytest.raises(EvaluationError, match="no metric"):
        report.rows_table(metrics=["f1"])


# -- text and HTML ------------------------------------------------------------------------------------


def test_text_table_lists_variants_with_intervals() -> None:
    report = make_report({"zero-shot": [1.0, 0.0, 1.0, 1.0], "few-shot": [1.0, 1.0, 1.0, 1.0]}, elapsed=1.5)
    text = str(report)
    assert text == report.table()
    lines = text.splitlines()
    assert lines[0] == "2 variants x 4 rows; means with 95% intervals"
    header = lines[1]
    for column in ("variant", "exact (wilson)", "parse fail", "errors", "tokens", "cost", "p50 latency"):
        assert column in header
    assert lines[2].replace(" ", "").strip("-") == ""
    assert lines[3].startswith("zero-shot  0.750 [")
    assert lines[4].startswith("few-shot   1.000 [")
    assert "0.0%" in lines[3]
    assert "$0.004" in lines[3]
    assert "0.50 s" in lines[3]
    # right-aligned columns end together
    assert len({len(line) for line in lines[1:]}) == 1
    assert "\x1b" not in text
    assert "judge cost" not in text


def test_text_table_notes_exclusions_and_unknowns() -> None:
    rows = [Row(id="r0", inputs={})]
    cells = {"a": [make_cell("a", "r0", {"exact": 1.0}, cost=None, seconds=None)]}
    report = EvalReport(variants=["a"], metrics=["exact"], rows=rows, cells=cells, exclusions={"a": 2}, epochs=3)
    text = report.table()
    assert "3 epochs (mean)" in text
    assert "unknown" in text
    assert "n/a" in text
    assert "few-shot examples excluded to avoid leaking answers: a 2" in text


def test_repr_is_short() -> None:
    assert repr(make_report({"a": [1.0], "b": [0.0]})) == "<EvalReport 2 variants x 1 rows; metrics: exact>"


def test_html_escapes_hostile_predictions() -> None:
    report = make_report({"a": [1.0, 0.0], "<b>": [0.0, 1.0]}, predictions={"a": [HOSTILE, "x"], "<b>": ["y", "z"]})
    page = report._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "<b>" not in page.replace("<b>EvalReport</b>", "")
    assert "&lt;b&gt;" in page
    assert page.startswith("<div><b>EvalReport</b>")
    assert "2 rows" in page


# -- pandas -------------------------------------------------------------------------------------------


def test_to_pandas_has_one_line_per_row_and_variant() -> None:
    report = make_report({"a": [1.0, None], "b": [0.0, 1.0]})
    frame = report.to_pandas()
    assert list(frame.columns) == [
        "row_id",
        "variant",
        "input.q",
        "expected",
        "prediction",
        "status",
        "exact",
        "input_tokens",
        "output_tokens",
        "cost",
        "seconds",
        "error",
    ]
    assert len(frame) == 4
    assert list(frame["variant"]) == ["a", "a", "b", "b"]
    assert list(frame["status"]) == ["ok", "error", "ok", "ok"]
    assert frame["exact"].isna().tolist() == [False, True, False, False]
    assert frame.groupby("variant")["exact"].mean().to_dict() == {"a": 1.0, "b": 0.5}
    assert frame.loc[1, "error"] == "BackendError: boom"
    assert frame.loc[0, "input.q"] == "question 0"
    assert frame.loc[0, "expected"] == "yes"


def test_to_pandas_keeps_a_metric_named_like_a_column_apart() -> None:
    frame = make_report({"a": [1.0]}, metric="cost").to_pandas()
    assert "score.cost" in frame.columns
    assert frame.loc[0, "cost"] == pytest.approx(0.001)


def test_to_pandas_without_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "promptkit\[pandas\]"'):
        make_report({"a": [1.0]}).to_pandas()


# -- JSON ---------------------------------------------------------------------------------------------


def _rich_report() -> EvalReport:
    rows = [
        Row(id="r0", inputs={"q": "2+2?"}, expected="4", metadata={"topic": "math"}),
        Row(id="r1", inputs={"q": "capital?"}),
        Row(id="r2", inputs={"q": HOSTILE}, expected=None),
    ]
    judged = Score(value=0.5, detail="half right", usage=Usage(input_tokens=30, output_tokens=4), cost=None)
    cells = {
        "a": [
            make_cell("a", "r0", {"exact": 1.0, "judge": 0.5}, prediction={"answer": 4, "why": ["sum"]}, judge=judged),
            make_cell("a", "r1", {"exact": None, "judge": None}, status="error"),
            make_cell("a", "r2", {"exact": 0.0, "judge": 1.0}, prediction=HOSTILE, epochs=2, cost=None),
        ],
        "b": [
            make_cell("b", "r0", {"exact": 0.0, "judge": 0.0}, status="parse_error", prediction=None),
            make_cell("b", "r1", {"exact": 1.0, "judge": 1.0}, usage=Usage(input_tokens=5, cached_input_tokens=3)),
            make_cell("b", "r2", {"exact": 1.0, "judge": 1.0}, prediction=3.25, seconds=None),
        ],
    }
    return EvalReport(
        variants=["a", "b"],
        metrics=["exact", "judge"],
        rows=rows,
        cells=cells,
        exclusions={"b": 3},
        epochs=2,
        reducer="majority",
        confidence=0.9,
        elapsed=12.5,
        resamples=500,
        seed=7,
    )


def test_json_round_trip_rebuilds_the_report() -> None:
    report = _rich_report()
    text = report.to_json()
    back = EvalReport.from_json(text)
    assert back.to_json() == text
    assert back.rows == report.rows
    assert back.cells == report.cells
    assert (back.variants, back.metrics, dict(back.exclusions)) == (report.variants, report.metrics, {"a": 0, "b": 3})
    assert (back.epochs, back.reducer, back.confidence, back.elapsed, back.resamples, back.seed) == (
        2,
        "majority",
        0.9,
        12.5,
        500,
        7,
    )
    assert back.summaries == report.summaries
    assert back.compare("a", "b", metric="judge") == report.compare("a", "b", metric="judge")
    assert not back.rows[1].has_expected
    assert back.rows[2].expected is None
    trial = back.cell("a", "r0").trials[0]
    assert trial.scores["judge"] == Score(
        value=0.5, detail="half right", usage=Usage(input_tokens=30, output_tokens=4), cost=None
    )
    assert trial.result is None


def test_json_drops_live_results_and_writes_models_as_plain_json() -> None:
    class Answer(pydantic.BaseModel):
        value: int
        note: str

    rows = [Row(id="r0", inputs={"q": "?"})]
    cell = make_cell("a", "r0", {"exact": 1.0}, prediction=Answer(value=4, note=HOSTILE))
    report = EvalReport(variants=["a"], metrics=["exact"], rows=rows, cells={"a": [cell]})
    document = json.loads(report.to_json())
    assert document["format"] == "promptkit.eval_report"
    assert document["version"] == 1
    assert document["cells"]["a"][0]["prediction"] == {"value": 4, "note": HOSTILE}
    assert "result" not in document["cells"]["a"][0]["trials"][0]
    back = EvalReport.from_json(report.to_json())
    assert back.cell("a", "r0").prediction == {"value": 4, "note": HOSTILE}


def test_json_names_a_value_it_cannot_write() -> None:
    rows = [Row(id="r0", inputs={"q": "?"})]
    cell = make_cell("a", "r0", {"exact": 1.0}, prediction=object())
    report = EvalReport(variants=["a"], metrics=["exact"], rows=rows, cells={"a": [cell]})
    with pytest.raises(EvaluationError, match="variant 'a', row 'r0': a object cannot be written as JSON"):
        report.to_json()


def test_to_json_writes_a_file_that_load_reads(tmp_path: Path) -> None:
    report = _rich_report()
    path = tmp_path / "baseline.json"
    text = report.to_json(path)
    assert path.read_text(encoding="utf-8") == text
    assert EvalReport.load(path).cells == report.cells
    assert EvalReport.load(str(path)).rows == report.rows
    with pytest.raises(EvaluationError, match="cannot read the evaluation report"):
        EvalReport.load(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a JSON evaluation report"),
        ("[1, 2]", "has no format 'promptkit.eval_report'"),
        ('{"format": "other"}', "has no format"),
        ('{"format": "promptkit.eval_report", "version": 99}', "version 99 is not supported"),
        ('{"format": "promptkit.eval_report", "version": 1}', "malformed evaluation report: KeyError"),
        (
            '{"format": "promptkit.eval_report", "version": 1, "variants": ["a"], "metrics": [], "rows": [],'
            ' "cells": {"a": [{"row_id": "r0", "trials": [{"status": "weird"}]}]}}',
            "unknown trial status 'weird'",
        ),
        (
            '{"format": "promptkit.eval_report", "version": 1, "variants": ["a"], "metrics": [], "rows": [],'
            ' "cells": {"a": [{"row_id": "r0"}]}}',
            "variant 'a' has 1 cells for 0 rows",
        ),
    ],
)
def test_from_json_rejects_what_is_not_a_report(text: str, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        EvalReport.from_json(text)


# -- plot ---------------------------------------------------------------------------------------------


@pytest.fixture
def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plot_draws_score_against_cost_with_error_bars(pyplot: Any) -> None:
    from matplotlib.container import ErrorbarContainer

    report = make_report({"zero": [1.0, 0.0, 0.0, 1.0], "few": [1.0, 1.0, 1.0, 0.0], "cot": [1.0, 1.0, 1.0, 1.0]})
    ax = report.plot()
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3
    assert [bar.get_label() for bar in bars] == ["zero", "few", "cot"]
    assert ax.get_xlabel() == "cost (USD)"
    assert ax.get_ylabel() == "exact: mean, 95% interval"
    assert ax.get_title() == "exact against cost"
    assert [text.get_text() for text in ax.texts] == ["zero", "few", "cot"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "few", "cot"]
    # the error bar spans the interval
    summary = report.summary("few")["exact"]
    segments = bars[1].lines[2][0].get_segments()
    assert segments[0][:, 1].tolist() == pytest.approx([summary.low, summary.high])


def test_plot_on_given_axes_falls_back_to_tokens(pyplot: Any) -> None:
    rows = [Row(id="r0", inputs={})]
    cells = {
        "a": [make_cell("a", "r0", {"exact": 1.0}, cost=None)],
        "b": [make_cell("b", "r0", {"exact": None}, status="error")],
    }
    report = EvalReport(variants=["a", "b"], metrics=["exact"], rows=rows, cells=cells)
    _, ax = pyplot.subplots()
    assert report.plot("exact", ax=ax) is ax
    assert ax.get_xlabel() == "tokens (a price is unknown)"
    assert ax.get_title() == "exact against tokens (no scores: b)"
    assert len(ax.containers) == 1


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "promptkit\[plot\]"'):
        make_report({"a": [1.0]}).plot()


def test_public_names() -> None:
    for name in ("EvalReport", "VariantSummary", "MetricSummary", "Comparison"):
        assert getattr(promptkit, name).__module__ == "promptkit"


def test_rows_table_shows_the_text_of_a_reply_that_did_not_parse() -> None:
    rows = [Row(id="r0", inputs={})]
    cell = make_cell("a", "r0", {"exact": 0.0}, status="parse_error", prediction="{not json")
    report = EvalReport(variants=["a"], metrics=["exact"], rows=rows, cells={"a": [cell]})
    assert "<unparsed: {not json>" in report.rows_table(width=40)


def test_a_report_from_evaluate_adds_up_and_round_trips() -> None:
    from promptkit import Prompt, evaluate
    from promptkit.testing import FunctionBackend

    def model(messages: Any, params: Any) -> str:
        n = int(messages[-1].text.split()[-1])
        return str(2 * n if "twice" in messages[-1].text or n % 3 else 2 * n + 1)

    llm = FunctionBackend(model)
    variants = {"plain": Prompt("double {{ n }}", llm), "careful": Prompt("twice, double {{ n }}", llm)}
    data = [{"n": n, "expected": str(2 * n)} for n in range(30)]

    def exact(prediction: str, row: Row) -> bool:
        return bool(prediction == row.expected)

    report = evaluate(variants, data, exact, progress=False)
    plain, careful = report.summary("plain"), report.summary("careful")
    assert careful["exact"].mean == 1.0
    assert plain["exact"].mean == pytest.approx(20 / 30)
    assert plain["exact"].method == "wilson"
    assert plain.latency is not None
    assert plain.cells == plain.scored == 30
    comparison = report.compare("plain", "careful")
    assert (len(comparison.improved), len(comparison.regressed)) == (10, 0)
    assert comparison.p_value == mcnemar_exact(10, 0)
    assert comparison.significant()
    assert report.cell("plain", comparison.improved[0]).trials[0].result is not None
    back = EvalReport.from_json(report.to_json())
    assert back.cells == report.cells  # the live results are left out of the comparison and the file
    assert back.cell("plain", comparison.improved[0]).trials[0].result is None
    assert back.compare("plain", "careful") == comparison
    assert "plain" in str(report)


def test_confusion_matrix_counts_the_answered_rows_of_one_variant() -> None:
    from promptkit import Prompt, evaluate
    from promptkit.testing import MockBackend, server_error

    rows = [
        {"t": "a", "expected": "spam"},
        {"t": "b", "expected": "ham"},
        {"t": "c", "expected": "ham"},
        {"t": "d", "expected": "spam"},
    ]
    llm = MockBackend(["spam", "spam", "ham", server_error(503)])
    report = evaluate(
        Prompt("{{ t }}", llm),
        rows,
        {"same": lambda p, r: p == r.expected},
        progress=False,
        max_concurrency=1,
    )
    matrix = report.confusion_matrix("prompt", labels=["spam", "ham"])
    assert matrix.count("spam", "spam") == 1
    assert matrix.count("ham", "spam") == 1
    assert matrix.count("ham", "ham") == 1
    assert matrix.count("spam", "ham") == 0  # the errored row is not counted as a prediction
    with pytest.raises(EvaluationError, match="no variant"):
        report.confusion_matrix("other")


def test_a_comparison_without_paired_rows_says_so() -> None:
    from promptkit import Prompt, evaluate
    from promptkit.testing import MockBackend, server_error

    rows = [{"t": "a", "expected": "x"}, {"t": "b", "expected": "x"}]
    report = evaluate(
        {"p": Prompt("{{ t }}", MockBackend([server_error(503)] * 2)), "q": Prompt("{{ t }}", MockBackend(["x", "x"]))},
        rows,
        {"same": lambda p, r: p == r.expected},
        progress=False,
    )
    comparison = report.compare("p", "q")
    assert comparison.n == 0
    assert not comparison.significant()
    assert str(comparison) == "same: q - p: no row was scored for both, nothing to compare (2 unpaired)"
