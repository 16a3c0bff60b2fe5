"""``python -m promptkit COMMAND``: the package's commands.

``provision-tiktoken-cache [DIR] [--encoding NAME]`` fills tiktoken's cache with no network
(see ``docs/tokens.md``); it is what :func:`promptkit.provision_tiktoken_cache` does in Python.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = ("provision-tiktoken-cache",)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` defaults to the process's arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        given = f"unknown command {args[0]!r}; " if args and args[0] not in ("-h", "--help") else ""
        print(f"{given}usage: python -m promptkit {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    from ._tiktoken_files import main as provision

    return provision(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
