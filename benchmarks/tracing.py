"""What observing a run costs: nothing observing, a no-op hook, OpenTelemetry spans, the run log.

Run: python benchmarks/tracing.py [--rounds R]

The backend is a :class:`promptkit.testing.FunctionBackend` answering at once, so the figures are
promptkit's own cost per ``Prompt.complete``. "nothing observing" is the check every run makes
when no hook, tracer or run log is active. Spans go to an SDK tracer provider without an
exporter; the run log appends to a file in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from _suite import Row
from _timing import measure
from opentelemetry.sdk.trace import TracerProvider

import promptkit
from promptkit import Hook, Prompt, TextParser
from promptkit._tracing import start_run
from promptkit.testing import FunctionBackend

INPUTS = {"message": "You won a prize! Click here before midnight to claim it."}


def run(quick: bool) -> list[Row]:
    """The suite's rows: Prompt.complete under each observer against the plain call."""
    backend = FunctionBackend(lambda messages, params: "spam")
    prompt = Prompt("Is this message spam?\n\n{{ message }}", backend, parser=TextParser())
    rounds = 5 if quick else 15

    def call() -> None:
        prompt.complete(**INPUTS)

    t = measure({"plain": call}, rounds=rounds, statistic="median")
    with tempfile.TemporaryDirectory() as folder:
        observers: dict[str, Callable[[], promptkit.HookHandle]] = {
            "a no-op Hook": lambda: promptkit.add_hook(Hook()),
            "instrument() (OpenTelemetry SDK, no exporter)": lambda: promptkit.instrument(
                tracer_provider=TracerProvider()
            ),
            "log_runs() (JSONL file)": lambda: promptkit.log_runs(Path(folder) / "runs.jsonl"),
        }
        for name, start in observers.items():
            with start():
                t.update(measure({name: call}, rounds=rounds, statistic="median"))
    return [
        Row(f"Prompt.complete observed by {name}", "1 call", t[name], t["plain"], "Prompt.complete, nothing observing")
        for name in observers
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    backend = FunctionBackend(lambda messages, params: "spam")
    prompt = Prompt("Is this message spam?\n\n{{ message }}", backend, parser=TextParser())

    def check() -> None:
        start_run(backend=backend, strategy="direct", messages=(), inputs={}, params={}, template=None)

    def call() -> None:
        prompt.complete(**INPUTS)

    best = measure({"nothing observing: the check": check, "Prompt.complete": call}, rounds=args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        observers: dict[str, Callable[[], promptkit.HookHandle]] = {
            "Prompt.complete, a no-op Hook": lambda: promptkit.add_hook(Hook()),
            "Prompt.complete, instrument()": lambda: promptkit.instrument(tracer_provider=TracerProvider()),
            "Prompt.complete, log_runs()": lambda: promptkit.log_runs(Path(folder) / "runs.jsonl"),
        }
        for name, start in observers.items():
            with start():
                best.update(measure({name: call}, rounds=args.rounds))
    base = best["Prompt.complete"]
    print(f"{'case':34} {'per call':>12} {'x plain':>8}")
    for name, seconds in best.items():
        print(f"{name:34} {seconds * 1e6:9.2f} us {seconds / base:8.2f}")


if __name__ == "__main__":
    main()
