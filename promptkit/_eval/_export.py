"""Fine-tuning data from an evaluation: chat-format JSONL of a variant's outputs, and preference pairs.

Both read an :class:`~promptkit.EvalReport`. A record's prompt is the conversation the variant sent
(``trial.result.messages``), or, with ``prompt=``, the row's inputs rendered by another prompt (to
train on a short prompt what a long one produced; it is also how a report read back from JSON,
which keeps no messages, is exported). Every row left out is counted with its reason in the
returned :class:`ExportSummary`: nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import EvaluationError
from ..backends._openai_wire import message_json
from ._types import Cell, Row, Trial

if TYPE_CHECKING:
    from .._prompt import Prompt
    from ._report import EvalReport

__all__ = ["ExportSummary", "export_chat", "export_preferences"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSummary:
    """What an export wrote: ``records`` (also written to ``path`` as JSONL when one was given),
    and ``left_out``, the rows not exported by reason (``"below threshold"``, ``"not ok"``, ...).

    >>> ExportSummary(records=(), left_out={"not ok": 2}).written
    0
    """

    records: tuple[dict[str, Any], ...] = field(repr=False)
    left_out: Mapping[str, int] = field(default_factory=dict)
    path: str | None = None

    @property
    def written(self) -> int:
        """How many records were exported."""
        return len(self.records)


def _conversation(trial: Trial, row: Row, prompt: Prompt[Any] | None) -> list[dict[str, Any]] | None:
    if prompt is not None:
        return [message_json(message) for message in prompt.render(**row.inputs)]
    if trial.result is None:
        return None
    return [message_json(message) for message in trial.result.messages]


def _answer(trial: Trial, row: Row, target: str) -> str | None:
    if target == "expected":
        if not row.has_expected:
            return None
        expected = row.expected
        return expected if isinstance(expected, str) else json.dumps(_jsonable(expected), ensure_ascii=False)
    return trial.text


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)


def _check(report: EvalReport, variant: str, metric: str | None) -> str | None:
    if variant not in report.variants:
        raise EvaluationError(f"no variant {variant!r}; the report has {', '.join(map(repr, report.variants))}")
    if metric is not None and metric not in report.metrics:
        raise EvaluationError(f"no metric {metric!r}; the report has {', '.join(map(repr, report.metrics))}")
    return metric if metric is not None else (report.metrics[0] if report.metrics else None)


def _best_trial(cell: Cell, metric: str | None) -> Trial | None:
    """The ok trial with the highest score on ``metric`` (the first ok trial without a metric)."""
    best: Trial | None = None
    best_score = -1.0
    for trial in cell.trials:
        if trial.status != "ok":
            continue
        score = trial.scores[metric].value if metric is not None and metric in trial.scores else 0.0
        if best is None or score > best_score:
            best, best_score = trial, score
    return best


def _write(records: Sequence[dict[str, Any]], path: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return os.fspath(path)


def export_chat(
    report: EvalReport,
    variant: str,
    path: str | os.PathLike[str] | None = None,
    *,
    metric: str | None = None,
    min_score: float | None = None,
    target: str = "output",
    prompt: Prompt[Any] | None = None,
    metadata: bool = False,
) -> ExportSummary:
    """Chat-format records for supervised fine-tuning: ``{"messages": [...]}`` with the variant's
    conversation and its reply as the final ``assistant`` message (the format provider fine-tuning
    and open-weight trainers accept).

    ``min_score`` keeps only rows whose reduced ``metric`` score (the report's first metric by
    default) reaches it; ``target="expected"`` trains on the row's expected output instead of the
    model's reply; ``prompt`` renders each row's inputs with another prompt; ``metadata=True``
    adds the row id and score under ``"metadata"`` (some trainers reject unknown keys, so it is
    off by default). With several epochs the best-scoring ok trial is exported.

    >>> from promptkit import Prompt, evaluate, ExactMatch
    >>> from promptkit.testing import MockBackend
    >>> report = evaluate({"p": Prompt("{{ q }}", MockBackend(["4", "5"]))},
    ...                   [{"q": "2+2?", "expected": "4"}, {"q": "2+3?", "expected": "4"}],
    ...                   ExactMatch(), progress=False)
    >>> summary = export_chat(report, "p", min_score=1.0)
    >>> summary.records[0]["messages"], dict(summary.left_out)
    ([{'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}], {'below threshold': 1})
    """
    if target not in ("output", "expected"):
        raise EvaluationError(f"target must be 'output' or 'expected', not {target!r}")
    chosen_metric = _check(report, variant, metric)
    if min_score is not None and chosen_metric is None:
        raise EvaluationError("min_score needs a metric, and the report has none")
    records: list[dict[str, Any]] = []
    left_out: Counter[str] = Counter()
    for row, cell in zip(report.rows, report.cells[variant], strict=True):
        trial = _best_trial(cell, chosen_metric)
        if trial is None:
            left_out["not ok"] += 1
            continue
        score = cell.scores.get(chosen_metric) if chosen_metric is not None else None
        if min_score is not None and (score is None or score < min_score):
            left_out["below threshold"] += 1
            continue
        conversation = _conversation(trial, row, prompt)
        if conversation is None:
            left_out["no messages (pass prompt= to render them)"] += 1
            continue
        answer = _answer(trial, row, target)
        if answer is None:
            left_out["no expected output" if target == "expected" else "no reply text"] += 1
            continue
        record: dict[str, Any] = {"messages": [*conversation, {"role": "assistant", "content": answer}]}
        if metadata:
            record["metadata"] = {"row_id": row.id, "variant": variant, "score": score}
        records.append(record)
    return ExportSummary(records=tuple(records), left_out=dict(left_out), path=_write(records, path))


def export_preferences(
    report: EvalReport,
    path: str | os.PathLike[str] | None = None,
    *,
    metric: str | None = None,
    variants: Sequence[str] | None = None,
    prompt: Prompt[Any] | str | None = None,
    min_margin: float = 0.0,
) -> ExportSummary:
    """Preference pairs ``{"prompt": [...], "chosen": [...], "rejected": [...]}`` (the
    conversational form preference trainers such as DPO accept): on each row, the best-scoring
    output on ``metric`` is chosen and the worst rejected, across ``variants`` (default: all) and
    their epochs, when their scores differ by more than ``min_margin``.

    The pair needs one prompt: ``prompt`` is a variant name whose conversation is used (default:
    the first variant) or a :class:`~promptkit.Prompt` that renders the row's inputs.

    >>> from promptkit import Prompt, evaluate, ExactMatch
    >>> from promptkit.testing import MockBackend
    >>> report = evaluate({"a": Prompt("{{ q }}", MockBackend(["5"])), "b": Prompt("{{ q }}", MockBackend(["4"]))},
    ...                   [{"q": "2+2?", "expected": "4"}], ExactMatch(), progress=False)
    >>> pair = export_preferences(report).records[0]
    >>> pair["chosen"], pair["rejected"]
    ([{'role': 'assistant', 'content': '4'}], [{'role': 'assistant', 'content': '5'}])
    """
    chosen_metric = _check(report, report.variants[0], metric) if report.variants else None
    if chosen_metric is None:
        raise EvaluationError("preference pairs are ranked by a metric, and the report has none")
    names = list(variants) if variants is not None else list(report.variants)
    for name in names:
        _check(report, name, None)
    prompt_variant: str | None = None
    render: Prompt[Any] | None = None
    if prompt is None or isinstance(prompt, str):
        prompt_variant = prompt if prompt is not None else names[0]
        _check(report, prompt_variant, None)
    else:
        render = prompt
    records: list[dict[str, Any]] = []
    left_out: Counter[str] = Counter()
    for position, row in enumerate(report.rows):
        candidates: list[tuple[float, str]] = []
        for name in names:
            for trial in report.cells[name][position].trials:
                if trial.status == "ok" and trial.text is not None and chosen_metric in trial.scores:
                    candidates.append((trial.scores[chosen_metric].value, trial.text))
        if len(candidates) < 2:
            left_out["fewer than two scored outputs"] += 1
            continue
        best = max(candidates, key=lambda pair: pair[0])
        worst = min(candidates, key=lambda pair: pair[0])
        if best[0] - worst[0] <= min_margin or best[1] == worst[1]:
            left_out["no score difference"] += 1
            continue
        conversation = _pair_prompt(report, row, position, prompt_variant, render)
        if conversation is None:
            left_out["no messages (pass prompt= to render them)"] += 1
            continue
        records.append(
            {
                "prompt": conversation,
                "chosen": [{"role": "assistant", "content": best[1]}],
                "rejected": [{"role": "assistant", "content": worst[1]}],
            }
        )
    return ExportSummary(records=tuple(records), left_out=dict(left_out), path=_write(records, path))


def _pair_prompt(
    report: EvalReport, row: Row, position: int, variant: str | None, render: Prompt[Any] | None
) -> list[dict[str, Any]] | None:
    if render is not None:
        return [message_json(message) for message in render.render(**row.inputs)]
    assert variant is not None
    for trial in report.cells[variant][position].trials:
        if trial.result is not None:
            return [message_json(message) for message in trial.result.messages]
    return None
