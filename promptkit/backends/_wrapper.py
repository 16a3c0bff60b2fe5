"""``WrapperBackend``: the base of every backend that wraps another (cache, fallback, limits, ...).

It forwards everything to ``inner``, at the request level, so a wrapper overrides only the
methods whose behaviour it changes; the message-level methods (``complete`` ...) come from
:class:`BaseBackend` and go through the request level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._messages import Completion, MessagesLike
from ._contract import Backend, BaseBackend, Request
from ._preview import RequestPreview
from ._streams import AsyncStream, Stream

__all__ = ["WrapperBackend"]


class WrapperBackend(BaseBackend):
    """A backend that forwards to ``inner``: subclass it and override what you change.

    ``name``, ``supported_params`` and ``build_request`` are the inner backend's (so parameters are
    validated against what it supports and requests carry its name), and so are the four
    request-level methods and ``close``/``aclose``.

    >>> from promptkit.testing import MockBackend
    >>> class Shout(WrapperBackend):
    ...     def complete_request(self, request):
    ...         reply = super().complete_request(request)
    ...         return Completion(text=reply.text.upper(), model=reply.model, usage=reply.usage)
    >>> Shout(MockBackend(["hi"])).complete("hello").text
    'HI'
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def supported_params(self) -> frozenset[str]:
        return self.inner.supported_params

    def build_request(self, messages: MessagesLike, params: Mapping[str, Any] | None = None) -> Request:
        return self.inner.build_request(messages, params)

    def complete_request(self, request: Request) -> Completion:
        return self.inner.complete_request(request)

    async def acomplete_request(self, request: Request) -> Completion:
        return await self.inner.acomplete_request(request)

    def stream_request(self, request: Request) -> Stream:
        return self.inner.stream_request(request)

    def astream_request(self, request: Request) -> AsyncStream:
        return self.inner.astream_request(request)

    def preview_request(self, request: Request, *, stream: bool = False) -> RequestPreview:
        """The inner backend's preview: a wrapper changes how a request is sent, not what it is."""
        preview = getattr(self.inner, "preview_request", None)
        if preview is None:
            return super().preview_request(request, stream=stream)
        result: RequestPreview = preview(request, stream=stream)
        return result

    def close(self) -> None:
        """Close the inner backend."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Async :meth:`close`: the inner backend's ``aclose`` when it has one."""
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.inner!r}>"
