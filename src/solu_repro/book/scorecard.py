"""The reproduction scorecard: every claim of the registry beside our measurement.

The chapters decide each claim once (``claims.scored`` in each chapter's module) and save
them (``record.save``); the scorecard loads what they saved (``record.load``, which refuses a
record made from other inputs than the book publishes) and renders it. It measures nothing,
so chapter and scorecard quote the same numbers. Identities (§4's algebra and worked
examples) and empirical claims are shown and counted apart.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Iterable, Sequence

from ..paper.claim import (ALPHA, CONTRADICTED, EMPIRICAL, IDENTITY, INCONCLUSIVE,
                          KIND_LABELS, KINDS, NOT_TESTABLE, POWER, REPRODUCED, TESTED_KINDS,
                          VERDICTS, Claim)
from ..paper.multiplicity import NullRegistry, seeds_for
from ..paper.registry import CLAIMS
from .record import load
from .tables import markdown_table

VERDICT_COLORS = {REPRODUCED: "#2ca02c", INCONCLUSIVE: "#17becf", CONTRADICTED: "#d62728",
                  NOT_TESTABLE: "#7f7f7f"}

__all__ = ["scorecard", "counts", "by_kind", "scorecard_html", "rules_markdown", "missing",
           "power_html", "null_registry_markdown", "VERDICT_COLORS", "Claim", "IDENTITY",
           "EMPIRICAL"]


def scorecard(ctx, book_root=None) -> list[Claim]:
    """Every claim the chapters saved for ``ctx``'s zoo, in registry (paper) order;
    ``record.MissingClaims`` names the notebooks to run first, and ``record.StaleClaims`` each
    chapter whose saved claims were made from other inputs than the book publishes (its
    executed copy in ``book_root`` when ``solu-repro book`` runs chapter 9, else the chapter
    at its defaults with ``ctx``'s scale, seed and runs_dir on the current code), so the
    scorecard never quotes a number its chapter's page does not."""
    return load(ctx, book_root=book_root)


def missing(claims: Sequence[Claim]) -> list[str]:
    """Registry claims without a scored row (should be none)."""
    have = {c.id for c in claims}
    return [c.id for c in CLAIMS if c.id not in have]


def by_kind(claims: Iterable[Claim], kind: str) -> list[Claim]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return [c for c in claims if c.kind == kind]


def counts(claims: Iterable[Claim], timed: bool | None = None, kind: str | None = None
           ) -> dict[str, int]:
    """Claims per verdict; ``timed=False`` counts only verdicts that do not rest on a stopwatch,
    ``timed=True`` only those that do, ``None`` all; ``kind`` one group ("identity" or
    "empirical")."""
    c = Counter(claim.verdict for claim in claims
                if (timed is None or claim.timed == timed) and (kind is None or claim.kind == kind))
    return {v: c.get(v, 0) for v in VERDICTS}


def scorecard_html(claims: Sequence[Claim]) -> str:
    """The scorecard as HTML tables, one per kind of claim (every field escaped), verdicts
    coloured, the rule as the badge's tooltip."""
    head = "".join(f"<th style='text-align:left;padding:4px'>{h}</th>"
                   for h in ("section", "claim", "paper", "ours", "verdict", "chapter"))
    parts = []
    for kind in KINDS:
        group = by_kind(claims, kind)
        if not group:
            continue
        rows = []
        for c in group:
            cells = [html.escape(x) for x in (c.section, c.claim, c.paper, c.ours)]
            badge = (f"<span title='{html.escape(c.rule, quote=True)}' style='background:"
                     f"{VERDICT_COLORS[c.verdict]};color:white;padding:1px 6px;"
                     f"border-radius:3px;white-space:nowrap'>{html.escape(c.verdict)}</span>")
            cells += [badge, html.escape(c.chapter)]
            rows.append("<tr>" + "".join(f"<td style='vertical-align:top;padding:4px'>{x}</td>"
                                         for x in cells) + "</tr>")
        parts.append(f"<h4>{html.escape(KIND_LABELS[kind])}</h4>"
                     f"<table class='solu-scorecard' data-kind='{kind}' "
                     f"style='border-collapse:collapse;font-size:90%'><thead><tr>{head}</tr>"
                     f"</thead><tbody>{''.join(rows)}</tbody></table>")
    return "\n".join(parts)


def rules_markdown(claims: Sequence[Claim]) -> str:
    return "\n".join(f"- **{c.section}, {c.claim}** ({c.chapter}): {c.rule}." for c in claims)


def _badge(c: Claim) -> str:
    return (f"<span title='{html.escape(c.rule, quote=True)}' style='background:"
            f"{VERDICT_COLORS[c.verdict]};color:white;padding:1px 6px;border-radius:3px;"
            f"white-space:nowrap'>{html.escape(c.verdict)}</span>")


def power_rows(claims: Sequence[Claim]) -> list[dict[str, str]]:
    """Every tested claim's headline test (the paper's empirical claims, then those beyond it)
    as text: the verdict, the effect and its interval,
    the smallest effect the design detects with 80% power beside the smallest of interest, the
    seeds it would take, and the null it is measured against (or the gate it failed)."""
    rows = []
    for c in [c for kind in TESTED_KINDS for c in by_kind(claims, kind)]:
        t = c.test
        row = {"section": c.section, "claim": c.id, "verdict": c.verdict}
        if t is None:
            row.update({"effect [interval]": "no test: " + c.ours, "smallest detectable": "",
                        "of interest": "", "seeds for 80% power": "", "null / gate": ""})
        else:
            need = seeds_for(t)
            row.update({
                "effect [interval]": t.interval_text + (f" (SD borrowed from {t.borrowed})"
                                                         if t.borrowed else ""),
                "smallest detectable": t._num(t.detectable, False),
                "of interest": ("±" if t.kind == "equivalence" else "") +
                t._num(t.interest, False),
                "seeds for 80% power": "" if t.borrowed else
                ("n/a" if need is None else f"about {need:,}"),
                "null / gate": t.null + (f"; not testable: {t.why}" if t.why else "")})
            if len(c.tests) > 1:
                row["null / gate"] += f" (+{len(c.tests) - 1} more test(s) that must also hold)"
        rows.append(row)
    return rows


def power_html(claims: Sequence[Claim]) -> str:
    """``power_rows`` as an HTML table (every field escaped), verdicts coloured."""
    rows = power_rows(claims)
    if not rows:
        return "<p>No empirical claims.</p>"
    by_id = {c.id: c for c in claims}
    head = "".join(f"<th style='text-align:left;padding:4px'>{html.escape(h)}</th>"
                   for h in rows[0])
    body = []
    for r in rows:
        cells = [_badge(by_id[r["claim"]]) if k == "verdict" else html.escape(str(v))
                 for k, v in r.items()]
        body.append("<tr>" + "".join(f"<td style='vertical-align:top;padding:4px'>{x}</td>"
                                     for x in cells) + "</tr>")
    return (f"<table class='solu-power' style='border-collapse:collapse;font-size:90%'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def null_registry_markdown(sim: NullRegistry, observed: Sequence[Claim]) -> str:
    """Per verdict: how many of the simulated claims this build gave it, and how many a
    registry of the same design gives on average when no claim has any effect
    (``simulate_null``)."""
    seen = counts([c for c in observed if c.id in set(sim.claims)], kind=EMPIRICAL)
    expected = sim.expected
    return markdown_table([{"verdict": v, "this build": seen[v],
                            f"under the null (mean of {sim.n:,} registries)":
                            f"{expected[v]:.2f}"} for v in VERDICTS])


def multiplicity_sentence(sim: NullRegistry) -> str:
    """The simulation in words."""
    k = len(sim.claims)
    left = (f" The {len(sim.by_design)} claims decided without a test (not testable by design) "
            "are left out." if sim.by_design else "")
    return (f"Of the {k} empirical claims decided on tests, a registry with no effect anywhere, "
            f"but this build's seeds, SDs and margins, gives {sim.expected[REPRODUCED]:.2f} "
            f"\"reproduced\" verdicts on average ({sim.reproduced_fraction:.1%} of its "
            f"verdicts, against {ALPHA / 2:.1%} stated for a directional test and {ALPHA:.0%} "
            f"for an equivalence test) and {sim.expected[CONTRADICTED]:.2f} \"contradicted\", "
            f"with at least one \"reproduced\" in {sim.any_reproduced:.0%} of registries "
            f"({sim.n:,} simulated). Power is stated at {POWER:.0%}." + left)
