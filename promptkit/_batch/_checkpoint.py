"""The checkpoint: one JSON line per finished item, so a re-run sends only the rest.

A line holds the item's key (its index, a digest of its inputs, a digest of the request it
renders to and of the prompt's strategy) and every model reply the item's result was built from,
with usage: no inputs, no messages, no parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import warnings
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .._errors import BackendError, UnsupportedCapabilityError
from .._messages import Completion, Usage
from .._result import Result
from ..backends import Backend, Request, WrapperBackend

if TYPE_CHECKING:
    from ..backends import AsyncStream, Stream

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "CheckpointWarning", "Replay", "ReplayExhausted", "inputs_digest"]

CHECKPOINT_VERSION = 1


class CheckpointWarning(UserWarning):
    """A checkpoint line could not be read (a crash while writing it); that item is sent again."""


def inputs_digest(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=repr, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


class Checkpoint:
    """A JSON-lines file of finished items, appended and flushed one line per item."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record["key"]
                if (
                    record.get("v") != CHECKPOINT_VERSION
                    or not isinstance(key, str)
                    or not isinstance(record["replies"], list)
                ):
                    raise ValueError("not a checkpoint record of this version")
            except (ValueError, KeyError, TypeError) as exc:
                where = "its last line" if number == len(lines) else f"line {number}"
                warnings.warn(
                    f"checkpoint {self.path}: {where} cannot be read ({exc}); ignored, its item is sent again",
                    CheckpointWarning,
                    stacklevel=4,
                )
                continue
            self.records[key] = record

    def lookup(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def write(self, key: str, index: int, result: Result[Any], seconds: float | None) -> None:
        replies = [_reply_doc(a.completion, a.error) for a in result.attempts] or [_reply_doc(result.completion)]
        record = {
            "v": CHECKPOINT_VERSION,
            "key": key,
            "index": index,
            "replies": replies,
            "seconds": seconds,
        }
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                needs_newline = (
                    self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
                )
                self._file = self.path.open("a", encoding="utf-8")
                if needs_newline:
                    self._file.write("\n")  # after a line cut short by a crash
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _reply_doc(completion: Completion | None, error: BaseException | None = None) -> dict[str, Any]:
    """One model reply as stored: what the prompt's strategy needs to rebuild the result."""
    if completion is None:  # a sample that failed (self-consistency keeps going without it)
        return {"error": type(error).__name__ if error is not None else "BackendError"}
    doc: dict[str, Any] = {
        "text": completion.text,
        "model": completion.model,
        "finish_reason": completion.finish_reason,
        "usage": {k: v for k, v in dataclasses.asdict(completion.usage).items() if v},
    }
    if completion.provider is not None:
        doc["provider"] = completion.provider
    if completion.reasoning is not None:
        doc["reasoning"] = completion.reasoning
    return doc


_USAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(Usage))


class ReplayExhausted(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The prompt asked for more replies than the checkpoint holds: it has changed, send it again."""


class Replay(WrapperBackend):
    """Answers a prompt's calls with the replies a checkpoint stored, in order, never calling ``inner``.

    Running the prompt over it goes through the prompt's own strategy and parser, so a restored
    result is rebuilt exactly as the first run built it (the value typed, the reasoning split).
    """

    def __init__(self, inner: Backend, replies: list[dict[str, Any]]) -> None:
        super().__init__(inner)
        self._replies = deque(replies)

    def complete_request(self, request: Request) -> Completion:
        if not self._replies:
            raise ReplayExhausted
        doc = self._replies.popleft()
        if "error" in doc:
            raise BackendError(f"a stored failed reply ({doc['error']})", provider=self.name)
        usage = doc.get("usage") or {}
        return Completion(
            text=str(doc["text"]),
            model=doc.get("model"),
            usage=Usage(**{k: int(v) for k, v in usage.items() if k in _USAGE_FIELDS}),
            finish_reason=doc.get("finish_reason"),
            reasoning=doc.get("reasoning"),
            provider=doc.get("provider"),
        )

    async def acomplete_request(self, request: Request) -> Completion:
        return self.complete_request(request)

    def stream_request(self, request: Request) -> Stream:
        raise UnsupportedCapabilityError("a checkpoint replays whole replies, not streams")

    def astream_request(self, request: Request) -> AsyncStream:
        raise UnsupportedCapabilityError("a checkpoint replays whole replies, not streams")


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
