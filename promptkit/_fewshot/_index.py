"""Vector indexes: where a pool's embeddings live and how the nearest ones are found.

:class:`NumpyIndex` (the default) keeps one normalised float32 matrix in memory and answers with a
matrix-vector product and ``argpartition``. :class:`QdrantIndex` stores the vectors in Qdrant
(embedded local mode, a server or a cluster) for pools that outgrow one process's memory.
Positions are the examples' positions in the pool: ``add`` appends, ``search`` returns positions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._errors import ConfigurationError
from .._utils import require

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    from numpy.typing import NDArray

    Matrix: TypeAlias = NDArray[np.float32]
    Positions: TypeAlias = NDArray[np.intp]

__all__ = ["NumpyIndex", "QdrantIndex", "VectorIndex", "top_k"]


@runtime_checkable
class VectorIndex(Protocol):
    """Stores normalised vectors by position and finds the most similar ones by cosine."""

    def __len__(self) -> int: ...

    def add(self, vectors: Matrix) -> None:
        """Append rows; the first gets position ``len(self)``."""

    def search(self, query: Matrix, k: int, *, subset: Positions | None = None) -> tuple[Positions, Matrix]:
        """The ``k`` best positions (within ``subset`` if given), best first, and their scores."""
        ...

    def get(self, positions: Positions) -> Matrix:
        """The stored rows at ``positions``."""
        ...


def top_k(scores: Matrix, k: int) -> tuple[Positions, Matrix]:
    """Positions of the ``k`` largest scores, best first (``argpartition``, then a sort of ``k``)."""
    import numpy as np

    n = scores.shape[0]
    if k >= n:
        order = np.argsort(-scores, kind="stable")
    else:
        part = np.argpartition(-scores, k - 1)[:k]
        order = part[np.argsort(-scores[part], kind="stable")]
    return order, scores[order]


class NumpyIndex:
    """Vectors in one growing float32 matrix; search is ``matrix @ query`` plus ``argpartition``.

    >>> import numpy as np
    >>> index = NumpyIndex()
    >>> index.add(np.eye(3, dtype=np.float32))
    >>> positions, scores = index.search(np.array([0.1, 0.9, 0.0], dtype=np.float32), 2)
    >>> positions.tolist()
    [1, 0]
    """

    def __init__(self, vectors: Matrix | None = None) -> None:
        self._buffer: Matrix | None = None
        self._n = 0
        if vectors is not None:
            self.add(vectors)

    def __len__(self) -> int:
        return self._n

    @property
    def matrix(self) -> Matrix:
        """The stored vectors (a view, one row per position)."""
        import numpy as np

        if self._buffer is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self._buffer[: self._n]

    def add(self, vectors: Matrix) -> None:
        """Append rows, normalised to unit length (so the dot product is the cosine)."""
        import numpy as np

        vectors = np.array(vectors, dtype=np.float32)  # a copy: normalised in place below
        if vectors.ndim != 2:
            raise ConfigurationError(f"vectors must be a 2-d matrix, not shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors /= norms
        m = vectors.shape[0]
        if self._buffer is None:
            self._buffer = np.empty((max(m, 16), vectors.shape[1]), dtype=np.float32)
        elif vectors.shape[1] != self._buffer.shape[1]:
            raise ConfigurationError(
                f"vectors have {vectors.shape[1]} dimensions; this index holds {self._buffer.shape[1]}"
            )
        if self._n + m > self._buffer.shape[0]:  # grow geometrically: adding never copies the pool each time
            grown = np.empty((max(self._n + m, 2 * self._buffer.shape[0]), self._buffer.shape[1]), dtype=np.float32)
            grown[: self._n] = self._buffer[: self._n]
            self._buffer = grown
        self._buffer[self._n : self._n + m] = vectors
        self._n += m

    def search(self, query: Matrix, k: int, *, subset: Positions | None = None) -> tuple[Positions, Matrix]:
        import numpy as np

        if self._buffer is None or self._n == 0 or k <= 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        if subset is None:
            scores = self._buffer[: self._n] @ query
            return top_k(scores, k)
        subset = np.asarray(subset, dtype=np.intp)
        scores = self._buffer[subset] @ query
        order, best = top_k(scores, k)
        return subset[order], best

    def get(self, positions: Positions) -> Matrix:
        if self._buffer is None:
            raise ConfigurationError("the index is empty")
        return self._buffer[positions]

    def __repr__(self) -> str:
        dim = 0 if self._buffer is None else self._buffer.shape[1]
        return f"<NumpyIndex {self._n} x {dim}>"


class QdrantIndex:
    """Vectors in a Qdrant collection: embedded local mode, a server or a cluster.

    Pass a ready ``QdrantClient`` as ``client``, or ``path`` (a folder: local mode on disk) or
    ``url`` (a server or cluster); with none of them the index lives in memory (local mode).
    Point ids are pool positions; the collection is created on the first :meth:`add` with cosine
    distance.

    >>> QdrantIndex(collection="docs")
    <QdrantIndex collection='docs'>
    """

    def __init__(
        self,
        client: Any = None,
        *,
        collection: str | None = None,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 512,
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self._connect: dict[str, str | None] = {
            "path": os.fspath(path) if path is not None else None,
            "url": url,
            "api_key": api_key,
        }
        if client is None and path is None and url is None:
            self._connect["location"] = ":memory:"
        self.collection = collection or f"promptkit-{os.urandom(6).hex()}"
        self.batch_size = batch_size
        self._n: int | None = None

    @property
    def client(self) -> Any:
        """The ``QdrantClient`` (created on first use)."""
        if self._client is None:
            qc = require("qdrant_client", extra="qdrant", package="qdrant-client")
            self._client = qc.QdrantClient(**{k: v for k, v in self._connect.items() if v is not None})
        return self._client

    def _models(self) -> Any:
        return require("qdrant_client.models", extra="qdrant", package="qdrant-client")

    def __len__(self) -> int:
        if self._n is None:
            client = self.client
            if client.collection_exists(self.collection):
                self._n = int(client.count(self.collection, exact=True).count)
            else:
                self._n = 0
        return self._n

    def add(self, vectors: Matrix) -> None:
        import numpy as np

        models = self._models()
        vectors = np.asarray(vectors, dtype=np.float32)
        client = self.client
        start = len(self)
        if not client.collection_exists(self.collection):
            client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=int(vectors.shape[1]), distance=models.Distance.COSINE),
            )
        for lo in range(0, vectors.shape[0], self.batch_size):
            chunk = vectors[lo : lo + self.batch_size]
            client.upsert(
                self.collection,
                points=models.Batch(ids=list(range(start + lo, start + lo + len(chunk))), vectors=chunk.tolist()),
                wait=True,
            )
        self._n = start + vectors.shape[0]

    def search(self, query: Matrix, k: int, *, subset: Positions | None = None) -> tuple[Positions, Matrix]:
        import numpy as np

        if k <= 0 or len(self) == 0 or (subset is not None and len(subset) == 0):
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        models = self._models()
        query_filter = None
        if subset is not None:
            query_filter = models.Filter(must=[models.HasIdCondition(has_id=[int(i) for i in subset])])
        result = self.client.query_points(
            self.collection, query=np.asarray(query, dtype=np.float32).tolist(), limit=k, query_filter=query_filter
        )
        points = result.points
        return (
            np.array([int(p.id) for p in points], dtype=np.intp),
            np.array([p.score for p in points], dtype=np.float32),
        )

    def get(self, positions: Positions | Sequence[int]) -> Matrix:
        import numpy as np

        ids = [int(i) for i in positions]
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        records = self.client.retrieve(self.collection, ids=ids, with_vectors=True)
        by_id = {int(r.id): r.vector for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ConfigurationError(f"positions {missing[:5]} are not in the Qdrant collection {self.collection!r}")
        return np.asarray([by_id[i] for i in ids], dtype=np.float32)

    def close(self) -> None:
        """Close the client (releases a local folder's lock); only a client this index created."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"<QdrantIndex collection={self.collection!r}>"
