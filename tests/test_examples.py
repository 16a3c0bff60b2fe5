"""The README's and examples/' code runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_offline() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")], check=True, capture_output=True, text=True
    ).stdout
    assert "offline" in out
    assert "Typed value: Sentiment(label='positive', confidence=0.93)" in out
    assert "Repaired after 2 attempts: Sentiment(label='negative', confidence=0.81)" in out
    assert "Sentiment(label='neutral', confidence=0.64)\n  usage of the streamed call" in out
    assert "Self-consistency: Sentiment(label='positive', confidence=0.7)" in out
    assert "votes: positive x2, neutral x1; agreement 67% over 3 samples" in out
    assert "Batch: 2 ok, 1 failed" in out
    assert "item 1: failed (UndefinedVariableError)" in out
    assert "plain     0.625 [0.427, 0.788]" in out
    assert "few-shot  1.000 [0.862, 1.000]" in out
    assert "McNemar exact p=0.00391; 9 improved, 0 regressed, 15 tied of 24 paired rows" in out


def _readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_quick_start_has_two_shell_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"```bash\n", section)) == 2


def test_readme_python_examples_run() -> None:
    from promptkit.testing import MockBackend

    blocks = _readme_blocks()
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    assert tests, "the README's testing example defines a test function"
    for fn in tests:
        fn(MockBackend())


def test_ci_runs_the_readmes_test_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    test_command = re.findall(r"```bash\n(.*?)\n```", section, re.S)[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
