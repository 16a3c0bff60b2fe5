"""Evaluation: datasets, metrics, an LLM judge, ``evaluate``, statistics, the report, CI gates and
fine-tuning export.

The parts: ``_types`` (rows, scores, the metric protocol, trials and cells) and, beside it, one
module per job.
"""

from __future__ import annotations

from ._report import EvalReport
from ._summary import Comparison, MetricSummary, VariantSummary
from ._types import NO_EXPECTED, Cell, Metric, Row, Score, Trial, TrialStatus

__all__ = [
    "NO_EXPECTED",
    "Cell",
    "Comparison",
    "EvalReport",
    "Metric",
    "MetricSummary",
    "Row",
    "Score",
    "Trial",
    "TrialStatus",
    "VariantSummary",
]
