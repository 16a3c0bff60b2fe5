"""Per-call overhead of the real backends against the local provider server, and async throughput.

Run: ``python benchmarks/backend_overhead.py [--calls N] [--concurrency C] [--rounds R]``

The server (:class:`promptkit.testing.ProviderServer`) runs in a separate process so that it does
not share the client's GIL. Rounds are short and interleaved, and each case reports its best
round: on a shared machine, other processes only ever make a round slower. Sync: the time per
call of ``OpenAIBackend.complete`` against a raw ``openai.OpenAI().chat.completions.create``
(the peer), ``OpenAICompatibleBackend.complete`` (no SDK) and a bare ``httpx2`` POST plus JSON
parse (the floor). Async: calls per second with ``C`` calls in flight, for raw ``AsyncOpenAI`` on
its default httpx transport (the peer), raw ``AsyncOpenAI`` on the SDK's aiohttp client,
``OpenAIBackend.acomplete`` on both, ``OpenAICompatibleBackend.acomplete``, and plain aiohttp (the
floor). ``batch_throughput.py`` measures many concurrent calls against a server with latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from _suite import PeerTime, Row, installed
from _timing import measure, summarize

MESSAGES = [{"role": "user", "content": "Say ok"}]
KEY = "sk-bench-0000000000000000"


def start_server(reply: str = "ok") -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from promptkit.testing._server import main; main()", "0", reply],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"server did not start: {url!r}")
    return proc, url


def per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def bench_sync(url: str, calls: int, rounds: int, *, statistic: Literal["min", "median"] = "min") -> dict[str, float]:
    import anthropic
    import httpx2
    import openai

    from promptkit.backends.anthropic import AnthropicBackend
    from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

    raw = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    ours = OpenAIBackend(model="m", base_url=url + "/v1", api_key=KEY)
    lean = OpenAICompatibleBackend(model="m", base_url=url + "/v1", api_key=KEY)
    raw_a = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)
    ours_a = AnthropicBackend(model="m", base_url=url, api_key=KEY)
    http = httpx2.Client()
    body = json.dumps({"model": "m", "messages": MESSAGES})

    def floor() -> object:
        r = http.post(url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        return r.json()["choices"][0]["message"]["content"]

    cases: dict[str, Callable[[], object]] = {
        "httpx2 POST + json (floor)": floor,
        "raw openai.OpenAI": lambda: raw.chat.completions.create(model="m", messages=MESSAGES),
        "OpenAIBackend.complete": lambda: ours.complete("Say ok"),
        "OpenAICompatibleBackend.complete": lambda: lean.complete("Say ok"),
        "raw anthropic.Anthropic": lambda: raw_a.messages.create(model="m", max_tokens=16, messages=MESSAGES),
        "AnthropicBackend.complete": lambda: ours_a.complete("Say ok"),
    }
    for fn in cases.values():  # warm up connections and lazy imports
        per_call(fn, 50)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(per_call(fn, calls))
    for closer in (raw.close, ours.close, lean.close, raw_a.close, ours_a.close, http.close):
        closer()
    return {name: summarize(values, statistic) for name, values in samples.items()}


def typed_cases(url: str, loop: asyncio.AbstractEventLoop) -> tuple[dict[str, Callable[[], object]], list[Any]]:
    """A typed call against the server answering a fenced JSON verdict: by hand, promptkit, the peers.

    Every case goes through an ``openai`` SDK client to the same server and validates the same
    reply into the same model; promptkit, instructor (``MD_JSON``) and pydantic-ai
    (``PromptedOutput``) each add their own schema instructions to the request. Sync cases are
    ``sync:``, async ones (awaited one at a time on one loop) ``async:``.
    """
    import openai
    from prompt_call import SOURCE, Verdict

    from promptkit import Prompt, PydanticParser
    from promptkit.backends.openai import OpenAIBackend

    text = "Is this message spam?"
    message = "You won a prize! Click here before midnight to claim it."
    messages = [{"role": "user", "content": f"{text}\n\n{message}"}]
    raw = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    araw = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    backend = OpenAIBackend(model="m", base_url=url + "/v1", api_key=KEY, async_http="httpx")
    prompt = Prompt(SOURCE, backend, parser=PydanticParser(Verdict))
    closers: list[Any] = [raw.close, backend.close]

    def strip(content: str) -> str:
        return content.removeprefix("```json\n").removesuffix("\n```")

    def floor() -> object:
        reply = raw.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
        return Verdict.model_validate_json(strip(reply.choices[0].message.content or ""))

    async def afloor() -> object:
        reply = await araw.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
        return Verdict.model_validate_json(strip(reply.choices[0].message.content or ""))

    cases: dict[str, Callable[[], object]] = {
        "sync: floor": floor,
        "sync: promptkit": lambda: prompt.complete(message=message),
        "async: floor": lambda: loop.run_until_complete(afloor()),
        "async: promptkit": lambda: loop.run_until_complete(prompt.acomplete(message=message)),
    }
    if installed("instructor"):
        import instructor

        inst = instructor.from_openai(raw, mode=instructor.Mode.MD_JSON)
        ainst = instructor.from_openai(araw, mode=instructor.Mode.MD_JSON)
        cases["sync: instructor"] = lambda: inst.chat.completions.create(
            model="m", messages=messages, response_model=Verdict, max_retries=0
        )
        cases["async: instructor"] = lambda: loop.run_until_complete(
            ainst.chat.completions.create(model="m", messages=messages, response_model=Verdict, max_retries=0)
        )
    if installed("pydantic_ai"):
        from pydantic_ai import Agent, PromptedOutput
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        def agent(client: Any) -> Any:
            model = OpenAIChatModel("m", provider=OpenAIProvider(openai_client=client))
            return Agent(model, output_type=PromptedOutput(Verdict), retries=0)

        # run_sync drives its own event loop: its client's connections must not be shared with ``loop``
        sync_agent = agent(openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0))
        async_agent = agent(araw)
        cases["sync: pydantic-ai"] = lambda: sync_agent.run_sync(messages[0]["content"])
        cases["async: pydantic-ai"] = lambda: loop.run_until_complete(async_agent.run(messages[0]["content"]))
    for fn in cases.values():
        fn()  # every case parses the server's reply
    closers.append(lambda: loop.run_until_complete(araw.close()))
    return cases, closers


def run(quick: bool) -> list[Row]:
    """The suite's rows: one call through each backend, and a typed call through the peers."""
    from prompt_call import REPLY

    calls, rounds = (30, 5) if quick else (200, 15)
    proc, url = start_server()
    try:
        sync = bench_sync(url, calls, rounds, statistic="median")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    note = "sync, loopback server in another process, keep-alive"
    rows = [
        Row(
            "OpenAIBackend.complete",
            "1 short message",
            sync["OpenAIBackend.complete"],
            sync["raw openai.OpenAI"],
            "openai SDK",
            note=note,
        ),
        Row(
            "AnthropicBackend.complete",
            "1 short message",
            sync["AnthropicBackend.complete"],
            sync["raw anthropic.Anthropic"],
            "anthropic SDK",
            note=note,
        ),
        Row(
            "OpenAICompatibleBackend.complete (no SDK)",
            "1 short message",
            sync["OpenAICompatibleBackend.complete"],
            sync["httpx2 POST + json (floor)"],
            "httpx2 POST + json",
            note=note,
        ),
    ]
    proc, url = start_server(REPLY)
    loop = asyncio.new_event_loop()
    try:
        cases, closers = typed_cases(url, loop)
        t = measure(cases, rounds=rounds, budget=0.05 if quick else 0.2, statistic="median")
        for closer in closers:
            closer()
    finally:
        loop.close()
        proc.terminate()
        proc.wait(timeout=10)
    for how in ("sync", "async"):
        peers: dict[str, PeerTime] = {}
        for name, module in (("instructor", "instructor"), ("pydantic-ai", "pydantic_ai")):
            peers[name] = t.get(f"{how}: {name}") if installed(module) else None
        rows.append(
            Row(
                f"typed call over the openai SDK: Prompt.{'complete' if how == 'sync' else 'acomplete'}",
                "1 message, fenced JSON reply",
                t[f"{how}: promptkit"],
                t[f"{how}: floor"],
                "openai SDK + model_validate_json",
                peers,
                note="loopback server; instructor Mode.MD_JSON, pydantic-ai PromptedOutput on the same client"
                + ("; pydantic-ai run_sync" if how == "sync" else "; awaited one at a time"),
            )
        )
    return rows


async def throughput(make: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await make()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - start)


async def bench_async(url: str, calls: int, concurrency: int, rounds: int) -> dict[str, float]:
    import openai

    from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

    clients: list[Any] = []
    cases: dict[str, Callable[[], Awaitable[object]]] = {}
    try:
        import aiohttp
    except ImportError:
        aiohttp = None

    if aiohttp is not None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        body = json.dumps({"model": "m", "messages": MESSAGES})

        async def floor() -> object:
            async with session.post(
                url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
            ) as r:
                return (await r.json())["choices"][0]["message"]["content"]

        cases["plain aiohttp (floor)"] = floor

    raw = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    clients.append(raw)
    cases["raw AsyncOpenAI (httpx)"] = lambda: raw.chat.completions.create(model="m", messages=MESSAGES)
    ours_httpx = OpenAIBackend(model="m", base_url=url + "/v1", api_key=KEY, async_http="httpx")
    cases["OpenAIBackend.acomplete (httpx)"] = lambda: ours_httpx.acomplete("Say ok")
    if aiohttp is not None:
        raw_aio = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=KEY, max_retries=0, http_client=openai.DefaultAioHttpClient()
        )
        clients.append(raw_aio)
        cases["raw AsyncOpenAI (aiohttp)"] = lambda: raw_aio.chat.completions.create(model="m", messages=MESSAGES)
    ours_auto = OpenAIBackend(model="m", base_url=url + "/v1", api_key=KEY)
    label = "aiohttp" if ours_auto._use_aiohttp() else "httpx"
    cases[f"OpenAIBackend.acomplete (default: {label})"] = lambda: ours_auto.acomplete("Say ok")
    lean = OpenAICompatibleBackend(model="m", base_url=url + "/v1", api_key=KEY)
    cases[f"OpenAICompatibleBackend.acomplete ({label})"] = lambda: lean.acomplete("Say ok")

    for make in cases.values():
        await throughput(make, concurrency * 2, concurrency)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, make in cases.items():
            samples[name].append(await throughput(make, calls, concurrency))
    for client in clients:
        await client.close()
    await ours_httpx.aclose()
    await ours_auto.aclose()
    await lean.aclose()
    if aiohttp is not None:
        await session.close()
    return {name: max(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="sync calls per round and case")
    parser.add_argument("--async-calls", type=int, default=512, help="async calls per round and case")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    proc, url = start_server()
    try:
        sync = bench_sync(url, args.calls, args.rounds)
        peer = sync["raw openai.OpenAI"]
        print(f"\nSync per-call time, best of {args.rounds} interleaved rounds x {args.calls} calls")
        print(f"{'case':34} {'us/call':>9} {'vs raw openai':>14}")
        for name, value in sync.items():
            ref = sync["raw anthropic.Anthropic"] if "nthropic" in name else peer
            ref_name = "" if "nthropic" not in name else " (vs raw anthropic)"
            print(f"{name:34} {value * 1e6:9.1f} {value / ref:13.3f}x{ref_name}")

        results = asyncio.run(bench_async(url, args.async_calls, args.concurrency, args.rounds))
        peer_tp = results["raw AsyncOpenAI (httpx)"]
        print(
            f"\nAsync throughput, {args.concurrency} in flight, "
            f"best of {args.rounds} interleaved rounds x {args.async_calls} calls"
        )
        print(f"{'case':42} {'calls/s':>9} {'vs raw AsyncOpenAI':>19}")
        for name, value in results.items():
            print(f"{name:42} {value:9.0f} {value / peer_tp:18.2f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
