"""What an evaluation adds per row beyond its calls, and what keeping the row out of the few-shot pool costs.

Run: ``python benchmarks/evaluation.py [--rows N] [--rounds R]``

The calls go to a ``FunctionBackend`` that answers at once, so a call costs only promptkit's own
work. ``batch`` is ``promptkit.batch`` of three variants over the rows (the floor: the same calls
with nothing scored); ``evaluate`` is ``promptkit.evaluate`` of the same variants with two metrics;
the difference per row (three calls) is the evaluation's overhead. The second table does the same
with a few-shot variant whose ``RandomSelector`` pool holds every row, so each call excludes its
own row (with and without ``exclude_similar``). Each case reports its best of ``R`` interleaved
rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from _suite import Row


def best(cases: dict[str, Callable[[], object]], rounds: int, *, statistic: str = "min") -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    pick = min if statistic == "min" else statistics.median
    return {name: pick(values) for name, values in samples.items()}


def run(quick: bool) -> list[Row]:
    """The suite's rows: evaluate against batch of the same calls, per row of three calls."""
    import promptkit
    from promptkit import Prompt, evaluate
    from promptkit.testing import FunctionBackend

    n = 200 if quick else 1000
    llm = FunctionBackend(lambda messages, params: messages[-1].text[-3:])
    rows = [{"q": f"question number {i}", "expected": str(i)[-3:]} for i in range(n)]
    inputs = [{"q": row["q"]} for row in rows]
    variants = {
        "a": Prompt("{{ q }}", llm),
        "b": Prompt("Answer: {{ q }}", llm),
        "c": Prompt("Please answer {{ q }}", llm),
    }

    def exact(prediction: object, row: promptkit.Row) -> bool:
        return prediction == row.expected

    t = best(
        {
            "batch": lambda: promptkit.batch(variants, inputs, progress=False),
            "evaluate": lambda: evaluate(variants, rows, exact, progress=False),
        },
        3 if quick else 5,
        statistic="median",
    )
    return [
        Row(
            "evaluate, per dataset row (3 variants, 1 metric)",
            f"{n:,} rows",
            t["evaluate"] / n,
            t["batch"] / n,
            "promptkit.batch of the same calls, nothing scored",
            note="instant FunctionBackend",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import promptkit
    from promptkit import Prompt, RandomSelector, evaluate
    from promptkit.testing import FunctionBackend

    llm = FunctionBackend(lambda messages, params: messages[-1].text[-3:])
    rows = [{"q": f"question number {n}", "expected": str(n)[-3:]} for n in range(args.rows)]
    inputs = [{"q": row["q"]} for row in rows]
    variants = {
        "a": Prompt("{{ q }}", llm),
        "b": Prompt("Answer: {{ q }}", llm),
        "c": Prompt("Please answer {{ q }}", llm),
    }

    def exact(prediction: object, row: promptkit.Row) -> bool:
        return prediction == row.expected

    def length(prediction: object, row: promptkit.Row) -> float:
        return min(1.0, len(str(prediction)) / 3)

    pool = [{"q": row["q"], "a": row["expected"]} for row in rows]
    fewshot = {
        "fewshot": Prompt(
            "{{ examples }}\n{{ q }}", llm, examples=RandomSelector(pool, k=4), example_template="{{ q }}: {{ a }}"
        )
    }

    times = best(
        {
            "batch": lambda: promptkit.batch(variants, inputs, progress=False),
            "evaluate": lambda: evaluate(variants, rows, [exact, length], progress=False),
            "few-shot batch": lambda: promptkit.batch(fewshot, inputs, progress=False),
            "few-shot evaluate": lambda: evaluate(fewshot, rows, exact, progress=False),
            "few-shot similar": lambda: evaluate(fewshot, rows, exact, progress=False, exclude_similar=0.9),
        },
        args.rounds,
    )
    n = args.rows
    print(f"{n} rows, best of {args.rounds} rounds")
    print(f"{'case':<20}{'total':>10}{'per row':>12}{'overhead per row':>20}")
    pairs = {
        "batch": None,
        "evaluate": "batch",
        "few-shot batch": None,
        "few-shot evaluate": "few-shot batch",
        "few-shot similar": "few-shot batch",
    }
    for name, floor in pairs.items():
        seconds = times[name]
        extra = "" if floor is None else f"{(seconds - times[floor]) / n * 1e6:>16.1f}us"
        print(f"{name:<20}{seconds:>9.3f}s{seconds / n * 1e6:>10.1f}us{extra:>20}")


if __name__ == "__main__":
    main()
