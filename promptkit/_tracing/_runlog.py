"""The JSONL run log: one JSON object per prompt run, appended as the run ends, and its reader.

A record holds what an evaluation needs to look at a run again without calling the model: the
prompt's identity, the inputs, the rendered messages, every attempt, the final value (or the
error), usage, cost and latency. Each record is one ``write`` of one line on a file opened in
append mode, under a lock, so threads and tasks never interleave lines. Strings that look like
API keys or bearer tokens are masked; backends (and so their keys) are never serialised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .._errors import ConfigurationError
from .._messages import Completion, ImagePart, Message, TextPart, Usage
from .._utils import redact
from ._events import CallInfo, Hook, RunInfo
from ._hooks import HookHandle, add_hook

__all__ = ["AttemptRecord", "ErrorRecord", "RunLog", "RunRecord", "log_runs", "read_run_log"]

VERSION = 1
"""The record format; bumped when a field changes meaning, so readers can tell old records apart."""

_NOT_LOGGED = frozenset({"extra", "timeout"})  # provider pass-through fields and transport settings
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRecord:
    """An exception as logged: its type (``promptkit.RateLimitError``) and message."""

    type: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One model call of a logged run (see :class:`~promptkit.Attempt`).

    ``text`` is ``None`` when the call failed before a reply; ``error`` is the call's error or
    the parse error of its reply.
    """

    purpose: str
    sample: int | None = None
    text: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: ErrorRecord | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One prompt run read back from a run log.

    ``value`` is the final value as JSON (a pydantic model through ``model_dump(mode="json")``, a
    dataclass as a dict); when it had no JSON form, ``value_format`` is ``"repr"`` and ``value``
    its ``repr``. ``inputs_repr`` names the inputs stored as a ``repr`` for the same reason.
    ``completion`` is the reply the value was parsed from; ``error`` is set for a failed run.
    """

    version: int
    id: str
    timestamp: dt.datetime
    prompt_name: str | None
    prompt_digest: str | None
    backend: str
    strategy: str
    inputs: Mapping[str, Any]
    messages: tuple[Message, ...]
    params: Mapping[str, Any]
    attempts: tuple[AttemptRecord, ...]
    value: Any
    value_format: Literal["json", "repr"] | None
    completion: Completion | None
    error: ErrorRecord | None
    usage: Usage
    cost: float | None
    latency: float
    inputs_repr: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the run returned a value."""
        return self.error is None


# -- writing ---------------------------------------------------------------------------------------
class _NoJSON(Exception):  # noqa: N818 - a control-flow signal, not an error
    pass


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data, or raise :class:`_NoJSON` when it has no faithful JSON form."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NoJSON
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):  # a pydantic model
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    raise _NoJSON


def _value(value: Any) -> tuple[Any, Literal["json", "repr"]]:
    try:
        return to_json(value), "json"
    except _NoJSON:
        return repr(value), "repr"


def _error(error: BaseException) -> dict[str, str]:
    kind = type(error)
    name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
    return {"type": name, "message": str(error)}


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "image", "url": part.url, "media_type": part.media_type})
    return {"role": message.role, "content": parts}


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


def _usage(usage: Usage) -> dict[str, int]:
    """Every count of the usage; the cache and reasoning counts only when there are any."""
    doc = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    for name in _USAGE_FIELDS[2:]:
        if getattr(usage, name):
            doc[name] = getattr(usage, name)
    return doc


def _completion(completion: Completion) -> dict[str, Any]:
    return {
        "text": completion.text,
        "model": completion.model,
        "finish_reason": completion.finish_reason,
        "usage": _usage(completion.usage),
    }


def prompt_digest(template: Any) -> str | None:
    """The SHA-256 of a template's source: which prompt produced a run, across renames and processes."""
    source = getattr(template, "source", None)
    return hashlib.sha256(source.encode("utf-8")).hexdigest() if isinstance(source, str) else None


class RunLog(Hook):
    """The hook :func:`log_runs` registers: appends one record per run to ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def on_run_start(self, run: RunInfo) -> None:
        run.state[self] = []

    def on_response(self, call: CallInfo, completion: Completion | None, error: BaseException | None) -> None:
        attempts = call.run.state.get(self)
        if attempts is None:
            return
        entry: dict[str, Any] = {"purpose": call.purpose, "sample": call.sample}
        if completion is not None:
            entry.update(_completion(completion))
        entry["error"] = _error(error) if error is not None else None
        entry["seconds"] = time.perf_counter() - call.started
        attempts.append((completion, entry))

    def on_parse_failure(self, run: RunInfo, completion: Completion, error: BaseException) -> None:
        for seen, entry in reversed(run.state.get(self, ())):
            if seen is completion:
                entry["error"] = _error(error)
                break

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        attempts = run.state.pop(self, None)
        if attempts is None:
            return
        self.write(self.record(run, [entry for _, entry in attempts], result, error))

    def record(
        self, run: RunInfo, attempts: list[dict[str, Any]], result: Any, error: BaseException | None
    ) -> dict[str, Any]:
        """The JSON object for one run (``result`` is its :class:`~promptkit.Result`, or ``None``)."""
        inputs: dict[str, Any] = {}
        as_repr: list[str] = []
        for name, raw in run.inputs.items():
            inputs[name], form = _value(raw)
            if form == "repr":
                as_repr.append(name)
        doc: dict[str, Any] = {
            "version": VERSION,
            "id": uuid.uuid4().hex,
            "timestamp": dt.datetime.fromtimestamp(run.started, dt.timezone.utc).isoformat(),
            "prompt": {"name": run.prompt_name, "digest": prompt_digest(run.template)},
            "backend": run.backend,
            "strategy": run.strategy,
            "inputs": inputs,
            "inputs_repr": as_repr,
            "messages": [_message(m) for m in run.messages],
            "params": _value({k: v for k, v in run.params.items() if k not in _NOT_LOGGED})[0],
            "attempts": attempts,
        }
        if result is not None:
            doc["value"], doc["value_format"] = _value(result.value)
            doc["completion"] = _completion(result.completion)
            doc["error"] = None
            doc["usage"] = _usage(result.usage)
            doc["cost"] = result.cost
            doc["latency"] = result.elapsed
        else:
            total = Usage()
            for entry in attempts:
                used = entry.get("usage")
                if used:
                    total = total + Usage(**used)
            doc["value"], doc["value_format"], doc["completion"] = None, None, None
            doc["error"] = _error(error) if error is not None else None
            doc["usage"] = _usage(total)
            doc["cost"] = None
            doc["latency"] = time.time() - run.started
        return doc

    def write(self, doc: Mapping[str, Any]) -> None:
        line = redact(json.dumps(doc, ensure_ascii=False, allow_nan=False, default=repr)) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)

    def __repr__(self) -> str:
        return f"RunLog({str(self.path)!r})"


def log_runs(path: str | os.PathLike[str]) -> HookHandle:
    """Append one JSON line per prompt run to ``path`` until the returned handle is removed.

    Use it as a context manager (``with promptkit.log_runs("runs.jsonl"): ...``) or keep the
    handle and call ``handle.remove()``. Read the file back with :func:`read_run_log`.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigurationError(f"log_runs: the folder {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise ConfigurationError(f"log_runs: {str(target)!r} is a folder; give a file path such as runs.jsonl")
    return add_hook(RunLog(target))


# -- reading ---------------------------------------------------------------------------------------
def _error_of(doc: Any) -> ErrorRecord | None:
    return None if doc is None else ErrorRecord(type=doc["type"], message=doc["message"])


def _usage_of(doc: Any) -> Usage:
    return Usage(**{k: v for k, v in doc.items() if k in _USAGE_FIELDS}) if doc else Usage()


def _message_of(doc: Mapping[str, Any]) -> Message:
    content = doc["content"]
    if isinstance(content, str):
        return Message(doc["role"], content)
    parts = tuple(
        TextPart(text=p["text"]) if p["type"] == "text" else ImagePart(url=p["url"], media_type=p.get("media_type"))
        for p in content
    )
    return Message(doc["role"], parts)


def _completion_of(doc: Any) -> Completion | None:
    if doc is None:
        return None
    return Completion(
        text=doc["text"],
        model=doc.get("model"),
        usage=_usage_of(doc.get("usage")),
        finish_reason=doc.get("finish_reason"),
    )


def _record(doc: Mapping[str, Any]) -> RunRecord:
    prompt = doc.get("prompt") or {}
    return RunRecord(
        version=doc["version"],
        id=doc["id"],
        timestamp=dt.datetime.fromisoformat(doc["timestamp"]),
        prompt_name=prompt.get("name"),
        prompt_digest=prompt.get("digest"),
        backend=doc["backend"],
        strategy=doc["strategy"],
        inputs=MappingProxyType(doc.get("inputs") or {}),
        inputs_repr=tuple(doc.get("inputs_repr") or ()),
        messages=tuple(_message_of(m) for m in doc["messages"]),
        params=MappingProxyType(doc.get("params") or {}),
        attempts=tuple(
            AttemptRecord(
                purpose=a["purpose"],
                sample=a.get("sample"),
                text=a.get("text"),
                model=a.get("model"),
                finish_reason=a.get("finish_reason"),
                usage=_usage_of(a.get("usage")),
                error=_error_of(a.get("error")),
                seconds=a.get("seconds", 0.0),
            )
            for a in doc["attempts"]
        ),
        value=doc.get("value"),
        value_format=doc.get("value_format"),
        completion=_completion_of(doc.get("completion")),
        error=_error_of(doc.get("error")),
        usage=_usage_of(doc.get("usage")),
        cost=doc.get("cost"),
        latency=doc["latency"],
    )


def read_run_log(path: str | os.PathLike[str]) -> Iterator[RunRecord]:
    """The runs logged in ``path`` by :func:`log_runs`, in the order they ended, as :class:`RunRecord`.

    A line that is not a record of a known version raises :class:`~promptkit.ConfigurationError`
    naming the file and line.
    """
    source = Path(path)
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    raise TypeError("not a JSON object")
                if doc.get("version") != VERSION:
                    raise ConfigurationError(
                        f"{source}:{number}: run record version {doc.get('version')!r}; this promptkit reads {VERSION}"
                    )
                record = _record(doc)
            except ConfigurationError:
                raise
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigurationError(f"{source}:{number}: not a run record ({type(exc).__name__}: {exc})") from exc
            yield record
