"""Every ```python block of the guides in docs/ runs as written, page by page.

A block that cannot run offline (it calls a real provider, or is a fragment of the reader's own
code) is preceded by an HTML comment ``<!-- not run: reason -->``, and the reason is required.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(?:<!--\s*not run:(?P<reason>[^>]*)-->\s*\n)?^```python\n(?P<code>.*?)^```[ \t]*$", re.S | re.M)

# What a page's examples print, where the printed output is the point of the example.
EXPECTED_OUTPUT = {
    "evaluation-gates.md": [
        "regressed rows: q00, q06, q09, q12, q15, q18, q21, q24, q30, q33, q36, q39, q42, q45, q48",
        "q00: '0' -> '1' (exact 1 -> 0)",
        "within noise; 3 regressed, 2 improved of 50 paired rows",
        "FAIL baseline: no baseline report at gates/quiz.json",
    ],
    "fewshot.md": [
        "['system', 'user', 'assistant', 'user', 'assistant', 'user']",
        "How do I reset my password?",
        "Selection(TokenBudgetSelector(MMRSelector)",
        "['Returns'",
    ],
    "testing.md": ["-  text: Say hello in French", "+  text: Say hello in Spanish"],
}


def _blocks(page: Path) -> list[tuple[str | None, str]]:
    return [(m["reason"], m["code"]) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


PAGES = sorted(p for p in DOCS.glob("*.md") if any(reason is None for reason, _ in _blocks(p)))


def test_every_guide_with_code_is_checked() -> None:
    with_code = {p.name for p in DOCS.glob("*.md") if "```python" in p.read_text(encoding="utf-8")}
    assert with_code == {p.name for p in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_guide_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    ran = 0
    for reason, code in _blocks(page):
        if reason is not None:
            assert reason.strip(), f"{page.name}: a block marked 'not run' must say why"
            compile(code, page.name, "exec")  # still valid Python
            continue
        exec(compile(code, page.name, "exec"), namespace)
        ran += 1
    assert ran >= 1
    out = capsys.readouterr().out
    for expected in EXPECTED_OUTPUT.get(page.name, []):
        assert expected in out
