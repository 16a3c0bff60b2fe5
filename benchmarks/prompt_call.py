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
