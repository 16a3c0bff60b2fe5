"""Reasoning and answer, told apart in a reply: ``<think>`` blocks and marked answer sections.

Reasoning models served by vLLM, Ollama or llama.cpp (DeepSeek-R1, Qwen3, ...) often put their
thoughts in a ``<think>...</think>`` block before the answer; chain of thought asks for the answer
in an ``<answer>`` section after the reasoning. Both are split here, so a parser only ever sees
the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from .._errors import ParseError

if TYPE_CHECKING:
    from .._parsers import StreamState

__all__ = ["SkipThink", "answer_section", "split_think"]

T = TypeVar("T")

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def split_think(text: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a reply that may start with a ``<think>`` block.

    Servers that strip the opening tag leave ``thoughts</think>answer``; that form is split too.
    A reply without ``</think>`` is all answer; an unclosed ``<think>`` is all reasoning.

    >>> split_think("<think>2+2 is 4</think>\\n4")
    ('2+2 is 4', '4')
    >>> split_think("4")
    (None, '4')
    """
    close = text.rfind(_THINK_CLOSE)
    if close < 0:
        head = text.lstrip()
        if head.startswith(_THINK_OPEN):
            return head[len(_THINK_OPEN) :].strip(), ""
        return None, text
    reasoning = text[:close]
    opened = reasoning.find(_THINK_OPEN)
    if opened >= 0:
        reasoning = reasoning[opened + len(_THINK_OPEN) :]
    return reasoning.strip(), text[close + len(_THINK_CLOSE) :].lstrip()


def answer_section(text: str, tag: str) -> tuple[str, str]:
    """``(reasoning, answer)``: the text of the last ``<tag>`` section and what came before it.

    A missing closing tag at the end of the reply is tolerated (the model stopped early, or a
    stop sequence cut it); a reply without the opening tag is a :class:`ParseError`, so repair
    re-asks with the reason.

    >>> answer_section("<reasoning>6 times 7</reasoning> <answer>42</answer>", "answer")
    ('6 times 7', '42')
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.rfind(opening)
    if start < 0:
        raise ParseError(
            f"the reply has no {opening} section; give the final answer inside {opening}...{closing}",
            text=text,
        )
    body = text[start + len(opening) :]
    end = body.find(closing)
    answer = body[:end] if end >= 0 else body
    reasoning = text[:start]
    for marker in ("<reasoning>", "</reasoning>"):
        reasoning = reasoning.replace(marker, "")
    return reasoning.strip(), answer.strip()


class SkipThink(Generic[T]):
    """A stream state that holds a leading ``<think>`` block back from the parser's previews.

    Chunks go straight through once the reply is seen not to start with ``<think>``; while the
    block is open they are only collected, and what follows ``</think>`` is fed to the parser.
    """

    __slots__ = ("_held", "_inner", "_mode")

    def __init__(self, inner: StreamState[T]) -> None:
        self._inner = inner
        self._held: list[str] = []
        self._mode = "undecided"  # then "think" (inside the block) or "pass"

    def feed(self, chunk: str) -> list[T]:
        if self._mode == "pass":
            return self._inner.feed(chunk)
        self._held.append(chunk)
        text = "".join(self._held)
        if self._mode == "undecided":
            head = text.lstrip()
            if len(head) < len(_THINK_OPEN) and _THINK_OPEN.startswith(head):
                return []  # too early to tell
            if not head.startswith(_THINK_OPEN):
                self._mode = "pass"
                self._held = []
                return self._inner.feed(text)
            self._mode = "think"
        close = text.find(_THINK_CLOSE)
        if close < 0:
            self._held = [text]
            return []
        self._mode = "pass"
        self._held = []
        rest = text[close + len(_THINK_CLOSE) :].lstrip()
        return self._inner.feed(rest) if rest else []

    def finish(self) -> T:
        if self._held:  # a reply that ended while still undecided or inside the block
            self._inner.feed(split_think("".join(self._held))[1])
        return self._inner.finish()
