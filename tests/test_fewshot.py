"""Few-shot: examples, pools, selections, selectors, indexes, token budgets, composition and saving."""

from __future__ import annotations

import itertools
import json
import pickle
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from promptkit import ChatTemplate, Example, ExampleError, FixedSelector, MissingDependencyError, Selector, Template
from promptkit._embeddings import BaseEmbedder, HashingEmbedder
from promptkit._fewshot import (
    BM25Selector,
    ExamplePool,
    LanceDBIndex,
    MetadataSelector,
    MMRSelector,
    NumpyIndex,
    QdrantIndex,
    RandomSelector,
    Selection,
    SemanticSelector,
    TokenBudgetSelector,
    VectorIndex,
    coerce_examples,
    example_messages,
    knapsack,
    load_selector,
    render_examples,
)
from promptkit._fewshot._index import top_k

# -- examples (the foundation's behaviour, kept) ----------------------------------------------------


def test_example_fields_and_metadata_are_immutable() -> None:
    e = Example({"input": "a", "output": "b"}, {"source": "x"})
    assert e["input"] == "a"
    assert e.metadata["source"] == "x"
    with pytest.raises(TypeError):
        e.fields["input"] = "z"  # type: ignore[index]
    assert hash(e) == hash(Example({"input": "a", "output": "b"}))


@pytest.mark.parametrize("bad", [{}, "text", {1: "x"}])
def test_bad_examples(bad: object) -> None:
    with pytest.raises(ExampleError):
        Example(bad)  # type: ignore[arg-type]


def test_bad_metadata() -> None:
    with pytest.raises(ExampleError, match="metadata"):
        Example({"q": "1"}, "meta")  # type: ignore[arg-type]


def test_coerce_examples() -> None:
    examples = coerce_examples([{"q": "1"}, Example({"q": "2"})])
    assert [e["q"] for e in examples] == ["1", "2"]
    with pytest.raises(ExampleError, match="single value"):
        coerce_examples({"q": "1"})
    with pytest.raises(ExampleError, match="example 0"):
        coerce_examples([42])  # type: ignore[list-item]


def test_fixed_selector_is_a_selector() -> None:
    selector = FixedSelector([{"q": "1", "a": "2"}])
    assert isinstance(selector, Selector)
    chosen = selector.select({"anything": 1})
    assert [e["a"] for e in chosen] == ["2"]
    assert chosen == (Example({"q": "1", "a": "2"}),)
    assert chosen.reasons == ("fixed",)


def test_render_examples_default_and_template() -> None:
    examples = coerce_examples([{"input": "hi", "output": "hello"}, {"input": "bye", "output": "ciao"}])
    assert render_examples(examples) == "Input: hi\nOutput: hello\n\nInput: bye\nOutput: ciao"
    t = Template("{{ input }} => {{ output }}")
    assert render_examples(examples, t, separator="\n") == "hi => hello\nbye => ciao"


def test_example_text_and_dict() -> None:
    e = Example({"q": "2+2", "a": "4"}, {"src": "m"})
    assert e.text() == "2+2\n4"
    assert e.text(["a", "missing"]) == "4"
    assert e.to_dict() == {"fields": {"q": "2+2", "a": "4"}, "metadata": {"src": "m"}}


def test_example_messages_alternate_roles() -> None:
    chat = ChatTemplate([("user", "{{ q }}"), ("assistant", "{{ a }}")])
    msgs = example_messages(coerce_examples([{"q": "1", "a": "one"}, {"q": "2", "a": "two"}]), chat)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "1"),
        ("assistant", "one"),
        ("user", "2"),
        ("assistant", "two"),
    ]


# -- pools --------------------------------------------------------------------------------------------


def test_pool_from_jsonl_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text(
        '{"q": "1+1", "a": "2", "lang": "en"}\n\n{"fields": {"q": "3+3", "a": "6"}, "metadata": {"lang": "fr"}}\n',
        encoding="utf-8",
    )
    pool = ExamplePool.from_jsonl(path, metadata=["lang"])
    assert len(pool) == 2
    assert pool[0].fields == {"q": "1+1", "a": "2"}
    assert pool[0].metadata == {"lang": "en"}
    assert pool[1].metadata == {"lang": "fr"}
    out = tmp_path / "copy.jsonl"
    pool.save_jsonl(out)
    again = ExamplePool.load(out)
    assert list(again) == list(pool)
    assert [e.metadata for e in again] == [e.metadata for e in pool]


def test_pool_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"q": "1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ExampleError, match="line 2"):
        ExamplePool.from_jsonl(path)
    path.write_text('{"q": "1"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ExampleError, match="line 2"):
        ExamplePool.from_jsonl(path)
    with pytest.raises(ExampleError, match="cannot read"):
        ExamplePool.from_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(ExampleError, match="format"):
        ExamplePool.load(tmp_path / "pool.parquet")


def test_pool_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    path.write_text("text,label,source\nI love it,positive,web\nAwful,negative,mail\n", encoding="utf-8")
    pool = ExamplePool.load(path, metadata=["source"])
    assert [e["label"] for e in pool] == ["positive", "negative"]
    assert pool[1].metadata == {"source": "mail"}
    tsv = tmp_path / "pool.tsv"
    tsv.write_text("text\tlabel\nok\tpositive\n", encoding="utf-8")
    assert ExamplePool.load(tsv)[0]["label"] == "positive"


def test_pool_from_dataframe() -> None:
    import pandas as pd

    frame = pd.DataFrame({"q": ["a", "b"], "a": ["1", "2"], "weight": [0.5, 2.0]})
    pool = ExamplePool.from_dataframe(frame, metadata=["weight"])
    assert [e["q"] for e in pool] == ["a", "b"]
    assert pool[1].metadata == {"weight": 2.0}
    with pytest.raises(ExampleError, match="DataFrame"):
        ExamplePool.from_dataframe([{"q": "a"}])


def test_pool_add_and_position() -> None:
    pool = ExamplePool([{"q": "a"}])
    first = pool[0]
    assert pool.position(first) == 0
    pool.add([{"q": "b"}])
    assert pool.position(pool[1]) == 1
    assert pool.texts(start=1) == ["b"]
    assert pool[0:1] == [first]
    with pytest.raises(ExampleError, match="not in this selector's pool"):
        pool.position(Example({"q": "a"}))
    assert repr(pool) == "<ExamplePool 2 examples>"


# -- selections ---------------------------------------------------------------------------------------


def test_selection_is_a_tuple_with_details() -> None:
    a, b = Example({"q": "a"}), Example({"q": "b"})
    s = Selection([a, b], scores=[0.9, None], tokens=[3, 4], indices=[5, 7], reasons=["x", "y"], selector="S")
    assert s == (a, b)
    assert s.total_tokens == 7
    assert s.items[1].position == 7
    assert s.items[0].reason == "x"
    assert "scores=[0.9, -]" in repr(s)
    assert "tokens=[3, 4]" in repr(s)
    html = s._repr_html_()
    assert "<table>" in html
    assert "0.9000" in html
    assert "7 tokens" in html
    assert Selection([a]).total_tokens is None
    clone = pickle.loads(pickle.dumps(s))
    assert clone == s
    assert clone.scores == s.scores
    assert Selection.of(s) is s
    with pytest.raises(ValueError, match="expected 2"):
        Selection([a, b], scores=[1.0])


# -- vector indexes -------------------------------------------------------------------------------------


def _unit(rows: int, dim: int, seed: int = 0) -> Any:
    m = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_top_k_orders_best_first() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7], dtype=np.float32)
    order, best = top_k(scores, 2)
    assert order.tolist() == [1, 3]
    assert best.tolist() == pytest.approx([0.9, 0.7])
    assert top_k(scores, 10)[0].tolist() == [1, 3, 2, 0]


def test_numpy_index_matches_brute_force_and_grows() -> None:
    vectors = _unit(300, 16)
    index = NumpyIndex()
    for lo in range(0, 300, 70):  # several adds: the buffer grows without losing rows
        index.add(vectors[lo : lo + 70])
    assert len(index) == 300
    assert isinstance(index, VectorIndex)
    q = vectors[42]
    positions, scores = index.search(q, 5)
    expected = np.argsort(-(vectors @ q))[:5]
    assert positions.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, (vectors @ q)[expected], rtol=1e-5)
    sub = np.array([3, 42, 7], dtype=np.intp)
    assert index.search(q, 2, subset=sub)[0].tolist()[0] == 42
    np.testing.assert_allclose(index.get(np.array([1, 2])), vectors[1:3], rtol=1e-6, atol=1e-7)
    with pytest.raises(Exception, match="dimensions"):
        index.add(_unit(2, 8))
    assert NumpyIndex().search(q, 3)[0].shape == (0,)
    assert "300 x 16" in repr(index)


def test_qdrant_index_local_mode_matches_numpy() -> None:
    vectors = _unit(120, 8, seed=3)
    qdrant = QdrantIndex(collection="t", batch_size=50)
    qdrant.add(vectors[:100])
    qdrant.add(vectors[100:])
    assert len(qdrant) == 120
    assert isinstance(qdrant, VectorIndex)
    ref = NumpyIndex(vectors)
    q = vectors[7] + 0.1 * vectors[8]
    q /= np.linalg.norm(q)
    got, got_scores = qdrant.search(q, 4)
    want, want_scores = ref.search(q, 4)
    assert got.tolist() == want.tolist()
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-5)
    sub = np.array([3, 8, 9], dtype=np.intp)
    assert qdrant.search(q, 1, subset=sub)[0].tolist() == [8]
    np.testing.assert_allclose(qdrant.get([5, 2]), vectors[[5, 2]], rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="not in the Qdrant"):
        qdrant.get([999])
    # a second adapter on the same client sees the existing collection
    other = QdrantIndex(qdrant.client, collection="t")
    assert len(other) == 120
    assert QdrantIndex(qdrant.client, collection="empty").search(q, 3)[0].shape == (0,)


def test_lancedb_index_on_disk_matches_numpy(tmp_path: Path) -> None:
    vectors = _unit(120, 8, seed=3)
    lance = LanceDBIndex(tmp_path / "lance", table="t", batch_size=50)
    assert len(lance) == 0
    lance.add(vectors[:100] * 3.0)  # stored normalised, like NumpyIndex
    lance.add(vectors[100:])
    assert len(lance) == 120
    assert isinstance(lance, VectorIndex)
    ref = NumpyIndex(vectors)
    q = vectors[7] + 0.1 * vectors[8]
    q /= np.linalg.norm(q)
    got, got_scores = lance.search(q, 4)
    want, want_scores = ref.search(q, 4)
    assert got.tolist() == want.tolist()
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    sub = np.array([3, 8, 9], dtype=np.intp)
    assert lance.search(q, 1, subset=sub)[0].tolist() == [8]
    assert lance.search(q, 5, subset=sub)[0].tolist() == ref.search(q, 5, subset=sub)[0].tolist()
    assert lance.search(q, 3, subset=np.zeros(0, dtype=np.intp))[0].shape == (0,)
    np.testing.assert_allclose(lance.get([5, 2]), vectors[[5, 2]], rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="not in the LanceDB"):
        lance.get([999])
    with pytest.raises(Exception, match="dimensions"):
        lance.add(_unit(2, 4))
    # reopened from the folder: the rows, their positions and the search are all still there
    reopened = LanceDBIndex(tmp_path / "lance", table="t")
    assert len(reopened) == 120
    assert reopened.search(q, 4)[0].tolist() == want.tolist()
    reopened.add(vectors[:1])
    assert reopened.search(vectors[0], 2)[0].tolist() == [0, 120]
    # a second table on the same connection starts empty
    other = LanceDBIndex(connection=lance.connection, table="empty")
    assert len(other) == 0
    assert other.search(q, 3)[0].shape == (0,)
    with pytest.raises(Exception, match="empty"):
        other.get([0])
    with pytest.raises(Exception, match="add vectors"):
        other.create_ann_index()
    with pytest.raises(Exception, match="not both"):
        LanceDBIndex(tmp_path, connection=lance.connection)
    assert repr(lance) == "<LanceDBIndex table='t'>"


def test_lancedb_approximate_index_still_finds_the_exact_match(tmp_path: Path) -> None:
    vectors = _unit(600, 16, seed=5)
    lance = LanceDBIndex(tmp_path / "lance")
    lance.add(vectors)
    lance.create_ann_index(num_partitions=4, num_sub_vectors=4)
    positions, scores = lance.search(vectors[10], 3)
    assert positions[0] == 10
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    tuned = LanceDBIndex(tmp_path / "lance", nprobes=4, refine_factor=10)  # every partition, re-ranked exactly
    assert tuned.search(vectors[10], 3)[0].tolist() == NumpyIndex(vectors).search(vectors[10], 3)[0].tolist()


def test_lancedb_index_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lancedb", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "promptkit\[lancedb\]"'):
        len(LanceDBIndex())


# -- selectors ----------------------------------------------------------------------------------------

# Every vector index answers the selectors as NumpyIndex does: the selector tests run on each.
INDEXES: dict[str, Any] = {
    "numpy": lambda tmp: NumpyIndex(),
    "qdrant": lambda tmp: QdrantIndex(),
    "lancedb": lambda tmp: LanceDBIndex(tmp / "lance"),
}


@pytest.fixture(params=sorted(INDEXES))
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory of fresh, empty indexes of one kind (each call a new store)."""
    counter = itertools.count()
    return lambda: INDEXES[request.param](tmp_path / str(next(counter)))


FAQ = [
    {"q": "How do I reset my password?", "a": "Use the reset link."},
    {"q": "Where is my parcel?", "a": "Track it in your account."},
    {"q": "Can I get a refund for my order?", "a": "Yes, within 30 days."},
    {"q": "How long does shipping take?", "a": "Three to five days."},
    {"q": "I want a refund for a damaged order", "a": "Send us a photo."},
    {"q": "Do you ship abroad?", "a": "To most countries."},
]


def test_random_selector_is_seeded_and_per_input() -> None:
    pool = ExamplePool({"n": str(i)} for i in range(50))
    s = RandomSelector(pool, k=5, seed=1)
    a = s.select({"q": "x"})
    assert a == s.select({"q": "x"})
    assert a == RandomSelector(pool, k=5, seed=1).select({"q": "x"})
    assert a != RandomSelector(pool, k=5, seed=2).select({"q": "x"})
    assert len(set(a)) == 5
    assert all(r == "random (seed 1)" for r in a.reasons)
    assert len(RandomSelector(pool[:3], k=10).select({})) == 3
    with pytest.raises(ExampleError, match="k must"):
        RandomSelector(pool, k=-1)


def test_metadata_selector() -> None:
    pool = ExamplePool(
        [
            Example({"q": "a"}, {"lang": "fr", "level": 1}),
            Example({"q": "b"}, {"lang": "en", "level": 2}),
            Example({"q": "c"}, {"lang": "de", "level": 1}),
            Example({"q": "d"}, {}),
        ]
    )
    assert [e["q"] for e in MetadataSelector(pool, where={"lang": ["fr", "de"]}).select({})] == ["a", "c"]
    assert [e["q"] for e in MetadataSelector(pool, where={"lang": "fr", "level": 2}).select({})] == []
    by_input = MetadataSelector(pool, where=lambda e, inputs: e.metadata.get("lang") == inputs["lang"])
    assert [e["q"] for e in by_input.select({"lang": "en"})] == ["b"]
    level1 = MetadataSelector(pool, where={"level": 1}, k=1)
    assert [e["q"] for e in level1.select({})] == ["a"]
    pool.add([Example({"q": "e"}, {"level": 1})])
    assert [e["q"] for e in MetadataSelector(pool, where={"level": 1}).select({})] == ["a", "c", "e"]
    assert level1.select({}).reasons == ("metadata level=1",)
    with pytest.raises(ExampleError, match="where"):
        MetadataSelector(pool, where=3)  # type: ignore[arg-type]


def test_semantic_selector_top_k_with_scores(make_index: Any) -> None:
    s = SemanticSelector(FAQ, k=2, fields=["q"], embedder=HashingEmbedder(), index=make_index())
    chosen = s.select({"q": "refund for my order"})
    assert {e["q"] for e in chosen} == {FAQ[2]["q"], FAQ[4]["q"]}
    assert chosen.scores[0] is not None
    assert chosen.scores[0] >= (chosen.scores[1] or 0)
    assert chosen.indices[0] in (2, 4)
    assert chosen.reasons[0].startswith("cosine ")
    assert chosen.selector == "SemanticSelector"
    assert "SemanticSelector(pool=6, k=2" in repr(s)


def test_semantic_selector_query_keys(make_index: Any) -> None:
    s = SemanticSelector(
        FAQ, k=1, fields=["q"], input_keys=["question"], embedder=HashingEmbedder(), index=make_index()
    )
    assert s.select({"question": "parcel", "other": "refund refund"})[0] == Example(FAQ[1])
    with pytest.raises(ExampleError, match="question"):
        s.select({"q": "parcel"})
    # no input named like a field: all inputs make the query
    loose = SemanticSelector(FAQ, k=1, fields=["q"], embedder=HashingEmbedder(), index=make_index())
    assert loose.select({"text": "parcel"})[0] == Example(FAQ[1])


def test_semantic_selector_add_embeds_only_new_examples(make_index: Any) -> None:
    embedder = HashingEmbedder()
    pool = ExamplePool(FAQ)
    s = SemanticSelector(pool, k=1, fields=["q"], embedder=embedder, index=make_index())
    s.select({"q": "parcel"})
    seen: list[list[str]] = []
    original = embedder._embed_batch

    def spy(texts: list[str]) -> Any:
        seen.append(texts)
        return original(texts)

    embedder._embed_batch = spy  # type: ignore[method-assign]
    pool.add([{"q": "Is there a student discount?", "a": "10% off."}])
    chosen = s.select({"q": "student discount"})
    assert chosen[0]["a"] == "10% off."
    assert seen == [["Is there a student discount?"], ["student discount"]]


def test_semantic_selector_min_score_and_candidates(make_index: Any) -> None:
    embedder = HashingEmbedder()
    strict = SemanticSelector(FAQ, k=3, fields=["q"], embedder=embedder, min_score=0.99, index=make_index())
    assert len(strict.select({"q": "parcel"})) == 0
    pool = ExamplePool(Example(e, {"topic": "money" if "refund" in e["q"] else "other"}) for e in FAQ)
    only_other = MetadataSelector(pool, where={"topic": "other"})
    s = SemanticSelector(k=1, fields=["q"], embedder=embedder, candidates=only_other, index=make_index())
    assert s.pool is pool
    assert s.select({"q": "refund for my order"})[0].metadata["topic"] == "other"


@pytest.mark.anyio
async def test_semantic_aselect_matches_select(make_index: Any) -> None:
    s = SemanticSelector(FAQ, k=2, fields=["q"], embedder=HashingEmbedder(), index=make_index())
    assert await s.aselect({"q": "shipping abroad"}) == s.select({"q": "shipping abroad"})
    plain = SemanticSelector(FAQ, k=2, fields=["q"], embedder=PlainEmbedder())
    assert await plain.aselect({"q": "shipping abroad"}) == plain.select({"q": "shipping abroad"})


class PlainEmbedder:
    """A duck-typed embedder with only ``embed`` (no cache, no async)."""

    def embed(self, texts: Sequence[str]) -> Any:
        return HashingEmbedder(cache=False).embed(texts)


def test_semantic_selector_on_every_index_matches_numpy(make_index: Any) -> None:
    embedder = HashingEmbedder()
    on_numpy = SemanticSelector(FAQ, k=3, fields=["q"], embedder=embedder)
    on_index = SemanticSelector(FAQ, k=3, fields=["q"], embedder=embedder, index=make_index())
    for q in ("refund", "parcel tracking", "password"):
        got, want = on_index.select({"q": q}), on_numpy.select({"q": q})
        assert got == want
        assert got.indices == want.indices
        assert got.scores == pytest.approx(want.scores, abs=1e-5)


def test_mmr_diversity(make_index: Any) -> None:
    pool = [
        {"q": "refund my order"},
        {"q": "refund my order please"},
        {"q": "refund my order now"},
        {"q": "order refund status and shipping"},
        {"q": "weather today"},
    ]
    embedder = HashingEmbedder()
    plain = SemanticSelector(pool, k=3, embedder=embedder).select({"q": "refund my order"})
    same = MMRSelector(pool, k=3, diversity=0.0, embedder=embedder, index=make_index()).select({"q": "refund my order"})
    assert list(same) == list(plain)
    diverse = MMRSelector(pool, k=3, diversity=0.7, embedder=embedder, index=make_index())
    diverse = diverse.select({"q": "refund my order"})
    assert diverse[0] == plain[0]
    assert Example({"q": "order refund status and shipping"}) in diverse
    assert diverse.reasons[1].startswith("mmr: relevance")
    assert len(MMRSelector(pool, k=2, fetch_k=1, embedder=embedder).select({"q": "x"})) == 2
    with pytest.raises(ExampleError, match="diversity"):
        MMRSelector(pool, diversity=2.0, embedder=embedder)
    empty = MMRSelector(pool, k=2, embedder=embedder, min_score=2.0)
    assert len(empty.select({"q": "refund"})) == 0


def test_bm25_selector() -> None:
    pool = ExamplePool(FAQ)
    s = BM25Selector(pool, k=2, fields=["q"])
    chosen = s.select({"q": "refund order"})
    assert {e["q"] for e in chosen} == {FAQ[2]["q"], FAQ[4]["q"]}
    assert chosen.reasons[0].startswith("bm25 ")
    assert len(s.select({"q": "zebra"})) == 0  # nothing in common: nothing returned
    assert len(s.select({"q": "the and of"})) == 0  # only stopwords
    pool.add([{"q": "zebra crossing rules", "a": "-"}])
    assert s.select({"q": "zebra"})[0]["q"] == "zebra crossing rules"
    only = BM25Selector(pool, k=3, stopwords=["refund"], candidates=FixedSelector([]))
    assert len(only.select({"q": "order"})) == 0


def test_composition_bm25_then_mmr_then_budget() -> None:
    pool = ExamplePool({"q": f"order {i} refund question {'long ' * (i % 7)}", "a": str(i)} for i in range(200))
    bm25 = BM25Selector(pool, k=50, fields=["q"])
    mmr = MMRSelector(k=5, fields=["q"], embedder=HashingEmbedder(), candidates=bm25)
    budget = TokenBudgetSelector(max_tokens=40, candidates=mmr, count=lambda t: len(t.split()))
    chosen = budget.select({"q": "refund question"})
    first = bm25.select({"q": "refund question"})
    assert 0 < len(chosen) <= 5
    assert set(chosen.indices) <= set(first.indices)
    assert chosen.total_tokens is not None
    assert chosen.total_tokens + 0 * len(chosen) <= 40
    assert all("fits budget" in r and "mmr" in r for r in chosen.reasons)
    assert chosen.selector == "TokenBudgetSelector(MMRSelector)"


# -- token budget ---------------------------------------------------------------------------------------


def _brute(values: list[float], weights: list[int], cap: int) -> float:
    best = 0.0
    for r in range(len(values) + 1):
        for combo in itertools.combinations(range(len(values)), r):
            if sum(weights[i] for i in combo) <= cap:
                best = max(best, sum(values[i] for i in combo))
    return best


def test_knapsack_is_exact_on_small_sets() -> None:
    rng = random.Random(5)
    for _ in range(60):
        n = rng.randint(0, 9)
        values = [rng.uniform(0.1, 5.0) for _ in range(n)]
        weights = [rng.randint(1, 30) for _ in range(n)]
        cap = rng.randint(0, 80)
        picked = knapsack(values, weights, cap)
        assert sum(weights[i] for i in picked) <= cap
        assert sum(values[i] for i in picked) == pytest.approx(_brute(values, weights, cap))


def test_knapsack_core_method_on_large_sets() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0.1, 1.0, 5000)
    weights = rng.integers(5, 200, 5000)
    cap = 3000
    picked = knapsack(values, weights, cap, exact_limit=32)
    assert int(weights[picked].sum()) <= cap
    order = np.argsort(-values / weights, kind="stable")
    greedy = order[: int(np.searchsorted(np.cumsum(weights[order]), cap, side="right"))]
    assert values[picked].sum() >= values[greedy].sum()
    assert knapsack(values, weights, 0) == []
    assert knapsack([1.0, 2.0], [1, 1], 5) == [0, 1]


class Counter:
    """Counts words and remembers every text it was asked about."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, text: str) -> int:
        self.seen.append(text)
        return len(text.split())


def test_budget_over_a_pool_counts_each_example_once() -> None:
    count = Counter()
    pool = ExamplePool(
        Example({"q": "w " * n}, {"quality": q}) for n, q in [(10, 5.0), (3, 1.0), (4, 1.0), (5, 3.5), (20, 9.0)]
    )
    s = TokenBudgetSelector(pool, max_tokens=15, count=count, separator="\n", score="quality")
    chosen = s.select({})
    # rendered as "Q: w w ..." so n + 1 tokens; best value within 15 tokens
    # 5.0 + 1.0 (11 + 4 tokens) beats 5.0 + 3.5 (17 tokens, too many) and 3.5 + 1.0 + 1.0
    assert [e.metadata["quality"] for e in chosen] == [5.0, 1.0]
    assert chosen.tokens == (11, 4)
    assert chosen.total_tokens is not None
    assert chosen.total_tokens <= 15
    calls = len(count.seen)
    s.select({"other": "inputs"})
    assert len(count.seen) == calls  # cached
    pool.add([Example({"q": "w"}, {"quality": 4.0})])
    after = s.select({})
    assert len(count.seen) == calls + 1  # only the new example was counted
    assert 4.0 in [e.metadata["quality"] for e in after]


def test_budget_uniform_scores_fit_as_many_as_possible() -> None:
    pool = [{"q": "w " * n} for n in (8, 1, 2, 9, 3)]
    chosen = TokenBudgetSelector(pool, max_tokens=9, count=lambda t: len(t.split()), separator="").select({})
    assert sorted(len(e["q"].split()) for e in chosen) == [1, 2, 3]


def test_budget_trims_candidates_keeping_their_order_and_scores() -> None:
    fixed = FixedSelector([{"q": "a b c d e f"}, {"q": "a"}, {"q": "a b"}])
    s = TokenBudgetSelector(max_tokens=6, candidates=fixed, count=lambda t: len(t.split()), separator="")
    chosen = s.select({})
    # candidate order is preference when they carry no scores: the first is worth the most
    assert [e["q"] for e in chosen] == ["a", "a b"]
    assert chosen.tokens == (2, 3)
    assert s.tokens_of(Example({"q": "a"})) == 2


def test_budget_with_negative_scores_and_chat_template() -> None:
    selection = Selection(
        [Example({"q": "x", "a": "y"}), Example({"q": "z z", "a": "w"})], scores=[-0.2, -0.5], selector="S"
    )

    class Given:
        def select(self, inputs: Mapping[str, Any]) -> Selection:
            return selection

    chat = ChatTemplate([("user", "{{ q }}"), ("assistant", "{{ a }}")])
    s = TokenBudgetSelector(
        max_tokens=11, candidates=Given(), count=lambda t: len(t.split()), example_template=chat, separator=""
    )
    chosen = s.select({})
    assert chosen.tokens == (10,)  # 2 words + 2 messages x 4 overhead
    assert chosen[0]["q"] == "x"


def test_budget_template_string_and_zero_budget() -> None:
    pool = [{"q": "hello world"}]
    s = TokenBudgetSelector(pool, max_tokens=0, count=len, example_template="{{ q }}")
    assert len(s.select({})) == 0
    assert TokenBudgetSelector(pool, max_tokens=11, count=len, example_template="{{ q }}").select({}).tokens == (11,)
    with pytest.raises(ExampleError, match="negative"):
        TokenBudgetSelector(pool, max_tokens=-1, count=len)
    with pytest.raises(ExampleError, match="pool or candidates"):
        TokenBudgetSelector(max_tokens=3, count=len)
    with pytest.raises(ExampleError, match="numeric metadata"):
        TokenBudgetSelector(pool, max_tokens=30, count=len, score="missing").select({})


def test_budget_default_counter_is_the_models_tokenizer() -> None:
    from promptkit._tokens import count_tokens

    pool = [{"q": "The quick brown fox jumps over the lazy dog."}, {"q": "Bonjour tout le monde, comment ça va ?"}]
    s = TokenBudgetSelector(pool, max_tokens=1000, model="gpt-4o-mini", example_template="{{ q }}")
    chosen = s.select({})
    assert chosen.tokens == tuple(count_tokens(e["q"], model="gpt-4o-mini") for e in chosen)
    default = TokenBudgetSelector(pool, max_tokens=1000, example_template="{{ q }}")
    assert default.select({}).tokens == chosen.tokens  # the default model shares the encoding
    chat = ChatTemplate([("user", "{{ q }}"), ("assistant", "ok")])
    turns = TokenBudgetSelector(pool[:1], max_tokens=1000, model="gpt-4o-mini", example_template=chat)
    expected = count_tokens([("user", pool[0]["q"]), ("assistant", "ok")], model="gpt-4o-mini") - 3
    assert turns.select({}).tokens == (expected,)  # the chat format's overhead, less the reply priming


# -- saving and loading ---------------------------------------------------------------------------------


def _round_trip(selector: Any, tmp_path: Path, **load: Any) -> Any:
    path = tmp_path / "selector.pkz"
    selector.save(path)
    return load_selector(path, **load)


@pytest.mark.parametrize(
    "make",
    [
        lambda pool: RandomSelector(pool, k=3, seed=9),
        lambda pool: MetadataSelector(pool, where={"kind": ["b", "c"]}, k=2),
        lambda pool: SemanticSelector(pool, k=2, fields=["q"], embedder=HashingEmbedder(dim=64), min_score=-1.0),
        lambda pool: MMRSelector(pool, k=2, fetch_k=4, diversity=0.3, fields=["q"], embedder=HashingEmbedder()),
        lambda pool: BM25Selector(pool, k=2, fields=["q"], stopwords=None, k1=1.2, b=0.7),
        lambda pool: TokenBudgetSelector(
            max_tokens=30,
            candidates=BM25Selector(pool, k=4),
            model="gpt-4o-mini",
            example_template=Template("{{ q }} -> {{ a }}"),
            count=len,
        ),
        lambda pool: FixedSelector(pool[:2]),
    ],
    ids=["random", "metadata", "semantic", "mmr", "bm25", "budget", "fixed"],
)
def test_selectors_round_trip(make: Any, tmp_path: Path) -> None:
    pool = ExamplePool(Example(e, {"kind": "abcabc"[i]}) for i, e in enumerate(FAQ))
    selector = make(pool)
    loaded = _round_trip(selector, tmp_path, count=len)
    assert type(loaded) is type(selector)
    assert loaded.config() == selector.config()
    for q in ("refund my order", "parcel", "password reset"):
        assert list(loaded.select({"q": q})) == list(selector.select({"q": q}))


def test_saved_embeddings_are_not_recomputed(tmp_path: Path) -> None:
    s = SemanticSelector(FAQ, k=2, fields=["q"], embedder=HashingEmbedder())
    path = tmp_path / "s.zip"
    s.save(path, include_embeddings=True)
    embedder = HashingEmbedder()
    loaded = load_selector(path, embedder=embedder)
    assert loaded.select({"q": "refund"}) == s.select({"q": "refund"})
    assert embedder.calls == 1  # only the query


def test_save_chat_template_budget_and_candidates_of_qdrant(tmp_path: Path) -> None:
    chat = ChatTemplate([("user", "{{ q }}"), ("assistant", "{{ a }}")])
    inner = SemanticSelector(FAQ, k=3, embedder=HashingEmbedder(), index=QdrantIndex())
    s = TokenBudgetSelector(max_tokens=40, candidates=inner, count=len, example_template=chat, score=None)
    path = tmp_path / "s.zip"
    s.save(path, include_embeddings=True)
    loaded = load_selector(path, count=len)
    assert list(loaded.select({"q": "refund"})) == list(s.select({"q": "refund"}))
    assert isinstance(loaded.candidates.index, NumpyIndex)


def test_load_errors(tmp_path: Path) -> None:
    pool = ExamplePool(FAQ)
    path = tmp_path / "s.zip"
    RandomSelector(pool, k=2).save(path, include_pool=False)
    with pytest.raises(ExampleError, match="pass pool"):
        load_selector(path)
    assert len(load_selector(path, pool=pool).select({})) == 2
    TokenBudgetSelector(pool, max_tokens=5, count=len).save(path)
    with pytest.raises(ExampleError, match="count="):
        load_selector(path)
    TokenBudgetSelector(pool, max_tokens=80, count=len, score=lambda e: 1.0).save(path)
    with pytest.raises(ExampleError, match="score="):
        load_selector(path, count=len)
    assert len(load_selector(path, count=len, score=lambda e: 2.0).select({})) == 1
    MetadataSelector(pool, where=lambda e, i: True).save(path)
    with pytest.raises(ExampleError, match="where="):
        load_selector(path)
    assert len(load_selector(path, where=lambda e, i: False).select({})) == 0
    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(ExampleError, match="cannot read"):
        load_selector(tmp_path / "junk.zip")
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("selector.json", json.dumps({"format": "else"}))
    with pytest.raises(ExampleError, match="not a saved"):
        load_selector(tmp_path / "other.zip")
    with zipfile.ZipFile(tmp_path / "odd.zip", "w") as zf:
        zf.writestr("selector.json", json.dumps({"format": "promptkit-selector", "selector": {"type": "odd"}}))
    with pytest.raises(ExampleError, match="unknown selector"):
        load_selector(tmp_path / "odd.zip", pool=pool)

    class Opaque:
        def select(self, inputs: Mapping[str, Any]) -> Sequence[Example]:
            return ()

    with pytest.raises(ExampleError, match="Opaque"):
        RandomSelector(pool, candidates=Opaque()).save(path)


def test_semantic_selector_with_a_custom_embedder_needs_it_at_load(tmp_path: Path) -> None:
    class Custom(BaseEmbedder):
        model = "custom-model"

        def _embed_batch(self, texts: list[str]) -> Any:
            return HashingEmbedder(cache=False)._embed_batch(texts)

    s = SemanticSelector(FAQ, k=1, embedder=Custom())
    path = tmp_path / "c.zip"
    s.save(path)
    with pytest.raises(Exception, match="embedder="):
        load_selector(path)
    assert load_selector(path, embedder=Custom()).select({"q": "parcel"}) == s.select({"q": "parcel"})
    p2 = tmp_path / "p.zip"
    SemanticSelector(FAQ, k=1, embedder=PlainEmbedder()).save(p2)
    assert load_selector(p2, embedder=PlainEmbedder()).select({"q": "parcel"})[0] == Example(FAQ[1])


def test_threads_sharing_a_growing_pool_index_each_example_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    pool = ExamplePool({"q": f"question {i}"} for i in range(50))
    semantic = SemanticSelector(pool, k=3, embedder=HashingEmbedder())
    budget = TokenBudgetSelector(pool, max_tokens=20, count=len, example_template="{{ q }}")

    def work(i: int) -> None:
        if i % 5 == 0:
            pool.add([{"q": f"added {i}"}])
        semantic.select({"q": f"question {i}"})
        budget.select({})

    with ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(work, range(100)))
    semantic.select({"q": "x"})
    budget.select({})
    assert len(semantic.index) == len(pool) == 70
    assert len(budget._pool_tokens) == 70


@pytest.mark.anyio
async def test_concurrent_aselect_indexes_once() -> None:
    import asyncio

    pool = ExamplePool({"q": f"question {i}"} for i in range(30))
    s = SemanticSelector(pool, k=2, embedder=HashingEmbedder())
    await asyncio.gather(*(s.aselect({"q": f"question {i}"}) for i in range(10)))
    assert len(s.index) == 30


def test_budget_reserve_leaves_room_for_the_prompt(tmp_path: Path) -> None:
    pool = [{"q": "w " * n} for n in (3, 3, 3, 3)]  # 4 tokens each once rendered ("Q: w w w")
    words = Counter()
    fixed = TokenBudgetSelector(pool, max_tokens=12, count=words, separator="", reserve=4)
    assert len(fixed.select({})) == 2
    by_input = TokenBudgetSelector(
        pool, max_tokens=12, count=words, separator="", reserve=lambda inputs: len(inputs["question"].split())
    )
    assert len(by_input.select({"question": "short"})) == 2
    assert len(by_input.select({"question": "a much longer question here"})) == 1
    assert len(by_input.select({"question": "one two three four five six seven eight nine"})) == 0
    assert by_input.budget({"question": "x " * 40}) == 0
    path = tmp_path / "b.zip"
    fixed.save(path)
    assert load_selector(path, count=words).reserve == 4
    by_input.save(path)
    with pytest.raises(ExampleError, match="reserve="):
        load_selector(path, count=words)
    assert len(load_selector(path, count=words, reserve=lambda i: 0).select({})) == 3


def test_qdrant_on_disk_collection_is_not_embedded_again(tmp_path: Path) -> None:
    first = HashingEmbedder()
    index = QdrantIndex(path=tmp_path / "qdrant", collection="faq")
    s = SemanticSelector(FAQ, k=2, fields=["q"], embedder=first, index=index)
    expected = s.select({"q": "refund"})
    index.close()
    again = HashingEmbedder()
    reopened = QdrantIndex(path=tmp_path / "qdrant", collection="faq")
    assert len(reopened) == len(FAQ)
    s2 = SemanticSelector(FAQ, k=2, fields=["q"], embedder=again, index=reopened)
    assert s2.select({"q": "refund"}) == expected
    assert again.calls == 1  # the query only
    reopened.close()


def test_lancedb_on_disk_table_is_not_embedded_again(tmp_path: Path) -> None:
    first = HashingEmbedder()
    s = SemanticSelector(FAQ, k=2, fields=["q"], embedder=first, index=LanceDBIndex(tmp_path / "lance", table="faq"))
    expected = s.select({"q": "refund"})
    again = HashingEmbedder()
    reopened = LanceDBIndex(tmp_path / "lance", table="faq")
    assert len(reopened) == len(FAQ)
    s2 = SemanticSelector(FAQ, k=2, fields=["q"], embedder=again, index=reopened)
    assert s2.select({"q": "refund"}) == expected
    assert again.calls == 1  # the query only


def test_selection_counted_fills_tokens() -> None:
    from promptkit._tokens import count_tokens

    s = SemanticSelector(FAQ, k=2, fields=["q"], embedder=HashingEmbedder()).select({"q": "refund"})
    assert s.tokens == (None, None)
    counted = s.counted(model="gpt-4o-mini", example_template="{{ q }}")
    assert counted.tokens == tuple(count_tokens(e["q"], model="gpt-4o-mini") for e in s)
    assert counted.scores == s.scores
    assert counted.reasons == s.reasons
    assert s.counted().total_tokens is not None


class UnnormalisedEmbedder:
    """Returns vectors of arbitrary length: the index and the query are normalised anyway."""

    def embed(self, texts: Sequence[str]) -> Any:
        return HashingEmbedder(cache=False).embed(texts) * 7.5


def test_unnormalised_embedders_still_give_cosines() -> None:
    s = SemanticSelector(FAQ, k=1, fields=["q"], embedder=UnnormalisedEmbedder())
    chosen = s.select({"q": FAQ[0]["q"]})
    assert chosen.scores[0] == pytest.approx(1.0, abs=1e-5)


def test_few_shot_adds_nothing_heavy_to_import_promptkit() -> None:
    import subprocess

    code = (
        "import sys, promptkit._fewshot, promptkit._embeddings; "
        "print(sorted(m for m in ('numpy', 'bm25s', 'qdrant_client', 'pandas', 'torch', 'asyncio', 'zipfile', 'csv')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "make",
    [
        lambda pool: BM25Selector(pool, k=2),
        lambda pool: SemanticSelector(pool, k=2, embedder=HashingEmbedder()),
        lambda pool: MMRSelector(pool, k=2, embedder=HashingEmbedder()),
        lambda pool: TokenBudgetSelector(pool, max_tokens=5, count=len),
        lambda pool: RandomSelector(pool, k=2),
        lambda pool: MetadataSelector(pool, where={"a": 1}),
    ],
)
def test_empty_pools_select_nothing(make: Any) -> None:
    assert make([]).select({"q": "anything at all"}) == ()


def test_bm25_pool_without_searchable_words() -> None:
    s = BM25Selector([{"q": ""}, {"q": "a the"}], k=2)
    assert s.select({"q": "words here"}) == ()


def test_no_candidates_means_no_examples(make_index: Any) -> None:
    nothing = MetadataSelector(FAQ, where={"missing": 1})
    for cls in (SemanticSelector, MMRSelector):
        s = cls(k=2, embedder=HashingEmbedder(), index=make_index(), candidates=nothing)
        assert s.select({"q": "refund"}) == ()
    assert BM25Selector(k=2, candidates=nothing).select({"q": "refund"}) == ()
    assert RandomSelector(k=2, candidates=nothing).select({}) == ()


# -- searched fields must exist -------------------------------------------------------------------


def _field_selectors(pool: Any, fields: list[str]) -> list[Any]:
    return [
        SemanticSelector(pool, k=1, fields=fields, embedder=HashingEmbedder(dim=32)),
        MMRSelector(pool, k=1, fields=fields, embedder=HashingEmbedder(dim=32)),
        BM25Selector(pool, k=1, fields=fields),
    ]


@pytest.mark.parametrize("kind", ["SemanticSelector", "MMRSelector", "BM25Selector"])
def test_unknown_fields_are_an_error_at_construction(kind: str) -> None:
    pool = [{"question": "reset my password", "answer": "..."}, {"question": "track my parcel", "answer": "..."}]
    cls = {"SemanticSelector": SemanticSelector, "MMRSelector": MMRSelector, "BM25Selector": BM25Selector}[kind]
    options: dict[str, Any] = {} if cls is BM25Selector else {"embedder": HashingEmbedder(dim=32)}
    with pytest.raises(ExampleError, match=r"\['nope'\].*\['answer', 'question'\]") as info:
        cls(pool, k=1, fields=["question", "nope"], **options)
    assert kind in str(info.value)
    # a field only some examples have is fine
    cls([*pool, {"question": "q", "note": "x"}], k=1, fields=["note"], **options)


def test_unknown_fields_on_an_empty_pool_fail_on_the_first_select() -> None:
    pool = ExamplePool()
    selectors = _field_selectors(pool, ["nope"])  # nothing to check against yet
    pool.add([{"q": "reset my password"}])
    for selector in selectors:
        with pytest.raises(ExampleError, match=r"\['nope'\].*\['q'\]"):
            selector.select({"q": "password"})


@pytest.mark.anyio
async def test_unknown_fields_fail_on_the_first_aselect() -> None:
    pool = ExamplePool()
    selectors = _field_selectors(pool, ["nope"])
    pool.add([{"q": "reset my password"}])
    for selector in selectors:
        with pytest.raises(ExampleError, match="nope"):
            await selector.aselect({"q": "password"})


def test_pool_html_is_a_table_of_fields_and_metadata_escaped() -> None:
    from promptkit import ExamplePool

    pool = ExamplePool(
        [
            Example({"q": "<script>alert(1)</script>", "a": "4"}, {"source": "<i>web</i>"}),
            {"q": "plain", "extra": "x" * 200},
        ]
    )
    shown = pool._repr_html_()
    assert "<b>ExamplePool</b> <small>2 examples</small>" in shown
    assert "<th>#</th><th>q</th><th>a</th><th>extra</th><th>metadata</th>" in shown
    assert "<script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "source=&lt;i&gt;web&lt;/i&gt;" in shown
    assert "x" * 79 + "…" in shown
    assert "x" * 80 not in shown


def test_pool_html_shows_the_first_rows_and_counts_the_rest() -> None:
    from promptkit import ExamplePool

    pool = ExamplePool([{"q": f"question {n}"} for n in range(25)])
    shown = pool._repr_html_()
    assert "question 9" in shown
    assert "question 10" not in shown
    assert "... 15 more examples" in shown
    assert "metadata" not in shown
