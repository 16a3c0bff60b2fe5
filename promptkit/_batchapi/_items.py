"""One input of a provider batch job: its strategy's run, the calls it waits on, and how it ended.

A prompt's strategy is a plan without I/O (see ``promptkit._run``), so a batch job drives it the
way the sync driver does, one batch round per step: the calls of every item's current step go
into the round's provider batches; when the round ends, each item's replies go back into its
plan, which returns the value, or asks for more calls (a repair re-ask, a second turn, a
critique), sent in the next round. A failed call ends the item with its error, as it ends a
direct call; the calls of a group (self-consistency's samples) get their errors back, as the
drivers give them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._batch import BatchItem
from .._batch._results import Status
from .._errors import BackendError, BatchCancelledError, ConfigurationError, PromptkitError, ResponseError
from .._messages import Completion
from .._prompt import Prompt
from .._run import Run
from .._strategies import Call, Outcome
from ..backends import Backend, Request

__all__ = ["Item", "Pending", "start_items"]


@dataclass(frozen=True, slots=True)
class Pending:
    """A call an item waits on: its custom id, the backend it goes to and the built request."""

    custom_id: str
    backend: Backend
    request: Request
    call: Call


class Item:
    """One input: its run while calls are outstanding, its :class:`BatchItem` once it ended."""

    __slots__ = ("done", "group", "index", "inputs", "pending", "run")

    def __init__(self, index: int, inputs: Mapping[str, Any], run: Run[Any]) -> None:
        self.index = index
        self.inputs = inputs
        self.run: Run[Any] | None = run
        self.pending: list[Pending] = []
        self.group = False  # the pending calls are one group (their errors go back to the plan)
        self.done: BatchItem[Any] | None = None

    def advance(self, step: Any, round_number: int) -> None:
        """Take the plan's next step: finish on an outcome, else note the calls for ``round_number``."""
        run = self.run
        assert run is not None
        if isinstance(step, Outcome):
            self._finish(BatchItem(index=self.index, inputs=self.inputs, status="ok", result=run.result(step)))
            return
        calls = [step] if isinstance(step, Call) else list(step)
        self.group = not isinstance(step, Call)
        self.pending = []
        for k, call in enumerate(calls):
            custom_id = f"pk{round_number}-{self.index}" + (f"-{k}" if self.group else "")
            self.pending.append(Pending(custom_id, run.backend_for(call), run.request(call), call))

    def feed(self, replies: Mapping[str, Completion | BackendError], round_number: int) -> None:
        """Give the plan the replies of its pending calls (by custom id) and take its next step."""
        run = self.run
        assert run is not None
        started = time.perf_counter()  # a batch call's own duration is unknown: attempts show ~0 s
        got: list[Completion | BackendError] = []
        for pending in self.pending:
            reply = replies.get(pending.custom_id)
            if reply is None:
                name = pending.backend.name
                reply = ResponseError(
                    f"{name}: the provider's batch results hold no reply for this item", provider=name
                )
            if isinstance(reply, Completion):
                run.record(pending.call, started, reply)
            else:
                run.record(pending.call, started, error=reply)
            got.append(reply)
        self.pending = []
        try:
            if self.group:
                step = run.send(got)
            else:
                reply = got[0]
                if isinstance(reply, BackendError):
                    raise reply
                step = run.send(reply)
        except PromptkitError as exc:
            self.fail(exc)
            return
        self.advance(step, round_number + 1)

    def fail(self, error: PromptkitError) -> None:
        status: Status = "cancelled" if isinstance(error, BatchCancelledError) else "failed"
        if self.run is not None:
            self.run.fail(error)
        self._finish(BatchItem(index=self.index, inputs=self.inputs, status=status, error=error))

    def _finish(self, item: BatchItem[Any]) -> None:
        if self.run is not None:
            self.run.close()
        self.run = None
        self.pending = []
        self.done = item


def start_items(
    prompt: Prompt[Any], inputs: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None
) -> list[Item]:
    """Every input's run, started: its first calls pending (round 0), or finished when it needs none.

    An input that cannot be rendered raises here, before anything is sent: the error names every
    such input (the first one's error as its cause).
    """
    items: list[Item] = []
    problems: list[tuple[int, Exception]] = []
    for index, values in enumerate(inputs):
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"input {index} must be a mapping of template variables, not {values!r}")
        try:
            run: Run[Any] = prompt._start(values, params, prompt._select(values), traced=False)  # type: ignore[arg-type]
            item = Item(index, values, run)
            item.advance(run.send(None), 0)
        except PromptkitError as exc:
            problems.append((index, exc))
            continue
        items.append(item)
    if problems:
        shown = "; ".join(f"input {i}: {type(e).__name__}: {e}" for i, e in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ConfigurationError(
            f"{len(problems)} of {len(inputs)} inputs cannot be sent, so nothing was uploaded: {shown}{more}"
        ) from problems[0][1]
    return items
