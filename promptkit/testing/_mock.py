"""Offline test doubles: ``MockBackend`` (a script of replies) and ``FunctionBackend`` (a function)."""

from __future__ import annotations

import dataclasses
import inspect
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import (
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    RateLimitError,
    ScriptExhaustedError,
    ServerError,
    UnsupportedCapabilityError,
)
from .._messages import Chunk, Completion, FinishReason, Message, Usage
from ..backends import ALL_PARAMS, COMMON_PARAMS, BaseBackend, Request

__all__ = [
    "FunctionBackend",
    "MockBackend",
    "MockReply",
    "rate_limit_error",
    "server_error",
    "timeout_error",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MockReply:
    """One scripted reply with full control over what the mock sends back.

    ``chunks`` fixes how a stream is split; ``error`` is raised after the chunks (for a stream) or
    instead of the reply (for ``complete``), to script a stream that breaks mid-way;
    ``reasoning`` is reasoning sent apart from the text, as reasoning models' servers do.

    >>> MockReply(text="Hi", usage=Usage(input_tokens=3, output_tokens=1)).text
    'Hi'
    """

    text: str = ""
    chunks: Sequence[str] | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = "stop"
    model: str | None = None
    error: BaseException | None = None
    reasoning: str | None = None

    def __post_init__(self) -> None:
        if self.chunks is not None:
            joined = "".join(self.chunks)
            if self.text and joined != self.text:
                raise ConfigurationError("MockReply: text and chunks disagree; give one of them")
            object.__setattr__(self, "text", joined)


ReplyLike = str | Completion | MockReply | BaseException
Rule = Callable[[Request], ReplyLike]


def rate_limit_error(retry_after: float | None = None) -> RateLimitError:
    """A scripted HTTP 429, as a real backend would raise it."""
    return RateLimitError("rate limited (scripted)", provider="mock", status_code=429, retry_after=retry_after)


def timeout_error() -> BackendTimeoutError:
    """A scripted timeout."""
    return BackendTimeoutError("timed out (scripted)", provider="mock")


def server_error(status_code: int = 500) -> ServerError:
    """A scripted HTTP 5xx."""
    return ServerError(f"server error {status_code} (scripted)", provider="mock", status_code=status_code)


_WORDS = re.compile(r"\s*\S+\s*|\s+")


def _count_words(text: str) -> int:
    return len(text.split())


def _describe(request: Request) -> str:
    last = request.messages[-1]
    params = ", ".join(f"{k}={v!r}" for k, v in request.params.items())
    return f"{len(request.messages)} message(s), last {last.role}: {last.text[:200]!r}" + (
        f"; params: {params}" if params else ""
    )


class MockBackend(BaseBackend):
    """A backend that answers from a script and records every request.

    ``script`` is a sequence of replies consumed in order (a ``str``, a :class:`Completion`, a
    :class:`MockReply`, or an exception to raise) or a rule ``fn(request) -> reply``. Usage is
    counted in whitespace-separated words unless a reply gives it: a stand-in, not real tokens.

    >>> llm = MockBackend(["Paris", rate_limit_error(retry_after=2)])
    >>> llm.complete("Capital of France?").text
    'Paris'
    >>> llm.calls[0].messages[0].content
    'Capital of France?'
    """

    def __init__(
        self,
        script: Sequence[ReplyLike] | Rule | None = None,
        *,
        replies: Sequence[ReplyLike] | None = None,
        model: str = "mock",
        chunk_size: int | None = None,
        native_output: bool = False,
        max_choices: int = 1,
    ) -> None:
        if script is not None and replies is not None:
            raise ConfigurationError("MockBackend: give the script positionally or as replies=, not both")
        script = replies if replies is not None else script
        self._rule: Rule | None = None
        self._queue: deque[ReplyLike] = deque()
        if callable(script):
            self._rule = script
        elif script is not None:
            if isinstance(script, (str, bytes)):
                raise ConfigurationError("MockBackend: the script is a list of replies; wrap a single reply in [...]")
            self._queue.extend(script)
        if chunk_size is not None and chunk_size < 1:
            raise ConfigurationError(f"chunk_size must be >= 1, got {chunk_size}")
        if isinstance(max_choices, bool) or not isinstance(max_choices, int) or max_choices < 1:
            raise ConfigurationError(f"max_choices must be a whole number >= 1, not {max_choices!r}")
        self.model = model
        self.chunk_size = chunk_size
        self._max_choices = max_choices
        self._supported_params = COMMON_PARAMS | {"output_schema"} if native_output else COMMON_PARAMS
        self.calls: list[Request] = []
        self._lock = threading.Lock()

    @property
    def max_choices(self) -> int:
        """How many scripted replies one request may take (``max_choices=`` plays a provider's ``n``)."""
        return self._max_choices

    def complete_choices(self, request: Request, n: int) -> list[Completion]:
        """``n`` scripted replies for one recorded request; the first carries all the usage.

        An error scripted among them fails the whole request, as a provider's error would.
        """
        if n > self._max_choices:
            raise UnsupportedCapabilityError(f"MockBackend draws at most {self._max_choices} choices per request")
        with self._lock:
            self.calls.append(request)
            if self._rule is not None:
                taken = [self._rule(request) for _ in range(n)]
            else:
                taken = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
                if not taken:
                    raise ScriptExhaustedError(
                        f"MockBackend has no scripted reply left for request #{len(self.calls)}", request=request
                    )
        completions = [self._completion(self._normalise(reply, request), request) for reply in taken]
        total = Usage()
        for completion in completions:
            total = total + completion.usage
        total = dataclasses.replace(total, input_tokens=completions[0].usage.input_tokens)  # the prompt, once
        first = dataclasses.replace(completions[0], usage=total)
        return [first, *(dataclasses.replace(c, usage=Usage()) for c in completions[1:])]

    @property
    def native_output(self) -> bool:
        """Whether this mock accepts ``output_schema`` (native structured output)."""
        return "output_schema" in self._supported_params

    @property
    def name(self) -> str:
        return "mock" if self.model == "mock" else f"mock:{self.model}"

    def add(self, *replies: ReplyLike) -> MockBackend:
        """Append replies to the script; returns the backend for chaining."""
        if self._rule is not None:
            raise ConfigurationError("MockBackend: this mock answers with a rule; it has no script to add to")
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        """How many scripted replies are left."""
        return len(self._queue)

    @property
    def last_request(self) -> Request:
        """The most recent request; raises if there was none."""
        if not self.calls:
            raise ConfigurationError("MockBackend has received no requests")
        return self.calls[-1]

    def reset(self) -> None:
        """Forget recorded calls (the script is kept)."""
        with self._lock:
            self.calls.clear()

    # -- answering ----------------------------------------------------------------------------
    def _next(self, request: Request) -> MockReply:
        with self._lock:
            self.calls.append(request)
            if self._rule is not None:
                reply = self._rule(request)
            elif self._queue:
                reply = self._queue.popleft()
            else:
                raise ScriptExhaustedError(
                    f"MockBackend has no scripted reply left for request #{len(self.calls)} "
                    f"({_describe(request)}); add one with MockBackend([...]) or .add(...)",
                    request=request,
                )
        return self._normalise(reply, request)

    def _normalise(self, reply: ReplyLike, request: Request) -> MockReply:
        if isinstance(reply, BaseException):
            return MockReply(error=reply)
        if isinstance(reply, str):
            return MockReply(text=reply, usage=self._usage(request, reply))
        if isinstance(reply, Completion):
            return MockReply(
                text=reply.text,
                usage=reply.usage,
                finish_reason=reply.finish_reason,
                model=reply.model,
                reasoning=reply.reasoning,
            )
        if isinstance(reply, MockReply):
            return reply
        raise ConfigurationError(
            f"MockBackend: a scripted reply must be a str, Completion, MockReply or exception, "
            f"not {type(reply).__name__}"
        )

    @staticmethod
    def _usage(request: Request, text: str) -> Usage:
        return Usage(
            input_tokens=sum(_count_words(m.text) for m in request.messages),
            output_tokens=_count_words(text),
        )

    def _completion(self, reply: MockReply, request: Request) -> Completion:
        if reply.error is not None:
            raise reply.error
        return Completion(
            text=reply.text,
            model=reply.model or self.model,
            usage=reply.usage if reply.usage is not None else self._usage(request, reply.text),
            finish_reason=reply.finish_reason,
            reasoning=reply.reasoning,
        )

    def _split(self, reply: MockReply) -> list[str]:
        if reply.chunks is not None:
            return list(reply.chunks)
        if self.chunk_size is not None:
            n = self.chunk_size
            return [reply.text[i : i + n] for i in range(0, len(reply.text), n)]
        return _WORDS.findall(reply.text)

    def _chunks(self, reply: MockReply, request: Request) -> Iterator[Chunk]:
        for piece in self._split(reply):
            yield Chunk(text=piece)
        if reply.error is not None:
            raise reply.error
        yield Chunk(
            model=reply.model or self.model,
            usage=reply.usage if reply.usage is not None else self._usage(request, reply.text),
            finish_reason=reply.finish_reason,
            reasoning=reply.reasoning,
        )

    def _complete(self, request: Request) -> Completion:
        return self._completion(self._next(request), request)

    async def _acomplete(self, request: Request) -> Completion:
        return self._completion(self._next(request), request)

    def _stream(self, request: Request) -> Iterator[Chunk]:
        reply = self._next(request)
        return self._chunks(reply, request)

    async def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        reply = self._next(request)
        for chunk in self._chunks(reply, request):
            yield chunk

    def __repr__(self) -> str:
        source = "rule" if self._rule is not None else f"{len(self._queue)} scripted"
        return f"<MockBackend {self.name} {source}, {len(self.calls)} call(s)>"


FunctionResult = str | Completion
SyncFn = Callable[[tuple[Message, ...], Mapping[str, Any]], FunctionResult]
AsyncFn = Callable[[tuple[Message, ...], Mapping[str, Any]], Awaitable[FunctionResult]]


class FunctionBackend(BaseBackend):
    """A backend whose replies come from ``fn(messages, params)``, returning a str or Completion.

    ``fn`` may be a coroutine function; then only the async methods work. A stream delivers the
    whole reply as one chunk.

    >>> echo = FunctionBackend(lambda messages, params: messages[-1].text.upper())
    >>> echo.complete("hello").text
    'HELLO'
    """

    def __init__(self, fn: SyncFn | AsyncFn, *, model: str = "function", supported_params: Iterable[str] = ()) -> None:
        if not callable(fn):
            raise ConfigurationError(f"FunctionBackend needs a callable, not {type(fn).__name__}")
        self.fn = fn
        self.model = model
        self._is_async = inspect.iscoroutinefunction(fn)
        extra = frozenset(supported_params)
        unknown = extra - ALL_PARAMS
        if unknown:
            raise ConfigurationError(f"unknown parameter name(s): {', '.join(sorted(unknown))}")
        self._supported_params = COMMON_PARAMS | extra
        self.calls: list[Request] = []

    @property
    def name(self) -> str:
        # A model given by the caller names the backend (so its prices and tokenizer apply, as for
        # MockBackend); otherwise the function does.
        if self.model != "function":
            return f"function:{self.model}"
        return f"function:{getattr(self.fn, '__name__', 'fn')}"

    def _wrap(self, value: object) -> Completion:
        if isinstance(value, Completion):
            return value
        if isinstance(value, str):
            return Completion(text=value, model=self.model, finish_reason="stop")
        raise BackendError(
            f"{self.name} returned {type(value).__name__}; it must return a str or a Completion",
            provider="function",
        )

    def _complete(self, request: Request) -> Completion:
        if self._is_async:
            raise UnsupportedCapabilityError(
                f"{self.name} wraps a coroutine function; use acomplete()/astream() instead"
            )
        self.calls.append(request)
        return self._wrap(self.fn(request.messages, request.params))

    async def _acomplete(self, request: Request) -> Completion:
        self.calls.append(request)
        value = self.fn(request.messages, request.params)
        if inspect.isawaitable(value):
            value = await value
        return self._wrap(value)

    def _stream(self, request: Request) -> Iterator[Chunk]:
        completion = self._complete(request)
        return iter(_as_chunks(completion))

    async def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        completion = await self._acomplete(request)
        for chunk in _as_chunks(completion):
            yield chunk


def _as_chunks(completion: Completion) -> list[Chunk]:
    return [
        Chunk(text=completion.text),
        Chunk(
            model=completion.model,
            usage=completion.usage,
            finish_reason=completion.finish_reason,
            reasoning=completion.reasoning,
        ),
    ]
