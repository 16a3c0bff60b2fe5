"""Prompt composes template, examples, parser and backend into one typed call."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from promptkit import (
    ChatTemplate,
    ConfigurationError,
    Message,
    ParseError,
    Prompt,
    PydanticParser,
    TemplateError,
    UndefinedVariableError,
    Usage,
)
from promptkit.testing import MockBackend


class Sentiment(BaseModel):
    label: str
    score: float


def test_plain_string_prompt_returns_text() -> None:
    mock = MockBackend([" Paris \n"])
    prompt = Prompt("Capital of {{ country }}?", mock)
    assert prompt.complete(country="France") == "Paris"
    assert mock.last_request.messages == (Message("user", "Capital of France?"),)


def test_full_slice_with_examples_parser_and_chat_template() -> None:
    template = ChatTemplate(
        [
            ("system", "Classify sentiment.\n{{ format_instructions }}"),
            ("user", "Examples:\n{{ examples }}\n\nText: {{ text }}"),
        ]
    )
    mock = MockBackend(['```json\n{"label": "positive", "score": 0.9}\n```'])
    prompt = Prompt(
        template,
        mock,
        parser=PydanticParser(Sentiment),
        examples=[{"text": "I love it", "label": "positive"}, {"text": "Awful", "label": "negative"}],
        example_template="Text: {{ text }} -> {{ label }}",
        params={"temperature": 0},
    )
    result = prompt.run(text="What a great day")
    assert result.value == Sentiment(label="positive", score=0.9)
    system, user = result.messages
    assert '"label"' in system.text  # the parser's schema reached the prompt
    assert "Text: I love it -> positive\n\nText: Awful -> negative" in user.text
    assert user.text.endswith("Text: What a great day")
    assert [e["label"] for e in result.examples] == ["positive", "negative"]
    assert result.usage == result.completion.usage
    assert isinstance(result.usage, Usage)
    assert mock.last_request.params == {"temperature": 0}
    assert result.text.startswith("```json")
    assert "value" in result._repr_html_()


@pytest.mark.anyio
async def test_async_twins() -> None:
    prompt = Prompt("{{ q }}", MockBackend(["a1", "a2"]))
    assert await prompt.acomplete(q="x") == "a1"
    result = await prompt.arun(q="y")
    assert result.value == "a2"


def test_parse_error_propagates_with_raw_text() -> None:
    prompt = Prompt("{{ q }}", MockBackend(["not json"]), parser=PydanticParser(Sentiment), repair=0)
    with pytest.raises(ParseError) as info:
        prompt.complete(q="x")
    assert info.value.text == "not json"


def test_missing_input_names_variable() -> None:
    with pytest.raises(UndefinedVariableError, match="'country'"):
        Prompt("Capital of {{ country }}?", MockBackend(["x"])).complete()


def test_examples_need_a_place_in_the_template() -> None:
    with pytest.raises(ConfigurationError, match="never uses"):
        Prompt("{{ q }}", MockBackend(), examples=[{"q": "1"}])


def test_reserved_inputs_cannot_be_passed() -> None:
    prompt = Prompt("{{ examples }} {{ q }}", MockBackend(["x"]))
    with pytest.raises(TemplateError, match="filled by the prompt"):
        prompt.complete(q="1", examples="sneaky")


def test_render_previews_without_calling() -> None:
    mock = MockBackend()
    prompt = Prompt("Hi {{ name }}", mock)
    assert prompt.render(name="Ann") == [Message("user", "Hi Ann")]
    assert mock.calls == []
    assert prompt.input_variables == {"name"}


def test_backend_from_spec_and_missing_backend() -> None:
    prompt = Prompt("{{ q }}")
    with pytest.raises(ConfigurationError, match="no backend"):
        prompt.complete(q="x")
    assert prompt.with_backend("mock").backend is not None
    assert Prompt("{{ q }}", "mock").backend is not None


def test_with_variants_leave_original_untouched() -> None:
    mock = MockBackend(['{"label": "neg", "score": 0.1}', "plain"])
    base = Prompt("{{ examples }}{{ q }}", mock)
    typed = base.with_parser(PydanticParser(Sentiment)).with_params(max_tokens=5)
    assert typed.complete(q="x") == Sentiment(label="neg", score=0.1)
    assert mock.last_request.params == {"max_tokens": 5}
    assert base.params == {}
    assert base.with_examples([{"q": "1"}]).render(q="z")[0].content == "Q: 1z"
    assert base.complete(q="y") == "plain"
    assert "Prompt" in repr(base)


def test_with_examples_requires_placeholder() -> None:
    with pytest.raises(ConfigurationError):
        Prompt("{{ q }}").with_examples([{"q": "1"}])


def test_bad_template_type() -> None:
    with pytest.raises(ConfigurationError, match="template must be"):
        Prompt(42)  # type: ignore[call-overload]


def test_notebook_view_shows_the_parts() -> None:
    prompt = Prompt(
        "Classify <review>{{ text }}</review>{{ examples }}",
        MockBackend(),
        parser=PydanticParser(Sentiment),
        examples=[{"text": "<b>great</b>", "label": "pos"}],
        params={"temperature": 0},
    )
    view = prompt._repr_html_()
    assert "PydanticParser(Sentiment)" in view
    assert "temperature=0" in view
    assert "FixedSelector" in view
    assert "text" in view  # the template's variables are shown
    assert "&lt;review&gt;" in view  # the template source is escaped, not interpreted
    assert "<review>" not in view
