"""The ``promptkit`` logger as a hook: one line per request, reply and parse failure, never content.

DEBUG: a request sent, a response received (model, tokens, latency, finish reason) or a call
failed. INFO: a reply that did not parse (its error type and what was expected, not the
parser's message, which quotes the reply). Retries are logged by the retry layer itself, at
WARNING. Message text, inputs and parameters are never logged; backend error messages pass
through :func:`~promptkit._utils.redact`, so a key quoted by a provider is masked.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .._messages import Completion
from .._utils import redact
from ._events import CallInfo, Hook, RunInfo, logger

__all__ = ["LOG_HOOK", "LogHook"]


class LogHook(Hook):
    """Writes the run's events to the ``promptkit`` logger (added to a run when INFO is enabled)."""

    def on_request(self, call: CallInfo) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "request sent: backend=%s purpose=%s%s run=%d",
                call.request.backend,
                call.purpose,
                "" if call.sample is None else f" sample={call.sample}",
                call.run.id,
            )

    def on_response(self, call: CallInfo, completion: Completion | None, error: BaseException | None) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        seconds = time.perf_counter() - call.started
        if completion is not None:
            usage = completion.usage
            logger.debug(
                "response received: model=%s tokens in=%d out=%d latency=%.3f s finish=%s run=%d",
                completion.model or call.request.backend,
                usage.input_tokens,
                usage.output_tokens,
                seconds,
                completion.finish_reason,
                call.run.id,
            )
        elif error is not None:
            logger.debug(
                "call failed: backend=%s after %.3f s (%s: %s) run=%d",
                call.request.backend,
                seconds,
                type(error).__name__,
                redact(str(error)),
                call.run.id,
            )
        else:
            logger.debug(
                "stream closed early: backend=%s after %.3f s run=%d", call.request.backend, seconds, call.run.id
            )

    def on_parse_failure(self, run: RunInfo, completion: Completion, error: BaseException) -> None:
        # a parser's message quotes the reply, so only what was expected is logged
        expected = getattr(error, "expected", "")
        logger.info(
            "reply did not parse (%s%s; %d characters); strategy=%s run=%d",
            type(error).__name__,
            f", expected {expected}" if expected else "",
            len(completion.text),
            run.strategy,
            run.id,
        )

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        if error is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug("run failed: %s run=%d", type(error).__name__, run.id)

    def __repr__(self) -> str:
        return "LogHook()"


LOG_HOOK = LogHook()
