"""Reasoning and answer, told apart in a reply: ``<think>`` blocks and marked answer sections.

Reasoning models served by vLLM, Ollama or llama.cpp (DeepSeek-R1, Qwen3, ...) often put their
thoughts in a ``<think>...</think>`` block before the answer; chain of thought asks for the answer
in an ``<answer>`` section after the reasoning. Both are split here, so a parser only ever sees
the answer.
"""

from __future__ import annotations

from .._errors import ParseError

__all__ = ["answer_section", "split_think"]

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
