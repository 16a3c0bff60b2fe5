"""The report's statistics against known values: Wilson intervals, McNemar's exact test, the
bootstrap and the sign-flip permutation test. Reference values were computed by hand or with an
independent implementation and are written out here, so the tests need nothing beyond numpy."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import numpy as np
import pytest

from promptkit import ConfigurationError, MissingDependencyError
from promptkit._eval._stats import (
    bootstrap_mean_interval,
    bootstrap_means,
    mcnemar_exact,
    paired_bootstrap,
    paired_permutation,
    percentile_interval,
    resamples_rows,
    wilson_interval,
    z_for,
)


def _exact_mcnemar(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    term = total = 1  # comb(n, 0), then comb(n, j) from comb(n, j - 1), in exact integers
    for j in range(1, k + 1):
        term = term * (n - j + 1) // j
        total += term
    return min(1.0, 2 * total / 2**n)


# -- the normal quantile ---------------------------------------------------------------------------


def test_z_for_known_quantiles() -> None:
    assert z_for(0.95) == pytest.approx(1.959963984540054, rel=1e-12)
    assert z_for(0.90) == pytest.approx(1.6448536269514722, rel=1e-12)
    assert z_for(0.99) == pytest.approx(2.5758293035489004, rel=1e-12)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 95])
def test_confidence_outside_zero_one_is_rejected(confidence: float) -> None:
    with pytest.raises(ConfigurationError, match="confidence must be between 0 and 1"):
        z_for(confidence)
    with pytest.raises(ConfigurationError, match="confidence"):
        bootstrap_mean_interval([0.5, 1.0], confidence)


# -- Wilson ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "confidence", "expected"),
    [
        (8, 10, 0.95, (0.4901624715366418, 0.9433178485456247)),
        (0, 10, 0.95, (0.0, 0.27753279986288915)),
        (10, 10, 0.95, (0.7224672001371109, 1.0)),
        (1, 3, 0.95, (0.06149194472039626, 0.7923403991979523)),
        (50, 200, 0.95, (0.19508168006817497, 0.31434098312045833)),
        (999, 1000, 0.95, (0.9943574414020421, 0.9998234536293739)),
        (8, 10, 0.90, (0.5407928056874879, 0.9314420122624679)),
    ],
)
def test_wilson_known_values(successes: int, n: int, confidence: float, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(successes, n, confidence)
    assert low == pytest.approx(expected[0], rel=1e-12, abs=1e-15)
    assert high == pytest.approx(expected[1], rel=1e-12)


def test_wilson_by_hand() -> None:
    # 8/10 at z=1.96: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10), half-width z/(1+z^2/n) * sqrt(...)
    z = z_for(0.95)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert wilson_interval(8, 10) == pytest.approx((centre - half, centre + half))


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing is known
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0  # exactly, not 0.9999999
    low, high = wilson_interval(1, 1)
    assert 0.0 < low < 1.0 == high
    for successes in range(21):
        low, high = wilson_interval(successes, 20)
        assert 0.0 <= low <= successes / 20 <= high <= 1.0


@pytest.mark.parametrize(("successes", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(ConfigurationError, match="successes"):
        wilson_interval(successes, n)


# -- McNemar -----------------------------------------------------------------------------------------


def test_mcnemar_by_hand() -> None:
    # 12 discordant pairs, 2 one way: P(X <= 2) = (1 + 12 + 66) / 4096, doubled
    assert mcnemar_exact(10, 2) == 158 / 4096
    assert mcnemar_exact(2, 10) == 158 / 4096
    assert mcnemar_exact(0, 25) == 2 / 2**25
    assert mcnemar_exact(5, 3) == pytest.approx(0.7265625, rel=1e-15)


def test_mcnemar_no_or_balanced_discordance_is_one() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 0) == 1.0  # 2 * 1/2
    assert mcnemar_exact(7, 7) == 1.0
    assert mcnemar_exact(50_000, 50_000) == 1.0


@pytest.mark.parametrize(("b", "c"), [(7, 19), (40, 71), (1000, 1300), (4990, 5010), (5000, 5001), (5200, 4801)])
def test_mcnemar_matches_exact_integers(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(_exact_mcnemar(b, c), rel=1e-12)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (9000, 9400, 0.0032655409890300757),
        (49000, 51000, 2.5887160383468943e-10),
        (50500, 49500, 0.0015823598788515154),
        (49900, 50100, 0.5291572940801981),
    ],
)
def test_mcnemar_large_counts(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-8)


def test_mcnemar_far_tail_underflows_to_zero_not_an_error() -> None:
    assert mcnemar_exact(0, 100_000) == 0.0
    assert mcnemar_exact(30_000, 70_000) == 0.0
    assert 0.0 <= mcnemar_exact(10, 100_000) < 1e-300


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ConfigurationError, match="non-negative"):
        mcnemar_exact(-1, 3)


# -- the bootstrap -------------------------------------------------------------------------------------


def test_bootstrap_of_a_constant_has_no_width() -> None:
    assert bootstrap_mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert bootstrap_mean_interval([0.3]) == (0.3, 0.3)


def test_bootstrap_without_values_knows_nothing() -> None:
    assert bootstrap_mean_interval([]) == (0.0, 1.0)
    assert percentile_interval(np.empty(0), 0.95) == (0.0, 1.0)


@pytest.mark.parametrize("n", [40, 400, 4000])
def test_bootstrap_agrees_with_the_normal_interval_of_a_mean(n: int) -> None:
    rng = random.Random(n)
    values = [rng.random() for _ in range(n)]
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(n)
    low, high = bootstrap_mean_interval(values)
    assert low < mean < high
    assert low == pytest.approx(mean - half, abs=half * 0.2)
    assert high == pytest.approx(mean + half, abs=half * 0.2)


def test_bootstrap_by_levels_agrees_with_the_normal_interval_too() -> None:
    # 3 distinct scores over 600 rows: resampled by drawing how often each level comes up
    values = [0.0] * 200 + [0.5] * 100 + [1.0] * 300
    assert not resamples_rows(values)
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    low, high = bootstrap_mean_interval(values)
    assert low == pytest.approx(mean - half, abs=half * 0.15)
    assert high == pytest.approx(mean + half, abs=half * 0.15)


def test_bootstrap_is_seeded() -> None:
    values = [i / 97 for i in range(97)]
    assert bootstrap_mean_interval(values, seed=3) == bootstrap_mean_interval(values, seed=3)
    assert bootstrap_mean_interval(values, seed=3) != bootstrap_mean_interval(values, seed=4)
    narrow = bootstrap_mean_interval(values, confidence=0.5)
    wide = bootstrap_mean_interval(values, confidence=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="finite"):
        bootstrap_mean_interval([0.5, float("nan")])
    with pytest.raises(ConfigurationError, match="flat sequence"):
        bootstrap_mean_interval([[0.5, 0.2]])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="resamples"):
        bootstrap_mean_interval([0.5], resamples=0)


def test_bootstrap_means_share_row_draws_between_columns() -> None:
    rng = random.Random(1)
    a = [rng.random() * 0.9 for _ in range(300)]
    b = [x + 0.1 for x in a]
    c = [rng.random() for _ in range(200)]  # another length: drawn apart
    means_a, means_b, means_c, empty = bootstrap_means([a, b, c, []], resamples=500)
    assert np.allclose(means_b - means_a, 0.1)
    assert means_c.shape == (500,)
    assert empty.size == 0
    # one by one gives the same draws
    assert percentile_interval(means_a, 0.95) == pytest.approx(bootstrap_mean_interval(a, resamples=500))
    assert percentile_interval(means_c, 0.95) == pytest.approx(bootstrap_mean_interval(c, resamples=500))


def test_numpy_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "numpy", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "promptkit\[eval\]"'):
        bootstrap_mean_interval([0.5, 0.25])
    # the closed forms need no numpy
    assert wilson_interval(1, 2)[0] > 0
    assert mcnemar_exact(3, 1) == 0.625


# -- paired tests --------------------------------------------------------------------------------------


def test_paired_bootstrap_of_a_clear_shift() -> None:
    a = [0.2, 0.4, 0.5] * 20
    b = [0.6, 0.5, 0.9] * 20
    effect, low, high, p = paired_bootstrap(a, b)
    assert effect == pytest.approx(0.3)
    assert 0 < low < effect < high
    assert p < 0.01


def test_paired_bootstrap_of_no_difference() -> None:
    assert paired_bootstrap([0.3, 0.6], [0.3, 0.6]) == (0.0, 0.0, 0.0, 1.0)
    assert paired_bootstrap([], []) == (0.0, -1.0, 1.0, 1.0)
    rng = random.Random(2)
    a = [rng.random() for _ in range(500)]
    b = [rng.random() for _ in range(500)]
    effect, low, high, p = paired_bootstrap(a, b)
    assert low < effect < high
    assert low < 0 < high  # noise
    assert p > 0.05


def test_paired_samples_must_have_equal_lengths() -> None:
    with pytest.raises(ConfigurationError, match="equal lengths"):
        paired_bootstrap([0.1, 0.2], [0.3])
    with pytest.raises(ConfigurationError, match="equal lengths"):
        paired_permutation([0.1], [0.3, 0.4])


def _brute_force_sign_flip(diffs: list[float]) -> float:
    observed = abs(sum(diffs))
    hits = 0
    for signs in itertools.product((1, -1), repeat=len(diffs)):
        if abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12:
            hits += 1
    return hits / 2 ** len(diffs)


def test_permutation_is_exact_for_small_samples() -> None:
    assert paired_permutation([0, 0, 0, 0, 0], [1, 1, 1, 1, 1]) == 2 / 32
    a = [0.1, 0.5, 0.3, 0.9, 0.2, 0.4]
    b = [0.3, 0.6, 0.2, 1.0, 0.5, 0.4]
    assert paired_permutation(a, b) == pytest.approx(0.25)  # 16 of 64 patterns (the tie drops out)
    rng = random.Random(5)
    for _ in range(5):
        a = [rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in range(12)]
        b = [rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in range(12)]
        diffs = [y - x for x, y in zip(a, b, strict=True) if y != x]
        expected = _brute_force_sign_flip(diffs) if diffs else 1.0
        assert paired_permutation(a, b) == pytest.approx(expected, rel=1e-9)


def test_permutation_of_ties_is_one() -> None:
    assert paired_permutation([0.5, 0.2], [0.5, 0.2]) == 1.0
    assert paired_permutation([], []) == 1.0


def test_permutation_by_sampling_for_large_samples() -> None:
    rng = random.Random(7)
    a = [rng.random() for _ in range(3000)]
    noise = [rng.random() for _ in range(3000)]
    shifted = [min(1.0, x + 0.05 + rng.gauss(0, 0.1)) for x in a]
    assert paired_permutation(a, shifted, resamples=999) == pytest.approx(1 / 1000)  # none as extreme
    p = paired_permutation(a, noise, resamples=999)
    assert p > 0.05
    assert paired_permutation(a, noise, resamples=999, seed=1) == paired_permutation(a, noise, resamples=999, seed=1)


def test_permutation_by_sampling_agrees_with_the_exact_count() -> None:
    # Repeated difference sizes: 4 levels x 30 pairs = 31^4 patterns, too many to count, so sampled.
    rng = random.Random(11)
    diffs = [rng.choice([-0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.0]) for _ in range(120)]
    a = [0.0 if d > 0 else -d for d in diffs]
    b = [d if d > 0 else 0.0 for d in diffs]
    sampled = paired_permutation(a, b, resamples=20000)
    # the normal approximation of the sign-flip distribution: sd = sqrt(sum d^2)
    z = abs(sum(diffs)) / math.sqrt(sum(d * d for d in diffs))
    approx = 2 * (1 - statistics.NormalDist().cdf(z))
    assert sampled == pytest.approx(approx, abs=0.03)
