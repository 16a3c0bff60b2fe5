"""What a strategy step costs on top of a plain ``complete()``, per model call.

Run: python benchmarks/strategies.py [--rounds R]

The backend is a :class:`promptkit.testing.FunctionBackend` answering at once, so the table shows
promptkit's own cost. The floor is the direct ask (``Prompt.complete`` with the default strategy,
one model call); each strategy row shows its time per prompt call, how many model calls it made,
and its time per model call against the floor. A real model call waits hundreds of milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from _suite import Row
from _timing import measure

from promptkit import ChainOfThought, ChoiceParser, Message, Prompt, SelfConsistency, SelfRefine

SOURCE = "Is this message spam? Answer spam or ham.\n\n{{ message }}"
INPUTS = {"message": "You won a prize! Click here before midnight to claim it."}


def reply(messages: Sequence[Message], params: Any) -> str:
    last = messages[-1].text
    if last.startswith("Review a draft"):
        return "NO CHANGES"
    if "<answer>" in last:
        return "<reasoning>A prize, a link and a deadline: classic spam.</reasoning>\n<answer>spam</answer>"
    return "spam"


def run(quick: bool) -> list[Row]:
    """The suite's rows: each strategy's time per model call against the direct ask."""
    from promptkit.testing import FunctionBackend

    base = Prompt(SOURCE, FunctionBackend(reply), parser=ChoiceParser(["spam", "ham"]))
    variants: dict[str, Prompt[str]] = {
        "chain of thought": base.with_strategy(ChainOfThought()),
        "self-consistency n=5": base.with_strategy(SelfConsistency(5, temperature=0.7)),
        "self-refine, stops at once": base.with_strategy(SelfRefine()),
    }
    calls = {name: len(prompt.run(**INPUTS).attempts) for name, prompt in variants.items()}
    cases: dict[str, Callable[[], object]] = {"direct": lambda: base.complete(**INPUTS)}
    cases |= {name: (lambda p=prompt: p.complete(**INPUTS)) for name, prompt in variants.items()}
    t = measure(cases, rounds=5 if quick else 15, budget=0.02 if quick else 0.05, statistic="median")
    return [
        Row(
            f"strategy {name}, per model call",
            f"{calls[name]} model call{'s' if calls[name] > 1 else ''}",
            t[name] / calls[name],
            t["direct"],
            "direct ask (Prompt.complete), one model call",
            note="instant FunctionBackend: promptkit's own cost",
        )
        for name in variants
    ]


def main() -> None:
    from promptkit.testing import FunctionBackend

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    backend = FunctionBackend(reply)
    base = Prompt(SOURCE, backend, parser=ChoiceParser(["spam", "ham"]))
    loop = asyncio.new_event_loop()
    variants: dict[str, Prompt[str]] = {
        "direct (floor)": base,
        "chain of thought": base.with_strategy(ChainOfThought()),
        "self-consistency n=5": base.with_strategy(SelfConsistency(5, temperature=0.7)),
        "self-refine, stops at once": base.with_strategy(SelfRefine()),
    }
    calls = {name: len(prompt.run(**INPUTS).attempts) for name, prompt in variants.items()}
    cases: dict[str, Callable[[], object]] = {}
    for name, prompt in variants.items():
        cases[f"{name}: complete"] = lambda p=prompt: p.complete(**INPUTS)
        cases[f"{name}: acomplete"] = lambda p=prompt: loop.run_until_complete(p.acomplete(**INPUTS))
    best = measure(cases, rounds=args.rounds, budget=0.05)
    print(f"{'strategy':44} {'per prompt call':>16} {'model calls':>12} {'per model call':>15} {'x floor':>8}")
    for case, seconds in best.items():
        name, how = case.split(": ")
        floor = best[f"direct (floor): {how}"]
        per_call = seconds / calls[name]
        print(f"{case:44} {seconds * 1e6:13.1f} us {calls[name]:12d} {per_call * 1e6:12.1f} us {per_call / floor:8.2f}")
    loop.close()


if __name__ == "__main__":
    main()
