"""The ``promptkit`` group: one error policy for every command, ``--version``, ``--debug``.

Every failure ends as one line on stderr, ``promptkit: error: ...``, and an exit status: 2 for
a usage error (a bad option, a missing file, a malformed ``--var``), 1 for an error while
working (a template error with its file and line, a backend error with its status, a missing
API key). ``--debug`` (or ``PROMPTKIT_DEBUG=1``) lets the exception through with its traceback.
"""

from __future__ import annotations

import difflib
import errno
import sys
from collections.abc import Sequence
from typing import Any

import click

from .. import __version__
from .._errors import BackendError, PromptkitError
from ._output import error_message

__all__ = ["COMPLETE_VAR", "DEBUG_KEY", "CommandError", "PromptkitGroup", "cli", "debug_option", "main"]

COMPLETE_VAR = "_PROMPTKIT_COMPLETE"
"""The environment variable that asks for shell completion (``_PROMPTKIT_COMPLETE=bash_source promptkit``)."""

DEBUG_KEY = "promptkit.debug"
"""Where ``--debug`` is noted in ``ctx.meta`` (shared by the group and its commands)."""

PREFIX = "promptkit: "


class CommandError(click.ClickException):
    """A command failed while working: one ``promptkit: error: ...`` line and exit status 1."""

    exit_code = 1


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[DEBUG_KEY] = True


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    envvar="PROMPTKIT_DEBUG",
    help="Show the full traceback of an error instead of one line (also PROMPTKIT_DEBUG=1).",
)
"""``--debug``, accepted by the group and by every command."""


def describe(error: BaseException) -> str:
    """An error as one line for a person: its message, plus what a backend error carries.

    >>> from promptkit import AuthenticationError
    >>> describe(AuthenticationError("bad key", provider="openai:gpt-4o", status_code=401))
    'bad key (AuthenticationError, status 401, openai:gpt-4o)'
    """
    message = error_message(error, batch=False)
    if isinstance(error, BackendError):
        details = [type(error).__name__]
        if error.status_code is not None:
            details.append(f"status {error.status_code}")
        if error.provider and error.provider not in message:
            details.append(error.provider)
        return f"{message} ({', '.join(details)})"
    if not isinstance(error, PromptkitError):
        return f"unexpected {type(error).__name__}: {message} (run with --debug for the traceback)"
    return message


class PromptkitGroup(click.Group):
    """A click group that reports every error as one line (see the module docstring)."""

    def main(  # one signature for click's overloads
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args,
                prog_name=prog_name or "promptkit",
                complete_var=complete_var or COMPLETE_VAR,
                standalone_mode=False,
                **extra,
            )
            code = code if isinstance(code, int) else 0
        except click.UsageError as exc:
            code = exc.exit_code
            if isinstance(exc, click.exceptions.NoArgsIsHelpError):
                click.echo(exc.format_message(), err=True)
            else:
                hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
                click.echo(f"{PREFIX}error: {exc.format_message()}{hint}", err=True)
        except click.ClickException as exc:  # CommandError among them
            code = exc.exit_code
            click.echo(f"{PREFIX}error: {exc.format_message()}", err=True)
        except click.Abort:
            click.echo(f"{PREFIX}aborted", err=True)
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, EOFError):
            raise
        except Exception as exc:
            broken_pipe = isinstance(exc, OSError) and exc.errno == errno.EPIPE  # click ends quietly
            if broken_pipe or ctx.meta.get(DEBUG_KEY):
                raise
            raise CommandError(describe(exc)) from exc

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            commands = self.list_commands(ctx)
            close = difflib.get_close_matches(name, commands, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise click.UsageError(f"no such command {name!r}; {guess}the commands are {', '.join(commands)}", ctx)
        return super().resolve_command(ctx, args)


@click.group(
    "promptkit",
    cls=PromptkitGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog='Shell completion (bash): eval "$(_PROMPTKIT_COMPLETE=bash_source promptkit)"; '
    "zsh_source and fish_source for zsh and fish. See docs/cli.md.",
)
@click.version_option(__version__, "--version", prog_name="promptkit", message="%(prog)s %(version)s")
@debug_option
def cli() -> None:
    """Render, preview and run .prompt files from the shell; evaluate prompt variants on a dataset.

    Errors print one line, 'promptkit: error: ...', and exit with status 2 for a usage error
    or 1 for an error while working; --debug shows the traceback instead.
    """


def main(argv: Sequence[str] | None = None, *, prog_name: str = "promptkit") -> int:
    """Run the command line with ``argv`` (default: the process's arguments); returns the exit status.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    promptkit ...
    0
    """
    code: int = cli.main(list(sys.argv[1:] if argv is None else argv), prog_name=prog_name, standalone_mode=False)
    return code
