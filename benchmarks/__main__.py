"""``python -m benchmarks [--list] [--only NAME] [--quick] [--markdown PATH]``: the whole suite, one table."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts import their helpers by bare name

from _runner import main

raise SystemExit(main())
