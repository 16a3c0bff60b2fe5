from __future__ import annotations

import pytest

from promptkit import Example, ExampleError, FixedSelector, Selector, Template
from promptkit._fewshot import coerce_examples, render_examples


def test_example_fields_and_metadata_are_immutable() -> None:
    e = Example({"input": "a", "output": "b"}, {"source": "x"})
    assert e["input"] == "a"
    assert e.metadata["source"] == "x"
    with pytest.raises(TypeError):
        e.fields["input"] = "z"  # type: ignore[index]
    assert hash(e) == hash(Example({"input": "a", "output": "b"}))


@pytest.mark.parametrize("bad", [{}, "text", {1: "x"}])
def test_bad_examples(bad: object) -> None:
    with pytest.raises(ExampleError):
        Example(bad)  # type: ignore[arg-type]


def test_coerce_examples() -> None:
    examples = coerce_examples([{"q": "1"}, Example({"q": "2"})])
    assert [e["q"] for e in examples] == ["1", "2"]
    with pytest.raises(ExampleError, match="single value"):
        coerce_examples({"q": "1"})
    with pytest.raises(ExampleError, match="example 0"):
        coerce_examples([42])  # type: ignore[list-item]


def test_fixed_selector_is_a_selector() -> None:
    selector = FixedSelector([{"q": "1", "a": "2"}])
    assert isinstance(selector, Selector)
    assert [e["a"] for e in selector.select({"anything": 1})] == ["2"]


def test_render_examples_default_and_template() -> None:
    examples = coerce_examples([{"input": "hi", "output": "hello"}, {"input": "bye", "output": "ciao"}])
    assert render_examples(examples) == "Input: hi\nOutput: hello\n\nInput: bye\nOutput: ciao"
    t = Template("{{ input }} => {{ output }}")
    assert render_examples(examples, t, separator="\n") == "hi => hello\nbye => ciao"
