"""Output parsers: turn a model's reply (untrusted text) into a typed value, or a ``ParseError``.

Every parser has ``parse(text)`` and ``instructions()``, the format instructions to put in the
prompt, and never loses the raw text: a ``ParseError`` keeps it. Parsers also preview streamed
replies: ``parse_partial(prefix)`` and ``parse_stream(chunks)`` (linear in the stream's length,
validated value last).

Private parts: ``_base`` (protocols, streaming machinery, ``TextParser``), ``_extract`` (finding
and loading JSON), ``_stream`` (incremental JSON), ``_json`` (``JsonParser``, ``PydanticParser``),
``_schema`` (strict JSON schemas), ``_simple`` (small answers).
"""

from __future__ import annotations

from ._base import BaseParser, FinalOnly, NativeOutputParser, Parser, StreamingParser, StreamState, TextParser
from ._extract import extract_json_candidates
from ._json import JsonParser, PydanticParser
from ._schema import strict_json_schema
from ._simple import BoolParser, ChoiceParser, DateParser, ListParser, NumberParser, RegexParser, XmlTagParser

__all__ = [
    "BaseParser",
    "BoolParser",
    "ChoiceParser",
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
