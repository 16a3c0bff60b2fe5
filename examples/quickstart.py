"""promptkit's main example: a few-shot, typed sentiment classifier, end to end.

It runs offline on the mock backend. To use a real model, swap the backend for
``promptkit.backend("openai:gpt-4o-mini")`` or ``promptkit.backend("anthropic:claude-sonnet-4-5")``;
nothing else changes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

import promptkit
from promptkit.testing import MockBackend


class Sentiment(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float


template = promptkit.ChatTemplate(
    [
        ("system", "You classify the sentiment of product reviews.\n{{ format_instructions }}"),
        ("user", "Examples:\n{{ examples }}\n\nReview: {{ review }}"),
    ]
)

examples = [
    {"review": "Arrived early and works perfectly.", "label": "positive"},
    {"review": "Broke after two days.", "label": "negative"},
    {"review": "It is a phone case.", "label": "neutral"},
]

# The mock answers like a model would: prose around a fenced JSON block.
backend = MockBackend(['Sure!\n```json\n{"label": "positive", "confidence": 0.93}\n```'])

classify = promptkit.Prompt(
    template,
    backend,
    parser=promptkit.PydanticParser(Sentiment),
    examples=examples,
    example_template="Review: {{ review }}\nSentiment: {{ label }}",
    params={"temperature": 0},
)


def main() -> None:
    print("promptkit quickstart (offline: answered by promptkit.testing.MockBackend, no API key needed)\n")
    result = classify.run(review="The battery lasts all week, love it.")
    print("Messages sent:")
    for message in result.messages:
        print(f"  [{message.role}] {message.text[:100]!r}{'...' if len(message.text) > 100 else ''}")
    print(f"\nRaw reply: {result.text!r}")
    print(f"Typed value: {result.value!r}")
    assert isinstance(result.value, Sentiment)
    print(f"Usage (mock counts words): {result.usage.input_tokens} in, {result.usage.output_tokens} out")
    print(f"Backend saw {len(backend.calls)} call(s) with params {dict(backend.last_request.params)}")


if __name__ == "__main__":
    main()
