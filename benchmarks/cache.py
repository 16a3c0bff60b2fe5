"""What a cache hit costs next to a round trip to a local server, and what the SQLite calls cost.

Run: ``python benchmarks/cache.py [--rounds R]``

The server (:class:`promptkit.testing.ProviderServer`) runs in its own process. The round trip is
``OpenAIBackend.complete`` against it: the cheapest call a real backend can make (loopback, no
model). A hit is ``CachedBackend(OpenAIBackend, cache=...).complete`` on a stored request: request
validation, the digest, the lookup and the decoding of the stored JSON. Targets: a memory hit under
5% of the round trip, a SQLite hit under 20%, measured in the same run. The second table times the
SQLite calls alone and an ``asyncio.to_thread`` hop, which is why async code looks up inline (a
read in WAL mode never waits for a writer) and stores in a worker thread (a write may wait for
another writer's lock, and it follows a model call that took far longer than the hop).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from _suite import Row
from _timing import measure
from backend_overhead import KEY, start_server

TARGETS = {"memory hit": 0.05, "sqlite hit": 0.20}


def run(quick: bool) -> list[Row]:
    """The suite's rows: a memory and a SQLite hit against the round trip they save."""
    from promptkit.backends import CachedBackend, MemoryCache, SQLiteCache
    from promptkit.backends.openai import OpenAIBackend

    proc, url = start_server()
    tmp = Path(tempfile.mkdtemp())
    try:
        plain = OpenAIBackend(model="gpt-test", base_url=url + "/v1", api_key=KEY)
        memory = CachedBackend(OpenAIBackend(model="gpt-test", base_url=url + "/v1", api_key=KEY), cache=MemoryCache())
        store = SQLiteCache(tmp / "bench.sqlite")
        sqlite = CachedBackend(OpenAIBackend(model="gpt-test", base_url=url + "/v1", api_key=KEY), cache=store)
        messages = [("system", "Answer in one word."), "Say ok"]
        for llm in (plain, memory, sqlite):
            llm.complete(messages, temperature=0, max_tokens=5)
        assert memory.complete(messages, temperature=0, max_tokens=5).cached
        assert sqlite.complete(messages, temperature=0, max_tokens=5).cached
        t = measure(
            {
                "round trip": lambda: plain.complete(messages, temperature=0, max_tokens=5),
                "memory hit": lambda: memory.complete(messages, temperature=0, max_tokens=5),
                "sqlite hit": lambda: sqlite.complete(messages, temperature=0, max_tokens=5),
            },
            rounds=5 if quick else 15,
            statistic="median",
        )
        for llm in (plain, memory, sqlite):
            llm.close()
        store.close()
    finally:
        proc.kill()
        proc.wait()
    floor_name = "OpenAIBackend round trip to a loopback server (what a hit saves)"
    return [
        Row("CachedBackend hit, MemoryCache", "2 messages", t["memory hit"], t["round trip"], floor_name),
        Row("CachedBackend hit, SQLiteCache (WAL)", "2 messages", t["sqlite hit"], t["round trip"], floor_name),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from promptkit.backends import CachedBackend, MemoryCache, SQLiteCache
    from promptkit.backends.openai import OpenAIBackend

    proc, url = start_server()
    tmp = Path(tempfile.mkdtemp())
    try:
        plain = OpenAIBackend(model="gpt-test", base_url=url + "/v1", api_key=KEY)
        memory = CachedBackend(OpenAIBackend(model="gpt-test", base_url=url + "/v1", api_key=KEY), cache=MemoryCache())
        store = SQLiteCache(tmp / "bench.sqlite")
        sqlite = CachedBackend(OpenAIBackend(model="gpt-test", base_url=url + "/v1", api_key=KEY), cache=store)
        messages = [("system", "Answer in one word."), "Say ok"]
        for llm in (plain, memory, sqlite):
            llm.complete(messages, temperature=0, max_tokens=5)  # warm: connections, and the stored entry
        assert memory.complete(messages, temperature=0, max_tokens=5).cached
        assert sqlite.complete(messages, temperature=0, max_tokens=5).cached

        times = measure(
            {
                "round trip": lambda: plain.complete(messages, temperature=0, max_tokens=5),
                "memory hit": lambda: memory.complete(messages, temperature=0, max_tokens=5),
                "sqlite hit": lambda: sqlite.complete(messages, temperature=0, max_tokens=5),
            },
            rounds=args.rounds,
        )
        base = times["round trip"]
        print(f"{'case':<14}{'per call':>12}{'of round trip':>16}{'target':>10}")
        failed = []
        for name, seconds in times.items():
            ratio = seconds / base
            target = TARGETS.get(name)
            mark = "" if target is None else f"< {target:.0%}"
            print(f"{name:<14}{seconds * 1e6:>10.1f}us{ratio:>15.1%}{mark:>10}")
            if target is not None and ratio >= target:
                failed.append(name)

        key = sqlite.build_request(messages, {"temperature": 0, "max_tokens": 5}).digest
        value = store.get(key)
        assert value is not None
        counter = iter(range(10**9))

        async def hop() -> None:
            await asyncio.to_thread(lambda: None)

        loop = asyncio.new_event_loop()
        ops = measure(
            {
                "sqlite get": lambda: store.get(key),
                "sqlite set (WAL commit)": lambda: store.set(f"k{next(counter)}", value),
                "asyncio.to_thread hop": lambda: loop.run_until_complete(hop()),
                "empty run_until_complete": lambda: loop.run_until_complete(asyncio.sleep(0)),
            },
            rounds=args.rounds,
        )
        loop.close()
        print()
        print(f"{'operation':<26}{'per call':>12}")
        for name, seconds in ops.items():
            print(f"{name:<26}{seconds * 1e6:>10.1f}us")
        for llm in (plain, memory, sqlite):
            llm.close()
        store.close()
        if failed:
            print(f"\nabove target: {', '.join(failed)}")
            sys.exit(1)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
