"""What ``Prompt`` adds to one call: rendering, the attempt seam, the result, and parsing.

Run: python benchmarks/prompt_call.py [--rounds R]

The backend is a :class:`promptkit.testing.FunctionBackend` answering at once, so the table shows
promptkit's own cost per call. The floor does the same work by hand: render the template, send
the messages through the same backend's ``complete`` and parse the reply with the same parser.
The ratio is what composing the parts into a ``Prompt`` costs on top (the attempt records, the
``Result``, the examples slot). A real call waits hundreds of milliseconds on the network.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from _suite import PeerTime, Row, installed
from _timing import measure
from pydantic import BaseModel

from promptkit import Prompt, PydanticParser, Template, TextParser
from promptkit.testing import FunctionBackend


class Verdict(BaseModel):
    label: str
    confidence: float
    reasons: list[str]


REPLY = '```json\n{"label": "spam", "confidence": 0.93, "reasons": ["a prize", "a link", "urgency"]}\n```'
SOURCE = "Is this message spam?\n\n{{ message }}\n\n{{ format_instructions }}"
INPUTS = {"message": "You won a prize! Click here before midnight to claim it."}


def _peers(loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], object]]:
    """The same typed call in each installed peer, on its own instant test model, same reply."""
    peers: dict[str, Callable[[], object]] = {}
    question = "Is this message spam?\n\n{message}\n\n{format_instructions}"
    if installed("langchain_core"):
        from langchain_core.language_models.fake_chat_models import FakeListChatModel
        from langchain_core.output_parsers import PydanticOutputParser
        from langchain_core.prompts import ChatPromptTemplate

        parser = PydanticOutputParser(pydantic_object=Verdict)
        chain = ChatPromptTemplate.from_template(question) | FakeListChatModel(responses=[REPLY]) | parser
        extra = {"format_instructions": parser.get_format_instructions()}
        peers["langchain-core"] = lambda: chain.invoke({**INPUTS, **extra})
    if installed("pydantic_ai"):
        from pydantic_ai import Agent, PromptedOutput
        from pydantic_ai.messages import ModelResponse, TextPart
        from pydantic_ai.models.function import FunctionModel

        agent = Agent(
            FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart(REPLY)])),
            output_type=PromptedOutput(Verdict),
        )
        ask = question.split("\n\n{format", maxsplit=1)[0]  # PromptedOutput adds its own schema instructions
        peers["pydantic-ai (run_sync)"] = lambda: agent.run_sync(ask.format(**INPUTS))
        peers["pydantic-ai (run)"] = lambda: loop.run_until_complete(agent.run(ask.format(**INPUTS)))
    if installed("dspy"):
        import dspy
        from dspy.utils.dummies import DummyLM

        class Classify(dspy.Signature):  # type: ignore[misc]
            """Is this message spam?"""

            message: str = dspy.InputField()
            verdict: Verdict = dspy.OutputField()

        answer = REPLY.removeprefix("```json\n").removesuffix("\n```")
        dspy.configure(lm=DummyLM([{"verdict": answer}] * 1_000_000))
        predict = dspy.Predict(Classify)
        peers["dspy"] = lambda: predict(message=INPUTS["message"]).verdict
    return peers


def run(quick: bool) -> list[Row]:
    """The suite's rows: a typed and a text call on an instant backend, against by hand and the peers."""
    backend = FunctionBackend(lambda messages, params: REPLY)
    typed_parser = PydanticParser(Verdict)
    template = Template(SOURCE)
    typed = Prompt(SOURCE, backend, parser=typed_parser)
    text = Prompt(SOURCE, backend, parser=TextParser())
    instructions = typed_parser.instructions()

    def by_hand(parser: Any, extra: str) -> Callable[[], object]:
        def call() -> object:
            rendered = template.render(**INPUTS, format_instructions=extra)
            return parser.parse(backend.complete(rendered, temperature=0).text)

        return call

    loop = asyncio.new_event_loop()
    peers = _peers(loop)
    cases: dict[str, Callable[[], object]] = {
        "typed floor": by_hand(typed_parser, instructions),
        "typed": lambda: typed.complete(**INPUTS),
        "text floor": by_hand(TextParser(), ""),
        "text": lambda: text.complete(**INPUTS),
    }
    t = measure(cases | peers, rounds=5 if quick else 15, budget=0.05, statistic="median")
    loop.close()
    found: dict[str, PeerTime] = {name: t[name] for name in peers}
    for name, module in (("langchain-core", "langchain_core"), ("pydantic-ai", "pydantic_ai"), ("dspy", "dspy")):
        if not installed(module):
            found[name] = None
    return [
        Row(
            "Prompt.complete, typed: render, call, parse into a model",
            "1 message, 3-field model",
            t["typed"],
            t["typed floor"],
            "render + complete + parse by hand",
            found,
            note="instant in-process backend in every library: FunctionBackend, FakeListChatModel, FunctionModel, "
            "DummyLM; the same reply",
        ),
        Row(
            "Prompt.complete, text",
            "1 message",
            t["text"],
            t["text floor"],
            "render + complete by hand",
            note="instant in-process backend",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    backend = FunctionBackend(lambda messages, params: REPLY)
    typed_parser = PydanticParser(Verdict)
    template = Template(SOURCE)
    typed = Prompt(SOURCE, backend, parser=typed_parser)
    text = Prompt(SOURCE, backend, parser=TextParser())
    instructions = typed_parser.instructions()
    loop = asyncio.new_event_loop()

    def by_hand(parser: Any, extra: str) -> Callable[[], object]:
        def call() -> object:
            rendered = template.render(**INPUTS, format_instructions=extra)
            return parser.parse(backend.complete(rendered, temperature=0).text)

        return call

    cases: dict[str, Callable[[], object]] = {
        "typed: by hand (floor)": by_hand(typed_parser, instructions),
        "typed: Prompt.complete": lambda: typed.complete(**INPUTS),
        "typed: Prompt.acomplete": lambda: loop.run_until_complete(typed.acomplete(**INPUTS)),
        "text: by hand (floor)": by_hand(TextParser(), ""),
        "text: Prompt.complete": lambda: text.complete(**INPUTS),
        "text: Prompt.stream": lambda: list(text.stream(**INPUTS)),
    }
    best = measure(cases, rounds=args.rounds, budget=0.05)
    print(f"{'case':28} {'per call':>12} {'x floor':>8}")
    for name, seconds in best.items():
        floor = best[f"{name.split(':')[0]}: by hand (floor)"]
        print(f"{name:28} {seconds * 1e6:9.1f} us {seconds / floor:8.2f}")
    loop.close()


if __name__ == "__main__":
    main()
