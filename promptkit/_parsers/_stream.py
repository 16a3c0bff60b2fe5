"""Incremental JSON for streamed replies: every character is looked at once.

:class:`JsonBuilder` is a push parser. It skips text before the first ``{`` or ``[`` (prose, a
fence line), then builds the value as chunks arrive: strings are consumed with one regex search
per chunk, scalars are converted when they end, containers are attached to their parent when they
open. A preview copies only the *spine* (the containers still open), sharing every finished
subtree, so its cost does not grow with what has already been completed.

Previews are for display. The builder is lenient (it does not check everything strict JSON
requires) and never presents an unfinished number or literal; the final value always comes from
the parser's strict ``parse`` of the whole text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jiter

__all__ = ["MAX_DEPTH", "MISSING", "JsonBuilder"]

MAX_DEPTH = 200
"""Deeper values are not previewed (and jiter's strict parse rejects them too)."""

_STR_STOP = re.compile(r'["\\]')
_SCALAR_STOP = re.compile(r"[^0-9A-Za-z.+\-]")
_OPENER = re.compile(r"[{\[]")
_NOT_SPACE = re.compile(r"[^ \t\r\n]")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# frame expectations
_KEY, _COLON, _VALUE, _COMMA = 0, 1, 2, 3


class JsonBuilder:
    """Builds a JSON value from chunks; see the module docstring. ``version`` counts changes."""

    def __init__(self) -> None:
        self.active = False
        self.done = False
        self.root: Any = MISSING
        self.stack: list[Any] = []  # open containers, outermost first
        self.keys: list[str | None] = []  # per open dict: the key whose value comes next
        self.expect: list[int] = []
        self.version = 0
        self.generation = 0  # bumped when a syntax error discards the value being built
        self._tok = 0  # 0 none, 1 string, 2 scalar
        self._parts: list[str] = []
        self._escaped = False
        self._has_escape = False
        self._is_key = False
        self._str_len = 0

    # -- feeding ----------------------------------------------------------------------------
    def feed(self, chunk: str) -> None:
        i, n = 0, len(chunk)
        while i < n and not self.done:
            if self._tok == 1:
                i = self._string(chunk, i, n)
            elif self._tok == 2:
                m = _SCALAR_STOP.search(chunk, i)
                if m is None:
                    self._parts.append(chunk[i:])
                    return
                self._parts.append(chunk[i : m.start()])
                i = m.start()
                if not self._end_scalar():
                    i = self._restart(chunk, i)
            elif not self.active:
                m = _OPENER.search(chunk, i)
                if m is None:
                    return
                i = m.start()
                self.active = True
            else:
                m = _NOT_SPACE.search(chunk, i)
                if m is None:
                    return
                i = m.start()
                if self._structural(chunk[i]):
                    i += 1
                else:
                    i = self._restart(chunk, i)

    def _string(self, chunk: str, i: int, n: int) -> int:
        if self._escaped:
            self._parts.append(chunk[i])
            self._escaped = False
            return i + 1
        m = _STR_STOP.search(chunk, i)
        if m is None:
            self._parts.append(chunk[i:])
            self._str_len += n - i
            self.version += 1
            return n
        j = m.start()
        if chunk[j] == "\\":
            self._parts.append(chunk[i : j + 1])
            self._escaped = self._has_escape = True
            return j + 1
        self._parts.append(chunk[i:j])
        raw = "".join(self._parts)
        self._tok, self._parts = 0, []
        if self._has_escape:
            self._has_escape = False
            try:
                value = json.loads('"' + raw + '"')
            except ValueError:
                return self._restart(chunk, j)
        else:
            value = raw
        if self._is_key:
            self.keys[-1] = value
            self.expect[-1] = _COLON
        else:
            self._attach(value)
        return j + 1

    def _structural(self, c: str) -> bool:
        expect = self.expect[-1] if self.stack else _VALUE
        if c in "{[":
            if expect != _VALUE or len(self.stack) >= MAX_DEPTH:
                return False
            container: Any = {} if c == "{" else []
            if self.stack:
                self._attach(container)
            self.stack.append(container)
            self.keys.append(None)
            self.expect.append(_KEY if c == "{" else _VALUE)
            self.version += 1
            return True
        if not self.stack:
            return False
        top = self.stack[-1]
        if c in "}]":
            if (c == "}") != isinstance(top, dict) or expect not in (_COMMA, _KEY if c == "}" else _VALUE):
                return False
            self.stack.pop()
            self.keys.pop()
            self.expect.pop()
            self.version += 1
            if not self.stack:
                self.root, self.done = top, True
            return True
        if c == ",":
            if expect != _COMMA:
                return False
            self.expect[-1] = _KEY if isinstance(top, dict) else _VALUE
            return True
        if c == ":":
            if expect != _COLON:
                return False
            self.expect[-1] = _VALUE
            return True
        if c == '"':
            if expect not in (_KEY, _VALUE):
                return False
            self._tok, self._is_key, self._str_len = 1, expect == _KEY, 0
            return True
        if expect != _VALUE or c not in "-0123456789tfnNI":
            return False
        self._tok, self._parts = 2, [c]
        return True

    def _end_scalar(self) -> bool:
        raw = "".join(self._parts)
        self._tok, self._parts = 0, []
        if raw in _LITERALS:
            value = _LITERALS[raw]
        else:
            try:
                value = jiter.from_json(raw.encode(), allow_inf_nan=True)
            except ValueError:
                return False
        self._attach(value)
        return True

    def _attach(self, value: Any) -> None:
        top = self.stack[-1]
        if isinstance(top, list):
            top.append(value)
        else:
            top[self.keys[-1]] = value
        self.expect[-1] = _COMMA
        self.version += 1

    def _restart(self, chunk: str, i: int) -> int:
        """A syntax error at ``chunk[i]``: forget this value and look for the next one after it."""
        self.active = False
        self.generation += 1
        self.stack, self.keys, self.expect = [], [], []
        self._tok, self._parts, self._escaped, self._has_escape = 0, [], False, False
        self.version += 1
        return i + 1

    # -- previews -----------------------------------------------------------------------------
    def preview_cost(self) -> int:
        """Roughly what a preview must copy: the open string and the items of open containers."""
        return self._str_len + sum(len(c) for c in self.stack)

    def partial_string(self) -> Any:
        """The string value being received, or ``MISSING`` (keys and scalars are never partial)."""
        if self._tok != 1 or self._is_key:
            return MISSING
        raw = "".join(self._parts)
        self._parts = [raw]
        if not self._has_escape:
            return raw
        try:
            return jiter.from_json(('"' + raw).encode(), partial_mode="trailing-strings")
        except ValueError:
            return MISSING

    def snapshot(self) -> Any:
        """A copy of the value so far (open containers copied, finished ones shared), or ``MISSING``."""
        if self.done:
            return self.root
        if not self.stack:
            return MISSING
        child: Any = MISSING
        for depth in range(len(self.stack) - 1, -1, -1):
            live = self.stack[depth]
            copy: Any = live.copy()
            if child is not MISSING:
                if isinstance(copy, list):
                    copy[-1] = child
                else:
                    copy[self.keys[depth]] = child
            else:
                partial = self.partial_string()
                if partial is not MISSING:
                    if isinstance(copy, list):
                        copy.append(partial)
                    elif self.keys[depth] is not None and self.expect[depth] == _VALUE:
                        copy[self.keys[depth]] = partial
            child = copy
        return child
