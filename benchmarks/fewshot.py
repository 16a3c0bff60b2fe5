"""Few-shot selection speed: promptkit against the bare numpy floor and LangChain's selector.

Pools of 1k, 10k and 100k examples with 384-dim random normalised embeddings; embedding time is
excluded (the vectors are precomputed and served from the embedder's cache, and every pool is
indexed before timing). Also measures the local model's embedding throughput.

    python benchmarks/fewshot.py            # all sizes, LangChain if installed
    python benchmarks/fewshot.py --quick    # 1k and 10k, fewer repetitions

Peers: ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from _suite import PeerTime, Row, installed

from promptkit._embeddings import BaseEmbedder, EmbeddingCache, SentenceTransformerEmbedder, local_model_available
from promptkit._fewshot import ExamplePool, MMRSelector, SemanticSelector, TokenBudgetSelector
from promptkit._tiktoken_files import provision_tiktoken_cache
from promptkit._tokens import count_tokens

DIM = 384
K = 5
FETCH_K = 50
QUERIES = 32


class Precomputed(BaseEmbedder):
    """Serves known vectors from the cache; embedding anything else is a benchmark bug."""

    model = "precomputed"

    def __init__(self, texts: Sequence[str], vectors: Any) -> None:
        super().__init__(cache=EmbeddingCache())
        assert self.cache is not None
        self.cache.put([EmbeddingCache.key(self.model, t) for t in texts], vectors)

    def _embed_batch(self, texts: list[str]) -> Any:
        raise AssertionError(f"not precomputed: {texts[:2]}")


def unit_rows(rng: np.random.Generator, n: int) -> Any:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def timed(fn: Callable[[int], object], reps: int) -> float:
    """Median seconds of one call (after one warm-up call)."""
    fn(0)
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_together(fns: Sequence[Callable[[int], object]], reps: int) -> list[float]:
    """Median seconds of one call of each function, calls interleaved so drift hits all alike."""
    for fn in fns:
        fn(0)
    times: list[list[float]] = [[] for _ in fns]
    for i in range(reps):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn(i)
            times[j].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def langchain_selectors(texts: list[str], vectors: Any, queries: list[str], qvecs: Any) -> tuple[Any, Any]:
    """LangChain's semantic and MMR selectors over its in-memory store, on the same vectors."""
    from langchain_core.embeddings import Embeddings
    from langchain_core.example_selectors import (
        MaxMarginalRelevanceExampleSelector,
        SemanticSimilarityExampleSelector,
    )
    from langchain_core.vectorstores import InMemoryVectorStore

    table = {t: v.tolist() for t, v in zip(texts, vectors, strict=True)}
    table.update({q: v.tolist() for q, v in zip(queries, qvecs, strict=True)})

    class Lookup(Embeddings):
        def embed_documents(self, docs: list[str]) -> list[list[float]]:
            return [table[d] for d in docs]

        def embed_query(self, text: str) -> list[float]:
            return table[text]

    store = InMemoryVectorStore(embedding=Lookup())
    store.add_texts(texts, metadatas=[{"q": t, "a": "answer"} for t in texts])
    semantic = SemanticSimilarityExampleSelector(vectorstore=store, k=K, input_keys=["q"])
    mmr = MaxMarginalRelevanceExampleSelector(vectorstore=store, k=K, fetch_k=FETCH_K, input_keys=["q"])
    return semantic, mmr


def size_times(n: int, reps: int, peers: bool, rng: np.random.Generator) -> dict[str, float]:
    """Median seconds of one selection from a pool of ``n``: floor, semantic, MMR and LangChain's."""
    texts = [f"example question number {i}" for i in range(n)]
    vectors = unit_rows(rng, n)
    queries = [f"user question {i}" for i in range(QUERIES)]
    qvecs = unit_rows(rng, QUERIES)
    embedder = Precomputed(texts + queries, np.concatenate([vectors, qvecs]))
    pool = ExamplePool({"q": t, "a": "answer"} for t in texts)
    semantic = SemanticSelector(pool, k=K, fields=["q"], embedder=embedder)
    mmr = MMRSelector(pool, k=K, fetch_k=FETCH_K, diversity=0.5, fields=["q"], embedder=embedder)
    semantic.select({"q": queries[0]})  # index the pool (embedding excluded from the timings)
    mmr.select({"q": queries[0]})
    matrix = semantic.index.matrix  # type: ignore[attr-defined]

    def floor(i: int) -> object:
        scores = matrix @ qvecs[i % QUERIES]
        top = np.argpartition(-scores, K - 1)[:K]
        return top[np.argsort(-scores[top])]

    t_floor, t_sem, t_mmr = timed_together(
        [
            floor,
            lambda i: semantic.select({"q": queries[i % QUERIES]}),
            lambda i: mmr.select({"q": queries[i % QUERIES]}),
        ],
        reps,
    )
    times = {"floor": t_floor, "semantic": t_sem, "mmr": t_mmr}
    if peers and n <= 10_000:
        lc, lc_mmr = langchain_selectors(texts, vectors, queries, qvecs)
        times["langchain"] = timed(lambda i: lc.select_examples({"q": queries[i % QUERIES]}), max(3, reps // 50))
        times["langchain mmr"] = timed(
            lambda i: lc_mmr.select_examples({"q": queries[i % QUERIES]}), max(3, reps // 50)
        )
    return times


def bench_size(n: int, reps: int, peers: bool, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    times = size_times(n, reps, peers, rng)
    t_floor, t_sem, t_mmr = times["floor"], times["semantic"], times["mmr"]
    rows = [
        (f"{n:>7,}", "numpy floor (matvec + argpartition)", ms(t_floor)),
        (f"{n:>7,}", f"SemanticSelector top-{K}", f"{ms(t_sem)}  {t_sem / t_floor:5.2f}x floor"),
        (f"{n:>7,}", f"MMRSelector {K} of top-{FETCH_K}", f"{ms(t_mmr)}  {t_mmr / t_sem:5.2f}x semantic"),
    ]
    if "langchain" in times:
        t_lc = times["langchain"]
        rows.append(
            (f"{n:>7,}", "langchain_core SemanticSimilarity + InMemory", f"{ms(t_lc)}  {t_lc / t_sem:7.0f}x ours")
        )
        t_lc = times["langchain mmr"]
        rows.append(
            (f"{n:>7,}", "langchain_core MaxMarginalRelevance + InMemory", f"{ms(t_lc)}  {t_lc / t_mmr:7.0f}x ours")
        )
    return rows


def run(quick: bool) -> list[Row]:
    """The suite's rows: semantic top-5 and MMR over 1k/10k (and 100k) examples."""
    _blas_threads(1)
    rng = np.random.default_rng(0)
    peers = installed("langchain_core")
    rows = []
    for n in [1_000, 10_000] if quick else [1_000, 10_000, 100_000]:
        t = size_times(n, 50 if quick else (200 if n < 100_000 else 50), peers, rng)
        size = f"{n:,} examples, 384-dim"
        skip: PeerTime = "not measured above 10k" if peers else None
        rows.append(
            Row(
                f"semantic top-{K} example selection",
                size,
                t["semantic"],
                t["floor"],
                "numpy matvec + argpartition",
                {"langchain-core": t.get("langchain", skip)},
                note="precomputed embeddings; langchain-core: SemanticSimilarityExampleSelector, InMemoryVectorStore",
            )
        )
        rows.append(
            Row(
                f"MMR selection, {K} of top-{FETCH_K}",
                size,
                t["mmr"],
                t["floor"],
                "numpy matvec + argpartition, the search alone",
                {"langchain-core": t.get("langchain mmr", skip)},
                note="langchain-core: MaxMarginalRelevanceExampleSelector over InMemoryVectorStore, lambda 0.5",
            )
        )
    return rows


def _blas_threads(threads: int) -> None:
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


def bench_budget(reps: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    n = 10_000
    lengths = rng.integers(5, 120, n)
    quality = rng.uniform(0.0, 1.0, n)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    records = (
        {"q": " ".join(words[j % 5] for j in range(int(m))), "a": "x", "quality": float(s)}
        for m, s in zip(lengths, quality, strict=True)
    )
    pool = ExamplePool.from_records(records, metadata=["quality"])
    counter = token_counter()
    budget = TokenBudgetSelector(pool, max_tokens=1000, count=counter, score="quality")
    t0 = time.perf_counter()
    budget.select({})
    first = time.perf_counter() - t0
    same = timed(lambda i: budget.select({"q": str(i)}), reps)

    def varying(i: int) -> object:
        budget.max_tokens = 500 + (i * 37) % 1500  # a new budget each call: no memoised answer
        return budget.select({})

    t_vary = timed(varying, reps)
    semantic_pool = ExamplePool({"q": f"q {i}", "a": "a" * int(m)} for i, m in enumerate(lengths))
    vectors = unit_rows(rng, n)
    qv = unit_rows(rng, QUERIES)
    queries = [f"query {i}" for i in range(QUERIES)]
    emb = Precomputed([f"q {i}" for i in range(n)] + queries, np.concatenate([vectors, qv]))
    trim = TokenBudgetSelector(
        max_tokens=400,
        count=counter,
        candidates=SemanticSelector(semantic_pool, k=50, fields=["q"], embedder=emb),
    )
    trim.select({"q": queries[0]})
    t_trim = timed(lambda i: trim.select({"q": queries[i % QUERIES]}), reps)
    return [
        ("10,000", "TokenBudgetSelector first call (tiktoken counts 10k examples)", ms(first)),
        ("10,000", "TokenBudgetSelector, same budget (memoised)", ms(same)),
        ("10,000", "TokenBudgetSelector, new budget each call (knapsack)", ms(t_vary)),
        ("10,000", "semantic top-50 then budget trim", ms(t_trim)),
    ]


def token_counter() -> Callable[[str], int]:
    """gpt-4o-mini's tokenizer, its files provisioned offline from the registry package."""
    cache = tempfile.mkdtemp(prefix="tiktoken-bench-")
    provision_tiktoken_cache(cache)
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    os.environ["PROMPTKIT_OFFLINE"] = "1"

    def count(text: str) -> int:
        return int(count_tokens(text, model="gpt-4o-mini"))

    count("warm up")  # loads the encoding: not part of the selector's first call
    return count


def bench_local_model() -> list[tuple[str, str, str]]:
    if not local_model_available():
        return [("-", "local model", "not installed (pip install 'promptkit[embeddings]')")]
    import torch

    model = SentenceTransformerEmbedder(cache=False)
    t0 = time.perf_counter()
    model.embed(["load"])
    load = time.perf_counter() - t0
    sentences = [f"Customer message {i}: my order {i % 17} arrived late and the box was damaged." for i in range(256)]
    rows = [("-", "local model load (first call)", f"{load:9.2f} s")]
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        model.embed(sentences)
        rate = len(sentences) / (time.perf_counter() - t0)
        label = f"all-MiniLM-L6-v2 on CPU, batch 64, {threads} torch thread(s)"
        rows.append((str(len(sentences)), label, f"{rate:9.0f} sentences/s"))
    torch.set_num_threads(default_threads)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k and 10k only, fewer repetitions")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for the vector search, floor included (default 1: on small matrix-vector "
        "products thread wake-ups cost more than they save; 0 keeps the library default)",
    )
    args = parser.parse_args()
    _blas_threads(args.blas_threads)
    rng = np.random.default_rng(0)
    peers = installed("langchain_core")
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    reps = 50 if args.quick else 200
    rows: list[tuple[str, str, str]] = []
    for n in sizes:
        rows += bench_size(n, reps if n < 100_000 else reps // 4, peers, rng)
    rows += bench_budget(reps, rng)
    rows += bench_local_model()
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i.get('internal_api')} {i.get('architecture', '')}".strip() for i in threadpool_info())
    except ImportError:
        blas = "unknown"
    threads = args.blas_threads or "default"
    print(f"numpy {np.__version__}; BLAS: {blas}; BLAS threads {threads}; dim {DIM}; k {K}; median of repeated calls")
    print(f"{'pool':>7}  {'what':<62} time")
    for size, what, figure in rows:
        print(f"{size:>7}  {what:<62} {figure}")
    if not peers:
        print("(langchain_core not installed: pip install -r benchmarks/requirements.txt)")


if __name__ == "__main__":
    main()
