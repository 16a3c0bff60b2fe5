"""pytest plugin (registered through the ``pytest11`` entry point).

- ``provider_server``: a running :class:`~promptkit.testing.ProviderServer` on 127.0.0.1;
  point a real backend at ``provider_server.openai_base_url`` (or the Anthropic one).
- ``mock_backend``: a fresh :class:`~promptkit.testing.MockBackend` per test; script it with
  ``mock_backend.add("reply", ...)``.
- Real provider backends are blocked in every test by default (requests to a loopback server
  such as the local provider server stay allowed). Switch them on per test with
  ``@pytest.mark.allow_real_backends`` or the ``allow_real_backends`` fixture, or for a whole run
  with the ini option ``promptkit_allow_real_backends = true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ..backends import allow_real_requests
from ._mock import MockBackend

if TYPE_CHECKING:
    from ._server import ProviderServer

_MARKER = "allow_real_backends"
_INI = "promptkit_allow_real_backends"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(_INI, "allow real provider backends in every test (default: blocked)", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{_MARKER}: allow real provider backends in this test")


@pytest.fixture(autouse=True)
def _promptkit_real_backends_gate(request: pytest.FixtureRequest) -> Iterator[None]:
    allowed = bool(request.config.getini(_INI)) or request.node.get_closest_marker(_MARKER) is not None
    with allow_real_requests(allowed):
        yield


@pytest.fixture
def allow_real_backends() -> Iterator[None]:
    """Allow real provider backends for the duration of the test."""
    with allow_real_requests(True):
        yield


@pytest.fixture
def mock_backend() -> Iterator[MockBackend]:
    """A fresh, empty MockBackend; add replies with ``mock_backend.add(...)``."""
    with MockBackend() as backend:
        yield backend


@pytest.fixture
def provider_server() -> Iterator[ProviderServer]:
    """A local provider server (OpenAI and Anthropic wire formats) running for this test."""
    from ._server import ProviderServer  # http.server and ssl load only for tests that use it

    with ProviderServer() as server:
        yield server
