"""The deadline helpers under the SDK adapters (promptkit/backends/_http.py), with both real SDKs."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import warnings
from collections.abc import Iterator

import pytest

from promptkit._errors import BackendTimeoutError, IncompleteStreamError
from promptkit.backends._http import _WATCHDOG, _Watchdog
from promptkit.backends._retry import RetryPolicy
from promptkit.backends._sdkbase import SDKBackend
from promptkit.backends.anthropic import AnthropicBackend
from promptkit.backends.openai import OpenAIBackend
from promptkit.testing._server import ProviderServer, ServerReply

FAST = RetryPolicy(max_attempts=3, backoff=0.01, max_backoff=0.05, deadline=10.0)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


@pytest.fixture(params=["openai", "anthropic"])
def llm(request: pytest.FixtureRequest, server: ProviderServer) -> Iterator[SDKBackend]:
    if request.param == "openai":
        made: SDKBackend = OpenAIBackend(model="m", base_url=server.openai_base_url, api_key="sk-test-0123", retry=FAST)
    else:
        made = AnthropicBackend(model="c", base_url=server.anthropic_base_url, api_key="sk-test-0123", retry=FAST)
    with made:
        yield made


def _call(llm: SDKBackend, mode: str, timeout: float) -> str:
    if mode == "complete":
        return llm.complete("hi", timeout=timeout).text
    return "".join(llm.stream("hi", timeout=timeout))


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_a_stall_mid_body_is_cut_at_the_deadline(server: ProviderServer, llm: SDKBackend, mode: str) -> None:
    server.add("warm")
    assert llm.complete("warm up").text == "warm"  # a pooled connection, as in a long-lived app
    server.add(ServerReply(text="x" * 400, delay=0.6, fault="stall", pause=30.0, after=2), "after the cut")
    start = time.monotonic()
    with pytest.raises((BackendTimeoutError, IncompleteStreamError), match="deadline"):
        _call(llm, mode, timeout=1.0)
    assert time.monotonic() - start < 10  # the stall alone lasts 30 s
    assert llm.complete("again").text == "after the cut"


@pytest.mark.parametrize("mode", ["complete", "stream", "acomplete", "astream"])
def test_trickled_headers_cannot_outlive_the_deadline(server: ProviderServer, llm: SDKBackend, mode: str) -> None:
    # One header byte every 0.5 s: each byte is within any read timeout, the headers take minutes.
    server.add(ServerReply.trickle_headers(0.5), "after the cut")
    start = time.monotonic()
    call = (
        (lambda: asyncio.run(_acall(llm, mode, timeout=1.0)))
        if mode.startswith("a")
        else (lambda: _call(llm, mode, timeout=1.0))
    )
    with pytest.raises(BackendTimeoutError, match="deadline"):
        call()
    elapsed = time.monotonic() - start
    assert elapsed >= 0.9
    assert elapsed < 10  # the headers alone take well over a minute
    assert llm.complete("again", timeout=30).text == "after the cut"


async def _acall(llm: SDKBackend, mode: str, timeout: float) -> str:
    if mode == "acomplete":
        return (await llm.acomplete("hi", timeout=timeout)).text
    return "".join([delta async for delta in llm.astream("hi", timeout=timeout)])


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_a_finished_call_leaves_no_watch_on_its_connection(server: ProviderServer, llm: SDKBackend, mode: str) -> None:
    server.add("quick", ServerReply(text="slow but in time", delay=0.6))
    assert _call(llm, mode, timeout=0.3) == "quick"
    # The next call reuses the pooled connection and is still waiting when the first one's
    # deadline passes: a watch left behind would cut it.
    assert llm.complete("hi").text == "slow but in time"
    assert len(server.requests) == 2


def test_the_watchdog_wakes_a_blocked_read_at_its_deadline() -> None:
    watchdog = _Watchdog()
    reader, writer = socket.socketpair()
    with reader, writer:
        reader.settimeout(60)
        start = time.monotonic()
        watchdog.watch(start + 0.2, reader)
        assert reader.recv(10) == b""  # woken by the shutdown, not by the 60 s timeout
        elapsed = time.monotonic() - start
        assert elapsed > 0.15
        assert elapsed < 30


def test_a_released_watch_never_fires() -> None:
    watchdog = _Watchdog()
    reader, writer = socket.socketpair()
    with reader, writer:
        watchdog.release(watchdog.watch(time.monotonic() + 0.1, reader))
        time.sleep(0.3)
        writer.sendall(b"still open")
        assert reader.recv(10) == b"still open"


def test_released_watches_do_not_pile_up() -> None:
    watchdog = _Watchdog()
    reader, writer = socket.socketpair()
    with reader, writer:
        far = time.monotonic() + 3600  # long deadlines: entries would wait an hour to be popped
        for _ in range(10_000):
            watchdog.release(watchdog.watch(far, reader))
        assert len(watchdog._heap) <= 2 * len(watchdog._sockets) + 65


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_starts_its_own_watchdog() -> None:
    spare, other = socket.socketpair()
    with spare, other:
        _WATCHDOG.release(_WATCHDOG.watch(time.monotonic() + 3600, spare))  # the parent's thread runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: the parent's thread is gone; a watch must still fire
        code = 1
        try:
            reader, _writer = socket.socketpair()
            reader.settimeout(60)
            _WATCHDOG.watch(time.monotonic() + 0.1, reader)
            code = 0 if reader.recv(10) == b"" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
