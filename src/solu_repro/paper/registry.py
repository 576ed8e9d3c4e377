"""Every claim the book checks, in the paper's order, gathered from the section modules.

Each ``ClaimSpec`` is declared once, beside the measurements it rests on, in its paper
section's module; this module only lists them. A chapter notebook decides its claims with
``decide(chapter, measurements)``, saves them (``solu_repro.book.record``) and chapter 9
renders what was saved: it measures nothing, so a number quoted in a chapter and in the
scorecard is the same number.
"""

from __future__ import annotations

from typing import Any

from . import (s4_design, s5_performance, s6_3_neurons, s6_4_layernorm, s6_interpretability,
               s8_features)
from .claim import Claim, ClaimSpec

SECTIONS = (s4_design, s5_performance, s6_interpretability, s6_3_neurons, s6_4_layernorm,
            s8_features)
"""The paper-section modules, in paper order, then the claims beyond the paper."""

CLAIMS: tuple[ClaimSpec, ...] = tuple(spec for section in SECTIONS for spec in section.CLAIMS)
REGISTRY: dict[str, ClaimSpec] = {c.id: c for c in CLAIMS}
if len(REGISTRY) != len(CLAIMS):
    raise RuntimeError("two claims share an id")
CHAPTERS: tuple[str, ...] = tuple(dict.fromkeys(c.chapter for c in CLAIMS))


def chapter_claims(chapter: str) -> list[ClaimSpec]:
    """The specs a chapter decides, in registry order."""
    if chapter not in CHAPTERS:
        raise KeyError(f"no claims are decided in chapter {chapter!r}: one of {CHAPTERS}")
    return [c for c in CLAIMS if c.chapter == chapter]


def decide(chapter: str, measurements: Any) -> list[Claim]:
    """Every claim of ``chapter`` decided from its measurements, each by its own ``decide``."""
    specs = chapter_claims(chapter)
    undecided = [c.id for c in specs if c.decide is None]
    if undecided:
        raise RuntimeError(f"claims {undecided} have no decide function")
    return [c.decide(measurements) for c in specs]


