"""Finding JSON in a reply and loading it under an explicit policy, in linear time.

Candidates come in three classes, tried in order: fenced blocks tagged ``json``, other fenced
blocks, then the bare text (the whole reply, balanced ``{...}``/``[...]`` spans inside prose, and
the tail from the first bracket). Every scanner here is linear: fences are found line by line
with an anchored pattern that cannot backtrack across lines, and spans with a bracket counter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import jiter

__all__ = [
    "Candidate",
    "candidate_groups",
    "JsonSyntaxError",
    "extract_json_candidates",
    "find_candidates",
    "holds_non_finite",
    "load_json",
    "max_depth",
    "may_overflow",
    "position_of",
]

JSON_INFOS = frozenset({"json", "jsonc", "json5", "jsonl"})
MAX_BLOCKS = 64
"""How many fenced blocks of one kind are tried (the first and last 32); more is pathological."""
MAX_NESTING = 200
"""jiter's nesting limit: a deeper span cannot load, so the span scanner does not follow it."""
MAX_SPANS = 32
"""How many balanced spans in prose are considered; more only cost time on adversarial replies."""

# One fence line: indentation, three or more backticks or tildes, then the info string. Anchored
# at a line start and bounded by the line end, so a match never looks beyond one line.
_FENCE = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})([^\n]*)")
_OPENERS = re.compile(r"[\[{\s]*")
_STRUCT = re.compile(r'[{}\[\]"]')
_STRING_TAIL = re.compile(r'(?:[^"\\\n]|\\.)*"')
_POSITION = re.compile(r"at line (\d+) column (\d+)")

Kind = Literal["json-block", "block", "text"]


class Candidate(NamedTuple):
    """A span of the reply that may hold the JSON value: ``text[start:end]``, of one ``kind``."""

    kind: Kind
    start: int
    end: int
    text: str


def fenced_blocks(text: str) -> list[tuple[str, int, int]]:
    """``(info, start, end)`` of each fenced block's body; an unclosed block runs to the end.

    Fence lines are found with one-character ``str.find`` calls (a memchr, far faster than a
    three-character search) and checked with an anchored one-line match; each marker's next
    position is searched again only once the scan has passed it, and the line start only between
    the last position and the hit, so the scan stays linear.
    """
    blocks: list[tuple[str, int, int]] = []
    find = text.find
    # Next known position of each marker: -2 before the first search, -1 once none is left.
    tick = -2 if "`" in text else -1
    tilde = -2 if "~" in text else -1
    if tick == tilde == -1:
        return blocks
    pos = line_start = 0
    opening: re.Match[str] | None = None
    while True:
        if tick != -1 and tick < pos:
            tick = find("`", pos)  # one-character finds are a memchr; then check for the run
            while tick >= 0 and not text.startswith("```", tick):
                tick = find("`", tick + 1)
        if tilde != -1 and tilde < pos:
            tilde = find("~", pos)
            while tilde >= 0 and not text.startswith("~~~", tilde):
                tilde = find("~", tilde + 1)
        hit = tilde if tick < 0 or -1 < tilde < tick else tick
        if hit < 0:
            break
        newline = text.rfind("\n", pos, hit)
        if newline >= 0:
            line_start = newline + 1
        m = _FENCE.match(text, line_start) if hit - line_start <= 3 else None
        if m is None:
            pos = hit + 3
            continue
        pos = m.end()
        if opening is None:
            if m.group(1)[0] == "`" and "`" in m.group(2):
                continue  # not a fence: backticks in the info string (inline code)
            opening = m
            continue
        marker, fence = m.group(1), opening.group(1)
        if marker[0] == fence[0] and len(marker) >= len(fence) and not m.group(2).strip():
            start = opening.end() + 1
            blocks.append((_info(opening), start, max(m.start() - 1, start)))
            opening = None
    if opening is not None:
        n = len(text)
        blocks.append((_info(opening), min(opening.end() + 1, n), n))
    return blocks


def _info(fence: re.Match[str]) -> str:
    info = fence.group(2).strip().lower()
    return info.split(maxsplit=1)[0] if info else ""


def balanced_spans(text: str, start: int = 0, limit: int = MAX_SPANS) -> list[tuple[int, int]]:
    """Outermost balanced ``{...}``/``[...]`` spans, skipping brackets inside JSON strings.

    A span nested deeper than jiter's limit cannot load; it is followed with a plain counter (runs
    of openers skipped at C speed) and dropped, never cut into shallower pieces.
    """
    spans: list[tuple[int, int]] = []
    stack: list[str] = []
    deep = 0  # depth of a too-deep span being skipped
    no_string_until = 0
    opened = 0
    pos = start
    n = len(text)
    while pos < n and len(spans) < limit:
        m = _STRUCT.search(text, pos)
        if m is None:
            break
        ch = m.group()
        pos = m.end()
        if ch == '"':
            if stack or deep:
                # A failed string scan ran to its line's end with every quote escaped; a string
                # starting after any of those quotes fails the same way, so it is not rescanned.
                tail = None if pos < no_string_until else _STRING_TAIL.match(text, pos)
                if tail is None:  # an unterminated string: this span cannot close
                    if pos >= no_string_until:
                        newline = text.find("\n", pos)
                        no_string_until = newline if newline >= 0 else n
                    stack.clear()
                    deep = 0
                else:
                    pos = tail.end()
        elif ch in "{[":
            if not stack and not deep:
                opened = m.start()
            if not deep:
                stack.append("}" if ch == "{" else "]")
                if len(stack) <= MAX_NESTING:
                    continue
                deep, stack = len(stack) - 1, []
            run = _OPENERS.match(text, m.start())
            end = run.end() if run is not None else pos
            segment = text[m.start() : end]
            deep += segment.count("[") + segment.count("{")
            pos = end
        elif deep:
            deep -= 1
        elif stack:
            if stack[-1] != ch:
                stack.clear()  # mismatched bracket: abandon this span
                continue
            stack.pop()
            if not stack:
                spans.append((opened, pos))
    return spans


def candidate_groups(text: str, fenced: list[tuple[str, int, int]] | None = None) -> Iterator[list[Candidate]]:
    """Candidate groups, lazily: ``json`` blocks, other blocks, then the bare text's candidates.

    ``fenced`` is ``fenced_blocks(text)`` when the caller has it already.
    """
    json_blocks: list[Candidate] = []
    blocks: list[Candidate] = []
    for info, start, end in fenced_blocks(text) if fenced is None else fenced:
        body = text[start:end]
        if body and not body.isspace():
            if info in JSON_INFOS:
                json_blocks.append(Candidate("json-block", start, end, body))
            else:
                blocks.append(Candidate("block", start, end, body))
    if json_blocks:
        yield _bounded(json_blocks)
    if blocks:
        yield _bounded(blocks)
    lo, hi = _strip_span(text, 0, len(text))
    if hi > lo:
        yield [Candidate("text", lo, hi, text[lo:hi])]
        rest = _inner_candidates(text, lo, hi)
        if rest:
            yield rest


def _bounded(group: list[Candidate]) -> list[Candidate]:
    """At most ``MAX_BLOCKS`` candidates: the first and the last halves of a very long list."""
    if len(group) <= MAX_BLOCKS:
        return group
    half = MAX_BLOCKS // 2
    return group[:half] + group[-half:]


def _inner_candidates(text: str, lo: int, hi: int) -> list[Candidate]:
    """Balanced spans inside the text, and the tail from its first bracket (for truncated JSON)."""
    first = min((i for i in (text.find("{", lo, hi), text.find("[", lo, hi)) if i >= 0), default=-1)
    if first < 0:
        return []
    spans = balanced_spans(text, first)
    out = [Candidate("text", s, e, text[s:e]) for s, e in spans if (s, e) != (lo, hi)]
    if first > lo and (not spans or spans[-1][1] < hi):
        out.append(Candidate("text", first, hi, text[first:hi]))
    return out


def find_candidates(text: str) -> list[Candidate]:
    """All candidates, in the order the parsers consider them (see the module docstring)."""
    return [c for group in candidate_groups(text) for c in group]


def _strip_span(text: str, lo: int, hi: int) -> tuple[int, int]:
    """Narrow ``text[lo:hi]`` past whitespace and byte-order marks (with C-speed ``strip``)."""
    part = text[lo:hi]
    left = part.lstrip().lstrip("\ufeff").lstrip()
    lo += len(part) - len(left)
    hi = lo + len(left.rstrip())
    return lo, hi


def extract_json_candidates(text: str) -> list[str]:
    """Where JSON may be in a reply, in the order parsers try it: ``json`` blocks, other blocks, text.

    >>> extract_json_candidates('Here:\\n```json\\n{"a": 1}\\n```')[0]
    '{"a": 1}'
    """
    return [c.text.strip() for c in find_candidates(text)]


class JsonSyntaxError(ValueError):
    """Raised by :func:`load_json`: ``reason`` and the 0-based ``offset`` in the loaded string."""

    def __init__(self, reason: str, offset: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def position_of(text: str, line: int, column: int) -> int:
    """0-based offset of a 1-based ``line``/``column`` in ``text``."""
    offset = 0
    for _ in range(line - 1):
        nl = text.find("\n", offset)
        if nl < 0:
            return len(text)
        offset = nl + 1
    return min(offset + max(column - 1, 0), len(text))


def load_json(text: str, *, allow_nan: bool = False, duplicate_keys: bool = False) -> Any:
    """Parse strict JSON with jiter (iterative, depth-limited); errors carry the exact offset.

    Only keys go through jiter's string cache: replies rarely repeat values, and with duplicate
    keys caught (a hash set per object) this is the faster mode on every shape measured. Without
    ``allow_nan``, a number too large for a float (``1e400``, which jiter reads as infinity) is
    an error like ``Infinity`` itself.
    """
    try:
        data = text.encode()  # a lone surrogate fails here, as a syntax error without a position
        value = jiter.from_json(
            data, allow_inf_nan=allow_nan, catch_duplicate_keys=not duplicate_keys, cache_mode="keys"
        )
    except ValueError as exc:
        reason = str(exc)
        m = _POSITION.search(reason)
        offset = position_of(text, int(m.group(1)), int(m.group(2))) if m else None
        raise JsonSyntaxError(reason, offset) from None
    if not allow_nan and may_overflow(data) and holds_non_finite(value):
        raise JsonSyntaxError(
            "a number is too large for a float (it would read as Infinity); NaN and Infinity are not JSON"
            " (pass allow_nan=True to accept them)",
            None,
        )
    return value


# Digits (and the "+" of an exponent) become "d", "E" becomes "e", a letter "d" becomes "x".
_NUMBER_SHAPE = bytes.maketrans(b"0123456789E+d", b"ddddddddddedx")
_LONG_RUN = b"d" * 210


def may_overflow(data: bytes) -> bool:
    """Whether JSON ``data`` may hold a float too large for a double (no = certainly not).

    A double ends near 1.8e308, so an overflow needs an exponent of three digits or, with at most
    two, 210 digits or more before the point. One C-speed translation and two substring searches
    tell; a hit inside a string is only a false alarm, settled by :func:`holds_non_finite`.
    """
    shape = data.translate(_NUMBER_SHAPE)
    return b"eddd" in shape or _LONG_RUN in shape


def holds_non_finite(value: Any) -> bool:
    """Whether a parsed JSON value holds a NaN or an infinite float, at any depth (no recursion).

    >>> holds_non_finite({"a": [1.0, float("inf")]}), holds_non_finite([1, "inf"])
    (True, False)
    """
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, (dict, list, tuple)) and id(item) not in seen:
            seen.add(id(item))  # a value built in Python may share or even contain itself
            stack.extend(item.values() if isinstance(item, dict) else item)
    return False


def max_depth(text: str, limit: int) -> int:
    """The bracket depth of ``text`` (ignoring strings roughly), stopping once it passes ``limit``."""
    depth = best = 0
    for m in re.finditer(r"[{}\[\]]", text):
        depth = depth + 1 if m.group() in "{[" else max(depth - 1, 0)
        if depth > best:
            best = depth
            if best > limit:
                break
    return best


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
