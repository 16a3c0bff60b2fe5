"""The notebooks in notebooks/ run offline, end to end, in a real kernel, as a reader runs them."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, workdir: Path) -> Any:
    """Run ``name`` from a copy of notebooks/ in ``workdir`` (its exports land there); the executed notebook."""
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        from execute import execute as run  # notebooks/execute.py, what saves the stored outputs
    finally:
        sys.path.remove(str(NOTEBOOKS))
    copy = workdir / "notebooks"
    shutil.copytree(NOTEBOOKS, copy, ignore=shutil.ignore_patterns("exports", "__pycache__"))
    return run(copy / name)


def texts(notebook: Any) -> list[str]:
    """Each code cell's visible text: its printed output and the plain-text form of its results."""
    out = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif "data" in output:
                parts.append(output.data.get("text/plain", ""))
        out.append("".join(parts))
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's own path migration notices
def test_the_evaluation_notebook_compares_three_strategies_offline(tmp_path: Path) -> None:
    notebook = execute("evaluation.ipynb", tmp_path)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    shown = "\n".join(texts(notebook))
    # the dataset: at least 50 rows, with the answer known
    assert "<Dataset 60 rows; inputs: text; 60 with an expected output>" in shown
    # the report table, for every variant, with its interval method
    assert "accuracy (wilson)" in shown
    for variant in ("zero-shot", "few-shot (semantic)", "chain of thought"):
        assert variant in shown
    # the scripted model's known behaviour: 41 easy rows always right; few-shot fixes 15 hard ones
    assert "zero-shot            0.683" in shown
    assert "few-shot (semantic)  0.933" in shown
    # the paired comparison, and the leakage exclusions counted
    assert "McNemar exact p=6.1e-05; 15 improved, 0 regressed, 45 tied of 60 paired rows" in shown
    assert "few-shot examples excluded to avoid leaking answers: few-shot (semantic) 60" in shown
    # the plot is drawn as an image, and the exports are written
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "data" in o and "image/png" in o.data]
    assert len(images) == 1
    assert (tmp_path / "notebooks" / "exports" / "sft.jsonl").read_text(encoding="utf-8").count("\n") == 56


def test_the_stored_notebook_shows_its_outputs() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOKS / "evaluation.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "run the notebook and save it with its outputs"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    text = (NOTEBOOKS / "evaluation.ipynb").read_text(encoding="utf-8")
    assert not re.search(r"(/tmp/|/home/|/root/|site-packages)", text), "the saved outputs name a machine's paths"
