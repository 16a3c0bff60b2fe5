"""``evaluate``: every variant on every row through the batch engine, scored by the metrics.

One batch :class:`~promptkit._batch._engine.Engine` runs every (variant, epoch) pair over the
rows, so concurrency, retries, the cache, rate limits, the spending cap, the progress bar,
cancellation and the checkpoint behave exactly as in :func:`promptkit.batch`. Each epoch after
the first tags its calls with its own sample index, so repeats are distinct requests (a cache
never merges them) and a cached re-run of the same evaluation is served entirely from the
cache. The replies are then scored, reduced over the epochs and gathered into an
:class:`~promptkit.EvalReport`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

from .._errors import BackendError, EvaluationError, ParseError
from .._prompt import RESERVED, Prompt
from .._strategies import Call, Context, Outcome, Strategy
from ._dataset import Dataset, load_dataset
from ._leakage import LeakGuard, check_threshold
from ._reduce import Reducer, ReducerLike, resolve_reducer
from ._report import EvalReport
from ._types import Metric, Row, Score, Trial

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._batch import BatchEstimate, BatchItem, BatchResult
    from ..backends import Params

__all__ = [
    "EPOCH_SPAN",
    "EpochStrategy",
    "EvalEstimate",
    "EvalOptions",
    "MetricLike",
    "MetricsLike",
    "ScoringFailure",
    "Setup",
    "aevaluate",
    "ascore_trials",
    "build_report",
    "check_counts",
    "check_metrics",
    "evaluate",
    "score_trials",
    "to_score",
    "trial_of",
]

MetricLike = Metric | Callable[[Any, Row], "float | bool | Score"]
MetricsLike = MetricLike | Sequence[MetricLike] | Mapping[str, MetricLike]
"""A :class:`~promptkit.Metric`, or a plain function ``f(prediction, row)`` named by its ``__name__``."""

EPOCH_SPAN = 1000
"""Epoch ``e > 0`` tags a call's sample index as ``e * EPOCH_SPAN + (its own sample + 1, or 0)``."""

_PARSE_FAILED = "the reply did not parse"


# -- epochs ------------------------------------------------------------------------------------------
class EpochStrategy:
    """A variant's strategy for one repeat: the same plan, each call tagged with the epoch's sample
    index so the repeat is a distinct request (its own cache entry and checkpoint line)."""

    __slots__ = ("base", "epoch")

    def __init__(self, base: Strategy, epoch: int) -> None:
        self.base = base
        self.epoch = epoch

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def streams(self) -> bool:
        return self.base.streams

    @property
    def planned_calls(self) -> int:
        from .._strategies._base import planned_calls

        return planned_calls(self.base)

    def check(self, **settings: Any) -> None:
        check = getattr(self.base, "check", None)
        if check is not None:
            check(**settings)

    def _tag(self, call: Call, seed: object) -> Call:
        own = 0 if call.sample is None else call.sample + 1
        seed = call.params.get("seed", seed)
        if isinstance(seed, int) and not isinstance(seed, bool):  # a seeded prompt draws anew each epoch
            params = {**call.params, "seed": seed + self.epoch * EPOCH_SPAN}
            return dataclasses.replace(call, sample=self.epoch * EPOCH_SPAN + own, params=params)
        return dataclasses.replace(call, sample=self.epoch * EPOCH_SPAN + own)

    def plan(self, context: Context) -> Generator[Call | Sequence[Call], Any, Outcome[Any]]:
        seed = context.params.get("seed")
        inner = self.base.plan(context)
        reply: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    step = inner.throw(error) if error is not None else inner.send(reply)
                except StopIteration as stop:
                    outcome: Outcome[Any] = stop.value
                    return outcome
                error = None
                tagged = self._tag(step, seed) if isinstance(step, Call) else [self._tag(call, seed) for call in step]
                try:
                    reply = yield tagged
                except GeneratorExit:
                    raise
                except BaseException as exc:  # passed on to the inner plan, which decides
                    error = exc
        finally:
            inner.close()

    def __repr__(self) -> str:
        return f"{self.base!r} (epoch {self.epoch})"


# -- metrics -----------------------------------------------------------------------------------------
def check_metrics(metrics: MetricsLike) -> list[Metric]:
    """The metrics as :class:`Metric` objects with distinct names; a mapping names each one."""
    from ._metrics import as_metric

    if isinstance(metrics, Mapping):
        out = [as_metric(metric, name=name) for name, metric in metrics.items()]
    else:
        out = [as_metric(m) for m in (list(metrics) if isinstance(metrics, (list, tuple)) else [metrics])]
    if not out:
        raise EvaluationError("evaluate needs at least one metric")
    names = [m.name for m in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EvaluationError(f"two metrics are named {', '.join(map(repr, twice))}; give each a distinct name")
    return out


@dataclass(frozen=True, slots=True)
class ScoringFailure:
    """A metric's provider call failed (an LLM judge's rate limit, say): the trial is reported as
    an error, never scored as a wrong answer."""

    metric: str
    error: BackendError


Scored = dict[str, Score] | ScoringFailure


def _score_one(metrics: Sequence[Metric], prediction: Any, row: Row) -> Scored:
    from ._metrics import apply_metric

    scores: dict[str, Score] = {}
    for metric in metrics:
        try:
            scores[metric.name] = apply_metric(metric, prediction, row)
        except BackendError as exc:
            return ScoringFailure(metric.name, exc)
    return scores


def _chunks(count: int, workers: int) -> list[range]:
    size = max(1, math.ceil(count / (workers * 4)))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def score_trials(work: Sequence[tuple[Any, Row]], metrics: Sequence[Metric], *, max_concurrency: int) -> list[Scored]:
    """Each ``(prediction, row)`` scored by every metric, from up to ``max_concurrency`` threads
    (a judge makes calls); a metric that raises or returns a bad value raises :class:`MetricError`,
    a metric's failed provider call is a :class:`ScoringFailure`."""
    if max_concurrency <= 1 or len(work) <= 1:
        return [_score_one(metrics, prediction, row) for prediction, row in work]
    out: list[Scored] = [{} for _ in work]

    def run(part: range) -> None:
        for i in part:
            out[i] = _score_one(metrics, *work[i])

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="promptkit-score") as pool:
        for future in [pool.submit(run, part) for part in _chunks(len(work), max_concurrency)]:
            future.result()
    return out


async def ascore_trials(
    work: Sequence[tuple[Any, Row]], metrics: Sequence[Metric], *, max_concurrency: int
) -> list[Scored]:
    """Async :func:`score_trials`: metrics with an ``ascore`` coroutine are awaited (at most
    ``max_concurrency`` at once), the others run in a thread pool."""
    import asyncio

    from ._metrics import aapply_metric

    awaited = [m for m in metrics if callable(getattr(m, "ascore", None))]
    threaded = [m for m in metrics if m not in awaited]
    plain: list[Scored] = (
        await asyncio.to_thread(score_trials, work, threaded, max_concurrency=max_concurrency)
        if threaded
        else [{} for _ in work]
    )
    if awaited:
        gate = asyncio.Semaphore(max_concurrency)

        async def one(i: int, metric: Metric) -> None:
            prediction, row = work[i]
            async with gate:
                try:
                    score = await aapply_metric(metric, prediction, row)
                except BackendError as exc:
                    score = None
                    failure = ScoringFailure(metric.name, exc)
            scores = plain[i]
            if isinstance(scores, dict):
                if score is None:
                    plain[i] = failure
                else:
                    scores[metric.name] = score

        await asyncio.gather(*(one(i, m) for i in range(len(work)) for m in awaited))
    order = [m.name for m in metrics]
    return [scores if isinstance(scores, ScoringFailure) else {n: scores[n] for n in order} for scores in plain]


# -- the estimate --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class EvalEstimate:
    """What an evaluation would send, counted without sending (``evaluate(..., dry_run=True)``).

    ``calls`` counts first calls over every variant, row and epoch (a reply that needs repair
    adds more); ``input_tokens`` the rendered messages; ``output_tokens`` and ``cost`` (USD, the
    worst case) are known only when every variant sets ``max_tokens``. ``per_variant`` holds each
    variant's :class:`~promptkit.BatchEstimate` over its epochs; ``errors`` the
    ``(variant, row id, error)`` of the calls that would fail before being sent; ``finished``
    the calls a checkpoint already holds.
    """

    rows: int
    variants: tuple[str, ...]
    epochs: int
    calls: int
    input_tokens: int
    output_tokens: int | None
    cost: float | None
    exact: bool = True
    finished: int = 0
    errors: tuple[tuple[str, str, Exception], ...] = ()
    per_variant: Mapping[str, BatchEstimate] = field(default_factory=dict, repr=False)

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens, ``None`` while the output is unknown."""
        return None if self.output_tokens is None else self.input_tokens + self.output_tokens

    def __str__(self) -> str:
        from .._batch._results import usd

        output = "unknown (set max_tokens)" if self.output_tokens is None else f"{self.output_tokens:,}"
        cost = "unknown" if self.cost is None else usd(self.cost)
        lines = [
            f"{len(self.variants)} variants x {self.rows} rows x {self.epochs} epochs: {self.calls:,} calls",
            f"input tokens {'' if self.exact else '~'}{self.input_tokens:,}, output tokens {output}, cost {cost}",
        ]
        if self.finished:
            lines.append(f"{self.finished:,} calls already in the checkpoint")
        if self.errors:
            lines.append(f"{len(self.errors)} calls would fail before being sent")
        return "\n".join(lines)


# -- the setup both drivers share ------------------------------------------------------------------------
@dataclass(slots=True)
class Setup:
    names: list[str]
    dataset: Dataset
    metrics: list[Metric]
    reducer: Reducer
    epochs: int
    guards: dict[str, LeakGuard | None]
    groups: list[tuple[str, int]]  # (variant, epoch) of each member prompt
    members: list[Prompt[Any]]
    inputs: dict[str, list[dict[str, Any]]]  # the inputs each variant's template takes, per row
    confidence: float
    started: float


def check_counts(*, epochs: Any, confidence: Any) -> None:
    """Refuse an ``epochs`` that is not a whole number >= 1 or a ``confidence`` outside (0, 1)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise EvaluationError(f"epochs must be a whole number >= 1, not {epochs!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, float) or not 0.0 < confidence < 1.0:
        raise EvaluationError(f"confidence must be a level between 0 and 1 (e.g. 0.95), not {confidence!r}")


def _variants(variants: Mapping[str, Prompt[Any]] | Prompt[Any]) -> dict[str, Prompt[Any]]:
    if isinstance(variants, Prompt):
        return {"prompt": variants}
    if not isinstance(variants, Mapping):
        raise EvaluationError(
            f"variants must be a mapping of names to Prompt objects (or one Prompt), not {type(variants).__name__}"
        )
    if not variants:
        raise EvaluationError("evaluate needs at least one variant")
    out: dict[str, Prompt[Any]] = {}
    for name, prompt in variants.items():
        if not isinstance(name, str) or not name:
            raise EvaluationError(f"variant names must be non-empty strings, not {name!r}")
        if not isinstance(prompt, Prompt):
            raise EvaluationError(f"variant {name!r} is a {type(prompt).__name__}, not a Prompt")
        out[name] = prompt
    return out


def _accepted(prompt: Prompt[Any]) -> frozenset[str] | None:
    """The input names a prompt's template takes (``None``: any, the template allows extras)."""
    template = prompt.template
    if template.allow_extra:
        return None
    known: frozenset[str] = getattr(template, "_known", template.variables)
    return known - RESERVED


def _setup(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: Any,
    metrics: MetricsLike,
    *,
    epochs: int,
    reducer: ReducerLike,
    exclude_similar: float | None,
    confidence: float,
) -> Setup:
    started = time.perf_counter()
    prompts = _variants(variants)
    data = load_dataset(dataset)
    if not len(data):
        raise EvaluationError("the dataset has no rows")
    check_counts(epochs=epochs, confidence=confidence)
    threshold = check_threshold(exclude_similar)
    checked = check_metrics(metrics)
    resolved = resolve_reducer(reducer, epochs)
    available = data.input_names
    for name, prompt in prompts.items():
        missing = sorted(prompt.input_variables - available)
        if missing:
            raise EvaluationError(
                f"variant {name!r} needs the input(s) {', '.join(missing)}, which no row has; "
                f"the rows' inputs are {', '.join(sorted(available)) or 'none'}"
            )
    guards: dict[str, LeakGuard | None] = {}
    inputs: dict[str, list[dict[str, Any]]] = {}
    groups: list[tuple[str, int]] = []
    members: list[Prompt[Any]] = []
    for name, prompt in prompts.items():
        guard = LeakGuard(prompt.selector, threshold=threshold) if prompt.selector is not None else None
        guards[name] = guard
        guarded = prompt.with_examples(guard) if guard is not None else prompt
        accepted = _accepted(prompt)
        inputs[name] = [
            dict(row.inputs) if accepted is None else {k: v for k, v in row.inputs.items() if k in accepted}
            for row in data
        ]
        for epoch in range(epochs):
            groups.append((name, epoch))
            members.append(guarded if epoch == 0 else guarded.with_strategy(EpochStrategy(guarded.strategy, epoch)))
    return Setup(
        names=list(prompts),
        dataset=data,
        metrics=checked,
        reducer=resolved,
        epochs=epochs,
        guards=guards,
        groups=groups,
        members=members,
        inputs=inputs,
        confidence=confidence,
        started=started,
    )


def _engine(setup: Setup, options: Mapping[str, Any]) -> Any:
    from .._batch._engine import Engine

    engine = Engine(setup.members, [row.inputs for row in setup.dataset], **options)
    for job in engine.jobs:  # each variant gets only the inputs its template takes
        job.inputs = setup.inputs[setup.groups[job.group][0]][job.index]
    return engine


def _estimate(setup: Setup, params: Params | None, checkpoint: str | os.PathLike[str] | None) -> EvalEstimate:
    from .._batch import estimate_batch

    per_variant: dict[str, BatchEstimate] = {}
    errors: list[tuple[str, str, Exception]] = []
    ids = setup.dataset.ids
    for member, (name, _epoch) in zip(setup.members, setup.groups, strict=True):
        one = estimate_batch(member, setup.inputs[name], params=params, checkpoint=checkpoint)
        errors.extend((name, ids[index], error) for index, error in one.errors)
        seen = per_variant.get(name)
        per_variant[name] = one if seen is None else _added(seen, one)
    totals = list(per_variant.values())
    output = None if any(e.output_tokens is None for e in totals) else sum(e.output_tokens or 0 for e in totals)
    cost = None if any(e.cost is None for e in totals) else math.fsum(e.cost or 0.0 for e in totals)
    return EvalEstimate(
        rows=len(setup.dataset),
        variants=tuple(setup.names),
        epochs=setup.epochs,
        calls=sum(e.calls for e in totals),
        input_tokens=sum(e.input_tokens for e in totals),
        output_tokens=output,
        cost=cost if output is not None else None,
        exact=all(e.exact for e in totals),
        finished=sum(e.finished for e in totals),
        errors=tuple(errors),
        per_variant=per_variant,
    )


def _added(a: BatchEstimate, b: BatchEstimate) -> BatchEstimate:
    output = None if a.output_tokens is None or b.output_tokens is None else a.output_tokens + b.output_tokens
    cost = None if a.cost is None or b.cost is None else a.cost + b.cost
    return dataclasses.replace(
        a,
        items=a.items + b.items,
        calls=a.calls + b.calls,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=output,
        exact=a.exact and b.exact,
        finished=a.finished + b.finished,
        errors=a.errors + b.errors,
        cost=cost,
    )


# -- from batch items to trials, cells and the report ------------------------------------------------------
def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def trial_of(item: BatchItem[Any], epoch: int, excluded: int) -> Trial:
    """The trial a batch item stands for (its scores are added later)."""
    from .._batch._results import error_cost, error_usage

    if item.status == "ok" and item.result is not None:
        result = item.result
        return Trial(
            epoch=epoch,
            status="ok",
            prediction=result.value,
            text=result.completion.text,
            usage=result.usage,
            cost=result.cost,
            seconds=item.seconds,
            excluded_examples=excluded,
            result=result,
        )
    error = item.error
    if item.status == "failed" and error is not None:
        return Trial(
            epoch=epoch,
            status="parse_error" if isinstance(error, ParseError) else "error",
            text=error.text if isinstance(error, ParseError) else None,
            error=_one_line(error),
            error_type=type(error).__name__,
            usage=error_usage(error),
            cost=error_cost(error),
            seconds=item.seconds,
            excluded_examples=excluded,
        )
    if item.status == "skipped":
        reason = _one_line(error) if error is not None else "not sent: the spending cap would have been passed"
        return Trial(epoch=epoch, status="skipped", error=reason, error_type="SpendingCapError")
    return Trial(epoch=epoch, status="cancelled", error="the evaluation was interrupted before this call")


def _trials(setup: Setup, results: Sequence[BatchResult[Any]]) -> dict[str, list[list[Trial]]]:
    """Each variant's trials per row (one per epoch), unscored."""
    out: dict[str, list[list[Trial]]] = {name: [[] for _ in setup.dataset] for name in setup.names}
    for (name, epoch), result in zip(setup.groups, results, strict=True):
        guard = setup.guards[name]
        for index, item in enumerate(result):
            ran = item.status in ("ok", "failed")
            excluded = guard.excluded_for(setup.inputs[name][index]) if guard is not None and ran else 0
            out[name][index].append(trial_of(item, epoch, excluded))
    return out


def to_score(trials: dict[str, list[list[Trial]]]) -> list[tuple[str, int, int]]:
    """Where the ok trials are: (variant, row position, epoch position)."""
    return [
        (name, index, position)
        for name, per_row in trials.items()
        for index, row_trials in enumerate(per_row)
        for position, trial in enumerate(row_trials)
        if trial.status == "ok"
    ]


def build_report(
    setup: Setup,
    trials: dict[str, list[list[Trial]]],
    places: Sequence[tuple[str, int, int]],
    scores: Sequence[Scored],
) -> EvalReport:
    rows = list(setup.dataset)
    for (name, index, position), found in zip(places, scores, strict=True):
        trial = trials[name][index][position]
        if isinstance(found, ScoringFailure):
            trials[name][index][position] = dataclasses.replace(
                trial,
                status="error",
                error=f"metric {found.metric!r} could not score this reply: {_one_line(found.error)}",
                error_type=type(found.error).__name__,
            )
        else:
            trials[name][index][position] = dataclasses.replace(trial, scores=found)
    names = [m.name for m in setup.metrics]
    failed = {name: Score(value=0.0, detail=_PARSE_FAILED) for name in names}
    cells = {}
    exclusions = {}
    for variant, per_row in trials.items():
        column = []
        excluded = 0
        for row, row_trials in zip(rows, per_row, strict=True):
            done = [dataclasses.replace(t, scores=failed) if t.status == "parse_error" else t for t in row_trials]
            excluded += sum(t.excluded_examples for t in done)
            column.append(setup.reducer.cell(variant, row.id, done, names))
        cells[variant] = column
        exclusions[variant] = excluded
    return EvalReport(
        variants=setup.names,
        metrics=names,
        rows=rows,
        cells=cells,
        exclusions=exclusions,
        epochs=setup.epochs,
        reducer=setup.reducer.name,
        confidence=setup.confidence,
        elapsed=time.perf_counter() - setup.started,
    )


# -- the public functions ---------------------------------------------------------------------------------
class EvalOptions(TypedDict, total=False):
    """The keyword options of :func:`evaluate` and :func:`aevaluate`; :func:`evaluate` documents each."""

    epochs: int
    reducer: ReducerLike
    max_cost: float | None
    max_tokens_total: int | None
    max_concurrency: int
    requests_per_minute: float | None
    tokens_per_minute: float | None
    params: Params | None
    progress: bool | None
    checkpoint: str | os.PathLike[str] | None
    exclude_similar: float | None
    confidence: float


DatasetLike = Dataset | Iterable[Mapping[str, Any] | Row] | str | os.PathLike[str] | Any
_ENGINE_OPTIONS = (
    "params",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "max_tokens_total",
    "max_cost",
    "checkpoint",
    "progress",
)


def _prepared(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any], dataset: DatasetLike, metrics: MetricsLike, options: EvalOptions
) -> Setup:
    unknown = sorted(set(options) - set(EvalOptions.__annotations__))
    if unknown:
        raise EvaluationError(
            f"unknown option(s) {', '.join(unknown)}; evaluate takes {', '.join(EvalOptions.__annotations__)}"
        )
    return _setup(
        variants,
        dataset,
        metrics,
        epochs=options.get("epochs", 1),
        reducer=options.get("reducer", "mean"),
        exclude_similar=options.get("exclude_similar"),
        confidence=options.get("confidence", 0.95),
    )


def _started(setup: Setup, options: EvalOptions) -> Any:
    engine_options: dict[str, Any] = {"max_concurrency": 8}
    engine_options.update({k: v for k, v in options.items() if k in _ENGINE_OPTIONS})
    return _engine(setup, engine_options)


def _to_score(
    setup: Setup, engine: Any
) -> tuple[dict[str, list[list[Trial]]], list[tuple[str, int, int]], list[tuple[Any, Row]]]:
    trials = _trials(setup, engine.results(time.perf_counter() - setup.started))
    places = to_score(trials)
    rows = list(setup.dataset)
    work = [(trials[name][index][position].prediction, rows[index]) for name, index, position in places]
    return trials, places, work


@overload
def evaluate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: DatasetLike,
    metrics: MetricsLike,
    *,
    dry_run: Literal[False] = False,
    **options: Unpack[EvalOptions],
) -> EvalReport: ...


@overload
def evaluate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: DatasetLike,
    metrics: MetricsLike,
    *,
    dry_run: Literal[True],
    **options: Unpack[EvalOptions],
) -> EvalEstimate: ...


def evaluate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: DatasetLike,
    metrics: MetricsLike,
    *,
    dry_run: bool = False,
    **options: Unpack[EvalOptions],
) -> EvalReport | EvalEstimate:
    """Run every variant on every row, score the replies and report: an :class:`~promptkit.EvalReport`.

    ``variants`` maps names to :class:`~promptkit.Prompt` objects (one prompt is named
    ``"prompt"``); ``dataset`` is anything :func:`load_dataset` reads; ``metrics`` is a metric, a
    function ``f(prediction, row)`` or a list of them. Each variant gets the row inputs its
    template takes. The calls go through the batch machinery: ``max_concurrency``, the shared
    rate limits, ``max_cost``/``max_tokens_total`` (calls not sent are ``skipped``), the
    ``checkpoint`` file, ``progress`` and Ctrl-C (the report keeps what finished, the rest
    ``cancelled``) work as in :func:`promptkit.batch`. ``epochs`` repeats every call (each repeat
    a distinct request) and ``reducer`` folds the repeats (``"mean"``, ``"majority"``,
    ``"pass@k"``, ``"pass@2"``... or a function). A reply that does not parse scores 0 on every
    metric (``parse_error``); a failed call is an ``error``, never scored. Few-shot examples
    equal to the row (and, with ``exclude_similar``, those at least that similar) are kept out
    of every variant's selection; the report counts them. ``dry_run=True`` sends nothing and
    returns an :class:`EvalEstimate`. A variant needing an input no row has raises
    :class:`~promptkit.EvaluationError` before any call; a metric that raises or returns a value
    outside [0, 1] raises :class:`~promptkit.MetricError`.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> llm = MockBackend(lambda request: "4" if "2+2" in request.messages[-1].text else "?")
    >>> rows = [{"q": "2+2?", "expected": "4"}, {"q": "3+3?", "expected": "6"}]
    >>> def exact(prediction, row):
    ...     return prediction == row.expected
    >>> report = evaluate({"plain": Prompt("{{ q }}", llm)}, rows, exact, progress=False)
    >>> [cell.scores["exact"] for cell in report.cells["plain"]]
    [1.0, 0.0]
    """
    setup = _prepared(variants, dataset, metrics, options)
    if dry_run:
        return _estimate(setup, options.get("params"), options.get("checkpoint"))
    engine = _started(setup, options)
    engine.run()
    trials, places, work = _to_score(setup, engine)
    scores = score_trials(work, setup.metrics, max_concurrency=options.get("max_concurrency", 8))
    return build_report(setup, trials, places, scores)


@overload
async def aevaluate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: DatasetLike,
    metrics: MetricsLike,
    *,
    dry_run: Literal[False] = False,
    **options: Unpack[EvalOptions],
) -> EvalReport: ...


@overload
async def aevaluate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: DatasetLike,
    metrics: MetricsLike,
    *,
    dry_run: Literal[True],
    **options: Unpack[EvalOptions],
) -> EvalEstimate: ...


async def aevaluate(
    variants: Mapping[str, Prompt[Any]] | Prompt[Any],
    dataset: DatasetLike,
    metrics: MetricsLike,
    *,
    dry_run: bool = False,
    **options: Unpack[EvalOptions],
) -> EvalReport | EvalEstimate:
    """Async :func:`evaluate`: calls through :meth:`Prompt.arun` from tasks, metrics with an
    ``ascore`` coroutine awaited; a cancelled task returns the report of what finished."""
    setup = _prepared(variants, dataset, metrics, options)
    if dry_run:
        return _estimate(setup, options.get("params"), options.get("checkpoint"))
    engine = _started(setup, options)
    await engine.arun()
    trials, places, work = _to_score(setup, engine)
    scores = await ascore_trials(work, setup.metrics, max_concurrency=options.get("max_concurrency", 8))
    return build_report(setup, trials, places, scores)
