"""Output parsers: turn a model's reply (untrusted text) into a typed value, or a ``ParseError``.

Every parser has ``parse(text)`` and ``instructions()``, the format instructions to put in the
prompt, and never loses the raw text: a ``ParseError`` keeps it. Parsers also preview streamed
replies: ``parse_partial(prefix)`` and ``parse_stream(chunks)`` (linear in the stream's length,
validated value last).

Private parts: ``_base`` (protocols, streaming machinery, ``TextParser``), ``_extract`` (finding
and loading JSON), ``_stream`` (incremental JSON), ``_json`` (``JsonParser``, ``PydanticParser``),
``_schema`` (strict JSON schemas), ``_simple`` (small answers).

Only ``_base`` loads with the package (a prompt needs no more); the other parts load on first
access to one of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_attributes as _lazy_attributes
from ._base import (
    BaseParser,
    ConstrainedParser,
    FinalOnly,
    NativeOutputParser,
    Parser,
    StreamingParser,
    StreamState,
    TextParser,
)

if TYPE_CHECKING:
    from ._extract import extract_json_candidates
    from ._json import JsonParser, PydanticParser
    from ._schema import strict_json_schema
    from ._simple import BoolParser, ChoiceParser, DateParser, ListParser, NumberParser, RegexParser, XmlTagParser

_LAZY: dict[str, str] = {
    "BoolParser": "._simple",
    "ChoiceParser": "._simple",
    "DateParser": "._simple",
    "JsonParser": "._json",
    "ListParser": "._simple",
    "NumberParser": "._simple",
    "PydanticParser": "._json",
    "RegexParser": "._simple",
    "XmlTagParser": "._simple",
    "extract_json_candidates": "._extract",
    "strict_json_schema": "._schema",
}


__getattr__, __dir__ = _lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "BaseParser",
    "BoolParser",
    "ChoiceParser",
    "ConstrainedParser",
    "DateParser",
    "FinalOnly",
    "JsonParser",
    "ListParser",
    "NativeOutputParser",
    "NumberParser",
    "Parser",
    "PydanticParser",
    "RegexParser",
    "StreamState",
    "StreamingParser",
    "TextParser",
    "XmlTagParser",
    "extract_json_candidates",
    "strict_json_schema",
]
