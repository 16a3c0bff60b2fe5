"""Evaluation: datasets, metrics, an LLM judge, ``evaluate``, statistics, the report, CI gates and
fine-tuning export.

The parts: ``_types`` (rows, scores, the metric protocol, trials and cells) and, beside it, one
module per job: ``_metrics`` (built-in metrics), ``_confusion`` (the confusion matrix),
``_judge`` (LLM judges), ``_calibration`` (a judge against human labels), ``_agreement``
(Cohen's kappa).
"""

from __future__ import annotations

from ._agreement import cohen_kappa
from ._calibration import JudgeCalibration, calibrate_judge
from ._confusion import ConfusionMatrix, confusion_matrix
from ._judge import LLMJudge, PairwiseJudge, PairwiseVerdict
from ._metrics import (
    ChoiceAccuracy,
    Contains,
    ExactMatch,
    FieldMatch,
    JSONValid,
    NumericMatch,
    RegexMatch,
    SchemaValid,
    TokenF1,
    as_metric,
)
from ._types import NO_EXPECTED, Cell, Metric, Row, Score, Trial, TrialStatus

__all__ = [
    "NO_EXPECTED",
    "Cell",
    "ChoiceAccuracy",
    "ConfusionMatrix",
    "Contains",
    "ExactMatch",
    "FieldMatch",
    "JSONValid",
    "JudgeCalibration",
    "LLMJudge",
    "Metric",
    "NumericMatch",
    "PairwiseJudge",
    "PairwiseVerdict",
    "RegexMatch",
    "Row",
    "SchemaValid",
    "Score",
    "TokenF1",
    "Trial",
    "TrialStatus",
    "as_metric",
    "calibrate_judge",
    "cohen_kappa",
    "confusion_matrix",
]
