"""The claim types and the registry: one object per claim, each decided by its section."""

from __future__ import annotations

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


def test_the_directional_rule_and_its_combinations():
    inf = float("inf")
    assert C.directional(0.2, 0.05, 0.3) == C.REPRODUCED
    assert C.directional(0.2, -0.1, 0.5) == C.PARTLY
    assert C.directional(0.2, -inf, inf) == C.PARTLY            # one seed: at most this
    assert C.directional(-0.2, -0.5, 0.1) == C.INCONCLUSIVE     # against, but not shown
    assert C.directional(-0.2, -inf, inf) == C.INCONCLUSIVE
    assert C.directional(-0.2, -0.5, -0.01) == C.NOT_REPRODUCED  # the whole interval against
    assert C.directional(0.0, -0.1, 0.0) == C.NOT_REPRODUCED
    assert C.directional(float("nan"), 0, 1) == C.NOT_TESTABLE
    assert C.combined(C.REPRODUCED, C.PARTLY) == C.PARTLY
    assert C.combined(C.PARTLY, C.INCONCLUSIVE, C.REPRODUCED) == C.INCONCLUSIVE
    assert C.combined(C.INCONCLUSIVE, C.NOT_REPRODUCED) == C.NOT_REPRODUCED
    assert C.combined(C.REPRODUCED, C.NOT_TESTABLE) == C.NOT_TESTABLE
    assert C.at_most(C.REPRODUCED) == C.PARTLY and C.at_most(C.NOT_REPRODUCED) == C.NOT_REPRODUCED


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
