"""What :func:`promptkit.evaluate` returns: every variant's cells on every row, and what they add up to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from .._errors import EvaluationError
from ._types import Cell, Row

__all__ = ["EvalReport"]


class EvalReport:
    """Every variant on every row: ``cells[variant]`` lists that variant's :class:`Cell` per row,
    in dataset order; ``exclusions[variant]`` counts the few-shot examples left out so no row saw
    its own answer.
    """

    __slots__ = (
        "_index",
        "cells",
        "confidence",
        "elapsed",
        "epochs",
        "exclusions",
        "metrics",
        "reducer",
        "rows",
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
        self.exclusions: Mapping[str, int] = MappingProxyType(
            {name: (exclusions or {}).get(name, 0) for name in self.variants}
        )
        self.epochs = epochs
        self.reducer = reducer
        self.confidence = confidence
        self.elapsed = elapsed
        self._index = {row.id: position for position, row in enumerate(self.rows)}

    def cell(self, variant: str, row_id: str) -> Cell:
        """The cell of ``variant`` on the row with id ``row_id``."""
        if variant not in self.cells:
            raise EvaluationError(f"no variant {variant!r}; the report has {', '.join(map(repr, self.variants))}")
        if row_id not in self._index:
            raise EvaluationError(f"no row with id {row_id!r} in the report")
        return self.cells[variant][self._index[row_id]]
