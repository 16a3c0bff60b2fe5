from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import pytest

from promptkit import (
    Backend,
    ChatTemplate,
    ConfigurationError,
    Message,
    Prompt,
    PydanticParser,
    TemplateInputError,
    TemplateSyntaxError,
    TextParser,
    UndefinedVariableError,
)
from promptkit._files import PromptFile, PromptFileWarning, load_prompt, load_prompt_file, parse_prompt_file
from promptkit.backends import COMMON_PARAMS
from promptkit.testing import MockBackend

FULL = """\
---
name: summarise
description: Summarise a document for a busy reader.
model: mock
params:
  temperature: 0.2
  max_tokens: 300
input:
  document: str
  max_words: {type: integer, default: 80}
  audience: {enum: [experts, novices], default: novices}
output:
  type: object
  properties:
    summary: {type: string, description: The summary itself}
    keywords: {type: array, items: {type: string}}
    confidence: {type: number}
  required: [summary, keywords]
examples:
  - document: The cat sat on the mat.
    summary: A cat sat.
example_template: "Document: {{ document }}\\nSummary: {{ summary }}"
metadata:
  owner: docs-team
---
{% role "system" %}
Summarise in at most {{ max_words }} words for {{ audience }}.
{{ format_instructions }}
{% endrole %}
{% role "user" %}
Examples:
{{ examples }}

Document:
{{ document }}
{% endrole %}
"""


def _write(tmp_path: Path, text: str, name: str = "summarise.prompt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_full_prompt_file_becomes_a_ready_prompt(tmp_path: Path) -> None:
    prompt = load_prompt(_write(tmp_path, FULL))
    assert isinstance(prompt, Prompt)
    assert prompt.params == {"temperature": 0.2, "max_tokens": 300}
    assert isinstance(prompt.parser, PydanticParser)
    messages = prompt.render(document="Long text.", max_words="50")
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content.startswith("Summarise in at most 50 words for novices.")
    assert "JSON schema" in messages[0].content
    assert "Document: The cat sat on the mat.\nSummary: A cat sat." in messages[1].content

    backend = MockBackend(['{"summary": "Short.", "keywords": ["a"]}'])
    value = load_prompt(_write(tmp_path, FULL), backend=backend).complete(document="Long text.")
    assert value.summary == "Short."
    assert value.keywords == ["a"]
    assert value.confidence is None
    assert backend.calls[0].params["temperature"] == 0.2


def test_prompt_file_metadata_and_validation(tmp_path: Path) -> None:
    info = load_prompt_file(_write(tmp_path, FULL))
    assert info.name == "summarise"
    assert info.description == "Summarise a document for a busy reader."
    assert info.metadata == {"owner": "docs-team"}
    assert isinstance(info.template, ChatTemplate)
    assert info.template.variables == {"max_words", "audience", "format_instructions", "examples", "document"}
    with pytest.raises(TemplateInputError, match="audience"):
        info.template.render(document="d", audience="aliens", format_instructions="", examples="")
    with pytest.raises(TemplateInputError, match="document"):
        info.template.render(format_instructions="", examples="")
    model = info.parser.model  # type: ignore[attr-defined]
    with pytest.raises(pydantic.ValidationError):
        model(summary="x")  # keywords is required
    assert "system" in info._repr_html_()


@pytest.mark.parametrize(
    ("model", "spec"), [("gpt-4o", "openai:gpt-4o"), ("claude-sonnet-4", "anthropic:claude-sonnet-4")]
)
def test_a_bare_model_name_loads_a_prompt_whose_calls_name_the_spec(tmp_path: Path, model: str, spec: str) -> None:
    text = f"---\nname: hello\nmodel: {model}\n---\nSay hello to {{{{ who }}}}.\n"
    path = _write(tmp_path, text, "hello.prompt")
    prompt = load_prompt(path)
    assert isinstance(prompt, Prompt)  # one return type, whatever the model says
    assert prompt.render(who="Ann") == [Message("user", "Say hello to Ann.\n")]
    assert isinstance(prompt.parser, TextParser)
    assert prompt.backend is not None
    assert prompt.backend.name == f"unresolved:{model}"
    assert isinstance(prompt.backend, Backend)
    with pytest.raises(ConfigurationError, match=rf"'{spec}'.*hello\.prompt|hello\.prompt.*'{spec}'"):
        prompt.complete(who="Ann")
    with pytest.raises(ConfigurationError, match=spec):
        prompt.run(who="Ann")
    with pytest.raises(ConfigurationError, match=spec):
        list(prompt.stream(who="Ann"))
    # the file's metadata stays reachable, and another backend makes it callable
    info = load_prompt_file(path)
    assert isinstance(info, PromptFile)
    assert info.model == model
    assert load_prompt(path, backend=MockBackend(["hi"])).complete(who="Ann") == "hi"
    assert prompt.with_backend(MockBackend(["hey"])).complete(who="Ann") == "hey"


@pytest.mark.anyio
async def test_a_bare_model_name_fails_async_calls_too(tmp_path: Path) -> None:
    prompt = load_prompt(_write(tmp_path, "---\nmodel: gpt-4o-mini\n---\nHi\n", "hi.prompt"))
    with pytest.raises(ConfigurationError, match="openai:gpt-4o-mini"):
        await prompt.acomplete()
    backend: Any = prompt.backend
    for method in ("complete", "stream", "build_request", "complete_request", "stream_request", "astream"):
        with pytest.raises(ConfigurationError, match="not a backend spec"):
            getattr(backend, method)([Message("user", "Hi")])
    for amethod in ("acomplete", "acomplete_request"):
        with pytest.raises(ConfigurationError, match="not a backend spec"):
            await getattr(backend, amethod)([Message("user", "Hi")])
    assert backend.supported_params == COMMON_PARAMS


def test_an_unknown_model_name_suggests_every_provider(tmp_path: Path) -> None:
    prompt = load_prompt(_write(tmp_path, "---\nmodel: llama3\n---\nHi\n", "hi.prompt"))
    with pytest.raises(ConfigurationError, match=r"openai:llama3.*anthropic:llama3.*openai-compatible:llama3@"):
        prompt.complete()


def test_no_model_loads_a_prompt_without_a_backend(tmp_path: Path) -> None:
    prompt = load_prompt(_write(tmp_path, "---\nname: hi\n---\nHi {{ who }}\n", "hi.prompt"))
    assert isinstance(prompt, Prompt)
    assert prompt.backend is None
    with pytest.raises(ConfigurationError, match="no backend"):
        prompt.complete(who="Ann")


@pytest.mark.parametrize("text", ["model: mock\n---\nHi\n", "name: x\nparams: {temperature: 0}\n---\nHi\n"])
def test_front_matter_without_its_opening_line_warns(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text, "unopened.prompt")
    with pytest.warns(PromptFileWarning, match=r"unopened\.prompt.*'---'"):
        prompt = load_prompt(path, backend=MockBackend(["ok"]))
    assert issubclass(PromptFileWarning, UserWarning)
    assert "---" in prompt.render()[0].content  # sent as text, as the warning says


@pytest.mark.parametrize("text", ["Plain text\n---\nmore\n", "note: not a key\n---\n", "model: mock\nno rule\n"])
def test_text_that_only_resembles_front_matter_does_not_warn(text: str) -> None:
    parse_prompt_file(text, name="plain.prompt")  # filterwarnings=error: any warning fails


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("---\nname: x\nmodel: [unclosed\n---\nhi\n", 4, "malformed front matter"),
        ("---\nname: x\n  bad: indent\n---\nhi\n", 3, "malformed front matter"),
        ("---\nname: x\nmodle: mock\n---\nhi\n", 3, "unknown key"),
        ("---\nname: x\nparams: 3\n---\nhi\n", 3, "params"),
        ("---\nname: x\ninput:\n  a: strng\n---\n{{ a }}\n", 3, "unknown type 'strng'"),
        ("---\noutput: yaml\n---\nhi\n", 2, "unknown parser"),
        ("---\noutput: {type: string}\n---\nhi\n", 2, "object"),
        ("---\nexamples: [1, 2]\n---\nhi\n", 2, "list of mappings"),
        ("---\nname: 3\n---\nhi\n", 2, "must be a string"),
        ("---\nname: x\n", 1, "never closed"),
        ("---\n- a\n- b\n---\nhi\n", 2, "mapping"),
        ("---\nname: x\n---\n\nline one\n{% if %}\n", 6, "invalid template syntax"),
        ('---\nname: x\n---\n{% role "user" %}\n{% endif %}\n{% endrole %}\n', 5, "invalid template syntax"),
    ],
)
def test_malformed_files_give_the_line(tmp_path: Path, text: str, line: int, match: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=match) as info:
        load_prompt(_write(tmp_path, text, "bad.prompt"))
    assert info.value.lineno == line
    assert info.value.template in ("bad.prompt", "x")


def test_missing_variable_line_is_the_file_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "---\nname: greet\n---\nHello\n{{ name }}\n", "greet.prompt")
    template = load_prompt_file(path).template
    with pytest.raises(UndefinedVariableError) as info:
        template.render()
    assert (info.value.template, info.value.lineno) == ("greet", 5)


def test_missing_file_and_nested_output_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_prompt(tmp_path / "absent.prompt")
    text = (
        "---\noutput:\n  type: object\n  properties:\n"
        "    city: {type: object, properties: {name: {type: string}, population: {type: integer}}}\n"
        "    tags: list[str]\n---\nhi\n"
    )
    parser = parse_prompt_file(text).parser
    value = parser.parse('{"city": {"name": "Oslo", "population": "709000"}, "tags": ["cold"]}')
    assert value.city.population == 709000
    assert value.tags == ["cold"]


def test_prompt_files_doc_example_is_a_valid_file() -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "prompt-files.md"
    text = page.read_text(encoding="utf-8")
    # the full example at the top of the page is a valid file
    example = re.search(r"```\n(---\n.*?)```", text, re.S)
    assert example is not None
    parsed = parse_prompt_file(example.group(1), name="summarise.prompt")
    assert parsed.name == "summarise"
    assert parsed.model == "mock"
    assert isinstance(parsed.template, ChatTemplate)
