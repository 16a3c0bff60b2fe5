"""``RequestPreview``: the request a backend would send, built without sending it.

A provider backend fills it with its own wire format (URL, headers with secrets masked, the JSON
body); a backend without one (the test doubles) with a neutral form of the :class:`Request`
(messages and parameters). Either way it counts the input tokens and estimates the cost.

>>> from promptkit.testing import MockBackend
>>> preview = MockBackend().preview("Hi", temperature=0)
>>> preview.body
{'messages': [{'role': 'user', 'content': 'Hi'}], 'params': {'temperature': 0}}
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, TokenizerError
from .._fitting import FitReport
from .._messages import ImagePart, Message, TextPart

if TYPE_CHECKING:
    from ._contract import Request

__all__ = ["RequestPreview", "mask_header", "mask_secret", "neutral_body", "preview_of"]

_FALLBACK_TOKENIZER = "gpt-4o-mini"  # o200k_base, for models without a known tokenizer


@dataclass(frozen=True, kw_only=True)
class RequestPreview:
    """What one call would send, and what it would cost, without sending it.

    ``url`` and ``method`` are where it would go (``None`` for a backend with no wire format);
    ``headers`` are those the client sends with every request, credentials masked (an SDK adds a
    few per attempt, such as its retry count and timeout); ``body`` is the JSON body, as a
    ``dict``. ``input_tokens`` counts the messages (``exact`` on it is false for an approximation,
    e.g. an unknown model or images; ``image_tokens`` on it is the images' share).
    ``estimated_cost`` is the USD cost of those tokens plus ``max_output_tokens`` of reply (the most
    the request allows; the input alone when it sets no limit), ``None`` when the price is unknown.
    When a message carries a prompt-cache breakpoint, ``cached_prefix_tokens`` counts the messages
    up to the last breakpoint (the part a cache hit serves), ``cache_hit_saving`` is what a hit
    saves in USD at the model's cached-input rate (``None`` when unknown), and ``prefix_variables``
    (filled by ``Prompt.preview``) names the inputs rendered into that prefix: changing any of them
    misses.
    ``fit`` is the :class:`~promptkit.FitReport` of a prompt fitted into a token budget.
    """

    backend: str
    url: str | None = None
    method: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)
    input_tokens: int | None = None
    max_output_tokens: int | None = None
    estimated_cost: float | None = None
    cached_prefix_tokens: int | None = None
    cache_hit_saving: float | None = None
    prefix_variables: tuple[str, ...] = ()
    fit: FitReport | None = None

    def json(self, *, indent: int | None = 2) -> str:
        """The body as the JSON text a server receives (keys in the order they are sent)."""
        return json.dumps(self.body, indent=indent, ensure_ascii=False)

    def __repr__(self) -> str:
        where = f"{self.method} {self.url}" if self.url else "no wire format"
        cost = f"${self.estimated_cost:.6f}" if self.estimated_cost is not None else "unknown"
        cached = f" cached_prefix_tokens={self.cached_prefix_tokens}" if self.cached_prefix_tokens is not None else ""
        fitted = f" fit={self.fit.tokens}/{self.fit.limit}" if self.fit is not None else ""
        images = getattr(self.input_tokens, "image_tokens", 0)
        estimate = f" (estimated: {images} for images)" if images else ""
        return (
            f"<RequestPreview {self.backend} {where} input_tokens={self.input_tokens}{estimate} "
            f"max_output_tokens={self.max_output_tokens} estimated_cost={cost}{cached}{fitted}>"
        )

    def _repr_html_(self) -> str:
        heading = html.escape(repr(self))
        headers = "".join(f"{html.escape(k)}: {html.escape(v)}\n" for k, v in self.headers.items())
        return (
            f"<div><small>{heading}</small><pre>{headers}</pre>"
            f"<pre style='white-space:pre-wrap'>{html.escape(self.json())}</pre>"
            f"{self.fit._repr_html_() if self.fit is not None else ''}</div>"
        )


def mask_secret(value: str | None) -> str:
    """A secret as a preview shows it: its first three and last two characters, or ``***``."""
    if not value:
        return "(none)"
    return f"{value[:3]}...{value[-2:]}" if len(value) > 12 else "***"


_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})


def mask_header(name: str, value: str) -> str:
    """A header's value as a preview shows it: a credential masked, its scheme (``Bearer``) kept.

    >>> mask_header("Authorization", "Bearer sk-test-0123456789abcdef")
    'Bearer sk-...ef'
    """
    if name.lower() not in _SECRET_HEADERS:
        return value
    scheme, space, secret = value.partition(" ")
    if space and scheme.lower() in ("bearer", "basic", "token"):
        return f"{scheme} {mask_secret(secret)}"
    return mask_secret(value)


def neutral_body(request: Request) -> dict[str, Any]:
    """A request in no provider's format: its messages (role and content) and parameters."""
    return {
        "messages": [_neutral_message(m) for m in request.messages],
        "params": {k: _plain(v) for k, v in request.params.items()},
    }


def _neutral_message(message: Message) -> dict[str, Any]:
    content = message.content
    doc: dict[str, Any]
    if isinstance(content, str):
        doc = {"role": message.role, "content": content}
    else:
        parts: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                image: dict[str, Any] = {"type": "image", "url": part.url, "media_type": part.media_type}
                if part.detail is not None:
                    image["detail"] = part.detail
                parts.append(image)
        doc = {"role": message.role, "content": parts}
    if message.cache is not None:
        doc["cache"] = message.cache
    return doc


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def preview_of(
    request: Request,
    *,
    body: Mapping[str, Any],
    model: str | None,
    provider: str | None = None,
    url: str | None = None,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    max_output_tokens: int | None = None,
) -> RequestPreview:
    """A preview of ``request`` with its tokens counted and its cost estimated.

    ``model`` names the tokenizer and the price (``None``: an approximate count, no price);
    ``max_output_tokens`` defaults to the request's ``max_tokens``.
    """
    if max_output_tokens is None:
        limit = request.params.get("max_tokens")
        max_output_tokens = limit if isinstance(limit, int) else None
    tokens = _input_tokens(request, model, provider)
    cost = None
    if model is not None and tokens is not None:
        from .._cost import estimate_cost

        cost = estimate_cost(model, input_tokens=int(tokens), output_tokens=max_output_tokens or 0, provider=provider)
    prefix_tokens, saving = _cached_prefix(request, model, provider)
    return RequestPreview(
        backend=request.backend,
        url=url,
        method=method,
        headers=MappingProxyType(dict(headers or {})),
        body=body,
        input_tokens=tokens,
        max_output_tokens=max_output_tokens,
        estimated_cost=cost,
        cached_prefix_tokens=prefix_tokens,
        cache_hit_saving=saving,
    )


def _cached_prefix(request: Request, model: str | None, provider: str | None) -> tuple[int | None, float | None]:
    """The tokens up to the last cache breakpoint, and what a cache hit on them saves."""
    marks = [i for i, m in enumerate(request.messages) if m.cache is not None]
    if not marks:
        return None, None
    prefix = dataclasses.replace(request, messages=request.messages[: marks[-1] + 1])
    tokens = _input_tokens(prefix, model, provider)
    if tokens is None or model is None:
        return tokens, None
    from .._cost import price_for

    price = price_for(model, provider)
    if price is None:
        return tokens, None
    cached = price.cached_input if price.cached_input is not None else price.input
    return tokens, int(tokens) * (price.input - cached) / 1e6


def _input_tokens(request: Request, model: str | None, provider: str | None) -> int | None:
    """The messages' tokens with the model's tokenizer, else o200k_base marked inexact; ``None``
    when no encoding can be loaded (offline, without cached encoding files)."""
    from .._tokens import TokenCount, count_tokens, encoding_for_model

    messages = list(request.messages)
    if model is not None:
        names = (f"{provider}:{model}", model) if provider else (model,)
        for name in names:
            try:
                return count_tokens(messages, model=name)
            except (TokenizerError, ConfigurationError):
                continue
    try:  # the fallback's encoding, with GPT-4o's image rule (not the fallback model's own)
        count = count_tokens(messages, encoding=encoding_for_model(_FALLBACK_TOKENIZER))
    except TokenizerError:
        return None
    return TokenCount(int(count), encoding=count.encoding, exact=False, image_tokens=count.image_tokens)
