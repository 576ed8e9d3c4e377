"""Paper §6.3 measurements and verdicts (``solu_repro.paper.s6_3_neurons``): the logit
cross-check of one-layer neurons (§6.3.1, chapter 5) and the roles of neurons by layer
(§6.3.2-6.3.4, chapter 6), on synthetic scores and on the tiny zoo."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from solu_repro.interp.analysis import ROLE_ORDER, layer_roles
from solu_repro.interp.stats import difference_interval
from solu_repro.paper import claim as C
from solu_repro.paper import registry
from solu_repro.paper import s6_3_neurons as S
from fakes import neuron_record, neuron_scores

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ("05-one-layer-neurons", "06-neurons-across-layers")


# --- the module ----------------------------------------------------------------------------------




# --- synthetic scores ----------------------------------------------------------------------------




def test_random_neurons_are_a_seeded_sample_of_live_neurons():
    tied = [neuron_record(0, i) for i in range(12)]
    sample = S.random_neurons(neuron_scores(tied + [neuron_record(1, 0, dead=True, interpretable=False)]),
                              4, seed=1)
    assert sample == S.random_neurons(neuron_scores(tied), 4, seed=1)
    assert len(sample) == 4 and all(not r.dead for r in sample)
    assert [(r.layer, r.neuron) for r in sample] == sorted((r.layer, r.neuron) for r in sample)
    assert S.random_neurons(neuron_scores(tied), 20) == tied  # fewer live neurons than asked: all


def test_kind_counts_count_interpretable_neurons_per_kind():
    records = [neuron_record(0, 0, "token"), neuron_record(0, 1, "token"), neuron_record(0, 2, "bigram", ((1, 2),)),
               neuron_record(0, 3, "class", ("digits",), interpretable=False)]
    assert S.kind_counts(neuron_scores(records)) == {"token": 2, "bigram": 1}


def test_role_shift_counts_and_interval():
    rows = [{"position": "first", "n_interpretable": 10, "detokenization": 6},
            {"position": "middle", "n_interpretable": 10, "detokenization": 2},
            {"position": "last", "n_interpretable": 20, "detokenization": 2}]
    shift = S.role_shift(rows, "detokenization", "first")
    assert (shift.count, shift.n, shift.other_count, shift.other_n) == (6, 10, 4, 30)
    assert (shift.diff, shift.lo, shift.hi) == pytest.approx(difference_interval(6, 10, 4, 30))
    assert shift.direction_agrees and shift.significant == (shift.lo > 0)
    assert shift.versus == "the later layers" and shift.of == "interpretable neurons"
    empty = S.role_shift([{"position": "first", "n_interpretable": 0, "detokenization": 0}],
                         "detokenization", "first")
    assert empty.direction_agrees is None and not empty.significant and not empty.measurable
    assert S.shift_verdict(empty) == C.NOT_TESTABLE


def test_layer_roles_rows_label_positions():
    assert [S.layer_position(i, 4) for i in range(4)] == ["first", "middle", "middle", "last"]
    assert [S.layer_position(i, 2) for i in range(2)] == ["first", "last"]
    records = [neuron_record(0, 0, "bigram", ((1, 2),)), neuron_record(1, 0, "class", ("digits",))]
    rows = S.layer_roles_rows({"2L-solu_ln": S.ScoredModel(None, neuron_scores(records))})
    assert [(r["model"], r["act"], r["depth"], r["position"]) for r in rows] == [
        ("2L-solu_ln", "solu_ln", 2, "first"), ("2L-solu_ln", "solu_ln", 2, "last")]
    assert [r["detokenization"] for r in rows] == [1, 0]
    assert [r["token_class"] for r in rows] == [0, 1]


def test_model_choice_from_names():
    names = ["1L-gelu", "1L-solu_ln", "2L-gelu", "2L-solu_ln", "4L-gelu", "4L-solu_ln",
             "1L-gelu_ln"]
    assert S.multi_layer_models(names) == ["2L-gelu", "2L-solu_ln", "4L-gelu", "4L-solu_ln"]
    assert S.deepest_model(names) == "4L-solu_ln"
    assert S.deepest_model(names, "gelu") == "4L-gelu"
    assert S.deepest_model(["1L-solu_ln"]) is None
    assert S.deepest_pair(names) == ("4L-solu_ln", "4L-gelu")
    assert S.deepest_pair(["2L-gelu", "2L-solu_ln", "4L-solu_ln"]) == ("2L-solu_ln", "2L-gelu")
    assert S.deepest_pair(["1L-gelu", "1L-solu_ln"]) is None


# --- §6.3.1: the logit cross-check and its claim -------------------------------------------------
def test_token_percentiles_rank_within_each_row_and_split_ties():
    effects = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0],
                            [4.0, 3.0, 2.0, 1.0, 0.0],
                            [1.0, 1.0, 1.0, 0.0, 2.0]])
    tokens = torch.tensor([[4, 0], [4, 0], [0, 4]])
    got = S.token_percentiles(effects, tokens)
    # Row 2: token 0 is tied with two others (1 below, 2 others tied): (1 + 1) / 4.
    assert got.flatten().tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.5, 1.0])
    # Without ties it is the rank over (vocab - 1), the percentile of an argsort.
    x = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    t = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    rank = torch.argsort(torch.argsort(x, dim=1), dim=1).double() / 49
    assert S.token_percentiles(x, t).flatten().tolist() == pytest.approx(
        rank.gather(1, t).flatten().tolist())


def test_direct_logit_effects_match_the_single_neuron_view():
    from solu_repro.interp.view import direct_logit_effect
    from solu_repro.model import ModelConfig, Transformer

    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=6,
                                    d_vocab=40, n_ctx=8, act_fn="solu_ln"))
    with torch.no_grad():
        model.ln_final.w.uniform_(0.5, 1.5)
    batch = S.direct_logit_effects(model, 1, [4, 0, 2])
    for row, neuron in zip(batch, [4, 0, 2]):
        assert torch.allclose(row, direct_logit_effect(model, 1, neuron), atol=1e-6)
    with pytest.raises(IndexError):
        S.direct_logit_effects(model, 1, [6])


def test_agreement_summary():
    a = S.agreement_summary("m", "random", [0.2, 0.4, math.nan, 0.9, 0.8])
    assert (a.n, a.median) == (4, pytest.approx(0.6))
    assert a.share_above_075 == pytest.approx(0.5)
    empty = S.agreement_summary("m", "interpretable", [math.nan])
    assert empty.n == 0 and math.isnan(empty.median)


def _agreement(model, interp_median, random_median, n_interp=10, n_random=64):
    a = S.Agreement(model, "interpretable", n_interp, interp_median, 0, 1, 0)
    b = S.Agreement(model, "random", n_random, random_median, 0, 1, 0)
    if n_interp == 0:
        a = S.agreement_summary(model, "interpretable", [])
    return [a, b]


SEEDS = ["1L-solu_ln", "1L-solu_ln-s1", "1L-solu_ln-s2"]


def _one_layer(medians, n_interp=(10, 10, 10)):
    rows = [row for s, (i, r), n in zip(SEEDS, medians, n_interp)
            for row in _agreement(s, i, r, n)]
    seeds = SEEDS[:len(medians)]
    return S.OneLayerMeasurements(seeds[0], seeds, "1L-gelu", 64, {}, {}, {}, rows)


def _logit_claim(medians, n_interp=(10, 10, 10)):
    return S.decide_logit_agreement(_one_layer(medians, n_interp))


def test_logit_agreement_claim_decides_on_the_seed_interval():
    claim = _logit_claim([(0.80, 0.60), (0.82, 0.61), (0.85, 0.60)])
    assert claim.id == "logit_agreement" and claim.verdict == C.REPRODUCED
    assert claim.values["interval"]["lo"] > 0 and claim.values["interval"]["n_seeds"] == 3
    assert "control" in claim.sentence and "64 live neurons" in claim.sentence
    assert "t on 3 seed values" in claim.sentence
    assert [claim.values["seeds"][s]["difference"] for s in SEEDS] == pytest.approx(
        [0.20, 0.21, 0.25])
    # Positive mean, interval across 0: direction only.
    assert _logit_claim([(0.80, 0.60), (0.55, 0.60), (0.70, 0.60)]).verdict == C.PARTLY
    # Mean at or below the control but the interval reaching above 0: inconclusive.
    worse = _logit_claim([(0.90, 0.92), (0.88, 0.90), (0.95, 0.93)])
    assert worse.verdict == C.INCONCLUSIVE and worse.values["interval"]["estimate"] < 0
    assert worse.values["interval"]["hi"] > 0
    # Interpretable below the control on the whole interval: not reproduced, whatever the
    # agreement is.
    below = _logit_claim([(0.60, 0.80), (0.61, 0.82), (0.60, 0.85)])
    assert below.verdict == C.NOT_REPRODUCED and below.values["interval"]["hi"] < 0


def test_logit_agreement_claim_with_missing_seeds():
    one = _logit_claim([(0.90, 0.60), (0.0, 0.6), (0.0, 0.6)], n_interp=(10, 0, 0))
    assert one.verdict == C.PARTLY  # one usable seed: no interval, at most direction only
    assert "1L-solu_ln-s1, 1L-solu_ln-s2 left out" in one.sentence
    assert "from one seed" in one.sentence
    assert one.values["seeds"]["1L-solu_ln-s1"]["difference"] is None
    none = _logit_claim([(0.0, 0.6), (0.0, 0.6)], n_interp=(0, 0))
    assert none.verdict == C.NOT_TESTABLE and "Not testable" in none.sentence
    # One seed against the claim: no interval to rule the claim out, so inconclusive.
    assert _logit_claim([(0.40, 0.60)]).verdict == C.INCONCLUSIVE


def test_chapter5_is_decided_by_the_registry():
    out = registry.decide("05-one-layer-neurons", _one_layer([(0.8, 0.6)] * 3))
    assert [c.id for c in out] == ["logit_agreement"]


# --- §6.3.2-6.3.4: the layer claims --------------------------------------------------------------
def _role_row(model, layer, depth, n_neurons=100, **counts):
    counts = {role: counts.get(role, 0) for role in ROLE_ORDER}
    n = sum(counts.values())
    return {"model": model, "act": model.split("-")[1], "depth": depth,
            "position": S.layer_position(layer, depth), "layer": layer, "n_neurons": n_neurons,
            "n_interpretable": n, "retokenization_unconfirmed": 0, **counts,
            **{f"{r}_fraction": (v / n if n else math.nan) for r, v in counts.items()}}


def _layers(solu_layers, gelu_layers, depth=4):
    return ([_role_row("4L-solu_ln", i, depth, **c) for i, c in enumerate(solu_layers)]
            + [_role_row("4L-gelu", i, depth, **c) for i, c in enumerate(gelu_layers)])


def _measure(solu_layers, gelu_layers, depth=4):
    return S.measure_layers(_layers(solu_layers, gelu_layers, depth))


def _claims(m):
    return {c.id: c for c in registry.decide("06-neurons-across-layers", m)}


def test_early_detokenization_compares_with_the_baseline_of_the_same_depth():
    gelu = [dict(token=5, detokenization=2), {}, {}, {}]
    m = _measure([dict(token=5, detokenization=30), {}, {}, {}], gelu)
    assert (m.solu, m.gelu) == ("4L-solu_ln", "4L-gelu")
    early = m.early_detokenization
    assert (early.count, early.n, early.other_count, early.other_n) == (30, 100, 2, 100)
    assert early.of == "neurons" and early.versus == "4L-gelu's first layer"
    assert (early.diff, early.lo, early.hi) == pytest.approx(difference_interval(30, 100, 2, 100))
    claim = _claims(m)["early_detokenization"]
    # The interval is above 0, but one seed caps the verdict at direction only.
    assert early.lo > 0 and claim.verdict == C.PARTLY
    assert "4L-gelu" in claim.sentence and "one seed" in claim.sentence
    # The share is of all first-layer neurons: SoLU-LN with more interpretable neurons but
    # the same de-tokenization count does not count as more de-tokenization (no difference,
    # an interval across 0: inconclusive).
    same = _measure([dict(token=60, detokenization=2), {}, {}, {}], gelu)
    assert same.early_detokenization.diff == 0
    assert _claims(same)["early_detokenization"].verdict == C.INCONCLUSIVE
    assert _claims(_measure([dict(detokenization=4), {}, {}, {}], gelu))[
        "early_detokenization"].verdict == C.PARTLY
    fewer = _measure([dict(detokenization=1), {}, {}, {}], gelu)
    assert fewer.early_detokenization.diff < 0 < fewer.early_detokenization.hi
    assert _claims(fewer)["early_detokenization"].verdict == C.INCONCLUSIVE
    # The whole interval below 0: not reproduced.
    far_fewer = _measure([dict(detokenization=2), {}, {}, {}],
                         [dict(detokenization=30), {}, {}, {}])
    assert far_fewer.early_detokenization.hi < 0
    assert _claims(far_fewer)["early_detokenization"].verdict == C.NOT_REPRODUCED
    nothing = _measure([{}, dict(token=3), {}, {}], [{}, {}, {}, {}])
    claim = _claims(nothing)["early_detokenization"]
    assert claim.verdict == C.NOT_TESTABLE and "no first-layer neuron" in claim.sentence


def test_late_and_middle_claims_compare_layers_within_the_solu_model():
    gelu = [{}, {}, {}, {}]
    m = _measure([dict(token=20), dict(token=10, token_class=30), dict(token_class=30),
                  dict(retokenization=20, token=5)], gelu)
    got = _claims(m)
    assert m.late_retokenization.count == 20 and m.late_retokenization.n == 25
    # Both intervals above 0, but one seed caps the verdicts at direction only.
    assert m.late_retokenization.other_n == 90 and m.late_retokenization.lo > 0
    assert got["late_retokenization"].verdict == C.PARTLY
    mid = m.middle_token_class
    assert (mid.count, mid.n, mid.other_count, mid.other_n) == (60, 70, 0, 45)
    assert mid.lo > 0 and got["middle_abstract"].verdict == C.PARTLY
    assert "L1, L2" in got["middle_abstract"].sentence
    assert "not the paper's abstract features" in got["middle_abstract"].sentence
    # Only the point estimate on the paper's side: direction only.
    m = _measure([dict(token=3), dict(token=2, token_class=1), dict(token=3),
                  dict(retokenization=1, token=2)], gelu)
    got = _claims(m)
    assert got["late_retokenization"].verdict == C.PARTLY
    assert got["middle_abstract"].verdict == C.PARTLY
    # The estimate on the other side: inconclusive while the interval still reaches above 0
    # (late: 0/10 vs 5/30), not reproduced once the whole interval is at or below 0 (middle:
    # 0/20 vs 5/20).
    m = _measure([dict(token_class=5, retokenization=5), dict(token=10), dict(token=10),
                  dict(token=10)], gelu)
    got = _claims(m)
    assert m.late_retokenization.diff < 0 < m.late_retokenization.hi
    assert got["late_retokenization"].verdict == C.INCONCLUSIVE
    assert m.middle_token_class.hi <= 0
    assert got["middle_abstract"].verdict == C.NOT_REPRODUCED
    # And the other way round: no re-tokenization in the last layer against 30/30 before it
    # (not reproduced); no token-class neuron anywhere (no difference: inconclusive).
    m = _measure([dict(retokenization=10), dict(retokenization=10), dict(retokenization=10),
                  dict(token=10)], gelu)
    got = _claims(m)
    assert m.late_retokenization.hi <= 0
    assert got["late_retokenization"].verdict == C.NOT_REPRODUCED
    assert m.middle_token_class.diff == 0 < m.middle_token_class.hi
    assert got["middle_abstract"].verdict == C.INCONCLUSIVE
    # A group without interpretable neurons: not testable.
    got = _claims(_measure([dict(token=3), {}, {}, {}], gelu))
    assert got["late_retokenization"].verdict == C.NOT_TESTABLE
    assert got["middle_abstract"].verdict == C.NOT_TESTABLE


def test_layer_claims_without_a_deep_enough_model():
    rows = [_role_row("2L-solu_ln", 0, 2, token=2, retokenization=1),
            _role_row("2L-solu_ln", 1, 2, retokenization=2, token=1),
            _role_row("2L-gelu", 0, 2), _role_row("2L-gelu", 1, 2)]
    two = S.measure_layers(rows, pair=("2L-solu_ln", "2L-gelu"))
    assert S.measure_layers(rows).solu == "2L-solu_ln"  # the default pair is the same
    got = _claims(two)
    assert two.middle_token_class is None and got["middle_abstract"].verdict == C.NOT_TESTABLE
    assert "2 layers" in got["middle_abstract"].sentence
    assert got["late_retokenization"].verdict == C.PARTLY  # 2/3 vs 1/3, interval wide
    none = S.LayersMeasurements(None, None)
    got = registry.decide("06-neurons-across-layers", none)
    assert [c.id for c in got] == [c.id for c in registry.CLAIMS
                                   if c.chapter == "06-neurons-across-layers"]
    assert {c.verdict for c in got} == {C.NOT_TESTABLE}
    assert S.measure_layers([_role_row("1L-solu_ln", 0, 1)]).solu is None
    with pytest.raises(ValueError, match="4L-gelu"):
        S.measure_layers(rows, pair=("2L-solu_ln", "4L-gelu"))


# --- the tiny zoo --------------------------------------------------------------------------------


def _scored(ctx, name, text=True):
    run = ctx.run(name)
    return S.ScoredModel(run.load_model(), ctx.scores(name), run.corpus() if text else None,
                         ctx.harvest(name) if text else None)


@pytest.mark.slow
def test_next_token_agreement_matches_one_neuron_at_a_time(ctx, monkeypatch):
    from solu_repro.interp.view import direct_logit_effect

    m = _scored(ctx, "1L-gelu_ln")
    records = [r for r in m.scores.records if not r.dead][:12]
    monkeypatch.setattr(S, "AGREEMENT_CHUNK", 5)  # several chunks of one layer
    fast = S.next_token_agreement(m.model, m.corpus, m.harvest, records + records[:3])
    assert set(fast) == {(r.layer, r.neuron) for r in records}
    split = m.corpus.split(m.harvest.meta.get("split", "val"))
    for r in records:
        effect = direct_logit_effect(m.model, r.layer, r.neuron)
        below = {t: float((effect < effect[t]).sum() + ((effect == effect[t]).sum() - 1) / 2)
                 for t in range(len(effect))}
        nxt = [int(split.window(e.position(m.harvest.n_ctx) + 1, 1)[0])
               for e in m.harvest.top_examples(r.layer, r.neuron, "post")]
        want = sum(below[t] for t in nxt) / len(nxt) / (len(effect) - 1)
        assert fast[(r.layer, r.neuron)] == pytest.approx(want)


@pytest.mark.slow
def test_one_layer_measurements_cover_every_seed(ctx):
    seeds = ctx.seeds("1L-solu_ln")
    models = {name: _scored(ctx, name) for name in seeds + ["1L-gelu"]}
    m = S.measure_one_layer(models, seeds, "1L-gelu", n_random=16, seed=ctx.seed)
    assert m.seeds == seeds and len(m.seeds) >= 2 and m.model == "1L-solu_ln"
    groups = {(a.model, a.group): a for a in m.agreement}
    for name in m.seeds + ["1L-gelu"]:
        scores = models[name].scores
        assert m.interpretable[name] == sum(r.interpretable for r in scores.records)
        assert groups[(name, "interpretable")].n <= m.interpretable[name]
        assert groups[(name, "random")].n == 16
        assert 0 <= groups[(name, "random")].median <= 1
    (claim,) = registry.decide("05-one-layer-neurons", m)
    assert claim.verdict in C.VERDICTS and set(claim.values["seeds"]) == set(m.seeds)


@pytest.mark.slow
def test_layers_measurements_match_layer_roles(ctx):
    models = {name: _scored(ctx, name, text=False) for name in ("2L-solu_ln", "2L-gelu")}
    rows = S.layer_roles_rows(models)
    m = S.measure_layers(rows)
    assert (m.solu, m.gelu) == ("2L-solu_ln", "2L-gelu")
    solu = layer_roles(models["2L-solu_ln"].scores, models["2L-solu_ln"].model)
    gelu = layer_roles(models["2L-gelu"].scores, models["2L-gelu"].model)
    early = m.early_detokenization
    assert (early.count, early.n) == (solu[0]["detokenization"], solu[0]["n_neurons"])
    assert (early.other_count, early.other_n) == (gelu[0]["detokenization"],
                                                  gelu[0]["n_neurons"])
    assert early.n == ctx.run("2L-solu_ln").config.model.d_mlp
    late = m.late_retokenization
    assert late.count == solu[-1]["retokenization"]
    assert late.other_n == solu[0]["n_interpretable"]
    assert m.middle_token_class is None  # two layers have no middle
    assert [c.id for c in registry.decide("06-neurons-across-layers", m)] == [
        "early_detokenization", "late_retokenization", "middle_abstract"]
    assert m.to_dict()["solu"] == "2L-solu_ln"
