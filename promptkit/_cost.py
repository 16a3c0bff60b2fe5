"""What a call cost in US dollars, from its :class:`~promptkit.Usage` and the model that answered.

Prices come from your own :func:`set_price` overrides first, then from the maintained price table
of the ``genai-prices`` package (``pip install "promptkit[prices]"``), which knows dated model
names, cache rates, long-context tiers and batch rates. A model found in neither has no price:
the functions answer ``None``, never a guess. Cost is derived from usage when asked for, never
stored next to it.

>>> estimate_cost("my-model", input_tokens=1_000, output_tokens=100, prices={"my-model": Price(input=2, output=8)})
0.0028
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._messages import Usage

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["Price", "cost_of", "estimate_cost", "price_for", "set_price", "usd"]

_MILLION = 1_000_000

# A provider the price table must not be asked about: an OpenAI-compatible server (vLLM, Ollama,
# a proxy) may answer as "gpt-4o" without charging OpenAI's price, and the table would match
# "openai-compatible" to OpenAI. Only your own prices apply to it.
_NOT_IN_TABLE = frozenset({"openai-compatible"})

# "gpt-4o-mini-2024-07-18", "claude-sonnet-4-5-20250929": a price set for the undated name
# applies to the dated replies too.
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")

BATCH_RATE = 0.5
"""What a batch API call costs against a standard one: OpenAI's Batch API and Anthropic's Message
Batches both bill half the standard rates (cache reads and writes included). Applied to your own
prices, and to table models of those two providers for which the table lists no batch rate."""
_HALF_IN_BATCH = frozenset({"openai", "anthropic"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """A model's rates in US dollars per million tokens.

    ``cached_input`` is the rate for input read from the prompt cache and ``cache_write`` the rate
    for input written to it; ``None`` bills them at the ``input`` rate.

    >>> Price(input=2.5, output=10, cached_input=1.25).cost(Usage(input_tokens=1_000, output_tokens=500))
    0.0075
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write"):
            value = getattr(self, name)
            if value is None and name in ("cached_input", "cache_write"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(
                    f"Price.{name} must be a non-negative number of USD per million tokens, not {value!r}"
                )
            object.__setattr__(self, name, float(value))

    def cost(self, usage: Usage) -> float:
        """The USD cost of ``usage`` at these rates (cache reads and writes at their own rates)."""
        plain = _uncached_input(usage)
        cached = self.cached_input if self.cached_input is not None else self.input
        write = self.cache_write if self.cache_write is not None else self.input
        total = (
            plain * self.input
            + usage.cached_input_tokens * cached
            + usage.cache_write_tokens * write
            + usage.output_tokens * self.output
        )
        return total / _MILLION


_overrides: dict[tuple[str | None, str], Price] = {}


def usd(amount: float) -> str:
    """Dollars for a person: cents above a dollar, four significant digits below.

    >>> usd(12.5), usd(0.000123456)
    ('$12.50', '$0.0001235')
    """
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4g}"


def set_price(model: str, price: Price | None, *, provider: str | None = None) -> None:
    """Set your own ``price`` for ``model`` (for every provider, or only ``provider``'s); ``None``
    removes it. Your prices win over the price table; names match case-insensitively, and a price
    for ``gpt-4o-mini`` applies to replies from ``gpt-4o-mini-2024-07-18``.

    >>> set_price("house-model", Price(input=1, output=2))
    >>> price_for("house-model")
    Price(input=1.0, output=2.0, cached_input=None, cache_write=None)
    >>> set_price("house-model", None)
    >>> price_for("house-model") is None
    True
    """
    key = (_provider_key(provider), _model_key(model))
    if price is None:
        _overrides.pop(key, None)
        return
    if not isinstance(price, Price):
        raise ConfigurationError(f"set_price() takes a Price or None, not {type(price).__name__}")
    _overrides[key] = price


def price_for(
    model: str | None, provider: str | None = None, *, prices: Mapping[str, Price] | None = None
) -> Price | None:
    """The rates for ``model`` served by ``provider``: ``prices`` (a per-call mapping of model
    name to :class:`Price`), then :func:`set_price`'s, then the ``genai-prices`` table; ``None``
    when none of them knows the model (or ``genai-prices`` is not installed).

    A table price with long-context tiers shows its base rates here; :func:`cost_of` applies the
    tiers.

    >>> price_for("no-such-model-anywhere") is None
    True
    """
    if model is None:
        return None
    own = _own_price(model, provider, prices)
    if own is not None:
        return own
    return _table_price(_model_key(model), _provider_key(provider), _snapshot_id())


def cost_of(
    usage: Usage,
    model: str | None,
    provider: str | None = None,
    *,
    batch: bool = False,
    prices: Mapping[str, Price] | None = None,
) -> float | None:
    """The USD cost of one call's ``usage`` on ``model``, or ``None`` when the price is unknown.

    Your own prices are applied as given (with ``batch=True``, at :data:`BATCH_RATE`: half). For
    a model in the ``genai-prices`` table the table computes the cost itself, so cache reads and
    writes, long-context tiers and (with ``batch=True``) provider batch rates come out right; an
    OpenAI or Anthropic model the table lists without a batch rate is billed at half its standard
    cost, the discount both providers document for every model of their batch APIs. Reasoning
    tokens are part of the output and billed at its rate.

    >>> house = {"house-model": Price(input=1, output=2)}
    >>> cost_of(Usage(input_tokens=100, output_tokens=10), "house-model", prices=house)
    0.00012
    """
    if not isinstance(usage, Usage):
        raise ConfigurationError(f"cost_of() takes a promptkit Usage, not {type(usage).__name__}")
    if model is None:
        return None
    own = _own_price(model, provider, prices)
    if own is not None:
        return own.cost(usage) * BATCH_RATE if batch else own.cost(usage)
    _uncached_input(usage)  # the table would fail less clearly on inconsistent counts
    return _table_cost(
        _model_key(model),
        _provider_key(provider),
        _snapshot_id(),
        (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cache_write_tokens),
        batch,
    )


def estimate_cost(
    model: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    provider: str | None = None,
    batch: bool = False,
    prices: Mapping[str, Price] | None = None,
) -> float | None:
    """The USD cost a call of that size would have, for dry runs; ``None`` when the price is unknown.

    >>> estimate_cost("no-such-model-anywhere", input_tokens=10, output_tokens=10) is None
    True
    """
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"estimate_cost(): {name} must be an int >= 0, not {value!r}")
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return cost_of(usage, model, provider, batch=batch, prices=prices)


# -- your prices ----------------------------------------------------------------------------------
def _model_key(model: str) -> str:
    if not isinstance(model, str) or not model:
        raise ConfigurationError(f"a model name must be a non-empty string, not {model!r}")
    return model.lower()


def _provider_key(provider: str | None) -> str | None:
    if provider is None:
        return None
    if not isinstance(provider, str) or not provider:
        raise ConfigurationError(f"a provider must be a non-empty string or None, not {provider!r}")
    return provider.lower()


def _own_price(model: str, provider: str | None, prices: Mapping[str, Price] | None) -> Price | None:
    name = _model_key(model)
    names = (name, undated) if (undated := _DATE_SUFFIX.sub("", name)) != name else (name,)
    if prices:
        given = {_model_key(k): v for k, v in prices.items()}
        for candidate in names:
            price = given.get(candidate)
            if price is not None:
                if not isinstance(price, Price):
                    raise ConfigurationError(f"prices[{candidate!r}] must be a Price, not {type(price).__name__}")
                return price
    if _overrides:
        where = _provider_key(provider)
        for candidate in names:
            price = _overrides.get((where, candidate)) or _overrides.get((None, candidate))
            if price is not None:
                return price
    return None


def _uncached_input(usage: Usage) -> int:
    plain = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    if plain < 0:
        raise ConfigurationError(
            f"usage counts more cached ({usage.cached_input_tokens}) and cache-write ({usage.cache_write_tokens}) "
            f"tokens than input tokens ({usage.input_tokens}); input_tokens must include them"
        )
    return plain


# -- the genai-prices table -----------------------------------------------------------------------
def _snapshot_id() -> int:
    """Which price table is current (0: genai-prices is not installed). A table refreshed with
    ``genai_prices.UpdatePrices`` is a new object, so answers cached from the old one are not reused."""
    try:
        from genai_prices import data_snapshot
    except ImportError:
        return 0
    return id(data_snapshot.get_snapshot())


def _calculate(model: str, provider: str | None, counts: Mapping[str, int], batch: bool) -> Any:
    """The table's price calculation for ``counts`` (token counts by its usage keys), or None."""
    if provider in _NOT_IN_TABLE:
        return None
    import genai_prices

    context = {"processing": "batch"} if batch else None
    try:
        return genai_prices.calc_price(genai_prices.Usage(**counts), model, provider_id=provider, price_context=context)
    except LookupError:  # no such provider, or the provider does not list the model
        return None


@lru_cache(maxsize=1024)
def _table_price(model: str, provider: str | None, snapshot: int) -> Price | None:
    if snapshot == 0:
        return None
    calculation = _calculate(model, provider, {}, batch=False)
    if calculation is None:
        return None
    rates = calculation.model_price
    values = [
        _rate(getattr(rates, key)) for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    ]
    if values[0] is None or values[1] is None:  # priced per image, per second, ...: not per token
        return None
    return Price(input=values[0], output=values[1], cached_input=values[2], cache_write=values[3])


def _rate(value: Decimal | Any | None) -> float | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # tiered prices: the base tier
    return float(base)


@lru_cache(maxsize=4096)
def _table_cost(
    model: str, provider: str | None, snapshot: int, tokens: tuple[int, int, int, int], batch: bool
) -> float | None:
    """The table's cost for (input, output, cache read, cache write) token counts."""
    if snapshot == 0:
        return None
    names = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    counts = {name: count for name, count in zip(names, tokens, strict=True) if count or name in names[:2]}
    calculation = _calculate(model, provider, counts, batch)
    if calculation is None:
        return None
    total = float(calculation.total_price)
    if batch and (provider or _provider_of(calculation)) in _HALF_IN_BATCH:
        standard = _calculate(model, provider, counts, False)
        if standard is not None and float(standard.total_price) == total:  # no batch rate listed
            total *= BATCH_RATE
    return total


def _provider_of(calculation: Any) -> str | None:
    provider = getattr(calculation, "provider", None)
    found = getattr(provider, "id", None)
    return found if isinstance(found, str) else None
