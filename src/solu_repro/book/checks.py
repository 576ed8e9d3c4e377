"""Regression checks that hold on any CPU: what the notebooks' nbval run pins.

A tiny model trained for 120 steps is chaotic: another CPU (another SIMD kernel, another
rounding) gives other weights, other losses, other scorer counts. So the notebooks pin two
kinds of output only:

- numbers that do not come from trained weights (the paper's worked examples, identities,
  parameter counts), printed as they are;
- properties of the trained models that hold with a stated margin, printed by the functions
  below as one line per check: ``ok    <what was checked>``. A failing check prints
  ``FAIL  <what was checked>: <what was measured>``, so the pinned text changes and nbval
  shows the measurement in its diff.

What the checks can and cannot catch, stated plainly:

- ``loss_checks`` is the only one about what training achieved. Its ceiling, 0.5 nats below
  the uniform ln(d_vocab), fails an untrained, diverged or NaN model and one whose learning
  rate is 100x too small (6.85 nats measured), with room to spare on any CPU (tiny validation
  losses 5.72-6.12 nats under ``ATEN_CPU_CAPABILITY`` default, avx2 and avx512, against a
  ceiling of 6.43). It does not fail a model that learnt only token frequencies: the tiny
  corpus's unigram cross-entropy is 6.10 nats, and 120-step tiny models end at about that
  level, so no stable margin beyond it exists at this scale. A wrong activation is caught by
  chapter 2's pinned worked examples (and tests/model/test_activations.py), not here.
- The others are consistency checks of the pipeline that turns scores into tables: counts of
  neurons, layers and bands that the zoo's configs fix, and bookkeeping identities (per-layer
  counts add up, role shares sum to 1, bands tile the range, inconsistent <= examples). They
  hold by construction as long as the code is right, and fail when a change breaks that code.
  They say nothing about how interpretable the tiny models are: that is chaotic across CPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..fmt import pct
from ..paper.claim import IDENTITY
from ..paper.registry import CLAIMS

UNIFORM_MARGIN = 0.5
"""A trained model's validation loss is at least this far (nats) below the uniform
distribution's ln(d_vocab). Untrained, it is at or above ln(d_vocab)."""

SAME_DEPTH_SPREAD = 0.6
"""Matched models of one depth (same init seed and data order) end within this many nats."""


@dataclass(frozen=True)
class Check:
    """One property: what it says, whether it held, what was measured."""

    what: str
    passed: bool
    measured: str = ""

    def line(self) -> str:
        if self.passed:
            return f"ok    {self.what}"
        return f"FAIL  {self.what}: {self.measured}"


def report(checks: Iterable[Check]) -> str:
    """The checks, one line each (what a pinned cell prints)."""
    return "\n".join(c.line() for c in checks)


def failed(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# --- chapter 3: losses --------------------------------------------------------------------------
def loss_checks(losses: Mapping[str, Any], d_vocab: int, margin: float = UNIFORM_MARGIN,
                spread: float = SAME_DEPTH_SPREAD) -> list[Check]:
    """Every model learnt (finite loss, clearly below uniform), the zoo shares one token budget,
    and matched models of a depth end close together. ``losses``: ``s5_performance.ModelLoss``
    by name."""
    ceiling = math.log(d_vocab) - margin
    out = [Check(f"{len(losses)} models share one token budget",
                 len({m.tokens for m in losses.values()}) == 1,
                 f"tokens {sorted({m.tokens for m in losses.values()})}")]
    for name, m in losses.items():
        out.append(Check(f"{name}: validation loss finite and below ln({d_vocab}) - {margin} "
                         f"= {ceiling:.2f} nats", _finite(m.val_loss) and 0 < m.val_loss < ceiling,
                         f"{m.val_loss!r}"))
        per_source_ok = all(_finite(v) and v > 0 for v in m.per_source.values())
        out.append(Check(f"{name}: a finite loss for each of {len(m.per_source)} sources",
                         per_source_ok and bool(m.per_source), f"{m.per_source!r}"))
    by_depth: dict[int, list[float]] = {}
    for m in losses.values():
        by_depth.setdefault(m.depth, []).append(m.val_loss)
    for depth, values in sorted(by_depth.items()):
        if len(values) > 1:
            width = max(values) - min(values)
            out.append(Check(f"{depth}L models end within {spread} nats of each other",
                             _finite(width) and width < spread, f"spread {width:.3f}"))
    return out


# --- chapters 4 and 5: the automated judge ------------------------------------------------------
def _proportion_checks(label: str, p: Any, n: int) -> list[Check]:
    return [
        Check(f"{label}: judged {n} neurons", p.n == n, f"judged {p.n}"),
        Check(f"{label}: 0 <= interpretable <= neurons, inside its Wilson interval",
              0 <= p.successes <= p.n and (p.n == 0 or p.lo - 1e-12 <= p.fraction <= p.hi + 1e-12),
              f"{p.successes}/{p.n}, {p.fraction} in [{p.lo}, {p.hi}]"),
    ]


def interp_checks(results: Mapping[str, Any], neurons_per_model: Mapping[str, int]
                  ) -> list[Check]:
    """Structure of chapter 4's table: each model judged on all its neurons, the full-spectrum
    verdict a subset of the top-20 one, per-layer counts adding up."""
    out = [Check(f"{len(neurons_per_model)} models scored",
                 sorted(results) == sorted(neurons_per_model), f"{sorted(results)}")]
    for name, r in results.items():
        n = neurons_per_model.get(name, -1)
        out += _proportion_checks(f"{name} top-20 view", r.top, n)
        out += _proportion_checks(f"{name} full-spectrum view", r.spectrum, n)
        out.append(Check(f"{name}: full-spectrum interpretable <= top-20 interpretable",
                         r.spectrum.successes <= r.top.successes,
                         f"{r.spectrum.successes} > {r.top.successes}"))
        per_layer = sum(row["interpretable"] for row in r.by_layer)
        out.append(Check(f"{name}: per-layer counts add up to the model's",
                         per_layer == r.top.successes and sum(row["n"] for row in r.by_layer) == n,
                         f"{per_layer} of {sum(row['n'] for row in r.by_layer)}"))
    return out


def scores_checks(scores: Any, n_neurons: int, threshold: float, min_lift: float
                  ) -> list[Check]:
    """Chapter 5: the scorer's records obey its own rule (coverage >= threshold and lift >=
    min_lift for every interpretable neuron; full-spectrum implies top-20)."""
    name = scores.meta.get("name", "?")
    recs = scores.records
    bad_rule = [f"L{r.layer}N{r.neuron}" for r in recs if r.interpretable and not (
        r.coverage >= threshold - 1e-9 and r.lift >= min_lift - 1e-9)]
    bad_subset = [f"L{r.layer}N{r.neuron}" for r in recs
                  if r.spectrum_interpretable and not r.interpretable]
    bad_range = [f"L{r.layer}N{r.neuron}" for r in recs if not all(
        math.isnan(v) or -1e-9 <= v <= 1 + 1e-9 for v in (r.coverage, r.precision, r.recall))]
    return [
        Check(f"{name}: {n_neurons} neurons scored", len(recs) == n_neurons, f"{len(recs)}"),
        Check(f"{name}: every interpretable neuron covers >= {pct(threshold, 0)} of its top "
              f"firings with lift >= {min_lift}", not bad_rule, ", ".join(bad_rule[:5])),
        Check(f"{name}: interpretable over the full spectrum implies at first glance",
              not bad_subset, ", ".join(bad_subset[:5])),
        Check(f"{name}: coverage, precision and recall lie in [0, 1]", not bad_range,
              ", ".join(bad_range[:5])),
    ]


# --- chapter 6: layer roles ---------------------------------------------------------------------
def layer_roles_checks(rows: Sequence[Mapping[str, Any]], depths: Mapping[str, int],
                       roles: Sequence[str]) -> list[Check]:
    """One row per layer of each model; role counts add up to the layer's interpretable count
    and shares to 1."""
    out = []
    for name, depth in depths.items():
        layers = [r["layer"] for r in rows if r["model"] == name]
        out.append(Check(f"{name}: one row per layer ({depth})", layers == list(range(depth)),
                         f"{layers}"))
    bad = []
    for r in rows:
        total = sum(r[role] for role in roles)
        shares = [r[f"{role}_fraction"] for role in roles]
        ok = total == r["n_interpretable"] and (
            total == 0 or abs(sum(shares) - 1) < 1e-9)
        if not ok:
            bad.append(f"{r['model']} L{r['layer']}")
    out.append(Check("role counts add up to each layer's interpretable neurons", not bad,
                     ", ".join(bad)))
    return out


# --- chapter 7: LayerNorm bands -----------------------------------------------------------------
# --- chapter 8: sparse dictionaries --------------------------------------------------------------
def features_checks(m: Any, *, expansion: int, k: int) -> list[Check]:
    """What holds whatever the trained weights: every seed has the four bases (and SoLU-LN's
    hook_post dictionary), each dictionary has ``expansion`` features per neuron and at most
    ``k`` active per token, fractions lie in [0, 1], and a unit vector's largest |component|
    is at least 1 / sqrt(d) (so no mean alignment can fall below that)."""
    from ..paper.s8_features import BASES, GELU, SOLU_LN

    out = []
    for seed in m.seeds:
        have = {(r.model, r.basis) for r in m.bases if r.seed == seed}
        want = {(GELU, "neurons"), (GELU, "sae mid"), (SOLU_LN, "neurons"),
                (SOLU_LN, "sae mid"), (SOLU_LN, "sae post")}
        out.append(Check(f"seed {seed}: the five bases measured", have == want,
                         f"have {sorted(have)}"))
    neurons = {(r.name): r.n_directions for r in m.bases if r.basis == "neurons"}
    ok_size = all(r.d_sae == expansion * neurons.get(r.name, -1) for r in m.dictionaries)
    out.append(Check(f"every dictionary has {expansion} features per neuron", ok_size))
    out.append(Check(f"L0 <= k={k} in every dictionary",
                     all(0 < r.l0 <= k + 1e-6 for r in m.dictionaries)))
    fracs = [v for r in m.dictionaries for v in (r.dead, r.aligned, r.no_counterpart)
             if v == v] + [v for r in m.bases for v in (r.interpretable, r.exposed, r.probe_f1)
                           if v == v]
    out.append(Check("fractions, r² and F1 in [0, 1]", all(0 <= v <= 1 for v in fracs)))
    out.append(Check("variance explained <= 1", all(r.fve <= 1 + 1e-9 for r in m.dictionaries)))
    out.append(Check("mean alignment and its null between 1/sqrt(d_mlp) and 1", all(
        neurons.get(r.name, 0) and 1 / math.sqrt(neurons[r.name]) - 1e-9
        <= min(r.alignment, r.alignment_null) and max(r.alignment, r.alignment_null) <= 1 + 1e-9
        for r in m.dictionaries)))
    out.append(Check(f"bases are {', '.join(BASES)}", {r.basis for r in m.bases} <= set(BASES)))
    return out


# --- chapter 9: the scorecard -------------------------------------------------------------------
def scorecard_checks(claims: Sequence[Any]) -> list[Check]:
    """The registry's structure (every claim has a row, by kind) and the verdicts of the
    identity claims, decided by algebra and worked examples rather than trained weights."""
    have = {c.id for c in claims}
    out = [Check(f"{len(claims)} of {len(CLAIMS)} registry claims scored",
                 have == {c.id for c in CLAIMS},
                 "missing " + ", ".join(c.id for c in CLAIMS if c.id not in have))]
    for c in claims:
        if c.kind == IDENTITY:
            out.append(Check(f"{c.section} {c.claim[:40]}...: {c.verdict}", True))
    return out


# --- structure of the zoo (from its configs, not from trained weights) -------------------------
def zoo_neurons(scale: str) -> dict[str, int]:
    """MLP neurons of each zoo model at ``scale`` (``overview.zoo_overview``'s count)."""
    from .overview import zoo_overview

    return {row["model"]: row["neurons"] for row in zoo_overview(scale)}


def zoo_depths(scale: str) -> dict[str, int]:
    """Layers of each zoo model at ``scale`` (``overview.zoo_overview``'s count)."""
    from .overview import zoo_overview

    return {row["model"]: row["layers"] for row in zoo_overview(scale)}
