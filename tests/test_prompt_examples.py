"""Prompt with few-shot selectors: text blocks, chat turns, the FewShot marker, async and retrieval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from promptkit import ChatTemplate, ConfigurationError, Example, Message, Prompt, Template
from promptkit._embeddings import HashingEmbedder
from promptkit._fewshot import (
    BM25Selector,
    ExamplePool,
    FewShot,
    Selection,
    SemanticSelector,
    TokenBudgetSelector,
)
from promptkit.testing import MockBackend

POOL = [
    {"text": "I love this phone", "label": "positive"},
    {"text": "The battery died after a day", "label": "negative"},
    {"text": "Shipping was quick and the box was intact", "label": "positive"},
    {"text": "Screen cracked, support never answered", "label": "negative"},
]

TURNS = ChatTemplate([("user", "{{ text }}"), ("assistant", "{{ label }}")])


def test_result_examples_carry_scores_and_reasons() -> None:
    selector = SemanticSelector(POOL, k=2, fields=["text"], embedder=HashingEmbedder())
    prompt = Prompt("{{ examples }}\n\nText: {{ text }}", MockBackend(["negative"]), examples=selector)
    result = prompt.run(text="the battery is dead")
    assert isinstance(result.examples, Selection)
    assert result.examples[0]["text"] == "The battery died after a day"
    assert result.examples.scores[0] is not None
    assert result.examples.reasons[0].startswith("cosine")
    assert "Text: The battery died after a day" in result.messages[0].text
    assert prompt.input_variables == {"text"}


def test_plain_examples_still_give_a_selection() -> None:
    prompt = Prompt("{{ examples }}|{{ q }}", MockBackend(["x", "y"]), examples=[{"q": "1"}])
    result = prompt.run(q="2")
    assert result.examples == (Example({"q": "1"}),)
    assert result.examples.selector == "FixedSelector"
    bare = Prompt("{{ q }}", MockBackend(["x"])).run(q="2")
    assert bare.examples == ()
    assert isinstance(bare.examples, Selection)


class ListSelector:
    """A user-written selector: any object with ``select`` returning a list works."""

    def select(self, inputs: Mapping[str, Any]) -> list[Example]:
        return [Example({"q": inputs["q"].upper()})]


def test_a_duck_typed_selector_returning_a_list() -> None:
    prompt = Prompt("{{ examples }}|{{ q }}", MockBackend(["x"]), examples=ListSelector())
    result = prompt.run(q="hi")
    assert result.examples == (Example({"q": "HI"}),)
    assert result.examples.selector == "ListSelector"
    assert result.messages[0].text == "Q: HI|hi"


def test_chat_examples_become_turns_before_the_last_message() -> None:
    mock = MockBackend(["positive"])
    prompt = Prompt(
        ChatTemplate([("system", "Label the sentiment."), ("user", "{{ text }}")]),
        mock,
        examples=POOL[:2],
        example_template=TURNS,
    )
    result = prompt.run(text="Great value")
    assert [(m.role, m.text) for m in result.messages] == [
        ("system", "Label the sentiment."),
        ("user", "I love this phone"),
        ("assistant", "positive"),
        ("user", "The battery died after a day"),
        ("assistant", "negative"),
        ("user", "Great value"),
    ]
    assert mock.last_request.messages == result.messages


def test_chat_examples_with_a_single_template() -> None:
    prompt = Prompt("{{ text }}", MockBackend(["x"]), examples=POOL[:1], example_template=TURNS)
    assert [m.role for m in prompt.render(text="t")] == ["user", "assistant", "user"]


def test_fewshot_marker_places_the_turns() -> None:
    selector = BM25Selector(POOL, k=1, fields=["text"])
    prompt = Prompt(
        [("system", "Label it."), FewShot(TURNS, selector), ("user", "Now: {{ text }}"), ("assistant", "Label:")],
        MockBackend(["negative"]),
    )
    messages = prompt.render(text="support never answered my mail")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[1].text == "Screen cracked, support never answered"
    assert messages[3].text == "Now: support never answered my mail"


def test_fewshot_marker_with_text_examples_makes_one_message() -> None:
    prompt = Prompt(
        [
            ("system", "Label it."),
            FewShot("{{ text }} => {{ label }}", role="system", separator="\n"),
            ("user", "{{ text }}"),
        ],
        MockBackend(["x"]),
        examples=POOL[:2],
    )
    messages = prompt.render(text="meh")
    assert messages[1] == Message("system", "I love this phone => positive\nThe battery died after a day => negative")
    empty = Prompt([FewShot(), ("user", "{{ q }}")], MockBackend(["x"]), examples=[])
    assert [m.role for m in empty.render(q="a")] == ["user"]


def test_fewshot_marker_uses_the_prompts_example_template() -> None:
    prompt = Prompt([FewShot(), ("user", "{{ text }}")], MockBackend(["x"]), examples=POOL[:1], example_template=TURNS)
    assert [m.text for m in prompt.render(text="q")] == ["I love this phone", "positive", "q"]


def test_chat_examples_and_the_examples_variable_conflict() -> None:
    with pytest.raises(ConfigurationError, match="remove"):
        Prompt("{{ examples }} {{ text }}", examples=POOL, example_template=TURNS)
    with pytest.raises(ConfigurationError, match="only one FewShot"):
        Prompt([FewShot(), FewShot(), ("user", "x")])
    with pytest.raises(ConfigurationError, match="FewShot marker"):
        Prompt("{{ text }}", examples=POOL)


def test_with_examples_on_a_chat_prompt() -> None:
    prompt = Prompt([("system", "s"), FewShot(TURNS), ("user", "{{ text }}")], MockBackend(["x"]))
    assert len(prompt.render(text="a")) == 2
    shown = prompt.with_examples(POOL[:1])
    assert len(shown.render(text="a")) == 4
    plain = Prompt("{{ text }}", MockBackend(["x"]))
    with pytest.raises(ConfigurationError):
        plain.with_examples(POOL)


class AsyncOnlySelector:
    """Records which of select/aselect the prompt called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def select(self, inputs: Mapping[str, Any]) -> Selection:
        self.calls.append("select")
        return Selection([Example({"q": "sync"})])

    async def aselect(self, inputs: Mapping[str, Any]) -> Selection:
        self.calls.append("aselect")
        return Selection([Example({"q": "async"})], scores=[1.0])


@pytest.mark.anyio
async def test_arun_uses_aselect() -> None:
    selector = AsyncOnlySelector()
    prompt = Prompt("{{ examples }}|{{ q }}", MockBackend(["x"]), examples=selector)
    result = await prompt.arun(q="z")
    assert selector.calls == ["aselect"]
    assert result.examples[0]["q"] == "async"
    assert result.examples.scores == (1.0,)


@pytest.mark.anyio
async def test_arun_with_semantic_selector() -> None:
    selector = SemanticSelector(POOL, k=1, fields=["text"], embedder=HashingEmbedder())
    prompt = Prompt("{{ examples }}\n{{ text }}", MockBackend(["x", "y"]), examples=selector)
    a = await prompt.arun(text="battery died")
    assert a.examples == prompt.run(text="battery died").examples


def test_retrieval_augmented_prompt_with_a_budget() -> None:
    docs = ExamplePool(
        [
            {"title": "Returns", "body": "Items can be returned within 30 days with the receipt."},
            {"title": "Shipping", "body": "Orders ship in two days; abroad takes a week."},
            {"title": "Warranty", "body": "Phones carry a two year warranty against defects."},
        ]
    )
    passages = TokenBudgetSelector(
        max_tokens=30,
        candidates=SemanticSelector(docs, k=2, fields=["body"], input_keys=["question"], embedder=HashingEmbedder()),
        example_template="[{{ title }}] {{ body }}",
        count=lambda text: len(text.split()),
    )
    prompt = Prompt(
        Template("Answer from these passages only.\n{{ examples }}\n\nQuestion: {{ question }}"),
        MockBackend(["Within 30 days."]),
        examples=passages,
        example_template="[{{ title }}] {{ body }}",
    )
    result = prompt.run(question="Can items be returned after 30 days?")
    assert result.value == "Within 30 days."
    assert result.examples[0]["title"] == "Returns"
    assert "[Returns] Items can be returned" in result.messages[0].text
    assert result.examples.total_tokens is not None
    assert result.examples.total_tokens <= 30


def test_result_html_shows_why_each_example_was_picked() -> None:
    selector = SemanticSelector(POOL, k=1, fields=["text"], embedder=HashingEmbedder())
    result = Prompt("{{ examples }} {{ text }}", MockBackend(["x"]), examples=selector).run(text="battery")
    html = result._repr_html_()
    assert "1 example(s)" in html
    assert "cosine" in html
    assert "example(s)" not in Prompt("{{ text }}", MockBackend(["x"])).run(text="a")._repr_html_()


def test_example_templates_may_show_a_subset_of_fields() -> None:
    pool = [{"text": "ok", "label": "positive", "id": 17, "source": "web"}]
    text = Prompt("{{ examples }}|{{ text }}", MockBackend(["x"]), examples=pool, example_template="{{ text }}")
    assert text.render(text="t")[0].text == "ok|t"
    chat = Prompt("{{ text }}", MockBackend(["x"]), examples=pool, example_template=TURNS)
    assert [m.text for m in chat.render(text="t")] == ["ok", "positive", "t"]
    missing = Prompt("{{ examples }}{{ text }}", MockBackend(["x"]), examples=pool, example_template="{{ nope }}")
    with pytest.raises(Exception, match="nope"):
        missing.render(text="t")
