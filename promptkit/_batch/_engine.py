"""The batch engine: jobs, the two drivers (threads, tasks) and the bookkeeping they share."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .._errors import ConfigurationError, GuardError, PromptkitError, SpendingCapError
from .._prompt import Prompt
from .._result import Result
from ..backends import Backend, RateLimitedBackend, validate_params
from ._checkpoint import Checkpoint, Replay, ReplayExhausted, inputs_digest
from ._limits import ITEM, CappedBackend, ItemState, Spend, request_cost, shared_limiter
from ._progress import Progress
from ._results import BatchItem, BatchResult, Status, error_cost, error_usage

if TYPE_CHECKING:
    from ..backends import Params

__all__ = ["DEFAULT_CONCURRENCY", "Engine", "Job"]

DEFAULT_CONCURRENCY = 8


@dataclass(slots=True)
class Job:
    slot: int
    group: int  # which prompt
    index: int  # which input
    inputs: Any
    prompt: Prompt[Any]
    key: str | None = None


@dataclass(slots=True)
class Done:
    job: Job
    status: Status
    result: Result[Any] | None = None
    error: Exception | None = None
    seconds: float | None = None
    restored: bool = False


class _Interrupted(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A KeyboardInterrupt raised inside an async call, carried out of its task."""


def _check_inputs(inputs: Any) -> ConfigurationError | None:
    if not isinstance(inputs, Mapping):
        return ConfigurationError(f"a batch item must be a mapping of template variables, not {type(inputs).__name__}")
    bad = [k for k in inputs if not isinstance(k, str)]
    if bad:
        return ConfigurationError(f"template variable names must be strings, not {bad[0]!r}")
    if "params" in inputs:
        return ConfigurationError(
            "'params' is the keyword for call parameters, not a template variable; pass params= to the batch"
        )
    return None


def _materialise(inputs: Iterable[Mapping[str, Any]]) -> list[Any]:
    if isinstance(inputs, (str, bytes, Mapping)):
        raise ConfigurationError(
            f"inputs must be an iterable of mappings (one per call), not a single {type(inputs).__name__}; "
            "wrap one call's variables in [...]"
        )
    try:
        return list(inputs)
    except TypeError:
        raise ConfigurationError(f"inputs must be an iterable of mappings, not {type(inputs).__name__}") from None


def _check_count(name: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number >= 1, not {value!r}")


def _check_cap(prompt: Prompt[Any], merged: Mapping[str, Any], *, tokens: Spend | None, money: Spend | None) -> None:
    """A cap is kept only when every request's worst case is known: its length, and its price."""
    if tokens is None and money is None:
        return
    option = "max_tokens_total" if tokens is not None else "max_cost"
    if "max_tokens" not in merged:
        raise ConfigurationError(
            f"{option} needs max_tokens (on the prompt or in params=): without it a reply's "
            "length has no bound and the cap could be passed"
        )
    backend = prompt.backend
    assert backend is not None
    if money is not None and request_cost(backend.name, 1, 1) is None:
        raise ConfigurationError(
            f"max_cost needs a price for {backend.name!r} and none is known; install promptkit[prices] "
            "or set one with promptkit.set_price(model, Price(input=..., output=...))"
        )


def _merged_params(prompt: Prompt[Any], params: Params | Mapping[str, Any] | None) -> dict[str, Any]:
    if params is not None and not isinstance(params, Mapping):
        raise ConfigurationError(f"params must be a mapping of call parameters, not {params!r}")
    backend = prompt.backend
    if backend is None:
        raise ConfigurationError("this Prompt has no backend; pass one or use prompt.with_backend(...)")
    merged = {**prompt.params, **(params or {})}
    validate_params(merged, supported=backend.supported_params, backend=type(backend).__name__)
    return merged


class Engine:
    """One batch run: the jobs, the wrapped prompts, the checkpoint, the progress and the outcomes."""

    def __init__(
        self,
        prompts: Sequence[Prompt[Any]],
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: Params | Mapping[str, Any] | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_tokens_total: int | None = None,
        max_cost: float | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        _check_count("max_concurrency", max_concurrency, allow_none=False)
        _check_count("max_tokens_total", max_tokens_total, allow_none=True)
        if max_cost is not None and (
            isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)) or not max_cost > 0
        ):
            raise ConfigurationError(f"max_cost must be a positive amount of US dollars, not {max_cost!r}")
        if progress is not None and not isinstance(progress, bool):
            raise ConfigurationError(f"progress must be True, False or None (automatic), not {progress!r}")
        items = _materialise(inputs)
        self.params = dict(params or {})
        self.call_params: Params | None = cast("Params", self.params) if self.params else None
        self.max_concurrency = max_concurrency
        self.spend = (
            Spend(max_tokens_total, unit="tokens", option="max_tokens_total") if max_tokens_total is not None else None
        )
        self.money = Spend(float(max_cost), unit="USD", option="max_cost") if max_cost is not None else None
        wrapped: list[Prompt[Any]] = []
        for prompt in prompts:
            if not isinstance(prompt, Prompt):
                raise ConfigurationError(f"a batch runs Prompt objects, not {type(prompt).__name__}")
            merged = _merged_params(prompt, params)
            _check_cap(prompt, merged, tokens=self.spend, money=self.money)
            wrapped.append(self._wrap(prompt, requests_per_minute, tokens_per_minute))
        self.prompts = wrapped
        self.groups = len(prompts)
        self.jobs = [
            Job(slot=i * self.groups + g, group=g, index=i, inputs=value, prompt=wrapped[g])
            for i, value in enumerate(items)
            for g in range(self.groups)
        ]
        self.sources = list(prompts)
        self.done: list[Done | None] = [None] * len(self.jobs)
        self.checkpoint = Checkpoint(checkpoint) if checkpoint is not None else None
        self.stopping = False
        self.cap_error: SpendingCapError | None = None
        self.failed = 0
        self.tokens = 0
        self.cost: float | None = 0.0
        self.progress_flag = progress

    def _wrap(self, prompt: Prompt[Any], rpm: float | None, tpm: float | None) -> Prompt[Any]:
        backend = prompt.backend
        assert backend is not None
        wrapper: Backend = backend
        if rpm is not None or tpm is not None:
            if isinstance(backend, RateLimitedBackend):
                raise ConfigurationError(
                    "this prompt's backend is already a RateLimitedBackend; its limiter sets the limits, "
                    "so drop requests_per_minute=/tokens_per_minute= here"
                )
            wrapper = RateLimitedBackend(backend, limiter=shared_limiter(backend, rpm, tpm))
        if self.spend is not None or self.money is not None:
            wrapper = CappedBackend(wrapper, tokens=self.spend, money=self.money)
        return prompt if wrapper is backend else prompt.with_backend(wrapper)

    # -- before sending: input errors and the checkpoint ---------------------------------------------
    def prepare(self) -> list[Job]:
        """Settle what needs no call (bad inputs, checkpointed items); the jobs left to send."""
        pending = []
        for job in self.jobs:
            error: Exception | None = _check_inputs(job.inputs)
            if error is None and self.checkpoint is not None:
                try:
                    restored = self._restore(job)
                except Exception as exc:  # a template error: the item fails, as its call would
                    error = exc
                else:
                    if restored is not None:
                        self.done[job.slot] = restored
                        continue
            if error is not None:
                self.done[job.slot] = Done(job, "failed", error=error)
                self.failed += 1
                continue
            pending.append(job)
        return pending

    def _restore(self, job: Job) -> Done | None:
        """The item's result rebuilt from the checkpoint (its prompt run over the stored replies), if there."""
        source = self.sources[job.group]
        assert source.backend is not None
        assert self.checkpoint is not None
        messages = source.render(**job.inputs)
        request = source.backend.build_request(messages, {**source.params, **self.params})
        strategy = hashlib.sha256(repr(source._strategy).encode()).hexdigest()[:16]
        job.key = f"{job.index}:{inputs_digest(job.inputs)}:{request.digest[:32]}:{strategy}"
        record = self.checkpoint.lookup(job.key)
        if record is None:
            return None
        replay = source.with_backend(Replay(source.backend, record["replies"]))
        try:
            result = replay.run(params=self.call_params, **job.inputs)
        except (ReplayExhausted, PromptkitError):
            return None  # the prompt's parser or strategy now wants other replies: ask again
        info = {**result.info, "restored_from": str(self.checkpoint.path)}
        return Done(job, "ok", result=dataclasses.replace(result, info=info), restored=True)

    # -- bookkeeping ------------------------------------------------------------------------------------
    def record(self, done: Done) -> None:
        self.done[done.job.slot] = done
        if done.status == "failed":
            self.failed += 1
        usage = done.result.usage if done.result is not None else error_usage(done.error)
        self.tokens += usage.total_tokens
        cost = done.result.cost if done.result is not None else error_cost(done.error)
        self.cost = None if cost is None or self.cost is None else self.cost + cost
        if done.status == "ok" and done.result is not None and self.checkpoint is not None and done.job.key:
            self.checkpoint.write(done.job.key, done.job.index, done.result, done.seconds)
        self._bar.update(self.failed, self.tokens, self.cost)

    def _blocked(self, job: Job) -> Done | None:
        if self.stopping:
            return Done(job, "cancelled")
        if self.cap_error is not None:
            return Done(job, "skipped", error=self.cap_error)
        return None

    def _capped(self, job: Job, state: ItemState, err: SpendingCapError, started: float) -> Done:
        if state.sent == 0:  # its first request was refused: the item was never sent
            if self.cap_error is None:
                self.cap_error = err
            return Done(job, "skipped", error=err)
        return Done(job, "failed", error=err, seconds=time.perf_counter() - started)

    def attempt(self, job: Job) -> Done:
        """One item in a worker thread, through ``Prompt.run``."""
        blocked = self._blocked(job)
        if blocked is not None:
            return blocked
        state = ItemState()
        token = ITEM.set(state)
        started = time.perf_counter()
        try:
            result = job.prompt.run(params=self.call_params, **job.inputs)
        except GuardError:
            raise
        except SpendingCapError as err:
            return self._capped(job, state, err, started)
        except Exception as err:
            return Done(job, "failed", error=err, seconds=time.perf_counter() - started)
        finally:
            ITEM.reset(token)
        return Done(job, "ok", result=result, seconds=time.perf_counter() - started)

    async def aattempt(self, job: Job) -> Done:
        """One item in a task, through ``Prompt.arun``."""
        blocked = self._blocked(job)
        if blocked is not None:
            return blocked
        state = ItemState()
        token = ITEM.set(state)
        started = time.perf_counter()
        try:
            result = await job.prompt.arun(params=self.call_params, **job.inputs)
        except GuardError:
            raise
        except SpendingCapError as err:
            return self._capped(job, state, err, started)
        except Exception as err:
            return Done(job, "failed", error=err, seconds=time.perf_counter() - started)
        except KeyboardInterrupt:
            raise _Interrupted from None  # a KeyboardInterrupt escaping a task would stop the event loop
        finally:
            ITEM.reset(token)
        return Done(job, "ok", result=result, seconds=time.perf_counter() - started)

    # -- the two drivers ----------------------------------------------------------------------------------
    def _start(self) -> list[Job]:
        pending = self.prepare()
        finished = sum(d is not None for d in self.done)
        self._bar = Progress(self.progress_flag, len(self.jobs), finished)
        return pending

    def run(self) -> None:
        """Send the pending jobs from a thread pool; the calling thread only waits and records."""
        pending = self._start()
        failure: BaseException | None = None
        interrupted = False
        pool = ThreadPoolExecutor(
            max_workers=max(1, min(self.max_concurrency, len(pending))), thread_name_prefix="promptkit-batch"
        )
        futures: list[Future[Done]] = []
        try:
            futures = [pool.submit(self.attempt, job) for job in pending]
            for future in as_completed(futures):
                self._collect(future)
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C, or a call that raised it: keep what finished
        except BaseException as exc:
            failure = exc
        finally:
            self.stopping = True
            # calls in flight cannot be interrupted in their threads: they are abandoned, not awaited
            pool.shutdown(wait=failure is None and not interrupted, cancel_futures=True)
            for future in futures:  # results that finished while the batch was stopping
                if future.done() and not future.cancelled() and future.exception() is None:
                    self._collect(future)
            self._finish()
        if failure is not None:
            raise failure

    def _collect(self, future: Future[Done]) -> None:
        done = future.result()  # re-raises what the worker raised (a guard, a KeyboardInterrupt)
        if done.status != "cancelled" and self.done[done.job.slot] is None:
            self.record(done)

    async def arun(self) -> None:
        """Send the pending jobs from ``max_concurrency`` tasks; a cancelled batch keeps what finished."""
        import asyncio

        queue = deque(self._start())
        failure: BaseException | None = None

        async def worker() -> None:
            while queue and not self.stopping:
                done = await self.aattempt(queue.popleft())
                if done.status != "cancelled":
                    self.record(done)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(self.max_concurrency, len(queue)))]
        try:
            await asyncio.gather(*tasks)
        except (asyncio.CancelledError, _Interrupted):
            self.stopping = True  # the task was cancelled (a notebook interrupt): keep what finished
        except BaseException as exc:
            failure = exc
        finally:
            self.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._finish()
        if failure is not None:
            raise failure

    def _finish(self) -> None:
        self._bar.close()
        if self.checkpoint is not None:
            self.checkpoint.close()

    # -- the outcome ------------------------------------------------------------------------------------
    def results(self, elapsed: float) -> list[BatchResult[Any]]:
        groups: list[list[BatchItem[Any]]] = [[] for _ in range(self.groups)]
        for job in self.jobs:
            done = self.done[job.slot]
            if done is None:
                status: Status = "skipped" if self.cap_error is not None and not self.stopping else "cancelled"
                item: BatchItem[Any] = BatchItem(index=job.index, inputs=_inputs_of(job), status=status)
            else:
                item = BatchItem(
                    index=job.index,
                    inputs=_inputs_of(job),
                    status=done.status,
                    result=done.result,
                    error=done.error,
                    restored=done.restored,
                    seconds=done.seconds,
                )
            groups[job.group].append(item)
        return [BatchResult(items, elapsed=elapsed) for items in groups]


def _inputs_of(job: Job) -> Mapping[str, Any]:
    return job.inputs if isinstance(job.inputs, Mapping) else {}
