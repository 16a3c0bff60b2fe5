"""Prompting strategies: plans of model calls written once, without I/O.

A strategy turns the rendered conversation into a generator that yields the calls it wants
sent and receives their replies; ``Prompt`` drives it with one sync and one async driver, so a
strategy never performs I/O and is never written twice. Re-asking on a parse error
(:func:`ask`) is the building block every strategy uses for a call whose reply must parse.
"""

from __future__ import annotations

from ._base import Call, Context, Outcome, Plan, Reply, Strategy
from ._direct import Direct
from ._repair import ask, repair_messages

__all__ = ["Call", "Context", "Direct", "Outcome", "Plan", "Reply", "Strategy", "ask", "repair_messages"]
