"""Provider batch APIs behind one small interface: OpenAI's Batch API and Anthropic's Message Batches.

An adapter turns a validated :class:`~promptkit.backends.Request` into one entry of a provider
batch with the backend's own request-building code (the same body a call sends), creates the
batch through the backend's SDK client (OpenAI: a JSONL file upload, then ``/v1/batches``;
Anthropic: ``/v1/messages/batches``), reads its status, cancels it, and reads its results back
as :class:`~promptkit.Completion` objects (marked ``batch=True``, so they are priced at batch
rates) or the typed error of each failed item, by custom id. It keeps no state: the ids are the
caller's to store. Calls to the batch endpoints go through the backend's retry policy and error
mapping, and pass the real-request gate like every call.

>>> from promptkit.backends.openai import OpenAIBackend
>>> adapter_for(OpenAIBackend(model="gpt-4o-mini", api_key="sk-test-0123456789")).limits.max_requests
50000
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar

from .._errors import (
    BackendError,
    BatchCancelledError,
    BatchExpiredError,
    ConfigurationError,
    ResponseError,
    ServerError,
    UnsupportedCapabilityError,
)
from .._messages import Completion
from ._gate import check_real_request
from ._openai_wire import chat_body, status_message
from ._retry import Deadline, retry_call
from ._sdkbase import SDKBackend, error_for_status, raise_typed

if TYPE_CHECKING:
    from ._contract import Backend, Request

__all__ = [
    "ANTHROPIC_LIMITS",
    "OPENAI_LIMITS",
    "AnthropicBatches",
    "BatchAdapter",
    "BatchLimits",
    "Entry",
    "OpenAIBatches",
    "ProviderBatch",
    "adapter_for",
    "base_backend",
]

T = TypeVar("T")

State = Literal["in_progress", "cancelling", "ended", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchLimits:
    """The most requests and bytes one provider batch may hold.

    >>> BatchLimits(max_requests=2, max_bytes=1_000).max_requests
    2
    """

    max_requests: int
    max_bytes: int

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"BatchLimits.{name} must be an int >= 1, not {value!r}")


OPENAI_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
"""One OpenAI batch file: 50,000 requests and 200 MB (and one model per file)."""
ANTHROPIC_LIMITS = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)
"""One Anthropic message batch: 100,000 requests or 256 MB."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderBatch:
    """One provider batch as last read: its id, where it stands, and the provider's own words.

    ``state`` is ``in_progress`` (validating, running or finalizing), ``cancelling``, ``ended``
    (its results can be read: completed, expired or cancelled) or ``failed`` (the provider refused
    the whole batch; ``error`` says why). ``counts`` are the provider's request counts.
    """

    id: str
    provider: str
    state: State
    status: str
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    error: str | None = None


class Entry(NamedTuple):
    """One request of a batch: its custom id, the provider's JSON for it, and that JSON encoded."""

    custom_id: str
    json: dict[str, Any]
    data: bytes


class BatchAdapter(Protocol):
    """What promptkit needs from a provider's batch API."""

    provider: str
    limits: BatchLimits

    @property
    def model(self) -> str: ...

    @property
    def name(self) -> str:
        """The name of the backend the batches go through (``"openai:gpt-4o-mini"``)."""
        ...

    def entry(self, custom_id: str, request: Request) -> Entry: ...

    def create(self, entries: Sequence[Entry], *, metadata: Mapping[str, str] | None = None) -> ProviderBatch: ...

    def retrieve(self, batch_id: str) -> ProviderBatch: ...

    def cancel(self, batch_id: str) -> ProviderBatch: ...

    def results(self, batch: ProviderBatch) -> dict[str, Completion | BackendError]: ...


def base_backend(backend: Backend) -> Backend:
    """The backend under any wrappers (cache, retry, rate limit, record): the one that talks to the provider."""
    seen = 0
    while hasattr(backend, "inner") and seen < 32:
        backend = backend.inner
        seen += 1
    return backend


def adapter_for(backend: Backend, *, limits: BatchLimits | None = None) -> BatchAdapter:
    """The batch adapter for ``backend`` (wrappers are looked through), or a clear refusal.

    ``limits`` lowers the provider's own limits (to split into smaller batches).
    """
    from ._openai_compatible import OpenAICompatibleBackend
    from .anthropic import AnthropicBackend
    from .openai import OpenAIBackend

    base = base_backend(backend)
    if isinstance(base, OpenAICompatibleBackend):
        raise UnsupportedCapabilityError(
            "OpenAICompatibleBackend sends chat completions over plain HTTP and has no batch API; for a "
            "server with OpenAI's files and batches endpoints use OpenAIBackend(model=..., base_url=...)"
        )
    if isinstance(base, OpenAIBackend):
        return OpenAIBatches(base, limits=_within(limits, OPENAI_LIMITS))
    if isinstance(base, AnthropicBackend):
        return AnthropicBatches(base, limits=_within(limits, ANTHROPIC_LIMITS))
    raise UnsupportedCapabilityError(
        f"{type(base).__name__} has no provider batch API; submit_batch() needs an OpenAIBackend or an "
        "AnthropicBackend (use prompt.batch(inputs) to run the calls one by one)"
    )


def _within(given: BatchLimits | None, provider: BatchLimits) -> BatchLimits:
    if given is None:
        return provider
    if not isinstance(given, BatchLimits):
        raise ConfigurationError(f"limits must be a BatchLimits, not {type(given).__name__}")
    return BatchLimits(
        max_requests=min(given.max_requests, provider.max_requests),
        max_bytes=min(given.max_bytes, provider.max_bytes),
    )


def _encode(custom_id: str, body: dict[str, Any]) -> Entry:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Entry(custom_id, body, data)


class _Adapter:
    """The calls both adapters make the same way: gated, retried and mapped like a model call."""

    provider = ""
    limits: BatchLimits

    def __init__(self, backend: SDKBackend, *, limits: BatchLimits) -> None:
        self.backend = backend
        self.limits = limits

    @property
    def model(self) -> str:
        return self.backend.model

    @property
    def name(self) -> str:
        return self.backend.name

    def _call(self, fn: Callable[[Any], T]) -> T:
        backend = self.backend
        client = backend.sync_client()
        deadline = Deadline(backend.retry.deadline)

        def attempt() -> T:
            check_real_request(backend.name, backend.base_url)
            try:
                return fn(client)
            except Exception as exc:
                raise_typed(backend._map_error(exc, deadline), exc)

        return retry_call(attempt, policy=backend.retry, deadline=deadline, provider=backend.name)

    def _completion(self, reply: Any) -> Completion:
        return dataclasses.replace(self.backend._completion_of(reply), batch=True)


class OpenAIBatches(_Adapter):
    """OpenAI's Batch API: a JSONL file of chat-completion requests, then a batch over it."""

    provider = "openai"
    endpoint = "/v1/chat/completions"

    def entry(self, custom_id: str, request: Request) -> Entry:
        backend: Any = self.backend
        body, extra = chat_body(
            backend.model,
            request,
            max_tokens_field=backend._max_tokens_field,
            stream=False,
            stream_usage=False,
            dialect=backend._dialect,
        )
        if extra is not None:
            body.update(extra)  # as the SDK merges extra_body over the top level
        return _encode(custom_id, {"custom_id": custom_id, "method": "POST", "url": self.endpoint, "body": body})

    def create(self, entries: Sequence[Entry], *, metadata: Mapping[str, str] | None = None) -> ProviderBatch:
        data = b"\n".join(entry.data for entry in entries) + b"\n"
        uploaded = self._call(lambda client: client.files.create(file=("promptkit-batch.jsonl", data), purpose="batch"))
        options: dict[str, Any] = {"metadata": dict(metadata)} if metadata else {}
        batch = self._call(
            lambda client: client.batches.create(
                input_file_id=uploaded.id, endpoint=self.endpoint, completion_window="24h", **options
            )
        )
        return self._snapshot(batch)

    def retrieve(self, batch_id: str) -> ProviderBatch:
        return self._snapshot(self._call(lambda client: client.batches.retrieve(batch_id)))

    def cancel(self, batch_id: str) -> ProviderBatch:
        return self._snapshot(self._call(lambda client: client.batches.cancel(batch_id)))

    def _snapshot(self, batch: Any) -> ProviderBatch:
        status = str(batch.status)
        state: State = (
            "ended"
            if status in ("completed", "expired", "cancelled")
            else "failed"
            if status == "failed"
            else "cancelling"
            if status == "cancelling"
            else "in_progress"
        )
        counts = batch.request_counts
        error = None
        if state == "failed":
            found = getattr(getattr(batch, "errors", None), "data", None) or []
            error = (
                "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "") for e in found)
                or "the provider failed the batch"
            )
        return ProviderBatch(
            id=batch.id,
            provider=self.provider,
            state=state,
            status=status,
            counts={"total": counts.total, "completed": counts.completed, "failed": counts.failed}
            if counts is not None
            else {},
            error=error,
        )

    def results(self, batch: ProviderBatch) -> dict[str, Completion | BackendError]:
        found = self._call(lambda client: client.batches.retrieve(batch.id))
        out: dict[str, Completion | BackendError] = {}
        for file_id in (found.output_file_id, found.error_file_id):
            if not file_id:
                continue
            content = self._download(file_id)
            for line in _lines(content, self.backend.name):
                custom_id = str(line.get("custom_id"))
                out[custom_id] = self._outcome(line)
        return out

    def _download(self, file_id: str) -> bytes:
        content: bytes = self._call(lambda client: client.files.content(file_id).read())
        return content

    def _outcome(self, line: Mapping[str, Any]) -> Completion | BackendError:
        name = self.backend.name
        response = line.get("response")
        error = line.get("error")
        if isinstance(response, Mapping):
            status = response.get("status_code")
            body = response.get("body")
            if status == 200:
                try:
                    return self._completion(body)
                except BackendError as exc:
                    return exc
            if isinstance(status, int):
                raw = json.dumps(body).encode() if body is not None else b""
                headers = {"x-request-id": response["request_id"]} if response.get("request_id") else {}
                return error_for_status(status, status_message(status, raw), headers, name)
        if isinstance(error, Mapping):
            code, message = str(error.get("code") or ""), str(error.get("message") or "")
            if code == "batch_expired":
                return BatchExpiredError(
                    f"{name}: {message or 'the batch expired before this item ran'}", provider=name
                )
            if code == "batch_cancelled":
                return BatchCancelledError(f"{name}: {message or 'the batch was cancelled'}", provider=name)
            return ServerError(f"{name}: {code}: {message}", provider=name)
        return ResponseError(f"{name}: a batch result line holds neither a response nor an error", provider=name)


_ANTHROPIC_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicBatches(_Adapter):
    """Anthropic's Message Batches: the requests in one create call, results as JSON lines."""

    provider = "anthropic"

    def entry(self, custom_id: str, request: Request) -> Entry:
        backend: Any = self.backend
        args, extra = backend._sdk_arguments(request, stream=False)
        return _encode(custom_id, {"custom_id": custom_id, "params": {**args, **extra}})

    def create(self, entries: Sequence[Entry], *, metadata: Mapping[str, str] | None = None) -> ProviderBatch:
        requests = [entry.json for entry in entries]
        return self._snapshot(self._call(lambda client: client.messages.batches.create(requests=requests)))

    def retrieve(self, batch_id: str) -> ProviderBatch:
        return self._snapshot(self._call(lambda client: client.messages.batches.retrieve(batch_id)))

    def cancel(self, batch_id: str) -> ProviderBatch:
        return self._snapshot(self._call(lambda client: client.messages.batches.cancel(batch_id)))

    def _snapshot(self, batch: Any) -> ProviderBatch:
        status = str(batch.processing_status)
        state: State = "ended" if status == "ended" else "cancelling" if status == "canceling" else "in_progress"
        counts = batch.request_counts
        names = ("processing", "succeeded", "errored", "canceled", "expired")
        return ProviderBatch(
            id=batch.id,
            provider=self.provider,
            state=state,
            status=status,
            counts={name: getattr(counts, name) for name in names} if counts is not None else {},
        )

    def results(self, batch: ProviderBatch) -> dict[str, Completion | BackendError]:
        lines = self._call(lambda client: list(client.messages.batches.results(batch.id)))
        return {line.custom_id: self._outcome(line.result) for line in lines}

    def _outcome(self, result: Any) -> Completion | BackendError:
        name = self.backend.name
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                return self._completion(result.message)
            except BackendError as exc:
                return exc
        if kind == "errored":
            response = getattr(result, "error", None)
            inner = getattr(response, "error", None)
            error_type = str(getattr(inner, "type", "") or "api_error")
            message = str(getattr(inner, "message", "") or "the item failed")
            request_id = getattr(response, "request_id", None)
            headers = {"request-id": request_id} if request_id else {}
            status = _ANTHROPIC_STATUS.get(error_type, 500)
            return error_for_status(status, f"{error_type}: {message}", headers, name, overloaded=(529,))
        if kind == "expired":
            return BatchExpiredError(f"{name}: the batch expired before this item ran", provider=name)
        if kind == "canceled":
            return BatchCancelledError(f"{name}: the batch was cancelled before this item ran", provider=name)
        return ResponseError(f"{name}: unknown batch result type {kind!r}", provider=name)


def _lines(content: bytes, provider: str) -> Iterator[dict[str, Any]]:
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise ResponseError(
                f"{provider}: line {number} of a batch result file is not JSON", provider=provider
            ) from exc
        if not isinstance(line, dict):
            raise ResponseError(f"{provider}: line {number} of a batch result file is not an object", provider=provider)
        yield line
