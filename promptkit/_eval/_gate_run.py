"""``run_gate``: evaluate through a response cache, keep the baseline file, and check the gate.

Every variant's backend (and an LLM judge's) is wrapped in a :class:`~promptkit.CachedBackend`
over one cache, so a second run of the same gate makes no model call and a CI job can run it
offline from a committed cache file. The baseline is a report's JSON on disk: when it is missing
the gate fails saying how to write it; with ``update_baseline`` (or ``PROMPTKIT_UPDATE_BASELINE=1``)
a missing or outdated baseline is written from this run instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import EvalGateError, EvaluationError
from ._gate import GateCheck, GateLimits, GateResult, check_gate
from ._report import EvalReport

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._prompt import Prompt
    from ..backends import Params
    from ..backends._cache import ResponseCache, SQLiteCache
    from ._dataset import Dataset
    from ._evaluate import MetricLike
    from ._reduce import ReducerLike
    from ._types import Row

__all__ = ["UPDATE_BASELINE_ENV", "GateRunner", "baseline_outdated", "run_gate", "update_requested"]

UPDATE_BASELINE_ENV = "PROMPTKIT_UPDATE_BASELINE"
"""Set to ``1`` (or ``true``/``yes``) to write missing or outdated gate baselines from the current run."""

UPDATE_HINT = (
    f"run the tests once with `pytest --promptkit-update-baseline` (or {UPDATE_BASELINE_ENV}=1) to write it"
    " from this run, then commit it"
)


def update_requested(value: bool | None = None) -> bool:
    """``value`` when given, else whether ``PROMPTKIT_UPDATE_BASELINE`` is set to a true value.

    >>> update_requested(True)
    True
    """
    if value is not None:
        if not isinstance(value, bool):
            raise EvaluationError(f"update_baseline must be True, False or None, not {value!r}")
        return value
    flag = os.environ.get(UPDATE_BASELINE_ENV, "").strip().lower()
    if flag in ("", "0", "false", "no", "off"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    raise EvaluationError(f"{UPDATE_BASELINE_ENV} must be 1 or 0 (true/false, yes/no), not {flag!r}")


def _outcomes(report: EvalReport) -> tuple[Any, ...]:
    """What a baseline records that matters: rows, variants, metrics and each cell's status,
    prediction and scores (not timings, which change on every run)."""
    rows = tuple((row.id, dict(row.inputs), row.expected) for row in report.rows)
    cells = tuple(
        (variant, cell.row_id, cell.status, cell.prediction, dict(cell.scores))
        for variant in report.variants
        for cell in report.cells[variant]
    )
    return tuple(report.variants), tuple(report.metrics), rows, cells


def baseline_outdated(baseline: EvalReport, report: EvalReport) -> bool:
    """Whether ``report`` differs from ``baseline`` in its rows, variants, metrics, or any cell's
    status, prediction or scores (compared as JSON gives them back; timings are ignored)."""
    current = EvalReport.from_json(report.to_json(indent=None))
    return _outcomes(current) != _outcomes(baseline)


def _with_cache(prompt: Prompt[Any], cache: ResponseCache) -> Prompt[Any]:
    from ..backends._cache import CachedBackend

    if prompt.backend is None:
        return prompt  # evaluate says that it has no backend
    return prompt.with_backend(CachedBackend(prompt.backend, cache=cache))


def _cached_metric(metric: Any, cache: ResponseCache) -> Any:
    from ._judge import _Judge

    if isinstance(metric, _Judge):
        return metric.with_prompt(_with_cache(metric.prompt, cache))  # type: ignore[attr-defined]
    return metric


def _cached(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any], metrics: Any, cache: ResponseCache
) -> tuple[dict[str, Prompt[Any]], Any]:
    from ._evaluate import _variants

    wrapped = {name: _with_cache(prompt, cache) for name, prompt in _variants(variants).items()}
    if isinstance(metrics, Sequence) and not isinstance(metrics, str):
        return wrapped, [_cached_metric(m, cache) for m in metrics]
    return wrapped, _cached_metric(metrics, cache)


def _store(cache: str | os.PathLike[str] | ResponseCache) -> tuple[ResponseCache, SQLiteCache | None]:
    """The cache, and the SQLite cache opened here (closed when the evaluation ends)."""
    from ..backends._cache import ResponseCache, SQLiteCache

    if isinstance(cache, (str, os.PathLike)):
        opened = SQLiteCache(cache)
        return opened, opened
    if isinstance(cache, ResponseCache):
        return cache, None
    raise EvaluationError(
        f"cache must be the path of an SQLite cache file, a response cache or None, not {type(cache).__name__}"
    )


def _missing(path: Path) -> GateCheck:
    return GateCheck(kind="baseline", passed=False, message=f"no baseline report at {path}; {UPDATE_HINT}")


def _unreadable(path: Path, error: EvaluationError) -> GateCheck:
    return GateCheck(
        kind="baseline",
        passed=False,
        message=f"the baseline {path} cannot be read ({error}); {UPDATE_HINT.replace('write it', 'rewrite it')}",
    )


def _updated(report: EvalReport, path: Path, limits: GateLimits) -> GateResult:
    """Write the baseline when missing or outdated; check the absolute limits only."""
    old: EvalReport | None = None
    if path.exists():
        try:
            old = EvalReport.load(path)
        except EvaluationError:
            old = None  # unreadable: rewritten below
    if old is not None and not baseline_outdated(old, report):
        note = f"the baseline {path} is up to date"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        report.to_json(path)
        state = "written" if old is None else "rewritten"
        note = (
            f"baseline {state} from this run: {path} ({len(report.rows)} rows, variants {', '.join(report.variants)})"
        )
    notes = (note, "the comparison with the baseline was skipped while updating it")
    result = check_gate(report, **limits) if _has_limits(limits) else GateResult(checks=(), report=report)
    return dataclasses.replace(result, notes=(*notes, *result.notes), baseline=str(path))


def _has_limits(limits: GateLimits) -> bool:
    found = (
        limits.get("min_scores"),
        limits.get("max_error_rate"),
        limits.get("max_parse_failure_rate"),
        limits.get("max_cost"),
        limits.get("max_latency"),
    )
    return any(limit is not None for limit in found)


def run_gate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: Dataset | Iterable[Mapping[str, Any] | Row] | str | os.PathLike[str] | Any,
    metrics: MetricLike | Sequence[MetricLike],
    *,
    cache: str | os.PathLike[str] | ResponseCache | None,
    baseline: str | os.PathLike[str] | None = None,
    update_baseline: bool | None = None,
    epochs: int = 1,
    reducer: ReducerLike = "mean",
    params: Params | None = None,
    max_concurrency: int = 8,
    exclude_similar: float | None = None,
    confidence: float = 0.95,
    **limits: Unpack[GateLimits],
) -> GateResult:
    """Evaluate ``variants`` on ``dataset`` through the response ``cache`` and hold the report to
    the gate: :func:`check_gate`'s ``limits`` and, with a ``baseline`` file, the comparison with
    it. Raises :class:`~promptkit.EvalGateError` (an ``AssertionError``) with the verdict when a
    check fails; returns the :class:`GateResult` (its ``report`` is the evaluation) when all pass.

    ``cache`` is the path of an SQLite file (or any response cache; ``None`` for none): every
    variant's backend, and an LLM judge's, is wrapped in a :class:`~promptkit.CachedBackend` over
    it, so running the gate again makes no model call. A missing ``baseline`` file fails the gate,
    saying how to write it. With ``update_baseline=True`` (by default: when the environment sets
    ``PROMPTKIT_UPDATE_BASELINE=1``) a missing or outdated baseline (different rows, predictions or
    scores) is written from this run, the comparison is skipped, the absolute limits still apply
    and ``notes`` say what was written. ``epochs``, ``reducer``, ``params``, ``max_concurrency``,
    ``exclude_similar`` and ``confidence`` go to :func:`~promptkit.evaluate`.
    """
    from ._evaluate import evaluate

    if baseline is not None and not isinstance(baseline, (str, os.PathLike)):
        raise EvaluationError(
            f"run_gate keeps its baseline in a file: give its path, not a {type(baseline).__name__}"
            " (check_gate takes a report)"
        )
    if baseline is None and not _has_limits(limits):
        raise EvaluationError(
            "the gate checks nothing: give min_scores, max_error_rate, max_parse_failure_rate, max_cost,"
            " max_latency or a baseline"
        )
    update = update_requested(update_baseline)
    store, opened = (None, None) if cache is None else _store(cache)
    try:
        run_variants, run_metrics = (variants, metrics) if store is None else _cached(variants, metrics, store)
        report = evaluate(
            run_variants,
            dataset,
            run_metrics,
            epochs=epochs,
            reducer=reducer,
            params=params,
            max_concurrency=max_concurrency,
            exclude_similar=exclude_similar,
            confidence=confidence,
            progress=False,
        )
    finally:
        if opened is not None:
            opened.close()
    if baseline is None:
        return check_gate(report, **limits).raise_if_failed()
    path = Path(baseline).expanduser()
    if update:
        return _updated(report, path, limits).raise_if_failed()
    problem: GateCheck | None = None
    old: EvalReport | None = None
    if not path.exists():
        problem = _missing(path)
    else:
        try:
            old = EvalReport.load(path)
        except EvaluationError as error:
            problem = _unreadable(path, error)
    if old is not None:
        result = check_gate(report, baseline=old, **limits)
    elif _has_limits(limits):
        result = check_gate(report, **limits)
    else:
        result = GateResult(checks=(), report=report)
    checks = result.checks if problem is None else (problem, *result.checks)
    return dataclasses.replace(result, checks=checks, baseline=str(path)).raise_if_failed()


class GateRunner:
    """:func:`run_gate` with this test's defaults: what the ``promptkit_gate`` fixture gives a
    test. Call it as ``run_gate``; ``cache``, ``baseline`` and ``update_baseline`` given to the
    call win over the bound ones, and ``on_notes`` hears the notes of every run (a baseline
    written), passed or failed.

    >>> runner = GateRunner(cache=None, baseline="gates/quiz.json")
    >>> runner.baseline
    'gates/quiz.json'
    """

    __slots__ = ("baseline", "cache", "on_notes", "update_baseline")

    def __init__(
        self,
        *,
        cache: str | os.PathLike[str] | ResponseCache | None,
        baseline: str | os.PathLike[str] | None,
        update_baseline: bool | None = None,
        on_notes: Callable[[Sequence[str]], object] | None = None,
    ) -> None:
        self.cache = cache
        self.baseline = baseline
        self.update_baseline = update_baseline
        self.on_notes = on_notes

    def __call__(
        self,
        variants: Mapping[str, Prompt[Any]] | Prompt[Any],
        dataset: Dataset | Iterable[Mapping[str, Any] | Row] | str | os.PathLike[str] | Any,
        metrics: MetricLike | Sequence[MetricLike],
        **options: Any,
    ) -> GateResult:
        options.setdefault("cache", self.cache)
        options.setdefault("baseline", self.baseline)
        options.setdefault("update_baseline", self.update_baseline)
        try:
            result = run_gate(variants, dataset, metrics, **options)
        except EvalGateError as error:
            if self.on_notes is not None and error.result is not None:
                self.on_notes(error.result.notes)
            raise
        if self.on_notes is not None:
            self.on_notes(result.notes)
        return result

    def __repr__(self) -> str:
        return f"<GateRunner baseline={str(self.baseline)!r} cache={str(self.cache)!r}>"
