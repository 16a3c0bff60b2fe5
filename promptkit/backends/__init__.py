"""The one backend contract, its streams, the wrapper base, the real-request gate and the factory.

Every backend, real or fake, offers ``complete``/``acomplete``/``stream``/``astream`` and, under
them, ``build_request`` plus ``complete_request``/``acomplete_request``/``stream_request``/
``astream_request`` on a validated :class:`Request`. Wrappers subclass :class:`WrapperBackend`
and override the request level only. Retries are configured with :class:`promptkit.RetryPolicy`.

>>> from promptkit.testing import MockBackend
>>> with MockBackend(["4"]) as llm:
...     llm.complete("2+2?", temperature=0).text
'4'
"""

from __future__ import annotations

from .._utils import publish as _publish
from ._cache import CachedBackend, CacheStats, CacheWarning, MemoryCache, ResponseCache, SQLiteCache
from ._contract import (
    ALL_PARAMS,
    COMMON_PARAMS,
    DIGEST_VERSION,
    Backend,
    BaseBackend,
    Constraint,
    OutputSchema,
    Params,
    Request,
    validate_params,
)
from ._factory import backend
from ._fallback import FallbackBackend
from ._gate import allow_real_requests, check_real_request, real_requests_allowed
from ._preview import RequestPreview
from ._ratelimit import RateLimitedBackend, RateLimiter
from ._streams import AsyncStream, Stream, stream_incomplete
from ._wrapper import WrapperBackend

__all__ = [
    "ALL_PARAMS",
    "AsyncStream",
    "Backend",
    "BaseBackend",
    "COMMON_PARAMS",
    "CacheStats",
    "CacheWarning",
    "CachedBackend",
    "Constraint",
    "DIGEST_VERSION",
    "FallbackBackend",
    "MemoryCache",
    "OutputSchema",
    "Params",
    "RateLimitedBackend",
    "RateLimiter",
    "Request",
    "RequestPreview",
    "ResponseCache",
    "SQLiteCache",
    "Stream",
    "WrapperBackend",
    "allow_real_requests",
    "backend",
    "check_real_request",
    "real_requests_allowed",
    "stream_incomplete",
    "validate_params",
]

_publish(__name__, __all__, globals())  # public paths in reprs and pickles (see promptkit._utils)
