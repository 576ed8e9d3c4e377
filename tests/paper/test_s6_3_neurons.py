"""Paper §6.3 measurements and verdicts (``solu_repro.paper.s6_3_neurons``): the logit
cross-check of one-layer neurons (§6.3.1, chapter 5) and the roles of neurons by layer
(§6.3.2-6.3.4, chapter 6), on synthetic scores and on the tiny zoo."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from solu_repro.interp.analysis import ROLE_ORDER, layer_roles
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


def test_role_shift_is_a_census_without_an_interval():
    rows = [{"position": "first", "n_interpretable": 10, "detokenization": 6},
            {"position": "middle", "n_interpretable": 10, "detokenization": 2},
            {"position": "last", "n_interpretable": 20, "detokenization": 2}]
    shift = S.role_shift(rows, "detokenization", "first")
    assert (shift.count, shift.n, shift.other_count, shift.other_n) == (6, 10, 4, 30)
    assert shift.diff == pytest.approx(6 / 10 - 4 / 30) and shift.direction_agrees
    assert not hasattr(shift, "lo") and "lo" not in shift.to_dict()
    assert shift.versus == "the later layers" and shift.of == "interpretable neurons"
    empty = S.role_shift([{"position": "first", "n_interpretable": 0, "detokenization": 0}],
                         "detokenization", "first")
    assert empty.direction_agrees is None and not empty.measurable and math.isnan(empty.diff)
    assert S.shift_test(empty, "null").verdict == C.NOT_TESTABLE


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
    assert (a.n, a.median, a.mean) == (4, pytest.approx(0.6), pytest.approx(0.575))
    assert a.share_above_075 == pytest.approx(0.5)
    empty = S.agreement_summary("m", "interpretable", [math.nan])
    assert empty.n == 0 and math.isnan(empty.median) and math.isnan(empty.mean)


def test_mismatched_partners_are_other_neurons_drawn_by_the_seed():
    keys = [(0, i) for i in range(10)]
    got = S.mismatched_partners(keys, 4, seed=3)
    assert got == S.mismatched_partners(keys, 4, seed=3)
    assert got != S.mismatched_partners(keys, 4, seed=4)
    for k, partners in got.items():
        assert len(partners) == len(set(partners)) == 4 and k not in partners
        assert set(partners) <= set(keys)
    # Every other neuron turns up as a partner somewhere (no neuron is left out).
    assert {p for ps in got.values() for p in ps} == set(keys)
    assert S.mismatched_partners(keys[:3], 16) == {
        (0, 0): [(0, 1), (0, 2)], (0, 1): [(0, 0), (0, 2)], (0, 2): [(0, 0), (0, 1)]}
    assert S.mismatched_partners(keys[:1], 4) == {(0, 0): []}


def _tiny_model(d_mlp=6, d_vocab=40):
    from solu_repro.model import ModelConfig, Transformer

    torch.manual_seed(0)
    return Transformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=d_mlp,
                                   d_vocab=d_vocab, n_ctx=8, act_fn="solu_ln"))


def test_pair_agreement_reads_the_first_neurons_effect_and_the_seconds_tokens():
    model = _tiny_model()
    following = {(0, 0): [3, 5, 7], (0, 1): [1], (0, 2): [2, 2, 9, 11]}
    pairs = [((0, 0), (0, 0)), ((0, 0), (0, 2)), ((0, 2), (0, 1)), ((0, 1), (0, 0))]
    got = S.pair_agreement(model, following, pairs)
    for (k, j), v in zip(pairs, got):
        effect = S.direct_logit_effects(model, 0, [k[1]])
        want = S.token_percentiles(effect, torch.tensor([following[j]])).mean().item()
        assert v == pytest.approx(want)
    mismatched = S.mismatched_agreement(model, following, list(following), n_partners=2)
    assert mismatched[(0, 0)] == pytest.approx(
        (got[1] + S.pair_agreement(model, following, [((0, 0), (0, 1))])[0]) / 2)
    assert set(mismatched) == set(following)


def _agreement(model, matched, mismatched, random_mean, n_interp=10, n_random=64):
    rows = [S.Agreement(model, "interpretable", n_interp, matched, 0, 1, 0, matched),
            S.Agreement(model, "mismatched", n_interp, mismatched, 0, 1, 0, mismatched),
            S.Agreement(model, "random", n_random, random_mean, 0, 1, 0, random_mean)]
    if n_interp == 0:
        rows[0] = S.agreement_summary(model, "interpretable", [])
        rows[1] = S.agreement_summary(model, "mismatched", [])
    return rows


SEEDS = ["1L-solu_ln", "1L-solu_ln-s1", "1L-solu_ln-s2"]


def _one_layer(diffs, n_interp=None, random_gap=0.02):
    """Seeds whose matched minus mismatched agreement is ``diffs`` (0.5 + d against 0.5)."""
    n_interp = n_interp or [10] * len(diffs)
    seeds = [SEEDS[i] if i < len(SEEDS) else f"1L-solu_ln-s{i}" for i in range(len(diffs))]
    rows = [row for s, d, n in zip(seeds, diffs, n_interp)
            for row in _agreement(s, 0.5 + d, 0.5, 0.5 + d - random_gap, n)]
    return S.OneLayerMeasurements(seeds[0], seeds, "1L-gelu", 64, {}, {}, {}, rows)


def _logit_claim(diffs, **kw):
    return S.decide_logit_agreement(_one_layer(diffs, **kw))


def test_logit_agreement_is_matched_minus_mismatched_per_seed():
    claim = _logit_claim([0.30, 0.32, 0.35])
    assert claim.id == "logit_agreement" and claim.verdict == C.REPRODUCED
    t = claim.test
    assert t.n == 3 and t.lo > 0 and t.effect == pytest.approx(0.3233, abs=1e-3)
    assert t.interest == S.AGREEMENT_INTEREST and t.scale == 100 and "mismatched" in t.null
    assert [claim.values["seeds"][s]["difference"] for s in SEEDS] == pytest.approx(
        [0.30, 0.32, 0.35])
    assert "mismatched" in claim.sentence and "16 mismatched partners" in claim.sentence
    # The random live neurons are shown beside, not decided on.
    assert claim.values["versus_random"]["effect"] == pytest.approx(0.02)
    assert "not part of the verdict" in claim.sentence and len(claim.tests) == 1
    # The random comparison failing does not change the verdict.
    assert _logit_claim([0.30, 0.32, 0.35], random_gap=0.5).verdict == C.REPRODUCED


def test_logit_agreement_branches():
    # Whole interval below 0: contradicted.
    assert _logit_claim([-0.30, -0.32, -0.35]).verdict == C.CONTRADICTED
    # Interval across 0 while the design detects 5 points: inconclusive, whichever the sign.
    for diffs in ([0.01, -0.005, 0.0, 0.012, -0.002, 0.004], [-0.01, 0.005, 0.0, -0.012]):
        claim = _logit_claim(diffs)
        assert claim.test.lo < 0 < claim.test.hi and claim.test.powered
        assert claim.verdict == C.INCONCLUSIVE
    # Interval across 0 and the spread too wide to detect 5 points: not testable at this
    # scale (power first), with the detectable effect shown.
    wide = _logit_claim([0.40, -0.30, 0.05])
    assert wide.verdict == C.NOT_TESTABLE and not wide.test.powered
    assert wide.test.detectable > S.AGREEMENT_INTEREST and "smallest detectable" in wide.sentence


def test_logit_agreement_with_missing_or_degenerate_seeds():
    one = _logit_claim([0.30, 0.0, 0.0], n_interp=[10, 0, 0])
    assert one.verdict == C.NOT_TESTABLE  # one usable seed: no variance estimate
    assert "1L-solu_ln-s1, 1L-solu_ln-s2 left out" in one.sentence
    assert one.values["seeds"]["1L-solu_ln-s1"]["difference"] is None
    none = _logit_claim([0.3, 0.3], n_interp=[0, 0])
    assert none.verdict == C.NOT_TESTABLE and "Not testable" in none.sentence
    assert none.tests and none.test.why
    # Seeds that do not differ at all give no variance estimate: never reproduced.
    same = _logit_claim([0.25, 0.25, 0.25])
    assert same.verdict == C.NOT_TESTABLE and "do not differ" in same.test.why


def test_logit_agreement_under_pure_noise_is_rarely_reproduced():
    rng = np.random.default_rng(0)
    verdicts = [_logit_claim(list(rng.normal(0, 0.03, 3))).verdict for _ in range(400)]
    assert verdicts.count(C.REPRODUCED) / len(verdicts) <= 0.05
    assert verdicts.count(C.CONTRADICTED) / len(verdicts) <= 0.05


def test_chapter5_is_decided_by_the_registry():
    out = registry.decide("05-one-layer-neurons", _one_layer([0.3, 0.31, 0.29]))
    assert [c.id for c in out] == ["logit_agreement"] and out[0].tests


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


LEARNED = {"1L-solu_ln": 4.5, "2L-solu_ln": 4.3, "4L-solu_ln": 4.2,
           "1L-gelu": 4.6, "2L-gelu": 4.35, "4L-gelu": 4.25}
NOT_LEARNED = {**LEARNED, "4L-gelu": 4.40}  # 4L GELU worse than 2L GELU


def _one_layer_rows(solu_detok, gelu_detok, n_neurons=1000):
    """One-layer SoLU-LN and GELU seeds with these de-tokenization counts."""
    rows = []
    for s, (a, b) in enumerate(zip(solu_detok, gelu_detok)):
        suffix = f"-s{s}" if s else ""
        rows.append(_role_row(f"1L-solu_ln{suffix}", 0, 1, n_neurons, detokenization=a))
        rows.append(_role_row(f"1L-gelu{suffix}", 0, 1, n_neurons, detokenization=b))
    return rows


SPREAD = _one_layer_rows([30, 34, 32], [20, 20, 20])  # +1.0, +1.4, +1.2 points: SD 0.2


def _measure(solu_layers, gelu_layers, depth=4, losses=LEARNED, one_layer=SPREAD):
    return S.measure_layers(_layers(solu_layers, gelu_layers, depth), losses=losses,
                            one_layer=one_layer)


def _claims(m):
    return {c.id: c for c in registry.decide("06-neurons-across-layers", m)}


def test_depth_check_compares_with_the_next_shallower_model():
    ok = S.depth_check("4L-gelu", LEARNED)
    assert (ok.shallower, ok.learned) == ("2L-gelu", True)
    bad = S.depth_check("4L-gelu", NOT_LEARNED)
    assert bad.learned is False and "4.400" in bad.text and "2L-gelu's 4.350" in bad.text
    assert S.depth_check("2L-solu_ln", LEARNED).shallower == "1L-solu_ln"
    assert S.depth_check("4L-gelu", {"4L-gelu": 4.0}).learned is None
    assert S.depth_failures([ok]) == ""
    assert S.depth_failures([ok, bad]).startswith("depth was not learned: 4L-gelu")


def test_one_layer_detokenization_pairs_seeds():
    got = S.one_layer_detokenization(SPREAD + [_role_row("1L-solu_ln-s5", 0, 1)])
    assert got == pytest.approx({0: 0.01, 1: 0.014, 2: 0.012})  # s5 has no GELU partner
    sd, df, source = S.borrowed_sd(got, "what")
    assert (sd, df) == (pytest.approx(0.002), 2) and "3 seed pairs" in source
    assert S.borrowed_sd({0: 0.01}, "what") is None
    assert S.borrowed_sd({0: 0.01, 1: 0.01}, "what") is None  # no spread


def test_early_detokenization_borrows_the_one_layer_sd():
    gelu = [dict(token=5, detokenization=2), {}, {}, {}]
    m = _measure([dict(token=5, detokenization=30), {}, {}, {}], gelu)
    assert (m.solu, m.gelu) == ("4L-solu_ln", "4L-gelu")
    early = m.early_detokenization
    assert (early.count, early.n, early.other_count, early.other_n) == (30, 100, 2, 100)
    assert early.of == "neurons" and early.versus == "4L-gelu's first layer"
    claim = _claims(m)["early_detokenization"]
    t = claim.test
    assert t.n == 1 and t.effect == pytest.approx(0.28) and t.borrowed
    assert t.sd == pytest.approx(0.002) and t.df == 2
    assert claim.verdict == C.REPRODUCED
    assert "borrowed" in claim.sentence and "census" in claim.sentence
    assert "30/100" in claim.sentence and "4L-gelu" in claim.sentence
    # The other way round: contradicted.
    far_fewer = _measure([dict(detokenization=2), {}, {}, {}],
                         [dict(detokenization=30), {}, {}, {}])
    assert _claims(far_fewer)["early_detokenization"].verdict == C.CONTRADICTED
    # Equal counts with a powered design: inconclusive. The share is of all first-layer
    # neurons: more interpretable neurons with the same de-tokenization count is no
    # difference.
    same = _measure([dict(token=60, detokenization=2), {}, {}, {}], gelu)
    assert same.early_detokenization.diff == 0
    assert _claims(same)["early_detokenization"].verdict == C.INCONCLUSIVE
    # A borrowed SD too wide to detect 5 points: not testable at this scale.
    noisy = _one_layer_rows([30, 200, 10], [20, 20, 20])
    claim = _claims(_measure([dict(detokenization=4), {}, {}, {}], gelu,
                             one_layer=noisy))["early_detokenization"]
    assert claim.verdict == C.NOT_TESTABLE and not claim.test.powered


def test_early_detokenization_not_testable_without_sd_or_learned_depth():
    gelu = [dict(token=5, detokenization=2), {}, {}, {}]
    solu = [dict(token=5, detokenization=30), {}, {}, {}]
    # Depth not learned: not testable whatever the numbers, the losses in the text.
    claim = _claims(_measure(solu, gelu, losses=NOT_LEARNED))["early_detokenization"]
    assert claim.verdict == C.NOT_TESTABLE and "depth was not learned" in claim.test.why
    assert "4.400" in claim.sentence and "30/100" in claim.sentence
    # No one-layer seeds to borrow from: not testable, the counts still shown.
    claim = _claims(_measure(solu, gelu, one_layer=()))["early_detokenization"]
    assert claim.verdict == C.NOT_TESTABLE and "no between-seed SD" in claim.test.why
    assert "30/100" in claim.sentence and math.isinf(claim.test.hi)
    # No losses given: said so, not a gate.
    claim = _claims(_measure(solu, gelu, losses=None))["early_detokenization"]
    assert claim.verdict == C.REPRODUCED and "not checked" in claim.sentence
    nothing = _measure([{}, dict(token=3), {}, {}], [{}, {}, {}, {}])
    claim = _claims(nothing)["early_detokenization"]
    assert claim.verdict == C.NOT_TESTABLE and "no first-layer neuron" in claim.sentence
    assert claim.tests


def test_layer_claims_under_pure_noise_are_rarely_reproduced():
    # Valid only where the borrowed SD is the deep pair's: the same neuron count and rate.
    rng = np.random.default_rng(1)
    verdicts = []
    for _ in range(200):
        solu1, gelu1 = rng.binomial(1000, 0.02, 3), rng.binomial(1000, 0.02, 3)
        a, b = rng.binomial(1000, 0.02, 2)  # the deep pair: the same process, no effect
        rows = [_role_row(f"4L-{act}", i, 4, 1000, **(dict(detokenization=int(c), token=5)
                                                     if i == 0 else {}))
                for act, c in (("solu_ln", a), ("gelu", b)) for i in range(4)]
        m = S.measure_layers(rows, losses=LEARNED,
                             one_layer=_one_layer_rows(solu1.tolist(), gelu1.tolist()))
        verdicts.append(_claims(m)["early_detokenization"].verdict)
    assert verdicts.count(C.REPRODUCED) / len(verdicts) <= 0.05


def test_late_and_middle_claims_are_a_census_not_testable():
    gelu = [{}, {}, {}, {}]
    m = _measure([dict(token=20), dict(token=10, token_class=30), dict(token_class=30),
                  dict(retokenization=20, token=5)], gelu)
    got = _claims(m)
    late, mid = m.late_retokenization, m.middle_token_class
    assert (late.count, late.n, late.other_n) == (20, 25, 90)
    assert (mid.count, mid.n, mid.other_count, mid.other_n) == (60, 70, 0, 45)
    for cid in ("late_retokenization", "middle_abstract"):
        claim = got[cid]
        assert claim.verdict == C.NOT_TESTABLE and "no comparable between-seed SD" in \
            claim.test.why
        assert claim.test.effect > 0 and not claim.test.borrowed
        assert "census" in claim.sentence and "depth was not learned" not in claim.sentence
    assert "20/25" in got["late_retokenization"].sentence
    assert "L1, L2" in got["middle_abstract"].sentence
    assert "not the paper's abstract features" in got["middle_abstract"].sentence
    # A model whose loss says depth was not learned: said in the row, with the numbers.
    bad = _claims(_measure([dict(token=20), dict(token_class=3), {}, dict(retokenization=2)],
                           gelu, losses={**LEARNED, "4L-solu_ln": 4.31}))
    for cid in ("late_retokenization", "middle_abstract"):
        assert "depth was not learned: 4L-solu_ln's validation loss 4.310" in bad[cid].sentence
        assert "depth was not learned" in bad[cid].test.why
    # A group without interpretable neurons: not testable.
    got = _claims(_measure([dict(token=3), {}, {}, {}], gelu))
    assert got["late_retokenization"].verdict == C.NOT_TESTABLE
    assert got["middle_abstract"].verdict == C.NOT_TESTABLE
    assert "a share needs some in both" in got["middle_abstract"].sentence


def test_layer_claims_without_a_deep_enough_model():
    rows = [_role_row("2L-solu_ln", 0, 2, token=2, retokenization=1),
            _role_row("2L-solu_ln", 1, 2, retokenization=2, token=1),
            _role_row("2L-gelu", 0, 2), _role_row("2L-gelu", 1, 2)]
    two = S.measure_layers(rows, pair=("2L-solu_ln", "2L-gelu"))
    assert S.measure_layers(rows).solu == "2L-solu_ln"  # the default pair is the same
    got = _claims(two)
    assert two.middle_token_class is None and got["middle_abstract"].verdict == C.NOT_TESTABLE
    assert "2 layers" in got["middle_abstract"].sentence
    assert got["late_retokenization"].verdict == C.NOT_TESTABLE
    none = S.LayersMeasurements(None, None)
    got = registry.decide("06-neurons-across-layers", none)
    assert [c.id for c in got] == [c.id for c in registry.CLAIMS
                                   if c.chapter == "06-neurons-across-layers"]
    assert {c.verdict for c in got} == {C.NOT_TESTABLE} and all(c.tests for c in got)
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
        # The null is over the same neurons as the matched agreement.
        assert groups[(name, "mismatched")].n in (groups[(name, "interpretable")].n, 0)
    (claim,) = registry.decide("05-one-layer-neurons", m)
    assert claim.verdict in C.VERDICTS and set(claim.values["seeds"]) == set(m.seeds)
    assert claim.tests and claim.test.null.startswith(S.MISMATCHED_NULL)


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
    losses = {n: ctx.run(n).result["val_loss"] for n in ("1L-solu_ln", "2L-solu_ln",
                                                          "1L-gelu", "2L-gelu")}
    one = S.layer_roles_rows({n: _scored(ctx, n, text=False)
                              for n in ctx.seeds("1L-solu_ln") + ctx.seeds("1L-gelu")})
    full = S.measure_layers(rows, losses=losses, one_layer=one)
    assert [c.shallower for c in full.depth] == ["1L-solu_ln", "1L-gelu"]
    assert set(full.detokenization_seeds) <= {0, 1, 2}
    for claim in registry.decide("06-neurons-across-layers", full):
        assert claim.tests and claim.verdict in C.VERDICTS
