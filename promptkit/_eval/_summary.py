"""What a report adds up to: each variant's metrics with intervals, rates, tokens, cost and latency,
and the paired comparison of two variants on the rows both were scored on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from .._batch._results import Latency
from .._messages import Usage
from ._stats import (
    mcnemar_exact,
    paired_bootstrap,
    paired_permutation,
    percentile_interval,
    resamples_rows,
    wilson_interval,
)

if TYPE_CHECKING:
    from ._report import EvalReport
    from ._stats import FloatArray

__all__ = [
    "Comparison",
    "MetricSummary",
    "VariantSummary",
    "compare_columns",
    "compare_variants",
    "score_column",
    "summarise",
]

IntervalMethod = Literal["wilson", "bootstrap"]
PairedTest = Literal["mcnemar_exact", "sign_flip_permutation"]


def _interval(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSummary:
    """One metric over a variant's scored rows: the ``mean`` and its ``confidence`` interval
    [``low``, ``high``], by ``method`` (``"wilson"`` when every score is 0 or 1, else a percentile
    ``"bootstrap"``), over ``n`` scored cells. With no scored cell the mean and bounds are ``None``.

    >>> MetricSummary(name="exact", mean=0.8, low=0.49, high=0.943, method="wilson", n=10)
    MetricSummary(exact: 0.800 [0.490, 0.943] wilson, n=10)
    """

    name: str
    mean: float | None
    low: float | None
    high: float | None
    method: IntervalMethod
    n: int
    confidence: float = 0.95

    def __str__(self) -> str:
        if self.mean is None:
            return "n/a"
        return f"{self.mean:.3f} {_interval(self.low, self.high)}"

    def __repr__(self) -> str:
        return f"MetricSummary({self.name}: {self} {self.method}, n={self.n})"


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantSummary:
    """A variant over every row: ``metrics`` by name, how its cells ended, what its calls used.

    ``cells`` counts rows; ``scored`` those with a scored trial; ``errors`` those whose every trial
    failed on the provider's or the setup's side (never scored as wrong answers); ``skipped`` those
    the spending cap stopped and ``cancelled`` those left undone. ``replies`` counts the trials that
    got a reply and ``parse_failures`` those whose reply did not parse (scored, the model's fault).
    ``usage``/``cost`` are the variant's own calls (``cost`` is ``None`` when a price is unknown),
    ``judge_usage``/``judge_cost`` what scoring them took (an LLM judge's calls); ``latency`` holds
    percentiles of the trials' times; ``excluded_examples`` the few-shot examples left out so no row
    saw its own answer.
    """

    variant: str
    metrics: Mapping[str, MetricSummary]
    cells: int
    scored: int
    errors: int
    skipped: int
    cancelled: int
    replies: int
    parse_failures: int
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0
    judge_usage: Usage = field(default_factory=Usage)
    judge_cost: float | None = 0.0
    latency: Latency | None = None
    excluded_examples: int = 0

    def __getitem__(self, metric: str) -> MetricSummary:
        return self.metrics[metric]

    def __iter__(self) -> Iterator[MetricSummary]:
        return iter(self.metrics.values())

    @property
    def error_rate(self) -> float:
        """The share of rows with no scored trial because the provider or the setup failed."""
        return self.errors / self.cells if self.cells else 0.0

    @property
    def parse_failure_rate(self) -> float:
        """The share of replies that did not parse."""
        return self.parse_failures / self.replies if self.replies else 0.0

    @property
    def total_cost(self) -> float | None:
        """The variant's calls and their judging together in USD (``None`` when a price is unknown)."""
        if self.cost is None or self.judge_cost is None:
            return None
        return self.cost + self.judge_cost

    def __repr__(self) -> str:
        shown = ", ".join(f"{m.name}={m}" for m in self.metrics.values())
        return f"<VariantSummary {self.variant!r}: {shown}; {self.cells} rows, {self.errors} errors>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Variant ``b`` against variant ``a`` on ``metric``, over the ``n`` rows both were scored on.

    ``improved`` lists the ids of the rows where ``b`` scored higher, ``regressed`` where it scored
    lower, ``ties`` the rest; ``unpaired`` counts the rows left out (an error on either side).
    ``effect`` is the mean of ``b`` minus the mean of ``a`` on those rows, with its ``confidence``
    interval [``low``, ``high``] from a paired bootstrap; ``p_value`` comes from ``test``:
    McNemar's exact test (``"mcnemar_exact"``) when both sides are binary, else a sign-flip
    permutation test (``"sign_flip_permutation"``).
    """

    a: str
    b: str
    metric: str
    n: int
    unpaired: int
    mean_a: float | None
    mean_b: float | None
    improved: tuple[str, ...]
    regressed: tuple[str, ...]
    ties: tuple[str, ...]
    test: PairedTest
    p_value: float
    effect: float
    low: float
    high: float
    confidence: float = 0.95

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the difference is unlikely to be noise: ``p_value < alpha``."""
        return self.p_value < alpha

    @property
    def test_name(self) -> str:
        """The test for a person: ``"McNemar exact"`` or ``"sign-flip permutation"``."""
        return "McNemar exact" if self.test == "mcnemar_exact" else "sign-flip permutation"

    def __str__(self) -> str:
        if not self.n:
            return f"{self.metric}: {self.b} - {self.a}: no row was scored for both, nothing to compare" + (
                f" ({self.unpaired} unpaired)" if self.unpaired else ""
            )
        return (
            f"{self.metric}: {self.b} - {self.a} = {self.effect:+.3f} {_interval(self.low, self.high)}"
            f" ({self.confidence:.0%}), {self.test_name} p={self.p_value:.3g}; {len(self.improved)} improved,"
            f" {len(self.regressed)} regressed, {len(self.ties)} tied of {self.n} paired rows"
            + (f" ({self.unpaired} unpaired)" if self.unpaired else "")
        )

    def __repr__(self) -> str:
        return f"<Comparison {self}>"

    def _repr_html_(self) -> str:
        from ._render import comparison_html

        return comparison_html(self)


def score_column(report: EvalReport, variant: str, metric: str) -> list[float | None]:
    """The reduced scores of ``variant`` on ``metric`` in row order (``None``: not scored)."""
    return [cell.scores.get(metric) for cell in report.cells[variant]]


def _metric_summary(name: str, values: list[float], report: EvalReport, variant: str) -> MetricSummary:
    n = len(values)
    confidence = report.confidence
    if n == 0:
        return MetricSummary(name=name, mean=None, low=None, high=None, method="wilson", n=0, confidence=confidence)
    successes = values.count(1.0)
    if successes + values.count(0.0) == n:  # binary: a share of successes
        low, high = wilson_interval(successes, n, confidence)
        return MetricSummary(
            name=name, mean=successes / n, low=low, high=high, method="wilson", n=n, confidence=confidence
        )
    low, high = percentile_interval(report._means(variant, name), confidence)
    return MetricSummary(
        name=name, mean=sum(values) / n, low=low, high=high, method="bootstrap", n=n, confidence=confidence
    )


def summarise(report: EvalReport, variant: str) -> VariantSummary:
    """Add up one variant's cells in a single pass."""
    metrics = report.metrics
    values: dict[str, list[float]] = {name: [] for name in metrics}
    statuses = dict.fromkeys(("ok", "parse_error", "error", "skipped", "cancelled"), 0)
    tokens = [0, 0, 0, 0, 0]
    judge = [0, 0, 0, 0, 0]
    cost: float | None = 0.0
    judge_cost: float | None = 0.0
    seconds: list[float] = []
    replies = parse_failures = 0
    for cell in report.cells[variant]:
        statuses[cell.status] += 1
        scores = cell.scores
        for name in metrics:
            value = scores.get(name)
            if value is not None:
                values[name].append(value)
        for trial in cell.trials:
            status = trial.status
            if status == "ok":
                replies += 1
            elif status == "parse_error":
                replies += 1
                parse_failures += 1
            _count(tokens, trial.usage)
            if cost is not None:
                cost = None if trial.cost is None else cost + trial.cost
            if trial.seconds is not None:
                seconds.append(trial.seconds)
            for score in trial.scores.values():
                _count(judge, score.usage)
                if judge_cost is not None:
                    judge_cost = None if score.cost is None else judge_cost + score.cost
    cells = len(report.cells[variant])
    return VariantSummary(
        variant=variant,
        metrics=MappingProxyType({name: _metric_summary(name, values[name], report, variant) for name in metrics}),
        cells=cells,
        scored=statuses["ok"] + statuses["parse_error"],
        errors=statuses["error"],
        skipped=statuses["skipped"],
        cancelled=statuses["cancelled"],
        replies=replies,
        parse_failures=parse_failures,
        usage=_usage(tokens),
        cost=cost,
        judge_usage=_usage(judge),
        judge_cost=judge_cost,
        latency=Latency.of(seconds),
        excluded_examples=report.exclusions[variant],
    )


def _count(counts: list[int], usage: Usage) -> None:
    """Add ``usage`` to the running token counts, in :func:`_usage`'s order (no Usage built per trial)."""
    counts[0] += usage.input_tokens
    counts[1] += usage.output_tokens
    counts[2] += usage.cached_input_tokens
    counts[3] += usage.cache_write_tokens
    counts[4] += usage.reasoning_tokens


def _usage(counts: list[int]) -> Usage:
    return Usage(
        input_tokens=counts[0],
        output_tokens=counts[1],
        cached_input_tokens=counts[2],
        cache_write_tokens=counts[3],
        reasoning_tokens=counts[4],
    )


def compare_variants(report: EvalReport, a: str, b: str, metric: str) -> Comparison:
    """Pair the rows both variants were scored on and test the difference."""

    def shared() -> FloatArray:
        # The summaries resampled rows with one set of draws for every variant: the differences
        # of their resampled means are the paired bootstrap of the differences, already drawn.
        means: FloatArray = report._means(b, metric) - report._means(a, metric)
        return means

    return compare_columns(
        [row.id for row in report.rows],
        report._column(a, metric),
        report._column(b, metric),
        a=a,
        b=b,
        metric=metric,
        confidence=report.confidence,
        resamples=report.resamples,
        seed=report.seed,
        shared_means=shared,
    )


def compare_columns(
    row_ids: Sequence[str],
    first: Sequence[float | None],
    second: Sequence[float | None],
    *,
    a: str,
    b: str,
    metric: str,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    shared_means: Callable[[], FloatArray] | None = None,
) -> Comparison:
    """``second`` against ``first``: two columns of scores aligned on ``row_ids`` (``None``: not
    scored), paired on the rows scored in both and tested as :meth:`EvalReport.compare` does.

    ``a`` and ``b`` label the columns. ``shared_means``, when given, returns the resampled means of
    ``b`` minus those of ``a`` drawn with shared row draws; it is used when every row is paired
    and both columns resample rows, so a report's comparison reuses its summaries' draws.

    >>> c = compare_columns(["r1", "r2", "r3"], [1.0, 1.0, None], [0.0, 1.0, 1.0], a="old", b="new", metric="exact")
    >>> c.regressed, c.ties, c.unpaired
    (('r1',), ('r2',), 1)
    """
    xs: list[float] = []
    ys: list[float] = []
    improved: list[str] = []
    regressed: list[str] = []
    ties: list[str] = []
    for row_id, x, y in zip(row_ids, first, second, strict=True):
        if x is None or y is None:
            continue
        xs.append(x)
        ys.append(y)
        if y > x:
            improved.append(row_id)
        elif y < x:
            regressed.append(row_id)
        else:
            ties.append(row_id)
    n = len(xs)
    if (
        shared_means is not None
        and n == len(row_ids)
        and all(resamples_rows(v) for v in (xs, ys, [y - x for x, y in zip(xs, ys, strict=True)]))
    ):
        effect = (sum(ys) - sum(xs)) / n
        low, high = percentile_interval(shared_means(), confidence)
    else:
        effect, low, high, _ = paired_bootstrap(xs, ys, confidence, resamples, seed)
    if all(column.count(1.0) + column.count(0.0) == n for column in (xs, ys)):  # both binary
        test: PairedTest = "mcnemar_exact"
        p_value = mcnemar_exact(len(improved), len(regressed))
    else:
        test = "sign_flip_permutation"
        p_value = paired_permutation(xs, ys, resamples, seed)
    return Comparison(
        a=a,
        b=b,
        metric=metric,
        n=n,
        unpaired=len(row_ids) - n,
        mean_a=sum(xs) / n if n else None,
        mean_b=sum(ys) / n if n else None,
        improved=tuple(improved),
        regressed=tuple(regressed),
        ties=tuple(ties),
        test=test,
        p_value=p_value,
        effect=effect,
        low=low,
        high=high,
        confidence=confidence,
    )
