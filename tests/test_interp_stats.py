"""Wilson / Newcombe intervals and rater agreement against published worked values."""

from __future__ import annotations

import math

import pytest

from solu_repro.interp.stats import (
    Proportion,
    agreement,
    cohen_kappa,
    difference_interval,
    proportion,
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
