"""Semantic top-k on a large pool: the in-memory NumpyIndex against the embedded LanceDBIndex.

Random normalised 384-dim vectors (embedding excluded). For each pool size: the time to add the
vectors, the memory or disk they take, and the median time of one top-10 search over repeated
queries, for NumpyIndex (exact, in memory), LanceDBIndex with an exact scan of its on-disk table
and, with ``--ann``, LanceDBIndex after ``create_ann_index()`` (IVF-PQ, with its recall@10).

    python benchmarks/vector_store.py                       # 100k
    python benchmarks/vector_store.py --sizes 100000 1000000 --ann

Needs ``pip install "promptkit[lancedb]"``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _suite import Row

from promptkit._fewshot import LanceDBIndex, NumpyIndex

DIM = 384
K = 10
QUERIES = 20
CHUNK = 100_000


def unit_rows(rng: np.random.Generator, n: int) -> Any:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def median_ms(fn: Callable[[Any], object], queries: Any) -> float:
    fn(queries[0])  # warm-up (opens files, fills caches)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def bench(n: int, ann: bool, workdir: Path) -> None:
    rng = np.random.default_rng(n)
    queries = unit_rows(rng, QUERIES)
    numpy_index = NumpyIndex()
    lance = LanceDBIndex(workdir / f"lance-{n}", table="pool")
    numpy_add = lance_add = 0.0
    for lo in range(0, n, CHUNK):  # chunks: the pool is never held twice
        chunk = unit_rows(rng, min(CHUNK, n - lo))
        t0 = time.perf_counter()
        numpy_index.add(chunk)
        numpy_add += time.perf_counter() - t0
        t0 = time.perf_counter()
        lance.add(chunk)
        lance_add += time.perf_counter() - t0
    print(f"\npool {n:,} x {DIM}")
    print(f"  add      numpy {numpy_add:7.1f} s ({numpy_index.matrix.nbytes / 1e6:,.0f} MB in memory)")
    print(f"  add      lancedb {lance_add:5.1f} s ({folder_mb(workdir / f'lance-{n}'):,.0f} MB on disk)")
    exact = [numpy_index.search(q, K)[0] for q in queries]
    reopened = LanceDBIndex(workdir / f"lance-{n}", table="pool")  # as a new process would see it
    assert all(reopened.search(q, K)[0].tolist() == e.tolist() for q, e in zip(queries, exact, strict=True))
    in_memory = median_ms(lambda q: numpy_index.search(q, K), queries)
    scanned = median_ms(lambda q: reopened.search(q, K), queries)
    print(f"  top-{K}   NumpyIndex (exact, in memory)      {in_memory:9.2f} ms")
    print(f"  top-{K}   LanceDBIndex (exact scan, on disk) {scanned:9.2f} ms")
    if ann:
        t0 = time.perf_counter()
        reopened.create_ann_index()
        built = time.perf_counter() - t0
        print(f"  IVF-PQ index built in {built:.0f} s")
        for nprobes, refine in ((None, None), (20, 10), (64, 10)):
            tuned = LanceDBIndex(workdir / f"lance-{n}", table="pool", nprobes=nprobes, refine_factor=refine)
            found = [tuned.search(q, K)[0] for q in queries]
            recall = np.mean([len(set(f.tolist()) & set(e.tolist())) / K for f, e in zip(found, exact, strict=True)])
            ms = median_ms(lambda q, tuned=tuned: tuned.search(q, K), queries)
            label = f"nprobes={nprobes}, refine_factor={refine}"
            print(f"  top-{K}   LanceDBIndex IVF-PQ {label:32} {ms:9.2f} ms, recall@{K} {recall:.2f}")


def run(quick: bool) -> list[Row]:
    """The suite's rows: exact top-10 in memory and on disk, against numpy and raw LanceDB."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        pass
    n = 20_000 if quick else 100_000
    rng = np.random.default_rng(n)
    queries = unit_rows(rng, QUERIES)
    vectors = unit_rows(rng, n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        numpy_index = NumpyIndex()
        numpy_index.add(vectors)
        lance = LanceDBIndex(Path(tmp) / "lance", table="pool")
        lance.add(vectors)
        reopened = LanceDBIndex(Path(tmp) / "lance", table="pool")

        def floor(q: Any) -> object:
            scores = vectors @ q
            top = np.argpartition(-scores, K - 1)[:K]
            return top[np.argsort(-scores[top])]

        reopened.search(queries[0], K)
        table = reopened._table  # the raw LanceDB table: its own search is the floor
        size = f"{n:,} x {DIM}"
        rows.append(
            Row(
                f"NumpyIndex exact top-{K}",
                size,
                median_ms(lambda q: numpy_index.search(q, K), queries) / 1e3,
                median_ms(floor, queries) / 1e3,
                "numpy matvec + argpartition",
            )
        )
        rows.append(
            Row(
                f"LanceDBIndex exact top-{K}, on disk",
                size,
                median_ms(lambda q: reopened.search(q, K), queries) / 1e3,
                median_ms(lambda q: table.search(q).metric("cosine").limit(K).to_arrow(), queries) / 1e3,
                "lancedb table.search(...).to_arrow()",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--ann", action="store_true", help="also time LanceDB's approximate (IVF-PQ) index")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.blas_threads, user_api="blas")
    except ImportError:
        pass
    print(f"{os.cpu_count()} cores; numpy BLAS threads: {args.blas_threads}; {QUERIES} queries, median")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            bench(n, args.ann, Path(tmp))


if __name__ == "__main__":
    main()
