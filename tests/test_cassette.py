"""Cassettes: record a test's replies at the backend boundary and replay them offline."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptkit import (
    CassetteMissError,
    Completion,
    ConfigurationError,
    GuardError,
    Message,
    RealBackendBlockedError,
    Usage,
)
from promptkit.backends import allow_real_requests, check_real_request
from promptkit.backends.openai import OpenAIBackend
from promptkit.testing import (
    Cassette,
    CassetteBackend,
    FunctionBackend,
    MockBackend,
    MockReply,
    ProviderServer,
)

SECRET = "sk-test-cassette-secret-0123456789"


def _record(path: Path, *replies: Any, **mock: Any) -> Cassette:
    cassette = Cassette(path, mode="record")
    cassette.wrap(MockBackend(list(replies), **mock))
    return cassette


def test_complete_replays_without_the_inner_backend(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    reply = Completion(text="Paris", model="m-1", usage=Usage(input_tokens=7, output_tokens=1, cached_input_tokens=3))
    with Cassette(path, mode="record") as cassette:
        recorded = cassette.wrap(MockBackend([reply])).complete("Capital of France?", temperature=0)
    assert recorded == reply
    inner = MockBackend()  # empty: any call would raise ScriptExhaustedError
    replayed = Cassette(path).wrap(inner).complete("Capital of France?", temperature=0)
    assert replayed == reply
    assert replayed.usage.cached_input_tokens == 3
    assert inner.calls == []


def test_streams_replay_as_their_chunks_sync_and_async(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with Cassette(path, mode="record") as cassette:
        llm = cassette.wrap(
            MockBackend([MockReply(chunks=["Bon", "jo", "ur"], usage=Usage(input_tokens=2, output_tokens=1))])
        )
        with llm.stream("hi") as stream:
            assert list(stream) == ["Bon", "jo", "ur"]

        async def arecord() -> list[str]:
            inner = MockBackend([MockReply(chunks=["a", "sync"], finish_reason="length")])
            return [d async for d in cassette.wrap(inner).astream("async hi")]

        assert asyncio.run(arecord()) == ["a", "sync"]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    chunks = sorted(e["replies"][0]["stream"]["chunks"] for e in doc["requests"].values())
    assert chunks == [["Bon", "jo", "ur"], ["a", "sync"]]

    replay = Cassette(path).wrap(MockBackend())
    stream = replay.stream("hi")
    assert list(stream) == ["Bon", "jo", "ur"]
    assert stream.completion.usage == Usage(input_tokens=2, output_tokens=1)
    assert stream.completion.finish_reason == "stop"

    async def areplay() -> tuple[list[str], Completion]:
        astream = replay.astream("async hi")
        deltas = [d async for d in astream]
        return deltas, astream.completion

    deltas, completion = asyncio.run(areplay())
    assert deltas == ["a", "sync"]
    assert completion.finish_reason == "length"


def test_async_complete_records_and_replays(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"

    async def run(cassette: Cassette, inner: MockBackend) -> str:
        return (await cassette.wrap(inner).acomplete("q")).text

    with Cassette(path, mode="record") as cassette:
        assert asyncio.run(run(cassette, MockBackend(["answer"]))) == "answer"
    assert asyncio.run(run(Cassette(path), MockBackend())) == "answer"


def test_identical_requests_replay_in_recorded_order(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    with Cassette(path, mode="record") as cassette:
        llm = cassette.wrap(MockBackend(["one", "two", "three"]))
        assert [llm.complete("again").text for _ in range(3)] == ["one", "two", "three"]
    replay = Cassette(path).wrap(MockBackend())
    assert [replay.complete("again").text for _ in range(3)] == ["one", "two", "three"]
    with pytest.raises(
        CassetteMissError, match="holds 3 complete replies for this request and the test asked once more"
    ):
        replay.complete("again")


def test_samples_are_separate_requests(tmp_path: Path) -> None:
    path = tmp_path / "samples.yaml"
    inner = MockBackend(["A", "B"])
    with Cassette(path, mode="record") as cassette:
        llm = cassette.wrap(inner)
        base = llm.build_request("vote", {"temperature": 1})
        texts = [llm.complete_request(dataclasses.replace(base, sample=i)).text for i in (0, 1)]
    assert texts == ["A", "B"]
    assert llm.max_choices == 1  # never draws several choices at once: each sample is recorded
    replay = Cassette(path).wrap(MockBackend())
    assert replay.complete_request(dataclasses.replace(base, sample=1)).text == "B"
    assert replay.complete_request(dataclasses.replace(base, sample=0)).text == "A"


def test_a_changed_prompt_fails_with_a_diff_against_the_nearest(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    with Cassette(path, mode="record") as cassette:
        llm = cassette.wrap(MockBackend(["Paris", "Rome"]))
        llm.complete([("system", "Answer in one word."), ("user", "Capital of France?")])
        llm.complete([("system", "Answer in one word."), ("user", "Capital of Italy?")], max_tokens=5)
    replay = Cassette(path).wrap(MockBackend())
    with pytest.raises(CassetteMissError) as info:
        replay.complete([("system", "Answer in one word."), ("user", "Capital of Spain?")], max_tokens=5)
    message = str(info.value)
    assert "Unmatched request:" in message
    assert "-  text: Capital of Italy?" in message
    assert "+  text: Capital of Spain?" in message
    assert "--promptkit-record" in message
    error = info.value
    assert isinstance(error, GuardError)
    assert error.cassette == str(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert error.nearest in doc["requests"]
    assert error.digest not in doc["requests"]


def test_a_stream_is_not_replayed_for_a_complete(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    with Cassette(path, mode="record") as cassette:
        list(cassette.wrap(MockBackend(["streamed"])).stream("x"))
    with pytest.raises(CassetteMissError, match="complete request"):
        Cassette(path).wrap(MockBackend()).complete("x")


def test_replay_without_a_file_says_how_to_record(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "missing.yaml")
    with pytest.raises(CassetteMissError, match=r"no cassette at .*missing\.yaml.*--promptkit-record"):
        cassette.wrap(MockBackend()).complete("x")
    assert not cassette.save()
    assert not (tmp_path / "missing.yaml").exists()


def test_no_secret_reaches_the_cassette(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    with Cassette(path, mode="record") as cassette:
        llm = cassette.wrap(MockBackend(["ok"]))
        llm.complete(
            "hello",
            timeout=30,
            extra={
                "api_key": SECRET,
                "extra_headers": {"Authorization": f"Bearer {SECRET}", "X-Trace": "t-1"},
                "user": SECRET,
                "logprobs": True,
            },
        )
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text
    assert SECRET[3:] not in text
    assert "Bearer" not in text
    assert "logprobs: true" in text  # what changes the answer is kept
    assert "timeout" not in text
    # the request replays: the digest left the secrets out too
    assert (
        Cassette(path).wrap(MockBackend()).complete("hello", extra={"api_key": "other", "logprobs": True}).text == "ok"
    )


def test_cassettes_are_stable_and_sorted(tmp_path: Path) -> None:
    path = tmp_path / "stable.yaml"

    def record() -> bool:
        with Cassette(path, mode="record") as cassette:
            llm = cassette.wrap(MockBackend(["b reply\nsecond line", "a reply"]))
            llm.complete("b question", temperature=0.5)
            llm.complete("a question")
        return cassette.save()

    record()
    first = path.read_text(encoding="utf-8")
    mtime = path.stat().st_mtime_ns
    assert not record()  # the same replies: the file is left untouched
    assert path.read_text(encoding="utf-8") == first
    assert path.stat().st_mtime_ns == mtime
    assert first.startswith("# promptkit cassette")
    assert "|-\n" in first  # multi-line text stays readable
    assert "      second line" in first
    digests = list(yaml.safe_load(first)["requests"])
    assert digests == sorted(digests)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_record_mode_re_records_and_once_records_only_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    with Cassette(path, mode="record") as cassette:
        cassette.wrap(MockBackend(["old"])).complete("q1")
    with Cassette(path, mode="once") as cassette:
        inner = MockBackend(["new q2"])
        llm = cassette.wrap(inner)
        assert llm.complete("q1").text == "old"  # replayed
        assert llm.complete("q2").text == "new q2"  # recorded
        assert len(inner.calls) == 1
    assert len(Cassette(path)) == 2
    with Cassette(path, mode="record") as cassette:
        assert cassette.wrap(MockBackend(["fresh"])).complete("q1").text == "fresh"
    replay = Cassette(path)
    assert len(replay) == 1
    assert replay.wrap(MockBackend()).complete("q1").text == "fresh"


def test_errors_are_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    from promptkit.testing import server_error

    with Cassette(path, mode="record") as cassette:
        llm = cassette.wrap(MockBackend([server_error(503), "ok"]))
        with pytest.raises(Exception, match="server error 503"):
            llm.complete("x")
        assert llm.complete("x").text == "ok"
    assert len(Cassette(path)) == 1


def test_an_abandoned_stream_is_not_recorded(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "cut.yaml", mode="record")
    with cassette.wrap(MockBackend(["one two three"])).stream("x") as stream:
        next(iter(stream))
    assert len(cassette) == 0
    assert not cassette.save()


def _real_backend(seen: list[str]) -> FunctionBackend:
    """A stand-in for a real provider: it asks the real-request gate, as the SDK backends do."""

    def call(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
        check_real_request("openai:gpt-4o", "https://api.openai.com/v1")
        seen.append(messages[-1].text)
        return "real reply"

    return FunctionBackend(call)


def test_recording_lets_only_its_own_calls_through_the_gate(tmp_path: Path) -> None:
    seen: list[str] = []
    cassette = Cassette(tmp_path / "gate.yaml", mode="record")
    with allow_real_requests(False):
        assert cassette.wrap(_real_backend(seen)).complete("recorded").text == "real reply"
        assert list(cassette.wrap(_real_backend(seen)).stream("streamed")) == ["real reply"]
        with pytest.raises(RealBackendBlockedError):
            _real_backend(seen).complete("not through the cassette")
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                check_real_request("openai:gpt-4o", "https://api.openai.com/v1")
            except RealBackendBlockedError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(timeout=60)
        assert len(errors) == 1  # still blocked for everyone else
    assert seen == ["recorded", "streamed"]


def test_replay_never_reaches_the_gate(tmp_path: Path) -> None:
    path = tmp_path / "offline.yaml"
    with Cassette(path, mode="record") as cassette:
        cassette.wrap(_real_backend([])).complete("hi")
    seen: list[str] = []
    with allow_real_requests(False):
        assert Cassette(path).wrap(_real_backend(seen)).complete("hi").text == "real reply"
    assert seen == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("just: text\n", "not a promptkit cassette"),
        ("promptkit_cassette: 1\nrequests: [1]\n", "must map request digests"),
        ("promptkit_cassette: 1\nrequests:\n  abc: {request: {}, replies: []}\n", "non-empty 'replies'"),
        ("promptkit_cassette: 1\nrequests:\n  abc: {request: {}, replies: [{other: {}}]}\n", "complete: ...}"),
        ("promptkit_cassette: 1\nrequests:\n  abc: {request: {}, replies: [{stream: {chunks: [1]}}]}\n", "strings"),
        (
            "promptkit_cassette: 1\nrequests:\n  abc: {request: {}, replies: [{complete: {text: x, usage: {n: 1}}}]}\n",
            "usage",
        ),
        ("promptkit_cassette: [\n", "cannot read"),
    ],
)
def test_a_broken_cassette_is_named(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=problem):
        Cassette(path)


def test_bad_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="replay, record, once"):
        Cassette(tmp_path / "x.yaml", mode="sometimes")  # type: ignore[arg-type]


def test_repr_and_wrapper(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "x.yaml")
    llm = cassette.wrap(MockBackend())
    assert isinstance(llm, CassetteBackend)
    assert llm.name == "mock"
    assert "mode=replay" in repr(cassette)
    assert "mode=replay" in repr(llm)


def test_the_real_sdk_backend_through_the_provider_server(tmp_path: Path) -> None:
    path = tmp_path / "sdk.yaml"
    with ProviderServer(["Bonjour tout le monde"]) as server:
        url = server.openai_base_url
        with (
            Cassette(path, mode="record") as cassette,
            cassette.wrap(OpenAIBackend(model="gpt-4o-mini", base_url=server.openai_base_url, api_key=SECRET)) as llm,
        ):
            deltas = list(llm.stream("Say hello in French", max_tokens=8))
        assert "".join(deltas) == "Bonjour tout le monde"
        assert len(deltas) > 1
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text
    with OpenAIBackend(model="gpt-4o-mini", base_url=url) as offline:  # no key, server gone
        stream = Cassette(path).wrap(offline).stream("Say hello in French", max_tokens=8)
        assert list(stream) == deltas
        assert stream.completion.provider == "openai-compatible"  # as recorded


USER_TESTS = """
import asyncio
import os

from promptkit.backends.openai import OpenAIBackend

PROMPT = "Say hello in French"
SECRET = os.environ["CASSETTE_TEST_SECRET"]


def backend():
    # the key comes from the environment only when recording; replay needs none
    return OpenAIBackend(
        model="gpt-4o-mini", base_url=os.environ["CASSETTE_TEST_URL"], api_key=os.environ.get("CASSETTE_TEST_KEY")
    )


def test_hello(promptkit_cassette):
    with promptkit_cassette.wrap(backend()) as llm:
        reply = llm.complete(PROMPT, temperature=0, extra={"user": "tester", "session_token": SECRET})
    assert reply.text == "Bonjour"


def test_stream(promptkit_cassette):
    with promptkit_cassette.wrap(backend()) as llm:
        stream = llm.stream("Count to three")
        deltas = list(stream)
    assert "".join(deltas) == "un deux trois" and len(deltas) > 1
    assert stream.completion.finish_reason == "stop"


def test_astream(promptkit_cassette):
    async def main():
        async with promptkit_cassette.wrap(backend()) as llm:
            return [d async for d in llm.astream("Count to two")]

    assert "".join(asyncio.run(main())) == "un deux"
"""


def test_record_then_replay_in_a_user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    monkeypatch.setenv("CASSETTE_TEST_SECRET", "sk-extra-" + SECRET)
    cassettes = pytester.path / "cassettes" / "test_user"

    # 1. record against the local provider server standing in for the real provider
    with ProviderServer(["Bonjour", "un deux trois", "un deux"]) as server:
        monkeypatch.setenv("CASSETTE_TEST_URL", server.openai_base_url)
        monkeypatch.setenv("CASSETTE_TEST_KEY", SECRET)
        pytester.runpytest("-p", "no:cacheprovider", "--promptkit-record").assert_outcomes(passed=3)
        assert len(server.requests) == 3
        url = server.openai_base_url
    assert sorted(p.name for p in cassettes.iterdir()) == ["test_astream.yaml", "test_hello.yaml", "test_stream.yaml"]
    for path in cassettes.iterdir():
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text, path.name
        assert "sk-extra" not in text, path.name
        assert "session_token" not in text, path.name
    recorded = {p.name: p.read_text(encoding="utf-8") for p in cassettes.iterdir()}
    assert "user: tester" in recorded["test_hello.yaml"]

    # 2. replay offline: the server is gone and there is no key
    monkeypatch.setenv("CASSETTE_TEST_URL", url)
    monkeypatch.delenv("CASSETTE_TEST_KEY")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)
    assert {p.name: p.read_text(encoding="utf-8") for p in cassettes.iterdir()} == recorded  # replay writes nothing

    # 3. a changed prompt fails with the unmatched request and a diff against the recorded one
    pytester.makepyfile(test_user=USER_TESTS.replace('"Say hello in French"', '"Say hello in Spanish"'))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteMissError: no reply recorded in *test_hello.yaml for this complete request*",
            "*-  text: Say hello in French",
            "*+  text: Say hello in Spanish",
        ]
    )
    assert "Say hello in French" in result.stdout.str()


def test_marker_sets_the_path_and_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest
        from promptkit.testing import MockBackend

        @pytest.mark.promptkit_cassette(path="tapes/shared.yaml", mode="once")
        def test_once(promptkit_cassette):
            assert promptkit_cassette.wrap(MockBackend(["recorded"])).complete("x").text == "recorded"

        @pytest.mark.promptkit_cassette(path="tapes/shared.yaml")
        def test_replays(promptkit_cassette):
            assert promptkit_cassette.wrap(MockBackend()).complete("x").text == "recorded"

        @pytest.mark.parametrize("n", ["a/b"])
        def test_param(promptkit_cassette, n):
            assert promptkit_cassette.path.name == "test_param-a-b.yaml"
            assert promptkit_cassette.path.parent.name == "test_marked"

        class TestGroup:
            def test_method(self, promptkit_cassette):
                assert promptkit_cassette.path.name == "TestGroup.test_method.yaml"

        @pytest.mark.promptkit_cassette(mode="replay", when="always")
        def test_bad_marker(promptkit_cassette):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*takes path= and mode=, not when*"])
    assert (pytester.path / "tapes" / "shared.yaml").exists()


def test_record_missing_keeps_what_is_recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_more="""
        from promptkit.testing import MockBackend

        def test_two(promptkit_cassette):
            llm = promptkit_cassette.wrap(MockBackend(["first", "second"]))
            assert llm.complete("one").text == "first"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--promptkit-record").assert_outcomes(passed=1)
    pytester.makepyfile(
        test_more="""
        from promptkit.testing import MockBackend

        def test_two(promptkit_cassette):
            llm = promptkit_cassette.wrap(MockBackend(["new"]))
            assert llm.complete("one").text == "first"  # replayed
            assert llm.complete("two").text == "new"  # recorded
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)
    pytester.runpytest("-p", "no:cacheprovider", "--promptkit-record-missing").assert_outcomes(passed=1)
    assert len(Cassette(pytester.path / "cassettes" / "test_more" / "test_two.yaml")) == 2
