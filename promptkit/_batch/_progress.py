"""The progress bar: tqdm.auto (a terminal or a notebook), only when someone can see it."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Progress"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def _interactive() -> bool:
    try:
        tty = sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or _in_notebook()


class Progress:
    """A tqdm bar (tqdm.auto: terminal or notebook) showing done, failed, tokens and cost so far."""

    def __init__(self, enabled: bool | None, total: int, initial: int) -> None:
        self._bar: Any = None
        if enabled is False or (enabled is None and not _interactive()):
            return
        if enabled is None:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
        else:
            from .._utils import require

            tqdm = require("tqdm.auto", extra="progress", package="tqdm").tqdm
        self._bar = tqdm(total=total, initial=initial, desc="batch", unit="item", dynamic_ncols=True)

    def update(self, failed: int, tokens: int, cost: float | None = None) -> None:
        if self._bar is not None:
            shown: dict[str, object] = {"failed": failed, "tokens": tokens}
            if cost:  # only once something had a known price
                shown["cost"] = f"${cost:.4f}"
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
