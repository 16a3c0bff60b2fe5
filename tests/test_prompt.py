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


# -- a prompt is a value ------------------------------------------------------------------------
def test_a_prompt_cannot_be_changed_in_place() -> None:
    prompt = Prompt("{{ q }}", MockBackend(["a"]))
    with pytest.raises(AttributeError, match="with_parser"):
        prompt.parser = PydanticParser(Sentiment)  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot be changed"):
        del prompt.repair


def test_every_variant_is_validated_like_a_new_prompt() -> None:
    prompt = Prompt("{{ q }}", MockBackend(["a"]))
    with pytest.raises(ConfigurationError, match="repair"):
        prompt.with_repair(-1)
    with pytest.raises(ConfigurationError, match="temperature"):
        prompt.with_params(temperature=7)
    with pytest.raises(ConfigurationError, match="examples"):
        prompt.with_examples([{"q": "1"}])
    with pytest.raises(ConfigurationError, match="template must be"):
        prompt.with_template(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="output_schema"):
        prompt.with_params(output_schema={"name": "x", "schema": {}, "strict": True})  # mock without native output
    assert prompt.with_repair(3).repair == 3
    assert prompt.repair == 1


def test_with_template_keeps_the_other_parts() -> None:
    mock = MockBackend(["a", "b"])
    prompt = Prompt("Q: {{ q }}", mock, params={"max_tokens": 5}, repair=2)
    other = prompt.with_template("Question: {{ q }}")
    assert other.render(q="x")[0].text == "Question: x"
    assert other.params == {"max_tokens": 5}
    assert other.repair == 2
    assert other.backend is prompt.backend
    assert prompt.render(q="x")[0].text == "Q: x"


def test_variants_of_a_prompt_built_from_a_spec_share_one_backend() -> None:
    prompt = Prompt("{{ q }}", "mock")
    assert prompt.with_params(max_tokens=3).backend is prompt.backend


def test_with_examples_none_removes_a_markers_examples() -> None:
    from promptkit import FewShot

    prompt = Prompt([("system", "Be brief"), FewShot(examples=[{"q": "1"}]), ("user", "{{ q }}")])
    assert len(prompt.render(q="x")) == 3
    assert len(prompt.with_examples(None).render(q="x")) == 2


# -- per-call parameters ------------------------------------------------------------------------
def test_per_call_params_lie_over_the_prompts() -> None:
    mock = MockBackend(["a", "b"])
    prompt = Prompt("{{ q }}", mock, params={"temperature": 1.0, "max_tokens": 9})
    assert prompt.complete(q="x", params={"temperature": 0}) == "a"
    assert mock.last_request.params == {"temperature": 0, "max_tokens": 9}
    prompt.run(q="x")
    assert mock.last_request.params == {"temperature": 1.0, "max_tokens": 9}


@pytest.mark.anyio
async def test_per_call_params_on_every_call_method() -> None:
    mock = MockBackend(["a"] * 6)
    prompt = Prompt("{{ q }}", mock)
    calls = [
        lambda: prompt.complete(q="x", params={"seed": 1}),
        lambda: prompt.run(q="x", params={"seed": 2}),
        lambda: list(prompt.stream(q="x", params={"seed": 3})),
    ]
    for call in calls:
        call()
    assert await prompt.acomplete(q="x", params={"seed": 4}) == "a"
    await prompt.arun(q="x", params={"seed": 5})
    assert [v async for v in prompt.astream(q="x", params={"seed": 6})][-1] == "a"
    assert [r.params["seed"] for r in mock.calls] == [1, 2, 3, 4, 5, 6]


def test_a_call_parameter_passed_as_a_variable_is_named() -> None:
    prompt = Prompt("{{ q }}", MockBackend(["a"]))
    with pytest.raises(ConfigurationError, match=r"temperature is a call parameter.*params=\{'temperature': 0\}"):
        prompt.complete(q="x", temperature=0)
    with pytest.raises(ConfigurationError, match="call parameter"):
        prompt.render(q="x", max_tokens=3)
    # a template that really has such a variable keeps it
    assert Prompt("t={{ temperature }}", MockBackend(["a"])).render(temperature=1)[0].text == "t=1"


def test_bad_per_call_params_fail_before_any_call() -> None:
    mock = MockBackend(["a"])
    prompt = Prompt("{{ q }}", mock)
    with pytest.raises(ConfigurationError, match="temperature"):
        prompt.complete(q="x", params={"temperature": -1})
    with pytest.raises(ConfigurationError, match="mapping"):
        prompt.complete(q="x", params=[("temperature", 0)])  # type: ignore[arg-type]
    assert mock.calls == []


def test_params_is_reserved_for_call_parameters() -> None:
    with pytest.raises(ConfigurationError, match="rename the variable"):
        Prompt("{{ params }}")


# -- format instructions ------------------------------------------------------------------------
def test_instructions_are_appended_when_the_template_has_no_place_for_them() -> None:
    parser = PydanticParser(Sentiment)
    prompt = Prompt("Classify: {{ text }}", MockBackend(), parser=parser)
    (message,) = prompt.render(text="great")
    assert message.text == f"Classify: great\n\n{parser.instructions()}"
    assert '"score"' in message.text  # the schema is sent
    placed = Prompt("{{ format_instructions }}\nClassify: {{ text }}", MockBackend(), parser=parser)
    assert placed.render(text="great")[0].text.count(parser.instructions()) == 1
    off = Prompt("Classify: {{ text }}", MockBackend(), parser=parser, append_instructions=False)
    assert off.render(text="great")[0].text == "Classify: great"


def test_instructions_go_to_the_last_user_message_of_a_chat() -> None:
    from promptkit import BoolParser

    chat = ChatTemplate([("system", "Judge."), ("user", "{{ a }}"), ("assistant", "ok"), ("user", "{{ b }}")])
    messages = Prompt(chat, MockBackend(), parser=BoolParser()).render(a="one", b="two")
    assert [m.text for m in messages] == ["Judge.", "one", "ok", "two\n\nReply with yes or no."]
    only_system = Prompt(ChatTemplate([("system", "Judge {{ a }}")]), MockBackend(), parser=BoolParser())
    assert [m.role for m in only_system.render(a="x")] == ["system", "user"]
    with pytest.raises(ConfigurationError, match="append_instructions"):
        Prompt("x", append_instructions="yes")  # type: ignore[call-overload]
