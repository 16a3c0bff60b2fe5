"""The hook interface: what a prompt run reports, to whom, and the backend wrapper that reports it.

Every observer (the ``promptkit`` logger, OpenTelemetry spans, the JSONL run log, a user's own
:class:`Hook`) receives the same events from one emission path. A run asks :func:`start_run` for a
:class:`RunTrace` once; with no hook registered and the logger quiet, that is ``None`` and every
later report is one ``is not None`` check. A hook that raises is logged once (with its traceback)
and the run carries on: observing a run must never change its outcome.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._messages import Completion, Message, MessagesLike
from ..backends._contract import Backend, BaseBackend, Request
from ..backends._streams import AsyncStream, Stream
from ._events import CallInfo, Hook, RunInfo, logger
from ._log import LOG_HOOK

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "CallInfo",
    "Hook",
    "HookHandle",
    "RunInfo",
    "RunTrace",
    "add_hook",
    "hooks",
    "logger",
    "remove_hook",
    "retried",
    "start_run",
]


# -- the registry -----------------------------------------------------------------------------------
class _Registry:
    """The hooks in force: a tuple replaced whole under the lock, never mutated, so readers need none."""

    __slots__ = ("hooks", "lock")

    def __init__(self) -> None:
        self.hooks: tuple[Hook, ...] = ()
        self.lock = threading.Lock()


_registry = _Registry()
_failed: set[tuple[int, str]] = set()


class HookHandle:
    """What :func:`add_hook` returns: :meth:`remove` the hook, or use it as a context manager."""

    __slots__ = ("hook",)

    def __init__(self, hook: Hook) -> None:
        self.hook = hook

    def remove(self) -> None:
        """Stop calling the hook (doing it twice is harmless)."""
        remove_hook(self.hook)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<HookHandle {self.hook!r}>"


def add_hook(hook: Hook) -> HookHandle:
    """Call ``hook`` for every prompt run in the process, until the returned handle is removed.

    A hook is any object with some of :class:`Hook`'s methods (subclassing it is simplest).
    """
    if not any(callable(getattr(hook, name, None)) for name in _EVENTS):
        from .._errors import ConfigurationError

        raise ConfigurationError(f"{hook!r} has none of the hook methods ({', '.join(_EVENTS)}); subclass Hook")
    with _registry.lock:
        if hook not in _registry.hooks:
            _registry.hooks = (*_registry.hooks, hook)
    return HookHandle(hook)


def remove_hook(hook: Hook) -> None:
    """Stop calling ``hook`` (nothing happens if it is not registered)."""
    with _registry.lock:
        _registry.hooks = tuple(h for h in _registry.hooks if h is not hook)


def hooks() -> tuple[Hook, ...]:
    """The hooks registered now, in the order they are called."""
    return _registry.hooks


_EVENTS = (
    "on_run_start",
    "on_step",
    "on_request",
    "on_retry",
    "on_response",
    "on_parse_failure",
    "on_run_end",
)


def _call(hooks: tuple[Any, ...], event: str, *args: Any) -> None:
    for hook in hooks:
        method = getattr(hook, event, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception:
            key = (id(hook), event)
            if key in _failed:
                logger.debug("hook %r failed again in %s", hook, event, exc_info=True)
            else:
                _failed.add(key)
                logger.warning(
                    "hook %r raised in %s; the run goes on (further failures are logged at DEBUG)",
                    hook,
                    event,
                    exc_info=True,
                )


# -- one run --------------------------------------------------------------------------------------
_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("promptkit_call", default=None)


def start_run(
    *,
    backend: Backend,
    strategy: str,
    messages: tuple[Message, ...],
    inputs: Mapping[str, Any],
    params: Mapping[str, Any],
    template: Any,
) -> RunTrace | None:
    """The trace of a run starting now, or ``None`` when nothing observes runs (the common case)."""
    registered = _registry.hooks
    if not registered and not logger.isEnabledFor(logging.INFO):
        return None
    observers = (*registered, LOG_HOOK) if logger.isEnabledFor(logging.INFO) else registered
    info = RunInfo(
        backend=backend.name, strategy=strategy, messages=messages, inputs=inputs, params=params, template=template
    )
    trace = RunTrace(info, observers, backend)
    _call(observers, "on_run_start", info)
    return trace


class RunTrace:
    """The reports of one run, sent to the hooks that were registered when it started."""

    __slots__ = ("_calls", "_ended", "_pending", "backend", "hooks", "info")

    def __init__(self, info: RunInfo, hooks: tuple[Any, ...], backend: Backend) -> None:
        self.info = info
        self.hooks = hooks
        self.backend: Backend = _TracedBackend(backend, self)
        self._pending: dict[int, CallInfo] = {}  # id(request) -> its call, until it is sent
        self._calls = 0
        self._ended = False

    def wrap(self, backend: Backend) -> Backend:
        """Another backend a strategy sends a call to (a critic), reported like the run's own."""
        return _TracedBackend(backend, self)

    def step(self, request: Request, *, purpose: str, sample: int | None) -> None:
        """The strategy asked for ``request`` (sent next through :attr:`backend`)."""
        call = CallInfo(self.info, request, purpose=purpose, sample=sample, index=self._calls)
        self._calls += 1
        self._pending[id(request)] = call
        _call(self.hooks, "on_step", self.info, call)

    def parse_failed(self, completion: Completion, error: BaseException) -> None:
        _call(self.hooks, "on_parse_failure", self.info, completion, error)

    def end(self, result: Any = None, error: BaseException | None = None) -> None:
        """Report the end of the run once (a later report, e.g. after a failure, is ignored)."""
        if not self._ended:
            self._ended = True
            _call(self.hooks, "on_run_end", self.info, result, error)

    # -- what the backend wrapper uses ------------------------------------------------------------
    def begin(self, request: Request, *, stream: bool) -> CallInfo:
        call = self._pending.pop(id(request), None)
        if call is None:  # sent without a strategy step (a driver's own request)
            call = CallInfo(self.info, request, purpose="answer", sample=request.sample, index=self._calls)
            self._calls += 1
        call.stream = stream
        call.started = time.perf_counter()
        call._hooks = self.hooks
        _call(self.hooks, "on_request", call)
        return call

    def finish(self, call: CallInfo, completion: Completion | None, error: BaseException | None) -> None:
        _call(self.hooks, "on_response", call, completion, error)


class _Scope:
    """While a call's I/O runs: the call is current (for retries) and so is its OpenTelemetry span.

    Entered and left around each step that performs I/O, never across a ``yield``, so a
    suspended generator leaves no context behind in its caller.
    """

    __slots__ = ("_otel", "_token")

    def __init__(self, call: CallInfo) -> None:
        self._token = _CALL.set(call)
        self._otel: object = None
        if call.otel_context is not None:
            from opentelemetry import context

            self._otel = context.attach(call.otel_context)

    def close(self) -> None:
        if self._otel is not None:
            from opentelemetry import context

            context.detach(self._otel)  # type: ignore[arg-type]
        _CALL.reset(self._token)


def retried(provider: str, attempt: int, error: BaseException, wait: float) -> None:
    """Called by the retry layer before it waits: report the retry to the current call's hooks."""
    call = _CALL.get()
    if call is not None:
        _call(call._hooks, "on_retry", call, attempt, error, wait)
    elif _registry.hooks:
        _call(_registry.hooks, "on_retry", None, attempt, error, wait)


R = TypeVar("R", Completion, list[Completion])


def _first(reply: Completion | list[Completion]) -> Completion | None:
    """The reply a hook sees: the completion, or the first of several choices."""
    if isinstance(reply, list):
        return reply[0] if reply else None
    return reply


class _TracedBackend(BaseBackend):
    """The run's backend as its drivers see it: every request reported before and after it is sent."""

    def __init__(self, inner: Backend, trace: RunTrace) -> None:
        self.inner = inner
        self._trace = trace

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def supported_params(self) -> frozenset[str]:
        return self.inner.supported_params

    def build_request(self, messages: MessagesLike, params: Mapping[str, Any] | None = None) -> Request:
        return self.inner.build_request(messages, params)

    def _begin(self, request: Request, *, stream: bool) -> CallInfo:
        return self._trace.begin(request, stream=stream)

    def _sent(self, request: Request, send: Callable[[], R]) -> R:
        """``send()`` reported as one call: its request, then its reply or error."""
        call = self._begin(request, stream=False)
        scope = _Scope(call)
        try:
            reply = send()
        except BaseException as exc:
            scope.close()
            self._trace.finish(call, None, exc)
            raise
        scope.close()
        self._trace.finish(call, _first(reply), None)
        return reply

    async def _asent(self, request: Request, send: Callable[[], Awaitable[R]]) -> R:
        call = self._begin(request, stream=False)
        scope = _Scope(call)
        try:
            reply = await send()
        except BaseException as exc:
            scope.close()
            self._trace.finish(call, None, exc)
            raise
        scope.close()
        self._trace.finish(call, _first(reply), None)
        return reply

    def complete_request(self, request: Request) -> Completion:
        return self._sent(request, lambda: self.inner.complete_request(request))

    async def acomplete_request(self, request: Request) -> Completion:
        return await self._asent(request, lambda: self.inner.acomplete_request(request))

    @property
    def max_choices(self) -> int:
        choices: int = getattr(self.inner, "max_choices", 1)
        return choices

    def complete_choices(self, request: Request, n: int) -> list[Completion]:
        return self._sent(request, lambda: self.inner.complete_choices(request, n))  # type: ignore[attr-defined]

    async def acomplete_choices(self, request: Request, n: int) -> list[Completion]:
        return await self._asent(request, lambda: self.inner.acomplete_choices(request, n))  # type: ignore[attr-defined]

    def stream_request(self, request: Request) -> Stream:
        return _TracedStream(self, request)

    def astream_request(self, request: Request) -> AsyncStream:
        return _TracedAsyncStream(self, request)

    def __repr__(self) -> str:
        return f"<traced {self.inner!r}>"


class _Reported:
    """What both traced streams share: opening the inner stream as the call, and one report."""

    _call: CallInfo
    _traced: _TracedBackend
    _inner: Any
    _over: bool

    def _open(self, backend: _TracedBackend, request: Request, open_stream: Callable[[Request], Any]) -> None:
        self._traced = backend
        self._call = backend._begin(request, stream=True)
        self._over = False
        scope = _Scope(self._call)
        try:
            self._inner = open_stream(request)
        except BaseException as exc:
            scope.close()
            self._report(None, exc)
            raise
        scope.close()

    def _report(self, completion: Completion | None, error: BaseException | None) -> None:
        if not self._over:
            self._over = True
            self._traced._trace.finish(self._call, completion, error)

    @property
    def text(self) -> str:
        text: str = self._inner.text
        return text

    @property
    def completion(self) -> Completion:
        completion: Completion = self._inner.completion
        return completion


class _TracedStream(_Reported, Stream):
    """The inner backend's stream, reported when it ends, fails or is closed."""

    def __init__(self, backend: _TracedBackend, request: Request) -> None:
        super().__init__(iter(()), backend=backend.name)
        self._open(backend, request, backend.inner.stream_request)

    def __iter__(self) -> Iterator[str]:
        deltas = iter(self._inner)
        while True:
            scope = _Scope(self._call)
            try:
                delta = next(deltas)
            except StopIteration:
                scope.close()
                break
            except BaseException as exc:
                scope.close()
                self._report(None, exc)
                raise
            scope.close()
            yield delta
        self._done = True
        self._report(self._inner.completion, None)

    def close(self) -> None:
        scope = _Scope(self._call)
        try:
            self._inner.close()
        finally:
            scope.close()
            self._report(None, None)


class _TracedAsyncStream(_Reported, AsyncStream):
    """Async :class:`_TracedStream`."""

    def __init__(self, backend: _TracedBackend, request: Request) -> None:
        super().__init__(_no_chunks(), backend=backend.name)
        self._open(backend, request, backend.inner.astream_request)

    async def __aiter__(self) -> AsyncIterator[str]:
        deltas = aiter(self._inner)
        while True:
            scope = _Scope(self._call)
            try:
                delta = await anext(deltas)
            except StopAsyncIteration:
                scope.close()
                break
            except BaseException as exc:
                scope.close()
                self._report(None, exc)
                raise
            scope.close()
            yield delta
        self._done = True
        self._report(self._inner.completion, None)

    async def aclose(self) -> None:
        scope = _Scope(self._call)
        try:
            await self._inner.aclose()
        finally:
            scope.close()
            self._report(None, None)


async def _no_chunks() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover - makes this an (empty) async generator
