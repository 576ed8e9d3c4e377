"""The claims registry (one object per claim) and the scorecard that renders it."""

from __future__ import annotations

import json

import pytest

from solu_repro.book import book_context, checks, scorecard
from solu_repro.paper import claim as C
from solu_repro.paper import registry as REG
from solu_repro.book import record


def _all_scored(verdict=C.NOT_TESTABLE):
    return [REG.scored(spec.id, f"ours for <{spec.id}> & co", verdict) for spec in REG.CLAIMS]


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
    c = REG.scored("loss_parity", "+0.001 nats", C.REPRODUCED, values={"x": float("nan"),
                                                                     "y": float("inf")})
    spec = REG.REGISTRY["loss_parity"]
    assert (c.section, c.claim, c.paper, c.kind, c.chapter, c.rule) == (
        spec.section, spec.statement, spec.paper, spec.kind, spec.chapter, spec.rule)
    assert c.sentence == "+0.001 nats"  # the verdict is glued apart (verdict_<id>)
    assert c.values == {"x": None, "y": "inf"}  # JSON-safe
    json.dumps(c.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="verdict"):
        REG.scored("loss_parity", "x", "sort of")
    with pytest.raises(KeyError, match="no claim"):
        REG.scored("no_such_claim", "x", C.REPRODUCED)


def test_record_and_load_round_trip_and_refuse_what_is_missing_or_stale(tmp_path):
    ctx = book_context(scale="tiny", runs_dir=tmp_path, progress=False)
    rows = _all_scored()
    with pytest.raises(record.MissingClaims, match="03-performance") as err:
        record.load(ctx)
    assert "solu-repro book" in str(err.value)
    for chapter in REG.CHAPTERS:
        record.save(ctx, chapter, [r for r in rows if r.chapter == chapter])
    loaded = record.load(ctx)
    assert [c.to_dict() for c in loaded] == [r.to_dict() for r in rows]
    assert not scorecard.missing(loaded)
    # a chapter must score exactly its own claims
    with pytest.raises(ValueError, match="missing"):
        record.save(ctx, "03-performance", [r for r in rows if r.id == "loss_parity"])
    with pytest.raises(ValueError, match="foreign"):
        record.save(ctx, "03-performance", [r for r in rows if r.chapter in
                                         ("03-performance", "02-solu-design")])
    # claims saved for another zoo are stale; a corrupt file is named
    path = record.claims_dir(ctx) / "07-layernorm.json"
    payload = json.loads(path.read_text())
    path.write_text(json.dumps({**payload, "zoo": "0" * 16}))
    with pytest.raises(record.MissingClaims, match="07-layernorm .saved for another zoo"):
        record.load(ctx)
    path.write_text("{not json")
    with pytest.raises(record.MissingClaims, match="unreadable"):
        record.load(ctx)


def test_scorecard_counts_kinds_apart_and_escapes_corpus_text():
    rows = _all_scored(C.PARTLY)
    rows[0] = REG.scored(rows[0].id, "<script>alert(1)</script>", C.REPRODUCED)
    html = scorecard.scorecard_html(rows)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<table") == 2 and "data-kind='identity'" in html
    ident = scorecard.counts(rows, kind=C.IDENTITY)
    emp = scorecard.counts(rows, kind=C.EMPIRICAL)
    assert sum(ident.values()) == 3 and ident[C.REPRODUCED] == 1
    assert sum(emp.values()) == len(REG.CLAIMS) - 3 and emp[C.REPRODUCED] == 0
    assert {v: ident[v] + emp[v] for v in C.VERDICTS} == scorecard.counts(rows)
    assert set(scorecard.VERDICT_COLORS) == set(C.VERDICTS)
    assert not checks.failed(checks.scorecard_checks(rows))
    assert checks.failed(checks.scorecard_checks(rows[1:]))  # a registry claim unscored


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
