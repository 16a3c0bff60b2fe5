"""A report as JSON and back: rows, cells, trials (without their live results), scores and settings.

Values a model produced (predictions, inputs, expected outputs) go through pydantic's
``to_jsonable_python``, so models, dataclasses, dates and the like are written as plain JSON; they
come back as that plain JSON (a model as a dict). The document names its format and version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import EvaluationError
from .._messages import Usage
from ._types import NO_EXPECTED, Cell, Row, Score, Trial

if TYPE_CHECKING:
    from ._report import EvalReport

__all__ = ["FORMAT", "VERSION", "dumps", "loads"]

FORMAT = "promptkit.eval_report"
VERSION = 1
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
_STATUSES = ("ok", "parse_error", "error", "skipped", "cancelled")


def _plain(value: Any, where: str) -> Any:
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise EvaluationError(f"{where}: a {type(value).__name__} cannot be written as JSON ({exc})") from exc


def _usage(usage: Usage) -> dict[str, int]:
    return {name: getattr(usage, name) for name in _USAGE_FIELDS if getattr(usage, name)}


def _score(score: Score) -> dict[str, Any]:
    out: dict[str, Any] = {"value": score.value}
    if score.detail is not None:
        out["detail"] = score.detail
    if score.usage != Usage():
        out["usage"] = _usage(score.usage)
    if score.cost != 0.0:
        out["cost"] = score.cost
    return out


def _trial(trial: Trial, where: str) -> dict[str, Any]:
    return {
        "epoch": trial.epoch,
        "status": trial.status,
        "prediction": _plain(trial.prediction, where),
        "text": trial.text,
        "scores": {name: _score(score) for name, score in trial.scores.items()},
        "error": trial.error,
        "error_type": trial.error_type,
        "usage": _usage(trial.usage),
        "cost": trial.cost,
        "seconds": trial.seconds,
        "excluded_examples": trial.excluded_examples,
    }


def _row(row: Row) -> dict[str, Any]:
    where = f"row {row.id!r}"
    out: dict[str, Any] = {"id": row.id, "inputs": _plain(dict(row.inputs), where)}
    if row.has_expected:
        out["expected"] = _plain(row.expected, where)
    if row.metadata:
        out["metadata"] = _plain(dict(row.metadata), where)
    return out


def dumps(report: EvalReport, *, indent: int | None = 1) -> str:
    """The report as a JSON document."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for variant, column in report.cells.items():
        out = cells[variant] = []
        for cell in column:
            where = f"variant {variant!r}, row {cell.row_id!r}"
            out.append(
                {
                    "row_id": cell.row_id,
                    "scores": dict(cell.scores),
                    "prediction": _plain(cell.prediction, where),
                    "trials": [_trial(trial, where) for trial in cell.trials],
                }
            )
    document = {
        "format": FORMAT,
        "version": VERSION,
        "variants": list(report.variants),
        "metrics": list(report.metrics),
        "settings": {
            "epochs": report.epochs,
            "reducer": report.reducer,
            "confidence": report.confidence,
            "elapsed": report.elapsed,
            "resamples": report.resamples,
            "seed": report.seed,
        },
        "exclusions": dict(report.exclusions),
        "rows": [_row(row) for row in report.rows],
        "cells": cells,
    }
    return json.dumps(document, ensure_ascii=False, indent=indent, allow_nan=False)


def _read_usage(data: Mapping[str, Any] | None) -> Usage:
    return Usage(**{name: int(value) for name, value in (data or {}).items() if name in _USAGE_FIELDS})


def _read_trial(data: Mapping[str, Any]) -> Trial:
    status = data["status"]
    if status not in _STATUSES:
        raise EvaluationError(f"unknown trial status {status!r}; expected one of {', '.join(_STATUSES)}")
    return Trial(
        epoch=int(data.get("epoch", 0)),
        status=status,
        prediction=data.get("prediction"),
        text=data.get("text"),
        scores={
            name: Score(
                value=float(score["value"]),
                detail=score.get("detail"),
                usage=_read_usage(score.get("usage")),
                cost=score.get("cost", 0.0),
            )
            for name, score in data.get("scores", {}).items()
        },
        error=data.get("error"),
        error_type=data.get("error_type"),
        usage=_read_usage(data.get("usage")),
        cost=data.get("cost", 0.0),
        seconds=data.get("seconds"),
        excluded_examples=int(data.get("excluded_examples", 0)),
    )


def loads(text: str) -> dict[str, Any]:
    """The keyword arguments of :class:`EvalReport` read back from :func:`dumps`'s document."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"not a JSON evaluation report: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise EvaluationError(f"not an evaluation report: the JSON document has no format {FORMAT!r}")
    version = document.get("version")
    if version != VERSION:
        raise EvaluationError(
            f"evaluation report version {version!r} is not supported (this promptkit reads {VERSION})"
        )
    try:
        settings = document.get("settings", {})
        rows = [
            Row(
                id=str(row["id"]),
                inputs=row.get("inputs", {}),
                expected=row.get("expected", NO_EXPECTED),
                metadata=row.get("metadata", {}),
            )
            for row in document["rows"]
        ]
        cells = {
            variant: [
                Cell(
                    variant=variant,
                    row_id=str(cell["row_id"]),
                    trials=tuple(_read_trial(trial) for trial in cell.get("trials", [])),
                    scores={name: None if v is None else float(v) for name, v in cell.get("scores", {}).items()},
                    prediction=cell.get("prediction"),
                )
                for cell in column
            ]
            for variant, column in document["cells"].items()
        }
        return {
            "variants": document["variants"],
            "metrics": document["metrics"],
            "rows": rows,
            "cells": cells,
            "exclusions": document.get("exclusions", {}),
            "epochs": int(settings.get("epochs", 1)),
            "reducer": str(settings.get("reducer", "mean")),
            "confidence": float(settings.get("confidence", 0.95)),
            "elapsed": float(settings.get("elapsed", 0.0)),
            "resamples": int(settings.get("resamples", 2000)),
            "seed": int(settings.get("seed", 0)),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvaluationError(f"malformed evaluation report: {type(exc).__name__}: {exc}") from exc
