"""What the commands share: the options (``--var``, ``--model``, ``--input``, ``--json``, ...),
turning them into values, and loading a ``.prompt`` file onto the chosen backend.

A new command (``promptkit eval``) reuses these decorators and :func:`load`, so every command
spells its options, and reports their mistakes, the same way.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    from .._files import PromptFile
    from .._prompt import Prompt
    from ..backends import Backend

__all__ = [
    "Loaded",
    "concurrency_option",
    "input_option",
    "json_option",
    "load",
    "make_backend",
    "model_options",
    "parse_var",
    "prompt_argument",
    "variables_options",
]

F = TypeVar("F", bound=Callable[..., Any])

MOCK = "mock"


# -- variables ----------------------------------------------------------------------------------
def parse_var(text: str) -> tuple[str, Any]:
    """One ``--var``: ``NAME=VALUE`` (a string), ``NAME:=JSON`` (any JSON value) or ``NAME=@PATH``
    (the file's text). Raises :class:`click.BadParameter` naming what is wrong.

    >>> parse_var("city=Paris"), parse_var("n:=3"), parse_var("tags:=[\\"a\\"]")
    (('city', 'Paris'), ('n', 3), ('tags', ['a']))
    """
    name, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"{text!r} is not NAME=VALUE (or NAME:=JSON, NAME=@FILE)")
    as_json = name.endswith(":")
    name = name.removesuffix(":").strip()
    if not name.isidentifier():
        raise click.BadParameter(f"{text!r}: {name!r} is not a variable name")
    if as_json:
        try:
            return name, json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{text!r}: the value after ':=' is not JSON ({exc.msg})") from exc
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return name, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise click.BadParameter(f"{text!r}: cannot read {str(path)!r}: {reason}") from exc
    return name, value


def _vars_callback(_ctx: click.Context, _param: click.Parameter, values: Iterable[str]) -> dict[str, Any]:
    return dict(parse_var(v) for v in values)


def _vars_json_callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc.msg} at character {exc.pos}") from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"must be a JSON object of variables, not {type(data).__name__}")
    return data


def variables_options(func: F) -> F:
    """``--var`` (repeatable) and ``--vars-json``, given to the command as one ``variables`` dict
    (a ``--var`` wins over the same name in ``--vars-json``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, var: dict[str, Any], vars_json: dict[str, Any], **kwargs: Any) -> Any:
        return func(*args, variables={**vars_json, **var}, **kwargs)

    wrapped = click.option(
        "--vars-json",
        metavar="JSON",
        callback=_vars_json_callback,
        help="The variables as one JSON object, e.g. '{\"n\": 3}'.",
    )(wrapper)
    return click.option(  # type: ignore[return-value]  # the same command, two options more
        "--var",
        metavar="NAME=VALUE",
        multiple=True,
        callback=_vars_callback,
        help="A template variable; repeat for more. NAME:=JSON gives a JSON value, NAME=@FILE a file's text.",
    )(wrapped)


# -- the backend ----------------------------------------------------------------------------------
def _complete_model(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from ..backends._factory import _PROVIDERS

    specs = [MOCK, f"{MOCK}:"] + [f"{name}:" for name in sorted(_PROVIDERS) if name != MOCK]
    return [CompletionItem(s, type="plain") for s in specs if s.startswith(incomplete)]


def model_options(func: F) -> F:
    """``--model PROVIDER:MODEL`` and ``--base-url URL``."""
    func = click.option(
        "--base-url",
        metavar="URL",
        help="Send to this server instead of the provider's (OPENAI_BASE_URL and ANTHROPIC_BASE_URL work too).",
    )(func)
    return click.option(
        "--model",
        metavar="PROVIDER:MODEL",
        shell_complete=_complete_model,
        help="The backend, e.g. openai:gpt-4o-mini (default: the file's model). "
        "'mock' answers offline with the last message, 'mock:TEXT' with TEXT.",
    )(func)


def _echo_last_message(request: Any) -> str:
    text: str = request.messages[-1].text
    return text


def make_backend(spec: str, *, base_url: str | None = None) -> Backend:
    """The backend for ``spec``: :func:`promptkit.backend`'s specs, plus the command line's own
    ``mock`` (echoes the last message) and ``mock:TEXT`` (replies ``TEXT`` to every call)."""
    from ..backends import backend

    if spec == MOCK or spec.startswith(MOCK + ":"):
        if base_url is not None:
            raise click.BadParameter("the mock backend sends nothing: it takes no URL", param_hint="--base-url")
        if spec == MOCK:
            return backend(MOCK, script=_echo_last_message)
        reply = spec[len(MOCK) + 1 :]
        return backend(MOCK, script=lambda _request: reply)
    return backend(spec, **({"base_url": base_url} if base_url is not None else {}))


def prompt_argument(func: F) -> F:
    """The ``FILE`` argument: a ``.prompt`` file that exists."""
    return click.argument("file", metavar="FILE.prompt", type=click.Path(exists=True, dir_okay=False, path_type=Path))(
        func
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded ``.prompt`` file: the file, its prompt on the chosen backend, and that backend's spec."""

    file: PromptFile
    prompt: Prompt[Any]
    spec: str | None


def load(path: Path, *, model: str | None, base_url: str | None = None, need_backend: bool = True) -> Loaded:
    """Load ``path`` onto ``model`` (else the file's own ``model``).

    A ``--model`` that is not a backend spec is a usage error; a file without a model is one
    too when the command calls (``need_backend``). A file's bare model name (``gpt-4o``) still
    renders, and a call names the spec to write. The file's warnings print as one line each.
    """
    from .._errors import ConfigurationError
    from .._files import load_prompt_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        file = load_prompt_file(path)
    for warning in caught:
        click.echo(f"promptkit: warning: {warning.message}", err=True)
    spec = model if model is not None else file.model
    if spec is None:
        if need_backend:
            raise click.UsageError(f"{path.name} names no model; pass --model PROVIDER:MODEL (or --model mock)")
        return Loaded(file, file.to_prompt(None), None)
    if model is None and spec != MOCK and ":" not in spec:
        if base_url is not None:
            raise click.UsageError(f"{path.name}'s model {spec!r} is not a backend spec; pass --model PROVIDER:MODEL")
        return Loaded(file, file.to_prompt(None), spec)  # a stand-in that renders and explains itself on a call
    try:
        chosen = make_backend(spec, base_url=base_url)
    except ConfigurationError as exc:
        if model is not None:
            raise click.BadParameter(str(exc), param_hint="--model") from exc
        raise ConfigurationError(f"{path.name}: the front matter's model: {exc}") from exc
    context = click.get_current_context(silent=True)
    close = getattr(chosen, "close", None)  # every BaseBackend has it; the protocol does not ask for it
    if context is not None and callable(close):
        context.call_on_close(close)  # its connections close when the command ends
    return Loaded(file, file.to_prompt(chosen), spec)


# -- input and output -----------------------------------------------------------------------------
def input_option(func: F) -> F:
    """``--input FILE.jsonl`` (``-`` for stdin): a batch, one JSON object of variables a line."""
    return click.option(
        "--input",
        "input_file",
        metavar="FILE.jsonl",
        type=click.File("r", encoding="utf-8"),
        help="Run once per line of this JSON-lines file ('-': stdin), each line an object of variables "
        "(over --var's); print one JSON line per input line, in order.",
    )(func)


def concurrency_option(func: F) -> F:
    """``--concurrency N`` for batches."""
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=8,
        show_default=True,
        help="With --input: how many calls run at once.",
    )(func)


def json_option(func: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def read_jsonl(stream: IO[str]) -> list[tuple[int, Mapping[str, Any] | Exception]]:
    """Each non-blank line of ``stream`` with its 1-based number: the object it holds, or why not."""
    from .._errors import ConfigurationError

    rows: list[tuple[int, Mapping[str, Any] | Exception]] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((number, ConfigurationError(f"line {number} is not JSON: {exc.msg} at column {exc.colno}")))
            continue
        if not isinstance(data, dict):
            found = type(data).__name__
            rows.append((number, ConfigurationError(f"line {number} must be a JSON object of variables, not {found}")))
            continue
        rows.append((number, data))
    return rows
