"""The parser protocols, the shared streaming machinery, and ``TextParser``.

A parser turns a reply into a typed value (``parse``) and says how to ask for it
(``instructions``). Parsers built on :class:`BaseParser` also preview a reply while it streams:
``parse_partial(prefix)`` for one prefix, and ``parse_stream(chunks)`` for a whole stream at a cost
linear in its length, ending with the validated value.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from .._errors import ConfigurationError, ParseError
from ..backends._contract import Constraint, OutputSchema

__all__ = [
    "BaseParser",
    "ConstrainedParser",
    "NativeOutputParser",
    "Parser",
    "StreamState",
    "StreamingParser",
    "TextParser",
    "Throttle",
    "require_text",
    "snippet",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

PREVIEW_EVERY = 1024
"""A stream yields a fresh preview at least once per this many characters (when one exists)."""


@runtime_checkable
class Parser(Protocol[T_co]):
    """What a :class:`~promptkit.Prompt` needs to turn a reply into a value of type ``T_co``."""

    def parse(self, text: str) -> T_co:
        """Return the value in ``text`` or raise :class:`~promptkit.ParseError`."""
        ...

    def instructions(self) -> str:
        """Format instructions for the prompt ("" when none are needed)."""
        ...


class StreamState(Protocol[T]):
    """One stream being parsed: ``feed`` each chunk (previews come back), then ``finish``."""

    def feed(self, chunk: str) -> list[T]:
        """Take the next chunk; return the previews now due (usually none or one)."""
        ...

    def finish(self) -> T:
        """The validated value of the whole stream, or :class:`~promptkit.ParseError`."""
        ...


@runtime_checkable
class StreamingParser(Parser[T_co], Protocol[T_co]):
    """A parser that can preview a streamed reply (every parser in promptkit is one)."""

    def parse_partial(self, text: str) -> T_co | None:
        """The best preview of a prefix of a reply, or ``None``; never raises ``ParseError``."""
        ...

    def stream_state(self) -> StreamState[Any]:
        """A fresh :class:`StreamState` for one stream."""
        ...


@runtime_checkable
class NativeOutputParser(Protocol):
    """A parser that can ask the backend for native structured output instead of instructions."""

    def uses_native(self, supported_params: frozenset[str]) -> bool:
        """Whether to ask a backend with these ``supported_params`` for native output."""
        ...

    def output_schema(self) -> OutputSchema:
        """The ``output_schema`` backend parameter."""
        ...

    def native_instructions(self) -> str:
        """The format instructions to use when the provider enforces the format."""
        ...


@runtime_checkable
class ConstrainedParser(Protocol):
    """A parser that can describe its replies as a :class:`~promptkit.backends.Constraint`.

    ``Prompt`` sends it as the ``constraint`` parameter to a backend that lists ``constraint``
    (a server with constrained decoding); the reply is parsed and validated as always.
    """

    def constraint(self) -> Constraint | None:
        """The constraint every reply this parser accepts can be decoded under, or None."""
        ...


def require_text(text: object, parser: object) -> None:
    """Raise ``TypeError`` unless ``text`` is a ``str``: a reply of another type is a caller's bug.

    A ``ParseError`` says the model's reply was wrong, which a retry or a repair prompt may fix;
    ``None``, ``bytes`` or a ``dict`` in place of the reply is a programming error, reported as such
    instead of failing deep inside a parser.

    >>> require_text(b"yes", TextParser())
    Traceback (most recent call last):
    TypeError: TextParser needs the reply as a str, not bytes
    """
    if not isinstance(text, str):
        raise TypeError(f"{type(parser).__name__} needs the reply as a str, not {type(text).__name__}")


def snippet(text: str, limit: int = 120) -> str:
    """A short, quoted excerpt of ``text`` for error messages (replies may be megabytes)."""
    if len(text) <= limit:
        return repr(text)
    half = limit // 2
    return f"{text[:half]!r} ... {text[-half:]!r} ({len(text)} chars)"


class Throttle:
    """Decides when a stream's next preview is due, so previews stay cheap on long streams.

    Early on a preview may follow every chunk; the gap then grows with the text (1/64 of it) up to
    ``every`` characters. A preview whose own cost is ``cost`` (characters or items it must copy)
    waits at least ``cost / 16`` characters, so the total cost of previews stays linear even when
    one of them must copy a huge open string or list.
    """

    __slots__ = ("every", "since", "total")

    def __init__(self, every: int = PREVIEW_EVERY) -> None:
        self.every = every
        self.total = 0
        self.since = 0

    def add(self, n: int) -> None:
        self.total += n
        self.since += n

    def due(self, cost: int = 0) -> bool:
        return self.since >= max(min(self.every, max(1, self.total >> 6)), cost >> 4)

    def reset(self) -> None:
        self.since = 0


class FinalOnly(Generic[T]):
    """Stream state for parsers without previews: collect the text, parse it at the end."""

    def __init__(self, parser: Parser[T]) -> None:
        self._parser = parser
        self._parts: list[str] = []

    def feed(self, chunk: str) -> list[T]:
        require_text(chunk, self._parser)
        self._parts.append(chunk)
        return []

    def finish(self) -> T:
        return self._parser.parse("".join(self._parts))


class BaseParser(Generic[T]):
    """Shared streaming methods; subclasses implement ``parse`` and ``instructions``.

    Override ``parse_partial`` and ``stream_state`` to offer previews; by default a stream yields
    only its final value.
    """

    def parse(self, text: str) -> T:
        raise NotImplementedError

    def instructions(self) -> str:
        return ""

    def parse_partial(self, text: str) -> T | None:
        """The best value for a prefix of a reply, or ``None``; raises only ``TypeError`` for a non-str."""
        require_text(text, self)
        try:
            return self.parse(text)
        except ParseError:
            return None

    def stream_state(self) -> StreamState[T]:
        """A fresh state that parses one stream incrementally."""
        return FinalOnly(self)

    def parse_stream(self, chunks: Iterable[str]) -> Iterator[T]:
        """Yield previews as ``chunks`` arrive, then the validated value last.

        The cost is linear in the stream's length. A :class:`~promptkit.ParseError` is raised at
        the end when the whole reply does not parse.
        """
        state = self.stream_state()
        for chunk in chunks:
            yield from state.feed(chunk)
        yield state.finish()

    async def aparse_stream(self, chunks: AsyncIterable[str]) -> AsyncIterator[T]:
        """Async :meth:`parse_stream`."""
        state = self.stream_state()
        async for chunk in chunks:
            for value in state.feed(chunk):
                yield value
        yield state.finish()

    def _repr_html_(self) -> str:
        """The parser's kind and settings, and the start of the format instructions it adds."""
        import html

        instructions = self.instructions()
        if not instructions:
            shown = "<small style='color:#6b7280'>no format instructions</small>"
        else:
            cut = instructions if len(instructions) <= _INSTRUCTIONS_PREVIEW else instructions[:_INSTRUCTIONS_PREVIEW]
            more = f"\n… ({len(instructions):,} characters)" if len(cut) < len(instructions) else ""
            shown = (
                "<small style='color:#6b7280'>format instructions</small>"
                f"<pre style='white-space:pre-wrap;margin:2px 0 0 1em'>{html.escape(cut + more)}</pre>"
            )
        return (
            f"<div><b>{html.escape(type(self).__name__)}</b> <code>{html.escape(repr(self))}</code>"
            f"<div>{shown}</div></div>"
        )


_INSTRUCTIONS_PREVIEW = 600
"""How many characters of a parser's format instructions its notebook display shows."""


class TextParser(BaseParser[str]):
    """The reply as text: stripped of surrounding whitespace, and cut at the first stop marker.

    >>> TextParser().parse("  Paris\\n")
    'Paris'
    >>> TextParser(stop=["\\nUser:"]).parse("Paris\\nUser: and Rome?")
    'Paris'
    """

    def __init__(self, *, strip: bool = True, stop: str | Sequence[str] = ()) -> None:
        self.strip = strip
        self.stop: tuple[str, ...] = (stop,) if isinstance(stop, str) else tuple(stop)
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigurationError(f"stop markers must be non-empty strings, not {stop!r}")

    def parse(self, text: str) -> str:
        require_text(text, self)
        for marker in self.stop:
            cut = text.find(marker)
            if cut >= 0:
                text = text[:cut]
        return text.strip() if self.strip else text

    def parse_partial(self, text: str) -> str:
        return self.parse(text)

    def stream_state(self) -> StreamState[str]:
        return _TextStream(self)

    def __repr__(self) -> str:
        stop = f", stop={list(self.stop)!r}" if self.stop else ""
        return f"TextParser(strip={self.strip}{stop})"


class _TextStream:
    def __init__(self, parser: TextParser) -> None:
        self._parser = parser
        self._parts: list[str] = []
        self._throttle = Throttle()

    def feed(self, chunk: str) -> list[str]:
        require_text(chunk, self._parser)
        self._parts.append(chunk)
        self._throttle.add(len(chunk))
        if not self._throttle.due(self._throttle.total):
            return []
        self._throttle.reset()
        text = "".join(self._parts)
        self._parts = [text]
        return [self._parser.parse(text)]

    def finish(self) -> str:
        return self._parser.parse("".join(self._parts))
