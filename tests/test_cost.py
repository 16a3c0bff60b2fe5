"""Prices and cost: your own prices, the genai-prices table, and cost on results."""

from __future__ import annotations

import sys

import pytest

from promptkit import (
    Completion,
    ConfigurationError,
    JsonParser,
    Price,
    Prompt,
    Usage,
    cost_of,
    estimate_cost,
    price_for,
    set_price,
)
from promptkit import _cost as cost_module
from promptkit._result import Attempt
from promptkit.testing import MockBackend, MockReply

pytest.importorskip("genai_prices")  # in the dev extra: these tests run, they do not skip there


@pytest.fixture(autouse=True)
def own_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without overrides and leaves none behind."""
    monkeypatch.setattr(cost_module, "_overrides", {})


# -- Price arithmetic ------------------------------------------------------------------------------
def test_cached_and_cache_write_tokens_are_billed_at_their_own_rates() -> None:
    price = Price(input=3, output=15, cached_input=0.3, cache_write=3.75)
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cached_input_tokens=6_000, cache_write_tokens=2_000)
    # 2000 plain * 3 + 6000 * 0.3 + 2000 * 3.75 + 1000 * 15 = 6000 + 1800 + 7500 + 15000 = 30300 millionths
    assert price.cost(usage) == 0.0303
    assert cost_of(usage, "house", prices={"house": price}) == 0.0303


def test_missing_cache_rates_bill_cached_tokens_as_input() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100, cached_input_tokens=400, cache_write_tokens=100)
    assert Price(input=2, output=8).cost(usage) == 0.0028  # 1000 * 2 + 100 * 8
    assert Price(input=2, output=8, cached_input=0.5).cost(usage) == 0.0022  # 500*2 + 400*0.5 + 100*2 + 800


@pytest.mark.parametrize(
    "fields",
    [
        {"input": -1, "output": 1},
        {"input": True, "output": 1},
        {"input": 1, "output": float("nan")},
        {"input": 1, "output": 1, "cached_input": "0.1"},
    ],
)
def test_a_price_must_be_non_negative_numbers(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="Price"):
        Price(**fields)  # type: ignore[arg-type]


def test_usage_with_more_cached_than_input_tokens_is_an_error() -> None:
    bad = Usage(input_tokens=10, output_tokens=1, cached_input_tokens=20)
    with pytest.raises(ConfigurationError, match="more cached"):
        cost_of(bad, "gpt-4o")
    with pytest.raises(ConfigurationError, match="more cached"):
        Price(input=1, output=1).cost(bad)


# -- your own prices -------------------------------------------------------------------------------
def test_set_price_wins_over_the_table_and_none_removes_it() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    assert cost_of(usage, "gpt-4o") == 2.5  # the table's rate
    set_price("gpt-4o", Price(input=1, output=1))
    assert cost_of(usage, "gpt-4o") == 1.0
    assert price_for("GPT-4o") == Price(input=1, output=1)  # names match case-insensitively
    set_price("gpt-4o", None)
    assert cost_of(usage, "gpt-4o") == 2.5
    set_price("gpt-4o", None)  # removing what is not there is fine


def test_a_price_for_the_undated_name_covers_dated_replies() -> None:
    set_price("house-model", Price(input=1, output=2))
    assert price_for("house-model-2025-01-31") == Price(input=1, output=2)
    assert price_for("house-model-20250131") == Price(input=1, output=2)
    assert price_for("house-model-v2") is None


def test_a_provider_specific_price_applies_to_that_provider_only() -> None:
    set_price("llama3", Price(input=0.1, output=0.2), provider="groq")
    set_price("llama3", Price(input=0, output=0))
    assert price_for("llama3", "groq") == Price(input=0.1, output=0.2)
    assert price_for("llama3", "openai-compatible") == Price(input=0, output=0)
    assert price_for("llama3") == Price(input=0, output=0)


def test_a_per_call_prices_mapping_wins_over_set_price() -> None:
    set_price("m", Price(input=1, output=1))
    usage = Usage(input_tokens=1_000, output_tokens=0)
    assert cost_of(usage, "m", prices={"M": Price(input=5, output=5)}) == 0.005
    with pytest.raises(ConfigurationError, match="must be a Price"):
        cost_of(usage, "m", prices={"m": 3.0})  # type: ignore[dict-item]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ConfigurationError, match="Price or None"):
        set_price("m", {"input": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty string"):
        set_price("", Price(input=1, output=1))
    with pytest.raises(ConfigurationError, match="Usage"):
        cost_of({"input_tokens": 1}, "gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="output_tokens must be an int"):
        estimate_cost("gpt-4o", input_tokens=1, output_tokens=-1)


# -- the genai-prices table ------------------------------------------------------------------------
def test_a_known_model_is_priced_from_the_table_with_its_cache_rate() -> None:
    # genai-prices' gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
    assert price_for("gpt-4o", "openai") == Price(input=2.5, output=10, cached_input=1.25)
    usage = Usage(input_tokens=1_000, output_tokens=500, cached_input_tokens=400)
    # 600 * 2.5 + 400 * 1.25 + 500 * 10 = 1500 + 500 + 5000 = 7000 millionths
    assert cost_of(usage, "gpt-4o", "openai") == 0.007
    assert estimate_cost("gpt-4o", input_tokens=1_000, output_tokens=500) == 0.0075  # 2500 + 5000


def test_dated_reply_names_match_the_table() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_of(usage, "gpt-4o-mini-2024-07-18", "openai") == cost_of(usage, "gpt-4o-mini") == 0.75


def test_the_table_applies_batch_rates_and_long_context_tiers() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=500, cached_input_tokens=400)
    assert cost_of(usage, "gpt-4o", batch=True) == 0.00375  # half of 0.007
    # claude-sonnet-4-5 above 200k input tokens: $6 input, $22.50 output per million
    long = Usage(input_tokens=300_000, output_tokens=1_000)
    assert cost_of(long, "claude-sonnet-4-5", "anthropic") == 1.8225
    assert price_for("claude-sonnet-4-5").input == 3.0  # type: ignore[union-attr]  # the base tier


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("no-such-model-xyz", None),
        ("llama3", None),
        ("gpt-4o", "no-such-provider"),
        (None, None),
        ("gpt-4o", "openai-compatible"),
        ("gpt-4o", "mock"),
    ],
)
def test_unknown_models_and_providers_have_no_price(model: str | None, provider: str | None) -> None:
    assert price_for(model, provider) is None
    assert cost_of(Usage(input_tokens=10, output_tokens=10), model, provider) is None
    assert estimate_cost(model, input_tokens=10, output_tokens=10, provider=provider) is None


def test_without_genai_prices_only_your_prices_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # import genai_prices now fails
    assert price_for("gpt-4o") is None
    assert cost_of(Usage(input_tokens=10, output_tokens=10), "gpt-4o") is None
    set_price("gpt-4o", Price(input=1, output=1))
    assert estimate_cost("gpt-4o", input_tokens=500_000, output_tokens=500_000) == 1.0


# -- cost on results -------------------------------------------------------------------------------
MINI = "gpt-4o-mini-2024-07-18"  # genai-prices: $0.15 input, $0.075 cached, $0.60 output per million


def test_result_cost_adds_up_every_call_of_a_repaired_reply() -> None:
    mock = MockBackend(
        [
            MockReply(text="not json", model=MINI, usage=Usage(input_tokens=1_000, output_tokens=200)),
            MockReply(
                text='{"a": 1}',
                model=MINI,
                usage=Usage(input_tokens=1_500, output_tokens=100, cached_input_tokens=1_000),
            ),
        ]
    )
    result = Prompt("{{ q }}", mock, parser=JsonParser(), repair=1).run(q="go")
    assert result.value == {"a": 1}
    assert [a.purpose for a in result.attempts] == ["answer", "repair"]
    first, second = (a.cost for a in result.attempts)
    assert first == 0.00027  # 1000 * 0.15 + 200 * 0.6
    assert second == 0.000210  # 500 * 0.15 + 1000 * 0.075 + 100 * 0.6
    assert result.cost == pytest.approx(0.00048, rel=1e-12)
    assert "$0.00048" in result._repr_html_()


def test_result_cost_is_unknown_when_any_call_is_unknown() -> None:
    mock = MockBackend([MockReply(text="nope", model=MINI), MockReply(text="[1]")])  # the second: model "mock"
    result = Prompt("{{ q }}", mock, parser=JsonParser(), repair=1).run(q="go")
    assert result.attempts[0].cost is not None
    assert result.attempts[1].cost is None
    assert result.cost is None
    assert "$" not in result._repr_html_()


def test_a_call_that_failed_before_a_reply_cost_nothing_known() -> None:
    assert Attempt(purpose="answer", messages=()).cost == 0.0


def test_result_cost_uses_the_reply_provider() -> None:
    served = Completion(text="[1]", model="gpt-4o", usage=Usage(input_tokens=1_000, output_tokens=0))
    local = Completion(
        text="[1]", model="gpt-4o", usage=Usage(input_tokens=1_000, output_tokens=0), provider="openai-compatible"
    )
    assert Attempt(purpose="answer", messages=(), completion=served).cost == 0.0025
    assert Attempt(purpose="answer", messages=(), completion=local).cost is None
    set_price("gpt-4o", Price(input=0, output=0), provider="openai-compatible")
    assert Attempt(purpose="answer", messages=(), completion=local).cost == 0.0


def test_batch_rates_halve_own_prices_and_table_models_without_a_batch_rate() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    own = {"house-model": Price(input=1, output=2)}
    assert cost_of(usage, "house-model", prices=own, batch=True) == 1.5
    standard = cost_of(usage, "claude-3-5-haiku-latest", "anthropic")  # listed without a batch rate
    assert standard is not None
    assert cost_of(usage, "claude-3-5-haiku-latest", "anthropic", batch=True) == standard / 2
    listed = cost_of(usage, "claude-haiku-4-5", "anthropic")  # the table's own batch rate
    assert listed is not None
    assert cost_of(usage, "claude-haiku-4-5", "anthropic", batch=True) == pytest.approx(listed / 2)


def test_a_batch_reply_is_priced_at_batch_rates() -> None:
    from promptkit import Completion, Result

    own = Price(input=1, output=2)
    set_price("house-batch-model", own)
    try:
        usage = Usage(input_tokens=1_000, output_tokens=100)
        served = Completion(text="x", model="house-batch-model", usage=usage, batch=True)
        assert served == Completion(text="x", model="house-batch-model", usage=usage)  # not part of the value
        assert Result(value="x", messages=(), completion=served).cost == own.cost(usage) / 2
    finally:
        set_price("house-batch-model", None)
