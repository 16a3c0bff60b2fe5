"""The chat-completions wire format, shared by ``OpenAIBackend`` and ``OpenAICompatibleBackend``.

The request body a :class:`~promptkit.backends.Request` becomes, the finish-reason vocabulary and
the message of an error reply, in one place, so that the SDK adapter and the direct HTTP adapter
send the same bytes and raise the same errors. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from promptkit._errors import ConfigurationError, ResponseError
from promptkit._images import check_image_limit
from promptkit._messages import Chunk, Completion, FinishReason, ImagePart, Message, TextPart, Usage

from ._contract import Request
from ._preview import RequestPreview, preview_of
from ._streams import stream_incomplete

__all__ = [
    "FINISH",
    "StreamState",
    "MAX_CHOICES",
    "ChatWire",
    "DIALECTS",
    "chat_body",
    "constraint_fields",
    "chat_preview",
    "max_tokens_field_for",
    "message_json",
    "plain",
    "reasoning_of",
    "served_by",
    "status_message",
    "wire_usage",
]

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def max_tokens_field_for(base_url: str | None, given: str | None) -> str:
    """``max_completion_tokens`` for OpenAI itself, ``max_tokens`` for compatible servers, or ``given``."""
    if given not in (None, "max_tokens", "max_completion_tokens"):
        raise ConfigurationError("max_tokens_field must be 'max_tokens' or 'max_completion_tokens'")
    official = base_url is None or "api.openai.com" in base_url
    return given or ("max_completion_tokens" if official else "max_tokens")


DIALECTS = ("vllm", "vllm-guided", "sglang")
"""How a server takes a ``constraint``: vLLM 0.12 and later, vLLM before 0.12, SGLang."""


def constraint_fields(constraint: Mapping[str, Any], dialect: str) -> dict[str, Any]:
    """The body fields that ask a ``dialect`` server to decode under ``constraint``.

    ``vllm`` sends ``structured_outputs: {kind: value}``; ``vllm-guided`` the older
    ``guided_<kind>`` fields (removed in vLLM 0.12); ``sglang`` its ``regex`` and ``ebnf`` fields
    and a ``json_schema`` response format, a choice as a regex of the escaped labels.

    >>> constraint_fields({"choice": ("yes", "no")}, "vllm")
    {'structured_outputs': {'choice': ['yes', 'no']}}
    >>> constraint_fields({"choice": ("yes", "no")}, "sglang")
    {'regex': '(?:yes|no)'}
    """
    ((kind, value),) = constraint.items()
    value = plain(value)
    if dialect == "vllm":
        return {"structured_outputs": {kind: value}}
    if dialect == "vllm-guided":
        return {f"guided_{kind}": value}
    if dialect != "sglang":
        raise ConfigurationError(f"constrained decoding dialect must be one of {DIALECTS}, not {dialect!r}")
    if kind == "json":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": value}}}
    if kind == "choice":
        import re

        return {"regex": "(?:" + "|".join(re.escape(label) for label in value) + ")"}
    return {"regex" if kind == "regex" else "ebnf": value}


def chat_body(
    model: str,
    request: Request,
    *,
    max_tokens_field: str,
    stream: bool,
    stream_usage: bool,
    dialect: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The JSON body of a chat completion for ``request``, and its ``extra`` fields apart.

    The SDK takes the extras as ``extra_body`` and merges them over the body's top level; a
    direct client merges them itself. A ``constraint`` goes in the fields of ``dialect``.
    """
    params = request.params
    body: dict[str, Any] = {"model": model, "messages": [message_json(m) for m in request.messages]}
    extra = None
    if params:
        for key in ("temperature", "top_p", "seed"):
            if key in params:
                body[key] = params[key]
        if "max_tokens" in params:
            body[max_tokens_field] = params["max_tokens"]
        if "stop" in params:
            body["stop"] = list(params["stop"])
        schema = params.get("output_schema")
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema["name"],
                    "schema": plain(schema["schema"]),
                    "strict": bool(schema.get("strict", True)),
                },
            }
        constraint = params.get("constraint")
        if constraint is not None:
            if dialect is None:
                raise ConfigurationError("this backend has no constrained decoding dialect for 'constraint'")
            body.update(constraint_fields(constraint, dialect))
        if "extra" in params:
            extra = plain(params["extra"])
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body, extra


OPENAI_URL = "https://api.openai.com/v1"


def chat_preview(
    request: Request,
    *,
    model: str,
    base_url: str | None,
    headers: dict[str, str],
    max_tokens_field: str,
    stream: bool,
    stream_usage: bool,
    dialect: str | None = None,
) -> RequestPreview:
    """The chat-completions request for ``request``: URL, the given headers, JSON body."""
    body, extra = chat_body(
        model,
        request,
        max_tokens_field=max_tokens_field,
        stream=stream,
        stream_usage=stream_usage,
        dialect=dialect,
    )
    if extra is not None:
        body.update(extra)  # the SDK's extra_body and the direct client both merge them at the top
    return preview_of(
        request,
        body=body,
        model=model,
        provider=served_by(base_url),
        url=(base_url or OPENAI_URL).rstrip("/") + "/chat/completions",
        method="POST",
        headers=headers,
    )


def message_json(message: Message) -> dict[str, Any]:
    content = message.content
    if isinstance(content, str):
        return {"role": message.role, "content": content}
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            check_image_limit(part, "openai")
            image_url = {"url": part.url} if part.detail is None else {"url": part.url, "detail": part.detail}
            parts.append({"type": "image_url", "image_url": image_url})
    return {"role": message.role, "content": parts}


def plain(value: Any) -> Any:
    """Read-only mappings and tuples to plain dicts and lists, for a JSON encoder."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def status_message(status: int, content: bytes) -> str:
    """The message of an error reply: the body's ``error.message``, else ``Error code: <status>``.

    The same words the ``openai`` SDK's status errors give ``OpenAIBackend``.

    >>> status_message(429, b'{"error": {"message": "slow down"}}')
    'slow down'
    >>> status_message(502, b"<html>Bad gateway</html>")
    'Error code: 502'
    """
    text = f"Error code: {status}"
    try:
        body: Any = json.loads(content.decode("utf-8", errors="replace").strip())
    except ValueError:
        return text
    data = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        message = data.get("message")
        if isinstance(message, str) and message:
            return f"{text} - {message}"
    return text


def _field(obj: Any, name: str) -> Any:
    """A field of a reply part, whether the SDK's object or the plain JSON ``dict``."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def wire_usage(usage: Any) -> Usage:
    """promptkit's Usage from a reply's ``usage``: ``prompt_tokens`` already counts cached ones."""
    if usage is None:
        return Usage()
    prompt = _field(usage, "prompt_tokens_details")
    completion = _field(usage, "completion_tokens_details")
    return Usage(
        input_tokens=_field(usage, "prompt_tokens") or 0,
        output_tokens=_field(usage, "completion_tokens") or 0,
        cached_input_tokens=(_field(prompt, "cached_tokens") if prompt is not None else None) or 0,
        cache_write_tokens=(_field(prompt, "cache_write_tokens") if prompt is not None else None) or 0,
        reasoning_tokens=(_field(completion, "reasoning_tokens") if completion is not None else None) or 0,
    )


def reasoning_of(message: Any) -> str | None:
    """The reasoning a compatible server sent apart from the content (vLLM, DeepSeek, ...)."""
    for name in ("reasoning_content", "reasoning"):
        value = _field(message, name)
        if isinstance(value, str) and value:
            return value
    return None


def served_by(base_url: str | None) -> str:
    """Who serves the replies, for price lookups: another server's "gpt-4o" is not OpenAI's price."""
    return "openai" if base_url is None or "api.openai.com" in base_url else "openai-compatible"


MAX_CHOICES = 128
"""The most choices the chat-completions API draws from one request (its ``n``)."""


class ChatWire:
    """What both OpenAI adapters share above the transport: replies read into completions, the
    end of a stream, the preview, and several replies from one request (``n``).

    The first reply is the adapter's own (with the request's whole usage); the others are read
    from the same raw reply. A server that ignores ``n`` returns one choice, and the caller asks
    again for the rest.
    """

    max_choices = MAX_CHOICES
    _dialect: str | None = None  # how ``constraint`` is sent (``DIALECTS``), None when it is not

    def _completion_from(self: _Wire, reply: Any, *, raw: Any) -> Completion:
        """The first choice of a chat completion (the SDK's object or the JSON ``dict``)."""
        choices = None if isinstance(reply, str) else _field(reply, "choices")
        if not choices:
            if isinstance(reply, str):
                snippet = reply.strip()[:80]
                raise ResponseError(f"{self.name}: the reply is not JSON (it starts {snippet!r})", provider=self.name)
            raise ResponseError(f"{self.name}: the reply has no choices", provider=self.name)
        choice = choices[0]
        message = _field(choice, "message")
        if not isinstance(message, dict) and not hasattr(message, "content"):
            raise ResponseError(f"{self.name}: the reply's choice holds no message", provider=self.name)
        text = _field(message, "content")
        if text is None:
            text = _field(message, "refusal") or ""
        if not isinstance(text, str):
            raise ResponseError(
                f"{self.name}: the reply's message content is a {type(text).__name__}, not text",
                provider=self.name,
            )
        return Completion(
            text=text,
            model=_field(reply, "model"),
            usage=wire_usage(_field(reply, "usage")),
            finish_reason=FINISH.get(_field(choice, "finish_reason") or ""),
            provider=self._served_by,
            raw=raw,
            reasoning=reasoning_of(message),
        )

    def _new_stream_state(self) -> StreamState:
        return StreamState()

    def _finish(self: _Wire, state: StreamState) -> Chunk:
        done = state.finish is not None and (state.usage is not None or not self._stream_usage)
        if not done:
            detail = "no finish reason arrived" if state.finish is None else "no usage arrived after the finish"
            if state.finish is not None:
                detail += " (if this server never sends usage on streams, pass stream_usage=False)"
            raise stream_incomplete(self.name, "".join(state.parts), detail)
        return Chunk(
            model=state.model,
            usage=state.usage or Usage(),
            finish_reason=state.finish,
            reasoning=state.reasoning,
            provider=self._served_by,
        )

    def preview_request(self: _Wire, request: Request, *, stream: bool = False) -> RequestPreview:
        """The chat-completions request for ``request``: URL, headers (the key masked), JSON body."""
        return chat_preview(
            request,
            model=self.model,
            base_url=self._base_url,
            headers=self._preview_headers(self._wire_headers()),
            max_tokens_field=self._max_tokens_field,
            stream=stream,
            stream_usage=self._stream_usage,
            dialect=self._dialect,
        )

    def complete_choices(self: _Sender, request: Request, n: int) -> list[Completion]:
        """Up to ``n`` replies to ``request`` in one call."""
        first = self.complete_request(_with_n(request, n))
        return [first, *_other_choices(first)]

    async def acomplete_choices(self: _Sender, request: Request, n: int) -> list[Completion]:
        """Async :meth:`complete_choices`."""
        first = await self.acomplete_request(_with_n(request, n))
        return [first, *_other_choices(first)]


class _Sender(Protocol):
    def complete_request(self, request: Request) -> Completion: ...

    async def acomplete_request(self, request: Request) -> Completion: ...


class _Wire(Protocol):
    model: str
    _served_by: str

    @property
    def name(self) -> str: ...

    _base_url: str | None
    _max_tokens_field: str
    _stream_usage: bool
    _dialect: str | None

    def _wire_headers(self) -> dict[str, str]: ...

    def _preview_headers(self, fallback: Mapping[str, str]) -> dict[str, str]: ...


def _with_n(request: Request, n: int) -> Request:
    if not 1 <= n <= MAX_CHOICES:
        raise ConfigurationError(f"n must be between 1 and {MAX_CHOICES} choices, not {n!r}")
    extra = {**(request.params.get("extra") or {}), "n": n}
    return dataclasses.replace(request, params=MappingProxyType({**request.params, "extra": extra}))


def _other_choices(first: Completion) -> list[Completion]:
    """The replies after the first in the raw reply, without usage (the first carries it)."""
    choices = _field(first.raw, "choices") or []
    others: list[Completion] = []
    for choice in sorted(choices, key=lambda c: _field(c, "index") or 0)[1:]:
        message = _field(choice, "message")
        text = _field(message, "content")
        if not isinstance(text, str):
            text = _field(message, "refusal") or ""
        others.append(
            Completion(
                text=text,
                model=first.model,
                finish_reason=FINISH.get(_field(choice, "finish_reason") or ""),
                provider=first.provider,
                raw=first.raw,
                reasoning=reasoning_of(message),
            )
        )
    return others


class StreamState:
    """What a chat-completions stream has said so far: text parts, model, usage, finish reason.

    Events are the SDK's chunk objects or the plain JSON dicts; both read the same way.
    """

    __slots__ = ("finish", "model", "parts", "thoughts", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.thoughts: list[str] = []  # reasoning deltas sent apart from the content
        self.model: str | None = None
        self.usage: Usage | None = None
        self.finish: FinishReason | None = None

    @property
    def reasoning(self) -> str | None:
        return "".join(self.thoughts) or None

    def absorb(self, event: Any) -> str:
        choices = _field(event, "choices")
        if choices is None:
            raise ResponseError(f"unexpected stream event {type(event).__name__} without choices")
        model = _field(event, "model")
        if model:
            self.model = model
        usage = _field(event, "usage")
        if usage is not None:
            self.usage = wire_usage(usage)
        if not choices:
            return ""
        choice = choices[0]
        finish = _field(choice, "finish_reason")
        if finish:
            self.finish = FINISH.get(finish, "stop")
        delta = _field(choice, "delta")
        if delta is not None:
            thought = reasoning_of(delta)
            if thought:
                self.thoughts.append(thought)
        content = _field(delta, "content") if delta is not None else None
        if content is not None and not isinstance(content, str):
            raise ResponseError(f"a stream delta's content is a {type(content).__name__}, not text")
        text: str = content or ""
        if text:
            self.parts.append(text)
        return text
