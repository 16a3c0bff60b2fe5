"""Parser speed: a 2 KB fenced reply against pydantic's own validation, and linear scaling.

Part 1 times ``PydanticParser.parse`` on a ~2 KB reply (prose, a fenced ``json`` block, prose)
against the floor ``Model.model_validate_json`` on the bare JSON, and against langchain-core's
``PydanticOutputParser`` on the same reply when it is installed. The target is within 2x of the
floor: the parser also finds the block, checks duplicate keys and NaN, and rejects extra fields.
Rejecting duplicate keys needs a parse of its own (jiter's ``catch_duplicate_keys``, about as costly
as the validation), so the table also shows ``duplicate_keys="last"``, where a valid reply is parsed
exactly once, and the jiter parse alone with and without the check. No exact check written in Python
(a token scan with a regex, or key counts compared against the parsed tree) comes close to jiter's.

Part 2 feeds each parser adversarial replies of 1 MB and 4 MB (a fence followed by spaces, deep
brackets, unterminated strings, many tags...). A linear parser takes about 4x as long on the
larger one; a backtracking regex or a re-scan would take 16x or worse.

Run: ``python benchmarks/parsers.py``
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from typing import Any

import jiter
from pydantic import BaseModel

from promptkit import ParseError
from promptkit._parsers import (
    BoolParser,
    ChoiceParser,
    DateParser,
    JsonParser,
    ListParser,
    NumberParser,
    PydanticParser,
    TextParser,
    XmlTagParser,
)


class Item(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: float
    tags: list[str]


class Order(BaseModel):
    order_id: str
    customer: str
    items: list[Item]
    note: str | None = None


def best(fn: Callable[[], Any], number: int) -> float:
    """Best of 5 repeats, seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def _jiter(text: str, catch: bool) -> Any:
    return jiter.from_json(text.encode(), allow_inf_nan=False, catch_duplicate_keys=catch, cache_mode="keys")


def part1() -> None:
    items = [
        {"sku": f"SKU-{i:04d}", "name": f"widget {i}", "quantity": i, "unit_price": i * 1.25, "tags": ["a", "b"]}
        for i in range(18)
    ]
    bare = json.dumps({"order_id": "A-1", "customer": "Ann", "items": items, "note": None})
    reply = f"Sure! Here is the order:\n\n```json\n{bare}\n```\n\nLet me know if anything else is needed."
    parser = PydanticParser(Order)
    relaxed = PydanticParser(Order, duplicate_keys="last")
    assert parser.parse(reply) == relaxed.parse(reply) == Order.model_validate_json(bare)
    n = 2000
    floor = best(lambda: Order.model_validate_json(bare), n)
    rows = [
        ("floor: Order.model_validate_json(bare)", floor),
        ("PydanticParser(Order).parse(reply)  [default policies]", best(lambda: parser.parse(reply), n)),
        ('  ... duplicate_keys="last" (one pass; NaN still rejected)', best(lambda: relaxed.parse(reply), n)),
        # Where the difference goes: the duplicate-key check is a jiter parse of its own.
        ("  part: jiter parse of the bare JSON, duplicate keys caught", best(lambda: _jiter(bare, True), n)),
        ("  part: jiter parse of the bare JSON, no duplicate check", best(lambda: _jiter(bare, False), n)),
    ]
    try:
        from langchain_core.output_parsers import PydanticOutputParser

        peer = PydanticOutputParser(pydantic_object=Order)
        rows.append(("langchain PydanticOutputParser.parse", best(lambda: peer.parse(reply), n // 4)))
    except ImportError:
        rows.append(("langchain PydanticOutputParser.parse (not installed)", float("nan")))
    print(f"Part 1: a {len(reply)}-char fenced reply ({len(bare)} chars of JSON)\n")
    print(f"{'what':<56}{'us/call':>10}{'x floor':>9}")
    for label, t in rows:
        print(f"{label:<56}{t * 1e6:>10.1f}{t / floor:>9.2f}")


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "fence + spaces": lambda n: "```" + " " * n,
    "open brackets": lambda n: "[" * n,
    "unterminated string": lambda n: '{"a": "' + "x" * n,
    "many fences": lambda n: "```json\n{\n```\n" * (n // 13),
    "open tags": lambda n: "<answer " * (n // 8),
    "quotes and escapes": lambda n: '["' + '\\"' * (n // 2),
    "digits": lambda n: "1," * (n // 2),
    "bullets": lambda n: "- x\n" * (n // 4),
    "and-joined words": lambda n: "x and " * (n // 6),
    "spans, escaped quotes": lambda n: 'x {\\" ' * (n // 6),
    "digits then letter": lambda n: "1" * n + "x",
}


def part2() -> None:
    parsers: list[Any] = [
        TextParser(),
        JsonParser(),
        JsonParser(lenient=True),
        PydanticParser(Order),
        ListParser(),
        ChoiceParser(["yes", "no"]),
        BoolParser(),
        NumberParser(),
        DateParser(),
        XmlTagParser("answer"),
    ]
    small, large = 1_000_000, 4_000_000
    print("\nPart 2: adversarial replies, time(4 MB) / time(1 MB) (4 = linear), worst case per input\n")
    print(f"{'input':<22}{'worst parser':<34}{'1 MB ms':>9}{'4 MB ms':>9}{'ratio':>7}")

    def run(parser: Any, text: str) -> None:
        try:
            parser.parse(text)
        except ParseError:
            pass

    for name, make in ADVERSARIAL.items():
        a, b = make(small), make(large)
        worst = ("", 0.0, 0.0)
        for parser in parsers:
            ta = min(timeit.repeat(lambda p=parser, t=a: run(p, t), number=1, repeat=2))
            tb = min(timeit.repeat(lambda p=parser, t=b: run(p, t), number=1, repeat=2))
            if tb > worst[2]:
                worst = (repr(parser), ta, tb)
        label, ta, tb = worst
        print(f"{name:<22}{label[:33]:<34}{ta * 1e3:>9.1f}{tb * 1e3:>9.1f}{tb / ta:>7.1f}")


if __name__ == "__main__":
    print(f"python {sys.version.split()[0]}\n")
    part1()
    part2()
