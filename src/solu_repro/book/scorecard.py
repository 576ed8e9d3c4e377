"""The reproduction scorecard: every claim of the registry beside our measurement.

The chapters decide each claim once (``claims.scored`` in each chapter's module) and save
them (``claims.record``); the scorecard loads what they saved (``claims.load``) and renders
it. It measures nothing, so chapter and scorecard quote the same numbers. Identities (§4's
algebra and worked examples) and empirical claims are shown and counted apart.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Iterable, Sequence

from ..paper.claim import (EMPIRICAL, IDENTITY, INCONCLUSIVE, KIND_LABELS, KINDS,
                          NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, VERDICTS, Claim)
from ..paper.registry import CLAIMS
from .record import load

VERDICT_COLORS = {REPRODUCED: "#2ca02c", PARTLY: "#bcbd22", INCONCLUSIVE: "#17becf",
                  NOT_REPRODUCED: "#d62728", NOT_TESTABLE: "#7f7f7f"}

__all__ = ["scorecard", "counts", "by_kind", "scorecard_html", "rules_markdown", "missing",
           "VERDICT_COLORS", "Claim", "IDENTITY", "EMPIRICAL"]


def scorecard(ctx) -> list[Claim]:
    """Every claim the chapters saved for ``ctx``'s zoo, in registry (paper) order;
    ``claims.MissingClaims`` names the notebooks to run first."""
    return load(ctx)


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
