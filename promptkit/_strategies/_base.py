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
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .._errors import BackendError
from .._messages import Completion, Message, TextPart

if TYPE_CHECKING:
    from ..backends._contract import Backend

__all__ = [
    "Call",
    "Context",
    "Outcome",
    "Plan",
    "Reply",
    "Strategy",
    "append_to_last_user",
    "planned_calls",
    "with_instruction",
]

T = TypeVar("T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One request a strategy asks the driver to send.

    ``params`` are laid over the prompt's and the call's parameters (a value of
    :data:`~promptkit.UNSET` removes that parameter for this call, e.g. ``output_schema`` for a
    free-text step); ``purpose`` labels the attempt on the result (``"answer"``, ``"repair"``,
    ``"critique"``, ...); ``sample`` is the sample index a cache keys on, so repeated samples of
    one conversation are never merged; ``stream`` says the call may be streamed when the caller
    streams (previews come from its deltas; with ``answer_tag``, only from the text inside that
    tag's section); ``backend`` sends this call elsewhere (a critic).

    >>> from promptkit import Message
    >>> Call(messages=(Message("user", "Hi"),), purpose="critique").sample is None
    True
    """

    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    purpose: str = "answer"
    sample: int | None = None
    stream: bool = True
    backend: Backend | None = None
    answer_tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Generic[T]):
    """What a plan returns: the value, the reply it came from, and what the strategy saw."""

    value: T
    completion: Completion
    info: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a strategy may use: the rendered conversation and the prompt's own tools.

    ``parse(completion, extract=None)`` parses one reply with the prompt's parser (``extract``,
    when given, picks the part of the reply to parse, e.g. a marked answer section, and may raise
    :class:`~promptkit.ParseError` itself) and records the verdict on that reply's attempt;
    ``repair`` is the number of re-asks allowed per answer;
    ``params`` are the call's parameters (``output_schema`` or ``constraint`` among them when the
    server constrains the reply); ``supported_params`` are the backend's, for strategies that use a parameter
    only where it exists.
    """

    messages: tuple[Message, ...]
    parse: Callable[..., Any]
    repair: int
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    supported_params: frozenset[str] = frozenset()

    @property
    def native(self) -> bool:
        """True when the reply is constrained by the provider (native structured output or a
        ``constraint`` for constrained decoding): it cannot hold free text around the answer."""
        return "output_schema" in self.params or "constraint" in self.params


Reply = Completion | BackendError
"""One reply of a group of calls: the completion, or the error that call ended with."""

Plan = Generator["Call | Sequence[Call]", Any, Outcome[Any]]
"""A strategy's plan: yields calls, receives replies, returns the :class:`Outcome`."""


class Strategy(Protocol):
    """A way of getting a value from a model: a plan of calls, written once for every driver.

    ``name`` labels results; ``streams`` is False for strategies whose answer cannot be previewed
    while it streams (``prompt.stream()`` then raises at once). ``plan(context)`` is a generator:
    it yields :class:`Call` objects (or lists of them, sent concurrently), receives the replies
    and returns an :class:`Outcome`. A strategy may also define ``check(*, params, parser,
    backend)``, called when a prompt is built with it, to refuse settings it cannot work with,
    and ``planned_calls`` (an int: the model calls one run makes when every reply parses, the
    most when it may stop early), which dry runs multiply by; without it a run counts as one call.
    See ``docs/strategies.md`` for a complete user-defined strategy.
    """

    @property
    def name(self) -> str: ...

    @property
    def streams(self) -> bool: ...

    def plan(self, context: Context) -> Plan: ...


def planned_calls(strategy: object) -> int:
    """The model calls one run of ``strategy`` makes when every reply parses (1 unless it says)."""
    calls = getattr(strategy, "planned_calls", 1)
    return calls if isinstance(calls, int) and not isinstance(calls, bool) and calls >= 1 else 1


def append_to_last_user(messages: list[Message], instructions: str) -> None:
    """Add ``instructions`` to the last user message in place (a new one when there is none)."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, str):
            messages[i] = Message("user", f"{content}\n\n{instructions}" if content else instructions)
        else:
            messages[i] = Message("user", (*content, TextPart(text=instructions)))
        return
    messages.append(Message("user", instructions))


def with_instruction(messages: tuple[Message, ...], text: str) -> tuple[Message, ...]:
    """The conversation with ``text`` added to its last user message (a strategy's instruction)."""
    changed = list(messages)
    append_to_last_user(changed, text)
    return tuple(changed)
