"""A loopback HTTP server that speaks the OpenAI and Anthropic wire formats, with faults.

:class:`ProviderServer` runs in a thread on ``127.0.0.1`` (an ephemeral port), answers chat
completions (``POST /v1/chat/completions``), messages (``POST /v1/messages``) and embeddings
(``POST /v1/embeddings``) from a script of :class:`ServerReply` objects (the items of OpenAI and Anthropic
batches too: ``promptkit.testing._server_batches``), records every request, and can
inject the faults real providers and proxies produce: error statuses with ``Retry-After``,
connection resets, streams cut before their final event, malformed SSE, slow first bytes and slow
trickles. Point the official SDKs (or anything else) at it: the SDKs parse its replies, so its
formats are checked by them.

>>> from promptkit.testing import ProviderServer, ServerReply  # doctest: +SKIP
>>> with ProviderServer(["Hello!"]) as server:  # doctest: +SKIP
...     import openai
...     client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
...     client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])

Only the standard library is used, so users can run it wherever promptkit is installed.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple, Union

from typing_extensions import Self

from ._server_batches import BatchEndpoints, BatchScript

__all__ = ["BatchScript", "ProviderServer", "RecordedRequest", "ReplyLike", "ServerReply"]

Fault = Literal[
    "reset",  # close the connection with a TCP reset before any byte of the reply
    "reset_mid_stream",  # send ``after`` stream events, then reset the connection
    "cut",  # send ``after`` stream events, then end the body cleanly without the final event
    "malformed_sse",  # send ``after`` events, then a data line that is not JSON
    "invalid_utf8",  # send ``after`` events, then a data line with invalid UTF-8
    "html",  # answer 200 with an HTML page (a captive portal or proxy error page)
    "json_for_stream",  # answer a stream request with a plain JSON completion
    "stream_error",  # Anthropic: send ``after`` events, then an ``error`` event (status stays 200)
    "stall",  # send half the body (or ``after`` stream events), go quiet ``pause`` seconds, then the rest
]

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})

# Unified finish reasons to each provider's own words.
_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True, kw_only=True)
class ServerReply:
    """One scripted answer: a text completion, an error status, or a fault.

    ``text`` is the completion; ``finish_reason`` uses promptkit's vocabulary (``stop``,
    ``length``, ...) and is translated per provider. ``delay`` waits before the first byte;
    ``trickle`` sends the reply one byte at a time with that many seconds between bytes;
    ``pause`` is how long a ``stall`` fault goes quiet mid-body; ``header_trickle`` sends the
    status line and headers one byte at a time with that many seconds between bytes.
    ``chunk_size`` is the number of characters per streamed delta. Token counts default to the
    number of whitespace-separated words. ``input_tokens`` counts every input token the way
    promptkit's ``Usage`` does; ``cached_input_tokens`` and ``cache_write_tokens`` (parts of it)
    and ``reasoning_tokens`` (part of ``output_tokens``) are written in each wire format's own
    fields: OpenAI's ``prompt_tokens_details`` / ``completion_tokens_details``, Anthropic's
    ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` (its ``input_tokens`` then
    leaves them out) and ``output_tokens_details.thinking_tokens``.

    >>> ServerReply(text="Paris").text
    'Paris'
    >>> ServerReply.error(429, retry_after=2).status
    429
    """

    text: str = ""
    finish_reason: str = "stop"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | str | None = None
    message: str | None = None
    fault: Fault | None = None
    after: int = 1
    delay: float = 0.0
    trickle: float = 0.0
    pause: float = 0.0
    header_trickle: float = 0.0
    raw_body: Any = None
    raw_events: tuple[Any, ...] | None = None
    chunk_size: int = 4
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def error(
        cls,
        status: int,
        *,
        retry_after: float | str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ServerReply:
        """An error status with the provider's error body; ``retry_after`` sets ``Retry-After``
        (seconds, or an HTTP date string)."""
        return cls(status=status, retry_after=retry_after, message=message, headers=dict(headers or {}))

    @classmethod
    def inject(cls, fault: Fault, *, after: int = 1, text: str = "partial reply text") -> ServerReply:
        """A fault; ``after`` counts the stream events sent before it strikes."""
        return cls(fault=fault, after=after, text=text)

    @classmethod
    def reset(cls) -> ServerReply:
        """Reset the connection before any byte of the reply."""
        return cls(fault="reset")

    @classmethod
    def reset_mid_stream(cls, *, after: int = 2, text: str = "partial reply text") -> ServerReply:
        """Send ``after`` stream events, then reset the connection."""
        return cls.inject("reset_mid_stream", after=after, text=text)

    @classmethod
    def cut(cls, *, after: int = 2, text: str = "partial reply text") -> ServerReply:
        """Send ``after`` stream events, then end the body without the final event."""
        return cls.inject("cut", after=after, text=text)

    @classmethod
    def malformed_sse(cls, *, after: int = 1, text: str = "partial reply text") -> ServerReply:
        """Send ``after`` stream events, then a ``data:`` line that is not JSON."""
        return cls.inject("malformed_sse", after=after, text=text)

    @classmethod
    def invalid_utf8(cls, *, after: int = 1, text: str = "partial reply text") -> ServerReply:
        """Send ``after`` stream events, then bytes that are not UTF-8."""
        return cls.inject("invalid_utf8", after=after, text=text)

    @classmethod
    def stall(cls, pause: float, *, after: int = 1, text: str = "a reply that stalls") -> ServerReply:
        """Send the headers and half the body (or ``after`` stream events), then nothing for
        ``pause`` seconds, then the rest: a server that hangs mid-body."""
        return cls(fault="stall", pause=pause, after=after, text=text)

    @classmethod
    def trickle_headers(cls, interval: float, *, text: str = "a reply behind slow headers") -> ServerReply:
        """Send the status line and headers one byte every ``interval`` seconds, then the reply."""
        return cls(header_trickle=interval, text=text)

    @classmethod
    def raw(cls, body: Any) -> ServerReply:
        """Answer a completion request with ``body`` as the JSON payload, exactly as given
        (to test replies that are well-formed JSON but not a valid completion)."""
        return cls(raw_body=body)

    @classmethod
    def raw_stream(cls, *events: Any) -> ServerReply:
        """Answer a stream request with these JSON events, exactly as given, and nothing else.

        Anthropic events are named after their ``type`` field, as the API names them.
        """
        return cls(raw_events=events)

    @classmethod
    def html(cls) -> ServerReply:
        """A 200 answer with an HTML body, as a captive portal or broken proxy sends."""
        return cls(fault="html")

    @classmethod
    def json_for_stream(cls, text: str = "not a stream") -> ServerReply:
        """Answer a stream request with a JSON completion (``application/json``)."""
        return cls(fault="json_for_stream", text=text)

    @classmethod
    def stream_error(
        cls, *, after: int = 2, message: str = "Overloaded", text: str = "partial reply text"
    ) -> ServerReply:
        """Anthropic's mid-stream ``error`` event after ``after`` events; the status stays 200."""
        return cls(fault="stream_error", after=after, message=message, text=text)


ReplyLike = Union[ServerReply, str]  # noqa: UP007 - a runtime alias must work on Python 3.10
"""A :class:`ServerReply` or a plain string (a successful completion with that text)."""


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """A request the server received: method, path, headers (secrets masked) and JSON body.

    ``batch`` is the id of the provider batch a request was an item of (its ``path`` is then the
    endpoint the item names, ``/v1/chat/completions`` or ``/v1/messages``), else ``None``.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    time: float = 0.0
    batch: str | None = None

    @property
    def provider(self) -> str:
        """``"openai"``, ``"anthropic"`` or ``"embeddings"`` (from the path), else ``"unknown"``."""
        return _route(self.path)

    @property
    def stream(self) -> bool:
        """True when the request asked for a server-sent-event stream."""
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


def _route(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/embeddings"):
        return "embeddings"
    return "unknown"


def _words(value: Any) -> int:
    """Count whitespace-separated words in every string inside ``value`` (a stand-in for tokens)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(v) for k, v in value.items() if k in ("content", "text", "system", "input"))
    if isinstance(value, (list, tuple)):
        return sum(_words(v) for v in value)
    return 0


def embedding_for(text: str, dim: int) -> list[float]:
    """The server's deterministic unit vector for ``text``: derived from SHA-256, stable across runs."""
    values: list[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dim]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Round-trip through float32 so base64 and float answers agree exactly.
    return [struct.unpack("f", struct.pack("f", v / norm))[0] for v in values]


def _raw_events(events: Iterable[Any], provider: str) -> list[bytes]:
    out = []
    for event in events:
        data = b"data: " + json.dumps(event).encode() + b"\n\n"
        if provider == "anthropic" and isinstance(event, Mapping):
            data = f"event: {event.get('type', 'message')}\n".encode() + data
        out.append(data)
    if provider == "openai":
        out.append(b"data: [DONE]\n\n")
    return out


class _Reset(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside the handler to abort the connection with a TCP reset."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes must not wait for delayed ACKs
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.server.owner.batches.handles(self.path):
            self.server.owner.batches.handle(self, "GET", b"")
            return
        version = self.server.owner.version
        if version is not None and self.path.split("?", 1)[0].rstrip("/") == "/version":
            self._send_json(200, {"version": version})
            return
        self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.server.owner.batches.handles(self.path):  # files and batches: no scripted reply used
            self.server.owner.batches.handle(self, "POST", raw)
            return
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): ("***" if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        request = RecordedRequest(method="POST", path=self.path, headers=headers, body=body, time=time.monotonic())
        owner = self.server.owner
        reply = owner._next_reply(request)
        try:
            self._answer(request, reply)
        except _Reset:
            self._reset()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    # -- low-level writing ------------------------------------------------------------------
    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def _write(self, data: bytes, reply: ServerReply) -> None:
        if reply.trickle > 0:
            for i in range(len(data)):
                if self.server.owner._stopping.is_set():
                    raise _Reset
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(reply.trickle)
        else:
            self.wfile.write(data)
            self.wfile.flush()

    def _head(
        self, status: int, content_type: str, extra: Mapping[str, str], length: int | None, reply: ServerReply
    ) -> None:
        self.send_response_only(status)
        self.send_header("content-type", content_type)
        if length is None:
            self.send_header("transfer-encoding", "chunked")
        else:
            self.send_header("content-length", str(length))
        if not any(k.lower() in ("x-request-id", "request-id") for k in extra):
            self.send_header("x-request-id", "req_test")  # as both providers send one
            self.send_header("request-id", "req_test")
        for k, v in extra.items():
            self.send_header(k, v)
        if reply.header_trickle > 0:
            buffer: list[bytes] = getattr(self, "_headers_buffer", [])  # filled by send_header
            data = b"".join([*buffer, b"\r\n"])
            buffer.clear()
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                if self.server.owner._stopping.wait(reply.header_trickle):
                    raise _Reset
            return
        self.end_headers()

    def _send_json(
        self, status: int, payload: Any, reply: ServerReply | None = None, extra: Mapping[str, str] = {}
    ) -> None:
        data = json.dumps(payload).encode()
        self._send_bytes(status, "application/json", data, reply or ServerReply(), extra)

    def _send_plain(self, status: int, content_type: str, data: bytes) -> None:
        self._send_bytes(status, content_type, data, ServerReply(), {})

    def _send_bytes(
        self, status: int, content_type: str, data: bytes, reply: ServerReply, extra: Mapping[str, str]
    ) -> None:
        self._head(status, content_type, extra, len(data), reply)
        if reply.fault == "stall":
            half = len(data) // 2
            self._write(data[:half], reply)
            self._quiet(reply)
            data = data[half:]
        self._write(data, reply)

    def _quiet(self, reply: ServerReply) -> None:
        """Send nothing for ``reply.pause`` seconds (a stall), unless the server is stopping."""
        self.wfile.flush()
        if self.server.owner._stopping.wait(reply.pause):
            raise _Reset

    # -- answering ----------------------------------------------------------------------------
    def _answer(self, request: RecordedRequest, reply: ServerReply) -> None:
        if reply.delay > 0 and self.server.owner._stopping.wait(reply.delay):
            raise _Reset
        if reply.fault == "reset":
            raise _Reset
        provider = request.provider
        body = request.body if isinstance(request.body, dict) else {}
        extra = dict(reply.headers)
        if reply.retry_after is not None:
            ra = reply.retry_after
            extra["retry-after"] = ra if isinstance(ra, str) else f"{ra:g}"
        if provider == "unknown":
            self._send_json(404, {"error": {"message": f"no route for {request.path}", "type": "not_found"}})
            return
        if reply.status >= 400:
            self._send_json(reply.status, self._error_body(provider, reply), reply, extra)
            return
        if reply.fault == "html":
            page = b"<!DOCTYPE html><html><body><h1>Gateway login</h1></body></html>"
            self._send_bytes(200, "text/html; charset=utf-8", page, reply, extra)
            return
        if provider == "embeddings":
            self._send_json(200, self._embeddings(body), reply, extra)
            return
        model = reply.model or str(body.get("model") or "test-model")
        usage = _Tokens.of(body, reply)
        if reply.raw_events is not None and body.get("stream"):
            self._stream(iter(_raw_events(reply.raw_events, provider)), reply, extra, provider)
            return
        if reply.raw_body is not None:
            self._send_json(200, reply.raw_body, reply, extra)
            return
        if body.get("stream") and reply.fault != "json_for_stream":
            events = (
                self._openai_events(body, reply, model, usage)
                if provider == "openai"
                else self._anthropic_events(reply, model, usage)
            )
            self._stream(events, reply, extra, provider)
            return
        payload = (
            self._openai_completion(reply, model, usage)
            if provider == "openai"
            else self._anthropic_message(reply, model, usage)
        )
        self._send_json(reply.status, payload, reply, extra)

    def _stream(self, events: Iterator[bytes], reply: ServerReply, extra: Mapping[str, str], provider: str) -> None:
        # Anthropic's SDK skips events without a name, so its bad data comes in a named event.
        prefix = b"event: content_block_delta\n" if provider == "anthropic" else b""
        self._head(
            reply.status, "text/event-stream; charset=utf-8", {"cache-control": "no-cache", **extra}, None, reply
        )
        fault = reply.fault
        for sent, event in enumerate(events):
            if fault is not None and sent >= reply.after:
                if fault == "reset_mid_stream":
                    raise _Reset
                if fault == "cut":
                    break
                if fault == "malformed_sse":
                    self._chunk(prefix + b'data: {"id": "x", "choices": [ {unterminated\n\n', reply)
                    break
                if fault == "invalid_utf8":
                    self._chunk(prefix + b'data: {"text": "\xff\xfe\xfd"}\n\n', reply)
                    break
                if fault == "stream_error":
                    err = {"type": "error", "error": {"type": "overloaded_error", "message": reply.message}}
                    self._chunk(b"event: error\ndata: " + json.dumps(err).encode() + b"\n\n", reply)
                    break
                if fault == "stall" and sent == reply.after:
                    self._quiet(reply)
            self._chunk(event, reply)
        self._write(b"0\r\n\r\n", reply)

    def _chunk(self, data: bytes, reply: ServerReply) -> None:
        self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n", reply)

    @staticmethod
    def _error_body(provider: str, reply: ServerReply) -> Any:
        message = reply.message or f"scripted error {reply.status}"
        if provider == "anthropic":
            kind = _ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error")
            return {"type": "error", "error": {"type": kind, "message": message}}
        kind = _OPENAI_ERROR_TYPES.get(reply.status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    @staticmethod
    def _pieces(text: str, size: int) -> list[str]:
        size = max(1, size)
        return [text[i : i + size] for i in range(0, len(text), size)]

    @staticmethod
    def _openai_completion(reply: ServerReply, model: str, usage: _Tokens) -> Any:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": usage.openai(),
        }

    def _openai_events(
        self, body: Mapping[str, Any], reply: ServerReply, model: str, usage: _Tokens
    ) -> Iterator[bytes]:
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model}

        def event(choices: list[Any], **more: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **more}).encode() + b"\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for piece in self._pieces(reply.text, reply.chunk_size):
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}])
        options = body.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage"):
            yield event([], usage=usage.openai())
        yield b"data: [DONE]\n\n"

    @staticmethod
    def _anthropic_message(reply: ServerReply, model: str, usage: _Tokens) -> Any:
        return {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": _ANTHROPIC_STOP.get(reply.finish_reason, reply.finish_reason),
            "stop_sequence": None,
            "usage": usage.anthropic(),
        }

    def _anthropic_events(self, reply: ServerReply, model: str, usage: _Tokens) -> Iterator[bytes]:
        def event(name: str, data: Any) -> bytes:
            return f"event: {name}\ndata: ".encode() + json.dumps(data).encode() + b"\n\n"

        start = self._anthropic_message(replace(reply, text=""), model, usage._replace(output=1, reasoning=0))
        start.update(content=[], stop_reason=None)
        yield event("message_start", {"type": "message_start", "message": start})
        yield event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        yield event("ping", {"type": "ping"})
        for piece in self._pieces(reply.text, reply.chunk_size):
            yield event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
        stop = _ANTHROPIC_STOP.get(reply.finish_reason, reply.finish_reason)
        yield event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage.output, **usage.anthropic_details()},
            },
        )
        yield event("message_stop", {"type": "message_stop"})

    def _embeddings(self, body: Mapping[str, Any]) -> Any:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in (inputs or [])]
        dim = body.get("dimensions") or self.server.owner.embedding_dim
        use_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = embedding_for(text, int(dim))
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if use_base64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model") or "test-embedding",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


class _Tokens(NamedTuple):
    """One reply's token counts in promptkit's convention (``input`` counts the cached tokens)."""

    input: int
    output: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, body: Mapping[str, Any], reply: ServerReply) -> _Tokens:
        """The counts a reply reports: the scripted ones, else words as a stand-in for tokens."""
        return cls(
            reply.input_tokens if reply.input_tokens is not None else _words(body.get("messages")) + _words(body),
            reply.output_tokens if reply.output_tokens is not None else len(reply.text.split()),
            reply.cached_input_tokens,
            reply.cache_write_tokens,
            reply.reasoning_tokens,
        )

    def openai(self) -> dict[str, Any]:
        prompt = {"cached_tokens": self.cached, "audio_tokens": 0}
        if self.cache_write:
            prompt["cache_write_tokens"] = self.cache_write
        return {
            "prompt_tokens": self.input,
            "completion_tokens": self.output,
            "total_tokens": self.input + self.output,
            "prompt_tokens_details": prompt,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "audio_tokens": 0},
        }

    def anthropic(self) -> dict[str, Any]:
        return {
            "input_tokens": max(0, self.input - self.cached - self.cache_write),
            "output_tokens": self.output,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": self.cache_write,
            **self.anthropic_details(),
        }

    def anthropic_details(self) -> dict[str, Any]:
        return {"output_tokens_details": {"thinking_tokens": self.reasoning}} if self.reasoning else {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many clients connecting at once must not be reset by a short backlog
    owner: ProviderServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets and aborted clients are part of the faults this server injects; stay quiet.
        pass


class ProviderServer:
    """A local OpenAI/Anthropic-compatible HTTP server in a thread, answering from a script.

    ``replies`` is a queue of :class:`ServerReply` (or plain strings) consumed one per request;
    ``rule`` (called with the :class:`RecordedRequest`) answers when the queue is empty, else
    ``default`` does; with neither, an empty queue answers 400 "script exhausted".
    ``embedding_dim`` sets the dimension of embedding vectors (a request's ``dimensions`` wins).
    ``version`` makes ``GET /version`` answer ``{"version": ...}``, as a vLLM server does.

    >>> with ProviderServer(["Hi there"]) as server:
    ...     server.openai_base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self,
        replies: Iterable[ReplyLike] = (),
        *,
        rule: Callable[[RecordedRequest], ReplyLike] | None = None,
        default: ReplyLike | None = None,
        embedding_dim: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str | None = None,
    ) -> None:
        self.version = version
        self._queue: collections.deque[ReplyLike] = collections.deque(replies)
        self.rule = rule
        self.default = default
        self.embedding_dim = embedding_dim
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._host = host
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.batches = BatchEndpoints(self._batch_item, self._record, _endpoint_request)
        """The files and batches endpoints' state; ``server.batches.script(BatchScript(...))`` sets
        how the next batches behave (see :class:`BatchScript`)."""

    # -- script ----------------------------------------------------------------------------------
    def add(self, *replies: ReplyLike) -> Self:
        """Append replies to the queue."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def _next_reply(self, request: RecordedRequest) -> ServerReply:
        with self._lock:
            self.requests.append(request)
            item: ReplyLike | None = self._queue.popleft() if self._queue else None
        if item is None and self.rule is not None:
            item = self.rule(request)
        if item is None:
            item = self.default
        if item is None:
            return ServerReply.error(400, message="ProviderServer: the script of replies is exhausted")
        return ServerReply(text=item) if isinstance(item, str) else item

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _batch_item(self, provider: str, body: Mapping[str, Any], batch: str) -> tuple[int, Any]:
        """One batch item answered as a single call would be: (status, JSON payload)."""
        path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
        request = RecordedRequest(method="POST", path=path, headers={}, body=body, time=time.monotonic(), batch=batch)
        reply = self._next_reply(request)
        if reply.status >= 400 or reply.fault is not None:  # a fault has no meaning inside a batch: a 500
            status = reply.status if reply.status >= 400 else 500
            return status, _Handler._error_body(provider, replace(reply, status=status))
        if reply.raw_body is not None:
            return 200, reply.raw_body
        model = reply.model or str(body.get("model") or "test-model")
        usage = _Tokens.of(body, reply)
        if provider == "openai":
            return 200, _Handler._openai_completion(reply, model, usage)
        return 200, _Handler._anthropic_message(reply, model, usage)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        return len(self._queue)

    # -- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; use it as a context manager or call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for OpenAI clients (``.../v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for Anthropic clients (the root: the SDK adds ``/v1/messages``)."""
        return self.url

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start serving in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Server((self._host, self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.name = f"ProviderServer:{httpd.server_address[1]}"
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; slow replies in flight are aborted."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<ProviderServer {where} requests={len(self.requests)} pending={self.pending}>"


def _endpoint_request(method: str, path: str, headers: Mapping[str, str], body: Any) -> RecordedRequest:
    masked = {k: ("***" if k in _SECRET_HEADERS else v) for k, v in headers.items()}
    return RecordedRequest(method=method, path=path, headers=masked, body=body, time=time.monotonic())


def http_date(seconds_from_now: float) -> str:
    """An HTTP date ``seconds_from_now`` in the future, for ``Retry-After`` tests."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual use and benchmarks
    """Serve forever with a fixed reply: ``python -m promptkit.testing._server [port] [text]``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 0
    text = args[1] if len(args) > 1 else "ok"
    server = ProviderServer(default=text, port=port).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
