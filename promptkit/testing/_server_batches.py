"""The batch endpoints of :class:`~promptkit.testing.ProviderServer`: OpenAI files and batches,
Anthropic message batches, with the faults real batches show (expiry, failed items, slow batches).

OpenAI: ``POST /v1/files`` (a multipart upload with ``purpose=batch``), ``GET /v1/files/{id}``
and ``GET /v1/files/{id}/content``; ``POST /v1/batches``, ``GET /v1/batches/{id}`` and
``POST /v1/batches/{id}/cancel``. The output and error files are JSON lines in OpenAI's format
(``custom_id``, ``response: {status_code, request_id, body}``, ``error``). Anthropic:
``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``, ``GET .../results`` (JSON lines of
``succeeded``, ``errored``, ``canceled`` and ``expired`` results) and ``POST .../cancel``.

Each item is answered by the server's own reply machinery when its batch ends (the script, then
``rule``, then ``default``), recorded as a :class:`RecordedRequest` whose ``batch`` names the
batch, so a test scripts the items' values the way it scripts single calls and a scripted error
status becomes a failed item. :class:`BatchScript` sets how a batch behaves: how many status reads
it stays ``in_progress``, whether it expires, and how many items it answers before it expires or
is cancelled. The providers' limits are checked (requests, bytes, custom ids, OpenAI's one model
per file): a file that breaks them makes a ``failed`` OpenAI batch or a 400 from Anthropic.
Nothing sleeps: a 10,000-item batch ends in the time its items take to answer.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

if TYPE_CHECKING:
    from ._server import RecordedRequest, _Handler

__all__ = ["BatchEndpoints", "BatchScript"]

OPENAI_MAX_REQUESTS = 50_000
OPENAI_MAX_BYTES = 200 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BYTES = 256 * 1024 * 1024
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # Anthropic's rule for custom ids
_WINDOW = 24 * 3600

Answer = Callable[[str, Mapping[str, Any], str], "tuple[int, Any]"]
"""How an item is answered: (provider, request body, batch id) -> (status, JSON payload)."""


@dataclass(frozen=True, kw_only=True)
class BatchScript:
    """How one batch behaves on the server.

    ``polls`` is how many status reads answer ``in_progress`` before the batch ends; ``expire``
    makes it end ``expired`` (its unanswered items expire); ``processed`` is how many items are
    answered before it expires or is cancelled (``None``: none for either).

    >>> BatchScript(polls=2).polls
    2
    """

    polls: int = 0
    expire: bool = False
    processed: int | None = None


@dataclass(kw_only=True)
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created: int

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.created + 30 * 86400,
            "status_details": None,
        }


@dataclass(kw_only=True)
class _Batch:
    id: str
    provider: str
    requests: list[tuple[str, Mapping[str, Any]]]
    script: BatchScript
    created: int
    endpoint: str = "/v1/chat/completions"
    input_file_id: str | None = None
    model: str | None = None
    polls: int = 0
    state: str = "in_progress"  # in_progress, cancelling, ended, failed
    end: str = ""  # completed, expired, cancelled
    errors: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[tuple[str, int, Any]] = field(default_factory=list)  # (kind, status, payload)
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended_at: int | None = None
    cancelled_at: int | None = None


class BatchEndpoints:
    """The files and batches a :class:`ProviderServer` holds, and what its next batches do.

    ``script(...)`` queues a :class:`BatchScript` for each of the next batches created (of either
    provider); ``default`` applies once the queue is empty. ``files`` and ``batches`` map ids to
    what the server holds; the ``*_max_*`` attributes are the providers' limits, lowered in tests
    to see a refusal.
    """

    def __init__(self, answer: Answer, record: Callable[[RecordedRequest], None], make_request: Any) -> None:
        self._answer = answer
        self._record = record
        self._make_request = make_request
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._scripts: collections.deque[BatchScript] = collections.deque()
        self.default = BatchScript()
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.openai_max_requests = OPENAI_MAX_REQUESTS
        self.openai_max_bytes = OPENAI_MAX_BYTES
        self.anthropic_max_requests = ANTHROPIC_MAX_REQUESTS
        self.anthropic_max_bytes = ANTHROPIC_MAX_BYTES

    def script(self, *scripts: BatchScript) -> Self:
        """Queue how the next batches behave, one :class:`BatchScript` per batch created."""
        with self._lock:
            self._scripts.extend(scripts)
        return self

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    # -- routing ------------------------------------------------------------------------------
    @staticmethod
    def handles(path: str) -> bool:
        """True for the paths these endpoints answer."""
        path = path.split("?", 1)[0].rstrip("/")
        return path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches"))

    def handle(self, handler: _Handler, method: str, raw: bytes) -> None:
        path = handler.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")[2:]  # after "", "v1"
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body: Any = None
        if method == "POST" and raw and not headers.get("content-type", "").startswith("multipart/"):
            try:
                body = json.loads(raw)
            except ValueError:
                handler._send_json(400, _openai_error("the body is not JSON"))
                return
        self._record(self._make_request(method, path, headers, body))
        with self._lock:
            status, payload, binary = self._route(method, parts, headers, body, raw=raw, handler=handler)
        if binary is not None:
            handler._send_plain(status, payload, binary)
        else:
            handler._send_json(status, payload)

    def _route(
        self, method: str, parts: list[str], headers: Mapping[str, str], body: Any, *, raw: bytes, handler: _Handler
    ) -> tuple[int, Any, bytes | None]:
        if parts[0] == "files":
            if method == "POST" and len(parts) == 1:
                return self._upload(headers, raw)
            if method == "GET" and len(parts) in (2, 3):
                found = self.files.get(parts[1])
                if found is None:
                    return 404, _openai_error(f"No such File object: {parts[1]}", "invalid_request_error"), None
                if len(parts) == 3 and parts[2] == "content":
                    return 200, "application/octet-stream", found.data
                if len(parts) == 2:
                    return 200, found.json(), None
        elif parts[0] == "batches":
            if method == "POST" and len(parts) == 1:
                return self._openai_create(body)
            batch = self.batches.get(parts[1]) if len(parts) > 1 else None
            if batch is None or batch.provider != "openai":
                return 404, _openai_error("No such batch", "invalid_request_error"), None
            if method == "GET" and len(parts) == 2:
                self._poll(batch)
                return 200, self._openai_json(batch), None
            if method == "POST" and parts[2:] == ["cancel"]:
                self._cancel(batch)
                return 200, self._openai_json(batch), None
        elif parts[:2] == ["messages", "batches"]:
            rest = parts[2:]
            if method == "POST" and not rest:
                return self._anthropic_create(body, len(raw))
            batch = self.batches.get(rest[0]) if rest else None
            if batch is None or batch.provider != "anthropic":
                return 404, _anthropic_error("not_found_error", "message batch not found"), None
            if method == "GET" and len(rest) == 1:
                self._poll(batch)
                return 200, self._anthropic_json(batch, handler), None
            if method == "POST" and rest[1:] == ["cancel"]:
                self._cancel(batch)
                return 200, self._anthropic_json(batch, handler), None
            if method == "GET" and rest[1:] == ["results"]:
                if batch.state != "ended":
                    return 400, _anthropic_error("invalid_request_error", "the batch is still processing"), None
                return 200, "application/binary", self._anthropic_results(batch)
        return 404, _openai_error(f"no route for {method} /v1/{'/'.join(parts)}", "not_found"), None

    # -- OpenAI -------------------------------------------------------------------------------
    def _upload(self, headers: Mapping[str, str], raw: bytes) -> tuple[int, Any, bytes | None]:
        fields = _multipart(headers.get("content-type", ""), raw)
        if fields is None or "file" not in fields:
            return 400, _openai_error("expected a multipart upload with a 'file' field"), None
        purpose = fields.get("purpose", ("", b""))[1].decode()
        if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data", "evals"):
            return 400, _openai_error(f"invalid purpose {purpose!r}"), None
        filename, data = fields["file"]
        file = _File(
            id=self._new_id("file-"), filename=filename or "upload", purpose=purpose, data=data, created=_now()
        )
        self.files[file.id] = file
        return 200, file.json(), None

    def _openai_create(self, body: Any) -> tuple[int, Any, bytes | None]:
        if not isinstance(body, Mapping):
            return 400, _openai_error("expected a JSON body"), None
        if body.get("completion_window") != "24h":
            return 400, _openai_error("completion_window must be '24h'"), None
        endpoint = body.get("endpoint")
        if endpoint not in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions"):
            return 400, _openai_error(f"unsupported endpoint {endpoint!r}"), None
        file = self.files.get(str(body.get("input_file_id")))
        if file is None:
            return 400, _openai_error(f"No such File object: {body.get('input_file_id')}"), None
        if file.purpose != "batch":
            return 400, _openai_error("the input file must be uploaded with purpose 'batch'"), None
        batch = _Batch(
            id=self._new_id("batch_"),
            provider="openai",
            requests=[],
            script=self._next_script(),
            created=_now(),
            endpoint=str(endpoint),
            input_file_id=file.id,
        )
        batch.errors = self._read_openai_file(file.data, batch)
        if batch.errors:
            batch.state = "failed"
            batch.requests = []
        self.batches[batch.id] = batch
        return 200, self._openai_json(batch), None

    def _read_openai_file(self, data: bytes, batch: _Batch) -> list[dict[str, Any]]:
        """The file's lines as the batch's requests; the errors that fail the batch, if any."""
        if len(data) > self.openai_max_bytes:
            return [_line_error("file_too_large", f"the file is larger than {self.openai_max_bytes} bytes")]
        seen: set[str] = set()
        models: set[str] = set()
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                return [_line_error("invalid_json_line", "this line is not JSON", number)]
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not custom_id:
                return [_line_error("missing_required_parameter", "each line needs a custom_id", number)]
            if custom_id in seen:
                return [_line_error("duplicate_custom_id", f"the custom_id {custom_id!r} is used twice", number)]
            seen.add(custom_id)
            if item.get("method") != "POST" or item.get("url") != batch.endpoint:
                return [_line_error("invalid_url", f"every line must POST to {batch.endpoint}", number)]
            request = item.get("body")
            if not isinstance(request, dict) or not isinstance(request.get("model"), str):
                return [_line_error("invalid_request", "each line needs a body with a model", number)]
            models.add(request["model"])
            if len(models) > 1:
                return [
                    _line_error("mismatched_model", "every request of a batch file must use the same model", number)
                ]
            batch.requests.append((custom_id, request))
        if not batch.requests:
            return [_line_error("empty_file", "the input file holds no requests")]
        if len(batch.requests) > self.openai_max_requests:
            return [_line_error("too_many_requests", f"a batch holds at most {self.openai_max_requests} requests")]
        batch.model = next(iter(models))
        return []

    def _openai_json(self, batch: _Batch) -> dict[str, Any]:
        status = {"in_progress": "in_progress", "cancelling": "cancelling", "failed": "failed"}.get(
            batch.state, batch.end
        )
        if batch.state == "in_progress" and batch.polls == 0:
            status = "validating"
        failed = sum(1 for kind, *_ in batch.outcomes if kind != "ok")
        completed = len(batch.outcomes) - failed
        ended = batch.ended_at
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": batch.input_file_id or "",
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created,
            "in_progress_at": batch.created if batch.state != "failed" else None,
            "expires_at": batch.created + _WINDOW,
            "finalizing_at": ended if batch.end == "completed" else None,
            "completed_at": ended if batch.end == "completed" else None,
            "failed_at": batch.created if batch.state == "failed" else None,
            "expired_at": ended if batch.end == "expired" else None,
            "cancelling_at": batch.cancelled_at,
            "cancelled_at": ended if batch.end == "cancelled" else None,
            "request_counts": {"total": len(batch.requests), "completed": completed, "failed": failed},
            "metadata": None,
        }

    def _openai_files(self, batch: _Batch) -> None:
        out: list[bytes] = []
        errors: list[bytes] = []
        for number, ((custom_id, _), (kind, status, payload)) in enumerate(
            zip(batch.requests, batch.outcomes, strict=True), start=1
        ):
            line: dict[str, Any] = {"id": f"batch_req_{batch.id}_{number}", "custom_id": custom_id}
            if kind in ("ok", "error"):
                line["response"] = {"status_code": status, "request_id": f"req_{number}", "body": payload}
                line["error"] = None
            else:
                code = "batch_expired" if kind == "expired" else "batch_cancelled"
                message = (
                    "This request could not be executed before the completion window expired."
                    if kind == "expired"
                    else "This request was not executed because the batch was cancelled."
                )
                line["response"] = None
                line["error"] = {"code": code, "message": message}
            (out if kind == "ok" else errors).append(json.dumps(line).encode())
        for lines, name in ((out, "output"), (errors, "error")):
            if lines:
                file = _File(
                    id=self._new_id("file-"),
                    filename=f"{batch.id}_{name}.jsonl",
                    purpose="batch_output",
                    data=b"\n".join(lines) + b"\n",
                    created=_now(),
                )
                self.files[file.id] = file
                if name == "output":
                    batch.output_file_id = file.id
                else:
                    batch.error_file_id = file.id

    # -- Anthropic ----------------------------------------------------------------------------
    def _anthropic_create(self, body: Any, size: int) -> tuple[int, Any, bytes | None]:
        requests = body.get("requests") if isinstance(body, Mapping) else None
        if not isinstance(requests, list) or not requests:
            return 400, _anthropic_error("invalid_request_error", "requests: a non-empty list is required"), None
        if len(requests) > self.anthropic_max_requests:
            message = f"requests: at most {self.anthropic_max_requests} requests per batch"
            return 400, _anthropic_error("invalid_request_error", message), None
        if size > self.anthropic_max_bytes:
            message = f"the batch is larger than {self.anthropic_max_bytes} bytes"
            return 413, _anthropic_error("request_too_large", message), None
        seen: set[str] = set()
        items: list[tuple[str, Mapping[str, Any]]] = []
        for i, request in enumerate(requests):
            custom_id = request.get("custom_id") if isinstance(request, dict) else None
            params = request.get("params") if isinstance(request, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                message = f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
                return 400, _anthropic_error("invalid_request_error", message), None
            if custom_id in seen:
                message = f"requests.{i}.custom_id: {custom_id!r} is used twice"
                return 400, _anthropic_error("invalid_request_error", message), None
            seen.add(custom_id)
            if not isinstance(params, dict) or not all(k in params for k in ("model", "max_tokens", "messages")):
                message = f"requests.{i}.params: model, max_tokens and messages are required"
                return 400, _anthropic_error("invalid_request_error", message), None
            if params.get("stream"):
                message = f"requests.{i}.params.stream: streaming is not supported in batches"
                return 400, _anthropic_error("invalid_request_error", message), None
            items.append((custom_id, params))
        batch = _Batch(
            id=self._new_id("msgbatch_"),
            provider="anthropic",
            requests=items,
            script=self._next_script(),
            created=_now(),
            endpoint="/v1/messages",
        )
        self.batches[batch.id] = batch
        return 200, self._anthropic_json(batch, None), None

    def _anthropic_json(self, batch: _Batch, handler: _Handler | None) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if batch.state == "ended":
            names = {"ok": "succeeded", "error": "errored", "cancelled": "canceled", "expired": "expired"}
            for kind, *_ in batch.outcomes:
                counts[names[kind]] += 1
        else:
            counts["processing"] = len(batch.requests)
        results_url = None
        if batch.state == "ended" and handler is not None:
            host, port = handler.server.server_address[:2]
            results_url = f"http://{host!s}:{port}/v1/messages/batches/{batch.id}/results"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": {"in_progress": "in_progress", "cancelling": "canceling"}.get(batch.state, "ended"),
            "request_counts": counts,
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + _WINDOW),
            "ended_at": _iso(batch.ended_at) if batch.ended_at is not None else None,
            "cancel_initiated_at": _iso(batch.cancelled_at) if batch.cancelled_at is not None else None,
            "archived_at": None,
            "results_url": results_url,
        }

    def _anthropic_results(self, batch: _Batch) -> bytes:
        lines = []
        for (custom_id, _), (kind, _status, payload) in zip(batch.requests, batch.outcomes, strict=True):
            if kind == "ok":
                result: dict[str, Any] = {"type": "succeeded", "message": payload}
            elif kind == "error":
                error = payload if isinstance(payload, dict) and payload.get("type") == "error" else None
                result = {
                    "type": "errored",
                    "error": error or {"type": "error", "error": {"type": "api_error", "message": str(payload)}},
                }
            else:
                result = {"type": "canceled" if kind == "cancelled" else "expired"}
            lines.append(json.dumps({"custom_id": custom_id, "result": result}).encode())
        return b"\n".join(lines) + b"\n"

    # -- both ---------------------------------------------------------------------------------
    def _next_script(self) -> BatchScript:
        return self._scripts.popleft() if self._scripts else self.default

    def _poll(self, batch: _Batch) -> None:
        """A status read: the batch ends once its script's ``polls`` reads have passed."""
        if batch.state in ("ended", "failed"):
            return
        batch.polls += 1
        if batch.state == "cancelling":
            self._finish(batch, "cancelled")
        elif batch.polls > batch.script.polls:
            self._finish(batch, "expired" if batch.script.expire else "completed")

    def _cancel(self, batch: _Batch) -> None:
        if batch.state == "in_progress":
            batch.state = "cancelling"
            batch.cancelled_at = _now()

    def _finish(self, batch: _Batch, end: str) -> None:
        limit = len(batch.requests) if end == "completed" else (batch.script.processed or 0)
        missing = "expired" if end == "expired" else "cancelled"
        outcomes: list[tuple[str, int, Any]] = []
        for i, (_, body) in enumerate(batch.requests):
            if i >= limit:
                outcomes.append((missing, 0, None))
                continue
            status, payload = self._answer(batch.provider, body, batch.id)
            outcomes.append(("ok" if status < 400 else "error", status, payload))
        batch.outcomes = outcomes
        batch.state = "ended"
        batch.end = end
        batch.ended_at = _now()
        if batch.provider == "openai":
            self._openai_files(batch)


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str, bytes]] | None:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        return None
    boundary = b"--" + found.group(1).encode()
    fields: dict[str, tuple[str, bytes]] = {}
    for part in raw.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name is None:
            continue
        fields[name.group(1)] = (filename.group(1) if filename else "", data.removesuffix(b"\r\n"))
    return fields


def _line_error(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _openai_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _now() -> int:
    return int(time.time())


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")
