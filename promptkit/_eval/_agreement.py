"""How far two raters agree beyond chance: Cohen's kappa and the rates a judge's calibration reports.

Counts are kept as integers and divided once at the end, so a textbook example gives its textbook
value exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from .._errors import ConfigurationError

__all__ = ["cohen_kappa", "rate"]


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels on the same items (any hashable labels, any number).

    ``kappa = (p_o - p_e) / (1 - p_e)``: the observed agreement ``p_o`` corrected for the
    agreement ``p_e`` expected by chance from each rater's label frequencies. 1 is perfect
    agreement, 0 no better than chance, negative worse than chance.

    When ``p_e`` is 1 the formula is 0/0: both raters gave every item one and the same label.
    That is defined here as 1.0 when they agree on every item (they do, then) and 0.0 otherwise,
    so the function always returns a number.

    The textbook 2x2 example: 20 items both say yes, 5 only the first, 10 only the second, 15 both
    no.

    >>> first = ["yes"] * 25 + ["no"] * 25
    >>> second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    >>> round(cohen_kappa(first, second), 10)
    0.4
    """
    if isinstance(a, (str, bytes)) or isinstance(b, (str, bytes)):
        raise ConfigurationError("cohen_kappa() takes two sequences of labels, not strings")
    if len(a) != len(b):
        raise ConfigurationError(f"cohen_kappa() needs as many labels from each rater; got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        raise ConfigurationError("cohen_kappa() needs at least one pair of labels")
    agree = sum(1 for x, y in zip(a, b, strict=True) if x == y)
    counts_a, counts_b = Counter(a), Counter(b)
    chance = sum(count * counts_b.get(label, 0) for label, count in counts_a.items())  # n^2 * p_e
    total = n * n
    if chance == total:
        return 1.0 if agree == n else 0.0
    return (n * agree - chance) / (total - chance)


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when there is nothing to divide by (a rate that does not exist).

    >>> rate(3, 4), rate(0, 0)
    (0.75, None)
    """
    return part / whole if whole else None
