"""Scaling-law fits on synthetic laws, and the effective size multiplier on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solu_repro.scaling import (
    EffectiveSize,
    ScalingFit,
    ScalingFitError,
    check_baseline,
    effective_size_multiplier,
    fit_scaling_law,
)


def law(n, a, alpha, c):
    return a * np.asarray(n, dtype=np.float64) ** -alpha + c


@pytest.mark.parametrize("a, alpha, c, sizes", [
    (20.0, 0.30, 1.7, [1e4, 4e4, 1.6e5, 6.4e5, 2.56e6]),
    (8.0, 0.076, 1.2, [2e5, 8e5, 3.2e6, 1.28e7]),          # Kaplan-like shallow exponent
    (50.0, 0.5, 0.0, [1e3, 1e4, 1e5]),                    # no irreducible loss
    (3.0, 0.2, 4.5, [198_528, 397_056, 794_112]),          # three points, cpu-zoo sizes
])
def test_fit_recovers_exact_law(a, alpha, c, sizes):
    fit = fit_scaling_law(sizes, law(sizes, a, alpha, c))
    assert fit.c_fitted
    assert fit.alpha == pytest.approx(alpha, rel=1e-4)
    assert fit.a == pytest.approx(a, rel=1e-3)
    assert fit.c == pytest.approx(c, abs=1e-4)
    assert fit.rms_residual < 1e-6
    assert fit.predict(sizes) == pytest.approx(law(sizes, a, alpha, c), rel=1e-8)
    assert fit.dof == len(sizes) - 3


def test_fit_with_noise_stays_close():
    rng = np.random.default_rng(0)
    sizes = np.geomspace(1e4, 1e8, 9)
    losses = law(sizes, 15.0, 0.25, 2.0) + rng.normal(0, 1e-3, sizes.size)
    fit = fit_scaling_law(sizes, losses)
    assert fit.alpha == pytest.approx(0.25, rel=0.05)
    assert fit.c == pytest.approx(2.0, abs=0.02)
    assert fit.rms_residual < 2e-3


def test_input_order_does_not_matter():
    sizes = [1e4, 4e4, 1.6e5, 6.4e5]
    losses = law(sizes, 20.0, 0.3, 1.7)
    fwd = fit_scaling_law(sizes, losses)
    rev = fit_scaling_law(sizes[::-1], losses[::-1])
    assert (fwd.a, fwd.alpha, fwd.c) == pytest.approx((rev.a, rev.alpha, rev.c))
    assert fwd.n_params == rev.n_params == tuple(sizes)


def test_two_points_fix_c_at_zero():
    fit = fit_scaling_law([1e6, 4e6], [3.0, 2.5])
    assert not fit.c_fitted and fit.c == 0.0 and fit.dof == 0
    assert fit.alpha == pytest.approx(math.log(3.0 / 2.5) / math.log(4))
    assert fit.predict([1e6, 4e6]) == pytest.approx([3.0, 2.5])


def test_given_c_is_used_and_checked():
    sizes = [1e4, 1e5, 1e6]
    fit = fit_scaling_law(sizes, law(sizes, 10, 0.3, 1.0), c=1.0)
    assert not fit.c_fitted and fit.c == 1.0
    assert fit.alpha == pytest.approx(0.3)
    with pytest.raises(ScalingFitError, match="must be in"):
        fit_scaling_law(sizes, law(sizes, 10, 0.3, 1.0), c=5.0)


def test_concave_baseline_flags_c_at_bound():
    # Loss falls faster in log N at larger sizes: no offset makes this a power law; the best
    # c is at the edge of its range, and the fit says so.
    fit = fit_scaling_law([1e4, 1e5, 1e6], [3.0, 2.95, 2.5])
    assert fit.c_at_bound


@pytest.mark.parametrize("sizes, losses, match", [
    ([1e6], [3.0], "at least 2"),
    ([], [], "at least 2"),
    ([1e6, 2e6], [3.0], "2 sizes but 1 losses"),
    ([1e6, 1e6], [3.0, 2.9], "repeated"),
    ([1e6, -2e6], [3.0, 2.9], "positive"),
    ([1e6, 2e6], [3.0, float("nan")], "finite"),
    # the cpu zoo's situation: the 4-layer baseline ends above the 2-layer one
    ([198_528, 397_056, 794_112], [5.25, 5.10, 5.16], "does not improve with size"),
    ([1e6, 2e6], [3.0, 3.0], "does not improve with size"),
])
def test_unusable_baselines_raise(sizes, losses, match):
    with pytest.raises(ScalingFitError, match=match):
        fit_scaling_law(sizes, losses)


def test_non_monotone_message_names_the_offending_sizes():
    with pytest.raises(ScalingFitError) as exc:
        check_baseline([100, 400, 1600], [5.0, 4.0, 4.2])
    assert "N=1,600 has loss 4.2000 >= 4.0000 at N=400" in str(exc.value)


def test_paper_worked_example_is_2x():
    # paper Figure 1 caption: a 1B baseline at 2.3, a 2B baseline at 2.1, a 1B SoLU model at
    # 2.1 "would be said to perform at 2x model size relative to the baseline".
    fit = fit_scaling_law([1e9, 2e9], [2.3, 2.1])
    eff = effective_size_multiplier(2.1, 1e9, fit)
    assert eff.multiplier == pytest.approx(2.0)
    assert eff.status == "interpolated"
    assert str(eff) == "2.00x"


def test_multiplier_exact_on_a_known_law():
    a, alpha, c = 20.0, 0.3, 1.7
    sizes = [1e4, 4e4, 1.6e5, 6.4e5]
    fit = fit_scaling_law(sizes, law(sizes, a, alpha, c))
    # a model of size 4e4 that reaches the baseline's loss at 8e4 / 2e4 / 4e4
    for target, expected in [(8e4, 2.0), (2e4, 0.5), (4e4, 1.0)]:
        eff = effective_size_multiplier(float(law(target, a, alpha, c)), 4e4, fit)
        assert eff.multiplier == pytest.approx(expected, rel=1e-4)
        assert eff.baseline_n == pytest.approx(target, rel=1e-4)
        assert eff.status == "interpolated"
    # every baseline point is 1x of itself
    for n in sizes:
        assert effective_size_multiplier(fit.predict(n), n, fit).multiplier == \
            pytest.approx(1.0, rel=1e-9)


def test_multiplier_outside_the_fitted_range_is_flagged():
    a, alpha, c = 20.0, 0.3, 1.7
    sizes = [1e4, 4e4, 1.6e5]
    fit = fit_scaling_law(sizes, law(sizes, a, alpha, c))
    above = effective_size_multiplier(float(law(1e6, a, alpha, c)), 1e4, fit)
    assert above.status == "extrapolated" and above.multiplier == pytest.approx(100, rel=1e-3)
    below = effective_size_multiplier(float(law(1e3, a, alpha, c)), 1e4, fit)
    assert below.status == "extrapolated" and below.multiplier == pytest.approx(0.1, rel=1e-3)
    assert "extrapolated" in str(below)


def test_loss_below_the_asymptote_is_a_lower_bound():
    sizes = [1e4, 4e4, 1.6e5]
    fit = fit_scaling_law(sizes, law(sizes, 20.0, 0.3, 1.7))
    eff = effective_size_multiplier(fit.c - 0.01, 2e4, fit)
    assert eff.status == "below_asymptote" and eff.is_lower_bound
    assert math.isinf(eff.baseline_n)
    assert eff.multiplier == pytest.approx(1.6e5 / 2e4)
    assert str(eff).startswith(">= 8.00x")


@pytest.mark.parametrize("loss, n", [(float("nan"), 1e4), (2.0, 0), (2.0, float("inf")),
                                     (-1.0, 1e4)])
def test_multiplier_rejects_bad_inputs(loss, n):
    fit = fit_scaling_law([1e4, 1e5], [3.0, 2.5])
    with pytest.raises(ValueError):
        effective_size_multiplier(loss, n, fit)


def test_fit_types():
    fit = fit_scaling_law([1e4, 1e5, 1e6], [3.0, 2.6, 2.4])
    assert isinstance(fit, ScalingFit)
    assert isinstance(effective_size_multiplier(2.5, 2e5, fit), EffectiveSize)
    assert "N^-" in str(fit)
