"""What :func:`promptkit.evaluate` returns: every variant's cells on every row, and what they add up to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._errors import EvaluationError
from ._summary import Comparison, VariantSummary, compare_variants, score_column, summarise
from ._types import Cell, Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ._confusion import ConfusionMatrix

__all__ = ["EvalReport"]


class EvalReport:
    """Every variant on every row: ``cells[variant]`` lists that variant's :class:`Cell` per row,
    in dataset order; ``exclusions[variant]`` counts the few-shot examples left out so no row saw
    its own answer.

    :meth:`summary` adds a variant up (each metric's mean with a ``confidence`` interval, rates,
    tokens, cost, latency); :meth:`compare` tests two variants on the same rows; the report prints
    as a table, shows as HTML in a notebook, exports to pandas and JSON and plots score against cost.
    Bootstrap intervals and permutation tests draw ``resamples`` seeded resamples, so the same
    report always gives the same numbers.

    >>> from promptkit import Cell, Row, Score, Trial
    >>> rows = [Row(id=f"r{i}", inputs={"q": i}) for i in range(4)]
    >>> def cell(name, row, value):
    ...     trial = Trial(epoch=0, status="ok", prediction=value, scores={"exact": Score(value=value)})
    ...     return Cell(variant=name, row_id=row.id, trials=(trial,), scores={"exact": value}, prediction=value)
    >>> report = EvalReport(variants=["a"], metrics=["exact"], rows=rows,
    ...                     cells={"a": [cell("a", row, float(i % 2)) for i, row in enumerate(rows)]})
    >>> report.summary("a")["exact"]
    MetricSummary(exact: 0.500 [0.150, 0.850] wilson, n=4)
    """

    __slots__ = (
        "_columns",
        "_comparisons",
        "_index",
        "_resampled",
        "_summaries",
        "cells",
        "confidence",
        "elapsed",
        "epochs",
        "exclusions",
        "metrics",
        "reducer",
        "resamples",
        "rows",
        "seed",
        "variants",
    )

    def __init__(
        self,
        *,
        variants: Sequence[str],
        metrics: Sequence[str],
        rows: Sequence[Row],
        cells: Mapping[str, Sequence[Cell]],
        exclusions: Mapping[str, int] | None = None,
        epochs: int = 1,
        reducer: str = "mean",
        confidence: float = 0.95,
        elapsed: float = 0.0,
        resamples: int = 2000,
        seed: int = 0,
    ) -> None:
        self.variants: tuple[str, ...] = tuple(variants)
        self.metrics: tuple[str, ...] = tuple(metrics)
        self.rows: tuple[Row, ...] = tuple(rows)
        missing = [name for name in self.variants if name not in cells]
        if missing:
            raise EvaluationError(f"no cells for variant(s) {', '.join(map(repr, missing))}")
        self.cells: Mapping[str, tuple[Cell, ...]] = MappingProxyType(
            {name: tuple(cells[name]) for name in self.variants}
        )
        for name, column in self.cells.items():
            if len(column) != len(self.rows):
                raise EvaluationError(f"variant {name!r} has {len(column)} cells for {len(self.rows)} rows")
        if not 0.0 < confidence < 1.0:
            raise EvaluationError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
        if resamples < 1:
            raise EvaluationError(f"resamples must be at least 1, got {resamples!r}")
        self.exclusions: Mapping[str, int] = MappingProxyType(
            {name: (exclusions or {}).get(name, 0) for name in self.variants}
        )
        self.epochs = epochs
        self.reducer = reducer
        self.confidence = confidence
        self.elapsed = elapsed
        self.resamples = resamples
        self.seed = seed
        self._index = {row.id: position for position, row in enumerate(self.rows)}
        self._summaries: dict[str, VariantSummary] = {}
        self._columns: dict[tuple[str, str], list[float | None]] = {}
        self._comparisons: dict[tuple[str, str, str], Comparison] = {}
        self._resampled: dict[tuple[str, str], Any] = {}

    # -- lookups ------------------------------------------------------------------------------

    def _variant(self, variant: str) -> str:
        if variant not in self.cells:
            raise EvaluationError(f"no variant {variant!r}; the report has {', '.join(map(repr, self.variants))}")
        return variant

    def _metric(self, metric: str | None) -> str:
        if metric is None:
            if not self.metrics:
                raise EvaluationError("the report has no metrics")
            return self.metrics[0]
        if metric not in self.metrics:
            raise EvaluationError(f"no metric {metric!r}; the report has {', '.join(map(repr, self.metrics))}")
        return metric

    def cell(self, variant: str, row_id: str) -> Cell:
        """The cell of ``variant`` on the row with id ``row_id``."""
        self._variant(variant)
        if row_id not in self._index:
            raise EvaluationError(f"no row with id {row_id!r} in the report")
        return self.cells[variant][self._index[row_id]]

    def row(self, row_id: str) -> dict[str, Cell]:
        """One row across the variants: ``{variant: cell}``, each with its prediction and scores."""
        return {variant: self.cell(variant, row_id) for variant in self.variants}

    def _column(self, variant: str, metric: str) -> list[float | None]:
        key = (variant, metric)
        column = self._columns.get(key)
        if column is None:
            column = self._columns[key] = score_column(self, variant, metric)
        return column

    def _means(self, variant: str, metric: str) -> Any:
        """The bootstrap means of ``variant``'s scored values of ``metric`` (a numpy array), drawn
        for every variant at once so that columns resampling rows share their draws."""
        key = (variant, metric)
        if key not in self._resampled:
            from ._stats import bootstrap_means

            pending = [name for name in self.variants if (name, metric) not in self._resampled]
            values = [[x for x in self._column(name, metric) if x is not None] for name in pending]
            for name, means in zip(pending, bootstrap_means(values, self.resamples, self.seed), strict=True):
                self._resampled[(name, metric)] = means
        return self._resampled[key]

    # -- what it adds up to -------------------------------------------------------------------

    def summary(self, variant: str) -> VariantSummary:
        """``variant`` added up: each metric's mean and interval, rates, tokens, cost, latency."""
        summary = self._summaries.get(self._variant(variant))
        if summary is None:
            summary = self._summaries[variant] = summarise(self, variant)
        return summary

    @property
    def summaries(self) -> dict[str, VariantSummary]:
        """Every variant's :meth:`summary`, in the report's order."""
        return {variant: self.summary(variant) for variant in self.variants}

    def compare(self, a: str, b: str, *, metric: str | None = None) -> Comparison:
        """Variant ``b`` against ``a`` on ``metric`` (the first metric by default), row by row.

        Only rows scored for both count. Binary scores get McNemar's exact test, others a
        sign-flip permutation test; the effect (``b``'s mean minus ``a``'s) gets a paired bootstrap
        interval. ``improved`` lists the rows where ``b`` did better, ``regressed`` where worse.
        """
        key = (self._variant(a), self._variant(b), self._metric(metric))
        comparison = self._comparisons.get(key)
        if comparison is None:
            comparison = self._comparisons[key] = compare_variants(self, *key)
        return comparison

    # -- for people ---------------------------------------------------------------------------

    def table(self) -> str:
        """The variants as a plain-text table: each metric's mean [low, high] and method, parse
        failures, errors, tokens, cost and median latency."""
        from ._render import summary_table

        return summary_table(self)

    def rows_table(
        self, row_ids: Sequence[str] | None = None, *, metrics: Sequence[str] | None = None, width: int = 30
    ) -> str:
        """The rows as a plain-text table, each variant's prediction (cut to ``width``) beside its
        scores; ``row_ids`` picks rows (a comparison's ``regressed``, say), ``metrics`` the scores."""
        from ._render import rows_table

        for row_id in row_ids or ():
            if row_id not in self._index:
                raise EvaluationError(f"no row with id {row_id!r} in the report")
        chosen = self.metrics if metrics is None else tuple(self._metric(m) for m in metrics)
        return rows_table(self, row_ids, chosen, width)

    def confusion_matrix(self, variant: str, *, labels: Sequence[Any] | None = None) -> ConfusionMatrix:
        """Which labels ``variant`` predicted for which expected ones, over the rows it answered
        (rows with an error or without an expected output are left out; other labels are counted).

        >>> from promptkit import Prompt, evaluate
        >>> from promptkit.testing import MockBackend
        >>> rows = [{"t": "a", "expected": "spam"}, {"t": "b", "expected": "ham"}]
        >>> report = evaluate(Prompt("{{ t }}", MockBackend(["spam", "spam"])), rows,
        ...                   {"same": lambda p, r: p == r.expected}, progress=False)
        >>> report.confusion_matrix("prompt").count("ham", "spam")
        1
        """
        from ._confusion import confusion_matrix

        column = self.cells[self._variant(variant)]
        pairs = [
            (cell.prediction, row.expected)
            for row, cell in zip(self.rows, column, strict=True)
            if row.has_expected and cell.status == "ok"
        ]
        return confusion_matrix([p for p, _ in pairs], [e for _, e in pairs], labels)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        metrics = ", ".join(self.metrics) or "none"
        return f"<EvalReport {len(self.variants)} variants x {len(self.rows)} rows; metrics: {metrics}>"

    def _repr_html_(self) -> str:
        from ._render import report_html

        return report_html(self)

    def plot(self, metric: str | None = None, ax: Axes | None = None) -> Axes:
        """Each variant's mean of ``metric`` against its cost, the interval as error bars (tokens
        stand in for cost when a price is unknown). Needs matplotlib (``promptkit[plot]``); draws on
        ``ax`` or a new figure and returns the axes."""
        from ._render import plot

        return plot(self, self._metric(metric), ax)

    # -- export -------------------------------------------------------------------------------

    def to_pandas(self) -> Any:
        """A pandas DataFrame with one line per (row, variant): ``row_id``, ``variant``, the inputs
        as ``input.<name>``, ``expected``, ``prediction``, ``status``, one column per metric (named
        ``score.<metric>`` where the name is taken), ``input_tokens``, ``output_tokens``, ``cost``,
        ``seconds`` and ``error``. Needs pandas (``promptkit[pandas]``)."""
        from ._render import to_pandas

        return to_pandas(self)

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 1) -> str:
        """The whole report as JSON (rows, cells, trials without their live results, scores with
        their detail and cost, exclusions, settings), written to ``path`` too when given.
        :meth:`from_json` and :meth:`load` read it back, as a baseline to compare against."""
        from ._serialize import dumps

        text = dumps(self, indent=indent)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, text: str) -> EvalReport:
        """A report from :meth:`to_json`'s text (predictions come back as plain JSON values)."""
        from ._serialize import loads

        return cls(**loads(text))

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        """A report from a file :meth:`to_json` wrote."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise EvaluationError(f"cannot read the evaluation report {str(path)!r}: {exc}") from exc
        return cls.from_json(text)
