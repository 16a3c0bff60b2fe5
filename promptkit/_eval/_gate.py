"""Gates for CI: checks over an evaluation report that a test can assert.

:func:`check_gate` holds a report to limits (each metric's mean or its interval's lower bound,
the error and parse-failure rates, the cost and a latency percentile per variant) and, given a
baseline report, tests every variant against its own earlier run row by row with the paired test
of :meth:`EvalReport.compare`. The verdict is a :class:`GateResult` whose text reads well in a
failing test; :func:`assert_gate` raises it as an :class:`~promptkit.EvalGateError`.
:func:`run_gate` (in ``_gate_run``) runs the evaluation itself, cached, and keeps the baseline file.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from .._errors import EvalGateError, EvaluationError
from ._render import clean
from ._report import EvalReport
from ._summary import Comparison, compare_columns

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "GateCheck",
    "GateKind",
    "GateLimits",
    "GateResult",
    "LatencyStat",
    "RegressedRow",
    "ScoreBound",
    "assert_gate",
    "check_gate",
]

GateKind = Literal["score", "error_rate", "parse_failure_rate", "cost", "latency", "regression", "baseline"]
"""What a :class:`GateCheck` checked."""

LatencyStat = Literal["p50", "p90", "p99", "mean", "max"]
"""Which figure of the trials' times ``max_latency`` bounds."""

ScoreBound = Literal["mean", "low"]
"""What ``min_scores`` bounds: the metric's mean, or the lower end of its confidence interval."""

_SHOWN_ROWS = 20  # regressed rows shown with their predictions in a failure's text
_PREDICTION_WIDTH = 40


class GateLimits(TypedDict, total=False):
    """The limits :func:`check_gate`, :func:`assert_gate` and :func:`run_gate` take by keyword."""

    min_scores: Mapping[str, float | Mapping[str, float]] | None
    use: ScoreBound
    max_error_rate: float | None
    max_parse_failure_rate: float | None
    max_cost: float | None
    max_latency: float | None
    latency_percentile: LatencyStat
    baseline_metrics: Sequence[str] | None
    alpha: float
    tolerance: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RegressedRow:
    """A row that scored lower than in the baseline: its id, both predictions and both scores.

    >>> print(RegressedRow(row_id="q3", metric="exact", baseline_prediction="6", prediction="7",
    ...                    baseline_score=1.0, score=0.0))
    q3: '6' -> '7' (exact 1 -> 0)
    """

    row_id: str
    metric: str
    baseline_prediction: Any
    prediction: Any
    baseline_score: float
    score: float

    def __str__(self) -> str:
        before = clean(repr(self.baseline_prediction), _PREDICTION_WIDTH)
        after = clean(repr(self.prediction), _PREDICTION_WIDTH)
        return (
            f"{clean(self.row_id)}: {before} -> {after} ({self.metric} {self.baseline_score:.3g} -> {self.score:.3g})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GateCheck:
    """One check of a gate and its outcome, with a one-line ``message``.

    ``kind`` says what was checked; ``variant`` and ``metric`` where; ``value`` what was found and
    ``limit`` the bound it was held to (``None`` where there is no number, such as an unknown
    price). A ``"regression"`` check carries its ``comparison`` with the baseline and the
    ``regressed`` rows with both predictions.

    >>> print(GateCheck(kind="score", passed=False, variant="v", metric="exact", value=0.6, limit=0.8,
    ...                 message="v: exact mean 0.600 is below 0.800"))
    FAIL score: v: exact mean 0.600 is below 0.800
    """

    kind: GateKind
    passed: bool
    message: str
    variant: str | None = None
    metric: str | None = None
    value: float | None = None
    limit: float | None = None
    comparison: Comparison | None = None
    regressed: tuple[RegressedRow, ...] = ()

    def __str__(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'} {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    """A gate's verdict: every check made, in order, and what the comparison with a baseline left
    aside (the ids of rows ``only_in_baseline`` and ``only_in_report``), plus ``notes`` (a baseline
    written or left as it was). ``passed`` when no check failed; ``failures`` lists the
    failed checks; ``comparisons`` maps (variant, metric) to the paired comparison with the
    baseline. ``report`` is the report that was checked.

    ``str(result)`` is the verdict for a person (the text of a failing test);
    :meth:`raise_if_failed` raises it as an :class:`~promptkit.EvalGateError`.
    """

    checks: tuple[GateCheck, ...]
    only_in_baseline: tuple[str, ...] = ()
    only_in_report: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    baseline: str | None = None
    report: EvalReport | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        """The checks that failed, in order."""
        return tuple(check for check in self.checks if not check.passed)

    @property
    def comparisons(self) -> dict[tuple[str, str], Comparison]:
        """``{(variant, metric): comparison}`` of every variant with its baseline run."""
        return {
            (check.variant, check.metric): check.comparison
            for check in self.checks
            if check.comparison is not None and check.variant is not None and check.metric is not None
        }

    def raise_if_failed(self) -> GateResult:
        """Raise :class:`~promptkit.EvalGateError` with this verdict when a check failed; else return self."""
        if not self.passed:
            raise EvalGateError(str(self), result=self)
        return self

    def _lines(self) -> list[str]:
        failed = len(self.failures)
        if failed:
            lines = [f"evaluation gate failed: {failed} of {len(self.checks)} checks failed"]
        else:
            lines = [f"evaluation gate passed: {len(self.checks)} checks"]
        for check in sorted(self.checks, key=lambda c: c.passed):  # failures first, in order
            lines.append(f"  {check}")
            if not check.passed and check.regressed:
                lines += [f"      {row}" for row in check.regressed[:_SHOWN_ROWS]]
                if len(check.regressed) > _SHOWN_ROWS:
                    lines.append(f"      ... and {len(check.regressed) - _SHOWN_ROWS} more (see .regressed)")
        for label, ids in (("in the baseline only", self.only_in_baseline), ("in this run only", self.only_in_report)):
            if ids:
                lines.append(f"  rows {label} ({len(ids)}, not compared): {_ids(ids)}")
        lines += [f"  note: {note}" for note in self.notes]
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"failed {len(self.failures)}"
        return f"<GateResult {verdict} of {len(self.checks)} checks>"

    def _repr_html_(self) -> str:
        verdict = "passed" if self.passed else f"failed: {len(self.failures)} of {len(self.checks)} checks"
        body = ""
        for check in sorted(self.checks, key=lambda c: c.passed):
            colour = "green" if check.passed else "red"
            rows = ""
            if check.regressed:
                items = "".join(f"<li>{html.escape(str(row))}</li>" for row in check.regressed)
                rows = f"<details><summary>{len(check.regressed)} rows regressed</summary><ul>{items}</ul></details>"
            body += (
                f"<tr><td style='color:{colour}'>{'pass' if check.passed else 'FAIL'}</td>"
                f"<td>{html.escape(check.kind)}</td><td>{html.escape(check.message)}{rows}</td></tr>"
            )
        extra = "".join(
            f"<p>{html.escape(label)}: {html.escape(_ids(ids))}</p>"
            for label, ids in (
                ("rows in the baseline only", self.only_in_baseline),
                ("rows in this run only", self.only_in_report),
            )
            if ids
        )
        extra += "".join(f"<p>note: {html.escape(note)}</p>" for note in self.notes)
        return (
            f"<div><b>Evaluation gate</b> {html.escape(verdict)}"
            f"<table><thead><tr><th></th><th>check</th><th>outcome</th></tr></thead><tbody>{body}</tbody></table>"
            f"{extra}</div>"
        )


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(clean(i) for i in ids)


# -- checking ----------------------------------------------------------------------------------------
def _number(name: str, value: Any, *, high: float | None = None, positive: bool = False) -> float:
    """``value`` as a float, checked to be >= 0 (> 0 when ``positive``) and at most ``high``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > 0 if positive else value >= 0) and (high is None or value <= high)
    if not ok:
        low = "> 0" if positive else ">= 0"
        bounds = low if high is None else f"in {'(' if positive else '['}0, {high:g}]"
        raise EvaluationError(f"{name} must be a number {bounds}, not {value!r}")
    return float(value)


def _score_limits(
    min_scores: Mapping[str, float | Mapping[str, float]], report: EvalReport, variants: Sequence[str]
) -> dict[tuple[str, str], float]:
    """``{(variant, metric): limit}``: a metric's limit applies to every variant checked, a
    variant's own mapping overrides it."""
    if not isinstance(min_scores, Mapping):
        raise EvaluationError(
            "min_scores must map metric names to limits, or variant names to such mappings,"
            f" not {type(min_scores).__name__}"
        )
    shared: dict[str, float] = {}
    own: dict[tuple[str, str], float] = {}
    for key, value in min_scores.items():
        if isinstance(value, Mapping):
            report._variant(key)
            for metric, limit in value.items():
                report._metric(metric)
                own[(key, metric)] = _number(f"min_scores[{key!r}][{metric!r}]", limit, high=1.0)
        else:
            report._metric(key)
            shared[key] = _number(f"min_scores[{key!r}]", value, high=1.0)
    limits = {(variant, metric): limit for variant in variants for metric, limit in shared.items()}
    limits.update(own)
    return dict(sorted(limits.items(), key=lambda item: (report.variants.index(item[0][0]), item[0][1])))


def _score_check(report: EvalReport, variant: str, metric: str, limit: float, use: ScoreBound) -> GateCheck:
    found = report.summary(variant)[metric]
    if found.mean is None:
        return GateCheck(
            kind="score",
            passed=False,
            variant=variant,
            metric=metric,
            limit=limit,
            message=f"{variant}: {metric} has no scored rows (every call failed or was not made); needs {limit:.3f}",
        )
    if use == "mean":
        value, what = found.mean, f"{metric} mean {found.mean:.3f}"
    else:
        assert found.low is not None
        value = found.low
        what = f"{metric} lower bound {found.low:.3f} ({found.confidence:.0%} {found.method}, mean {found.mean:.3f})"
    passed = value >= limit
    return GateCheck(
        kind="score",
        passed=passed,
        variant=variant,
        metric=metric,
        value=value,
        limit=limit,
        message=f"{variant}: {what} {'is at least' if passed else 'is below'} {limit:.3f} (n={found.n})",
    )


def _rate_check(kind: GateKind, variant: str, what: str, *, rate: float, limit: float, of: str) -> GateCheck:
    passed = rate <= limit
    return GateCheck(
        kind=kind,
        passed=passed,
        variant=variant,
        value=rate,
        limit=limit,
        message=f"{variant}: {what} {rate:.1%} of {of} {'is within' if passed else 'is over'} {limit:.1%}",
    )


def _unpriced(report: EvalReport, variant: str) -> list[str]:
    """The models whose price is unknown among a variant's calls (when the calls are at hand)."""
    from .._cost import cost_of

    models: set[str] = set()
    for cell in report.cells[variant]:
        for trial in cell.trials:
            if trial.cost is None and trial.result is not None:
                for completion in trial.result.completions:
                    if cost_of(completion.usage, completion.model, completion.provider) is None:
                        models.add(completion.model or "unnamed")
    return sorted(models)


def _cost_check(report: EvalReport, variant: str, limit: float) -> GateCheck:
    summary = report.summary(variant)
    total = summary.total_cost
    if total is None:
        if summary.cost is None:
            models = _unpriced(report, variant)
            which = f"no price for model {', '.join(map(repr, models))}" if models else "a call's price is unknown"
        else:
            which = "a judge's price is unknown"
        return GateCheck(
            kind="cost",
            passed=False,
            variant=variant,
            limit=limit,
            message=f"{variant}: cost unknown ({which}; set one with promptkit.set_price), so it cannot be held"
            f" to ${limit:g}",
        )
    passed = total <= limit
    return GateCheck(
        kind="cost",
        passed=passed,
        variant=variant,
        value=total,
        limit=limit,
        message=f"{variant}: cost ${total:.6g} {'is within' if passed else 'is over'} ${limit:g}",
    )


def _latency_check(report: EvalReport, variant: str, limit: float, stat: LatencyStat) -> GateCheck:
    """Latency over the trials that reached the model: a reply from the response cache times the
    cache, not the model, so a run served wholly from the cache has nothing to hold to the limit."""
    from .._batch._results import Latency

    timed = [t for cell in report.cells[variant] for t in cell.trials if t.seconds is not None]
    sent = [t.seconds for t in timed if t.seconds is not None and not (t.result is not None and t.result.cached)]
    latency = Latency.of(sent)
    if latency is None:
        if timed:
            message = f"{variant}: latency not measured, every reply came from the response cache (limit {limit:g} s)"
            return GateCheck(kind="latency", passed=True, variant=variant, limit=limit, message=message)
        message = f"{variant}: no call was timed, so its {stat} latency cannot be held to {limit:g} s"
        return GateCheck(kind="latency", passed=False, variant=variant, limit=limit, message=message)
    value = float(getattr(latency, stat))
    passed = value <= limit
    return GateCheck(
        kind="latency",
        passed=passed,
        variant=variant,
        value=value,
        limit=limit,
        message=f"{variant}: {stat} latency {value:.3g} s over {latency.count} calls"
        f" {'is within' if passed else 'is over'} {limit:g} s",
    )


def _load_baseline(baseline: EvalReport | str | os.PathLike[str]) -> tuple[EvalReport, str | None]:
    if isinstance(baseline, EvalReport):
        return baseline, None
    if isinstance(baseline, (str, os.PathLike)):
        return EvalReport.load(Path(baseline)), str(baseline)
    raise EvaluationError(f"baseline must be an EvalReport or the path of one's JSON, not {type(baseline).__name__}")


def _regression_check(
    report: EvalReport,
    old: EvalReport,
    variant: str,
    metric: str,
    common: Sequence[str],
    *,
    alpha: float,
    tolerance: float,
) -> GateCheck:
    old_cells = {cell.row_id: cell for cell in old.cells[variant]}
    new_cells = {cell.row_id: cell for cell in report.cells[variant]}
    comparison = compare_columns(
        common,
        [old_cells[i].scores.get(metric) for i in common],
        [new_cells[i].scores.get(metric) for i in common],
        a=f"{variant} (baseline)",
        b=variant,
        metric=metric,
        confidence=report.confidence,
        resamples=report.resamples,
        seed=report.seed,
    )
    regressed = tuple(
        RegressedRow(
            row_id=row_id,
            metric=metric,
            baseline_prediction=old_cells[row_id].prediction,
            prediction=new_cells[row_id].prediction,
            baseline_score=_scored(old_cells[row_id].scores.get(metric)),
            score=_scored(new_cells[row_id].scores.get(metric)),
        )
        for row_id in comparison.regressed
    )
    if comparison.n == 0:
        return GateCheck(
            kind="regression",
            passed=False,
            variant=variant,
            metric=metric,
            comparison=comparison,
            message=f"{variant}: no row was scored in both the baseline and this run, so {metric} cannot be compared",
        )
    worse = comparison.effect < -tolerance
    significant = comparison.significant(alpha)
    passed = not (worse and significant)
    assert comparison.mean_a is not None
    assert comparison.mean_b is not None
    beyond = f" beyond the tolerance {tolerance:g}" if tolerance else ""
    if not passed:
        why = f"significantly worse{beyond}: p={comparison.p_value:.3g} < {alpha:g}"
    elif worse:
        why = f"p={comparison.p_value:.3g} is not below {alpha:g}: within noise"
    else:
        why = "not worse" + beyond
    counts = f"{len(comparison.regressed)} regressed, {len(comparison.improved)} improved of {comparison.n} paired rows"
    if comparison.unpaired:
        counts += f" ({comparison.unpaired} unpaired: an error on either side)"
    rows = f"; regressed rows: {_ids(comparison.regressed)}" if not passed else ""
    message = (
        f"{variant}: {metric} {comparison.mean_a:.3f} -> {comparison.mean_b:.3f} against the baseline,"
        f" {comparison.effect:+.3f} [{comparison.low:+.3f}, {comparison.high:+.3f}] ({comparison.confidence:.0%}),"
        f" {comparison.test_name}; {why}; {counts}{rows}"
    )
    return GateCheck(
        kind="regression",
        passed=passed,
        variant=variant,
        metric=metric,
        value=comparison.effect,
        limit=-tolerance,
        comparison=comparison,
        regressed=regressed,
        message=message,
    )


def _scored(value: float | None) -> float:
    assert value is not None  # a regressed row was scored on both sides
    return value


def _baseline_checks(
    report: EvalReport,
    baseline: EvalReport | str | os.PathLike[str],
    variants: Sequence[str],
    metrics: Sequence[str],
    *,
    alpha: float,
    tolerance: float,
) -> tuple[list[GateCheck], tuple[str, ...], tuple[str, ...], str | None]:
    old, path = _load_baseline(baseline)
    checks: list[GateCheck] = []
    old_ids = [row.id for row in old.rows]
    new_ids = {row.id for row in report.rows}
    common = [row.id for row in report.rows if row.id in set(old_ids)]
    only_old = tuple(i for i in old_ids if i not in new_ids)
    only_new = tuple(row.id for row in report.rows if row.id not in set(old_ids))
    hint = "update it from this run if the change is intended"
    for variant in variants:
        if variant not in old.cells:
            checks.append(
                GateCheck(
                    kind="baseline",
                    passed=False,
                    variant=variant,
                    message=f"{variant}: the baseline has no such variant (it has"
                    f" {', '.join(map(repr, old.variants))}); {hint}",
                )
            )
            continue
        for metric in metrics:
            if metric not in old.metrics:
                checks.append(
                    GateCheck(
                        kind="baseline",
                        passed=False,
                        variant=variant,
                        metric=metric,
                        message=f"{variant}: the baseline has no metric {metric!r}; {hint}",
                    )
                )
                continue
            checks.append(_regression_check(report, old, variant, metric, common, alpha=alpha, tolerance=tolerance))
    return checks, only_old, only_new, path


def check_gate(
    report: EvalReport,
    *,
    baseline: EvalReport | str | os.PathLike[str] | None = None,
    variants: Sequence[str] | None = None,
    **limits: Unpack[GateLimits],
) -> GateResult:
    """Hold ``report`` to limits and, given a ``baseline`` report (or the path of its JSON), test
    each variant against its baseline run; return every check's outcome as a :class:`GateResult`.

    - ``min_scores``: ``{"metric": 0.8}`` for every variant checked, ``{"variant": {"metric":
      0.8}}`` for one (it overrides the shared limit). ``use="low"`` holds the lower end of the
      metric's confidence interval to the limit instead of its mean: stricter, it fails when too
      few rows leave the score uncertain.
    - ``max_error_rate`` and ``max_parse_failure_rate``: shares in [0, 1] (errors per row, parse
      failures per reply).
    - ``max_cost``: each variant's total in USD, its calls and their judging; an unknown price
      fails the check, saying so.
    - ``max_latency``: seconds, at ``latency_percentile`` (``"p90"``, or ``"p50"``, ``"p99"``,
      ``"mean"``, ``"max"``) of the calls that reached the model.
    - ``baseline``: rows are matched by id (rows in only one report are listed in the result, not
      compared); each variant is compared with the baseline's variant of the same name on
      ``baseline_metrics`` (every metric by default) with McNemar's exact test for 0/1 scores,
      else the sign-flip permutation test. It fails when the variant is significantly worse
      (``p < alpha``) by more than ``tolerance``, listing the rows that regressed.

    ``variants`` picks the variants checked (all by default). A gate with nothing to check, an
    unknown variant or metric, or a limit out of range raises :class:`~promptkit.EvaluationError`.

    >>> from promptkit import Cell, Row, Score, Trial
    >>> rows = [Row(id=f"r{i}", inputs={"q": i}) for i in range(10)]
    >>> def cell(row, value):
    ...     trial = Trial(epoch=0, status="ok", prediction=value, scores={"exact": Score(value=value)})
    ...     return Cell(variant="v", row_id=row.id, trials=(trial,), scores={"exact": value}, prediction=value)
    >>> report = EvalReport(variants=["v"], metrics=["exact"], rows=rows,
    ...                     cells={"v": [cell(row, float(i < 7)) for i, row in enumerate(rows)]})
    >>> print(check_gate(report, min_scores={"exact": 0.8}))
    evaluation gate failed: 1 of 1 checks failed
      FAIL score: v: exact mean 0.700 is below 0.800 (n=10)
    """
    unknown = set(limits) - set(GateLimits.__annotations__)
    if unknown:
        raise EvaluationError(
            f"unknown gate limit(s) {', '.join(sorted(unknown))}; the limits are"
            f" {', '.join(GateLimits.__annotations__)}"
        )
    checked = tuple(report.variants) if variants is None else tuple(report._variant(v) for v in variants)
    use = limits.get("use", "mean")
    if use not in ("mean", "low"):
        raise EvaluationError(f"use must be 'mean' or 'low', not {use!r}")
    stat = limits.get("latency_percentile", "p90")
    if stat not in ("p50", "p90", "p99", "mean", "max"):
        raise EvaluationError(f"latency_percentile must be one of p50, p90, p99, mean, max; not {stat!r}")
    alpha = _number("alpha", limits.get("alpha", 0.05), high=1.0, positive=True)
    tolerance = _number("tolerance", limits.get("tolerance", 0.0), high=1.0)
    min_scores = limits.get("min_scores")
    score_limits = {} if min_scores is None else _score_limits(min_scores, report, checked)
    max_error_rate = limits.get("max_error_rate")
    max_parse = limits.get("max_parse_failure_rate")
    max_cost = limits.get("max_cost")
    max_latency = limits.get("max_latency")
    error_limit = None if max_error_rate is None else _number("max_error_rate", max_error_rate, high=1.0)
    parse_limit = None if max_parse is None else _number("max_parse_failure_rate", max_parse, high=1.0)
    cost_limit = None if max_cost is None else _number("max_cost", max_cost)
    latency_limit = None if max_latency is None else _number("max_latency", max_latency, positive=True)
    chosen_metrics = limits.get("baseline_metrics")
    metrics = tuple(report.metrics) if chosen_metrics is None else tuple(report._metric(m) for m in chosen_metrics)
    if (
        not score_limits
        and baseline is None
        and all(limit is None for limit in (error_limit, parse_limit, cost_limit, latency_limit))
    ):
        raise EvaluationError(
            "the gate checks nothing: give min_scores, max_error_rate, max_parse_failure_rate, max_cost,"
            " max_latency or a baseline"
        )

    checks: list[GateCheck] = []
    only_old: tuple[str, ...] = ()
    only_new: tuple[str, ...] = ()
    path: str | None = None
    if baseline is not None:
        found, only_old, only_new, path = _baseline_checks(
            report, baseline, checked, metrics, alpha=alpha, tolerance=tolerance
        )
        checks += found
    for (variant, metric), limit in score_limits.items():
        checks.append(_score_check(report, variant, metric, limit, use))
    for variant in checked:
        summary = report.summary(variant)
        if error_limit is not None:
            checks.append(
                _rate_check(
                    "error_rate",
                    variant,
                    "errors",
                    rate=summary.error_rate,
                    limit=error_limit,
                    of=f"{summary.cells} rows",
                )
            )
        if parse_limit is not None:
            checks.append(
                _rate_check(
                    "parse_failure_rate",
                    variant,
                    "parse failures",
                    rate=summary.parse_failure_rate,
                    limit=parse_limit,
                    of=f"{summary.replies} replies",
                )
            )
        if cost_limit is not None:
            checks.append(_cost_check(report, variant, cost_limit))
        if latency_limit is not None:
            checks.append(_latency_check(report, variant, latency_limit, stat))
    return GateResult(
        checks=tuple(checks),
        only_in_baseline=only_old,
        only_in_report=only_new,
        baseline=path,
        report=report,
    )


def assert_gate(
    report: EvalReport,
    *,
    baseline: EvalReport | str | os.PathLike[str] | None = None,
    variants: Sequence[str] | None = None,
    **limits: Unpack[GateLimits],
) -> GateResult:
    """:func:`check_gate`, raising :class:`~promptkit.EvalGateError` (an ``AssertionError``) with
    the verdict when a check fails, so a plain test fails with it; returns the result otherwise.

    >>> from promptkit import Cell, Row, Score, Trial
    >>> rows = [Row(id="r0", inputs={"q": 0})]
    >>> trial = Trial(epoch=0, status="ok", prediction="a", scores={"exact": Score(value=1.0)})
    >>> report = EvalReport(variants=["v"], metrics=["exact"], rows=rows,
    ...                     cells={"v": [Cell(variant="v", row_id="r0", trials=(trial,), scores={"exact": 1.0})]})
    >>> assert_gate(report, min_scores={"exact": 0.5}).passed
    True
    """
    return check_gate(report, baseline=baseline, variants=variants, **limits).raise_if_failed()
