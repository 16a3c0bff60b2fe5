"""Test doubles for code that uses promptkit: offline, deterministic, and recorded.

>>> from promptkit.testing import MockBackend
>>> llm = MockBackend(["42"])
>>> llm.complete("What is 6 x 7?").text
'42'

``ProviderServer`` is a local HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic
wire formats and injects faults, so the real SDK clients can be tested offline.

Under pytest, the ``mock_backend`` and ``provider_server`` fixtures give a fresh
``MockBackend`` and a running ``ProviderServer``, and real provider backends are blocked unless
a test is marked ``@pytest.mark.allow_real_backends``. The ``promptkit_cassette`` fixture records
a test's real replies into a :class:`Cassette` file (``pytest --promptkit-record``) and replays
them offline afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import CassetteMissError, GuardError
from .._utils import publish as _publish
from .._utils import publish_one as _publish_one
from ._cassette import Cassette, CassetteBackend, CassetteMode
from ._mock import (
    FunctionBackend,
    MockBackend,
    MockReply,
    rate_limit_error,
    server_error,
    timeout_error,
)

if TYPE_CHECKING:
    from ._server import BatchScript, ProviderServer, RecordedRequest, ServerReply

_SERVER_NAMES = frozenset({"BatchScript", "ProviderServer", "RecordedRequest", "ServerReply"})


def __getattr__(name: str) -> Any:
    # The server pulls in http.server and ssl; most test sessions never start it.
    if name in _SERVER_NAMES:
        from . import _server

        value = _publish_one(__name__, getattr(_server, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SERVER_NAMES)


__all__ = [
    "BatchScript",
    "Cassette",
    "CassetteBackend",
    "CassetteMissError",
    "CassetteMode",
    "FunctionBackend",
    "GuardError",
    "MockBackend",
    "MockReply",
    "ProviderServer",
    "RecordedRequest",
    "ServerReply",
    "rate_limit_error",
    "server_error",
    "timeout_error",
]

_publish(__name__, __all__, globals())
