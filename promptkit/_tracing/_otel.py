"""OpenTelemetry spans for prompt runs, following the GenAI semantic conventions (``pip install promptkit[otel]``).

Each model call is a CLIENT span named ``"chat {gen_ai.request.model}"``; the prompt run around
it is an INTERNAL ``invoke_workflow`` span (a prompt's strategy is a fixed workflow of model
calls, not an agent choosing its own steps), so the calls of one run are siblings under it.
Retries inside a call are events on that call's span, which covers the whole logical operation
as the conventions ask. Message content is recorded only with ``capture_content=True``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from .._messages import Completion, ImagePart, Message, TextPart
from .._utils import redact, require
from ._events import CallInfo, Hook, RunInfo
from ._hooks import HookHandle, add_hook, remove_hook

__all__ = ["OtelHook", "instrument", "uninstrument"]

# Attribute names of the GenAI conventions (opentelemetry-semantic-conventions' gen_ai registry);
# spelt out so that only opentelemetry-api is needed at run time.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
WORKFLOW_NAME = "gen_ai.workflow.name"
REQUEST_STREAM = "gen_ai.request.stream"
ERROR_TYPE = "error.type"
REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
}

_lock = threading.Lock()
_installed: list[HookHandle] = []  # the instrumentation in force (at most one)


def _error_type(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__


def _split_backend(name: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; a bare name is both."""
    provider, _, model = name.partition(":")
    return provider, model or provider


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "content": part.text}
    if isinstance(part, ImagePart):
        if part.url.startswith("data:"):
            header, _, payload = part.url.partition(",")
            mime = part.media_type or header[5:].split(";", 1)[0] or None
            return {"type": "blob", "modality": "image", "mime_type": mime, "content": payload}
        return {"type": "uri", "modality": "image", "mime_type": part.media_type, "uri": part.url}
    return {"type": "text", "content": str(part)}  # pragma: no cover - parts are text or images


def _parts(message: Message) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"type": "text", "content": message.content}]
    return [_part(p) for p in message.content]


def input_messages(messages: tuple[Message, ...]) -> tuple[str | None, str]:
    """The ``gen_ai.system_instructions`` and ``gen_ai.input.messages`` JSON of a conversation."""
    system = [part for m in messages if m.role == "system" for part in _parts(m)]
    chat = [{"role": m.role, "parts": _parts(m)} for m in messages if m.role != "system"]
    return (json.dumps(system) if system else None), json.dumps(chat)


def output_messages(completion: Completion) -> str:
    """The ``gen_ai.output.messages`` JSON of a reply."""
    return json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": completion.text}],
                "finish_reason": completion.finish_reason or "stop",
            }
        ]
    )


def _response_id(completion: Completion) -> str | None:
    raw = completion.raw
    if isinstance(raw, tuple):  # a stream keeps its events' raw objects
        raw = raw[0] if raw else None
    value = raw.get("id") if isinstance(raw, Mapping) else getattr(raw, "id", None)
    return value if isinstance(value, str) and value else None


class OtelHook(Hook):
    """Turns a run's events into spans on ``tracer`` (see the module docstring for their shape)."""

    def __init__(self, tracer: Any, *, capture_content: bool = False) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer = tracer
        self.capture_content = capture_content

    def on_run_start(self, run: RunInfo) -> None:
        name = run.prompt_name
        attributes: dict[str, Any] = {OPERATION: "invoke_workflow", "promptkit.strategy": run.strategy}
        if name:
            attributes[WORKFLOW_NAME] = name
        span = self.tracer.start_span(
            f"invoke_workflow {name}" if name else "invoke_workflow",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
        )
        run.state[self] = span

    def on_request(self, call: CallInfo) -> None:
        parent = call.run.state.get(self)
        provider, model = _split_backend(call.request.backend)
        attributes: dict[str, Any] = {
            OPERATION: "chat",
            PROVIDER: provider,
            REQUEST_MODEL: model,
            "promptkit.purpose": call.purpose,
        }
        if call.sample is not None:
            attributes["promptkit.sample"] = call.sample
        if call.stream:
            attributes[REQUEST_STREAM] = True
        params = call.request.params
        for key, attribute in REQUEST_PARAMS.items():
            value = params.get(key)
            if value is not None:
                attributes[attribute] = list(value) if key == "stop" else value
        if self.capture_content:
            system, chat = input_messages(call.request.messages)
            if system is not None:
                attributes[SYSTEM_INSTRUCTIONS] = system
            attributes[INPUT_MESSAGES] = chat
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            f"chat {model}", context=context, kind=self._trace.SpanKind.CLIENT, attributes=attributes
        )
        call.state[self] = span
        call.otel_context = self._trace.set_span_in_context(span)

    def on_retry(self, call: CallInfo | None, attempt: int, error: BaseException, wait: float) -> None:
        span = call.state.get(self) if call is not None else self._trace.get_current_span()
        if span is not None:
            span.add_event(
                "promptkit.retry",
                {"promptkit.retry.attempt": attempt, ERROR_TYPE: _error_type(error), "promptkit.retry.wait": wait},
            )

    def on_response(self, call: CallInfo, completion: Completion | None, error: BaseException | None) -> None:
        span = call.state.pop(self, None)
        if span is None:
            return
        if completion is not None:
            span.set_attribute(INPUT_TOKENS, completion.usage.input_tokens)
            span.set_attribute(OUTPUT_TOKENS, completion.usage.output_tokens)
            if completion.model:
                span.set_attribute(RESPONSE_MODEL, completion.model)
            if completion.finish_reason:
                span.set_attribute(FINISH_REASONS, [completion.finish_reason])
            response_id = _response_id(completion)
            if response_id is not None:
                span.set_attribute(RESPONSE_ID, response_id)
            if completion.attempts > 1:
                span.set_attribute("promptkit.attempts", completion.attempts)
            if self.capture_content:
                span.set_attribute(OUTPUT_MESSAGES, output_messages(completion))
        elif error is not None:
            self._fail(span, error)
        else:
            span.set_attribute("promptkit.stream.closed", True)
        span.end()

    def on_parse_failure(self, run: RunInfo, completion: Completion, error: BaseException) -> None:
        span = run.state.get(self)
        if span is not None:
            span.add_event("promptkit.parse_failure", {ERROR_TYPE: _error_type(error)})

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        span = run.state.pop(self, None)
        if span is None:
            return
        if result is not None:
            usage = result.usage
            span.set_attribute(INPUT_TOKENS, usage.input_tokens)
            span.set_attribute(OUTPUT_TOKENS, usage.output_tokens)
            span.set_attribute("promptkit.calls", len(result.attempts))
        elif error is not None:
            self._fail(span, error)
        span.end()

    def _fail(self, span: Any, error: BaseException) -> None:
        span.set_attribute(ERROR_TYPE, _error_type(error))
        if isinstance(error, GeneratorExit):  # a stream closed early: not a failure of the call
            return
        description = redact(str(error)) if _is_backend_error(error) else type(error).__name__
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description))

    def __repr__(self) -> str:
        return f"OtelHook(capture_content={self.capture_content})"


def _is_backend_error(error: BaseException) -> bool:
    from .._errors import BackendError

    return isinstance(error, BackendError)


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("promptkit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return None


def instrument(*, tracer_provider: Any = None, capture_content: bool = False) -> HookHandle:
    """Record every prompt run as OpenTelemetry spans (GenAI conventions); replaces an earlier call.

    ``tracer_provider`` defaults to the global one, so any configured exporter (an OTLP
    collector, Logfire, Langfuse, Phoenix) shows the runs. ``capture_content=True`` adds the
    messages and replies as ``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON.
    Returns a handle; :func:`uninstrument` (or ``handle.remove()``) stops it.
    """
    given: object = capture_content  # checked at run time: a truthy string must not switch content on
    if not isinstance(given, bool):
        from .._errors import ConfigurationError

        raise ConfigurationError(f"capture_content must be True or False, not {capture_content!r}")
    trace = require("opentelemetry.trace", extra="otel", package="opentelemetry-api")
    tracer = trace.get_tracer("promptkit", _version(), tracer_provider=tracer_provider)
    with _lock:
        for handle in _installed:
            handle.remove()
        _installed[:] = [add_hook(OtelHook(tracer, capture_content=capture_content))]
        return _installed[0]


def uninstrument() -> None:
    """Stop recording spans (nothing happens when :func:`instrument` was not called)."""
    with _lock:
        for handle in _installed:
            remove_hook(handle.hook)
        _installed.clear()
