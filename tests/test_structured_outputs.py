"""Constrained decoding on OpenAI-compatible servers: what each parser asks for, the request body
each server dialect gets (recorded by the local provider server), and replies still validated."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from promptkit import (
    ChainOfThought,
    ChoiceParser,
    ConstrainedParser,
    JsonParser,
    ParseError,
    Prompt,
    PydanticParser,
    RegexParser,
)
from promptkit._errors import ConfigurationError, UnsupportedParameterError
from promptkit.backends import COMMON_PARAMS, backend
from promptkit.backends._openai_wire import constraint_fields
from promptkit.backends._retry import RetryPolicy
from promptkit.testing import MockBackend
from promptkit.testing._server import ProviderServer

pytest.importorskip("aiohttp")
from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

FAST = RetryPolicy(max_attempts=2, backoff=0.01, max_backoff=0.05, deadline=30.0)


class City(BaseModel):
    name: str
    population: int


CITY_SCHEMA = City.model_json_schema()


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def _local(server: ProviderServer, dialect: str | None) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        model="m",
        base_url=server.openai_base_url,
        retry=FAST,
        constrained_decoding=dialect,  # type: ignore[arg-type]
    )


def _built(spec: str) -> OpenAICompatibleBackend:
    llm = backend(spec, retry=FAST)
    assert isinstance(llm, OpenAICompatibleBackend)
    return llm


# -- what parsers describe ---------------------------------------------------------------------------
def test_parsers_describe_their_constraint() -> None:
    assert ChoiceParser(["positive", "negative"]).constraint() == {"choice": ["positive", "negative"]}
    assert RegexParser(r"Score: (?P<score>\d+)/10").constraint() == {"regex": r"Score: (\d+)/10"}
    assert PydanticParser(City).constraint() == {"json": CITY_SCHEMA}
    for parser in (ChoiceParser(["a", "b"]), RegexParser(r"(?P<x>a)"), PydanticParser(City)):
        assert isinstance(parser, ConstrainedParser)
    assert not isinstance(JsonParser(), ConstrainedParser)


def test_enum_choices_are_their_labels() -> None:
    import enum

    class Mood(enum.Enum):
        HAPPY = "happy"
        SAD = "sad"

    assert ChoiceParser(Mood).constraint() == {"choice": ["happy", "sad"]}


def test_a_regex_without_a_portable_form_sends_no_constraint() -> None:
    assert RegexParser(r"(?P<x>a+)", flags=re.IGNORECASE).constraint() is None
    assert RegexParser(r"(?i)(?P<x>a+)").constraint() is None
    assert RegexParser(r"(?P<q>['\"])(?P<x>\w+)(?P=q)").constraint() is None
    assert RegexParser(r"(?P<q>a)b\1").constraint() is None
    # an escaped parenthesis stays as it is; only real named groups are made plain
    assert RegexParser(r"\(?P<x>a\)(?P<y>b)").constraint() == {"regex": r"\(?P<x>a\)(b)"}


# -- the request bodies, per dialect -------------------------------------------------------------------
BODIES: dict[str, dict[str, Any]] = {
    "vllm": {
        "choice": {"structured_outputs": {"choice": ["positive", "negative"]}},
        "regex": {"structured_outputs": {"regex": r"Score: (\d+)/10"}},
        "json": {"structured_outputs": {"json": CITY_SCHEMA}},
    },
    "vllm-guided": {
        "choice": {"guided_choice": ["positive", "negative"]},
        "regex": {"guided_regex": r"Score: (\d+)/10"},
        "json": {"guided_json": CITY_SCHEMA},
    },
    "sglang": {
        "choice": {"regex": "(?:positive|negative)"},
        "regex": {"regex": r"Score: (\d+)/10"},
        "json": {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": CITY_SCHEMA}}},
    },
}
CASES: dict[str, tuple[Any, str, Any]] = {
    "choice": (ChoiceParser(["positive", "negative"]), "negative", "negative"),
    "regex": (RegexParser(r"Score: (?P<score>\d+)/10"), "Score: 7/10", {"score": "7"}),
    "json": (PydanticParser(City), '{"name": "Oslo", "population": 709000}', City(name="Oslo", population=709000)),
}
_STANDARD = {"model", "messages", "stream", "stream_options"}


@pytest.mark.parametrize("dialect", sorted(BODIES))
@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_parser_asks_each_dialect_for_its_constraint(server: ProviderServer, dialect: str, kind: str) -> None:
    parser, reply, value = CASES[kind]
    server.add(reply)
    with _local(server, dialect) as llm:
        result = Prompt("Answer.", parser=parser, backend=llm).run()
    assert result.value == value
    body = server.requests[0].body
    assert {k: v for k, v in body.items() if k not in _STANDARD} == BODIES[dialect][kind]


@pytest.mark.parametrize("dialect", sorted(BODIES))
def test_streams_and_async_calls_carry_the_constraint(server: ProviderServer, dialect: str) -> None:
    import asyncio

    server.add("positive", "negative")
    parser = ChoiceParser(["positive", "negative"])
    with _local(server, dialect) as llm:
        prompt = Prompt("Answer.", parser=parser, backend=llm)
        stream = prompt.stream()
        for _ in stream:
            pass
        assert stream.result.value == "positive"
        assert asyncio.run(prompt.arun()).value == "negative"
    for request in server.requests:
        assert BODIES[dialect]["choice"].items() <= request.body.items()
    assert server.requests[0].stream


def test_the_factory_rows_default_to_their_engine(server: ProviderServer) -> None:
    assert backend("vllm:m").constrained_decoding == "vllm"  # type: ignore[attr-defined]
    assert backend("sglang:m").constrained_decoding == "sglang"  # type: ignore[attr-defined]
    assert backend("llama.cpp:m").constrained_decoding is None  # type: ignore[attr-defined]
    old = backend("vllm:m", constrained_decoding="vllm-guided")
    assert old.constrained_decoding == "vllm-guided"  # type: ignore[attr-defined]
    off = backend("vllm:m", constrained_decoding=None)
    assert "constraint" not in off.supported_params
    server.add("Score: 3/10")
    with _built(f"vllm:m@{server.openai_base_url}") as llm:
        assert Prompt("Rate.", parser=RegexParser(r"Score: (?P<s>\d+)/10"), backend=llm).run().value == {"s": "3"}
    assert server.requests[0].body["structured_outputs"] == {"regex": r"Score: (\d+)/10"}


def test_no_constraint_is_sent_unless_the_backend_opts_in(server: ProviderServer) -> None:
    server.add("positive", "positive", "positive")
    parser = ChoiceParser(["positive", "negative"])
    with _local(server, None) as llm:
        assert "constraint" not in llm.supported_params
        Prompt("Answer.", parser=parser, backend=llm).run()
    with _built(f"llama.cpp:m@{server.openai_base_url}") as llm:
        Prompt("Answer.", parser=parser, backend=llm).run()
    with OpenAIBackend(model="m", base_url=server.openai_base_url, api_key="sk-test") as sdk:
        Prompt("Answer.", parser=parser, backend=sdk).run()
    for request in server.requests:
        assert set(request.body) <= _STANDARD | {"max_tokens", "max_completion_tokens"}


def test_backends_without_constrained_decoding_refuse_the_parameter() -> None:
    assert "constraint" not in COMMON_PARAMS
    with pytest.raises(UnsupportedParameterError, match="constraint"):
        MockBackend(["x"]).complete("hi", constraint={"choice": ["a", "b"]})
    with pytest.raises(UnsupportedParameterError, match="constraint"):
        OpenAIBackend(model="m", api_key="sk-test").build_request("hi", {"constraint": {"regex": "a"}})
    # a parser with a constraint still works on such a backend: nothing is sent, the reply is parsed
    assert Prompt("Answer.", parser=ChoiceParser(["a", "b"]), backend=MockBackend(["b"])).run().value == "b"


def test_a_direct_call_takes_a_constraint(server: ProviderServer) -> None:
    server.add("b")
    with _local(server, "vllm") as llm:
        assert llm.complete("hi", constraint={"grammar": 'root ::= "a" | "b"'}).text == "b"
        preview = llm.preview_request(llm.build_request("hi", {"constraint": {"grammar": "root ::= x"}}))
    assert server.requests[0].body["structured_outputs"] == {"grammar": 'root ::= "a" | "b"'}
    assert preview.body["structured_outputs"] == {"grammar": "root ::= x"}
    assert constraint_fields({"grammar": "g"}, "vllm-guided") == {"guided_grammar": "g"}
    assert constraint_fields({"grammar": "g"}, "sglang") == {"ebnf": "g"}


@pytest.mark.parametrize(
    "bad",
    [
        "a|b",
        {},
        {"choice": ["a"], "regex": "a"},
        {"enum": ["a"]},
        {"choice": "ab"},
        {"choice": []},
        {"choice": ["a", ""]},
        {"regex": ""},
        {"grammar": 3},
        {"json": "schema"},
    ],
)
def test_a_malformed_constraint_is_named(server: ProviderServer, bad: Any) -> None:
    with _local(server, "vllm") as llm, pytest.raises(ConfigurationError, match="constraint"):
        llm.build_request("hi", {"constraint": bad})
    assert not server.requests


def test_constraint_and_output_schema_exclude_each_other(server: ProviderServer) -> None:
    schema = {"name": "City", "schema": CITY_SCHEMA}
    with _local(server, "vllm") as llm, pytest.raises(ConfigurationError, match="not both"):
        llm.build_request("hi", {"constraint": {"regex": "a"}, "output_schema": schema})


def test_an_unknown_dialect_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="constrained_decoding"):
        OpenAICompatibleBackend(model="m", base_url="http://127.0.0.1:1/v1", constrained_decoding="tgi")  # type: ignore[arg-type]


def test_native_output_wins_over_the_constraint(server: ProviderServer) -> None:
    server.add('{"name": "Oslo", "population": 1}')
    with _local(server, "vllm") as llm:
        Prompt("City?", parser=PydanticParser(City, mode="native"), backend=llm).run()
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert "structured_outputs" not in body


# -- never trusted ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", sorted(BODIES))
def test_a_server_that_ignores_the_constraint_is_still_validated(server: ProviderServer, dialect: str) -> None:
    """An old server drops fields it does not know: its free text is a ParseError, then a repair."""
    server.add("I think it is mostly fine", "neutral, perhaps")
    parser = ChoiceParser(["positive", "negative"])
    with _local(server, dialect) as llm:
        with pytest.raises(ParseError) as info:
            Prompt("Answer.", parser=parser, backend=llm, repair=1).run()
    assert len(info.value.attempts) == 2
    for request in server.requests:  # the repair asks under the same constraint
        assert BODIES[dialect]["choice"].items() <= request.body.items()


def test_a_reply_outside_the_schema_is_repaired(server: ProviderServer) -> None:
    server.add('{"name": "Oslo"}', '{"name": "Oslo", "population": 709000}')
    with _local(server, "vllm") as llm:
        result = Prompt("City?", parser=PydanticParser(City), backend=llm, repair=1).run()
    assert result.value == City(name="Oslo", population=709000)
    assert [r.body["structured_outputs"] for r in server.requests] == [{"json": CITY_SCHEMA}] * 2


def test_chain_of_thought_reasons_without_the_constraint(server: ProviderServer) -> None:
    """A constrained reply cannot hold reasoning: the reasoning call goes out unconstrained."""
    server.add("Mostly good things are said.", "positive")
    parser = ChoiceParser(["positive", "negative"])
    with _local(server, "vllm") as llm:
        result = Prompt("Answer.", parser=parser, backend=llm, strategy=ChainOfThought()).run()
    assert result.value == "positive"
    first, second = (r.body for r in server.requests)
    assert "structured_outputs" not in first
    assert second["structured_outputs"] == {"choice": ["positive", "negative"]}


def test_the_constraint_is_part_of_the_request_digest() -> None:
    llm = OpenAICompatibleBackend(model="m", base_url="http://127.0.0.1:1/v1", constrained_decoding="vllm")
    plain = llm.build_request("hi")
    a = llm.build_request("hi", {"constraint": {"choice": ["a", "b"]}})
    b = llm.build_request("hi", {"constraint": {"choice": ("a", "b")}})
    c = llm.build_request("hi", {"constraint": {"choice": ["a", "c"]}})
    assert a.digest == b.digest
    assert len({plain.digest, a.digest, c.digest}) == 3


def test_a_function_backend_that_lists_constraint_receives_it() -> None:
    """The test double for a constrained server: the constraint arrives in ``params``."""
    from promptkit.testing import FunctionBackend

    seen: list[Any] = []

    def reply(messages: Any, params: Any) -> str:
        seen.append(params.get("constraint"))
        return "b"

    llm = FunctionBackend(reply, supported_params=["constraint"])
    assert Prompt("Pick.", parser=ChoiceParser(["a", "b"]), backend=llm).run().value == "b"
    assert seen == [{"choice": ("a", "b")}]


# -- checking the server's version ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "dialect", "wanted"),
    [
        ("0.12.0", "vllm", None),
        ("0.13.1rc2+cu128", "vllm", None),
        ("1.0.0", "vllm", None),
        ("0.11.2", "vllm-guided", None),
        ("0.11.2", "vllm", "vllm-guided"),
        ("0.6.6.post1", "vllm", "vllm-guided"),
        ("0.12.0", "vllm-guided", "vllm"),
    ],
)
def test_the_vllm_version_is_checked_against_the_dialect(version: str, dialect: str, wanted: str | None) -> None:
    with ProviderServer(version=version) as server, _local(server, dialect) as llm:
        if wanted is None:
            assert llm.check_constrained_decoding() == version
        else:
            with pytest.raises(ConfigurationError, match=f"constrained_decoding='{wanted}'"):
                llm.check_constrained_decoding()
    assert not server.requests  # only the GET, which is not a scripted reply


def test_a_server_without_a_version_is_not_trusted(server: ProviderServer) -> None:
    with _local(server, "vllm") as llm, pytest.raises(ConfigurationError, match="no vLLM version"):
        llm.check_constrained_decoding()
    with _local(server, "sglang") as llm:
        assert llm.check_constrained_decoding() is None
    with _local(server, None) as llm:
        assert llm.check_constrained_decoding() is None


def test_an_unreachable_server_is_a_connection_error() -> None:
    from promptkit._errors import BackendConnectionError

    with ProviderServer() as dead:
        url = dead.openai_base_url
    llm = OpenAICompatibleBackend(model="m", base_url=url, constrained_decoding="vllm", connect_timeout=5)
    with llm, pytest.raises(BackendConnectionError):
        llm.check_constrained_decoding()
