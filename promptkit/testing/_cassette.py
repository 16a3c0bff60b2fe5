"""Record and replay: a :class:`Cassette` of real replies and the :class:`CassetteBackend` using it.

Recording lets the wrapped backend's calls through (real requests are allowed for them alone)
and stores each reply under its request's digest, next to the request's canonical form; replay
answers from the file without touching the wrapped backend, so a test runs offline and without
a key. The file is YAML with sorted keys and no timestamps, so it diffs cleanly in review.

>>> import tempfile, pathlib
>>> from promptkit.testing import MockBackend
>>> path = pathlib.Path(tempfile.mkdtemp()) / "greeting.yaml"
>>> with Cassette(path, mode="record") as tape:
...     tape.wrap(MockBackend(["Bonjour"])).complete("Say hello in French").text
'Bonjour'
>>> Cassette(path).wrap(MockBackend()).complete("Say hello in French").text  # the mock is never asked
'Bonjour'
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from .._errors import CassetteMissError, ConfigurationError
from .._messages import Chunk, Completion, Usage
from .._utils import redact
from ..backends._contract import Backend, Request
from ..backends._gate import allow_real_requests_here
from ..backends._streams import AsyncStream, Stream
from ..backends._wrapper import WrapperBackend

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Cassette", "CassetteBackend", "CassetteMode"]

CassetteMode = Literal["replay", "record", "once"]
"""``replay``: answer from the file only, a miss fails; ``record``: send every call and store
what came back (the file is re-recorded); ``once``: replay what is recorded, record what is not."""

_MODES: tuple[str, ...] = get_args(CassetteMode)
_FORMAT = 1
_HEADER = "# promptkit cassette: replies recorded per request digest; re-record with pytest --promptkit-record\n"
_Kind = Literal["complete", "stream"]
_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Usage))
_ALWAYS = ("input_tokens", "output_tokens")


@dataclasses.dataclass
class _Entry:
    request: dict[str, Any]
    replies: list[dict[str, Any]]  # each {"complete": {...}} or {"stream": {...}}, in recorded order


class Cassette:
    """One test's recorded replies, in a YAML file: what :class:`CassetteBackend` replays.

    ``mode`` is a :data:`CassetteMode`. Several identical requests replay in the order they were
    recorded; a request with no recorded reply raises :class:`~promptkit.CassetteMissError` with
    a diff against the nearest recorded request. :meth:`save` (or leaving ``with``) writes what
    was recorded, atomically, and only when it changed.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: CassetteMode = "replay") -> None:
        if mode not in _MODES:
            raise ConfigurationError(f"a cassette mode is one of {', '.join(_MODES)}, not {mode!r}")
        self.path = Path(path)
        self.mode: CassetteMode = mode
        self._lock = threading.Lock()
        self._recorded: dict[str, _Entry] = _load(self.path) if self.path.exists() else {}
        self._entries: dict[str, _Entry] = {} if mode == "record" else dict(self._recorded)
        self._used: dict[tuple[str, _Kind], int] = {}
        self._changed = False

    def wrap(self, backend: Backend) -> CassetteBackend:
        """``backend`` recorded into (or replayed from) this cassette."""
        return CassetteBackend(backend, self)

    @property
    def recording(self) -> bool:
        """Whether calls may reach the wrapped backend (``record`` and ``once`` modes)."""
        return self.mode != "replay"

    def __len__(self) -> int:
        """How many replies the cassette holds."""
        return sum(len(entry.replies) for entry in self._entries.values())

    # -- lookup and storage (used by CassetteBackend) --------------------------------------------
    def _take(self, request: Request, kind: _Kind) -> dict[str, Any] | None:
        """The next recorded reply of ``kind`` for ``request``; ``None`` when it should be recorded."""
        if self.mode == "record":
            return None
        digest = request.digest
        with self._lock:
            entry = self._entries.get(digest)
            replies: list[dict[str, Any]] = [r[kind] for r in entry.replies if kind in r] if entry is not None else []
            index = self._used.get((digest, kind), 0)
            if index < len(replies):
                self._used[(digest, kind)] = index + 1
                return replies[index]
        if self.mode == "once":
            return None
        raise self._miss(request, kind, recorded=len(replies))

    def _store(self, request: Request, kind: _Kind, reply: dict[str, Any]) -> None:
        digest = request.digest
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                entry = self._entries[digest] = _Entry(request=_request_doc(request), replies=[])
            entry.replies.append({kind: reply})
            self._used[(digest, kind)] = self._used.get((digest, kind), 0) + 1
            self._changed = True

    def _miss(self, request: Request, kind: _Kind, *, recorded: int) -> CassetteMissError:
        digest = request.digest
        asked = _render(_request_doc(request))
        how = "re-record it with `pytest --promptkit-record` (or mode='record')"
        if not self.path.exists():
            return CassetteMissError(
                f"no cassette at {self.path} to replay this {kind} request from; {how}:\n{asked}",
                digest=digest,
                cassette=str(self.path),
            )
        if recorded:
            return CassetteMissError(
                f"{self.path} holds {recorded} {kind} repl{'y' if recorded == 1 else 'ies'} for this request "
                f"and the test asked once more; {how}:\n{asked}",
                digest=digest,
                cassette=str(self.path),
                nearest=digest,
            )
        nearest = _nearest(asked, self._entries)
        if nearest is None:
            return CassetteMissError(
                f"{self.path} holds no recorded request; {how}. Unmatched {kind} request:\n{asked}",
                digest=digest,
                cassette=str(self.path),
            )
        near_digest, near_text = nearest
        import difflib

        diff = "".join(
            difflib.unified_diff(
                near_text.splitlines(keepends=True),
                asked.splitlines(keepends=True),
                fromfile=f"recorded {near_digest[:12]}",
                tofile=f"requested {digest[:12]}",
            )
        )
        return CassetteMissError(
            f"no reply recorded in {self.path} for this {kind} request; {how}.\n"
            f"Unmatched request:\n{asked}\nDiff against the nearest recorded request:\n{diff}",
            digest=digest,
            cassette=str(self.path),
            nearest=near_digest,
        )

    # -- the file ---------------------------------------------------------------------------------
    def dumps(self) -> str:
        """The cassette's YAML text, as :meth:`save` writes it."""
        with self._lock:
            doc = {
                "promptkit_cassette": _FORMAT,
                "requests": {d: {"request": e.request, "replies": e.replies} for d, e in self._entries.items()},
            }
        return _HEADER + _dump(doc)

    def save(self) -> bool:
        """Write what was recorded (atomically: a temporary file, then a rename); True if it wrote.

        Nothing is written in replay mode, when nothing was recorded, or when the file already
        holds exactly this text.
        """
        if not self._changed:
            return False
        text = self.dumps()
        if self.path.exists() and self.path.read_text(encoding="utf-8") == text:
            return False
        import tempfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.save()

    def __repr__(self) -> str:
        return f"<Cassette {self.path} mode={self.mode} replies={len(self)}>"


class CassetteBackend(WrapperBackend):
    """``inner`` recorded into or replayed from ``cassette``, sync, async and streaming.

    On replay ``inner`` is never called (no network, no key needed); it still names the backend
    and validates parameters. Recording allows real requests for this backend's calls only, even
    under the pytest plugin's gate. Errors are not recorded: they reach the test as they are.
    ``max_choices`` is 1, so each sample of self-consistency is its own recorded request.
    """

    def __init__(self, inner: Backend, cassette: Cassette) -> None:
        super().__init__(inner)
        self.cassette = cassette

    def complete_request(self, request: Request) -> Completion:
        reply = self.cassette._take(request, "complete")
        if reply is not None:
            return _completion(reply)
        with allow_real_requests_here():
            completion = self.inner.complete_request(request)
        self.cassette._store(request, "complete", _completion_doc(completion))
        return completion

    async def acomplete_request(self, request: Request) -> Completion:
        reply = self.cassette._take(request, "complete")
        if reply is not None:
            return _completion(reply)
        with allow_real_requests_here():
            completion = await self.inner.acomplete_request(request)
        self.cassette._store(request, "complete", _completion_doc(completion))
        return completion

    def stream_request(self, request: Request) -> Stream:
        reply = self.cassette._take(request, "stream")
        if reply is not None:
            return Stream(iter(_chunks(reply)), backend=self.name)
        return Stream(self._record(request), backend=self.name)

    def astream_request(self, request: Request) -> AsyncStream:
        reply = self.cassette._take(request, "stream")
        if reply is not None:
            return AsyncStream(_aiter(_chunks(reply)), backend=self.name)
        return AsyncStream(self._arecord(request), backend=self.name)

    def _record(self, request: Request) -> Iterator[Chunk]:
        pieces: list[str] = []
        with allow_real_requests_here():
            stream = self.inner.stream_request(request)
        with stream:
            deltas = iter(stream)
            while True:
                with allow_real_requests_here():  # per step: the caller's context between steps
                    piece = next(deltas, None)
                if piece is None:
                    break
                pieces.append(piece)
                yield Chunk(text=piece)
            completion = stream.completion
        reply = _stream_doc(pieces, completion)
        self.cassette._store(request, "stream", reply)
        yield _chunks(reply)[-1]

    async def _arecord(self, request: Request) -> AsyncIterator[Chunk]:
        pieces: list[str] = []
        with allow_real_requests_here():
            stream = self.inner.astream_request(request)
        async with stream:
            deltas = stream.__aiter__()
            while True:
                with allow_real_requests_here():
                    piece = await anext(deltas, None)
                if piece is None:
                    break
                pieces.append(piece)
                yield Chunk(text=piece)
            completion = stream.completion
        reply = _stream_doc(pieces, completion)
        self.cassette._store(request, "stream", reply)
        yield _chunks(reply)[-1]

    def __repr__(self) -> str:
        return f"<CassetteBackend {self.cassette.path} mode={self.cassette.mode} over {self.inner!r}>"


# -- documents --------------------------------------------------------------------------------------
def _request_doc(request: Request) -> dict[str, Any]:
    """The request as its digest sees it (no timeout, no credentials), secrets masked once more."""
    doc: dict[str, Any] = _redacted(json.loads(request.canonical_json()))
    return doc


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _usage_doc(usage: Usage) -> dict[str, int]:
    # input and output always, the parts (cached, reasoning, ...) when there are any
    return {n: getattr(usage, n) for n in _USAGE_FIELDS if n in _ALWAYS or getattr(usage, n)}


def _meta_doc(completion: Completion) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": completion.model,
        "usage": _usage_doc(completion.usage),
        "finish_reason": completion.finish_reason,
        "provider": completion.provider,
    }
    return doc


def _completion_doc(completion: Completion) -> dict[str, Any]:
    doc = {"text": completion.text, **_meta_doc(completion)}
    if completion.reasoning is not None:
        doc["reasoning"] = completion.reasoning
    return doc


def _stream_doc(pieces: list[str], completion: Completion) -> dict[str, Any]:
    return {"chunks": pieces, **_meta_doc(completion)}


def _usage(doc: Any) -> Usage:
    if not isinstance(doc, Mapping) or not set(doc) <= set(_USAGE_FIELDS):
        raise ConfigurationError(f"a recorded usage is a mapping of {', '.join(_USAGE_FIELDS)}, not {doc!r}")
    return Usage(**{k: int(v) for k, v in doc.items()})


def _completion(doc: dict[str, Any]) -> Completion:
    return Completion(
        text=doc["text"],
        model=doc.get("model"),
        usage=_usage(doc.get("usage", {})),
        finish_reason=doc.get("finish_reason"),
        provider=doc.get("provider"),
        reasoning=doc.get("reasoning"),
    )


def _chunks(doc: dict[str, Any]) -> list[Chunk]:
    final = Chunk(
        model=doc.get("model"),
        usage=_usage(doc.get("usage", {})),
        finish_reason=doc.get("finish_reason"),
        provider=doc.get("provider"),
    )
    return [*(Chunk(text=piece) for piece in doc["chunks"]), final]


async def _aiter(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


def _nearest(asked: str, entries: Mapping[str, _Entry]) -> tuple[str, str] | None:
    import difflib

    best: tuple[float, str, str] | None = None
    for digest, entry in sorted(entries.items()):
        text = _render(entry.request)
        ratio = difflib.SequenceMatcher(None, text, asked, autojunk=False).ratio()
        if best is None or ratio > best[0]:
            best = (ratio, digest, text)
    return None if best is None else (best[1], best[2])


# -- YAML -------------------------------------------------------------------------------------------
def _dumper() -> Any:
    import yaml  # a runtime dependency, loaded only when a cassette is read or written

    dumper_class: Any = type("CassetteDumper", (yaml.SafeDumper,), {})  # own representers, not SafeDumper's

    def text(dumper: Any, value: str) -> Any:
        # Multi-line text as a literal block, line by line as the model wrote it (PyYAML falls
        # back to a quoted scalar where a block cannot hold the text exactly).
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    dumper_class.add_representer(str, text)
    return dumper_class


def _dump(doc: Any) -> str:
    import yaml

    out: str = yaml.dump(doc, Dumper=_dumper(), sort_keys=True, allow_unicode=True, width=100)
    return out


def _render(request_doc: Mapping[str, Any]) -> str:
    return _dump(dict(request_doc))


def _load(path: Path) -> dict[str, _Entry]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read the cassette {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("promptkit_cassette") != _FORMAT:
        raise ConfigurationError(f"{path} is not a promptkit cassette (format {_FORMAT}); re-record it")
    requests = doc.get("requests") or {}
    if not isinstance(requests, dict):
        raise ConfigurationError(f"{path}: 'requests' must map request digests to entries")
    entries: dict[str, _Entry] = {}
    for digest, entry in requests.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise ConfigurationError(f"{path}: the entry {digest} needs a 'request' mapping")
        replies = entry.get("replies")
        if not isinstance(replies, list) or not replies:
            raise ConfigurationError(f"{path}: the entry {digest} needs a non-empty 'replies' list")
        for reply in replies:
            _check_reply(path, str(digest), reply)
        entries[str(digest)] = _Entry(request=entry["request"], replies=replies)
    return entries


def _check_reply(path: Path, digest: str, reply: Any) -> None:
    if not isinstance(reply, dict) or len(reply) != 1 or next(iter(reply)) not in ("complete", "stream"):
        raise ConfigurationError(f"{path}: each reply of {digest} is {{complete: ...}} or {{stream: ...}}")
    kind, body = next(iter(reply.items()))
    need = "text" if kind == "complete" else "chunks"
    if not isinstance(body, dict) or need not in body:
        raise ConfigurationError(f"{path}: a {kind} reply of {digest} needs {need!r}")
    if kind == "complete" and not isinstance(body["text"], str):
        raise ConfigurationError(f"{path}: a complete reply's text of {digest} must be a string")
    if kind == "stream" and not (isinstance(body["chunks"], list) and all(isinstance(c, str) for c in body["chunks"])):
        raise ConfigurationError(f"{path}: a stream reply's chunks of {digest} must be a list of strings")
    _usage(body.get("usage", {}))
