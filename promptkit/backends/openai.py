"""``OpenAIBackend``: OpenAI chat completions through the official ``openai`` SDK.

It also serves OpenAI-compatible servers (vLLM, Ollama, llama.cpp, ...) through ``base_url``;
:class:`OpenAICompatibleBackend`, also here, speaks the same wire format without the SDK, for
many concurrent calls at a fraction of the client CPU.
The SDK is imported on first use, not at ``import promptkit``; its clients are built once and
reused, with the SDK's own retries off (``max_retries=0``) so that promptkit retries in exactly one
place (see ``promptkit.backends._retry``).

>>> from promptkit.backends.openai import OpenAIBackend
>>> llm = OpenAIBackend(model="gpt-4o-mini", api_key="sk-test-0123456789")
>>> llm
<OpenAIBackend openai:gpt-4o-mini api_key='sk-...89'>
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from promptkit._errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    ResponseError,
    ServerError,
)
from promptkit._messages import Completion

from . import COMMON_PARAMS, Request, check_real_request
from ._openai_compatible import OpenAICompatibleBackend
from ._openai_wire import (
    ChatWire,
    chat_body,
    max_tokens_field_for,
    served_by,
)
from ._retry import Deadline, RetryPolicy, aretry_call, retry_call
from ._sdkbase import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    SDKBackend,
    error_for_status,
    fallback_error,
    is_timeout,
    raise_typed,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["OpenAIBackend", "OpenAICompatibleBackend", "map_openai_error"]


class OpenAIBackend(ChatWire, SDKBackend):
    """Chat completions over the official ``openai`` SDK, sync, async and streaming.

    ``api_key`` defaults to ``OPENAI_API_KEY``; ``base_url`` points at an OpenAI-compatible
    server (a key is then optional). ``client`` / ``async_client`` take your own configured
    ``openai.OpenAI`` / ``openai.AsyncOpenAI`` (used as given, except that promptkit does the
    retrying; they are never closed by the backend). ``connect_timeout`` and ``read_timeout``
    bound each connection and each wait for bytes; ``retry`` sets attempts, the default total
    deadline and the ``Retry-After`` cap. ``max_tokens_field`` is ``"max_completion_tokens"``
    for OpenAI itself and ``"max_tokens"`` for compatible servers unless given. ``stream_usage``
    asks for usage on streams (``stream_options.include_usage``) and then requires it: turn it
    off for a server that never sends it. ``async_http="auto"`` uses the SDK's aiohttp client for
    async calls when ``aiohttp`` is installed (faster under concurrency), else httpx.

    >>> OpenAIBackend(model="llama3", base_url="http://127.0.0.1:8000/v1").name
    'openai:llama3'
    """

    _supported_params = COMMON_PARAMS | {"output_schema"}
    provider = "openai"
    sdk_module = "openai"
    extra_name = "openai"
    env_key = "OPENAI_API_KEY"

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        client: Any = None,
        async_client: Any = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None,
        stream_usage: bool = True,
        embedding_model: str = "text-embedding-3-small",
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
        self._organization = organization
        self._max_tokens_field = max_tokens_field_for(self._base_url, max_tokens_field)
        self._served_by = served_by(self._base_url)
        self._stream_usage = stream_usage
        self.embedding_model = embedding_model

    def _default_base_url(self) -> str | None:
        import os

        return os.environ.get("OPENAI_BASE_URL") or None

    # -- clients ----------------------------------------------------------------------------------
    def _client_options(self, sdk: ModuleType) -> dict[str, Any]:
        import httpx2

        return {
            "api_key": self._require_key(),
            "base_url": self._base_url,
            "organization": self._organization,
            "max_retries": 0,
            "timeout": httpx2.Timeout(self._read_timeout, connect=self._connect_timeout),
        }

    def _make_sync_client(self, sdk: ModuleType) -> Any:
        from ._http import deadline_hook, install_deadline_network

        http = install_deadline_network(sdk.DefaultHttpxClient(event_hooks={"response": [deadline_hook]}))
        return sdk.OpenAI(http_client=http, **self._client_options(sdk))

    def _make_async_client(self, sdk: ModuleType) -> Any:
        http = sdk.DefaultAioHttpClient() if self._use_aiohttp() else sdk.DefaultAsyncHttpxClient()
        return sdk.AsyncOpenAI(http_client=http, **self._client_options(sdk))

    # -- requests ---------------------------------------------------------------------------------
    def _arguments(self, request: Request, deadline: Deadline, *, stream: bool) -> dict[str, Any]:
        from ._http import attempt_timeout

        args, extra = chat_body(
            self.model,
            request,
            max_tokens_field=self._max_tokens_field,
            stream=stream,
            stream_usage=self._stream_usage,
        )
        args["timeout"] = attempt_timeout(self._connect_timeout, self._read_timeout, deadline)
        if extra is not None:
            args["extra_body"] = extra
        return args

    def _wire_headers(self) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self._api_key or ''}", "content-type": "application/json"}
        if self._organization:
            headers["openai-organization"] = self._organization
        return headers

    def _send(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        return client.chat.completions.create(**self._arguments(request, deadline, stream=stream))

    async def _asend(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        return await client.chat.completions.create(**self._arguments(request, deadline, stream=stream))

    # -- replies ----------------------------------------------------------------------------------
    def _to_completion(self, reply: Any) -> Completion:
        return self._completion_from(reply, raw=reply)

    def _map_error(self, exc: BaseException, deadline: Deadline | None = None) -> BackendError:
        return map_openai_error(exc, self.name, deadline)

    # -- embeddings -------------------------------------------------------------------------------
    def embed(
        self,
        texts: Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: float | None = None,
    ) -> list[list[float]]:
        """Embed ``texts`` with the embeddings endpoint, in order, with the same retries and errors.

        ``model`` defaults to the backend's ``embedding_model``; ``dimensions`` asks for shorter
        vectors where the model supports it.
        """
        texts = _check_texts(texts)
        if not texts:
            return []
        deadline = Deadline(timeout if timeout is not None else self.retry.deadline)
        client = self.sync_client()
        from ._http import deadline_scope

        def attempt() -> list[list[float]]:
            check_real_request(self.name, self._base_url)
            try:
                with deadline_scope(deadline):
                    reply = client.embeddings.create(**self._embed_args(texts, model, dimensions, deadline))
                return _vectors(reply, len(texts), self.name)
            except Exception as exc:
                raise_typed(self._map_error(exc, deadline), exc)

        return retry_call(attempt, policy=self.retry, deadline=deadline, provider=self.name)

    async def aembed(
        self,
        texts: Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: float | None = None,
    ) -> list[list[float]]:
        """Async :meth:`embed`."""
        texts = _check_texts(texts)
        if not texts:
            return []
        deadline = Deadline(timeout if timeout is not None else self.retry.deadline)
        client = self.async_client()

        async def attempt() -> list[list[float]]:
            check_real_request(self.name, self._base_url)
            try:
                reply = await client.embeddings.create(**self._embed_args(texts, model, dimensions, deadline))
                return _vectors(reply, len(texts), self.name)
            except Exception as exc:
                raise_typed(self._map_error(exc, deadline), exc)

        return await aretry_call(attempt, policy=self.retry, deadline=deadline, provider=self.name)

    def _embed_args(
        self, texts: list[str], model: str | None, dimensions: int | None, deadline: Deadline
    ) -> dict[str, Any]:
        from ._http import attempt_timeout

        args: dict[str, Any] = {
            "model": model or self.embedding_model,
            "input": texts,
            "timeout": attempt_timeout(self._connect_timeout, self._read_timeout, deadline),
        }
        if dimensions is not None:
            args["dimensions"] = dimensions
        return args


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigurationError("embed() takes a sequence of strings; wrap a single text in a list")
    out = list(texts)
    if not all(isinstance(t, str) for t in out):
        raise ConfigurationError("embed() takes a sequence of strings")
    return out


def _vectors(reply: Any, expected: int, provider: str) -> list[list[float]]:
    data = getattr(reply, "data", None)
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else type(reply).__name__
        raise ResponseError(f"{provider}: expected {expected} embeddings, got {got}", provider=provider)
    ordered = sorted(data, key=lambda item: item.index)
    return [list(map(float, item.embedding)) for item in ordered]


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


def map_openai_error(exc: BaseException, provider: str, deadline: Deadline | None = None) -> BackendError:
    """Map any exception from the ``openai`` SDK (or below it) to a promptkit error.

    The one place where OpenAI's errors meet promptkit's tree: statuses by class, timeouts and
    connection failures, malformed bodies and streams. The SDK exception stays as ``__cause__``
    (in process only: pickling a promptkit error drops it, with its request headers).
    """
    if isinstance(exc, BackendError):
        return exc

    sdk = sys.modules.get("openai")
    if deadline is not None and deadline.expired() and is_timeout(exc, sdk):
        return deadline.error(provider)
    if sdk is not None:
        if isinstance(exc, sdk.APIStatusError):
            return error_for_status(exc.status_code, _status_message(exc), exc.response.headers, provider)
        if isinstance(exc, sdk.APITimeoutError):
            return BackendTimeoutError(f"{provider}: the request timed out", provider=provider)
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__
            detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            return BackendConnectionError(f"{provider}: connection error{detail}", provider=provider)
        if isinstance(exc, sdk.APIError):
            # An error object inside a 200 event stream.
            return ServerError(f"{provider}: error event in the stream: {_status_message(exc)}", provider=provider)
    return fallback_error(exc, provider, sdk.OpenAIError if sdk is not None else None)
