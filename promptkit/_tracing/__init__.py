"""Observing prompt runs without changing the code that makes them: hooks, logging, spans, run logs.

One emission path: a run reports its events (run start, strategy steps, requests, retries,
responses, parse failures, run end) to the registered hooks. The ``promptkit`` logger, the
OpenTelemetry spans (:func:`instrument`) and the JSONL run log (:func:`log_runs`) are hooks on
that same interface. With no hook registered and the logger below INFO, a run pays one check.

Private parts: ``_hooks`` (the interface, the registry, the backend wrapper), ``_log`` (the
logger's hook), ``_otel`` (GenAI spans, loads ``opentelemetry`` when enabled), ``_runlog``
(the JSONL writer and reader). Only ``_hooks`` loads with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_attributes as _lazy_attributes
from ._events import CallInfo, Hook, RunInfo, logger
from ._hooks import HookHandle, RunTrace, add_hook, hooks, remove_hook, retried, start_run

if TYPE_CHECKING:
    from ._otel import instrument, uninstrument
    from ._runlog import AttemptRecord, ErrorRecord, RunLog, RunRecord, log_runs, read_run_log

_LAZY: dict[str, str] = {
    "AttemptRecord": "._runlog",
    "ErrorRecord": "._runlog",
    "RunLog": "._runlog",
    "RunRecord": "._runlog",
    "instrument": "._otel",
    "log_runs": "._runlog",
    "read_run_log": "._runlog",
    "uninstrument": "._otel",
}

__getattr__, __dir__ = _lazy_attributes(__name__, _LAZY, globals())

__all__ = [
    "AttemptRecord",
    "CallInfo",
    "ErrorRecord",
    "Hook",
    "HookHandle",
    "RunInfo",
    "RunLog",
    "RunRecord",
    "RunTrace",
    "add_hook",
    "hooks",
    "instrument",
    "log_runs",
    "logger",
    "read_run_log",
    "remove_hook",
    "retried",
    "start_run",
    "uninstrument",
]
