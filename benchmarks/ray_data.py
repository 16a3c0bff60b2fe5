"""Ray Data against ``prompt.abatch``: rows per second through a local server with fixed latency.

Run: ``python benchmarks/ray_data.py [--rows 10000] [--rounds 3] [--latency 0.05] [--workers 2]
[--concurrency 32]`` (needs ``pip install -e ".[ray,openai-compatible]"``).

The server (``benchmarks/_fast_server.py``, aiohttp, its own process) answers every chat
completion after ``--latency`` seconds. Both cases send the same rows through the same prompt on
``OpenAICompatibleBackend``: ``prompt.abatch`` in this process with ``workers x concurrency``
calls in flight, and :func:`promptkit.map_prompt` on a local Ray (``ray.init(num_cpus=2)``,
started before the clock) with ``workers`` actors of ``concurrency`` calls each, rows kept in
order. A Ray round includes starting the actor pool and building each worker's prompt, as every
pipeline run does; ``ray.init`` itself is left out. Each case's median round is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from _suite import Row
from batch_throughput import start_server

TEMPLATE = "Label the sentiment of: {{ text }}"
MODEL = "bench-model"


def prompt_factory(url: str) -> Callable[[], Any]:
    """A zero-argument factory (pickled to the Ray workers) building the benchmark's prompt."""

    def build() -> Any:
        from promptkit import Prompt
        from promptkit.backends.openai import OpenAICompatibleBackend

        return Prompt(TEMPLATE, OpenAICompatibleBackend(model=MODEL, base_url=url + "/v1", api_key="sk-bench"))

    return build


def rounds_of(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    """Seconds per round of each case, the cases interleaved round by round."""
    import ray

    from promptkit import map_prompt

    rows = [{"text": f"review number {i}"} for i in range(args.rows)]
    in_flight = args.workers * args.concurrency
    build = prompt_factory(url)
    local = build()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        times: dict[str, list[float]] = {"prompt.abatch": [], "Ray Data map_prompt": []}
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = asyncio.run(local.abatch(rows, max_concurrency=in_flight, progress=False))
            times["prompt.abatch"].append(time.perf_counter() - start)
            if result.failed:
                raise SystemExit(f"abatch: {len(result.failed)} rows failed")
            start = time.perf_counter()
            out = map_prompt(
                ray.data.from_items(rows),
                build,
                workers=args.workers,
                batch_size=max(1, args.rows // (4 * args.workers)),
                max_concurrency=args.concurrency,
            ).take_all()
            times["Ray Data map_prompt"].append(time.perf_counter() - start)
            if len(out) != args.rows or any(row["status"] != "ok" for row in out):
                raise SystemExit("Ray Data: rows lost or failed")
            if [row["text"] for row in out] != [row["text"] for row in rows]:
                raise SystemExit("Ray Data: rows out of order")
    finally:
        ray.shutdown()
    return times


def measure_cases(args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per row of each case."""
    proc, url = start_server(args.latency)
    try:
        times = rounds_of(args, url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {name: statistics.median(values) / args.rows for name, values in times.items()}


def _args(quick: bool) -> argparse.Namespace:
    return argparse.Namespace(
        rows=2_000 if quick else 10_000, rounds=1 if quick else 3, latency=0.05, workers=2, concurrency=32
    )


def run(quick: bool) -> list[Row]:
    """The suite's row: Ray Data seconds per row against ``prompt.abatch`` in the same run."""
    args = _args(quick)
    per_row = measure_cases(args)
    in_flight = args.workers * args.concurrency
    size = f"{args.rows:,} rows, {in_flight} in flight, {args.latency * 1000:g} ms latency"
    note = (
        f"seconds per row = 1 / rows per second (ideal {args.latency / in_flight * 1e3:.2f} ms); a Ray round "
        "includes starting its actors; median of rounds"
    )
    return [
        Row(
            "Ray Data map_prompt (2 actors) vs prompt.abatch",
            size,
            per_row["Ray Data map_prompt"],
            per_row["prompt.abatch"],
            "prompt.abatch, same process",
            note=note,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = _args(quick=False)
    parser.add_argument("--rows", type=int, default=defaults.rows)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--latency", type=float, default=defaults.latency)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    args = parser.parse_args()
    per_row = measure_cases(args)
    ideal = args.latency / (args.workers * args.concurrency)
    print(f"{args.rows:,} rows, {args.workers} x {args.concurrency} in flight, {args.latency * 1000:g} ms latency")
    print(f"{'case':<24} {'rows/s':>10} {'ms/row':>8} {'vs ideal':>9}")
    for name, seconds in per_row.items():
        print(f"{name:<24} {1 / seconds:>10,.0f} {seconds * 1e3:>8.3f} {seconds / ideal:>8.2f}x")
    ratio = per_row["Ray Data map_prompt"] / per_row["prompt.abatch"]
    print(f"Ray Data / abatch: {ratio:.2f}x the time per row")


if __name__ == "__main__":
    main()
