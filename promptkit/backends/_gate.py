"""The real-request gate: real provider calls can be switched off (the pytest plugin does).

Backends that talk to a provider call :func:`check_real_request` before every attempt; a server on
the loopback interface (such as :class:`promptkit.testing.ProviderServer`) always passes.

>>> with allow_real_requests(False):
...     real_requests_allowed()
False
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from .._errors import RealBackendBlockedError

__all__ = ["allow_real_requests", "allow_real_requests_here", "check_real_request", "real_requests_allowed"]


class _Gate:
    blocked = False
    reason = ""


# Set only around calls a caller vouches for (a cassette recording): per thread and per task,
# so the other calls of the process stay blocked.
_ALLOWED_HERE: ContextVar[bool] = ContextVar("promptkit_real_requests_here", default=False)


def real_requests_allowed() -> bool:
    """False while real provider calls are blocked (the pytest plugin blocks them by default)."""
    return not _Gate.blocked


@contextlib.contextmanager
def allow_real_requests(allowed: bool = True) -> Iterator[None]:
    """Temporarily allow (or block) real provider requests.

    The pytest plugin blocks them for every test; ``@pytest.mark.allow_real_backends`` or the
    ``allow_real_backends`` fixture use this to switch them back on.
    """
    previous = _Gate.blocked
    _Gate.blocked = not allowed
    try:
        yield
    finally:
        _Gate.blocked = previous


@contextlib.contextmanager
def allow_real_requests_here() -> Iterator[None]:
    """Allow real requests for the code run inside this block only, in this thread or task.

    Unlike :func:`allow_real_requests`, which switches the process-wide gate, this leaves calls
    made by other threads and tasks blocked: a recording wrapper lets only its own calls through.
    """
    token = _ALLOWED_HERE.set(True)
    try:
        yield
    finally:
        _ALLOWED_HERE.reset(token)


def _is_loopback(base_url: str | None) -> bool:
    if not base_url:
        return False
    import ipaddress  # only real backends ask, and they are rare in a process that only renders
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_real_request(backend: str, base_url: str | None) -> None:
    """Raise :class:`RealBackendBlockedError` when real requests are blocked.

    A server on the loopback interface (such as :class:`promptkit.testing.ProviderServer`) is
    never a real provider, so requests to it are always allowed.
    """
    if _Gate.blocked and not _ALLOWED_HERE.get() and not _is_loopback(base_url):
        raise RealBackendBlockedError(
            f"{backend} tried to call a real provider ({base_url or 'default endpoint'}) under test; "
            "use promptkit.testing.MockBackend, or allow it with @pytest.mark.allow_real_backends "
            "or the allow_real_backends fixture",
            provider=backend,
        )
