"""The selectors: random, metadata, semantic, MMR and BM25 (``Selector`` and ``FixedSelector`` live in ``_fixed``).

Every pool-based selector can take its candidates from another selector (``candidates=``), so
policies compose: BM25 top-50, then MMR 5, then a token-budget trim. Each returns a
:class:`Selection` that carries pool positions, scores and the reason for every pick.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._embeddings import BaseEmbedder, Embedder, default_embedder
from .._errors import ExampleError
from .._utils import require
from ._examples import Example, ExampleLike, ExamplePool, coerce_pool
from ._fixed import FixedSelector, Selector
from ._index import NumpyIndex, VectorIndex, top_k
from ._selection import Selection

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "BM25Selector",
    "BaseSelector",
    "FixedSelector",
    "MMRSelector",
    "MetadataSelector",
    "RandomSelector",
    "SemanticSelector",
    "Selector",
]


def query_text(inputs: Mapping[str, Any], input_keys: Sequence[str] | None, fields: Sequence[str] | None) -> str:
    """The text a search runs on: ``input_keys`` of the inputs, else those named like the
    searched ``fields``, else every input, joined by newlines."""
    if input_keys is not None:
        missing = [k for k in input_keys if k not in inputs]
        if missing:
            raise ExampleError(f"the selector searches on input(s) {missing} that were not given")
        keys: Sequence[str] = input_keys
    else:
        keys = [f for f in fields if f in inputs] if fields else []
        if not keys:
            keys = list(inputs)
    return "\n".join(str(inputs[k]) for k in keys if inputs[k] is not None)


def check_fields(pool: ExamplePool, fields: Sequence[str] | None, owner: str) -> bool:
    """Raise :class:`~promptkit.ExampleError` when a field in ``fields`` is in no example of ``pool``.

    Returns whether the check could run: an empty pool knows no fields yet, so the selector
    checks again on its first select. A field that no example has would make every score 0.
    """
    if not fields:
        return True
    if not len(pool):
        return False
    unknown = [f for f in fields if not any(f in e.fields for e in pool)]
    if unknown:
        known = sorted({name for e in pool for name in e.fields})
        raise ExampleError(
            f"{owner} searches field(s) {unknown} that no example in the pool has; the examples' fields are {known}"
        )
    return True


class BaseSelector:
    """What pool-based selectors share: the pool, ``k``, candidates from another selector,
    ``aselect`` and saving."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None,
        *,
        k: int | None,
        candidates: Selector | None = None,
    ) -> None:
        if k is not None and k < 0:
            raise ExampleError(f"k must be positive, not {k}")
        if pool is None:
            pool = getattr(candidates, "pool", None)
            if pool is None:
                raise ExampleError(f"{type(self).__name__} needs a pool (or candidates from a pool-based selector)")
        self.pool: ExamplePool = coerce_pool(pool)
        self.k = k
        self.candidates = candidates
        # Guards the incremental state (what has been embedded, counted or scanned) so threads
        # sharing a selector never index the same new examples twice.
        self._lock = threading.Lock()

    # -- candidates ------------------------------------------------------------------------------
    def _positions(self, selection: Sequence[Example]) -> list[int]:
        indices = getattr(selection, "indices", None)
        if (
            indices is not None
            and getattr(self.candidates, "pool", None) is self.pool
            and all(i is not None for i in indices)
        ):
            return list(indices)
        return [self.pool.position(e) for e in selection]

    def _subset(self, inputs: Mapping[str, Any]) -> list[int] | None:
        if self.candidates is None:
            return None
        return self._positions(self.candidates.select(inputs))

    async def _asubset(self, inputs: Mapping[str, Any]) -> list[int] | None:
        if self.candidates is None:
            return None
        aselect = getattr(self.candidates, "aselect", None)
        chosen = await aselect(inputs) if aselect is not None else self.candidates.select(inputs)
        return self._positions(chosen)

    # -- selecting -------------------------------------------------------------------------------
    def _select(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:  # pragma: no cover
        raise NotImplementedError

    async def _aselect(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:
        return self._select(inputs, subset)

    def select(self, inputs: Mapping[str, Any]) -> Selection:
        """The examples for ``inputs``, with their pool positions, scores and reasons."""
        return self._select(inputs, self._subset(inputs))

    async def aselect(self, inputs: Mapping[str, Any]) -> Selection:
        """Async :meth:`select` (embeds the query without blocking the loop where it can)."""
        return await self._aselect(inputs, await self._asubset(inputs))

    def _selection(self, positions: Iterable[int], scores: Iterable[float] | None, reasons: Sequence[str]) -> Selection:
        positions = [int(p) for p in positions]
        return Selection(
            self.pool.take(positions),
            scores=None if scores is None else [float(s) for s in scores],
            indices=positions,
            reasons=reasons,
            selector=type(self).__name__,
        )

    # -- saving ----------------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {}

    def config(self) -> dict[str, Any]:
        """A JSON-able description (without the pool), used by :meth:`save`."""
        out: dict[str, Any] = {"type": self.kind, "k": self.k, **self._options()}
        if self.candidates is not None:
            cfg = getattr(self.candidates, "config", None)
            if cfg is None:
                raise ExampleError(
                    f"cannot save a selector whose candidates come from {type(self.candidates).__name__}"
                )
            out["candidates"] = cfg()
        return out

    def save(
        self, path: str | os.PathLike[str], *, include_pool: bool = True, include_embeddings: bool = False
    ) -> None:
        """Write configuration, seed and (optionally) the pool and its vectors to ``path``."""
        from ._persist import save_selector

        save_selector(self, path, include_pool=include_pool, include_embeddings=include_embeddings)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options().items() if k not in ("embedder", "where"))
        extra = f", {opts}" if opts else ""
        cand = f", candidates={self.candidates!r}" if self.candidates is not None else ""
        return f"{type(self).__name__}(pool={len(self.pool)}, k={self.k}{extra}{cand})"


class RandomSelector(BaseSelector):
    """``k`` examples drawn at random, the same ones for the same inputs and ``seed``.

    >>> pool = [{"n": str(i)} for i in range(10)]
    >>> a = RandomSelector(pool, k=3, seed=7).select({"q": "x"})
    >>> a == RandomSelector(pool, k=3, seed=7).select({"q": "x"})
    True
    """

    kind: ClassVar[str] = "random"

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None = None,
        *,
        k: int = 4,
        seed: int = 0,
        candidates: Selector | None = None,
    ) -> None:
        super().__init__(pool, k=k, candidates=candidates)
        self.seed = seed

    def _select(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:
        key = json.dumps(inputs, sort_keys=True, default=str)
        rng = random.Random(f"{self.seed}\x00{key}")
        population: Sequence[int] = range(len(self.pool)) if subset is None else subset
        k = min(self.k or 0, len(population))
        picked = rng.sample(population, k)
        return self._selection(picked, None, [f"random (seed {self.seed})"] * k)

    def _options(self) -> dict[str, Any]:
        return {"seed": self.seed}


Where = Mapping[str, Any] | Callable[[Example, Mapping[str, Any]], bool]


class MetadataSelector(BaseSelector):
    """Examples whose metadata matches ``where`` (the first ``k`` of them, or all).

    ``where`` maps a metadata key to a value, or to a list/set of accepted values; or it is a
    function ``(example, inputs) -> bool`` for rules that depend on the inputs.

    >>> pool = [Example({"q": "a"}, {"lang": "fr"}), Example({"q": "b"}, {"lang": "en"})]
    >>> [e["q"] for e in MetadataSelector(pool, where={"lang": "en"}).select({})]
    ['b']
    """

    kind: ClassVar[str] = "metadata"

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None = None,
        *,
        where: Where,
        k: int | None = None,
        candidates: Selector | None = None,
    ) -> None:
        super().__init__(pool, k=k, candidates=candidates)
        if not (callable(where) or isinstance(where, Mapping)):
            raise ExampleError("where must be a mapping of metadata values or a function (example, inputs) -> bool")
        self.where = where
        self._matches: list[int] = []
        self._scanned = 0

    def _match_static(self, example: Example) -> bool:
        assert isinstance(self.where, Mapping)
        for key, want in self.where.items():
            if key not in example.metadata:
                return False
            have = example.metadata[key]
            if isinstance(want, (list, tuple, set, frozenset)):
                if have not in want:
                    return False
            elif have != want:
                return False
        return True

    def _reason(self) -> str:
        if isinstance(self.where, Mapping):
            return "metadata " + ", ".join(f"{k}={v!r}" for k, v in self.where.items())
        return f"metadata {getattr(self.where, '__name__', 'filter')}"

    def _select(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:
        pool = self.pool
        if callable(self.where):
            fn = self.where
            population: Iterable[int] = range(len(pool)) if subset is None else subset
            found = [i for i in population if fn(pool[i], inputs)]
        else:
            if self._scanned < len(pool):  # static filters scan each example once, even as the pool grows
                with self._lock:
                    n = len(pool)
                    self._matches.extend(i for i in range(self._scanned, n) if self._match_static(pool[i]))
                    self._scanned = n
            if subset is None:
                found = self._matches
            else:
                allowed = set(self._matches)
                found = [i for i in subset if i in allowed]
        if self.k is not None:
            found = found[: self.k]
        return self._selection(found, None, [self._reason()] * len(found))

    def _options(self) -> dict[str, Any]:
        if callable(self.where):
            return {"where": None}
        return {"where": {k: list(v) if isinstance(v, (set, frozenset, tuple)) else v for k, v in self.where.items()}}


class SemanticSelector(BaseSelector):
    """Top-``k`` examples by cosine similarity between the input and the examples' ``fields``.

    ``fields`` (default: all) are the example fields that are embedded; a field no example has
    raises :class:`~promptkit.ExampleError` (at construction, or on the first select while the
    pool is empty). ``input_keys`` (default: the inputs named like those fields, else all inputs)
    build the query. The pool is embedded on first use; examples added to the pool later are
    embedded on the next call, alone.

    >>> from promptkit._embeddings import HashingEmbedder
    >>> pool = [{"q": "reset my password", "a": "..."}, {"q": "track my parcel", "a": "..."}]
    >>> s = SemanticSelector(pool, k=1, fields=["q"], embedder=HashingEmbedder())
    >>> s.select({"q": "where is my parcel"})[0]["q"]
    'track my parcel'
    """

    kind: ClassVar[str] = "semantic"

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None = None,
        *,
        k: int = 4,
        fields: Sequence[str] | None = None,
        input_keys: Sequence[str] | None = None,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        min_score: float | None = None,
        candidates: Selector | None = None,
    ) -> None:
        super().__init__(pool, k=k, candidates=candidates)
        self.fields = tuple(fields) if fields is not None else None
        self._fields_checked = check_fields(self.pool, self.fields, type(self).__name__)
        self.input_keys = tuple(input_keys) if input_keys is not None else None
        self.embedder: Embedder = embedder if embedder is not None else default_embedder()
        self.index: VectorIndex = index if index is not None else NumpyIndex()
        self.min_score = min_score
        self._indexed = len(self.index)  # an index loaded from a file or a server is not embedded again

    # -- embedding -------------------------------------------------------------------------------
    def _sync(self) -> None:
        if not self._fields_checked:
            self._fields_checked = check_fields(self.pool, self.fields, type(self).__name__)
        if self._indexed >= len(self.pool):
            return
        with self._lock:
            start, n = self._indexed, len(self.pool)
            if start < n:
                texts = self.pool.texts(self.fields, start=start)[: n - start]
                self.index.add(self.embedder.embed(texts))
                self._indexed = n

    async def _async_sync(self) -> None:
        if not self._fields_checked:
            self._fields_checked = check_fields(self.pool, self.fields, type(self).__name__)
        start, n = self._indexed, len(self.pool)
        if start >= n:
            return
        texts = self.pool.texts(self.fields, start=start)[: n - start]
        aembed = getattr(self.embedder, "aembed", None)
        vectors = await aembed(texts) if aembed is not None else self.embedder.embed(texts)
        with self._lock:
            if self._indexed == start:  # nobody indexed these meanwhile
                self.index.add(vectors)
                self._indexed = n
        self._sync()  # anything added while we awaited (cached vectors: cheap)

    def _query(self, inputs: Mapping[str, Any]) -> NDArray[np.float32]:
        return _unit(self.embedder.embed([query_text(inputs, self.input_keys, self.fields)])[0])

    async def _aquery(self, inputs: Mapping[str, Any]) -> NDArray[np.float32]:
        text = query_text(inputs, self.input_keys, self.fields)
        aembed = getattr(self.embedder, "aembed", None)
        matrix: NDArray[np.float32] = await aembed([text]) if aembed is not None else self.embedder.embed([text])
        return _unit(matrix[0])

    # -- selecting -------------------------------------------------------------------------------
    def _search(self, query: NDArray[np.float32], k: int, subset: list[int] | None) -> tuple[Any, Any]:
        import numpy as np

        sub = None if subset is None else np.asarray(subset, dtype=np.intp)
        positions, scores = self.index.search(query, k, subset=sub)
        if self.min_score is not None:
            keep = scores >= self.min_score
            positions, scores = positions[keep], scores[keep]
        return positions, scores

    def _pick(self, query: NDArray[np.float32], subset: list[int] | None) -> Selection:
        positions, scores = self._search(query, self.k or 0, subset)
        scores = scores.tolist()
        return self._selection(positions.tolist(), scores, [f"cosine {s:.3f}" for s in scores])

    def _select(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:
        self._sync()
        return self._pick(self._query(inputs), subset)

    async def _aselect(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:
        await self._async_sync()
        return self._pick(await self._aquery(inputs), subset)

    def _options(self) -> dict[str, Any]:
        config = getattr(self.embedder, "config", None)
        embedder = config() if config is not None else {"type": "custom", "model": type(self.embedder).__name__}
        out: dict[str, Any] = {
            "fields": list(self.fields) if self.fields is not None else None,
            "input_keys": list(self.input_keys) if self.input_keys is not None else None,
            "min_score": self.min_score,
            "embedder": embedder,
        }
        return out


class MMRSelector(SemanticSelector):
    """Maximal marginal relevance: relevant examples that are not near-copies of each other.

    Fetches the ``fetch_k`` most similar examples, then picks ``k`` greedily by
    ``(1 - diversity) * relevance - diversity * (max similarity to those already picked)``.
    ``diversity=0`` is plain semantic top-k.

    >>> from promptkit._embeddings import HashingEmbedder
    >>> pool = [{"q": "refund my order"}, {"q": "refund my order please"}, {"q": "order refund status"}]
    >>> s = MMRSelector(pool, k=2, diversity=0.9, embedder=HashingEmbedder())
    >>> [e["q"] for e in s.select({"q": "refund my order"})][0]
    'refund my order'
    """

    kind: ClassVar[str] = "mmr"

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None = None,
        *,
        k: int = 4,
        fetch_k: int = 20,
        diversity: float = 0.5,
        fields: Sequence[str] | None = None,
        input_keys: Sequence[str] | None = None,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        min_score: float | None = None,
        candidates: Selector | None = None,
    ) -> None:
        if not 0.0 <= diversity <= 1.0:
            raise ExampleError(f"diversity must be between 0 and 1, not {diversity}")
        super().__init__(
            pool,
            k=k,
            fields=fields,
            input_keys=input_keys,
            embedder=embedder,
            index=index,
            min_score=min_score,
            candidates=candidates,
        )
        self.fetch_k = max(fetch_k, k)
        self.diversity = diversity

    def _pick(self, query: NDArray[np.float32], subset: list[int] | None) -> Selection:
        import numpy as np

        positions, relevance = self._search(query, self.fetch_k, subset)
        m = positions.shape[0]
        k = min(self.k or 0, m)
        if k == 0:
            return self._selection([], [], [])
        vectors = self.index.get(positions)
        similar = vectors @ vectors.T
        lam = 1.0 - self.diversity
        base = lam * relevance
        redundancy = np.zeros(m, dtype=np.float32)
        taken = np.zeros(m, dtype=bool)
        chosen: list[int] = []
        reasons: list[str] = []
        j = 0  # the most relevant comes first: nothing is picked yet to be redundant with
        for step in range(k):
            if step:
                score = base - self.diversity * redundancy
                score[taken] = -np.inf
                j = int(score.argmax())
            chosen.append(j)
            taken[j] = True
            reasons.append(f"mmr: relevance {relevance[j]:.3f}, redundancy {redundancy[j]:.3f}")
            np.maximum(redundancy, similar[j], out=redundancy)
        return self._selection(positions[chosen].tolist(), relevance[chosen].tolist(), reasons)

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "fetch_k": self.fetch_k, "diversity": self.diversity}


class BM25Selector(BaseSelector):
    """Top-``k`` examples by BM25 over words (the ``bm25s`` library; ``promptkit[bm25]``).

    Lexical: it finds shared words, fast, with no model. Examples with no word in common with
    the query are never returned. Adding to the pool rebuilds the index on the next call.
    ``fields`` are checked like :class:`SemanticSelector`'s: one that no example has is an error.

    >>> pool = [{"q": "how do I reset my password"}, {"q": "shipping takes three days"}]
    >>> BM25Selector(pool, k=1).select({"q": "password reset"})[0]["q"]
    'how do I reset my password'
    """

    kind: ClassVar[str] = "bm25"

    def __init__(
        self,
        pool: ExamplePool | Iterable[ExampleLike] | None = None,
        *,
        k: int = 4,
        fields: Sequence[str] | None = None,
        input_keys: Sequence[str] | None = None,
        stopwords: str | Sequence[str] | None = "en",
        k1: float = 1.5,
        b: float = 0.75,
        candidates: Selector | None = None,
    ) -> None:
        super().__init__(pool, k=k, candidates=candidates)
        self.fields = tuple(fields) if fields is not None else None
        self._fields_checked = check_fields(self.pool, self.fields, type(self).__name__)
        self.input_keys = tuple(input_keys) if input_keys is not None else None
        self.stopwords = stopwords
        self.k1 = k1
        self.b = b
        self._retriever: Any = None
        self._indexed = 0

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        bm25s = require("bm25s", extra="bm25")
        stop = self.stopwords if self.stopwords is None or isinstance(self.stopwords, str) else list(self.stopwords)
        tokens: list[list[str]] = bm25s.tokenize(texts, stopwords=stop, return_ids=False, show_progress=False)
        return tokens

    def _sync(self) -> None:
        if not self._fields_checked:
            self._fields_checked = check_fields(self.pool, self.fields, type(self).__name__)
        if self._retriever is not None and self._indexed >= len(self.pool):
            return
        with self._lock:
            n = len(self.pool)
            if self._retriever is None or self._indexed < n:
                bm25s = require("bm25s", extra="bm25")
                corpus = self._tokenize(self.pool.texts(self.fields)[:n])
                retriever: Any = False  # no example has a searchable word: nothing can match
                if any(corpus):
                    retriever = bm25s.BM25(k1=self.k1, b=self.b)
                    retriever.index(corpus, show_progress=False)
                self._retriever, self._indexed = retriever, n

    def _select(self, inputs: Mapping[str, Any], subset: list[int] | None) -> Selection:
        import numpy as np

        if not len(self.pool):
            return self._selection([], [], [])
        self._sync()
        query = self._tokenize([query_text(inputs, self.input_keys, self.fields)])[0]
        if not query or self._retriever is False:
            return self._selection([], [], [])
        scores = np.asarray(self._retriever.get_scores(query), dtype=np.float32)
        positions: NDArray[np.intp] | None = None
        if subset is not None:
            positions = np.asarray(subset, dtype=np.intp)
            scores = scores[positions]
        order, best = top_k(scores, self.k or 0)
        keep = best > 0
        order, best = order[keep], best[keep]
        found = order if positions is None else positions[order]
        values = best.tolist()
        return self._selection(found.tolist(), values, [f"bm25 {s:.3f}" for s in values])

    def _options(self) -> dict[str, Any]:
        stop = self.stopwords if self.stopwords is None or isinstance(self.stopwords, str) else list(self.stopwords)
        return {
            "fields": list(self.fields) if self.fields is not None else None,
            "input_keys": list(self.input_keys) if self.input_keys is not None else None,
            "stopwords": stop,
            "k1": self.k1,
            "b": self.b,
        }


def _unit(vector: Any) -> NDArray[np.float32]:
    """``vector`` as float32 of length one (embedders normalise already; duck-typed ones may not)."""
    import numpy as np

    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.sqrt(vector @ vector))
    if norm and abs(norm - 1.0) > 1e-4:
        vector = vector / np.float32(norm)
    out: NDArray[np.float32] = vector
    return out


def embedder_of(selector: object) -> BaseEmbedder | None:
    """The embedder a selector uses, if it is one of promptkit's."""
    embedder = getattr(selector, "embedder", None)
    return embedder if isinstance(embedder, BaseEmbedder) else None
