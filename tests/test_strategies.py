"""The strategy seam: plans without I/O that every driver runs the same way."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from promptkit import BackendError, ParseError, Prompt, ServerError, Usage
from promptkit._strategies import Call, Context, Direct, Outcome, Plan, ask, repair_messages
from promptkit.testing import FunctionBackend, MockBackend, MockReply


class Vote:
    """A toy self-consistency: n samples sent as one group, the majority wins."""

    name = "vote"
    streams = False

    def __init__(self, n: int) -> None:
        self.n = n

    def plan(self, context: Context) -> Plan:
        replies = yield [Call(messages=context.messages, sample=i, purpose="sample") for i in range(self.n)]
        values: list[Any] = []
        for reply in replies:
            if isinstance(reply, BackendError):
                continue
            try:
                values.append(context.parse(reply))
            except ParseError:
                continue
        (winner, count), *_ = Counter(values).most_common(1)
        chosen = next(r for r in replies if not isinstance(r, BackendError) and r.text.strip() == winner)
        return Outcome(
            value=winner, completion=chosen, info={"votes": dict(Counter(values)), "agreement": count / self.n}
        )


class Nothing:
    """A plan that needs no call."""

    name = "nothing"
    streams = True

    def plan(self, context: Context) -> Plan:
        from promptkit import Completion

        return Outcome(value="fixed", completion=Completion(text="fixed"))
        yield  # pragma: no cover - makes this a generator


def _with(prompt: Prompt[Any], strategy: Any) -> Prompt[Any]:
    replaced: Prompt[Any] = prompt._replace(strategy=strategy)
    return replaced


def test_a_group_strategy_runs_on_the_sync_driver() -> None:
    from promptkit import ChoiceParser

    mock = MockBackend(["yes", "no", "yes", "maybe?", ServerError("boom", provider="mock", status_code=500)])
    prompt = _with(Prompt("Q: {{ q }}", mock, parser=ChoiceParser(["yes", "no"]), repair=0), Vote(5))
    result = prompt.run(q="x")
    assert result.value == "yes"
    assert result.strategy == "vote"
    assert result.info["votes"] == {"yes": 2, "no": 1}
    assert [a.sample for a in result.samples] == [0, 1, 2, 3, 4]
    assert [r.sample for r in mock.calls] == [0, 1, 2, 3, 4]  # each sample is its own request
    assert isinstance(result.attempts[3].error, ParseError)  # an unparseable sample is kept, with why
    assert isinstance(result.attempts[4].error, ServerError)  # so is a failed call
    assert result.attempts[4].usage == Usage()
    with pytest.raises(Exception, match="cannot stream"):
        prompt.stream(q="x")


@pytest.mark.anyio
async def test_a_group_strategy_runs_concurrently_on_the_async_driver() -> None:
    import asyncio

    from promptkit import ChoiceParser

    running = 0
    peak = 0
    answers = iter(["no", "yes", "yes"])

    async def reply(messages: Any, params: Any) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return next(answers)

    prompt = _with(Prompt("Q: {{ q }}", FunctionBackend(reply), parser=ChoiceParser(["yes", "no"])), Vote(3))
    result = await prompt.arun(q="x")
    assert result.value == "yes"
    assert result.info["agreement"] == pytest.approx(2 / 3)
    assert peak == 3  # the three samples were in flight together


@pytest.mark.anyio
async def test_errors_that_guard_tests_are_never_taken_as_replies() -> None:
    from promptkit import ScriptExhaustedError

    prompt = _with(Prompt("{{ q }}", MockBackend(["a"])), Vote(2))
    with pytest.raises(ScriptExhaustedError):
        prompt.run(q="x")
    with pytest.raises(ScriptExhaustedError):
        await _with(Prompt("{{ q }}", MockBackend(["a"])), Vote(2)).arun(q="x")


@pytest.mark.anyio
async def test_a_plan_without_calls() -> None:
    prompt = _with(Prompt("{{ q }}", MockBackend()), Nothing())
    assert prompt.complete(q="x") == "fixed"
    assert await prompt.acomplete(q="x") == "fixed"
    assert list(prompt.stream(q="x")) == ["fixed"]
    assert prompt.run(q="x").attempts == ()


def test_ask_reasks_then_gives_up_with_every_reply() -> None:
    from promptkit import Completion

    def parse(completion: Completion) -> int:
        try:
            return int(completion.text)
        except ValueError as exc:
            raise ParseError("not a number", text=completion.text) from exc

    context = Context(messages=(), parse=parse, repair=1)
    steps = ask(context, ())
    first = next(steps)
    assert (first.purpose, first.stream) == ("answer", True)
    second = steps.send(Completion(text="x"))
    assert (second.purpose, second.stream) == ("repair", False)
    assert second.messages[-2].text == "x"
    with pytest.raises(ParseError, match="after 2 attempts") as info:
        steps.send(Completion(text="y"))
    assert info.value.attempts == ["x", "y"]


def test_repair_messages_quote_the_bad_reply_and_the_error() -> None:
    from promptkit import Completion, Message

    messages = repair_messages((Message("user", "hi"),), Completion(text="oops"), ParseError("bad", text="oops"))
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert "bad" in messages[-1].text


def test_direct_is_the_default() -> None:
    assert repr(Direct()) == "Direct()"
    result = Prompt("{{ q }}", MockBackend([MockReply(text="a")])).run(q="x")
    assert result.strategy == "direct"
