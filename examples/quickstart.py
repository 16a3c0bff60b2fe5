"""promptkit's main example: a few-shot, typed sentiment classifier, end to end, and then an
evaluation of two prompts on labelled reviews (which is better, by how much, and whether it is
more than noise).

It runs offline on the mock backend. To use a real model, swap the backend for
``promptkit.backend("openai:gpt-4o-mini")`` or ``promptkit.backend("anthropic:claude-sonnet-4-5")``;
nothing else changes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

import promptkit
import promptkit.testing
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

# The mock answers like a model would: prose around a fenced JSON block; then a reply that does
# not validate (so the prompt re-asks); then a streamed reply; then three sampled replies;
# then two replies for a batch.
backend = MockBackend(
    [
        'Sure!\n```json\n{"label": "positive", "confidence": 0.93}\n```',
        '{"label": "mixed", "confidence": 0.5}',
        '{"label": "negative", "confidence": 0.81}',
        '{"label": "neutral", "confidence": 0.64}',
        '{"label": "positive", "confidence": 0.7}',
        '{"label": "neutral", "confidence": 0.55}',
        '{"label": "positive", "confidence": 0.7}',
        '{"label": "negative", "confidence": 0.9}',
        '{"label": "negative", "confidence": 0.9}',
    ],
    chunk_size=8,
)

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

    # An invalid reply ("mixed" is not a label) is sent back with the error; the retry is recorded.
    repaired = classify.run(review="Screen cracked on day one.", params={"temperature": 0})
    print(f"\nRepaired after {len(repaired.attempts)} attempts: {repaired.value!r}")
    for attempt in repaired.attempts:
        print(f"  {attempt.purpose}: {'accepted' if attempt.ok else type(attempt.error).__name__}")
    print(f"  the model was told: {backend.last_request.messages[-1].text[:70]!r}...")
    print(f"  tokens for both attempts: {repaired.usage.input_tokens} in, {repaired.usage.output_tokens} out")

    # Streaming yields typed partial values as the reply arrives, the validated value last.
    print("\nStreaming:")
    stream = classify.stream(review="It is fine, I guess.")
    for preview in stream:
        print(f"  {preview!r}")
    print(f"  usage of the streamed call: {stream.result.usage.output_tokens} tokens out")

    # Another strategy is one argument: three samples at temperature 0.7, and a vote.
    voting = classify.with_strategy(promptkit.SelfConsistency(3, temperature=0.7))
    voted = voting.run(review="Does the job, nothing special, but I would buy it again.")
    print(f"\nSelf-consistency: {voted.value!r}")
    votes = ", ".join(f"{value.label} x{count}" for value, count in voted.info["votes"])
    print(f"  votes: {votes}; agreement {voted.info['agreement']:.0%} over {len(voted.samples)} samples")

    # A batch keeps every item in input order; an item that fails (here, a missing variable)
    # carries its error instead of losing the others.
    batch = classify.batch([{"review": "Awful."}, {}, {"review": "Never again."}], progress=False)
    print(f"\nBatch: {batch.counts['ok']} ok, {batch.counts['failed']} failed")
    for item in batch:
        shown = item.value.label if item.status == "ok" else f"{type(item.error).__name__}"
        print(f"  item {item.index}: {item.status} ({shown})")

    evaluate_two_prompts()


def evaluate_two_prompts() -> None:
    """Which of two prompts is better on labelled data, by how much, and is it more than noise?"""
    reviews = [
        ("Stopped working after a week.", "negative"),
        ("Exactly as described, very happy.", "positive"),
        ("Not bad, not great.", "neutral"),
        ("The charger died, but support sent a new one.", "positive"),
        ("Cheaper elsewhere, and it arrived late.", "negative"),
        ("Fine for the price, I suppose.", "neutral"),
        ("I wanted to love it; the battery says otherwise.", "negative"),
        ("Five stars from my kids, four from me.", "positive"),
    ] * 3
    rows = [{"id": f"r{i}", "review": text, "expected": label} for i, (text, label) in enumerate(reviews)]
    mixed = {text for text, _ in reviews[3:8:2]}  # the tricky ones: a plain prompt misreads them

    def model(messages: tuple[promptkit.Message, ...], params: object) -> str:
        """A stand-in model: right on plain reviews; right on tricky ones only when shown examples."""
        text = messages[-1].text
        review = text.rsplit("Review: ", 1)[-1].split("\n", 1)[0].strip()
        label = dict(reviews)[review]
        if review in mixed and "Sentiment:" not in text:
            label = "neutral" if label != "neutral" else "positive"
        return label

    llm = promptkit.testing.FunctionBackend(model)
    labels = promptkit.ChoiceParser(["positive", "negative", "neutral"])
    variants = {
        "plain": promptkit.Prompt("Sentiment of this review?\nReview: {{ review }}", llm, parser=labels),
        "few-shot": promptkit.Prompt(
            "Sentiment of this review?\n{{ examples }}\nReview: {{ review }}",
            llm,
            parser=labels,
            examples=examples,
            example_template="Review: {{ review }}\nSentiment: {{ label }}",
        ),
    }
    report = promptkit.evaluate(variants, rows, promptkit.ExactMatch(), progress=False)
    print("\nEvaluation:")
    print(report)
    print(report.compare("plain", "few-shot"))


if __name__ == "__main__":
    main()
