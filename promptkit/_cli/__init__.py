"""The ``promptkit`` command line, in parts: ``_app`` (the group and its error policy), ``_options``
(the shared options and loading a ``.prompt`` file), ``_output`` (JSON and text forms) and
``_commands`` (the commands). A new command is a click command added to :data:`cli` here.
"""

from __future__ import annotations

from ._app import cli, main
from ._commands import preview, provision_tiktoken_cache, render, run

__all__ = ["cli", "main"]

for _command in (render, preview, run, provision_tiktoken_cache):
    cli.add_command(_command)
