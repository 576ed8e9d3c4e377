"""The claim types and the registry: one object per claim, each decided by its section."""

from __future__ import annotations

import dataclasses
import json

import pytest

from solu_repro.paper import claim as C
from solu_repro.paper import registry as REG


def test_registry_has_one_entry_per_claim_and_every_checkable_claim_of_the_issue():
    ids = [c.id for c in REG.CLAIMS]
    assert len(ids) == len(set(ids))
    # the claims the book must score (paper sections), identities apart from empirical ones
    for needed in ("trained_sparsity", "solu_alone", "stricter_annotator", "logit_agreement",
                   "early_detokenization", "blocked_loss", "blocked_interp", "figure4",
                   "loss_parity", "no_ln_penalty", "ln_low_activation", "speed"):
        assert needed in REG.REGISTRY
    assert {c.kind for c in REG.CLAIMS} == set(C.KINDS)
    assert {c.id for c in REG.CLAIMS if c.kind == C.IDENTITY} == {
        "worked_examples", "gelu_sigmoid", "ln_identities"}
    for c in REG.CLAIMS:
        assert c.chapter in REG.CHAPTERS and c.rule and c.statement and c.paper


def test_scored_claims_carry_the_registry_text_and_reject_bad_verdicts():
    c = REG.REGISTRY["loss_parity"].scored("+0.001 nats", C.REPRODUCED, values={"x": float("nan"),
                                                                     "y": float("inf")})
    spec = REG.REGISTRY["loss_parity"]
    assert (c.section, c.claim, c.paper, c.kind, c.chapter, c.rule) == (
        spec.section, spec.statement, spec.paper, spec.kind, spec.chapter, spec.rule)
    assert c.sentence == "+0.001 nats"  # the verdict is glued apart (verdict_<id>)
    assert c.values == {"x": None, "y": "inf"}  # JSON-safe
    json.dumps(c.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="verdict"):
        REG.REGISTRY["loss_parity"].scored("x", "sort of")


def _t(values, interest=0.05, **kw):
    return C.seed_test(values, interest=interest, null="a null", **kw)


def test_the_symmetric_directional_rule_branch_by_branch():
    # reproduced: the 95% interval excludes 0 on the claim's side
    t = _t([0.10, 0.12, 0.08])
    assert t.verdict == C.REPRODUCED and t.lo > 0 and t.n == 3 and t.df == 2
    # contradicted: the mirror image (no more "direction only" on one side only)
    assert _t([-0.10, -0.12, -0.08]).verdict == C.CONTRADICTED
    # neither, and 3 seeds this consistent could detect 5 points: inconclusive
    t = _t([0.004, -0.002, 0.001])
    assert t.powered and t.verdict == C.INCONCLUSIVE
    # neither, and the design cannot detect 5 points: not testable at this scale
    t = _t([0.10, -0.12, 0.08])
    assert not t.powered and t.verdict == C.NOT_TESTABLE
    assert "not testable at this scale" in t.text
    # the same numbers mirrored give the mirrored verdicts (symmetry)
    for vals in ([0.10, 0.12, 0.08], [0.10, -0.12, 0.08], [0.004, -0.002, 0.001]):
        a, b = _t(vals).verdict, _t([-v for v in vals]).verdict
        assert {a, b} == {C.REPRODUCED, C.CONTRADICTED} or a == b
    # one seed and nothing borrowed: no interval, not testable
    assert _t([0.3]).verdict == C.NOT_TESTABLE
    # identical seeds: no variance estimate, never a zero-width "reproduced"
    t = _t([3 / 512, 3 / 512])
    assert t.verdict == C.NOT_TESTABLE and "no variance estimate" in t.why
    assert _t([]).verdict == C.NOT_TESTABLE and _t([float("nan")]).n == 0
    # a failed gate keeps the numbers and says why
    g = C.gated(_t([0.10, 0.12, 0.08]), "the basis does not beat its rotation")
    assert g.verdict == C.NOT_TESTABLE and g.effect == pytest.approx(0.1)


def test_power_is_the_noncentral_t_of_statsmodels():
    from statsmodels.stats.power import TTestPower

    for n in (2, 3, 5, 10):
        d = TTestPower().solve_power(nobs=n, alpha=C.ALPHA, power=C.POWER)
        assert C.detectable_effect(2.0, n) == pytest.approx(2.0 * d, rel=1e-4)
    assert C.detectable_effect(1.0, 1) == float("inf")            # no SD
    assert C.detectable_effect(1.0, 1, df=4) < float("inf")       # a borrowed SD
    assert C.detectable_effect(float("nan"), 3) == float("inf")


def test_equivalence_rule_and_power_first():
    eq = dict(kind=C.EQUIVALENCE, interest=0.01)
    t = _t([0.001, -0.002, 0.0005, 0.001], **eq)
    assert t.confidence == pytest.approx(0.90) and t.verdict == C.REPRODUCED
    assert _t([0.20, 0.25, 0.22], **eq).verdict == C.CONTRADICTED   # wholly outside ±0.01
    # the loss-parity case: a paired SD of about 0.1 nats cannot show ±0.01 with 3 seeds
    t = _t([-0.15, 0.05, -0.13], **eq)
    assert t.detectable > 0.2 and t.verdict == C.NOT_TESTABLE
    # inside the detectable range but straddling the margin: inconclusive
    t = _t([0.009, 0.011, 0.010, 0.008, 0.012, 0.010], **eq)
    assert t.powered and t.verdict == C.INCONCLUSIVE


def test_contradicted_needs_the_wider_interval_and_a_share_of_alpha_per_part():
    # equivalence: not equivalent only when the 95% interval (not the 90% one) is outside
    t = _t([0.05, 0.09, 0.06], kind=C.EQUIVALENCE, interest=0.01)
    lo95, hi95 = t._against()
    assert lo95 < t.lo and t.lo > 0.01
    assert t.verdict == (C.CONTRADICTED if lo95 > 0.01 else C.INCONCLUSIVE)
    # a directional part of a two-part claim contradicts on its 97.5% interval
    t = _t([-0.030, -0.050, -0.045, -0.010])
    assert t.verdict == C.CONTRADICTED
    two = dataclasses.replace(t, parts=2)
    assert two._against()[1] > t.hi and two.verdict in (C.CONTRADICTED, C.INCONCLUSIVE)
    assert dataclasses.replace(_t([0.1, 0.12, 0.08]), parts=5).verdict == C.REPRODUCED


def test_an_interval_that_rules_out_the_effect_of_interest_is_inconclusive_not_untestable():
    t = _t([-0.003, 0.041, -0.035, 0.005])    # [-0.06, +0.06]: cannot detect 5, cannot rule out
    assert t.verdict == C.NOT_TESTABLE
    t = _t([0.01, -0.012, 0.0, 0.015, -0.01, 0.005], interest=0.2)
    assert t.excludes_interest and t.verdict == C.INCONCLUSIVE
    small = _t([0.010, 0.012, 0.011])            # reproduced, but below 5 points of interest
    assert small.verdict == C.REPRODUCED and "reproduced means not zero" in small.text
    assert "(95%, 20 judged neurons)" in C.Test(
        C.DIRECTIONAL, 0.2, 0.1, 0.3, 20, float("nan"), 0, 0.05, 0.14, "GELU",
        units="judged neurons").interval_text


def test_borrowed_sd_and_pooling():
    one = _t([0.10, 0.14, 0.12])
    pooled = C.pooled_sd([one, _t([0.3]), _t([0.2, 0.2])])
    assert pooled[0] == pytest.approx(one.sd) and pooled[1] == 2
    t = _t([0.25], borrowed=(pooled[0], pooled[1], "the 1L seeds"))
    assert t.borrowed == "the 1L seeds" and t.df == 2 and t.verdict == C.REPRODUCED
    assert "SD borrowed from the 1L seeds" in t.text
    assert C.pooled_sd([_t([0.3])]) is None


def test_tests_round_trip_and_decide_a_claim_by_combination():
    t = _t([0.10, 0.12, 0.08], unit="points", scale=100)
    assert C.Test.from_dict(json.loads(json.dumps(t.to_dict(), allow_nan=False))) == t
    spec = REG.REGISTRY["figure4"]
    c = spec.scored("x", tests=[t, _t([0.10, -0.12, 0.08])])
    assert c.verdict == C.NOT_TESTABLE and len(c.tests) == 2
    assert c.test == dataclasses.replace(t, parts=2)   # each part contradicts at ALPHA / 2
    assert C.combined(C.REPRODUCED, C.INCONCLUSIVE) == C.INCONCLUSIVE
    assert C.combined(C.INCONCLUSIVE, C.NOT_TESTABLE) == C.NOT_TESTABLE
    assert C.combined(C.NOT_TESTABLE, C.CONTRADICTED) == C.CONTRADICTED
    assert C.combined() == C.NOT_TESTABLE
    with pytest.raises(ValueError, match="smallest effect of interest"):
        _t([0.1, 0.2], interest=0)


def test_noise_alone_reproduces_at_most_the_stated_rate():
    """Many simulated noise-only registries: the fraction of "reproduced" stays at or below
    the stated error rate (ALPHA / 2 directional, ALPHA equivalence at its margin), within
    Monte Carlo error."""
    from solu_repro.paper import multiplicity as M

    designs = [_t([0.1, 0.3]), _t([0.1, 0.12, 0.08]), _t([0.1, -0.1, 0.3, 0.0, 0.2]),
               _t([0.2], borrowed=(0.05, 2, "1L")),
               _t([-0.15, 0.05, -0.13], kind=C.EQUIVALENCE, interest=0.01),
               _t([0.001, -0.002, 0.0005, 0.001], kind=C.EQUIVALENCE, interest=0.01),
               # a blinded session: a sampling interval over judged neurons, no seed SD
               C.Test(C.DIRECTIONAL, 0.2, 0.1, 0.3, 20, float("nan"), 0, 0.05, 0.14, "GELU",
                      units="judged neurons")]
    spec = REG.REGISTRY["figure4"]
    claims = [C.Claim(**{**spec.scored("x", tests=[t]).to_dict(), "id": f"c{i}"})
              for i, t in enumerate(designs)]
    n = 8000
    sim = M.simulate_null(claims, n=n, seed=1)
    for cid, t in zip(sim.claims, designs):
        rate = sim.per_claim[cid][C.REPRODUCED]
        stated = M.stated_rate(t)
        assert rate <= stated + 3 * (stated * (1 - stated) / n) ** 0.5, (cid, rate, stated)
        assert sum(sim.per_claim[cid].values()) == pytest.approx(1.0)
    # symmetric: noise contradicts a directional claim as often as it reproduces it
    d = sim.per_claim["c1"]
    assert abs(d[C.REPRODUCED] - d[C.CONTRADICTED]) < 0.015
    assert sim.reproduced_fraction <= C.ALPHA and 0 < sim.any_reproduced < 0.5
    # what "direction only" used to be: about half of noise-only rows point the paper's way
    assert 0.4 < float(sum(M.null_draw(designs[1], __import__("numpy").random.default_rng(i))
                           .effect > 0 for i in range(400))) / 400 < 0.6


def test_seeds_needed_for_power():
    from solu_repro.paper import multiplicity as M

    t = _t([0.10, -0.12, 0.08])
    k = M.seeds_for(t)
    assert k > 3 and C.detectable_effect(t.sd, k) <= 0.05 < C.detectable_effect(t.sd, k - 1)
    parity = _t([-0.15, 0.05, -0.13], kind=C.EQUIVALENCE, interest=0.01)
    assert M.seeds_for(parity) > 300   # the issue's arithmetic: hundreds of seed pairs
    assert M.seeds_for(_t([0.3])) is None


def test_a_spec_is_decided_once_and_by_its_own_function():
    spec = C.ClaimSpec("x", "§0", "a statement", "a number", C.EMPIRICAL, "00-none", "a rule")

    @spec.decided_by
    def decide_x(m):
        return spec.scored(f"measured {m}", C.REPRODUCED)

    assert spec.decide is decide_x and decide_x(3).ours == "measured 3"
    with pytest.raises(RuntimeError, match="already decided"):
        spec.decided_by(lambda m: None)
    assert spec == C.ClaimSpec("x", "§0", "a statement", "a number", C.EMPIRICAL, "00-none",
                               "a rule")  # the function is not part of the claim's identity


def test_decide_runs_every_claim_of_a_chapter_in_registry_order():
    assert [c.id for c in REG.chapter_claims("02-solu-design")] == [
        "worked_examples", "gelu_sigmoid", "ln_identities", "trained_sparsity"]
    with pytest.raises(KeyError, match="no claims"):
        REG.chapter_claims("99-nothing")
