"""Wilson / Newcombe intervals and rater agreement against published worked values;
seed-level t intervals, TOST and the hierarchical bootstrap against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as t_dist

from solu_repro.interp.stats import (
    Equivalence,
    Proportion,
    SeedInterval,
    agreement,
    cohen_kappa,
    difference_interval,
    equivalence_test,
    hierarchical_bootstrap,
    hierarchical_bootstrap_difference,
    paired_seed_difference,
    proportion,
    seed_mean_interval,
    welch_seed_difference,
    wilson_interval,
)


# Newcombe (1998a), "Two-sided confidence intervals for the single proportion", Table I,
# method 3 (Wilson score, no continuity correction).
@pytest.mark.parametrize("s, n, lo, hi", [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_table_1(s, n, lo, hi):
    got = wilson_interval(s, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


# Newcombe (1998b), "Interval estimation for the difference between independent
# proportions", Table II, method 10 (hybrid score from Wilson intervals).
@pytest.mark.parametrize("s1, n1, s2, n2, lo, hi", [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
])
def test_newcombe_matches_table_2(s1, n1, s2, n2, lo, hi):
    d, got_lo, got_hi = difference_interval(s1, n1, s2, n2)
    assert d == pytest.approx(s1 / n1 - s2 / n2)
    assert (got_lo, got_hi) == pytest.approx((lo, hi), abs=5e-5)


def test_difference_is_antisymmetric():
    d, lo, hi = difference_interval(36, 60, 21, 60)
    d2, lo2, hi2 = difference_interval(21, 60, 36, 60)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))


def test_wilson_edges_and_confidence():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 60)
    assert lo == 0.0 and 0 < hi < 0.1
    lo, hi = wilson_interval(60, 60)
    assert hi == 1.0 and 0.9 < lo < 1
    narrow, wide = wilson_interval(30, 60, 0.80), wilson_interval(30, 60, 0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    assert sum(wilson_interval(30, 60)) == pytest.approx(1.0)  # symmetric around 1/2


def test_proportion_helper():
    p = proportion(21, 60)
    assert isinstance(p, Proportion)
    assert (p.successes, p.n, p.fraction) == (21, 60, 0.35)
    assert (p.lo, p.hi) == wilson_interval(21, 60)
    assert "35.0%" in str(p) and p.to_dict()["n"] == 60
    empty = proportion(0, 0)
    assert math.isnan(empty.fraction) and (empty.lo, empty.hi) == (0.0, 1.0)
    assert "0 judged" in str(empty)


def test_difference_with_an_empty_sample_is_uninformative():
    d, lo, hi = difference_interval(3, 10, 0, 0)
    assert math.isnan(d) and (lo, hi) == (-1.0, 1.0)


@pytest.mark.parametrize("args, match", [
    ((-1, 10), "successes must be >= 0"),
    ((3, -2), "n must be >= 0"),
    ((11, 10), r"successes \(11\) cannot exceed n \(10\)"),
    ((1.5, 10), "integer"),
    ((True, 10), "integer"),
])
def test_bad_counts_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(*args)


def test_bad_confidence_and_bad_second_sample():
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(3, 10, confidence=95)
    with pytest.raises(ValueError, match="second sample: successes"):
        difference_interval(3, 10, 5, 4)


def test_kappa_worked_example():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4.
    a = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert agreement(a, b) == pytest.approx(0.7)
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_edges():
    assert cohen_kappa([True, False, True], [True, False, True]) == pytest.approx(1.0)
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa([True, True], [True, True]))  # p_e = 1: undefined
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([True], [True, False])
    with pytest.raises(ValueError, match="no items"):
        agreement([], [])


# --- seed-level statistics ---------------------------------------------------------------

T975_DF2, T975_DF3, T975_DF4 = 4.302653, 3.182446, 2.776445  # tabulated t quantiles


def test_seed_mean_interval_by_hand():
    got = seed_mean_interval([1.0, 2.0, 3.0])
    half = T975_DF2 * 1.0 / math.sqrt(3)  # sd = 1
    assert isinstance(got, SeedInterval)
    assert got.estimate == pytest.approx(2.0)
    assert (got.lo, got.hi) == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert got.n_seeds == 3 and got.values == (1.0, 2.0, 3.0)
    assert got.excludes_zero is False
    assert str(got) == "+2.000 [-0.484, +4.484] (3 seeds)"
    assert got.format(".1f") == "2.0 [-0.5, 4.5] (3 seeds)"
    d = got.to_dict()
    assert d["values"] == [1.0, 2.0, 3.0] and d["excludes_zero"] is False and d["n_seeds"] == 3
    narrow = seed_mean_interval([1.0, 2.0, 3.0], confidence=0.80)
    assert got.lo < narrow.lo < 2 < narrow.hi < got.hi


def test_seed_mean_interval_one_seed_and_no_spread():
    one = seed_mean_interval([0.7])
    assert one.estimate == 0.7 and (one.lo, one.hi) == (-math.inf, math.inf)
    assert "one seed" in one.method and not one.excludes_zero
    assert str(one) == "+0.700 [-inf, +inf] (1 seed)"
    # identical seeds (possible with k/512 fractions and 2 seeds): no variance estimate, so no
    # interval, never a zero-width one that would decide a claim at df = 1
    flat = seed_mean_interval([0.5, 0.5, 0.5])
    assert (flat.lo, flat.hi) == (-math.inf, math.inf) and not flat.excludes_zero
    assert "no variance estimate" in flat.method
    same = paired_seed_difference([3 / 512, 5 / 512], [1 / 512, 3 / 512])
    assert (same.lo, same.hi) == (-math.inf, math.inf) and not same.excludes_zero
    assert not welch_seed_difference([1.0, 1.0], [0.0, 0.0]).excludes_zero
    eq = equivalence_test([1.0, 2.0], [1.0, 2.0], margin=0.5)
    assert not eq.equivalent and eq.p_value != eq.p_value


def test_paired_seed_difference_by_hand():
    a = [10.0, 12.0, 11.0, 14.0]
    b = [9.0, 10.0, 10.5, 12.0]
    # differences 1, 2, 0.5, 2: mean 1.375, sd 0.75, se 0.375
    got = paired_seed_difference(a, b)
    assert got.estimate == pytest.approx(1.375)
    assert (got.lo, got.hi) == pytest.approx((1.375 - T975_DF3 * 0.375,
                                             1.375 + T975_DF3 * 0.375), abs=1e-5)
    assert got.values == (1.0, 2.0, 0.5, 2.0) and got.n_seeds == 4
    assert got.excludes_zero and "paired t on 4 seed differences" in got.method
    # pairing matters: the unpaired interval of the same numbers is wider and spans 0
    unpaired = welch_seed_difference(a, b)
    assert unpaired.estimate == pytest.approx(1.375)
    assert unpaired.hi - unpaired.lo > got.hi - got.lo and not unpaired.excludes_zero


def test_paired_seed_difference_lengths_are_named():
    with pytest.raises(ValueError, match=r"3 a values and 2 b values"):
        paired_seed_difference([1, 2, 3], [1, 2])


def test_welch_equal_variances_by_hand():
    # n = 3 each, both variances 1: Welch df = 4 exactly, se = sqrt(2/3)
    got = welch_seed_difference([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])
    half = T975_DF4 * math.sqrt(2 / 3)
    assert got.estimate == pytest.approx(-4.0)
    assert (got.lo, got.hi) == pytest.approx((-4 - half, -4 + half), abs=1e-5)
    assert got.n_seeds == 6 and got.values == (1.0, 2.0, 3.0, 5.0, 6.0, 7.0)


def test_welch_satterthwaite_by_hand():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.5, 7.0]
    va, vb = 1.0, 5.6875 / 3  # sample variances
    se2 = va / 3 + vb / 4
    df = se2 ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)
    assert df == pytest.approx(4.99653, abs=1e-5)
    half = t_dist.ppf(0.975, df) * math.sqrt(se2)
    got = welch_seed_difference(a, b)
    assert (got.lo, got.hi) == pytest.approx((-3.625 - half, -3.625 + half), rel=1e-9)
    assert got.excludes_zero


def test_welch_needs_two_seeds_per_side():
    got = welch_seed_difference([1.0], [2.0, 3.0])
    assert got.estimate == pytest.approx(-1.5)
    assert (got.lo, got.hi) == (-math.inf, math.inf)
    assert "at least 2 seeds" in got.method


@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    ([1.0, math.nan], "finite"),
    ([1.0, math.inf], "finite"),
    ([[1.0, 2.0]], "one-dimensional"),
    (["x"], "numbers"),
])
def test_seed_values_are_validated(bad, match):
    with pytest.raises(ValueError, match=match):
        seed_mean_interval(bad)
    with pytest.raises(ValueError, match=match):
        welch_seed_difference([1.0, 2.0], bad)


def test_seed_confidence_is_validated():
    with pytest.raises(ValueError, match="confidence"):
        seed_mean_interval([1.0, 2.0], confidence=95)


def _tost_p_by_hand(d, margin):
    d = np.asarray(d, dtype=float)
    n = d.size
    se = d.std(ddof=1) / math.sqrt(n)
    p_low = t_dist.sf((d.mean() + margin) / se, n - 1)   # H0: mean <= -margin
    p_high = t_dist.cdf((d.mean() - margin) / se, n - 1)  # H0: mean >= +margin
    return max(p_low, p_high)


def test_tost_paired_tiny_differences_are_equivalent():
    a = [3.10, 3.20, 3.15]
    b = [3.101, 3.198, 3.1495]  # differences -0.001, 0.002, 0.0005
    got = equivalence_test(a, b, margin=0.05)
    assert isinstance(got, Equivalence)
    assert got.equivalent and got.noninferior and got.p_value < 0.05
    assert got.p_value == pytest.approx(_tost_p_by_hand(np.subtract(a, b), 0.05), rel=1e-6)
    ci90 = paired_seed_difference(a, b, confidence=0.90)
    assert (got.ci_lo, got.ci_hi) == pytest.approx((ci90.lo, ci90.hi))
    assert -0.05 < got.ci_lo < got.ci_hi < 0.05
    assert got.n_seeds == 3 and got.diff == pytest.approx(0.0015 / 3)
    assert got.to_dict()["equivalent"] is True


def test_tost_margin_below_noise_is_not_equivalent():
    a = [3.1, 3.2, 3.15]
    b = [2.8, 3.5, 2.95]  # differences 0.3, -0.3, 0.2
    got = equivalence_test(a, b, margin=0.05)
    assert not got.equivalent and got.p_value > 0.05
    assert got.p_value == pytest.approx(_tost_p_by_hand(np.subtract(a, b), 0.05), rel=1e-6)
    assert got.ci_lo < -0.05 or got.ci_hi > 0.05


def test_tost_noninferior_without_equivalence():
    # a is clearly better (lower loss) than b by far more than the margin
    got = equivalence_test([1.0, 1.1, 1.2], [1.5, 1.45, 1.6], margin=0.05)
    assert not got.equivalent and got.noninferior
    assert got.ci_hi < -0.05
    worse = equivalence_test([1.5, 1.45, 1.6], [1.0, 1.1, 1.2], margin=0.05)
    assert not worse.equivalent and not worse.noninferior


def test_tost_unpaired_matches_welch_interval():
    a, b = [3.10, 3.20, 3.15, 3.12], [3.14, 3.16, 3.11]
    got = equivalence_test(a, b, margin=0.2, paired=False)
    ci90 = welch_seed_difference(a, b, confidence=0.90)
    assert (got.ci_lo, got.ci_hi) == pytest.approx((ci90.lo, ci90.hi))
    assert got.equivalent == (-0.2 < got.ci_lo and got.ci_hi < 0.2) and got.equivalent
    assert got.n_seeds == 7 and "Welch" in got.method
    tight = equivalence_test(a, b, margin=0.005, paired=False)
    assert not tight.equivalent


def test_tost_needs_two_seeds():
    got = equivalence_test([1.0], [1.0], margin=0.1)
    assert not got.equivalent and math.isnan(got.p_value)
    assert "needs at least 2 seeds" in got.method
    got = equivalence_test([1.0, 1.1], [1.0], margin=0.1, paired=False)
    assert not got.equivalent and math.isnan(got.p_value)


@pytest.mark.parametrize("kwargs, match", [
    ({"margin": 0.0}, "margin"),
    ({"margin": -1.0}, "margin"),
    ({"margin": math.inf}, "margin"),
    ({"margin": 0.1, "alpha": 0.5}, "alpha"),
])
def test_tost_arguments_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        equivalence_test([1.0, 2.0], [1.0, 2.1], **kwargs)


def _seed(k_ones, n=60):
    return np.array([1.0] * k_ones + [0.0] * (n - k_ones))


def test_hierarchical_bootstrap_is_deterministic_and_centred():
    groups = [_seed(30), _seed(30), _seed(30)]
    first = hierarchical_bootstrap(groups, n_resamples=500, seed=3)
    again = hierarchical_bootstrap(groups, n_resamples=500, seed=3)
    other = hierarchical_bootstrap(groups, n_resamples=500, seed=4)
    assert first == again and (first.lo, first.hi) != (other.lo, other.hi)
    assert first.estimate == 0.5 and first.values == (0.5, 0.5, 0.5) and first.n_seeds == 3
    # identical seeds: only neuron noise, about 0.5 +- 1.96 * sqrt(0.25 / 180) = +-0.073
    assert first.lo < 0.5 < first.hi
    assert 0.10 < first.hi - first.lo < 0.20


def test_hierarchical_bootstrap_widens_with_seed_spread():
    same = hierarchical_bootstrap([_seed(30), _seed(30), _seed(30)], n_resamples=1000)
    spread = hierarchical_bootstrap([_seed(15), _seed(30), _seed(45)], n_resamples=1000)
    assert spread.estimate == same.estimate == 0.5
    assert spread.hi - spread.lo > 2 * (same.hi - same.lo)


def test_hierarchical_bootstrap_difference_keeps_the_pairing():
    b = [_seed(12), _seed(24), _seed(36)]   # seed effects 0.2, 0.4, 0.6 ...
    a = [_seed(24), _seed(36), _seed(48)]   # ... shared by a, which is 0.2 higher each time
    got = hierarchical_bootstrap_difference(a, b, n_resamples=1000)
    assert got.estimate == pytest.approx(0.2)
    assert got.values == pytest.approx((0.2, 0.2, 0.2))
    assert got.excludes_zero
    # the shared seed effect cancels: narrower than b's own interval, which carries it
    alone = hierarchical_bootstrap(b, n_resamples=1000)
    assert got.hi - got.lo < alone.hi - alone.lo
    assert got == hierarchical_bootstrap_difference(a, b, n_resamples=1000)


def test_hierarchical_bootstrap_statistic_and_validation():
    groups = [np.array([1.0, 2.0, 9.0]), np.array([1.0, 3.0, 4.0])]
    med = hierarchical_bootstrap(groups, statistic=np.median, n_resamples=200)
    assert med.estimate == 2.5 and med.values == (2.0, 3.0)
    with pytest.raises(ValueError, match="empty"):
        hierarchical_bootstrap([])
    with pytest.raises(ValueError, match=r"groups\[1\] is empty"):
        hierarchical_bootstrap([[1.0], []])
    with pytest.raises(ValueError, match="finite"):
        hierarchical_bootstrap([[1.0, math.nan]])
    with pytest.raises(ValueError, match="n_resamples"):
        hierarchical_bootstrap([[1.0]], n_resamples=0)
    with pytest.raises(ValueError, match=r"2 a groups and 3 b groups"):
        hierarchical_bootstrap_difference([[1.0], [1.0]], [[1.0], [1.0], [1.0]])
