"""What hooks receive: :class:`Hook` (the interface), :class:`RunInfo` and :class:`CallInfo`, and the logger."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

from .._messages import Completion, Message
from ..backends._contract import Request

__all__ = ["CallInfo", "Hook", "RunInfo", "logger"]

logger = logging.getLogger("promptkit")
logger.addHandler(logging.NullHandler())  # a library prints nothing unless the application asks

_ids = itertools.count(1)


class RunInfo:
    """One prompt run as hooks see it: identity, inputs and rendered messages, fixed at its start.

    ``id`` is unique in the process; ``started`` is the wall-clock start (``time.time()``);
    ``template`` is the prompt's template (``None`` for a run not started by a ``Prompt``);
    ``state`` is scratch space a hook may key by itself to keep per-run data.
    """

    __slots__ = ("backend", "id", "inputs", "messages", "params", "started", "state", "strategy", "template")

    def __init__(
        self,
        *,
        backend: str,
        strategy: str,
        messages: tuple[Message, ...],
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        template: Any,
    ) -> None:
        self.id = next(_ids)
        self.backend = backend
        self.strategy = strategy
        self.messages = messages
        self.inputs = inputs
        self.params = params
        self.template = template
        self.started = time.time()
        self.state: dict[object, Any] = {}

    @property
    def prompt_name(self) -> str | None:
        """The template's name (set by ``name=`` or a ``.prompt`` file), if it has one."""
        name = getattr(self.template, "name", None)
        return name if isinstance(name, str) else None

    def __repr__(self) -> str:
        return f"<RunInfo #{self.id} {self.strategy} on {self.backend}>"


class CallInfo:
    """One model call of a run: why the strategy made it and the validated request sent.

    ``purpose`` is the strategy's label (``"answer"``, ``"repair"``, ``"sample"``, ...), ``sample``
    the sample index, ``index`` the call's position in the run (0-based), ``stream`` whether it
    streams, and ``started`` its ``time.perf_counter()`` start. ``state`` is per-hook scratch space.
    """

    __slots__ = ("_hooks", "index", "otel_context", "purpose", "request", "run", "sample", "started", "state", "stream")

    def __init__(self, run: RunInfo, request: Request, *, purpose: str, sample: int | None, index: int) -> None:
        self.run = run
        self.request = request
        self.purpose = purpose
        self.sample = sample
        self.index = index
        self.stream = False
        self.started = time.perf_counter()
        self.state: dict[object, Any] = {}
        self.otel_context: Any = None  # the OpenTelemetry context of the call's span, while it runs
        self._hooks: tuple[Any, ...] = ()  # the run's hooks, for retries reported from inside the backend

    def __repr__(self) -> str:
        return f"<CallInfo #{self.run.id}.{self.index} {self.purpose}>"


class Hook:
    """An observer of prompt runs: subclass it and override the events you want (all no-ops here).

    Hooks are plain synchronous methods, called in the sync and the async paths alike, on the
    thread or task making the call; keep them quick (queue slow work elsewhere). An exception
    raised by a hook is logged once on the ``promptkit`` logger and otherwise ignored.

    >>> import promptkit
    >>> from promptkit.testing import MockBackend
    >>> class Count(promptkit.Hook):
    ...     calls = 0
    ...     def on_response(self, call, completion, error):
    ...         self.calls += 1
    >>> counter = Count()
    >>> with promptkit.add_hook(counter):
    ...     promptkit.Prompt("Hi", MockBackend(["Hello"])).complete()
    'Hello'
    >>> counter.calls
    1
    """

    def on_run_start(self, run: RunInfo) -> None:
        """A prompt run has begun: its messages are rendered, no model call made yet."""

    def on_step(self, run: RunInfo, call: CallInfo) -> None:
        """The strategy asked for a call (``call.purpose`` says why); sent right after."""

    def on_request(self, call: CallInfo) -> None:
        """A request is about to be sent to the backend."""

    def on_retry(self, call: CallInfo | None, attempt: int, error: BaseException, wait: float) -> None:
        """Attempt ``attempt`` of a call failed with ``error``; it is retried in ``wait`` seconds.

        ``call`` is ``None`` for a backend used directly, outside a prompt run.
        """

    def on_response(self, call: CallInfo, completion: Completion | None, error: BaseException | None) -> None:
        """A call is over: its ``completion``, or the ``error`` it ended with.

        Both are ``None`` when a stream was closed before it ended.
        """

    def on_parse_failure(self, run: RunInfo, completion: Completion, error: BaseException) -> None:
        """A reply did not parse (the strategy may re-ask)."""

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        """The run is over: its :class:`~promptkit.Result`, or the ``error`` it raised (then ``result`` is ``None``)."""
