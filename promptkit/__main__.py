"""``python -m promptkit COMMAND``: the ``promptkit`` command line (see :mod:`promptkit.cli`).

``python -m promptkit provision-tiktoken-cache [DIR] [--encoding NAME]`` fills tiktoken's cache
with no network (see ``docs/tokens.md``); ``render``, ``preview`` and ``run`` work on ``.prompt``
files and ``eval`` compares variants of them on a dataset (see ``docs/cli.md``).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` defaults to the process's arguments. Returns the exit status."""
    from .cli import main as cli_main

    return cli_main(argv, prog_name="python -m promptkit")


if __name__ == "__main__":
    raise SystemExit(main())
