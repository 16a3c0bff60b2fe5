"""Output parsers: turn a model's reply (untrusted text) into a typed value, or a ``ParseError``.

Every parser has ``parse(text)`` and ``instructions()``, the format instructions to put in the
prompt. Parsers never lose the raw text: a ``ParseError`` keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar, runtime_checkable

import pydantic

from ._errors import ConfigurationError, ParseError

__all__ = ["Parser", "PydanticParser", "TextParser", "extract_json_candidates"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
M = TypeVar("M", bound=pydantic.BaseModel)


@runtime_checkable
class Parser(Protocol[T_co]):
    """What a :class:`~promptkit.Prompt` needs to turn a reply into a value of type ``T_co``."""

    def parse(self, text: str) -> T_co:
        """Return the value in ``text`` or raise :class:`~promptkit.ParseError`."""
        ...

    def instructions(self) -> str:
        """Format instructions for the prompt ("" when none are needed)."""
        ...


class TextParser:
    """The reply as text, stripped of surrounding whitespace.

    >>> TextParser().parse("  Paris\\n")
    'Paris'
    """

    def __init__(self, *, strip: bool = True) -> None:
        self.strip = strip

    def parse(self, text: str) -> str:
        return text.strip() if self.strip else text

    def instructions(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"TextParser(strip={self.strip})"


def _fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """Yield ``(info, body)`` for each fenced code block, scanning line by line (linear time).

    A block opens with a line starting with three or more backticks or tildes and closes with a
    line holding the same fence; an unclosed block runs to the end of the text.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        fence_char = stripped[:1]
        if fence_char in ("`", "~") and stripped.startswith(fence_char * 3):
            n = len(stripped) - len(stripped.lstrip(fence_char))
            fence = fence_char * n
            info = stripped[n:].strip().lower()
            body: list[str] = []
            i += 1
            while i < len(lines):
                candidate = lines[i].strip()
                if candidate.startswith(fence) and not candidate.lstrip(fence_char):
                    break
                body.append(lines[i])
                i += 1
            yield info, "\n".join(body)
        i += 1


def extract_json_candidates(text: str) -> list[str]:
    """Where JSON may be in a reply: fenced ``json`` blocks first, then other blocks, then the text.

    >>> extract_json_candidates('Here:\\n```json\\n{"a": 1}\\n```')
    ['{"a": 1}']
    """
    json_blocks: list[str] = []
    other_blocks: list[str] = []
    for info, body in _fenced_blocks(text):
        (json_blocks if info in ("json", "jsonc", "json5") else other_blocks).append(body.strip())
    if json_blocks or other_blocks:
        return json_blocks + other_blocks
    stripped = text.strip()
    candidates = [stripped]
    # Prose around a bare object: take the span from the first opening to the last closing brace.
    for opening, closing in (("{", "}"), ("[", "]")):
        start, end = stripped.find(opening), stripped.rfind(closing)
        if 0 <= start < end and (start, end) != (0, len(stripped) - 1):
            candidates.append(stripped[start : end + 1])
    return candidates


class PydanticParser(Generic[M]):
    """Validate the JSON in a reply (bare, fenced, or inside prose) against a pydantic model.

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    ...     population: int
    >>> PydanticParser(City).parse('```json\\n{"name": "Oslo", "population": 709000}\\n```').name
    'Oslo'
    """

    def __init__(self, model: type[M]) -> None:
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            raise ConfigurationError(f"PydanticParser needs a pydantic BaseModel subclass, not {model!r}")
        self.model = model

    def parse(self, text: str) -> M:
        errors: list[str] = []
        for candidate in extract_json_candidates(text):
            try:
                return self.model.model_validate_json(candidate)
            except pydantic.ValidationError as exc:
                errors.append(_summarise(exc))
        detail = errors[0] if errors else "no JSON found"
        raise ParseError(
            f"reply is not a valid {self.model.__name__}: {detail}",
            text=text,
            expected=f"a JSON object matching {self.model.__name__}",
        )

    def instructions(self) -> str:
        schema = json.dumps(self.model.model_json_schema(), separators=(",", ":"))
        return f"Reply with a single JSON object that matches this JSON schema, and nothing else:\n{schema}"

    def __repr__(self) -> str:
        return f"PydanticParser({self.model.__name__})"


def _summarise(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
