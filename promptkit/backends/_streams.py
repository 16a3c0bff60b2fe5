"""Streamed replies: :class:`Stream` and :class:`AsyncStream` accumulate deltas into a Completion.

A backend hands its chunks (an iterator of :class:`~promptkit.Chunk`) to one of these; the caller
iterates text deltas and then reads ``.completion`` with usage and finish reason.

>>> from promptkit.testing import MockBackend
>>> s = MockBackend(["Hi there"]).stream("Hello")
>>> "".join(s), s.completion.text
('Hi there', 'Hi there')
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._errors import IncompleteStreamError, UnsupportedCapabilityError
from .._messages import Chunk, Completion, FinishReason, Usage

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AsyncStream", "Stream", "final_chunk", "stream_incomplete"]


class _StreamBase:
    """What sync and async streams share: accumulation of deltas into a final Completion."""

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._parts: list[str] = []
        self._model: str | None = None
        self._provider: str | None = None
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._raw: list[Any] = []
        self._attempts = 1
        self._thoughts: list[str] = []
        self._cached = False
        self._done = False

    def _absorb(self, chunk: Chunk) -> str:
        if chunk.text:
            self._parts.append(chunk.text)
        if chunk.model is not None:
            self._model = chunk.model
        if chunk.provider is not None:
            self._provider = chunk.provider
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.finish_reason is not None:
            self._finish = chunk.finish_reason
        if chunk.raw is not None:
            self._raw.append(chunk.raw)
        if chunk.attempts > 1:
            self._attempts = chunk.attempts
        if chunk.reasoning:
            self._thoughts.append(chunk.reasoning)
        if chunk.cached:
            self._cached = True
        return chunk.text

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        """True once the stream has ended normally."""
        return self._done

    @property
    def completion(self) -> Completion:
        """The whole reply with usage; available once the stream has been consumed."""
        if not self._done:
            raise UnsupportedCapabilityError(
                "the stream has not finished yet; iterate it to the end before reading .completion"
            )
        return Completion(
            text=self.text,
            model=self._model,
            usage=self._usage if self._usage is not None else Usage(),
            finish_reason=self._finish,
            provider=self._provider,
            raw=tuple(self._raw) or None,
            attempts=self._attempts,
            reasoning="".join(self._thoughts) or None,
            cached=self._cached,
        )


class Stream(_StreamBase):
    """A streamed reply: iterate it for text deltas, then read :attr:`completion`.

    >>> from promptkit.testing import MockBackend
    >>> s = MockBackend(["Hello there"], chunk_size=5).stream("Hi")
    >>> list(s)
    ['Hello', ' ther', 'e']
    >>> s.completion.text
    'Hello there'
    """

    def __init__(self, chunks: Iterator[Chunk], *, backend: str = "") -> None:
        super().__init__(backend)
        self._chunks = chunks

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            text = self._absorb(chunk)
            if text:
                yield text
        self._done = True

    def close(self) -> None:
        """Stop the stream early and release its connection."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<Stream {self._backend} {state} chars={sum(map(len, self._parts))}>"


class AsyncStream(_StreamBase):
    """The async twin of :class:`Stream`: ``async for delta in stream``, then ``.completion``."""

    def __init__(self, chunks: AsyncIterator[Chunk], *, backend: str = "") -> None:
        super().__init__(backend)
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[str]:
        async for chunk in self._chunks:
            text = self._absorb(chunk)
            if text:
                yield text
        self._done = True

    async def aclose(self) -> None:
        """Stop the stream early and release its connection."""
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<AsyncStream {self._backend} {state} chars={sum(map(len, self._parts))}>"


def final_chunk(completion: Completion) -> Chunk:
    """The closing chunk a relaying wrapper yields: what the inner stream reported at its end."""
    return Chunk(
        model=completion.model,
        usage=completion.usage,
        finish_reason=completion.finish_reason,
        provider=completion.provider,
        attempts=completion.attempts,
        reasoning=completion.reasoning,
        cached=completion.cached,
    )


def stream_incomplete(provider: str, text: str, detail: str = "") -> IncompleteStreamError:
    """The error for a stream that ended before its final event, keeping the partial text."""
    msg = "the stream ended before its final event"
    return IncompleteStreamError(f"{msg}: {detail}" if detail else msg, partial_text=text, provider=provider)
