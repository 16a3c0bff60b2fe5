"""``AnthropicBackend``: Claude through the official ``anthropic`` SDK's messages API.

System messages are split out into ``system``; ``max_tokens`` is required by the API, so the
backend sends :attr:`AnthropicBackend.default_max_tokens` (4096 unless configured) when a call
does not set it. The SDK is imported on first use; its clients are built once, with the SDK's
own retries off, so that promptkit retries in exactly one place.

>>> from promptkit.backends.anthropic import AnthropicBackend
>>> AnthropicBackend(model="claude-haiku-4-5", api_key="sk-ant-test-0123456789")
<AnthropicBackend anthropic:claude-haiku-4-5 api_key='sk-...89'>
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

from promptkit._errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    RateLimitError,
    ResponseError,
    ServerError,
)
from promptkit._images import check_images
from promptkit._messages import Chunk, Completion, FinishReason, ImagePart, Message, TextPart, Usage

from . import COMMON_PARAMS, Request, stream_incomplete
from ._preview import RequestPreview, preview_of
from ._retry import Deadline, RetryPolicy
from ._sdkbase import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    SDKBackend,
    error_for_status,
    fallback_error,
    is_timeout,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicBackend", "map_anthropic_error"]

DEFAULT_MAX_TOKENS = 4096
"""Sent as ``max_tokens`` when a call does not set it (the messages API requires a value)."""

ANTHROPIC_URL = "https://api.anthropic.com"

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicBackend(SDKBackend):
    """Claude over the official ``anthropic`` SDK, sync, async and streaming.

    ``api_key`` defaults to ``ANTHROPIC_API_KEY``. ``client`` / ``async_client`` take your own
    configured ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` (never closed by the
    backend). ``default_max_tokens`` is sent when a call does not set ``max_tokens``.
    ``temperature`` and ``top_p`` are sent as body fields (the installed SDK no longer lists
    them; models that reject them answer with a ``BadRequestError``); ``seed`` is not supported.
    ``output_schema`` becomes ``output_config.format`` (a JSON schema), the API's native
    structured output. Timeouts, ``retry`` and ``async_http`` work as for
    :class:`~promptkit.backends.openai.OpenAIBackend`.

    >>> AnthropicBackend(model="claude-sonnet-4-5", api_key="k" * 20).default_max_tokens
    4096
    """

    _supported_params = (COMMON_PARAMS - {"seed"}) | {"output_schema"}
    provider = "anthropic"
    sdk_module = "anthropic"
    extra_name = "anthropic"
    env_key = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        client: Any = None,
        async_client: Any = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        async_http: Literal["auto", "httpx", "aiohttp"] = "auto",
    ) -> None:
        super().__init__(
            model=model,
            api_key=api_key,
            base_url=base_url,
            client=client,
            async_client=async_client,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=retry,
            async_http=async_http,
        )
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int) or default_max_tokens < 1:
            raise ConfigurationError(f"default_max_tokens must be an int >= 1, not {default_max_tokens!r}")
        self.default_max_tokens = default_max_tokens

    def _default_base_url(self) -> str | None:
        import os

        return os.environ.get("ANTHROPIC_BASE_URL") or None

    # -- clients ----------------------------------------------------------------------------------
    def _client_options(self) -> dict[str, Any]:
        import httpx2

        options: dict[str, Any] = {
            "api_key": self._require_key(),
            "max_retries": 0,
            "timeout": httpx2.Timeout(self._read_timeout, connect=self._connect_timeout),
        }
        if self._base_url is not None:
            options["base_url"] = self._base_url
        return options

    def _make_sync_client(self, sdk: ModuleType) -> Any:
        from ._http import deadline_hook, install_deadline_network

        http = install_deadline_network(sdk.DefaultHttpxClient(event_hooks={"response": [deadline_hook]}))
        return sdk.Anthropic(http_client=http, **self._client_options())

    def _make_async_client(self, sdk: ModuleType) -> Any:
        http = sdk.DefaultAioHttpClient() if self._use_aiohttp() else sdk.DefaultAsyncHttpxClient()
        return sdk.AsyncAnthropic(http_client=http, **self._client_options())

    # -- requests ---------------------------------------------------------------------------------
    def _arguments(self, request: Request, deadline: Deadline, *, stream: bool) -> dict[str, Any]:
        from ._http import attempt_timeout

        args, body = self._sdk_arguments(request, stream=stream)
        args["timeout"] = attempt_timeout(self._connect_timeout, self._read_timeout, deadline)
        if body:
            args["extra_body"] = body
        return args

    def _sdk_arguments(self, request: Request, *, stream: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The keyword arguments of ``messages.create`` for ``request``, and the extra body fields."""
        system, messages = _split(request.messages)
        params = request.params
        args: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": params.get("max_tokens", self.default_max_tokens),
        }
        if system:
            args["system"] = system
        body: dict[str, Any] = {}
        if params:
            for key in ("temperature", "top_p"):
                if key in params:
                    body[key] = params[key]
            if "stop" in params:
                args["stop_sequences"] = list(params["stop"])
            schema = params.get("output_schema")
            if schema is not None:
                args["output_config"] = {"format": {"type": "json_schema", "schema": _plain(schema["schema"])}}
            if "extra" in params:
                body.update(_plain(params["extra"]))
        if stream:
            args["stream"] = True
        return args, body

    def preview_request(self, request: Request, *, stream: bool = False) -> RequestPreview:
        """The messages API request for ``request``: URL, headers (the key masked), JSON body."""
        args, extra = self._sdk_arguments(request, stream=stream)
        body = {**args, **extra}  # the SDK merges extra_body over the top level
        headers = {"x-api-key": self._api_key or "", "content-type": "application/json"}
        version = _api_version()
        if version is not None:
            headers["anthropic-version"] = version
        headers = self._preview_headers(headers)
        return preview_of(
            request,
            body=body,
            model=self.model,
            provider="anthropic",
            url=(self._base_url or ANTHROPIC_URL).rstrip("/") + "/v1/messages",
            method="POST",
            headers=headers,
            max_output_tokens=body["max_tokens"],
        )

    def _send(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        return client.messages.create(**self._arguments(request, deadline, stream=stream))

    async def _asend(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        return await client.messages.create(**self._arguments(request, deadline, stream=stream))

    # -- replies ----------------------------------------------------------------------------------
    def _to_completion(self, reply: Any) -> Completion:
        content = getattr(reply, "content", None)
        if not isinstance(content, list):
            if isinstance(reply, str):
                snippet = reply.strip()[:80]
                raise ResponseError(f"{self.name}: the reply is not JSON (it starts {snippet!r})", provider=self.name)
            raise ResponseError(f"{self.name}: the reply has no content blocks", provider=self.name)
        texts: list[str] = []
        thoughts: list[str] = []
        for block in content:
            if getattr(block, "type", None) == "thinking" and isinstance(getattr(block, "thinking", None), str):
                thoughts.append(block.thinking)
            if getattr(block, "type", None) == "text":
                piece = getattr(block, "text", None)
                if not isinstance(piece, str):
                    raise ResponseError(f"{self.name}: a text block of the reply carries no text", provider=self.name)
                texts.append(piece)
        text = "".join(texts)
        return Completion(
            text=text,
            model=reply.model,
            usage=_usage(reply.usage),
            finish_reason=_FINISH.get(reply.stop_reason or ""),
            provider="anthropic",
            raw=reply,
            reasoning="\n\n".join(thoughts) or None,
        )

    def _finish(self, state: _StreamState) -> Chunk:
        if not state.stopped:
            raise stream_incomplete(self.name, "".join(state.parts), "no message_stop event arrived")
        return Chunk(
            model=state.model,
            usage=_usage(SimpleNamespace(**state.counts)),
            finish_reason=state.finish,
            provider="anthropic",
        )

    def _new_stream_state(self) -> _StreamState:
        return _StreamState()

    def _map_error(self, exc: BaseException, deadline: Deadline | None = None) -> BackendError:
        return map_anthropic_error(exc, self.name, deadline)


class _StreamState:
    __slots__ = ("counts", "finish", "model", "parts", "stopped")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.model: str | None = None
        # The wire's usage fields as they arrive: message_start sets them, message_delta updates
        # the ones it carries (its counts are cumulative).
        self.counts: dict[str, Any] = {}
        self.finish: FinishReason | None = None
        self.stopped = False

    def absorb(self, event: Any) -> str:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            delta = event.delta
            if getattr(delta, "type", None) == "text_delta":
                text = getattr(delta, "text", None)
                if not isinstance(text, str):
                    raise ResponseError(f"a text_delta event carries no text (got {type(text).__name__})")
                self.parts.append(text)
                return text
        elif kind == "message_start":
            message = event.message
            self.model = message.model
            self._count(message.usage)
        elif kind == "message_delta":
            if event.delta.stop_reason:
                self.finish = _FINISH.get(event.delta.stop_reason)
            self._count(event.usage)
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def _count(self, usage: Any) -> None:
        if usage is None:
            return
        for name in _USAGE_FIELDS:
            value = getattr(usage, name, None)
            if value is not None:
                self.counts[name] = value


_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens_details",
)


def _api_version() -> str | None:
    """The ``anthropic-version`` header the installed SDK sends, if the SDK is installed."""
    try:
        from anthropic._constants import ANTHROPIC_API_VERSION
    except ImportError:
        return None
    return str(ANTHROPIC_API_VERSION)


def _usage(usage: Any) -> Usage:
    """promptkit's Usage from the API's: its ``input_tokens`` leaves out cache reads and writes,
    promptkit's counts them in (so input totals compare across providers)."""
    if usage is None:
        return Usage()
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    write = getattr(usage, "cache_creation_input_tokens", None) or 0
    details = getattr(usage, "output_tokens_details", None)
    return Usage(
        input_tokens=(getattr(usage, "input_tokens", None) or 0) + read + write,
        output_tokens=getattr(usage, "output_tokens", None) or 0,
        cached_input_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=getattr(details, "thinking_tokens", None) or 0,
    )


def _content(message: Message) -> str | list[dict[str, Any]]:
    content = message.content
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": _image_source(part)})
    return blocks


def _image_source(part: ImagePart) -> dict[str, str]:
    """An image part as Anthropic's source: base64 data for an inline image, else its URL."""
    if not part.url.startswith("data:"):
        return {"type": "url", "url": part.url}
    check_images([Message("user", (part,))], "anthropic")  # over the limit, not base64, another format
    header, _, data = part.url.partition(",")
    media = part.media_type or header[5:].split(";", 1)[0]
    return {"type": "base64", "media_type": media, "data": data}


def _split(messages: tuple[Message, ...]) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """System messages joined into one ``system`` string; the rest as user/assistant turns.

    A message with a ``cache`` breakpoint gets ``cache_control`` on its last content block (the
    system text becomes one block when a system message has it).
    """
    systems = [m for m in messages if m.role == "system"]
    joined = "\n\n".join(m.text for m in systems)
    breakpoints = [m.cache for m in systems if m.cache is not None]
    system: str | list[dict[str, Any]] = joined
    if breakpoints and joined:
        system = [
            {"type": "text", "text": joined, "cache_control": _cache_control("1h" if "1h" in breakpoints else "5m")}
        ]
    turns = []
    for m in messages:
        if m.role == "system":
            continue
        content = _content(m)
        if m.cache is not None:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if blocks:
                blocks[-1] = {**blocks[-1], "cache_control": _cache_control(m.cache)}
            content = blocks
        turns.append({"role": "assistant" if m.role == "assistant" else "user", "content": content})
    return system, turns


def _cache_control(ttl: str) -> dict[str, str]:
    """Anthropic's breakpoint: ephemeral, with the 1-hour lifetime named (5 minutes is the default)."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _plain(value: Any) -> Any:
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _error_info(exc: Any) -> tuple[str, str]:
    """The error's ``type`` and message from an Anthropic error body."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("type") or ""), str(inner.get("message") or getattr(exc, "message", exc))
    return "", str(getattr(exc, "message", exc))


def map_anthropic_error(exc: BaseException, provider: str, deadline: Deadline | None = None) -> BackendError:
    """Map any exception from the ``anthropic`` SDK (or the ``httpx2`` below it) to a promptkit error.

    The installed SDK lets raw ``httpx2`` errors out of a stream cut mid-chunk or stalled, and
    reports a mid-stream ``error`` event as a status error with status 200: both land here.
    """
    if isinstance(exc, BackendError):
        return exc

    sdk = sys.modules.get("anthropic")
    if deadline is not None and deadline.expired() and is_timeout(exc, sdk):
        return deadline.error(provider)
    if sdk is not None:
        if isinstance(exc, sdk.APIStatusError):
            kind, message = _error_info(exc)
            status = exc.status_code
            if status < 400:  # an ``error`` event inside a 200 stream
                text = f"{provider}: error event in the stream ({kind or 'error'}): {message}"
                if kind in ("overloaded_error", "rate_limit_error"):
                    return RateLimitError(text, provider=provider)
                return ServerError(text, provider=provider)
            return error_for_status(
                status, f"{kind}: {message}" if kind else message, exc.response.headers, provider, overloaded=(529,)
            )
        if isinstance(exc, sdk.APITimeoutError):
            return BackendTimeoutError(f"{provider}: the request timed out", provider=provider)
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__
            detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            return BackendConnectionError(f"{provider}: connection error{detail}", provider=provider)
    return fallback_error(exc, provider, sdk.AnthropicError if sdk is not None else None)
