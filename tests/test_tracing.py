"""Tracing: hooks, the promptkit logger, OpenTelemetry GenAI spans and the JSONL run log."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

import promptkit
from promptkit import (
    CallInfo,
    Completion,
    ConfigurationError,
    Hook,
    ParseError,
    Prompt,
    PydanticParser,
    RunInfo,
    Template,
    Usage,
)
from promptkit._run import Run
from promptkit._strategies import Direct
from promptkit._tracing import _otel
from promptkit.backends import BaseBackend, Request
from promptkit.backends._retry import Deadline, RetryPolicy, retry_call
from promptkit.testing import MockBackend, MockReply, server_error
from promptkit.testing._server import ProviderServer, ServerReply

FAST = RetryPolicy(max_attempts=4, backoff=0.001, max_backoff=0.002, deadline=30.0)


class Recorder(Hook):
    """Every event, as (name, details) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_run_start(self, run: RunInfo) -> None:
        self.events.append(("run_start", run.strategy))

    def on_step(self, run: RunInfo, call: CallInfo) -> None:
        self.events.append(("step", call.purpose))

    def on_request(self, call: CallInfo) -> None:
        self.events.append(("request", call.purpose))

    def on_retry(self, call: CallInfo | None, attempt: int, error: BaseException, wait: float) -> None:
        self.events.append(("retry", (call.purpose if call else None, attempt, type(error).__name__)))

    def on_response(self, call: CallInfo, completion: Completion | None, error: BaseException | None) -> None:
        self.events.append(("response", completion.text if completion else type(error).__name__ if error else None))

    def on_parse_failure(self, run: RunInfo, completion: Completion, error: BaseException) -> None:
        self.events.append(("parse_failure", completion.text))

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        self.events.append(("run_end", result.value if result is not None else type(error).__name__))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    with promptkit.add_hook(hook):
        yield hook
    assert hook not in promptkit._tracing.hooks()


class Retrying(BaseBackend):
    """A backend that fails ``failures`` times, retried by the real retry layer, then answers."""

    def __init__(self, failures: int, text: str = "ok") -> None:
        self.failures = failures
        self.text = text

    def _complete(self, request: Request) -> Completion:
        def once() -> Completion:
            if self.failures:
                self.failures -= 1
                raise server_error(503)
            return Completion(text=self.text, model="retrying-1", usage=Usage(input_tokens=3, output_tokens=1))

        return retry_call(once, policy=FAST, deadline=Deadline(30), provider="retrying")


# -- hooks ----------------------------------------------------------------------------------------
def test_a_run_reports_its_events_in_order(recorder: Recorder) -> None:
    assert Prompt("Hi", MockBackend(["Hello"])).complete() == "Hello"
    assert recorder.events == [
        ("run_start", "direct"),
        ("step", "answer"),
        ("request", "answer"),
        ("response", "Hello"),
        ("run_end", "Hello"),
    ]


def test_a_repaired_reply_reports_the_parse_failure_and_the_repair(recorder: Recorder) -> None:
    prompt = Prompt("Number?", MockBackend(["many", "4"]), parser=promptkit.NumberParser())
    assert prompt.complete() == 4
    assert recorder.names() == [
        "run_start",
        "step",
        "request",
        "response",
        "parse_failure",
        "step",
        "request",
        "response",
        "run_end",
    ]
    assert [d for n, d in recorder.events if n == "step"] == ["answer", "repair"]


@pytest.mark.anyio
async def test_the_async_path_reports_the_same_events(recorder: Recorder) -> None:
    assert await Prompt("Hi", MockBackend(["Hello"])).acomplete() == "Hello"
    assert recorder.names() == ["run_start", "step", "request", "response", "run_end"]


def test_a_failed_call_ends_the_run_with_its_error(recorder: Recorder) -> None:
    with pytest.raises(promptkit.ServerError):
        Prompt("Hi", MockBackend([server_error()])).complete()
    assert recorder.events[-2:] == [("response", "ServerError"), ("run_end", "ServerError")]


def test_an_exhausted_repair_ends_the_run_with_the_parse_error(recorder: Recorder) -> None:
    with pytest.raises(ParseError):
        Prompt("Number?", MockBackend(["x", "y"]), parser=promptkit.NumberParser()).complete()
    assert recorder.events[-1] == ("run_end", "ParseError")
    assert recorder.names().count("parse_failure") == 2


def test_retries_inside_a_call_are_reported_on_that_call(recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        assert Prompt("Hi", Retrying(failures=2)).complete() == "ok"
    retries = [d for n, d in recorder.events if n == "retry"]
    assert retries == [("answer", 1, "ServerError"), ("answer", 2, "ServerError")]
    assert recorder.names().count("request") == 1  # one logical call
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 2


def test_a_retry_outside_a_run_reaches_global_hooks_without_a_call(recorder: Recorder) -> None:
    assert Retrying(failures=1).complete("Hi").text == "ok"
    assert recorder.events == [("retry", (None, 1, "ServerError"))]


def test_streams_report_when_they_end(recorder: Recorder) -> None:
    stream = Prompt("Hi", MockBackend(["Hello there"], chunk_size=3)).stream()
    assert list(stream)[-1] == "Hello there"
    assert recorder.names() == ["run_start", "step", "request", "response", "run_end"]
    assert recorder.events[3] == ("response", "Hello there")


def test_a_stream_closed_early_reports_the_call_and_the_run_over(recorder: Recorder) -> None:
    stream = Prompt("Hi", MockBackend(["one two three four"], chunk_size=2)).stream()
    iterator = iter(stream)
    next(iterator)
    stream.close()
    assert recorder.events[-2:] == [("response", None), ("run_end", "GeneratorExit")]


@pytest.mark.anyio
async def test_async_streams_report_when_they_end(recorder: Recorder) -> None:
    stream = Prompt("Hi", MockBackend(["Hello there"], chunk_size=3)).astream()
    values = [v async for v in stream]
    assert values[-1] == "Hello there"
    assert recorder.names() == ["run_start", "step", "request", "response", "run_end"]


def test_a_hook_that_raises_is_logged_once_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Hook):
        def on_request(self, call: CallInfo) -> None:
            raise RuntimeError("hook bug")

    prompt = Prompt("Hi", MockBackend(["a", "b"]))
    with promptkit.add_hook(Broken()), caplog.at_level(logging.DEBUG, logger="promptkit"):
        assert prompt.complete() == "a"
        assert prompt.complete() == "b"
    failures = [r for r in caplog.records if "raised in on_request" in r.getMessage()]
    again = [r for r in caplog.records if "failed again in on_request" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.WARNING]
    assert failures[0].exc_info is not None
    assert [r.levelno for r in again] == [logging.DEBUG]


def test_hooks_are_added_once_removed_by_handle_and_checked() -> None:
    hook = Recorder()
    handle = promptkit.add_hook(hook)
    assert promptkit.add_hook(hook).hook is hook
    assert promptkit._tracing.hooks().count(hook) == 1
    handle.remove()
    handle.remove()
    assert hook not in promptkit._tracing.hooks()
    with pytest.raises(ConfigurationError, match="subclass Hook"):
        promptkit.add_hook(object())  # type: ignore[arg-type]


def test_a_hook_object_needs_only_the_methods_it_uses() -> None:
    seen: list[str] = []

    class Minimal:
        def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
            seen.append(result.value)

    with promptkit.add_hook(Minimal()):  # type: ignore[arg-type]
        Prompt("Hi", MockBackend(["x"])).complete()
    assert seen == ["x"]


def test_nothing_observed_costs_one_check(caplog: pytest.LogCaptureFixture) -> None:
    backend = MockBackend(["x"])
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        run: Run[str] = Run(
            backend=backend,
            parser=promptkit.TextParser(),
            strategy=Direct(),
            messages=(promptkit.Message("user", "Hi"),),
            examples=promptkit.Selection(),
            params={},
            repair=0,
        )
    assert run._trace is None
    assert run.backend is backend  # not wrapped


def test_the_run_info_names_the_prompt_and_holds_its_inputs(recorder: Recorder) -> None:
    seen: list[RunInfo] = []

    class Keep(Hook):
        def on_run_start(self, run: RunInfo) -> None:
            seen.append(run)

    with promptkit.add_hook(Keep()):
        Prompt(Template("Capital of {{ c }}?", name="capital"), MockBackend(["Paris"])).complete(c="France")
    (info,) = seen
    assert (info.prompt_name, dict(info.inputs), info.backend) == ("capital", {"c": "France"}, "mock")
    assert info.messages[0].content == "Capital of France?"


# -- logging ----------------------------------------------------------------------------------------
def test_the_logger_prints_nothing_by_default() -> None:
    logger = logging.getLogger("promptkit")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_debug_lines_name_model_tokens_latency_and_finish_but_never_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reply = MockReply(text="SECRET-REPLY", usage=Usage(input_tokens=7, output_tokens=2), model="m-1")
    with caplog.at_level(logging.DEBUG, logger="promptkit"):
        Prompt("SECRET-QUESTION {{ x }}", MockBackend([reply])).complete(x="SECRET-INPUT")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "promptkit")
    assert "request sent: backend=mock purpose=answer" in text
    assert "response received: model=m-1 tokens in=7 out=2 latency=" in text
    assert "finish=stop" in text
    assert "SECRET" not in text


def test_a_parse_failure_is_logged_at_info_without_the_reply(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="promptkit"):
        Prompt("N?", MockBackend(["SECRET-WORDS", "3"]), parser=promptkit.NumberParser()).complete()
    (record,) = [r for r in caplog.records if "did not parse" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "ParseError" in record.getMessage()
    assert "SECRET" not in record.getMessage()


def test_a_failed_call_is_logged_with_its_key_masked(caplog: pytest.LogCaptureFixture) -> None:
    error = promptkit.AuthenticationError("Incorrect API key provided: sk-abcdefghijklmnop", provider="mock")
    with caplog.at_level(logging.DEBUG, logger="promptkit"), pytest.raises(promptkit.AuthenticationError):
        Prompt("Hi", MockBackend([error])).complete()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "call failed: backend=mock" in text
    assert "sk-abcdefghijklmnop" not in text


# -- OpenTelemetry ------------------------------------------------------------------------------------
@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def spans(exporter: InMemorySpanExporter, provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    handle = promptkit.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        promptkit.uninstrument()
        assert handle.hook not in promptkit._tracing.hooks()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def test_one_client_span_per_call_with_the_genai_attributes(spans: InMemorySpanExporter) -> None:
    reply = MockReply(text="Paris", usage=Usage(input_tokens=9, output_tokens=1), model="mock-2024")
    prompt = Prompt(Template("Capital of {{ c }}?", name="capital"), MockBackend([reply], model="small"))
    prompt.complete(c="France", params={"temperature": 0.2, "max_tokens": 5, "top_p": 0.9})
    found = _by_name(spans)
    (call,) = found["chat small"]
    (run,) = found["invoke_workflow capital"]
    assert call.kind is trace.SpanKind.CLIENT
    assert run.kind is trace.SpanKind.INTERNAL
    assert call.parent is not None
    assert call.parent.span_id == run.context.span_id
    assert dict(call.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mock",
        "gen_ai.request.model": "small",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 5,
        "gen_ai.request.top_p": 0.9,
        "promptkit.purpose": "answer",
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 1,
        "gen_ai.response.model": "mock-2024",
        "gen_ai.response.finish_reasons": ("stop",),
    }
    attributes = run.attributes or {}
    assert attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert attributes["gen_ai.workflow.name"] == "capital"
    assert attributes["promptkit.strategy"] == "direct"
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert "gen_ai.input.messages" not in (call.attributes or {})


def test_the_attribute_names_are_the_current_semantic_conventions() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
    from opentelemetry.semconv.attributes import error_attributes

    names = {
        _otel.OPERATION: genai.GEN_AI_OPERATION_NAME,
        _otel.PROVIDER: genai.GEN_AI_PROVIDER_NAME,
        _otel.REQUEST_MODEL: genai.GEN_AI_REQUEST_MODEL,
        _otel.RESPONSE_MODEL: genai.GEN_AI_RESPONSE_MODEL,
        _otel.RESPONSE_ID: genai.GEN_AI_RESPONSE_ID,
        _otel.FINISH_REASONS: genai.GEN_AI_RESPONSE_FINISH_REASONS,
        _otel.INPUT_TOKENS: genai.GEN_AI_USAGE_INPUT_TOKENS,
        _otel.OUTPUT_TOKENS: genai.GEN_AI_USAGE_OUTPUT_TOKENS,
        _otel.INPUT_MESSAGES: genai.GEN_AI_INPUT_MESSAGES,
        _otel.OUTPUT_MESSAGES: genai.GEN_AI_OUTPUT_MESSAGES,
        _otel.SYSTEM_INSTRUCTIONS: genai.GEN_AI_SYSTEM_INSTRUCTIONS,
        _otel.WORKFLOW_NAME: genai.GEN_AI_WORKFLOW_NAME,
        _otel.REQUEST_STREAM: genai.GEN_AI_REQUEST_STREAM,
        _otel.ERROR_TYPE: error_attributes.ERROR_TYPE,
        _otel.REQUEST_PARAMS["temperature"]: genai.GEN_AI_REQUEST_TEMPERATURE,
        _otel.REQUEST_PARAMS["max_tokens"]: genai.GEN_AI_REQUEST_MAX_TOKENS,
        _otel.REQUEST_PARAMS["top_p"]: genai.GEN_AI_REQUEST_TOP_P,
        _otel.REQUEST_PARAMS["seed"]: genai.GEN_AI_REQUEST_SEED,
        _otel.REQUEST_PARAMS["stop"]: genai.GEN_AI_REQUEST_STOP_SEQUENCES,
    }
    assert all(ours == theirs for ours, theirs in names.items())


def test_a_real_adapter_names_its_provider_model_and_response_id(spans: InMemorySpanExporter) -> None:
    from promptkit.backends.openai import OpenAIBackend

    with (
        ProviderServer() as server,
        OpenAIBackend(
            model="gpt-test", base_url=server.openai_base_url, api_key="sk-test-0123456789abcdef", retry=FAST
        ) as llm,
    ):
        server.add(ServerReply.error(503), ServerReply(text="Oslo", input_tokens=4, output_tokens=1))
        assert Prompt("Capital of Norway?", llm).complete() == "Oslo"
    (call,) = _by_name(spans)["chat gpt-test"]
    attributes = call.attributes or {}
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert isinstance(attributes.get("gen_ai.response.id"), str)
    assert [e.name for e in call.events] == ["promptkit.retry"]
    retry = call.events[0].attributes or {}
    assert retry["promptkit.retry.attempt"] == 1
    assert retry["error.type"] == "promptkit.ServerError"
    assert attributes["promptkit.attempts"] == 2


def test_a_failed_call_is_an_error_span_and_so_is_its_run(spans: InMemorySpanExporter) -> None:
    with pytest.raises(promptkit.RateLimitError):
        Prompt("Hi", MockBackend([promptkit.testing.rate_limit_error()])).complete()
    found = _by_name(spans)
    (call,) = found["chat mock"]
    (run,) = found["invoke_workflow"]
    for span in (call, run):
        assert span.status.status_code is trace.StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "promptkit.RateLimitError"
    assert "usage" not in str(call.attributes)


def test_retries_are_events_on_one_call_span(spans: InMemorySpanExporter) -> None:
    assert Prompt("Hi", Retrying(failures=2)).complete() == "ok"
    (call,) = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert [(e.attributes or {})["promptkit.retry.attempt"] for e in call.events] == [1, 2]
    assert call.status.status_code is trace.StatusCode.UNSET


def test_a_parse_failure_is_an_event_on_the_run_span(spans: InMemorySpanExporter) -> None:
    Prompt("N?", MockBackend(["many", "4"]), parser=promptkit.NumberParser()).complete()
    found = _by_name(spans)
    (run,) = found["invoke_workflow"]
    calls = found["chat mock"]
    assert [(c.attributes or {})["promptkit.purpose"] for c in calls] == ["answer", "repair"]
    assert all(c.parent is not None and c.parent.span_id == run.context.span_id for c in calls)
    assert [e.name for e in run.events] == ["promptkit.parse_failure"]
    assert (run.attributes or {})["promptkit.calls"] == 2


def test_content_is_recorded_only_when_asked() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    promptkit.instrument(tracer_provider=provider, capture_content=True)
    try:
        prompt = Prompt([("system", "Be brief."), ("user", "Hi {{ n }}")], MockBackend(["Hello"]))
        prompt.complete(n="Ann")
    finally:
        promptkit.uninstrument()
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "chat mock"]
    attributes = call.attributes or {}
    assert json.loads(str(attributes["gen_ai.system_instructions"])) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi Ann"}]}
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "finish_reason": "stop"}
    ]
    with pytest.raises(ConfigurationError):
        promptkit.instrument(capture_content="yes")  # type: ignore[arg-type]


def test_a_streamed_call_span_ends_with_the_stream(spans: InMemorySpanExporter) -> None:
    stream = Prompt("Hi", MockBackend(["Hello there"], chunk_size=3)).stream()
    iterator = iter(stream)
    next(iterator)
    assert spans.get_finished_spans() == ()  # open while the stream is
    list(iterator)
    (call,) = _by_name(spans)["chat mock"]
    assert (call.attributes or {})["gen_ai.request.stream"] is True
    assert (call.attributes or {})["gen_ai.usage.output_tokens"] == 2


def test_a_stream_closed_early_ends_its_spans(spans: InMemorySpanExporter) -> None:
    with Prompt("Hi", MockBackend(["one two three four"], chunk_size=2)).stream() as stream:
        next(iter(stream))
    found = _by_name(spans)
    (call,) = found["chat mock"]
    assert (call.attributes or {})["promptkit.stream.closed"] is True
    assert call.status.status_code is trace.StatusCode.UNSET
    assert len(found["invoke_workflow"]) == 1


def test_a_suspended_stream_leaves_no_context_behind(spans: InMemorySpanExporter, provider: TracerProvider) -> None:
    tracer = trace.get_tracer("test", tracer_provider=provider)
    stream = Prompt("Hi", MockBackend(["one two three"], chunk_size=2)).stream()
    iterator = iter(stream)
    next(iterator)
    assert not trace.get_current_span().get_span_context().is_valid
    with tracer.start_as_current_span("outside"):
        pass
    list(iterator)
    outside = _by_name(spans)["outside"][0]
    assert outside.parent is None


def test_a_user_span_around_a_run_is_its_parent(spans: InMemorySpanExporter, provider: TracerProvider) -> None:
    tracer = trace.get_tracer("test", tracer_provider=provider)
    with tracer.start_as_current_span("request handler"):
        Prompt("Hi", MockBackend(["x"])).complete()
    found = _by_name(spans)
    (run,) = found["invoke_workflow"]
    (outer,) = found["request handler"]
    assert run.parent is not None
    assert run.parent.span_id == outer.context.span_id
    assert run.context.trace_id == outer.context.trace_id


@pytest.mark.anyio
async def test_concurrent_async_runs_keep_their_calls_under_their_own_run(spans: InMemorySpanExporter) -> None:
    entered = 0
    all_in = asyncio.Event()

    async def reply(messages: Any, params: Any) -> str:
        nonlocal entered
        entered += 1
        if entered == 5:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), timeout=30)  # every call is in flight at once
        return f"echo {messages[-1].content}"

    backend = promptkit.testing.FunctionBackend(reply)
    prompts = [Prompt(Template("q{{ i }}", name=f"run{i}"), backend) for i in range(5)]
    values = await asyncio.gather(*(p.acomplete(i=i) for i, p in enumerate(prompts)))
    assert values == [f"echo q{i}" for i in range(5)]
    finished = spans.get_finished_spans()
    runs = {s.context.span_id: s for s in finished if s.name.startswith("invoke_workflow")}
    calls = [s for s in finished if s.name.startswith("chat ")]
    assert len(runs) == 5
    assert len(calls) == 5
    for call in calls:
        assert call.parent is not None
        parent = runs[call.parent.span_id]
        assert call.context.trace_id == parent.context.trace_id
    assert len({s.context.trace_id for s in runs.values()}) == 5


@pytest.mark.anyio
async def test_async_stream_spans_nest_and_end(spans: InMemorySpanExporter) -> None:
    async def one(i: int) -> str:
        stream = Prompt("Hi", MockBackend([f"reply number {i}"], chunk_size=3)).astream()
        return [v async for v in stream][-1]

    assert await asyncio.gather(one(1), one(2)) == ["reply number 1", "reply number 2"]
    finished = spans.get_finished_spans()
    runs = {s.context.span_id for s in finished if s.name == "invoke_workflow"}
    calls = [s for s in finished if s.name == "chat mock"]
    assert len(runs) == 2
    assert {c.parent.span_id for c in calls if c.parent is not None} == runs


def test_instrument_replaces_an_earlier_instrumentation() -> None:
    first = promptkit.instrument()
    second = promptkit.instrument()
    try:
        installed = [h for h in promptkit._tracing.hooks() if isinstance(h, _otel.OtelHook)]
        assert installed == [second.hook]
        assert first.hook not in promptkit._tracing.hooks()
    finally:
        promptkit.uninstrument()
    promptkit.uninstrument()  # a second call is harmless
    assert not [h for h in promptkit._tracing.hooks() if isinstance(h, _otel.OtelHook)]


# -- the run log ---------------------------------------------------------------------------------------
class Verdict(BaseModel):
    label: str
    score: float


@dataclass
class Point:
    x: int
    y: int


def test_every_run_is_one_line_read_back_as_a_typed_record(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    template = Template("Classify {{ text }}\n{{ format_instructions }}", name="classify")
    prompt = Prompt(
        template,
        MockBackend(['{"label": "spam"}', '{"label": "spam", "score": 0.9}']),
        parser=PydanticParser(Verdict),
    )
    with promptkit.log_runs(path):
        assert prompt.complete(text="win a prize", params={"temperature": 0}) == Verdict(label="spam", score=0.9)
    Prompt("not logged", MockBackend(["x"])).complete()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    (record,) = promptkit.read_run_log(path)
    assert isinstance(record, promptkit.RunRecord)
    assert record.ok
    assert (record.prompt_name, record.strategy, record.backend) == ("classify", "direct", "mock")
    assert record.prompt_digest is not None
    assert len(record.prompt_digest) == 64
    assert dict(record.inputs) == {"text": "win a prize"}
    assert dict(record.params) == {"temperature": 0}
    assert record.messages[0].role == "user"
    assert record.messages[0].text.startswith("Classify win a prize")
    assert record.value == {"label": "spam", "score": 0.9}
    assert record.value_format == "json"
    assert [a.purpose for a in record.attempts] == ["answer", "repair"]
    assert record.attempts[0].error is not None
    assert record.attempts[0].error.type == "promptkit.ParseError"
    assert record.attempts[1].error is None
    assert record.attempts[1].text == '{"label": "spam", "score": 0.9}'
    assert record.completion is not None
    assert record.completion.text == '{"label": "spam", "score": 0.9}'
    assert record.usage.output_tokens == sum(a.usage.output_tokens for a in record.attempts)
    assert record.latency >= 0
    assert record.cost is None
    assert record.timestamp.tzinfo is not None


def test_values_without_json_form_are_logged_as_repr(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    class PointParser(promptkit.BaseParser[Point]):
        def parse(self, text: str) -> Point:
            return Point(x=1, y=2)

    class OpaqueParser(promptkit.BaseParser[Opaque]):
        def parse(self, text: str) -> Opaque:
            return Opaque()

    with promptkit.log_runs(path):
        Prompt("p {{ when }}", MockBackend(["a"]), parser=PointParser()).complete(when=Opaque())
        Prompt("o", MockBackend(["b"]), parser=OpaqueParser()).complete()
    point, opaque = promptkit.read_run_log(path)
    assert (point.value, point.value_format) == ({"x": 1, "y": 2}, "json")
    assert point.inputs["when"] == "Opaque()"
    assert point.inputs_repr == ("when",)
    assert (opaque.value, opaque.value_format) == ("Opaque()", "repr")


def test_a_failed_run_is_logged_with_its_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with promptkit.log_runs(path), pytest.raises(promptkit.ServerError):
        Prompt("Hi", MockBackend([server_error(502)])).complete()
    (record,) = promptkit.read_run_log(path)
    assert not record.ok
    assert record.error is not None
    assert record.error.type == "promptkit.ServerError"
    assert "502" in record.error.message
    assert record.value is None
    assert record.completion is None
    assert [(a.text, a.error.type if a.error else None) for a in record.attempts] == [(None, "promptkit.ServerError")]


def test_no_api_key_reaches_the_log(tmp_path: Path) -> None:
    from promptkit.backends.openai import OpenAIBackend

    key = "sk-live-do-not-log-0123456789abcdef"
    path = tmp_path / "runs.jsonl"
    with (
        ProviderServer() as server,
        OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key=key, retry=FAST) as llm,
        promptkit.log_runs(path),
    ):
        server.add("fine", ServerReply.error(401))
        Prompt("Hi {{ k }}", llm).complete(k="Incorrect API key provided: " + key)
        with pytest.raises(promptkit.AuthenticationError):
            Prompt("Again", llm).complete()
    content = path.read_text(encoding="utf-8")
    assert len(content.splitlines()) == 2
    assert key not in content
    assert key[:12] not in content


def test_threads_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    prompt = Prompt("Say {{ i }}", MockBackend(lambda request: "x" * 5000))
    with promptkit.log_runs(path):
        threads = [
            threading.Thread(target=lambda i=i: [prompt.complete(i=i * 10 + j) for j in range(10)]) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    records = list(promptkit.read_run_log(path))
    assert sorted(r.inputs["i"] for r in records) == list(range(80))


@pytest.mark.anyio
async def test_async_runs_are_logged(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    prompt = Prompt("Say {{ i }}", MockBackend(lambda request: request.messages[-1].text))
    with promptkit.log_runs(path):
        await asyncio.gather(*(prompt.acomplete(i=i) for i in range(6)))
    assert sorted(r.value for r in promptkit.read_run_log(path)) == [f"Say {i}" for i in range(6)]


def test_log_runs_checks_its_path_and_the_reader_names_a_bad_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        promptkit.log_runs(tmp_path / "missing" / "runs.jsonl")
    with pytest.raises(ConfigurationError, match="is a folder"):
        promptkit.log_runs(tmp_path)
    path = tmp_path / "runs.jsonl"
    with promptkit.log_runs(path):
        Prompt("Hi", MockBackend(["x"])).complete()
    with path.open("a", encoding="utf-8") as out:
        out.write("\n{not json\n")
    records = promptkit.read_run_log(path)
    assert next(records).value == "x"
    with pytest.raises(ConfigurationError, match=r"runs\.jsonl:3: not a run record"):
        next(records)
    path.write_text(json.dumps({"version": 99}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="version 99"):
        list(promptkit.read_run_log(path))


def test_one_emission_path_feeds_hooks_spans_and_the_log(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    recorder = Recorder()
    path = tmp_path / "runs.jsonl"
    with promptkit.add_hook(recorder), promptkit.log_runs(path):
        Prompt("Hi", MockBackend(["x"])).complete()
    assert recorder.names()[-1] == "run_end"
    assert len(list(promptkit.read_run_log(path))) == 1
    assert len(spans.get_finished_spans()) == 2


# -- edges ---------------------------------------------------------------------------------------------
def test_a_stream_that_breaks_reports_its_error(recorder: Recorder) -> None:
    broken = MockReply(chunks=["one ", "two "], error=server_error())
    with pytest.raises(promptkit.ServerError):
        list(Prompt("Hi", MockBackend([broken])).stream())
    assert recorder.events[-2:] == [("response", "ServerError"), ("run_end", "ServerError")]


def test_a_stream_that_cannot_open_reports_its_error(recorder: Recorder) -> None:
    class NoStreams(BaseBackend):
        def _complete(self, request: Request) -> Completion:
            return Completion(text="x")

    with pytest.raises(promptkit.UnsupportedCapabilityError):
        list(Prompt("Hi", NoStreams()).stream())
    assert recorder.events[-2:] == [
        ("response", "UnsupportedCapabilityError"),
        ("run_end", "UnsupportedCapabilityError"),
    ]


@pytest.mark.anyio
async def test_async_streams_that_break_or_close_report_it(recorder: Recorder) -> None:
    broken = MockReply(chunks=["one ", "two "], error=server_error())
    with pytest.raises(promptkit.ServerError):
        _ = [v async for v in Prompt("Hi", MockBackend([broken])).astream()]
    assert recorder.events[-2:] == [("response", "ServerError"), ("run_end", "ServerError")]
    async with Prompt("Hi", MockBackend(["one two three four"], chunk_size=2)).astream() as stream:
        async for _ in stream:
            break
    assert recorder.events[-2:] == [("response", None), ("run_end", "GeneratorExit")]


@pytest.mark.anyio
async def test_a_failed_async_call_reports_its_error(recorder: Recorder) -> None:
    with pytest.raises(promptkit.ServerError):
        await Prompt("Hi", MockBackend([server_error()])).acomplete()
    assert recorder.events[-2:] == [("response", "ServerError"), ("run_end", "ServerError")]


def test_a_request_sent_without_a_step_is_still_reported(recorder: Recorder) -> None:
    run: Run[str] = Run(
        backend=MockBackend(["x"]),
        parser=promptkit.TextParser(),
        strategy=Direct(),
        messages=(promptkit.Message("user", "Hi"),),
        examples=promptkit.Selection(),
        params={},
        repair=0,
    )
    assert run.backend.supported_params == MockBackend().supported_params
    assert run.backend.complete_request(run.backend.build_request("Hi")).text == "x"
    assert recorder.events[-2:] == [("request", "answer"), ("response", "x")]


def test_reprs_name_what_they_observe(recorder: Recorder, tmp_path: Path) -> None:
    seen: list[Any] = []

    class Keep(Hook):
        def on_request(self, call: CallInfo) -> None:
            seen.extend([call, call.run])

    with promptkit.add_hook(Keep()) as handle:
        Prompt("Hi", MockBackend(["x"])).complete()
    assert repr(handle).startswith("<HookHandle ")
    assert repr(seen[0]).endswith(" answer>")
    assert repr(seen[1]).endswith("direct on mock>")
    assert repr(promptkit.log_runs(tmp_path / "r.jsonl").hook) == f"RunLog({str(tmp_path / 'r.jsonl')!r})"
    promptkit.remove_hook(promptkit._tracing.hooks()[-1])
    assert repr(_otel.OtelHook(trace.get_tracer("t"), capture_content=True)) == "OtelHook(capture_content=True)"


def test_the_run_log_keeps_images_and_plain_values(tmp_path: Path) -> None:
    import datetime as dt
    import enum

    class Colour(enum.Enum):
        RED = "red"

    path = tmp_path / "runs.jsonl"
    image = promptkit.Message(
        "user", (promptkit.TextPart(text="What is this?"), promptkit.ImagePart(url="https://x.test/a.png"))
    )
    prompt = Prompt([("user", "{{ q }}")], MockBackend(["a", "b"]))
    with promptkit.log_runs(path):
        prompt.complete(q=image.text)
        Prompt("{{ d }} {{ c }} {{ s }} {{ n }}", MockBackend(["b"])).complete(
            d=dt.date(2024, 5, 1), c=Colour.RED, s={3}, n=float("nan")
        )
    first, second = promptkit.read_run_log(path)
    assert first.messages[0].text == "What is this?"
    assert second.inputs["d"] == "2024-05-01"
    assert second.inputs["c"] == "red"
    assert second.inputs["s"] == [3]
    assert second.inputs_repr == ("n",)
    record = promptkit._tracing.RunLog(path).record(
        promptkit.RunInfo(backend="b", strategy="direct", messages=(image,), inputs={}, params={}, template=None),
        [],
        None,
        None,
    )
    assert record["messages"][0]["content"][1] == {"type": "image", "url": "https://x.test/a.png", "media_type": None}


def test_image_parts_are_recorded_in_the_conventions_form() -> None:
    image = promptkit.Message(
        "user",
        (
            promptkit.TextPart(text="What is this?"),
            promptkit.ImagePart(url="https://x.test/a.png", media_type="image/png"),
            promptkit.ImagePart(url="data:image/jpeg;base64,AAAA"),
        ),
    )
    system, chat = _otel.input_messages((image,))
    assert system is None
    assert json.loads(chat)[0]["parts"][1:] == [
        {"type": "uri", "modality": "image", "mime_type": "image/png", "uri": "https://x.test/a.png"},
        {"type": "blob", "modality": "image", "mime_type": "image/jpeg", "content": "AAAA"},
    ]


# -- strategies -----------------------------------------------------------------------------------
def test_every_strategy_step_is_reported_the_critic_on_its_own_backend_too(recorder: Recorder) -> None:
    from promptkit import SelfRefine

    critic = MockBackend(["NO CHANGES"], model="critic")
    assert Prompt("Q", MockBackend(["draft"]), strategy=SelfRefine(critic=critic)).complete() == "draft"
    assert recorder.events == [
        ("run_start", "self_refine"),
        ("step", "answer"),
        ("request", "answer"),
        ("response", "draft"),
        ("step", "critique"),
        ("request", "critique"),
        ("response", "NO CHANGES"),
        ("run_end", "draft"),
    ]


@pytest.mark.anyio
async def test_concurrent_samples_are_sibling_spans_of_one_run(spans: InMemorySpanExporter) -> None:
    from promptkit import SelfConsistency

    prompt = Prompt(Template("Q", name="vote"), MockBackend(["a", "b", "a"], model="m"), strategy=SelfConsistency(3))
    assert await prompt.acomplete() == "a"
    found = _by_name(spans)
    (run,) = found["invoke_workflow vote"]
    calls = found["chat m"]
    assert len(calls) == 3
    assert {c.parent.span_id for c in calls if c.parent is not None} == {run.context.span_id}
    assert [dict(c.attributes or {})["promptkit.purpose"] for c in calls] == ["sample"] * 3
    assert (run.attributes or {})["promptkit.strategy"] == "self_consistency"


def test_the_run_log_keeps_cost_and_every_token_count(tmp_path: Path) -> None:
    from promptkit import Price, set_price

    path = tmp_path / "runs.jsonl"
    usage = Usage(input_tokens=1_000, output_tokens=100, cached_input_tokens=400, reasoning_tokens=60)
    set_price("logged-model", Price(input=1.0, output=2.0, cached_input=0.5))
    try:
        with promptkit.log_runs(path):
            Prompt("Q", MockBackend([MockReply(text="a", usage=usage, model="logged-model")])).complete()
    finally:
        set_price("logged-model", None)
    (record,) = promptkit.read_run_log(path)
    assert record.usage == usage
    assert record.cost == pytest.approx((600 * 1.0 + 400 * 0.5 + 100 * 2.0) / 1e6)


@pytest.mark.anyio
async def test_samples_drawn_in_one_request_are_one_reported_call(recorder: Recorder) -> None:
    from promptkit import SelfConsistency

    mock = MockBackend(["a", "b", "a", "a", "b", "a"], max_choices=3)
    prompt = Prompt("Q", mock, strategy=SelfConsistency(3))
    assert prompt.complete() == "a"
    assert await prompt.acomplete() == "a"
    assert len(mock.calls) == 2  # observing does not change what is sent
    assert recorder.names().count("request") == 2
    assert ("response", "a") in recorder.events
