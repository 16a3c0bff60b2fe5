"""Response caching as a backend wrapper: :class:`CachedBackend` over a :class:`ResponseCache`.

A request's key is its :attr:`Request.digest` (backend name, messages, every parameter that changes
the reply and the sample index, never a secret). A value is the reply as JSON: text, model, usage,
finish reason, provider, reasoning and, for a streamed reply, its deltas, so that a hit replays a
stream as a stream. Only whole replies are stored: an error, a stream that broke or was closed
early and a cancelled call leave nothing behind. Two caches come with it: :class:`MemoryCache`
(an LRU in the process) and :class:`SQLiteCache` (a file shared by threads and processes).

>>> from promptkit.testing import MockBackend
>>> llm = CachedBackend(MockBackend(["Paris"]), cache=MemoryCache())
>>> llm.complete("Capital of France?").text, llm.complete("Capital of France?").cached
('Paris', True)
>>> llm.stats
CacheStats(hits=1, misses=1, stores=1)
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._errors import ConfigurationError
from .._messages import Chunk, Completion, Usage
from ._contract import Backend, Request
from ._streams import AsyncStream, Stream, final_chunk
from ._wrapper import WrapperBackend

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "ENTRY_VERSION",
    "CacheStats",
    "CacheWarning",
    "CachedBackend",
    "MemoryCache",
    "ResponseCache",
    "SQLiteCache",
]

ENTRY_VERSION = 1
"""The format of a stored reply; an entry of another version is a miss."""

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter"})  # "error" is never stored


class CacheWarning(UserWarning):
    """A cache could not be read or written (a corrupt, locked or read-only file): calls went to
    the backend instead. Issued once per cache.

    >>> issubclass(CacheWarning, UserWarning)
    True
    """


@runtime_checkable
class ResponseCache(Protocol):
    """What :class:`CachedBackend` needs from a store: text values by string keys.

    ``get`` returns ``None`` for a miss (absent, expired or unreadable); ``set`` stores or
    replaces. Neither may raise for a storage failure: a cache that cannot work degrades to
    misses. Keys are hex digests; values are JSON text.
    """

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CacheStats:
    """How a :class:`CachedBackend` has fared: replies served from the cache, sent on, and stored."""

    hits: int = 0
    misses: int = 0
    stores: int = 0


class _WarnOnce:
    """One :class:`CacheWarning` per cache, however many calls fail after the first."""

    def __init__(self) -> None:
        self._warned = False
        self._lock = threading.Lock()

    def __call__(self, what: str, err: BaseException) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        warnings.warn(
            f"{what}: {type(err).__name__}: {err}; calls go to the backend (this warning is shown once)",
            CacheWarning,
            stacklevel=4,
        )


def _check_bound(name: str, value: float | None, *, integer: bool) -> None:
    if value is None:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive {'int' if integer else 'number'} or None, not {value!r}")


# -- the in-memory cache ----------------------------------------------------------------------------
class MemoryCache:
    """An LRU cache in this process: at most ``max_entries`` replies, the least recently used
    evicted first; with ``ttl`` (seconds, measured by ``clock``) an entry expires.

    Thread-safe. Nothing survives the process; use :class:`SQLiteCache` for that.

    >>> cache = MemoryCache(max_entries=2)
    >>> cache.set("a", "1"); cache.set("b", "2"); _ = cache.get("a"); cache.set("c", "3")
    >>> cache.get("b") is None, len(cache)
    (True, 2)
    """

    def __init__(
        self, max_entries: int | None = 1024, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        _check_bound("max_entries", max_entries, integer=True)
        _check_bound("ttl", ttl, integer=False)
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            stored, value = item
            if self.ttl is not None and self._clock() - stored >= self.ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = (self._clock(), value)
            self._data.move_to_end(key)
            if self.max_entries is not None:
                while len(self._data) > self.max_entries:
                    self._data.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<MemoryCache entries={len(self._data)} max_entries={self.max_entries}>"


# -- the SQLite cache -------------------------------------------------------------------------------
# ``totals`` keeps the count and size of the entries up to date (triggers), so bounds cost O(1).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    "key TEXT PRIMARY KEY, value TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS entries_created ON entries (created, key)",
    "CREATE TABLE IF NOT EXISTS totals ("
    "id INTEGER PRIMARY KEY CHECK (id = 0), entries INTEGER NOT NULL, bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO totals VALUES (0, 0, 0)",
    "CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN "
    "UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS entries_changed AFTER UPDATE ON entries BEGIN "
    "UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN "
    "UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 0; END",
)
_UPSERT = (
    "INSERT INTO entries (key, value, size, created) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
    "value = excluded.value, size = excluded.size, created = excluded.created"
)


class SQLiteCache:
    """A persistent cache in one SQLite file, shared safely by threads and processes.

    The file is put in WAL mode once, when it is created, and every connection waits up to
    ``timeout`` seconds for another writer instead of failing with "database is locked"; writes
    take the write lock up front (``BEGIN IMMEDIATE``). Each thread borrows a connection from a
    small pool. Bounds: ``max_entries`` and ``max_bytes`` (of stored JSON) evict the **oldest
    entries first** (by when they were stored), so that a hit stays a pure read that never writes
    the file nor waits for a writer; ``ttl`` (seconds, by ``clock``, wall time by default as the
    file outlives the process) makes older entries misses. A corrupt, locked or read-only file
    gives misses and one :class:`CacheWarning`, never an error. Missing parent directories are
    created.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "replies.sqlite")
    >>> with SQLiteCache(path, max_entries=1000) as cache:
    ...     cache.set("k", '{"v": 1}')
    ...     cache.get("k")
    '{"v": 1}'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        ttl: float | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_bound("max_entries", max_entries, integer=True)
        _check_bound("max_bytes", max_bytes, integer=True)
        _check_bound("ttl", ttl, integer=False)
        _check_bound("timeout", timeout, integer=False)
        self.path = Path(path).expanduser()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.timeout = float(timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all: set[sqlite3.Connection] = set()
        self._pid = os.getpid()
        self._ready = False
        self._warn = _WarnOnce()

    # -- connections ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """A new connection, retried while other processes hold the file's lock.

        Switching a fresh file to WAL takes an exclusive lock and opening one under WAL
        recovery a short one, and SQLite does not always wait for them with the busy timeout
        (processes opening one new file together see 'database is locked' at once), so opening
        retries for up to ``timeout`` seconds before it gives up.
        """
        import sqlite3

        deadline = time.monotonic() + self.timeout
        pause = 0.005
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as err:
                busy = "locked" in str(err) or "busy" in str(err)
                if not busy or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses no commit (a power cut may)
            if not self._ready:
                self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create the table and set WAL mode, once per file (the mode is stored in the file)."""
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries_removed'").fetchone() is not None:
            self._ready = True  # made before (the last statement of the schema): nothing to write
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._ready = True

    def _borrow(self) -> sqlite3.Connection:
        with self._lock:
            if os.getpid() != self._pid:  # a forked child never uses its parent's connections
                self._pid, self._idle, self._all = os.getpid(), [], set()
            if self._idle:
                return self._idle.pop()
        conn = self._connect()
        with self._lock:
            self._all.add(conn)
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._all:
                self._idle.append(conn)
                return
        conn.close()  # borrowed before close(): closed now

    # -- the protocol --------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        import sqlite3

        try:
            conn = self._borrow()
        except (sqlite3.Error, OSError) as err:
            self._warn(f"the cache {self.path} cannot be opened", err)
            return None
        try:
            if self.ttl is None:
                row = conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
            else:
                row = conn.execute(
                    "SELECT value FROM entries WHERE key = ? AND created > ?", (key, self._clock() - self.ttl)
                ).fetchone()
        except sqlite3.Error as err:
            self._warn(f"the cache {self.path} cannot be read", err)
            return None
        finally:
            self._give_back(conn)
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        import sqlite3

        try:
            conn = self._borrow()
        except (sqlite3.Error, OSError) as err:
            self._warn(f"the cache {self.path} cannot be opened", err)
            return
        try:
            self._write(conn, key, value)
        except sqlite3.Error as err:
            self._warn(f"the cache {self.path} cannot be written", err)
        finally:
            self._give_back(conn)

    def _write(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        size = len(value.encode("utf-8"))
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_UPSERT, (key, value, size, now))
            if self.ttl is not None:
                conn.execute("DELETE FROM entries WHERE created <= ?", (now - self.ttl,))
            if self.max_entries is not None or self.max_bytes is not None:
                self._evict(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _evict(self, conn: sqlite3.Connection) -> None:
        count, total = conn.execute("SELECT entries, bytes FROM totals WHERE id = 0").fetchone()
        excess_entries = count - self.max_entries if self.max_entries is not None else 0
        excess_bytes = total - self.max_bytes if self.max_bytes is not None else 0
        if excess_entries <= 0 and excess_bytes <= 0:
            return
        doomed: list[str] = []
        for key, size in conn.execute("SELECT key, size FROM entries ORDER BY created, key"):
            if excess_entries <= 0 and excess_bytes <= 0:
                break
            doomed.append(key)
            excess_entries -= 1
            excess_bytes -= size
        conn.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in doomed])

    # -- housekeeping --------------------------------------------------------------------------
    def clear(self) -> None:
        """Delete every entry."""
        conn = self._borrow()
        try:
            conn.execute("DELETE FROM entries")
        finally:
            self._give_back(conn)

    def __len__(self) -> int:
        conn = self._borrow()
        try:
            return int(conn.execute("SELECT entries FROM totals WHERE id = 0").fetchone()[0])
        finally:
            self._give_back(conn)

    def close(self) -> None:
        """Close every connection; the file stays, and a later call opens a new one. Called by
        ``with cache:``."""
        with self._lock:
            conns, self._all, self._idle = self._all, set(), []
        for conn in conns:
            conn.close()

    def __enter__(self) -> SQLiteCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteCache {str(self.path)!r}>"


# -- the wire format of a stored reply --------------------------------------------------------------
def encode_entry(completion: Completion, deltas: Sequence[str] | None = None) -> str:
    """A reply as the JSON a cache stores: never ``raw`` (the provider's object), never the request."""
    doc: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "text": completion.text,
        "model": completion.model,
        "usage": {name: getattr(completion.usage, name) for name in _USAGE_FIELDS},
        "finish_reason": completion.finish_reason,
        "provider": completion.provider,
        "reasoning": completion.reasoning,
    }
    if deltas is not None:
        doc["chunks"] = list(deltas)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def decode_entry(value: str) -> tuple[Completion, list[str] | None]:
    """The reply a stored JSON entry holds, marked ``cached``; ``ValueError`` for anything else."""
    doc = json.loads(value)
    if not isinstance(doc, dict) or doc.get("v") != ENTRY_VERSION:
        raise ValueError("not a reply entry of this version")
    text, chunks, usage = doc["text"], doc.get("chunks"), doc["usage"]
    if not isinstance(text, str) or not isinstance(usage, dict):
        raise ValueError("malformed reply entry")
    if chunks is not None and (not isinstance(chunks, list) or "".join(chunks) != text):
        raise ValueError("malformed stream entry")
    finish = doc["finish_reason"]
    if finish is not None and finish not in _FINISH:
        raise ValueError(f"unknown finish reason {finish!r}")
    counts = {name: usage.get(name, 0) for name in _USAGE_FIELDS}
    if not all(type(n) is int and n >= 0 for n in counts.values()):
        raise ValueError("malformed usage")
    completion = Completion(
        text=text,
        model=_opt_str(doc["model"]),
        usage=Usage(**counts),
        finish_reason=finish,
        provider=_opt_str(doc.get("provider")),
        reasoning=_opt_str(doc.get("reasoning")),
        cached=True,
    )
    return completion, chunks


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _cacheable(completion: Completion) -> bool:
    return completion.finish_reason != "error"


# -- streams that say they were cached --------------------------------------------------------------
class _CachedStream(Stream):
    """A stream replayed from the cache: its completion says so."""

    @property
    def completion(self) -> Completion:
        return replace(super().completion, cached=True)


class _CachedAsyncStream(AsyncStream):
    @property
    def completion(self) -> Completion:
        return replace(super().completion, cached=True)


def _replay(completion: Completion, deltas: list[str] | None) -> list[Chunk]:
    pieces = deltas if deltas is not None else [completion.text]
    chunks = [Chunk(text=piece) for piece in pieces if piece]
    chunks.append(final_chunk(completion))
    return chunks


# -- the wrapper ------------------------------------------------------------------------------------
class CachedBackend(WrapperBackend):
    """A backend that answers a request it has seen from ``cache`` and sends only the others.

    The key is :attr:`Request.digest`, so a changed message, parameter, model or sample index is
    a new entry, and no secret reaches the store. A hit sends nothing and its
    :class:`~promptkit.Completion` has ``cached=True`` (``raw`` is ``None``, ``attempts`` 1); a
    stream hit replays the stored deltas as a stream. ``complete`` and ``stream`` share entries.
    Errors, replies with ``finish_reason="error"``, streams that broke or were closed early and
    cancelled calls are never stored. In async code a lookup runs inline (a read of a few
    microseconds) and a store runs in a worker thread (it may wait for another writer).
    Closing the wrapper closes ``inner``, not the cache: a cache may serve several wrappers.

    >>> from promptkit.testing import MockBackend
    >>> llm = CachedBackend(MockBackend(["Hello there"]), cache=MemoryCache())
    >>> "".join(llm.stream("Hi")), "".join(s := llm.stream("Hi")), s.completion.cached
    ('Hello there', 'Hello there', True)
    """

    def __init__(self, inner: Backend, *, cache: ResponseCache | None = None) -> None:
        super().__init__(inner)
        if cache is None:
            cache = MemoryCache()
        elif not isinstance(cache, ResponseCache):
            raise ConfigurationError(f"cache= must have get(key) and set(key, value), not {type(cache).__name__}")
        self.cache = cache
        self._counts = [0, 0, 0]
        self._lock = threading.Lock()
        self._warn = _WarnOnce()

    @property
    def stats(self) -> CacheStats:
        """Hits, misses and stores so far."""
        with self._lock:
            return CacheStats(*self._counts)

    def _count(self, which: int) -> None:
        with self._lock:
            self._counts[which] += 1

    def _lookup(self, request: Request) -> tuple[Completion, list[str] | None] | None:
        value = self.cache.get(request.digest)
        if value is not None:
            try:
                found = decode_entry(value)
            except (ValueError, KeyError, TypeError) as err:
                self._warn(f"an entry of {self.cache!r} cannot be read", err)
            else:
                self._count(0)
                return found
        self._count(1)
        return None

    def _store(self, key: str, completion: Completion, deltas: Sequence[str] | None = None) -> None:
        if _cacheable(completion):
            self.cache.set(key, encode_entry(completion, deltas))
            self._count(2)

    async def _astore(self, key: str, completion: Completion, deltas: Sequence[str] | None = None) -> None:
        import asyncio

        await asyncio.to_thread(self._store, key, completion, deltas)

    def complete_request(self, request: Request) -> Completion:
        found = self._lookup(request)
        if found is not None:
            return found[0]
        completion = self.inner.complete_request(request)
        self._store(request.digest, completion)
        return completion

    async def acomplete_request(self, request: Request) -> Completion:
        found = self._lookup(request)
        if found is not None:
            return found[0]
        completion = await self.inner.acomplete_request(request)
        await self._astore(request.digest, completion)
        return completion

    def stream_request(self, request: Request) -> Stream:
        found = self._lookup(request)
        if found is not None:
            return _CachedStream(iter(_replay(*found)), backend=self.name)
        return Stream(self._relay(request), backend=self.name)

    def astream_request(self, request: Request) -> AsyncStream:
        found = self._lookup(request)
        if found is not None:
            return _CachedAsyncStream(_aiter(_replay(*found)), backend=self.name)
        return AsyncStream(self._arelay(request), backend=self.name)

    def _relay(self, request: Request) -> Iterator[Chunk]:
        deltas: list[str] = []
        with self.inner.stream_request(request) as stream:
            for delta in stream:
                deltas.append(delta)
                yield Chunk(text=delta)
            completion = stream.completion  # raises unless the stream ended normally
        self._store(request.digest, completion, deltas)
        yield final_chunk(completion)

    async def _arelay(self, request: Request) -> AsyncIterator[Chunk]:
        deltas: list[str] = []
        async with self.inner.astream_request(request) as stream:
            async for delta in stream:
                deltas.append(delta)
                yield Chunk(text=delta)
            completion = stream.completion
        await self._astore(request.digest, completion, deltas)
        yield final_chunk(completion)

    def __repr__(self) -> str:
        return f"<CachedBackend {self.cache!r} over {self.inner!r}>"


async def _aiter(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk
