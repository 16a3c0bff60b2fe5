"""``BatchJob``: a prompt's inputs sent through a provider batch API, saved, resumed and collected.

The job keeps what a provider batch needs to be found again (each round's provider batch ids and
custom ids), the inputs, the call parameters and a fingerprint of every first request; the
strategy runs themselves are rebuilt from those on :meth:`BatchJob.load`: the first requests are
rendered again (a different prompt, other inputs or other parameters change the fingerprint and
are refused), and the replies of the rounds already collected are read again from the provider
and fed back, so the runs stand where they stood.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .._batch import BatchItem, BatchResult
from .._errors import (
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    PromptkitError,
    UnsupportedCapabilityError,
)
from .._messages import Completion
from .._prompt import Prompt
from ..backends._batchapi import BatchAdapter, BatchLimits, Entry, ProviderBatch, adapter_for, base_backend
from ._items import Item, Pending, start_items

if TYPE_CHECKING:
    from ..backends import Params

__all__ = ["FORMAT", "BatchJob", "JobStatus", "backoff_delays", "submit_batch"]

T = TypeVar("T")

FORMAT = 1
"""The version of a saved job's JSON."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStatus:
    """Where a batch job stands after a poll.

    ``state`` is ``"in_progress"`` while a round of provider batches runs and ``"ended"`` once
    every item has its result or error. ``round`` counts the rounds submitted so far (a strategy
    that re-asks or takes several turns uses one round per turn); ``finished`` and ``pending``
    count items; ``batches`` are the current round's provider batches as last read.

    >>> JobStatus(state="ended", round=1, items=2, finished=2).done
    True
    """

    state: Literal["in_progress", "ended"]
    round: int
    items: int
    finished: int
    batches: tuple[ProviderBatch, ...] = ()

    @property
    def done(self) -> bool:
        """True once every item has ended."""
        return self.state == "ended"

    @property
    def pending(self) -> int:
        """Items still waiting on a provider batch."""
        return self.items - self.finished


@dataclass(slots=True)
class _Sent:
    """One provider batch of a round: which adapter sent it and the custom ids it holds."""

    adapter: BatchAdapter
    batch: ProviderBatch
    custom_ids: list[str]
    collected: bool = False


@dataclass(slots=True)
class _Round:
    sent: list[_Sent] = field(default_factory=list)


def backoff_delays(first: float, *, factor: float = 2.0, cap: float = 300.0) -> Iterable[float]:
    """The waits between polls: ``first``, then multiplied by ``factor`` each time, capped at ``cap``.

    >>> import itertools
    >>> list(itertools.islice(backoff_delays(10, cap=60), 5))
    [10.0, 20.0, 40.0, 60.0, 60.0]
    """
    delay, cap = float(first), float(cap)
    while True:
        yield min(delay, cap)
        delay = min(delay * factor, cap)


class BatchJob(Generic[T]):
    """A prompt's inputs sent through a provider batch API; results collected later, here or elsewhere.

    Made by :meth:`Prompt.submit_batch`. :meth:`status` polls the provider (and, when a round
    ends, reads its results and submits the next round a strategy needs); :meth:`wait` polls with
    exponential backoff until every item has ended; :meth:`results` gives the
    :class:`~promptkit.BatchResult` in input order, each value parsed by the prompt's parser,
    usage and cost per item at the provider's batch rates. :meth:`save` writes the job as JSON
    (later rounds are saved there too) and :meth:`load` picks it up in another process.

    >>> from promptkit import Prompt
    >>> from promptkit.backends.openai import OpenAIBackend
    >>> from promptkit.testing import ProviderServer
    >>> with ProviderServer(default="ok") as server, OpenAIBackend(
    ...     model="gpt-4o-mini", base_url=server.openai_base_url, api_key="test"
    ... ) as llm:
    ...     job = Prompt("Say {{ word }}", llm).submit_batch([{"word": "hi"}, {"word": "yo"}])
    ...     job.wait(sleep=lambda seconds: None).values
    ['ok', 'ok']
    """

    def __init__(
        self,
        prompt: Prompt[T],
        items: list[Item],
        *,
        inputs: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any] | None,
        limits: BatchLimits | None,
        fingerprint: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.prompt = prompt
        self._items = items
        self._inputs = list(inputs)
        self._params = dict(params) if params else None
        self._limits = limits
        self._metadata = dict(metadata) if metadata else None
        self.fingerprint = fingerprint
        self._rounds: list[_Round] = []
        self._adapters: dict[int, BatchAdapter] = {}
        self.path: Path | None = None
        self._last: tuple[ProviderBatch, ...] = ()

    # -- the public surface -------------------------------------------------------------------
    @property
    def batch_ids(self) -> list[str]:
        """The provider batch ids of every round, in order."""
        return [sent.batch.id for rnd in self._rounds for sent in rnd.sent]

    @property
    def done(self) -> bool:
        """True once every item has ended (read on the last poll)."""
        return all(item.done is not None for item in self._items)

    def status(self) -> JobStatus:
        """Poll the provider once: the current round's batches; when they have all ended, their
        results are read, and the items that need another call go out in the next round."""
        current = self._rounds[-1] if self._rounds else None
        if current is not None and not self.done and all(sent.collected for sent in current.sent):
            self._submit_round()  # the round after this one could not be submitted last time
        elif current is not None and not self.done:
            for sent in current.sent:
                if sent.batch.state not in ("ended", "failed"):
                    sent.batch = sent.adapter.retrieve(sent.batch.id)
            self._last = tuple(sent.batch for sent in current.sent)
            if all(sent.batch.state in ("ended", "failed") for sent in current.sent):
                self._collect(len(self._rounds) - 1)
                if not self.done:
                    self._submit_round()
                if self.path is not None:
                    self.save(self.path)
        return self._snapshot()

    def wait(
        self,
        *,
        poll: float = 10.0,
        max_poll: float = 300.0,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> BatchResult[T]:
        """Poll until every item has ended, then return :meth:`results`.

        The waits between polls start at ``poll`` seconds and double up to ``max_poll``; they
        start over when a new round is submitted. ``timeout`` (seconds spent waiting) raises
        :class:`~promptkit.BackendTimeoutError` and leaves the job as it is (save it, wait
        again later). ``sleep`` is the function that waits (a test passes its own).
        """
        backoff = _Backoff(poll, max_poll, timeout)
        status = self.status()
        while not status.done:
            sleep(backoff.next(status))
            status = self.status()
        return self.results()

    async def astatus(self) -> JobStatus:
        """Async :meth:`status`: the provider calls run in a worker thread, the loop stays free."""
        import asyncio

        return await asyncio.to_thread(self.status)

    async def wait_async(
        self,
        *,
        poll: float = 10.0,
        max_poll: float = 300.0,
        timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> BatchResult[T]:
        """Async :meth:`wait`: polls through :meth:`astatus`, waits with ``asyncio.sleep`` (or ``sleep``)."""
        import asyncio

        pause = sleep if sleep is not None else asyncio.sleep
        backoff = _Backoff(poll, max_poll, timeout)
        status = await self.astatus()
        while not status.done:
            await pause(backoff.next(status))
            status = await self.astatus()
        return self.results()

    def results(self) -> BatchResult[T]:
        """The items in input order, once every one has ended (else a :class:`ConfigurationError`)."""
        pending = [item.index for item in self._items if item.done is None]
        if pending:
            raise ConfigurationError(
                f"the batch job has not ended: {len(pending)} of {len(self._items)} items are pending in "
                f"round {len(self._rounds)}; call job.wait() (or job.status() until it is done)"
            )
        done: list[BatchItem[T]] = [item.done for item in self._items]  # type: ignore[misc]
        return BatchResult(done)

    def cancel(self) -> JobStatus:
        """Ask the provider to cancel the current round's batches; the items they had not run end
        ``cancelled`` on the next polls."""
        if self._rounds:
            for sent in self._rounds[-1].sent:
                if sent.batch.state == "in_progress":
                    sent.batch = sent.adapter.cancel(sent.batch.id)
        return self._snapshot()

    # -- submitting and collecting ------------------------------------------------------------
    def _adapter(self, pending: Pending) -> BatchAdapter:
        base = base_backend(pending.backend)
        found = self._adapters.get(id(base))
        if found is None:
            found = self._adapters[id(base)] = adapter_for(base, limits=self._limits)
        return found

    def _groups(self) -> dict[int, tuple[BatchAdapter, list[Entry]]]:
        """The pending calls of every item, as entries per adapter (per backend, so per model)."""
        groups: dict[int, tuple[BatchAdapter, list[Entry]]] = {}
        for item in self._items:
            try:
                adapters = [self._adapter(pending) for pending in item.pending]
            except UnsupportedCapabilityError as exc:  # a later turn's call to a backend without a batch API
                item.fail(exc)
                continue
            for adapter, pending in zip(adapters, item.pending, strict=True):
                _, entries = groups.setdefault(id(adapter), (adapter, []))
                entries.append(adapter.entry(pending.custom_id, pending.request))
        return groups

    def _submit_round(self) -> None:
        rnd = _Round()
        try:
            for adapter, entries in self._groups().values():
                for chunk in _chunks(entries, adapter.limits):
                    batch = adapter.create(chunk, metadata=self._metadata)
                    rnd.sent.append(_Sent(adapter, batch, [entry.custom_id for entry in chunk]))
        except BaseException:
            for sent in rnd.sent:  # nothing half-submitted is left running at the provider
                try:
                    sent.adapter.cancel(sent.batch.id)
                except PromptkitError:
                    pass
            raise
        self._rounds.append(rnd)
        self._last = tuple(sent.batch for sent in rnd.sent)

    def _collect(self, number: int) -> None:
        """Read round ``number``'s results and feed every item waiting on them."""
        replies: dict[str, Completion | BackendError] = {}
        for sent in self._rounds[number].sent:
            if sent.batch.state == "failed":
                error = BadRequestError(
                    f"{sent.adapter.provider}: the provider failed batch {sent.batch.id}: {sent.batch.error}",
                    provider=sent.adapter.provider,
                )
                replies.update(dict.fromkeys(sent.custom_ids, error))
            else:
                replies.update(sent.adapter.results(sent.batch))
            sent.collected = True
        for item in self._items:
            if item.pending:
                item.feed(replies, number)

    def _snapshot(self) -> JobStatus:
        finished = sum(1 for item in self._items if item.done is not None)
        return JobStatus(
            state="ended" if finished == len(self._items) else "in_progress",
            round=len(self._rounds),
            items=len(self._items),
            finished=finished,
            batches=self._last,
        )

    # -- saving and resuming ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The job as JSON: ids, custom ids, inputs, parameters and the prompt's fingerprint."""
        try:
            inputs: Any = json.loads(json.dumps(self._inputs))
        except (TypeError, ValueError):
            inputs = None  # not JSON: load() then needs them again
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "backend": self.prompt.backend.name if self.prompt.backend is not None else None,
            "items": len(self._items),
            "inputs": inputs,
            "params": self._params,
            "limits": None
            if self._limits is None
            else {"max_requests": self._limits.max_requests, "max_bytes": self._limits.max_bytes},
            "metadata": self._metadata,
            "rounds": [
                [
                    {
                        "provider": sent.batch.provider,
                        "backend": sent.adapter.name,
                        "id": sent.batch.id,
                        "custom_ids": sent.custom_ids,
                        "collected": sent.collected,
                    }
                    for sent in rnd.sent
                ]
                for rnd in self._rounds
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the job to ``path`` (JSON, replaced atomically); later rounds are saved there too."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")), encoding="utf-8")
        except TypeError as exc:
            raise ConfigurationError(f"the job's call parameters cannot be saved as JSON: {exc}") from exc
        os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        prompt: Prompt[T],
        *,
        inputs: Sequence[Mapping[str, Any]] | None = None,
    ) -> BatchJob[T]:
        """The job saved at ``path``, resumed with the ``prompt`` that submitted it.

        ``inputs`` are needed only when they could not be saved as JSON. The first requests are
        rendered again and must match the saved fingerprint; the rounds already collected are
        read again from the provider.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read a batch job from {os.fspath(path)!r}: {exc}") from exc
        job = cls.from_json(data, prompt, inputs=inputs)
        job.path = Path(path)
        return job

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], prompt: Prompt[T], *, inputs: Sequence[Mapping[str, Any]] | None = None
    ) -> BatchJob[T]:
        """The job :meth:`to_json` wrote, resumed with ``prompt`` (see :meth:`load`)."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ConfigurationError(f"not a saved batch job of format {FORMAT}")
        given = inputs if inputs is not None else data.get("inputs")
        if given is None:
            raise ConfigurationError("the saved job holds no inputs (they were not JSON); pass inputs=...")
        if len(given) != data["items"]:
            raise ConfigurationError(f"the job has {data['items']} inputs, {len(given)} were given")
        limits = BatchLimits(**data["limits"]) if data.get("limits") else None
        job = _build(prompt, given, params=data.get("params"), limits=limits, metadata=data.get("metadata"))
        if job.fingerprint != data["fingerprint"]:
            raise ConfigurationError(
                "this batch job was submitted with another prompt, other inputs or other parameters: the "
                f"requests rendered now differ from those sent (fingerprint {job.fingerprint[:12]} != "
                f"{str(data['fingerprint'])[:12]}); load it with the prompt that submitted it"
            )
        for number, saved in enumerate(data["rounds"]):
            adapters = {base_backend(p.backend).name: job._adapter(p) for item in job._items for p in item.pending}
            expected = sorted(p.custom_id for item in job._items for p in item.pending)
            if sorted(cid for batch in saved for cid in batch["custom_ids"]) != expected:
                raise ConfigurationError(f"round {number} of the saved job does not match the prompt's calls")
            rnd = _Round()
            for batch in saved:
                adapter = adapters.get(batch["backend"])
                if adapter is None:
                    raise ConfigurationError(f"the saved job sent a batch to {batch['backend']}, which no call uses")
                snapshot = ProviderBatch(id=batch["id"], provider=batch["provider"], state="in_progress", status="")
                rnd.sent.append(_Sent(adapter, snapshot, list(batch["custom_ids"])))
            job._rounds.append(rnd)
            if all(batch.get("collected") for batch in saved):
                for sent in rnd.sent:
                    sent.batch = sent.adapter.retrieve(sent.batch.id)
                job._collect(number)
        return job

    def __repr__(self) -> str:
        status = self._snapshot()
        return (
            f"<BatchJob {status.items} items, round {status.round}, {status.finished} ended; "
            f"batches={self.batch_ids[-3:]}>"
        )


class _Backoff:
    """The waits between a job's polls: exponential, starting over at each new round, within a timeout."""

    def __init__(self, poll: float, max_poll: float, timeout: float | None) -> None:
        for name, value in (("poll", poll), ("max_poll", max_poll), ("timeout", timeout)):
            if value is None and name == "timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
        self.poll, self.max_poll, self.timeout = poll, max_poll, timeout
        self.started = time.monotonic()
        self.waited = 0.0
        self.round = -1
        self.delays: Iterator[float] = iter(())

    def next(self, status: JobStatus) -> float:
        """How long to wait before the next poll; a timeout error once the wait would pass ``timeout``."""
        if status.round != self.round:
            self.round = status.round
            self.delays = iter(backoff_delays(self.poll, cap=self.max_poll))
        delay: float = next(self.delays)
        spent = max(self.waited, time.monotonic() - self.started)
        if self.timeout is not None and spent + delay > self.timeout:
            raise BackendTimeoutError(
                f"the batch job has not ended after {self.timeout:g} s of waiting ({status.pending} of "
                f"{status.items} items pending in round {status.round}); call wait() again later",
                retryable=True,
            )
        self.waited += delay
        return delay


def _chunks(entries: list[Entry], limits: BatchLimits) -> Iterable[list[Entry]]:
    """Consecutive runs of entries within the limits (a line's bytes count its newline)."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        length = len(entry.data) + 1
        if length > limits.max_bytes:
            raise ConfigurationError(
                f"the request {entry.custom_id} alone is {length} bytes, more than one batch may hold "
                f"({limits.max_bytes})"
            )
        if chunk and (len(chunk) >= limits.max_requests or size + length > limits.max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += length
    if chunk:
        yield chunk


def _fingerprint(prompt: Prompt[Any], items: list[Item]) -> str:
    """What identifies the job's prompt: every first request's digest, the parser and the strategy."""
    digest = hashlib.sha256()
    parser = type(prompt.parser).__qualname__  # not its module: the public name is set when first imported
    digest.update(f"{parser}|{prompt.strategy.name}|{prompt.repair}".encode())
    for item in items:
        digest.update(f"|{item.index}:".encode())
        for pending in item.pending:
            digest.update(pending.request.digest.encode())
        if item.done is not None:
            digest.update(b"done")
    return digest.hexdigest()


def _build(
    prompt: Prompt[T],
    inputs: Sequence[Mapping[str, Any]],
    *,
    params: Mapping[str, Any] | None,
    limits: BatchLimits | None,
    metadata: Mapping[str, str] | None,
) -> BatchJob[T]:
    if prompt.backend is None:
        raise ConfigurationError("this Prompt has no backend; pass one or use prompt.with_backend(...)")
    adapter_for(prompt.backend, limits=limits)  # refuses a backend without a batch API first
    items = start_items(prompt, inputs, params)
    return BatchJob(
        prompt,
        items,
        inputs=inputs,
        params=params,
        limits=limits,
        fingerprint=_fingerprint(prompt, items),
        metadata=metadata,
    )


def submit_batch(
    prompt: Prompt[T],
    inputs: Iterable[Mapping[str, Any]],
    *,
    params: Params | None = None,
    limits: BatchLimits | None = None,
    metadata: Mapping[str, str] | None = None,
    save: str | os.PathLike[str] | None = None,
) -> BatchJob[T]:
    """What :meth:`Prompt.submit_batch` runs."""
    if isinstance(inputs, (str, bytes, Mapping)):
        raise ConfigurationError("inputs must be a list of mappings (one per call), not a single value")
    given = list(inputs)
    if not given:
        raise ConfigurationError("submit_batch() needs at least one input; nothing was uploaded")
    job = _build(prompt, given, params=params, limits=limits, metadata=metadata)
    if save is not None:
        job.save(save)  # before the upload: a bad path fails before anything is sent
    if not job.done:
        job._submit_round()
    if save is not None:
        job.save(save)
    return job
