"""Few-shot examples: pools, selectors, vector indexes, token budgets and saved selections.

The parts, each behind the names re-exported here:

* ``_examples``: :class:`Example`, :class:`ExamplePool` (list, JSONL, CSV, DataFrame), rendering
  as text or chat turns, and the :class:`FewShot` marker;
* ``_selection``: :class:`Selection`, the picks with scores, token counts and reasons;
* ``_index``: the :class:`VectorIndex` protocol, :class:`NumpyIndex` and :class:`QdrantIndex`;
* ``_selectors``: the :class:`Selector` protocol and the fixed, random, metadata, semantic, MMR
  and BM25 selectors;
* ``_budget``: :class:`TokenBudgetSelector` and its knapsack;
* ``_persist``: :func:`load_selector` (``selector.save(path)`` writes).
"""

from __future__ import annotations

from ._budget import TokenBudgetSelector, knapsack
from ._examples import (
    Example,
    ExampleLike,
    ExamplePool,
    FewShot,
    coerce_examples,
    example_messages,
    render_example,
    render_examples,
)
from ._index import NumpyIndex, QdrantIndex, VectorIndex
from ._persist import load_selector, save_selector
from ._selection import Selected, Selection
from ._selectors import (
    BaseSelector,
    BM25Selector,
    FixedSelector,
    MetadataSelector,
    MMRSelector,
    RandomSelector,
    Selector,
    SemanticSelector,
)

__all__ = [
    "BM25Selector",
    "BaseSelector",
    "Example",
    "ExampleLike",
    "ExamplePool",
    "FewShot",
    "FixedSelector",
    "MMRSelector",
    "MetadataSelector",
    "NumpyIndex",
    "QdrantIndex",
    "RandomSelector",
    "Selected",
    "Selection",
    "Selector",
    "SemanticSelector",
    "TokenBudgetSelector",
    "VectorIndex",
    "coerce_examples",
    "example_messages",
    "knapsack",
    "load_selector",
    "render_example",
    "render_examples",
    "save_selector",
]
