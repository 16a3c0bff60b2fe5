"""The local provider server: wire formats checked by the real SDKs, recording, scripts, faults."""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Iterator

import pytest

from promptkit.testing._server import ProviderServer, RecordedRequest, ServerReply, embedding_for, http_date

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

KEY = "sk-test-secret-0123456789"


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def _post(server: ProviderServer, path: str, body: object) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_binds_loopback_ephemeral_port_and_stops() -> None:
    server = ProviderServer(["hi"])
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.openai_base_url == server.url + "/v1"
        assert server.anthropic_base_url == server.url
        assert "requests=0" in repr(server)
    assert "stopped" in repr(server)
    with pytest.raises(RuntimeError):
        _ = server.url


def test_openai_sdk_parses_completion_and_usage(server: ProviderServer) -> None:
    server.add(ServerReply(text="Paris is the capital", finish_reason="length", input_tokens=7, output_tokens=4))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0)
    with client:
        reply = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "Capital?"}])
    assert reply.choices[0].message.content == "Paris is the capital"
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 4)
    assert reply.model == "gpt-x"


def test_openai_sdk_parses_stream_with_usage(server: ProviderServer) -> None:
    server.add(ServerReply(text="one two three", chunk_size=3))
    with openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as client:
        events = list(
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "count"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text == "one two three"
    assert [e.choices[0].finish_reason for e in events if e.choices][-1] == "stop"
    assert events[-1].usage is not None
    assert events[-1].usage.completion_tokens == 3


def test_anthropic_sdk_parses_message_and_stream(server: ProviderServer) -> None:
    server.add(ServerReply(text="Bonjour", finish_reason="length"), ServerReply(text="Hello world", chunk_size=5))
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=KEY, max_retries=0) as client:
        msg = client.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
        assert msg.content[0].text == "Bonjour"
        assert msg.stop_reason == "max_tokens"
        assert msg.usage.output_tokens == 1
        events = list(
            client.messages.create(
                model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        )
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hello world"
    assert next(e for e in events if e.type == "message_delta").delta.stop_reason == "end_turn"


def test_records_requests_without_secrets(server: ProviderServer) -> None:
    server.add("ok")
    with openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], temperature=0.5)
    [req] = server.requests
    assert isinstance(req, RecordedRequest)
    assert req.path == "/v1/chat/completions"
    assert req.provider == "openai"
    assert not req.stream
    assert req.body["temperature"] == 0.5
    assert req.headers["authorization"] == "***"
    assert KEY not in repr(req)


def test_embeddings_are_deterministic_float_and_base64(server: ProviderServer) -> None:
    server.default = "unused"
    with openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as client:
        b64 = client.embeddings.create(model="e", input=["alpha", "beta"])  # SDK asks for base64
        flt = client.embeddings.create(model="e", input="alpha", encoding_format="float", dimensions=5)
    assert [d.embedding for d in b64.data] == [embedding_for("alpha", 8), embedding_for("beta", 8)]
    assert flt.data[0].embedding == embedding_for("alpha", 5)
    assert math.isclose(sum(v * v for v in flt.data[0].embedding), 1.0, rel_tol=1e-5)
    assert b64.usage.prompt_tokens == 2
    assert server.requests[0].provider == "embeddings"


def test_error_status_with_retry_after_seconds_and_http_date(server: ProviderServer) -> None:
    server.add(ServerReply.error(429, retry_after=3), ServerReply.error(503, retry_after=http_date(30)))
    status, headers, body = _post(server, "/v1/chat/completions", {"model": "m", "messages": []})
    assert status == 429
    assert headers["retry-after"] == "3"
    assert json.loads(body)["error"]["type"] == "rate_limit_exceeded"
    status, headers, body = _post(server, "/v1/messages", {"model": "m", "messages": []})
    assert status == 503
    assert headers["retry-after"].endswith("GMT")
    assert json.loads(body)["type"] == "error"


def test_unknown_route_and_exhausted_script(server: ProviderServer) -> None:
    assert _post(server, "/v2/nothing", {})[0] == 404
    status, _, body = _post(server, "/v1/chat/completions", {"model": "m", "messages": []})
    assert status == 400
    assert b"exhausted" in body


def test_rule_answers_when_queue_is_empty(server: ProviderServer) -> None:
    server.rule = lambda req: f"echo {req.body['messages'][0]['content']}"
    with openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as client:
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "echo ping"
    assert server.pending == 0


def test_reset_before_reply_closes_the_connection(server: ProviderServer) -> None:
    server.add(ServerReply.reset(), "after")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        _post(server, "/v1/chat/completions", {"model": "m", "messages": []})
    assert _post(server, "/v1/chat/completions", {"model": "m", "messages": []})[0] == 200


def test_slow_first_byte_and_trickle(server: ProviderServer) -> None:
    server.add(ServerReply(text="x", delay=0.2), ServerReply(text="ab", trickle=0.001))
    start = time.monotonic()
    assert _post(server, "/v1/chat/completions", {"model": "m", "messages": []})[0] == 200
    assert time.monotonic() - start >= 0.2
    status, _, body = _post(server, "/v1/chat/completions", {"model": "m", "messages": []})
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "ab"


def test_stall_goes_quiet_mid_body_then_sends_the_rest(server: ProviderServer) -> None:
    server.add(ServerReply.stall(1.0, text="whole"), ServerReply.stall(1.0, after=2, text="whole stream"))
    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "messages": []}))
    resp = conn.getresponse()
    length = int(resp.getheader("content-length") or 0)
    first = resp.read(length // 2)  # the first half comes before the pause
    middle = time.monotonic()
    rest = resp.read()
    assert time.monotonic() - middle >= 0.5  # the pause sits between the halves
    assert json.loads(first + rest)["choices"][0]["message"]["content"] == "whole"
    conn.close()
    start = time.monotonic()
    _, _, stream = _post(server, "/v1/chat/completions", {"model": "m", "messages": [], "stream": True})
    assert time.monotonic() - start >= 0.9
    assert b"[DONE]" in stream  # nothing lost: only a pause


def test_stream_faults_on_the_wire(server: ProviderServer) -> None:
    server.add(
        ServerReply.cut(after=2),
        ServerReply.malformed_sse(after=1),
        ServerReply.stream_error(after=1, message="Overloaded"),
        ServerReply.json_for_stream(),
        ServerReply.html(),
    )
    stream_req = {"model": "m", "messages": [], "stream": True}
    _, _, cut = _post(server, "/v1/chat/completions", stream_req)
    assert b"[DONE]" not in cut
    assert cut.count(b"data:") == 2
    _, _, bad = _post(server, "/v1/chat/completions", stream_req)
    assert b"unterminated" in bad
    _, _, err = _post(server, "/v1/messages", stream_req)
    assert b"event: error" in err
    assert b"message_stop" not in err
    _, headers, _ = _post(server, "/v1/chat/completions", stream_req)
    assert headers["content-type"] == "application/json"
    status, headers, page = _post(server, "/v1/chat/completions", stream_req)
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<html>" in page
