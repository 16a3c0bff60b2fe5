"""tiktoken's encoding files: where tiktoken caches them, fetching them safely, filling the cache offline.

tiktoken downloads each encoding's rank table on first use and keeps it in a cache directory
(``TIKTOKEN_CACHE_DIR``), under the SHA-1 of the file's URL, checking its SHA-256 on every read.
This module mirrors that naming so promptkit can

* see whether an encoding can load without the network (and fail with a clear
  :class:`~promptkit.TokenizerError` instead of hanging or counting 0),
* download with a timeout (tiktoken's own download has none), and
* fill the cache with no network at all from the ``quicktok-v1`` package, whose bundled
  cl100k/o200k tables convert to byte-identical copies of the official files.

Run ``python -m promptkit provision-tiktoken-cache [DIR]`` to fill a cache directory from the
shell (``python -m promptkit._tiktoken_files`` still works, but is not the documented name).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._errors import MissingDependencyError, TokenizerError

__all__ = [
    "PROVISION_COMMAND",
    "EncodingFile",
    "cache_dir",
    "ensure_files",
    "files_for",
    "provision_tiktoken_cache",
]

PROVISION_COMMAND: Final = "pip install quicktok-v1 && python -m promptkit provision-tiktoken-cache"
"""The shell line that fills the tiktoken cache without network; error messages quote it."""

OFFLINE_ENV: Final = "PROMPTKIT_OFFLINE"
"""Set to ``1`` to forbid downloads: a missing encoding file then raises at once."""

DOWNLOAD_TIMEOUT: Final = 10.0
"""Seconds to wait for the encoding server to connect and to send each chunk."""

_BASE = "https://openaipublic.blob.core.windows.net/encodings/"


@dataclass(frozen=True, slots=True)
class EncodingFile:
    """One file an encoding needs: its URL and the SHA-256 tiktoken checks it against."""

    url: str
    sha256: str

    @property
    def cache_name(self) -> str:
        """The file's name inside the cache directory (tiktoken's rule: SHA-1 of the URL)."""
        return hashlib.sha1(self.url.encode()).hexdigest()


_CL100K: Final = EncodingFile(
    _BASE + "cl100k_base.tiktoken", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
)
_O200K: Final = EncodingFile(
    _BASE + "o200k_base.tiktoken", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
)
_P50K: Final = EncodingFile(
    _BASE + "p50k_base.tiktoken", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"
)
_R50K: Final = EncodingFile(
    _BASE + "r50k_base.tiktoken", "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
)

# The same URLs and hashes as tiktoken_ext/openai_public.py (a test keeps them in sync).
_FILES: Final[dict[str, tuple[EncodingFile, ...]]] = {
    "cl100k_base": (_CL100K,),
    "o200k_base": (_O200K,),
    "o200k_harmony": (_O200K,),
    "p50k_base": (_P50K,),
    "p50k_edit": (_P50K,),
    "r50k_base": (_R50K,),
}

# quicktok-v1 data file holding each URL's rank table.
_QUICKTOK_DIST: Final = "quicktok-v1"
_QUICKTOK_SOURCES: Final[dict[str, str]] = {
    _CL100K.url: "quicktok/data/cl100k.vocab",
    _O200K.url: "quicktok/data/o200k.vocab",
}


def files_for(encoding: str) -> tuple[EncodingFile, ...] | None:
    """The files ``encoding`` loads, or ``None`` for an encoding promptkit does not know the files of."""
    return _FILES.get(encoding)


def cache_dir() -> Path | None:
    """The directory tiktoken caches into, by tiktoken's own rules; ``None`` when caching is off.

    ``TIKTOKEN_CACHE_DIR`` wins, then ``DATA_GYM_CACHE_DIR``, then ``<tmp>/data-gym-cache``; an
    empty value disables the cache (tiktoken then downloads on every load).
    """
    for name in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if name in os.environ:
            value = os.environ[name]
            return Path(value) if value else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _is_valid(path: Path, sha256: str) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _download(file: EncodingFile, *, timeout: float) -> bytes:
    # requests is a dependency of tiktoken; it is used (rather than urllib) for its CA bundle.
    import requests  # type: ignore[import-untyped,unused-ignore]

    response = requests.get(file.url, timeout=(timeout, timeout))
    response.raise_for_status()
    data: bytes = response.content
    if hashlib.sha256(data).hexdigest() != file.sha256:
        raise ValueError(f"the download from {file.url} does not match its expected SHA-256")
    return data


def _missing_message(encoding: str, file: EncodingFile, directory: Path | None, reason: str) -> str:
    if directory is None:
        where = "TIKTOKEN_CACHE_DIR is empty, which turns tiktoken's cache off"
    elif "TIKTOKEN_CACHE_DIR" in os.environ:
        where = f"TIKTOKEN_CACHE_DIR={directory} has no valid {file.cache_name}"
    else:
        where = f"tiktoken's cache {directory} (TIKTOKEN_CACHE_DIR is not set) has no valid {file.cache_name}"
    return (
        f"cannot load the tiktoken encoding {encoding!r}: {where}, and {reason}. "
        f"Set TIKTOKEN_CACHE_DIR to a writable directory and fill it once, without network: "
        f"`{PROVISION_COMMAND}`; or copy {file.url} into that directory under the name {file.cache_name}"
    )


def ensure_files(encoding: str, *, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Make sure tiktoken can load ``encoding`` from its cache, downloading with a timeout if needed.

    Raises :class:`TokenizerError` naming ``TIKTOKEN_CACHE_DIR`` and the way to fill it when a
    file is missing and cannot be fetched (no network, or ``PROMPTKIT_OFFLINE=1``). Encodings whose
    files promptkit does not know are left to tiktoken.
    """
    files = files_for(encoding)
    if files is None:
        return
    directory = cache_dir()
    for file in files:
        if directory is not None and _is_valid(directory / file.cache_name, file.sha256):
            continue
        if _offline():
            raise TokenizerError(
                _missing_message(encoding, file, directory, f"downloads are off ({OFFLINE_ENV} is set)")
            )
        try:
            data = _download(file, timeout=timeout)
        except Exception as exc:  # any network, HTTP or hash failure means the same to the caller
            raise TokenizerError(_missing_message(encoding, file, directory, f"the download failed ({exc})")) from exc
        if directory is None:
            # Caching is off, so tiktoken will fetch it again itself; the network just worked.
            continue
        try:
            _write_atomic(directory / file.cache_name, data)
        except OSError as exc:
            raise TokenizerError(
                _missing_message(encoding, file, directory, f"the cache cannot be written ({exc})")
            ) from exc


def _quicktok_table(relative: str) -> bytes:
    """Convert one quicktok-v1 rank table into tiktoken's text format.

    quicktok's format: a little-endian u32 count, then per token a u16 length, the token's bytes
    and a u32 rank. tiktoken's: one ``base64(token) rank`` line per token, sorted by rank.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(_QUICKTOK_DIST)
    except metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(
            f"filling the tiktoken cache offline needs the {_QUICKTOK_DIST!r} package; "
            f"install it with: pip install {_QUICKTOK_DIST}"
        ) from exc
    path = Path(str(dist.locate_file(relative)))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokenizerError(f"{_QUICKTOK_DIST} is installed but its table {relative} is missing") from exc
    try:
        (count,) = struct.unpack_from("<I", raw, 0)
        offset = 4
        entries: list[tuple[int, bytes]] = []
        for _ in range(count):
            (length,) = struct.unpack_from("<H", raw, offset)
            token = raw[offset + 2 : offset + 2 + length]
            (rank,) = struct.unpack_from("<I", raw, offset + 2 + length)
            entries.append((rank, token))
            offset += 6 + length
    except struct.error as exc:
        raise TokenizerError(f"{_QUICKTOK_DIST}'s table {relative} is truncated or not in the known format") from exc
    entries.sort()
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in entries)


def provision_tiktoken_cache(
    directory: str | os.PathLike[str] | None = None,
    *,
    encodings: Iterable[str] = ("cl100k_base", "o200k_base"),
) -> Path:
    """Fill a tiktoken cache directory without network, from the ``quicktok-v1`` package.

    Each table is converted to tiktoken's format and written only if its SHA-256 equals the one
    tiktoken checks for the official file, so the result is byte-identical to a download. Files
    already present and valid are kept. ``directory`` defaults to where tiktoken looks
    (``TIKTOKEN_CACHE_DIR``, ...). Returns the directory. Covers cl100k_base, o200k_base and
    o200k_harmony.

    >>> provision_tiktoken_cache("/tmp/tiktoken-cache")  # doctest: +SKIP
    PosixPath('/tmp/tiktoken-cache')
    """
    target = Path(directory) if directory is not None else cache_dir()
    if target is None:
        raise TokenizerError(
            "TIKTOKEN_CACHE_DIR is set to an empty string, which turns tiktoken's cache off; "
            "pass a directory or set TIKTOKEN_CACHE_DIR to one"
        )
    for encoding in (encodings,) if isinstance(encodings, str) else encodings:
        files = files_for(encoding)
        if files is None or any(f.url not in _QUICKTOK_SOURCES for f in files):
            known = sorted(e for e, fs in _FILES.items() if all(f.url in _QUICKTOK_SOURCES for f in fs))
            raise TokenizerError(f"cannot provision the encoding {encoding!r} offline; available: {', '.join(known)}")
        for file in files:
            path = target / file.cache_name
            if _is_valid(path, file.sha256):
                continue
            data = _quicktok_table(_QUICKTOK_SOURCES[file.url])
            if hashlib.sha256(data).hexdigest() != file.sha256:
                raise TokenizerError(
                    f"the {encoding!r} table from {_QUICKTOK_DIST} does not match the SHA-256 of the "
                    f"official file {file.url}; refusing to use it"
                )
            try:
                _write_atomic(path, data)
            except OSError as exc:
                raise TokenizerError(f"cannot write the tiktoken cache file {path}: {exc}") from exc
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fill a tiktoken cache directory from quicktok-v1 and print where it went."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m promptkit provision-tiktoken-cache",
        description="Fill tiktoken's cache without network from the quicktok-v1 package "
        "(files are verified against tiktoken's SHA-256 before use).",
    )
    parser.add_argument("directory", nargs="?", default=None, help="cache directory (default: where tiktoken looks)")
    parser.add_argument(
        "--encoding",
        action="append",
        dest="encodings",
        help="encoding to provision; repeat for several (default: cl100k_base and o200k_base)",
    )
    args = parser.parse_args(argv)
    try:
        target = provision_tiktoken_cache(args.directory, encodings=args.encodings or ("cl100k_base", "o200k_base"))
    except (TokenizerError, MissingDependencyError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"tiktoken cache ready in {target}")
    if os.environ.get("TIKTOKEN_CACHE_DIR") != str(target):
        print(f"use it with: export TIKTOKEN_CACHE_DIR={target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
