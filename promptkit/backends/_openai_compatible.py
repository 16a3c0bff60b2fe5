"""``OpenAICompatibleBackend``: chat completions straight over HTTP, without the ``openai`` SDK.

For OpenAI-compatible servers (vLLM, SGLang, llama.cpp, Ollama, ...) and OpenAI itself: the same
requests, results and errors as :class:`~promptkit.backends.openai.OpenAIBackend`, at a fraction
of the client CPU per call, because the SDK's request options, headers and response models are
skipped. Sync calls go over an ``httpx2`` client, async calls over ``aiohttp`` when it is
installed (else ``httpx2``); replies are parsed as plain JSON. Retries, deadlines, streams and
the error statuses are the ones :class:`~promptkit.backends._sdkbase.SDKBackend` gives every
adapter.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from promptkit._errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    ServerError,
)
from promptkit._messages import Completion
from promptkit._utils import require

from ._contract import COMMON_PARAMS, Request
from ._gate import check_real_request
from ._openai_wire import (
    DIALECTS,
    OPENAI_URL,
    ChatWire,
    chat_body,
    max_tokens_field_for,
    served_by,
    status_message,
)
from ._retry import Deadline, RetryPolicy
from ._sdkbase import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    SDKBackend,
    error_for_status,
    fallback_error,
    is_timeout,
    request_id_of,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["OpenAICompatibleBackend", "map_wire_error"]

_MAX_CONNECTIONS = 1000  # as the SDK's own pool: a large batch is bounded by its own limit
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class OpenAICompatibleBackend(ChatWire, SDKBackend):
    """Chat completions over plain HTTP for OpenAI-compatible servers, sync, async and streaming.

    A drop-in for :class:`~promptkit.backends.openai.OpenAIBackend` where the SDK's per-call CPU
    matters (many concurrent calls to a local server): the same options, requests, results
    (``Completion.raw`` is the reply's JSON as a ``dict``) and errors. ``async_http="auto"``
    uses ``aiohttp`` for async calls when it is installed, else ``httpx2``. It has no
    ``client=`` option and no embeddings; use ``OpenAIBackend`` for those.

    ``constrained_decoding`` names how the server takes a ``constraint`` parameter (what
    ``ChoiceParser``, ``RegexParser`` and ``PydanticParser`` ask for): ``"vllm"`` (vLLM 0.12 and
    later, ``structured_outputs``), ``"vllm-guided"`` (older vLLM, ``guided_*``) or ``"sglang"``;
    ``None`` (the default) leaves ``constraint`` unsupported. The ``vllm:`` and ``sglang:``
    factory rows set it. Replies are parsed and validated all the same: a server that ignores
    the fields returns unconstrained text.

    >>> llm = OpenAICompatibleBackend(model="llama3", base_url="http://127.0.0.1:8000/v1")
    >>> llm.name, llm.base_url
    ('openai:llama3', 'http://127.0.0.1:8000/v1')
    """

    _supported_params = COMMON_PARAMS | {"output_schema"}
    provider = "openai"
    sdk_module = "httpx2"
    extra_name = "openai-compatible"
    env_key = "OPENAI_API_KEY"

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None,
        stream_usage: bool = True,
        async_http: Literal["auto", "httpx", "aiohttp"] = "auto",
        constrained_decoding: Literal["vllm", "vllm-guided", "sglang"] | None = None,
    ) -> None:
        if constrained_decoding is not None and constrained_decoding not in DIALECTS:
            raise ConfigurationError(
                f"constrained_decoding must be one of {', '.join(DIALECTS)} or None, not {constrained_decoding!r}"
            )
        super().__init__(
            model=model,
            api_key=api_key,
            base_url=base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=retry,
            async_http=async_http,
        )
        self._max_tokens_field = max_tokens_field_for(self._base_url, max_tokens_field)
        self._served_by = served_by(self._base_url)
        self._stream_usage = stream_usage
        self._url = (self._base_url or OPENAI_URL).rstrip("/") + "/chat/completions"
        self._organization = organization
        self._dialect = constrained_decoding
        if constrained_decoding is not None:
            self._supported_params = self._supported_params | {"constraint"}

    @property
    def constrained_decoding(self) -> str | None:
        """How ``constraint`` is sent to the server (``"vllm"``, ...), or None when it is not."""
        return self._dialect

    def check_constrained_decoding(self) -> str | None:
        """Ask a vLLM server its version (``GET /version``) and check the dialect fits it.

        vLLM before 0.12 ignores ``structured_outputs`` without a word, and 0.12 dropped the
        ``guided_*`` fields: a mismatch raises :class:`~promptkit.ConfigurationError` naming the
        dialect to use. Returns the version, or None for the other dialects (nothing asked).
        Replies are validated whatever this says; it only catches a constraint sent in vain.
        """
        if self._dialect not in ("vllm", "vllm-guided"):
            return None
        check_real_request(self.name, self._base_url)
        root = (self._base_url or OPENAI_URL).rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        try:
            response = self.sync_client().get(root + "/version", timeout=self._connect_timeout + self._read_timeout)
        except Exception as exc:
            raise self._map_error(exc) from exc
        version = _version_of(response.status_code, response.content)
        if version is None:
            raise ConfigurationError(
                f"{self.name}: {root}/version gave no vLLM version (HTTP {response.status_code}); "
                "cannot tell whether this server honours constrained decoding"
            )
        new = _release(version) >= (0, 12)
        if new != (self._dialect == "vllm"):
            wanted = "vllm" if new else "vllm-guided"
            field = "guided_* fields" if new else "structured_outputs field"
            raise ConfigurationError(
                f"{self.name}: vLLM {version} ignores the {field}; pass constrained_decoding={wanted!r}"
            )
        return version

    def _default_base_url(self) -> str | None:
        import os

        return os.environ.get("OPENAI_BASE_URL") or OPENAI_URL

    def _headers(self) -> dict[str, str]:
        return {**self._wire_headers(), "authorization": f"Bearer {self._require_key()}"}

    def _wire_headers(self) -> dict[str, str]:
        """The headers every request carries (the key as given, possibly none)."""
        headers = {
            "authorization": f"Bearer {self._api_key or ''}",
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": "promptkit",
        }
        if self._organization:
            headers["openai-organization"] = self._organization
        return headers

    # -- clients ----------------------------------------------------------------------------------
    def _make_sync_client(self, sdk: ModuleType) -> Any:
        from ._http import deadline_hook, install_deadline_network

        client = sdk.Client(
            headers=self._headers(),
            timeout=sdk.Timeout(self._read_timeout, connect=self._connect_timeout),
            limits=sdk.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=100),
            follow_redirects=True,
            event_hooks={"response": [deadline_hook]},
        )
        return install_deadline_network(client)

    def _make_async_client(self, sdk: ModuleType) -> Any:
        if self._use_aiohttp():
            return _AioHttp(self._headers(), self._connect_timeout, self._read_timeout)
        return _AsyncHttpx(sdk, self._headers(), self._connect_timeout, self._read_timeout)

    # -- requests ---------------------------------------------------------------------------------
    def _body(self, request: Request, *, stream: bool) -> bytes:
        body, extra = chat_body(
            self.model,
            request,
            max_tokens_field=self._max_tokens_field,
            stream=stream,
            stream_usage=self._stream_usage,
            dialect=self._dialect,
        )
        if extra is not None:
            body.update(extra)
        return _encode(body).encode()

    def _send(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        from ._http import attempt_timeout

        timeout = attempt_timeout(self._connect_timeout, self._read_timeout, deadline)
        body = self._body(request, stream=stream)
        if not stream:
            response = client.post(self._url, content=body, timeout=timeout)
            return _reply(response.status_code, response.headers, response.content)
        response = client.send(client.build_request("POST", self._url, content=body, timeout=timeout), stream=True)
        if response.status_code >= 400:
            try:
                content = response.read()
            finally:
                response.close()
            raise _StatusError(response.status_code, response.headers, content)
        return _SyncEvents(response, self.name)

    async def _asend(self, client: Any, request: Request, deadline: Deadline, *, stream: bool) -> Any:
        body = self._body(request, stream=stream)
        if not stream:
            status, headers, content = await client.post(self._url, body)
            return _reply(status, headers, content)
        return await client.stream(self._url, body, self.name)

    # -- replies ----------------------------------------------------------------------------------
    def _to_completion(self, reply: Any) -> Completion:
        return self._completion_from(reply.body, raw=reply.body)

    def _map_error(self, exc: BaseException, deadline: Deadline | None = None) -> BackendError:
        return map_wire_error(exc, self.name, deadline)


def _version_of(status: int, content: bytes) -> str | None:
    """The ``version`` of a ``/version`` reply, when it is one."""
    if status != 200:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, str) and version[:1].isdigit() else None


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version: ``"0.11.2rc1"`` -> ``(0, 11, 2)``."""
    import re

    return tuple(int(n) for n in re.findall(r"\d+", version.split("+", 1)[0])[:3])


def map_wire_error(exc: BaseException, provider: str, deadline: Deadline | None = None) -> BackendError:
    """Map what the direct HTTP path raises to the promptkit error ``map_openai_error`` gives."""
    if isinstance(exc, BackendError):
        return exc
    if deadline is not None and deadline.expired() and (is_timeout(exc, None) or _is_aio_timeout(exc)):
        return deadline.error(provider)
    if isinstance(exc, _StatusError):
        return error_for_status(exc.status, status_message(exc.status, exc.content), exc.headers, provider)
    httpx2 = sys.modules.get("httpx2")
    if isinstance(exc, TimeoutError) or _is_aio_timeout(exc):
        return BackendTimeoutError(f"{provider}: the request timed out", provider=provider)
    if httpx2 is not None:
        if isinstance(exc, httpx2.TimeoutException):
            return BackendTimeoutError(f"{provider}: the request timed out", provider=provider)
        if isinstance(exc, httpx2.TransportError):
            return BackendConnectionError(
                f"{provider}: connection error ({type(exc).__name__}: {exc})", provider=provider
            )
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        return BackendConnectionError(f"{provider}: connection error ({type(exc).__name__}: {exc})", provider=provider)
    return fallback_error(exc, provider, None)


def _is_aio_timeout(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.TimeoutError)  # also TimeoutError from 3.11; aiohttp's timeouts


class _StatusError(Exception):
    """An HTTP error status, before it is mapped (``error_for_status``)."""

    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.content = content


class _Reply:
    """A decoded reply body (a JSON value, or the text when it is not JSON) and its request id."""

    __slots__ = ("_request_id", "body")

    def __init__(self, body: Any, request_id: str | None) -> None:
        self.body = body
        self._request_id = request_id


def _reply(status: int, headers: Any, content: bytes) -> _Reply:
    """Decode a reply as the SDK does: JSON when it says so, else JSON if it parses, else text."""
    if status >= 400:
        raise _StatusError(status, headers, content)
    ctype = (headers.get("content-type") or "*").split(";", 1)[0]
    if not ctype.endswith("json"):
        try:
            body = json.loads(content)
        except ValueError:
            return _Reply(content.decode("utf-8", errors="replace"), None)
    else:
        body = json.loads(content)  # a malformed body raises: a ResponseError, not retried
    return _Reply(body, request_id_of(headers))


# -- server-sent events -----------------------------------------------------------------------------
class _SSE:
    """Incremental server-sent-event decoding: bytes in, the ``data`` of each complete event out.

    Lines end in ``\\n``, ``\\r\\n`` or ``\\r``; an event ends at a blank line; comments and other
    fields are skipped; an event still open when the body ends is dropped, as the SDK does.
    """

    __slots__ = ("_data", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[str]:
        """The events ``chunk`` completes, one at a time: an event is out before a later line of
        the same chunk is decoded (a bad line fails after the text before it was handed on)."""
        lines = (self._rest + chunk).splitlines(keepends=True)
        self._rest = b""
        if lines and not lines[-1].endswith(b"\n"):
            self._rest = lines.pop()  # incomplete, or ending in a \r that a \n may follow
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode("utf-8")
            if not line:
                if self._data:
                    data = "\n".join(self._data)
                    self._data = []
                    yield data
                continue
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value[1:] if value.startswith(" ") else value)

    def finish(self) -> Iterator[str]:
        rest, self._rest = self._rest, b""
        if rest:
            yield from self.feed(rest + b"\n")


def _event(data: str, provider: str) -> Any:
    """One event's JSON; an ``error`` object (sent with status 200) raises a ServerError."""
    value = json.loads(data)
    if isinstance(value, dict) and value.get("error"):
        error = value["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        raise ServerError(f"{provider}: error event in the stream: {message}", provider=provider)
    return value


class _SyncEvents:
    """A sync stream's events over an ``httpx2`` response (``SDKBackend._events`` drives it)."""

    def __init__(self, response: Any, provider: str) -> None:
        self.response = response
        self._provider = provider

    def __iter__(self) -> Iterator[Any]:
        sse = _SSE()
        for chunk in self.response.iter_bytes():
            for data in sse.feed(chunk):
                if data.startswith("[DONE]"):
                    return
                yield _event(data, self._provider)
        for data in sse.finish():
            if data.startswith("[DONE]"):
                return
            yield _event(data, self._provider)

    def close(self) -> None:
        self.response.close()


class _Head:
    """Status and headers of an async response, as ``SDKBackend`` reads them."""

    __slots__ = ("headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers


class _AsyncEvents:
    """An async stream's events over a chunk iterator, closed with ``release``."""

    def __init__(self, head: _Head, chunks: AsyncIterator[bytes], release: Any, provider: str) -> None:
        self.response = head
        self._chunks = chunks
        self._release = release
        self._provider = provider

    async def __aiter__(self) -> AsyncIterator[Any]:
        sse = _SSE()
        async for chunk in self._chunks:
            for data in sse.feed(chunk):
                if data.startswith("[DONE]"):
                    return
                yield _event(data, self._provider)
        for data in sse.finish():
            if data.startswith("[DONE]"):
                return
            yield _event(data, self._provider)

    async def close(self) -> None:
        await self._release()


# -- async transports -------------------------------------------------------------------------------
class _AioHttp:
    """The aiohttp session of one event loop: keep-alive connections, the backend's timeouts."""

    def __init__(self, headers: dict[str, str], connect: float, read: float) -> None:
        aiohttp = require("aiohttp", extra="openai-compatible")
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read),
            connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS),
        )

    async def post(self, url: str, body: bytes) -> tuple[int, Any, bytes]:
        async with self._session.post(url, data=body) as response:
            return response.status, response.headers, await response.read()

    async def stream(self, url: str, body: bytes, provider: str) -> _AsyncEvents:
        response = await self._session.post(url, data=body)
        if response.status >= 400:
            try:
                content = await response.read()
            finally:
                response.release()
            raise _StatusError(response.status, response.headers, content)

        async def release() -> None:
            response.release()

        head = _Head(response.status, response.headers)
        return _AsyncEvents(head, response.content.iter_any(), release, provider)

    async def close(self) -> None:
        await self._session.close()


class _AsyncHttpx:
    """An ``httpx2.AsyncClient`` with the same interface as :class:`_AioHttp`."""

    def __init__(self, httpx2: ModuleType, headers: dict[str, str], connect: float, read: float) -> None:
        self._client = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(read, connect=connect),
            limits=httpx2.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=100),
            follow_redirects=True,
        )

    async def post(self, url: str, body: bytes) -> tuple[int, Any, bytes]:
        response = await self._client.post(url, content=body)
        return response.status_code, response.headers, response.content

    async def stream(self, url: str, body: bytes, provider: str) -> _AsyncEvents:
        client = self._client
        response = await client.send(client.build_request("POST", url, content=body), stream=True)
        if response.status_code >= 400:
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            raise _StatusError(response.status_code, response.headers, content)
        return _AsyncEvents(
            _Head(response.status_code, response.headers), response.aiter_bytes(), response.aclose, provider
        )

    async def close(self) -> None:
        await self._client.aclose()
