"""Run the notebooks in a real kernel and save them with their outputs, as a reader first sees them.

Run: python notebooks/execute.py [NAME.ipynb ...]   (from the repository root; default: all)

Warnings and progress bars a kernel prints on stderr (library import notices, a model's loading
bar) are left out of the saved file: they depend on the machine, not on the notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def execute(path: Path, *, workdir: Path | None = None) -> Any:
    """The notebook at ``path``, executed from ``workdir`` (default: its folder), stderr left out."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    where = str(workdir or path.parent)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": where}}).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    return notebook


def main(names: list[str]) -> None:
    import nbformat

    for path in [HERE / name for name in names] or sorted(HERE.glob("*.ipynb")):
        nbformat.write(execute(path), path)
        print(f"executed {path.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
