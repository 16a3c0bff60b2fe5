"""``Result`` and ``Attempt``: what one prompt call produced, and every model call behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ._cost import cost_of, usd
from ._errors import PromptkitError
from ._fewshot import Selection
from ._fitting import FitReport
from ._messages import Completion, Message, Usage, _messages_html
from ._strategies._reasoning import split_think

__all__ = ["Attempt", "Result"]

T = TypeVar("T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One model call made for a result: what was sent, what came back and how long it took.

    ``purpose`` says why the call was made (``"answer"``, ``"repair"``, ...), ``error`` holds the
    :class:`~promptkit.ParseError` of a reply that did not parse (or the error a sampled call
    ended with), ``sample`` the sample index of strategies that draw several replies, and
    ``seconds`` the call's wall time, streaming included.

    >>> from promptkit import Completion
    >>> Attempt(purpose="answer", messages=(), completion=Completion(text="4")).ok
    True
    """

    purpose: str
    messages: tuple[Message, ...] = field(repr=False)
    completion: Completion | None = None
    error: PromptkitError | None = None
    sample: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call returned a reply that was accepted."""
        return self.completion is not None and self.error is None

    @property
    def usage(self) -> Usage:
        """The tokens this call used (zero when it failed before a reply)."""
        return self.completion.usage if self.completion is not None else Usage()

    @property
    def cost(self) -> float | None:
        """This call's cost in USD, priced for the reply's model and provider (see
        :func:`~promptkit.cost_of`); 0.0 when it failed before a reply, ``None`` when the price is
        unknown."""
        if self.completion is None:
            return 0.0
        return _cost(self.completion)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result(Generic[T]):
    """Everything one prompt call produced: the typed value and how it was obtained.

    ``messages`` is the conversation as rendered, ``completion`` the reply the value was parsed
    from, ``examples`` the :class:`Selection` shown (each example's score and tokens), and
    ``attempts`` every model call in order (a repaired reply shows as an ``"answer"`` attempt
    with its ``ParseError`` followed by a ``"repair"`` attempt). ``usage`` adds up every call's
    tokens; ``elapsed`` is the wall time of the whole run; ``strategy`` names the strategy and
    ``info`` holds what it reports beyond the value.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> result = Prompt("2+2?", MockBackend(["4"])).run()
    >>> result.value, len(result.attempts), result.usage.output_tokens
    ('4', 1, 1)
    """

    value: T
    messages: tuple[Message, ...]
    completion: Completion
    examples: Selection = field(default_factory=Selection)
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)
    strategy: str = "direct"
    info: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False)
    elapsed: float = field(default=0.0, repr=False)
    fit: FitReport | None = field(default=None, repr=False)

    @property
    def completions(self) -> tuple[Completion, ...]:
        """Every reply received, in order (more than one when a reply was repaired)."""
        replies = tuple(a.completion for a in self.attempts if a.completion is not None)
        return replies or (self.completion,)

    @property
    def samples(self) -> tuple[Attempt, ...]:
        """The attempts that drew a numbered sample (empty for single-answer strategies)."""
        return tuple(a for a in self.attempts if a.sample is not None)

    @property
    def usage(self) -> Usage:
        """Tokens used by all calls together."""
        total = Usage()
        for completion in self.completions:
            total = total + completion.usage
        return total

    @property
    def reasoning(self) -> str | None:
        """The model's reasoning, when there was any: from the strategy (chain of thought), the
        provider's separate reasoning content, or a ``<think>`` block before the answer."""
        given = self.info.get("reasoning")
        if isinstance(given, str):
            return given
        if self.completion.reasoning:
            return self.completion.reasoning
        return split_think(self.completion.text)[0]

    @property
    def cost(self) -> float | None:
        """What all calls together cost in USD, each priced for its reply's model and provider;
        ``None`` when any call's price is unknown (a partial sum would understate it)."""
        total = 0.0
        for completion in self.completions:
            cost = _cost(completion)
            if cost is None:
                return None
            total += cost
        return total

    @property
    def cached(self) -> bool:
        """True when every reply behind the value came from a response cache (no model was
        called); False when at least one call reached the model."""
        return all(completion.cached for completion in self.completions)

    @property
    def text(self) -> str:
        """The raw text of the reply the value was parsed from."""
        return self.completion.text

    def _repr_html_(self) -> str:
        import html

        value = html.escape(repr(self.value))
        u = self.usage
        shown = self.examples
        examples = (
            f"<details><summary>{len(shown)} example(s)</summary>{shown._repr_html_()}</details>" if shown else ""
        )
        fitted = (
            f"<details><summary>fitted: {self.fit.tokens}/{self.fit.limit} tokens</summary>"
            f"{self.fit._repr_html_()}</details>"
            if self.fit is not None
            else ""
        )
        calls = len(self.attempts) or 1
        try:
            cost = self.cost
        except PromptkitError:  # inconsistent token counts: the display shows the tokens only
            cost = None
        spent = "" if cost is None else f", {usd(cost)}"
        return (
            f"<div><b>value</b> <code>{value}</code>"
            f"<details><summary>{len(self.messages)} message(s) sent</summary>"
            f"{_messages_html(self.messages)}</details>{examples}{fitted}"
            f"<small>{html.escape(self.strategy)}: {calls} call(s), tokens in={u.input_tokens} "
            f"out={u.output_tokens}{spent}, {self.elapsed:.2f} s</small></div>"
        )


def _cost(completion: Completion) -> float | None:
    return cost_of(completion.usage, completion.model, completion.provider, batch=completion.batch)
