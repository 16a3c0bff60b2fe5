"""The statistics behind the report: intervals for a mean and tests for two variants on the same rows.

Pure functions. A share of binary outcomes gets the Wilson score interval; any other mean gets a
percentile bootstrap. Two variants scored on the same rows are compared pairwise: McNemar's exact
test for binary outcomes, a sign-flip permutation test otherwise, with a paired bootstrap interval
for the difference. numpy is imported only by the resampling functions.

Resampling is vectorised and, when the values take few distinct levels (scores of a rubric, the
mean over a few epochs, differences of binary outcomes), draws how often each level comes up
(multinomial or binomial counts) instead of every row: the same distribution for far less work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from .._utils import require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

__all__ = [
    "bootstrap_mean_interval",
    "bootstrap_means",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_permutation",
    "percentile_interval",
    "resamples_rows",
    "wilson_interval",
    "z_for",
]

# Below this many nonzero differences' sign patterns, the permutation test enumerates them all.
_EXACT_PATTERNS = 1 << 16
# Up to this many discordant pairs, McNemar's largest term comes from exact integers (~3 ms at most).
_EXACT_PMF = 10_000
# Draw counts per distinct level (about 17x the cost of one index draw) when levels are this rare.
_LEVELS_FACTOR = 16
# Resampled rows held in memory at once (float64 values plus int32 indices).
_CHUNK = 1 << 18


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigurationError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")


def _check_resamples(resamples: int) -> None:
    if resamples < 1:
        raise ConfigurationError(f"resamples must be at least 1, got {resamples!r}")


def z_for(confidence: float = 0.95) -> float:
    """The two-sided normal quantile of ``confidence`` (1.96 for 95%).

    >>> round(z_for(0.95), 4)
    1.96
    """
    _check_confidence(confidence)
    return float(NormalDist().inv_cdf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / n``: it stays inside [0, 1] and keeps its
    coverage near 0% and 100%, where the normal approximation fails. ``n == 0`` gives ``(0.0, 1.0)``:
    nothing is known.

    >>> low, high = wilson_interval(8, 10)
    >>> round(low, 4), round(high, 4)
    (0.4902, 0.9433)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n < 0 or not 0 <= successes <= n:
        raise ConfigurationError(f"need 0 <= successes <= n, got successes={successes!r}, n={n!r}")
    z = z_for(confidence)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact test: the two-sided p-value of ``b`` pairs going one way and ``c`` the other
    when both ways are equally likely (a binomial test with p = 1/2 on the discordant pairs).

    The tail is summed in floating point relative to its largest term, which is exact up to 10,000
    pairs and found with ``lgamma`` beyond (about 1e-9 relative error at 100,000 pairs), so the
    test stays accurate and takes well under a millisecond for any count. ``b + c == 0`` gives 1.0.

    >>> round(mcnemar_exact(10, 2), 6)
    0.038574
    >>> mcnemar_exact(0, 0), mcnemar_exact(7, 7)
    (1.0, 1.0)
    """
    if b < 0 or c < 0:
        raise ConfigurationError(f"discordant counts must be non-negative, got b={b!r}, c={c!r}")
    n = b + c
    k = min(b, c)
    if n == 0 or 2 * k >= n:
        return 1.0
    # P(X <= k) = pmf(k) * (1 + k/(n-k+1) + k(k-1)/((n-k+1)(n-k+2)) + ...): terms only shrink.
    total, term = 1.0, 1.0
    for j in range(k, 0, -1):
        term *= j / (n - j + 1)
        total += term
        if term < total * 1e-17:
            break
    if n <= _EXACT_PMF:
        pmf = math.comb(n, k) / (1 << n)  # the division of two integers rounds correctly
        return min(1.0, 2 * pmf * total)
    log_pmf = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    return min(1.0, 2 * math.exp(log_pmf + math.log(total)))


def _numpy() -> Any:
    return require("numpy", extra="eval")


def _as_array(values: Sequence[float] | FloatArray, what: str) -> FloatArray:
    np = _numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigurationError(f"{what} must be a flat sequence of numbers, got shape {array.shape}")
    if array.size and not np.isfinite(array).all():
        raise ConfigurationError(f"{what} must be finite numbers (no NaN or infinity)")
    result: FloatArray = array
    return result


def _levels(values: FloatArray) -> tuple[FloatArray, Any] | None:
    """The distinct values and their counts when they are few enough to resample by level."""
    np = _numpy()
    levels, counts = np.unique(values, return_counts=True)
    return (levels, counts) if levels.size * _LEVELS_FACTOR <= values.size else None


def resamples_rows(values: Sequence[float] | FloatArray) -> bool:
    """Whether resampling ``values`` draws rows (many distinct values) rather than level counts.

    Columns that draw rows share their draws in :func:`bootstrap_means`: the difference of two
    such columns' resampled means is then the paired bootstrap of their differences.
    """
    array = _as_array(values, "values")
    return array.size > 0 and _levels(array) is None


def _row_means(matrix: FloatArray, resamples: int, seed: int) -> FloatArray:
    """For each line of ``matrix`` (one column of scores each, all of one length ``n``), the means
    of ``resamples`` resamples of ``n`` rows; every line uses the same seeded row draws."""
    np = _numpy()
    rng = np.random.default_rng(seed)
    n = matrix.shape[1]
    means: FloatArray = np.empty((matrix.shape[0], resamples), dtype=np.float64)
    step = max(1, _CHUNK // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        index = rng.integers(0, n, size=(stop - start, n), dtype=np.int32 if n < 2**31 else np.int64)
        for line, values in enumerate(matrix):  # line by line: a 3-d gather is slower
            means[line, start:stop] = values[index].sum(axis=1) / n
    return means


def _resampled_means(values: FloatArray, resamples: int, seed: int) -> FloatArray:
    """``resamples`` means of ``len(values)`` draws with replacement from ``values``."""
    np = _numpy()
    found = _levels(values)
    if found is None:
        means: FloatArray = _row_means(values[None, :], resamples, seed)[0]
        return means
    # How often each distinct value is drawn is multinomial: the same means, far fewer draws.
    levels, counts = found
    drawn = np.random.default_rng(seed).multinomial(values.size, counts / values.size, size=resamples)
    result: FloatArray = drawn @ levels / values.size
    return result


def bootstrap_means(
    columns: Sequence[Sequence[float] | FloatArray], resamples: int = 2000, seed: int = 0
) -> list[FloatArray]:
    """Each column's ``resamples`` bootstrap means, as :func:`bootstrap_mean_interval` draws them,
    computed together: columns of one length that resample rows share one set of row draws (the
    draws cost more than reading the rows they pick), so each further column costs less than half.

    >>> a, b = bootstrap_means([[0.1, 0.7, 0.3, 0.9], [0.2, 0.8, 0.4, 1.0]], resamples=5)
    >>> bool(abs((b - a) - 0.1).max() < 1e-12)  # the same rows were drawn for both
    True
    """
    _check_resamples(resamples)
    np = _numpy()
    arrays = [_as_array(column, "column") for column in columns]
    out: list[FloatArray | None] = [None] * len(arrays)
    by_length: dict[int, list[int]] = {}
    for position, array in enumerate(arrays):
        if array.size == 0:
            out[position] = np.empty(0)
        elif _levels(array) is None:
            by_length.setdefault(array.size, []).append(position)
        else:
            out[position] = _resampled_means(array, resamples, seed)
    for positions in by_length.values():
        stacked = _row_means(np.stack([arrays[p] for p in positions]), resamples, seed)
        for line, position in enumerate(positions):
            out[position] = stacked[line]
    return [means for means in out if means is not None]


def percentile_interval(means: FloatArray, confidence: float) -> tuple[float, float]:
    """The middle ``confidence`` of resampled ``means`` (the percentile bootstrap interval)."""
    _check_confidence(confidence)
    if means.size == 0:
        return 0.0, 1.0
    return _percentiles(means, confidence)


def _percentiles(means: FloatArray, confidence: float) -> tuple[float, float]:
    np = _numpy()
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean_interval(
    values: Sequence[float] | FloatArray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values``: the middle ``confidence`` of the
    means of ``resamples`` resamples (seeded, so a report is reproducible). One value gives a
    zero-width interval; no values give ``(0.0, 1.0)``, like :func:`wilson_interval`.

    >>> bootstrap_mean_interval([0.5, 0.5, 0.5])
    (0.5, 0.5)
    >>> low, high = bootstrap_mean_interval([0.2, 0.4, 0.6, 0.8] * 25)
    >>> 0.43 < low < 0.5 < high < 0.57
    True
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    array = _as_array(values, "values")
    if array.size == 0:
        return 0.0, 1.0
    return _percentiles(_resampled_means(array, resamples, seed), confidence)


def _differences(a: Sequence[float] | FloatArray, b: Sequence[float] | FloatArray) -> FloatArray:
    first, second = _as_array(a, "a"), _as_array(b, "b")
    if first.size != second.size:
        raise ConfigurationError(f"paired samples need equal lengths, got {first.size} and {second.size}")
    diff: FloatArray = second - first
    return diff


def paired_bootstrap(
    a: Sequence[float] | FloatArray,
    b: Sequence[float] | FloatArray,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """The mean of ``b - a`` over pairs, its percentile bootstrap interval (pairs resampled
    together) and the bootstrap p-value for "no difference": twice the share of resampled means
    on the far side of zero (the smallest level whose interval would exclude zero).

    >>> effect, low, high, p = paired_bootstrap([0.2, 0.4, 0.5] * 20, [0.6, 0.5, 0.9] * 20)
    >>> round(effect, 4), low > 0, p < 0.01
    (0.3, True, True)
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    diff = _differences(a, b)
    if diff.size == 0:
        return 0.0, -1.0, 1.0, 1.0
    np = _numpy()
    effect = float(diff.mean())
    means = _resampled_means(diff, resamples, seed)
    low, high = _percentiles(means, confidence)
    if not diff.any():
        return effect, low, high, 1.0
    below = int(np.count_nonzero(means <= 0))
    above = int(np.count_nonzero(means >= 0))
    p = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return effect, low, high, p


def paired_permutation(
    a: Sequence[float] | FloatArray,
    b: Sequence[float] | FloatArray,
    resamples: int = 2000,
    seed: int = 0,
) -> float:
    """The two-sided sign-flip permutation test of ``b - a``: if the variants were interchangeable,
    each pair's difference would be as likely negated; the p-value is the share of sign patterns
    whose mean difference is at least as far from zero as the one observed.

    Pairs with equal scores carry no sign and drop out. Differences of the same size flip as a
    group (how many of them turn negative is binomial), and when the patterns are few (up to
    65,536) every one is counted, so small samples get the exact p-value; otherwise ``resamples``
    seeded random patterns estimate it, counting the observed one.

    >>> paired_permutation([0, 0, 0, 0, 0], [1, 1, 1, 1, 1])  # 2 of 32 patterns are as extreme
    0.0625
    >>> paired_permutation([0.5, 0.2], [0.5, 0.2])
    1.0
    """
    _check_resamples(resamples)
    np = _numpy()
    diff = _differences(a, b)
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        return 1.0
    sizes, counts = np.unique(np.abs(nonzero), return_counts=True)
    observed = abs(float(nonzero.sum()))
    tolerance = 1e-9 * float(np.abs(nonzero).sum())
    # With k of a level's n differences negative, the total is sum(size * (n - 2k)).
    patterns = math.prod(int(count) + 1 for count in counts)
    if patterns <= _EXACT_PATTERNS:
        totals = np.zeros(1)
        weights = np.ones(1)
        for size, count in zip(sizes.tolist(), counts.tolist(), strict=True):
            flips = np.arange(count + 1)
            level = size * (count - 2 * flips)
            chance = np.array([math.comb(count, int(k)) for k in flips], dtype=np.float64) / 2.0**count
            totals = (totals[:, None] + level[None, :]).ravel()
            weights = (weights[:, None] * chance[None, :]).ravel()
        return min(1.0, float(weights[np.abs(totals) >= observed - tolerance].sum()))
    rng = np.random.default_rng(seed)
    single = counts == 1  # continuous scores: each difference its own level, one random sign each
    single_sizes, group_sizes, group_counts = sizes[single], sizes[~single], counts[~single]
    totals = np.empty(resamples, dtype=np.float64)
    step = max(1, _CHUNK // max(1, sizes.size))
    for start in range(0, resamples, step):
        rows = min(resamples, start + step) - start
        chunk = np.zeros(rows, dtype=np.float64)
        if group_sizes.size:
            flipped = rng.binomial(group_counts, 0.5, size=(rows, group_sizes.size))
            chunk += (group_counts - 2 * flipped) @ group_sizes
        if single_sizes.size:
            packed = rng.integers(0, 256, size=(rows, (single_sizes.size + 7) // 8), dtype=np.uint8)
            negative = np.unpackbits(packed, axis=1, count=single_sizes.size)
            chunk += single_sizes.sum() - 2 * (negative @ single_sizes)
        totals[start : start + rows] = chunk
    extreme = int(np.count_nonzero(np.abs(totals) >= observed - tolerance))
    return min(1.0, (extreme + 1) / (resamples + 1))
