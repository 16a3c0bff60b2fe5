"""The provider server's files and batches endpoints, read by the real openai and anthropic SDKs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from promptkit.testing import BatchScript, ProviderServer, RecordedRequest, ServerReply

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


def echo(request: RecordedRequest) -> str:
    return "re: " + request.body["messages"][-1]["content"]


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(rule=echo) as s:
        yield s


@pytest.fixture
def oai(server: ProviderServer) -> Iterator[Any]:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def claude(server: ProviderServer) -> Iterator[Any]:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    yield client
    client.close()


def jsonl(n: int, *, model: str = "m", start: int = 0) -> bytes:
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"q{i}"}]},
        }
        for i in range(start, start + n)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def claude_requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"c{i}",
            "params": {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": f"q{i}"}]},
        }
        for i in range(n)
    ]


def create_openai(oai: Any, data: bytes) -> Any:
    uploaded = oai.files.create(file=("in.jsonl", data), purpose="batch")
    return oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")


def lines_of(oai: Any, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in oai.files.content(file_id).read().splitlines()]


# -- OpenAI ---------------------------------------------------------------------------------------
def test_openai_files_upload_and_read_back(oai: Any) -> None:
    data = jsonl(2)
    uploaded = oai.files.create(file=("in.jsonl", data), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes, uploaded.filename) == ("batch", len(data), "in.jsonl")
    assert oai.files.retrieve(uploaded.id).id == uploaded.id
    assert oai.files.content(uploaded.id).read() == data
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve("file-nope")


def test_openai_batch_stays_in_progress_for_its_polls_then_completes(server: ProviderServer, oai: Any) -> None:
    server.batches.script(BatchScript(polls=2))
    batch = create_openai(oai, jsonl(3))
    assert batch.status == "validating"
    assert [oai.batches.retrieve(batch.id).status for _ in range(3)] == ["in_progress", "in_progress", "completed"]
    done = oai.batches.retrieve(batch.id)
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    assert done.error_file_id is None
    out = lines_of(oai, done.output_file_id)
    assert [line["custom_id"] for line in out] == ["c0", "c1", "c2"]
    first = out[0]
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "re: q0"
    assert first["response"]["body"]["usage"]["completion_tokens"] == 2
    items = [r for r in server.requests if r.batch == batch.id]
    assert [r.path for r in items] == ["/v1/chat/completions"] * 3


def test_openai_failed_items_go_to_the_error_file(server: ProviderServer, oai: Any) -> None:
    server.add("fine", ServerReply.error(429, message="slow down"), "fine too")
    done = oai.batches.retrieve(create_openai(oai, jsonl(3)).id)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    errors = lines_of(oai, done.error_file_id)
    assert errors[0]["custom_id"] == "c1"
    assert errors[0]["response"]["status_code"] == 429
    assert errors[0]["response"]["body"]["error"]["message"] == "slow down"
    assert [line["custom_id"] for line in lines_of(oai, done.output_file_id)] == ["c0", "c2"]


def test_openai_expired_batch_lists_the_items_it_never_ran(server: ProviderServer, oai: Any) -> None:
    server.batches.script(BatchScript(expire=True, processed=1))
    done = oai.batches.retrieve(create_openai(oai, jsonl(3)).id)
    assert done.status == "expired"
    assert done.expired_at is not None
    errors = lines_of(oai, done.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("c1", "batch_expired"), ("c2", "batch_expired")]
    assert errors[0]["response"] is None


def test_openai_cancel(server: ProviderServer, oai: Any) -> None:
    server.batches.script(BatchScript(polls=10))
    batch = create_openai(oai, jsonl(2))
    assert oai.batches.cancel(batch.id).status == "cancelling"
    done = oai.batches.retrieve(batch.id)
    assert done.status == "cancelled"
    assert {e["error"]["code"] for e in lines_of(oai, done.error_file_id)} == {"batch_cancelled"}
    assert not [r for r in server.requests if r.batch == batch.id]  # nothing ran


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (jsonl(1) + b"\n" + jsonl(1, model="other", start=1), "mismatched_model"),
        (jsonl(1) + b"\n" + jsonl(1), "duplicate_custom_id"),
        (b"{not json", "invalid_json_line"),
        (b"", "empty_file"),
    ],
)
def test_openai_refuses_a_file_that_breaks_the_rules(oai: Any, data: bytes, code: str) -> None:
    batch = create_openai(oai, data)
    assert batch.status == "failed"
    assert batch.errors.data[0].code == code


def test_openai_limits_can_be_lowered(server: ProviderServer, oai: Any) -> None:
    server.batches.openai_max_requests = 2
    assert create_openai(oai, jsonl(3)).errors.data[0].code == "too_many_requests"
    server.batches.openai_max_bytes = 10
    assert create_openai(oai, jsonl(1)).errors.data[0].code == "file_too_large"


def test_openai_batch_needs_a_batch_file(oai: Any) -> None:
    uploaded = oai.files.create(file=("in.jsonl", jsonl(1)), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve("batch_nope")


# -- Anthropic ------------------------------------------------------------------------------------
def test_anthropic_batch_polls_then_streams_its_results(server: ProviderServer, claude: Any) -> None:
    server.batches.script(BatchScript(polls=1))
    batch = claude.messages.batches.create(requests=claude_requests(3))
    assert (batch.processing_status, batch.request_counts.processing) == ("in_progress", 3)
    assert claude.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    ended = claude.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 3
    assert ended.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
    results = list(claude.messages.batches.results(batch.id))
    assert [(r.custom_id, r.result.type) for r in results] == [
        ("c0", "succeeded"),
        ("c1", "succeeded"),
        ("c2", "succeeded"),
    ]
    assert results[0].result.message.content[0].text == "re: q0"
    assert results[0].result.message.usage.output_tokens == 2


def test_anthropic_results_of_every_kind(server: ProviderServer, claude: Any) -> None:
    server.add("fine", ServerReply.error(529, message="busy"))
    server.batches.script(BatchScript(expire=True, processed=2))
    batch = claude.messages.batches.create(requests=claude_requests(3))
    results = {r.custom_id: r.result for r in claude.messages.batches.results(batch.id)}
    assert results["c0"].type == "succeeded"
    assert results["c1"].type == "errored"
    assert (results["c1"].error.error.type, results["c1"].error.error.message) == ("overloaded_error", "busy")
    assert results["c2"].type == "expired"
    counts = claude.messages.batches.retrieve(batch.id).request_counts
    assert (counts.succeeded, counts.errored, counts.expired) == (1, 1, 1)


def test_anthropic_cancel(server: ProviderServer, claude: Any) -> None:
    server.batches.script(BatchScript(polls=5, processed=1))
    batch = claude.messages.batches.create(requests=claude_requests(2))
    assert claude.messages.batches.cancel(batch.id).processing_status == "canceling"
    results = [r.result.type for r in claude.messages.batches.results(batch.id)]
    assert results == ["succeeded", "canceled"]


def test_anthropic_refuses_bad_batches(server: ProviderServer, claude: Any) -> None:
    bad_id = claude_requests(1)
    bad_id[0]["custom_id"] = "has spaces"
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        claude.messages.batches.create(requests=bad_id)
    with pytest.raises(anthropic.BadRequestError, match="used twice"):
        claude.messages.batches.create(requests=claude_requests(1) * 2)
    server.batches.anthropic_max_requests = 1
    with pytest.raises(anthropic.BadRequestError, match="at most 1"):
        claude.messages.batches.create(requests=claude_requests(2))
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve("msgbatch_nope")


def test_endpoint_calls_are_recorded_without_using_the_script(server: ProviderServer, claude: Any) -> None:
    server.add("scripted")
    claude.messages.batches.create(requests=claude_requests(1))
    assert server.pending == 1  # creating the batch took no scripted reply
    assert [r.path for r in server.requests] == ["/v1/messages/batches"]
    headers = server.requests[0].headers
    assert "***" in (headers.get("x-api-key"), headers.get("authorization"))  # the key is masked


def test_ten_thousand_items_end_without_waiting(server: ProviderServer, claude: Any) -> None:
    batch = claude.messages.batches.create(requests=claude_requests(10_000))
    results = list(claude.messages.batches.results(batch.id))
    assert len(results) == 10_000
    assert results[-1].result.message.content[0].text == "re: q9999"
