"""Prompting strategies: plans of model calls written once, without I/O.

A strategy turns the rendered conversation into a generator that yields the calls it wants
sent and receives their replies; ``Prompt`` drives it with one sync and one async driver, so a
strategy never performs I/O and is never written twice. Re-asking on a parse error
(:func:`ask`) is the building block every strategy uses for a call whose reply must parse.
"""

from __future__ import annotations

from ._base import Call, Context, Outcome, Plan, Reply, Strategy, append_to_last_user, with_instruction
from ._consistency import Sample, SelfConsistency
from ._cot import ChainOfThought
from ._direct import Direct
from ._reasoning import answer_section, split_think
from ._refine import RefineStep, SelfRefine
from ._repair import ask, ask_text, repair_messages
from ._together import together

__all__ = [
    "Call",
    "ChainOfThought",
    "Context",
    "Direct",
    "Outcome",
    "Plan",
    "RefineStep",
    "Reply",
    "Sample",
    "SelfConsistency",
    "SelfRefine",
    "Strategy",
    "answer_section",
    "append_to_last_user",
    "ask",
    "ask_text",
    "repair_messages",
    "split_think",
    "together",
    "with_instruction",
]
