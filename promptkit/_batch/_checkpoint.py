"""The checkpoint: one JSON line per finished item, so a re-run sends only the rest."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from .._result import Result

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "CheckpointWarning", "inputs_digest"]

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
                    or not isinstance(record["text"], str)
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
        completion = result.completion
        record = {
            "v": CHECKPOINT_VERSION,
            "key": key,
            "index": index,
            "text": completion.text,
            "model": completion.model,
            "finish_reason": completion.finish_reason,
            "usage": {"input_tokens": result.usage.input_tokens, "output_tokens": result.usage.output_tokens},
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


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
