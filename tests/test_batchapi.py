"""Prompt.submit_batch and BatchJob against the local provider server, through the real SDK clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptkit import (
    BatchCancelledError,
    BatchExpiredError,
    BatchJob,
    BatchLimits,
    ChainOfThought,
    ConfigurationError,
    JsonParser,
    ParseError,
    Price,
    Prompt,
    SelfConsistency,
    ServerError,
    UnsupportedCapabilityError,
    Usage,
    cost_of,
    set_price,
)
from promptkit._errors import BackendTimeoutError
from promptkit.backends._retry import RetryPolicy
from promptkit.testing import BatchScript, FunctionBackend, MockBackend, ProviderServer, RecordedRequest, ServerReply

pytest.importorskip("openai")
pytest.importorskip("anthropic")
from promptkit.backends.anthropic import AnthropicBackend
from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

ROOT = Path(__file__).resolve().parent.parent
FAST = RetryPolicy(max_attempts=2, backoff=0.01, max_backoff=0.05, deadline=60.0)
OPENAI_MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
HOUSE = Price(input=1, output=2)  # an OpenAI-compatible server has no table price: ours


def _last_text(request: RecordedRequest) -> str:
    content = request.body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[-1]["text"]


def echo(request: RecordedRequest) -> str:
    """Each item's reply: its last user message, upper-cased (so a result shows its input)."""
    return _last_text(request).upper()


def no_wait(_: float) -> None:
    pass


_OPEN: list[OpenAIBackend | AnthropicBackend] = []  # closed when the test's server stops


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    set_price(OPENAI_MODEL, HOUSE, provider="openai-compatible")
    try:
        with ProviderServer(rule=echo) as s:
            yield s
            while _OPEN:
                _OPEN.pop().close()
    finally:
        set_price(OPENAI_MODEL, None, provider="openai-compatible")


def openai_llm(server: ProviderServer) -> OpenAIBackend:
    made = OpenAIBackend(model=OPENAI_MODEL, base_url=server.openai_base_url, api_key="test", retry=FAST)
    _OPEN.append(made)
    return made


def claude_llm(server: ProviderServer) -> AnthropicBackend:
    made = AnthropicBackend(model=CLAUDE, base_url=server.anthropic_base_url, api_key="test", retry=FAST)
    _OPEN.append(made)
    return made


@pytest.fixture(params=["openai", "anthropic"])
def llm(request: pytest.FixtureRequest, server: ProviderServer) -> OpenAIBackend | AnthropicBackend:
    return openai_llm(server) if request.param == "openai" else claude_llm(server)


def standard_cost(usage: Usage, llm: OpenAIBackend | AnthropicBackend) -> float:
    if isinstance(llm, OpenAIBackend):
        return HOUSE.cost(usage)
    cost = cost_of(usage, CLAUDE, "anthropic")
    assert cost is not None
    return cost


# -- the whole path, at size ----------------------------------------------------------------------
def test_ten_thousand_items_come_back_in_input_order_at_the_batch_discount(
    server: ProviderServer, llm: OpenAIBackend | AnthropicBackend
) -> None:
    n = 10_000
    prompt = Prompt("say {{ n }}", llm)
    job = prompt.submit_batch([{"n": i} for i in range(n)])
    assert len(job.batch_ids) == 1  # within one provider batch's limits
    result = job.wait(sleep=no_wait)
    assert result.values == [f"SAY {i}" for i in range(n)]
    assert [item.index for item in result] == list(range(n))
    first = result[0]
    assert first.result is not None
    assert first.result.completion.batch
    assert first.usage == Usage(input_tokens=2, output_tokens=2)
    assert first.cost == pytest.approx(standard_cost(first.usage, llm) / 2)
    assert result.cost == pytest.approx(sum(standard_cost(item.usage, llm) for item in result) / 2)
    items = [r for r in server.requests if r.batch is not None]
    assert len(items) == n  # every item answered once, by the server's own reply machinery


def test_requests_are_the_bodies_a_single_call_sends(
    server: ProviderServer, llm: OpenAIBackend | AnthropicBackend
) -> None:
    prompt = Prompt(
        [("system", "Be brief."), ("user", "say {{ n }}")], llm, params={"temperature": 0.5, "max_tokens": 9}
    )
    prompt.complete(n=1)
    single = server.requests[-1].body
    prompt.submit_batch([{"n": 1}]).wait(sleep=no_wait)
    item = next(r for r in server.requests if r.batch is not None).body
    assert item == single


def test_ten_thousand_items_survive_a_restart_before_collecting(server: ProviderServer, tmp_path: Path) -> None:
    n = 10_000

    def rule(request: RecordedRequest) -> ServerReply | str:
        i = int(_last_text(request).split()[1])
        return ServerReply.error(400, message=f"item {i} refused") if i % 1000 == 7 else f"SAY {i}"

    server.rule = rule
    saved = tmp_path / "job.json"
    for provider in ("openai", "anthropic"):
        server.batches.script(BatchScript(polls=2))
        llm = openai_llm(server) if provider == "openai" else claude_llm(server)
        job = Prompt("say {{ n }}", llm).submit_batch([{"n": i} for i in range(n)], save=saved)
        assert job.status().state == "in_progress"
        del job  # collected by another process, from the saved file alone
        script = f"""
import json, sys
from promptkit import Prompt, set_price, Price
from promptkit.backends.{provider} import {type(llm).__name__}
from promptkit._batchapi import BatchJob
set_price("{OPENAI_MODEL}", Price(input=1, output=2), provider="openai-compatible")
with {type(llm).__name__}(model="{llm.model}", base_url="{llm.base_url}", api_key="test") as llm:
    result = BatchJob.load(sys.argv[1], Prompt("say {{{{ n }}}}", llm)).wait(sleep=lambda s: None)
print(json.dumps({{
    "values": result.values,
    "failed": [[item.index, type(item.error).__name__, str(item.error)] for item in result.failed],
    "cost": result.cost,
}}))
"""
        out = subprocess.run(
            [sys.executable, "-c", script, str(saved)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert out.returncode == 0, out.stderr
        collected = json.loads(out.stdout.strip().splitlines()[-1])
        refused = [i for i in range(n) if i % 1000 == 7]
        assert collected["values"] == [f"SAY {i}" for i in range(n) if i not in refused]
        assert [index for index, _, _ in collected["failed"]] == refused
        assert all(kind == "BadRequestError" and "refused" in text for _, kind, text in collected["failed"])
        ok = n - len(refused)
        expected = ok * standard_cost(Usage(input_tokens=2, output_tokens=2), llm) / 2
        assert collected["cost"] == pytest.approx(expected)


def test_a_restarted_job_parses_typed_values(server: ProviderServer, tmp_path: Path) -> None:
    server.rule = lambda request: json.dumps({"n": int(_last_text(request).split()[1])})
    llm = openai_llm(server)
    prompt = Prompt("say {{ n }}", llm, parser=JsonParser(), append_instructions=False)
    server.batches.script(BatchScript(polls=1))
    prompt.submit_batch([{"n": i} for i in range(20)], save=tmp_path / "job.json")
    resumed = BatchJob.load(tmp_path / "job.json", prompt)  # a fresh job object, as in another process
    result = resumed.wait(sleep=no_wait)
    assert result.values == [{"n": i} for i in range(20)]
    again = BatchJob.load(tmp_path / "job.json", prompt)  # collected rounds are read again
    assert again.done
    assert again.results().values == result.values


def test_resuming_with_a_different_prompt_is_refused(server: ProviderServer, tmp_path: Path) -> None:
    llm = openai_llm(server)
    server.batches.script(BatchScript(polls=5))
    Prompt("say {{ n }}", llm).submit_batch([{"n": 1}, {"n": 2}], save=tmp_path / "job.json")
    with pytest.raises(ConfigurationError, match="another prompt"):
        BatchJob.load(tmp_path / "job.json", Prompt("shout {{ n }}", llm))
    with pytest.raises(ConfigurationError, match="another prompt"):
        BatchJob.load(tmp_path / "job.json", Prompt("say {{ n }}", llm, params={"temperature": 1}))
    with pytest.raises(ConfigurationError, match="another prompt"):
        BatchJob.load(tmp_path / "job.json", Prompt("say {{ n }}", llm, parser=JsonParser()))
    assert BatchJob.load(tmp_path / "job.json", Prompt("say {{ n }}", llm)).status().round == 1


# -- failures -------------------------------------------------------------------------------------
def test_a_partly_failed_batch_reports_the_failed_items(
    server: ProviderServer, llm: OpenAIBackend | AnthropicBackend
) -> None:
    def rule(request: RecordedRequest) -> ServerReply | str:
        n = int(_last_text(request).split()[1])
        return ServerReply.error(500, message=f"item {n} broke") if n % 3 == 0 else f"ok {n}"

    server.rule = rule
    result = Prompt("say {{ n }}", llm).submit_batch([{"n": i} for i in range(9)]).wait(sleep=no_wait)
    assert [item.index for item in result.failed] == [0, 3, 6]
    assert all(isinstance(e, ServerError) and "broke" in str(e) for e in result.errors)
    assert result.values == [f"ok {i}" for i in range(9) if i % 3]
    assert result.failed[0].cost == 0.0


def test_an_expired_batch_fails_the_items_it_did_not_run(
    server: ProviderServer, llm: OpenAIBackend | AnthropicBackend
) -> None:
    server.batches.script(BatchScript(polls=1, expire=True, processed=2))
    result = Prompt("say {{ n }}", llm).submit_batch([{"n": i} for i in range(5)]).wait(sleep=no_wait)
    assert result.values == ["SAY 0", "SAY 1"]
    assert [item.index for item in result.failed] == [2, 3, 4]
    assert all(isinstance(e, BatchExpiredError) for e in result.errors)
    assert "expired" in str(result.errors[0])


def test_a_cancelled_job_ends_its_items_cancelled(
    server: ProviderServer, llm: OpenAIBackend | AnthropicBackend
) -> None:
    server.batches.script(BatchScript(polls=10))
    job = Prompt("say {{ n }}", llm).submit_batch([{"n": i} for i in range(3)])
    job.cancel()
    result = job.wait(sleep=no_wait)
    assert result.counts["cancelled"] == 3
    assert all(isinstance(item.error, BatchCancelledError) for item in result.cancelled)


def test_a_failed_provider_batch_fails_its_items_with_the_providers_reason(server: ProviderServer) -> None:
    server.batches.openai_max_requests = 2  # the server refuses what its limit does not allow
    result = Prompt("say {{ n }}", openai_llm(server)).submit_batch([{"n": i} for i in range(3)]).wait(sleep=no_wait)
    assert result.counts["failed"] == 3
    assert "too_many_requests" in str(result.errors[0])


def test_bad_input_is_refused_before_anything_is_uploaded(server: ProviderServer) -> None:
    prompt = Prompt("say {{ n }}", openai_llm(server))
    with pytest.raises(ConfigurationError, match="at least one input"):
        prompt.submit_batch([])
    with pytest.raises(ConfigurationError, match=r"1 of 2 inputs cannot be sent.*input 1: UndefinedVariableError"):
        prompt.submit_batch([{"n": 1}, {}])
    with pytest.raises(ConfigurationError, match="list of mappings"):
        prompt.submit_batch({"n": 1})  # type: ignore[arg-type]
    with pytest.raises(UnsupportedCapabilityError, match="MockBackend has no provider batch API"):
        Prompt("say {{ n }}", MockBackend()).submit_batch([{"n": 1}])
    with pytest.raises(UnsupportedCapabilityError, match="FunctionBackend"):
        Prompt("say {{ n }}", FunctionBackend(lambda r: "x")).submit_batch([{"n": 1}])
    with (
        OpenAICompatibleBackend(model="m", base_url=server.openai_base_url) as compatible,
        pytest.raises(UnsupportedCapabilityError, match="use OpenAIBackend"),
    ):
        Prompt("say {{ n }}", compatible).submit_batch([{"n": 1}])
    with pytest.raises(ConfigurationError, match="no backend"):
        Prompt("say {{ n }}").submit_batch([{"n": 1}])
    assert not server.requests


# -- splitting ------------------------------------------------------------------------------------
def test_requests_are_split_by_the_limits_and_recombined_in_order(
    server: ProviderServer, llm: OpenAIBackend | AnthropicBackend
) -> None:
    prompt = Prompt("say {{ n }}", llm)
    job = prompt.submit_batch([{"n": i} for i in range(7)], limits=BatchLimits(max_requests=3, max_bytes=10**6))
    assert len(job.batch_ids) == 3  # 3 + 3 + 1
    sizes = sorted(len(b.requests) for b in server.batches.batches.values())
    assert sizes == [1, 3, 3]
    assert job.wait(sleep=no_wait).values == [f"SAY {i}" for i in range(7)]


def test_a_byte_limit_splits_too(server: ProviderServer) -> None:
    prompt = Prompt("say {{ n }}", openai_llm(server))
    prompt.submit_batch([{"n": i} for i in range(4)])
    line = max(len(line) for f in server.batches.files.values() for line in f.data.splitlines()) + 1
    job = prompt.submit_batch([{"n": i} for i in range(4)], limits=BatchLimits(max_requests=100, max_bytes=line * 2))
    assert len(job.batch_ids) == 2  # two lines per file
    assert job.wait(sleep=no_wait).values == [f"SAY {i}" for i in range(4)]
    with pytest.raises(ConfigurationError, match="alone is"):
        prompt.submit_batch([{"n": 1}], limits=BatchLimits(max_requests=10, max_bytes=20))


# -- polling --------------------------------------------------------------------------------------
def test_wait_polls_with_exponential_backoff(server: ProviderServer) -> None:
    server.batches.script(BatchScript(polls=7))
    job = Prompt("say {{ n }}", openai_llm(server)).submit_batch([{"n": 1}])
    slept: list[float] = []
    job.wait(poll=5, max_poll=60, sleep=slept.append)
    assert slept == [5, 10, 20, 40, 60, 60, 60]


def test_wait_gives_up_after_its_timeout_and_can_wait_again(server: ProviderServer) -> None:
    server.batches.script(BatchScript(polls=4))
    job = Prompt("say {{ n }}", openai_llm(server)).submit_batch([{"n": 1}])
    slept: list[float] = []
    with pytest.raises(BackendTimeoutError, match="has not ended after 30 s"):
        job.wait(poll=10, timeout=30, sleep=slept.append)
    assert slept == [10, 20]
    with pytest.raises(ConfigurationError, match="has not ended"):
        job.results()
    assert job.wait(sleep=no_wait).values == ["SAY 1"]


# -- strategies that take several turns -----------------------------------------------------------
def test_repair_of_unparseable_replies_is_a_second_round(server: ProviderServer) -> None:
    def rule(request: RecordedRequest) -> str:
        if len(request.body["messages"]) > 1:  # the re-ask: the bad reply and the error were sent
            return '{"fixed": true}'
        n = int(_last_text(request).split()[1])
        return "not json" if n % 2 else json.dumps({"n": n})

    server.rule = rule
    prompt = Prompt("say {{ n }}", openai_llm(server), parser=JsonParser(), append_instructions=False)
    job = prompt.submit_batch([{"n": i} for i in range(4)])
    result = job.wait(sleep=no_wait)
    assert result.values == [{"n": 0}, {"fixed": True}, {"n": 2}, {"fixed": True}]
    assert job.status().round == 2
    assert len(job.batch_ids) == 2
    repaired = result[1].result
    assert repaired is not None
    assert [a.purpose for a in repaired.attempts] == ["answer", "repair"]
    assert repaired.cost == pytest.approx(sum(HOUSE.cost(c.usage) for c in repaired.completions) / 2)


def test_without_repair_unparseable_replies_are_parse_errors(server: ProviderServer) -> None:
    server.rule = lambda request: "not json"
    prompt = Prompt("say {{ n }}", openai_llm(server), parser=JsonParser(), repair=0)
    job = prompt.submit_batch([{"n": 1}])
    result = job.wait(sleep=no_wait)
    assert isinstance(result.errors[0], ParseError)
    assert result[0].usage.output_tokens == 2  # the reply was billed, and is counted
    assert len(job.batch_ids) == 1


def test_chain_of_thought_with_native_output_takes_two_rounds(server: ProviderServer) -> None:
    from pydantic import BaseModel

    from promptkit import PydanticParser

    class Answer(BaseModel):
        value: int

    def rule(request: RecordedRequest) -> str:
        return '{"value": 4}' if "response_format" in request.body else "two and two make four"

    server.rule = rule
    llm = openai_llm(server)
    prompt = Prompt("2+2?", llm, parser=PydanticParser(Answer, mode="native"), strategy=ChainOfThought())
    job = prompt.submit_batch([{}, {}])
    assert job.wait(sleep=no_wait).values == [Answer(value=4), Answer(value=4)]
    assert len(job.batch_ids) == 2


def test_self_consistency_sends_its_samples_in_one_round(server: ProviderServer) -> None:
    answers = iter(["yes", "no", "yes"] * 2)
    server.rule = lambda request: next(answers)
    from promptkit import ChoiceParser

    prompt = Prompt(
        "Is {{ n }} odd?",
        claude_llm(server),
        parser=ChoiceParser(["yes", "no"]),
        strategy=SelfConsistency(3),
        params={"temperature": 0.7},
    )
    job = prompt.submit_batch([{"n": 1}, {"n": 3}])
    result = job.wait(sleep=no_wait)
    assert result.values == ["yes", "yes"]
    assert len(job.batch_ids) == 1
    assert len([r for r in server.requests if r.batch is not None]) == 6


def test_job_status_and_repr(server: ProviderServer, tmp_path: Path) -> None:
    server.batches.script(BatchScript(polls=1))
    job = Prompt("say {{ n }}", claude_llm(server)).submit_batch([{"n": 1}, {"n": 2}])
    first = job.status()
    assert (first.state, first.round, first.items, first.pending) == ("in_progress", 1, 2, 2)
    assert first.batches[0].status == "in_progress"
    second = job.status()
    assert second.done
    assert second.finished == 2
    assert "2 items" in repr(job)
    data: dict[str, Any] = job.to_json()
    assert data["rounds"][0][0]["custom_ids"] == ["pk0-0", "pk0-1"]
    assert BatchJob.from_json(data, Prompt("say {{ n }}", claude_llm(server))).results().values == ["SAY 1", "SAY 2"]


def test_inputs_that_are_not_json_are_given_again_on_load(server: ProviderServer, tmp_path: Path) -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    prompt = Prompt("say {{ n }}", openai_llm(server))
    inputs = [{"n": Thing()}]
    prompt.submit_batch(inputs, save=tmp_path / "job.json")
    with pytest.raises(ConfigurationError, match="pass inputs"):
        BatchJob.load(tmp_path / "job.json", prompt)
    assert BatchJob.load(tmp_path / "job.json", prompt, inputs=inputs).wait(sleep=no_wait).values == ["SAY THING"]


def test_self_refine_takes_a_round_per_turn_with_its_critic_on_another_provider(server: ProviderServer) -> None:
    from promptkit import SelfRefine

    def rule(request: RecordedRequest) -> str:
        if request.path == "/v1/messages":  # the critic
            return "NO CHANGES" if "better" in _last_text(request) else "add more"
        return "better draft" if len(request.body["messages"]) > 1 else "draft"

    server.rule = rule
    prompt = Prompt("write {{ n }}", openai_llm(server), strategy=SelfRefine(rounds=2, critic=claude_llm(server)))
    job = prompt.submit_batch([{"n": 1}, {"n": 2}])
    result = job.wait(sleep=no_wait)
    assert result.values == ["better draft", "better draft"]
    # draft (openai), critique (anthropic), revision (openai), critique (anthropic): four rounds
    assert job.status().round == 4
    assert [b.provider for b in server.batches.batches.values()] == ["openai", "anthropic", "openai", "anthropic"]
    attempts = result[0].result.attempts if result[0].result is not None else ()
    assert [a.purpose for a in attempts] == ["answer", "critique", "revision", "critique"]


def test_a_later_turn_on_a_backend_without_a_batch_api_fails_its_items(server: ProviderServer) -> None:
    from promptkit import SelfRefine

    prompt = Prompt("write {{ n }}", openai_llm(server), strategy=SelfRefine(critic=MockBackend(["fine"])))
    result = prompt.submit_batch([{"n": 1}]).wait(sleep=no_wait)
    assert isinstance(result.errors[0], UnsupportedCapabilityError)
    assert "MockBackend has no provider batch API" in str(result.errors[0])


def test_a_round_that_cannot_all_be_submitted_cancels_what_it_submitted(server: ProviderServer) -> None:
    from promptkit import BadRequestError

    server.batches.anthropic_max_requests = 1  # the provider refuses the second, two-item batch
    prompt = Prompt("{{ text }}", claude_llm(server))
    inputs = [{"text": "long " * 40}, {"text": "a"}, {"text": "b"}]
    with pytest.raises(BadRequestError, match="at most 1"):
        prompt.submit_batch(inputs, limits=BatchLimits(max_requests=10, max_bytes=400))
    (first,) = server.batches.batches.values()
    assert first.state == "cancelling"  # nothing half-submitted is left running


def test_wrappers_are_looked_through_and_limits_only_lowered(server: ProviderServer) -> None:
    from promptkit import CachedBackend
    from promptkit.backends._batchapi import OPENAI_LIMITS, adapter_for

    llm = openai_llm(server)
    result = Prompt("say {{ n }}", CachedBackend(llm)).submit_batch([{"n": 1}]).wait(sleep=no_wait)
    assert result.values == ["SAY 1"]
    adapter = adapter_for(llm, limits=BatchLimits(max_requests=10**9, max_bytes=5))
    assert (adapter.limits.max_requests, adapter.limits.max_bytes) == (OPENAI_LIMITS.max_requests, 5)
    with pytest.raises(ConfigurationError, match="max_requests must be an int >= 1"):
        BatchLimits(max_requests=0, max_bytes=5)
    with pytest.raises(ConfigurationError, match="limits must be a BatchLimits"):
        adapter_for(llm, limits={"max_requests": 1})  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_twins_submit_poll_and_wait(server: ProviderServer) -> None:
    server.batches.script(BatchScript(polls=3))
    job = await Prompt("say {{ n }}", claude_llm(server)).asubmit_batch([{"n": 1}, {"n": 2}])
    assert (await job.astatus()).state == "in_progress"
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    result = await job.wait_async(poll=1, sleep=sleep)
    assert result.values == ["SAY 1", "SAY 2"]
    assert slept == [1, 2]
