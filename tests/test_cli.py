"""The promptkit command as a user runs it: in process through click's CliRunner, and end to end in
subprocesses, against the mock backend and the local provider server."""

from __future__ import annotations

import doctest
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import promptkit
from promptkit import count_tokens
from promptkit.cli import cli, main
from promptkit.testing import ProviderServer, ServerReply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-secret-0123456789abcdef"
TIMEOUT = 120  # seconds for a subprocess: generous, a loaded machine is slow to import

GREET = """---
model: openai:gpt-4o-mini
params: {temperature: 0.2}
input:
  name: str
  language: {type: str, default: French}
---
{% role "system" %}You are a friendly greeter.{% endrole %}
{% role "user" %}Greet {{ name }} in {{ language }}.{% endrole %}
"""

CITY = """---
model: mock
input:
  region: str
output:
  type: object
  properties:
    name: {type: string}
    country: {type: string}
---
Name the largest city in {{ region }}.
{{ format_instructions }}
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder (the working directory) with prompt files: greet (a chat on openai:gpt-4o-mini),
    plain (no model), city (structured output on the mock), bare (a model that is no backend
    spec) and broken (a syntax error on line 4)."""
    (tmp_path / "greet.prompt").write_text(GREET, encoding="utf-8")
    (tmp_path / "plain.prompt").write_text("Tell {{ who }} about {{ topic }}.", encoding="utf-8")
    (tmp_path / "city.prompt").write_text(CITY, encoding="utf-8")
    (tmp_path / "bare.prompt").write_text("---\nmodel: gpt-4o\n---\nHi {{ who }}", encoding="utf-8")
    (tmp_path / "broken.prompt").write_text("---\nmodel: mock\n---\nHello {{ name }\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the command in process, as the script would (click's error handling included)."""
    return CliRunner().invoke(cli, list(args), input=stdin, env=env)


def error_line(result: Result) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("promptkit: error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def on_server(server: ProviderServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": KEY}


# -- the group ------------------------------------------------------------------------------------
def test_every_command_has_help() -> None:
    top = invoke("--help")
    assert top.exit_code == 0
    assert top.stdout.startswith("Usage: promptkit [OPTIONS] COMMAND [ARGS]...")
    assert "_PROMPTKIT_COMPLETE=bash_source promptkit" in top.stdout
    assert set(cli.commands) >= {"render", "preview", "run", "provision-tiktoken-cache"}
    for name in cli.commands:
        assert name in top.stdout
        result = invoke(name, "--help")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: promptkit {name} [OPTIONS]")
        assert "--debug" in result.stdout
    assert "exit status is 1 when any line failed" in " ".join(invoke("run", "-h").stdout.split())


def test_version() -> None:
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"promptkit {promptkit.__version__}\n")


def test_an_unknown_command_lists_the_commands() -> None:
    result = invoke("rendr", "x.prompt")
    assert result.exit_code == 2
    line = error_line(result)
    assert "no such command 'rendr'; did you mean 'render'?" in line
    assert "provision-tiktoken-cache" in line
    assert line.endswith("(see 'promptkit --help')")
    assert invoke().exit_code == 2  # no command: the help, on stderr


def test_shell_completion_completes_commands_and_models() -> None:
    source = invoke(env={"_PROMPTKIT_COMPLETE": "bash_source"})
    assert source.exit_code == 0
    assert "_PROMPTKIT_COMPLETE=bash_complete" in source.stdout
    env = {"_PROMPTKIT_COMPLETE": "bash_complete", "COMP_WORDS": "promptkit re", "COMP_CWORD": "1"}
    assert "plain,render" in invoke(env=env).stdout.splitlines()
    env = {**env, "COMP_WORDS": "promptkit run x.prompt --model op", "COMP_CWORD": "4"}
    assert invoke(env=env).stdout.splitlines() == ["plain,openai:", "plain,openai-compatible:"]


def test_import_promptkit_never_loads_click() -> None:
    code = (
        "import sys, promptkit, promptkit.testing\n"
        "from promptkit import load_prompt, Prompt\n"
        "assert 'click' not in sys.modules, 'click loaded by import promptkit'\n"
        "import promptkit.cli\n"
        "assert 'click' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr


def test_the_entry_point_is_main() -> None:
    scripts = re.search(r"^\[project\.scripts\]\n(.*?)^\[", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    assert scripts is not None
    assert 'promptkit = "promptkit.cli:main"' in scripts.group(1)
    assert main(["--version"]) == 0
    assert main(["nope"]) == 2
    assert main(["render", "missing.prompt"]) == 2


# -- render ---------------------------------------------------------------------------------------
def test_render_prints_the_messages_and_their_tokens(files: Path) -> None:
    result = invoke("render", "greet.prompt", "--var", "name=Ada")
    assert result.exit_code == 0, result.output
    expected = count_tokens(
        [("system", "You are a friendly greeter."), ("user", "Greet Ada in French.")], model="openai:gpt-4o-mini"
    )
    assert result.stdout == (
        "--- system ---\nYou are a friendly greeter.\n--- user ---\nGreet Ada in French.\n"
        f"{int(expected)} tokens (o200k_base, counted for openai:gpt-4o-mini)\n"
    )
    assert result.stderr == ""


def test_render_json_names_the_model_it_counted_for(files: Path) -> None:
    result = invoke("render", "greet.prompt", "--var", "name=Ada", "--var", "language=Italian", "--json")
    data = json.loads(result.stdout)
    assert data["messages"] == [
        {"role": "system", "content": "You are a friendly greeter."},
        {"role": "user", "content": "Greet Ada in Italian."},
    ]
    sent = [("system", "You are a friendly greeter."), ("user", "Greet Ada in Italian.")]
    assert data["tokens"] == count_tokens(sent, model="gpt-4o-mini")
    assert (data["model"], data["encoding"], data["exact"]) == ("openai:gpt-4o-mini", "o200k_base", True)
    # the mock (and a file without a model) has no tokenizer: gpt-4o-mini's count, marked approximate
    mock = json.loads(invoke("render", "greet.prompt", "--var", "name=Ada", "--model", "mock", "--json").stdout)
    assert (mock["model"], mock["exact"], mock["encoding"]) == ("gpt-4o-mini", False, "o200k_base")
    text = invoke("render", "plain.prompt", "--var", "who=Ada", "--var", "topic=tea")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[-1].startswith("~")
    assert text.stdout.splitlines()[-1].endswith("tokens (o200k_base, counted for gpt-4o-mini)")


def test_variables_from_json_files_and_vars_json(files: Path) -> None:
    (files / "topic.txt").write_text("green tea\nand its history", encoding="utf-8")
    result = invoke(
        "render",
        "plain.prompt",
        "--vars-json",
        '{"who": "Bob", "topic": "coffee"}',
        "--var",
        "who:=[1, 2]",
        "--var",
        "topic=@topic.txt",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"][0]["content"] == "Tell [1, 2] about green tea\nand its history."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "name"], "'name' is not NAME=VALUE (or NAME:=JSON, NAME=@FILE)"),
        (["--var", "=x"], "'' is not a variable name"),
        (["--var", "n:={oops"], "the value after ':=' is not JSON"),
        (["--var", "doc=@nowhere.txt"], "cannot read 'nowhere.txt': No such file or directory"),
        (["--vars-json", "[1]"], "must be a JSON object of variables, not list"),
        (["--vars-json", "{"], "not JSON"),
        (["--input", "nowhere.jsonl"], "Invalid value for '--input'"),
        (["--model", "gpt-4o"], "did you mean 'openai:gpt-4o'"),
        (["--model", "mock", "--base-url", "http://127.0.0.1:1/v1"], "the mock backend sends nothing"),
    ],
)
def test_usage_errors_exit_2_with_one_line(files: Path, args: list[str], message: str) -> None:
    result = invoke("render", "greet.prompt", *args)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert message in line
    assert line.endswith("(see 'promptkit render --help')")


def test_a_missing_file_is_a_usage_error(files: Path) -> None:
    result = invoke("run", "nowhere.prompt", "--model", "mock")
    assert result.exit_code == 2
    assert "File 'nowhere.prompt' does not exist" in error_line(result)


def test_template_errors_name_the_file_and_line(files: Path) -> None:
    broken = invoke("render", "broken.prompt")
    assert broken.exit_code == 1
    assert error_line(broken) == "promptkit: error: invalid template syntax: unexpected '}' (in broken.prompt, line 4)"
    missing = invoke("render", "plain.prompt", "--var", "who=Ada")
    assert missing.exit_code == 1
    assert error_line(missing) == (
        "promptkit: error: missing template variable 'topic' (in plain.prompt, line 1); pass it with --var topic=VALUE"
    )
    declared = invoke("run", "greet.prompt", "--model", "mock")
    assert "invalid template inputs: name: Field required (in greet.prompt)" in error_line(declared)
    extra = invoke("render", "greet.prompt", "--var", "name=Ada", "--var", "age=3")
    assert (
        error_line(extra) == "promptkit: error: 'age' is not a variable of greet.prompt, which uses 'language', 'name'"
    )


def test_debug_shows_the_exception(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for args in (["--debug", "render", "broken.prompt"], ["render", "broken.prompt", "--debug"]):
        result = invoke(*args)
        assert result.exit_code == 1
        assert isinstance(result.exception, promptkit.TemplateSyntaxError)
    monkeypatch.setenv("PROMPTKIT_DEBUG", "1")
    assert isinstance(invoke("render", "broken.prompt").exception, promptkit.TemplateSyntaxError)


def test_an_unexpected_exception_is_one_line_too(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit._cli import _commands

    def broken(messages: object) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_commands, "messages_text", broken)
    result = invoke("render", "plain.prompt", "--var", "who=A", "--var", "topic=B")
    assert result.exit_code == 1
    assert error_line(result) == "promptkit: error: unexpected RuntimeError: a bug (run with --debug for the traceback)"
    debug = invoke("render", "plain.prompt", "--var", "who=A", "--var", "topic=B", "--debug")
    assert isinstance(debug.exception, RuntimeError)


def test_render_input_jsonl_keeps_order_and_reports_each_failed_line(files: Path) -> None:
    lines = '{"who": "Ada", "topic": "tea"}\n\n{"who": "Bob"}\nnot json\n[1, 2]\n{"topic": "rain"}\n'
    result = invoke("render", "plain.prompt", "--input", "-", "--var", "who=Everyone", stdin=lines)
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [(r["line"], r["status"]) for r in records] == [
        (1, "ok"),
        (3, "failed"),
        (4, "failed"),
        (5, "failed"),
        (6, "ok"),
    ]
    assert records[0]["messages"] == [{"role": "user", "content": "Tell Ada about tea."}]
    assert records[4]["messages"] == [{"role": "user", "content": "Tell Everyone about rain."}]  # --var under the line
    assert records[1]["error"] == {
        "type": "UndefinedVariableError",
        "message": "missing template variable 'topic' (in plain.prompt, line 1); "
        "pass it in the input line or with --var topic=VALUE",
    }
    assert records[2]["error"]["message"] == "line 4 is not JSON: Expecting value at column 1"
    assert records[3]["error"]["message"] == "line 5 must be a JSON object of variables, not list"
    assert result.stderr == "promptkit: 3 of 5 input lines failed (lines 3, 4, 5)\n"
    (files / "ok.jsonl").write_text('{"who": "A", "topic": "B"}\n', encoding="utf-8")
    ok = invoke("render", "plain.prompt", "--input", "ok.jsonl")
    assert (ok.exit_code, ok.stderr, len(jsonl(ok.stdout))) == (0, "", 1)


# -- preview --------------------------------------------------------------------------------------
def test_preview_of_the_mock_is_the_neutral_request(files: Path) -> None:
    result = invoke("preview", "greet.prompt", "--var", "name=Ada", "--model", "mock", "--json")
    data = json.loads(result.stdout)
    assert (data["backend"], data["url"], data["headers"]) == ("mock", None, {})
    assert data["body"] == {
        "messages": [
            {"role": "system", "content": "You are a friendly greeter."},
            {"role": "user", "content": "Greet Ada in French."},
        ],
        "params": {"temperature": 0.2},
    }
    text = invoke("preview", "greet.prompt", "--var", "name=Ada", "--model", "mock").stdout
    assert text.startswith("mock: no wire format")
    assert text.rstrip().endswith("estimated cost: unknown")


def test_preview_shows_the_provider_request_with_the_key_masked(files: Path) -> None:
    result = invoke("preview", "greet.prompt", "--var", "name=Ada", "--json", env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    data = json.loads(result.stdout)
    assert (data["method"], data["url"]) == ("POST", "https://api.openai.com/v1/chat/completions")
    assert data["headers"]["authorization"] == "Bearer sk-...ef"
    assert data["body"]["model"] == "gpt-4o-mini"
    assert data["body"]["messages"][1] == {"role": "user", "content": "Greet Ada in French."}
    assert (
        data["input_tokens"]
        == json.loads(invoke("render", "greet.prompt", "--var", "name=Ada", "--json").stdout)["tokens"]
    )
    text = invoke("preview", "greet.prompt", "--var", "name=Ada", "--stream", env={"OPENAI_API_KEY": KEY}).stdout
    assert text.startswith("POST https://api.openai.com/v1/chat/completions\n")
    assert "authorization: Bearer sk-...ef" in text
    assert KEY not in text
    assert '"stream": true' in text


def test_preview_and_run_need_a_model(files: Path) -> None:
    for command in ("preview", "run"):
        result = invoke(command, "plain.prompt", "--var", "who=A", "--var", "topic=B")
        assert result.exit_code == 2
        assert "plain.prompt names no model; pass --model PROVIDER:MODEL (or --model mock)" in error_line(result)


def test_a_bare_model_name_renders_and_a_call_names_the_spec(files: Path) -> None:
    assert invoke("render", "bare.prompt", "--var", "who=Ada").exit_code == 0
    result = invoke("run", "bare.prompt", "--var", "who=Ada")
    assert result.exit_code == 1
    assert "write model: 'openai:gpt-4o'" in error_line(result)


# -- run ------------------------------------------------------------------------------------------
def test_run_on_the_mock_echoes_or_replies_the_text(files: Path) -> None:
    echo = invoke("run", "greet.prompt", "--var", "name=Ada", "--model", "mock")
    assert (echo.exit_code, echo.stdout) == (0, "Greet Ada in French.\n")
    fixed = invoke("run", "greet.prompt", "--var", "name=Ada", "--model", "mock:Bonjour: Ada")
    assert fixed.stdout == "Bonjour: Ada\n"
    data = json.loads(invoke("run", "greet.prompt", "--var", "name=Ada", "--model", "mock:Salut", "--json").stdout)
    assert (data["value"], data["text"], data["model"], data["finish_reason"]) == ("Salut", "Salut", "mock", "stop")
    assert data["usage"]["output_tokens"] == 1
    assert data["cost"] is None


def test_run_prints_structured_output_as_json(files: Path) -> None:
    reply = '{"name": "Oslo", "country": "Norway"}'
    result = invoke("run", "city.prompt", "--var", "region=Norway", "--model", f"mock:{reply}")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "Oslo", "country": "Norway"}
    assert result.stdout.startswith("{\n  ")  # indented for a person
    as_json = json.loads(
        invoke("run", "city.prompt", "--var", "region=Norway", "--model", f"mock:{reply}", "--json").stdout
    )
    assert (as_json["value"], as_json["text"]) == ({"name": "Oslo", "country": "Norway"}, reply)
    # the file's model is "mock", which echoes: not JSON, so the reply fails to parse (after a repair)
    failed = invoke("run", "city.prompt", "--var", "region=Norway")
    assert failed.exit_code == 1
    assert "no valid reply after 2 attempts" in error_line(failed)


def test_run_stream_prints_the_text_as_it_comes(files: Path) -> None:
    result = invoke("run", "greet.prompt", "--var", "name=Ada", "--model", "mock", "--stream")
    assert (result.exit_code, result.stdout) == (0, "Greet Ada in French.\n")
    records = jsonl(invoke("run", "greet.prompt", "--var", "name=Ada", "--model", "mock", "--stream", "--json").stdout)
    deltas = [r["delta"] for r in records[:-1]]
    assert len(deltas) > 1
    assert "".join(deltas) == "Greet Ada in French."
    assert records[-1]["value"] == "Greet Ada in French."
    reply = '{"name": "Oslo", "country": "Norway"}'
    partials = jsonl(invoke("run", "city.prompt", "--var", "region=N", "--model", f"mock:{reply}", "--stream").stdout)
    assert partials[-1] == {"name": "Oslo", "country": "Norway"}
    both = invoke("run", "greet.prompt", "--model", "mock", "--stream", "--input", "-", stdin='{"name": "A"}\n')
    assert both.exit_code == 2
    assert "does not combine with --input" in error_line(both)


def test_run_input_batches_in_order_with_errors_per_line(files: Path) -> None:
    lines = "".join(json.dumps({"name": f"P{i}"}) + "\n" for i in range(12)) + '{"nom": "x"}\n'
    result = invoke("run", "greet.prompt", "--model", "mock", "--input", "-", "--concurrency", "4", stdin=lines)
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [r["line"] for r in records] == list(range(1, 14))
    assert [r["value"] for r in records[:12]] == [f"Greet P{i} in French." for i in range(12)]
    assert records[12]["status"] == "failed"
    assert records[12]["error"]["type"] == "UnexpectedVariableError"
    assert result.stderr == "promptkit: 1 of 13 input lines failed (line 13)\n"
    assert invoke("run", "greet.prompt", "--model", "mock", "--input", "-", stdin='{"name": "A"}\n').exit_code == 0
    assert invoke("run", "greet.prompt", "--model", "mock", "--input", "-", "--concurrency", "0").exit_code == 2


# -- against the local provider server --------------------------------------------------------------
def test_run_against_the_provider_server(files: Path, server: ProviderServer) -> None:
    server.add(ServerReply(text="Bonjour, Ada !", input_tokens=20, output_tokens=4))
    result = invoke("run", "greet.prompt", "--var", "name=Ada", "--json", env=on_server(server))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["value"] == "Bonjour, Ada !"
    assert data["usage"]["input_tokens"] == 20
    assert data["model"] == "gpt-4o-mini"
    (request,) = server.requests
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0.2
    assert request.body["messages"][-1] == {"role": "user", "content": "Greet Ada in French."}
    assert "authorization" in request.headers  # the key was sent (the server records it masked)


def test_base_url_option_and_streaming_from_the_server(files: Path, server: ProviderServer) -> None:
    server.add(ServerReply(text="Hallo Ada, schön dich zu sehen", chunk_size=3))
    result = invoke(
        "run",
        "greet.prompt",
        "--var",
        "name=Ada",
        "--base-url",
        server.openai_base_url,
        "--stream",
        env={"OPENAI_API_KEY": KEY},
    )
    assert (result.exit_code, result.stdout) == (0, "Hallo Ada, schön dich zu sehen\n")
    assert server.requests[0].body["stream"] is True


def test_backend_errors_give_status_and_provider(files: Path, server: ProviderServer) -> None:
    server.add(ServerReply.error(401, message="invalid key"))
    result = invoke("run", "greet.prompt", "--var", "name=Ada", env=on_server(server))
    assert result.exit_code == 1
    line = error_line(result)
    assert line.endswith("invalid key (AuthenticationError, status 401)")
    assert "openai:gpt-4o-mini" in line


def test_a_missing_api_key_is_named(files: Path) -> None:
    result = invoke("run", "greet.prompt", "--var", "name=Ada")
    assert result.exit_code == 1
    line = error_line(result)
    assert "no API key; pass api_key=... or set OPENAI_API_KEY" in line


def test_the_real_request_gate_still_holds_in_process(files: Path) -> None:
    # Under pytest real providers are blocked in this process; the loopback server above passes.
    result = invoke("run", "greet.prompt", "--var", "name=Ada", env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 1
    assert "tried to call a real provider" in error_line(result)


def test_batch_against_the_server_reports_provider_errors_per_line(files: Path, server: ProviderServer) -> None:
    def answer(request: Any) -> ServerReply:
        text = request.body["messages"][-1]["content"]
        if "Bob" in text:
            return ServerReply.error(400, message="Bob is not allowed")
        return ServerReply(text=text.upper())

    server.rule = answer
    lines = '{"name": "Ada"}\n{"name": "Bob"}\n{"name": "Cy", "language": "Welsh"}\n'
    result = invoke("run", "greet.prompt", "--input", "-", "--concurrency", "3", stdin=lines, env=on_server(server))
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert [records[0]["value"], records[2]["value"]] == ["GREET ADA IN FRENCH.", "GREET CY IN WELSH."]
    error = records[1]["error"]
    assert (error["type"], error["status_code"], error["provider"]) == ("BadRequestError", 400, "openai:gpt-4o-mini")
    assert "Bob is not allowed" in error["message"]
    assert len(server.requests) == 3


# -- provision-tiktoken-cache ---------------------------------------------------------------------
def test_provision_tiktoken_cache_is_a_command(tmp_path: Path) -> None:
    result = invoke("provision-tiktoken-cache", str(tmp_path / "cache"), "--encoding", "cl100k_base")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"tiktoken cache ready in {tmp_path / 'cache'}\n")
    assert any((tmp_path / "cache").iterdir())
    bad = invoke("provision-tiktoken-cache", str(tmp_path / "cache"), "--encoding", "gpt2")
    assert bad.exit_code == 1
    assert "cannot provision the encoding 'gpt2' offline" in error_line(bad)


# -- end to end, in subprocesses ------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    """This checkout first on the path (the subprocess runs in another directory); keys only as given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "PROMPTKIT_DEBUG"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def _promptkit(*args: str, cwd: Path, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptkit", *args],
        cwd=cwd,
        env=_env(**env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_subprocess_render_and_run_on_the_mock(files: Path) -> None:
    done = _promptkit("run", "greet.prompt", "--var", "name=Ada", "--model", "mock:Bonjour", cwd=files)
    assert (done.returncode, done.stdout, done.stderr) == (0, "Bonjour\n", "")
    shown = _promptkit("render", "greet.prompt", "--var", "name=Ada", "--json", cwd=files)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["messages"][1]["content"] == "Greet Ada in French."


def test_subprocess_runs_against_the_provider_server(files: Path, server: ProviderServer) -> None:
    # A subprocess is a real user program: the pytest gate is not in it, and the loopback server
    # would pass it anyway.
    server.add("Bonjour, Ada !", ServerReply(text="Salut tout le monde", chunk_size=2))
    env = on_server(server)
    done = _promptkit("run", "greet.prompt", "--var", "name=Ada", cwd=files, **env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "Bonjour, Ada !\n", "")
    streamed = _promptkit("run", "greet.prompt", "--var", "name=Ada", "--stream", cwd=files, **env)
    assert (streamed.returncode, streamed.stdout) == (0, "Salut tout le monde\n")
    assert [r.body.get("stream", False) for r in server.requests] == [False, True]


def test_subprocess_batch_from_stdin(files: Path, server: ProviderServer) -> None:
    server.rule = lambda request: (
        ServerReply.error(401, message="revoked") if "Bob" in str(request.body) else ServerReply(text="hi")
    )
    lines = '{"name": "Ada"}\n{"name": "Bob"}\n'
    done = _promptkit("run", "greet.prompt", "--input", "-", cwd=files, stdin=lines, **on_server(server))
    assert done.returncode == 1
    records = jsonl(done.stdout)
    assert [(r["line"], r["status"]) for r in records] == [(1, "ok"), (2, "failed")]
    assert records[1]["error"]["status_code"] == 401
    assert done.stderr == "promptkit: 1 of 2 input lines failed (line 2)\n"


def test_subprocess_errors_are_one_line_unless_debug(files: Path) -> None:
    done = _promptkit("render", "broken.prompt", cwd=files)
    assert done.returncode == 1
    assert done.stderr == "promptkit: error: invalid template syntax: unexpected '}' (in broken.prompt, line 4)\n"
    debug = _promptkit("render", "broken.prompt", cwd=files, PROMPTKIT_DEBUG="1")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "TemplateSyntaxError" in debug.stderr
    usage = _promptkit("run", "greet.prompt", "--var", "oops", cwd=files)
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1
    assert "(see 'python -m promptkit run --help')" in usage.stderr


def test_subprocess_as_the_installed_script_runs_it(files: Path) -> None:
    # What the console script generated from [project.scripts] does.
    code = "import sys; from promptkit.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "run", "greet.prompt", "--var", "name=Ada", "--model", "mock"],
        cwd=files,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "Greet Ada in French.\n"), done.stderr


# -- the examples of docs/cli.md ------------------------------------------------------------------
DOC = ROOT / "docs" / "cli.md"
FILE_BLOCK = re.compile(r"<!--\s*file:\s*(?P<name>\S+)\s*-->\s*\n```[^\n]*\n(?P<body>.*?)^```", re.S | re.M)
CONSOLE_BLOCK = re.compile(r"(?:<!--\s*not run:(?P<reason>[^>]*)-->\s*\n)?^```console\n(?P<body>.*?)^```", re.S | re.M)


def _doc_commands() -> list[tuple[str, str]]:
    """Each ``$ promptkit ...`` line of the page's console blocks that are run, with its output."""
    found = []
    for block in CONSOLE_BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        if block["reason"] is not None:
            assert block["reason"].strip(), "a console block marked 'not run' must say why"
            continue
        for chunk in re.split(r"^\$ ", block["body"], flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output))
    return found


def test_the_docs_examples_print_what_the_page_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOC.read_text(encoding="utf-8")
    for block in FILE_BLOCK.finditer(text):
        (tmp_path / block["name"]).write_text(block["body"], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    commands = _doc_commands()
    assert len(commands) >= 8
    checker = doctest.OutputChecker()
    for command, expected in commands:
        words = shlex.split(command)
        assert words[0] == "promptkit", command
        stdin = None
        if "<" in words:
            at = words.index("<")
            stdin = (tmp_path / words[at + 1]).read_text(encoding="utf-8")
            words = words[:at] + words[at + 2 :]
        result = CliRunner().invoke(cli, words[1:], input=stdin)
        assert result.exception is None or isinstance(result.exception, SystemExit), command
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        assert checker.check_output(expected, result.output, flags), f"$ {command}\n{result.output}"


# -- edges: no tokenizer, interruptions, the output helpers ----------------------------------------
def test_render_without_encoding_files_still_prints_the_messages(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import promptkit._tokens

    def unavailable(*args: object, **kwargs: object) -> int:
        raise promptkit.TokenizerError("cannot load the tiktoken encoding 'o200k_base' (offline)")

    monkeypatch.setattr(promptkit._tokens, "count_tokens", unavailable)
    result = invoke("render", "greet.prompt", "--var", "name=Ada")
    assert result.exit_code == 0
    assert result.stdout.endswith("Greet Ada in French.\ntokens: unknown\n")
    assert (
        result.stderr
        == "promptkit: warning: cannot count tokens: cannot load the tiktoken encoding 'o200k_base' (offline)\n"
    )
    batch = invoke("render", "greet.prompt", "--input", "-", stdin='{"name": "A"}\n{"name": "B"}\n')
    assert batch.exit_code == 0
    assert [r["tokens"] for r in jsonl(batch.stdout)] == [None, None]
    assert batch.stderr.count("warning") == 1  # said once, not tried again per line


def test_ctrl_c_aborts_a_call_and_cancels_the_rest_of_a_batch(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit._cli import _options
    from promptkit.testing import FunctionBackend

    calls: list[str] = []

    def answer(messages: Any, params: Any) -> str:
        calls.append(messages[-1].text)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return "ok"

    monkeypatch.setattr(_options, "make_backend", lambda spec, base_url=None: FunctionBackend(answer))
    lines = "".join(json.dumps({"name": str(i)}) + "\n" for i in range(5))
    result = invoke("run", "greet.prompt", "--input", "-", "--concurrency", "1", stdin=lines)
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [r["status"] for r in records] == ["ok", "ok", "cancelled", "cancelled", "cancelled"]
    assert records[4]["error"]["type"] == "Cancelled"
    single = invoke("run", "greet.prompt", "--var", "name=Ada")
    assert (single.exit_code, single.stderr.splitlines()[-1]) == (130, "promptkit: aborted")


def test_the_output_helpers_show_parts_cache_marks_and_prices() -> None:
    from promptkit import ImagePart, Message, TextPart
    from promptkit._cli._output import message_records, messages_text, preview_text, token_count
    from promptkit.backends import RequestPreview

    messages = [
        Message("system", "Be brief.", cache="5m"),
        Message("user", (TextPart(text="What is this? "), ImagePart(url="https://example.com/cat.png"))),
    ]
    assert message_records(messages) == [
        {"role": "system", "content": "Be brief.", "cache": "5m"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this? "},
                {"type": "image", "url": "https://example.com/cat.png", "media_type": None},
            ],
        },
    ]
    assert messages_text(messages) == (
        "--- system (cache 5m) ---\nBe brief.\n--- user ---\nWhat is this? [image https://example.com/cat.png]"
    )
    count, model, why_not = token_count(messages[:1], "openai-compatible:llama3@http://127.0.0.1:8000/v1")
    assert (model, why_not, count is not None and count.exact) == ("gpt-4o-mini", None, False)
    assert token_count(messages[:1], "openai:gpt-4o")[1] == "openai:gpt-4o"
    preview = RequestPreview(
        backend="x", input_tokens=10, max_output_tokens=20, estimated_cost=0.5, cached_prefix_tokens=6
    )
    assert preview_text(preview).splitlines()[-1] == (
        "input tokens: 10, max output tokens: 20, estimated cost: $0.500000, cached prefix tokens: 6"
    )
