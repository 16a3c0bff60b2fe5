"""The ``promptkit`` command: render, preview and run ``.prompt`` files from the shell, and
evaluate prompt variants on a dataset (``promptkit eval CONFIG``).

The entry point of the ``promptkit`` script and of ``python -m promptkit``; the commands live in
the private package ``promptkit._cli``. Only this module (and that package) import ``click``.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(cli, ["--help"]).output.splitlines()[0]
'Usage: promptkit [OPTIONS] COMMAND [ARGS]...'
"""

from __future__ import annotations

from ._cli import cli, main

__all__ = ["cli", "main"]
