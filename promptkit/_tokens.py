"""Token counting with tiktoken, and fitting a prompt into a token budget.

``count_tokens`` picks the encoding from the model name (o200k_base for GPT-4o and later,
cl100k_base for GPT-4 and GPT-3.5), adds the chat format's per-message overhead for messages, and
never returns a wrong count silently: a missing encoding file raises :class:`TokenizerError`
naming ``TIKTOKEN_CACHE_DIR``. Claude's tokenizer is not public, so Claude counts are a documented
approximation, flagged by ``TokenCount.exact`` and :func:`is_exact`.

Encodings load once per process (o200k_base takes 0.2-0.5 s), and counts of short
texts are cached, so counting the same few-shot example twice costs a dictionary lookup.
tiktoken itself is imported on first use, not at ``import promptkit``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ._errors import ConfigurationError, TokenBudgetError, TokenizerError
from ._messages import ImagePart, MessagesLike, coerce_messages
from ._tiktoken_files import PROVISION_COMMAND, ensure_files
from ._utils import UNSET, Unset

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_MODEL",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "FitResult",
    "TokenCount",
    "Tokenizer",
    "count_tokens",
    "encoding_for_model",
    "fit_to_budget",
    "get_tokenizer",
    "is_exact",
]

DEFAULT_MODEL: Final = "gpt-4o-mini"
"""The model whose encoding (o200k_base) is used when neither ``model`` nor ``encoding`` is given."""

TOKENS_PER_MESSAGE: Final = 3
"""Tokens OpenAI's chat format adds around each message (``<|start|>{role}<|message|>...<|end|>``
minus the role itself, which is counted as text)."""

REPLY_PRIMING_TOKENS: Final = 3
"""Tokens OpenAI's chat format adds once per request to prime the reply
(``<|start|>assistant<|message|>``)."""

CACHED_TEXT_MAX_CHARS: Final = 4096
"""Texts up to this length have their counts cached; longer ones are counted each time, so a
cache of :data:`COUNT_CACHE_SIZE` entries stays small however large the documents are."""

COUNT_CACHE_SIZE: Final = 8192
"""Entries kept per encoding in the count cache (least recently used are dropped)."""

# Provider prefixes promptkit accepts in model names ("openai:gpt-4o", "anthropic/claude-...").
_PROVIDER_PREFIXES: Final = ("openai:", "openai/", "azure:", "azure/", "anthropic:", "anthropic/")

# Claude's tokenizer is not published; cl100k_base is the stand-in (see docs/tokens.md).
_APPROXIMATE_ENCODING: Final = "cl100k_base"


class TokenCount(int):
    """An ``int`` token count that also says how it was counted.

    ``encoding`` names the tiktoken encoding used; ``exact`` is ``False`` when the model's own
    tokenizer is not available and the count is an approximation (Claude models), or when it
    includes images: ``image_tokens`` is then the part estimated for them by the provider's
    published rule (see :func:`estimate_image_tokens`). It is an ``int`` everywhere: arithmetic
    and comparisons work as usual and return plain ints.

    >>> n = count_tokens("hello world", model="claude-sonnet-4-5")  # doctest: +SKIP
    >>> n, n.exact  # doctest: +SKIP
    (2, False)
    """

    encoding: str
    exact: bool
    image_tokens: int

    def __new__(cls, value: int = 0, *, encoding: str = "", exact: bool = True, image_tokens: int = 0) -> Self:
        self = super().__new__(cls, value)
        self.encoding = encoding
        self.exact = exact and not image_tokens
        self.image_tokens = image_tokens
        return self


def _resolve(model: str) -> tuple[str, bool]:
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(f"model must be a non-empty string, not {model!r}")
    return _resolve_name(model)


@functools.lru_cache(maxsize=256)
def _resolve_name(model: str) -> tuple[str, bool]:
    name = model.strip().lower()
    for prefix in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if "claude" in name:
        return _APPROXIMATE_ENCODING, False
    from tiktoken.model import encoding_name_for_model

    try:
        encoding: str = encoding_name_for_model(name)
    except KeyError:
        raise TokenizerError(
            f"no known tokenizer for the model {model!r}; pass encoding= instead, e.g. "
            f"encoding='o200k_base' (GPT-4o, GPT-4.1, o-series, GPT-5) or encoding='cl100k_base' "
            f"(GPT-4, GPT-3.5, text-embedding-3)"
        ) from None
    return encoding, True


def encoding_for_model(model: str) -> str:
    """The tiktoken encoding promptkit counts ``model``'s tokens with.

    Known OpenAI families map to their real encoding; Claude models map to cl100k_base as an
    approximation (see :func:`is_exact`). An unknown model raises :class:`TokenizerError`.

    >>> encoding_for_model("gpt-4o-mini")
    'o200k_base'
    >>> encoding_for_model("openai:gpt-4")
    'cl100k_base'
    """
    return _resolve(model)[0]


def is_exact(model: str) -> bool:
    """Whether counts for ``model`` come from its real tokenizer (``False`` for Claude models).

    >>> is_exact("gpt-4o"), is_exact("claude-3-5-haiku-latest")
    (True, False)
    """
    return _resolve(model)[1]


def _load_encoding(name: str) -> Any:
    import tiktoken

    if name not in tiktoken.list_encoding_names():
        raise TokenizerError(
            f"unknown tiktoken encoding {name!r}; known: {', '.join(sorted(tiktoken.list_encoding_names()))}"
        )
    ensure_files(name)  # raises a clear TokenizerError instead of letting tiktoken hang or fail vaguely
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # network, cache or hash failures inside tiktoken
        raise TokenizerError(
            f"cannot load the tiktoken encoding {name!r}: {exc}. If this machine has no internet, "
            f"set TIKTOKEN_CACHE_DIR to a writable directory and fill it once: `{PROVISION_COMMAND}`"
        ) from exc


class Tokenizer:
    """Encodes, decodes and counts with one tiktoken encoding; get one from :func:`get_tokenizer`.

    One instance per encoding lives for the whole process. ``count`` caches counts of short texts.

    >>> tok = get_tokenizer(model="gpt-4o")  # doctest: +SKIP
    >>> tok.count("hello world"), tok.decode(tok.encode("hello world"))  # doctest: +SKIP
    (2, 'hello world')
    """

    __slots__ = ("_count_cached", "_encoding", "exact", "name")

    def __init__(self, encoding: Any, *, exact: bool = True) -> None:
        self._encoding = encoding
        self.name: str = encoding.name
        self.exact = exact
        self._count_cached = functools.lru_cache(maxsize=COUNT_CACHE_SIZE)(self._count_uncached)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}{'' if self.exact else ', approximate'})"

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token markers like ``<|endoftext|>`` count as plain text."""
        tokens: list[int] = self._encoding.encode_ordinary(text)
        return tokens

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``; bytes cut mid-character at either end are dropped, not replaced."""
        data: bytes = self._encoding.decode_bytes(tokens)
        # Only a slice's ends can split a character (the interior is whole text), so "ignore"
        # drops exactly the partial characters there and keeps the rest intact.
        return data.decode("utf-8", errors="ignore")

    def _count_uncached(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count(self, text: str) -> int:
        """Number of tokens in ``text`` as plain text (no chat overhead)."""
        if len(text) <= CACHED_TEXT_MAX_CHARS:
            result: int = self._count_cached(text)
            return result
        return self._count_uncached(text)

    def count_messages(self, messages: MessagesLike, *, model: str | None = None) -> int:
        """Tokens of ``messages`` as a chat request: role and content, plus the format's overhead.

        Each message costs :data:`TOKENS_PER_MESSAGE` plus its role and text; the request adds
        :data:`REPLY_PRIMING_TOKENS`. Image parts add an estimate by ``model``'s provider rule
        (:func:`estimate_image_tokens`; without ``model``, Anthropic's rule for this approximate
        tokenizer, else GPT-4o's); :func:`count_tokens` says which part is estimated.
        """
        return self._count_messages(messages, model)[0]

    def _count_messages(self, messages: MessagesLike, model: str | None) -> tuple[int, int]:
        """The messages' tokens and, of them, the estimate for images."""
        total = REPLY_PRIMING_TOKENS
        images = 0
        for message in coerce_messages(messages):
            total += TOKENS_PER_MESSAGE + self.count(message.role)
            if isinstance(message.content, str):
                total += self.count(message.content)
                continue
            for part in message.content:
                if isinstance(part, ImagePart):
                    from ._image_tokens import estimate_image_tokens

                    images += estimate_image_tokens(part, model=model or (None if self.exact else "claude"))
                else:
                    total += self.count(part.text)
        return total + images, images

    def cache_clear(self) -> None:
        """Forget cached counts."""
        self._count_cached.cache_clear()


@functools.cache
def _tokenizer(encoding: str, exact: bool) -> Tokenizer:
    return Tokenizer(_load_encoding(encoding), exact=exact)


def get_tokenizer(*, model: str | Unset = UNSET, encoding: str | Unset = UNSET) -> Tokenizer:
    """The process-wide :class:`Tokenizer` for ``model`` or for the tiktoken ``encoding``.

    With neither, the tokenizer of :data:`DEFAULT_MODEL`. Loading happens once per encoding.

    >>> get_tokenizer(model="gpt-4o").name  # doctest: +SKIP
    'o200k_base'
    """
    if model is not UNSET and encoding is not UNSET:
        raise ConfigurationError("pass model= or encoding=, not both")
    if encoding is not UNSET:
        if not isinstance(encoding, str) or not encoding:
            raise ConfigurationError(f"encoding must be a non-empty string, not {encoding!r}")
        return _tokenizer(encoding, True)
    name, exact = _resolve(DEFAULT_MODEL if model is UNSET else model)
    return _tokenizer(name, exact)


def _count(tokenizer: Tokenizer, value: MessagesLike) -> int:
    if isinstance(value, str):
        return tokenizer.count(value)
    return tokenizer.count_messages(value)


def count_tokens(
    text_or_messages: MessagesLike, *, model: str | Unset = UNSET, encoding: str | Unset = UNSET
) -> TokenCount:
    """Count the tokens of a text, or of chat messages including the chat format's overhead.

    A ``str`` is counted as plain text. A :class:`Message` or a sequence of messages (anything
    :func:`coerce_messages` accepts) is counted as a chat request: per message
    :data:`TOKENS_PER_MESSAGE` plus role and content, and :data:`REPLY_PRIMING_TOKENS` once.
    Give ``model`` (default :data:`DEFAULT_MODEL`) or a tiktoken ``encoding``.

    The result is an ``int`` whose ``exact`` attribute is ``False`` for approximations (Claude,
    and messages with images, whose estimated share is ``image_tokens``).
    Raises :class:`TokenizerError` for an unknown model or when the encoding cannot be loaded
    (no network and an empty ``TIKTOKEN_CACHE_DIR``); it never returns 0 instead.

    >>> count_tokens("hello world", model="gpt-4o")  # doctest: +SKIP
    2
    >>> count_tokens([("system", "Be brief."), ("user", "hello world")], model="gpt-4o")  # doctest: +SKIP
    16
    """
    tokenizer = get_tokenizer(model=model, encoding=encoding)
    if isinstance(text_or_messages, str):
        return TokenCount(tokenizer.count(text_or_messages), encoding=tokenizer.name, exact=tokenizer.exact)
    total, images = tokenizer._count_messages(text_or_messages, None if model is UNSET else model)
    return TokenCount(total, encoding=tokenizer.name, exact=tokenizer.exact, image_tokens=images)


Cut = Literal["end", "start", "middle"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FitResult:
    """What :func:`fit_to_budget` kept and cut.

    ``value`` is the (possibly truncated) value, with ``marker`` where text was removed;
    ``rendered`` is what ``render(value)`` returned and ``tokens`` its count, within the budget.
    ``original_tokens`` counts the value before cutting, ``cut_tokens`` the value's tokens
    removed and ``cut_chars`` its characters removed. ``exact`` is ``False`` for approximate
    (Claude) counts.
    """

    value: str
    rendered: MessagesLike
    tokens: int
    original_tokens: int
    cut_tokens: int
    cut_chars: int
    exact: bool = True

    @property
    def truncated(self) -> bool:
        """Whether anything was cut."""
        return self.cut_tokens > 0 or self.cut_chars > 0


def fit_to_budget(
    render: Callable[[str], MessagesLike],
    value: str,
    *,
    budget: int,
    model: str | Unset = UNSET,
    encoding: str | Unset = UNSET,
    cut: Cut = "end",
    marker: str = "",
) -> FitResult:
    """Truncate ``value`` on token boundaries so that ``render(value)`` fits in ``budget`` tokens.

    ``render`` builds the whole prompt (a string, or messages counted with chat overhead) from
    the value of one variable, such as a long document; everything else stays fixed. ``cut``
    removes tokens from the ``"end"``, the ``"start"`` or the ``"middle"`` of the value, and
    ``marker`` (e.g. ``"\\n...\\n"``) replaces what was removed. The value keeps as many tokens as
    still fit, found in a few renders by a search that only returns verified fits; cut edges
    never split a character. Raises :class:`TokenBudgetError` when even an empty value does
    not fit.

    >>> fit = fit_to_budget(lambda doc: f"Summarise:\\n{doc}", long_doc, budget=1000)  # doctest: +SKIP
    >>> fit.tokens <= 1000, fit.cut_tokens  # doctest: +SKIP
    (True, 5321)
    """
    if cut not in ("end", "start", "middle"):
        raise ConfigurationError(f"cut must be 'end', 'start' or 'middle', not {cut!r}")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        raise ConfigurationError(f"budget must be a non-negative int, not {budget!r}")
    tokenizer = get_tokenizer(model=model, encoding=encoding)

    rendered = render(value)
    total = _count(tokenizer, rendered)
    tokens = tokenizer.encode(value)
    n = len(tokens)
    if total <= budget:
        return FitResult(
            value=value,
            rendered=rendered,
            tokens=total,
            original_tokens=n,
            cut_tokens=0,
            cut_chars=0,
            exact=tokenizer.exact,
        )

    def build(keep: int) -> tuple[str, int]:
        """The value keeping ``keep`` tokens, and how many characters of the original it keeps."""
        if cut == "end":
            kept = tokenizer.decode(tokens[:keep])
            return kept + marker, len(kept)
        if cut == "start":
            kept = tokenizer.decode(tokens[n - keep :]) if keep else ""
            return marker + kept, len(kept)
        head = tokenizer.decode(tokens[: (keep + 1) // 2])
        tail = tokenizer.decode(tokens[n - keep // 2 :]) if keep // 2 else ""
        return head + marker + tail, len(head) + len(tail)

    trials: dict[int, tuple[str, int, MessagesLike, int]] = {}

    def measure(keep: int) -> int:
        candidate, kept_chars = build(keep)
        out = render(candidate)
        count = _count(tokenizer, out)
        trials[keep] = (candidate, kept_chars, out, count)
        return count

    minimum = measure(0)
    if minimum > budget:
        raise TokenBudgetError(
            f"the prompt needs {minimum} tokens even with the value emptied"
            + (" (marker only)" if marker else "")
            + f", over the budget of {budget}; shorten the rest of the prompt or raise the budget",
            budget=budget,
            minimum=minimum,
        )
    # Invariant: keeping `lo` tokens fits, keeping `hi` does not. Token counts are nearly
    # additive, so the next guess moves by the measured excess or slack (usually 1-3 renders),
    # falling back to bisection; the answer is always a measured fit.
    lo, hi, best = 0, n, minimum
    guess = budget - minimum
    while best < budget and hi - lo > 1:
        if not lo < guess < hi:
            guess = (lo + hi) // 2
        count = measure(guess)
        if count <= budget:
            lo, best = guess, count
            guess += budget - count
        else:
            hi = guess
            guess -= count - budget

    candidate, kept_chars, out, count = trials[lo]
    return FitResult(
        value=candidate,
        rendered=out,
        tokens=count,
        original_tokens=n,
        cut_tokens=n - lo,
        cut_chars=len(value) - kept_chars,
        exact=tokenizer.exact,
    )
