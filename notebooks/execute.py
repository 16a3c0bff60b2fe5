"""Run the notebooks in a real kernel and save them with their outputs, as a reader first sees them.

Run: python notebooks/execute.py [NAME.ipynb ...]   (from the repository root; default: all)

Warnings and progress bars a kernel prints on stderr (library import notices, a model's loading
bar) are left out of the saved file, and so are the cells' timestamps: they depend on the machine
and the hour, not on the notebook. The kernel runs offline: the embedding model is the one
installed with ``promptkit[embeddings]``, and ``HF_HUB_OFFLINE=1`` keeps the model libraries from
asking a hub.
"""

from __future__ import annotations

import os
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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if env.get("PYTHONPATH"):  # relative entries would resolve against the kernel's folder, not ours
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": where}},
        record_timing=False,  # timestamps would change the saved file on every run
    )
    client.execute(env=env)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
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
