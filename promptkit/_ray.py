"""Ray Data: run a :class:`~promptkit.Prompt` over a dataset, or shape the rows Ray's LLM processor sends.

:class:`PromptMapper` is the callable class for ``ds.map_batches``: each Ray worker builds its
prompt (and so its backend and HTTP client) once, from a spec that pickles (a ``.prompt`` file
path or a zero-argument function returning a prompt), then runs every batch of rows through
:meth:`Prompt.batch`. Each row keeps its columns and gains the value, its status, the error,
tokens, cost and latency: a failed row is a row with an error, never a failed pipeline.
:func:`map_prompt` wires the mapper into ``map_batches`` with an actor pool.

:class:`PromptPreprocessor` and :class:`PromptPostprocessor` are the pair ``ray.data.llm``'s
processors take: render a row into the request (``messages`` and ``sampling_params`` for the
vLLM and SGLang engines, ``payload`` for the HTTP processor), and parse the reply row back into
the same columns. Ray itself is imported only by :func:`map_prompt`; the classes work on plain
batches and rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ._batch._results import error_cost, error_usage
from ._cost import cost_of
from ._errors import BackendError, ConfigurationError, GuardError, ParseError, PromptkitError
from ._messages import Completion, Usage
from ._prompt import Prompt
from ._run import Run
from ._strategies import Call, Outcome
from ._strategies._base import planned_calls
from ._utils import require

if TYPE_CHECKING:
    from ray.data import Dataset

    from .backends import Backend, Params

__all__ = [
    "PromptMapper",
    "PromptPostprocessor",
    "PromptPreprocessor",
    "PromptSpec",
    "map_prompt",
]

PromptSpec = Union[str, "os.PathLike[str]", Callable[[], Prompt[Any]], Prompt[Any]]
"""Where a worker gets its prompt: a ``.prompt`` file path, a zero-argument function returning a
:class:`~promptkit.Prompt`, or (in the driver process only: prompts do not pickle) a prompt."""

BackendSpec = Union[str, Callable[[], "Backend"], None]  # noqa: UP007 - a runtime alias

COLUMNS = ("value", "status", "error_type", "error", "input_tokens", "output_tokens", "cost", "latency")
"""The columns every row gains (after an optional ``prefix``)."""


def _build(prompt: PromptSpec, backend: BackendSpec) -> Prompt[Any]:
    """The prompt a spec names, on ``backend`` when one is given (built here, once)."""
    if isinstance(prompt, Prompt):
        built: Prompt[Any] = prompt
    elif isinstance(prompt, (str, os.PathLike)):
        from ._files import load_prompt

        path = Path(prompt)
        if not path.is_file():
            raise ConfigurationError(f"prompt file {str(path)!r} does not exist (on this worker)")
        built = load_prompt(path)
    elif callable(prompt):
        made = prompt()
        if not isinstance(made, Prompt):
            raise ConfigurationError(f"the prompt factory {prompt!r} returned {type(made).__name__}, not a Prompt")
        built = made
    else:
        raise ConfigurationError(
            f"prompt must be a .prompt file path, a zero-argument function returning a Prompt, or a Prompt; "
            f"not {type(prompt).__name__}"
        )
    if backend is not None:
        made_backend = backend if isinstance(backend, str) else backend()
        built = built.with_backend(made_backend)
    return built


def check_spec(prompt: PromptSpec, backend: BackendSpec = None) -> None:
    """Refuse, in the driver, a spec that cannot reach a Ray worker (before Ray tries to pickle it)."""
    if isinstance(prompt, Prompt):
        raise ConfigurationError(
            "a Prompt cannot be sent to Ray workers (it holds a backend with an open HTTP client, and does "
            "not pickle); pass the path of a .prompt file or a zero-argument function that builds the prompt"
        )
    if isinstance(prompt, (str, os.PathLike)):
        if not Path(prompt).is_file():
            raise ConfigurationError(f"prompt file {str(prompt)!r} does not exist")
    elif not callable(prompt):
        raise ConfigurationError(
            f"prompt must be a .prompt file path or a zero-argument function returning a Prompt, "
            f"not {type(prompt).__name__}"
        )
    if backend is not None and not isinstance(backend, str) and not callable(backend):
        raise ConfigurationError(
            f"backend must be a 'provider:model' string or a zero-argument function returning a Backend, "
            f"not {type(backend).__name__}"
        )


def _input_names(
    prompt: Prompt[Any], columns: Sequence[str], inputs: Sequence[str] | Mapping[str, str] | None
) -> dict[str, str]:
    """Column -> template variable for the columns a row passes to the prompt."""
    if inputs is None:
        missing = sorted(prompt.input_variables - set(columns))
        if missing:
            raise ConfigurationError(
                f"the prompt needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not a column "
                f"of the dataset (columns: {', '.join(columns)}); rename the columns, or pass inputs=... to map "
                "columns to template variables"
            )
        return {name: name for name in sorted(prompt.input_variables)}
    named = dict(inputs) if isinstance(inputs, Mapping) else {name: name for name in inputs}
    absent = sorted(set(named) - set(columns))
    if absent:
        raise ConfigurationError(
            f"inputs names {', '.join(absent)}, not a column of the dataset (columns: {', '.join(columns)})"
        )
    return named


def _column_names(prefix: str, existing: Sequence[str]) -> dict[str, str]:
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a str, not {prefix!r}")
    names = {column: prefix + column for column in COLUMNS}
    clash = sorted(set(names.values()) & set(existing))
    if clash:
        raise ConfigurationError(
            f"the dataset already has column(s) {', '.join(clash)}; pass prefix='...' so the prompt's columns "
            "do not overwrite them"
        )
    return names


def jsonable(value: Any) -> Any:
    """``value`` as JSON types (a pydantic model or dataclass becomes a dict, an enum its value)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def _error_columns(error: BaseException | None) -> tuple[str | None, str | None]:
    if error is None:
        return None, None
    return type(error).__name__, str(error)


def _to_columns(batch: Any) -> tuple[dict[str, list[Any]], str]:
    """A Ray batch (pandas, pyarrow or a dict of arrays) as plain Python lists, and its format."""
    module = type(batch).__module__.split(".", 1)[0]
    if module == "pandas":
        return {str(name): batch[name].tolist() for name in batch.columns}, "pandas"
    if module == "pyarrow":
        return {str(k): list(v) for k, v in batch.to_pydict().items()}, "pyarrow"
    if isinstance(batch, Mapping):
        return {str(k): (v.tolist() if hasattr(v, "tolist") else list(v)) for k, v in batch.items()}, "numpy"
    raise ConfigurationError(
        f"a batch must be a pandas DataFrame, a pyarrow Table or a dict of columns, not {type(batch).__name__}"
    )


def _from_columns(columns: dict[str, list[Any]], kind: str) -> Any:
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(columns)
    if kind == "pyarrow":
        import pyarrow as pa

        return pa.Table.from_pydict(columns)
    return columns


class PromptMapper:
    """The callable class for ``ds.map_batches``: each worker builds the prompt once and runs its batches.

    ``prompt`` is a ``.prompt`` file path or a zero-argument function returning a
    :class:`~promptkit.Prompt` (a prompt itself does not pickle; it works only when the mapper is
    called in the same process); ``backend`` (a ``"provider:model"`` string or a zero-argument
    function) replaces the prompt's. Each batch goes through :meth:`Prompt.batch` with up to
    ``max_concurrency`` calls at once in this worker, the limits per worker. ``inputs`` names the
    columns passed to the prompt (a mapping renames column to variable; default: the prompt's
    variables, which must all be columns). Every column is kept; the row gains ``value`` (JSON
    types: a pydantic model as a dict; ``None`` when the row failed), ``status`` (``ok`` or
    ``failed``), ``error_type`` and ``error`` (the message), ``input_tokens``, ``output_tokens``,
    ``cost`` (USD; ``None`` when the model has no known price) and ``latency`` (seconds), each
    name after ``prefix``. Guards and configuration errors raise.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> mapper = PromptMapper(lambda: Prompt("Capital of {{ country }}?", MockBackend(["Paris", "Rome"])))
    >>> out = mapper({"country": ["France", "Italy"]})
    >>> out["value"], out["status"]
    (['Paris', 'Rome'], ['ok', 'ok'])
    """

    def __init__(
        self,
        prompt: PromptSpec,
        *,
        backend: BackendSpec = None,
        inputs: Sequence[str] | Mapping[str, str] | None = None,
        params: Params | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        prefix: str = "",
    ) -> None:
        self.prompt: Prompt[Any] = _build(prompt, backend)
        if self.prompt.backend is None:
            raise ConfigurationError("the prompt has no backend; give the prompt one or pass backend='provider:model'")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be a whole number >= 1, not {max_concurrency!r}")
        self.inputs = inputs
        self.params = params
        self.max_concurrency = max_concurrency
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.prefix = prefix
        _column_names(prefix, ())

    def __call__(self, batch: Any) -> Any:
        columns, kind = _to_columns(batch)
        names = _column_names(self.prefix, list(columns))
        chosen = _input_names(self.prompt, list(columns), self.inputs)
        rows = len(next(iter(columns.values()))) if columns else 0
        inputs = [{variable: columns[column][i] for column, variable in chosen.items()} for i in range(rows)]
        result = self.prompt.batch(
            inputs,
            params=self.params,
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            progress=False,
        )
        out: dict[str, list[Any]] = {name: [] for name in names.values()}
        for item in result:
            kind_of_error, message = _error_columns(item.error)
            usage = item.usage
            out[names["value"]].append(jsonable(item.result.value) if item.result is not None else None)
            out[names["status"]].append(item.status)
            out[names["error_type"]].append(kind_of_error)
            out[names["error"]].append(message)
            out[names["input_tokens"]].append(usage.input_tokens)
            out[names["output_tokens"]].append(usage.output_tokens)
            out[names["cost"]].append(item.cost)
            out[names["latency"]].append(item.seconds)
        return _from_columns({**columns, **out}, kind)


def map_prompt(
    dataset: Dataset,
    prompt: PromptSpec,
    *,
    backend: BackendSpec = None,
    workers: int = 2,
    batch_size: int = 64,
    max_concurrency: int = 8,
    inputs: Sequence[str] | Mapping[str, str] | None = None,
    params: Params | None = None,
    prefix: str = "",
    **map_batches_options: Any,
) -> Dataset:
    """``dataset`` with the prompt run on every row by ``workers`` :class:`PromptMapper` actors.

    The spec is checked here, in the driver (a :class:`~promptkit.Prompt` is refused: it does not
    pickle). ``batch_size`` rows go to a worker at a time, ``max_concurrency`` calls at once in
    each worker; ``map_batches_options`` go to ``Dataset.map_batches`` (``num_cpus=...``, ...).
    Rows come back in input order only when the dataset context preserves it
    (``ray.data.DataContext.get_current().execution_options.preserve_order = True``).
    """
    check_spec(prompt, backend)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigurationError(f"workers must be a whole number >= 1, not {workers!r}")
    data = require("ray.data", extra="ray", package="ray")
    return dataset.map_batches(
        PromptMapper,
        fn_constructor_args=(prompt,),
        fn_constructor_kwargs={
            "backend": backend,
            "inputs": inputs,
            "params": params,
            "max_concurrency": max_concurrency,
            "prefix": prefix,
        },
        compute=data.ActorPoolStrategy(size=workers),
        batch_size=batch_size,
        batch_format="pandas",
        **map_batches_options,
    )


class _Lazy:
    """A prompt built from its spec on first use in each process; only the spec is pickled."""

    def __init__(self, prompt: PromptSpec, backend: BackendSpec) -> None:
        self._spec = (prompt, backend)
        self._built: Prompt[Any] | None = None

    def get(self) -> Prompt[Any]:
        if self._built is None:
            prompt = _build(*self._spec)
            _check_one_call(prompt)
            self._built = prompt
        return self._built

    def __getstate__(self) -> dict[str, Any]:
        return {"_spec": self._spec, "_built": None}


def _check_one_call(prompt: Prompt[Any]) -> None:
    if prompt.backend is None:
        raise ConfigurationError(
            "the prompt needs a backend to shape its requests (it is never called here); pass "
            "backend='vllm:<model>' (or 'openai-compatible:<model>@<url>') to render for an OpenAI-compatible engine"
        )
    if planned_calls(prompt.strategy) != 1:
        raise ConfigurationError(
            f"{prompt.strategy!r} makes {planned_calls(prompt.strategy)} model calls per value; a Ray LLM "
            "processor sends one request per row, so use PromptMapper (which runs every call) instead"
        )


_REQUEST_KEYS = frozenset({"model", "messages", "stream", "stream_options"})


class PromptPreprocessor:
    """``preprocess`` for ``ray.data.llm.build_processor``: a row rendered into the request to send.

    The row gains ``messages`` (OpenAI chat format) and ``sampling_params`` (the request's
    parameters: temperature, max_tokens, and the parser's ``structured_outputs`` when the backend
    is ``"vllm:<model>"``), which the vLLM and SGLang engine processors read, and ``payload``
    (the whole chat-completions body) for ``HttpRequestProcessorConfig``. The prompt's backend only
    shapes the request and is never called; it must speak the OpenAI chat-completions wire format.
    Examples, format instructions and the strategy's first request are built as a call builds them.
    ``inputs`` and ``params`` are as in :class:`PromptMapper`; ``prompt`` as there (a path or a
    factory; a :class:`~promptkit.Prompt` in the same process only).

    >>> from promptkit import Prompt
    >>> pre = PromptPreprocessor(lambda: Prompt("2+{{ n }}?"), backend="vllm:my-model", params={"temperature": 0})
    >>> row = pre({"n": 2})
    >>> row["messages"], row["sampling_params"]
    ([{'role': 'user', 'content': '2+2?'}], {'temperature': 0})
    """

    def __init__(
        self,
        prompt: PromptSpec,
        *,
        backend: BackendSpec = None,
        inputs: Sequence[str] | Mapping[str, str] | None = None,
        params: Params | None = None,
    ) -> None:
        self._prompt = _Lazy(prompt, backend)
        self.inputs = inputs
        self.params = params

    @property
    def prompt(self) -> Prompt[Any]:
        """The prompt, built on first use in this process."""
        return self._prompt.get()

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        prompt = self.prompt
        chosen = _input_names(prompt, list(row), self.inputs)
        preview = prompt.preview(params=self.params, **{v: _plain(row[c]) for c, v in chosen.items()})
        if not (preview.url or "").endswith("/chat/completions"):
            raise ConfigurationError(
                f"{preview.backend} does not speak the OpenAI chat-completions format the Ray LLM processors "
                "expect; use backend='vllm:<model>' or 'openai-compatible:<model>@<url>' to render the requests"
            )
        body = dict(preview.body)
        sampling = {k: v for k, v in body.items() if k not in _REQUEST_KEYS}
        return {**row, "messages": body["messages"], "sampling_params": sampling, "payload": body}


class PromptPostprocessor:
    """``postprocess`` for ``ray.data.llm.build_processor``: a reply row parsed into the prompt's columns.

    The reply is ``generated_text`` (the vLLM and SGLang engines, with ``num_input_tokens`` and
    ``num_generated_tokens``) or ``http_response`` (a chat completion, from the HTTP processor).
    It is parsed the way a call parses it (the strategy's answer section, the parser), so the
    row gains :class:`PromptMapper`'s columns; ``latency`` is the engine's ``time_taken_llm`` when
    it reports one. A reply that does not parse is a ``failed`` row with its
    :class:`~promptkit.ParseError` (there is no second request to repair it). The request columns
    (``messages``, ``sampling_params``, ``payload``) are dropped; ``drop`` names other columns to drop.

    >>> from promptkit import Prompt
    >>> post = PromptPostprocessor(lambda: Prompt("2+{{ n }}?"), backend="vllm:my-model")
    >>> row = post({"n": 2, "generated_text": "4", "num_input_tokens": 5, "num_generated_tokens": 1})
    >>> row["value"], row["status"], row["input_tokens"]
    ('4', 'ok', 5)
    """

    def __init__(
        self,
        prompt: PromptSpec,
        *,
        backend: BackendSpec = None,
        inputs: Sequence[str] | Mapping[str, str] | None = None,
        params: Params | None = None,
        prefix: str = "",
        drop: Sequence[str] = ("messages", "sampling_params", "payload"),
    ) -> None:
        self._prompt = _Lazy(prompt, backend)
        self.inputs = inputs
        self.params = params
        self.prefix = prefix
        self.drop = frozenset(drop)
        _column_names(prefix, ())

    @property
    def prompt(self) -> Prompt[Any]:
        """The prompt, built on first use in this process."""
        return self._prompt.get()

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        prompt = self.prompt
        kept = {k: v for k, v in row.items() if k not in self.drop}
        names = _column_names(self.prefix, [k for k in kept if k not in ("http_response", "generated_text")])
        chosen = _input_names(prompt, list(row), self.inputs)
        inputs = {v: _plain(row[c]) for c, v in chosen.items()}
        value: Any = None
        error: BaseException | None = None
        completion: Completion | None = None
        try:
            completion = _completion(row, prompt)
            value = jsonable(_parse(prompt, inputs, self.params, completion))
        except (ConfigurationError, GuardError):
            raise  # the pipeline is wrong, not this row
        except PromptkitError as exc:  # the reply does not parse, or this row's inputs do not render
            error = exc
        usage = completion.usage if completion is not None else error_usage(error)
        if completion is not None:
            cost = cost_of(completion.usage, completion.model, completion.provider)
        else:
            cost = error_cost(error)
        kind, message = _error_columns(error)
        latency = row.get("time_taken_llm")
        return {
            **kept,
            names["value"]: value,
            names["status"]: "failed" if error is not None else "ok",
            names["error_type"]: kind,
            names["error"]: message,
            names["input_tokens"]: usage.input_tokens,
            names["output_tokens"]: usage.output_tokens,
            names["cost"]: cost,
            names["latency"]: float(latency) if isinstance(latency, (int, float)) else None,
        }


def _plain(value: Any) -> Any:
    """A numpy scalar or array from a Ray row as the Python value a template expects."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) and type(value).__module__ == "numpy" else value


def _completion(row: Mapping[str, Any], prompt: Prompt[Any]) -> Completion:
    """The reply in a processor's output row, as a :class:`Completion`."""
    if "http_response" in row:
        response = _plain(row["http_response"])
        if isinstance(response, str):
            response = json.loads(response)
        read = getattr(prompt.backend, "_completion_from", None)  # the backend's own reading of its wire
        if read is None:
            raise ConfigurationError(
                f"{prompt.backend!r} does not read chat completions; use backend='vllm:<model>' or "
                "'openai-compatible:<model>@<url>'"
            )
        try:
            completion: Completion = read(response, raw=None)
            return completion
        except BackendError as exc:
            raise ParseError(str(exc), text=json.dumps(response, default=str)[:2000]) from exc
    if "generated_text" in row:
        model = getattr(prompt.backend, "model", None)
        return Completion(
            text=str(row["generated_text"]),
            model=model if isinstance(model, str) else None,
            usage=Usage(
                input_tokens=int(_plain(row.get("num_input_tokens")) or 0),
                output_tokens=int(_plain(row.get("num_generated_tokens")) or 0),
            ),
            # an engine in the pipeline is never billed at a provider's list price: own prices only
            provider="openai-compatible",
        )
    raise ConfigurationError(
        "the row has no reply: expected 'generated_text' (vLLM, SGLang) or 'http_response' (HTTP processor); "
        f"columns: {', '.join(row)}"
    )


def _parse(prompt: Prompt[Any], inputs: Mapping[str, Any], params: Params | None, completion: Completion) -> Any:
    """The value of ``completion`` as the prompt's strategy would return it after one call."""
    run: Run[Any] = prompt._start(inputs, params, prompt._select(inputs), traced=False)
    try:
        step = run.send(None)
        if not isinstance(step, Call):
            raise ConfigurationError(f"{prompt.strategy!r} does not start with one request")
        run.record(step, time.perf_counter(), completion)
        outcome = run.send(completion)
        if isinstance(outcome, Outcome):
            return outcome.value
        failed = [attempt.error for attempt in run._attempts if attempt.error is not None]
        if failed and isinstance(failed[-1], ParseError):
            raise failed[-1]
        raise ParseError("the reply needs another request to give a value", text=completion.text)
    finally:
        run.close()
