"""Parser speed: 2 KB and 50 KB fenced replies against pydantic's own validation, and linear scaling.

Part 1 times ``PydanticParser.parse`` on ~2 KB and ~50 KB replies (prose, a fenced ``json``
block, prose) against the floor ``Model.model_validate_json`` on the bare JSON. The parser also
finds the block and applies its policies (duplicate keys, NaN and overflowing numbers, extra
fields rejected). Validation keeps the last of two equal keys without a word, so rejecting them
takes one full jiter parse with its duplicate check, about as costly as the validation: the
ratio to the floor is about 2. Shapes:

* ``records``: an order of 18 line items (470 in the 50 KB row), values without colons;
* ``records, prose values``: the same order whose names, tags and note hold colons, URLs and
  capitals (340 items in the 50 KB row);
* ``one long text``: two string fields, 1.9 KB of prose. The floor is then about 1 us, so fixed
  costs (finding the block, one scan of the text) dominate the ratio;
* the records with a field validator before or after the items (the validator's own cost).

The ``"last"`` column is ``duplicate_keys="last"``: jiter still parses, without the duplicate check.

Part 2 feeds each parser adversarial replies of 1 MB and 4 MB (a fence followed by spaces, deep
brackets, unterminated strings, many tags...). A linear parser takes about 4x as long on the
larger one; a backtracking regex or a re-scan would take 16x or worse.

Run: ``PYTHONPATH=. python benchmarks/parsers.py [part1] [part2]`` (both by default; the path makes
the checkout's promptkit the one measured)
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from typing import Any

import jiter
from _suite import PeerTime, Row, installed
from _timing import measure
from pydantic import BaseModel, field_validator

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


class CheckedOrder(Order):
    """The same order with a field validator on a field validated before the items."""

    @field_validator("customer")
    @classmethod
    def named(cls, value: str) -> str:
        return value


class LateCheckedOrder(Order):
    """A field validator validated after the items: it could change them, so they are not counted."""

    @field_validator("note")
    @classmethod
    def noted(cls, value: str | None) -> str | None:
        return value


class Summary(BaseModel):
    title: str
    summary: str


def best(fn: Callable[[], Any], number: int) -> float:
    """Best of 7 repeats, seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=7)) / number


def _jiter(text: str, catch: bool) -> Any:
    return jiter.from_json(text.encode(), allow_inf_nan=False, catch_duplicate_keys=catch, cache_mode="keys")


def _order(prose: bool, count: int | None = None) -> str:
    items = [
        {
            "sku": f"SKU-{i:04d}",
            "name": f"Nordic oak shelf, size {i}" if prose else f"widget {i}",
            "quantity": i,
            "unit_price": i * 1.25,
            "tags": ["In stock", f"https://shop.example/p/{i}"] if prose else ["a", "b"],
        }
        for i in range(count if count is not None else 14 if prose else 18)
    ]
    note = "Leave at the door after 18:00. Invoice: see the portal." if prose else None
    return json.dumps({"order_id": "A-1", "customer": "Ann", "items": items, "note": note})


def _fenced(bare: str) -> str:
    return f"Sure! Here is the result:\n\n```json\n{bare}\n```\n\nLet me know if anything else is needed."


def part1() -> None:
    prose = (
        "The quarterly report shows steady growth in the Nordic region. Revenue rose 4% year on year, "
        "while costs fell. Next steps: review pricing at 10:30 on Monday. "
    ) * 12
    shapes: list[tuple[str, type[BaseModel], str]] = [
        ("records", Order, _order(prose=False)),
        ("records, prose values", Order, _order(prose=True)),
        ("one long text", Summary, json.dumps({"title": "Q3 report", "summary": prose[:1900]})),
        ("records, validator before the items", CheckedOrder, _order(prose=False)),
        ("records, validator after the items", LateCheckedOrder, _order(prose=False)),
        ("records, 50 KB", Order, _order(prose=False, count=470)),
        ("records, prose values, 50 KB", Order, _order(prose=True, count=340)),
    ]
    n = 2000
    print("Part 1: PydanticParser.parse of a fenced reply against Model.model_validate_json(bare JSON)\n")
    print(f"{'reply':<34}{'JSON chars':>11}{'floor us':>10}{'parse us':>10}{'x floor':>9}{'last x':>8}")
    for label, model, bare in shapes:
        reply = _fenced(bare)
        parser = PydanticParser(model)
        relaxed = PydanticParser(model, duplicate_keys="last")
        assert parser.parse(reply) == relaxed.parse(reply) == model.model_validate_json(bare)
        k = n if len(bare) < 10_000 else n // 25
        floor = best(lambda m=model, b=bare: m.model_validate_json(b), k)  # type: ignore[misc]
        parsed = best(lambda p=parser, r=reply: p.parse(r), k)  # type: ignore[misc]
        last = best(lambda p=relaxed, r=reply: p.parse(r), k)  # type: ignore[misc]
        print(
            f"{label:<34}{len(bare):>11}{floor * 1e6:>10.1f}{parsed * 1e6:>10.1f}"
            f"{parsed / floor:>9.2f}{last / floor:>8.2f}"
        )
    bare = _order(prose=False)
    floor = best(lambda: Order.model_validate_json(bare), n)
    print("\nFor scale, on the records reply (x floor):")
    rows = [
        ("jiter parse of the bare JSON, duplicate keys caught", best(lambda: _jiter(bare, True), n)),
        ("jiter parse of the bare JSON, no duplicate check", best(lambda: _jiter(bare, False), n)),
    ]
    try:
        from langchain_core.output_parsers import PydanticOutputParser

        peer = PydanticOutputParser(pydantic_object=Order)
        reply = _fenced(bare)
        rows.append(("langchain PydanticOutputParser.parse", best(lambda: peer.parse(reply), n // 4)))
    except ImportError:
        rows.append(("langchain PydanticOutputParser.parse (not installed)", float("nan")))
    for label, t in rows:
        print(f"  {label:<54}{t * 1e6:>8.1f} us{t / floor:>8.2f}")


def _peer_parsers(bare: str, reply: str) -> dict[str, Callable[[], object]]:
    """Each installed peer parsing the same order: the same fenced reply, or the peer's own format."""
    peers: dict[str, Callable[[], object]] = {}
    if installed("langchain_core"):
        from langchain_core.output_parsers import PydanticOutputParser

        lc = PydanticOutputParser(pydantic_object=Order)
        peers["langchain-core"] = lambda: lc.parse(reply)
    if installed("instructor"):
        import openai
        from instructor import Mode
        from instructor.processing.response import process_response

        completion = openai.types.chat.ChatCompletion.model_validate(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            }
        )
        peers["instructor"] = lambda: process_response(
            completion, response_model=Order, stream=False, mode=Mode.MD_JSON
        )
    if installed("dspy"):
        import dspy

        class Extract(dspy.Signature):  # type: ignore[misc]
            message: str = dspy.InputField()
            order: Order = dspy.OutputField()

        adapter = dspy.JSONAdapter()
        wrapped = json.dumps({"order": json.loads(bare)})  # JSONAdapter's own reply format
        assert adapter.parse(Extract, wrapped)["order"] == Order.model_validate_json(bare)
        peers["dspy"] = lambda: adapter.parse(Extract, wrapped)
    return peers


def run(quick: bool) -> list[Row]:
    """The suite's rows: a fenced 2 KB and 50 KB reply into a model, against pydantic and the peers."""
    rows = []
    for count in (None, 470):  # about 2 KB and 50 KB of JSON
        bare = _order(prose=False, count=count)
        reply = _fenced(bare)
        parser = PydanticParser(Order)
        cases: dict[str, Callable[[], object]] = {
            "floor": lambda b=bare: Order.model_validate_json(b),  # type: ignore[misc]
            "promptkit": lambda p=parser, r=reply: p.parse(r),  # type: ignore[misc]
        }
        peers = _peer_parsers(bare, reply)
        cases |= peers
        t = measure(cases, rounds=5 if quick else 15, statistic="median")
        found: dict[str, PeerTime] = {name: t[name] for name in peers}
        for name, module in (("langchain-core", "langchain_core"), ("instructor", "instructor"), ("dspy", "dspy")):
            if not installed(module):
                found[name] = None
        rows.append(
            Row(
                "parse a fenced JSON reply into a pydantic model",
                f"{len(bare) / 1000:.1f} KB of JSON",
                t["promptkit"],
                t["floor"],
                "pydantic model_validate_json, bare JSON",
                found,
                note="langchain PydanticOutputParser and instructor MD_JSON parse the same fenced reply; "
                "dspy JSONAdapter parses its own format, the same order under one key",
            )
        )
    return rows


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
    "quoted commas": lambda n: '"a, b", ' * (n // 8),
    "lone quotes": lambda n: '"a, b, ' * (n // 7),
    "yes and no words": lambda n: "yes no " * (n // 7),
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
    parts = sys.argv[1:] or ["part1", "part2"]
    if "part1" in parts:
        part1()
    if "part2" in parts:
        part2()
