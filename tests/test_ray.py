"""Ray Data: PromptMapper on a local Ray (2 CPUs) against the provider server, and the LLM processor pair."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pydantic
import pytest
import ray
import ray.cloudpickle

import promptkit
from promptkit import (
    ChainOfThought,
    ChoiceParser,
    ConfigurationError,
    GuardError,
    ParseError,
    Price,
    Prompt,
    PromptMapper,
    PromptPostprocessor,
    PromptPreprocessor,
    PydanticParser,
    SelfConsistency,
    map_prompt,
)
from promptkit.backends import backend
from promptkit.testing import FunctionBackend, MockBackend, ProviderServer, RecordedRequest, ServerReply

# Ray's DataContext warns about its own defaults while it is built (a DeprecationWarning raised in
# ray.data.context itself, not by anything this module asks for).
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")

ROOT = Path(__file__).resolve().parent.parent
PRICE = Price(input=1.0, output=2.0)  # USD per million tokens, for the house model the server answers as
COLUMNS = ["value", "status", "error_type", "error", "input_tokens", "output_tokens", "cost", "latency"]


# -- the provider: even/odd, a reply that does not parse every 13th number, an HTTP 400 every 17th --------
def parity(request: RecordedRequest) -> ServerReply:
    text = request.body["messages"][-1]["content"]
    n = int(re.search(r"-?\d+", text).group())  # type: ignore[union-attr]
    if n % 17 == 5:
        return ServerReply.error(400, message=f"row {n} is refused")
    if n % 13 == 3:
        return ServerReply(text="banana", model="house-model")
    return ServerReply(text="even" if n % 2 == 0 else "odd", model="house-model")


def parity_prompt(url: str) -> Prompt[str]:
    promptkit.set_price("house-model", PRICE)  # a worker is another process: the price is set where it is used
    return Prompt(
        "Is {{ n }} even or odd?",
        backend(f"openai-compatible:house-model@{url}", api_key="sk-test"),
        parser=ChoiceParser(["even", "odd"]),
        repair=0,
    )


def counted(factory: Callable[[], Prompt[Any]], counter: Path) -> Callable[[], Prompt[Any]]:
    """``factory``, writing this process's id to ``counter`` each time it builds the prompt."""

    def build() -> Prompt[Any]:
        with counter.open("a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return factory()

    return build


def constructions(counter: Path) -> list[str]:
    return counter.read_text(encoding="utf-8").split()


def square_prompt() -> Prompt[str]:
    """No HTTP: a deterministic function backend, so that 10,000 rows stay quick on a loaded machine."""

    def reply(messages: Any, params: Any) -> str:
        n = int(messages[-1].text.split()[-1])
        return f"{n * n} is the square of {n}"

    return Prompt("Square of {{ n }}", FunctionBackend(reply, model="square"))


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer(rule=parity) as running:  # a thread of this process; the workers reach it on loopback
        yield running


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # the workers import promptkit from this checkout, and the test module's functions by value
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()
        promptkit.set_price("house-model", None)


@pytest.fixture
def house_price() -> Iterator[None]:
    promptkit.set_price("house-model", PRICE)
    yield
    promptkit.set_price("house-model", None)


# -- on local Ray -------------------------------------------------------------------------------------------
def test_ten_thousand_rows_give_the_values_of_prompt_batch(local_ray: None, tmp_path: Path) -> None:
    counter = tmp_path / "built"
    rows = [{"n": i} for i in range(10_000)]
    ds = map_prompt(
        ray.data.from_items(rows), counted(square_prompt, counter), workers=2, batch_size=1000, max_concurrency=4
    )
    out = ds.take_all()
    expected = square_prompt().batch(rows, progress=False)
    assert [row["value"] for row in out] == expected.values  # the whole list, in input order
    assert [row["n"] for row in out] == list(range(10_000))
    assert {row["status"] for row in out} == {"ok"}
    built = constructions(counter)
    assert 1 <= len(built) <= 2  # once per worker, not once per batch (10 batches)
    assert len(set(built)) == len(built)


def test_rows_against_the_provider_server_keep_errors_usage_and_cost(
    local_ray: None, server: ProviderServer, tmp_path: Path, house_price: None
) -> None:
    counter = tmp_path / "built"
    url = server.openai_base_url
    rows = [{"n": i, "note": f"row {i}"} for i in range(200)]
    before = len(server.requests)
    ds = ray.data.from_items(rows).map_batches(
        PromptMapper,
        fn_constructor_args=(counted(lambda: parity_prompt(url), counter),),
        fn_constructor_kwargs={"max_concurrency": 4},
        compute=ray.data.ActorPoolStrategy(size=2),
        batch_size=25,
        batch_format="pandas",
    )
    out = ds.take_all()
    assert len(server.requests) - before == 200  # one request per row: no batch was sent twice
    here = parity_prompt(url)
    assert here.backend is not None
    with here.backend:  # the driver's own client is closed here, not by the garbage collector later
        expected = here.batch([{"n": row["n"]} for row in rows], progress=False, max_concurrency=4)
    assert [r["n"] for r in out] == list(range(200))
    assert [r["note"] for r in out] == [f"row {i}" for i in range(200)]  # the other columns are kept
    assert [r["status"] for r in out] == [item.status for item in expected]
    assert [r["value"] for r in out] == [item.value if item.ok else None for item in expected]
    assert [r["error_type"] for r in out] == [type(item.error).__name__ if item.error else None for item in expected]
    assert [r["input_tokens"] for r in out] == [item.usage.input_tokens for item in expected]
    assert [r["output_tokens"] for r in out] == [item.usage.output_tokens for item in expected]
    assert [r["cost"] for r in out] == pytest.approx([item.cost for item in expected])
    failed = {r["n"]: r for r in out if r["status"] == "failed"}
    assert set(failed) == {n for n in range(200) if n % 17 == 5 or n % 13 == 3}
    assert failed[3]["error_type"] == "ParseError"
    assert failed[3]["value"] is None
    assert failed[5]["error_type"] == "BadRequestError"
    assert "row 5 is refused" in failed[5]["error"]
    assert failed[3]["cost"] > 0
    assert failed[5]["cost"] == 0
    assert all(r["latency"] > 0 for r in out)
    built = constructions(counter)
    assert 1 <= len(built) <= 2
    assert len(set(built)) == len(built)


def test_a_prompt_file_is_a_spec_the_workers_load(local_ray: None, server: ProviderServer, tmp_path: Path) -> None:
    path = tmp_path / "parity.prompt"
    path.write_text(
        f"---\nmodel: openai-compatible:house-model@{server.openai_base_url}\n---\nIs {{{{ n }}}} even or odd?\n",
        encoding="utf-8",
    )
    ds = map_prompt(ray.data.range(20).rename_columns({"id": "n"}), str(path), workers=1, batch_size=10, prefix="pk_")
    out = ds.take_all()
    assert [r["pk_value"] for r in out] == [
        None if n % 17 == 5 else "banana" if n % 13 == 3 else ("even" if n % 2 == 0 else "odd") for n in range(20)
    ]
    assert [r["pk_status"] for r in out].count("failed") == 1  # the text parser takes "banana"; 5 is refused


def test_the_processor_pair_runs_under_plain_map(local_ray: None) -> None:
    def engine(row: dict[str, Any]) -> dict[str, Any]:  # stands in for the vLLM stage: reads messages, writes text
        n = int(re.search(r"\d+", row["messages"][-1]["content"]).group())  # type: ignore[union-attr]
        text = "banana" if n % 13 == 3 else ("even" if n % 2 == 0 else "odd")
        return {**row, "generated_text": text, "num_input_tokens": 9, "num_generated_tokens": 1}

    def spec() -> Prompt[str]:
        return Prompt("Is {{ n }} even or odd?", parser=ChoiceParser(["even", "odd"]), params={"temperature": 0})

    ds = (
        ray.data.range(40)
        .rename_columns({"id": "n"})
        .map(PromptPreprocessor(spec, backend="vllm:house-model"))
        .map(engine)
        .map(PromptPostprocessor(spec, backend="vllm:house-model"))
    )
    out = ds.take_all()
    assert [r["n"] for r in out] == list(range(40))
    assert [r["value"] for r in out] == [None if n % 13 == 3 else ("even" if n % 2 == 0 else "odd") for n in range(40)]
    assert [r["error_type"] for r in out if r["status"] == "failed"] == ["ParseError"] * 3
    assert {r["input_tokens"] for r in out} == {9}
    assert "messages" not in out[0]
    assert "sampling_params" not in out[0]


def test_the_pair_drives_ray_http_request_processor(local_ray: None, server: ProviderServer) -> None:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    def spec() -> Prompt[str]:
        return Prompt("Is {{ n }} even or odd?", parser=ChoiceParser(["even", "odd"]), repair=0)

    url = server.openai_base_url
    processor = build_processor(
        HttpRequestProcessorConfig(url=url + "/chat/completions", headers={"Authorization": "Bearer sk-test"}),
        preprocess=PromptPreprocessor(spec, backend=f"openai-compatible:house-model@{url}"),
        postprocess=PromptPostprocessor(spec, backend=f"openai-compatible:house-model@{url}", drop=("payload",)),
    )
    rows = [n for n in range(30) if n % 17 != 5]  # an HTTP error fails Ray's HTTP stage itself
    out = processor(ray.data.from_items([{"n": n} for n in rows])).take_all()
    assert [r["n"] for r in out] == rows
    assert [r["value"] for r in out] == [None if n % 13 == 3 else ("even" if n % 2 == 0 else "odd") for n in rows]
    assert all(r["input_tokens"] > 0 and r["output_tokens"] == 1 for r in out)


# -- in this process: the columns, the formats and the errors ---------------------------------------------------
class Verdict(pydantic.BaseModel):
    label: str
    score: float


def test_values_are_json_types_and_every_batch_format_works() -> None:
    def spec() -> Prompt[Verdict]:
        return Prompt(
            "Rate {{ text }}", MockBackend(lambda r: '{"label": "good", "score": 0.5}'), parser=PydanticParser(Verdict)
        )

    mapper = PromptMapper(spec)
    numpy_out = mapper({"text": __import__("numpy").array(["a", "b"])})
    assert numpy_out["value"] == [{"label": "good", "score": 0.5}] * 2
    assert numpy_out["text"] == ["a", "b"]
    frame = mapper(pd.DataFrame({"text": ["a"], "other": [1]}))
    assert list(frame.columns) == ["text", "other", *COLUMNS]
    table = mapper(pa.table({"text": ["a"]}))
    assert table.column("status").to_pylist() == ["ok"]
    with pytest.raises(ConfigurationError, match="a batch must be"):
        mapper([1, 2])


def test_a_failing_row_is_a_row_and_a_guard_stops_the_batch() -> None:
    def flaky() -> Prompt[str]:
        return Prompt("{{ q }}", MockBackend(lambda r: "ok" if "good" in r.messages[-1].text else ValueError("boom")))

    out = PromptMapper(flaky)({"q": ["good", "bad"]})
    assert out["status"][0] == "ok"
    assert out["status"][1] == "failed"

    def guarded() -> Prompt[str]:
        def reply(messages: Any, params: Any) -> str:
            raise GuardError("a test guard stopped the call")

        return Prompt("{{ q }}", FunctionBackend(reply))

    with pytest.raises(GuardError):
        PromptMapper(guarded)({"q": ["x"]})


def test_configuration_errors_fail_loudly(tmp_path: Path) -> None:
    def spec() -> Prompt[str]:
        return Prompt("{{ q }} {{ r }}", MockBackend(["a"]))

    with pytest.raises(ConfigurationError, match="r, which is not a column"):
        PromptMapper(spec)({"q": ["x"]})
    assert PromptMapper(spec, inputs={"q": "q", "s": "r"})({"q": ["x"], "s": ["y"]})["status"] == ["ok"]
    with pytest.raises(ConfigurationError, match="inputs names t"):
        PromptMapper(spec, inputs=["t"])({"q": ["x"]})
    with pytest.raises(ConfigurationError, match="already has column"):
        PromptMapper(spec)({"q": ["x"], "r": ["y"], "status": ["new"]})
    with pytest.raises(ConfigurationError, match="no backend"):
        PromptMapper(lambda: Prompt("{{ q }}"))
    with pytest.raises(ConfigurationError, match="returned int"):
        PromptMapper(lambda: 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="does not exist"):
        PromptMapper(str(tmp_path / "missing.prompt"))
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        PromptMapper(spec, max_concurrency=0)
    ds = ray.data.from_items([{"q": "x"}])
    with pytest.raises(ConfigurationError, match="does not pickle"):
        map_prompt(ds, spec())
    with pytest.raises(ConfigurationError, match="does not exist"):
        map_prompt(ds, str(tmp_path / "missing.prompt"))
    with pytest.raises(ConfigurationError, match="workers"):
        map_prompt(ds, spec, workers=0)
    with pytest.raises(ConfigurationError, match="backend must be"):
        map_prompt(ds, spec, backend=3)  # type: ignore[arg-type]


def test_the_preprocessor_shapes_vllm_and_http_requests() -> None:
    def spec() -> Prompt[str]:
        return Prompt("Is {{ n }} even?", parser=ChoiceParser(["yes", "no"]), params={"max_tokens": 3})

    row = PromptPreprocessor(spec, backend="vllm:m", params={"temperature": 0.2})({"n": 4, "id": 7})
    assert row["id"] == 7
    assert row["messages"] == [{"role": "user", "content": "Is 4 even?\n\nReply with exactly one of: yes, no."}]
    assert row["sampling_params"] == {
        "max_tokens": 3,
        "temperature": 0.2,
        "structured_outputs": {"choice": ["yes", "no"]},
    }
    assert row["payload"]["model"] == "m"
    assert row["payload"]["messages"] == row["messages"]
    with pytest.raises(ConfigurationError, match="needs a backend"):
        PromptPreprocessor(spec)({"n": 1})
    with pytest.raises(ConfigurationError, match="model calls per value"):
        PromptPreprocessor(lambda: spec().with_strategy(SelfConsistency(3)), backend="vllm:m")({"n": 1})
    with pytest.raises(ConfigurationError, match="chat-completions format"):
        PromptPreprocessor(spec, backend=MockBackend)({"n": 1})
    pre = PromptPreprocessor(spec, backend="vllm:m")
    pre({"n": 1})
    copy = ray.cloudpickle.loads(ray.cloudpickle.dumps(pre))  # only the spec travels
    assert copy._prompt._built is None
    assert copy({"n": 2})["messages"][0]["content"].startswith("Is 2")


def test_the_postprocessor_parses_as_a_call_would(house_price: None) -> None:
    def thinking() -> Prompt[str]:
        return Prompt("2+{{ n }}?", strategy=ChainOfThought())

    post = PromptPostprocessor(thinking, backend="vllm:house-model")
    row = post(
        {
            "n": 2,
            "generated_text": "2 and 2 make 4. <answer>4</answer>",
            "num_input_tokens": 1000,
            "num_generated_tokens": 500,
        }
    )
    assert row["value"] == "4"
    assert row["status"] == "ok"
    assert row["cost"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)  # own prices apply to an engine
    http = PromptPostprocessor(thinking, backend="openai-compatible:house-model@http://127.0.0.1:9/v1")
    reply = {
        "model": "house-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "<answer>4</answer>"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    done = http({"n": 2, "http_response": reply})
    assert (done["value"], done["input_tokens"], done["output_tokens"]) == ("4", 7, 2)
    broken = http({"n": 2, "http_response": {"error": "nope"}})
    assert broken["status"] == "failed"
    assert broken["error_type"] == "ParseError"
    strict = PromptPostprocessor(lambda: Prompt("{{ n }}", parser=ChoiceParser(["a", "c"])), backend="vllm:m")
    failed = strict({"n": 1, "generated_text": "b"})
    assert failed["status"] == "failed"
    assert failed["value"] is None
    assert "a" in failed["error"]
    with pytest.raises(ConfigurationError, match="has no reply"):
        strict({"n": 1})
    with pytest.raises(ConfigurationError, match="does not read chat completions"):
        PromptPostprocessor(lambda: Prompt("{{ n }}"), backend=MockBackend)({"n": 1, "http_response": reply})
    assert isinstance(ParseError, type)
