"""Repair by re-asking: the first user of the strategy seam and the step every strategy reuses."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ParseError
from .._messages import Completion, Message
from .._utils import UNSET
from ._base import Call, Context

if TYPE_CHECKING:
    from ..backends._contract import Backend

__all__ = ["ask", "ask_text", "repair_messages"]


def repair_messages(messages: tuple[Message, ...], bad: Completion, error: ParseError) -> tuple[Message, ...]:
    """The original messages, the invalid reply, and what was wrong with it."""
    note = (
        f"Your reply could not be used: {error.message}\n"
        "Reply again, following the original instructions exactly, with the corrected answer only."
    )
    return (*messages, Message("assistant", bad.text), Message("user", note))


def ask(
    context: Context,
    messages: tuple[Message, ...],
    *,
    params: Mapping[str, Any] | None = None,
    purpose: str = "answer",
    sample: int | None = None,
    extract: Callable[[Completion], str] | None = None,
    backend: Backend | None = None,
    answer_tag: str | None = None,
) -> Generator[Call, Completion, tuple[Any, Completion]]:
    """Ask once and re-ask up to ``context.repair`` times until the reply parses.

    Returns ``(value, completion)``; raises the final :class:`ParseError`, holding every reply and
    its usage, once the budget is spent. ``extract`` picks the part of a reply to parse (it may
    raise :class:`ParseError` too, which is repaired the same way; ``answer_tag`` names the section
    a streamed reply's previews come from). Re-asks are not streamed: the
    caller has already seen the previews of the first reply. Use it with ``yield from`` inside a
    plan.
    """
    extra = params or {}
    conversation = messages
    completions: list[Completion] = []
    errors: list[ParseError] = []
    while True:
        first = not completions
        completion = yield Call(
            messages=conversation,
            params=extra,
            purpose=purpose if first else "repair",
            sample=sample,
            stream=first,
            backend=backend,
            answer_tag=answer_tag,
        )
        completions.append(completion)
        try:
            value = context.parse(completion) if extract is None else context.parse(completion, extract)
            return value, completion
        except ParseError as err:
            errors.append(err)
            if len(completions) > context.repair:
                raise _exhausted(completions, errors) from err
            conversation = repair_messages(messages, completion, err)


def ask_text(
    context: Context,
    messages: tuple[Message, ...],
    *,
    purpose: str,
    params: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
) -> Generator[Call, Completion, Completion]:
    """One free-text call whose reply is not parsed (reasoning, a critique): its completion.

    The prompt's native output schema and constraint are left out of this call, whatever the
    prompt asks for.
    """
    completion = yield Call(
        messages=messages,
        params={**(params or {}), "output_schema": UNSET, "constraint": UNSET},
        purpose=purpose,
        stream=False,
        backend=backend,
    )
    return completion


def _exhausted(completions: list[Completion], errors: list[ParseError]) -> ParseError:
    last = errors[-1]
    values = [e.last_value for e in errors if e.last_value is not None]
    n = len(completions)
    return ParseError(
        f"no valid reply after {n} attempt{'s' if n > 1 else ''}: {last.message}",
        text=last.text,
        attempts=[c.text for c in completions],
        last_value=values[-1] if values else None,
        position=last.position,
        completions=tuple(completions),
    )
