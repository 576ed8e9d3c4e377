"""Notebook 2's package code (``solu_repro.book.design``): the paper's §4 numbers and checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from solu_repro.activations import solu
from solu_repro.book import design as D
from solu_repro.model import ModelConfig, Transformer


# --- §4.2 worked examples ---------------------------------------------------------------------

def test_worked_examples_match_the_paper_within_tolerance():
    rows = D.worked_examples()
    assert [r.x for r in rows] == [x for x, _ in D.PAPER_WORKED_EXAMPLES]
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
    assert not all(r.reproduced for r in D.worked_examples(wrong))


def test_worked_examples_text_is_rounded_and_flags_failures():
    text = D.worked_examples_text()
    assert ("SoLU(4,1,4,1): paper ≈ (2.00, 0.00, 2.00, 0.00), "
            "computed (1.91, 0.02, 1.91, 0.02)") in text
    assert "OUTSIDE" not in text
    bad = D.worked_examples_text(D.worked_examples(lambda x: x))
    assert "OUTSIDE" in bad


def test_gelu_sigmoid_approximation():
    a = D.gelu_sigmoid_deviation()
    # "approximated closely": about 0.02, reached near |x| = 2.3
    assert 0.015 < a.max_abs_deviation < 0.025
    assert 2.0 < abs(a.at) < 2.6
    # a wrong coefficient is measurably worse, so the number discriminates
    assert D.gelu_sigmoid_deviation(coefficient=1.0).max_abs_deviation > 0.1


# --- helpers and figures ----------------------------------------------------------------------

def test_activation_table_blocked_softmax_sums_to_one_per_block():
    t = D.activation_table([4, 1, 4, 1, 0, 2], blocks=2)
    np.testing.assert_allclose(t["softmax(x)"].reshape(2, 3).sum(-1), [1, 1], atol=1e-12)
    np.testing.assert_allclose(t["SoLU(x)"], t["x"] * t["softmax(x)"], atol=1e-12)
    np.testing.assert_allclose(t["LN(SoLU(x))"].reshape(2, 3).mean(-1), [0, 0], atol=1e-9)


def test_example_vector():
    assert D.example_vector(4) == (4.0, 1.0, 4.0, 1.0)
    assert D.example_vector(3) == (4.0, 1.0, 4.0)


def test_superlinearity_curves():
    c = D.superlinearity_curves(n=4, max_norm=8.0)
    # spread input: SoLU is linear with slope 1/n
    np.testing.assert_allclose(c["SoLU spread"], c["norm"] / 4, atol=1e-12)
    # aligned input: starts at slope 1/n and approaches the identity (superlinear)
    r, y = c["norm"], c["SoLU aligned"]
    assert y[-1] / r[-1] > 0.97
    assert y[2] / r[2] < 0.3
    assert np.all(np.diff(y / np.where(r > 0, r, 1))[1:] > 0)


def test_figures_have_their_traces():
    assert len(D.activations_figure().data) == 3 * 4
    lat = D.lateral_inhibition_figure(n=4, others=1.0)
    other = [t for t in lat.data if t.name.startswith("SoLU, each other")][0]
    assert other.y[-1] < 0.01 < other.y[0]  # suppressed as the first coordinate grows
    gelu_other = [t for t in lat.data if t.name == "GELU, each other coordinate"][0]
    assert np.ptp(gelu_other.y) == 0  # GELU: no inhibition
    assert len(D.superlinearity_figure().data) == 5
    assert len(D.gelu_approximation_figure().data) == 3
    blk = D.blocked_inhibition_figure(n_per_block=4, blocks=2)
    assert np.ptp(blk.data[2].y) == 0 and blk.data[1].y[-1] < 0.01
    assert len(D.explorer_figure([4, 1, 4, 1], blocks=2).data) == 5
    assert len(D.ln_eps_figure(D.ln_eps_effect(d_mlps=(64, 128), pre_stds=(1.0,), n=8)).data) == 1


def test_explorer_updates_when_a_slider_moves():
    box = D.explorer((4.0, 1.0, 4.0, 1.0))
    assert len(box.sliders) == 4 and list(box.blocks.options) == [1, 2, 4]
    box.sliders[0].value = 6.0
    box.blocks.value = 2  # no exception on either update


def test_format_table():
    rows = D.ln_scale_invariance([1.0, 2.0, 4.0], alphas=(2.0,))
    text = D.format_table(rows).splitlines()
    assert text[0].split() == ["alpha", "std", "max_diff_no_eps", "max_diff_eps"]
    assert len(text) == 2


# --- §4.3 LayerNorm -------------------------------------------------------------------------

def test_layer_norm_is_the_models_layer_norm():
    x = D.identity_test_vectors(n=4, d=8)
    ref = torch.nn.functional.layer_norm(x, (8,), eps=1e-5)
    torch.testing.assert_close(D.layer_norm(x, 1e-5), ref, rtol=0, atol=1e-12)


def test_ln_scale_invariance_exact_without_eps_broken_with_eps_for_tiny_vectors():
    rows = D.ln_scale_invariance(D.example_vector(4))
    assert max(r.max_diff_no_eps for r in rows) < 1e-12
    by_alpha = {r.alpha: r for r in rows}
    assert by_alpha[1e-4].max_diff_eps > 0.5     # variance far below eps: LN cannot rescale
    assert by_alpha[10.0].max_diff_eps < 1e-4    # variance far above eps: invariant in practice


def test_ln_solu_identity():
    x = D.identity_test_vectors(d=8)
    assert D.ln_solu_identity(x) < 1e-10
    assert D.ln_solu_identity(x.float()) < 1e-5
    assert D.ln_solu_identity(x, blocks=2) < 1e-10
    # the identity needs the LN: without it the softmax denominator shows
    assert (solu(x) - x * torch.exp(x)).abs().max() > 1.0


def test_ln_gain_is_exactly_the_eps_shrinkage():
    v = solu(D.identity_test_vectors(n=64, d=512, std=1.0))
    g = D.ln_gain(v, 1e-5)  # (64, 1)
    torch.testing.assert_close(D.layer_norm(v, 1e-5), g * D.layer_norm(v), rtol=0, atol=1e-10)


def test_ln_eps_effect_grows_with_d_mlp():
    rows = D.ln_eps_effect(d_mlps=(128, 2048), pre_stds=(1.0,), n=64)
    small, large = rows
    assert small.gain_median > 0.95 and large.gain_median < 0.7
    assert large.identity_max_diff_median > small.identity_max_diff_median
    # the SoLU output of a distributed vector has std ~ pre_std / d_mlp
    assert 0.2 < large.solu_std_median * 2048 < 5


# --- §4.4 blocked SoLU ----------------------------------------------------------------------

@pytest.mark.parametrize("d,blocks", [(8, 2), (12, 3), (8, 1), (16, 16)])
def test_blocked_checks(d, blocks):
    c = D.blocked_checks(d=d, blocks=blocks)
    assert c.unblocked_vs_definition < 1e-12
    assert c.blocked_vs_per_block < 1e-12
    assert c.softmax_sum_max_dev < 1e-10
    assert c.ln_vs_per_block < 1e-9
    if blocks > 1:
        assert c.other_block_change == 0.0


def test_blocked_checks_detect_a_global_softmax():
    # the same check applied to an unblocked softmax must see the other block change
    x = D.identity_test_vectors(n=4, d=8)
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
    st = D.mid_stats_from_model(_model("solu_ln"), tokens, name="2L-solu_ln")
    assert st.top_share.shape == (2 * 3 * 11,)  # layers x rows x (positions without BOS)
    assert np.all((st.top_share >= 1 / 32 - 1e-9) & (st.top_share <= 1 + 1e-9))
    assert st.ln_gain.shape == (2 * 3 * 11,) and np.all((st.ln_gain > 0) & (st.ln_gain <= 1))
    s = st.summary()
    assert s["tokens"] == 66 and s["act_fn"] == "solu_ln"
    blocked = D.mid_stats_from_model(_model("solu_ln", blocks=4), tokens)
    assert blocked.ln_gain.shape == (2 * 3 * 11 * 4,)
    assert len(D.top_share_figure([st]).data) == 2


def test_mid_stats_top_share_of_known_activations():
    # one neuron carrying everything -> 1; evenly spread -> 1/d
    class Fixed:
        cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=4, d_vocab=50,
                          n_ctx=3, act_fn="solu_ln")

        def run_with_cache(self, tokens, names, return_logits):
            mid = torch.tensor([[[9.0, 9.0, 9.0, 9.0], [5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
            return None, {names[0]: mid}

    st = D.mid_stats_from_model(Fixed(), torch.zeros(1, 3, dtype=torch.long))
    np.testing.assert_allclose(st.top_share, [1.0, 0.25])
    np.testing.assert_array_equal(st.top_neuron, [0, 0])
    assert st.top_neuron_effective_number() == pytest.approx(1.0)


# --- scorecard numbers ----------------------------------------------------------------------

def test_design_measurements():
    m = D.design_measurements(d_mlp=512)
    assert m.worked_examples_reproduced
    assert len(m.worked_example_deviations) == 3
    assert max(m.worked_example_deviations) <= m.worked_example_tolerance
    assert 0.015 < m.gelu_sigmoid_max_deviation < 0.025
    assert m.ln_scale_invariance_max_diff < 1e-12
    assert m.ln_solu_identity_max_diff < 1e-10
    assert m.ln_solu_identity_max_diff_float32 < 1e-5
    assert m.d_mlp == 512 and m.eps == ModelConfig.ln_eps
    assert 0.5 < m.eps_gain_median < 1.0
    assert m.blocked_equals_unblocked < 1e-12 and m.blocked_softmax_sum_max_dev < 1e-10
    assert m.blocked_other_block_change == 0.0
    assert set(m.to_dict()) >= {"worked_example_deviations", "gelu_sigmoid_max_deviation"}


def test_design_measurements_uses_the_context_scale():
    class Ctx:
        scale = "tiny"

    m = D.design_measurements(Ctx(), trained_rows=0)
    assert m.d_mlp == 128 and m.sparsity is None and m.mid_stats == ()


def test_mid_summary_by_act_has_every_activation():
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    st = D.mid_stats_from_model(_model("gelu"), tokens, name="2L-gelu")
    summary = D.mid_summary_by_act([st])
    # Every activation, and the blocked variant chapter 2 glues (NaN where the zoo has none).
    assert set(summary) == {"gelu", "solu", "solu_ln", "gelu_ln", "solu_ln_b4"}
    assert summary["gelu"]["tokens"] == 2 * 2 * 11
    assert math.isnan(summary["solu_ln"]["top_share_median"])
    assert math.isnan(summary["solu_ln_b4"]["top_share_median"])
    assert summary["solu_ln_b4"]["tokens"] == 0


def test_blocked_inhibition_figure_with_one_block():
    assert len(D.blocked_inhibition_figure(n_per_block=4, blocks=1).data) == 2


# --- trained sparsity (§4.1-4.2) --------------------------------------------------------------

def test_top_neuron_share_counts_positive_activation_only():
    mid = torch.tensor([[3.0, 1.0, -5.0, 0.0],      # negatives are not firing: 3 / 4
                        [-1.0, -2.0, -0.1, -3.0],   # nothing positive: undefined
                        [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    share = D.top_neuron_share(mid)
    np.testing.assert_allclose(share[[0, 2]], [0.75, 0.25])
    assert math.isnan(share[1])


def test_neuron_kurtosis():
    gen = torch.Generator().manual_seed(0)
    gauss = torch.randn(1, 20000, 1, generator=gen, dtype=torch.float64)
    spiky = torch.zeros(1, 20000, 1, dtype=torch.float64)
    spiky[0, ::100] = 5.0  # near 0, rarely large
    const = torch.ones(1, 20000, 1, dtype=torch.float64)
    k = D.neuron_kurtosis(torch.cat([gauss, spiky, const], -1))[0]
    assert abs(float(k[0])) < 0.2
    assert float(k[1]) > 50
    assert math.isnan(k[2])


def test_mid_stats_number_top_neurons_per_layer():
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    st = D.mid_stats_from_model(_model("solu_ln"), tokens, name="2L-solu_ln")
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
    model = D.untrained_model(Run)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(cfg.seed)
    ref = Transformer(cfg)
    for (n, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n


def _row(act: str, seed: int, share: float, trained: bool = True, kurt: float = 1.0):
    return D.SparsityRow(model=f"1L-{act}" + (f"-s{seed}" if seed else ""), act_fn=act,
                         seed=seed, trained=trained, positions=100, top_share_median=share,
                         kurtosis_median=kurt, top_neurons_effective=10.0)


def _sparsity(solu_ln: list[float], gelu: list[float], untrained: float = 0.05,
              d_mlp: int = 128) -> "D.TrainedSparsity":
    rows = []
    for seed, (s, g) in enumerate(zip(solu_ln, gelu)):
        rows += [_row("solu_ln", seed, s), _row("gelu", seed, g),
                 _row("solu_ln", seed, untrained, trained=False),
                 _row("gelu", seed, untrained, trained=False)]
    return D.trained_sparsity(rows, d_mlp=d_mlp, n_rows=16)


def test_trained_sparsity_pairs_by_seed():
    sp = _sparsity([0.5, 0.6, 0.7], [0.1, 0.1, 0.2])
    assert sp.seeds == (0, 1, 2)
    np.testing.assert_allclose(sp.difference.values, [0.4, 0.5, 0.5])
    assert sp.untrained_difference.estimate == pytest.approx(0.0)
    assert sp.mean("solu_ln") == pytest.approx(0.6)
    # a seed missing one of its four models is not paired
    rows = [r for r in sp.rows if not (r.seed == 2 and r.act_fn == "gelu" and not r.trained)]
    assert D.trained_sparsity(rows, 128, 16).seeds == (0, 1)
    with pytest.raises(ValueError, match="no seed"):
        D.trained_sparsity([r for r in sp.rows if r.act_fn == "gelu"], 128, 16)


def test_sparsity_claim_reproduced_when_the_seed_interval_is_above_zero():
    c = D.sparsity_claim(_sparsity([0.50, 0.55, 0.52], [0.10, 0.12, 0.11]))
    assert c.id == "trained_sparsity" and c.kind == "empirical"
    assert c.verdict == "reproduced"
    assert c.values["difference"]["lo"] > 0
    assert "0.52 of its" in c.sentence and "3 seeds" in c.sentence


def test_sparsity_claim_direction_only_when_the_interval_includes_zero():
    c = D.sparsity_claim(_sparsity([0.50, 0.10, 0.30], [0.10, 0.12, 0.11]))
    assert c.values["difference"]["lo"] < 0 < c.values["difference"]["estimate"]
    assert c.verdict == "direction only"


def test_sparsity_claim_one_seed_is_at_most_direction_only():
    c = D.sparsity_claim(_sparsity([0.9], [0.1]))
    assert c.verdict == "direction only" and "1 seed" in c.sentence


def test_sparsity_claim_not_reproduced_when_gelu_is_as_concentrated():
    assert D.sparsity_claim(_sparsity([0.10, 0.11, 0.09], [0.12, 0.13, 0.12])).verdict \
        == "not reproduced"
    assert D.sparsity_claim(_sparsity([0.1, 0.1], [0.1, 0.1])).verdict == "not reproduced"


def test_sparsity_claim_not_testable_without_a_measurement():
    c = D.sparsity_claim(None)
    assert c.verdict == "not testable here" and "trained_rows = 0" in c.sentence


def test_sparsity_checks():
    sp = _sparsity([0.5, 0.6], [0.1, 0.1])
    assert all(c.passed for c in D.sparsity_checks(sp, expected_seeds=2))
    assert not D.sparsity_checks(sp, expected_seeds=3)[0].passed
    bad = _sparsity([0.5, 0.6], [0.001, 0.1])  # below 1/128: impossible for a real model
    assert not D.sparsity_checks(bad, expected_seeds=2)[1].passed
    assert not D.sparsity_checks(None, expected_seeds=2)[0].passed


# --- the chapter's claims ---------------------------------------------------------------------

def test_identity_claims_reproduced_and_their_rules_state_the_numbers():
    import dataclasses

    dm = D.design_measurements(d_mlp=128)
    by_id = {c.id: c for c in D.claims(dm)}
    assert list(by_id) == ["worked_examples", "gelu_sigmoid", "ln_identities",
                           "trained_sparsity"]
    for cid in ("worked_examples", "gelu_sigmoid", "ln_identities"):
        assert by_id[cid].kind == "identity" and by_id[cid].verdict == "reproduced", by_id[cid]
    assert "0.25" in by_id["worked_examples"].rule
    assert "0.05" in by_id["gelu_sigmoid"].rule and "1e-09" in by_id["ln_identities"].rule
    assert "SoLU(4,0,0,0)" in by_id["worked_examples"].sentence
    assert by_id["trained_sparsity"].verdict == "not testable here"  # no ctx: not measured
    # each identity claim can fail
    bad = dataclasses.replace(dm, worked_examples_reproduced=False,
                              worked_example_deviations=(0.1, 0.3, 0.0))
    assert D.worked_examples_claim(bad).verdict == "not reproduced"
    assert "SoLU(4,0,0,0)" in D.worked_examples_claim(bad).sentence
    assert D.gelu_sigmoid_claim(dataclasses.replace(
        dm, gelu_sigmoid_max_deviation=0.06)).verdict == "not reproduced"
    assert D.ln_identities_claim(dataclasses.replace(
        dm, ln_solu_identity_max_diff=1e-6)).verdict == "not reproduced"
    assert D.ln_identities_claim(dataclasses.replace(
        dm, ln_scale_invariance_max_diff=1e-6)).verdict == "not reproduced"


def test_claims_are_recorded_and_loaded(tmp_path):
    from solu_repro.paper import claim as C
    from solu_repro.paper import registry as REG
    from solu_repro.book import record

    class Ctx:
        scale = "tiny"
        runs_dir = tmp_path

    dm = D.design_measurements(d_mlp=128)
    scored = D.claims(dm)[:3] + [D.sparsity_claim(_sparsity([0.5, 0.6], [0.1, 0.1]))]
    record.save(Ctx, "02-solu-design", scored)
    loaded = record.load(Ctx, ["02-solu-design"])
    assert [c.id for c in loaded] == [c.id for c in scored]
    assert loaded[3].values["difference"]["values"] == pytest.approx([0.4, 0.5])


class _FakeRun:
    def __init__(self, name: str, cfg: ModelConfig):
        self.name, self.cfg = name, cfg

        class config:
            model = cfg
        self.config = config

    def load_model(self):
        torch.manual_seed(self.cfg.seed + 100)  # "trained": another draw than the init
        return Transformer(self.cfg)


class _FakeCtx:
    """A 1-layer zoo of GELU / SoLU-LN (2 seeds) and a SoLU ablation, untrained models."""

    scale = "tiny"
    depths = (1, 2)
    names = ["1L-gelu", "1L-solu_ln", "1L-solu", "2L-gelu"]
    all_names = names + ["1L-gelu-s1", "1L-solu_ln-s1"]

    def seeds(self, name):
        return [name, name + "-s1"] if name in ("1L-gelu", "1L-solu_ln") else [name]

    def run(self, name):
        assert not name.startswith("2L"), "only the smallest depth is measured"
        from solu_repro.book.style import act_of, seed_of

        act, seed = act_of(name), seed_of(name)
        return _FakeRun(name, ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8,
                                          d_mlp=32, d_vocab=50, n_ctx=12, act_fn=act,
                                          seed=seed))


def test_design_measurements_with_a_context(monkeypatch):
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(D, "validation_tokens", lambda run, n_rows: tokens)
    dm = D.design_measurements(_FakeCtx(), trained_rows=2)
    sp = dm.sparsity
    assert sp.seeds == (0, 1) and sp.d_mlp == 32 and sp.n_rows == 2
    assert len(sp.rows) == 8 and {r.trained for r in sp.rows} == {True, False}
    assert [(s.name, s.trained) for s in dm.mid_stats] == [
        ("1L-gelu", True), ("1L-solu_ln", True), ("1L-solu", True),
        ("1L-gelu", False), ("1L-solu_ln", False)]
    assert all(r.positions == 2 * 11 for r in sp.rows)
    c = D.claims(dm)[-1]
    assert c.verdict in ("reproduced", "direction only", "not reproduced")
    import json
    json.dumps(dm.to_dict())  # JSON-safe, without the arrays
    assert "mid_stats" not in dm.to_dict()
    assert len(D.top_share_figure(dm.mid_stats).data) == 5 + 1
    summary = D.mid_summary_by_act(dm.mid_stats)
    assert summary["gelu"]["model"] == "1L-gelu"  # the untrained control does not replace it


def test_mid_summary_keeps_the_blocked_model_apart():
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    plain = D.mid_stats_from_model(_model("solu_ln"), tokens, name="2L-solu_ln")
    blocked = D.mid_stats_from_model(_model("solu_ln", blocks=4), tokens, name="2L-solu_ln_b4")
    summary = D.mid_summary_by_act([plain, blocked])
    assert summary["solu_ln"]["model"] == "2L-solu_ln"
    assert summary["solu_ln_b4"]["model"] == "2L-solu_ln_b4"
