"""The time to compute an evaluation report: summaries and a paired comparison of 10,000 rows x 3 variants.

Run: python benchmarks/eval_report.py [--rows 10000] [--rounds 5]

The report is built by hand from cells (no calls), once with a binary metric (Wilson intervals,
McNemar's test) and once with a graded one taking thousands of distinct values (bootstrap
intervals and a sign-flip permutation test over every row, the worst case). Each case times a
fresh report's ``summaries`` plus one ``compare`` (the report caches both) and reports the best
round; a cProfile of one round follows. Building the cells is not timed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time

from _suite import Row as TableRow

from promptkit import Cell, EvalReport, Row, Score, Trial

VARIANTS = ("zero-shot", "few-shot", "cot")


def build(rows: int, *, graded: bool, seed: int = 0) -> EvalReport:
    rng = random.Random(seed)
    data = [Row(id=f"r{i}", inputs={"q": f"question {i}"}, expected="a") for i in range(rows)]
    cells: dict[str, list[Cell]] = {}
    for skill, variant in zip((0.6, 0.65, 0.7), VARIANTS, strict=True):
        column = []
        for row in data:
            value = rng.random() * skill * 1.4 if graded else float(rng.random() < skill)
            value = min(1.0, value)
            trial = Trial(
                epoch=0, status="ok", prediction="a", scores={"m": Score(value=value)}, seconds=0.2, cost=1e-4
            )
            column.append(Cell(variant=variant, row_id=row.id, trials=(trial,), scores={"m": value}, prediction="a"))
        cells[variant] = column
    return EvalReport(variants=VARIANTS, metrics=["m"], rows=data, cells=cells)


def once(report: EvalReport) -> float:
    fresh = EvalReport(variants=report.variants, metrics=report.metrics, rows=report.rows, cells=report.cells)
    start = time.perf_counter()
    _ = fresh.summaries
    fresh.compare("zero-shot", "few-shot")
    return time.perf_counter() - start


def run(quick: bool) -> list[TableRow]:
    """The suite's rows: summaries plus one paired comparison of a built report."""
    import statistics

    import numpy  # noqa: F401  (import cost is not the report's)

    n = 2_000 if quick else 10_000
    out = []
    for graded in (False, True):
        report = build(n, graded=graded)
        seconds = statistics.median(once(report) for _ in range(3 if quick else 5))
        label = "graded metric (bootstrap, permutation)" if graded else "0/1 metric (Wilson, McNemar)"
        out.append(TableRow(f"EvalReport summaries + 1 comparison, {label}", f"{n:,} rows x 3 variants", seconds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import numpy  # noqa: F401  (import cost is not the report's)

    for graded in (False, True):
        report = build(args.rows, graded=graded)
        best = min(once(report) for _ in range(args.rounds))
        label = "graded (bootstrap, permutation)" if graded else "binary (Wilson, McNemar)"
        print(f"{label:34s} {args.rows:,} rows x {len(VARIANTS)} variants: {best * 1e3:7.1f} ms")
        comparison = report.compare("zero-shot", "few-shot")
        print(f"{'':34s} {comparison}")
    profile = cProfile.Profile()
    report = build(args.rows, graded=True)
    profile.enable()
    once(report)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
