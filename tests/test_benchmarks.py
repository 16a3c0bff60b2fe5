"""The benchmark runner (``python -m benchmarks``) keeps working: it lists, runs and writes its table.

No figure is checked: speed is measured by running the suite, never asserted by a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def _suite(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_list_names_every_script_and_each_joins_the_suite() -> None:
    done = _suite("--list")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert set(listed) == set(SCRIPTS)
    assert "templates" in listed
    missing = [name for name, line in listed.items() if "in the suite" not in line]
    assert missing == []


def test_unknown_name_is_a_usage_error_naming_it() -> None:
    done = _suite("--only", "no_such_bench")
    assert done.returncode == 2
    assert "no_such_bench" in done.stderr


def test_one_quick_benchmark_fills_the_table_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n<!-- benchmarks:start -->\nold\n<!-- benchmarks:end -->\n\nAfter.\n")
    done = _suite("--quick", "--only", "strategies", "--markdown", str(page))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "strategy chain of thought, per model call" in done.stdout
    assert "versions: promptkit" in done.stdout
    text = page.read_text()
    assert text.startswith("# Performance\n\n<!-- benchmarks:start -->\nProduced by `python -m benchmarks --quick")
    assert text.endswith("<!-- benchmarks:end -->\n\nAfter.\n")
    assert "old" not in text
    assert "| operation | size | promptkit | floor | best peer | promptkit / floor | promptkit / peer |" in text
    assert text.count("| strategy ") == 3
