"""Fine-tuning export: chat-format JSONL of a variant's outputs, and preference pairs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from promptkit import (
    ChatTemplate,
    EvalReport,
    EvaluationError,
    ExactMatch,
    ImagePart,
    Message,
    Prompt,
    TextPart,
    evaluate,
    export_chat,
    export_preferences,
)
from promptkit.testing import FunctionBackend, MockBackend


class ChatMessage(BaseModel):
    """One message of the chat fine-tuning format: a role and text content."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class ChatRecord(BaseModel):
    """A supervised fine-tuning record: the conversation, ending with the assistant's target."""

    model_config = ConfigDict(extra="forbid")
    messages: list[ChatMessage] = Field(min_length=2)


class PreferenceRecord(BaseModel):
    """A conversational preference pair: one prompt, a chosen and a rejected assistant turn."""

    model_config = ConfigDict(extra="forbid")
    prompt: list[ChatMessage] = Field(min_length=1)
    chosen: list[ChatMessage] = Field(min_length=1, max_length=1)
    rejected: list[ChatMessage] = Field(min_length=1, max_length=1)


ROWS = [{"id": f"r{n}", "q": f"{n}+{n}?", "expected": str(2 * n)} for n in range(5)]


def adder(wrong: set[int] | frozenset[int] = frozenset()) -> FunctionBackend:
    """Answers 'n+n?' with 2n, and with 2n+1 for the n in ``wrong``."""

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        n = int(messages[-1].text.split("+")[0].split()[-1])
        return str(2 * n + (1 if n in wrong else 0))

    return FunctionBackend(answer)


CHAT = ChatTemplate([("system", "You add numbers."), ("user", "{{ q }}")])


def report_of(wrong_a: set[int], wrong_b: set[int] | None = None) -> EvalReport:
    variants = {"a": Prompt(CHAT, adder(wrong_a))}
    if wrong_b is not None:
        variants["b"] = Prompt("Compute {{ q }}", adder(wrong_b))
    return evaluate(variants, ROWS, ExactMatch(), progress=False)


def test_chat_export_writes_valid_records_with_the_reply_as_the_assistant_turn(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    summary = export_chat(report_of({1, 3}), "a", path, min_score=1.0)
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [ChatRecord.model_validate_json(line) for line in lines]
    assert summary.written == len(records) == 3
    assert summary.path == str(path)
    assert dict(summary.left_out) == {"below threshold": 2}
    first = records[0].messages
    assert [m.role for m in first] == ["system", "user", "assistant"]
    assert first[1].content == "0+0?"
    assert [r.messages[-1].content for r in records] == ["0", "4", "8"]


def test_without_a_threshold_every_ok_row_is_exported_and_metadata_is_opt_in() -> None:
    summary = export_chat(report_of({1}), "a", metadata=True)
    assert summary.written == 5
    assert summary.records[1]["metadata"] == {"row_id": "r1", "variant": "a", "score": 0.0}
    assert "metadata" not in export_chat(report_of({1}), "a").records[0]


def test_target_expected_trains_on_the_gold_answer() -> None:
    summary = export_chat(report_of({0, 1, 2, 3, 4}), "a", target="expected")
    assert [r["messages"][-1]["content"] for r in summary.records] == ["0", "2", "4", "6", "8"]


def test_failed_rows_are_counted_not_dropped_silently() -> None:
    llm = MockBackend(["0", "not a number", "4"])
    from promptkit import NumberParser

    report = evaluate(
        {"a": Prompt("{{ q }}", llm, parser=NumberParser(), repair=0)}, ROWS[:3], ExactMatch(), progress=False
    )
    summary = export_chat(report, "a")
    assert summary.written == 2
    assert dict(summary.left_out) == {"not ok": 1}


def test_another_prompt_renders_the_rows_and_a_loaded_report_needs_one() -> None:
    report = EvalReport.from_json(report_of(set()).to_json())
    with_nothing = export_chat(report, "a")
    assert with_nothing.written == 0
    assert dict(with_nothing.left_out) == {"no messages (pass prompt= to render them)": 5}
    short = Prompt("{{ q }}", MockBackend())
    rendered = export_chat(report, "a", prompt=short)
    assert rendered.records[2]["messages"] == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]


def test_bad_arguments_name_the_problem() -> None:
    report = report_of(set())
    with pytest.raises(EvaluationError, match="no variant 'z'"):
        export_chat(report, "z")
    with pytest.raises(EvaluationError, match="no metric 'f1'"):
        export_chat(report, "a", metric="f1")
    with pytest.raises(EvaluationError, match="target must be"):
        export_chat(report, "a", target="gold")


def test_image_parts_become_typed_content() -> None:
    from promptkit.backends._openai_wire import message_json as message_dict  # the chat format the export writes

    message = Message("user", (TextPart(text="What is this?"), ImagePart(url="https://example.com/cat.png")))
    assert message_dict(message) == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }


def test_preference_pairs_choose_the_better_variant_per_row(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    summary = export_preferences(report_of({1, 2}, {2, 3}), path)
    records = [PreferenceRecord.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # row 1: a wrong, b right; row 3: a right, b wrong; rows 0 and 4 tie, row 2 both wrong.
    assert len(records) == summary.written == 2
    assert dict(summary.left_out) == {"no score difference": 3}
    assert [(r.chosen[0].content, r.rejected[0].content) for r in records] == [("2", "3"), ("6", "7")]
    assert records[0].prompt[0].content == "You add numbers."  # the first variant's conversation


def test_preference_prompt_can_be_a_variant_or_a_prompt() -> None:
    report = report_of({1}, set())
    from_b = export_preferences(report, prompt="b").records[0]
    assert from_b["prompt"] == [{"role": "user", "content": "Compute 1+1?"}]
    rendered = export_preferences(report, prompt=Prompt("Q: {{ q }}", MockBackend())).records[0]
    assert rendered["prompt"] == [{"role": "user", "content": "Q: 1+1?"}]
    with pytest.raises(EvaluationError, match="no variant 'c'"):
        export_preferences(report, prompt="c")


def test_preference_pairs_come_from_epochs_of_one_variant_too() -> None:
    seen: dict[str, int] = {}

    def answer(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        question = messages[-1].text
        seen[question] = seen.get(question, 0) + 1
        right = str(2 * int(question.split("+")[0]))
        return right if seen[question] == 1 else right + "0"  # right the first time, wrong the second

    report = evaluate(
        {"a": Prompt("{{ q }}", FunctionBackend(answer))}, ROWS[1:3], ExactMatch(), epochs=2, progress=False
    )
    summary = export_preferences(report)
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in summary.records] == [
        ("2", "20"),
        ("4", "40"),
    ]


def test_records_are_plain_json() -> None:
    summary = export_chat(report_of(set()), "a")
    assert json.loads(json.dumps(summary.records[0])) == summary.records[0]
