"""A claim of the paper as one object: its statement, the paper's number, the rule that
decides it and the function that applies the rule (``ClaimSpec.decide``), side by side.

Each paper-section module (``solu_repro.paper.s4_design``, ...) declares its claims next to
the measurements they rest on::

    FIGURE4 = ClaimSpec("figure4", "§6.2 / Figure 4", "...", "+25 points", EMPIRICAL,
                        "04-interpretability-quantitative", rule="...")

    @FIGURE4.decided_by
    def decide_figure4(m: InterpMeasurements) -> Claim:
        ...
        return FIGURE4.scored(ours, verdict, values=...)

``solu_repro.paper.registry`` gathers them in paper order; the chapter notebooks show each
spec's rule and the source of its ``decide`` (``solu_repro.book.show.show_claim``), so the rule
a reader sees is the rule that runs.

Two kinds of claim are kept apart and counted separately: *identities* (algebra and worked
examples of §4, true of the functions whatever the models learned) and *empirical* claims
(about trained models, decided with seed-level uncertainty where the zoo has seeds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

REPRODUCED = "reproduced"
PARTLY = "direction only"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
"""Testable here, but the seed-level interval straddles the rule's boundary: more seeds would
decide it. Not the same as "not reproduced", which needs the measurement to disagree."""
NOT_TESTABLE = "not testable here"
VERDICTS = (REPRODUCED, PARTLY, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE)

IDENTITY = "identity"
EMPIRICAL = "empirical"
KINDS = (IDENTITY, EMPIRICAL)
KIND_LABELS = {IDENTITY: "identities and worked examples (§4: true of the functions)",
               EMPIRICAL: "empirical claims (about trained models)"}

# --- the paper's numbers (one name each) ---------------------------------------------------------
PAPER_LOSS_MARGIN = 0.01
"""§5: SoLU-LN's loss is within about ±0.01 nats of the baseline's."""
PAPER_MULTIPLIER_RANGE = (0.95, 1.05)
"""§5 / Figure 1: SoLU-LN performs like a baseline 0.95x-1.05x its size."""
PAPER_NO_LN_MULTIPLIER = (0.5, 0.7)
"""§4.3: SoLU without LN performs like a model 30-50% smaller."""
PAPER_SPEED_OVERHEAD = 0.01
"""§5: SoLU slows training by less than 1% with proper GPU kernels."""


@dataclass(frozen=True)
class ClaimSpec:
    """What the paper says and how the book decides it (``Claim`` adds the result).

    Attributes:
        id: a short name, unique in the registry ("figure4").
        section: the paper's section ("§6.2 / Figure 4").
        statement: the claim in the paper's words.
        paper: the paper's number or wording of the effect ("+25 points").
        kind: ``IDENTITY`` or ``EMPIRICAL``.
        chapter: the notebook that measures it (its file stem, e.g. "03-performance").
        rule: the verdict rule in words; ``decide`` applies it.
        decide: the function from the chapter's measurements to the scored ``Claim``
            (attached with ``@SPEC.decided_by``).
    """

    id: str
    section: str
    statement: str
    paper: str
    kind: str
    chapter: str
    rule: str
    decide: Callable[[Any], "Claim"] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")

    def decided_by(self, fn: Callable[[Any], "Claim"]) -> Callable[[Any], "Claim"]:
        """Decorator: ``fn(measurements) -> Claim`` is this claim's ``decide``."""
        if self.decide is not None:
            raise RuntimeError(f"claim {self.id} is already decided by {self.decide.__name__}")
        object.__setattr__(self, "decide", fn)
        return fn

    def scored(self, ours: str, verdict: str, sentence: str | None = None, *,
               rule: str | None = None, timed: bool = False,
               values: dict[str, Any] | None = None) -> "Claim":
        """This claim with our measurement ``ours`` and its verdict.

        ``sentence`` is what the chapter's text says (glued as ``claim_<id>``, the verdict
        apart as ``verdict_<id>``); by default it is ``ours``. ``rule`` overrides the rule text
        only to fill in numbers the spec cannot know (e.g. the stated tolerance).
        """
        return Claim(id=self.id, section=self.section, claim=self.statement, paper=self.paper,
                     kind=self.kind, chapter=self.chapter, rule=rule or self.rule, ours=ours,
                     verdict=verdict, sentence=sentence or ours, timed=timed,
                     values=_json_safe(values) if values is not None else None)


SEED_RULE = ("intervals are over seeds (a t interval on the per-seed values, or on matched "
             "seed pairs' differences); with one seed there is no interval and at most "
             "'direction only'; a point estimate against the claim whose interval still "
             "reaches the claim's side is 'inconclusive', and 'not reproduced' needs the whole "
             "interval against it")

@dataclass(frozen=True)
class Claim:
    """A scored claim: the registry's statement with our measurement, verdict and sentence."""

    id: str
    section: str
    claim: str
    paper: str
    kind: str
    chapter: str
    rule: str
    ours: str
    verdict: str
    sentence: str
    timed: bool = False
    """True when the verdict rests on wall-clock timing, which a busy machine can flip."""
    values: dict[str, Any] | None = None
    """The measurement's numbers (JSON-safe), for a reader or a test to re-derive the verdict."""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.id}: verdict must be one of {VERDICTS}, "
                             f"got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Claim":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        x = x.item()
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


# --- the verdict rules shared by the chapters -------------------------------------------------------
def directional(estimate: float, lo: float, hi: float) -> str:
    """The verdict on a claim that an effect is positive, from its point estimate and
    interval (over seeds; with one seed the interval is infinite): reproduced if the interval
    is above 0; direction only if the estimate is positive but the interval reaches 0;
    not reproduced if the whole interval is at or below 0; inconclusive if the estimate is at
    or below 0 but the interval still reaches above it; not testable without an estimate."""
    if estimate is None or estimate != estimate:
        return NOT_TESTABLE
    if lo > 0:
        return REPRODUCED
    if estimate > 0:
        return PARTLY
    return NOT_REPRODUCED if hi <= 0 else INCONCLUSIVE


def combined(*verdicts: str) -> str:
    """A claim made of several parts that must all hold: the weakest part's verdict."""
    order = (NOT_TESTABLE, NOT_REPRODUCED, INCONCLUSIVE, PARTLY, REPRODUCED)
    return min(verdicts, key=order.index) if verdicts else NOT_TESTABLE


def at_most(verdict: str, cap: str = PARTLY) -> str:
    """``verdict`` capped (e.g. one seed: 'reproduced' needs seeds, so at most 'direction
    only')."""
    return combined(verdict, cap)
