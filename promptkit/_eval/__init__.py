"""Evaluation: datasets, metrics, an LLM judge, ``evaluate``, statistics, the report, CI gates and
fine-tuning export.

The parts: ``_types`` (rows, scores, the metric protocol, trials and cells) and, beside it, one
module per job: ``_dataset`` (:class:`Dataset`, :func:`load_dataset`), ``_evaluate``
(:func:`evaluate`, :func:`aevaluate`, :class:`EvalEstimate`), ``_leakage`` (few-shot examples
that never show the row being evaluated), ``_reduce`` (folding epochs), ``_logged``
(:func:`evaluate_log`), ``_report`` (:class:`EvalReport`) with ``_summary`` (what it adds up to),
``_stats`` (intervals and paired tests), ``_serialize`` (JSON) and ``_render`` (tables, HTML,
pandas, the plot), ``_metrics`` (the built-in metrics, :func:`as_metric`), ``_confusion`` (the
confusion matrix), ``_judge`` (LLM judges), ``_calibration`` (a judge against human labels),
``_agreement`` (Cohen's kappa), ``_gate`` (CI gates over a report: :func:`check_gate`,
:func:`assert_gate`) with ``_gate_run`` (:func:`run_gate`: cached runs and the baseline file) and
``_export`` (fine-tuning data). Only ``_types`` loads with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_attributes as _lazy_attributes
from ._types import NO_EXPECTED, Cell, Metric, Row, Score, Trial, TrialStatus

if TYPE_CHECKING:
    from ._agreement import cohen_kappa
    from ._calibration import JudgeCalibration, calibrate_judge
    from ._confusion import ConfusionMatrix, confusion_matrix
    from ._dataset import Dataset, load_dataset
    from ._evaluate import EvalEstimate, EvalOptions, aevaluate, evaluate
    from ._export import ExportSummary, export_chat, export_preferences
    from ._gate import GateCheck, GateResult, RegressedRow, assert_gate, check_gate
    from ._gate_run import GateRunner, run_gate
    from ._judge import LLMJudge, PairwiseJudge, PairwiseVerdict
    from ._logged import evaluate_log
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
    from ._report import EvalReport
    from ._summary import Comparison, MetricSummary, VariantSummary

_LAZY: dict[str, str] = {
    "ExportSummary": "._export",
    "export_chat": "._export",
    "export_preferences": "._export",
    "ChoiceAccuracy": "._metrics",
    "ConfusionMatrix": "._confusion",
    "Contains": "._metrics",
    "Dataset": "._dataset",
    "EvalEstimate": "._evaluate",
    "EvalOptions": "._evaluate",
    "ExactMatch": "._metrics",
    "FieldMatch": "._metrics",
    "GateCheck": "._gate",
    "GateResult": "._gate",
    "GateRunner": "._gate_run",
    "JSONValid": "._metrics",
    "JudgeCalibration": "._calibration",
    "LLMJudge": "._judge",
    "NumericMatch": "._metrics",
    "PairwiseJudge": "._judge",
    "PairwiseVerdict": "._judge",
    "RegexMatch": "._metrics",
    "RegressedRow": "._gate",
    "SchemaValid": "._metrics",
    "TokenF1": "._metrics",
    "Comparison": "._summary",
    "EvalReport": "._report",
    "MetricSummary": "._summary",
    "VariantSummary": "._summary",
    "aevaluate": "._evaluate",
    "as_metric": "._metrics",
    "assert_gate": "._gate",
    "calibrate_judge": "._calibration",
    "check_gate": "._gate",
    "cohen_kappa": "._agreement",
    "confusion_matrix": "._confusion",
    "evaluate": "._evaluate",
    "evaluate_log": "._logged",
    "load_dataset": "._dataset",
    "run_gate": "._gate_run",
}

__getattr__, __dir__ = _lazy_attributes(__name__, _LAZY, globals())

__all__ = [
    "Cell",
    "ChoiceAccuracy",
    "Comparison",
    "ConfusionMatrix",
    "Contains",
    "Dataset",
    "EvalEstimate",
    "EvalOptions",
    "EvalReport",
    "ExactMatch",
    "ExportSummary",
    "FieldMatch",
    "GateCheck",
    "GateResult",
    "GateRunner",
    "JSONValid",
    "JudgeCalibration",
    "LLMJudge",
    "Metric",
    "MetricSummary",
    "NO_EXPECTED",
    "NumericMatch",
    "PairwiseJudge",
    "PairwiseVerdict",
    "RegexMatch",
    "RegressedRow",
    "Row",
    "SchemaValid",
    "Score",
    "TokenF1",
    "Trial",
    "TrialStatus",
    "VariantSummary",
    "aevaluate",
    "as_metric",
    "assert_gate",
    "calibrate_judge",
    "check_gate",
    "cohen_kappa",
    "confusion_matrix",
    "evaluate",
    "evaluate_log",
    "export_chat",
    "export_preferences",
    "load_dataset",
    "run_gate",
]
