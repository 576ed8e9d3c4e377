"""The Figure 4 pair over training (paper.s6_2_training): trajectories and trends on made-up
points whose answer is known, and the measurement on a real tiny run's snapshots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solu_repro.paper import s6_2_training as tr

TOKENS = (10_000, 100_000, 1_000_000)


def point(act: str, seed: int, k: int, *, loss=5.0, fair=0.3, fair_rot=0.1, probe=0.5,
          probe_rot=0.4, top=0.3, top_rot=0.2) -> tr.Point:
    name = f"1L-{act}" + (f"-s{seed}" if seed else "")
    return tr.Point(name, act, seed, step=10 * (k + 1), tokens=TOKENS[k], val_loss=loss,
                    fair=fair, fair_rotated=fair_rot, probe=probe, probe_rotated=probe_rot,
                    top20=top, top20_rotated=top_rot)


def growing(slope_points: float, seeds=(0, 1, 2), noise=(0.0, 1.0, -1.0)) -> list[tr.Point]:
    """SoLU-LN's rotation-fair gain grows by ``slope_points`` per decade (give or take 0.2 x
    the seed's ``noise``); GELU's stays."""
    out = []
    for s, e in zip(seeds, noise):
        for k in range(len(TOKENS)):
            gain = (5 + (slope_points + 0.2 * e) * k + e) / 100
            out.append(point("solu_ln", s, k, fair=0.1 + gain, loss=5 - 0.5 * k))
            out.append(point("gelu", s, k, fair=0.1, loss=5.01 - 0.5 * k))
    return out


def test_value_is_net_of_the_rotation_in_points():
    p = point("solu_ln", 0, 0, fair=0.35, fair_rot=0.1, probe=0.6, probe_rot=0.45, top=0.3)
    assert p.value("fair") == pytest.approx(25.0)
    assert p.value("probe") == pytest.approx(15.0)
    assert p.value("top20") == pytest.approx(30.0)   # the paper's raw fraction
    assert p.value("val_loss") == 5.0
    with pytest.raises(KeyError, match="unknown metric"):
        p.value("nope")


def test_trajectory_is_solu_minus_gelu_per_matched_seed():
    t = tr.trajectory(growing(4.0), "fair")
    assert t.tokens == TOKENS and t.seeds == [0, 1, 2]
    assert t.differences[0] == pytest.approx((5.0, 9.0, 13.0))
    assert t.differences[1] == pytest.approx((6.0, 10.2, 14.4))
    assert t.mean() == pytest.approx([5.0, 9.0, 13.0])  # the seeds' offsets cancel
    lo, hi = t.interval()
    assert (lo < t.mean()).all() and (hi > t.mean()).all()
    loss = tr.trajectory(growing(4.0), "val_loss")
    assert loss.mean() == pytest.approx([-0.01] * 3)


def test_trend_finds_a_growing_difference_and_extrapolates_it():
    tnd = tr.trend(tr.trajectory(growing(4.0), "fair"), at_tokens=1e9)
    assert tnd.slope == pytest.approx(4.0)
    assert tnd.direction == "grows"
    # 1e9 is three decades past the last point: 13 + 3 * 4 = 25 for seed 0
    assert tnd.decades == pytest.approx(3.0)
    assert tnd.predicted == pytest.approx(25.0)
    assert tnd.predicted_lo < 25.0 < tnd.predicted_hi


def test_trend_says_so_when_a_difference_shrinks_or_does_not_move():
    assert tr.trend(tr.trajectory(growing(-1.5), "fair")).direction == "shrinks"
    flat = tr.trend(tr.trajectory(growing(0.0, noise=(0.0, 0.0, 0.0)), "fair"))
    # seeds that agree exactly give no variance: no interval, never a trend
    assert math.isnan(flat.slope_lo) or flat.direction == "no clear trend"
    noisy = [p for p in growing(0.5, noise=(3.0, -3.0, 0.0))]
    rng = np.random.default_rng(0)
    noisy = [tr.Point(**{**p.__dict__, "fair": p.fair + rng.normal(0, 0.05)}) for p in noisy]
    assert tr.trend(tr.trajectory(noisy, "fair")).direction == "no clear trend"


def test_one_seed_gives_no_interval():
    t = tr.trajectory(growing(2.0, seeds=(0,), noise=(0.0,)), "fair")
    lo, hi = t.interval()
    assert np.isnan(lo).all() and np.isnan(hi).all()
    tnd = tr.trend(t)
    assert math.isnan(tnd.slope_lo) and tnd.direction == "no clear trend"


def test_trajectory_keeps_only_steps_every_seed_of_both_models_has():
    pts = [p for p in growing(1.0) if not (p.act == "gelu" and p.seed == 2 and p.step == 30)]
    t = tr.trajectory(pts, "fair")
    assert t.tokens == TOKENS[:2]
    with pytest.raises(ValueError, match="both models"):
        tr.trajectory([p for p in pts if p.act == "gelu"], "fair")


def test_measure_draws_every_metric():
    m = tr.measure(growing(2.0))
    assert set(m.trajectories) == set(tr.METRICS) == set(m.trends)
    assert m.rotated_top20.mean() == pytest.approx([0.0] * 3)


def test_pair_names():
    names = ["1L-gelu", "1L-solu_ln", "1L-gelu-s1", "1L-solu_ln-s1", "1L-gelu_ln", "2L-gelu",
             "1L-solu_ln_b4"]
    assert tr.pair_names(names) == ["1L-gelu", "1L-solu_ln", "1L-gelu-s1", "1L-solu_ln-s1"]


@pytest.mark.slow
def test_a_tiny_run_is_measured_at_every_step_it_kept(ctx):
    run = ctx.run("1L-solu_ln")
    points = tr.measure_run(run)
    assert [p.step for p in points] == list(run.steps) == [*run.config.snapshot_steps,
                                                          run.config.max_steps]
    assert [p.tokens for p in points] == [k * run.config.tokens_per_step for k in run.steps]
    assert points[-1].val_loss == pytest.approx(run.result["val_loss"])
    # the weights differ from step to step, so the measurements do
    assert len({p.val_loss for p in points}) == len(points)
    for p in points:
        assert 0 <= p.top20 <= 1 and 0 <= p.fair <= 1 and 0 <= p.probe <= 1


@pytest.mark.slow
def test_a_kept_step_costs_less_and_reads_the_same_numbers(ctx):
    """The light judge and probes of a kept step give what the full ones give."""
    from solu_repro.interp.controls import score_control
    from solu_repro.interp.instruments import basis_score_run, probe_run
    from solu_repro.interp.score import score_run

    run = ctx.run("1L-solu_ln").at(40)
    light = tr.measure_point(run)
    full_top = score_run(run, progress=False)
    assert light.top20 == full_top.fraction_interpretable(view="top").fraction
    assert light.top20_rotated == score_control(run, "rotated", progress=False) \
        .fraction_interpretable(view="top").fraction
    assert light.fair == pytest.approx(basis_score_run(run, progress=False).features_exposed,
                                       abs=1e-12)
    full_probe = probe_run(run, progress=False).best_f1()
    assert light.probe == pytest.approx(float(np.mean([full_probe[k] for k in sorted(full_probe)])),
                                        abs=1e-12)
    light_scores = score_run(run, tr.SNAPSHOT_JUDGE, progress=False)
    assert all(math.isnan(r.precision) for r in light_scores.records)
    assert [r.explanation for r in light_scores.records] == \
        [r.explanation for r in full_top.records]


def test_a_difference_that_rises_then_falls_is_not_called_growing():
    tokens = (1e5, 1e6, 3e6, 1e7)
    shape = (2.0, 18.0, 15.0, 12.0)   # up early, down late (like the cpu book's)
    pts = []
    for s, e in zip((0, 1, 2), (0.0, 0.5, -0.5)):
        for k, (t, d) in enumerate(zip(tokens, shape)):
            gain = (d + e * (1 + k)) / 100
            for act, f in (("solu_ln", 0.1 + gain), ("gelu", 0.1)):
                pts.append(tr.Point(f"1L-{act}" + (f"-s{s}" if s else ""), act, s, 10 * (k + 1),
                                    int(t), 5.0, f, 0.1, 0.5, 0.4, 0.3, 0.2))
    m = tr.measure(pts)
    assert m.trends["fair"].slope > 0 and m.late_trends["fair"].slope < 0
    assert m.late_trends["fair"].first_tokens == pytest.approx(1e6)
    assert m.direction("fair") == "grows over all points, shrinks late"
    assert tr.direction(m.trends["fair"], None) == m.trends["fair"].direction
