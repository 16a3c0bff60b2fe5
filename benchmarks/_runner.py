"""``python -m benchmarks``: run every benchmark script's cases and print one table.

A script ``benchmarks/<name>.py`` joins the suite by defining ``run(quick: bool) -> list[Row]``
(see ``_suite.py``). Each script runs in a fresh interpreter (its imports, environment variables
and thread limits cannot leak into the next one) and hands its rows back as JSON. The table has,
per operation: promptkit's time, the floor (the raw library underneath), the fastest peer measured
in the same run, and the two ratios; the machine and the package versions are printed with it.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _suite import Row

HERE = Path(__file__).resolve().parent
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
PACKAGES = (
    "promptkit",
    "jinja2",
    "pydantic",
    "jiter",
    "tiktoken",
    "numpy",
    "openai",
    "anthropic",
    "httpx",
    "httpx2",
    "aiohttp",
    "langchain-core",
    "instructor",
    "pydantic-ai-slim",
    "dspy",
)
_ROWS_MARK = "@@benchmark-rows@@"


@dataclass
class Outcome:
    """What one script gave: its rows, or why it gave none."""

    name: str
    rows: list[Row]
    seconds: float
    skipped: str = ""
    failed: str = ""


def discover() -> dict[str, bool]:
    """Every benchmark script by name, and whether it defines ``run`` (read with ``ast``, not imported)."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.stem] = any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body)
    return found


def _child(name: str, quick: bool) -> None:
    """Run one script's ``run`` in this process and print its rows as JSON on stdout."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the script prints goes to stderr; stdout carries the rows
    try:
        module = importlib.import_module(name)
        rows = [Row.coerce(row).as_dict() for row in module.run(quick)]
        payload: dict[str, Any] = {"rows": rows}
    except ImportError as exc:
        payload = {"skipped": f"{type(exc).__name__}: {exc}"}
    finally:
        sys.stdout = real_stdout
    print(_ROWS_MARK + json.dumps(payload), flush=True)


def run_one(name: str, quick: bool, timeout: float) -> Outcome:
    """Run one script in a fresh interpreter; a crash or a missing import becomes an outcome."""
    command = [sys.executable, str(HERE / "_runner.py"), "--child", name] + (["--quick"] if quick else [])
    start = time.perf_counter()
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(name, [], time.perf_counter() - start, failed=f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith(_ROWS_MARK)]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return Outcome(name, [], seconds, failed=f"exit status {done.returncode}\n{tail}")
    payload = json.loads(lines[-1][len(_ROWS_MARK) :])
    if "skipped" in payload:
        return Outcome(name, [], seconds, skipped=payload["skipped"])
    return Outcome(name, [Row.coerce(row) for row in payload["rows"]], seconds)


# -- the machine and the versions -------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {}
    for package in PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def machine(load_start: tuple[float, float, float]) -> dict[str, str]:
    load_end = os.getloadavg()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "processor": platform.machine(),
        "load average": f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end (1 min)",
    }


# -- the table --------------------------------------------------------------------------------------
def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e9:.3g} ns"


def fmt_ratio(ours: float, other: float | None) -> str:
    if other is None or other <= 0:
        return "—"
    ratio = ours / other
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x (1/{1 / ratio:.0f})"


def cells(row: Row) -> list[str]:
    floor = "—" if row.floor is None else f"{fmt_time(row.floor)} ({row.floor_name})"
    best = row.best_peer()
    if best is not None:
        peer = f"{fmt_time(best[1])} ({best[0]})"
    elif not row.peers:
        peer = "no equivalent"
    else:
        reasons = sorted({"not installed" if t is None else str(t) for t in row.peers.values()})
        peer = f"{'/'.join(row.peers)}: {', '.join(reasons)}"
    return [
        row.operation,
        row.size,
        fmt_time(row.promptkit),
        floor,
        peer,
        fmt_ratio(row.promptkit, row.floor),
        fmt_ratio(row.promptkit, best[1] if best else None),
    ]


HEADERS = ["operation", "size", "promptkit", "floor", "best peer", "promptkit / floor", "promptkit / peer"]


def text_table(rows: Sequence[Row]) -> str:
    table = [HEADERS] + [cells(row) for row in rows]
    widths = [min(60, max(len(line[i]) for line in table)) for i in range(len(HEADERS))]
    out = []
    for k, line in enumerate(table):
        out.append("  ".join(cell[:60].ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown(rows: Sequence[Row], info: dict[str, str], vers: dict[str, str], command: str) -> str:
    lines = [
        f"Produced by `{command}` on {info['date']}: {info['cpus']} CPUs, {info['python']}, "
        f"{info['platform']}; load average {info['load average']}. Times are the median of repeated "
        "rounds after warm-up, per operation.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(_md(c) for c in cells(row)) + " |" for row in rows]
    details = []
    for row in rows:
        timed = {name: t for name, t in row.peers.items() if isinstance(t, float)}
        parts = [row.note] if row.note else []
        if len(timed) > 1:
            parts.append(
                "peers: " + ", ".join(f"{name} {fmt_time(t)}" for name, t in sorted(timed.items(), key=lambda p: p[1]))
            )
        if parts:
            details.append(f"- {row.operation} ({row.size}): " + "; ".join(parts) + ".")
    if details:
        lines += ["", *details]
    lines += ["", "Versions: " + ", ".join(f"{name} {version}" for name, version in vers.items()) + "."]
    return "\n".join(lines)


def write_markdown(path: Path, block: str) -> None:
    """Replace the text between the markers in ``path``, or write ``path`` whole when it has none."""
    fenced = f"{START}\n{block}\n{END}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if START in text and END in text:
            pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
            path.write_text(pattern.sub(lambda _: fenced, text, count=1), encoding="utf-8")
            return
    path.write_text(fenced + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="short runs: smaller sizes, fewer rounds")
    parser.add_argument(
        "--markdown", action="append", metavar="PATH", type=Path, help="write the table there (between markers)"
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the rows, machine and versions as JSON")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each script")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.quick)
        return 0

    found = discover()
    if args.list:
        for name, suite in found.items():
            print(f"{name:20} {'in the suite' if suite else 'standalone only (no run())'}")
        return 0
    unknown = sorted(set(args.only or ()) - set(found))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(found)}")
    names = [n for n, suite in found.items() if suite and (not args.only or n in args.only)]
    load_start = os.getloadavg()
    outcomes = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        outcome = run_one(name, args.quick, args.timeout)
        status = outcome.failed or outcome.skipped or f"{len(outcome.rows)} rows"
        print(f"  {name}: {status.splitlines()[0]} ({outcome.seconds:.0f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    rows = [row for outcome in outcomes for row in outcome.rows]
    info, vers = machine(load_start), versions()
    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    command = re.sub(r" --(markdown|json) \S+", "", command)
    print(text_table(rows))
    print("\n" + "; ".join(f"{k}: {v}" for k, v in info.items()))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    for outcome in outcomes:
        if outcome.skipped:
            print(f"skipped {outcome.name}: {outcome.skipped}")
        if outcome.failed:
            print(f"FAILED {outcome.name}: {outcome.failed}")
    block = markdown(rows, info, vers, command)
    for path in args.markdown or ():
        write_markdown(path, block)
    if args.json:
        data = {"command": command, "machine": info, "versions": vers, "rows": [row.as_dict() for row in rows]}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 1 if any(outcome.failed for outcome in outcomes) else 0


if __name__ == "__main__":
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    raise SystemExit(main())
