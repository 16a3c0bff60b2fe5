"""MkDocs hook: the executed notebooks in notebooks/ become pages of the site, as HTML with their outputs.

A guide links a notebook as it sits in the repository (``../notebooks/evaluation.ipynb`` from
a page in docs/), which works on a forge and in an editor. The site has no such file, so this
hook converts each notebook with nbconvert (outputs as saved, nothing is executed) to
``notebooks/<name>.html`` in the site and points those links there; ``mkdocs build --strict``
still fails on a link to a notebook that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files


def _notebooks(config: Any) -> list[Path]:
    root = Path(config.config_file_path).parent
    return sorted((root / "notebooks").glob("*.ipynb"))


def on_files(files: Files, config: Any) -> Files:
    import nbconvert
    import nbformat

    exporter = nbconvert.HTMLExporter(template_name="lab")
    for notebook in _notebooks(config):
        html, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
        files.append(File.generated(config, f"notebooks/{notebook.stem}.html", content=html))
    return files


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Files) -> str:
    depth = page.file.src_uri.count("/")
    up = re.escape("../" * (depth + 1))

    def site_link(match: re.Match[str]) -> str:
        return f"]({'../' * depth}notebooks/{match.group(1)}.html{match.group(2) or ''})"

    return re.sub(rf"\]\({up}notebooks/([\w.-]+)\.ipynb(#[\w-]*)?\)", site_link, markdown)
