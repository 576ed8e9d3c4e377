"""Paper §6.4 measurements and verdict (``solu_repro.paper.s6_4_layernorm``): quantile bands,
the paired per-neuron difference after vs before the LN, its bootstrap, the GELU-LN control in
the verdict, the LN's rescaling; on constructed neurons and on the tiny zoo."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from solu_repro.book import checks, record
from solu_repro.interp.analysis import NeuronBands, holds_out
from solu_repro.paper import claim as C
from solu_repro.paper import registry
from solu_repro.paper import s6_4_layernorm as LN

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "07-layernorm"


# --- the module ----------------------------------------------------------------------------------




# --- constructed neurons ------------------------------------------------------------------------
def neuron(mid_bad, post_bad, per_band=10, n=None, chance=0.9, layer=0):
    """A neuron with ``per_band`` tokens in every band of both hooks and the given numbers of
    inconsistent ones per band (``None``: the hook never fires there)."""
    n = n if n is not None else len(mid_bad)
    ex = np.array([[0 if b is None else per_band for b in mid_bad],
                   [0 if b is None else per_band for b in post_bad]])
    bad = np.array([[b or 0 for b in mid_bad], [b or 0 for b in post_bad]])
    return NeuronBands(layer, n, '["token", [1]]', ex, bad, np.zeros((2, n + 1)), chance)


def shifted(diffs, base=5, per_band=10):
    """Neurons whose two low bands (of 4) have ``base`` inconsistent tokens before the LN and
    ``base + d`` after (a per-neuron difference of ``d / per_band``)."""
    return [neuron([base, base, 1, 0], [base + d, base + d, 1, 0], per_band, n=i)
            for i, d in enumerate(diffs)]


LOW = [0, 1]


def test_low_bands_and_their_text():
    assert LN.low_bands(10, 0.5) == [0, 1, 2, 3, 4]
    assert LN.low_bands(10, 0.3) == [0, 1, 2]
    assert LN.low_bands(4, 0.1) == [0]  # at least the lowest band
    assert LN.low_bands(4, 1.0) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="low_quantile"):
        LN.low_bands(10, 0)
    assert LN.bands_text([0, 1, 2, 3, 4], 10) == ("bands 1-5 of 10, quantiles 0%-50% of each "
                                                  "hook's firings")
    assert LN.bands_text([0], 4) == "band 1 of 4, quantiles 0%-25% of each hook's firings"


def test_points_as_the_claims_write_them():
    assert LN.pts(0.225) == "+22.5 pts" and LN.pts(-0.01) == "-1.0 pts"
    assert (LN.pts(-math.inf), LN.pts(math.inf)) == ("-inf", "+inf")


def test_neuron_bands_fractions_and_difference():
    nb = neuron([8, 6, 2, None], [10, 9, 2, 1])
    assert nb.fractions("mid")[:3].tolist() == pytest.approx([0.8, 0.6, 0.2])
    assert math.isnan(nb.fractions("mid")[3])
    assert nb.low_fraction("mid", LOW) == pytest.approx(0.7)
    assert nb.low_fraction("post", LOW) == pytest.approx(0.95)
    assert nb.difference(LOW) == pytest.approx(0.25)
    assert math.isnan(nb.low_fraction("mid", [3]))
    with pytest.raises(ValueError, match="hook"):
        nb.fractions("pre")


def test_bootstrap_interval_is_scipys_bca_with_edge_cases():
    from scipy.stats import bootstrap

    x = np.random.default_rng(0).normal(0.1, 1, 40)
    lo, hi = LN.bootstrap_interval([x], LN._mean, n_resamples=500, seed=3)
    ref = bootstrap((x,), LN._mean, vectorized=True, n_resamples=500, method="BCa",
                    rng=np.random.default_rng(3)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert lo < x.mean() < hi
    assert LN.bootstrap_interval([x[:1]], LN._mean) == (-math.inf, math.inf)
    assert LN.bootstrap_interval([np.full(5, 0.2)], LN._mean) == (0.2, 0.2)
    y = x + 1
    lo, hi = LN.bootstrap_interval([y, x], LN._mean_difference, n_resamples=500)
    assert lo < 1 < hi


def test_paired_difference_pools_seeds_and_skips_neurons_without_pairs():
    a = shifted([2, 3, 2, 3, 2, 3])
    b = shifted([1, 2]) + [neuron([5, 5, 1, 0], [None, None, 1, 0], n=9)]  # post never low
    d = LN.paired_difference({"1L-solu_ln": a, "1L-solu_ln-s1": b}, LOW, "pooled",
                             n_resamples=500)
    assert d.n_neurons == 8 and d.models == ["1L-solu_ln", "1L-solu_ln-s1"]
    assert d.diff == pytest.approx(np.mean([2, 3, 2, 3, 2, 3, 1, 2]) / 10)
    assert (d.mid, d.post) == pytest.approx((0.5, 0.5 + d.diff))
    assert d.per_model == pytest.approx({"1L-solu_ln": 0.25, "1L-solu_ln-s1": 0.15})
    assert d.chance == pytest.approx(0.9)
    assert 0 < d.lo < d.diff < d.hi and d.above_zero
    assert len(d.values) == 8 and d.to_dict()["above_zero"]
    none = LN.paired_difference({"x": []}, LOW, "none")
    assert none.n_neurons == 0 and math.isnan(none.diff)


def _case(solu_diffs, control_diffs=None):
    solu = LN.paired_difference({"1L-solu_ln": shifted(solu_diffs)}, LOW, "solu",
                                n_resamples=500)
    if control_diffs is None:
        return solu, None, None
    control = LN.paired_difference({"1L-gelu_ln": shifted(control_diffs)}, LOW, "control",
                                   n_resamples=500)
    return solu, control, LN.contrast(solu, control, n_resamples=500)


STRONG = [3, 4, 3, 4, 3, 4, 3, 4]


@pytest.mark.parametrize("solu, control, verdict, words", [
    (STRONG, [0, 1, 0, -1, 0, 1, 0, 0], C.REPRODUCED, "both 95% intervals"),
    ([-1, 0, -1, 0], [0, 0, 1, 0], C.NOT_REPRODUCED, "not above 0"),
    ([0, 0, 0, 0], None, C.NOT_REPRODUCED, "not above 0"),
    ([-2, 1, -1, 1, -2, 1], None, C.INCONCLUSIVE, "reaches above 0"),
    ([-2, 1, -1, 1, -2, 1], [0, 0, 0, 0], C.INCONCLUSIVE, "cannot decide"),
    (STRONG, STRONG, C.INCONCLUSIVE, "SoLU-LN minus GELU-LN reaches above 0"),
    (STRONG, [4, 5, 4, 5, 4, 5, 4, 5], C.NOT_REPRODUCED, "does not need SoLU"),
    (STRONG, None, C.PARTLY, "no GELU-LN control"),
    ([4, -3, 3, -2, 1], [0, 0, 0, 0], C.PARTLY, "of SoLU-LN's difference"),
    (STRONG, [3, 4, 3, 3, 4, 3, 4, 2], C.PARTLY, "of SoLU-LN minus GELU-LN"),
])
def test_ln_verdict_branches(solu, control, verdict, words):
    s, c, vs = _case(solu, control)
    got, reason = LN.ln_verdict(s, c, vs)
    assert got == verdict, reason
    assert words in reason


def test_ln_verdict_without_solu_neurons_is_not_testable():
    empty = LN.paired_difference({"1L-solu_ln": []}, LOW, "solu")
    assert LN.ln_verdict(empty, None, None)[0] == C.NOT_TESTABLE
    assert LN.contrast(empty, _case(STRONG)[0]) is None
    # A control without neurons counts as no control.
    s = _case(STRONG)[0]
    got, reason = LN.ln_verdict(s, LN.paired_difference({"1L-gelu_ln": []}, LOW, "c"), None)
    assert got == C.PARTLY and "(95% interval above 0)" in reason


def test_band_rows_and_differences_average_over_neurons():
    ns = [neuron([10, 5, 0, 0], [10, 10, 0, 0]), neuron([6, 5, 0, None], [10, 10, 0, 2])]
    rows = LN.band_rows(ns, 4, n_resamples=200)
    assert [(r.hook, r.band) for r in rows] == [(h, b) for h in ("mid", "post") for b in range(4)]
    r0 = rows[0]
    assert (r0.n_examples, r0.n_inconsistent, r0.n_neurons) == (20, 16, 2)
    assert r0.mean_fraction == pytest.approx(0.8) and r0.ci_lo <= 0.8 <= r0.ci_hi
    assert rows[3].n_neurons == 1 and rows[3].interval() == (-math.inf, math.inf)
    assert rows[2].interval() == (0.0, 0.0)  # both neurons 0/10: no spread
    # A neuron missing a whole band of 10 tokens is not what equal-count bands give: the
    # check says so (real bands differ by at most one token per neuron).
    assert [c.what for c in checks.failed(checks.band_checks(rows, 4))] == [
        "hook mid: equal-count bands (sizes within one token per neuron)"]
    diffs = LN.band_differences(ns, 4, n_resamples=200)
    assert [d.n_neurons for d in diffs] == [2, 2, 2, 1]
    assert diffs[0].diff == pytest.approx(0.2) and diffs[1].diff == pytest.approx(0.5)


def test_rescale_summary_matches_the_design_gain():
    from solu_repro.paper.s4_design import ln_gain

    v = torch.randn(500, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = v * torch.logspace(-4, 0, 500, dtype=torch.float64)[:, None]  # weak to strong positions
    var = v.var(-1, unbiased=False).numpy()
    got = LN.rescale_summary(var, 1e-5)
    gain = ln_gain(v, 1e-5)[:, 0].numpy()
    assert got["gain_median"] == pytest.approx(float(np.median(gain)))
    assert got["frac_gain_below_0.5"] == pytest.approx(float((gain < 0.5).mean()))
    rescale = 1 / np.sqrt(var + 1e-5)
    assert got["rescale_median"] == pytest.approx(float(np.median(rescale)))
    assert got["spread"] == pytest.approx(got["rescale_q90"] / got["rescale_q10"]) and \
        got["spread"] > 10
    flat = LN.rescale_summary(np.full(10, 0.25), 1e-5)
    assert flat["spread"] == pytest.approx(1) and flat["rescale_median"] == pytest.approx(2, 1e-4)
    tiny = LN.rescale_summary(np.full(10, 1e-9), 1e-5)  # eps dominates: a fixed scale
    assert tiny["gain_median"] < 0.02 and tiny["rescale_median"] == pytest.approx(316, 1e-2)
    assert LN.rescale_summary(np.zeros(0), 1e-5)["positions"] == 0


def measurements(solu, control, models=None):
    """``LayerNormMeasurements`` of constructed SoLU-LN and control neurons."""
    s, c, vs = _case(solu, control)
    rescale = LN.rescale_summary(np.linspace(0.01, 1, 50), 1e-5)
    models = models or {"1L-solu_ln": {**rescale, "neurons": 128, "interpretable": 9,
                                        "hold_out": 8, "measured": 8, "tokens": 1000},
                        "1L-gelu_ln": {**rescale, "neurons": 128, "interpretable": 5,
                                        "hold_out": 5, "measured": 5, "tokens": 1000}}
    per_model = {"1L-solu_ln": s, **({"1L-gelu_ln": c} if c else {})}
    return LN.LayerNormMeasurements(4, 0.5, LOW, models, s, c, vs, per_model, [], [], [], [])


def test_the_claim_states_the_numbers_the_control_and_the_rescaling(tmp_path):
    m = measurements(STRONG, [0, 1, 0, -1, 0, 1, 0, 0])
    (claim,) = registry.decide(CHAPTER, m)
    assert claim == LN.decide_ln_low_activation(m)
    assert claim.id == "ln_low_activation" and claim.verdict == C.REPRODUCED
    assert claim.chapter == CHAPTER
    assert "GELU-LN control" in claim.ours and "SoLU-LN - GELU-LN" in claim.ours
    assert "LN rescaling" in claim.ours and "x" in claim.ours
    assert "+35.0 pts" in claim.sentence and "chance" in claim.sentence
    assert "GELU-LN" in claim.sentence and "multiplies" in claim.sentence
    assert claim.values["solu"]["diff"] == pytest.approx(0.35)
    assert claim.values["control"]["n_neurons"] == 8
    assert claim.values["vs_control"]["above_zero"] is True
    assert claim.values["low_bands"] == LOW and "held-out" in claim.values["heldout_rule"]
    assert claim.values["rescale"]["1L-solu_ln"]["positions"] == 50
    ctx = types.SimpleNamespace(runs_dir=tmp_path, scale="tiny")
    record.save(ctx, CHAPTER, [claim])
    assert record.load(ctx, [CHAPTER])[0].verdict == C.REPRODUCED
    # As large as the control, but SoLU-LN minus GELU-LN's interval reaches above 0.
    same = LN.decide_ln_low_activation(measurements(STRONG, STRONG))
    assert same.verdict == C.INCONCLUSIVE and f"({C.INCONCLUSIVE})" in same.sentence
    # The control's difference larger on the whole interval: not reproduced.
    larger = LN.decide_ln_low_activation(measurements(STRONG, [4, 5, 4, 5, 4, 5, 4, 5]))
    assert larger.values["vs_control"]["hi"] < 0 and larger.verdict == C.NOT_REPRODUCED
    alone = LN.decide_ln_low_activation(measurements(STRONG, None))
    assert alone.verdict == C.PARTLY and "no GELU-LN control neuron" in alone.ours
    empty = measurements(STRONG, None)
    empty.solu = LN.paired_difference({"1L-solu_ln": []}, LOW, "solu")
    assert (empty.verdict, empty.reason) == LN.ln_verdict(empty.solu, None, None)
    got = LN.decide_ln_low_activation(empty)
    assert got.verdict == C.NOT_TESTABLE and "nothing to compare" in got.sentence


# --- the tiny zoo -------------------------------------------------------------------------------


@pytest.mark.slow
def test_measure_on_the_tiny_zoo(ctx):
    names = ["1L-solu_ln", "1L-gelu_ln"]
    runs = {n: ctx.run(n) for n in names}
    scores = {n: ctx.scores(n) for n in names}
    m = LN.measure(runs, scores, n_bands=5, max_neurons=6, n_resamples=200, seed=ctx.seed)
    assert list(m.models) == list(m.measured) == names and m.low == [0, 1]
    for name in names:
        model = m.measured[name]
        assert m.models[name] == model.summary()
        assert m.models[name]["hold_out"] == sum(holds_out(r) for r in scores[name].records)
        assert len(model.neurons) == min(6, m.models[name]["hold_out"])
        n_ctx = runs[name].config.model.n_ctx
        assert model.consistency.n_tokens == model.consistency.n_rows * (n_ctx - 1)
        assert m.models[name]["positions"] == model.consistency.n_tokens  # one layer, one block
        assert m.models[name]["gain_median"] <= 1
        for nb in model.neurons:
            assert (nb.inconsistent <= nb.examples).all()
            for h in range(2):
                fired = nb.examples[h][nb.examples[h] > 0]
                assert fired.size == 0 or fired.max() - fired.min() <= 1
    assert m.solu.models == ["1L-solu_ln"] and m.control.models == ["1L-gelu_ln"]
    assert not checks.failed(checks.band_checks(m.rows, 5))
    assert not checks.failed(checks.band_checks(m.control_rows, 5))
    (claim,) = registry.decide(CHAPTER, m)
    assert claim.verdict == m.verdict
    with pytest.raises(ValueError, match="no LayerNorm"):
        LN.measure_model("1L-gelu", ctx.run("1L-gelu"), ctx.scores("1L-gelu"))
