"""What the commands print: JSON records (messages, previews, results, errors) and their text forms."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from .._errors import BackendError, PromptkitError, TokenizerError, UndefinedVariableError, UnexpectedVariableError
from .._messages import ImagePart, Message, TextPart

if TYPE_CHECKING:
    from .._result import Result
    from .._tokens import TokenCount
    from ..backends import RequestPreview

__all__ = [
    "emit",
    "error_message",
    "error_record",
    "jsonable",
    "message_records",
    "messages_text",
    "preview_record",
    "preview_text",
    "result_record",
    "token_count",
    "value_text",
]

COUNTING_FALLBACK = "gpt-4o-mini"  # o200k_base: the count for a model without a known tokenizer


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: pydantic models and dataclasses as objects, NaN as null,
    anything without a JSON form as its repr.

    >>> jsonable({"a": (1, float("nan"))})
    {'a': [1, None]}
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    from pydantic_core import to_jsonable_python  # models, dataclasses, dates, enums, paths

    return to_jsonable_python(value, fallback=repr, inf_nan_mode="null")


def emit(record: Any, *, indent: int | None = None) -> None:
    """Print one JSON document (one line unless ``indent``)."""
    click.echo(json.dumps(jsonable(record), ensure_ascii=False, indent=indent))


def error_message(error: BaseException, *, batch: bool) -> str:
    """An error's message on one line, its hints said in the command line's terms (``batch``: the
    variables come from input lines too).

    >>> from promptkit import UndefinedVariableError
    >>> error_message(UndefinedVariableError("missing template variable 'x'", variable="x"), batch=False)
    "missing template variable 'x'; pass it with --var x=VALUE"
    """
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, UndefinedVariableError) and error.variable:
        where = "in the input line or " if batch else ""
        return f"{message}; pass it {where}with --var {error.variable}=VALUE"
    if isinstance(error, UnexpectedVariableError):  # its own hint (allow_extra=) is for Python callers
        names = ", ".join(map(repr, error.variables))
        uses = ", ".join(map(repr, error.known)) or "no variables"
        where = f" of {error.template}" if error.template else ""
        return f"{names} is not a variable{where}, which uses {uses}"
    return message


def error_record(error: BaseException) -> dict[str, Any]:
    """An error as JSON: its type and message, and a backend error's status and provider."""
    record: dict[str, Any] = {"type": type(error).__name__, "message": error_message(error, batch=True)}
    if isinstance(error, BackendError):
        record["status_code"] = error.status_code
        record["provider"] = error.provider
    elif isinstance(error, PromptkitError) and getattr(error, "provider", None):
        record["provider"] = error.provider  # type: ignore[attr-defined]  # guard errors name one
    return record


# -- messages and tokens ------------------------------------------------------------------------
def message_records(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as ``{"role", "content"}`` objects (parts as ``{"type": ...}`` objects)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content: Any = message.content
        if not isinstance(content, str):
            content = [
                {"type": "text", "text": p.text}
                if isinstance(p, TextPart)
                else {"type": "image", "url": p.url, "media_type": p.media_type}
                for p in content
                if isinstance(p, (TextPart, ImagePart))
            ]
        record: dict[str, Any] = {"role": message.role, "content": content}
        if message.cache is not None:
            record["cache"] = message.cache
        out.append(record)
    return out


def messages_text(messages: Sequence[Message]) -> str:
    """Messages for a terminal: a ``--- role ---`` line above each one's text."""
    blocks = []
    for message in messages:
        if isinstance(message.content, str):
            body = message.content
        else:
            body = "".join(p.text if isinstance(p, TextPart) else f"[image {p.url}]" for p in message.content)
        cache = f" (cache {message.cache})" if message.cache else ""
        blocks.append(f"--- {message.role}{cache} ---\n{body}")
    return "\n".join(blocks)


def _counting_names(spec: str | None) -> list[str]:
    """The tokenizer names to try for a backend spec: the spec itself, then its bare model."""
    if spec is None or spec == "mock" or spec.startswith("mock:"):
        return []
    _provider, sep, model = spec.partition(":")
    bare = model.rpartition("@")[0] or model if sep else spec
    return [spec] if bare == spec else [spec, bare]


def token_count(messages: Sequence[Message], spec: str | None) -> tuple[TokenCount | None, str, str | None]:
    """``(count, model counted for, why not)``: with the model's tokenizer when it has one, else
    ``gpt-4o-mini``'s marked inexact; ``None`` and the reason when no encoding can load."""
    from .._errors import ConfigurationError
    from .._tokens import TokenCount, count_tokens, encoding_for_model

    model, exact = COUNTING_FALLBACK, False
    for name in _counting_names(spec):
        try:
            encoding_for_model(name)
        except (TokenizerError, ConfigurationError):  # no tokenizer known for this name
            continue
        model, exact = name, True
        break
    try:
        count = count_tokens(list(messages), model=model)
    except TokenizerError as exc:  # the encoding's files cannot be loaded
        return None, model, str(exc)
    if not exact:
        count = TokenCount(int(count), encoding=count.encoding, exact=False)
    return count, model, None


def tokens_text(count: TokenCount | None, model: str, why_not: str | None) -> str:
    """``21 tokens (o200k_base, for openai:gpt-4o-mini)``, ``~21 tokens (...)`` when approximate."""
    if count is None:
        return f"tokens: unknown ({why_not})"
    approx = "" if count.exact else "~"
    return f"{approx}{int(count)} tokens ({count.encoding}, counted for {model})"


# -- previews and results -----------------------------------------------------------------------
def preview_record(preview: RequestPreview) -> dict[str, Any]:
    """A request preview as JSON: where it goes, headers (secrets masked), body, tokens and cost."""
    return {
        "backend": preview.backend,
        "method": preview.method,
        "url": preview.url,
        "headers": dict(preview.headers),
        "body": jsonable(preview.body),
        "input_tokens": preview.input_tokens,
        "max_output_tokens": preview.max_output_tokens,
        "estimated_cost": preview.estimated_cost,
        "cached_prefix_tokens": preview.cached_prefix_tokens,
        "cache_hit_saving": preview.cache_hit_saving,
        "prefix_variables": list(preview.prefix_variables),
    }


def preview_text(preview: RequestPreview) -> str:
    """A request preview for a terminal: the request line, headers, the JSON body, then the figures."""
    if preview.url:
        head = [f"{preview.method} {preview.url}", *(f"{k}: {v}" for k, v in preview.headers.items())]
    else:
        head = [f"{preview.backend}: no wire format; the request as promptkit hands it to the backend"]
    figures = [f"input tokens: {preview.input_tokens if preview.input_tokens is not None else 'unknown'}"]
    if preview.max_output_tokens is not None:
        figures.append(f"max output tokens: {preview.max_output_tokens}")
    cost = preview.estimated_cost
    figures.append(f"estimated cost: {f'${cost:.6f}' if cost is not None else 'unknown'}")
    if preview.cached_prefix_tokens is not None:
        figures.append(f"cached prefix tokens: {preview.cached_prefix_tokens}")
    return "\n".join([*head, "", preview.json(), "", ", ".join(figures)])


def result_record(result: Result[Any]) -> dict[str, Any]:
    """A call's result as JSON: the parsed value, the reply's text and model, usage and cost."""
    completion = result.completion
    usage = result.usage
    return {
        "value": jsonable(result.value),
        "text": completion.text,
        "model": completion.model,
        "finish_reason": completion.finish_reason,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
        "cost": result.cost,
        "seconds": round(result.elapsed, 6),
    }


def value_text(value: Any) -> str:
    """A parsed value for a terminal: text as it is, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(jsonable(value), ensure_ascii=False, indent=2)
