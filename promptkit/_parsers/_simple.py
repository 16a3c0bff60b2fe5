"""Parsers for small answers: lists, choices, booleans, numbers, dates, regex groups, XML tags.

Each is tolerant of how models phrase short answers (case, punctuation, markdown emphasis, a
sentence around the answer) and strict about ambiguity: when a reply holds two different answers
the parser raises :class:`~promptkit.ParseError` instead of guessing. Every pattern used here is
bounded or anchored so that no reply makes it backtrack.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

import jiter

from .._errors import ConfigurationError, ParseError
from .._utils import is_model_class
from ._base import BaseParser, StreamState, Throttle, require_text, snippet

if TYPE_CHECKING:
    import pydantic

    from ..backends._contract import Constraint

__all__ = [
    "BoolParser",
    "ChoiceParser",
    "DateParser",
    "ListParser",
    "NumberParser",
    "RegexParser",
    "XmlTagParser",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
N = TypeVar("N", int, float, Decimal)
D = TypeVar("D", dt.date, dt.datetime)
M = TypeVar("M", bound="pydantic.BaseModel")

Prefer = Literal["first", "last", "unique"]

_MARKER = re.compile(r"^\s{0,12}(?:[-*+\u2022\u2023\u25e6]|\(?\d{1,4}[.)]|\(?[a-zA-Z][.)](?=\s))\s+")
_EDGE_PUNCT = " \t\r\n\"'`*_.,;:!?()[]{}<>"
_WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*")


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.strip(_EDGE_PUNCT).split())


def _check_prefer(prefer: str) -> None:
    if prefer not in ("first", "last", "unique"):
        raise ConfigurationError(f"prefer must be 'first', 'last' or 'unique', not {prefer!r}")


class ListParser(BaseParser[list[T]]):
    """A list from one item per line (bulleted or numbered) or from comma-separated text.

    ``separator="auto"`` uses lines when the reply has several, otherwise commas (with "and"
    before the last item; without any comma the reply is one item, as in "salt and pepper").
    When some lines carry a bullet or a number, only those lines are items (a heading line such
    as "Here they are:" is dropped). A JSON array of strings is read as such. ``item_parser``
    turns each item into a value (e.g. ``NumberParser(int)``).

    >>> ListParser().parse("Here you go:\\n1. apples\\n2. pears")
    ['apples', 'pears']
    >>> ListParser().parse("red, green and blue")
    ['red', 'green', 'blue']
    """

    @overload
    def __init__(
        self: ListParser[str],
        *,
        separator: Literal["auto", "lines", "comma"] = "auto",
        item_parser: None = None,
        min_items: int = 1,
        max_items: int | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: ListParser[T],
        *,
        separator: Literal["auto", "lines", "comma"] = "auto",
        item_parser: BaseParser[T],
        min_items: int = 1,
        max_items: int | None = None,
    ) -> None: ...

    def __init__(
        self,
        *,
        separator: Literal["auto", "lines", "comma"] = "auto",
        item_parser: BaseParser[Any] | None = None,
        min_items: int = 1,
        max_items: int | None = None,
    ) -> None:
        if separator not in ("auto", "lines", "comma"):
            raise ConfigurationError(f"separator must be 'auto', 'lines' or 'comma', not {separator!r}")
        self.separator = separator
        self.item_parser = item_parser
        self.min_items = min_items
        self.max_items = max_items

    def _items(self, text: str, *, lines_only: bool = False) -> list[str]:
        stripped = text.strip()
        if stripped.startswith("[") and stripped.endswith("]"):  # a JSON array of strings or numbers
            try:
                array = jiter.from_json(stripped.encode())
            except ValueError:
                array = None
            if isinstance(array, list) and all(isinstance(v, (str, int, float)) for v in array):
                return [str(v).strip() for v in array if str(v).strip()]
        lines = [line for line in text.splitlines() if line.strip()]
        if self.separator == "lines" or (self.separator == "auto" and (len(lines) > 1 or lines_only)):
            marked = [_MARKER.sub("", line, count=1) for line in lines if _MARKER.match(line)]
            items = marked or lines
        else:
            fields = _split_fields(text.strip())
            if len(fields) > 1 and not fields[-1][1]:  # "a, b and c" / "a, b, and c": "and" joins the last two
                last = re.sub(r"^\s*and\s+", "", fields[-1][0])
                head, sep, tail = last.rpartition(" and ")
                fields[-1:] = [(head, False), (tail, False)] if sep else [(last, False)]
            cleaned = (item if quoted else item.strip().strip("*_`").strip() for item, quoted in fields)
            return [item for item in cleaned if item.strip()]
        return [item.strip().strip("*_`").strip() for item in items if item.strip()]

    def _convert(self, items: list[str], text: str) -> list[T]:
        if self.item_parser is None:
            return items  # type: ignore[return-value]
        out: list[T] = []
        for i, item in enumerate(items):
            try:
                out.append(self.item_parser.parse(item))
            except ParseError as exc:
                raise ParseError(f"list item {i + 1} is invalid: {exc}", text=text, expected=self._expected()) from exc
        return out

    def _expected(self) -> str:
        return "a list with one item per line" if self.separator != "comma" else "a comma-separated list"

    def parse(self, text: str) -> list[T]:
        require_text(text, self)
        items = self._items(text)
        if len(items) < self.min_items:
            raise ParseError(
                f"found {len(items)} list item(s), need at least {self.min_items} in {snippet(text)}",
                text=text,
                expected=self._expected(),
            )
        if self.max_items is not None and len(items) > self.max_items:
            raise ParseError(
                f"found {len(items)} list items, at most {self.max_items} allowed",
                text=text,
                expected=self._expected(),
                last_value=items,
            )
        return self._convert(items, text)

    def parse_partial(self, text: str) -> list[T] | None:
        require_text(text, self)
        cut = text.rfind("\n")
        try:
            return self._convert(self._items(text[: cut + 1], lines_only=True) if cut >= 0 else [], text)
        except ParseError:
            return None

    def stream_state(self) -> StreamState[list[T]]:
        return _ListStream(self)

    def instructions(self) -> str:
        if self.separator == "comma":
            return "Reply with the items on one line, separated by commas, and nothing else."
        return "Reply with one item per line, each line starting with '- ', and nothing else."

    def __repr__(self) -> str:
        return f"ListParser(separator={self.separator!r})"


_FIELD = re.compile(r'[ \t]*"((?:[^"]|"")*)"[ \t]*(?:[,;]|\Z)|([^,;]*)(?:[,;]|\Z)')
"""One comma-separated field: quoted as in CSV (``"a, b"``, ``""`` for a quote) or plain text."""


def _split_fields(text: str) -> list[tuple[str, bool]]:
    """The fields of ``text`` split at commas and semicolons outside CSV-style double quotes.

    Each field comes with whether it was quoted. A quote only opens a field at its start, and a
    quoted field must end at a separator; otherwise the quotes are plain text, as in ``csv``.
    The scan is linear: a quoted attempt reads at most to the next lone quote.

    >>> _split_fields('"foo, foo2",bar; baz')
    [('foo, foo2', True), ('bar', False), (' baz', False)]
    """
    fields: list[tuple[str, bool]] = []
    pos = 0
    while True:
        m = _FIELD.match(text, pos)
        if m is None:  # pragma: no cover - the plain alternative always matches
            break
        quoted = m.group(1) is not None
        fields.append((m.group(1).replace('""', '"'), True) if quoted else (m.group(2), False))
        if m.end() == pos or text[m.end() - 1] not in ",;":  # the end of the text
            break
        pos = m.end()
    return fields


class _ListStream(Generic[T]):
    """Previews a list from complete lines only; each line is looked at once."""

    def __init__(self, parser: ListParser[T]) -> None:
        self._parser = parser
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._items: list[T] = []
        self._marked = False
        self._throttle = Throttle()

    def feed(self, chunk: str) -> list[list[T]]:
        require_text(chunk, self._parser)
        self._parts.append(chunk)
        self._throttle.add(len(chunk))
        if "\n" not in chunk:
            self._pending.append(chunk)
            return []
        head, _, tail = chunk.rpartition("\n")
        block = "".join(self._pending) + head
        self._pending = [tail] if tail else []
        changed = False
        for line in block.split("\n"):
            if not line.strip():
                continue
            marked = _MARKER.match(line) is not None
            if marked and not self._marked:
                self._marked, self._items = True, []  # from now on only marked lines are items
            if not marked and (self._marked or line.rstrip().endswith(":")):
                continue  # a heading such as "Here they are:" is not an item
            item = _MARKER.sub("", line, count=1).strip().strip("*_`").strip()
            try:
                value: T = self._parser.item_parser.parse(item) if self._parser.item_parser else cast(T, item)
            except ParseError:
                continue
            self._items.append(value)
            changed = True
        if changed and self._throttle.due(len(self._items)):
            self._throttle.reset()
            return [list(self._items)]
        return []

    def finish(self) -> list[T]:
        return self._parser.parse("".join(self._parts))


class ChoiceParser(BaseParser[T]):
    """One of a fixed set of labels (or an ``Enum``), tolerant of case, punctuation and prose.

    The reply matches a label when, after case-folding and trimming punctuation and markdown,
    it equals the label or one of its ``synonyms``; failing that, its first line does; failing
    that, exactly one label occurs in it as a whole word. Two different labels in the reply are an
    ambiguity error, not a guess.

    >>> ChoiceParser(["positive", "negative"]).parse("**Positive.**")
    'positive'
    >>> ChoiceParser(["positive", "negative"], synonyms={"positive": ["good"]}).parse("Good")
    'positive'
    """

    @overload
    def __init__(
        self: ChoiceParser[str],
        choices: Sequence[str],
        *,
        synonyms: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: ChoiceParser[E],
        choices: type[E],
        *,
        synonyms: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None: ...

    def __init__(
        self,
        choices: Sequence[str] | type[enum.Enum],
        *,
        synonyms: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        self.choices = choices
        values: dict[str, Any] = {}
        self.labels: list[str] = []
        if isinstance(choices, type) and issubclass(choices, enum.Enum):
            for member in choices:
                label = str(member.value) if isinstance(member.value, str) else member.name
                self.labels.append(label)
                values[_normalise(label)] = member
                values.setdefault(_normalise(member.name), member)
        elif isinstance(choices, Sequence) and not isinstance(choices, str):
            for label in choices:
                if not isinstance(label, str) or not _normalise(label):
                    raise ConfigurationError(f"choices must be non-empty strings, not {label!r}")
                self.labels.append(label)
                values[_normalise(label)] = label
        else:
            raise ConfigurationError(f"choices must be a sequence of labels or an Enum, not {choices!r}")
        if len(values) < 2:
            raise ConfigurationError("a ChoiceParser needs at least two distinct choices")
        by_label = {_normalise(label): values[_normalise(label)] for label in self.labels}
        for label, words in (synonyms or {}).items():
            key = _normalise(label)
            if key not in by_label and key not in values:
                raise ConfigurationError(f"synonyms name {label!r}, which is not one of the choices")
            target = values[key]
            for word in [words] if isinstance(words, str) else words:
                values[_normalise(word)] = target
        self._values = values
        alternatives = sorted(values, key=len, reverse=True)
        self._search = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(a) for a in alternatives) + r")(?!\w)")

    def _lookup(self, text: str) -> T | None:
        return self._values.get(_normalise(text))

    def parse(self, text: str) -> T:
        require_text(text, self)
        found = self._lookup(text)
        if found is None and "\n" in text.strip():
            found = self._lookup(text.strip().split("\n", 1)[0])
        if found is not None:
            return found
        hits = {id(v): v for v in (self._values[m.group()] for m in self._search.finditer(_normalise(text)))}
        if len(hits) == 1:
            return next(iter(hits.values()))  # type: ignore[no-any-return]
        problem = "several choices" if hits else "none of the choices"
        raise ParseError(
            f"found {problem} in {snippet(text)}",
            text=text,
            expected="one of " + ", ".join(repr(label) for label in self.labels),
        )

    def instructions(self) -> str:
        return "Reply with exactly one of: " + ", ".join(self.labels) + "."

    def constraint(self) -> Constraint:
        """The labels, for a server that decodes one of them (synonyms are never needed then).

        >>> ChoiceParser(["a", "b"]).constraint()
        {'choice': ['a', 'b']}
        """
        return {"choice": list(self.labels)}

    def __repr__(self) -> str:
        return f"ChoiceParser({self.labels!r})"


class BoolParser(BaseParser[bool]):
    """Yes or no: ``yes/true/y/correct`` and ``no/false/n/incorrect`` (replaceable), in any case.

    The rule, so that a reply is never guessed:

    * a reply that *opens* with an answer word set off by punctuation or the end of the reply
      ("Yes.", "No, because ...", "**Yes**", "True - it is") is that answer, whatever the
      explanation after it says; unless the next word is the opposite answer ("No, yes"), which
      is ambiguous;
    * otherwise every answer word in the reply counts: all of one kind decide ("I'd say yes"),
      both kinds ("YES NO", "yes and no") raise :class:`~promptkit.ParseError`, and so do none.

    Words are whole words ("yes-man" and "nobody" are not answers); ``true`` and ``false``
    replace the default word lists, and the labels ``"true"``/``"false"`` always count.

    >>> BoolParser().parse("Yes, it is.")
    True
    >>> BoolParser().parse("No, because the claim is not true.")
    False
    """

    def __init__(self, *, true: Iterable[str] = ("yes", "true", "y", "correct"), false: Iterable[str] = ()) -> None:
        true_words = {_normalise(w) for w in true} | {"true"}
        false_words = {_normalise(w) for w in (list(false) or ["no", "false", "n", "incorrect"])} | {"false"}
        clash = true_words & false_words
        if clash or "" in true_words | false_words:
            raise ConfigurationError(f"yes and no words must be distinct and non-empty, not {sorted(clash)!r}")
        self._words = {**dict.fromkeys(true_words, True), **dict.fromkeys(false_words, False)}
        words = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(self._words, key=len, reverse=True))
        end = r"(?![\w]|[-'\u2019]\w)"  # a whole word: "yes-man" and "no one's" end elsewhere
        self._leading = re.compile(rf"(?:{words}){end}")
        self._anywhere = re.compile(rf"(?<!\w)(?<!\w[-'\u2019])(?:{words}){end}")

    def _value(self, word: str) -> bool:
        return self._words[" ".join(word.split())]

    def parse(self, text: str) -> bool:
        require_text(text, self)
        folded = unicodedata.normalize("NFKC", text).casefold()
        body = folded.lstrip(_EDGE_PUNCT)
        lead = self._leading.match(body)
        if lead is not None:
            value = self._value(lead.group())
            rest = body[lead.end() :].lstrip(" \t*_`'\")]")
            if not rest or rest[0] in ".,;:!?\n-\u2013\u2014":
                following = self._leading.match(rest.lstrip(_EDGE_PUNCT + "-\u2013\u2014"))
                if following is None or self._value(following.group()) == value:
                    return value
                return self._ambiguous(text)
        found = {self._value(m.group()) for m in self._anywhere.finditer(folded)}
        if len(found) == 1:
            return found.pop()
        if found:
            return self._ambiguous(text)
        raise ParseError(f"no clear yes or no in {snippet(text)}", text=text, expected="yes or no")

    def _ambiguous(self, text: str) -> bool:
        raise ParseError(
            f"both a yes and a no in {snippet(text)}; the parser does not guess", text=text, expected="yes or no"
        )

    def instructions(self) -> str:
        return "Reply with yes or no."

    def __repr__(self) -> str:
        return "BoolParser()"


_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d{1,4})?(?![\w])")


class NumberParser(BaseParser[N]):
    """A number: the whole reply, or the one number in a sentence (``"About 1,234."``).

    ``kind`` is ``float`` (default), ``int`` (rejects fractions) or ``Decimal``. With several
    numbers in the reply, ``prefer`` decides: ``"unique"`` (default) raises, ``"first"`` or
    ``"last"`` pick one. NaN and infinities are rejected.

    >>> NumberParser(int).parse("There are 1,024 of them.")
    1024
    """

    @overload
    def __init__(self: NumberParser[N], kind: type[N], *, prefer: Prefer = "unique") -> None: ...

    @overload
    def __init__(self: NumberParser[float], *, prefer: Prefer = "unique") -> None: ...

    def __init__(self, kind: type[Any] = float, *, prefer: Prefer = "unique") -> None:
        if kind not in (int, float, Decimal):
            raise ConfigurationError(f"kind must be int, float or Decimal, not {kind!r}")
        _check_prefer(prefer)
        self.kind = kind
        self.prefer = prefer

    def _convert(self, raw: str, text: str) -> N:
        clean = raw.replace(",", "").replace("\u2212", "-")
        try:
            number = Decimal(clean)
        except InvalidOperation as exc:  # pragma: no cover - the pattern only matches numbers
            raise ParseError(f"not a number: {raw!r}", text=text, expected=self._expected()) from exc
        if self.kind is int:
            if number != number.to_integral_value():
                raise ParseError(f"{raw!r} is not a whole number", text=text, expected=self._expected())
            return int(number)  # type: ignore[return-value]
        if self.kind is float:
            return float(number)  # type: ignore[return-value]
        return number  # type: ignore[return-value]

    def _expected(self) -> str:
        return {int: "a whole number", float: "a number", Decimal: "a decimal number"}[self.kind]

    def parse(self, text: str) -> N:
        require_text(text, self)
        found = [m.group() for m in _NUMBER.finditer(text)]
        distinct = {f.replace(",", "") for f in found}
        if not found:
            raise ParseError(f"no number in {snippet(text)}", text=text, expected=self._expected())
        if len(distinct) > 1 and self.prefer == "unique":
            raise ParseError(
                f"several numbers ({', '.join(found[:5])}) in {snippet(text)}; pass prefer='first' or 'last'",
                text=text,
                expected=self._expected(),
            )
        return self._convert(found[-1] if self.prefer == "last" else found[0], text)

    def instructions(self) -> str:
        return f"Reply with {self._expected()} only."

    def __repr__(self) -> str:
        return f"NumberParser({self.kind.__name__})"


_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?)?(?![\d:])"
)


class DateParser(BaseParser[D]):
    """A date or datetime: ISO 8601 anywhere in the reply, or the whole reply in ``formats``.

    >>> DateParser(dt.date).parse("It was signed on 2024-03-05.")
    datetime.date(2024, 3, 5)
    """

    @overload
    def __init__(self: DateParser[D], kind: type[D], *, formats: Sequence[str] = ()) -> None: ...

    @overload
    def __init__(self: DateParser[dt.date], *, formats: Sequence[str] = ()) -> None: ...

    def __init__(self, kind: type[Any] = dt.date, *, formats: Sequence[str] = ()) -> None:
        import pydantic

        if kind not in (dt.date, dt.datetime):
            raise ConfigurationError(f"kind must be datetime.date or datetime.datetime, not {kind!r}")
        self.kind = kind
        self.formats = tuple(formats)
        self._adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(kind)

    def parse(self, text: str) -> D:
        require_text(text, self)
        import pydantic

        stripped = text.strip().strip(_EDGE_PUNCT)
        for fmt in self.formats:
            try:
                parsed = dt.datetime.strptime(stripped, fmt)
            except ValueError:
                continue
            return parsed if self.kind is dt.datetime else parsed.date()  # type: ignore[return-value]
        found = {m.group() for m in _ISO.finditer(text)}
        expected = "an ISO 8601 " + ("datetime" if self.kind is dt.datetime else "date (YYYY-MM-DD)")
        if len(found) != 1:
            problem = "several dates" if found else "no date"
            raise ParseError(f"{problem} in {snippet(text)}", text=text, expected=expected)
        raw = found.pop()
        if self.kind is dt.date and len(raw) > 10:
            raw = raw[:10]
        try:
            return self._adapter.validate_python(raw.replace(" Z", "Z"))  # type: ignore[no-any-return]
        except pydantic.ValidationError as exc:
            raise ParseError(f"{raw!r} is not a valid date", text=text, expected=expected) from exc

    def instructions(self) -> str:
        if self.kind is dt.datetime:
            return "Reply with the date and time in ISO 8601 format (YYYY-MM-DDTHH:MM:SS)."
        return "Reply with the date in ISO 8601 format (YYYY-MM-DD)."

    def __repr__(self) -> str:
        return f"DateParser({self.kind.__name__})"


class RegexParser(BaseParser[dict[str, str | None]]):
    """The named groups of the first match of ``pattern`` in the reply, as a dict.

    The pattern is yours: keep it free of nested quantifiers, as Python's ``re`` backtracks.

    >>> RegexParser(r"Score: (?P<score>\\d+)/10").parse("Score: 7/10, nice")
    {'score': '7'}
    """

    def __init__(self, pattern: str | re.Pattern[str], *, flags: int = 0, instructions: str = "") -> None:
        try:
            self.pattern = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        except re.error as exc:
            raise ConfigurationError(f"invalid regular expression {pattern!r}: {exc}") from exc
        if not self.pattern.groupindex:
            raise ConfigurationError("RegexParser needs a pattern with named groups, e.g. (?P<answer>...)")
        self._instructions = instructions

    def parse(self, text: str) -> dict[str, str | None]:
        require_text(text, self)
        m = self.pattern.search(text)
        if m is None:
            raise ParseError(
                f"no match in {snippet(text)}", text=text, expected=f"text matching {self.pattern.pattern!r}"
            )
        return m.groupdict()

    def instructions(self) -> str:
        return self._instructions

    def constraint(self) -> Constraint | None:
        """The pattern as a server-side regex (named groups made plain), or None when it cannot be.

        A pattern with flags (``re.I``, ``(?i)``, ...) or a back-reference has no portable form,
        so no constraint is sent for it.

        >>> RegexParser(r"Score: (?P<score>\\d+)/10").constraint()
        {'regex': 'Score: (\\\\d+)/10'}
        """
        pattern = self.pattern
        if pattern.flags & ~re.UNICODE or not isinstance(pattern.pattern, str):
            return None
        source = pattern.pattern
        if _BACKREF.search(source):
            return None
        return {"regex": _NAMED_GROUP.sub("(", source)}

    def __repr__(self) -> str:
        return f"RegexParser({self.pattern.pattern!r})"


_NAMED_GROUP = re.compile(r"(?<!\\)\(\?P<\w+>")
_BACKREF = re.compile(r"\(\?P=|\\[1-9]|\\g<")


class XmlTagParser(BaseParser[T]):
    """The content of ``<tag>...</tag>``, or, with ``model``, its child tags validated into a model.

    With several ``tag`` elements, ``prefer`` picks ``"last"`` (default: a model that drafts
    and then answers answers last), ``"first"``, or ``"unique"`` (raise when they differ). Tags of
    the same name may nest; the scan is linear.

    >>> XmlTagParser("answer").parse("Thinking... <answer> 42 </answer>")
    '42'
    """

    @overload
    def __init__(self: XmlTagParser[str], tag: str, *, model: None = None, prefer: Prefer = "last") -> None: ...

    @overload
    def __init__(self: XmlTagParser[M], tag: str, *, model: type[M], prefer: Prefer = "last") -> None: ...

    def __init__(self, tag: str, *, model: type[pydantic.BaseModel] | None = None, prefer: Prefer = "last") -> None:
        if not re.fullmatch(r"[A-Za-z_][\w.-]{0,63}", tag):
            raise ConfigurationError(f"invalid XML tag name {tag!r}")
        if model is not None and not is_model_class(model):
            raise ConfigurationError(f"model must be a pydantic BaseModel subclass, not {model!r}")
        _check_prefer(prefer)
        self.tag = tag
        self.model = model
        self.prefer = prefer

    def parse(self, text: str) -> T:
        require_text(text, self)
        bodies = [text[s:e] for s, e in tag_bodies(text, self.tag)]
        if not bodies:
            raise ParseError(f"no <{self.tag}> element in {snippet(text)}", text=text, expected=self._expected())
        if self.prefer == "unique" and len({b.strip() for b in bodies}) > 1:
            raise ParseError(
                f"{len(bodies)} different <{self.tag}> elements", text=text, expected=f"one {self._expected()}"
            )
        body = bodies[-1] if self.prefer == "last" else bodies[0]
        if self.model is None:
            return body.strip()  # type: ignore[return-value]
        fields: dict[str, Any] = {}
        for name, info in self.model.model_fields.items():
            key = info.alias or name
            found = [body[s:e].strip() for s, e in tag_bodies(body, key)]
            if found:
                fields[key] = found[-1]
        import pydantic

        try:
            return self.model.model_validate(fields)  # type: ignore[return-value]
        except pydantic.ValidationError as exc:
            raise ParseError(
                f"<{self.tag}> is not a valid {self.model.__name__}: {exc.error_count()} error(s): "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]),
                text=text,
                expected=self._expected(),
                last_value=fields,
            ) from exc

    def _expected(self) -> str:
        if self.model is None:
            return f"<{self.tag}>...</{self.tag}>"
        return f"<{self.tag}> holding " + " ".join(f"<{n}>...</{n}>" for n in self.model.model_fields)

    def instructions(self) -> str:
        if self.model is None:
            return f"Put your final answer inside <{self.tag}></{self.tag}> tags."
        inner = "\n".join(
            f"  <{info.alias or n}>...</{info.alias or n}>" for n, info in self.model.model_fields.items()
        )
        return f"Put your final answer in this form:\n<{self.tag}>\n{inner}\n</{self.tag}>"

    def __repr__(self) -> str:
        return f"XmlTagParser({self.tag!r})"


def tag_bodies(text: str, tag: str, *, unclosed: bool = False) -> list[tuple[int, int]]:
    """Spans of the bodies of outermost ``<tag>`` elements; with ``unclosed``, an open last one too."""
    tags = re.compile(rf"<(/?){re.escape(tag)}(?:\s[^<>]{{0,256}})?>")
    spans: list[tuple[int, int]] = []
    depth = 0
    start = 0
    for m in tags.finditer(text):
        if not m.group(1):
            if depth == 0:
                start = m.end()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                spans.append((start, m.start()))
    if depth and unclosed:
        spans.append((start, len(text)))
    return spans
