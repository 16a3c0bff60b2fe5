"""The seam between a strategy and the drivers: ``Call`` out, ``Completion`` back, ``Outcome`` last.

A plan is a generator. It yields a :class:`Call` and receives the :class:`Completion` (a failed
call raises out of the driver), or yields a sequence of calls and receives one :data:`Reply`
per call in the same order, a failed call's :class:`~promptkit.BackendError` in its place, so
a strategy that samples several replies decides itself what a failed sample means. It returns
an :class:`Outcome`. Because the plan does no I/O, the sync driver, the async driver and the
streaming drivers all run the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from .._errors import BackendError
from .._messages import Completion, Message

__all__ = ["Call", "Context", "Outcome", "Plan", "Reply", "Strategy"]

T = TypeVar("T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One request a strategy asks the driver to send.

    ``params`` are laid over the prompt's and the call's parameters; ``purpose`` labels the
    attempt on the result (``"answer"``, ``"repair"``, ...); ``sample`` is the sample index a
    cache keys on, so repeated samples of one conversation are never merged; ``stream`` says the
    call may be streamed when the caller streams (previews come from its deltas).
    """

    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    purpose: str = "answer"
    sample: int | None = None
    stream: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Generic[T]):
    """What a plan returns: the value, the reply it came from, and what the strategy saw."""

    value: T
    completion: Completion
    info: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a strategy may use: the rendered conversation and the prompt's own tools.

    ``parse`` parses one reply with the prompt's parser (and records the verdict on that reply's
    attempt); ``repair`` is the number of re-asks allowed per answer; ``supported_params`` are
    the backend's, for strategies that use a parameter only where it exists.
    """

    messages: tuple[Message, ...]
    parse: Callable[[Completion], Any]
    repair: int
    supported_params: frozenset[str] = frozenset()


Reply = Completion | BackendError
"""One reply of a group of calls: the completion, or the error that call ended with."""

Plan = Generator["Call | Sequence[Call]", Any, Outcome[Any]]
"""A strategy's plan: yields calls, receives replies, returns the :class:`Outcome`."""


class Strategy(Protocol):
    """A way of getting a value from a model: a plan of calls, written once for every driver.

    ``streams`` is False for strategies whose answer cannot be previewed while it streams.
    """

    @property
    def name(self) -> str: ...

    @property
    def streams(self) -> bool: ...

    def plan(self, context: Context) -> Plan: ...
