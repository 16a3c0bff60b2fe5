"""Token budgets: the best-scoring examples whose rendered text fits a number of tokens.

The choice is a 0/1 knapsack over score (value) and tokens (weight), solved exactly by dynamic
programming over up to ``exact_limit`` candidates; larger sets keep the densest examples that
surely fit and solve the knapsack exactly on a "core" of ``exact_limit`` examples around the
greedy break point (the classic core method: optimal in practice, never worse than greedy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import ExampleError
from .._templates import ChatTemplate, Template
from .._tokens import TOKENS_PER_MESSAGE, count_tokens
from ._examples import Example, ExampleLike, ExamplePool, example_messages, render_example
from ._selection import Selection
from ._selectors import BaseSelector, Selector

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["TokenBudgetSelector", "knapsack"]

MESSAGE_OVERHEAD = TOKENS_PER_MESSAGE + 1
"""Tokens a chat turn costs beyond its text: the chat format's framing plus the role's one token."""


def knapsack(
    values: Sequence[float] | NDArray[np.float64],
    weights: Sequence[int] | NDArray[np.int64],
    capacity: int,
    *,
    exact_limit: int = 64,
    order: NDArray[np.intp] | None = None,
) -> list[int]:
    """Indices of items with the largest total value whose weights sum to at most ``capacity``.

    ``order`` may pass a precomputed ordering by value/weight density (best first).

    >>> knapsack([6, 5, 5], [5, 4, 4], 8)  # two light items beat the single best one
    [1, 2]
    """
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.int64)
    if capacity <= 0 or v.shape[0] == 0:
        return []
    fits = w <= capacity
    if int(w[fits].sum()) <= capacity:
        taken: list[int] = np.flatnonzero(fits & (v > 0)).tolist()
        return taken
    candidates = np.flatnonzero(fits & (v > 0))
    if candidates.shape[0] <= exact_limit:
        return sorted(candidates[_dp(v[candidates], w[candidates], capacity)].tolist())
    if order is None:
        density = v[candidates] / np.maximum(w[candidates], 1)
        order = candidates[np.argsort(-density, kind="stable")]
    cum = np.cumsum(w[order])
    brk = int(np.searchsorted(cum, capacity, side="right"))  # greedy takes order[:brk]
    half = exact_limit // 2
    lo = max(0, brk - half)
    hi = min(order.shape[0], lo + exact_limit)
    fixed = order[:lo]
    residual = capacity - (int(cum[lo - 1]) if lo else 0)
    core = order[lo:hi]
    picked = core[_dp(v[core], w[core], residual)]
    return sorted([*fixed.tolist(), *picked.tolist()])


def _dp(values: NDArray[np.float64], weights: NDArray[np.int64], capacity: int) -> list[int]:
    """Exact 0/1 knapsack by dynamic programming over capacities (vectorised per item)."""
    import numpy as np

    cap = int(min(capacity, int(weights.sum())))
    m = values.shape[0]
    best = np.zeros(cap + 1, dtype=np.float64)
    keep = np.zeros((m, cap + 1), dtype=bool)
    for i in range(m):
        wi = int(weights[i])
        if wi > cap:
            continue
        candidate = best[: cap + 1 - wi] + values[i]
        better = candidate > best[wi:]
        keep[i, wi:] = better
        best[wi:] = np.where(better, candidate, best[wi:])
    chosen = []
    c = cap
    for i in range(m - 1, -1, -1):
        if keep[i, c]:
            chosen.append(i)
            c -= int(weights[i])
    return chosen[::-1]


def _default_counter(model: str | None) -> Callable[[str], int]:
    """The tokenizer of ``model`` (default: promptkit's default model), counting plain text."""

    def count(text: str) -> int:
        return int(count_tokens(text, model=model) if model is not None else count_tokens(text))

    return count


Score = str | Callable[[Example], float] | None


class TokenBudgetSelector(BaseSelector):
    """The best-scoring examples whose rendered text fits ``max_tokens``.

    Works as a final trim on another selector's picks (``candidates=``, their scores are the
    values), or over a whole pool (``score`` names a metadata key or is a function; by default
    every example is worth the same, so as many as fit). Each example is rendered with
    ``example_template`` as the prompt will render it, counted once with ``count`` (default: the
    token counter for ``model``) and cached; ``separator`` tokens are charged between examples.
    ``reserve`` keeps tokens for the rest of the prompt: a number, or a function of the inputs
    (e.g. the tokens of the question), taken off ``max_tokens``.

    >>> words = lambda text: len(text.split())
    >>> pool = [{"q": "one two three"}, {"q": "one"}, {"q": "one two"}]
    >>> s = TokenBudgetSelector(pool, max_tokens=5, count=words, separator=" ")
    >>> [e["q"] for e in s.select({})], s.select({}).tokens
    (['one', 'one two'], (2, 3))
    """

    kind: ClassVar[str] = "token_budget"

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None = None,
        *,
        max_tokens: int,
        candidates: Selector | None = None,
        count: Callable[[str], int] | None = None,
        model: str | None = None,
        example_template: Template | ChatTemplate | str | None = None,
        separator: str = "\n\n",
        score: Score = None,
        reserve: int | Callable[[Mapping[str, Any]], int] = 0,
        exact_limit: int = 64,
    ) -> None:
        if max_tokens < 0:
            raise ExampleError(f"max_tokens must not be negative, not {max_tokens}")
        self._poolless = pool is None and getattr(candidates, "pool", None) is None
        if self._poolless:
            if candidates is None:
                raise ExampleError("TokenBudgetSelector needs a pool or candidates")
            pool = ExamplePool()
        super().__init__(pool, k=None, candidates=candidates)
        if isinstance(example_template, str):
            example_template = Template(example_template, name="example_template")
        self.max_tokens = max_tokens
        self.model = model
        self.example_template = example_template
        self.separator = separator
        self.score = score
        self.reserve = reserve
        self.exact_limit = exact_limit
        self._custom_count = count is not None
        self._count = count
        self._pool_tokens: list[int] = []
        self._tokens_by_example: dict[Example, int] = {}
        self._separator_tokens: int | None = None
        self._static: tuple[int, Any, Any, Any] | None = None  # (pool size, values, weights, density order)
        self._memo: tuple[int, int, Selection] | None = None

    @property
    def count(self) -> Callable[[str], int]:
        """The token counter in use."""
        if self._count is None:
            self._count = _default_counter(self.model)
        return self._count

    # -- counting --------------------------------------------------------------------------------
    def tokens_of(self, example: Example) -> int:
        """Tokens ``example`` takes once rendered (counted once, then cached)."""
        cached = self._tokens_by_example.get(example)
        if cached is None:
            cached = self._count_example(example)
            self._tokens_by_example[example] = cached
        return cached

    def _count_example(self, example: Example) -> int:
        template = self.example_template
        if isinstance(template, ChatTemplate):
            return sum(self.count(m.text) + MESSAGE_OVERHEAD for m in example_messages([example], template))
        return self.count(render_example(example, template))

    def _pool_token_counts(self) -> list[int]:
        counts = self._pool_tokens
        if len(counts) < len(self.pool):  # count only what was added since the last call
            with self._lock:
                start, n = len(counts), len(self.pool)
                counts.extend(self._count_example(e) for e in self.pool.take(range(start, n)))
        return counts

    @property
    def separator_tokens(self) -> int:
        if self._separator_tokens is None:
            self._separator_tokens = self.count(self.separator) if self.separator else 0
        return self._separator_tokens

    def _value(self, example: Example) -> float:
        if self.score is None:
            return 1.0
        if callable(self.score):
            return float(self.score(example))
        try:
            return float(example.metadata[self.score])
        except (KeyError, TypeError, ValueError) as exc:
            raise ExampleError(f"example has no numeric metadata {self.score!r} to score it by") from exc

    # -- selecting -------------------------------------------------------------------------------
    def budget(self, inputs: Mapping[str, Any]) -> int:
        """Tokens the examples may take for ``inputs``: ``max_tokens`` less the ``reserve``."""
        reserve = self.reserve(inputs) if callable(self.reserve) else self.reserve
        return max(self.max_tokens - int(reserve), 0)

    def select(self, inputs: Mapping[str, Any]) -> Selection:
        """The best examples that fit the budget (the candidates' picks, or the pool's)."""
        if self.candidates is None:
            return self._select_pool(self.budget(inputs))
        chosen = self.candidates.select(inputs)
        return self._trim(Selection.of(chosen), self.budget(inputs))

    async def aselect(self, inputs: Mapping[str, Any]) -> Selection:
        if self.candidates is None:
            return self._select_pool(self.budget(inputs))
        aselect = getattr(self.candidates, "aselect", None)
        chosen = await aselect(inputs) if aselect is not None else self.candidates.select(inputs)
        return self._trim(Selection.of(chosen), self.budget(inputs))

    def _capacity(self, budget: int) -> int:
        # Every example after the first also pays for a separator: charge it to each example
        # and give the budget one separator back.
        return budget + self.separator_tokens if budget > 0 else 0

    def _select_pool(self, budget: int) -> Selection:
        import numpy as np

        n = len(self.pool)
        memo = self._memo
        if memo is not None and memo[0] == n and memo[1] == budget:
            return memo[2]  # with static scores, a pool-wide choice depends only on the budget
        if self._static is None or self._static[0] != n:
            weights = np.asarray(self._pool_token_counts(), dtype=np.int64) + self.separator_tokens
            values = _positive(np.asarray([self._value(e) for e in self.pool], dtype=np.float64))
            usable = np.flatnonzero(values > 0)
            density = values[usable] / np.maximum(weights[usable], 1)
            order = usable[np.argsort(-density, kind="stable")]
            self._static = (n, values, weights, order)
        _, values, weights, order = self._static
        picked = knapsack(values, weights, self._capacity(budget), exact_limit=self.exact_limit, order=order)
        picked.sort(key=lambda i: (-values[i], i))
        result = self._budget_selection(picked, [float(values[i]) for i in picked], budget)
        self._memo = (n, budget, result)
        return result

    def _trim(self, chosen: Selection, budget: int) -> Selection:
        import numpy as np

        if self._poolless:
            tokens = [self.tokens_of(e) for e in chosen]
        else:
            counts = self._pool_token_counts()
            positions = self._positions(chosen)
            tokens = [counts[p] for p in positions]
        raw = [s if s is not None else 1.0 / (1 + rank) for rank, s in enumerate(chosen.scores)]
        values = _positive(np.asarray(raw, dtype=np.float64))
        weights = np.asarray(tokens, dtype=np.int64) + self.separator_tokens
        keep = knapsack(values, weights, self._capacity(budget), exact_limit=self.exact_limit)  # keeps the order
        used = sum(tokens[i] for i in keep) + self.separator_tokens * max(len(keep) - 1, 0)
        return Selection(
            [chosen[i] for i in keep],
            scores=[chosen.scores[i] for i in keep],
            tokens=[tokens[i] for i in keep],
            indices=[chosen.indices[i] for i in keep],
            reasons=[f"{chosen.reasons[i]}; fits budget ({used}/{budget} tokens)".lstrip("; ") for i in keep],
            selector=f"{type(self).__name__}({chosen.selector})" if chosen.selector else type(self).__name__,
        )

    def _budget_selection(self, picked: list[int], scores: list[float], budget: int) -> Selection:
        counts = self._pool_token_counts()
        tokens = [counts[i] for i in picked]
        used = sum(tokens) + self.separator_tokens * max(len(picked) - 1, 0)
        reason = f"score {{:.3g}}; fits budget ({used}/{budget} tokens)"
        return Selection(
            self.pool.take(picked),
            scores=scores,
            tokens=tokens,
            indices=picked,
            reasons=[reason.format(s) for s in scores],
            selector=type(self).__name__,
        )

    def _options(self) -> dict[str, Any]:
        if self.score is not None and not isinstance(self.score, str):
            score: str | None = "custom"
        else:
            score = self.score
        template: Any = self.example_template
        if isinstance(template, Template):
            template = {"text": template.source}
        elif isinstance(template, ChatTemplate):
            template = {"chat": [[role, t.source] for role, t in template.messages]}
        return {
            "max_tokens": self.max_tokens,
            "reserve": "custom" if callable(self.reserve) else self.reserve,
            "model": self.model,
            "count": "custom" if self._custom_count else None,
            "example_template": template,
            "separator": self.separator,
            "score": score,
            "exact_limit": self.exact_limit,
        }


def _positive(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Knapsack values must be positive: shift scores (e.g. negative cosines) above zero, keeping order."""
    if values.shape[0] == 0 or float(values.min()) > 0:
        return values
    spread = float(values.max() - values.min()) or 1.0
    return values - float(values.min()) + 1e-3 * spread
