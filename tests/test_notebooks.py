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


def errors(notebook: Any) -> list[Any]:
    """Every error output of the notebook's code cells."""
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def htmls(notebook: Any) -> str:
    """The HTML forms of every result shown, joined: what a notebook front end displays."""
    return "\n".join(
        o.data["text/html"] for c in notebook.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    )


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
    assert errors(notebook) == []
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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_quickstart_goes_from_template_to_evaluation(tmp_path: Path) -> None:
    notebook = execute("quickstart.ipynb", tmp_path)
    assert errors(notebook) == []
    shown = "\n".join(texts(notebook))
    html = htmls(notebook)
    # the template with its roles, the parser with its instructions, the pool
    assert "<ChatTemplate [system, user] variables=['examples', 'format_instructions', 'review']>" in shown
    assert "<b style='color:#6b7280'>system</b>" in html
    assert "<b style='color:#2563eb'>user</b>" in html
    assert "<b>PydanticParser</b>" in html
    assert "Reply with a single JSON object that matches this JSON schema" in html
    assert "<b>ExamplePool</b> <small>6 examples</small>" in html
    # the result: the typed value, the examples the selector picked, the usage
    assert "Sentiment(label='positive', confidence=0.93)" in shown
    assert "<b>SemanticSelector</b> <small>2 examples</small>" in html
    assert "cosine 0." in html
    assert "<b>Usage</b> <small>57 tokens</small>" in html
    # a repair that works, then a ParseError with both replies
    assert "label='negative' confidence=0.81\nanswer: ParseError\nrepair: accepted" in shown
    assert "<summary>2 attempts</summary>" in html
    assert "I am not sure." in html
    # the real OpenAI backend against the local server
    assert "POST /v1/chat/completions\nmodel: gpt-4o-mini | temperature: 0" in shown
    assert "Sentiment(label='positive', confidence=0.88)" in shown
    # two prompts evaluated and compared
    assert "<td>zero-shot</td><td>0.667 [0.391, 0.862]</td>" in html
    assert "<td>few-shot</td><td>1.000 [0.758, 1.000]</td>" in html
    assert "McNemar exact p=0.125; 4 improved, 0 regressed, 8 tied of 12 paired rows" in shown


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_fewshot_notebook_shows_what_each_selector_picks_and_costs(tmp_path: Path) -> None:
    notebook = execute("fewshot.ipynb", tmp_path)
    assert errors(notebook) == []
    shown = "\n".join(texts(notebook))
    html = htmls(notebook)
    assert "<b>ExamplePool</b> <small>60 examples</small>" in html
    assert "id=t01; difficulty=easy" in html
    for selector in ("FixedSelector", "RandomSelector", "SemanticSelector", "MMRSelector", "BM25Selector"):
        assert f"<b>{selector}</b> <small>" in html
    # why each pick was made
    assert "<td>fixed</td>" in html
    assert "<td>random (seed 7)</td>" in html
    assert "<td>cosine 0.589</td>" in html
    assert "mmr: relevance 0.589, redundancy 0.000" in html
    assert "<td>bm25 2.491</td>" in html
    # side by side: semantic shows one category, MMR several, and what each costs
    lines = {line.split()[0]: line for line in shown.splitlines() if line[:1].isalpha() and "  t" in line}
    assert lines["fixed"].split()[1] == "47"
    assert lines["semantic"].count("refund") == 4
    assert {"refund", "billing", "account"} <= set(re.findall(r"t\d\d: (\w+)", lines["mmr"]))
    # the budget keeps the best that fit, and a reserve leaves room for a long question
    assert "eight nearest: 130 tokens" in shown
    assert "<b>TokenBudgetSelector(SemanticSelector)</b> <small>3 examples · 49 tokens</small>" in html
    assert "fits budget (51/60 tokens)" in html
    assert "question of  10 tokens: 4 examples, 64 tokens" in shown
    assert "question of  50 tokens: 2 examples, 29 tokens" in shown
    assert "--- fixed: 90 input tokens" in shown


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_testing_notebook_runs_mocks_cassettes_and_a_gate(tmp_path: Path) -> None:
    notebook = execute("testing.ipynb", tmp_path)
    assert errors(notebook) == []
    shown = "\n".join(texts(notebook))
    html = htmls(notebook)
    # the mock, its scripted error and its exhausted script
    assert "<b>MockBackend</b>" in html
    assert "triage (RateLimitError, retryable=True)" in shown
    assert "ScriptExhaustedError - MockBackend has no scripted reply left for request #1" in shown
    # the fake model in a batch: order kept, the reply that does not parse reported
    assert re.search(r"Hello\? +failed +ParseError", shown)
    assert re.search(r"Wrong invoice total\. +ok +billing", shown)
    # the real backend against the local server: a 429, then a retry
    assert "value: refund | attempts: 2 | requests served: 2" in shown
    # a cassette recorded, with no key in it, replayed offline, and a miss explained
    assert "promptkit_cassette: 1" in shown
    assert "sk-test" not in shown.split("the server saw the key masked")[1]
    assert "replayed: refund" in shown
    assert "+    Ticket: Please refund my last two orders." in shown
    # the gate: passes today, fails on the edit with the regressed rows named
    assert "evaluation gate passed: 4 checks" in shown
    assert "<b>Evaluation gate</b> failed: 1 of 4 checks" in html
    assert "significantly worse: p=0.0156 &lt; 0.05; 7 regressed, 0 improved of 60 paired rows" in html
    assert "update: 2 passed" in shown
    assert "CI:     2 passed" in shown
    assert (tmp_path / "notebooks" / "exports" / "ci" / "gates" / "test_router" / "test_router_gate.json").is_file()


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_the_stored_notebook_shows_its_outputs(name: str) -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "run the notebook and save it with its outputs"
    assert errors(notebook) == []
    assert not [o for c in code for o in c.outputs if o.output_type == "stream" and o.name == "stderr"]
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    assert not re.search(r"(/tmp/|/home/|/root/|/work/|site-packages)", text), (
        "the saved outputs name a machine's paths"
    )


def test_every_notebook_is_run_by_a_test() -> None:
    tested = set(re.findall(r'execute\("(\w+\.ipynb)"', Path(__file__).read_text(encoding="utf-8")))
    assert tested == {p.name for p in NOTEBOOKS.glob("*.ipynb")}


def test_the_evaluation_notebook_draws_its_plot() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOKS / "evaluation.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))
