"""Paper §5 measurements and verdicts (``solu_repro.paper.s5_performance``): on the real tiny
zoo (trained once per module), and on a synthetic zoo whose losses follow a known scaling law,
so the multiplier path is checked with exact answers."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from solu_repro.paper import claim
from solu_repro.paper import registry
from solu_repro.paper import s5_performance as s5
from solu_repro.zoo import ZooRun, ensure_trained, seed_of, zoo_config, \
    zoo_configs
from fakes import ALPHA, C, N_GELU, N_LN
from fakes import synthetic_runs as make_synthetic_runs

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "03-performance"


# --- the module ----------------------------------------------------------------------------------




# --- the real tiny zoo ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, data_dir):
    """Every run of the tiny zoo, other seeds included (trained on the session corpus; ~30 s
    on one thread)."""
    runs_dir = tmp_path_factory.mktemp("perf-runs")
    return {name: ensure_trained(name, "tiny", runs_dir, progress=False, data_dir=data_dir)
            for name in zoo_configs("tiny")}


@pytest.fixture(scope="module")
def tiny_losses(tiny_runs):
    """Final losses of the seed-0 runs."""
    return s5.final_losses({n: r for n, r in tiny_runs.items() if seed_of(n) == 0})


@pytest.fixture
def synthetic_runs(tmp_path):
    """The synthetic zoo of ``fakes.synthetic_runs`` (losses from a known scaling law)."""
    return make_synthetic_runs(tmp_path)


@pytest.mark.slow
def test_final_losses_of_the_tiny_zoo(tiny_runs, tiny_losses):
    assert list(tiny_losses) == [n for n in zoo_configs("tiny") if seed_of(n) == 0]
    for name, m in tiny_losses.items():
        result = tiny_runs[name].result
        assert m.val_loss == result["val_loss"] and m.n_params == result["n_params"]
        assert m.act == name.split("-", 1)[1] and m.depth == int(name[0])
        assert set(m.per_source) == {"sotu", "python-stdlib"}
        assert 0 < m.val_loss < math.log(zoo_config(name, "tiny").model.d_vocab) + 1
    deltas = s5.loss_deltas(tiny_losses)
    assert set(deltas) == {1, 2, 4}
    for d, delta in deltas.items():
        assert delta == pytest.approx(tiny_losses[f"{d}L-solu_ln"].val_loss
                                      - tiny_losses[f"{d}L-gelu"].val_loss)
    per_source = s5.per_source_deltas(tiny_losses)
    assert per_source[1]["sotu"] == pytest.approx(
        tiny_losses["1L-solu_ln"].per_source["sotu"] - tiny_losses["1L-gelu"].per_source["sotu"])


@pytest.mark.slow
def test_tiny_baseline_fit_matches_its_monotonicity(tiny_losses):
    bfit = s5.baseline_fit(tiny_losses)
    base = sorted((m.n_params, m.val_loss) for m in tiny_losses.values() if m.act == "gelu")
    improves = all(b[1] < a[1] for a, b in zip(base, base[1:]))
    assert (bfit.fit is not None) == improves
    sizes = s5.effective_sizes(tiny_losses, bfit)
    assert set(sizes) == {n for n, m in tiny_losses.items() if m.act != "gelu"}
    if not improves:
        assert "does not improve with size" in bfit.reason
        assert all(s.value is None and s.status == "not testable" for s in sizes.values())


@pytest.mark.slow
def test_loss_curves_of_the_tiny_zoo(tiny_runs, tiny_losses):
    curves = s5.loss_curves({n: r for n, r in tiny_runs.items() if seed_of(n) == 0})
    cfg = zoo_config("1L-gelu", "tiny")
    c = curves["1L-gelu"]
    assert len(c.train_loss) == cfg.max_steps // cfg.log_every
    assert c.val_steps[-1] == cfg.max_steps
    assert c.val_loss[-1] == pytest.approx(tiny_losses["1L-gelu"].val_loss)
    assert c.val_steps == list(range(cfg.eval_every, cfg.max_steps + 1, cfg.eval_every))
    mc = s5.multiplier_curves(curves, tiny_losses)
    assert mc.tokens == c.val_tokens
    assert set(mc.sizes) == {"1L-solu_ln", "2L-solu_ln", "4L-solu_ln"}


@pytest.mark.slow
def test_solu_without_ln_on_the_tiny_zoo(tiny_losses):
    bfit = s5.baseline_fit(tiny_losses)
    no_ln = s5.solu_without_ln(tiny_losses, bfit)
    assert no_ln.depth == 1
    assert no_ln.gap_vs_gelu == pytest.approx(tiny_losses["1L-solu"].val_loss
                                              - tiny_losses["1L-gelu"].val_loss)
    assert no_ln.gap_vs_solu_ln == pytest.approx(tiny_losses["1L-solu"].val_loss
                                                 - tiny_losses["1L-solu_ln"].val_loss)
    assert s5.solu_without_ln({n: m for n, m in tiny_losses.items() if m.act != "solu"},
                              bfit) is None


@pytest.mark.slow
def test_measure_and_decide_on_the_tiny_zoo(tiny_runs):
    m = s5.measure(tiny_runs)
    assert m.scale == "tiny" and m.device == "cpu" and m.speed is None
    assert set(m.multiplier) == {1, 2, 4}
    # every seed of every variant, the means in val_loss
    assert set(m.every) == set(tiny_runs)
    assert set(m.per_seed) == set(m.losses) == {n for n in tiny_runs if seed_of(n) == 0}
    assert sorted(m.per_seed["1L-gelu"]) == [0, 1]
    assert m.val_loss["1L-gelu"] == pytest.approx(np.mean(list(m.per_seed["1L-gelu"].values())))
    assert m.parity is not None and m.parity.n == 2 and m.parity.kind == claim.EQUIVALENCE
    assert set(m.parity_deeper) == {2, 4} and all(t.n == 1 for t in m.parity_deeper.values())
    assert set(m.curves) == set(m.losses)
    chapter = registry.decide(CHAPTER, m)
    assert [c.id for c in chapter] == [c.id for c in s5.CLAIMS]
    speed = next(c for c in chapter if c.id == "speed")
    # eager CPU timing cannot test a claim about fused GPU kernels
    assert speed.verdict == claim.NOT_TESTABLE and "eager CPU timing" in speed.ours
    assert not any(c.timed for c in chapter)  # nothing was timed
    with pytest.raises(ValueError, match="one zoo scale"):
        s5.measure({**tiny_runs, "x": ZooRun("x", "cpu", None, Path("."), {})})


# --- a synthetic zoo with a known scaling law ---------------------------------------------------






def test_synthetic_zoo_recovers_the_law_and_multipliers(synthetic_runs):
    losses = s5.seed_mean_losses(s5.final_losses(
        {n: r for n, r in synthetic_runs.items() if seed_of(n) == 0}))
    bfit = s5.baseline_fit(losses)
    assert bfit.fit is not None and bfit.reason is None
    assert bfit.fit.alpha == pytest.approx(ALPHA, rel=1e-3)
    assert bfit.fit.c == pytest.approx(C, abs=1e-3)
    assert "interpolates" not in str(bfit) and "cannot test" in str(bfit)  # 3 points, dof 0
    sizes = s5.effective_sizes(losses, bfit)
    assert sizes["1L-solu_ln"].value == pytest.approx(1.0, rel=1e-4)
    assert sizes["1L-solu_ln"].status == "interpolated"
    assert sizes["2L-solu_ln"].value == pytest.approx(1.5 * N_GELU[2] / N_LN[2], rel=1e-4)
    assert sizes["4L-solu_ln"].status == "extrapolated"
    assert sizes["4L-solu_ln"].value == pytest.approx(1.0, rel=1e-4)
    assert sizes["1L-solu"].status == "extrapolated"
    assert sizes["1L-solu"].value == pytest.approx(0.6, rel=1e-4)
    bound = sizes["1L-gelu_ln"]
    assert bound.status == "below_asymptote" and bound.value is None
    assert bound.effective.multiplier == pytest.approx(N_GELU[4] / N_LN[1])
    assert "lower bound" in bound.reason

    curves = s5.loss_curves({n: r for n, r in synthetic_runs.items() if n in losses})
    mc = s5.multiplier_curves(curves, losses)
    assert mc.tokens == [40 * 512, 120 * 512]
    assert mc.n_testable == 1
    assert mc.fits[0].fit is None and "N=50,880" in mc.fits[0].reason
    assert [s.value for s in mc.sizes["1L-solu_ln"]][0] is None
    assert mc.sizes["2L-solu_ln"][1].value == pytest.approx(sizes["2L-solu_ln"].value)


def test_synthetic_zoo_claims(synthetic_runs):
    m = s5.measure(synthetic_runs)
    assert m.multiplier_testable
    # (the 1L baseline's seed mean sits 0.001 above the law)
    assert m.multiplier[2].value == pytest.approx(1.5 * N_GELU[2] / N_LN[2], rel=1e-3)
    assert m.multipliers_in_paper_range is False      # 2L at ~1.47x
    assert m.no_ln.multiplier.value == pytest.approx(0.6, rel=1e-2)
    assert m.per_source_delta[2]["sotu"] == pytest.approx(m.loss_delta[2])
    assert m.depth.monotone and "each deeper model beats" in m.depth.sentence
    assert m.over_training.n_testable == 1 and set(m.curves) == set(m.losses)
    # SoLU-LN is ~0.007 better than GELU (its extra LN parameters, at 1.0x on the law) with
    # seed differences 0.001 apart: the 90% interval reaches below -0.01; the design could
    # show a ±0.01 margin (the seeds agree closely), so more seeds would decide: inconclusive
    assert m.parity.n == 2 and m.parity.lo < -0.01 < m.parity.hi < 0.01
    assert m.parity.powered
    got = {c.id: c for c in registry.decide(CHAPTER, m)}
    parity = got["loss_parity"]
    assert "within the 0.010 of interest" in parity.ours
    assert parity.values["seeds_needed"] == s5.seeds_needed(m.parity.sd, 0.01) == 2
    assert parity.test.kind == claim.EQUIVALENCE and parity.test.interest == 0.01
    assert parity.tests[0]["verdict"] == claim.INCONCLUSIVE
    # the deeper pairs, one seed each, borrow the 1L pairs' SD; the 2L SoLU-LN (1.47x on the
    # law) is far better than its baseline: not equivalent, so the claim at every size is
    # contradicted
    assert [t["borrowed"] for t in parity.tests[1:]] == ["the 1L seed pairs"] * 2
    assert parity.tests[1]["verdict"] == claim.CONTRADICTED
    assert parity.verdict == claim.CONTRADICTED
    # point multipliers, one baseline per size: shown, never deciding
    assert got["size_multiplier"].verdict == claim.NOT_TESTABLE
    assert "interpolates" in got["size_multiplier"].ours and "no interval" in \
        got["size_multiplier"].ours
    # one seed of SoLU without LN: no interval, so not testable; the size part is in range
    no_ln = got["no_ln_penalty"]
    assert no_ln.verdict == claim.NOT_TESTABLE
    assert no_ln.values["size_verdict"] == "within 0.5x-0.7x"
    assert "0.60x" in no_ln.ours and no_ln.test.interest == pytest.approx(s5.NO_LN_INTEREST)
    # one seed of the blocked model: no equivalence test
    assert got["blocked_loss"].verdict == claim.NOT_TESTABLE
    assert got["downstream"].verdict == claim.NOT_TESTABLE
    assert got["downstream"].ours.index("code") < got["downstream"].ours.index("prose")
    assert m.speed is None and got["speed"].verdict == claim.NOT_TESTABLE
    # each decide is the claim's own: the same as deciding it alone
    for spec in s5.CLAIMS:
        assert spec.decide(m) == got[spec.id]


def _comparison(ratio: float, ci: tuple[float, float]) -> SimpleNamespace:
    """What the speed verdict reads of a ``speed.SpeedComparison``: the ratio and its CI."""
    return SimpleNamespace(ratio=ratio, ci90=ci)


@pytest.mark.parametrize("ci, verdict", [((0.99, 1.005), claim.REPRODUCED),
                                         ((0.99, 1.2), claim.INCONCLUSIVE),
                                         ((0.90, 0.96), claim.NOT_TESTABLE)])
def test_speed_is_decided_from_the_step_ratio(synthetic_runs, ci, verdict):
    comparison = _comparison(sum(ci) / 2, ci)
    speed = s5.SpeedMeasurement("tiny", 1, "cuda", comparison, comparison, 512)
    m = s5.measure(synthetic_runs, speed=speed, device="cuda")
    row = s5.decide_speed(m)
    assert row.verdict == verdict and row.timed
    assert "step time ratio" in row.ours and f"{comparison.ratio:.3f}" in row.ours
    assert row.values == {"ratio": comparison.ratio, "ci90": list(ci)}
    timed = [c.id for c in registry.decide(CHAPTER, m) if c.timed]
    assert timed == ["speed"]
    not_run = s5.decide_speed(s5.measure(synthetic_runs, device="cuda"))
    assert not_run.verdict == claim.NOT_TESTABLE and "not measured in this run" in not_run.ours


def _eq(diffs) -> claim.Test:
    return s5.loss_equivalence(list(diffs), [0.0] * len(diffs))


def test_loss_equivalence_covers_every_branch():
    rng = np.random.default_rng(1)
    # equivalent: 30 seed pairs that agree within a few thousandths
    t = _eq(0.001 + rng.normal(0, 0.003, 30))
    assert t.verdict == claim.REPRODUCED and t.powered and -0.01 < t.lo and t.hi < 0.01
    # not equivalent, either way: the 90% interval wholly outside ±0.01
    assert _eq([0.1, 0.12, 0.11]).verdict == claim.CONTRADICTED
    assert _eq([-0.1, -0.12, -0.11]).verdict == claim.CONTRADICTED
    # a powered design whose interval straddles the margin: inconclusive
    t = _eq(0.01 + np.tile([-0.003, 0.003], 20))
    assert t.powered and t.lo < 0.01 < t.hi and t.verdict == claim.INCONCLUSIVE
    # the seed SD of the cpu zoo (about 0.1 nats) with 3 pairs: not testable at this scale
    t = _eq([0.05, -0.05, -0.15])
    assert not t.powered and t.verdict == claim.NOT_TESTABLE
    assert "not testable at this scale" in s5.power_text(t)
    # one seed, nothing borrowed: no interval
    assert _eq([0.0]).verdict == claim.NOT_TESTABLE
    # seeds that do not differ at all: no variance estimate, never "equivalent"
    t = _eq([0.001, 0.001])
    assert t.verdict == claim.NOT_TESTABLE and t.why


def test_seeds_needed_is_the_first_powered_design():
    # sd 0.107 nats (the cpu zoo's blocked pairs), margin 0.01: (z.95 + z.90)^2 (sd/m)^2 ≈ 980
    n = s5.seeds_needed(0.107, 0.01)
    assert 950 < n < 1010
    assert claim.detectable_effect(0.107, n, kind=claim.EQUIVALENCE) <= 0.01
    assert claim.detectable_effect(0.107, n - 1, kind=claim.EQUIVALENCE) > 0.01
    d = s5.seeds_needed(0.24, s5.NO_LN_INTEREST, claim.DIRECTIONAL)
    assert claim.detectable_effect(0.24, d) <= s5.NO_LN_INTEREST < \
        claim.detectable_effect(0.24, d - 1)
    assert s5.seeds_needed(0.001, 0.01) == 2
    assert s5.seeds_needed(float("nan"), 0.01) is None
    assert s5.seeds_needed(0.0, 0.01) is None


def test_no_ln_interest_is_a_0_7x_model_by_the_papers_conversion():
    # §5: 1.05x ≈ 0.01 nats; a 0.7x model is ln(1/0.7) / ln(1.05) such steps worse
    assert s5.NO_LN_INTEREST == pytest.approx(0.01 * math.log(1 / 0.7) / math.log(1.05))
    assert 0.07 < s5.NO_LN_INTEREST < 0.075


def _no_ln(m, solu, gelu, multiplier):
    bfit = s5.BaselineFit({}, None, "no law") if multiplier is None else m.baseline
    size = (s5.size_multiplier("1L-solu", 100, 1.0, bfit) if multiplier is None else
            dataclasses.replace(m.no_ln.multiplier, effective=dataclasses.replace(
                m.no_ln.multiplier.effective, multiplier=multiplier)))
    no_ln = dataclasses.replace(m.no_ln, multiplier=size, gap_test=s5.no_ln_test(solu, gelu))
    return s5.decide_no_ln_penalty(dataclasses.replace(m, no_ln=no_ln))


def test_no_ln_penalty_covers_every_branch(synthetic_runs):
    m = s5.measure(synthetic_runs)
    worse = ([4.30, 4.31, 4.29, 4.30], [4.10, 4.12, 4.10, 4.11])
    assert _no_ln(m, *worse, 0.6).verdict == claim.REPRODUCED
    # the size is a point value: reported, not deciding, inside or outside 0.5x-0.7x
    c = _no_ln(m, *worse, 0.9)
    assert c.verdict == claim.REPRODUCED and c.values["size_verdict"] == "outside 0.5x-0.7x"
    c = _no_ln(m, *worse, None)
    assert c.verdict == claim.REPRODUCED and c.values["size_verdict"] == "no multiplier"
    # SoLU without LN better than GELU: contradicted whatever the size
    better = (worse[1], worse[0])
    assert _no_ln(m, *better, 0.6).verdict == claim.CONTRADICTED
    # two seeds 0.24 nats apart (the cpu zoo): not testable at this scale, with the seeds needed
    c = _no_ln(m, [4.6, 4.3], [4.3, 4.34], 0.6)
    assert c.verdict == claim.NOT_TESTABLE and "matched seed pairs" in c.ours


def test_pure_noise_is_rarely_reproduced():
    """Seed pairs whose true difference is 0: the directional no-LN test and the equivalence
    tests give a false "reproduced" at most at their error rate."""
    rng = np.random.default_rng(0)
    directional = [s5.no_ln_test(list(rng.normal(0, 0.1, 3)), [0.0] * 3).verdict
                   for _ in range(400)]
    assert directional.count(claim.REPRODUCED) / 400 < 0.05
    # equivalence under pure noise at the cpu zoo's SD: never "equivalent" with 3 seeds
    eq = [_eq(rng.normal(0, 0.1, 3)).verdict for _ in range(200)]
    assert eq.count(claim.REPRODUCED) == 0
    # a true difference of exactly the margin: TOST says "equivalent" at most about 5%
    eq = [_eq(0.01 + rng.normal(0, 0.003, 20)).verdict for _ in range(400)]
    assert eq.count(claim.REPRODUCED) / 400 < 0.08


def test_baseline_with_too_few_sizes_is_not_testable(synthetic_runs):
    losses = s5.final_losses({n: r for n, r in synthetic_runs.items() if n != "2L-gelu"
                              and n != "4L-gelu" and seed_of(n) == 0})
    bfit = s5.baseline_fit(losses)
    assert bfit.fit is None and "at least 2" in bfit.reason
