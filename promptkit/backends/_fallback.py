"""``FallbackBackend``: ask the next backend when one fails in a way its own retries could not fix.

Each member keeps its own retry policy; the fallback sees only what is left after those retries.
By default it moves on after a retryable error (rate limit, 5xx, connection failure, timeout, a
stream cut before any text) and after an authentication error (the next backend has its own
credentials); a bad request, a malformed reply or an error of the call's own total deadline is
raised at once, since another backend would be sent the same request. Test safeguards
(:class:`~promptkit.GuardError`) are never caught. When every member fails, a
:class:`~promptkit.FallbackError` keeps each member's error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from .._errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    FallbackError,
    UnsupportedParameterError,
)
from .._messages import Chunk, Completion, MessagesLike
from ._contract import Backend, BaseBackend, Request
from ._preview import RequestPreview
from ._streams import AsyncStream, Stream, final_chunk

__all__ = ["FallbackBackend", "falls_back"]

logger = logging.getLogger("promptkit")


def falls_back(error: BackendError) -> bool:
    """The default rule: whether ``error`` from one member sends the call on to the next.

    True for retryable errors (what remains after the member's own retries: rate limits, 5xx,
    connection failures, timeouts) and for :class:`~promptkit.AuthenticationError` (a missing or
    revoked key of one provider says nothing of the next). False for bad requests, malformed
    replies and the call's own total deadline.

    >>> from promptkit import BadRequestError, RateLimitError
    >>> falls_back(RateLimitError("429")), falls_back(BadRequestError("400"))
    (True, False)
    """
    return error.retryable or isinstance(error, AuthenticationError)


class FallbackBackend(BaseBackend):
    """A backend that tries its members in order until one answers.

    ``fall_back_on(error)`` decides which :class:`~promptkit.BackendError` moves on to the next
    member (default :func:`falls_back`); any other error is raised as it is. If every member
    fails, :class:`~promptkit.FallbackError` lists each one's error. Parameters are those every
    member supports. A ``timeout=`` stays one total deadline: a later member gets what is left.

    A stream falls back only while no text has reached the caller; an error after that is raised
    (an :class:`~promptkit.IncompleteStreamError` keeps the partial text), never hidden behind a
    second answer. Who answered: the completion's ``provider`` and ``model``, and
    :attr:`last_backend`.

    >>> from promptkit.testing import MockBackend, server_error
    >>> llm = FallbackBackend([MockBackend([server_error(503)]), MockBackend(["from the second"])])
    >>> llm.complete("hi").text, llm.last_backend
    ('from the second', 'mock')
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        fall_back_on: Callable[[BackendError], bool] = falls_back,
    ) -> None:
        given: object = backends
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise ConfigurationError("FallbackBackend takes a list of backends: FallbackBackend([primary, secondary])")
        members = tuple(backends)
        if not members:
            raise ConfigurationError("FallbackBackend needs at least one backend")
        for i, member in enumerate(members):
            if not isinstance(member, Backend):
                raise ConfigurationError(f"FallbackBackend: item {i} is a {type(member).__name__}, not a backend")
        if not callable(fall_back_on):
            raise ConfigurationError("fall_back_on must be a function of the error returning a bool")
        self.backends: tuple[Backend, ...] = members
        self.fall_back_on = fall_back_on
        self.last_backend: str | None = None
        """The name of the member that answered the latest call (``None`` before any answer)."""
        self._supported_params = frozenset.intersection(*(m.supported_params for m in members))
        self._clock: Callable[[], float] = time.monotonic

    @property
    def name(self) -> str:
        return f"fallback({','.join(m.name for m in self.backends)})"

    def build_request(self, messages: MessagesLike, params: Mapping[str, Any] | None = None) -> Request:
        """Validate against what every member supports, naming the members that lack a parameter."""
        try:
            return super().build_request(messages, params)
        except UnsupportedParameterError as err:
            lacking = [m.name for m in self.backends if err.param not in m.supported_params]
            if not lacking:
                raise
            raise UnsupportedParameterError(
                err.param, type(self).__name__, hint=f"not supported by {', '.join(lacking)}"
            ) from None

    # -- one member's turn ----------------------------------------------------------------------
    def _member_request(
        self, member: Backend, request: Request, started: float, errors: list[tuple[str, BackendError]]
    ) -> Request:
        """The request as ``member`` builds it (its name in it, for caches below it), with what
        is left of the total ``timeout``."""
        params = dict(request.params)
        timeout = params.get("timeout")
        if timeout is not None and errors:
            left = timeout - (self._clock() - started)
            if left <= 0:
                errors.append(
                    (
                        member.name,
                        BackendTimeoutError(
                            f"the call's total timeout of {timeout:g}s passed before {member.name} was tried",
                            provider=member.name,
                            retryable=False,
                        ),
                    )
                )
                raise self._all_failed(errors)
            params["timeout"] = left
        built = member.build_request(request.messages, MappingProxyType(params))
        return replace(built, sample=request.sample) if request.sample is not None else built

    def _failed(self, member: Backend, error: BackendError, errors: list[tuple[str, BackendError]], last: bool) -> None:
        """Record a member's failure; raise it unless the call moves on to the next member."""
        if not self.fall_back_on(error):
            raise error
        errors.append((member.name, error))
        if not last:
            logger.warning("%s failed (%s: %s); falling back", member.name, type(error).__name__, error)

    def _all_failed(self, errors: list[tuple[str, BackendError]]) -> FallbackError:
        detail = "; ".join(f"{name}: {type(err).__name__}: {err}" for name, err in errors)
        failure = FallbackError(
            f"every backend of {self.name} failed: {detail}", errors=tuple(errors), provider=self.name
        )
        failure.__cause__ = errors[-1][1] if errors else None
        return failure

    def _answered(self, member: Backend) -> None:
        self.last_backend = member.name

    # -- the request level ----------------------------------------------------------------------
    def complete_request(self, request: Request) -> Completion:
        errors: list[tuple[str, BackendError]] = []
        started = self._clock()
        for i, member in enumerate(self.backends):
            member_request = self._member_request(member, request, started, errors)
            try:
                completion = member.complete_request(member_request)
            except BackendError as err:
                self._failed(member, err, errors, last=i == len(self.backends) - 1)
                continue
            self._answered(member)
            return completion
        raise self._all_failed(errors)

    async def acomplete_request(self, request: Request) -> Completion:
        errors: list[tuple[str, BackendError]] = []
        started = self._clock()
        for i, member in enumerate(self.backends):
            member_request = self._member_request(member, request, started, errors)
            try:
                completion = await member.acomplete_request(member_request)
            except BackendError as err:
                self._failed(member, err, errors, last=i == len(self.backends) - 1)
                continue
            self._answered(member)
            return completion
        raise self._all_failed(errors)

    def stream_request(self, request: Request) -> Stream:
        return Stream(self._relay(request), backend=self.name)

    def astream_request(self, request: Request) -> AsyncStream:
        return AsyncStream(self._arelay(request), backend=self.name)

    def _relay(self, request: Request) -> Iterator[Chunk]:
        errors: list[tuple[str, BackendError]] = []
        started = self._clock()
        for i, member in enumerate(self.backends):
            member_request = self._member_request(member, request, started, errors)
            sent_text = False
            try:
                with member.stream_request(member_request) as stream:
                    for delta in stream:
                        sent_text = True
                        yield Chunk(text=delta)
                    completion = stream.completion
            except BackendError as err:
                if sent_text:
                    raise  # text already reached the caller: never switch to another answer
                self._failed(member, err, errors, last=i == len(self.backends) - 1)
                continue
            self._answered(member)
            yield final_chunk(completion)
            return
        raise self._all_failed(errors)

    async def _arelay(self, request: Request) -> AsyncIterator[Chunk]:
        errors: list[tuple[str, BackendError]] = []
        started = self._clock()
        for i, member in enumerate(self.backends):
            member_request = self._member_request(member, request, started, errors)
            sent_text = False
            try:
                async with member.astream_request(member_request) as stream:
                    async for delta in stream:
                        sent_text = True
                        yield Chunk(text=delta)
                    completion = stream.completion
            except BackendError as err:
                if sent_text:
                    raise
                self._failed(member, err, errors, last=i == len(self.backends) - 1)
                continue
            self._answered(member)
            yield final_chunk(completion)
            return
        raise self._all_failed(errors)

    def preview_request(self, request: Request, *, stream: bool = False) -> RequestPreview:
        """The first member's preview: what is sent first (later members only after it fails)."""
        first = self.backends[0]
        member_request = self._member_request(first, request, self._clock(), [])
        preview = getattr(first, "preview_request", None)
        if preview is None:
            return super().preview_request(member_request, stream=stream)
        result: RequestPreview = preview(member_request, stream=stream)
        return result

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every member."""
        for member in self.backends:
            close = getattr(member, "close", None)
            if close is not None:
                close()

    async def aclose(self) -> None:
        """Async :meth:`close`: each member's ``aclose`` when it has one."""
        for member in self.backends:
            aclose = getattr(member, "aclose", None)
            if aclose is not None:
                await aclose()
            else:
                close = getattr(member, "close", None)
                if close is not None:
                    close()

    def __repr__(self) -> str:
        return f"<FallbackBackend {', '.join(repr(m) for m in self.backends)}>"
