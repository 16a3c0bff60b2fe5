"""CachedBackend, MemoryCache and SQLiteCache: keys, hits, streams, failures, bounds and processes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from promptkit import ChoiceParser, Prompt, SelfConsistency
from promptkit._errors import (
    ConfigurationError,
    IncompleteStreamError,
    ScriptExhaustedError,
    ServerError,
)
from promptkit._messages import Completion, Message, Usage
from promptkit.backends import (
    CachedBackend,
    CacheStats,
    CacheWarning,
    MemoryCache,
    ResponseCache,
    SQLiteCache,
)
from promptkit.backends._cache import decode_entry, encode_entry
from promptkit.testing import FunctionBackend, MockBackend, MockReply, server_error
from promptkit.testing._server import ProviderServer, ServerReply


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteCache]:
    with SQLiteCache(tmp_path / "cache.sqlite") as cache:
        yield cache


def counting(reply: str = "ok") -> tuple[FunctionBackend, list[str]]:
    seen: list[str] = []

    def fn(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        seen.append(messages[-1].text)
        return f"{reply}:{messages[-1].text}"

    return FunctionBackend(fn), seen


# -- the wire format --------------------------------------------------------------------------------
def test_an_entry_keeps_every_field_of_the_reply() -> None:
    usage = Usage(input_tokens=9, output_tokens=4, cached_input_tokens=3, cache_write_tokens=2, reasoning_tokens=1)
    reply = Completion(
        text="Paris",
        model="m-1",
        usage=usage,
        finish_reason="length",
        provider="openai",
        reasoning="because",
        raw=object(),
    )
    completion, chunks = decode_entry(encode_entry(reply, ["Pa", "ris"]))
    assert completion == reply
    assert (completion.provider, completion.reasoning, completion.usage, completion.cached) == (
        "openai",
        "because",
        usage,
        True,
    )
    assert completion.raw is None
    assert chunks == ["Pa", "ris"]
    assert json.loads(encode_entry(reply))["v"] == 1


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[]",
        '{"v": 99, "text": "x"}',
        '{"v": 1, "text": 3, "usage": {}, "model": null, "finish_reason": null}',
        '{"v": 1, "text": "ab", "chunks": ["a"], "usage": {}, "model": null, "finish_reason": null}',
        '{"v": 1, "text": "a", "usage": {"input_tokens": -1}, "model": null, "finish_reason": null}',
        '{"v": 1, "text": "a", "usage": {}, "model": null, "finish_reason": "error"}',
        '{"v": 1, "text": "a", "usage": {}, "model": 5, "finish_reason": null}',
    ],
)
def test_a_malformed_entry_is_refused(value: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode_entry(value)


def test_completion_cached_is_quiet() -> None:
    a, b = Completion(text="x"), Completion(text="x", cached=True)
    assert a == b
    assert "cached" not in repr(b)


# -- MemoryCache ------------------------------------------------------------------------------------
def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", "1")
    cache.set("b", "2")
    assert cache.get("a") == "1"  # a is now the most recent
    cache.set("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == ("1", None, "3", 2)
    cache.clear()
    assert len(cache) == 0


def test_memory_cache_ttl() -> None:
    clock = Clock()
    cache = MemoryCache(ttl=10, clock=clock)
    cache.set("a", "1")
    clock.now += 9.9
    assert cache.get("a") == "1"
    clock.now += 0.1
    assert cache.get("a") is None
    assert len(cache) == 0


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"max_entries": 1.5}, {"ttl": -1}, {"max_entries": True}])
def test_bad_bounds_are_refused(kwargs: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        MemoryCache(**kwargs)
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        SQLiteCache(tmp_path / "x.sqlite", **kwargs)


def test_a_cache_without_get_and_set_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"get.*set"):
        CachedBackend(MockBackend(), cache={})  # type: ignore[arg-type]
    assert isinstance(MemoryCache(), ResponseCache)


# -- SQLiteCache ------------------------------------------------------------------------------------
def test_sqlite_cache_is_wal_with_a_busy_timeout_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with SQLiteCache(path, timeout=7) as cache:
        cache.set("k", "v")
        conn = cache._borrow()
        try:
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
        finally:
            cache._give_back(conn)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # stored in the file
    finally:
        raw.close()
    with SQLiteCache(path) as again:
        assert again.get("k") == "v"
        assert again.get("other") is None
        assert len(again) == 1


def test_sqlite_cache_creates_its_directory(tmp_path: Path) -> None:
    with SQLiteCache(tmp_path / "a" / "b" / "c.sqlite") as cache:
        cache.set("k", "v")
        assert cache.get("k") == "v"
    assert (tmp_path / "a" / "b" / "c.sqlite").is_file()


def test_a_path_under_a_file_gives_misses_and_one_warning(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    llm = CachedBackend(MockBackend(["a", "b"]), cache=SQLiteCache(tmp_path / "file" / "c.sqlite"))
    with pytest.warns(CacheWarning, match="opened") as record:
        replies = [llm.complete("q").text for _ in range(2)]
    assert (replies, len(record)) == (["a", "b"], 1)


def test_sqlite_cache_replaces_and_counts(db: SQLiteCache) -> None:
    db.set("k", "one")
    db.set("k", "three")
    assert db.get("k") == "three"
    assert len(db) == 1
    db.clear()
    assert (len(db), db.get("k")) == (0, None)


def test_sqlite_cache_evicts_the_oldest_first(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteCache(tmp_path / "c.sqlite", max_entries=3, clock=clock) as cache:
        for key in "abcd":
            clock.now += 1
            cache.set(key, key)
        assert cache.get("a") is None  # the oldest went, although...
        assert [cache.get(k) for k in "bcd"] == ["b", "c", "d"]
        clock.now += 1
        cache.set("e", "e")  # ...reading b did not make it younger: oldest stored goes first
        assert [cache.get(k) for k in "bcde"] == [None, "c", "d", "e"]
        assert len(cache) == 3


def test_sqlite_cache_max_bytes(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteCache(tmp_path / "c.sqlite", max_bytes=25, clock=clock) as cache:
        for key in "abc":
            clock.now += 1
            cache.set(key, key * 10)
        assert [cache.get(k) is not None for k in "abc"] == [False, True, True]
        clock.now += 1
        cache.set("b", "b")  # replacing an entry updates the size: 1 + 10 bytes now
        clock.now += 1
        cache.set("d", "d" * 10)
        assert [cache.get(k) is not None for k in "bcd"] == [True, True, True]


def test_sqlite_cache_ttl(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteCache(tmp_path / "c.sqlite", ttl=60, clock=clock) as cache:
        cache.set("a", "1")
        clock.now += 59
        assert cache.get("a") == "1"
        clock.now += 1
        assert cache.get("a") is None
        cache.set("b", "2")  # a write clears what expired
        assert len(cache) == 1


def test_sqlite_cache_threads_lose_nothing(db: SQLiteCache) -> None:
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        for j in range(25):
            db.set(f"{i}-{j}", str(j))
            assert db.get(f"{i}-{j}") == str(j)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(db) == 200
    assert all(db.get(f"{i}-{j}") == str(j) for i in range(8) for j in range(25))


def test_closing_a_sqlite_cache_closes_its_connections_and_it_reopens(db: SQLiteCache) -> None:
    db.set("k", "v")
    conn = db._borrow()
    db.close()
    db._give_back(conn)  # borrowed before close: closed on return
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
    assert db.get("k") == "v"


# -- failures degrade to misses, with one warning ---------------------------------------------------
def test_a_corrupt_file_gives_misses_and_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database, " * 200)
    inner, seen = counting()
    llm = CachedBackend(inner, cache=SQLiteCache(path))
    with pytest.warns(CacheWarning, match="cannot") as record:
        replies = [llm.complete("q").text for _ in range(3)]
    assert replies == ["ok:q"] * 3
    assert len(seen) == 3
    assert len(record) == 1
    assert llm.stats == CacheStats(hits=0, misses=3, stores=3)
    assert path.read_bytes().startswith(b"this is not a database")  # never overwritten


def test_an_unopenable_path_gives_misses_and_one_warning(tmp_path: Path) -> None:
    inner, _ = counting()
    llm = CachedBackend(inner, cache=SQLiteCache(tmp_path))  # a directory
    with pytest.warns(CacheWarning) as record:
        assert [llm.complete("q").text for _ in range(2)] == ["ok:q"] * 2
    assert len(record) == 1


def test_a_corrupt_entry_is_a_miss_with_one_warning(db: SQLiteCache) -> None:
    inner, seen = counting()
    llm = CachedBackend(inner, cache=db)
    request = llm.build_request("q")

    def ask_over_bad_entries() -> list[str]:
        db.set(request.digest, "{garbage")
        first = llm.complete("q").text
        db.set(request.digest, '{"v": 1}')
        return [first, llm.complete("q").text]

    with pytest.warns(CacheWarning, match="entry") as record:
        assert ask_over_bad_entries() == ["ok:q", "ok:q"]
    assert len(record) == 1
    assert len(seen) == 2
    assert llm.complete("q").cached  # the reply stored over the bad entry is used


class ReadOnlySQLiteCache(SQLiteCache):
    """The file as a process without write permission sees it (the tests may run as root)."""

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        self._prepare(conn)
        return conn


def test_a_read_only_file_serves_hits_and_drops_writes_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    inner, seen = counting()
    with SQLiteCache(path) as writable:
        CachedBackend(inner, cache=writable).complete("stored")
    with ReadOnlySQLiteCache(path) as cache:
        llm = CachedBackend(inner, cache=cache)
        with pytest.warns(CacheWarning, match="written") as record:
            replies = [llm.complete(q) for q in ("stored", "new", "new")]
    assert [(r.text, r.cached) for r in replies] == [("ok:stored", True), ("ok:new", False), ("ok:new", False)]
    assert (seen, len(record)) == (["stored", "new", "new"], 1)


def test_a_locked_file_drops_the_write_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = SQLiteCache(path, timeout=0.05)
    cache.set("old", "1")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock throughout
    try:
        inner, seen = counting()
        llm = CachedBackend(inner, cache=cache)
        with pytest.warns(CacheWarning, match="written") as record:
            replies = [llm.complete("q").text for _ in range(2)]
        assert (replies, len(seen), len(record)) == (["ok:q", "ok:q"], 2, 1)
        assert cache.get("old") == "1"  # WAL: reading goes on while another process writes
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        cache.close()


# -- the wrapper over test doubles ------------------------------------------------------------------
def test_a_hit_sends_nothing_and_says_so() -> None:
    mock = MockBackend(["Paris"])
    llm = CachedBackend(mock, cache=MemoryCache())
    first = llm.complete("Capital?", temperature=0)
    second = llm.complete("Capital?", temperature=0.0)
    assert (first.text, second.text, first.cached, second.cached) == ("Paris", "Paris", False, True)
    assert len(mock.calls) == 1
    assert llm.stats == CacheStats(hits=1, misses=1, stores=1)
    assert "MemoryCache" in repr(llm)


def test_what_changes_the_reply_changes_the_key() -> None:
    inner, seen = counting()
    llm = CachedBackend(inner, cache=MemoryCache())
    llm.complete("a")
    llm.complete("b")
    llm.complete("a", seed=1)
    llm.complete("a", timeout=5)  # a deadline does not change the reply
    llm.complete([("system", "be brief"), "a"])
    assert seen == ["a", "b", "a", "a"]
    assert llm.stats.hits == 1


def test_result_cached_is_true_when_every_reply_came_from_the_cache() -> None:
    llm = CachedBackend(MockBackend(["4"]), cache=MemoryCache())
    prompt = Prompt("2+2?", llm)
    assert prompt.run().cached is False
    assert prompt.run().cached is True


def test_result_cached_is_false_when_a_repair_reached_the_model() -> None:
    cache = MemoryCache()
    parser = ChoiceParser(["yes", "no"])
    prompt = Prompt("Is it?", CachedBackend(MockBackend(["maybe", "yes"]), cache=cache), parser=parser)
    assert prompt.run().value == "yes"
    again = Prompt("Is it?", CachedBackend(MockBackend(["yes"]), cache=MemoryCache()), parser=parser)
    shared = Prompt("Is it?", CachedBackend(MockBackend([]), cache=cache), parser=parser)
    result = shared.run()  # both the answer and its repair are in the cache
    assert (result.value, result.cached, len(result.attempts)) == ("yes", True, 2)
    assert again.run().cached is False


def test_errors_are_not_cached() -> None:
    mock = MockBackend([server_error(503), "fine"])
    llm = CachedBackend(mock, cache=MemoryCache())
    with pytest.raises(ServerError):
        llm.complete("q")
    assert llm.complete("q").text == "fine"
    assert llm.complete("q").cached
    assert len(mock.calls) == 2
    assert llm.stats == CacheStats(hits=1, misses=2, stores=1)


def test_a_reply_that_reports_an_error_is_not_cached() -> None:
    mock = MockBackend([MockReply(text="", finish_reason="error"), "fine"])
    llm = CachedBackend(mock, cache=MemoryCache())
    assert llm.complete("q").finish_reason == "error"
    assert llm.complete("q").text == "fine"
    assert len(mock.calls) == 2


def test_guard_errors_pass_through() -> None:
    llm = CachedBackend(MockBackend([]), cache=MemoryCache())
    with pytest.raises(ScriptExhaustedError):
        llm.complete("q")
    assert llm.stats.stores == 0


def test_self_consistency_samples_are_different_keys() -> None:
    cache = MemoryCache()
    parser = ChoiceParser(["yes", "no"])
    strategy = SelfConsistency(3, temperature=0.7)
    first = Prompt(
        "Is it?", CachedBackend(MockBackend(["yes", "no", "yes"]), cache=cache), parser=parser, strategy=strategy
    )
    result = first.run()
    assert dict(result.info["votes"]) == {"yes": 2, "no": 1}
    assert len(cache) == 3  # never collapsed into one entry
    empty = MockBackend([])
    again = Prompt("Is it?", CachedBackend(empty, cache=cache), parser=parser, strategy=strategy).run()
    assert (dict(again.info["votes"]), again.cached, len(empty.calls)) == ({"yes": 2, "no": 1}, True, 0)
    assert sorted(a.completion.text for a in again.samples if a.completion) == ["no", "yes", "yes"]


def test_the_wrapper_does_not_draw_several_choices_at_once() -> None:
    llm = CachedBackend(MockBackend(["a", "b"], max_choices=4), cache=MemoryCache())
    assert llm.max_choices == 1  # each sample is its own request, so its own entry


def test_ttl_and_eviction_through_the_wrapper(tmp_path: Path) -> None:
    clock = Clock()
    inner, seen = counting()
    with SQLiteCache(tmp_path / "c.sqlite", ttl=100, max_entries=2, clock=clock) as cache:
        llm = CachedBackend(inner, cache=cache)
        llm.complete("a")
        clock.now += 1
        llm.complete("b")
        clock.now += 1
        llm.complete("c")  # evicts a, the oldest
        assert [llm.complete(q).cached for q in "bc"] == [True, True]
        assert llm.complete("a").cached is False
        clock.now += 100  # everything stored before now - 100 expired
        assert llm.complete("c").cached is False
    assert seen == ["a", "b", "c", "a", "c"]


# -- streams ----------------------------------------------------------------------------------------
def test_a_stream_hit_replays_the_stream() -> None:
    usage = Usage(input_tokens=3, output_tokens=2, reasoning_tokens=1)
    mock = MockBackend([MockReply(chunks=["Hel", "lo ", "there"], usage=usage, model="m")])
    llm = CachedBackend(mock, cache=MemoryCache())
    first = llm.stream("Hi")
    assert list(first) == ["Hel", "lo ", "there"]
    assert first.completion.cached is False
    second = llm.stream("Hi")
    assert list(second) == ["Hel", "lo ", "there"]
    replay = second.completion
    assert (replay.text, replay.usage, replay.model, replay.finish_reason, replay.cached) == (
        "Hello there",
        usage,
        "m",
        "stop",
        True,
    )
    assert len(mock.calls) == 1


def test_complete_and_stream_share_entries() -> None:
    mock = MockBackend(["one two", MockReply(chunks=["x", "y"])])
    llm = CachedBackend(mock, cache=MemoryCache())
    llm.complete("a")
    stream = llm.stream("a")
    assert (list(stream), stream.completion.cached) == (["one two"], True)
    assert list(llm.stream("b")) == ["x", "y"]
    assert (llm.complete("b").text, llm.complete("b").cached) == ("xy", True)
    assert len(mock.calls) == 2


def test_a_broken_stream_is_not_cached() -> None:
    broken = MockReply(chunks=["par", "tial"], error=IncompleteStreamError("cut", partial_text="partial"))
    mock = MockBackend([broken, "whole"])
    llm = CachedBackend(mock, cache=MemoryCache())
    with pytest.raises(IncompleteStreamError):
        list(llm.stream("q"))
    assert "".join(llm.stream("q")) == "whole"
    assert llm.stats.stores == 1
    assert llm.complete("q").text == "whole"


def test_a_stream_closed_early_is_not_cached() -> None:
    mock = MockBackend([MockReply(chunks=["a", "b", "c"]), "again"])
    llm = CachedBackend(mock, cache=MemoryCache())
    with llm.stream("q") as stream:
        for delta in stream:
            assert delta == "a"
            break
    assert llm.stats.stores == 0
    assert llm.complete("q").text == "again"


def test_an_abandoned_stream_is_not_cached() -> None:
    mock = MockBackend([MockReply(chunks=["a", "b"]), "again"])
    llm = CachedBackend(mock, cache=MemoryCache())
    stream = llm.stream("q")
    next(iter(stream))
    del stream
    assert llm.complete("q").text == "again"


# -- async ------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_hits_and_streams() -> None:
    mock = MockBackend(["one", MockReply(chunks=["t", "wo"])])
    llm = CachedBackend(mock, cache=MemoryCache())
    assert (await llm.acomplete("a")).cached is False
    assert (await llm.acomplete("a")).cached is True
    deltas = [d async for d in llm.astream("b")]
    stream = llm.astream("b")
    replayed = [d async for d in stream]
    assert (deltas, replayed, stream.completion.cached) == (["t", "wo"], ["t", "wo"], True)
    assert len(mock.calls) == 2


@pytest.mark.anyio
async def test_async_errors_and_broken_streams_are_not_cached() -> None:
    broken = MockReply(chunks=["x"], error=IncompleteStreamError("cut", partial_text="x"))
    mock = MockBackend([server_error(), broken, "ok", "ok2"])
    llm = CachedBackend(mock, cache=MemoryCache())
    with pytest.raises(ServerError):
        await llm.acomplete("q")
    with pytest.raises(IncompleteStreamError):
        [d async for d in llm.astream("q")]
    assert llm.stats.stores == 0
    async with llm.astream("q") as stream:
        async for _ in stream:
            break  # closed early
    assert llm.stats.stores == 0
    assert (await llm.acomplete("q")).text == "ok2"


@pytest.mark.anyio
async def test_a_cancelled_call_is_not_cached() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        started.set()
        await release.wait()
        return "late"

    cache = MemoryCache()
    llm = CachedBackend(FunctionBackend(slow), cache=cache)
    task = asyncio.create_task(llm.acomplete("q"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(cache) == 0
    assert llm.stats == CacheStats(hits=0, misses=1, stores=0)


# -- batch resume -----------------------------------------------------------------------------------
CRASHING_RUN = """
import os, sys
from promptkit import Prompt
from promptkit.backends import CachedBackend, SQLiteCache
from promptkit.testing import FunctionBackend

calls = []
def fn(messages, params):
    calls.append(1)
    if len(calls) == 5:
        os._exit(3)  # the process dies in the middle of the fifth request
    return messages[-1].text.upper()

llm = CachedBackend(FunctionBackend(fn), cache=SQLiteCache(sys.argv[1]))
Prompt("{{ word }}", llm).batch([{"word": f"w{i}"} for i in range(10)], max_concurrency=1, progress=False)
"""


def test_a_batch_rerun_after_a_crash_pays_only_for_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "batch.sqlite"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(path)], check=False, capture_output=True, text=True
    )
    assert crashed.returncode == 3, crashed.stderr
    seen: list[str] = []

    def fn(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:  # the same backend name as before
        seen.append(messages[-1].text)
        return messages[-1].text.upper()

    with SQLiteCache(path) as cache:
        result = Prompt("{{ word }}", CachedBackend(FunctionBackend(fn), cache=cache)).batch(
            [{"word": f"w{i}"} for i in range(10)], progress=False
        )
    assert result.values == [f"W{i}" for i in range(10)]
    assert sorted(seen) == [f"w{i}" for i in range(4, 10)]  # four were finished before the crash


# -- processes --------------------------------------------------------------------------------------
def reply(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
    return "reply:" + messages[-1].text


def _write_from_a_process(path: str, worker: int, start: Any, out: Any) -> None:
    warnings.simplefilter("error")  # a degraded cache would raise here, not pass silently
    try:
        start.wait(timeout=120)  # all eight begin together, on a file none has created yet
        cache = SQLiteCache(path)
        llm = CachedBackend(FunctionBackend(reply), cache=cache)
        for i in range(30):
            llm.complete(f"own {worker} {i}")
            llm.complete(f"shared {i}")
        cache.close()
        out.put((worker, "ok"))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put((worker, f"{type(exc).__name__}: {exc}"))


def test_eight_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_write_from_a_process, args=(path, w, start, out)) for w in range(8)]
    for p in procs:
        p.start()
    reports = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert reports == dict.fromkeys(range(8), "ok")
    with SQLiteCache(path) as cache:
        assert len(cache) == 8 * 30 + 30
        check = CachedBackend(FunctionBackend(reply), cache=cache)
        for w in range(8):
            for i in range(30):
                assert check.complete(f"own {w} {i}").text == f"reply:own {w} {i}"
        assert all(check.complete(f"shared {i}").text == f"reply:shared {i}" for i in range(30))
        assert check.stats == CacheStats(hits=8 * 30 + 30, misses=0, stores=0)


# -- against the local provider server --------------------------------------------------------------
KEY = "sk-test-secret-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(default=ServerReply(text="Paris", input_tokens=7, output_tokens=1)) as s:
        yield s


@pytest.fixture
def served(server: ProviderServer, tmp_path: Path) -> Iterator[CachedBackend]:
    pytest.importorskip("openai")
    from promptkit.backends.openai import OpenAIBackend

    inner = OpenAIBackend(model="gpt-test", base_url=server.openai_base_url, api_key=KEY)
    with SQLiteCache(tmp_path / "served.sqlite") as cache, CachedBackend(inner, cache=cache) as llm:
        yield llm


def test_a_hit_sends_no_request(server: ProviderServer, served: CachedBackend) -> None:
    first = served.complete("Capital of France?", temperature=0)
    again = served.complete("Capital of France?", temperature=0)
    assert (first.text, again.text, again.cached, again.usage) == ("Paris", "Paris", True, first.usage)
    assert (again.model, again.provider) == (first.model, first.provider)
    assert len(server.requests) == 1
    stream = served.stream("Capital of Italy?")
    deltas = list(stream)
    replay = served.stream("Capital of Italy?")
    assert (list(replay), replay.completion.cached, replay.completion.usage) == (
        deltas,
        True,
        stream.completion.usage,
    )
    assert "".join(deltas) == "Paris"
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_an_async_hit_sends_no_request(server: ProviderServer, served: CachedBackend) -> None:
    first = await served.acomplete("Capital of France?")
    again = await served.acomplete("Capital of France?")
    assert (first.cached, again.cached, again.text) == (False, True, "Paris")
    deltas = [d async for d in served.astream("Capital of Spain?")]
    replay = served.astream("Capital of Spain?")
    assert ([d async for d in replay], replay.completion.cached) == (deltas, True)
    assert len(deltas) > 1  # replayed delta by delta, as it came
    assert len(server.requests) == 2


def test_no_secret_reaches_the_cache_file(server: ProviderServer, served: CachedBackend, tmp_path: Path) -> None:
    other = "sk-proj-another-secret-9876543210"
    served.complete("Hi", extra={"user": "someone", "api_key": other, "metadata": {"token": other}})
    served.complete("Hi", extra={"user": "someone", "api_key": other, "metadata": {"token": other}})
    "".join(served.stream("Hello"))
    assert len(server.requests) == 2
    assert server.requests[0].body["api_key"] == other  # the extra secret was really sent
    data = b"".join(path.read_bytes() for path in tmp_path.glob("served.sqlite*"))  # the WAL file too
    assert b'"text":"Paris"' in data  # the replies are there...
    assert KEY.encode() not in data  # ...the keys are not
    assert other.encode() not in data


@pytest.mark.anyio
async def test_reasoning_and_the_cached_flag_survive_relayed_streams() -> None:
    from promptkit import Prompt
    from promptkit.backends import RateLimitedBackend
    from promptkit.testing import MockBackend, MockReply

    inner = MockBackend([MockReply(text="4", reasoning="2+2")], chunk_size=1)
    llm = RateLimitedBackend(CachedBackend(inner), requests_per_minute=1000)
    first = llm.stream("Q")
    assert "".join(first) == "4"
    assert (first.completion.reasoning, first.completion.cached) == ("2+2", False)
    again = llm.astream("Q")
    assert "".join([d async for d in again]) == "4"
    assert (again.completion.reasoning, again.completion.cached) == ("2+2", True)
    result = Prompt("Q", llm).stream()
    assert list(result)[-1] == "4"
    assert result.result.cached
    assert result.result.reasoning == "2+2"
