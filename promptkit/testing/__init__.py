"""Test doubles for code that uses promptkit: offline, deterministic, and recorded.

>>> from promptkit.testing import MockBackend
>>> llm = MockBackend(["42"])
>>> llm.complete("What is 6 x 7?").text
'42'

Under pytest, the ``mock_backend`` fixture gives a fresh ``MockBackend``, and real provider
backends are blocked unless a test is marked ``@pytest.mark.allow_real_backends``.
"""

from __future__ import annotations

from ._mock import (
    FunctionBackend,
    MockBackend,
    MockReply,
    rate_limit_error,
    server_error,
    timeout_error,
)

__all__ = [
    "FunctionBackend",
    "MockBackend",
    "MockReply",
    "rate_limit_error",
    "server_error",
    "timeout_error",
]
