"""Few-shot examples that never give the answer away: the row being evaluated is hidden from the pool.

:class:`LeakGuard` wraps a prompt's selector for an evaluation. For each call it finds the
pool examples equal to the row (every input field the example shares with the row holds the
same value, compared after normalising case, spacing and number forms) and, with a
``threshold``, the near-duplicates, and lets the inner selector choose among the others only.
When nothing is excluded the inner selector runs exactly as it would alone.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import ConfigurationError
from .._fewshot import Example, ExamplePool, FixedSelector, Selection, Selector
from ._dataset import canonical_json

__all__ = ["LeakGuard", "check_threshold", "normalise"]

Keys = tuple[str, ...]

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalise(value: Any) -> str:
    """A value as compared for equality: text NFKC-normalised, case-folded, spaces collapsed;
    ``2`` and ``2.0`` alike; other values by their canonical JSON.

    >>> normalise("  Hello\\tWORLD ") == normalise("hello world"), normalise(2.0) == normalise("2")
    (True, True)
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = canonical_json(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = canonical_json(value)
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def check_threshold(threshold: Any) -> float | None:
    """``exclude_similar`` checked: ``None`` or a similarity in (0, 1]."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise ConfigurationError(
            f"exclude_similar must be a similarity threshold in (0, 1] (e.g. 0.9), not {threshold!r}"
        )
    return float(threshold)


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.casefold()))


class _PoolIndex:
    """Lookups over one pool, extended as the pool grows: its examples by field layout, and per
    layout and shared keys, by normalised values (equality) and by word (Jaccard similarity)."""

    def __init__(self, pool: Sequence[Example]) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._seen = 0
        self._layouts: dict[frozenset[str], list[int]] = {}
        self._equal: dict[tuple[frozenset[str], Keys], tuple[int, dict[tuple[str, ...], list[int]]]] = {}
        self._words: dict[tuple[frozenset[str], Keys], tuple[int, dict[int, int], dict[str, list[int]]]] = {}

    def _grow(self) -> None:
        n = len(self.pool)
        for position in range(self._seen, n):
            self._layouts.setdefault(frozenset(self.pool[position].fields), []).append(position)
        self._seen = n

    def shared(self, names: frozenset[str]) -> list[tuple[frozenset[str], Keys]]:
        """Each field layout of the pool with the input keys it shares with a row (when any)."""
        with self._lock:
            self._grow()
            pairs = [(layout, tuple(sorted(layout & names))) for layout in self._layouts]
        return [(layout, keys) for layout, keys in pairs if keys]

    def equal(self, layout: frozenset[str], keys: Keys, values: tuple[str, ...]) -> list[int]:
        """Positions of the examples laid out as ``layout`` holding ``values`` on ``keys``."""
        with self._lock:
            self._grow()
            positions = self._layouts[layout]
            built, table = self._equal.get((layout, keys), (0, {}))
            for position in positions[built:]:
                fields = self.pool[position].fields
                table.setdefault(tuple(normalise(fields[k]) for k in keys), []).append(position)
            self._equal[(layout, keys)] = (len(positions), table)
            return list(table.get(values, ()))

    def similar(self, layout: frozenset[str], keys: Keys, words: frozenset[str], threshold: float) -> list[int]:
        """Positions of the examples laid out as ``layout`` whose words on ``keys`` have a Jaccard
        similarity >= ``threshold`` with ``words``."""
        with self._lock:
            self._grow()
            positions = self._layouts[layout]
            built, sizes, postings = self._words.get((layout, keys), (0, {}, {}))
            for position in positions[built:]:
                fields = self.pool[position].fields
                found = _words(" ".join(str(fields[k]) for k in keys))
                sizes[position] = len(found)
                for word in found:
                    postings.setdefault(word, []).append(position)
            self._words[(layout, keys)] = (len(positions), sizes, postings)
            if not words:
                return []
            shared: Counter[int] = Counter()
            for word in words:
                shared.update(postings.get(word, ()))
        size = len(words)
        return [p for p, inter in shared.items() if inter / (size + sizes[p] - inter) >= threshold]


class LeakGuard:
    """Wraps a selector so that, for each call, the examples equal to the row being evaluated
    (and, with ``threshold``, its near-duplicates) are not among the candidates.

    Pool-based selectors (random, metadata, semantic, MMR, BM25, token budget, and their
    ``candidates=`` chains) choose among the other pool positions, so they still return ``k``
    examples. :class:`FixedSelector` drops the equal examples. Any other selector is called as
    it is and the equal examples are filtered out of what it returns (it may then return fewer).
    Near-duplicates are found with the selector's own embedding cosine (semantic and MMR
    selectors, reusing their vectors) or, for the others, the Jaccard similarity of the words.
    :meth:`excluded_for` says how many examples the last call with those inputs left out.

    >>> guard = LeakGuard(FixedSelector([{"q": "2+2", "a": "4"}, {"q": "3+3", "a": "6"}]))
    >>> [e["q"] for e in guard.select({"q": "2+2"})], guard.excluded_for({"q": "2+2"})
    (['3+3'], 1)
    """

    def __init__(self, inner: Selector, *, threshold: float | None = None) -> None:
        if not isinstance(inner, Selector):
            raise ConfigurationError(f"LeakGuard wraps a Selector, not {type(inner).__name__}")
        self.inner = inner
        self.threshold = check_threshold(threshold)
        self._lock = threading.Lock()
        self._indexes: dict[int, _PoolIndex] = {}
        self._counts: dict[str, int] = {}

    # -- what is excluded --------------------------------------------------------------------------
    def _index(self, pool: Sequence[Example]) -> _PoolIndex:
        with self._lock:
            index = self._indexes.get(id(pool))
            if index is None or index.pool is not pool:
                index = self._indexes[id(pool)] = _PoolIndex(pool)
            return index

    def _equal_positions(self, pool: Sequence[Example], inputs: Mapping[str, Any]) -> set[int]:
        """Positions of the examples equal to the row on every input key they share with it."""
        index = self._index(pool)
        found: set[int] = set()
        for layout, keys in index.shared(frozenset(inputs)):
            found.update(index.equal(layout, keys, tuple(normalise(inputs[k]) for k in keys)))
        return found

    def _similar_positions(self, pool: Sequence[Example], inputs: Mapping[str, Any]) -> set[int]:
        assert self.threshold is not None
        index = self._index(pool)
        found: set[int] = set()
        for layout, keys in index.shared(frozenset(inputs)):
            words = _words(" ".join(str(inputs[k]) for k in keys))
            found.update(index.similar(layout, keys, words, self.threshold))
        return found

    def _pool_exclusions(self, selector: Any, inputs: Mapping[str, Any]) -> set[int]:
        pool: ExamplePool = selector.pool
        found = self._equal_positions(pool, inputs)
        if self.threshold is not None:
            if _is_semantic(selector):
                found |= _cosine_positions(selector, selector._query(inputs), self.threshold)
            else:
                found |= self._similar_positions(pool, inputs)
        return found

    async def _apool_exclusions(self, selector: Any, inputs: Mapping[str, Any]) -> set[int]:
        if self.threshold is not None and _is_semantic(selector):
            await selector._async_sync()
            found = self._equal_positions(selector.pool, inputs)
            return found | _cosine_positions(selector, await selector._aquery(inputs), self.threshold)
        return self._pool_exclusions(selector, inputs)

    def _leaks(self, example: Example, inputs: Mapping[str, Any]) -> bool:
        """Whether one example (not found by pool position) is the row or, with a threshold, close to it."""
        keys = sorted(example.fields.keys() & inputs.keys())
        if not keys:
            return False
        if all(normalise(example.fields[k]) == normalise(inputs[k]) for k in keys):
            return True
        if self.threshold is None:
            return False
        mine = _words(" ".join(str(inputs[k]) for k in keys))
        theirs = _words(" ".join(str(example.fields[k]) for k in keys))
        union = len(mine | theirs)
        return bool(union) and len(mine & theirs) / union >= self.threshold

    # -- selecting ---------------------------------------------------------------------------------
    def select(self, inputs: Mapping[str, Any]) -> Selection:
        """The inner selector's examples for ``inputs``, the row itself (and its near-duplicates) excluded."""
        plan = self._plan(self.inner, inputs)
        if plan is None:
            self._count(inputs, 0)
            return Selection.of(self.inner.select(inputs), selector=type(self.inner).__name__)
        excluded, chosen = self._run(self.inner, inputs, plan)
        self._count(inputs, excluded)
        return chosen

    async def aselect(self, inputs: Mapping[str, Any]) -> Selection:
        """Async :meth:`select`."""
        plan = await self._aplan(self.inner, inputs)
        if plan is None:
            self._count(inputs, 0)
            aselect = getattr(self.inner, "aselect", None)
            chosen = await aselect(inputs) if aselect is not None else self.inner.select(inputs)
            return Selection.of(chosen, selector=type(self.inner).__name__)
        excluded, selection = await self._arun(self.inner, inputs, plan)
        self._count(inputs, excluded)
        return selection

    def excluded_for(self, inputs: Mapping[str, Any]) -> int:
        """How many examples the last selection for ``inputs`` left out (0 before any)."""
        return self._counts.get(canonical_json(dict(inputs)), 0)

    def _count(self, inputs: Mapping[str, Any], excluded: int) -> None:
        key = canonical_json(dict(inputs))
        with self._lock:
            self._counts[key] = excluded

    # The plan: for each pool-based selector of the chain (by id), the pool positions it must not
    # choose. ``None`` when nothing is excluded and every member chooses by pool position: then
    # the inner selector runs untouched. A fixed or unknown member is always filtered.
    def _plan(self, selector: Any, inputs: Mapping[str, Any]) -> dict[int, set[int]] | None:
        members, filtered = _chain(selector)
        plan = {id(member): self._pool_exclusions(member, inputs) for member in members}
        return plan if filtered or any(plan.values()) else None

    async def _aplan(self, selector: Any, inputs: Mapping[str, Any]) -> dict[int, set[int]] | None:
        members, filtered = _chain(selector)
        plan = {id(member): await self._apool_exclusions(member, inputs) for member in members}
        return plan if filtered or any(plan.values()) else None

    def _run(self, selector: Any, inputs: Mapping[str, Any], plan: dict[int, set[int]]) -> tuple[int, Selection]:
        """The guarded selection of ``selector`` and how many examples were left out along the chain."""
        kind = _kind(selector)
        if kind == "pool":
            excluded = plan[id(selector)]
            count, subset = len(excluded), None
            if selector.candidates is not None:
                count_below, chosen = self._run(selector.candidates, inputs, plan)
                count, subset = max(count, count_below), selector._positions(chosen)
            return count, selector._select(inputs, _allowed(len(selector.pool), subset, excluded))
        if kind == "budget":
            budget = selector.budget(inputs)
            if selector.candidates is None:
                excluded = plan[id(selector)]
                return len(excluded), _budget_pool(selector, budget, excluded)
            count, chosen = self._run(selector.candidates, inputs, plan)
            return count, selector._trim(chosen, budget)
        chosen = Selection.of(selector.select(inputs), selector=type(selector).__name__)
        return self._filtered(chosen, inputs)

    async def _arun(self, selector: Any, inputs: Mapping[str, Any], plan: dict[int, set[int]]) -> tuple[int, Selection]:
        kind = _kind(selector)
        if kind == "pool":
            excluded = plan[id(selector)]
            count, subset = len(excluded), None
            if selector.candidates is not None:
                count_below, chosen = await self._arun(selector.candidates, inputs, plan)
                count, subset = max(count, count_below), selector._positions(chosen)
            return count, await selector._aselect(inputs, _allowed(len(selector.pool), subset, excluded))
        if kind == "budget":
            budget = selector.budget(inputs)
            if selector.candidates is None:
                excluded = plan[id(selector)]
                return len(excluded), _budget_pool(selector, budget, excluded)
            count, chosen = await self._arun(selector.candidates, inputs, plan)
            return count, selector._trim(chosen, budget)
        aselect = getattr(selector, "aselect", None)
        picked = await aselect(inputs) if aselect is not None else selector.select(inputs)
        return self._filtered(Selection.of(picked, selector=type(selector).__name__), inputs)

    def _filtered(self, chosen: Selection, inputs: Mapping[str, Any]) -> tuple[int, Selection]:
        keep = [i for i, example in enumerate(chosen) if not self._leaks(example, inputs)]
        if len(keep) == len(chosen):
            return 0, chosen
        return len(chosen) - len(keep), Selection(
            [chosen[i] for i in keep],
            scores=[chosen.scores[i] for i in keep],
            tokens=[chosen.tokens[i] for i in keep],
            indices=[chosen.indices[i] for i in keep],
            reasons=[chosen.reasons[i] for i in keep],
            selector=chosen.selector,
        )

    def __repr__(self) -> str:
        similar = f", exclude_similar={self.threshold}" if self.threshold is not None else ""
        return f"LeakGuard({self.inner!r}{similar})"


# -- the selectors' kinds and the helpers that reach into them ---------------------------------------
def _kind(selector: Any) -> str:
    """``pool`` (a BaseSelector choosing among positions), ``budget`` (a TokenBudgetSelector),
    ``fixed`` or ``other`` (filtered after the fact)."""
    kind: type = type(selector)
    return _kind_of(kind)


@functools.cache
def _kind_of(kind: type) -> str:
    from .._fewshot._budget import TokenBudgetSelector
    from .._fewshot._selectors import BaseSelector

    if issubclass(kind, TokenBudgetSelector):
        plain = kind.select is TokenBudgetSelector.select and kind.aselect is TokenBudgetSelector.aselect
        return "budget" if plain else "other"
    if issubclass(kind, BaseSelector):  # a subclass with its own select() is treated as unknown
        plain = kind.select is BaseSelector.select and kind.aselect is BaseSelector.aselect
        return "pool" if plain else "other"
    if issubclass(kind, FixedSelector):
        return "fixed"
    return "other"


def _is_semantic(selector: Any) -> bool:
    from .._fewshot._selectors import SemanticSelector

    return isinstance(selector, SemanticSelector)


def _cosine_positions(selector: Any, query: Any, threshold: float) -> set[int]:
    """Pool positions whose vectors have a cosine >= ``threshold`` with the query (the selector's index)."""
    selector._sync()
    index = selector.index
    if not len(index):
        return set()
    positions, scores = index.search(query, len(index))
    found: list[int] = positions[scores >= threshold].tolist()
    return set(found)


def _allowed(size: int, subset: list[int] | None, excluded: set[int]) -> list[int] | None:
    """The positions a selector may choose from: ``subset`` (or the whole pool) less ``excluded``."""
    if not excluded:
        return subset
    if subset is not None:
        return [p for p in subset if p not in excluded]
    allowed = list(range(size))  # the whole pool: a C-speed copy, then a few deletions
    for position in sorted(excluded, reverse=True):
        if position < size:
            del allowed[position]
    return allowed


def _budget_pool(selector: Any, budget: int, excluded: set[int]) -> Selection:
    """A pool-wide :class:`TokenBudgetSelector` choice with the ``excluded`` examples worth nothing."""
    if not excluded:
        selected: Selection = selector._select_pool(budget)
        return selected
    import numpy as np

    from .._fewshot._budget import knapsack

    selector._select_pool(budget)  # builds the values, weights and order it keeps
    _, values, weights, order = selector._static
    values = values.copy()
    out = np.fromiter(excluded, dtype=np.intp)
    values[out] = 0.0
    order = order[~np.isin(order, out)]
    picked = knapsack(values, weights, selector._capacity(budget), exact_limit=selector.exact_limit, order=order)
    picked.sort(key=lambda i: (-values[i], i))
    chosen: Selection = selector._budget_selection(picked, [float(values[i]) for i in picked], budget)
    return chosen


def _chain(selector: Any) -> tuple[list[Any], bool]:
    """The members of a selector chain that choose by pool position, and whether a fixed or
    unknown member means the chain's result must be filtered."""
    members: list[Any] = []
    while selector is not None:
        kind = _kind(selector)
        if kind in ("fixed", "other"):
            return members, True
        if kind == "pool" or selector.candidates is None:
            members.append(selector)
        selector = selector.candidates
    return members, False
