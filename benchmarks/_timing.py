"""Timing shared by the benchmark scripts: best per-call time over interleaved rounds."""

from __future__ import annotations

import time
from collections.abc import Callable


def measure(cases: dict[str, Callable[[], object]], *, rounds: int = 15, budget: float = 0.02) -> dict[str, float]:
    """Best per-call seconds of each case over ``rounds`` interleaved batches of ~``budget`` s.

    Cases take turns so that machine noise hits them alike; the minimum is the least disturbed.
    """
    numbers = {}
    for name, fn in cases.items():
        n = 1
        while True:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            elapsed = time.perf_counter() - start
            if elapsed > budget / 4:
                break
            n *= 2
        numbers[name] = max(1, int(n * budget / elapsed))
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, fn in cases.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return best
