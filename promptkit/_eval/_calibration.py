"""How far an LLM judge can be trusted: its verdicts against humans' on the same answers, and,
on request, whether its verdict follows the order the answers are shown in (position bias).
"""

from __future__ import annotations

import html
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import EvaluationError
from .._messages import Usage
from ._agreement import cohen_kappa, rate
from ._confusion import ConfusionMatrix, confusion_matrix, label_key
from ._judge import LLMJudge, PairwiseJudge
from ._types import Row

__all__ = ["JudgeCalibration", "calibrate_judge"]

_FLIP = {"A": "B", "B": "A", "tie": "tie"}
_WINNERS: dict[Hashable, str] = {"a": "A", "b": "B", "tie": "tie"}


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeCalibration:
    """A judge's verdicts compared with humans' labels on ``n`` rows.

    ``agreement`` is the share of rows where judge and human agree and ``kappa`` Cohen's kappa
    (agreement beyond chance). For a pointwise judge ``true_positive_rate`` is the share of the
    answers humans passed that the judge passed too, ``false_positive_rate`` the share of those
    humans failed that the judge passed, with the counts ``tp``, ``fp``, ``tn``, ``fn`` (``None``
    for a pairwise judge, whose verdicts are A, B or tie). ``confusion`` counts human labels
    (rows) against the judge's (columns); ``disagreements`` names the rows they differ on.

    With ``swap=True`` each row was judged again with the answers' order swapped:
    ``position_flips`` counts the rows whose verdict did not survive the swap, ``position_bias``
    is their share of the rows swapped (``swapped_n``) and ``flipped_rows`` names them; all
    ``None`` (and empty) without a swap. ``usage`` and ``cost`` add up every judge call.
    """

    judge: str
    n: int
    agreement: float
    kappa: float
    true_positive_rate: float | None
    false_positive_rate: float | None
    tp: int | None
    fp: int | None
    tn: int | None
    fn: int | None
    confusion: ConfusionMatrix = field(repr=False)
    row_ids: tuple[str, ...] = field(repr=False)
    human_labels: tuple[Any, ...] = field(repr=False)
    judge_labels: tuple[Any, ...] = field(repr=False)
    disagreements: tuple[str, ...] = field(repr=False)
    swapped_labels: tuple[Any, ...] | None = field(default=None, repr=False)
    swapped_n: int | None = None
    position_flips: int | None = None
    position_bias: float | None = None
    flipped_rows: tuple[str, ...] = field(default=(), repr=False)
    usage: Usage = field(default_factory=Usage, repr=False)
    cost: float | None = field(default=0.0, repr=False)

    def _lines(self) -> list[str]:
        lines = [
            f"judge {self.judge!r} on {self.n} rows: agreement {self.agreement:.3f}, Cohen's kappa {self.kappa:.3f}"
        ]
        if self.tp is not None:
            lines.append(
                f"true positive rate {_rate(self.true_positive_rate)}, false positive rate "
                f"{_rate(self.false_positive_rate)} (tp={self.tp} fp={self.fp} tn={self.tn} fn={self.fn})"
            )
        if self.position_flips is not None:
            lines.append(
                f"position bias {_rate(self.position_bias)}: {self.position_flips} of {self.swapped_n} verdicts "
                f"changed when the order was swapped" + (f" ({_ids(self.flipped_rows)})" if self.flipped_rows else "")
            )
        if self.disagreements:
            lines.append(f"disagrees with the humans on {len(self.disagreements)}: {_ids(self.disagreements)}")
        spent = ", cost unknown" if self.cost is None else f", ${self.cost:.4g}"
        lines.append(f"judge calls: tokens in={self.usage.input_tokens} out={self.usage.output_tokens}{spent}")
        return lines

    def __str__(self) -> str:
        return "\n".join([*self._lines(), "human (rows) against judge (columns):", str(self.confusion)])

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        return (
            f"<div><ul>{items}</ul><details><summary>human (rows) against judge (columns)</summary>"
            f"{self.confusion._repr_html_()}</details></div>"
        )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ids(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _items(judge: Any, rows: Iterable[Any], predictions: Sequence[Any] | Mapping[str, Any] | None) -> list[Any]:
    """(answer or (answer_a, answer_b), row) for every row."""
    pairwise = isinstance(judge, PairwiseJudge)
    items: list[Any] = []
    given = list(rows)
    if predictions is not None and isinstance(predictions, Sequence) and len(predictions) != len(given):
        raise EvaluationError(f"calibrate_judge() got {len(predictions)} predictions for {len(given)} rows")
    for position, item in enumerate(given):
        if predictions is not None:
            if not isinstance(item, Row):
                raise EvaluationError(f"with predictions=, rows must be Row objects; item {position} is {item!r}")
            if isinstance(predictions, Mapping):
                if item.id not in predictions:
                    raise EvaluationError(f"predictions has nothing for row {item.id!r}")
                answer = predictions[item.id]
            else:
                answer = predictions[position]
            items.append((answer, item))
        elif isinstance(item, tuple) and len(item) == (3 if pairwise else 2) and isinstance(item[-1], Row):
            items.append(((item[0], item[1]) if pairwise else item[0], item[-1]))
        else:
            shape = "(answer_a, answer_b, row)" if pairwise else "(prediction, row)"
            raise EvaluationError(
                f"calibrate_judge() needs {shape} items, or rows with predictions=; item {position} is {item!r}"
            )
        if pairwise and not (isinstance(items[-1][0], tuple) and len(items[-1][0]) == 2):
            raise EvaluationError(f"a pairwise judge needs two answers per row; row {items[-1][1].id!r} has {answer!r}")
    ids = [row.id for _, row in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise EvaluationError(f"calibration rows need distinct ids; repeated: {', '.join(duplicates)}")
    if not items:
        raise EvaluationError("calibrate_judge() needs at least one row")
    return items


def _humans(labels: Sequence[Any] | Mapping[str, Any], ids: list[str]) -> list[Any]:
    if isinstance(labels, Mapping):
        missing = [i for i in ids if i not in labels]
        extra = sorted(set(labels) - set(ids))
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"no label for row(s) {', '.join(missing)}")
            if extra:
                problems.append(f"labels for unknown row(s) {', '.join(map(str, extra))}")
            raise EvaluationError("; ".join(problems))
        return [labels[i] for i in ids]
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise EvaluationError("labels must be a sequence aligned with the rows, or a mapping of row id to label")
    if len(labels) != len(ids):
        raise EvaluationError(f"calibrate_judge() got {len(labels)} labels for {len(ids)} rows")
    return list(labels)


def _pointwise_humans(judge: LLMJudge, humans: list[Any], ids: list[str]) -> tuple[list[Any], bool]:
    """The humans' labels in the judge's terms, and whether they are pass/fail (else scale labels)."""
    if all(isinstance(h, bool) for h in humans):
        return ["pass" if h else "fail" for h in humans], True
    out: list[Any] = []
    for row_id, human in zip(ids, humans, strict=True):
        point = None if isinstance(human, bool) else judge.point(human)
        if point is None:
            raise EvaluationError(
                f"the human label {human!r} of row {row_id!r} is neither True/False nor on the judge's scale "
                f"{list(judge.scale)!r} (and labels must not mix the two)"
            )
        out.append(point[0])
    return out, False


def _add(total: float | None, cost: float | None) -> float | None:
    return None if total is None or cost is None else total + cost


def calibrate_judge(
    judge: LLMJudge | PairwiseJudge,
    rows: Iterable[Any],
    labels: Sequence[Any] | Mapping[str, Any],
    *,
    predictions: Sequence[Any] | Mapping[str, Any] | None = None,
    swap: bool = False,
    threshold: float = 0.5,
) -> JudgeCalibration:
    """Judge answers humans have labelled and report how well the judge agrees with them.

    ``rows`` are ``(prediction, row)`` pairs (for a :class:`PairwiseJudge`, ``(answer_a,
    answer_b, row)``), or :class:`Row` objects with ``predictions`` (aligned, or a mapping of row
    id to answer). ``labels`` are the humans' verdicts, aligned with the rows or by row id: for an
    :class:`LLMJudge` ``True``/``False`` (pass/fail; the judge passes an answer when its score is
    at least ``threshold``) or points of its scale (compared point for point; pass/fail rates still
    use ``threshold``); for a pairwise judge ``"A"``, ``"B"`` or ``"tie"``.

    ``swap=True`` judges every row again with the order swapped: the reference and the answer in
    a pointwise judge's prompt (rows without a reference are not swapped), A and B for a pairwise
    judge. A verdict that changes (a pairwise one that does not follow the answers) is a position
    flip. Judge calls run one after the other; a calibration set is small.

    >>> from promptkit.testing import MockBackend
    >>> replies = ['{"verdict": "pass"}', '{"verdict": "fail"}', '{"verdict": "pass"}']
    >>> judge = LLMJudge(MockBackend(replies), "Correct?")
    >>> rows = [("4", Row(id="a", inputs={"q": "2+2"})), ("5", Row(id="b", inputs={"q": "2+2"})),
    ...         ("22", Row(id="c", inputs={"q": "2+2"}))]
    >>> report = calibrate_judge(judge, rows, [True, False, False])
    >>> report.agreement, report.false_positive_rate, report.disagreements
    (0.6666666666666666, 0.5, ('c',))
    """
    if not isinstance(judge, (LLMJudge, PairwiseJudge)):
        raise EvaluationError(f"calibrate_judge() takes an LLMJudge or a PairwiseJudge, not {type(judge).__name__}")
    if not isinstance(swap, bool):
        raise EvaluationError(f"swap must be True or False, not {swap!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise EvaluationError(f"threshold must be a number in (0, 1], not {threshold!r}")
    items = _items(judge, rows, predictions)
    ids = [row.id for _, row in items]
    humans = _humans(labels, ids)
    if isinstance(judge, PairwiseJudge):
        return _report(judge, ids, binary=False, threshold=threshold, **_pairwise(judge, items, humans, swap))
    if swap and (not judge.include_reference or "answer_first" not in judge.prompt.input_variables):
        raise EvaluationError(
            f"judge {judge.name!r} shows no reference beside the answer (or its prompt ignores answer_first); "
            "there is no order to swap"
        )
    human_labels, binary = _pointwise_humans(judge, humans, ids)
    found = _pointwise(judge, items, human_labels, swap=swap, binary=binary, threshold=threshold)
    return _report(judge, ids, binary=binary, threshold=threshold, **found)


class _Tally:
    """The judge's verdicts as they come, and what its calls used."""

    def __init__(self, humans: list[Any]) -> None:
        self.humans = humans
        self.judged: list[Any] = []
        self.swapped: list[Any] = []
        self.flipped: list[str] = []
        self.swapped_n = 0
        self.usage = Usage()
        self.cost: float | None = 0.0

    def spent(self, usage: Usage, cost: float | None) -> None:
        self.usage = self.usage + usage
        self.cost = None if self.cost is None or cost is None else self.cost + cost

    def result(self, swap: bool) -> dict[str, Any]:
        return {
            "humans": self.humans,
            "judged": self.judged,
            "swapped": self.swapped if swap else None,
            "swapped_n": self.swapped_n,
            "flipped": self.flipped,
            "usage": self.usage,
            "cost": self.cost,
        }


def _pairwise(judge: PairwiseJudge, items: list[Any], humans: list[Any], swap: bool) -> dict[str, Any]:
    human_labels: list[Any] = []
    for (_, row), human in zip(items, humans, strict=True):
        winner = _WINNERS.get(label_key(human)) if isinstance(human, str) else None
        if winner is None:
            raise EvaluationError(f"the human label {human!r} of row {row.id!r} is not 'A', 'B' or 'tie'")
        human_labels.append(winner)
    tally = _Tally(human_labels)
    for (answer_a, answer_b), row in items:
        verdict = judge.compare(row, answer_a, answer_b)
        tally.spent(verdict.usage, verdict.cost)
        tally.judged.append(verdict.winner)
        if swap:
            again = judge.compare(row, answer_b, answer_a)
            tally.spent(again.usage, again.cost)
            tally.swapped.append(_FLIP[again.winner])
            tally.swapped_n += 1
            if _FLIP[again.winner] != verdict.winner:
                tally.flipped.append(row.id)
    return tally.result(swap)


def _pointwise(
    judge: LLMJudge, items: list[Any], humans: list[Any], *, swap: bool, binary: bool, threshold: float
) -> dict[str, Any]:
    def verdict(label: Any, value: float) -> Any:
        return ("pass" if value >= threshold else "fail") if binary else label

    tally = _Tally(humans)
    for prediction, row in items:
        label, score = judge.judge(prediction, row)
        tally.spent(score.usage, score.cost)
        tally.judged.append(verdict(label, score.value))
        if swap and row.has_expected:
            label_again, score_again = judge.judge(prediction, row, answer_first=True)
            tally.spent(score_again.usage, score_again.cost)
            tally.swapped.append(verdict(label_again, score_again.value))
            tally.swapped_n += 1
            if tally.swapped[-1] != tally.judged[-1]:
                tally.flipped.append(row.id)
        elif swap:
            tally.swapped.append(None)
    return tally.result(swap)


def _report(
    judge: LLMJudge | PairwiseJudge,
    ids: list[str],
    *,
    humans: list[Any],
    judged: list[Any],
    swapped: list[Any] | None,
    swapped_n: int,
    flipped: list[str],
    binary: bool,
    threshold: float,
    usage: Usage,
    cost: float | None,
) -> JudgeCalibration:
    n = len(ids)
    agree = sum(1 for h, j in zip(humans, judged, strict=True) if h == j)
    if isinstance(judge, PairwiseJudge):
        order: list[Hashable] = ["A", "B", "tie"]
        tp = fp = tn = fn = None
        tpr = fpr = None
    else:
        order = ["fail", "pass"] if binary else list(judge.scale)

        def passes(label: Any) -> bool:
            if binary:
                return bool(label == "pass")
            point = judge.point(label)
            return point is not None and point[1] >= threshold

        human_pass = [passes(h) for h in humans]
        judge_pass = [passes(j) for j in judged]
        tp = sum(1 for h, j in zip(human_pass, judge_pass, strict=True) if h and j)
        fp = sum(1 for h, j in zip(human_pass, judge_pass, strict=True) if not h and j)
        tn = sum(1 for h, j in zip(human_pass, judge_pass, strict=True) if not h and not j)
        fn = sum(1 for h, j in zip(human_pass, judge_pass, strict=True) if h and not j)
        tpr, fpr = rate(tp, tp + fn), rate(fp, fp + tn)
    return JudgeCalibration(
        judge=judge.name,
        n=n,
        agreement=agree / n,
        kappa=cohen_kappa(humans, judged),
        true_positive_rate=tpr,
        false_positive_rate=fpr,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        confusion=confusion_matrix(judged, humans, order),
        row_ids=tuple(ids),
        human_labels=tuple(humans),
        judge_labels=tuple(judged),
        disagreements=tuple(i for i, h, j in zip(ids, humans, judged, strict=True) if h != j),
        swapped_labels=None if swapped is None else tuple(swapped),
        swapped_n=swapped_n if swapped is not None else None,
        position_flips=len(flipped) if swapped is not None else None,
        position_bias=rate(len(flipped), swapped_n) if swapped is not None else None,
        flipped_rows=tuple(flipped),
        usage=usage,
        cost=cost,
    )
