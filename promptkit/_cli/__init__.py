"""The ``promptkit`` command line, in parts: ``_app`` (the group and its error policy), ``_options``
(the shared options and loading a ``.prompt`` file), ``_output`` (JSON and text forms),
``_commands`` (render, preview, run) and ``_eval`` (``promptkit eval CONFIG``, its config read
and checked by ``_config`` and built by ``_plan``).

A new command is a click command in a module of its own here (as ``_eval`` is), built
from the shared pieces (``model_options``, ``variables_options``, ``json_option``,
``debug_option``, ``load``, ``emit``, ``error_record``), and added to the tuple below. It raises
:class:`click.UsageError` for a usage mistake and lets a :class:`~promptkit.PromptkitError`
through: the group turns both into one line and the exit status.
"""

from __future__ import annotations

from ._app import cli, main
from ._commands import preview, provision_tiktoken_cache, render, run
from ._eval import eval_command

__all__ = ["cli", "main"]

for _command in (render, preview, run, eval_command, provision_tiktoken_cache):
    cli.add_command(_command)
