"""Paper §3-4 (``solu_repro.paper.s4_design``): the §4 numbers, the trained models' sparsity
and the four claims chapter 2 decides."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from solu_repro.activations import solu
from solu_repro.interp.stats import excess_kurtosis
from solu_repro.model import ModelConfig, Transformer
from solu_repro.paper import registry
from solu_repro.paper import s4_design as S

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "02-solu-design"


@pytest.fixture(scope="module")
def dm() -> S.DesignMeasurements:
    return S.measure(d_mlp=128)


# --- the module's shape ---------------------------------------------------------------------





# --- §4.2 worked examples ---------------------------------------------------------------------

def test_worked_examples_match_the_paper_within_tolerance():
    rows = S.worked_examples()
    assert [r.x for r in rows] == [x for x, _ in S.PAPER_WORKED_EXAMPLES]
    for r in rows:
        assert r.reproduced, r
    # the exact values, so a silent change of the function cannot hide inside the tolerance
    e4 = math.exp(4)
    z = 2 * e4 + 2 * math.e  # softmax denominator of (4,1,4,1)
    np.testing.assert_allclose(rows[0].computed, [4 * e4 / z, math.e / z] * 2, rtol=1e-12)
    np.testing.assert_allclose(rows[1].computed, [4 * e4 / (e4 + 3), 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rows[2].computed, [0.25] * 4, atol=1e-12)
    assert rows[1].max_abs_deviation == pytest.approx(4 - 4 * e4 / (e4 + 3))


@pytest.mark.parametrize("wrong", [
    lambda x: x * torch.sigmoid(1.7 * x),                # GELU-like: no lateral inhibition
    lambda x: x * torch.softmax(x.unsqueeze(0), 0)[0],   # softmax over the wrong axis
    lambda x: x * torch.softmax(-x, -1),                 # sign error
])
def test_worked_examples_fail_for_wrong_activations(wrong):
    assert not all(r.reproduced for r in S.worked_examples(wrong))


def test_gelu_sigmoid_approximation():
    a = S.gelu_sigmoid_deviation()
    # "approximated closely": about 0.02, reached near |x| = 2.3
    assert 0.015 < a.max_abs_deviation < 0.025
    assert 2.0 < abs(a.at) < 2.6
    # a wrong coefficient is measurably worse, so the number discriminates
    assert S.gelu_sigmoid_deviation(coefficient=1.0).max_abs_deviation > 0.1


# --- the functions compared -------------------------------------------------------------------

def test_activation_table_blocked_softmax_sums_to_one_per_block():
    t = S.activation_table([4, 1, 4, 1, 0, 2], blocks=2)
    np.testing.assert_allclose(t["softmax(x)"].reshape(2, 3).sum(-1), [1, 1], atol=1e-12)
    np.testing.assert_allclose(t["SoLU(x)"], t["x"] * t["softmax(x)"], atol=1e-12)
    np.testing.assert_allclose(t["LN(SoLU(x))"].reshape(2, 3).mean(-1), [0, 0], atol=1e-9)


def test_example_vector():
    assert S.example_vector(4) == (4.0, 1.0, 4.0, 1.0)
    assert S.example_vector(3) == (4.0, 1.0, 4.0)


def test_superlinearity_curves():
    c = S.superlinearity_curves(n=4, max_norm=8.0)
    # spread input: SoLU is linear with slope 1/n
    np.testing.assert_allclose(c["SoLU spread"], c["norm"] / 4, atol=1e-12)
    # aligned input: starts at slope 1/n and approaches the identity (superlinear)
    r, y = c["norm"], c["SoLU aligned"]
    assert y[-1] / r[-1] > 0.97
    assert y[2] / r[2] < 0.3
    assert np.all(np.diff(y / np.where(r > 0, r, 1))[1:] > 0)


# --- §4.3 LayerNorm -------------------------------------------------------------------------

def test_layer_norm_is_the_models_layer_norm():
    x = S.identity_test_vectors(n=4, d=8)
    ref = torch.nn.functional.layer_norm(x, (8,), eps=1e-5)
    torch.testing.assert_close(S.layer_norm(x, 1e-5), ref, rtol=0, atol=1e-12)


def test_ln_scale_invariance_exact_without_eps_broken_with_eps_for_tiny_vectors():
    rows = S.ln_scale_invariance(S.example_vector(4))
    assert max(r.max_diff_no_eps for r in rows) < 1e-12
    by_alpha = {r.alpha: r for r in rows}
    assert by_alpha[1e-4].max_diff_eps > 0.5     # variance far below eps: LN cannot rescale
    assert by_alpha[10.0].max_diff_eps < 1e-4    # variance far above eps: invariant in practice


def test_ln_solu_identity():
    x = S.identity_test_vectors(d=8)
    assert S.ln_solu_identity(x) < 1e-10
    assert S.ln_solu_identity(x.float()) < 1e-5
    assert S.ln_solu_identity(x, blocks=2) < 1e-10
    # the identity needs the LN: without it the softmax denominator shows
    assert (solu(x) - x * torch.exp(x)).abs().max() > 1.0


def test_ln_gain_is_exactly_the_eps_shrinkage():
    v = solu(S.identity_test_vectors(n=64, d=512, std=1.0))
    g = S.ln_gain(v, 1e-5)  # (64, 1)
    torch.testing.assert_close(S.layer_norm(v, 1e-5), g * S.layer_norm(v), rtol=0, atol=1e-10)


def test_ln_eps_effect_grows_with_d_mlp():
    rows = S.ln_eps_effect(d_mlps=(128, 2048), pre_stds=(1.0,), n=64)
    small, large = rows
    assert small.gain_median > 0.95 and large.gain_median < 0.7
    assert large.identity_max_diff_median > small.identity_max_diff_median
    # the SoLU output of a distributed vector has std ~ pre_std / d_mlp
    assert 0.2 < large.solu_std_median * 2048 < 5


# --- §4.4 blocked SoLU ----------------------------------------------------------------------

@pytest.mark.parametrize("d,blocks", [(8, 2), (12, 3), (8, 1), (16, 16)])
def test_blocked_checks(d, blocks):
    c = S.blocked_checks(d=d, blocks=blocks)
    assert c.unblocked_vs_definition < 1e-12
    assert c.blocked_vs_per_block < 1e-12
    assert c.softmax_sum_max_dev < 1e-10
    assert c.ln_vs_per_block < 1e-9
    if blocks > 1:
        assert c.other_block_change == 0.0


def test_blocked_checks_detect_a_global_softmax():
    # the same check applied to an unblocked softmax must see the other block change
    x = S.identity_test_vectors(n=4, d=8)
    grown = x.clone()
    grown[:, 0] += 10
    assert (solu(grown, 1)[:, 4:] - solu(x, 1)[:, 4:]).abs().max() > 1e-3


# --- trained-model statistics ---------------------------------------------------------------

def _model(act_fn: str, blocks: int = 1) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=50,
                      n_ctx=12, act_fn=act_fn, solu_blocks=blocks)
    return Transformer(cfg)


def test_mid_stats_from_model():
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    st = S.mid_stats_from_model(_model("solu_ln"), tokens, name="2L-solu_ln")
    assert st.top_share.shape == (2 * 3 * 11,)  # layers x rows x (positions without BOS)
    assert np.all((st.top_share >= 1 / 32 - 1e-9) & (st.top_share <= 1 + 1e-9))
    assert st.ln_gain.shape == (2 * 3 * 11,) and np.all((st.ln_gain > 0) & (st.ln_gain <= 1))
    s = st.summary()
    assert s["tokens"] == 66 and s["act_fn"] == "solu_ln"
    blocked = S.mid_stats_from_model(_model("solu_ln", blocks=4), tokens)
    assert blocked.ln_gain.shape == (2 * 3 * 11 * 4,)


def test_mid_stats_top_share_of_known_activations():
    # one neuron carrying everything -> 1; evenly spread -> 1/d
    class Fixed:
        cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=4, d_vocab=50,
                          n_ctx=3, act_fn="solu_ln")

        def run_with_cache(self, tokens, names, return_logits):
            assert names == ["blocks.0.mlp.hook_mid"]
            mid = torch.tensor([[[9.0, 9.0, 9.0, 9.0], [5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
            return None, {names[0]: mid}

    st = S.mid_stats_from_model(Fixed(), torch.zeros(1, 3, dtype=torch.long))
    np.testing.assert_allclose(st.top_share, [1.0, 0.25])
    np.testing.assert_array_equal(st.top_neuron, [0, 0])
    assert st.top_neuron_effective_number() == pytest.approx(1.0)


def test_mid_summary_by_act_has_every_activation():
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    st = S.mid_stats_from_model(_model("gelu"), tokens, name="2L-gelu")
    summary = S.mid_summary_by_act([st])
    # Every activation, and the blocked variant chapter 2 glues (NaN where the zoo has none).
    assert set(summary) == {"gelu", "solu", "solu_ln", "gelu_ln", "solu_ln_b4"}
    assert summary["gelu"]["tokens"] == 2 * 2 * 11
    assert math.isnan(summary["solu_ln"]["top_share_median"])
    assert math.isnan(summary["solu_ln_b4"]["top_share_median"])
    assert summary["solu_ln_b4"]["tokens"] == 0


def test_mid_summary_keeps_the_blocked_model_apart():
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    plain = S.mid_stats_from_model(_model("solu_ln"), tokens, name="2L-solu_ln")
    blocked = S.mid_stats_from_model(_model("solu_ln", blocks=4), tokens, name="2L-solu_ln_b4")
    summary = S.mid_summary_by_act([plain, blocked])
    assert summary["solu_ln"]["model"] == "2L-solu_ln"
    assert summary["solu_ln_b4"]["model"] == "2L-solu_ln_b4"


def test_top_neuron_share_counts_positive_activation_only():
    mid = torch.tensor([[3.0, 1.0, -5.0, 0.0],      # negatives are not firing: 3 / 4
                        [-1.0, -2.0, -0.1, -3.0],   # nothing positive: undefined
                        [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    share = S.top_neuron_share(mid)
    np.testing.assert_allclose(share[[0, 2]], [0.75, 0.25])
    assert math.isnan(share[1])


def test_neuron_kurtosis():
    gen = torch.Generator().manual_seed(0)
    gauss = torch.randn(1, 20000, 1, generator=gen, dtype=torch.float64)
    spiky = torch.zeros(1, 20000, 1, dtype=torch.float64)
    spiky[0, ::100] = 5.0  # near 0, rarely large
    const = torch.ones(1, 20000, 1, dtype=torch.float64)
    k = S.neuron_kurtosis(torch.cat([gauss, spiky, const], -1))[0]
    assert abs(float(k[0])) < 0.2
    assert float(k[1]) > 50
    assert math.isnan(k[2])


def test_neuron_kurtosis_is_the_shared_excess_kurtosis_written_out():
    mid = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = mid.flatten(1, -2)
    c = x - x.mean(1, keepdim=True)
    by_hand = (c ** 4).mean(1) / (c ** 2).mean(1) ** 2 - 3
    torch.testing.assert_close(S.neuron_kurtosis(mid), by_hand, rtol=0, atol=0)
    torch.testing.assert_close(excess_kurtosis(x, dim=1), by_hand, rtol=0, atol=0)


def test_mid_stats_number_top_neurons_per_layer():
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    st = S.mid_stats_from_model(_model("solu_ln"), tokens, name="2L-solu_ln")
    assert st.top_neuron.shape == st.top_share.shape
    first, second = st.top_neuron[:33], st.top_neuron[33:]
    assert (first < 32).all() and (second >= 32).all() and (second < 64).all()
    assert 1 <= st.top_neuron_effective_number() <= 64
    assert st.kurtosis.shape == (64,)


def test_untrained_model_is_the_training_init_and_keeps_the_rng():
    cfg = _model("gelu").cfg

    class Run:
        class config:
            model = cfg

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    model = S.untrained_model(Run)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(cfg.seed)
    ref = Transformer(cfg)
    for (n, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n


# --- trained sparsity (§4.1-4.2) --------------------------------------------------------------

def _row(act: str, seed: int, share: float, trained: bool = True, kurt: float = 1.0,
         readout: bool = False):
    return S.SparsityRow(model=f"1L-{act}" + (f"-s{seed}" if seed else ""), act_fn=act,
                         seed=seed, trained=trained, positions=100, top_share_median=share,
                         kurtosis_median=kurt, top_neurons_effective=10.0, readout=readout)


def sparsity(solu_ln: list[float], gelu: list[float], readout: list[float] | None = None,
             untrained: float = 0.05, d_mlp: int = 128) -> S.TrainedSparsity:
    """Rows of matched seeds; GELU's readout defaults to GELU's own share."""
    rows = []
    readout = gelu if readout is None else readout
    for seed, (s, g, r) in enumerate(zip(solu_ln, gelu, readout)):
        rows += [_row("solu_ln", seed, s), _row("gelu", seed, g),
                 _row("solu_ln", seed, untrained, trained=False),
                 _row("gelu", seed, untrained, trained=False),
                 _row("gelu", seed, r, readout=True)]
    return S.trained_sparsity(rows, d_mlp=d_mlp, n_rows=16)


def test_trained_sparsity_pairs_by_seed():
    sp = sparsity([0.5, 0.6, 0.7], [0.1, 0.1, 0.2], readout=[0.25, 0.3, 0.35])
    assert sp.seeds == (0, 1, 2)
    np.testing.assert_allclose(sp.difference.values, [0.4, 0.5, 0.5])
    # the claim's test: ln(SoLU-LN / readout of GELU) per seed
    np.testing.assert_allclose(sp.test.values, np.log([2.0, 2.0, 0.7 / 0.35]))
    assert sp.test.null == S.SPARSITY_NULL and sp.test.interest == S.SPARSITY_INTEREST
    assert sp.untrained_difference.estimate == pytest.approx(0.0)
    assert sp.mean("solu_ln") == pytest.approx(0.6)
    assert sp.mean("gelu") == pytest.approx(0.4 / 3)
    assert sp.mean("gelu", readout=True) == pytest.approx(0.3)
    # a seed missing one of its five models is not paired
    rows = [r for r in sp.rows if not (r.seed == 2 and r.act_fn == "gelu" and not r.trained)]
    assert S.trained_sparsity(rows, 128, 16).seeds == (0, 1)
    rows = [r for r in sp.rows if not (r.seed == 1 and r.readout)]
    assert S.trained_sparsity(rows, 128, 16).seeds == (0, 2)
    with pytest.raises(ValueError, match="no seed"):
        S.trained_sparsity([r for r in sp.rows if r.act_fn == "gelu"], 128, 16)
    json.dumps(sp.to_dict())


def test_sparsity_interest_is_ln_1_25():
    assert S.SPARSITY_INTEREST == pytest.approx(math.log(1.25))


def _decided(dm, sp):
    return S.decide_trained_sparsity(dataclasses.replace(dm, sparsity=sp))


def test_sparsity_claim_reproduced_when_it_beats_the_readout_of_gelu(dm):
    c = _decided(dm, sparsity([0.50, 0.55, 0.52], [0.10, 0.12, 0.11],
                              readout=[0.25, 0.26, 0.27]))
    assert c.id == "trained_sparsity" and c.kind == "empirical"
    assert c.verdict == "reproduced"
    assert c.test.lo > 0 and c.test.null == S.SPARSITY_NULL
    assert c.tests[0]["verdict"] == "reproduced" and len(c.tests) == 1
    assert "0.52 of its" in c.sentence and "3 seeds" in c.sentence
    assert "x·softmax(x)" in c.sentence


def test_sparsity_claim_is_decided_against_the_readout_not_gelu(dm):
    # far above GELU's own activations, but no more than GELU's pre-activations through the
    # same readout: the concentration is the readout's, not training's
    sp = sparsity([0.50, 0.55, 0.52], [0.10, 0.12, 0.11], readout=[0.51, 0.56, 0.53])
    assert sp.difference.lo > 0
    c = _decided(dm, sp)
    assert c.verdict == "contradicted" and c.test.hi < 0


def test_sparsity_claim_inconclusive_or_not_testable_when_the_interval_spans_zero(dm):
    # a powered design (the seeds agree closely) whose interval still spans 0
    sp = sparsity([0.30, 0.31, 0.29, 0.30, 0.31, 0.30], [0.1] * 6,
                  readout=[0.30, 0.30, 0.30, 0.31, 0.29, 0.30])
    assert sp.test.lo < 0 < sp.test.hi and sp.test.powered
    assert _decided(dm, sp).verdict == "inconclusive"
    # the same sign of noise, spread too wide to detect ln 1.25: not testable at this scale
    sp = sparsity([0.50, 0.10, 0.30], [0.1] * 3, readout=[0.2, 0.2, 0.2])
    assert sp.test.lo < 0 < sp.test.hi and not sp.test.powered
    c = _decided(dm, sp)
    assert c.verdict == "not testable here"
    assert "not testable at this scale" in c.ours


def test_sparsity_claim_one_seed_is_not_testable(dm):
    c = _decided(dm, sparsity([0.9], [0.1], readout=[0.2]))
    assert c.verdict == "not testable here" and "1 seed" in c.sentence


def test_sparsity_claim_contradicted_when_the_readout_is_more_concentrated(dm):
    assert _decided(dm, sparsity([0.10, 0.11, 0.09], [0.05] * 3,
                                 readout=[0.12, 0.13, 0.12])).verdict == "contradicted"
    # seeds that do not differ at all give no variance estimate: never a verdict
    assert _decided(dm, sparsity([0.1, 0.1], [0.1, 0.1])).verdict == "not testable here"


def test_sparsity_claim_under_pure_noise_is_rarely_reproduced(dm):
    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(400):
        share = rng.uniform(0.05, 0.1, 3)  # each seed's level, shared by both sides
        sp = sparsity(list(share * np.exp(rng.normal(0, 0.1, 3))), [0.02] * 3,
                      readout=list(share * np.exp(rng.normal(0, 0.1, 3))))
        verdicts.append(sp.test.verdict)
    # a false "reproduced" at most ALPHA / 2 = 2.5% (binomial slack for 400 draws)
    assert verdicts.count("reproduced") / len(verdicts) < 0.05
    assert verdicts.count("contradicted") / len(verdicts) < 0.05


def test_sparsity_claim_not_testable_without_a_measurement(dm):
    c = _decided(dm, None)
    assert c.verdict == "not testable here" and "trained_rows = 0" in c.sentence


def test_readout_stats_are_solu_of_the_gelu_pre_activations():
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(2))
    model = _model("gelu")
    st = S.readout_stats_from_model(model, tokens, name="2L-gelu")
    assert st.readout and st.trained and st.act_fn == "gelu"
    assert "SoLU readout" in st.label
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=["blocks.0.mlp.hook_pre",
                                                       "blocks.1.mlp.hook_pre"],
                                        return_logits=False)
    pre = torch.stack([cache[f"blocks.{l}.mlp.hook_pre"][:, 1:].double() for l in (0, 1)])
    np.testing.assert_allclose(st.top_share, S.top_neuron_share(solu(pre)).flatten().numpy(),
                               rtol=1e-5)
    # the readout is a control: it never replaces GELU's own row in the summary
    own = S.mid_stats_from_model(model, tokens, name="2L-gelu")
    assert S.mid_summary_by_act([own, st])["gelu"]["model"] == "2L-gelu"
    with pytest.raises(Exception, match="GELU"):
        S.readout_stats_from_model(_model("solu_ln"), tokens)


# --- the chapter's measurements and claims -----------------------------------------------------

def test_measure(dm):
    assert dm.worked_examples_reproduced
    assert len(dm.worked_example_deviations) == 3
    assert max(dm.worked_example_deviations) <= dm.worked_example_tolerance
    assert 0.015 < dm.gelu_sigmoid_max_deviation < 0.025
    assert dm.ln_scale_invariance_max_diff < 1e-12
    assert dm.ln_solu_identity_max_diff < 1e-10
    assert dm.ln_solu_identity_max_diff_float32 < 1e-5
    assert dm.d_mlp == 128 and dm.eps == ModelConfig.ln_eps
    assert 0.5 < dm.eps_gain_median < 1.0
    assert dm.blocked_equals_unblocked < 1e-12 and dm.blocked_softmax_sum_max_dev < 1e-10
    assert dm.blocked_other_block_change == 0.0
    assert dm.sparsity is None and dm.mid_stats == ()
    assert set(dm.to_dict()) >= {"worked_example_deviations", "gelu_sigmoid_max_deviation"}
    # what the page shows is computed in the same pass, from the same functions
    assert [e.max_abs_deviation for e in dm.examples] == list(dm.worked_example_deviations)
    assert dm.approximation.max_abs_deviation == dm.gelu_sigmoid_max_deviation
    assert sorted({r.d_mlp for r in dm.eps_effect}) == [128, 512, 2048, 8192]
    assert dm.blocked.d == 8 and dm.blocked.blocks == 2
    json.dumps(dm.to_dict())  # JSON-safe, without the page's arrays


def test_measure_follows_the_page_parameters():
    m = S.measure(d_mlp=64, n_coords=6, n_blocks=3, eps_d_mlps=())
    assert len(m.inhibited["x"]) == 6 and m.blocked.d == 18 and m.blocked.blocks == 3
    assert len(m.scale_invariance) == 6  # one row per alpha
    assert [r.d_mlp for r in m.eps_effect] == [64] * 3  # one row per pre-activation std
    np.testing.assert_allclose(m.superlinearity["SoLU spread"], m.superlinearity["norm"] / 6,
                               atol=1e-12)


def test_identity_claims_reproduced_and_their_rules_state_the_numbers(dm):
    by_id = {c.id: c for c in registry.decide(CHAPTER, dm)}
    assert list(by_id) == ["worked_examples", "gelu_sigmoid", "ln_identities",
                           "trained_sparsity"]
    for cid in ("worked_examples", "gelu_sigmoid", "ln_identities"):
        assert by_id[cid].kind == "identity" and by_id[cid].verdict == "reproduced", by_id[cid]
    assert "0.25" in by_id["worked_examples"].rule
    assert "0.05" in by_id["gelu_sigmoid"].rule and "1e-09" in by_id["ln_identities"].rule
    assert "SoLU(4,0,0,0)" in by_id["worked_examples"].sentence
    assert by_id["trained_sparsity"].verdict == "not testable here"  # no runs: not measured
    # each identity claim can fail
    bad = dataclasses.replace(dm, worked_examples_reproduced=False,
                              worked_example_deviations=(0.1, 0.3, 0.0))
    assert S.decide_worked_examples(bad).verdict == "contradicted"
    assert "SoLU(4,0,0,0)" in S.decide_worked_examples(bad).sentence
    assert S.decide_gelu_sigmoid(dataclasses.replace(
        dm, gelu_sigmoid_max_deviation=0.06)).verdict == "contradicted"
    assert S.decide_ln_identities(dataclasses.replace(
        dm, ln_solu_identity_max_diff=1e-6)).verdict == "contradicted"
    assert S.decide_ln_identities(dataclasses.replace(
        dm, ln_scale_invariance_max_diff=1e-6)).verdict == "contradicted"


# --- measuring runs -----------------------------------------------------------------------------

class FakeRun:
    """A zoo run of an untrained tiny model ("trained": another draw than its init)."""

    def __init__(self, name: str):
        from solu_repro.zoo import act_of, seed_of

        self.name = name
        self.cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                               d_vocab=50, n_ctx=12, act_fn=act_of(name), seed=seed_of(name))
        cfg = self.cfg

        class config:
            model = cfg
        self.config = config

    def load_model(self):
        torch.manual_seed(self.cfg.seed + 100)
        return Transformer(self.cfg)


ONE_LAYER = ["1L-gelu", "1L-solu_ln", "1L-solu", "1L-gelu-s1", "1L-solu_ln-s1"]


def test_measure_with_runs(monkeypatch):
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(S, "validation_tokens", lambda run, n_rows: tokens)
    dm = S.measure(d_mlp=32, runs=[FakeRun(n) for n in ONE_LAYER], trained_rows=2,
                   eps_d_mlps=())
    sp = dm.sparsity
    assert sp.seeds == (0, 1) and sp.d_mlp == 32 and sp.n_rows == 2
    assert [(r.model, r.trained, r.readout) for r in sp.rows] == [
        (n, t, False) for n in ("1L-solu_ln", "1L-solu_ln-s1", "1L-gelu", "1L-gelu-s1")
        for t in (True, False)] + [("1L-gelu", True, True), ("1L-gelu-s1", True, True)]
    assert [(s.name, s.trained, s.readout) for s in dm.mid_stats] == [
        ("1L-gelu", True, False), ("1L-solu_ln", True, False), ("1L-solu", True, False),
        ("1L-gelu", False, False), ("1L-solu_ln", False, False), ("1L-gelu", True, True)]
    assert all(r.positions == 2 * 11 for r in sp.rows)
    c = registry.decide(CHAPTER, dm)[-1]
    assert c.verdict in ("reproduced", "contradicted", "inconclusive", "not testable here")
    assert c.test is not None and c.test.n == 2
    json.dumps(dm.to_dict())
    assert "mid_stats" not in dm.to_dict()
    summary = S.mid_summary_by_act(dm.mid_stats)
    assert summary["gelu"]["model"] == "1L-gelu"  # the untrained control does not replace it


def test_measure_skips_the_runs_without_rows():
    class Untouchable:
        name = "1L-gelu"

        def load_model(self):
            raise AssertionError("trained_rows = 0 must not load a model")

    m = S.measure(d_mlp=128, runs=[Untouchable()], trained_rows=0, eps_d_mlps=())
    assert m.sparsity is None and m.mid_stats == ()
