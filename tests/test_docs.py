"""Every ```python block of the guides in docs/ runs as written, page by page; the site lists them all.

A block that cannot run offline (it calls a real provider, or is a fragment of the reader's own
code) is preceded by an HTML comment ``<!-- not run: reason -->``, and the reason is required.
The site's navigation (mkdocs.yml) must list every page, and the API reference (docs/reference/)
must document every public name, so neither a page nor a name can be left out of the site.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
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


def _page_name(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


ALL_PAGES = sorted(DOCS.rglob("*.md"))
PAGES = [p for p in ALL_PAGES if any(reason is None for reason, _ in _blocks(p))]


def test_every_guide_with_code_is_checked() -> None:
    with_code = {_page_name(p) for p in ALL_PAGES if "```python" in p.read_text(encoding="utf-8")}
    assert with_code == {_page_name(p) for p in PAGES}
    assert "getting-started.md" in with_code


@pytest.mark.parametrize("page", PAGES, ids=[_page_name(p) for p in PAGES])
def test_guide_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    ran = 0
    for reason, code in _blocks(page):
        if reason is not None:
            assert reason.strip(), f"{page.name}: a block marked 'not run' must say why"
            compile(code, page.name, "exec", dont_inherit=True)  # still valid Python
            continue
        exec(compile(code, page.name, "exec", dont_inherit=True), namespace)  # as a reader runs it
        ran += 1
    assert ran >= 1
    out = capsys.readouterr().out
    for expected in EXPECTED_OUTPUT.get(_page_name(page), []):
        assert expected in out


# --- the site -------------------------------------------------------------------------------


def _nav_pages(entries: object) -> list[str]:
    """Every page a mkdocs ``nav`` names, at any depth (external links left out)."""
    if isinstance(entries, str):
        return [] if "://" in entries else [entries]
    if isinstance(entries, list):
        return [page for entry in entries for page in _nav_pages(entry)]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in _nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {entries!r}")


def test_the_site_navigation_lists_every_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = _nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice in the nav"
    pages = {_page_name(p) for p in ALL_PAGES}
    assert sorted(pages - set(listed)) == [], "pages missing from the nav in mkdocs.yml"
    assert sorted(set(listed) - pages) == [], "nav entries without a page in docs/"


def _documented() -> tuple[set[str], set[int]]:
    """The paths of the ``::: path`` directives in docs/reference/ and the ids of what they name."""
    paths: set[str] = set()
    for page in sorted((DOCS / "reference").glob("*.md")):
        paths.update(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    objects: set[int] = set()
    for path in paths:
        module_name, _, name = path.rpartition(".")
        objects.add(id(getattr(importlib.import_module(module_name), name)))
    return paths, objects


@pytest.mark.parametrize("module_name", ["promptkit", "promptkit.backends", "promptkit.testing"])
def test_the_api_reference_documents_every_public_name(module_name: str) -> None:
    paths, objects = _documented()
    module = importlib.import_module(module_name)
    missing = [
        name
        for name in module.__all__
        if name != "__version__"
        and f"{module_name}.{name}" not in paths
        and not (_is_definition(getattr(module, name)) and id(getattr(module, name)) in objects)
    ]
    assert missing == [], f"add a `::: {module_name}.NAME` line to a page in docs/reference/ for each"


def _is_definition(value: object) -> bool:
    return isinstance(value, type) or callable(value) or type(value).__name__ == "UnsetType"


def _griffe_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("griffe_docstrings", DOCS / "hooks" / "griffe_docstrings.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstrings_become_markdown_for_the_reference() -> None:
    to_markdown = _griffe_extension().to_markdown
    text = (
        "A :class:`~promptkit.Prompt` and :func:`promptkit.evaluate`, :meth:`the call <Prompt.run>`.\n"
        "\n"
        ">>> 1 + 1  # doctest: +ELLIPSIS\n"
        "2\n"
        "\n"
        "The tree::\n"
        "\n"
        "    Root\n"
        "    └── Leaf\n"
        "\n"
        "```python\n"
        ">>> left as it is\n"
        "```"
    )
    assert to_markdown(text) == (
        "A `Prompt` and `promptkit.evaluate`, `the call`.\n"
        "\n"
        "```pycon\n"
        ">>> 1 + 1\n"
        "2\n"
        "```\n"
        "\n"
        "The tree:\n"
        "\n"
        "```text\n"
        "Root\n"
        "└── Leaf\n"
        "```\n"
        "\n"
        "```python\n"
        ">>> left as it is\n"
        "```"
    )
    assert to_markdown("A paragraph.\n\n::\n\n    literal") == "A paragraph.\n\n```text\nliteral\n```"
