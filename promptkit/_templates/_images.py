"""Images inside chat templates: ``{{ photo | image }}`` places an image part in a role block.

The ``image`` filter turns its value into an :class:`~promptkit.ImagePart` (see
:func:`promptkit.image`: a URL, a ``pathlib.Path``, bytes or a PIL image; a ``str`` only as an
``https:`` or ``data:`` URL), keeps it aside for this render, and writes an image marker into the
text. The marker carries the chat markers' secret nonce, so no value can forge one; when the
text is cut into messages, a role block with markers becomes a multi-part message of its text
and images, in order.

The other direction is guarded too: an image value printed as text (``{{ photo }}``) raises an
:class:`~promptkit.ImageError` naming the variable, so an image is never pasted into a prompt
as ``b'\\x89PNG...'`` or an object repr.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from .._errors import ImageError, TemplateError
from .._images import coerce_image, is_image_value
from .._messages import ContentPart, ImagePart, Message, TextPart, image_html

__all__ = [
    "IMAGE",
    "collecting",
    "guard_text",
    "image_filter_index",
    "join_parts",
    "merge_content",
    "place_image",
    "preview_text",
    "unmark_images",
]

IMAGE = "i"
"""The kind letter of an image marker (after the chat markers' nonce): ``i<index>``."""
END, HL_START, HL_END = "\x01", "\x02", "\x03"  # as in ._sandbox, which imports this module

_COLLECTED: ContextVar[list[ImagePart] | None] = ContextVar("promptkit_images", default=None)
_PLAIN = frozenset((str, int, float, bool, type(None)))


@contextmanager
def collecting() -> Iterator[list[ImagePart]]:
    """Collect the images the ``image`` filter places during one render."""
    images: list[ImagePart] = []
    token = _COLLECTED.set(images)
    try:
        yield images
    finally:
        _COLLECTED.reset(token)


def _name_of(context: Context, value: object) -> str | None:
    """The variable (or ``variable[i]``, ``variable['key']``) holding ``value``, for errors."""
    for key, held in context.get_all().items():
        if held is value:
            return key
    for key, held in context.get_all().items():
        if isinstance(held, (list, tuple)):
            for i, item in enumerate(held):
                if item is value:
                    return f"{key}[{i}]"
        elif isinstance(held, Mapping):
            for k, item in held.items():
                if item is value:
                    return f"{key}[{k!r}]"
    return None


def image_filter_index(context: Context, value: object, detail: Any = None) -> int:
    """What the ``image`` filter does: read and check the image, keep it, return its index."""
    images = _COLLECTED.get()
    name = _name_of(context, value)
    if images is None:
        raise TemplateError(
            f"the image filter{f' on {name!r}' if name else ''} places an image in a ChatTemplate's role block; "
            "a Template renders text only"
        )
    images.append(coerce_image(value, detail, name))
    return len(images) - 1


@pass_context
def guard_text(context: Context, value: Any) -> Any:
    """Jinja's ``finalize``: let every value through as text, except an image."""
    if type(value) in _PLAIN or not is_image_value(value):
        return value
    name = _name_of(context, value)
    shown = name or "an image value"
    hint = f"{{{{ {name} | image }}}}" if name else "the image filter"
    raise ImageError(
        f"{shown!r} is an image ({type(value).__name__}) and is never rendered as text; place it in a role "
        f"block with {hint}",
        variable=name,
    )


def place_image(
    pieces: list[ContentPart] | None,
    content: str,
    marker: str,
    images: list[ImagePart] | None,
    *,
    role: str | None,
    template: str | None,
    preview: bool,
) -> tuple[list[ContentPart], str]:
    """Add the text so far and the image of ``marker`` (``i<index>`` and the text after it) to a
    role block's pieces; return them and the text that follows."""
    if role is None or images is None:
        raise TemplateError("an image can only be placed inside a role block", template=template)
    tag, _, rest = marker.partition(END)
    if preview:  # the highlight marks the preview puts around the filter's output
        content, rest = content.removesuffix(HL_START), rest.removeprefix(HL_END)
    pieces = pieces if pieces is not None else []
    pieces += (TextPart(text=content), images[int(tag[1:])])
    return pieces, rest


def join_parts(pieces: list[ContentPart], tail: str, strip: bool) -> tuple[ContentPart, ...]:
    """A role block's text pieces and images as message parts; empty text pieces are dropped,
    and with ``strip`` the block's leading and trailing whitespace."""
    parts = [*pieces, TextPart(text=tail)]
    if strip:
        first, last = 0, len(parts) - 1
        while first < len(parts) and isinstance(parts[first], TextPart):
            text = parts[first].text.lstrip()  # type: ignore[union-attr]
            parts[first] = TextPart(text=text)
            if text:
                break
            first += 1
        while last >= 0 and isinstance(parts[last], TextPart):
            text = parts[last].text.rstrip()  # type: ignore[union-attr]
            parts[last] = TextPart(text=text)
            if text:
                break
            last -= 1
    return tuple(p for p in parts if not (isinstance(p, TextPart) and not p.text))


Content = str | tuple[ContentPart, ...]


def merge_content(before: Content, after: Content) -> Content:
    """Two messages' contents as one, a blank line between them."""
    if isinstance(before, str) and isinstance(after, str):
        return f"{before}\n\n{after}"
    head = (TextPart(text=before),) if isinstance(before, str) else before
    tail = (TextPart(text=after),) if isinstance(after, str) else after
    return (*head, TextPart(text="\n\n"), *tail)


# Preview: images stand in the marked text as \x04<index>\x05 and become labels or thumbnails.
_SLOT = re.compile("\x04(\\d+)\x05")
_PRE = "<pre style='white-space:pre-wrap;margin:2px 0 0 1em'>"


def preview_text(message: Message, images: list[ImagePart]) -> str:
    """A message's (marked) text with a slot for each image, the images appended to ``images``."""
    if isinstance(message.content, str):
        return message.content
    out = []
    for part in message.content:
        if isinstance(part, TextPart):
            out.append(part.text)
        else:
            out.append(f"\x04{len(images)}\x05")
            images.append(part)
    return "".join(out)


def _label(part: ImagePart) -> str:
    size = f" {part.width}x{part.height}" if part.width and part.height else ""
    what = part.name or ("inline" if part.url.startswith("data:") else part.url)
    return f"[image {what}{size}]"


def unmark_images(text: str, images: tuple[ImagePart, ...], *, html: bool = False) -> str:
    """Image slots as text labels, or (``html``) as thumbnails."""
    if "\x04" not in text:
        return text
    if html:  # the text sits in a <pre>: close it around each thumbnail
        return _SLOT.sub(lambda m: f"</pre>{image_html(images[int(m[1])])}{_PRE}", text)
    return _SLOT.sub(lambda m: _label(images[int(m[1])]), text)
