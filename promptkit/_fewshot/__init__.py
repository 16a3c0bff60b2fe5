"""Few-shot examples: pools, selectors, vector indexes, token budgets and saved selections.

The parts, each behind the names re-exported here:

* ``_examples``: :class:`Example`, :class:`ExamplePool` (list, JSONL, CSV, DataFrame), rendering
  as text or chat turns, and the :class:`FewShot` marker;
* ``_selection``: :class:`Selection`, the picks with scores, token counts and reasons;
* ``_index``: the :class:`VectorIndex` protocol, :class:`NumpyIndex` and :class:`QdrantIndex`;
* ``_lancedb``: :class:`LanceDBIndex`, the embedded on-disk LanceDB adapter;
* ``_fixed``: the :class:`Selector` protocol and :class:`FixedSelector` (all a prompt needs);
* ``_selectors``: the random, metadata, semantic, MMR and BM25 selectors;
* ``_budget``: :class:`TokenBudgetSelector` and its knapsack;
* ``_persist``: :func:`load_selector` (``selector.save(path)`` writes).

``_examples``, ``_selection`` and ``_fixed`` load with the package; the other parts (and the
embedders, indexes and tokenizers they use) load on first access to one of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_attributes as _lazy_attributes
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
from ._fixed import FixedSelector, Selector
from ._selection import Selected, Selection

if TYPE_CHECKING:
    from ._budget import TokenBudgetSelector, knapsack
    from ._index import NumpyIndex, QdrantIndex, VectorIndex
    from ._lancedb import LanceDBIndex
    from ._persist import load_selector, save_selector
    from ._selectors import (
        BaseSelector,
        BM25Selector,
        MetadataSelector,
        MMRSelector,
        RandomSelector,
        SemanticSelector,
    )

_LAZY: dict[str, str] = {
    "BM25Selector": "._selectors",
    "BaseSelector": "._selectors",
    "LanceDBIndex": "._lancedb",
    "MMRSelector": "._selectors",
    "MetadataSelector": "._selectors",
    "NumpyIndex": "._index",
    "QdrantIndex": "._index",
    "RandomSelector": "._selectors",
    "SemanticSelector": "._selectors",
    "TokenBudgetSelector": "._budget",
    "VectorIndex": "._index",
    "knapsack": "._budget",
    "load_selector": "._persist",
    "save_selector": "._persist",
}


__getattr__, __dir__ = _lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "BM25Selector",
    "BaseSelector",
    "Example",
    "ExampleLike",
    "ExamplePool",
    "FewShot",
    "FixedSelector",
    "LanceDBIndex",
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
