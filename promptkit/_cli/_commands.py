"""The commands: ``render``, ``preview``, ``run`` and ``provision-tiktoken-cache``.

Each one parses its options with the shared helpers, calls the public API (``Prompt.render``,
``Prompt.preview``, ``Prompt.run``/``stream``/``batch``) and prints text or JSON.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .._errors import PromptkitError
from ._app import debug_option
from ._options import (
    concurrency_option,
    input_option,
    json_option,
    load,
    model_options,
    prompt_argument,
    read_jsonl,
    variables_options,
)
from ._output import (
    emit,
    error_record,
    message_records,
    messages_text,
    preview_record,
    preview_text,
    result_record,
    token_count,
    tokens_text,
    value_text,
)

if TYPE_CHECKING:
    from .._messages import Message
    from .._prompt import Prompt
    from .._tokens import TokenCount

__all__ = ["preview", "provision_tiktoken_cache", "render", "run"]

BATCH_EXIT = (
    "With --input the output is JSON lines, one per input line in order, each with its 'line' "
    "number and 'status'; the exit status is 1 when any line failed (its 'status' is not 'ok' and "
    "'error' says why), and a summary goes to stderr."
)


class _Counter:
    """Counts messages' tokens for one backend spec; after one failure to load an encoding, stops trying."""

    def __init__(self, spec: str | None) -> None:
        self.spec = spec
        self.failure: str | None = None

    def record(self, messages: Sequence[Message]) -> dict[str, Any]:
        count: TokenCount | None = None
        model = self.spec
        if self.failure is None:
            count, model, self.failure = token_count(messages, self.spec)
            if self.failure is not None:
                click.echo(f"promptkit: warning: cannot count tokens: {self.failure}", err=True)
        return {
            "messages": message_records(messages),
            "tokens": int(count) if count is not None else None,
            "encoding": count.encoding if count is not None else None,
            "exact": count.exact if count is not None else None,
            "model": model,
        }

    def text(self, messages: Sequence[Message]) -> str:
        if self.failure is None:
            count, model, self.failure = token_count(messages, self.spec)
            if self.failure is None:
                return tokens_text(count, model, None)
            click.echo(f"promptkit: warning: cannot count tokens: {self.failure}", err=True)
        return "tokens: unknown"


def _finish_batch(total: int, failed: list[int]) -> None:
    """Say on stderr which lines failed, and exit with status 1 if any did."""
    if failed:
        shown = ", ".join(map(str, failed[:20])) + (", ..." if len(failed) > 20 else "")
        lines = "line" if len(failed) == 1 else "lines"
        click.echo(f"promptkit: {len(failed)} of {total} input lines failed ({lines} {shown})", err=True)
        click.get_current_context().exit(1)


def _rows(input_file: IO[str], variables: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any] | Exception]]:
    return [(n, row if isinstance(row, Exception) else {**variables, **row}) for n, row in read_jsonl(input_file)]


# -- render ---------------------------------------------------------------------------------------
@click.command(short_help="Print the rendered messages and their tokens.", epilog=BATCH_EXIT)
@prompt_argument
@variables_options
@model_options
@input_option
@json_option
@debug_option
def render(
    *,
    file: Path,
    variables: dict[str, Any],
    model: str | None,
    base_url: str | None,
    input_file: IO[str] | None,
    as_json: bool,
) -> None:
    """Print the messages FILE.prompt renders to, and their token count; nothing is sent.

    Tokens are counted with the model's tokenizer (--model, else the file's model); for a model
    without one, with gpt-4o-mini's, marked approximate (~ in text, "exact": false in JSON).

    \b
    Examples:
      promptkit render greet.prompt --var name=Ada
      promptkit render greet.prompt --var name=Ada --json
      promptkit render greet.prompt --input people.jsonl
    """
    loaded = load(file, model=model, base_url=base_url, need_backend=False)
    counter = _Counter(loaded.spec)
    if input_file is None:
        messages = loaded.prompt.render(**variables)
        if as_json:
            emit(counter.record(messages), indent=2)
        else:
            click.echo(messages_text(messages))
            click.echo(counter.text(messages))
        return
    rows = _rows(input_file, variables)
    failed: list[int] = []
    for number, row in rows:
        if not isinstance(row, Exception):
            try:
                emit({"line": number, "status": "ok", **counter.record(loaded.prompt.render(**row))})
                continue
            except PromptkitError as exc:
                row = exc
        failed.append(number)
        emit({"line": number, "status": "failed", "error": error_record(row)})
    _finish_batch(len(rows), failed)


# -- preview --------------------------------------------------------------------------------------
@click.command(short_help="Print the exact request, without sending it.")
@prompt_argument
@variables_options
@model_options
@click.option("--stream", is_flag=True, help="Preview the streaming request ('run --stream' sends).")
@json_option
@debug_option
def preview(
    *,
    file: Path,
    variables: dict[str, Any],
    model: str | None,
    base_url: str | None,
    stream: bool,
    as_json: bool,
) -> None:
    """Print the exact request FILE.prompt would send, without sending it.

    The provider's URL, headers (credentials masked), JSON body, input tokens and estimated
    cost; the mock backend shows the request in promptkit's neutral form. No API key is needed.

    \b
    Examples:
      promptkit preview greet.prompt --var name=Ada --model openai:gpt-4o-mini
      promptkit preview greet.prompt --var name=Ada --model anthropic:claude-haiku-4-5 --json
    """
    loaded = load(file, model=model, base_url=base_url)
    request = loaded.prompt.preview(stream=stream, **variables)
    if as_json:
        emit(preview_record(request), indent=2)
    else:
        click.echo(preview_text(request))


# -- run ------------------------------------------------------------------------------------------
@click.command(short_help="Call the model and print the parsed result.", epilog=BATCH_EXIT)
@prompt_argument
@variables_options
@model_options
@click.option("--stream", is_flag=True, help="Print the reply as it comes (not with --input).")
@input_option
@concurrency_option
@json_option
@debug_option
def run(
    *,
    file: Path,
    variables: dict[str, Any],
    model: str | None,
    base_url: str | None,
    stream: bool,
    input_file: IO[str] | None,
    concurrency: int,
    as_json: bool,
) -> None:
    """Call the model with FILE.prompt and print the parsed result.

    Text replies print as they are; structured output (an 'output' schema in the front matter)
    prints as JSON. --json prints the value with the reply's text, model, usage and cost.

    \b
    Examples:
      promptkit run greet.prompt --var name=Ada --model openai:gpt-4o-mini
      promptkit run greet.prompt --var name=Ada --model 'mock:Bonjour, Ada!'
      promptkit run greet.prompt --stream --var name=Ada
      promptkit run greet.prompt --input people.jsonl --concurrency 4 > results.jsonl
    """
    loaded = load(file, model=model, base_url=base_url)
    if input_file is not None:
        if stream:
            raise click.UsageError("--stream prints one reply as it comes; it does not combine with --input")
        _run_batch(loaded.prompt, _rows(input_file, variables), concurrency)
        return
    if stream:
        _stream(loaded.prompt, variables, as_json=as_json)
        return
    result = loaded.prompt.run(**variables)
    if as_json:
        emit(result_record(result), indent=2)
    else:
        click.echo(value_text(result.value))


def _run_batch(prompt: Prompt[Any], rows: list[tuple[int, Mapping[str, Any] | Exception]], concurrency: int) -> None:
    sent = [(n, row) for n, row in rows if not isinstance(row, Exception)]
    items = prompt.batch([row for _, row in sent], max_concurrency=concurrency, progress=None) if sent else []
    by_line = {n: item for (n, _), item in zip(sent, items, strict=True)}
    failed: list[int] = []
    for number, row in rows:
        item = by_line.get(number)
        if item is not None and item.result is not None:
            emit({"line": number, "status": "ok", **result_record(item.result)})
            continue
        failed.append(number)
        if item is None:
            emit({"line": number, "status": "failed", "error": error_record(row)})  # type: ignore[arg-type]
        else:
            error = error_record(item.error) if item.error is not None else _NOT_SENT
            emit({"line": number, "status": item.status, "error": error})
    _finish_batch(len(rows), failed)


_NOT_SENT = {"type": "Cancelled", "message": "not sent: the batch was interrupted (Ctrl-C) first"}


def _delta(shown: str, value: str) -> str:
    """What to print so that the terminal shows ``value`` after ``shown``."""
    if value.startswith(shown):
        return value[len(shown) :]
    if shown.startswith(value) or shown.strip() == value.strip():
        return ""  # the final value, stripped of the whitespace already shown
    return "\n" + value  # a different reply (a repaired one): on a line of its own


def _stream(prompt: Prompt[Any], variables: Mapping[str, Any], *, as_json: bool) -> None:
    shown = ""
    last: Any = None
    with prompt.stream(**variables) as stream:
        for value in stream:
            if isinstance(value, str):
                delta = _delta(shown, value)
                if delta:
                    shown = value
                if delta and as_json:
                    emit({"delta": delta})
                elif delta:
                    click.echo(delta, nl=False)
            elif value != last:
                last = value
                emit({"partial": value} if as_json else value)
    result = stream.result
    if as_json:
        emit(result_record(result))
    elif isinstance(result.value, str):
        click.echo()


# -- provision-tiktoken-cache ---------------------------------------------------------------------
@click.command("provision-tiktoken-cache", short_help="Fill tiktoken's cache without network.")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--encoding",
    "encodings",
    multiple=True,
    metavar="NAME",
    help="An encoding to provision; repeat for several (default: cl100k_base and o200k_base).",
)
@debug_option
def provision_tiktoken_cache(directory: Path | None, encodings: tuple[str, ...]) -> None:
    """Fill tiktoken's cache without network from the quicktok-v1 package.

    Files are verified against tiktoken's SHA-256 before use. DIRECTORY defaults to where
    tiktoken looks (TIKTOKEN_CACHE_DIR, ...).
    """
    from .._tiktoken_files import provision_tiktoken_cache as provision

    target = provision(directory, encodings=encodings or ("cl100k_base", "o200k_base"))
    click.echo(f"tiktoken cache ready in {target}")
    if os.environ.get("TIKTOKEN_CACHE_DIR") != str(target):
        click.echo(f"use it with: export TIKTOKEN_CACHE_DIR={target}")
