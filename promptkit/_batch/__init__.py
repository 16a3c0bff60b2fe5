"""Batches that lose nothing: many calls of one prompt (or of several) with results in input order.

Every item ends as a :class:`BatchItem` with a status: ``ok`` (a result), ``failed`` (its error, a
template error included), ``skipped`` (not sent: the spending cap would have been passed) or
``cancelled`` (the batch was interrupted first). Each call goes through :meth:`Prompt.run` (from a
thread pool, so the sync path never runs an event loop of its own and works inside Jupyter) or
:meth:`Prompt.arun` (from tasks). Limits and the spending cap wrap the prompt's backend; the
checkpoint and the progress bar sit in the loop around the calls. Nothing here talks to a
provider itself.

The parts: ``_results`` (what a batch returns), ``_engine`` (the two drivers), ``_limits`` (the
spending cap and shared rate limits), ``_checkpoint`` and ``_progress``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, overload

from .._errors import ConfigurationError
from .._prompt import Prompt
from .._strategies._base import planned_calls
from ..backends._ratelimit import estimate_input_tokens
from ._checkpoint import CheckpointWarning
from ._engine import Engine
from ._limits import request_cost
from ._results import BatchEstimate, BatchGrid, BatchItem, BatchResult, Latency

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..backends import Params

__all__ = [
    "BatchEstimate",
    "BatchGrid",
    "BatchItem",
    "BatchOptions",
    "BatchResult",
    "CheckpointWarning",
    "Latency",
    "abatch",
    "batch",
    "estimate_batch",
    "run_abatch",
    "run_batch",
]

T = TypeVar("T")
K = TypeVar("K")


class BatchOptions(TypedDict, total=False):
    """The keyword options of every batch call; :meth:`Prompt.batch` documents each."""

    params: Params | None
    max_concurrency: int
    requests_per_minute: float | None
    tokens_per_minute: float | None
    max_tokens_total: int | None
    max_cost: float | None
    checkpoint: str | os.PathLike[str] | None
    progress: bool | None


def run_batch(
    prompt: Prompt[T], inputs: Iterable[Mapping[str, Any]], **options: Unpack[BatchOptions]
) -> BatchResult[T]:
    """What :meth:`Prompt.batch` runs."""
    started = time.perf_counter()
    engine = Engine([prompt], inputs, **options)
    engine.run()
    result: BatchResult[T] = engine.results(time.perf_counter() - started)[0]
    return result


async def run_abatch(
    prompt: Prompt[T], inputs: Iterable[Mapping[str, Any]], **options: Unpack[BatchOptions]
) -> BatchResult[T]:
    """What :meth:`Prompt.abatch` runs."""
    started = time.perf_counter()
    engine = Engine([prompt], inputs, **options)
    await engine.arun()
    result: BatchResult[T] = engine.results(time.perf_counter() - started)[0]
    return result


def _keyed(prompts: Mapping[Any, Prompt[Any]] | Sequence[Prompt[Any]]) -> tuple[list[Any], list[Prompt[Any]]]:
    if isinstance(prompts, Prompt):
        raise ConfigurationError("for one prompt use prompt.batch(inputs); batch() takes a list or mapping of prompts")
    if isinstance(prompts, Mapping):
        return list(prompts.keys()), list(prompts.values())
    if not isinstance(prompts, Sequence) or isinstance(prompts, (str, bytes)):  # type: ignore[unreachable]
        raise ConfigurationError(f"prompts must be a list or a mapping of Prompt objects, not {type(prompts).__name__}")
    return list(range(len(prompts))), list(prompts)


@overload
def batch(
    prompts: Mapping[K, Prompt[Any]], inputs: Iterable[Mapping[str, Any]], **options: Unpack[BatchOptions]
) -> BatchGrid[K]: ...


@overload
def batch(
    prompts: Sequence[Prompt[Any]], inputs: Iterable[Mapping[str, Any]], **options: Unpack[BatchOptions]
) -> BatchGrid[int]: ...


def batch(
    prompts: Mapping[Any, Prompt[Any]] | Sequence[Prompt[Any]],
    inputs: Iterable[Mapping[str, Any]],
    **options: Unpack[BatchOptions],
) -> BatchGrid[Any]:
    """Run several prompts over the same inputs: a :class:`BatchGrid`, results per prompt per input.

    ``prompts`` is a mapping (its keys name the variants) or a list (keys are positions). The
    options are :meth:`Prompt.batch`'s; concurrency, limits, the spending cap and the checkpoint
    are shared by all the calls. Calls go input by input (every prompt on input 0, then on input
    1, ...), so an interrupted run leaves comparable rows.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> llm = MockBackend(lambda request: request.messages[-1].text.upper())
    >>> grid = batch({"plain": Prompt("{{ w }}", llm), "polite": Prompt("please {{ w }}", llm)},
    ...              [{"w": "a"}, {"w": "b"}], progress=False)
    >>> grid["polite"].values, [item.value for item in grid.row(0).values()]
    (['PLEASE A', 'PLEASE B'], ['A', 'PLEASE A'])
    """
    keys, members = _keyed(prompts)
    started = time.perf_counter()
    engine = Engine(members, inputs, **options)
    engine.run()
    elapsed = time.perf_counter() - started
    return BatchGrid(dict(zip(keys, engine.results(elapsed), strict=True)), elapsed=elapsed)


@overload
async def abatch(
    prompts: Mapping[K, Prompt[Any]], inputs: Iterable[Mapping[str, Any]], **options: Unpack[BatchOptions]
) -> BatchGrid[K]: ...


@overload
async def abatch(
    prompts: Sequence[Prompt[Any]], inputs: Iterable[Mapping[str, Any]], **options: Unpack[BatchOptions]
) -> BatchGrid[int]: ...


async def abatch(
    prompts: Mapping[Any, Prompt[Any]] | Sequence[Prompt[Any]],
    inputs: Iterable[Mapping[str, Any]],
    **options: Unpack[BatchOptions],
) -> BatchGrid[Any]:
    """Async :func:`batch` (every call through :meth:`Prompt.arun`)."""
    keys, members = _keyed(prompts)
    started = time.perf_counter()
    engine = Engine(members, inputs, **options)
    await engine.arun()
    elapsed = time.perf_counter() - started
    return BatchGrid(dict(zip(keys, engine.results(elapsed), strict=True)), elapsed=elapsed)


def estimate_batch(
    prompts: Prompt[Any] | Mapping[Any, Prompt[Any]] | Sequence[Prompt[Any]],
    inputs: Iterable[Mapping[str, Any]],
    *,
    params: Params | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> BatchEstimate:
    """Count what a batch would send, without sending anything (a dry run).

    Each item is rendered and its messages counted with :func:`promptkit.count_tokens`; with
    ``max_tokens`` set, the worst case is priced too (``cost``). A strategy of several calls
    (self-consistency, self-refine) counts its ``planned_calls`` per item, each sized like the
    first request (so the count is then marked inexact). Items a ``checkpoint`` already holds are
    left out, as a re-run would skip them.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> estimate = estimate_batch(Prompt("Hi {{ name }}", MockBackend(), params={"max_tokens": 5}),
    ...                           [{"name": "Ada"}, {}])
    >>> estimate.calls, estimate.output_tokens, [index for index, _ in estimate.errors]
    (1, 5, [1])
    """
    members = [prompts] if isinstance(prompts, Prompt) else _keyed(prompts)[1]
    engine = Engine(members, inputs, params=params, checkpoint=checkpoint, progress=False)
    pending = engine.prepare()
    if engine.checkpoint is not None:
        engine.checkpoint.close()
    errors: list[tuple[int, Exception]] = []
    input_tokens = 0
    exact = True
    calls = 0
    output_known = True
    output_tokens = 0
    cost: float | None = 0.0
    for job in pending:
        source = engine.sources[job.group]
        assert source.backend is not None
        try:
            messages = source.render(**job.inputs)
        except Exception as exc:
            errors.append((job.index, exc))
            continue
        planned = planned_calls(source.strategy)
        calls += planned
        counted = estimate_input_tokens(tuple(messages), source.backend.name) * planned
        input_tokens += counted
        exact = exact and _exact_for(source.backend.name) and planned == 1
        max_tokens = {**source.params, **(params or {})}.get("max_tokens")
        if isinstance(max_tokens, int):
            output_tokens += max_tokens * planned
            price = request_cost(source.backend.name, counted, max_tokens * planned)
            cost = None if price is None or cost is None else cost + price
        else:
            output_known = False
    for done in engine.done:
        if done is not None and done.status == "failed" and done.error is not None:
            errors.append((done.job.index, done.error))
    finished = sum(1 for done in engine.done if done is not None and done.restored)
    return BatchEstimate(
        items=len(engine.jobs),
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens if output_known else None,
        exact=exact,
        finished=finished,
        errors=tuple(sorted(errors, key=lambda pair: pair[0])),
        cost=cost if output_known else None,
    )


def _exact_for(backend_name: str) -> bool:
    from .._tokens import is_exact
    from ..backends._ratelimit import _model_of

    model = _model_of(backend_name)
    return model == backend_name and is_exact(model)
