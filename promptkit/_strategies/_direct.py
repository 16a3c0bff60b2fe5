"""The default strategy: send the rendered prompt (zero- or few-shot) and parse the answer."""

from __future__ import annotations

from ._base import Context, Outcome, Plan
from ._repair import ask

__all__ = ["Direct"]


class Direct:
    """Ask the prompt as rendered and parse the reply, re-asking on a parse error.

    Zero-shot and few-shot are this strategy: the examples are already in the messages.
    """

    name = "direct"
    streams = True

    def plan(self, context: Context) -> Plan:
        value, completion = yield from ask(context, context.messages)
        return Outcome(value=value, completion=completion)

    def __repr__(self) -> str:
        return "Direct()"
