"""``Selection``: the examples a selector chose, with the scores and token counts behind each pick."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from .._templates import Template
from ._examples import Example, render_example

__all__ = ["Selected", "Selection"]


class Selected(NamedTuple):
    """One pick: the example, its pool position, score, token count and why it was chosen."""

    example: Example
    position: int | None
    score: float | None
    tokens: int | None
    reason: str


def _fill(values: Sequence[Any] | None, n: int) -> tuple[Any, ...]:
    if values is None:
        return (None,) * n
    values = tuple(values)
    if len(values) != n:
        raise ValueError(f"expected {n} values, got {len(values)}")
    return values


class Selection(tuple[Example, ...]):
    """A tuple of examples that also says, for each, its score, its tokens and the reason.

    It compares equal to a plain tuple of the same examples. In a notebook it shows as a table.

    >>> s = Selection([Example({"q": "a"})], scores=[0.9], tokens=[3], reasons=["cosine 0.900"])
    >>> s[0]["q"], s.scores, s.total_tokens
    ('a', (0.9,), 3)
    """

    scores: tuple[float | None, ...]
    tokens: tuple[int | None, ...]
    indices: tuple[int | None, ...]
    reasons: tuple[str, ...]
    selector: str

    def __new__(
        cls,
        examples: Iterable[Example] = (),
        *,
        scores: Sequence[float | None] | None = None,
        tokens: Sequence[int | None] | None = None,
        indices: Sequence[int | None] | None = None,
        reasons: Sequence[str] | None = None,
        selector: str = "",
    ) -> Selection:
        self = super().__new__(cls, examples)
        n = len(self)
        self.scores = _fill(scores, n)
        self.tokens = _fill(tokens, n)
        self.indices = _fill(indices, n)
        self.reasons = _fill(reasons, n) if reasons is not None else ("",) * n
        self.selector = selector
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (tuple(self),)

    @classmethod
    def of(cls, examples: Sequence[Example], *, selector: str = "") -> Selection:
        """``examples`` as a selection (kept as is when it already is one)."""
        if isinstance(examples, Selection):
            return examples
        return cls(examples, selector=selector)

    def with_tokens(self, tokens: Sequence[int | None]) -> Selection:
        """The same selection with token counts filled in."""
        return Selection(
            self, scores=self.scores, tokens=tokens, indices=self.indices, reasons=self.reasons, selector=self.selector
        )

    def counted(
        self,
        *,
        model: str | None = None,
        count: Callable[[str], int] | None = None,
        example_template: Template | str | None = None,
    ) -> Selection:
        """The same selection with each example's tokens, rendered as the prompt renders it.

        >>> Selection([Example({"q": "one two"})]).counted(count=lambda t: len(t.split())).tokens
        (3,)
        """
        if isinstance(example_template, str):
            example_template = Template(example_template, name="example_template")
        if count is None:
            from .._tokens import count_tokens  # the tokenizer loads only when counting

            count = (lambda text: count_tokens(text, model=model)) if model is not None else count_tokens
        return self.with_tokens([int(count(render_example(e, example_template))) for e in self])

    @property
    def items(self) -> list[Selected]:
        """Each pick with its details."""
        return [
            Selected(e, i, s, t, r)
            for e, i, s, t, r in zip(self, self.indices, self.scores, self.tokens, self.reasons, strict=True)
        ]

    @property
    def total_tokens(self) -> int | None:
        """Sum of the examples' token counts, when every one is known."""
        if any(t is None for t in self.tokens):
            return None
        return sum(t for t in self.tokens if t is not None)

    def __repr__(self) -> str:
        parts = [f"{len(self)} examples"]
        if self.selector:
            parts.insert(0, self.selector)
        if any(s is not None for s in self.scores):
            parts.append("scores=[" + ", ".join("-" if s is None else f"{s:.3g}" for s in self.scores) + "]")
        if any(t is not None for t in self.tokens):
            parts.append(f"tokens={list(self.tokens)}")
        return f"Selection({', '.join(parts)})"

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{h}</th>" for h in ("#", "pool", "score", "tokens", "why", "example"))
        rows = []
        for n, item in enumerate(self.items):
            fields = "; ".join(f"{k}={v!s:.60}" for k, v in item.example.fields.items())
            score = "" if item.score is None else f"{item.score:.4f}"
            cells = (n, "" if item.position is None else item.position, score, item.tokens or "", item.reason, fields)
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        title = html.escape(self.selector or "selection")
        total = self.total_tokens
        foot = f" · {total} tokens" if total is not None else ""
        return (
            f"<div><b>{title}</b> <small>{len(self)} examples{foot}</small>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
