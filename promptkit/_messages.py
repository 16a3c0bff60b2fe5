"""Value types that cross every boundary: messages, completions, usage and stream chunks.

All are frozen, keyword-only dataclasses: cheap to build, hashable where their contents are, and
with reprs that leave out the raw provider response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ._errors import ConfigurationError

__all__ = [
    "Chunk",
    "Completion",
    "ContentPart",
    "FinishReason",
    "ImageDetail",
    "ImagePart",
    "Message",
    "MessageLike",
    "MessagesLike",
    "Role",
    "TextPart",
    "Usage",
    "coerce_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset(get_args(Role))

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
"""One vocabulary for every provider: ``stop`` (natural end or stop sequence), ``length`` (hit
``max_tokens``), ``tool_calls``, ``content_filter``, ``error``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextPart:
    """A text part of a multi-part message."""

    text: str
    type: Literal["text"] = "text"


ImageDetail = Literal["auto", "low", "high"]
IMAGE_DETAILS: frozenset[str] = frozenset(get_args(ImageDetail))


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ImagePart:
    """An image part: a URL (``https:`` or ``data:``) and an optional media type.

    ``detail`` is OpenAI's resolution hint (``"low"``, ``"high"`` or ``"auto"``; other providers
    ignore it). ``width`` and ``height`` (pixels, when known) feed the token estimate, and
    ``name`` is the template variable the image came from, for error messages; the three are
    left out of comparisons. :func:`promptkit.image` builds one from a file, bytes or a PIL image.

    >>> ImagePart(url="https://example.com/cat.png", detail="low")
    ImagePart(url='https://example.com/cat.png', detail='low')
    """

    url: str
    media_type: str | None = None
    type: Literal["image"] = "image"
    detail: ImageDetail | None = None
    width: int | None = field(default=None, compare=False)
    height: int | None = field(default=None, compare=False)
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise ConfigurationError(f"an image part's url must be a str, not {type(self.url).__name__}")
        if self.detail is not None and self.detail not in IMAGE_DETAILS:
            raise ConfigurationError(f"image detail must be 'auto', 'low', 'high' or None, not {self.detail!r}")

    def __repr__(self) -> str:
        url = self.url
        if url.startswith("data:") and len(url) > 60:  # a data URI can be megabytes: show its head and size
            url = f"{url[:40]}...({len(url)} chars)"
        shown = f"url={url!r}"
        for key in ("media_type", "detail"):
            value = getattr(self, key)
            if value is not None:
                shown += f", {key}={value!r}"
        return f"ImagePart({shown})"


ContentPart = TextPart | ImagePart

CACHE_TTLS = (None, "5m", "1h")
"""The lifetimes of a provider prompt-cache breakpoint (``None``: no breakpoint)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    ``content`` is a string, or a tuple of parts for multi-part content (text plus images).
    ``cache`` (``"5m"`` or ``"1h"``) puts a provider prompt-cache breakpoint after this message:
    the conversation up to here may be served from the provider's cache for that long
    (Anthropic's ``cache_control``; OpenAI caches long prefixes by itself and ignores it).

    >>> Message("user", "Hi")
    Message(role='user', content='Hi')
    """

    role: Role
    content: str | tuple[ContentPart, ...]
    cache: Literal["5m", "1h"] | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigurationError(f"invalid message role {self.role!r}; expected one of {', '.join(sorted(ROLES))}")
        if self.cache not in CACHE_TTLS:
            raise ConfigurationError(f"cache must be '5m', '1h' or None, not {self.cache!r}")
        content: object = self.content
        if isinstance(content, list):
            object.__setattr__(self, "content", tuple(content))
        elif not isinstance(content, (str, tuple)):
            raise ConfigurationError(
                f"message content must be a str or a sequence of parts, not {type(self.content).__name__}"
            )

    @property
    def text(self) -> str:
        """The message's text: the content itself, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def _repr_html_(self) -> str:
        return _messages_html([self])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Usage:
    """Token counts for one call, as reported by the provider.

    ``input_tokens`` counts every input token, cached ones included, for every provider (the
    Anthropic adapter adds the cache reads and writes the API reports apart), so totals compare
    across providers. ``cached_input_tokens`` (read from the prompt cache) and
    ``cache_write_tokens`` (written to it) are parts of ``input_tokens``; ``reasoning_tokens``
    (hidden thinking) is part of ``output_tokens``. The repr shows the parts only when non-zero.

    >>> Usage(input_tokens=10, output_tokens=5).total_tokens
    15
    >>> Usage(input_tokens=10, output_tokens=5, cached_input_tokens=8)
    Usage(input_tokens=10, output_tokens=5, cached_input_tokens=8)
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def __repr__(self) -> str:
        shown = f"input_tokens={self.input_tokens}, output_tokens={self.output_tokens}"
        for name in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if value:
                shown += f", {name}={value}"
        return f"Usage({shown})"

    def _repr_html_(self) -> str:
        rows = [("input", self.input_tokens, ""), ("output", self.output_tokens, "")]
        rows += [
            (label, value, note)
            for label, value, note in (
                ("cached input", self.cached_input_tokens, "of the input"),
                ("cache write", self.cache_write_tokens, "of the input"),
                ("reasoning", self.reasoning_tokens, "of the output"),
            )
            if value
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{label}</th><td style='text-align:right'>{value:,}</td>"
            + (f"<td><small style='color:#6b7280'>{note}</small></td>" if note else "")
            + "</tr>"
            for label, value, note in rows
        )
        return f"<div><b>Usage</b> <small>{self.total_tokens:,} tokens</small><table>{body}</table></div>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """A model's reply. ``raw`` keeps the provider's response object but stays out of the repr.

    ``provider`` names who served it (``"openai"``, ``"anthropic"``, ``"openai-compatible"`` for
    another server behind an OpenAI ``base_url``; ``None`` when unknown), so that prices are looked
    up for the right provider. ``attempts`` is how many tries the reply took (1 unless the retry
    layer had to try again). Both are left out of comparisons: they describe the call rather than
    the reply. ``reasoning`` is the reasoning a provider returned apart from the text (OpenAI-compatible
    servers' ``reasoning_content``, Anthropic's thinking blocks), when it did. ``cached`` is true
    for a reply a response cache served without calling the model (kept out of comparisons and
    the repr, like ``attempts``). ``batch`` is true for a reply a provider's batch API served
    (priced at its batch rates; kept out of comparisons and the repr too).

    >>> Completion(text="Paris", model="mock").text
    'Paris'
    """

    text: str
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: FinishReason | None = None
    provider: str | None = field(default=None, compare=False)
    raw: Any = field(default=None, repr=False, compare=False)
    attempts: int = field(default=1, compare=False)
    reasoning: str | None = field(default=None, repr=False)
    cached: bool = field(default=False, repr=False, compare=False)
    batch: bool = field(default=False, repr=False, compare=False)

    def _repr_html_(self) -> str:
        import html

        meta = html.escape(
            f"model={self.model} finish={self.finish_reason} "
            f"tokens in={self.usage.input_tokens} out={self.usage.output_tokens}"
        )
        body = html.escape(self.text)
        return f"<div><pre style='white-space:pre-wrap'>{body}</pre><small>{meta}</small></div>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One piece of a streamed reply: a text delta and, on the final chunk, the metadata.

    ``attempts`` above 1 (on the final chunk) says how many tries opening the stream took;
    ``provider``, ``reasoning`` (a piece of reasoning sent apart from the text) and ``cached``
    are as for :class:`Completion`.
    """

    text: str = ""
    model: str | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    provider: str | None = field(default=None, compare=False)
    raw: Any = field(default=None, repr=False, compare=False)
    attempts: int = field(default=1, compare=False)
    reasoning: str | None = field(default=None, repr=False)
    cached: bool = field(default=False, repr=False, compare=False)


MessageLike = Message | str | tuple[str, str] | Mapping[str, Any]
MessagesLike = str | Message | Sequence[MessageLike]


def _coerce_one(item: object, index: int) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, str):
        return Message("user", item)
    if isinstance(item, tuple) and len(item) == 2:
        return Message(item[0], item[1])
    if isinstance(item, Mapping) and "role" in item and "content" in item:
        extra = set(item) - {"role", "content"}
        if extra:
            raise ConfigurationError(f"message {index} has unsupported keys: {', '.join(sorted(extra))}")
        return Message(item["role"], item["content"])
    raise ConfigurationError(
        f"message {index} must be a Message, a str, a (role, content) tuple or a "
        f"{{'role', 'content'}} mapping, not {type(item).__name__}: {item!r:.80}"
    )


def coerce_messages(messages: MessagesLike | Iterable[MessageLike]) -> tuple[Message, ...]:
    """Normalise what users pass as messages into a tuple of :class:`Message`.

    A plain string is one user message; ``(role, content)`` tuples and role/content mappings
    are accepted too.

    >>> coerce_messages("Hi")
    (Message(role='user', content='Hi'),)
    >>> coerce_messages([("system", "Be brief."), "Hi"])[0].role
    'system'
    """
    if isinstance(messages, (str, Message)):
        return (_coerce_one(messages, 0),)
    # A lone (role, content) pair: a 2-tuple of strings whose first item is a role. Any other
    # tuple is a sequence of messages.
    if isinstance(messages, tuple) and len(messages) == 2 and messages[0] in ROLES and isinstance(messages[1], str):
        return (_coerce_one(messages, 0),)
    result = tuple(_coerce_one(m, i) for i, m in enumerate(messages))
    if not result:
        raise ConfigurationError("messages must not be empty")
    return result


_ROLE_COLOURS = {"system": "#6b7280", "user": "#2563eb", "assistant": "#059669", "tool": "#d97706"}


def _messages_html(messages: Iterable[Message]) -> str:
    import html

    rows = []
    for m in messages:
        colour = _ROLE_COLOURS.get(m.role, "#000")
        if isinstance(m.content, str):
            body = _pre(html.escape(m.content))
        else:
            body = "".join(_pre(html.escape(p.text)) if isinstance(p, TextPart) else image_html(p) for p in m.content)
        rows.append(f"<div style='margin:4px 0'><b style='color:{colour}'>{html.escape(m.role)}</b>{body}</div>")
    return "<div>" + "".join(rows) + "</div>"


def _pre(escaped: str) -> str:
    return f"<pre style='white-space:pre-wrap;margin:2px 0 0 1em'>{escaped}</pre>"


THUMBNAIL_PIXELS = 160
"""The longest side, in CSS pixels, of an image's thumbnail in a notebook."""
THUMBNAIL_MAX_CHARS = 1_500_000
"""Inline images up to this many characters of data URI are shown as thumbnails; a larger one is
shrunk first when Pillow is installed, else shown as a label (a notebook keeps its HTML)."""
_THUMBNAIL_TYPES = ("data:image/png;", "data:image/jpeg;", "data:image/gif;", "data:image/webp;")


def image_html(part: ImagePart) -> str:
    """An image part as notebook HTML: a size-capped thumbnail of an inline image, else a label.

    Only inline (``data:``) PNG, JPEG, GIF and WebP images are shown; a linked image is named,
    never fetched by the notebook.
    """
    import html

    size = f" {part.width}x{part.height}" if part.width and part.height else ""
    label = part.name or ("inline image" if part.url.startswith("data:") else part.url)
    caption = f"<small style='color:#9ca3af'>image {html.escape(label)}{size}</small>"
    src = part.url
    if src.startswith(_THUMBNAIL_TYPES) and len(src) > THUMBNAIL_MAX_CHARS:
        src = _shrunk(src) or ""
    if not src.startswith(_THUMBNAIL_TYPES):
        return f"<div style='margin:2px 0 0 1em'>{caption}</div>"
    img = (
        f'<img src="{html.escape(src, quote=True)}" alt="{html.escape(label, quote=True)}" '
        f"style='max-width:{THUMBNAIL_PIXELS}px;max-height:{THUMBNAIL_PIXELS}px;display:block'>"
    )
    return f"<div style='margin:2px 0 0 1em'>{img}{caption}</div>"


def _shrunk(url: str) -> str | None:
    """A small PNG data URI of a large inline image, with Pillow; ``None`` without it."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    import base64
    import io

    try:
        with PILImage.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as img:
            img.thumbnail((THUMBNAIL_PIXELS * 2, THUMBNAIL_PIXELS * 2))
            out = io.BytesIO()
            img.convert("RGBA").save(out, format="PNG")
    except Exception:  # a thumbnail is decoration: an unreadable image gets its label
        return None
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
