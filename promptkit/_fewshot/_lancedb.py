"""LanceDB as a vector index: an embedded, on-disk store for pools larger than memory.

LanceDB runs in the process (no server) and keeps its table in a folder as Lance columnar files,
so a pool of millions of vectors is searched from disk and reopened without being embedded again.
Rows hold a ``pos`` (the pool position) and the unit-length ``vector``; the scores returned are
the dot products of the stored rows with the query, exactly as :class:`NumpyIndex` computes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from .._utils import require

if TYPE_CHECKING:
    from ._index import Matrix, Positions

__all__ = ["LanceDBIndex"]


def _lancedb() -> Any:
    return require("lancedb", extra="lancedb")


class LanceDBIndex:
    """Vectors in a LanceDB table, in a folder (``path``) or in memory (no ``path``).

    Pass ``path`` (a folder, created if needed) or a ready ``connection`` from
    ``lancedb.connect``; the table is created on the first :meth:`add`. Search is exact (a scan of
    the table) unless :meth:`create_ann_index` built an approximate index for a large table;
    ``nprobes`` and ``refine_factor`` then tune that index's searches (more of either: better
    recall, slower search).

    >>> LanceDBIndex(table="faq")
    <LanceDBIndex table='faq'>
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        table: str = "promptkit",
        connection: Any = None,
        batch_size: int = 65_536,
        nprobes: int | None = None,
        refine_factor: int | None = None,
    ) -> None:
        if path is not None and connection is not None:
            raise ConfigurationError("pass either path or connection to LanceDBIndex, not both")
        if batch_size <= 0:
            raise ConfigurationError(f"batch_size must be positive, not {batch_size}")
        self._uri = os.fspath(path) if path is not None else "memory://"
        self._connection = connection
        self.table_name = table
        self.batch_size = batch_size
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self._table: Any = None
        self._dim: int | None = None
        self._n: int | None = None

    @property
    def connection(self) -> Any:
        """The LanceDB connection (opened on first use)."""
        if self._connection is None:
            self._connection = _lancedb().connect(self._uri)
        return self._connection

    def _open(self) -> Any:
        if self._table is None:
            connection = self.connection
            try:
                self._table = connection.open_table(self.table_name)
            except ValueError:  # not created yet
                return None
            vector_type = self._table.schema.field("vector").type
            self._dim = int(vector_type.list_size)
        return self._table

    def __len__(self) -> int:
        if self._n is None:
            table = self._open()
            self._n = 0 if table is None else int(table.count_rows())
        return self._n

    def add(self, vectors: Matrix) -> None:
        """Append rows, normalised to unit length (so the dot product is the cosine)."""
        import numpy as np
        import pyarrow as pa

        vectors = np.array(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ConfigurationError(f"vectors must be a 2-d matrix, not shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors /= norms
        start = len(self)
        table = self._open()
        dim = int(vectors.shape[1])
        if self._dim is not None and dim != self._dim:
            raise ConfigurationError(f"vectors have {dim} dimensions; this index holds {self._dim}")
        for lo in range(0, vectors.shape[0], self.batch_size):
            chunk = vectors[lo : lo + self.batch_size]
            batch = pa.table(
                {
                    "pos": pa.array(np.arange(start + lo, start + lo + len(chunk)), type=pa.int64()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel(), type=pa.float32()), dim),
                }
            )
            if table is None:
                table = self._table = self.connection.create_table(self.table_name, data=batch)
                self._dim = dim
            else:
                table.add(batch)
        self._n = start + vectors.shape[0]

    def search(self, query: Matrix, k: int, *, subset: Positions | None = None) -> tuple[Positions, Matrix]:
        import numpy as np

        empty = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        if k <= 0 or len(self) == 0 or (subset is not None and len(subset) == 0):
            return empty
        query = np.asarray(query, dtype=np.float32)
        builder = self._table.search(query).metric("cosine").limit(k).select(["pos", "vector", "_distance"])
        if self.nprobes is not None:
            builder = builder.nprobes(self.nprobes)
        if self.refine_factor is not None:
            builder = builder.refine_factor(self.refine_factor)
        if subset is not None:
            builder = builder.where(_in_clause(subset), prefilter=True)
        found = builder.to_arrow()
        positions = found["pos"].to_numpy().astype(np.intp)
        rows = _matrix(found, self._dim or query.shape[0])
        scores = (rows @ query).astype(np.float32)
        order = np.lexsort((positions, -scores))  # best first, ties by position as in NumpyIndex
        return positions[order], scores[order]

    def get(self, positions: Positions | Sequence[int]) -> Matrix:
        import numpy as np

        ids = [int(i) for i in positions]
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        table = self._open()
        if table is None:
            raise ConfigurationError("the index is empty")
        found = table.search().where(_in_clause(ids)).select(["pos", "vector"]).limit(None).to_arrow()
        rows = _matrix(found, self._dim or 0)
        by_pos = {int(p): i for i, p in enumerate(found["pos"].to_pylist())}
        missing = [i for i in ids if i not in by_pos]
        if missing:
            raise ConfigurationError(f"positions {missing[:5]} are not in the LanceDB table {self.table_name!r}")
        return rows[[by_pos[i] for i in ids]]

    def create_ann_index(self, **options: Any) -> None:
        """Build LanceDB's approximate index (IVF-PQ by default) for faster search of a large table.

        ``options`` go to LanceDB's ``IvfPq`` config (``num_partitions``, ``num_sub_vectors``...).
        Results then come from the approximate index: the top ``k`` may differ from an exact scan.
        """
        table = self._open()
        if table is None:
            raise ConfigurationError("add vectors before building an approximate index")
        ivf_pq = require("lancedb.index", extra="lancedb").IvfPq
        table.create_index("vector", config=ivf_pq(distance_type="cosine", **options))

    def __repr__(self) -> str:
        return f"<LanceDBIndex table={self.table_name!r}>"


def _in_clause(positions: Positions | Sequence[int]) -> str:
    return "pos IN (" + ", ".join(str(int(i)) for i in positions) + ")"


def _matrix(found: Any, dim: int) -> Matrix:
    import numpy as np

    flat = found["vector"].combine_chunks().flatten().to_numpy()
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)
