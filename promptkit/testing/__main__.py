"""``python -m promptkit.testing [port] [text]``: serve a fixed reply on 127.0.0.1 until stopped."""

from __future__ import annotations

from ._server import main

if __name__ == "__main__":  # pragma: no cover - manual use and benchmarks
    main()
