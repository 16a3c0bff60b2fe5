"""The notebooks' displays as a person sees them: an executed notebook, converted to HTML by
nbconvert, rendered by headless Chromium (Debian's package, never a browser a test tool downloads),
read back through the DOM and photographed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_notebooks import errors, execute  # the notebooks' own runner, as test_notebooks uses it

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH = 1100
USER_BLUE = (0x25, 0x63, 0xEB)  # the colour of the "user" role in a template's display


def chromium() -> str:
    """Debian's Chromium; the test fails, saying how to install it, when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail(
            "Chromium is not installed; the screenshot test renders notebooks in it. "
            "Install Debian's package as root: apt-get update && apt-get install -y chromium "
            "(.ci/run does this when /usr/bin/chromium is missing)"
        )
    return found


@pytest.fixture(scope="module")
def page_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart, executed now and converted to one HTML page, as nbconvert writes it."""
    from nbconvert import HTMLExporter

    workdir = tmp_path_factory.mktemp("quickstart")
    notebook = execute("quickstart.ipynb", workdir)
    assert errors(notebook) == []
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    path = workdir / "quickstart.html"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, timeout=120_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(browser: Any, page_html: Path) -> Iterator[Any]:
    """The page loaded from the file, every request off this machine refused (the CDN scripts
    nbconvert links to are not needed to show the outputs)."""
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.set_default_timeout(120_000)
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page.goto(page_html.as_uri(), wait_until="load")
    yield page
    page.close()


VISIBLE_TABLES = """() => [...document.querySelectorAll('table')]
    .filter(t => t.checkVisibility())
    .map(t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim())))"""

OUTPUT_TEXTS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
    .filter(o => o.checkVisibility())
    .map(o => o.innerText)"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's own path migration notices
def test_the_page_shows_the_roles_the_examples_and_the_report(page: Any, tmp_path: Path) -> None:
    outputs: list[str] = page.evaluate(OUTPUT_TEXTS)
    tables: list[list[list[str]]] = page.evaluate(VISIBLE_TABLES)

    # the template's roles, each shown in its colour above its source
    [template] = [o for o in outputs if o.startswith("ChatTemplate")]
    assert re.search(
        r"system\s+You classify the sentiment of product reviews\.\s+\{\{ format_instructions \}\}", template
    )
    assert re.search(r"user\s+Examples:\s+\{\{ examples \}\}\s+Review: \{\{ review \}\}", template)
    colours = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.jp-OutputArea-output b')]
            .filter(b => ['system', 'user'].includes(b.innerText) && b.checkVisibility())
            .map(b => [b.innerText, getComputedStyle(b).color]))"""
    )
    assert colours == {"system": "rgb(107, 114, 128)", "user": "rgb(37, 99, 235)"}

    # the examples the selector picked, with the similarity and the reason for each
    [picked] = [t for t in tables if t and t[0] == ["#", "pool", "score", "tokens", "why", "example"]]
    assert len(picked) == 3  # the header and two examples
    for row in picked[1:]:
        assert re.fullmatch(r"cosine 0\.\d{3}", row[4])
        assert re.fullmatch(r"review=.+; label=(positive|negative|neutral)", row[5])
    assert any(o.startswith("SemanticSelector 2 examples") for o in outputs)

    # the evaluation report's table, a line per variant with its interval
    [report] = [t for t in tables if t and t[0][:2] == ["variant", "accuracy (wilson)"]]
    assert [line[:2] for line in report[1:]] == [
        ["zero-shot", "0.667 [0.391, 0.862]"],
        ["few-shot", "1.000 [0.758, 1.000]"],
    ]

    # the error's display: what failed and both replies, the attempts folded until opened
    [failure] = [o for o in outputs if o.startswith("ParseError")]
    assert "no valid reply after 2 attempts" in failure
    assert "2 attempts" in failure
    assert "I am not sure." not in failure  # inside the closed <details>: not on the page until clicked

    # and a picture of it all, with the role colours in it
    png = tmp_path / "quickstart.png"
    page.screenshot(path=str(png), full_page=True)
    check_picture(png)


def check_picture(path: Path) -> None:
    """The PNG is the page: as wide as the viewport, long, many colours, the user role's blue."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width == WIDTH
        assert height > 3000, "the whole notebook, not one screen"
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None
        assert len(colours) > 200, "a page of text and colour, not a blank or single-colour image"
        background = max(colours)[1]
        assert sum(n for n, c in colours if c != background) > width * height // 50
        near_blue = sum(n for n, c in colours if all(abs(a - b) <= 24 for a, b in zip(c, USER_BLUE, strict=True)))
        assert near_blue > 20, "the user role's colour is drawn"
