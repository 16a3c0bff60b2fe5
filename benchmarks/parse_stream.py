"""Streaming parse cost: does the time per KB stay flat as a streamed JSON reply grows?

A JSON reply of 20 KB, 80 KB and 320 KB arrives in 4-character chunks. For each size the table
shows the total time of ``parse_stream`` (previews plus the validated final value), the time per
KB, the number of previews and the widest gap between two previews. The log-log slope of total
time against size is ~1 for a linear parser and ~2 for one that re-parses every prefix.

Floors and peers: one ``jiter.from_json`` of the whole reply (no previews at all), re-parsing
every prefix with jiter's partial mode, and langchain-core's ``JsonOutputParser`` streaming (both
quadratic; they are timed on smaller sizes and extrapolated with their measured slope unless
``--full`` is given; the slope keeps rising with size, so the extrapolation is a lower bound).

Run: ``python benchmarks/parse_stream.py [--full]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from typing import Any

import jiter
from _suite import PeerTime, Row, installed
from pydantic import BaseModel

from promptkit._parsers import JsonParser, PydanticParser

SIZES_KB = (20, 80, 320)
CHUNK = 4


class Record(BaseModel):
    id: int
    name: str
    score: float
    tags: list[str]
    active: bool


class Records(BaseModel):
    records: list[Record]


def make_doc(size_kb: int) -> str:
    records: list[dict[str, Any]] = []
    doc = ""
    i = 0
    while len(doc) < size_kb * 1024:
        records.append(
            {"id": i, "name": f"record number {i}", "score": i * 0.25, "tags": ["alpha", "beta"], "active": i % 2 == 0}
        )
        i += 1
        if i % 50 == 0:
            doc = json.dumps({"records": records})
    return json.dumps({"records": records})


def chunks(text: str) -> Iterator[str]:
    for i in range(0, len(text), CHUNK):
        yield text[i : i + CHUNK]


def run_stream(parse_stream: Callable[[Iterator[str]], Iterator[Any]], doc: str) -> tuple[float, int, int]:
    """Total seconds, number of previews, widest gap (chars) between fresh previews."""
    fed = 0
    last = 0
    gap = 0
    previews = 0

    def counting() -> Iterator[str]:
        nonlocal fed
        for c in chunks(doc):
            fed += len(c)
            yield c

    start = time.perf_counter()
    for _ in parse_stream(counting()):
        previews += 1
        gap = max(gap, fed - last)
        last = fed
    elapsed = time.perf_counter() - start
    return elapsed, previews - 1, max(gap, len(doc) - last)


def slope(xs: list[float], ys: list[float]) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def jiter_reparse(stream: Iterator[str]) -> Iterator[Any]:
    """The naive approach: re-parse the whole prefix with jiter's partial mode after every chunk."""
    text = ""
    for c in stream:
        text += c
        yield jiter.from_json(text.encode(), partial_mode="trailing-strings")


def langchain_stream(stream: Iterator[str]) -> Iterator[Any]:
    from langchain_core.output_parsers import JsonOutputParser

    yield from JsonOutputParser().transform(stream)


def run(quick: bool) -> list[Row]:
    """The suite's rows: the whole stream's time, against one jiter parse and LangChain's stream parser."""
    rows = []
    repeat = 3
    for kb in (5,) if quick else (5, 20, 320):
        doc = make_doc(kb)
        data = doc.encode()
        run_stream(JsonParser().parse_stream, doc)  # warm up
        ours = statistics.median(run_stream(JsonParser().parse_stream, doc)[0] for _ in range(repeat))
        typed = statistics.median(run_stream(PydanticParser(Records).parse_stream, doc)[0] for _ in range(repeat))
        floor = statistics.median(timeit.repeat(lambda d=data: jiter.from_json(d), number=1, repeat=5))
        peer: PeerTime
        if not installed("langchain_core"):
            peer = None
        elif kb > 5:
            peer = "quadratic, timed at 5 KB only"
        else:
            peer = statistics.median(run_stream(langchain_stream, doc)[0] for _ in range(1 if quick else 3))
        note = f"{CHUNK}-char chunks; previews after every chunk that completes a value"
        for label, seconds in (("JsonParser.parse_stream", ours), ("PydanticParser.parse_stream", typed)):
            rows.append(
                Row(
                    f"{label}: a streamed JSON reply, all previews",
                    f"{kb} KB",
                    seconds,
                    floor,
                    "one jiter.from_json of the whole reply, no previews",
                    {"langchain-core": peer},
                    note=note + "; langchain-core: JsonOutputParser.transform",
                )
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="time the quadratic peers at 80 KB instead of extrapolating")
    args = ap.parse_args()
    docs = {kb: make_doc(kb) for kb in SIZES_KB}

    print(f"Streaming a JSON reply in {CHUNK}-char chunks (python {sys.version.split()[0]})\n")
    print(f"{'parser':<34}{'size':>7}{'total s':>10}{'ms/KB':>8}{'previews':>10}{'max gap':>9}")
    results: dict[str, list[float]] = {}
    for label, fn in (
        ("JsonParser.parse_stream", JsonParser().parse_stream),
        ("PydanticParser.parse_stream", PydanticParser(Records).parse_stream),
    ):
        run_stream(fn, docs[SIZES_KB[0]])  # warm up
        for kb in SIZES_KB:
            total, previews, gap = min(run_stream(fn, docs[kb]) for _ in range(3))
            results.setdefault(label, []).append(total)
            print(f"{label:<34}{kb:>5}KB{total:>10.3f}{total * 1000 / kb:>8.2f}{previews:>10}{gap:>9}")
    floor = []
    for kb in SIZES_KB:
        data = docs[kb].encode()
        floor.append(min(timeit.repeat(lambda d=data: jiter.from_json(d), number=1, repeat=5)))
        print(f"{'floor: one jiter.from_json':<34}{kb:>5}KB{floor[-1]:>10.4f}{floor[-1] * 1000 / kb:>8.3f}")

    print("\nlog-log slope of total time, 20 KB -> 320 KB (1 = linear, 2 = quadratic):")
    for label, times in results.items():
        print(f"  {label:<32} {slope([float(k) for k in SIZES_KB], times):.2f}")

    print("\nQuadratic peers at 80 KB:")
    ours = results["JsonParser.parse_stream"][1]
    for label, fn, small in (
        ("jiter partial re-parse", jiter_reparse, (10, 20)),
        ("langchain JsonOutputParser", langchain_stream, (10, 20)),
    ):
        try:
            if args.full:
                total, _, _ = run_stream(fn, docs[80])
                note = "measured"
            else:
                times = [run_stream(fn, make_doc(kb))[0] for kb in small]
                s = slope([float(k) for k in small], times)
                total = times[-1] * (80 / small[-1]) ** s
                note = f"extrapolated from {small[0]}/{small[1]} KB, slope {s:.2f}; a lower bound, --full measures"
        except ImportError:
            print(f"  {label:<30} not installed (pip install -r benchmarks/requirements.txt)")
            continue
        print(f"  {label:<30} {total:9.2f} s  ({note}); JsonParser is {total / ours:,.0f}x faster")


if __name__ == "__main__":
    main()
