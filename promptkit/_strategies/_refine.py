"""Self-refine: draft, critique, revise, in a bounded loop with a stop condition."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ConfigurationError
from .._messages import Completion, Message
from .._templates import ChatTemplate, Template
from ._base import Context, Outcome, Plan, Strategy, planned_calls
from ._direct import Direct
from ._repair import ask, ask_text

if TYPE_CHECKING:
    from ..backends._contract import Backend

__all__ = ["RefineStep", "SelfRefine"]

DEFAULT_CRITIQUE = (
    "Review a draft answer to a task.\n\n"
    "Task:\n{{ task }}\n\n"
    "Draft answer:\n{{ draft }}\n\n"
    "List the concrete problems of the draft (mistakes, omissions, format violations) and how to fix "
    "each one. If the draft needs no change, reply with exactly: NO CHANGES"
)
DEFAULT_STOP = "NO CHANGES"
REVISION = (
    "Feedback on your answer:\n{critique}\n\n"
    "Revise your answer to address the feedback. Reply with the complete revised answer only, "
    "following the original instructions."
)


class CriticPrompt(Protocol):
    """A prompt used as the critic: anything with ``render(**inputs)`` and a ``backend``."""

    @property
    def backend(self) -> Any: ...

    def render(self, **inputs: Any) -> list[Message]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RefineStep:
    """One round of self-refine: the draft it started from, the critique, and whether it stopped."""

    round: int
    draft: Any
    draft_text: str
    critique: str
    stopped: bool


class SelfRefine:
    """Draft an answer, have it critiqued, revise it; stop when the critic is satisfied.

    ``critique`` is the critic's template (variables ``task``: the conversation as text, and
    ``draft``: the draft's text), or a :class:`~promptkit.Prompt` taking those variables; the
    critic's reply is free text. ``critic`` sends critiques to another backend (a stronger or
    cheaper model); by default they go to the prompt's backend (or the critic prompt's own).
    The loop stops after ``rounds`` revisions, when the critique contains ``stop`` (a phrase,
    case-insensitive) or ``stop(critique)`` is true, or when a revision equals its draft.
    ``base`` makes the first draft (the direct ask by default). Every step is on the result:
    ``result.attempts`` (purposes ``answer``, ``critique``, ``revision``, ``repair``) and
    ``result.info["steps"]`` (:class:`RefineStep` objects); ``info["stopped_by"]`` says why it
    ended (``"critic"``, ``"unchanged"`` or ``"rounds"``).

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> mock = MockBackend(["A haiku.", "Too short: add a line.", "A longer haiku.", "NO CHANGES"])
    >>> result = Prompt("Write a haiku", mock, strategy=SelfRefine(rounds=3)).run()
    >>> result.value, result.info["stopped_by"], [a.purpose for a in result.attempts]
    ('A longer haiku.', 'critic', ['answer', 'critique', 'revision', 'critique'])
    """

    name = "self_refine"
    streams = False

    @property
    def planned_calls(self) -> int:
        """The draft, then a critique and a revision per round: the most, when no round stops it."""
        return planned_calls(self.base) + 2 * self.rounds

    def __init__(
        self,
        critique: str | Template | ChatTemplate | CriticPrompt = DEFAULT_CRITIQUE,
        *,
        critic: Backend | None = None,
        rounds: int = 2,
        stop: str | Callable[[str], bool] = DEFAULT_STOP,
        base: Strategy | None = None,
    ) -> None:
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ConfigurationError(f"rounds must be a whole number of revisions >= 1, not {rounds!r}")
        if isinstance(critique, str):
            critique = Template(critique, name="critique")
        if isinstance(critique, (Template, ChatTemplate)):
            unknown = critique.variables - {"task", "draft"}
            if unknown:
                raise ConfigurationError(
                    "the critique template may use only {{ task }} and {{ draft }}, "
                    f"not {', '.join(sorted(unknown))}"
                )
        elif not callable(getattr(critique, "render", None)):
            raise ConfigurationError(f"critique must be a template string, a Template or a Prompt, not {critique!r}")
        if isinstance(stop, str):
            if not stop.strip():
                raise ConfigurationError("stop must be a non-empty phrase or a function of the critique")
        elif not callable(stop):
            raise ConfigurationError(f"stop must be a phrase or a function of the critique, not {stop!r}")
        self.critique = critique
        self.critic = critic
        self.rounds = rounds
        self.stop = stop
        self.base: Strategy = base if base is not None else Direct()

    def _critique_call(self, task: str, draft: str) -> tuple[tuple[Message, ...], Backend | None, Mapping[str, Any]]:
        critique = self.critique
        if isinstance(critique, Template):
            return (Message("user", critique.render(task=task, draft=draft)),), self.critic, {}
        if isinstance(critique, ChatTemplate):
            return tuple(critique.render(task=task, draft=draft)), self.critic, {}
        backend = self.critic if self.critic is not None else critique.backend
        return tuple(critique.render(task=task, draft=draft)), backend, getattr(critique, "params", None) or {}

    def _satisfied(self, critique: str) -> bool:
        if isinstance(self.stop, str):
            return self.stop.casefold() in critique.casefold()
        return bool(self.stop(critique))

    def plan(self, context: Context) -> Plan:
        draft: Outcome[Any] = yield from self.base.plan(context)
        task = "\n\n".join(f"{m.role}: {m.text}" for m in context.messages)
        steps: list[RefineStep] = []
        value, completion = draft.value, draft.completion
        stopped_by = "rounds"
        for round_ in range(1, self.rounds + 1):
            messages, backend, params = self._critique_call(task, completion.text)
            critique: Completion = yield from ask_text(
                context, messages, purpose="critique", params=params, backend=backend
            )
            satisfied = self._satisfied(critique.text)
            steps.append(
                RefineStep(
                    round=round_, draft=value, draft_text=completion.text, critique=critique.text, stopped=satisfied
                )
            )
            if satisfied:
                stopped_by = "critic"
                break
            revise = (
                *context.messages,
                Message("assistant", completion.text),
                Message("user", REVISION.format(critique=critique.text)),
            )
            revised, revised_completion = yield from ask(context, revise, purpose="revision")
            unchanged = revised == value
            value, completion = revised, revised_completion
            if unchanged:
                stopped_by = "unchanged"
                break
        info = {**draft.info, "steps": tuple(steps), "rounds": len(steps), "stopped_by": stopped_by}
        return Outcome(value=value, completion=completion, info=info)

    def __repr__(self) -> str:
        return f"SelfRefine(rounds={self.rounds})"
