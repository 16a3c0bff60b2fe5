"""Timing shared by the benchmark scripts: per-call time over interleaved rounds, best or median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Literal


def measure(
    cases: dict[str, Callable[[], object]],
    *,
    rounds: int = 15,
    budget: float = 0.02,
    statistic: Literal["min", "median"] = "min",
) -> dict[str, float]:
    """Per-call seconds of each case over ``rounds`` interleaved batches of ~``budget`` s.

    Cases take turns so that machine noise hits them alike. Calibrating the batch size warms
    every case up first. ``statistic="min"`` keeps the least disturbed round (the scripts' own
    tables); ``"median"`` the typical one (the suite's table, ``python -m benchmarks``).
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
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: summarize(values, statistic) for name, values in samples.items()}


def summarize(values: Sequence[float], statistic: Literal["min", "median"]) -> float:
    """The best (``min``) or typical (``median``) of repeated timings."""
    return min(values) if statistic == "min" else statistics.median(values)
