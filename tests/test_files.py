from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from promptkit import (
    ChatTemplate,
    ConfigurationError,
    Message,
    Prompt,
    PydanticParser,
    Template,
    TemplateInputError,
    TemplateSyntaxError,
    TextParser,
    UndefinedVariableError,
)
from promptkit._files import PromptFile, load_prompt, load_prompt_file, parse_prompt_file
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
    value = load_prompt(_write(tmp_path, FULL), backend=backend).complete(document="Long text.")  # type: ignore[union-attr]
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


def test_without_a_backend_the_result_is_a_prompt_file(tmp_path: Path) -> None:
    text = "---\nname: hello\nmodel: gpt-4o\n---\nSay hello to {{ who }}.\n"
    result = load_prompt(_write(tmp_path, text, "hello.prompt"))
    assert isinstance(result, PromptFile)
    assert result.model == "gpt-4o"
    assert isinstance(result.template, Template)
    assert result.template.render(who="Ann") == "Say hello to Ann.\n"
    assert isinstance(result.parser, TextParser)
    prompt = result.to_prompt(MockBackend(["hi"]))
    assert prompt.complete(who="Ann") == "hi"
    assert prompt.render(who="Ann") == [Message("user", "Say hello to Ann.\n")]


def test_no_front_matter_and_includes_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "rules.jinja").write_text("Be kind.")
    path = _write(tmp_path, '{% role "system" %}{% include "rules.jinja" %}{% endrole %}\n', "bare.prompt")
    result = load_prompt(path)
    assert isinstance(result, PromptFile)
    assert result.name == "bare.prompt"
    assert result.template.render() == [Message("system", "Be kind.")]


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
