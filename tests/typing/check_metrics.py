"""Type-checked with ``mypy --strict``: the built-in metrics and judges satisfy the Metric protocol."""

from __future__ import annotations

from typing_extensions import assert_type

from promptkit import (
    ChoiceAccuracy,
    ConfusionMatrix,
    Contains,
    ExactMatch,
    FieldMatch,
    JSONValid,
    JudgeCalibration,
    LLMJudge,
    Metric,
    NumericMatch,
    PairwiseJudge,
    PairwiseVerdict,
    RegexMatch,
    Row,
    SchemaValid,
    Score,
    TokenF1,
    as_metric,
    calibrate_judge,
    cohen_kappa,
    confusion_matrix,
)
from promptkit.testing import MockBackend


def check() -> None:
    metrics: list[Metric] = [
        ExactMatch(),
        Contains("x"),
        RegexMatch("x"),
        ChoiceAccuracy(["a", "b"]),
        NumericMatch(abs_tol=0.1),
        JSONValid(),
        SchemaValid(int),
        FieldMatch(["a"]),
        TokenF1(),
        LLMJudge(MockBackend(), "rubric"),
        as_metric(lambda prediction, row: 1.0, name="one"),
    ]
    row = Row(id="r", inputs={}, expected="x")
    assert_type(ExactMatch().score("x", row), Score)
    assert_type(LLMJudge(MockBackend(), "rubric").score("x", row), Score)
    assert_type(PairwiseJudge(MockBackend(), "rubric").compare(row, "a", "b"), PairwiseVerdict)
    assert_type(confusion_matrix(["a"], ["a"]), ConfusionMatrix)
    assert_type(cohen_kappa([1], [1]), float)
    judge = LLMJudge(MockBackend(), "rubric")
    assert_type(calibrate_judge(judge, [("x", row)], [True]), JudgeCalibration)
    assert metrics
