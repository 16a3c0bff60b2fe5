"""Type-checked with ``mypy --strict`` in CI: pins the public types users rely on."""

from __future__ import annotations

from pydantic import BaseModel
from typing_extensions import assert_type

from promptkit import Completion, FallbackBackend, Prompt, PydanticParser, RequestPreview, Result, Stream
from promptkit.testing import MockBackend


class Answer(BaseModel):
    text: str


def check() -> None:
    backend = MockBackend(['{"text": "hi"}', "plain"])
    typed = Prompt("{{ q }}", backend, parser=PydanticParser(Answer))
    assert_type(typed, Prompt[Answer])
    assert_type(typed.complete(q="x"), Answer)
    assert_type(typed.run(q="x"), Result[Answer])
    plain = Prompt("{{ q }}", backend)
    assert_type(plain, Prompt[str])
    assert_type(plain.complete(q="x"), str)
    assert_type(backend.complete("hi"), Completion)
    assert_type(backend.stream("hi"), Stream)
    assert_type(plain.with_parser(PydanticParser(Answer)), Prompt[Answer])
    assert_type(typed.preview(q="x"), RequestPreview)
    assert_type(FallbackBackend([backend, MockBackend()]).preview("hi", temperature=0), RequestPreview)


def check_streams_and_results() -> None:
    from promptkit import AsyncPromptStream, Attempt, PromptStream

    typed = Prompt("{{ q }}", MockBackend(), parser=PydanticParser(Answer))
    stream = typed.stream(q="x", params={"temperature": 0})
    assert_type(stream, PromptStream[Answer])
    assert_type(stream.result, Result[Answer])
    assert_type(stream.value, Answer)
    assert_type(typed.astream(q="x"), AsyncPromptStream[Answer])
    assert_type(typed.run(q="x").attempts, tuple[Attempt, ...])
    assert_type(typed.with_repair(2), Prompt[Answer])
    assert_type(typed.with_template("{{ q }}!"), Prompt[Answer])


def check_batches() -> None:
    import promptkit
    from promptkit import BatchEstimate, BatchGrid, BatchItem, BatchResult

    typed = Prompt("{{ q }}", MockBackend(), parser=PydanticParser(Answer))
    result = typed.batch([{"q": "x"}], max_concurrency=2, progress=False)
    assert_type(result, BatchResult[Answer])
    assert_type(result[0], BatchItem[Answer])
    assert_type(result.values, list[Answer])
    assert_type(result[0].value, Answer)
    assert_type(typed.estimate_batch([{"q": "x"}]), BatchEstimate)
    assert_type(promptkit.batch({"a": typed}, [{"q": "x"}]), BatchGrid[str])
    assert_type(promptkit.batch([typed, typed], [{"q": "x"}]), BatchGrid[int])


def check_batch_jobs() -> None:
    from promptkit import BatchJob, BatchResult, JobStatus

    typed = Prompt("{{ q }}", MockBackend(), parser=PydanticParser(Answer))
    job = typed.submit_batch([{"q": "x"}])
    assert_type(job, BatchJob[Answer])
    assert_type(job.status(), JobStatus)
    assert_type(job.wait(sleep=lambda seconds: None), BatchResult[Answer])
    assert_type(BatchJob.load("job.json", typed), BatchJob[Answer])


async def check_batch_jobs_async() -> None:
    from promptkit import BatchJob, BatchResult

    typed = Prompt("{{ q }}", MockBackend(), parser=PydanticParser(Answer))
    job = await typed.asubmit_batch([{"q": "x"}])
    assert_type(job, BatchJob[Answer])
    assert_type(await job.wait_async(), BatchResult[Answer])


def check_strategies() -> None:
    from promptkit import ChainOfThought, Context, Outcome, Plan, SelfConsistency, SelfRefine, ask

    typed = Prompt("{{ q }}", MockBackend(), parser=PydanticParser(Answer), strategy=ChainOfThought())
    assert_type(typed, Prompt[Answer])
    assert_type(typed.with_strategy(SelfConsistency(3)).complete(q="x"), Answer)
    assert_type(typed.with_strategy(SelfRefine()).run(q="x").reasoning, str | None)

    class Twice:
        name = "twice"
        streams = False

        def plan(self, context: Context) -> Plan:
            first, _ = yield from ask(context, context.messages)
            value, completion = yield from ask(context, context.messages, purpose="check")
            return Outcome(value=value, completion=completion, info={"agreed": first == value})

    assert_type(Prompt("{{ q }}", MockBackend(), strategy=Twice()), Prompt[str])


def check_cost() -> None:
    from promptkit import Price, Usage, cost_of, estimate_cost, price_for

    result = Prompt("{{ q }}", MockBackend()).run(q="x")
    assert_type(result.cost, float | None)
    assert_type(result.attempts[0].cost, float | None)
    assert_type(price_for("gpt-4o"), Price | None)
    assert_type(cost_of(Usage(), "gpt-4o", "openai", batch=True), float | None)
    assert_type(estimate_cost("gpt-4o", input_tokens=1, output_tokens=1), float | None)


def check_evaluation() -> None:
    from promptkit import Dataset, EvalEstimate, Row, evaluate, evaluate_log, load_dataset
    from promptkit._eval._report import EvalReport

    def exact(prediction: object, row: Row) -> bool:
        return bool(prediction == row.expected)

    plain = Prompt("{{ q }}", MockBackend())
    rows = [{"q": "x", "expected": "y"}]
    assert_type(load_dataset(rows), Dataset)
    assert_type(evaluate({"a": plain}, rows, exact), EvalReport)
    assert_type(evaluate(plain, rows, [exact], epochs=2, reducer="pass@k"), EvalReport)
    assert_type(evaluate({"a": plain}, rows, exact, dry_run=True), EvalEstimate)
    assert_type(evaluate_log("runs.jsonl", rows, exact), EvalReport)


async def check_async_evaluation() -> None:
    from promptkit import EvalEstimate, Row, aevaluate
    from promptkit._eval._report import EvalReport

    def exact(prediction: object, row: Row) -> bool:
        return bool(prediction == row.expected)

    plain = Prompt("{{ q }}", MockBackend())
    assert_type(await aevaluate({"a": plain}, [{"q": "x"}], exact), EvalReport)
    assert_type(await aevaluate({"a": plain}, [{"q": "x"}], exact, dry_run=True), EvalEstimate)


def check_gates() -> None:
    from promptkit import EvalReport, GateResult, Row, assert_gate, check_gate, run_gate

    def exact(prediction: object, row: Row) -> bool:
        return bool(prediction == row.expected)

    plain = Prompt("{{ q }}", MockBackend())
    rows = [{"q": "x", "expected": "y"}]
    report = EvalReport.load("baseline.json")
    assert_type(check_gate(report, min_scores={"exact": 0.8}, use="low", baseline="baseline.json"), GateResult)
    assert_type(assert_gate(report, min_scores={"a": {"exact": 0.8}}, max_cost=0.5, variants=["a"]), GateResult)
    assert_type(run_gate({"a": plain}, rows, exact, cache="gates.sqlite", baseline="b.json", alpha=0.01), GateResult)
    check_gate(report, max_latency=1.0, latency_percentile="p95")  # type: ignore[arg-type]
