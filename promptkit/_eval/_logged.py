"""``evaluate_log``: score the runs a JSONL run log holds, without calling a model again.

The log is the one :func:`promptkit.log_runs` writes. Its records are grouped into variants
(by prompt name, or as the caller says) and matched to the dataset's rows by their inputs; the
logged values are then scored exactly as :func:`promptkit.evaluate` scores fresh replies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, EvaluationError
from .._prompt import Prompt
from ._dataset import Dataset, canonical_json, load_dataset
from ._evaluate import MetricsLike, Setup, build_report, check_counts, check_metrics, score_trials, to_score
from ._reduce import ReducerLike, resolve_reducer
from ._report import EvalReport
from ._types import Row, Trial

if TYPE_CHECKING:
    from .._tracing import RunRecord

__all__ = ["evaluate_log"]

UNNAMED = "prompt"
"""The variant of records whose prompt has no name (``Template(name=...)`` or a ``.prompt`` file names it)."""


def _records(log: str | os.PathLike[str] | Iterable[RunRecord]) -> list[RunRecord]:
    from .._tracing import RunRecord, read_run_log

    if isinstance(log, (str, os.PathLike)):
        try:
            return list(read_run_log(log))
        except OSError as exc:
            raise EvaluationError(f"cannot read the run log {str(log)!r}: {exc.strerror or exc}") from exc
        except ConfigurationError as exc:
            raise EvaluationError(str(exc)) from exc
    records = list(log)
    for position, record in enumerate(records):
        if not isinstance(record, RunRecord):
            raise EvaluationError(f"record {position} is a {type(record).__name__}, not a RunRecord")
    return records


def _grouped(
    records: Sequence[RunRecord], variants: str | Mapping[str, str | Prompt[Any]] | None
) -> dict[str, list[RunRecord]]:
    """Each variant's records, in log order."""
    from .._tracing._runlog import prompt_digest

    if variants is None:
        groups: dict[str, list[RunRecord]] = {}
        for record in records:
            groups.setdefault(record.prompt_name or UNNAMED, []).append(record)
        if not groups:
            raise EvaluationError("the run log holds no runs")
        return groups
    wanted = {variants: variants} if isinstance(variants, str) else dict(variants)
    if not wanted:
        raise EvaluationError("variants names no variant")
    out: dict[str, list[RunRecord]] = {}
    for name, which in wanted.items():
        if isinstance(which, Prompt):
            digest = prompt_digest(which.template)
            chosen = [r for r in records if r.prompt_digest is not None and r.prompt_digest == digest]
            what = "the template of that Prompt"
        elif isinstance(which, str):
            chosen = [r for r in records if (r.prompt_name or UNNAMED) == which]
            what = f"the prompt name {which!r}"
        else:
            raise EvaluationError(f"variant {name!r}: give a prompt name or a Prompt, not {type(which).__name__}")
        if not chosen:
            names = sorted({r.prompt_name or UNNAMED for r in records})
            raise EvaluationError(
                f"variant {name!r}: no run in the log has {what}; the log's prompts are {', '.join(names) or 'none'}"
            )
        out[name] = chosen
    return out


def _logged_form(record: RunRecord, name: str, value: Any) -> Any:
    """A row's input as the run log would have written it (its JSON form, or its repr)."""
    from .._tracing._runlog import _value

    return repr(value) if name in record.inputs_repr else _value(value)[0]


def _matches(records: Sequence[RunRecord], rows: Sequence[Row]) -> list[list[RunRecord]]:
    """Each row's records: those whose every logged input equals the row's input of that name."""
    found: list[list[RunRecord]] = [[] for _ in rows]
    lookups: dict[tuple[str, ...], dict[str, list[int]]] = {}
    for record in records:
        keys = tuple(sorted(record.inputs))
        table = lookups.get(keys)
        if table is None:
            table = lookups[keys] = {}
            for position, row in enumerate(rows):
                if all(k in row.inputs for k in keys):
                    doc = {k: _logged_form(record, k, row.inputs[k]) for k in keys}
                    table.setdefault(canonical_json(doc), []).append(position)
        for position in table.get(canonical_json(dict(record.inputs)), ()):
            found[position].append(record)
    return found


def _trial(record: RunRecord, epoch: int) -> Trial:
    if record.error is None:
        return Trial(
            epoch=epoch,
            status="ok",
            prediction=record.value,
            text=record.completion.text if record.completion is not None else None,
            usage=record.usage,
            cost=record.cost,
            seconds=record.latency,
        )
    kind = record.error.type.rsplit(".", 1)[-1]
    parse_error = _is_parse_error(record.error.type)
    texts = [a.text for a in record.attempts if a.text is not None]
    return Trial(
        epoch=epoch,
        status="parse_error" if parse_error else "error",
        text=texts[-1] if parse_error and texts else None,
        error=f"{kind}: {record.error.message}",
        error_type=kind,
        usage=record.usage,
        cost=record.cost,
        seconds=record.latency,
    )


def _is_parse_error(qualified: str) -> bool:
    """Whether a logged error type (``promptkit._errors.ParseError``) is promptkit's ParseError or a subclass."""
    from .. import _errors

    module, _, name = qualified.rpartition(".")
    kind = getattr(_errors, name, None) if module.startswith("promptkit") else None
    return isinstance(kind, type) and issubclass(kind, _errors.ParseError)


def evaluate_log(
    log: str | os.PathLike[str] | Iterable[RunRecord],
    dataset: Dataset | Iterable[Mapping[str, Any] | Row] | str | os.PathLike[str] | Any,
    metrics: MetricsLike,
    *,
    variants: str | Mapping[str, str | Prompt[Any]] | None = None,
    epochs: int = 1,
    reducer: ReducerLike = "mean",
    max_concurrency: int = 8,
    confidence: float = 0.95,
) -> EvalReport:
    """Score the runs of a run log (:func:`promptkit.log_runs`) against ``dataset``: an
    :class:`~promptkit.EvalReport`, with no model call.

    ``log`` is the JSONL file or the :class:`~promptkit.RunRecord` objects read from it.
    ``variants`` says which records form which variant: by default one variant per prompt name
    (records of an unnamed prompt form ``"prompt"``); a name keeps only that prompt's records; a
    mapping names each variant after a prompt name or a :class:`~promptkit.Prompt` (matched by
    its template's source). A record belongs to a row when every input it logged equals the
    row's input of that name (compared in the JSON form the log wrote), so a prompt that used a
    subset of a row's inputs still matches. A row's last ``epochs`` matching records (the most
    recent runs) are its trials; a row no record matches is an ``error`` trial saying so, never
    left out. Records that match no row are ignored. Predictions are the logged values in their
    JSON form (a pydantic model as its dict). A logged parse failure scores 0 (``parse_error``),
    any other failure is an ``error``.

    >>> import pathlib, tempfile, promptkit
    >>> from promptkit import Prompt, Template
    >>> from promptkit.testing import MockBackend
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl"
    >>> prompt = Prompt(Template("{{ q }}", name="quiz"), MockBackend(["4", "7"]))
    >>> with promptkit.log_runs(path):
    ...     _ = prompt.batch([{"q": "2+2?"}, {"q": "3+3?"}], progress=False)
    >>> rows = [{"q": "2+2?", "expected": "4"}, {"q": "3+3?", "expected": "6"}, {"q": "5+5?", "expected": "10"}]
    >>> report = evaluate_log(path, rows, {"exact": lambda prediction, row: prediction == row.expected})
    >>> [cell.status for cell in report.cells["quiz"]], report.cells["quiz"][0].scores
    (['ok', 'ok', 'error'], {'exact': 1.0})
    """
    started = time.perf_counter()
    data = load_dataset(dataset)
    check_counts(epochs=epochs, confidence=confidence)
    checked = check_metrics(metrics)
    resolved = resolve_reducer(reducer, epochs)
    groups = _grouped(_records(log), variants)
    rows = list(data)
    trials: dict[str, list[list[Trial]]] = {}
    for name, records in groups.items():
        per_row = []
        for matched in _matches(records, rows):
            kept = matched[-epochs:]
            if kept:
                per_row.append([_trial(record, epoch) for epoch, record in enumerate(kept)])
            else:
                per_row.append([_missing()])
        trials[name] = per_row
    setup = Setup(
        names=list(groups),
        dataset=data,
        metrics=checked,
        reducer=resolved,
        epochs=epochs,
        guards=dict.fromkeys(groups),
        groups=[],
        members=[],
        inputs={},
        confidence=confidence,
        started=started,
    )
    places = to_score(trials)
    work = [(trials[name][index][position].prediction, rows[index]) for name, index, position in places]
    scores = score_trials(work, checked, max_concurrency=max_concurrency)
    return build_report(setup, trials, places, scores)


def _missing() -> Trial:
    return Trial(
        epoch=0,
        status="error",
        error="no run in the log has this row's inputs",
        error_type="MissingRun",
    )
