"""The record of scored claims (saved by each chapter, loaded by chapter 8) and the scorecard
that renders it."""

from __future__ import annotations

import json

import pytest

from solu_repro.book import book_context, checks, record, scorecard
from solu_repro.paper import claim as C
from solu_repro.paper import registry as REG


def _all_scored(verdict=C.NOT_TESTABLE):
    return [spec.scored(f"ours for <{spec.id}> & co", verdict) for spec in REG.CLAIMS]


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
    rows = _all_scored(C.INCONCLUSIVE)
    rows[0] = REG.REGISTRY[rows[0].id].scored("<script>alert(1)</script>", C.REPRODUCED)
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


def test_power_table_and_null_registry_show_every_empirical_claim_escaped():
    from solu_repro.paper import multiplicity

    rows = _all_scored(C.INCONCLUSIVE)
    t = C.seed_test([0.10, -0.12, 0.08], interest=0.05, null="<b>rotated</b>", unit="points",
                    scale=100)
    rows[-1] = REG.REGISTRY[rows[-1].id].scored("x", tests=[t])
    html = scorecard.power_html(rows)
    assert "<b>rotated" not in html and "&lt;b&gt;rotated" in html
    assert html.count("<tr>") == 1 + sum(c.kind == C.EMPIRICAL for c in rows)
    got = {r["claim"]: r for r in scorecard.power_rows(rows)}[rows[-1].id]
    assert got["smallest detectable"] == t._num(t.detectable, False)
    assert got["seeds for 80% power"] == f"about {multiplicity.seeds_for(t):,}"
    sim = multiplicity.simulate_null(rows, n=200)
    table = scorecard.null_registry_markdown(sim, rows)
    assert "| not testable here |" in table and "under the null" in table
    assert "at least one \"reproduced\" in" in scorecard.multiplicity_sentence(sim)
    assert sim.claims == (rows[-1].id,)   # only claims decided on a test are simulated
    assert len(sim.by_design) == sum(c.kind == C.EMPIRICAL for c in rows) - 1
