"""Driving a strategy's plan: the one place where a prompt's model calls happen.

:class:`Run` holds everything a call of a prompt needs once the messages are rendered, and does
the bookkeeping (requests, attempts, timing, the final :class:`Result`) that every driver
shares. :func:`drive` and :func:`adrive` only perform the I/O: the sync one as a generator of
previews, the async one as an async generator, both running the same plan.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _tracing
from ._errors import BackendError, ParseError, PromptkitError, UnsupportedCapabilityError
from ._fewshot import Selection
from ._messages import Completion, Message
from ._parsers import FinalOnly, Parser, StreamState
from ._result import Attempt, Result
from ._strategies import Call, Context, Outcome, Strategy
from ._strategies._reasoning import SectionOnly, SkipThink, split_think
from ._utils import UNSET

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from ._fitting import FitReport
    from .backends import Backend, Request

__all__ = ["AsyncPromptStream", "PromptStream", "Run", "adrive", "drive", "finish"]

T = TypeVar("T")


class Run(Generic[T]):
    """One call of a prompt in progress: the plan, the requests it made and what came back."""

    __slots__ = (
        "_attempts",
        "_index",
        "_plan",
        "_started",
        "_trace",
        "backend",
        "examples",
        "fit",
        "messages",
        "params",
        "parser",
        "strategy",
    )

    def __init__(
        self,
        *,
        backend: Backend,
        parser: Parser[T],
        strategy: Strategy,
        messages: tuple[Message, ...],
        examples: Selection,
        params: Mapping[str, Any],
        repair: int,
        inputs: Mapping[str, Any] | None = None,
        template: object = None,
        traced: bool = True,
        fit: FitReport | None = None,
    ) -> None:
        self.backend = backend
        self.fit = fit
        self.parser = parser
        self.strategy = strategy
        self.messages = messages
        self.examples = examples
        self.params = params
        self._attempts: list[Attempt] = []
        self._index: dict[int, int] = {}  # id(completion) -> its attempt, for parse verdicts
        self._started = time.perf_counter()
        # tracing: None (one check per event) unless a hook, tracer or run log observes runs
        self._trace = (
            _tracing.start_run(
                backend=backend,
                strategy=strategy.name,
                messages=messages,
                inputs=inputs or {},
                params=params,
                template=template,
            )
            if traced
            else None  # a preview: nothing is sent, so nothing is reported
        )
        if self._trace is not None:
            self.backend = self._trace.backend  # reports each request and reply
        self._plan = strategy.plan(
            Context(
                messages=messages,
                parse=self.parse,
                repair=repair,
                params=MappingProxyType(params),
                supported_params=backend.supported_params,
            )
        )

    # -- what the drivers share -------------------------------------------------------------------
    def send(self, reply: Completion | list[Completion | BackendError] | None) -> Call | Sequence[Call] | Outcome[T]:
        """Give the plan the reply to its last step (``None`` to start it); its next step, or its outcome."""
        try:
            return self._plan.send(reply)
        except StopIteration as stop:
            outcome: Outcome[T] = stop.value
            return outcome

    def close(self) -> None:
        self._plan.close()

    def request(self, call: Call) -> Request:
        """The validated request for ``call``: the run's parameters with the call's on top.

        A call parameter set to ``UNSET`` removes the run's parameter of that name.
        """
        params = self.params
        if call.params:
            params = {k: v for k, v in {**params, **call.params}.items() if v is not UNSET}
        request = self.backend_for(call).build_request(call.messages, params)
        if call.sample is not None:
            request = dataclasses.replace(request, sample=call.sample)
        if self._trace is not None:
            self._trace.step(request, purpose=call.purpose, sample=call.sample)
        return request

    def shared_backend(self, calls: Sequence[Call]) -> Any:
        """The backend that can answer ``calls`` with one request, when they are samples of one
        conversation (the same messages, backend and parameters but the seed) and it draws that
        many choices; else ``None``."""
        if len(calls) < 2:
            return None
        first = calls[0]
        backend = self.backend_for(first)
        if getattr(backend, "max_choices", 1) < len(calls) or first.sample is None:
            return None
        params = _but_seed(first.params)
        for call in calls[1:]:
            if (
                call.sample is None
                or call.backend is not first.backend
                or call.messages != first.messages
                or _but_seed(call.params) != params
            ):
                return None
        return backend

    def backend_for(self, call: Call) -> Backend:
        """Where ``call`` goes: the run's backend, or the one the call names (traced alike)."""
        if call.backend is None:
            return self.backend
        return call.backend if self._trace is None else self._trace.wrap(call.backend)

    def record(
        self, call: Call, started: float, completion: Completion | None = None, error: PromptkitError | None = None
    ) -> None:
        if completion is not None:
            self._index[id(completion)] = len(self._attempts)
        self._attempts.append(
            Attempt(
                purpose=call.purpose,
                messages=call.messages,
                completion=completion,
                error=error,
                sample=call.sample,
                seconds=time.perf_counter() - started,
            )
        )

    def parse(self, completion: Completion, extract: Callable[[Completion], str] | None = None) -> Any:
        """Parse one reply (or the part ``extract`` picks) with the prompt's parser.

        Without ``extract``, a leading ``<think>`` block of a reasoning model is left out. A
        failure is noted on that reply's attempt.
        """
        try:
            text = extract(completion) if extract is not None else split_think(completion.text)[1]
            return self.parser.parse(text)
        except ParseError as err:
            at = self._index.get(id(completion))
            if at is not None:
                self._attempts[at] = dataclasses.replace(self._attempts[at], error=err)
            if self._trace is not None:
                self._trace.parse_failed(completion, err)
            raise

    def stream_state(self, call: Call) -> StreamState[T]:
        """The parser's stream state, behind filters that keep a ``<think>`` block (and, for a
        call with an ``answer_tag``, everything outside that section) out of the previews."""
        make = getattr(self.parser, "stream_state", None)
        state: StreamState[T] = make() if make is not None else FinalOnly(self.parser)
        if call.answer_tag is not None:
            state = SectionOnly(state, call.answer_tag)
        return SkipThink(state)

    def fail(self, error: BaseException) -> None:
        """The run ended with ``error`` (or was closed): report it to whoever observes runs."""
        if self._trace is not None:
            self._trace.end(error=error)

    def result(self, outcome: Outcome[T]) -> Result[T]:
        result = Result(
            value=outcome.value,
            messages=self.messages,
            completion=outcome.completion,
            examples=self.examples,
            attempts=tuple(self._attempts),
            strategy=self.strategy.name,
            info=outcome.info,
            elapsed=time.perf_counter() - self._started,
            fit=self.fit,
        )
        if self._trace is not None:
            self._trace.end(result)
        return result


def _but_seed(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return {k: v for k, v in params.items() if k != "seed"} if "seed" in params else params


# -- the drivers: only I/O here ------------------------------------------------------------------
def drive(run: Run[T], *, stream: bool) -> Generator[T, None, Result[T]]:
    """Run the plan with sync calls; when ``stream`` is true, yield previews of streamed calls."""
    try:
        step = run.send(None)  # the first step (an Outcome when the plan needs no call)
        while not isinstance(step, Outcome):
            if isinstance(step, Call):
                started = time.perf_counter()
                request = run.request(step)
                backend = run.backend_for(step)
                if stream and step.stream:
                    state = run.stream_state(step)
                    with backend.stream_request(request) as reply:
                        for delta in reply:
                            yield from state.feed(delta)
                    completion = reply.completion
                else:
                    completion = backend.complete_request(request)
                run.record(step, started, completion)
                step = run.send(completion)
            else:
                calls = list(step)
                replies: list[Completion | BackendError] = []
                shared = run.shared_backend(calls)
                if shared is not None:  # the samples of one conversation: one request drawing n choices
                    started = time.perf_counter()
                    try:
                        drawn: list[Completion] | BackendError = shared.complete_choices(
                            run.request(calls[0]), len(calls)
                        )
                    except BackendError as err:
                        drawn = err
                    replies = _drawn(run, calls, started, drawn)
                for call in calls[len(replies) :]:
                    started = time.perf_counter()
                    try:
                        replies.append(run.backend_for(call).complete_request(run.request(call)))
                    except BackendError as err:
                        replies.append(err)
                    _record_reply(run, call, started, replies[-1])
                step = run.send(replies)
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        run.close()
    result = run.result(step)
    if stream:
        yield result.value
    return result


async def adrive(run: Run[T], *, stream: bool, done: Callable[[Result[T]], None]) -> AsyncGenerator[T, None]:
    """Async :func:`drive`: calls of a group are sent concurrently; ``done`` receives the result."""
    import asyncio  # loaded by whoever runs this coroutine; kept off import time

    try:
        step = run.send(None)  # the first step (an Outcome when the plan needs no call)
        while not isinstance(step, Outcome):
            if isinstance(step, Call):
                started = time.perf_counter()
                request = run.request(step)
                backend = run.backend_for(step)
                if stream and step.stream:
                    state = run.stream_state(step)
                    async with backend.astream_request(request) as reply:
                        async for delta in reply:
                            for preview in state.feed(delta):
                                yield preview
                    completion = reply.completion
                else:
                    completion = await backend.acomplete_request(request)
                run.record(step, started, completion)
                step = run.send(completion)
            else:
                calls = list(step)
                replies: list[Completion | BackendError] = []
                shared = run.shared_backend(calls)
                if shared is not None:  # the samples of one conversation: one request drawing n choices
                    started = time.perf_counter()
                    try:
                        drawn: list[Completion] | BackendError = await shared.acomplete_choices(
                            run.request(calls[0]), len(calls)
                        )
                    except BackendError as err:
                        drawn = err
                    replies = _drawn(run, calls, started, drawn)
                rest = calls[len(replies) :]
                started = time.perf_counter()
                requests = [run.request(call) for call in rest]
                gathered = await asyncio.gather(
                    *(run.backend_for(c).acomplete_request(r) for c, r in zip(rest, requests, strict=True)),
                    return_exceptions=True,
                )
                for call, reply_or_error in zip(rest, gathered, strict=True):
                    if isinstance(reply_or_error, BaseException) and not isinstance(reply_or_error, BackendError):
                        raise reply_or_error
                    replies.append(reply_or_error)
                    _record_reply(run, call, started, reply_or_error)
                step = run.send(replies)
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        run.close()
    result = run.result(step)
    done(result)
    if stream:
        yield result.value


def _drawn(
    run: Run[Any], calls: list[Call], started: float, drawn: list[Completion] | BackendError
) -> list[Completion | BackendError]:
    """The replies of the calls one request answered (all of them share its error), recorded."""
    replies: list[Completion | BackendError] = (
        [drawn] * len(calls) if isinstance(drawn, BackendError) else [*drawn[: len(calls)]]
    )
    for call, reply in zip(calls, replies, strict=False):  # a server may draw fewer than asked
        _record_reply(run, call, started, reply)
    return replies


def _record_reply(run: Run[Any], call: Call, started: float, reply: Completion | BackendError) -> None:
    if isinstance(reply, Completion):
        run.record(call, started, reply)
    else:
        run.record(call, started, error=reply)


def finish(steps: Generator[Any, None, Result[T]]) -> Result[T]:
    """The result of a non-streaming :func:`drive` (which yields nothing)."""
    try:
        next(steps)
    except StopIteration as stop:
        result: Result[T] = stop.value
        return result
    raise AssertionError("a call without streaming yielded a preview")  # pragma: no cover


# -- what Prompt.stream() and astream() return ---------------------------------------------------
class _Finished(Generic[T]):
    """What both stream objects share: the result once the stream has finished."""

    __slots__ = ("_result",)

    _result: Result[T] | None

    @property
    def done(self) -> bool:
        """True once the stream has finished and :attr:`result` is available."""
        return self._result is not None

    @property
    def result(self) -> Result[T]:
        """The whole :class:`~promptkit.Result`, once the stream has been iterated to the end."""
        if self._result is None:
            raise UnsupportedCapabilityError("the stream has not finished; iterate it to the end before .result")
        return self._result

    @property
    def value(self) -> T:
        """The validated value (the last item the stream yields), once it has finished."""
        return self.result.value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'done' if self._result is not None else 'open'}>"


class PromptStream(_Finished[T]):
    """A streamed prompt call: iterate it for partial values, the validated value last.

    Once iterated to the end, :attr:`result` is the whole :class:`~promptkit.Result` (usage,
    attempts, examples) and :attr:`value` its value. Leaving a ``with`` block, or calling
    :meth:`close`, stops the stream and releases its connection.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> stream = Prompt("Say hi", MockBackend(["Hello there"], chunk_size=4)).stream()
    >>> list(stream)[-1], stream.result.usage.output_tokens
    ('Hello there', 2)
    """

    __slots__ = ("_steps",)

    def __init__(self, steps: Generator[T, None, Result[T]]) -> None:
        self._steps = steps
        self._result: Result[T] | None = None

    def __iter__(self) -> Iterator[T]:
        if self._result is None:
            self._result = yield from self._steps

    def close(self) -> None:
        """Stop the stream early and release its connection."""
        self._steps.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPromptStream(_Finished[T]):
    """The async twin of :class:`PromptStream`: ``async for value in stream``, then ``.result``.

    The prompt is rendered (and its examples selected) when iteration starts.
    """

    __slots__ = ("_steps",)

    def __init__(self, start: Callable[[Callable[[Result[T]], None]], AsyncIterator[T]]) -> None:
        self._result: Result[T] | None = None
        self._steps = start(self._done)

    def _done(self, result: Result[T]) -> None:
        self._result = result

    def __aiter__(self) -> AsyncIterator[T]:
        return self._steps

    async def aclose(self) -> None:
        """Stop the stream early and release its connection."""
        aclose = getattr(self._steps, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
