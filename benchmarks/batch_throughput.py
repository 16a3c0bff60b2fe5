"""Many concurrent calls: calls per second at ``C`` in flight against a server with fixed latency.

Run: ``python benchmarks/batch_throughput.py [--quick] [--latency 0.05] [--concurrency 64]
[--calls N] [--rounds R] [--memory-calls M]``

The server (``benchmarks/_fast_server.py``, aiohttp) runs in its own process and answers every
chat completion after ``--latency`` seconds, so the ideal is ``C / latency`` calls per second
(1,280 at 64 in flight and 50 ms) and anything below it is client CPU. Each case sends ``N``
calls as tasks gathered under a ``Semaphore(C)``, as a batch does; rounds are interleaved and each
case reports its best round (on a shared machine, load only ever slows a round down), with the
client process's CPU time per call in that round. Cases: plain aiohttp and httpx clients (the
floors), raw ``AsyncOpenAI`` on both of its transports (the peer), ``Prompt.acomplete`` over
``OpenAIBackend``, and the same over ``OpenAICompatibleBackend``, which speaks the wire format
without the SDK. Then a cProfile of the promptkit paths grouped by where the CPU goes, and the
resident memory growth of one run of ``M`` calls (10,000 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _suite import Row

MESSAGES = [{"role": "user", "content": "Classify the sentiment of: I loved it"}]
TEMPLATE = "Classify the sentiment of: {{ text }}"
KEY = "sk-bench-0000000000000000"
MODEL = "bench-model"

Call = Callable[[int], Awaitable[object]]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    script = Path(__file__).with_name("_fast_server.py")
    proc = subprocess.Popen([sys.executable, str(script), "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"server did not start: {url!r}")
    return proc, url


async def run_batch(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """Calls per second and client CPU seconds per call for ``calls`` gathered under a semaphore."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> object:
        async with gate:
            return await call(i)

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    wall = time.perf_counter() - start
    return calls / wall, (time.process_time() - cpu) / calls


class Cases:
    """The clients under test, built on the running loop and closed together."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.concurrency = concurrency
        self.calls: dict[str, Call] = {}
        self.closers: list[Callable[[], Awaitable[object]]] = []
        self.prompts: dict[str, Any] = {}

    def build(self, *, with_batch: bool) -> None:
        self._plain_clients()
        self._sdk_clients()
        self._promptkit(with_batch=with_batch)

    def _plain_clients(self) -> None:
        import aiohttp
        import httpx2

        url, c = self.url, self.concurrency
        endpoint = url + "/v1/chat/completions"
        body = json.dumps({"model": MODEL, "messages": MESSAGES})
        headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c))
        self.closers.append(session.close)

        async def plain_aiohttp(i: int) -> object:
            async with session.post(endpoint, data=body, headers=headers) as r:
                return json.loads(await r.read())["choices"][0]["message"]["content"]

        self.calls["aiohttp POST + json (ceiling)"] = plain_aiohttp

        h2 = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=c, max_keepalive_connections=c))
        self.closers.append(h2.aclose)

        async def plain_httpx2(i: int) -> object:
            r = await h2.post(endpoint, content=body, headers=headers)
            return json.loads(r.content)["choices"][0]["message"]["content"]

        self.calls["httpx2.AsyncClient POST + json"] = plain_httpx2
        try:
            import httpx
        except ImportError:
            pass
        else:
            h1 = httpx.AsyncClient(limits=httpx.Limits(max_connections=c, max_keepalive_connections=c))
            self.closers.append(h1.aclose)

            async def plain_httpx(i: int) -> object:
                r = await h1.post(endpoint, content=body, headers=headers)
                return json.loads(r.content)["choices"][0]["message"]["content"]

            self.calls["httpx.AsyncClient POST + json"] = plain_httpx

    def _sdk_clients(self) -> None:
        import openai

        url = self.url
        for label, http in (("httpx", None), ("aiohttp", openai.DefaultAioHttpClient())):
            kwargs: dict[str, Any] = {"http_client": http} if http is not None else {}
            raw = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, **kwargs)
            self.closers.append(raw.close)

            def sdk_call(client: Any) -> Call:
                async def call(i: int) -> object:
                    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                    return reply.choices[0].message.content

                return call

            self.calls[f"raw AsyncOpenAI ({label})"] = sdk_call(raw)

    def _promptkit(self, *, with_batch: bool) -> None:
        from promptkit import Prompt
        from promptkit.backends.openai import OpenAIBackend

        url = self.url
        backends: dict[str, Any] = {
            "OpenAIBackend (aiohttp)": OpenAIBackend(model=MODEL, base_url=url + "/v1", api_key=KEY),
        }
        try:
            from promptkit.backends.openai import OpenAICompatibleBackend
        except ImportError:
            pass
        else:
            backends["OpenAICompatibleBackend (aiohttp)"] = OpenAICompatibleBackend(
                model=MODEL, base_url=url + "/v1", api_key=KEY
            )
            backends["OpenAICompatibleBackend (httpx2)"] = OpenAICompatibleBackend(
                model=MODEL, base_url=url + "/v1", api_key=KEY, async_http="httpx"
            )
        for label, llm in backends.items():
            self.closers.append(llm.aclose)
            prompt = Prompt(TEMPLATE, llm)
            self.prompts[label] = prompt

            def prompt_call(p: Any) -> Call:
                async def call(i: int) -> object:
                    return await p.acomplete(text=f"review {i}")

                return call

            self.calls[f"Prompt.acomplete / {label}"] = prompt_call(prompt)

        if with_batch:
            for label, prompt in list(self.prompts.items()):
                if hasattr(prompt, "abatch"):
                    self.calls[f"Prompt.abatch / {label}"] = self._batch_marker(prompt)

    def _batch_marker(self, prompt: Any) -> Call:
        async def call(i: int) -> object:  # replaced by a whole-batch run in measure_round
            raise NotImplementedError

        call.prompt = prompt  # type: ignore[attr-defined]
        return call

    async def close(self) -> None:
        for close in self.closers:
            await close()


async def measure_case(name: str, call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    prompt = getattr(call, "prompt", None)
    if prompt is None:
        return await run_batch(call, calls, concurrency)
    inputs = [{"text": f"review {i}"} for i in range(calls)]
    cpu = time.process_time()
    start = time.perf_counter()
    await prompt.abatch(inputs, max_concurrency=concurrency)
    wall = time.perf_counter() - start
    return calls / wall, (time.process_time() - cpu) / calls


async def bench(url: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    cases = Cases(url, args.concurrency)
    cases.build(with_batch=True)
    try:
        for name, call in cases.calls.items():  # warm up: connections, lazy imports, clients
            await measure_case(name, call, args.concurrency * 2, args.concurrency)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases.calls}
        for _ in range(args.rounds):
            for name, call in cases.calls.items():
                samples[name].append(await measure_case(name, call, args.calls, args.concurrency))
    finally:
        await cases.close()
    if getattr(args, "statistic", "best") == "median":  # the round of median rate, with its CPU
        return {name: sorted(values)[(len(values) - 1) // 2] for name, values in samples.items()}
    return {name: max(values) for name, values in samples.items()}


def run(quick: bool) -> list[Row]:
    """The suite's rows: seconds per call (1 / calls per second) with 64 calls in flight."""
    args = argparse.Namespace(
        latency=0.05, concurrency=64, calls=256 if quick else 2048, rounds=2 if quick else 5, statistic="median"
    )
    proc, url = start_server(args.latency)
    try:
        results = asyncio.run(bench(url, args))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    per_call = {name: 1 / rate for name, (rate, _cpu) in results.items()}
    ideal = args.latency / args.concurrency
    size = f"{args.concurrency} in flight, {args.latency * 1000:g} ms latency, {args.calls} calls"
    note = (
        f"seconds per call = 1 / calls per second (ideal {ideal * 1e3:.2f} ms: {1 / ideal:,.0f} calls/s); "
        "median of interleaved rounds"
    )
    rows = []
    for case, floor, floor_name in (
        ("Prompt.acomplete / OpenAIBackend (aiohttp)", "raw AsyncOpenAI (aiohttp)", "openai SDK AsyncOpenAI (aiohttp)"),
        (
            "Prompt.acomplete / OpenAICompatibleBackend (aiohttp)",
            "aiohttp POST + json (ceiling)",
            "aiohttp POST + json",
        ),
        ("Prompt.abatch / OpenAICompatibleBackend (aiohttp)", "aiohttp POST + json (ceiling)", "aiohttp POST + json"),
    ):
        if case in per_call:
            rows.append(Row(case + ", concurrent", size, per_call[case], per_call[floor], floor_name, note=note))
    return rows


# -- where the CPU goes ------------------------------------------------------------------------------
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("render (jinja2, promptkit templates)", ("/jinja2/", "/markupsafe/", "/promptkit/_templates/")),
    ("parse (promptkit parsers)", ("/promptkit/_parsers/",)),
    ("Prompt, strategy, result (promptkit)", ("/promptkit/_prompt", "/promptkit/_strategies/", "/promptkit/_r")),
    ("backend: request, retry, Completion (promptkit)", ("/promptkit/", "/tenacity/")),
    (
        "SDK request building (openai transform, headers, options)",
        ("/openai/_utils/", "/openai/_qs", "/openai/resources/"),
    ),
    ("SDK client send loop (openai _base_client)", ("/openai/_base_client",)),
    ("SDK response models (openai _models/_response, pydantic)", ("/openai/", "/pydantic", "typing")),
    (
        "transport: httpx2/httpcore2",
        ("/httpx2/", "/httpcore2/", "/httpx/", "/httpcore/", "/h11", "/anyio/", "/sniffio"),
    ),
    ("transport: aiohttp, yarl, multidict", ("/aiohttp", "/yarl/", "/multidict/", "/propcache/")),
    ("event loop, sockets (asyncio)", ("/asyncio/", "selectors", "socket", "<built-in method select", "epoll")),
    ("json", ("/json/", "jiter")),
)


def _phase(filename: str, funcname: str) -> str:
    where = f"{filename}:{funcname}"
    for phase, needles in PHASES:
        if any(n in where for n in needles):
            return phase
    return "other (stdlib, builtins)"


async def profiled(call: Call, calls: int, concurrency: int) -> dict[str, float]:
    profile = cProfile.Profile()
    profile.enable()
    await run_batch(call, calls, concurrency)
    profile.disable()
    stats = pstats.Stats(profile)
    shares: dict[str, float] = {}
    for (filename, _line, funcname), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "of 'select." in funcname:
            continue  # the event loop waiting for the server: idle, not CPU
        phase = _phase(filename, funcname)
        shares[phase] = shares.get(phase, 0.0) + tottime
    return shares


async def profile_paths(url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    cases = Cases(url, args.concurrency)
    cases.build(with_batch=False)
    out = {}
    try:
        for name, call in cases.calls.items():
            if (name.startswith("Prompt.acomplete") and "httpx2" not in name) or name == "raw AsyncOpenAI (aiohttp)":
                await run_batch(call, args.concurrency * 2, args.concurrency)
                out[name] = await profiled(call, args.profile_calls, args.concurrency)
    finally:
        await cases.close()
    return out


# -- memory ------------------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


async def memory_child(url: str, name: str, args: argparse.Namespace) -> dict[str, float]:
    """One case in a fresh process: RSS and peak RSS growth over ``args.memory_calls`` calls."""
    cases = Cases(url, args.concurrency)
    cases.build(with_batch=True)
    try:
        call = cases.calls[name]
        await measure_case(name, call, args.concurrency * 2, args.concurrency)  # clients, imports
        before, peak_before = rss_bytes(), peak_rss_bytes()
        rate, _ = await measure_case(name, call, args.memory_calls, args.concurrency)
        return {
            "rss": (rss_bytes() - before) / 2**20,
            "peak": (peak_rss_bytes() - peak_before) / 2**20,
            "rate": rate,
        }
    finally:
        await cases.close()


def memory_growth(url: str, names: list[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        command = [sys.executable, __file__, "--memory-child", name, "--url", url]
        command += ["--memory-calls", str(args.memory_calls), "--concurrency", str(args.concurrency)]
        run = subprocess.run(command, capture_output=True, text=True, check=True)
        out[name] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def report_speed(results: dict[str, tuple[float, float]], args: argparse.Namespace, load: float) -> None:
    ideal = args.concurrency / args.latency
    peer_name = max((n for n in results if n.startswith("raw AsyncOpenAI")), key=lambda n: results[n][0])
    peer = results[peer_name][0]
    print(
        f"\n{args.concurrency} calls in flight, {args.latency * 1000:g} ms server latency "
        f"(ideal {ideal:,.0f} calls/s); best of {args.rounds} interleaved rounds x {args.calls} calls; "
        f"load average at start {load:.2f}"
    )
    print(f"{'case':52} {'calls/s':>8} {'x ideal':>8} {'x raw SDK':>10} {'CPU us/call':>12}")
    for name, (rate, cpu) in results.items():
        print(f"{name:52} {rate:8.0f} {rate / ideal:8.2f} {rate / peer:10.2f} {cpu * 1e6:12.0f}")
    print(f"(x raw SDK: against the faster raw AsyncOpenAI, {peer_name}: {peer:.0f} calls/s)")
    floor_cpu = results["aiohttp POST + json (ceiling)"][1]
    print(f"Client CPU per call above the plain aiohttp POST ({floor_cpu * 1e6:.0f} us):")
    for name, (_, cpu) in results.items():
        if name.startswith(("raw AsyncOpenAI", "Prompt.")):
            print(f"  {name}: {(cpu - floor_cpu) * 1e6:+.0f} us ({(cpu - floor_cpu) / cpu:.0%} of its CPU)")
    target = 0.9 * min(ideal, peer)
    for name, (rate, _) in results.items():
        if name.startswith("Prompt."):
            verdict = "meets" if rate >= target else "below"
            print(f"  {name}: {rate:.0f} calls/s {verdict} 90% of min(ideal, raw SDK) = {target:.0f}")


def report_profile(shares: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(
        f"\nWhere the client's CPU goes: cProfile self time of {args.profile_calls} calls, the event loop's "
        "idle wait left out; per call under the profiler (which inflates small functions), and in %"
    )
    names = list(shares)
    phases = [p for p, _ in PHASES] + ["other (stdlib, builtins)"]
    short = [
        n.replace("Prompt.acomplete / ", "").replace("raw AsyncOpenAI", "raw SDK").replace("Backend", "") for n in names
    ]
    print(f"{'phase':60}" + "".join(f"{s[:26]:>28}" for s in short))
    for phase in phases:
        cells = []
        for n in names:
            value = shares[n].get(phase, 0.0)
            cells.append(f"{value / args.profile_calls * 1e6:9.0f} us {100 * value / sum(shares[n].values()):5.1f}%")
        print(f"{phase:60}" + "".join(f"{c:>28}" for c in cells))
    totals = [f"{sum(shares[n].values()) / args.profile_calls * 1e6:9.0f} us {100.0:5.1f}%" for n in names]
    print(f"{'total':60}" + "".join(f"{c:>28}" for c in totals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds, fewer rounds, smaller memory run")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--calls", type=int, default=None, help="calls per round and case (default 2048)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--memory-calls", type=int, default=None, help="calls in the memory run (default 10000)")
    parser.add_argument("--profile-calls", type=int, default=None, help="calls per profiled run (default 2048)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)  # internal: one memory run
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.calls = args.calls or (512 if args.quick else 2048)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.memory_calls = args.memory_calls or (2000 if args.quick else 10_000)
    args.profile_calls = args.profile_calls or (512 if args.quick else 2048)
    if args.memory_child:
        print(json.dumps(asyncio.run(memory_child(args.url, args.memory_child, args))))
        return

    proc, url = start_server(args.latency)
    try:
        load = os.getloadavg()
        results = asyncio.run(bench(url, args))
        report_speed(results, args, load[0])
        shares = asyncio.run(profile_paths(url, args))
        report_profile(shares, args)

        memory = memory_growth(url, [n for n in results if n.startswith("Prompt.")], args)
        print(
            f"\nMemory growth over one run of {args.memory_calls:,} calls, each case in a fresh process "
            "after a warm-up (limit 200 MB)"
        )
        print(f"{'case':52} {'RSS':>9} {'peak RSS':>9} {'calls/s':>8}")
        for name, m in memory.items():
            print(f"{name:52} {m['rss']:6.1f} MB {m['peak']:6.1f} MB {m['rate']:8.0f}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
