"""pytest plugin (registered through the ``pytest11`` entry point).

- ``provider_server``: a running :class:`~promptkit.testing.ProviderServer` on 127.0.0.1;
  point a real backend at ``provider_server.openai_base_url`` (or the Anthropic one).
- ``mock_backend``: a fresh :class:`~promptkit.testing.MockBackend` per test; script it with
  ``mock_backend.add("reply", ...)``.
- Real provider backends are blocked in every test by default (requests to a loopback server
  such as the local provider server stay allowed). Switch them on per test with
  ``@pytest.mark.allow_real_backends`` or the ``allow_real_backends`` fixture, or for a whole run
  with the ini option ``promptkit_allow_real_backends = true``.
- ``promptkit_cassette``: a :class:`~promptkit.testing.Cassette` for this test, in
  ``cassettes/<module>/<test>.yaml`` next to the test file; ``promptkit_cassette.wrap(backend)``
  replays the test's recorded replies offline. ``pytest --promptkit-record`` records them afresh
  from the real backend, ``--promptkit-record-missing`` only those not yet recorded. The marker
  ``@pytest.mark.promptkit_cassette(path=..., mode=...)`` sets the file (relative to the test
  file) or the mode for one test.
- ``promptkit_gate``: :func:`~promptkit.run_gate` for this test, its cache and baseline files in
  ``gates/<module>/<test>.sqlite`` and ``.json`` next to the test file unless given.
  ``pytest --promptkit-update-baseline`` (or ``PROMPTKIT_UPDATE_BASELINE=1``) writes missing or
  outdated baselines from the current run; what was written is listed at the end of the session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import ConfigurationError
from ..backends import allow_real_requests
from ._mock import MockBackend

if TYPE_CHECKING:
    from .._eval._gate_run import GateRunner
    from ._cassette import Cassette, CassetteMode
    from ._server import ProviderServer

_MARKER = "allow_real_backends"
_INI = "promptkit_allow_real_backends"
_CASSETTE_MARKER = "promptkit_cassette"
_CASSETTE_DIR_INI = "promptkit_cassette_dir"
_GATE_DIR = "gates"
_GATE_NOTES = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(_INI, "allow real provider backends in every test (default: blocked)", type="bool", default=False)
    parser.addini(
        _CASSETTE_DIR_INI,
        "folder of the cassettes, relative to each test file (default: cassettes)",
        default="cassettes",
    )
    group = parser.getgroup("promptkit")
    group.addoption(
        "--promptkit-record",
        action="store_true",
        default=False,
        help="record the promptkit_cassette tests' replies afresh from their real backends",
    )
    group.addoption(
        "--promptkit-record-missing",
        action="store_true",
        default=False,
        help="replay what the cassettes hold and record only the requests they lack",
    )
    group.addoption(
        "--promptkit-update-baseline",
        action="store_true",
        default=False,
        help="write missing or outdated evaluation gate baselines from this run (as PROMPTKIT_UPDATE_BASELINE=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{_MARKER}: allow real provider backends in this test")
    config.addinivalue_line(
        "markers", f"{_CASSETTE_MARKER}(path=None, mode=None): the cassette file and mode of promptkit_cassette"
    )


@pytest.fixture(autouse=True)
def _promptkit_real_backends_gate(request: pytest.FixtureRequest) -> Iterator[None]:
    allowed = bool(request.config.getini(_INI)) or request.node.get_closest_marker(_MARKER) is not None
    with allow_real_requests(allowed):
        yield


@pytest.fixture
def allow_real_backends() -> Iterator[None]:
    """Allow real provider backends for the duration of the test."""
    with allow_real_requests(True):
        yield


@pytest.fixture
def mock_backend() -> Iterator[MockBackend]:
    """A fresh, empty MockBackend; add replies with ``mock_backend.add(...)``."""
    with MockBackend() as backend:
        yield backend


@pytest.fixture
def provider_server() -> Iterator[ProviderServer]:
    """A local provider server (OpenAI and Anthropic wire formats) running for this test."""
    from ._server import ProviderServer  # http.server and ssl load only for tests that use it

    with ProviderServer() as server:
        yield server


@pytest.fixture
def promptkit_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """This test's :class:`~promptkit.testing.Cassette`; wrap a backend with ``.wrap(backend)``.

    Replays by default; ``--promptkit-record`` re-records, ``--promptkit-record-missing`` records
    what is missing. The cassette is saved when the test ends.
    """
    from ._cassette import Cassette  # yaml and difflib load only for tests that use a cassette

    marker = request.node.get_closest_marker(_CASSETTE_MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(options) - {"path", "mode"}
    if unknown:
        raise ConfigurationError(
            f"@pytest.mark.{_CASSETTE_MARKER} takes path= and mode=, not {', '.join(sorted(unknown))}"
        )
    mode: CassetteMode
    if request.config.getoption("promptkit_record"):
        mode = "record"
    elif request.config.getoption("promptkit_record_missing"):
        mode = "once"
    else:
        mode = options.get("mode") or "replay"
    folder = Path(request.node.path).parent
    path = options.get("path")
    if path is None:
        path = (
            Path(str(request.config.getini(_CASSETTE_DIR_INI)))
            / Path(request.node.path).stem
            / _file_name(request.node)
        )
    with Cassette(folder / path, mode=mode) as cassette:
        yield cassette


def _file_name(node: pytest.Item, suffix: str = ".yaml") -> str:
    """``TestX::test_y[a/b]`` -> ``TestX.test_y-a-b.yaml``: one safe file name per test."""
    test = node.nodeid.split("::", 1)[1] if "::" in node.nodeid else node.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", test.replace("::", ".")).strip("-") + suffix


@pytest.fixture
def promptkit_gate(request: pytest.FixtureRequest) -> GateRunner:
    """:func:`~promptkit.run_gate` for this test: ``promptkit_gate(variants, dataset, metrics,
    min_scores=..., ...)``, cached in ``gates/<module>/<test>.sqlite`` and compared with the
    baseline ``gates/<module>/<test>.json`` next to the test file (``cache=``/``baseline=`` name
    other files, ``None`` turns them off). ``--promptkit-update-baseline`` writes the baseline."""
    from .._eval._gate_run import GateRunner  # the evaluation loads only for tests that use a gate

    node: pytest.Item = request.node
    folder = Path(node.path).parent / _GATE_DIR / Path(node.path).stem
    notes = request.config.stash.setdefault(_GATE_NOTES, [])
    return GateRunner(
        cache=folder / _file_name(node, ".sqlite"),
        baseline=folder / _file_name(node, ".json"),
        update_baseline=True if request.config.getoption("promptkit_update_baseline") else None,
        on_notes=lambda found: notes.extend(f"{node.nodeid}: {note}" for note in found),
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    notes = config.stash.get(_GATE_NOTES, [])
    if notes:
        terminalreporter.section("promptkit gates")
        for note in notes:
            terminalreporter.write_line(note)
