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

import functools
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Sequence

import numpy as np

REPRODUCED = "reproduced"
"""The interval excludes 0 on the claim's side (an equivalence claim: it lies inside the
margin)."""
CONTRADICTED = "contradicted"
"""The interval excludes 0 on the other side (an equivalence claim: it lies wholly outside the
margin)."""
INCONCLUSIVE = "inconclusive"
"""Neither, though the design could have detected the smallest effect of interest: more seeds
of this size would decide it."""
NOT_TESTABLE = "not testable here"
"""No measurement, a null the instrument does not beat, or (power first) a design whose
smallest detectable effect exceeds the claim's smallest effect of interest: not testable at
this scale, with the numbers."""
VERDICTS = (REPRODUCED, INCONCLUSIVE, CONTRADICTED, NOT_TESTABLE)

ALPHA = 0.05
"""Each test's error rate: a directional claim is reproduced when the two-sided 95% interval
excludes 0 on its side (a false "reproduced" under the null at most ALPHA / 2); an equivalence
claim when the 90% interval lies inside the margin (TOST at ALPHA)."""
POWER = 0.80
"""The power at which the smallest detectable effect is stated."""
INTEREST_POINTS = 0.05
"""The smallest effect of interest of a score on a 0-1 scale, shown as 5 points: a fifth of the
paper's headline interpretability effect (Figure 4, +25 points of the fraction of neurons
interpretable). It is applied to every score the book reads on that scale (fractions of
neurons, shares of features, mean best r², mean best F1, agreement percentiles, shares of
inconsistent examples): each is a proportion-like number whose whole range is 100 points, and
a twentieth of that range is what a reader would need to see before concluding that one
activation makes neurons more readable than another. A claim with a better-grounded number
states its own (loss margins in nats, the sparsity ratio)."""
DIRECTIONAL = "directional"
EQUIVALENCE = "equivalence"
TEST_KINDS = (DIRECTIONAL, EQUIVALENCE)

IDENTITY = "identity"
EMPIRICAL = "empirical"
BEYOND = "beyond the paper"
"""Empirical claims the paper did not make (chapter 8's sparse dictionaries): decided under the
same rules, counted apart from the paper's own claims."""
KINDS = (IDENTITY, EMPIRICAL, BEYOND)
TESTED_KINDS = (EMPIRICAL, BEYOND)
"""The kinds decided by tests over seeds (chapter 9's power table reads both)."""
KIND_LABELS = {IDENTITY: "identities and worked examples (§4: true of the functions)",
               EMPIRICAL: "empirical claims (about trained models)",
               BEYOND: "beyond the paper (sparse dictionaries on the same models, 2023)"}

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
        kind: ``IDENTITY``, ``EMPIRICAL`` or ``BEYOND``.
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

    def scored(self, ours: str, verdict: str | None = None, sentence: str | None = None, *,
               rule: str | None = None, timed: bool = False,
               values: dict[str, Any] | None = None,
               tests: Sequence["Test"] = ()) -> "Claim":
        """This claim with our measurement ``ours`` and its verdict.

        ``tests`` are the tests the verdict rests on (the first is the headline one, shown in
        chapter 9's power table); without an explicit ``verdict`` it is ``combined`` of their
        verdicts (every part must hold). ``sentence`` is what the chapter's text says (glued as
        ``claim_<id>``, the verdict apart as ``verdict_<id>``); by default it is ``ours``.
        ``rule`` overrides the rule text only to fill in numbers the spec cannot know.
        """
        if len(tests) > 1:  # each part contradicts at ALPHA / parts (``Test.parts``)
            tests = [replace(t, parts=len(tests)) for t in tests]
        if verdict is None:
            verdict = combined(*(t.verdict for t in tests)) if tests else NOT_TESTABLE
        return Claim(id=self.id, section=self.section, claim=self.statement, paper=self.paper,
                     kind=self.kind, chapter=self.chapter, rule=rule or self.rule, ours=ours,
                     verdict=verdict, sentence=sentence or ours, timed=timed,
                     values=_json_safe(values) if values is not None else None,
                     tests=[t.to_dict() for t in tests])


SEED_RULE = ("intervals are over independent units, matched seed pairs (a t interval on the "
             "per-seed differences, 95% two-sided; 90% for an equivalence margin, TOST at 5%); "
             "reproduced if the interval excludes 0 on the claim's side, contradicted if it "
             "excludes 0 on the other side (equivalence: the 95% interval wholly outside the "
             "margin; a part of a claim of k parts contradicts at 5%/k); otherwise "
             "inconclusive if the design could detect the smallest effect of interest with "
             "80% power or the interval already rules it out, else not testable at this "
             "scale; one seed and nothing borrowed gives no interval (not testable); seeds "
             "that do not differ at all give no variance estimate")


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
    tests: list[dict[str, Any]] = field(default_factory=list)
    """The tests the verdict rests on (``Test.to_dict``), the headline one first."""

    @property
    def test(self) -> "Test | None":
        """The headline test (None for a claim decided without one)."""
        return Test.from_dict(self.tests[0]) if self.tests else None

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
def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def detectable_effect(sd: float, n: int, df: int | None = None, kind: str = DIRECTIONAL,
                      alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest effect this design detects with ``power``: ``n`` independent units (seed
    pairs) whose values have standard deviation ``sd`` estimated on ``df`` degrees of freedom
    (``n - 1``, or a borrowed estimate's).

    Directional: the true effect at which the two-sided level-``alpha`` t test rejects with
    probability ``power`` (noncentral t, solved with ``scipy.optimize.brentq``). Equivalence: the smallest margin at which TOST at ``alpha``
    shows equivalence with probability ``power`` when the truth is 0, ``SE (t[1 - alpha, df] +
    t[1 - (1 - power) / 2, df])`` (the usual normal-theory approximation, with t quantiles).
    The directional power is ``scipy.stats.nct`` (what ``statsmodels.stats.power.ttest_power``
    computes; its lower tail turns NaN at df = 1, so it is not called).
    ``inf`` where there is no variance estimate (one unit and nothing borrowed, or ``sd`` not
    above 0)."""
    if not (_finite(sd) and sd > 0 and n >= 1):
        return math.inf
    df = n - 1 if df is None else df
    if df < 1:
        return math.inf
    return _power_factor(int(n), int(df), kind, float(alpha), float(power)) * sd


@functools.lru_cache(maxsize=4096)
def _power_factor(n: int, df: int, kind: str, alpha: float, power: float) -> float:
    """``detectable_effect`` in units of one unit's SD (it is linear in the SD)."""
    from scipy.optimize import brentq
    from scipy.stats import t as t_dist

    se = 1 / math.sqrt(n)
    if kind == EQUIVALENCE:
        return se * float(t_dist.ppf(1 - alpha, df) + t_dist.ppf(1 - (1 - power) / 2, df))
    from scipy.stats import nct

    crit = float(t_dist.ppf(1 - alpha / 2, df))

    def gap(d: float) -> float:  # power of the two-sided t test at true effect d SDs, minus target
        nc = d * math.sqrt(n)
        lower = float(nct.cdf(-crit, df, nc))  # NaN far out in the tail, where it is ~0
        return float(nct.sf(crit, df, nc)) + (lower if lower == lower else 0.0) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
        if hi > 1e6:
            return math.inf
    return float(brentq(gap, 1e-9, hi, xtol=1e-12))


@functools.lru_cache(maxsize=4096)
def _t_quantile(q: float, df: int) -> float:
    from scipy.stats import t as t_dist

    return float(t_dist.ppf(q, df))


@dataclass(frozen=True)
class Test:
    """One test a verdict rests on: the effect (oriented so that the claim's side is positive),
    its interval over independent units (seeds), the design's power and the null it beats.

    Attributes:
        kind: ``DIRECTIONAL`` (the effect is positive) or ``EQUIVALENCE`` (``|effect| <
            interest``).
        effect: the point estimate (mean over units).
        lo, hi: its interval: two-sided 1 - ALPHA (directional) or 1 - 2 ALPHA (equivalence,
            TOST); infinite without a variance estimate.
        n: independent units (matched seed pairs; 1 for a single model).
        sd: the SD of one unit's value (NaN if unknown).
        df: degrees of freedom of ``sd`` (0 if unknown).
        interest: the smallest effect of interest (directional), or the margin (equivalence).
        detectable: the smallest effect (or margin) this design detects with POWER
            (``detectable_effect``).
        null: what the effect is measured against (the control it must beat).
        unit: the unit of effect, interest and detectable, for reading.
        scale: multiplies the numbers when shown (100 for fractions shown in points).
        borrowed: where ``sd`` comes from when not from these units ("" if it does).
        why: why it is not testable regardless of the numbers (a failed gate), "" if not.
        values: the per-unit values.
    """

    kind: str
    effect: float
    lo: float
    hi: float
    n: int
    sd: float
    df: int
    interest: float
    detectable: float
    null: str
    unit: str = ""
    scale: float = 1.0
    borrowed: str = ""
    why: str = ""
    values: tuple[float, ...] = ()
    parts: int = 1
    """How many tests the claim's verdict combines: "contradicted" by any one part contradicts
    the claim, so each part contradicts only at ALPHA / parts (Bonferroni), keeping the claim's
    false "contradicted" at the stated rate."""
    units: str = "seeds"
    """What ``n`` counts, for reading ("seeds"; "judged neurons" for a blinded session)."""

    def __post_init__(self):
        if self.kind not in TEST_KINDS:
            raise ValueError(f"test kind must be one of {TEST_KINDS}, got {self.kind!r}")
        if not (_finite(self.interest) and self.interest > 0):
            raise ValueError(f"the smallest effect of interest must be a number > 0, got "
                             f"{self.interest!r}")

    @property
    def confidence(self) -> float:
        return 1 - ALPHA if self.kind == DIRECTIONAL else 1 - 2 * ALPHA

    @property
    def powered(self) -> bool:
        """Whether the design detects the smallest effect of interest with POWER."""
        return _finite(self.detectable) and self.detectable <= self.interest

    def _against(self) -> tuple[float, float]:
        """The interval "contradicted" is decided on: two-sided 1 - ALPHA / parts (95% for a
        one-part claim, for equivalence too, so that a truly equivalent result is called not
        equivalent at most ALPHA of the time; the 90% interval would allow 2 ALPHA)."""
        if self.parts == 1 and self.kind == DIRECTIONAL:
            return self.lo, self.hi
        if not (_finite(self.sd) and self.df >= 1 and _finite(self.lo)):
            if self.parts == 1 or not (_finite(self.lo) and _finite(self.hi)):
                return self.lo, self.hi
            # an interval without an SD (a sampling interval): widen by the z ratio
            from scipy.stats import norm

            k = float(norm.ppf(1 - ALPHA / (2 * self.parts)) / norm.ppf(1 - ALPHA / 2))
            h = (self.hi - self.lo) / 2 * k
            return self.effect - h, self.effect + h
        h = _t_quantile(1 - ALPHA / (2 * self.parts), self.df) * self.sd / math.sqrt(self.n)
        return self.effect - h, self.effect + h

    @property
    def excludes_interest(self) -> bool:
        """Whether the interval rules out an effect as large as the effect of interest on the
        claim's side (directional): the effect, if any, is too small to matter."""
        return self.kind == DIRECTIONAL and _finite(self.hi) and self.hi < self.interest

    @property
    def verdict(self) -> str:
        """The symmetric rule. Directional: reproduced if the 95% interval is above 0,
        contradicted if below; equivalence: reproduced if the 90% interval lies inside
        (-interest, interest) (TOST at ALPHA), contradicted if the 95% interval lies wholly
        outside (a claim of several parts contradicts on 1 - ALPHA / parts intervals). Otherwise
        inconclusive when the design could detect the smallest effect of interest
        (``powered``) or the interval already rules that effect out (``excludes_interest``);
        else (power first) not testable at this scale. A failed gate (``why``), no estimate or
        no variance estimate is not testable."""
        if self.why or not _finite(self.effect):
            return NOT_TESTABLE
        lo, hi, m = self.lo, self.hi, self.interest
        alo, ahi = self._against()
        if self.kind == DIRECTIONAL:
            if lo > 0:
                return REPRODUCED
            if ahi < 0:
                return CONTRADICTED
        else:
            if -m < lo and hi < m:
                return REPRODUCED
            if alo > m or ahi < -m:
                return CONTRADICTED
        return INCONCLUSIVE if self.powered or self.excludes_interest else NOT_TESTABLE

    def _num(self, x: float, sign: bool = True) -> str:
        if not _finite(x):
            return "∞" if x == math.inf else "-∞" if x == -math.inf else "n/a"
        v = x * self.scale
        digits = 1 if self.scale >= 100 or abs(v) >= 10 else 3 if abs(v) >= 0.1 else 4
        return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"

    @property
    def interval_text(self) -> str:
        units = ("1 seed" if self.n == 1 and self.units == "seeds" else
                 f"{self.n} {self.units}")
        ci = f"{self.confidence:.0%}"
        if not (_finite(self.lo) and _finite(self.hi)):
            return f"{self._num(self.effect)} {self.unit} ({units}, no interval)".replace("  ", " ")
        return (f"{self._num(self.effect)} [{self._num(self.lo)}, {self._num(self.hi)}] "
                f"{self.unit} ({ci}, {units})").replace("  ", " ")

    @property
    def power_text(self) -> str:
        """``"smallest detectable 3.1, of interest 5.0"`` (with the borrowed SD named)."""
        what = "margin" if self.kind == EQUIVALENCE else "effect"
        text = (f"smallest detectable {what} {self._num(self.detectable, False)}, of interest "
                f"{self._num(self.interest, False)}")
        if self.borrowed:
            text += f" (SD borrowed from {self.borrowed})"
        return text

    @property
    def text(self) -> str:
        """The effect, interval, power and null in one phrase (what a row shows)."""
        t = f"{self.interval_text}; {self.power_text}; null: {self.null}"
        v = self.verdict
        if self.why:
            t += f"; not testable: {self.why}"
        elif v == NOT_TESTABLE and _finite(self.effect):
            t += "; not testable at this scale: the design cannot detect the effect of interest"
        elif v == INCONCLUSIVE and self.excludes_interest and not self.powered:
            t += "; the interval rules out the effect of interest"
        elif v == REPRODUCED and self.kind == DIRECTIONAL and self.effect < self.interest:
            t += ("; the estimate is below the effect of interest: reproduced means not zero, "
                  "not large")
        return t

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = list(self.values)
        d.update(verdict=self.verdict, confidence=self.confidence, powered=self.powered)
        return _json_safe(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Test":
        names = {f.name for f in fields(cls)}

        def num(v):
            return math.inf if v == "inf" else -math.inf if v == "-inf" else \
                math.nan if v is None else v
        kw = {k: (num(v) if k in ("effect", "lo", "hi", "sd", "detectable") else v)
              for k, v in d.items() if k in names}
        kw["values"] = tuple(kw.get("values", ()))
        return cls(**kw)


def seed_test(values: Sequence[float], *, interest: float, null: str, unit: str = "",
              scale: float = 1.0, kind: str = DIRECTIONAL,
              borrowed: tuple[float, int, str] | None = None, why: str = "") -> Test:
    """A ``Test`` on per-unit values (per-seed differences, oriented so that the claim's side is
    positive; for equivalence, the differences whose size must stay under ``interest``).

    The interval is the t interval of the mean (1 - ALPHA two-sided for a directional claim,
    1 - 2 ALPHA for equivalence: TOST at ALPHA). ``borrowed = (sd, df, source)`` supplies the
    SD of one unit when these units give none (a single model: the deeper pairs, released
    models); the interval is then ``mean ± t[df] sd / sqrt(n)`` and ``source`` is shown. Values
    with no spread give no variance estimate (so never "reproduced" on a zero-width interval).
    NaN values are left out."""
    x = np.asarray([v for v in values if v is not None and v == v], dtype=float)
    n = int(x.size)
    if n == 0:
        return Test(kind, math.nan, -math.inf, math.inf, 0, math.nan, 0, interest, math.inf,
                    null, unit, scale, "", why or "no measurement", ())
    est = float(x.mean())
    sd, df, source = math.nan, 0, ""
    if n >= 2 and float(np.ptp(x)) > 1e-9 * max(1.0, float(np.abs(x).max())):  # rounding
        # differences of equal fractions are not a spread
        sd, df = float(x.std(ddof=1)), n - 1
    elif borrowed is not None and _finite(borrowed[0]) and borrowed[0] > 0 and borrowed[1] >= 1:
        sd, df, source = float(borrowed[0]), int(borrowed[1]), borrowed[2]
    if _finite(sd):
        q = _t_quantile(1 - ALPHA / 2 if kind == DIRECTIONAL else 1 - ALPHA, df)
        half = q * sd / math.sqrt(n)
        lo, hi = est - half, est + half
    else:
        lo, hi = -math.inf, math.inf
        if n >= 2 and not why:
            why = "the seeds do not differ at all: no variance estimate"
    return Test(kind, est, lo, hi, n, sd, df, interest, detectable_effect(sd, n, df, kind),
                null, unit, scale, source, why, tuple(x.tolist()))


def paired_test(a: Sequence[float], b: Sequence[float], **kw) -> Test:
    """``seed_test`` on the matched differences ``a[i] - b[i]`` (seed ``i`` of both)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need one a and one b per seed: got {len(a)} a values "
                         f"and {len(b)} b values")
    return seed_test([x - y for x, y in zip(a, b)], **kw)


def pooled_sd(tests: Sequence[Test]) -> tuple[float, int, str] | None:
    """The pooled between-seed SD of several tests' units (``sqrt(sum df sd^2 / sum df)``), to
    borrow for a single-model row; None if none has one."""
    have = [t for t in tests if _finite(t.sd) and t.df >= 1 and not t.borrowed]
    if not have:
        return None
    df = sum(t.df for t in have)
    return math.sqrt(sum(t.df * t.sd ** 2 for t in have) / df), df, ""


def gated(test: Test, why: str) -> Test:
    """``test`` marked not testable because its gate failed (``why``: the null it did not
    beat), its numbers kept for reading."""
    return replace(test, why=why)


def combined(*verdicts: str) -> str:
    """A claim made of several parts that must all hold: contradicted if any part is, else not
    testable if any part is, else inconclusive if any part is, else reproduced."""
    order = (CONTRADICTED, NOT_TESTABLE, INCONCLUSIVE, REPRODUCED)
    return min(verdicts, key=order.index) if verdicts else NOT_TESTABLE


def seeds_needed(sd: float, interest: float, kind: str = EQUIVALENCE,
                 limit: int = 10 ** 7) -> int | None:
    """The fewest independent seed pairs whose design detects ``interest`` with 80% power
    (``detectable_effect``, taking the per-pair SD ``sd`` as it was measured):
    for ``EQUIVALENCE``, the seed pairs a TOST at margin ``interest`` needs to show equivalence
    when the truth is 0. None without an SD, or beyond ``limit``."""
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd > 0):
        return None

    def enough(n: int) -> bool:
        return detectable_effect(sd, n, kind=kind) <= interest

    lo, hi = 1, 2  # not enough at lo (one pair has no SD), test hi
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi
