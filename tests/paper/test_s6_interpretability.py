"""Paper §6.1-6.2 (with §3.2, §4.3, §4.4), measured: per-model fractions, comparisons with
the baseline, null controls, the seed-level measurements and every claim's verdict."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from solu_repro.paper import claim, registry
from solu_repro.paper import s6_interpretability as s6
from fakes import fake, fake_scores, nulls

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "04-interpretability-quantitative"






@pytest.fixture
def results():
    return {r.name: r for r in [fake("1L-gelu", 35, 100, 10), fake("1L-solu_ln", 60, 100, 30),
                                fake("2L-gelu", 30, 200), fake("2L-solu_ln", 40, 200),
                                fake("1L-gelu_ln", 50, 100)]}


# --- the module ----------------------------------------------------------------------------------




# --- one model, and a model against its baseline ----------------------------------------------
def test_summarize_counts_both_views_and_distinct_explanations():
    r = s6.summarize("2L-solu_ln", fake_scores(6, 20, 2, layers=2), "a label")
    assert (r.name, r.act, r.depth) == ("a label", "solu_ln", 2)
    assert (r.top.successes, r.top.n, r.spectrum.successes) == (12, 40, 4)
    assert r.top.fraction == pytest.approx(0.3) and r.distinct == 6
    assert [row["interpretable"] for row in r.by_layer] == [6, 6]


def test_comparisons_use_the_same_depth_baseline_as_a_census(results):
    c = s6.compare(results, "1L-solu_ln")
    assert c.baseline == "1L-gelu"
    # every neuron is scored: a census of two models, no binomial interval
    assert c.diff == pytest.approx(0.25) and not hasattr(c, "lo")
    assert c.ratio == pytest.approx(60 / 35)
    names = [c.name for c in s6.comparisons(results)]
    assert names == ["1L-solu_ln", "2L-solu_ln", "1L-gelu_ln"]


def test_ratio_against_a_zero_baseline_is_infinite():
    rs = {r.name: r for r in [fake("1L-gelu", 0, 50), fake("1L-solu_ln", 5, 50)]}
    assert math.isinf(s6.compare(rs, "1L-solu_ln").ratio)
    rs["1L-solu_ln"] = fake("1L-solu_ln", 0, 50)
    assert math.isnan(s6.compare(rs, "1L-solu_ln").ratio)


# --- null controls -------------------------------------------------------------------------------


def test_null_gain_and_difference_net_of_the_rotated_nulls():
    ns = nulls()
    assert ns["1L-solu_ln"].gain("rotated") == pytest.approx(0.10)
    assert ns["1L-solu_ln"].against("rotated") == "beats"
    rel = s6.relative_difference(ns, "1L-solu_ln", "1L-gelu", "top")
    assert (rel.basis_diff, rel.rotated_diff) == pytest.approx((0.25, 0.17))
    # paired within each model: (basis - its rotation) - (basis - its rotation)
    assert rel.diff_in_diff == pytest.approx((0.60 - 0.50) - (0.35 - 0.33))
    spec = s6.relative_difference(ns, "1L-solu_ln", "1L-gelu", "spectrum")
    assert spec.diff_in_diff == pytest.approx((0.30 - 0.05) - (0.10 - 0.04))


def test_null_controls_from_scores_label_each_null_and_keep_only_those_asked():
    scores = {"1L-gelu": fake_scores(35, 100)}
    controls = {"1L-gelu": {"rotated": fake_scores(33, 100), "random_init": fake_scores(10, 100)}}
    got = s6.null_controls(scores, controls)["1L-gelu"]
    assert list(got.nulls) == ["rotated", "random_init"]
    assert got.nulls["rotated"].name == "1L-gelu (rotated basis)"
    assert got.gain("rotated") == pytest.approx(0.02)
    only = s6.null_controls(scores, controls, ["1L-gelu"], ("rotated",))["1L-gelu"]
    assert list(only.nulls) == ["rotated"]


# --- measure: scores in, measurements out --------------------------------------------------------
def zoo_scores():
    """A small zoo's inputs: 1-layer GELU / SoLU-LN with two seeds, one LN-only ablation, one
    2-layer pair; every interpretable neuron also interpretable over the full spectrum in
    half the cases."""
    hits = {"1L-gelu": 30, "1L-solu_ln": 50, "2L-gelu": 20, "2L-solu_ln": 40, "1L-gelu_ln": 40,
            "1L-gelu-s1": 34, "1L-solu_ln-s1": 58}
    scores = {n: fake_scores(h, 100, h // 2, layers=2 if n.startswith("2L") else 1)
              for n, h in hits.items()}
    strict = {n: fake_scores(hits[n] // 2, 100) for n in ("1L-solu_ln", "1L-solu_ln-s1",
                                                         "1L-gelu", "1L-gelu-s1")}
    controls = {"1L-gelu": {"rotated": fake_scores(25, 100, 2),
                            "random_init": fake_scores(10, 100),
                            "solu_readout": fake_scores(35, 100, 5)},
                "1L-solu_ln": {"rotated": fake_scores(30, 100, 3),
                               "random_init": fake_scores(10, 100)},
                "1L-gelu_ln": {"rotated": fake_scores(30, 100, 3),
                               "random_init": fake_scores(10, 100)},
                "1L-gelu-s1": {"rotated": fake_scores(30, 100, 4)},
                "1L-solu_ln-s1": {"rotated": fake_scores(28, 100, 1)}}
    return dict(scores=scores, strict_scores=strict, control_scores=controls)


def test_measure_gathers_seeds_nulls_and_the_stricter_judge():
    m = s6.measure(**zoo_scores())
    assert list(m.results) == ["1L-gelu", "1L-solu_ln", "2L-gelu", "2L-solu_ln", "1L-gelu_ln"]
    assert m.one_layer == 1 and sorted(m.solu_vs_gelu) == [1, 2]
    assert m.solu_vs_gelu[1].diff == pytest.approx(0.20)
    assert m.ablation.name == "1L-gelu_ln" and m.ablation_vs_solu.diff == pytest.approx(-0.10)
    assert m.seed_fractions["top"]["1L-solu_ln"] == {0: 0.50, 1: 0.58}
    assert m.seed_fractions["spectrum"]["1L-gelu"] == {0: 0.15, 1: 0.17}
    assert m.strict_fractions == {"1L-solu_ln": {0: 0.25, 1: 0.29},
                                  "1L-gelu": {0: 0.15, 1: 0.17}}
    assert set(m.nulls) == {"1L-gelu", "1L-solu_ln", "1L-gelu_ln"}
    assert list(m.nulls["1L-gelu"].nulls) == ["rotated", "random_init", "solu_readout"]
    assert m.rotated_gains["top"]["1L-solu_ln"] == pytest.approx({0: 0.20, 1: 0.30})
    assert m.rotated_gains["spectrum"]["1L-gelu"] == pytest.approx({0: 0.13, 1: 0.13})
    assert m.relative["top"].diff_in_diff == pytest.approx(0.20 - 0.05)
    d = m.seed_difference("solu_ln", "gelu")
    assert d.estimate == pytest.approx(0.22) and d.n_seeds == 2
    assert m.net_of_rotation().estimate == pytest.approx(((0.20 - 0.05) + (0.30 - 0.04)) / 2)
    assert m.blind == []
    got = {c.id: c for c in registry.decide(CHAPTER, m)}
    assert list(got) == [c.id for c in s6.CLAIMS]
    # 2 seeds: the t interval reaches 0, and 2 seeds could not detect 5 points (power first)
    assert got["figure4"].verdict == claim.NOT_TESTABLE
    assert "not testable" in got["figure4"].ours
    assert got["solu_alone"].verdict == claim.NOT_TESTABLE  # no SoLU without LN here
    assert got["depth64"].ours == "our deepest models have 2 layers"


def test_seeds_by_variant_put_seed_0_first():
    names = ["1L-gelu-s2", "2L-gelu", "1L-gelu", "1L-solu_ln", "1L-gelu-s1"]
    assert s6.seeds_by_variant(names, 1) == {"1L-gelu": ["1L-gelu", "1L-gelu-s1", "1L-gelu-s2"],
                                             "1L-solu_ln": ["1L-solu_ln"]}


def test_released_measurements_compare_each_depth_net_of_rotation():
    inputs = zoo_scores()
    names = ("1L-gelu", "1L-solu_ln")
    ri = s6.released_measurements({n: inputs["scores"][n] for n in names},
                                  {n: inputs["control_scores"][n] for n in names})
    assert set(ri.comparisons) == {(1, "top"), (1, "spectrum")}
    assert list(ri.relative) == [1] and set(ri.relative[1]) == set(s6.VIEWS)
    assert "solu_readout" in ri.nulls["1L-gelu"].nulls


# --- the verdicts over seeds --------------------------------------------------------------------
def seed_measurements(top, spectrum=None, gains=None, strict=None, deeper=(), blind=()):
    """InterpMeasurements with only what the claims read: per-seed fractions of 1L variants
    ({variant: [seed 0, seed 1, ...]}), rotated gains, the stricter judge, deeper pairs."""
    as_seeds = lambda table: {v: dict(enumerate(xs)) for v, xs in (table or {}).items()}  # noqa: E731
    comps = {d: s6.Comparison(f"{d}L-solu_ln", f"{d}L-gelu", "top", diff, 1.0)
             for d, diff in deeper}
    return s6.InterpMeasurements(
        results={}, solu_vs_gelu={1: None, **comps}, solu_vs_gelu_spectrum={}, ablation=None,
        ablation_vs_solu=None, blind=list(blind),
        seed_fractions={"top": as_seeds(top), "spectrum": as_seeds(spectrum)},
        rotated_gains={"top": as_seeds(gains), "spectrum": as_seeds(gains)},
        strict_fractions=as_seeds(strict), one_layer=1)


def decided(m) -> dict[str, claim.Claim]:
    return {c.id: c for c in registry.decide(CHAPTER, m)}


GAINS = {"1L-gelu": [0.05, 0.04, 0.06], "1L-solu_ln": [0.20, 0.25, 0.22],
         "1L-solu": [0.15, 0.18, 0.16], "1L-gelu_ln": [0.10, 0.12, 0.11],
         "1L-solu_ln_b4": [0.21, 0.24, 0.22]}


def test_figure4_is_decided_over_seeds_net_of_the_rotated_nulls_and_gated_on_them():
    top = {"1L-gelu": [0.30, 0.32, 0.28], "1L-solu_ln": [0.50, 0.55, 0.47]}
    got = decided(seed_measurements(top, top, GAINS, top))
    assert list(got) == [c.id for c in registry.CLAIMS if c.chapter == CHAPTER]
    fig4 = got["figure4"]
    assert fig4.verdict == claim.REPRODUCED and "3 seeds" in fig4.ours
    t = fig4.test
    assert t.n == 3 and t.interest == claim.INTEREST_POINTS and t.lo > 0
    assert t.detectable == pytest.approx(claim.detectable_effect(t.sd, 3))
    assert len(fig4.tests) == 2 and "rotated" in fig4.tests[1]["null"]
    assert got["privileged_basis"].verdict == claim.REPRODUCED
    assert "1L SoLU + LN +" in got["privileged_basis"].ours
    # the stricter annotator is the full-spectrum view on the unchecked judge
    assert got["stricter_annotator"].verdict == claim.REPRODUCED
    assert "full-spectrum view" in got["stricter_annotator"].ours
    # the same seed differences, but the rotation takes as much as the basis gives
    same = {"1L-gelu": [0.05, 0.04, 0.06], "1L-solu_ln": [0.05, 0.07, 0.04]}
    fig4 = s6.decide_figure4(seed_measurements(top, top, same))
    assert fig4.verdict != claim.REPRODUCED and "net of the rotated-basis nulls" in fig4.ours
    # ... and a SoLU-LN basis that does not beat its rotation gates the claim shut
    flat = {"1L-gelu": [0.05, 0.04, 0.06], "1L-solu_ln": [0.02, -0.03, 0.01]}
    fig4 = s6.decide_figure4(seed_measurements(top, top, flat))
    assert fig4.verdict == claim.NOT_TESTABLE
    assert "does not beat its rotated null in SoLU-LN" in fig4.tests[0]["why"]
    # one seed disagrees: no "direction only" any more; 3 seeds this noisy cannot detect 5
    # points, so the row says not testable at this scale
    noisy = {"1L-gelu": [0.30, 0.50, 0.28], "1L-solu_ln": [0.50, 0.40, 0.47]}
    got = decided(seed_measurements(noisy, noisy, GAINS, noisy))
    assert got["figure4"].verdict == claim.NOT_TESTABLE
    assert not got["figure4"].test.powered
    # the sub-claim is never above its parent
    assert got["stricter_annotator"].verdict == claim.NOT_TESTABLE
    # symmetric: the interval below 0 contradicts
    worse = {"1L-gelu": [0.50, 0.52, 0.48], "1L-solu_ln": [0.30, 0.33, 0.27]}
    assert s6.decide_figure4(seed_measurements(worse, gains=GAINS)).verdict == \
        claim.CONTRADICTED
    # a rotation that beats the neuron basis for one activation
    mixed = {"1L-gelu": [-0.05, -0.04, -0.06], "1L-solu_ln": [0.20, 0.25, 0.22]}
    assert s6.decide_privileged_basis(seed_measurements(top, top, mixed)).verdict == \
        claim.CONTRADICTED
    assert s6.decide_figure4(seed_measurements({})).verdict == claim.NOT_TESTABLE


def test_identical_seed_differences_never_reproduce():
    # k/512 fractions can coincide: identical differences give no variance estimate
    top = {"1L-gelu": [0.30, 0.32], "1L-solu_ln": [0.40, 0.42]}
    fig4 = s6.decide_figure4(seed_measurements(top, gains=GAINS))
    assert fig4.verdict == claim.NOT_TESTABLE
    assert "no variance estimate" in fig4.tests[0]["why"]


def test_ablation_claims_over_seeds():
    top = {"1L-gelu": [0.30, 0.32, 0.31], "1L-solu_ln": [0.50, 0.53, 0.50],
           "1L-solu": [0.45, 0.47, 0.45], "1L-gelu_ln": [0.40, 0.43, 0.41],
           "1L-solu_ln_b4": [0.495, 0.53, 0.505]}
    got = decided(seed_measurements(top, gains=GAINS))
    # SoLU alone +15 points over 3 seeds, and the LN keeps more than half of it
    assert got["solu_alone"].verdict == claim.REPRODUCED
    assert got["ln_only_halfway"].verdict == claim.REPRODUCED
    # blocking is an equivalence claim: within ±10 points (the unchecked top-20 margin)
    blocked = got["blocked_interp"]
    assert blocked.verdict == claim.REPRODUCED and blocked.test.kind == claim.EQUIVALENCE
    assert blocked.test.confidence == pytest.approx(0.90)
    top.update({"1L-solu": [0.31, 0.20, 0.40], "1L-gelu_ln": [0.20, 0.215, 0.21],
                "1L-solu_ln_b4": [0.10, 0.12, 0.13]})
    got = decided(seed_measurements(top, gains=GAINS))
    assert got["solu_alone"].verdict == claim.NOT_TESTABLE   # too noisy to detect 5 points
    # below the baseline with an interval below 0: contradicted (symmetric)
    assert got["ln_only_halfway"].verdict == claim.CONTRADICTED
    assert got["blocked_interp"].verdict == claim.CONTRADICTED  # 40 points worse
    one_seed = {"1L-gelu": [0.30], "1L-solu_ln": [0.50], "1L-solu_ln_b4": [0.52]}
    got = decided(seed_measurements(one_seed, gains=GAINS))
    assert got["blocked_interp"].verdict == claim.NOT_TESTABLE and "1 seed" in \
        got["blocked_interp"].ours
    assert got["solu_alone"].verdict == claim.NOT_TESTABLE
    assert got["depth64"].verdict == claim.NOT_TESTABLE
    assert got["human_blind"].verdict == claim.NOT_TESTABLE


def blind_summary(name: str, *differences) -> s6.BlindSummary:
    report = SimpleNamespace(models=[SimpleNamespace(n_judged=10), SimpleNamespace(n_judged=10)],
                             differences=[SimpleNamespace(model_a=a, model_b=b, diff=d, lo=lo,
                                                          hi=hi)
                                          for a, b, d, lo, hi in differences])
    return s6.BlindSummary(Path("/sessions") / name, report)


def test_human_blind_orients_solu_first_and_counts_matched_pairs_only():
    ab = ("1L-gelu", "1L-solu_ln", -0.20, -0.30, -0.10)   # GELU first: turned around
    assert s6.oriented([SimpleNamespace(model_a=ab[0], model_b=ab[1], diff=ab[2], lo=ab[3],
                                        hi=ab[4])]) == [("1L-solu_ln", "1L-gelu", 0.20, 0.10,
                                                         0.30)]
    c = s6.decide_human_blind(seed_measurements({}, blind=[blind_summary("judged", ab)]))
    assert c.verdict == claim.REPRODUCED
    assert c.ours == "judged (20 judgments): 1L-solu_ln - 1L-gelu: +20.0% [+10.0%, +30.0%]"
    # a second session that straddles 0 decides (the weakest); unmatched pairs do not count
    weak = blind_summary("weak", ("1L-solu_ln", "1L-gelu", 0.05, -0.05, 0.15),
                         ("2L-solu_ln", "1L-gelu", -0.5, -0.6, -0.4))
    c = s6.decide_human_blind(seed_measurements({}, blind=[blind_summary("judged", ab), weak]))
    # 20 judgments cannot detect 5 points: the weak session is not testable at this scale
    assert c.verdict == claim.NOT_TESTABLE
    assert [t["verdict"] for t in c.tests] == [claim.REPRODUCED, claim.NOT_TESTABLE]
    unmatched = blind_summary("other", ("2L-solu_ln", "1L-gelu", 0.3, 0.2, 0.4))
    assert s6.decide_human_blind(seed_measurements({}, blind=[unmatched])).verdict == \
        claim.NOT_TESTABLE


# --- the instruments and the planted rotation test (issue 20) ---------------------------------
from solu_repro.interp.calibration import InstrumentCheck, RotationTest  # noqa: E402


def calibration(**ratios) -> RotationTest:
    """A planted rotation test whose instruments keep ``ratios[instrument]`` of the basis's
    number under rotation (default: the top-20 view keeps all, the others a tenth)."""
    ratios = {"top": 1.0, "spectrum": 0.6, "features_exposed": 0.1, "probe_f1": 0.4, **ratios}
    return RotationTest({i: InstrumentCheck(i, 0.9, 0.9 * r) for i, r in ratios.items()})


def bases(value: float, rotated: float, untrained: float = 0.0, probe: float = 0.5,
          probe_rotated: float = 0.3, strict: float | None = None):
    def one(v, p, st):
        return s6.BasisInstruments(top=0.5, spectrum=0.2, features_exposed=v, exposed_share=v,
                                   strict_share=v / 2 if st is None else st, n_features=100,
                                   explained_variance=v, distinct=10,
                                   probe_f1={"string": p, "keyword": p},
                                   full_probe_f1={"string": 0.9, "keyword": 0.9},
                                   dedicated=())
    return {"basis": one(value, probe, strict), "rotated": one(rotated, probe_rotated, None),
            "random_init": one(untrained, 0.1, None)}


def instruments(table: dict[str, list[tuple[float, float]]], **kw) -> dict:
    """{variant: [(basis, rotated) per seed]} as ``ModelInstruments`` of every seed."""
    out = {}
    for variant, seeds in table.items():
        for i, (v, r) in enumerate(seeds):
            name = variant if i == 0 else f"{variant}-s{i}"
            out[name] = s6.ModelInstruments(name, bases(v, r, **kw))
    return out


def test_the_claims_are_decided_on_the_first_instrument_that_passes_the_planted_test():
    fair = {"1L-gelu": [(0.20, 0.15), (0.22, 0.16), (0.21, 0.17)],
            "1L-solu_ln": [(0.40, 0.15), (0.45, 0.14), (0.43, 0.16)]}
    inputs = zoo_scores()
    m = s6.measure(**inputs, instruments=instruments(fair), calibration=calibration())
    assert m.instrument == "features_exposed"
    assert m.judged()["1L-solu_ln"] == pytest.approx({0: 0.40, 1: 0.45, 2: 0.43})
    assert m.judged("gain")["1L-gelu"] == pytest.approx({0: 0.05, 1: 0.06, 2: 0.04})
    got = decided(m)
    # the top-20 fractions of zoo_scores (2 seeds, interval crossing 0) decide nothing now
    assert got["figure4"].verdict == claim.REPRODUCED
    assert got["figure4"].ours.startswith("rotation-fair judge score")
    assert got["figure4"].values["instrument"] == "features_exposed"
    assert "net of the rotated-basis nulls" in got["figure4"].ours
    # the stricter bar is the share of features exposed at r² 0.8 (here half the value)
    assert got["stricter_annotator"].verdict == claim.REPRODUCED
    assert "r² above 0.8" in got["stricter_annotator"].ours
    # §3.2 under both passing instruments: the probe gap is +0.2 for every seed of both,
    # identical, so no variance estimate: not testable (never a zero-width "reproduced")
    assert got["privileged_basis"].verdict == claim.NOT_TESTABLE
    assert "sparse probing" in got["privileged_basis"].ours


def test_the_top_20_view_alone_decides_nothing_and_no_passing_instrument_means_not_testable():
    fair = {"1L-gelu": [(0.20, 0.15), (0.22, 0.16)], "1L-solu_ln": [(0.40, 0.15), (0.45, 0.14)]}
    inputs = zoo_scores()
    # the fair score fails its planted test: probing decides
    m = s6.measure(**inputs, instruments=instruments(fair),
                   calibration=calibration(features_exposed=0.8))
    assert m.instrument == "probe_f1"
    assert m.judged()["1L-gelu"] == pytest.approx({0: 0.5, 1: 0.5})
    got = decided(m)
    assert got["figure4"].ours.startswith("sparse probing")
    assert got["stricter_annotator"].verdict == claim.NOT_TESTABLE  # probing has no bar
    # nothing passes: every judge-based claim is not testable, and says why
    m = s6.measure(**inputs, instruments=instruments(fair),
                   calibration=calibration(features_exposed=0.8, probe_f1=0.9))
    assert m.instrument is None
    got = decided(m)
    for cid in ("figure4", "privileged_basis", "solu_alone", "ln_only_halfway",
                "stricter_annotator", "blocked_interp"):
        assert got[cid].verdict == claim.NOT_TESTABLE, cid
        assert "no instrument passed the planted rotation test" in got[cid].ours
        assert "top: rotation keeps 100%" in got[cid].ours


def test_a_basis_that_its_rotation_matches_does_not_reproduce_figure4_net_of_rotation():
    # SoLU-LN ahead of GELU, but by exactly what its rotation also shows
    fair = {"1L-gelu": [(0.20, 0.10), (0.22, 0.12), (0.21, 0.11)],
            "1L-solu_ln": [(0.40, 0.30), (0.45, 0.35), (0.43, 0.33)]}
    m = s6.measure(**zoo_scores(), instruments=instruments(fair), calibration=calibration())
    assert m.judged_difference("solu_ln", "gelu", "gain").estimate == pytest.approx(0.0)
    assert s6.decide_figure4(m).verdict == claim.NOT_TESTABLE


def test_model_instruments_gain_and_gap():
    mi = s6.ModelInstruments("1L-gelu", bases(0.4, 0.1, probe=0.7, probe_rotated=0.2))
    assert mi.gain("features_exposed") == pytest.approx(0.3)
    assert mi.gain("probe_f1") == pytest.approx(0.5)
    assert mi.gain("features_exposed", "random_init") == pytest.approx(0.4)
    assert mi.gap() == pytest.approx({"string": 0.5, "keyword": 0.5})
    assert mi.bases["basis"].value("top") == 0.5


def test_blocking_margin_stricter_bar_deeper_pairs_and_missing_instruments():
    fair = {"1L-gelu": [(0.20, 0.15), (0.22, 0.16), (0.21, 0.17)],
            "1L-solu_ln": [(0.40, 0.15), (0.45, 0.14), (0.43, 0.16)],
            "1L-solu_ln_b4": [(0.41, 0.15), (0.44, 0.14), (0.44, 0.16)]}
    inst = instruments(fair)
    # a deeper pair without a rotated null: its row is gated shut, and says why
    inst["2L-gelu"] = s6.ModelInstruments("2L-gelu", {"basis": bases(0.5, 0.1)["basis"]})
    inst["2L-solu_ln"] = s6.ModelInstruments("2L-solu_ln", {"basis": bases(0.3, 0.1)["basis"]})
    m = s6.measure(**zoo_scores(), instruments=inst, calibration=calibration())
    assert m.deeper_differences() == pytest.approx({2: -0.2})
    assert s6.decide_figure4(m).verdict == claim.REPRODUCED
    depth = s6.decide_figure4_depth(m)
    assert depth.verdict == claim.NOT_TESTABLE and "no rotated null of the 2L" in \
        depth.tests[0]["why"]
    assert "1L SoLU-LN / GELU seed pairs" in depth.tests[0]["borrowed"]
    # with its rotated null measured, the one-seed row borrows the 1-layer SD and decides
    inst["2L-solu_ln"] = s6.ModelInstruments("2L-solu_ln", bases(0.3, 0.1))
    m = s6.measure(**zoo_scores(), instruments=inst, calibration=calibration())
    depth = s6.decide_figure4_depth(m)
    assert depth.verdict == claim.CONTRADICTED  # -20 points against a ~2-point seed SD
    # blocking: an equivalence claim against a fixed ±5 points (not a margin from the data)
    blocked = s6.decide_blocked_interp(m)
    assert blocked.values["margin"] == s6.BLOCKED_MARGIN == claim.INTEREST_POINTS
    assert blocked.verdict == claim.REPRODUCED
    assert blocked.test.interest == pytest.approx(blocked.values["margin"])
    # the stricter annotator: the share of features exposed at r² above 0.8, net of rotation
    strict = s6.decide_stricter_annotator(m)
    assert "share of features exposed at r² above 0.8" in strict.ours
    assert strict.verdict == claim.REPRODUCED and len(strict.tests) == 2
    # a passing instrument with no measurements says so
    bare = s6.measure(**zoo_scores(), calibration=calibration())
    got = s6.decide_figure4(bare)
    assert got.verdict == claim.NOT_TESTABLE and "not measured on the models" in got.ours
    # identical seeds: no variance estimate, so blocking is not testable
    flat = {v: [(0.2, 0.1)] * 2 for v in ("1L-gelu", "1L-solu_ln", "1L-solu_ln_b4")}
    m = s6.measure(**zoo_scores(), instruments=instruments(flat), calibration=calibration())
    assert s6.decide_blocked_interp(m).verdict == claim.NOT_TESTABLE
    # a stricter bar at floor (GELU and every rotation at 0) cannot test the sub-claim
    floor = {"1L-gelu": [(0.20, 0.15), (0.22, 0.16), (0.21, 0.17)],
             "1L-solu_ln": [(0.40, 0.15), (0.45, 0.14), (0.43, 0.16)]}
    inst = instruments(floor)
    for name, mi in inst.items():
        for b in ("rotated", "random_init") + (("basis",) if "gelu" in name else ()):
            mi.bases[b] = dataclasses.replace(mi.bases[b], strict_share=0.0)
    m = s6.measure(**zoo_scores(), instruments=inst, calibration=calibration())
    strict = s6.decide_stricter_annotator(m)
    assert strict.verdict == claim.NOT_TESTABLE and "at floor" in strict.tests[0]["why"]
