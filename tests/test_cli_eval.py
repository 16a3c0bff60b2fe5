"""``promptkit eval CONFIG`` as a user runs it: configs in YAML and TOML written to a folder, the
command invoked in process through click's CliRunner and end to end in subprocesses, against
the mock backend and the local provider server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from promptkit import EvalReport, HashingEmbedder, LLMJudge, MMRSelector, SelfConsistency, SemanticSelector
from promptkit.cli import cli
from promptkit.testing import FunctionBackend, ProviderServer, ServerReply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-secret-0123456789abcdef"
TIMEOUT = 120  # seconds for a subprocess: generous, a loaded machine is slow to import
ROWS = 20

# The mock echoes the last message: "echo" answers the word itself, right where the expected
# output is the word (rows 0-14), wrong on the rest; "labelled" adds a prefix, so it never
# matches exactly but always contains the word.
ECHO = "---\nmodel: mock\ninput:\n  word: str\n---\n{{ word }}\n"
LABELLED = "---\nmodel: mock\n---\nAnswer: {{ word }}\n"
FEW_SHOT = "---\nmodel: mock\n---\n{{ examples }}\n\n{{ word }}\n"
NO_MODEL = "Say {{ word }}\n"

YAML = """\
# the dataset, the variants and the metrics; paths are relative to this file
dataset: words.jsonl
variants:
  echo: echo.prompt
  labelled:
    prompt: labelled.prompt
metrics:
  - exact_match
  - contains
compare: [echo, labelled]
"""

TOML = """\
dataset = "words.jsonl"
metrics = ["exact_match", "contains"]
compare = ["echo", "labelled"]

[variants]
echo = "echo.prompt"
labelled = { prompt = "labelled.prompt" }
"""


def _rows() -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "word": f"w{i}", "expected": f"w{i}" if i < 15 else "other"} for i in range(ROWS)]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder (the working directory) with prompt files, a dataset of 20 rows, few-shot
    examples and the same config in YAML (eval.yaml) and TOML (eval.toml)."""
    for name, text in {
        "echo.prompt": ECHO,
        "labelled.prompt": LABELLED,
        "fewshot.prompt": FEW_SHOT,
        "nomodel.prompt": NO_MODEL,
        "eval.yaml": YAML,
        "eval.toml": TOML,
    }.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "words.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    examples = [{"word": f"w{i}", "answer": f"w{i}"} for i in (1, 2, 30, 31, 32)]  # w1 and w2 are rows
    (tmp_path / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["eval", *args], env=env)


def error_line(result: Result) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("promptkit: error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0].removeprefix("promptkit: error: ")


def write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text, encoding="utf-8")
    return name


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def on_server(server: ProviderServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": KEY}


def _echo(request: Any) -> ServerReply:
    return ServerReply(text=request.body["messages"][-1]["content"].strip(), input_tokens=10, output_tokens=2)


# -- the report -------------------------------------------------------------------------------------
def test_eval_has_help_naming_its_options() -> None:
    result = CliRunner().invoke(cli, ["eval", "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: promptkit eval [OPTIONS] CONFIG")
    for option in ("--model", "--judge-model", "--json", "--html", "--output", "--dry-run", "--max-cost"):
        assert option in result.stdout
    assert "--progress / --no-progress" in result.stdout
    assert "eval" in CliRunner().invoke(cli, ["--help"]).stdout


def test_a_yaml_config_prints_the_table_then_the_comparison(project: Path) -> None:
    result = invoke("eval.yaml")
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "2 variants x 20 rows; means with 95% intervals"
    assert lines[1].split()[:3] == ["variant", "exact_match", "(wilson)"]
    assert lines[3].startswith("echo      0.750 [0.531, 0.888]  0.750 [0.531, 0.888]")
    assert lines[4].startswith("labelled  0.000 [0.000, 0.161]  0.750 [0.531, 0.888]")
    assert lines[5] == ""
    assert lines[6].startswith("exact_match: labelled - echo = -0.750 ")
    assert "McNemar exact p=6.1e-05; 0 improved, 15 regressed, 5 tied of 20 paired rows" in lines[6]
    assert lines[7] == "  regressed: " + ", ".join(f"r{i}" for i in range(15))
    assert lines[8].startswith("contains: labelled - echo = +0.000 ")


def test_toml_gives_the_same_report_as_yaml(project: Path) -> None:
    from_yaml = EvalReport.from_json(invoke("eval.yaml", "--json").stdout)
    from_toml = EvalReport.from_json(invoke("eval.toml", "--json").stdout)
    for report in (from_yaml, from_toml):
        assert report.variants == ("echo", "labelled")
        assert report.metrics == ("exact_match", "contains")
    for variant in from_yaml.variants:
        assert [c.scores for c in from_yaml.cells[variant]] == [c.scores for c in from_toml.cells[variant]]
        assert [c.prediction for c in from_yaml.cells[variant]] == [c.prediction for c in from_toml.cells[variant]]


def test_json_round_trips_through_eval_report(project: Path) -> None:
    result = invoke("eval.yaml", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    report = EvalReport.from_json(result.stdout)
    assert report.to_json() == result.stdout.rstrip("\n")
    assert [row.id for row in report.rows] == [f"r{i}" for i in range(ROWS)]
    assert report.cell("labelled", "r3").prediction == "Answer: w3"
    assert report.cell("echo", "r3").scores == {"exact_match": 1.0, "contains": 1.0}
    assert report.compare("echo", "labelled").regressed == tuple(f"r{i}" for i in range(15))


def test_output_writes_a_baseline_and_html_an_escaped_page(project: Path) -> None:
    rows = [*_rows()[:3], {"id": "<b>x</b>", "word": "<script>alert(1)</script>", "expected": "&"}]
    (project / "words.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = invoke("eval.yaml", "--output", "baseline.json", "--html", "report.html")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2 variants x 4 rows")  # the table still prints
    baseline = EvalReport.load(project / "baseline.json")
    assert baseline.cell("echo", "<b>x</b>").prediction == "<script>alert(1)</script>"
    page = (project / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>\n<html")
    assert '<meta charset="utf-8">' in page
    assert "<title>promptkit eval eval.yaml</title>" in page
    assert page.rstrip().endswith("</body>\n</html>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>Comparison</b>" in page  # the paired comparison, as in a notebook


def test_model_overrides_every_variant(project: Path) -> None:
    result = invoke("eval.yaml", "--model", "mock:w1", "--json")
    report = EvalReport.from_json(result.stdout)
    assert {c.prediction for name in report.variants for c in report.cells[name]} == {"w1"}
    bad = invoke("eval.yaml", "--model", "nope:x")
    assert bad.exit_code == 2
    assert error_line(bad).startswith("Invalid value for --model: unknown backend provider 'nope'")


def test_a_variant_model_and_params_and_a_file_without_model(project: Path) -> None:
    write(project, "c.yaml", YAML.replace("echo: echo.prompt", "echo: {prompt: nomodel.prompt, model: 'mock:w0'}"))
    report = EvalReport.from_json(invoke("c.yaml", "--json").stdout)
    assert {c.prediction for c in report.cells["echo"]} == {"w0"}
    write(project, "d.yaml", YAML.replace("echo: echo.prompt", "echo: nomodel.prompt"))
    result = invoke("d.yaml")
    assert result.exit_code == 2
    assert error_line(result) == (
        "d.yaml: variants.echo: nomodel.prompt names no model; set 'model:' in the variant or pass --model"
    )
    assert invoke("d.yaml", "--model", "mock").exit_code == 0


def test_rows_that_failed_are_listed_and_the_exit_status_is_0(project: Path, server: ProviderServer) -> None:
    def answer(request: Any) -> ServerReply:
        text = request.body["messages"][-1]["content"].strip()
        if text in ("w3", "w7", "Answer: w7"):
            return ServerReply.error(400, message="not this one")
        return _echo(request)

    server.rule = answer
    result = invoke("eval.yaml", "--model", "openai:gpt-4o-mini", env=on_server(server))
    assert result.exit_code == 0, result.output
    assert "errors" in result.stdout.splitlines()[1]
    assert result.stderr.startswith("promptkit: 2 of 20 rows failed (not scored): echo on r3: ")
    assert "echo on r7: " in result.stderr
    assert "labelled on r7: " in result.stderr
    assert "not this one" in result.stderr
    assert len(server.requests) == 40
    assert server.requests[0].body["model"] == "gpt-4o-mini"


# -- the estimate ----------------------------------------------------------------------------------
def test_dry_run_prints_the_estimate_without_calling(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit._cli import _options

    calls: list[str] = []
    spy = FunctionBackend(lambda messages, params: calls.append(messages[-1].text) or "w0")
    monkeypatch.setattr(_options, "make_backend", lambda spec, base_url=None: spy)
    write(project, "c.yaml", YAML + "epochs: 2\n")
    result = invoke("c.yaml", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "2 variants x 20 rows x 2 epochs: 80 calls"
    assert lines[1].startswith("input tokens ")
    assert lines[1].endswith("output tokens unknown (set max_tokens), cost unknown")
    assert lines[2].startswith("  echo: 40 calls, input tokens ")
    estimate = json.loads(invoke("c.yaml", "--dry-run", "--json").stdout)
    assert (estimate["calls"], estimate["rows"], estimate["epochs"]) == (80, 20, 2)
    assert estimate["per_variant"]["labelled"]["calls"] == 40
    assert estimate["judge_calls"] == 0
    assert calls == []
    assert invoke("c.yaml").exit_code == 0
    assert len(calls) == 80  # the same config without --dry-run calls


def test_dry_run_against_the_server_sends_nothing(project: Path, server: ProviderServer) -> None:
    write(project, "c.yaml", YAML + "params: {max_tokens: 8}\n")
    env = on_server(server)
    result = invoke("c.yaml", "--model", "openai:gpt-4o-mini", "--dry-run", "--json", env=env)
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    assert estimate["output_tokens"] == 8 * 40
    assert estimate["cost"] > 0
    assert server.requests == []


def test_dry_run_counts_the_judge_calls_apart(project: Path) -> None:
    verdict = 'mock:{"reasoning": "fine", "verdict": "pass"}'
    judge = f"  - judge: {{rubric: 'Is it the word?', model: '{verdict}'}}\n"
    write(project, "c.yaml", YAML.replace("  - contains\n", "  - contains\n" + judge))
    result = invoke("c.yaml", "--dry-run")
    assert result.stdout.splitlines()[-1] == "plus up to 40 judge calls, not estimated"
    report = EvalReport.from_json(invoke("c.yaml", "--json").stdout)
    assert report.metrics == ("exact_match", "contains", "judge")
    assert report.summary("echo").metrics["judge"].mean == 1.0
    assert "--dry-run makes no report" in error_line(invoke("c.yaml", "--dry-run", "--html", "x.html"))


def test_judge_model_replaces_every_judge(project: Path) -> None:
    judge = "  - judge: {rubric: 'Is it the word?', model: 'nope:x'}\n"
    write(project, "c.yaml", YAML.replace("  - contains\n", "  - contains\n" + judge))
    assert error_line(invoke("c.yaml")).startswith("c.yaml: metrics[2].judge.model: unknown backend provider 'nope'")
    verdict = 'mock:{"reasoning": "no", "verdict": "fail"}'
    report = EvalReport.from_json(invoke("c.yaml", "--judge-model", verdict, "--json").stdout)
    assert report.summary("labelled").metrics["judge"].mean == 0.0
    bad = invoke("c.yaml", "--judge-model", "nope:y")
    assert bad.exit_code == 2
    assert error_line(bad).startswith("Invalid value for --judge-model: unknown backend provider 'nope'")
    unused = invoke("eval.yaml", "--judge-model", verdict)
    assert unused.exit_code == 0
    assert unused.stderr == f"promptkit: warning: --judge-model {verdict}: eval.yaml has no judge metric\n"


def test_schema_valid_takes_a_prompt_files_schema(project: Path) -> None:
    schema = "  - schema_valid: {schema: {type: object, properties: {word: {type: string}}}}\n"
    write(project, "c.yaml", YAML.replace("  - contains\n", "  - contains\n" + schema))
    result = invoke("c.yaml", "--model", 'mock:{"word": "w1"}', "--json")
    assert result.exit_code == 0, result.output
    assert EvalReport.from_json(result.stdout).summary("echo").metrics["schema_valid"].mean == 1.0
    write(
        project, "d.yaml", YAML.replace("  - contains\n", "  - contains\n  - schema_valid: {schema: {type: array}}\n")
    )
    line = error_line(invoke("d.yaml"))
    assert line == "d.yaml: metrics[2].schema_valid.schema: the output schema must describe an object (type: object)"


def test_max_cost_stops_before_the_cap(project: Path, server: ProviderServer) -> None:
    server.rule = _echo
    write(project, "c.yaml", YAML + "params: {max_tokens: 8}\nmax_concurrency: 1\n")
    result = invoke("c.yaml", "--model", "openai:gpt-4o-mini", "--max-cost", "0.000001", env=on_server(server))
    assert result.exit_code == 0, result.output
    assert "calls not sent: the spending cap would have been passed" in result.stderr
    assert len(server.requests) < 40
    assert invoke("c.yaml", "--max-cost", "0").exit_code == 2


# -- few-shot examples and strategies ---------------------------------------------------------------
FEW_SHOT_CONFIG = """\
dataset: words.jsonl
variants:
  semantic:
    prompt: fewshot.prompt
    examples: examples.jsonl
    selector: semantic
    embedder: hashing
    k: 2
    fields: [word]
    example_template: "{{ word }} -> {{ answer }}"
  vote:
    prompt: echo.prompt
    strategy: {self_consistency: {n: 3, temperature: 0.7}}
    params: {max_tokens: 5}
metrics: [exact_match]
"""


def test_few_shot_examples_are_selected_and_never_leak_the_row(project: Path) -> None:
    write(project, "c.yaml", FEW_SHOT_CONFIG)
    result = invoke("c.yaml", "--json")
    assert result.exit_code == 0, result.output
    report = EvalReport.from_json(result.stdout)
    assert report.exclusions["semantic"] == 2  # rows w1 and w2 are in the pool: kept out of their own prompts
    shown = report.cell("semantic", "r1").prediction
    assert shown.count(" -> ") == 2
    assert "w1 -> w1" not in shown


def test_the_plan_builds_selectors_strategies_and_metrics(project: Path) -> None:
    from promptkit._cli._options import make_backend
    from promptkit._cli._plan import load_config

    write(project, "c.yaml", FEW_SHOT_CONFIG.replace("selector: semantic", "selector: mmr\n    diversity: 0.3"))
    plan = load_config(project / "c.yaml", make_backend=make_backend)
    selector = plan.variants["semantic"].selector
    assert isinstance(selector, MMRSelector)
    assert (selector.k, selector.diversity, selector.fields) == (2, 0.3, ("word",))
    strategy = plan.variants["vote"].strategy
    assert isinstance(strategy, SelfConsistency)
    assert (strategy.n, strategy.temperature) == (3, 0.7)
    assert dict(plan.variants["vote"].params) == {"max_tokens": 5}
    assert plan.specs == {"semantic": "mock", "vote": "mock"}
    assert plan.variants["semantic"].backend is plan.variants["vote"].backend  # one backend per spec
    config = YAML.replace(
        "  - contains\n",
        "  - contains\n  - {numeric: {abs_tol: 0.5}}\n  - regex: '^w\\d+$'\n  - {field_match: [a, b]}\n"
        "  - {judge: {rubric: 'Fine?', model: mock, scale: [1, 2, 3], name: grade}}\n",
    )
    write(project, "m.yaml", config)
    metrics = load_config(project / "m.yaml", make_backend=make_backend).metrics
    assert [m.name for m in metrics] == [
        "exact_match",
        "contains",
        "numeric_match",
        "regex_match",
        "field_match",
        "grade",
    ]
    assert isinstance(metrics[-1], LLMJudge)
    assert metrics[-1].scale == (1, 2, 3)
    write(project, "s.yaml", FEW_SHOT_CONFIG)
    semantic = load_config(project / "s.yaml", make_backend=make_backend).variants["semantic"].selector
    assert isinstance(semantic, SemanticSelector)
    assert isinstance(semantic.embedder, HashingEmbedder)  # 'embedder: hashing'; the default is the local model


# -- configs that cannot be used: one line, exit status 2 ----------------------------------------------
BASE = "dataset: words.jsonl\nvariants: {echo: echo.prompt}\n"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            BASE + "metrics: [exact_match, exact]\n",
            "metrics[1]: unknown metric 'exact'; did you mean 'exact_match'? choose from exact_match, contains, "
            "regex, choice_accuracy, numeric, json_valid, schema_valid, field_match, token_f1, judge",
        ),
        (
            "dataset: words.jsonl\nvarients: {echo: echo.prompt}\nmetrics: [exact_match]\n",
            "unknown key 'varients'; did you mean 'variants'? choose from variants, dataset, metrics, epochs, "
            "reducer, max_concurrency, max_cost, max_tokens_total, requests_per_minute, tokens_per_minute, params, "
            "confidence, exclude_similar, checkpoint, compare (and 1 more problem)",
        ),
        (
            "variants: {echo: echo.prompt}\nmetrics: [exact_match]\n",
            "missing key 'dataset'",
        ),
        (
            "dataset: nowhere.jsonl\nvariants: {echo: echo.prompt}\nmetrics: [exact_match]\n",
            "dataset: no such dataset file 'nowhere.jsonl' (paths are relative to the config's folder)",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: missing.prompt}\nmetrics: [exact_match]\n",
            "variants.echo.prompt: no such prompt file 'missing.prompt' (paths are relative to the config's folder)",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: {prompt: echo.prompt, modle: mock}}\nmetrics: [exact_match]\n",
            "variants.echo: unknown key 'modle'; did you mean 'model'? choose from prompt, model, params, strategy, "
            "examples, selector, k, fields, seed, embedder, diversity, fetch_k, example_template",
        ),
        (BASE + "metrics: [exact_match]\nepochs: 0\n", "epochs: should be greater than or equal to 1; got 0"),
        (BASE + "metrics: [exact_match]\nepochs: '3'\n", "epochs: should be a valid integer; got '3'"),
        (BASE + "metrics: []\n", "metrics: list should have at least 1 item after validation, not 0"),
        (BASE + "metrics: [regex]\n", "metrics[0]: regex needs options, e.g. 'regex: PATTERN'"),
        (
            BASE + "metrics: [{numeric: {abs_tolerance: 1}}]\n",
            "metrics[0].numeric: unknown key 'abs_tolerance'; did you mean 'abs_tol'? choose from name, abs_tol, "
            "rel_tol, prefer",
        ),
        (
            BASE + "metrics: [{regex: '('}]\n",
            "metrics[0].regex: RegexMatch: invalid regular expression '(': missing ), unterminated subpattern at "
            "position 0",
        ),
        (
            BASE + "metrics: [{judge: 'Is it right?'}]\n",
            "metrics[0].judge: a judge needs 'model: PROVIDER:MODEL' (or pass --judge-model)",
        ),
        (
            BASE + "metrics: [exact_match, {exact_match: {case_sensitive: true}}]\n",
            "metrics[1]: metrics[0] is named 'exact_match' too; give this one 'name: ...'",
        ),
        (
            BASE + "metrics: [exact_match]\ncompare: [echo, other]\n",
            "compare[1]: unknown variant 'other'; choose from echo",
        ),
        (
            BASE + "metrics: [exact_match]\nreducer: pass@3\n",
            "reducer: pass@3 needs at least 3 epochs, and epochs=1",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: {prompt: echo.prompt, strategy: cot}}\nmetrics: [exact_match]\n",
            "variants.echo.strategy: unknown strategy 'cot'; choose from direct, chain_of_thought, self_consistency, "
            "self_refine",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: {prompt: echo.prompt, selector: semantic, seed: 3}}\n"
            "metrics: [exact_match]\n",
            "variants.echo.seed: applies to the random selectors, not semantic",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: {prompt: echo.prompt, selector: bm25}}\nmetrics: [exact_match]\n",
            "variants.echo: a selector needs examples: an 'examples' file, or examples in the prompt file",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: {prompt: echo.prompt, examples: examples.jsonl}}\n"
            "metrics: [exact_match]\n",
            "variants.echo: examples were given but the template never uses {{ examples }}; add it where the "
            "examples should appear (or a FewShot marker in a chat prompt)",
        ),
        (
            "dataset: words.jsonl\nvariants: {echo: {prompt: echo.prompt, model: 'nope:x'}}\nmetrics: [exact_match]\n",
            "variants.echo.model: unknown backend provider 'nope' in 'nope:x'",
        ),
        (
            "dataset: {path: words.jsonl, expected: answer}\nvariants: {echo: echo.prompt}\nmetrics: [exact_match]\n",
            "dataset: words.jsonl: no row has the column(s) answer; the columns are expected, id, word",
        ),
        ("dataset: [words.jsonl\n", "malformed YAML on line 2: expected ',' or ']', but got '<stream end>'"),
        ("- a list\n", "a config is a mapping of keys (variants, dataset, metrics...), not a list"),
        ("", "a config is a mapping of keys (variants, dataset, metrics...), not nothing"),
    ],
)
def test_a_bad_config_is_one_line_naming_file_and_key(project: Path, config: str, message: str) -> None:
    write(project, "bad.yaml", config)
    result = invoke("bad.yaml")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert line.startswith("bad.yaml: ")
    assert line.removeprefix("bad.yaml: ").startswith(message), line


def test_bad_toml_and_other_files_are_refused(project: Path) -> None:
    write(project, "bad.toml", 'dataset = "words.jsonl"\nmetrics = [\n')
    result = invoke("bad.toml")
    assert result.exit_code == 2
    assert error_line(result).startswith("bad.toml: malformed TOML: ")
    write(project, "types.toml", TOML.replace('compare = ["echo", "labelled"]', "compare = 3"))
    assert error_line(invoke("types.toml")) == "types.toml: compare: should be a valid list; got 3"
    write(project, "eval.json", "{}")
    other = invoke("eval.json")
    assert other.exit_code == 2
    assert "a config is a YAML (.yaml, .yml) or TOML (.toml) file" in error_line(other)
    missing = invoke("nowhere.yaml")
    assert missing.exit_code == 2
    assert "'nowhere.yaml' does not exist" in error_line(missing)


def test_errors_while_working_exit_1(project: Path) -> None:
    # the config is fine, the prompt file has a syntax error: reported with its file and line, as by `run`
    write(project, "broken.prompt", "---\nmodel: mock\n---\nSay {{ word }\n")
    write(project, "c.yaml", BASE.replace("echo.prompt", "broken.prompt") + "metrics: [exact_match]\n")
    result = invoke("c.yaml")
    assert result.exit_code == 1
    assert error_line(result) == "invalid template syntax: unexpected '}' (in broken.prompt, line 4)"
    # a variant needing an input no row has
    write(project, "needs.prompt", "---\nmodel: mock\n---\n{{ word }} {{ city }}\n")
    write(project, "d.yaml", BASE.replace("echo.prompt", "needs.prompt") + "metrics: [exact_match]\n")
    assert invoke("d.yaml").exit_code == 1
    assert "city" in error_line(invoke("d.yaml"))


def test_ctrl_c_prints_what_finished_and_exits_130(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit._cli import _options

    calls: list[str] = []

    def answer(messages: Any, params: Any) -> str:
        calls.append(messages[-1].text)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return messages[-1].text

    monkeypatch.setattr(_options, "make_backend", lambda spec, base_url=None: FunctionBackend(answer))
    write(project, "c.yaml", YAML + "max_concurrency: 1\n")
    result = invoke("c.yaml")
    assert result.exit_code == 130
    assert result.stdout.startswith("2 variants x 20 rows")
    assert result.stderr.splitlines()[-1].startswith("promptkit: interrupted: ")
    assert result.stderr.splitlines()[-1].endswith(" calls cancelled")


# -- end to end, in subprocesses ----------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "PROMPTKIT_DEBUG"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def _promptkit(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptkit", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_subprocess_eval_on_the_mock(project: Path) -> None:
    done = _promptkit("eval", "eval.yaml", "--model", "mock:w4", "--no-progress", cwd=project)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.splitlines()[3].startswith("echo      0.050 [0.009, 0.236]")
    assert "exact_match: labelled - echo = +0.000" in done.stdout
    bad = _promptkit("eval", write(project, "bad.yaml", BASE + "metrics: [exact]\n"), cwd=project)
    assert bad.returncode == 2
    assert bad.stderr.startswith("promptkit: error: bad.yaml: metrics[0]: unknown metric 'exact'; did you mean")
    assert bad.stderr.count("\n") == 1


def test_subprocess_eval_against_the_provider_server(project: Path, server: ProviderServer) -> None:
    server.rule = _echo
    done = _promptkit("eval", "eval.toml", "--model", "openai:gpt-4o-mini", "--json", cwd=project, **on_server(server))
    assert done.returncode == 0, done.stderr
    report = EvalReport.from_json(done.stdout)
    assert report.summary("echo").metrics["exact_match"].mean == 0.75
    assert report.summary("echo").usage.input_tokens == 10 * ROWS
    assert len(server.requests) == 2 * ROWS
    assert {r.body["model"] for r in server.requests} == {"gpt-4o-mini"}
