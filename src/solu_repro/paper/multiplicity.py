"""How many verdicts of each kind noise alone would give: the registry simulated under its nulls.

The book tests many claims at once. Each test's error rate is stated (``claim.ALPHA``): a
directional claim is reproduced under the null at most ALPHA / 2 of the time (one side of a 95%
interval), an equivalence claim at most ALPHA (TOST at its margin). Chapter 9 shows what that
means for the whole registry by simulating it: every empirical claim's tests are re-drawn with
no effect (directional: per-unit values ``N(0, sd)``; equivalence: ``N(margin, sd)``, the
boundary, where a false "equivalent" is likeliest), with the same number of seeds, the same
between-seed SD and the same smallest effect of interest, and decided by the same rule
(``claim.seed_test``, ``Test.verdict``, ``claim.combined``). A borrowed SD is re-drawn too
(``sd sqrt(chi2(df) / df)``), so its own uncertainty counts.

Two simplifications can only raise the simulated rate of "reproduced": every gate is taken as
passed (a gate only ever turns a verdict into "not testable"), and a claim capped by its parent
(the stricter annotator) is not capped. One can lower it: the parts of one claim are drawn
independently, though they may share models (a claim reproduced only when all its parts are is
then reproduced by noise less often than if its parts moved together; at most the stated rate
of its weakest part either way). A test with a sampling interval and no seed SD (a blinded
session) is re-drawn from a normal with its interval's width. Claims decided without any test
(not testable by design: no GPU kernel, no 64-layer model, a single multiplier per size) are
left out of the simulation and counted apart.

Measurement only; ``solu_repro.book.scorecard`` presents it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from .claim import (ALPHA, DIRECTIONAL, EMPIRICAL, REPRODUCED, VERDICTS, Claim, Test,
                    combined, seed_test, seeds_needed)

N_REGISTRIES = 2000
"""Simulated registries in chapter 9 (the Monte Carlo error of a 2.5% rate is about 0.35
points)."""


def stated_rate(test: Test) -> float:
    """The most often this test says "reproduced" when there is no effect: ALPHA / 2 for a
    directional claim (one side of a two-sided 95% interval), ALPHA for equivalence."""
    return ALPHA / 2 if test.kind == DIRECTIONAL else ALPHA


def _simulable(test: Test) -> bool:
    return test.n >= 1 and math.isfinite(test.sd) and test.sd > 0 and test.df >= 1


def null_draw(test: Test, rng: np.random.Generator) -> Test:
    """One draw of ``test`` under its null: the same design (n, SD, df, interest, kind), no
    effect (directional) or an effect exactly at the margin (equivalence); no gate."""
    if not _simulable(test):
        if math.isfinite(test.lo) and math.isfinite(test.hi) and not math.isfinite(test.sd):
            # a sampling interval without a seed SD: normal, with the interval's half-width
            half = (test.hi - test.lo) / 2
            centre = 0.0 if test.kind == DIRECTIONAL else test.interest
            e = float(rng.normal(centre, half / 1.959964))
            return replace(test, effect=e, lo=e - half, hi=e + half, why="")
        return test  # no variance estimate: not testable whatever the data
    centre = 0.0 if test.kind == DIRECTIONAL else test.interest
    values = rng.normal(centre, test.sd, size=test.n)
    borrowed = None
    if test.borrowed:
        borrowed = (test.sd * math.sqrt(rng.chisquare(test.df) / test.df), test.df,
                    test.borrowed)
    return replace(seed_test(values.tolist(), interest=test.interest, null=test.null,
                             unit=test.unit, scale=test.scale, kind=test.kind,
                             borrowed=borrowed), parts=test.parts)


@dataclass(frozen=True)
class NullRegistry:
    """The registry under its nulls, ``n`` times: per claim, how often each verdict came out,
    and per registry, how many claims were reproduced.

    Attributes:
        n: simulated registries.
        claims: the empirical claims simulated (those decided on at least one test), in
            registry order.
        by_design: the empirical claims decided without a test (not simulated).
        per_claim: ``{claim id: {verdict: fraction of registries}}``.
        stated: ``{claim id: the claim's stated rate of a false "reproduced"}`` (its headline
            test's; NaN for a claim without tests).
        reproduced_counts: per simulated registry, the number of claims reproduced.
    """

    n: int
    claims: tuple[str, ...]
    per_claim: dict[str, dict[str, float]]
    stated: dict[str, float]
    reproduced_counts: tuple[int, ...]
    by_design: tuple[str, ...] = ()

    @property
    def expected(self) -> dict[str, float]:
        """Per verdict, the mean number of claims given it per simulated registry."""
        return {v: sum(p[v] for p in self.per_claim.values()) for v in VERDICTS}

    @property
    def any_reproduced(self) -> float:
        """The fraction of simulated registries with at least one claim "reproduced"."""
        return float(np.mean([c > 0 for c in self.reproduced_counts])) if self.n else math.nan

    @property
    def reproduced_fraction(self) -> float:
        """The fraction of all simulated verdicts that were "reproduced"."""
        k = len(self.claims)
        return self.expected[REPRODUCED] / k if k else math.nan


def simulate_null(claims: Iterable[Claim], n: int = N_REGISTRIES, seed: int = 0
                  ) -> NullRegistry:
    """``n`` registries of the empirical ``claims`` (as chapter 9 loads them) under their
    nulls, seeded (``numpy`` ``default_rng(seed)``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (simulated registries) must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    every = [c for c in claims if c.kind == EMPIRICAL]
    emp = [c for c in every if c.tests]
    tests = {c.id: [Test.from_dict(t) for t in c.tests] for c in emp}
    counts: dict[str, Counter] = {c.id: Counter() for c in emp}
    reproduced = []
    for _ in range(n):
        k = 0
        for c in emp:
            ts = tests[c.id]
            v = combined(*(null_draw(t, rng).verdict for t in ts))
            counts[c.id][v] += 1
            k += v == REPRODUCED
        reproduced.append(k)
    per = {cid: {v: cnt[v] / n for v in VERDICTS} for cid, cnt in counts.items()}
    stated = {c.id: stated_rate(tests[c.id][0]) for c in emp}
    return NullRegistry(n, tuple(c.id for c in emp), per, stated, tuple(reproduced),
                        tuple(c.id for c in every if not c.tests))


def seeds_for(test: Test) -> int | None:
    """The fewest units (seed pairs) at which ``test``'s design, with its measured SD, would
    detect its smallest effect of interest with 80% power (``claim.seeds_needed``): what "not
    testable at this scale" would take. None without an SD."""
    return seeds_needed(test.sd, test.interest, test.kind)


def headline_tests(claims: Sequence[Claim]) -> list[tuple[Claim, Test | None]]:
    """Every empirical claim with its headline test (None if decided without one)."""
    return [(c, c.test) for c in claims if c.kind == EMPIRICAL]
