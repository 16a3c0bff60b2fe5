"""Evaluation: datasets, metrics, an LLM judge, ``evaluate``, statistics, the report, CI gates and
fine-tuning export.

The parts: ``_types`` (rows, scores, the metric protocol, trials and cells) and, beside it, one
module per job: ``_dataset`` (:class:`Dataset`, :func:`load_dataset`), ``_evaluate``
(:func:`evaluate`, :func:`aevaluate`, :class:`EvalEstimate`), ``_leakage`` (few-shot examples
that never show the row being evaluated), ``_reduce`` (folding epochs), ``_logged``
(:func:`evaluate_log`), ``_report`` (:class:`EvalReport`) with ``_summary`` (what it adds up to),
``_stats`` (intervals and paired tests), ``_serialize`` (JSON) and ``_render`` (tables, HTML,
pandas, the plot). Only ``_types`` loads with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_attributes as _lazy_attributes
from ._types import NO_EXPECTED, Cell, Metric, Row, Score, Trial, TrialStatus

if TYPE_CHECKING:
    from ._dataset import Dataset, load_dataset
    from ._evaluate import EvalEstimate, aevaluate, evaluate
    from ._logged import evaluate_log
    from ._report import EvalReport
    from ._summary import Comparison, MetricSummary, VariantSummary

_LAZY: dict[str, str] = {
    "Comparison": "._summary",
    "Dataset": "._dataset",
    "EvalEstimate": "._evaluate",
    "EvalReport": "._report",
    "MetricSummary": "._summary",
    "VariantSummary": "._summary",
    "aevaluate": "._evaluate",
    "evaluate": "._evaluate",
    "evaluate_log": "._logged",
    "load_dataset": "._dataset",
}

__getattr__, __dir__ = _lazy_attributes(__name__, _LAZY, globals())

__all__ = [
    "NO_EXPECTED",
    "Cell",
    "Comparison",
    "Dataset",
    "EvalEstimate",
    "EvalReport",
    "Metric",
    "MetricSummary",
    "Row",
    "Score",
    "Trial",
    "TrialStatus",
    "VariantSummary",
    "aevaluate",
    "evaluate",
    "evaluate_log",
    "load_dataset",
]
