"""The strategy seam: plans without I/O that every driver runs the same way."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from promptkit import BackendError, Completion, ParseError, Prompt, ServerError, TextParser, Usage
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


# -- the public strategies ----------------------------------------------------------------------
from pydantic import BaseModel  # noqa: E402

from promptkit import (  # noqa: E402
    ChainOfThought,
    ChoiceParser,
    ConfigurationError,
    JsonParser,
    NumberParser,
    PydanticParser,
    RefineStep,
    Sample,
    SelfConsistency,
    SelfRefine,
    UnsupportedCapabilityError,
)


class Answer(BaseModel):
    label: str


def test_strategies_are_one_argument_and_swap_with_with_strategy() -> None:
    mock = MockBackend(["4", "<reasoning>2 and 2</reasoning><answer>4</answer>"])
    direct = Prompt("2+2?", mock, parser=NumberParser())
    cot = direct.with_strategy(ChainOfThought())
    assert direct.strategy.name == "direct"
    assert cot.strategy.name == "chain_of_thought"
    assert direct.complete() == cot.complete() == 4
    assert "strategy=ChainOfThought()" in repr(cot)
    assert cot.with_strategy(None).strategy.name == "direct"
    with pytest.raises(ConfigurationError, match="strategy must be a Strategy"):
        Prompt("x", mock, strategy="cot")  # type: ignore[call-overload]
    with pytest.raises(AttributeError, match="with_strategy"):
        cot._strategy = Direct()  # type: ignore[misc]


# chain of thought
def test_chain_of_thought_parses_only_the_answer_and_keeps_the_reasoning() -> None:
    reply = '<reasoning>The review says "great", so it is positive.</reasoning>\n<answer>{"label": "pos"}</answer>'
    mock = MockBackend([reply])
    prompt = Prompt("Classify: {{ text }}", mock, parser=PydanticParser(Answer), strategy=ChainOfThought())
    result = prompt.run(text="great")
    assert result.value == Answer(label="pos")
    assert result.reasoning == 'The review says "great", so it is positive.'
    assert result.strategy == "chain_of_thought"
    sent = mock.calls[0].messages[-1].text
    assert sent.index("JSON") < sent.index("<answer>")  # the format instructions come first, then the CoT request
    assert [a.purpose for a in result.attempts] == ["answer"]


def test_chain_of_thought_repairs_a_reply_without_an_answer_section() -> None:
    mock = MockBackend(["I think it is 4.", "<answer>4</answer>"])
    result = Prompt("2+2?", mock, parser=NumberParser(), strategy=ChainOfThought()).run()
    assert result.value == 4
    assert [a.purpose for a in result.attempts] == ["answer", "repair"]
    assert isinstance(result.attempts[0].error, ParseError)
    assert "<answer>" in str(result.attempts[0].error)
    assert "no <answer> section" in mock.calls[1].messages[-1].text
    with pytest.raises(ParseError, match="no <answer> section"):
        Prompt("2+2?", MockBackend(["four"]), repair=0, strategy=ChainOfThought()).run()


def test_chain_of_thought_takes_the_last_answer_and_tolerates_a_missing_close_tag() -> None:
    reply = "<reasoning>maybe <answer>3</answer>? no</reasoning><answer>4"
    assert (
        Prompt("2+2?", MockBackend([reply]), parser=NumberParser(), strategy=ChainOfThought(tag="answer")).complete()
        == 4
    )
    custom = ChainOfThought(tag="final", instruction="Reason, then answer in <{tag}> tags.")
    mock = MockBackend(["ok <final>yes</final>"])
    assert Prompt("Q", mock, strategy=custom).complete() == "yes"
    assert mock.calls[0].messages[-1].text.endswith("Reason, then answer in <final> tags.")
    with pytest.raises(ConfigurationError, match="plain tag name"):
        ChainOfThought(tag="<answer>")


def test_chain_of_thought_with_native_output_reasons_first_then_answers_with_the_schema() -> None:
    mock = MockBackend(["It praises the product.", '{"label": "pos"}'], native_output=True)
    parser = PydanticParser(Answer, mode="native")
    result = Prompt("Classify: {{ text }}", mock, parser=parser, strategy=ChainOfThought()).run(text="great")
    assert result.value == Answer(label="pos")
    assert result.reasoning == "It praises the product."
    thinking, answer = mock.calls
    assert "output_schema" not in thinking.params  # free text: the schema is left out of the reasoning call
    assert answer.params["output_schema"]["name"]
    assert answer.messages[-2].text == "It praises the product."
    assert [a.purpose for a in result.attempts] == ["reasoning", "answer"]


@pytest.mark.anyio
async def test_chain_of_thought_streams_previews_of_the_answer_section_only() -> None:
    from promptkit._strategies._reasoning import SectionOnly

    reply = '<reasoning>The label is "neg"? No: "pos".</reasoning>\n<answer>{"label": "pos"}</answer> trailing'
    prompt = Prompt("Q", MockBackend([reply], chunk_size=3), parser=PydanticParser(Answer), strategy=ChainOfThought())
    stream = prompt.stream()
    previews = list(stream)
    assert previews[-1] == Answer(label="pos")
    assert stream.result.reasoning == 'The label is "neg"? No: "pos".'
    assert all(getattr(p, "label", None) in (None, "p", "po", "pos") for p in previews)
    text = Prompt("Q", MockBackend(["<reasoning>r</reasoning><answer>Hello world</answer>"], chunk_size=2))
    shown = [p async for p in text.with_strategy(ChainOfThought()).astream()]
    assert shown[-1] == "Hello world"
    assert all("reasoning" not in p and "<" not in p for p in shown)
    # the tags may be split across chunks anywhere
    state = SectionOnly(TextParser().stream_state(), "answer")
    out: list[str] = []
    for chunk in ["<ans", "wer>a", "b</an", "swer>c"]:
        out += state.feed(chunk)
    assert out[-1] == "ab"
    assert state.finish() == "ab"


def test_think_blocks_of_reasoning_models_never_reach_the_parser() -> None:
    reply = '<think>The user wants JSON. {"label": "neg"} would be wrong.</think>\n{"label": "pos"}'
    result = Prompt("Classify", MockBackend([reply]), parser=PydanticParser(Answer)).run()
    assert result.value == Answer(label="pos")
    assert result.reasoning is not None
    assert result.reasoning.startswith("The user wants JSON.")
    # servers that strip the opening tag, and chain of thought on a reasoning model
    assert Prompt("Q", MockBackend(["hmm</think>yes"])).complete() == "yes"
    cot = Prompt(
        "Q", MockBackend(["<think>x</think><reasoning>y</reasoning><answer>z</answer>"]), strategy=ChainOfThought()
    )
    result = cot.run()
    assert (result.value, result.reasoning) == ("z", "x\n\ny")
    assert Prompt("Q", MockBackend(["no thoughts"])).run().reasoning is None


def test_reasoning_returned_apart_from_the_text_is_kept() -> None:
    from promptkit import Completion

    result = Prompt("Q", MockBackend([Completion(text="4", reasoning="2+2")])).run()
    assert (result.value, result.reasoning) == ("4", "2+2")


# self-consistency
def test_self_consistency_votes_on_a_scripted_disagreement_and_shows_abstentions() -> None:
    mock = MockBackend(
        [
            MockReply(text="yes", usage=Usage(input_tokens=5, output_tokens=1)),
            MockReply(text="no", usage=Usage(input_tokens=5, output_tokens=1)),
            MockReply(text="perhaps", usage=Usage(input_tokens=5, output_tokens=2)),
            ServerError("boom", provider="mock", status_code=500),
            MockReply(text="yes", usage=Usage(input_tokens=5, output_tokens=1)),
        ]
    )
    prompt = Prompt("Q", mock, parser=ChoiceParser(["yes", "no"]), repair=0, strategy=SelfConsistency(5))
    result = prompt.run()
    assert result.value == "yes"
    assert result.info["votes"] == (("yes", 2), ("no", 1))
    assert result.info["agreement"] == pytest.approx(2 / 5)
    assert result.info["abstentions"] == (2, 3)
    samples = result.info["samples"]
    assert all(isinstance(s, Sample) for s in samples)
    assert [s.value for s in samples] == ["yes", "no", None, None, "yes"]
    assert isinstance(samples[2].error, ParseError)
    assert samples[2].completion is not None
    assert samples[2].completion.text == "perhaps"
    assert isinstance(samples[3].error, ServerError)
    assert samples[3].abstained
    assert result.usage == Usage(input_tokens=20, output_tokens=5)  # every sample's tokens, failed parse included
    assert [r.sample for r in mock.calls] == [0, 1, 2, 3, 4]
    assert len({r.digest for r in mock.calls}) == 5  # a cache never collapses the samples
    assert [a.purpose for a in result.attempts] == ["sample"] * 5
    assert result.completion.text == "yes"


def test_self_consistency_repairs_each_sample_and_ties_go_to_the_first_value() -> None:
    mock = MockBackend(["maybe", "no", "yes", "yes?!"])
    prompt = Prompt("Q", mock, parser=ChoiceParser(["yes", "no"]), repair=1, strategy=SelfConsistency(2))
    result = prompt.run()
    # round one: samples 0 and 1; round two: the repair of sample 0 alone
    assert [(a.purpose, a.sample) for a in result.attempts] == [("sample", 0), ("sample", 1), ("repair", 0)]
    assert result.info["votes"] == (("yes", 1), ("no", 1))
    assert result.value == "yes"  # sample 0's value was seen first


def test_self_consistency_varies_seed_and_temperature_and_refuses_temperature_zero() -> None:
    mock = MockBackend(["a", "a", "b"])
    prompt = Prompt("Q", mock, params={"seed": 10}, strategy=SelfConsistency(3, temperature=0.8))
    assert prompt.complete() == "a"
    assert [r.params["seed"] for r in mock.calls] == [10, 11, 12]
    assert {r.params["temperature"] for r in mock.calls} == {0.8}
    with pytest.raises(ConfigurationError, match="temperature 0"):
        Prompt("Q", mock, params={"temperature": 0}, strategy=SelfConsistency(3))
    with pytest.raises(ConfigurationError, match="temperature 0"):
        Prompt("Q", mock, params={"temperature": 0}).with_strategy(SelfConsistency(3))
    Prompt("Q", mock, params={"temperature": 0}, strategy=SelfConsistency(3, temperature=0.7))
    with pytest.raises(ConfigurationError, match="n must be"):
        SelfConsistency(0)
    with pytest.raises(ConfigurationError, match="temperature for sampling"):
        SelfConsistency(3, temperature=0)


def test_self_consistency_votes_on_models_and_dicts_by_their_json() -> None:
    replies = ['{"label": "pos"}', '{"label": "neg"}', '{"label": "pos"}']
    result = Prompt("Q", MockBackend(replies), parser=PydanticParser(Answer), strategy=SelfConsistency(3)).run()
    assert result.value == Answer(label="pos")
    assert result.info["votes"][0] == (Answer(label="pos"), 2)
    dicts = Prompt(
        "Q", MockBackend(['{"a": [1]}', '{"a": [1]}', "{}"]), parser=JsonParser(), strategy=SelfConsistency(3)
    )
    assert dicts.complete() == {"a": [1]}


def test_self_consistency_with_an_aggregator() -> None:
    from statistics import median

    prompt = Prompt(
        "Q", MockBackend(["1", "10", "4"]), parser=NumberParser(), strategy=SelfConsistency(3, aggregate=median)
    )
    result = prompt.run()
    assert result.value == 4
    assert result.completion.text == "4"
    assert result.info["agreement"] == pytest.approx(1 / 3)


def test_self_consistency_when_no_sample_answers() -> None:
    prompt = Prompt("Q", MockBackend(["x", "y"]), parser=NumberParser(), repair=0, strategy=SelfConsistency(2))
    with pytest.raises(ParseError, match="none of the 2 samples") as info:
        prompt.run()
    assert [c.text for c in info.value.completions] == ["x", "y"]
    failing = Prompt("Q", MockBackend([ServerError("a", provider="mock"), ServerError("b", provider="mock")]))
    with pytest.raises(ServerError, match="a"):
        failing.with_strategy(SelfConsistency(2)).run()


@pytest.mark.anyio
async def test_self_consistency_over_chain_of_thought_async_runs_samples_together() -> None:
    import asyncio

    running = 0
    peak = 0
    answers = iter(
        ["<answer>7</answer>", "<answer>7</answer>", "no answer", "<answer>8</answer>", "<answer>7</answer>"]
    )

    async def reply(messages: Any, params: Any) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return next(answers)

    strategy = SelfConsistency(4, base=ChainOfThought())
    prompt = Prompt("Q", FunctionBackend(reply), parser=NumberParser(), strategy=strategy)
    result = await prompt.arun()
    assert result.value == 7
    assert peak == 4  # the four samples were in flight together; the repair went alone
    assert [(a.purpose, a.sample) for a in result.attempts][-1] == ("repair", 2)
    assert result.info["votes"] == ((7, 3), (8, 1))
    assert repr(strategy) == "SelfConsistency(4, base=ChainOfThought())"
    with pytest.raises(UnsupportedCapabilityError, match="cannot stream"):
        prompt.stream()


# self-refine
def test_self_refine_records_every_step_and_stops_when_the_critic_is_satisfied() -> None:
    mock = MockBackend(["draft", "Fix the tone.", "better", "NO CHANGES"])
    result = Prompt("Write {{ thing }}", mock, strategy=SelfRefine(rounds=3)).run(thing="a slogan")
    assert result.value == "better"
    assert [a.purpose for a in result.attempts] == ["answer", "critique", "revision", "critique"]
    steps = result.info["steps"]
    assert all(isinstance(s, RefineStep) for s in steps)
    assert [(s.draft, s.critique, s.stopped) for s in steps] == [
        ("draft", "Fix the tone.", False),
        ("better", "NO CHANGES", True),
    ]
    assert result.info["stopped_by"] == "critic"
    critique_sent = mock.calls[1].messages[0].text
    assert "user: Write a slogan" in critique_sent
    assert "draft" in critique_sent
    revision = mock.calls[2].messages
    assert [m.role for m in revision] == ["user", "assistant", "user"]
    assert "Fix the tone." in revision[-1].text


def test_self_refine_stops_after_its_rounds_or_an_unchanged_revision() -> None:
    result = Prompt("Q", MockBackend(["a", "worse", "b", "worse", "c"]), strategy=SelfRefine(rounds=2)).run()
    assert (result.value, result.info["stopped_by"], result.info["rounds"]) == ("c", "rounds", 2)
    unchanged = Prompt("Q", MockBackend(["a", "hm", "a"]), strategy=SelfRefine(rounds=5)).run()
    assert (unchanged.value, unchanged.info["stopped_by"]) == ("a", "unchanged")
    by_function = SelfRefine(stop=lambda critique: critique.startswith("LGTM"))
    assert Prompt("Q", MockBackend(["a", "LGTM"]), strategy=by_function).run().info["stopped_by"] == "critic"


def test_self_refine_with_another_critic_backend_or_a_critic_prompt() -> None:
    writer = MockBackend(["v1", "v2"])
    critic = MockBackend(["Too long.", "no changes"])
    result = Prompt("Q", writer, strategy=SelfRefine(critic=critic, rounds=3)).run()
    assert result.value == "v2"
    assert len(writer.calls) == 2
    assert len(critic.calls) == 2
    critic_prompt = Prompt(
        "Critique {{ draft }} for {{ task }}", MockBackend(["NO CHANGES"]), params={"temperature": 0}
    )
    checked = Prompt("Q", MockBackend(["v1"]), strategy=SelfRefine(critic_prompt)).run()
    assert checked.info["steps"][0].critique == "NO CHANGES"
    assert critic_prompt.backend is not None
    assert isinstance(critic_prompt.backend, MockBackend)
    assert critic_prompt.backend.calls[0].params == {"temperature": 0}
    with pytest.raises(ConfigurationError, match="only"):
        SelfRefine("Critique {{ essay }}")
    with pytest.raises(ConfigurationError, match="rounds"):
        SelfRefine(rounds=0)


def test_self_refine_with_native_output_critiques_in_free_text() -> None:
    mock = MockBackend(
        ['{"label": "neu"}', "It is clearly positive.", '{"label": "pos"}', "NO CHANGES"], native_output=True
    )
    parser = PydanticParser(Answer, mode="native")
    result = Prompt("Classify", mock, parser=parser, strategy=SelfRefine()).run()
    assert result.value == Answer(label="pos")
    assert ["output_schema" in r.params for r in mock.calls] == [True, False, True, False]


@pytest.mark.anyio
async def test_self_refine_async() -> None:
    prompt = Prompt("Q", MockBackend(["a", "add detail", "b", "NO CHANGES"]), strategy=SelfRefine())
    assert await prompt.acomplete() == "b"


def test_the_openai_adapter_keeps_reasoning_content() -> None:
    from openai.types.chat import ChatCompletion

    from promptkit.backends.openai import OpenAIBackend

    reply = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "deepseek-r1",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4"},
                }
            ],
        }
    )
    completion = OpenAIBackend(model="deepseek-r1", api_key="k", base_url="http://127.0.0.1:9")._to_completion(reply)
    assert (completion.text, completion.reasoning) == ("4", "2+2 is 4")


@pytest.mark.anyio
async def test_streamed_previews_never_show_a_think_block() -> None:
    from promptkit._strategies._reasoning import SkipThink

    reply = "<think>Plan: greet them.</think>\nHello there"
    previews = list(Prompt("Hi", MockBackend([reply], chunk_size=3)).stream())
    assert previews[-1] == "Hello there"
    assert all("think" not in p and "Plan" not in p for p in previews)
    stream = Prompt("Hi", MockBackend([reply], chunk_size=2)).astream()
    assert [p async for p in stream][-1] == "Hello there"
    assert stream.result.reasoning == "Plan: greet them."
    plain = list(Prompt("Hi", MockBackend(["<b>bold</b> text"], chunk_size=1)).stream())
    assert plain[0] == "<b"  # held only while the reply could still open a think block
    assert plain[-1] == "<b>bold</b> text"
    typed = list(
        Prompt("Hi", MockBackend(['<think>x</think>{"a": [1, 2]}'], chunk_size=4), parser=JsonParser()).stream()
    )
    assert typed[-1] == {"a": [1, 2]}
    state = SkipThink(TextParser().stream_state())
    assert state.feed(" <thi") == []
    assert state.feed("nk>still thinking") == []
    assert state.finish() == ""  # a reply cut inside the block has no answer
    assert SkipThink(TextParser().stream_state()).finish() == ""


# one request drawing n choices
@pytest.mark.anyio
async def test_self_consistency_draws_its_samples_in_one_request_where_the_backend_can() -> None:
    replies = [MockReply(text=t, usage=Usage(input_tokens=10, output_tokens=1)) for t in ["yes", "no", "yes"]]
    mock = MockBackend(replies, max_choices=8)
    prompt = Prompt("Q", mock, parser=ChoiceParser(["yes", "no"]), strategy=SelfConsistency(3, temperature=0.9))
    result = prompt.run()
    assert result.value == "yes"
    assert len(mock.calls) == 1  # one request for three samples
    assert mock.calls[0].params["temperature"] == 0.9
    assert [a.sample for a in result.samples] == [0, 1, 2]
    assert result.usage == Usage(input_tokens=10, output_tokens=3)  # the prompt paid once
    assert [a.usage.output_tokens for a in result.attempts] == [3, 0, 0]
    mock.add(*replies)
    assert (await prompt.arun()).info["votes"] == (("yes", 2), ("no", 1))
    assert len(mock.calls) == 2


def test_a_server_that_draws_fewer_choices_is_asked_for_the_rest() -> None:
    calls = 0

    def rule(request: Any) -> str:
        nonlocal calls
        calls += 1
        return "yes" if calls % 2 else "no"

    class OneChoice(MockBackend):
        """A server that ignores ``n``: one choice, whatever was asked."""

        def complete_choices(self, request: Any, n: int) -> list[Completion]:
            return super().complete_choices(request, 1)

    backend = OneChoice(rule, max_choices=4)
    prompt = Prompt("Q", backend, parser=ChoiceParser(["yes", "no"]), strategy=SelfConsistency(3))
    result = prompt.run()
    assert result.info["votes"] == (("yes", 2), ("no", 1))
    assert [r.sample for r in backend.calls] == [0, 1, 2]  # the n-request, then the two missing samples
    assert [a.sample for a in result.samples] == [0, 1, 2]


def test_a_failed_choices_request_makes_every_sample_abstain_with_its_error() -> None:
    mock = MockBackend([ServerError("down", provider="mock"), "x"], max_choices=4)
    prompt = Prompt("Q", mock, strategy=SelfConsistency(2))
    with pytest.raises(ServerError, match="down"):
        prompt.run()
    assert len(mock.calls) == 1


def test_samples_that_differ_are_not_merged_into_one_request() -> None:
    from promptkit import Message

    class TwoQuestions:
        name = "two"
        streams = False

        def plan(self, context: Context) -> Plan:
            a, _ = yield [
                Call(messages=(Message("user", "one"),), sample=0),
                Call(messages=(Message("user", "two"),), sample=1),
            ]
            assert not isinstance(a, BackendError)
            return Outcome(value=a.text, completion=a)

    mock = MockBackend(["1", "2"], max_choices=4)
    assert Prompt("Q", mock, strategy=TwoQuestions()).complete() == "1"
    assert len(mock.calls) == 2
    with pytest.raises(ConfigurationError, match="max_choices"):
        MockBackend(max_choices=0)
    with pytest.raises(UnsupportedCapabilityError, match="at most 4"):
        mock.complete_choices(mock.build_request("Q"), 5)
    with pytest.raises(UnsupportedCapabilityError, match="one reply per request"):
        FunctionBackend(lambda m, p: "x").complete_choices(mock.build_request("Q"), 2)
