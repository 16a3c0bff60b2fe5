"""Token estimates for images, by each provider's published rule.

Providers bill an image by its pixel size, not by its bytes, and neither tokenizer is public
for images, so these are estimates (counts that include one say so: ``TokenCount.exact`` is
false and ``TokenCount.image_tokens`` holds the estimated part):

* OpenAI, tiles (GPT-4o, GPT-4.1, GPT-5, o1, o3): ``detail="low"`` costs the base tokens; else
  the image is scaled to fit 2048x2048, then its shortest side to 768 px, and each 512 px tile
  costs the tile tokens on top of the base (85 + 170 per tile for GPT-4o; 2833 + 5667 for
  GPT-4o mini; 75 + 150 for o1 and o3). ``"auto"`` is estimated as ``"high"``, the most it costs.
* OpenAI, patches (GPT-4.1 mini and nano, GPT-5 mini and nano, o4-mini): 32 px patches, at most
  1536 after scaling down, times the model's multiplier.
* Anthropic: width x height / 750 after scaling the long side to at most 1568 px and the
  image to at most about 1,600 tokens.

An image whose size is unknown (a linked ``https:`` image) is estimated as
:data:`DEFAULT_IMAGE_SIZE`.
"""

from __future__ import annotations

import math
from typing import Final

from ._errors import ConfigurationError
from ._images import part_size
from ._messages import ImagePart

__all__ = ["DEFAULT_IMAGE_SIZE", "estimate_image_tokens", "image_rule"]

DEFAULT_IMAGE_SIZE: Final = (1024, 1024)
"""The pixel size assumed for an image whose size cannot be read (a linked image)."""

# (base tokens, tokens per 512 px tile), by model-name prefix; the longest prefix wins.
_TILES: Final = {"": (85, 170), "gpt-4o-mini": (2833, 5667), "o1": (75, 150), "o3": (75, 150)}
# Tokens per 32 px patch for the patch-billed models.
_PATCHES: Final = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "gpt-5-mini": 1.62,
    "gpt-5-nano": 2.46,
    "o4-mini": 1.72,
}
_PATCH_CAP: Final = 1536
_ANTHROPIC_LONG_SIDE: Final = 1568
_ANTHROPIC_MAX_TOKENS: Final = 1600


def _model_name(model: str | None) -> str:
    name = (model or "").strip().lower()
    provider, sep, rest = name.partition(":")
    if not sep:
        provider, sep, rest = name.partition("/")
    return rest if sep and provider in ("openai", "azure", "anthropic") else name


def image_rule(model: str | None) -> str:
    """Which rule estimates ``model``'s images: ``"anthropic"``, ``"patches"`` or ``"tiles"``.

    >>> image_rule("claude-sonnet-4-5"), image_rule("gpt-4.1-mini"), image_rule("gpt-4o")
    ('anthropic', 'patches', 'tiles')
    """
    name = _model_name(model)
    if "claude" in name:
        return "anthropic"
    if any(name.startswith(prefix) for prefix in _PATCHES):
        return "patches"
    return "tiles"


def _longest_prefix(name: str, table: dict[str, object]) -> str:
    return max((p for p in table if name.startswith(p)), key=len, default="")


def _tiles(width: float, height: float) -> int:
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    return math.ceil(width / 512) * math.ceil(height / 512)


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= _PATCH_CAP:
        return patches
    ratio = math.sqrt(32 * 32 * _PATCH_CAP / (width * height))
    scaled_w, scaled_h = width * ratio / 32, height * ratio / 32  # in patches
    ratio *= min(math.floor(scaled_w) / scaled_w, math.floor(scaled_h) / scaled_h)
    return min(math.ceil(width * ratio / 32) * math.ceil(height * ratio / 32), _PATCH_CAP)


def _anthropic(width: float, height: float) -> int:
    if max(width, height) > _ANTHROPIC_LONG_SIDE:
        scale = _ANTHROPIC_LONG_SIDE / max(width, height)
        width, height = width * scale, height * scale
    return min(math.ceil(width * height / 750), _ANTHROPIC_MAX_TOKENS)


def estimate_image_tokens(image: ImagePart, *, model: str | None = None) -> int:
    """The input tokens ``image`` is estimated to cost with ``model`` (``None``: GPT-4o's rule).

    The size comes from the part (or an inline image's header); an unknown size counts as
    :data:`DEFAULT_IMAGE_SIZE`. See the module docstring for each provider's rule.

    >>> from promptkit import ImagePart
    >>> photo = ImagePart(url="https://example.com/a.png", width=1024, height=1024)
    >>> estimate_image_tokens(photo, model="gpt-4o")
    765
    >>> estimate_image_tokens(photo, model="claude-sonnet-4-5")
    1399
    >>> estimate_image_tokens(ImagePart(url=photo.url, detail="low"), model="gpt-4o")
    85
    """
    if not isinstance(image, ImagePart):
        raise ConfigurationError(f"estimate_image_tokens() takes an ImagePart, not {type(image).__name__}")
    width, height = part_size(image) or DEFAULT_IMAGE_SIZE
    width, height = max(width, 1), max(height, 1)
    rule = image_rule(model)
    if rule == "anthropic":
        return _anthropic(width, height)
    name = _model_name(model)
    if rule == "patches":
        return math.ceil(_patches(width, height) * _PATCHES[_longest_prefix(name, dict(_PATCHES))])
    base, tile = _TILES[_longest_prefix(name, dict(_TILES))]
    if image.detail == "low":
        return base
    return base + tile * _tiles(width, height)
