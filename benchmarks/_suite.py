"""What a benchmark script hands to ``python -m benchmarks``: one :class:`Row` per table line.

A script ``benchmarks/<name>.py`` joins the suite by defining ``run(quick: bool) -> list[Row]``
(dicts with the same keys are accepted too). Every time is seconds per operation, the median of
repeated rounds after warm-up. See ``docs/performance.md``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: A peer's figure: seconds, ``None`` when the peer is not installed, or a reason it was not measured.
PeerTime = float | str | None


@dataclass(frozen=True)
class Row:
    """One line of the table: the same operation done by promptkit, its floor and its peers."""

    operation: str
    size: str
    promptkit: float
    floor: float | None = None
    floor_name: str = ""
    peers: Mapping[str, PeerTime] = field(default_factory=dict)
    note: str = ""

    @classmethod
    def coerce(cls, value: Row | Mapping[str, Any]) -> Row:
        """A :class:`Row` from a row or a dict with its field names (unknown keys are an error)."""
        if isinstance(value, Row):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"a benchmark row must be a Row or a dict, not {type(value).__name__}")
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown benchmark row keys: {sorted(unknown)}")
        return cls(**value)

    def best_peer(self) -> tuple[str, float] | None:
        """The fastest peer measured in this run, if any."""
        timed = [(name, t) for name, t in self.peers.items() if isinstance(t, float)]
        return min(timed, key=lambda pair: pair[1]) if timed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "size": self.size,
            "promptkit": self.promptkit,
            "floor": self.floor,
            "floor_name": self.floor_name,
            "peers": dict(self.peers),
            "note": self.note,
        }


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (a peer that is missing is a table cell, not a crash)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
