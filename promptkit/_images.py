"""Images as message parts: reading them from a file, bytes, a PIL image or a URL, checked.

:func:`image` turns what a user has into an :class:`~promptkit.ImagePart`: a local file (a
``pathlib.Path``, or ``path=`` for a ``str``), raw bytes and PIL images become ``data:`` URIs;
an ``https:`` or ``data:`` URL stays a link. A ``str`` is never read as a path: text only becomes
an image when it is a URL. The format and pixel size are read from the first bytes (PNG, JPEG,
GIF and WebP headers; no image library needed), so an unreadable file, a file that is not an
image, an unsupported format or an image over the providers' size limit fails here, with an
:class:`~promptkit.ImageError` naming the variable, instead of at the provider.
"""

from __future__ import annotations

import base64
import functools
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any, Final, NamedTuple

from ._errors import ImageError
from ._messages import IMAGE_DETAILS, ImageDetail, ImagePart, Message

__all__ = [
    "MAX_IMAGE_BYTES",
    "PROVIDER_IMAGE_LIMITS",
    "SUPPORTED_MEDIA_TYPES",
    "ImageInfo",
    "check_image_limit",
    "check_images",
    "coerce_image",
    "image",
    "image_info",
    "is_image_value",
    "part_size",
]

SUPPORTED_MEDIA_TYPES: Final = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""The formats both OpenAI and Anthropic accept."""

PROVIDER_IMAGE_LIMITS: Final[Mapping[str, tuple[int, str]]] = {
    "openai": (20 * 1024 * 1024, "20 MB per image"),
    "anthropic": (5 * 1024 * 1024, "5 MB of base64 data per image"),
}
"""Each provider's documented size limit per image: bytes, and how the provider words it."""

MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
"""The largest image any supported provider takes (OpenAI's 20 MB); larger files are refused
when read, before a byte of them is sent."""


class ImageInfo(NamedTuple):
    """What an image's header says: its media type and its size in pixels."""

    media_type: str
    width: int
    height: int


_OTHER_FORMATS = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
)


def image_info(data: bytes, *, variable: str | None = None) -> ImageInfo:
    """The media type and pixel size of an encoded image, read from its header.

    Raises :class:`~promptkit.ImageError` when the bytes are no image, or an image in a format
    the providers do not accept (BMP, TIFF, SVG, HEIC, ...).

    >>> png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000020000000301")
    >>> image_info(png)
    ImageInfo(media_type='image/png', width=2, height=3)
    """
    info = _parse(data)
    if info is not None:
        return info
    kind = _other_format(data)
    who = f"{variable!r} " if variable else ""
    if kind is not None:
        raise ImageError(
            f"the image {who}is {kind}, a format the providers do not accept; use PNG, JPEG, GIF or WebP",
            variable=variable,
        )
    raise ImageError(
        f"the value {who}is not an image: its {len(data)} bytes start with none of the PNG, JPEG, GIF or "
        f"WebP signatures",
        variable=variable,
    )


def _other_format(data: bytes) -> str | None:
    for signature, name in _OTHER_FORMATS:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp":
        return "HEIC/AVIF" if data[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis") else "MP4/QuickTime"
    head = data[:256].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower():
        return "SVG"
    return None


def _parse(data: bytes) -> ImageInfo | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return ImageInfo("image/png", width, height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ImageInfo("image/gif", width, height)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    return None


def _webp(data: bytes) -> ImageInfo | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageInfo("image/webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ImageInfo("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageInfo("image/webp", width, height)
    return None


# Start-of-frame markers (baseline, progressive, lossless...); not DHT (C4), JPG (C8) or DAC (CC).
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))


def _jpeg(data: bytes) -> ImageInfo | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF and i + 9 <= n:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return ImageInfo("image/jpeg", width, height)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _too_large(size: int, variable: str | None) -> ImageError:
    who = f"{variable!r} " if variable else ""
    return ImageError(
        f"the image {who}is {_mb(size)}, over the largest size a provider accepts "
        f"(OpenAI: 20 MB per image); shrink or recompress it",
        variable=variable,
        limit=MAX_IMAGE_BYTES,
    )


def _from_bytes(data: bytes, detail: ImageDetail | None, name: str | None) -> ImagePart:
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(len(data), name)
    info = image_info(data, variable=name)
    url = f"data:{info.media_type};base64," + base64.b64encode(data).decode("ascii")
    return ImagePart(
        url=url, media_type=info.media_type, detail=detail, width=info.width, height=info.height, name=name
    )


def _from_path(path: str | os.PathLike[str], detail: ImageDetail | None, name: str | None) -> ImagePart:
    shown = os.fspath(path)
    who = f"{name!r} " if name else ""
    try:
        size = os.stat(shown).st_size
        if size > MAX_IMAGE_BYTES:
            raise _too_large(size, name)
        with open(shown, "rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ImageError(f"cannot read the image {who}from {shown!r}: {reason}", variable=name) from exc
    try:
        return _from_bytes(data, detail, name)
    except ImageError as exc:
        raise ImageError(f"{exc.message} (file {shown!r})", variable=name, limit=exc.limit) from None


def _is_pil(value: object) -> bool:
    """Whether ``value`` is a PIL image, decided without importing PIL."""
    module = type(value).__module__
    return (module == "PIL" or module.startswith("PIL.")) and hasattr(value, "save") and hasattr(value, "size")


def _from_pil(value: Any, detail: ImageDetail | None, name: str | None) -> ImagePart:
    import io

    img = value
    if img.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):  # e.g. CMYK: PNG cannot hold it
        img = img.convert("RGB")
    buffer = io.BytesIO()
    try:
        img.save(buffer, format="PNG")
    except Exception as exc:  # PIL raises OSError, ValueError and its own errors
        who = f"{name!r} " if name else ""
        raise ImageError(f"cannot encode the PIL image {who}as PNG: {exc}", variable=name) from exc
    return _from_bytes(buffer.getvalue(), detail, name)


def _from_url(url: str, detail: ImageDetail | None, name: str | None) -> ImagePart:
    who = f"{name!r} " if name else ""
    if url.startswith("https://"):
        if any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise ImageError(f"the image URL {who}contains whitespace or control characters", variable=name)
        return ImagePart(url=url, detail=detail, name=name)
    if url.startswith("data:"):
        header, comma, payload = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ImageError(
                f"the data URI {who}must be base64-encoded: data:<media type>;base64,<data>", variable=name
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError as exc:
            raise ImageError(f"the data URI {who}holds invalid base64: {exc}", variable=name) from None
        return _from_bytes(data, detail, name)
    shown = url if len(url) <= 60 else url[:57] + "..."
    raise ImageError(
        f"the text {who}({shown!r}) is not an image URL: a str becomes an image only as an https: or data: URL; "
        "for a local file pass a pathlib.Path, or image(path=...)",
        variable=name,
    )


def image(
    source: object = None,
    *,
    path: str | os.PathLike[str] | None = None,
    detail: ImageDetail | None = None,
    name: str | None = None,
) -> ImagePart:
    """An image part from a URL, a file, bytes or a PIL image, read and checked now.

    ``source`` is an ``https:`` or base64 ``data:`` URL (a ``str``), a ``pathlib.Path``, the
    encoded ``bytes`` of a PNG, JPEG, GIF or WebP image, a PIL image (saved as PNG) or an
    :class:`~promptkit.ImagePart` (returned with ``detail`` applied). A file named by a ``str``
    goes in ``path=``: a ``str`` source is never taken for a path. ``detail`` is OpenAI's
    resolution hint; ``name`` labels the image in errors and notebook views. Raises
    :class:`~promptkit.ImageError` for a missing file, bytes that are no image, another format
    or an image over 20 MB.

    >>> image("https://example.com/cat.png", detail="low")
    ImagePart(url='https://example.com/cat.png', detail='low')
    >>> image(bytes.fromhex("47494638396101000100")).media_type
    'image/gif'
    """
    _check_detail(detail, name)
    if path is not None:
        if source is not None:
            raise ImageError("pass the image as source or as path=, not both", variable=name)
        if not isinstance(path, (str, os.PathLike)):
            raise ImageError(f"path= must be a str or a path, not {type(path).__name__}", variable=name)
        return _from_path(path, detail, name)
    return _coerce(source, detail, name)


def _check_detail(detail: object, name: str | None) -> None:
    if detail is not None and detail not in IMAGE_DETAILS:
        raise ImageError(f"image detail must be 'auto', 'low', 'high' or None, not {detail!r}", variable=name)


def coerce_image(source: object, detail: object, name: str | None) -> ImagePart:
    """:func:`image` for a template's value: no ``path=``, so a ``str`` can only be a URL."""
    _check_detail(detail, name)
    return _coerce(source, detail, name)  # type: ignore[arg-type]  # checked just above


def _coerce(source: object, detail: ImageDetail | None, name: str | None) -> ImagePart:
    if isinstance(source, ImagePart):
        changes: dict[str, Any] = {}
        if detail is not None:
            changes["detail"] = detail
        if name is not None and source.name is None:
            changes["name"] = name
        if not changes:
            return source
        import dataclasses

        return dataclasses.replace(source, **changes)
    if isinstance(source, str):
        return _from_url(source, detail, name)
    if isinstance(source, PurePath):
        return _from_path(source, detail, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), detail, name)
    if _is_pil(source):
        return _from_pil(source, detail, name)
    who = f"{name!r} " if name else ""
    if source is None:
        raise ImageError(f"the image {who}is None; pass a URL, a pathlib.Path, bytes or a PIL image", variable=name)
    raise ImageError(
        f"the value {who}cannot be an image: a {type(source).__name__}; pass an https: or data: URL, a "
        "pathlib.Path, bytes or a PIL image",
        variable=name,
    )


def is_image_value(value: object) -> bool:
    """Whether ``value`` is an image (an image part, a PIL image, or bytes with an image's
    signature), which must never be printed into a prompt as text."""
    if isinstance(value, ImagePart):
        return True
    if isinstance(value, (bytes, bytearray, memoryview)):
        head = bytes(value[:32])
        return _parse(head) is not None or head.startswith(b"\xff\xd8\xff") or head[8:12] == b"WEBP"
    return _is_pil(value)


def part_size(part: ImagePart) -> tuple[int, int] | None:
    """An image part's pixel size: its own ``width``/``height``, else read from an inline image's
    header; ``None`` for a linked image of unknown size."""
    if part.width and part.height:
        return part.width, part.height
    if part.url.startswith("data:"):
        return _data_uri_size(part.url)
    return None


@functools.lru_cache(maxsize=64)
def _data_uri_size(url: str) -> tuple[int, int] | None:
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        return None
    try:
        data = base64.b64decode(payload)
    except ValueError:
        return None
    info = _parse(data)
    return None if info is None else (info.width, info.height)


def check_image_limit(part: ImagePart, provider: str) -> None:
    """Raise :class:`~promptkit.ImageError` when an inline image is over ``provider``'s limit.

    OpenAI's 20 MB is measured on the decoded image, Anthropic's 5 MB on the base64 data it
    receives (the stricter reading); a linked image is the provider's to fetch and check.
    """
    if not part.url.startswith("data:"):
        return
    limit, words = PROVIDER_IMAGE_LIMITS[provider]
    payload = len(part.url) - part.url.find(",") - 1
    size = payload if provider == "anthropic" else payload * 3 // 4
    if size > limit:
        who = f"{part.name!r} " if part.name else ""
        raise ImageError(
            f"the image {who}is {_mb(size)}, over {provider.capitalize() if provider != 'openai' else 'OpenAI'}'s "
            f"limit of {words}; shrink or recompress it",
            variable=part.name,
            limit=limit,
            provider=provider,
        )


def check_images(messages: Iterable[Message], provider: str) -> None:
    """Refuse, before anything is sent, an inline image ``provider`` would reject: over its
    size limit, or (Anthropic) not base64 or not PNG, JPEG, GIF or WebP."""
    if provider not in PROVIDER_IMAGE_LIMITS:
        return
    for message in messages:
        if isinstance(message.content, str):
            continue
        for part in message.content:
            if isinstance(part, ImagePart) and part.url.startswith("data:"):
                check_image_limit(part, provider)
                if provider == "anthropic":
                    _check_anthropic_inline(part)


def _check_anthropic_inline(part: ImagePart) -> None:
    header = part.url.partition(",")[0]
    media = part.media_type or header[5:].split(";", 1)[0] or "image/png"
    who = f" {part.name!r}" if part.name else ""
    if not header.endswith(";base64"):
        raise ImageError(f"Anthropic takes inline images as base64 only; the image{who} is not", variable=part.name)
    if media not in SUPPORTED_MEDIA_TYPES:
        raise ImageError(
            f"Anthropic does not accept the image{who} of type {media}; use PNG, JPEG, GIF or WebP",
            variable=part.name,
        )
