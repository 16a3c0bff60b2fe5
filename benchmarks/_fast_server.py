"""A fast chat-completions server for throughput benchmarks: aiohttp, keep-alive, fixed reply.

Run: ``python benchmarks/_fast_server.py [--latency 0.05] [--port 0]``; prints its root URL on the
first line. ``POST /v1/chat/completions`` answers a valid OpenAI chat completion (or, when the
body asks for ``"stream": true``, its server-sent events) after ``--latency`` seconds. Unlike
:class:`promptkit.testing.ProviderServer` (the standard library's threaded server, a few hundred
calls per second), it serves thousands of calls per second from one process, so that a client's
throughput at 64 calls in flight is bounded by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

from aiohttp import web

REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
).encode()

_BASE = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench-model"}
EVENTS = (
    b"".join(
        b"data: " + json.dumps({**_BASE, **event}).encode() + b"\n\n"
        for event in (
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}},
        )
    )
    + b"data: [DONE]\n\n"
)
HEADERS = {"x-request-id": "req_bench"}


def make_app(latency: float) -> web.Application:
    async def chat(request: web.Request) -> web.Response:
        body = await request.read()
        if latency > 0:
            await asyncio.sleep(latency)
        if b'"stream":true' in body.replace(b" ", b""):
            return web.Response(body=EVENTS, content_type="text/event-stream", headers=HEADERS)
        return web.Response(body=REPLY, content_type="application/json", headers=HEADERS)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(latency: float, port: int) -> None:
    runner = web.AppRunner(make_app(latency), access_log=None, keepalive_timeout=75)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each reply")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.latency, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
