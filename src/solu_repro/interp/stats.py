"""Small-sample statistics for the blinded evaluation (paper §6.1-6.2).

The paper reports fractions of interpretable neurons out of 60 per model (~35% baseline vs
~60% SoLU, §6.2) without intervals. At n = 60 the normal ("Wald") interval is poor near 0 and
1, so single proportions get Wilson score intervals and differences between two models get
Newcombe's hybrid score interval (method 10 of Newcombe, Statistics in Medicine 17:873-890,
1998), which is built from the two Wilson intervals and stays inside [-1, 1].

Agreement between evaluators (one annotator "held a higher bar", §6.2) is measured with
raw agreement and Cohen's kappa.

Only the standard library is used (``statistics.NormalDist`` gives the normal quantile).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Sequence


def _z(confidence: float) -> float:
    """Two-sided standard-normal critical value (1.959964 for 95%)."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
            or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1 "
                         f"(e.g. 0.95), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check_counts(successes: int, n: int, what: str = "") -> None:
    label = f"{what}: " if what else ""
    for name, value in (("successes", successes), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{label}{name} must be an integer count, got {value!r}")
        if value < 0:
            raise ValueError(f"{label}{name} must be >= 0, got {value}")
    if successes > n:
        raise ValueError(f"{label}successes ({successes}) cannot exceed n ({n})")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Args:
        successes: Number of successes (e.g. neurons judged interpretable).
        n: Number of trials (judged neurons, skips excluded).
        confidence: Two-sided coverage, e.g. 0.95.

    Returns:
        ``(lo, hi)``; ``(0.0, 1.0)`` when ``n == 0`` (no information).

    Raises:
        ValueError: Negative or non-integer counts, or ``successes > n``.
    """
    _check_counts(successes, n)
    z = _z(confidence)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Exact endpoints at 0/n and n/n; clamping also removes 1e-17 rounding outside [0, 1].
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True)
class Proportion:
    """A fraction with its Wilson interval, e.g. ``fraction_interpretable`` of one model."""

    successes: int
    n: int
    fraction: float
    lo: float
    hi: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a (0 judged)"
        return (f"{self.fraction:.1%} ({self.successes}/{self.n}; "
                f"{self.lo:.1%}-{self.hi:.1%})")


def proportion(successes: int, n: int, confidence: float = 0.95) -> Proportion:
    """``successes / n`` with its Wilson interval (fraction is NaN when ``n == 0``)."""
    lo, hi = wilson_interval(successes, n, confidence)
    fraction = successes / n if n else math.nan
    return Proportion(successes, n, fraction, lo, hi)


def difference_interval(s1: int, n1: int, s2: int, n2: int,
                        confidence: float = 0.95) -> tuple[float, float, float]:
    """Newcombe's hybrid score interval (method 10) for ``p1 - p2``, independent samples.

    With Wilson intervals ``(l1, u1)`` and ``(l2, u2)``::

        lo = d - sqrt((p1 - l1)**2 + (u2 - p2)**2)
        hi = d + sqrt((u1 - p1)**2 + (p2 - l2)**2)

    Args:
        s1, n1: Successes and trials of the first sample (e.g. the SoLU model).
        s2, n2: Successes and trials of the second sample (e.g. its baseline).
        confidence: Two-sided coverage.

    Returns:
        ``(diff, lo, hi)``. If a sample is empty its proportion is unknown: ``diff`` is NaN
        and the interval is the uninformative ``(-1.0, 1.0)``.

    Raises:
        ValueError: Bad counts in either sample.
    """
    _check_counts(s1, n1, "first sample")
    _check_counts(s2, n2, "second sample")
    _z(confidence)
    if n1 == 0 or n2 == 0:
        return math.nan, -1.0, 1.0
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, lo), min(1.0, hi)


def _check_pairs(a: Sequence[bool], b: Sequence[bool]) -> None:
    if len(a) != len(b):
        raise ValueError(f"the two raters must judge the same items: got {len(a)} and "
                         f"{len(b)} judgments")
    if len(a) == 0:
        raise ValueError("no items judged by both raters: agreement is undefined")


def agreement(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Fraction of items on which two raters gave the same judgment."""
    _check_pairs(a, b)
    return sum(bool(x) == bool(y) for x, y in zip(a, b)) / len(a)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two raters' yes/no judgments of the same items.

    ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` the agreement expected from each rater's own
    rate of "yes". When both raters give one and the same answer to every item ``p_e = 1``
    and kappa is undefined: NaN is returned.
    """
    p_o = agreement(a, b)
    rate_a = sum(map(bool, a)) / len(a)
    rate_b = sum(map(bool, b)) / len(b)
    p_e = rate_a * rate_b + (1 - rate_a) * (1 - rate_b)
    if p_e >= 1.0:
        return math.nan
    return (p_o - p_e) / (1 - p_e)
