"""Cold import time of ``import promptkit`` as a whole process, against its own dependencies and peers.

Run: python benchmarks/import_time.py [--runs N]
Each row is the median wall time of N fresh interpreters; the floor is an interpreter doing nothing.
Peers that are not installed are skipped with a note.

Installed packages ship compiled bytecode, so every case runs with bytecode caching on (into a
temporary ``PYTHONPYCACHEPREFIX``, leaving the tree clean) after one untimed warm-up run: otherwise
promptkit, run from a source checkout under ``PYTHONDONTWRITEBYTECODE``, would pay for compiling
its sources on every run while its dependencies would not. ``--no-cache`` measures that case.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _suite import PeerTime, Row, installed

CASES = [
    ("floor: python -c pass", "pass", None),
    ("import jinja2, pydantic", "import jinja2, pydantic", None),
    ("jinja2 + sandbox", "import jinja2, jinja2.sandbox", None),
    ("jinja2 + pydantic.BaseModel", "import jinja2, jinja2.sandbox; from pydantic import BaseModel", None),
    ("import promptkit", "import promptkit", None),
    ("import promptkit.testing", "import promptkit.testing", None),
    ("promptkit: Prompt, Template, parser", "from promptkit import Prompt, Template, PydanticParser", None),
    ("peer: langchain_core.prompts", "import langchain_core.prompts", "langchain_core"),
    ("peer: llm", "import llm", "llm"),
    ("peer: instructor", "import instructor", "instructor"),
]


def measure(code: str, runs: int, env: dict[str, str]) -> float:
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # warm-up: caches bytecode
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PEER_IMPORTS = {
    "langchain-core": ("import langchain_core.prompts", "langchain_core"),
    "instructor": ("import instructor", "instructor"),
    "pydantic-ai": ("import pydantic_ai", "pydantic_ai"),
    "dspy": ("import dspy", "dspy"),
}


def run(quick: bool) -> list[Row]:
    """The suite's rows: cold imports against jinja2 + pydantic and the peers' imports."""
    runs = 3 if quick else 7
    cache = tempfile.TemporaryDirectory()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache.name
    floors = {
        "import promptkit": ("pass", "python -c pass"),
        "from promptkit import Prompt, Template, PydanticParser": (
            "import jinja2, jinja2.sandbox; from pydantic import BaseModel",
            "import jinja2 + sandbox + pydantic.BaseModel",
        ),
    }
    peers: dict[str, PeerTime] = {
        name: measure(code, runs, env) if installed(module) else None for name, (code, module) in PEER_IMPORTS.items()
    }
    rows = [
        Row(
            f"cold `{code}`",
            "fresh process",
            measure(code, runs, env),
            measure(floors[code][0], runs, env),
            floors[code][1],
            peers,
            note="whole process wall time, bytecode cached; peers import their prompt layer",
        )
        for code in floors
    ]
    cache.cleanup()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-cache", action="store_true", help="keep the caller's bytecode settings")
    args = parser.parse_args()
    env = dict(os.environ)
    cache = tempfile.TemporaryDirectory()
    if not args.no_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache.name
    results: list[tuple[str, float | None]] = []
    for label, code, needs in CASES:
        if needs is not None and importlib.util.find_spec(needs) is None:
            results.append((label, None))
            continue
        results.append((label, measure(code, args.runs, env)))
    floor = results[0][1] or 1.0
    deps = results[1][1] or 1.0
    cache.cleanup()
    bytecode = "source compiled when not cached" if args.no_cache else "bytecode cached"
    print(f"cold import, median of {args.runs} processes ({sys.version.split()[0]}, {bytecode})")
    print(f"{'case':34} {'ms':>8} {'x floor':>8} {'x jinja2+pydantic':>18}")
    for label, seconds in results:
        if seconds is None:
            print(f"{label:34} {'not installed':>8}")
            continue
        print(f"{label:34} {seconds * 1000:8.0f} {seconds / floor:8.1f} {seconds / deps:18.2f}")


if __name__ == "__main__":
    main()
