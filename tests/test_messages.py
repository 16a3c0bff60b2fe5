from __future__ import annotations

import dataclasses

import pytest

from promptkit import Completion, ConfigurationError, ImagePart, Message, TextPart, Usage
from promptkit._messages import coerce_messages


def test_message_is_frozen_and_readable() -> None:
    m = Message("user", "hi")
    assert repr(m) == "Message(role='user', content='hi')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.content = "x"  # type: ignore[misc]
    assert hash(m) == hash(Message("user", "hi"))


def test_message_rejects_unknown_role() -> None:
    with pytest.raises(ConfigurationError, match="invalid message role 'bot'"):
        Message("bot", "hi")  # type: ignore[arg-type]


def test_message_rejects_non_text_content() -> None:
    with pytest.raises(ConfigurationError, match="content must be"):
        Message("user", 42)  # type: ignore[arg-type]


def test_multipart_content() -> None:
    m = Message("user", [TextPart(text="What is "), ImagePart(url="https://x/y.png"), TextPart(text="this?")])  # type: ignore[arg-type]
    assert isinstance(m.content, tuple)
    assert m.text == "What is this?"
    hash(m)


def test_usage_adds_and_totals() -> None:
    total = Usage(input_tokens=3, output_tokens=4) + Usage(input_tokens=1, output_tokens=1)
    assert total == Usage(input_tokens=4, output_tokens=5)
    assert total.total_tokens == 9


def test_usage_adds_its_cache_and_reasoning_parts_and_shows_them_only_when_set() -> None:
    a = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=6, reasoning_tokens=2)
    b = Usage(input_tokens=4, output_tokens=1, cache_write_tokens=3)
    total = a + b
    assert total == Usage(
        input_tokens=14, output_tokens=6, cached_input_tokens=6, cache_write_tokens=3, reasoning_tokens=2
    )
    assert total.total_tokens == 20  # the parts are inside input and output, not added again
    assert repr(Usage(input_tokens=1, output_tokens=2)) == "Usage(input_tokens=1, output_tokens=2)"
    assert repr(b) == "Usage(input_tokens=4, output_tokens=1, cache_write_tokens=3)"


def test_provider_describes_the_call_and_is_left_out_of_comparisons() -> None:
    assert Completion(text="hi", model="m", provider="openai") == Completion(text="hi", model="m")
    assert "provider='openai'" in repr(Completion(text="hi", provider="openai"))


def test_completion_repr_hides_raw() -> None:
    c = Completion(text="Paris", model="m", raw={"secret": "raw-response"})
    assert "raw-response" not in repr(c)
    assert c == Completion(text="Paris", model="m")
    assert "Paris" in c._repr_html_()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hi", [("user", "hi")]),
        (Message("system", "s"), [("system", "s")]),
        (("system", "be brief"), [("system", "be brief")]),
        ([("system", "s"), "q"], [("system", "s"), ("user", "q")]),
        ([{"role": "assistant", "content": "a"}], [("assistant", "a")]),
        (("hello", "world"), [("user", "hello"), ("user", "world")]),
    ],
)
def test_coerce_messages(value: object, expected: list[tuple[str, str]]) -> None:
    assert [(m.role, m.content) for m in coerce_messages(value)] == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([], "must not be empty"),
        ([42], "message 0 must be"),
        ([{"role": "user", "content": "x", "name": "n"}], "unsupported keys: name"),
        ([("robot", "x")], "invalid message role"),
    ],
)
def test_coerce_messages_errors(value: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        coerce_messages(value)  # type: ignore[arg-type]


def test_messages_html_escapes() -> None:
    html = Message("user", "<script>").__class__._repr_html_(Message("user", "<script>"))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_usage_html_shows_the_counts_and_only_the_parts_that_are_set() -> None:
    plain = Usage(input_tokens=1200, output_tokens=34)._repr_html_()
    assert "<b>Usage</b>" in plain
    assert "1,234 tokens" in plain
    assert ">1,200<" in plain
    assert ">34<" in plain
    assert "cached" not in plain
    assert "reasoning" not in plain
    parts = Usage(input_tokens=100, output_tokens=50, cached_input_tokens=80, reasoning_tokens=40)._repr_html_()
    assert "cached input</th><td style='text-align:right'>80<" in parts
    assert "reasoning</th><td style='text-align:right'>40<" in parts
    assert "of the output" in parts
    assert "cache write" not in parts
