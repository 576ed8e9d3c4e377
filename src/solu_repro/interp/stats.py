"""Small-sample statistics for the blinded evaluation (paper §6.1-6.2) and for seed-to-seed noise.

The paper reports fractions of interpretable neurons out of 60 per model (~35% baseline vs
~60% SoLU, §6.2) without intervals. At n = 60 the normal ("Wald") interval is poor near 0 and
1, so single proportions get Wilson score intervals and differences between two models get
Newcombe's hybrid score interval (method 10 of Newcombe, Statistics in Medicine 17:873-890,
1998), which is built from the two Wilson intervals and stays inside [-1, 1].

Agreement between evaluators (one annotator "held a higher bar", §6.2) is measured with
raw agreement and Cohen's kappa.

Claims whose noise is seed-to-seed (each model trained with a few seeds; matched GELU/SoLU
pairs share a seed) get t intervals on per-seed values (:func:`seed_mean_interval`,
:func:`paired_seed_difference`, :func:`welch_seed_difference`), a TOST equivalence test
(:func:`equivalence_test`), and a two-level (seeds, then neurons) bootstrap
(:func:`hierarchical_bootstrap`, :func:`hierarchical_bootstrap_difference`).

The statistics are library calls: statsmodels (Wilson, Newcombe, kappa, TOST) and scipy (t
intervals); only the hierarchical bootstrap, which no library provides, is written here.
scipy and statsmodels are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor


def _check_confidence(confidence: float, name: str = "confidence") -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
            or not 0 < confidence < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1 "
                         f"(e.g. 0.95), got {confidence!r}")
    return float(confidence)


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

    ``statsmodels.stats.proportion.proportion_confint(method="wilson")``, with exact endpoints
    at 0/n and n/n and the result clamped to [0, 1] (removing 1e-16 rounding).

    Args:
        successes: Number of successes (e.g. neurons judged interpretable).
        n: Number of trials (judged neurons, skips excluded).
        confidence: Two-sided coverage, e.g. 0.95.

    Returns:
        ``(lo, hi)``; ``(0.0, 1.0)`` when ``n == 0`` (no information).

    Raises:
        ValueError: Negative or non-integer counts, ``successes > n``, or a confidence outside
            (0, 1).
    """
    _check_counts(successes, n)
    confidence = _check_confidence(confidence)
    if n == 0:
        return 0.0, 1.0
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    lo = 0.0 if successes == 0 else max(0.0, float(lo))
    hi = 1.0 if successes == n else min(1.0, float(hi))
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

    ``statsmodels.stats.proportion.confint_proportions_2indep(method="newcomb")``. With
    Wilson intervals ``(l1, u1)`` and ``(l2, u2)``::

        lo = d - sqrt((p1 - l1)**2 + (u2 - p2)**2)
        hi = d + sqrt((u1 - p1)**2 + (p2 - l2)**2)

    Args:
        s1, n1: Successes and trials of the first sample (e.g. the SoLU model).
        s2, n2: Successes and trials of the second sample (e.g. its baseline).
        confidence: Two-sided coverage.

    Returns:
        ``(diff, lo, hi)``, the interval clamped to [-1, 1]. If a sample is empty its
        proportion is unknown: ``diff`` is NaN and the interval is the uninformative
        ``(-1.0, 1.0)``.

    Raises:
        ValueError: Bad counts in either sample, or a confidence outside (0, 1).
    """
    _check_counts(s1, n1, "first sample")
    _check_counts(s2, n2, "second sample")
    confidence = _check_confidence(confidence)
    if n1 == 0 or n2 == 0:
        return math.nan, -1.0, 1.0
    from statsmodels.stats.proportion import confint_proportions_2indep

    lo, hi = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff",
                                        alpha=1 - confidence)
    return s1 / n1 - s2 / n2, max(-1.0, float(lo)), min(1.0, float(hi))


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

    ``statsmodels.stats.inter_rater.cohens_kappa`` on the 2x2 table: ``(p_o - p_e) /
    (1 - p_e)`` with ``p_e`` the agreement expected from each rater's own rate of "yes".
    When both raters give one and the same answer to every item ``p_e = 1`` and kappa is
    undefined: NaN is returned.
    """
    _check_pairs(a, b)
    table = np.zeros((2, 2), dtype=np.int64)
    for x, y in zip(a, b):
        table[int(bool(x)), int(bool(y))] += 1
    if table[0, 0] == len(a) or table[1, 1] == len(a):  # p_e = 1
        return math.nan
    from statsmodels.stats.inter_rater import cohens_kappa as _kappa

    return float(_kappa(table, return_results=False))


# --- seed-level statistics ---------------------------------------------------------------


@dataclass(frozen=True)
class SeedInterval:
    """An estimate over seeds with its interval.

    Attributes:
        estimate: The point estimate (a mean, or a difference of means).
        lo, hi: The interval; ``-inf``/``inf`` where the seeds give no interval (one seed).
        n_seeds: Seeds used (pairs for a paired difference; both sides together for an
            unpaired one).
        method: A short description, e.g. ``"paired t on 3 seed differences"``.
        values: The per-seed values the estimate rests on (see each function).
    """

    estimate: float
    lo: float
    hi: float
    n_seeds: int
    method: str
    values: tuple[float, ...]

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies strictly on one side of 0."""
        return self.lo > 0 or self.hi < 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = list(self.values)
        d["excludes_zero"] = self.excludes_zero
        return d

    def format(self, fmt: str = "+.3f") -> str:
        """``"+0.123 [+0.010, +0.236] (3 seeds)"``, numbers formatted with ``fmt``."""
        seeds = "1 seed" if self.n_seeds == 1 else f"{self.n_seeds} seeds"
        return (f"{format(self.estimate, fmt)} [{format(self.lo, fmt)}, "
                f"{format(self.hi, fmt)}] ({seeds})")

    def __str__(self) -> str:
        return self.format()


def _as_values(values: Sequence[float], what: str = "values") -> np.ndarray:
    """A non-empty, finite, 1-D float array, or a ValueError saying what is wrong."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a sequence of numbers: {err}") from None
    if x.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (one value per seed), "
                         f"got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{what} is empty: need at least one seed")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} must be finite, got {x.tolist()}")
    return x


def _t_interval(d: np.ndarray, confidence: float, method: str, n_seeds: int,
                values: np.ndarray) -> SeedInterval:
    """One-sample t interval on ``d`` (scipy ``ttest_1samp``)."""
    est = float(d.mean())
    if d.size < 2:
        return SeedInterval(est, -math.inf, math.inf, n_seeds,
                            "one seed: no interval", tuple(values.tolist()))
    if np.ptp(d) == 0:  # no spread: no variance estimate, so no interval (never zero width,
        # which would make a coincidence of k/512 fractions look certain)
        return SeedInterval(est, -math.inf, math.inf, n_seeds,
                            f"{method}: no interval (the seeds do not differ at all, so there "
                            "is no variance estimate)", tuple(values.tolist()))
    from scipy.stats import ttest_1samp

    ci = ttest_1samp(d, 0.0).confidence_interval(confidence)
    return SeedInterval(est, float(ci.low), float(ci.high), n_seeds, method,
                        tuple(values.tolist()))


def seed_mean_interval(values: Sequence[float], confidence: float = 0.95) -> SeedInterval:
    """t interval on the mean of per-seed values (``scipy.stats.ttest_1samp``).

    Args:
        values: One value per seed (e.g. each seed's final loss).
        confidence: Two-sided coverage.

    Returns:
        A :class:`SeedInterval` with ``values`` the per-seed values. With one seed the
        interval is ``(-inf, inf)`` and ``method`` says "one seed: no interval"; identical
        values give no variance estimate and also ``(-inf, inf)``.

    Raises:
        ValueError: Empty or non-finite values, or a confidence outside (0, 1).
    """
    confidence = _check_confidence(confidence)
    x = _as_values(values)
    return _t_interval(x, confidence, f"t on {x.size} seed values", x.size, x)


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_values(a, "a"), _as_values(b, "b")
    if x.size != y.size:
        raise ValueError(f"paired values need one a and one b per seed: got {x.size} a "
                         f"values and {y.size} b values")
    return x, y


def paired_seed_difference(a: Sequence[float], b: Sequence[float],
                           confidence: float = 0.95) -> SeedInterval:
    """t interval on ``mean(a - b)`` for matched seeds (``scipy.stats.ttest_rel``).

    ``a[i]`` and ``b[i]`` come from the same seed (e.g. the SoLU and GELU models trained with
    seed ``i``), so the seed-to-seed noise they share cancels in ``a[i] - b[i]``.

    Returns:
        A :class:`SeedInterval` whose ``values`` are the per-seed differences ``a - b``.
        One pair gives ``(-inf, inf)``.

    Raises:
        ValueError: Different lengths (both are named), empty or non-finite values.
    """
    confidence = _check_confidence(confidence)
    x, y = _paired(a, b)
    d = x - y
    if d.size >= 2 and np.ptp(d) > 0:
        from scipy.stats import ttest_rel

        ci = ttest_rel(x, y).confidence_interval(confidence)
        return SeedInterval(float(d.mean()), float(ci.low), float(ci.high), d.size,
                            f"paired t on {d.size} seed differences", tuple(d.tolist()))
    return _t_interval(d, confidence, f"paired t on {d.size} seed differences", d.size, d)


def welch_seed_difference(a: Sequence[float], b: Sequence[float],
                          confidence: float = 0.95) -> SeedInterval:
    """Welch t interval for ``mean(a) - mean(b)``, unpaired (different seed sets).

    ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval``, with the
    Welch-Satterthwaite degrees of freedom.

    Returns:
        A :class:`SeedInterval` with ``n_seeds = len(a) + len(b)`` and ``values`` the a values
        followed by the b values. Fewer than 2 values on a side gives ``(-inf, inf)`` (that
        side's variance is unknown) and ``method`` says so; so does a pair of constant sides
        (no variance estimate).

    Raises:
        ValueError: Empty or non-finite values, or a confidence outside (0, 1).
    """
    confidence = _check_confidence(confidence)
    x, y = _as_values(a, "a"), _as_values(b, "b")
    est = float(x.mean() - y.mean())
    values = tuple(x.tolist() + y.tolist())
    n = x.size + y.size
    method = f"Welch t on {x.size} vs {y.size} seeds"
    if x.size < 2 or y.size < 2:
        return SeedInterval(est, -math.inf, math.inf, n,
                            f"{method}: no interval (needs at least 2 seeds per side)",
                            values)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return SeedInterval(est, -math.inf, math.inf, n,
                            f"{method}: no interval (no spread: no variance estimate)", values)
    from scipy.stats import ttest_ind

    ci = ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
    return SeedInterval(est, float(ci.low), float(ci.high), n, method, values)


@dataclass(frozen=True)
class Equivalence:
    """A TOST equivalence test of ``|mean(a - b)| < margin``.

    Attributes:
        diff: The mean difference ``a - b``.
        margin: The equivalence margin (> 0), in the units of the values.
        p_value: The TOST p value (the larger of the two one-sided p values); NaN with
            fewer than 2 seeds per side.
        equivalent: ``p_value < alpha``.
        noninferior: The upper end of the ``1 - 2 alpha`` interval is below ``+margin``: a is
            not worse than b by ``margin`` or more, where larger is worse (e.g. losses).
        ci_lo, ci_hi: The ``1 - 2 alpha`` (90% for alpha = 0.05) t interval of the
            difference; it lies inside ``(-margin, margin)`` exactly when TOST rejects.
        n_seeds: Pairs (paired) or both sides together (unpaired).
        method: A short description.
    """

    diff: float
    margin: float
    p_value: float
    equivalent: bool
    noninferior: bool
    ci_lo: float
    ci_hi: float
    n_seeds: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def equivalence_test(a: Sequence[float], b: Sequence[float], margin: float,
                     paired: bool = True, alpha: float = 0.05) -> Equivalence:
    """TOST (two one-sided t tests) that ``mean(a - b)`` lies within ``(-margin, margin)``.

    ``statsmodels.stats.weightstats.ttost_paired`` when ``paired`` (``a[i]``, ``b[i]`` share
    seed ``i``), else ``ttost_ind(usevar="unequal")`` (Welch). The reported interval is the
    ``1 - 2 alpha`` t interval of the difference (scipy ``ttest_rel`` / Welch ``ttest_ind``),
    with the same degrees of freedom as the test.

    Args:
        a, b: Per-seed values (e.g. losses of the two models).
        margin: The largest difference that counts as "the same", > 0.
        paired: Whether a and b are matched by seed.
        alpha: Level of each one-sided test, in (0, 0.5).

    Returns:
        An :class:`Equivalence`. With fewer than 2 seeds per side it is not equivalent,
        ``p_value`` is NaN, the interval is ``(-inf, inf)`` and ``method`` says that it
        "needs at least 2 seeds".

    Raises:
        ValueError: A non-positive or non-finite margin, alpha outside (0, 0.5), empty or
            non-finite values, or (paired) different lengths.
    """
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.floating)) \
            or not math.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")
    margin = float(margin)
    alpha = _check_confidence(alpha, "alpha")
    if alpha >= 0.5:
        raise ValueError(f"alpha must be below 0.5 (the interval is 1 - 2 alpha), "
                         f"got {alpha!r}")
    if paired:
        x, y = _paired(a, b)
        n, small = x.size, x.size < 2
        method = f"TOST, paired t on {n} seed differences"
        no_spread = np.ptp(x - y) == 0
    else:
        x, y = _as_values(a, "a"), _as_values(b, "b")
        n, small = x.size + y.size, x.size < 2 or y.size < 2
        method = f"TOST, Welch t on {x.size} vs {y.size} seeds"
        no_spread = np.ptp(x) == 0 and np.ptp(y) == 0
    diff = float(x.mean() - y.mean())
    if small:
        return Equivalence(diff, margin, math.nan, False, False, -math.inf, math.inf, n,
                           f"{method}: no test (needs at least 2 seeds per side)")
    if no_spread:  # no variance estimate: no test (a zero-width interval would decide anything)
        return Equivalence(diff, margin, math.nan, False, False, -math.inf, math.inf, n,
                           f"{method}: no test (no spread: no variance estimate)")
    from scipy.stats import ttest_ind, ttest_rel
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    if paired:
        p = ttost_paired(x, y, -margin, margin)[0]
        ci = ttest_rel(x, y).confidence_interval(1 - 2 * alpha)
    else:
        p = ttost_ind(x, y, -margin, margin, usevar="unequal")[0]
        ci = ttest_ind(x, y, equal_var=False).confidence_interval(1 - 2 * alpha)
    p = float(p)
    return Equivalence(diff, margin, p, p < alpha, bool(ci.high < margin),
                       float(ci.low), float(ci.high), n, method)


def _as_groups(groups: Sequence[Sequence[float]], what: str = "groups") -> list[np.ndarray]:
    if len(groups) == 0:
        raise ValueError(f"{what} is empty: need at least one seed")
    return [_as_values(g, f"{what}[{i}]") for i, g in enumerate(groups)]


def _check_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _resample(group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return group[rng.integers(0, group.size, group.size)]


def _percentile(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def hierarchical_bootstrap(groups: Sequence[Sequence[float]],
                           statistic: Callable[[np.ndarray], float] = np.mean,
                           n_resamples: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> SeedInterval:
    """Two-level percentile bootstrap: seeds with replacement, then neurons within each.

    Each resample draws ``len(groups)`` seeds with replacement and, for each drawn seed, as
    many of its neurons with replacement as it has; ``statistic`` of the pooled draw is one
    bootstrap value. The interval is the percentile interval of ``n_resamples`` such values
    (numpy ``Generator`` seeded with ``seed``, so deterministic).

    Args:
        groups: One 1-D array per seed of per-neuron values (e.g. 0/1 interpretable).
        statistic: Maps a pooled 1-D array to a number.
        n_resamples: Bootstrap resamples.
        confidence: Two-sided coverage.
        seed: Seed of the random generator.

    Returns:
        A :class:`SeedInterval` with ``estimate = statistic(all neurons pooled)`` and
        ``values`` the statistic of each seed's neurons.

    Raises:
        ValueError: No groups, an empty or non-finite group, bad n_resamples or confidence.
    """
    confidence = _check_confidence(confidence)
    _check_resamples(n_resamples)
    gs = _as_groups(groups)
    rng = np.random.default_rng(seed)
    k = len(gs)
    boot = np.empty(n_resamples)
    for r in range(n_resamples):
        picks = rng.integers(0, k, k)
        boot[r] = statistic(np.concatenate([_resample(gs[i], rng) for i in picks]))
    lo, hi = _percentile(boot, confidence)
    return SeedInterval(float(statistic(np.concatenate(gs))), lo, hi, k,
                        f"hierarchical bootstrap ({k} seeds, then neurons; "
                        f"{n_resamples} resamples)",
                        tuple(float(statistic(g)) for g in gs))


def hierarchical_bootstrap_difference(groups_a: Sequence[Sequence[float]],
                                      groups_b: Sequence[Sequence[float]],
                                      statistic: Callable[[np.ndarray], float] = np.mean,
                                      n_resamples: int = 2000, confidence: float = 0.95,
                                      seed: int = 0) -> SeedInterval:
    """Two-level bootstrap of ``statistic(a) - statistic(b)`` for matched seeds.

    ``groups_a[i]`` and ``groups_b[i]`` are the per-neuron values of the two models trained
    with seed ``i``. Each resample draws seed indices with replacement, jointly for a and b
    (keeping the pairing), then neurons with replacement within each drawn seed, separately
    for a and b; the bootstrap value is ``statistic`` of the pooled a draw minus that of the
    pooled b draw. Percentile interval.

    Returns:
        A :class:`SeedInterval` with ``estimate = statistic(pooled a) - statistic(pooled b)``
        and ``values`` the per-seed differences ``statistic(a_i) - statistic(b_i)``.

    Raises:
        ValueError: Different numbers of seeds (both are named), an empty or non-finite
            group, bad n_resamples or confidence.
    """
    confidence = _check_confidence(confidence)
    _check_resamples(n_resamples)
    ga, gb = _as_groups(groups_a, "groups_a"), _as_groups(groups_b, "groups_b")
    if len(ga) != len(gb):
        raise ValueError(f"matched seeds need one a group and one b group per seed: got "
                         f"{len(ga)} a groups and {len(gb)} b groups")
    rng = np.random.default_rng(seed)
    k = len(ga)
    boot = np.empty(n_resamples)
    for r in range(n_resamples):
        picks = rng.integers(0, k, k)
        boot[r] = (statistic(np.concatenate([_resample(ga[i], rng) for i in picks]))
                   - statistic(np.concatenate([_resample(gb[i], rng) for i in picks])))
    lo, hi = _percentile(boot, confidence)
    est = float(statistic(np.concatenate(ga)) - statistic(np.concatenate(gb)))
    return SeedInterval(est, lo, hi, k,
                        f"paired hierarchical bootstrap ({k} matched seeds, then neurons; "
                        f"{n_resamples} resamples)",
                        tuple(float(statistic(x) - statistic(y)) for x, y in zip(ga, gb)))


# --- moments ---------------------------------------------------------------------------------


def kurtosis_from_moments(m2: Tensor, m4: Tensor, min_var: float = 0.0) -> Tensor:
    """Excess kurtosis ``m4 / m2² - 3`` from central moments (population: divided by n).

    0 for a Gaussian; large for a variable that is near its mean and rarely far from it.
    NaN where the variance ``m2`` is not above ``min_var`` (a constant has no kurtosis).
    """
    k = m4 / m2.clamp(min=1e-300) ** 2 - 3
    return k.masked_fill(~(m2 > min_var), math.nan)


def excess_kurtosis(x: Tensor, dim: int = 0, min_var: float = 1e-24) -> Tensor:
    """Excess kurtosis of ``x`` along ``dim`` (population moments; NaN where the variance is
    not above ``min_var``): ``(..., n, ...) -> (..., ...)``."""
    c = x - x.mean(dim, keepdim=True)
    return kurtosis_from_moments((c ** 2).mean(dim), (c ** 4).mean(dim), min_var)
