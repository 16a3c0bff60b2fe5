"""Chain of thought: the model reasons first, the parser reads only the marked answer."""

from __future__ import annotations

from .._errors import ConfigurationError
from .._messages import Completion, Message
from ._base import Context, Outcome, Plan, with_instruction
from ._reasoning import answer_section, split_think
from ._repair import ask, ask_text

__all__ = ["ChainOfThought"]

DEFAULT_INSTRUCTION = (
    "Think the problem through step by step before answering. Write your reasoning inside "
    "<reasoning>...</reasoning>, then give only the final answer inside <{tag}>...</{tag}>, "
    "following any format instructions above."
)

NATIVE_INSTRUCTION = "Think the problem through step by step. Do not give the final answer yet: only the reasoning."
NATIVE_FOLLOW_UP = "Now give the final answer, based on your reasoning."


class ChainOfThought:
    """Ask for reasoning first and the answer in a marked section; parse only the answer.

    The reasoning is kept on the result (``result.reasoning``). The reply's answer section is
    ``<answer>...</answer>`` (``tag`` renames it); ``instruction`` replaces the default request
    (keep ``{tag}`` in it). A reply without the section is a parse error and is repaired like any
    other. With native structured output the reply cannot hold free text, so the reasoning is a
    first call without the schema and the answer a second call with it.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> reply = "<reasoning>3 boxes of 4 is 12</reasoning><answer>12</answer>"
    >>> result = Prompt("How many?", MockBackend([reply]), strategy=ChainOfThought()).run()
    >>> result.value, result.reasoning
    ('12', '3 boxes of 4 is 12')
    """

    name = "chain_of_thought"
    streams = False

    def __init__(self, *, tag: str = "answer", instruction: str | None = None) -> None:
        if not isinstance(tag, str) or not tag.isidentifier():
            raise ConfigurationError(f"tag must be a plain tag name such as 'answer', not {tag!r}")
        text = instruction if instruction is not None else DEFAULT_INSTRUCTION
        if not isinstance(text, str):
            raise ConfigurationError(f"instruction must be a str, not {text!r}")
        self.tag = tag
        self.instruction = text.replace("{tag}", tag)

    def _extract(self, completion: Completion) -> str:
        return answer_section(split_think(completion.text)[1], self.tag)[1]

    def reasoning(self, completion: Completion) -> str:
        """The reasoning part of a reply (think blocks and the text before the answer section)."""
        thought, rest = split_think(completion.text)
        before = answer_section(rest, self.tag)[0] if f"<{self.tag}>" in rest else rest
        parts = [p for p in (completion.reasoning, thought, before) if p]
        return "\n\n".join(parts)

    def plan(self, context: Context) -> Plan:
        if context.native:
            return (yield from self._native(context))
        messages = with_instruction(context.messages, self.instruction)
        value, completion = yield from ask(context, messages, extract=self._extract)
        return Outcome(value=value, completion=completion, info={"reasoning": self.reasoning(completion)})

    def _native(self, context: Context) -> Plan:
        thinking = yield from ask_text(
            context, with_instruction(context.messages, NATIVE_INSTRUCTION), purpose="reasoning"
        )
        follow_up = (*context.messages, Message("assistant", thinking.text), Message("user", NATIVE_FOLLOW_UP))
        value, completion = yield from ask(context, follow_up)
        reasoning = "\n\n".join(p for p in (thinking.reasoning, thinking.text.strip()) if p)
        return Outcome(value=value, completion=completion, info={"reasoning": reasoning})

    def __repr__(self) -> str:
        return f"ChainOfThought(tag={self.tag!r})" if self.tag != "answer" else "ChainOfThought()"
