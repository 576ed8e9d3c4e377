"""Paper §6.1-6.2 (interpretability, quantitative), chapter 4, with §3.2's privileged basis, §4.3
(SoLU alone) and §4.4 (blocking): the automated judge's fraction of interpretable neurons, its
null controls and the blinded human evaluation.

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book`` presents them).

The inputs are the judge's ``NeuronScores`` of each model (``solu_repro.interp.score``), the
same under a stricter judge (``STRICT``), the scores of each model's null controls
(``solu_repro.interp.controls``) and the blinded sessions' summaries (``BlindSummary``);
``measure`` turns them into ``InterpMeasurements`` and each claim's ``decide`` into a verdict.
The book's ``ch04_interpretability.gather(ctx)`` fetches the inputs from the zoo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..fmt import pct, points
from ..interp.stats import (Proportion, SeedInterval, paired_seed_difference)
from ..zoo import act_of, depth_of, label, seed_of, variant_of
from .claim import (DIRECTIONAL, EMPIRICAL, EQUIVALENCE, INTEREST_POINTS,
                    NOT_TESTABLE, REPRODUCED, SEED_RULE, Claim, ClaimSpec, Test, combined,
                    gated, pooled_sd, seed_test)

if TYPE_CHECKING:
    from ..interp.score import NeuronScores

VIEWS = {"top": "top-20 view (paper §6.1 rule)", "spectrum": "full-spectrum view"}
"""The judge's two views: the paper's rule on the top 20 firings, and the same explanation
also predicting the neuron's firing over the full spectrum of held-out text."""
NULL_LABELS = {"rotated": "rotated basis", "random_init": "untrained model",
               "solu_readout": "SoLU readout of GELU"}
STRICT = dict(threshold=0.9, min_lift=5.0)
"""The stricter judge of §6.2's "one annotator held a higher bar": 90% of the top firings
(not 80%) and a lift of 5 over the base rate (not 3)."""
BLOCKED_MARGIN = INTEREST_POINTS
"""§4.4 "no substantial effect" on interpretability: blocked SoLU-LN within ±5 points of SoLU-LN
on the deciding instrument, the same smallest effect of interest as every other 0-1 score
(``claim.INTEREST_POINTS``). A margin taken from the data (half of SoLU-LN's measured gain)
would share its noise with the test and let a false "equivalent" through more often than
stated."""


# --- one model: the fraction of its neurons judged interpretable ------------------------------
@dataclass(frozen=True)
class ModelInterpretability:
    """One zoo model's automated score: both views overall and per layer."""

    name: str
    act: str
    depth: int
    top: Proportion
    spectrum: Proportion
    by_layer: list[dict[str, Any]]
    distinct: int = 0  # different explanations among the neurons interpretable at first glance

    def row(self) -> dict[str, Any]:
        return {"model": self.name, "neurons": self.top.n,
                "interpretable": self.top.successes, "fraction": self.top.fraction,
                "ci_lo": self.top.lo, "ci_hi": self.top.hi,
                "spectrum_fraction": self.spectrum.fraction,
                "spectrum_ci_lo": self.spectrum.lo, "spectrum_ci_hi": self.spectrum.hi}


def summarize(name: str, scores: NeuronScores, label: str | None = None
              ) -> ModelInterpretability:
    """A model's (or a null control's) ``NeuronScores`` as fractions in both views."""
    return ModelInterpretability(
        name=label or name, act=act_of(name), depth=depth_of(name),
        top=scores.fraction_interpretable(view="top"),
        spectrum=scores.fraction_interpretable(view="spectrum"),
        by_layer=scores.by_layer(),
        distinct=len({r.explanation for r in scores.records if r.interpretable}))


def model_interpretability(scores: Mapping[str, NeuronScores],
                           names: Sequence[str] | None = None
                           ) -> dict[str, ModelInterpretability]:
    """Each model's summary (``summarize``), for ``names`` (default: every model scored)."""
    return {name: summarize(name, scores[name]) for name in names or scores}


# --- a model against the baseline of its depth ------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """SoLU-LN (or an ablation) against the GELU baseline of the same depth, one view.

    Every neuron of both models is scored, so the difference is a census of these two trained
    models, given without a binomial interval: the uncertainty that matters is between trained
    models (seeds), where the claims are decided."""

    name: str
    baseline: str
    view: str
    diff: float
    ratio: float


def compare(results: Mapping[str, ModelInterpretability], name: str, view: str = "top"
            ) -> Comparison:
    """``name`` minus the GELU baseline of its depth (a census: no interval)."""
    baseline = f"{depth_of(name)}L-gelu"
    a = getattr(results[name], view)
    b = getattr(results[baseline], view)
    ratio = a.fraction / b.fraction if b.successes else math.inf if a.successes else math.nan
    return Comparison(name, baseline, view, a.fraction - b.fraction, ratio)


def comparisons(results: Mapping[str, ModelInterpretability], view: str = "top"
                ) -> list[Comparison]:
    """Every non-baseline model against its same-depth baseline."""
    return [compare(results, name, view) for name, r in results.items()
            if r.act != "gelu" and f"{r.depth}L-gelu" in results]


# --- null controls: the same judge on bases that should not be special -------------------------
@dataclass(frozen=True)
class NullControls:
    """One model's neuron basis beside its null controls (``interp.controls``), both views."""

    name: str
    basis: ModelInterpretability
    nulls: dict[str, ModelInterpretability]

    def gain(self, control: str, view: str = "top") -> float:
        """The basis' fraction minus the null's: a census of one model's neurons and directions
        (the same activations read in two bases), so no interval; seeds give the interval
        (``InterpMeasurements.rotated_gains`` and the claims)."""
        return getattr(self.basis, view).fraction - getattr(self.nulls[control], view).fraction

    def against(self, control: str = "rotated", view: str = "top") -> str:
        """Whether the neuron basis has more interpretable units than the null in this one
        model: "beats", "loses" or "ties" (equal counts); a census, not a test."""
        g = self.gain(control, view)
        return "beats" if g > 0 else "loses" if g < 0 else "ties"


def null_controls(scores: Mapping[str, NeuronScores],
                  control_scores: Mapping[str, Mapping[str, NeuronScores]],
                  names: Sequence[str] | None = None,
                  controls: tuple[str, ...] | None = None) -> dict[str, NullControls]:
    """Each model's neuron basis (``scores``) beside the null controls scored for it
    (``control_scores[name][control]``); ``names``: these models (default: every model with
    controls); ``controls``: only these (default: every one scored)."""
    names = list(names or control_scores)
    basis = model_interpretability(scores, names)
    out = {}
    for name in names:
        nulls = {}
        for control, cs in control_scores[name].items():
            if controls is not None and control not in controls:
                continue
            nulls[control] = summarize(name, cs, f"{name} ({NULL_LABELS[control]})")
        out[name] = NullControls(name, basis[name], nulls)
    return out


@dataclass(frozen=True)
class RelativeDifference:
    """SoLU-LN minus GELU in the neuron basis, in the rotated basis, and the difference of
    the two (what SoLU adds that a rotation takes away), one view, for one model per arm.

    A census of two trained models (every neuron and every rotated direction scored), so
    numbers without intervals; the basis and the rotation read the same activations, so the
    difference of differences is taken within each model (paired), ``(SoLU-LN basis minus its
    rotation) minus (GELU basis minus its rotation)``. With one model per arm nothing is
    decided from it (``ONE_MODEL``); the 1-layer seeds decide (``InterpMeasurements``)."""

    view: str
    basis_diff: float
    rotated_diff: float
    diff_in_diff: float


ONE_MODEL = ("one model per arm: a census of two trained models, with no between-model "
             "interval, so not testable here")


def relative_difference(controls: Mapping[str, NullControls], solu: str, gelu: str,
                        view: str = "top") -> RelativeDifference:
    s, g = controls[solu], controls[gelu]
    basis = getattr(s.basis, view).fraction - getattr(g.basis, view).fraction
    rotated = getattr(s.nulls["rotated"], view).fraction - \
        getattr(g.nulls["rotated"], view).fraction
    return RelativeDifference(view, basis, rotated, s.gain("rotated", view) -
                              g.gain("rotated", view))


# --- three instruments, each against its nulls (issue 20) ---------------------------------------
INSTRUMENT_LABELS = {
    "top": "judge, top-20 view (fraction of neurons interpretable)",
    "spectrum": "judge, full-spectrum view (fraction of neurons interpretable)",
    "features_exposed": "rotation-fair judge score (features exposed, mean best r²)",
    "probe_f1": "sparse probing (best single neuron's F1, mean over labels)",
}
PREFERRED = ("features_exposed", "probe_f1")
"""The instruments the judge-based claims may be decided on, in order: the first that passes
the planted rotation test (``interp.calibration``) decides. The top-20 view is the paper's
metric and is reported beside them, but it credits a rotation of a heavy-tailed basis with
the same feature many times over (issue 20), so it decides nothing by itself."""
EXPOSED_BAR = 0.5
"""The rotation-fair score's default bar (``interp.basis_score.EXPOSED``)."""
STRICT_EXPOSED = 0.8
"""The stricter bar of the rotation-fair score (the §6.2 "annotator with a higher bar"): a
feature counts as exposed only where a single direction reaches r² of 0.8 with it (the
default bar is ``basis_score.EXPOSED``, 0.5)."""
BASES = {"basis": "neuron basis", "rotated": "rotated basis", "random_init": "untrained model"}


@dataclass(frozen=True)
class BasisInstruments:
    """One basis (a model's neurons, or a null control's directions) under every instrument.

    ``features_exposed`` and the shares come from ``interp.basis_score`` (over the union of the
    explanations of the basis and its nulls); the probe fields from ``interp.probing`` (None
    where the basis was not probed): per label, the best single direction's held-out F1 and
    the full linear probe's."""

    top: float
    spectrum: float
    features_exposed: float
    exposed_share: float
    strict_share: float
    n_features: int
    explained_variance: float
    distinct: int
    probe_f1: dict[str, float] | None = None
    full_probe_f1: dict[str, float] | None = None
    dedicated: tuple[str, ...] | None = None
    sparse_f1: dict[int, float] | None = None  # k -> mean over labels of the k-sparse probe's F1

    @property
    def mean_probe_f1(self) -> float:
        return float(np.mean(list(self.probe_f1.values()))) if self.probe_f1 else math.nan

    def value(self, instrument: str) -> float:
        """This basis's number under ``instrument`` (a key of ``INSTRUMENT_LABELS``)."""
        if instrument == "probe_f1":
            return self.mean_probe_f1
        return float(getattr(self, instrument))


def basis_instruments(scores: NeuronScores | None, fair=None, probe=None) -> BasisInstruments:
    """A basis's judge ``scores``, its ``BasisScore`` (``fair``) and its ``ProbeResult``
    (``probe``) as one ``BasisInstruments``; an instrument not measured (None) gives NaN (and
    None for the probe's fields)."""
    nan = math.nan
    r2 = np.asarray(fair.best_r2, dtype=float) if fair is not None else np.zeros(0)
    return BasisInstruments(
        top=scores.fraction_interpretable(view="top").fraction if scores is not None else nan,
        spectrum=scores.fraction_interpretable(view="spectrum").fraction
        if scores is not None else nan,
        features_exposed=float(fair.features_exposed) if fair is not None else nan,
        exposed_share=float((r2 > EXPOSED_BAR).mean()) if r2.size else nan,
        strict_share=float((r2 > STRICT_EXPOSED).mean()) if r2.size else nan,
        n_features=int(r2.size),
        explained_variance=float(fair.explained_variance) if fair is not None else nan,
        distinct=int(fair.distinct_explanations) if fair is not None else 0,
        probe_f1=None if probe is None else probe.best_f1(),
        full_probe_f1=None if probe is None else {n: p.full_probe_f1
                                                  for n, p in probe.labels.items()},
        dedicated=None if probe is None else tuple(probe.dedicated()),
        sparse_f1=None if probe is None else {
            k: float(np.mean([p.f1[k] for p in probe.labels.values()])) for k in probe.ks})


@dataclass(frozen=True)
class ModelInstruments:
    """One model's bases (``"basis"``, ``"rotated"``, ``"random_init"``: ``BASES``) under every
    instrument, and the judge's agreement with the ground-truth labels."""

    name: str
    bases: dict[str, BasisInstruments]
    agreement: Any = None  # interp.instruments.JudgeAgreement

    def gain(self, instrument: str, null: str = "rotated") -> float:
        """The basis's number minus the null's under ``instrument``."""
        return self.bases["basis"].value(instrument) - self.bases[null].value(instrument)

    def gap(self, null: str = "rotated") -> dict[str, float]:
        """Each label's privileged-basis gap: best single-neuron F1 minus the null's best
        single-direction F1."""
        a, b = self.bases["basis"].probe_f1 or {}, self.bases[null].probe_f1 or {}
        return {k: a[k] - b[k] for k in a if k in b}


# --- blinded human evaluation -----------------------------------------------------------------
@dataclass
class BlindSummary:
    """Aggregated blinded judgments of one session, and the scorer's agreement with them."""

    path: Path
    report: Any                     # interp.blind.BlindReport
    agreement: dict[str, Any] = field(default_factory=dict)

    @property
    def n_judgments(self) -> int:
        return sum(m.n_judged for m in self.report.models)


# --- the measurements, with seeds ----------------------------------------------------------------
@dataclass(frozen=True)
class InterpMeasurements:
    """Everything chapter 4 measures, computed once (``measure``); each claim's ``decide``
    turns it into a verdict.

    ``seed_fractions[view][variant][seed]`` is the judged-interpretable fraction of every
    seed of each 1-layer variant; ``rotated_gains[view][variant][seed]`` its neuron basis
    minus its rotated basis; ``strict_fractions[variant][seed]`` the top-20 fraction under the
    stricter judge (``STRICT``). The seed-0 models' neuron-level results stay in ``results``.
    """

    results: dict[str, ModelInterpretability]
    solu_vs_gelu: dict[int, Comparison]            # depth -> SoLU-LN minus baseline (top view)
    solu_vs_gelu_spectrum: dict[int, Comparison]
    ablation: Comparison | None                     # LN-only minus baseline (top view)
    ablation_vs_solu: Comparison | None             # LN-only minus SoLU-LN at the same depth
    blind: list[BlindSummary]
    nulls: dict[str, NullControls] = field(default_factory=dict)  # 1-layer models' controls
    relative: dict[str, RelativeDifference] = field(default_factory=dict)  # view -> 1L pair
    seed_fractions: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    rotated_gains: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    strict_fractions: dict[str, dict[int, float]] = field(default_factory=dict)
    one_layer: int = 1
    instruments: dict[str, "ModelInstruments"] = field(default_factory=dict)
    calibration: Any = None  # interp.calibration.RotationTest: the planted rotation test
    instrument: str | None = "top"  # what the judge-based claims are decided on

    @property
    def instrument_label(self) -> str:
        return INSTRUMENT_LABELS.get(self.instrument or "", "no instrument")

    def judged(self, kind: str = "value") -> dict[str, dict[int, float]]:
        """Per 1-layer variant and seed, under the instrument the claims are decided on
        (``instrument``): the basis's number (``kind="value"``), the basis minus its rotation
        (``"gain"``), and for the stricter-annotator claim the number under the stricter,
        full-spectrum criterion (``"strict"``) and the same minus its rotation
        (``"strict_gain"``). The stricter criterion is the share of features exposed at r²
        above ``STRICT_EXPOSED`` on the rotation-fair score, and the full-spectrum view on the
        unchecked judge ({} for sparse probing, which has no bar). A seed whose number is
        missing (NaN: not measured) is left out."""
        inst = self.instrument
        if inst in ("top", "spectrum"):
            return {"value": self.seed_fractions.get(inst, {}),
                    "gain": self.rotated_gains.get(inst, {}),
                    "strict": self.seed_fractions.get("spectrum", {}),
                    "strict_gain": self.rotated_gains.get("spectrum", {})}[kind]
        out: dict[str, dict[int, float]] = {}
        if inst is None or (kind.startswith("strict") and inst != "features_exposed"):
            return out
        for name, mi in self.instruments.items():
            if depth_of(name) != self.one_layer or "basis" not in mi.bases:
                continue
            if kind.endswith("gain") and "rotated" not in mi.bases:
                continue
            basis = mi.bases["basis"]
            v = {"value": lambda: basis.value(inst), "gain": lambda: mi.gain(inst),
                 "strict": lambda: basis.strict_share,
                 "strict_gain": lambda: basis.strict_share - mi.bases["rotated"].strict_share,
                 }[kind]()
            if v == v:  # not NaN
                out.setdefault(variant_of(name), {})[seed_of(name)] = v
        return out

    def judged_difference(self, a: str, b: str, kind: str = "value") -> SeedInterval | None:
        """``seed_difference`` of two 1-layer variants under ``instrument`` (``judged``)."""
        return self.seed_difference(a, b, table=self.judged(kind))

    def deeper_differences(self) -> dict[int, float]:
        """SoLU-LN minus GELU at each depth above one layer (one seed each: point estimates),
        under ``instrument``. Under the rotation-fair score the deeper models are scored over
        their own explanations only (no null of theirs is judged), a version of the score the
        planted test does not check: reported, and deciding nothing (``decide_figure4``)."""
        if self.instrument in ("top", "spectrum"):
            comps = self.solu_vs_gelu if self.instrument == "top" else self.solu_vs_gelu_spectrum
            return {d: c.diff for d, c in comps.items() if d != self.one_layer}
        out = {}
        for name, mi in self.instruments.items():
            d = depth_of(name)
            other = self.instruments.get(f"{d}L-gelu")
            if d != self.one_layer and act_of(name) == "solu_ln" and seed_of(name) == 0 \
                    and other is not None and self.instrument is not None:
                diff = mi.bases["basis"].value(self.instrument) - \
                    other.bases["basis"].value(self.instrument)
                if diff == diff:  # a deeper model not measured on this instrument: left out
                    out[d] = diff
        return dict(sorted(out.items()))

    def deeper_gain(self, depth: int) -> float | None:
        """The seed-0 ``depth``-layer SoLU-LN model's neuron basis minus its rotated basis under
        ``instrument`` (None where that null is not measured)."""
        if self.instrument in ("top", "spectrum"):
            nc = self.nulls.get(f"{depth}L-solu_ln")
            return None if nc is None or "rotated" not in nc.nulls else \
                nc.gain("rotated", self.instrument)
        mi = self.instruments.get(f"{depth}L-solu_ln")
        if mi is None or "rotated" not in mi.bases or self.instrument is None:
            return None
        g = mi.gain(self.instrument)
        return g if g == g else None

    def rotated_gain(self, name: str, view: str = "top") -> float:
        """``name``'s neuron basis minus its rotated null (a census of one model)."""
        return self.nulls[name].gain("rotated", view)

    def variant(self, act: str) -> str:
        return f"{self.one_layer}L-{act}"

    def seed_difference(self, a: str, b: str, view: str = "top",
                        table: dict[str, dict[int, float]] | None = None) -> SeedInterval | None:
        """Variant ``a`` minus ``b`` (acts at one layer, e.g. "solu_ln", "gelu") over their
        matched seeds: a paired t interval (None if either is missing)."""
        table = self.seed_fractions.get(view, {}) if table is None else table
        fa, fb = table.get(self.variant(a)), table.get(self.variant(b))
        if not fa or not fb:
            return None
        common = sorted(set(fa) & set(fb))
        return paired_seed_difference([fa[i] for i in common], [fb[i] for i in common])

    def net_of_rotation(self, view: str = "top") -> SeedInterval | None:
        """(SoLU-LN minus its rotation) minus (GELU minus its rotation), over matched seeds."""
        return self.seed_difference("solu_ln", "gelu", view, self.rotated_gains.get(view, {}))


def seeds_by_variant(names: Sequence[str], depth: int) -> dict[str, list[str]]:
    """Every seed among ``names`` of each ``depth``-layer variant, seed 0 first:
    {"1L-gelu": ["1L-gelu", "1L-gelu-s1", ...], ...}."""
    out: dict[str, list[str]] = {}
    for name in names:
        if depth_of(name) == depth:
            out.setdefault(variant_of(name), []).append(name)
    return {v: sorted(ns, key=seed_of) for v, ns in out.items()}


def measure(scores: Mapping[str, NeuronScores],
            strict_scores: Mapping[str, NeuronScores],
            control_scores: Mapping[str, Mapping[str, NeuronScores]],
            blind: Sequence[BlindSummary] = (),
            instruments: Mapping[str, ModelInstruments] | None = None,
            calibration: Any = None) -> InterpMeasurements:
    """Chapter 4's measurements from the judge's scores and the rotation-fair instruments.

    Args:
        scores: the default judge's scores of every model read, in zoo order: the seed-0
            model of every variant and depth, and every seed of the 1-layer variants.
        strict_scores: the stricter judge's (``STRICT``) scores of every seed of the 1-layer
            SoLU-LN / GELU pair.
        control_scores: ``{name: {control: scores}}``: every null control of each seed-0
            1-layer model, and the rotated basis of every other seed of the pair.
        blind: the blinded sessions with judgments.
        instruments: ``{name: ModelInstruments}``: every 1-layer model and seed under the
            three instruments, with its rotated and untrained nulls, and the deeper seed-0
            models' bases (``basis_instruments``).
        calibration: the planted rotation test (``interp.calibration.RotationTest``): the
            judge-based claims are decided on the first instrument of ``PREFERRED`` that
            passes it (none passing: those claims are not testable). ``None``: decided on the
            top-20 view, unchecked (what a caller without instruments gets).
    """
    names = [n for n in scores if seed_of(n) == 0]
    results = model_interpretability(scores, names)
    solu = {r.depth: compare(results, r.name) for r in results.values() if r.act == "solu_ln"}
    spec = {r.depth: compare(results, r.name, "spectrum")
            for r in results.values() if r.act == "solu_ln"}
    ablation = next((compare(results, r.name) for r in results.values() if r.act == "gelu_ln"),
                    None)
    ablation_vs_solu = None
    if ablation is not None:
        depth = depth_of(ablation.name)
        a, b = results[ablation.name].top, results[f"{depth}L-solu_ln"].top
        ablation_vs_solu = Comparison(ablation.name, f"{depth}L-solu_ln", "top",
                                      a.fraction - b.fraction,
                                      a.fraction / b.fraction if b.successes else math.nan)
    one = min(r.depth for r in results.values())
    seeds = seeds_by_variant(list(scores), one)
    fractions: dict[str, dict[str, dict[int, float]]] = {view: {} for view in VIEWS}
    for variant, seed_names in seeds.items():
        for name in seed_names:
            r = results[name] if name in results else summarize(name, scores[name])
            for view in VIEWS:
                fractions[view].setdefault(variant, {})[seed_of(name)] = \
                    getattr(r, view).fraction
    pair = (f"{one}L-solu_ln", f"{one}L-gelu")
    strict = {}
    if all(v in seeds for v in pair) and all(n in strict_scores for v in pair
                                             for n in seeds[v]):
        for variant in pair:
            strict[variant] = {seed_of(n): strict_scores[n].fraction_interpretable(view="top")
                               .fraction for n in seeds[variant]}
    nulls = null_controls(scores, control_scores, [n for n in names if depth_of(n) == one])
    relative = {}
    if all(n in nulls for n in pair):
        relative = {view: relative_difference(nulls, *pair, view) for view in VIEWS}
    gains: dict[str, dict[str, dict[int, float]]] = {view: {} for view in VIEWS}
    for variant in pair:
        for name in seeds.get(variant, []):
            nc = nulls[name] if name in nulls else \
                null_controls(scores, control_scores, [name], ("rotated",))[name]
            for view in VIEWS:
                gains[view].setdefault(variant, {})[seed_of(name)] = nc.gain("rotated", view)
    instrument: str | None = "top"
    if calibration is not None:
        instrument = next((i for i in PREFERRED if i in calibration.checks
                           and calibration.passes(i)), None)
    return InterpMeasurements(results, solu, spec, ablation, ablation_vs_solu, list(blind),
                              nulls, relative, fractions, gains, strict, one,
                              dict(instruments or {}), calibration, instrument)


def interval_points(d: SeedInterval, unit: str = "points") -> str:
    """A seed interval of fractions in percentage points: "+4.2 [-1.0, +9.4] points (3 seeds)"."""
    seeds = "1 seed" if d.n_seeds == 1 else f"{d.n_seeds} seeds"
    return f"{points(d.estimate)} [{points(d.lo)}, {points(d.hi)}] {unit} ({seeds})"


# --- released models (the ``models`` parameter) -----------------------------------------------
@dataclass(frozen=True)
class ReleasedInterp:
    """Chapter 4's measurements on released models: each model's score, SoLU-LN minus GELU
    at each depth where both were named, and every model's nulls."""

    results: dict[str, ModelInterpretability]
    comparisons: dict[tuple[int, str], Comparison]
    nulls: dict[str, NullControls]
    relative: dict[int, dict[str, RelativeDifference]]


def released_measurements(scores: Mapping[str, NeuronScores],
                          control_scores: Mapping[str, Mapping[str, NeuronScores]]
                          ) -> ReleasedInterp:
    """The released models' scores (under zoo-style names, "1L-solu_ln") beside all their
    nulls (rotated basis, untrained model of the same architecture, SoLU readout of GELU)."""
    results = model_interpretability(scores)
    comps = {(r.depth, view): compare(results, r.name, view)
             for r in results.values() if r.act == "solu_ln" and f"{r.depth}L-gelu" in results
             for view in VIEWS}
    nulls = null_controls(scores, control_scores, list(scores))
    relative = {d: {view: relative_difference(nulls, f"{d}L-solu_ln", f"{d}L-gelu", view)
                    for view in VIEWS}
                for d in sorted({depth for depth, _ in comps})}
    return ReleasedInterp(results, comps, nulls, relative)


# --- the claims this section decides, each beside its decision ----------------------------
INSTRUMENT_RULE = ("decided on the first instrument of s6_interpretability.PREFERRED (the "
                   "rotation-fair judge score, else sparse probing) that passes the planted "
                   "rotation test (interp.calibration), not testable if none passes; gated on "
                   "the rotated null: the claim holds only where, in the model family it "
                   "credits, the instrument's neuron basis beats its rotation over seeds "
                   "(reproduced by the same rule), else not testable; effects of interest "
                   "5 points (claim.INTEREST_POINTS); ")


def _ungated(spec: ClaimSpec, m: InterpMeasurements) -> Claim | None:
    """The claim, not testable, when no instrument passed the planted rotation test, or when
    the one that passed was not measured on the models."""
    if m.instrument not in (None, "top", "spectrum") and not m.instruments:
        return spec.scored(f"the {m.instrument_label} passed the planted rotation test but was "
                           "not measured on the models (no instruments given)", NOT_TESTABLE)
    if m.instrument is not None:
        return None
    failed = "; ".join(f"{i}: rotation keeps {c.ratio:.0%} of the basis's number"
                       for i, c in (m.calibration.checks.items() if m.calibration else ()))
    return spec.scored("no instrument passed the planted rotation test (" + failed + ")",
                       NOT_TESTABLE)


def _in_points(instrument: str | None) -> str:
    return "points of r² x 100" if instrument == "features_exposed" else \
        "points of F1 x 100" if instrument == "probe_f1" else "points"


def _paired(table: Mapping[str, Mapping[int, float]], a: str, b: str) -> list[float] | None:
    """Per matched seed, ``table[a][seed] - table[b][seed]`` (None if a variant is missing)."""
    fa, fb = table.get(a), table.get(b)
    if not fa or not fb:
        return None
    return [fa[i] - fb[i] for i in sorted(set(fa) & set(fb))]


def judged_test(m: InterpMeasurements, a: str, b: str | None = None, kind: str = "value", *,
                null: str, weights: Sequence[tuple[str, str, float]] = ()) -> Test | None:
    """A directional ``Test`` on the instrument the claims are decided on (``m.judged(kind)``):
    1-layer variant ``a`` minus ``b`` over matched seeds (``b`` None: ``a``'s own values), plus
    ``w x (x - y)`` for each ``(x, y, w)`` of ``weights`` on the same seeds; None if a variant
    is missing."""
    table = m.judged(kind)
    one = m.variant
    if b is None:
        base = table.get(one(a))
        values = [base[i] for i in sorted(base)] if base else None
        seeds = sorted(base) if base else []
    else:
        values = _paired(table, one(a), one(b))
        fa, fb = table.get(one(a)) or {}, table.get(one(b)) or {}
        seeds = sorted(set(fa) & set(fb))
    if values is None:
        return None
    for x, y, w in weights:
        fx, fy = table.get(one(x)) or {}, table.get(one(y)) or {}
        if not all(i in fx and i in fy for i in seeds):
            return None
        values = [v + w * (fx[i] - fy[i]) for v, i in zip(values, seeds)]
    return seed_test(values, interest=INTEREST_POINTS, null=null, unit=_in_points(m.instrument),
                     scale=100)


def rotation_gate(m: InterpMeasurements, act: str, kind: str = "gain") -> Test | None:
    """The gate of a claim crediting ``act``'s neurons: its neuron basis minus its rotated
    basis under the deciding instrument, over seeds (``kind="strict_gain"``: at the stricter
    bar). None if not measured."""
    return judged_test(m, act, None, kind, null="rotated basis of the same model")


def _gate(test: Test, gate: Test | None, family: str) -> Test:
    """``test``, not testable unless ``gate`` (the family's basis against its rotation) is
    reproduced."""
    if gate is None:
        return gated(test, f"no rotated null of {family} measured under this instrument")
    if gate.verdict != REPRODUCED:
        return gated(test, f"the instrument does not beat its rotated null in {family} "
                           f"models (basis minus rotation {gate.interval_text}: "
                           f"{gate.verdict})")
    return test


FIGURE4 = ClaimSpec(
    "figure4", "§6.2 / Figure 4", "SoLU-LN neurons are more often interpretable at "
    "first glance than baseline neurons (~60% vs ~35%, +25 points, 1.7x; 1-40 "
    "layers)", "+25 points", EMPIRICAL, "04-interpretability-quantitative",
    INSTRUMENT_RULE + "SoLU-LN minus GELU over matched 1-layer seed pairs, and the same net "
    "of each model's rotated basis ((SoLU-LN minus its rotation) minus (GELU minus its "
    "rotation)): both must hold (the deeper pairs are the separate row figure4_depth); "
    + SEED_RULE)


@FIGURE4.decided_by
def decide_figure4(m: InterpMeasurements) -> Claim:
    if (ungated := _ungated(FIGURE4, m)) is not None:
        return ungated
    seed = judged_test(m, "solu_ln", "gelu", null="GELU of the same seed")
    if seed is None:
        return FIGURE4.scored("no matched 1-layer pair", NOT_TESTABLE)
    gate = rotation_gate(m, "solu_ln")
    tests = [_gate(seed, gate, "SoLU-LN")]
    net = judged_test(m, "solu_ln", "gelu", "gain",
                      null="each model's rotated basis (difference of the two gains)")
    ours = f"{m.instrument_label}, SoLU-LN minus GELU, 1L over seeds: {tests[0].text}"
    if net is not None:
        tests.append(_gate(net, gate, "SoLU-LN"))
        ours += f"; net of the rotated-basis nulls: {net.interval_text}"
    if gate is not None:
        ours += f"; gate, SoLU-LN basis minus rotation: {gate.interval_text} ({gate.verdict})"
    return FIGURE4.scored(ours, tests=tests, values={"instrument": m.instrument})


FIGURE4_DEPTH = ClaimSpec(
    "figure4_depth", "§6.2 / Figure 4", "The SoLU-LN advantage holds in deeper models "
    "(the paper: 1 to 40 layers)", "SoLU-LN ahead at every depth", EMPIRICAL,
    "04-interpretability-quantitative",
    INSTRUMENT_RULE + "SoLU-LN minus GELU at each depth above one layer; one seed per depth, "
    "so the interval borrows the between-seed SD of the 1-layer pair's differences (and says "
    "so); gated on the deeper SoLU-LN model's basis beating its rotation, with the SD of the "
    "1-layer gains borrowed; every depth must hold; " + SEED_RULE)


@FIGURE4_DEPTH.decided_by
def decide_figure4_depth(m: InterpMeasurements) -> Claim:
    if (ungated := _ungated(FIGURE4_DEPTH, m)) is not None:
        return ungated
    deeper = m.deeper_differences()
    if not deeper:
        return FIGURE4_DEPTH.scored("no deeper SoLU-LN / GELU pair", NOT_TESTABLE)
    one = judged_test(m, "solu_ln", "gelu", null="GELU of the same seed")
    one_gate = rotation_gate(m, "solu_ln")
    borrow = pooled_sd([one]) if one is not None else None
    gate_borrow = pooled_sd([one_gate]) if one_gate is not None else None
    src = f"the {m.one_layer}L SoLU-LN / GELU seed pairs"
    tests, parts = [], []
    for depth, diff in deeper.items():
        t = seed_test([diff], interest=INTEREST_POINTS, null="GELU of the same depth",
                      unit=_in_points(m.instrument), scale=100,
                      borrowed=None if borrow is None else (borrow[0], borrow[1], src))
        gain = m.deeper_gain(depth)
        if gain is None:
            t = gated(t, f"no rotated null of the {depth}L models is measured at this scale "
                         "(one seed each; their score covers their own explanations only, a "
                         "version the planted rotation test does not check)")
        else:
            g = seed_test([gain], interest=INTEREST_POINTS, null="rotated basis",
                          unit=_in_points(m.instrument), scale=100,
                          borrowed=None if gate_borrow is None else
                          (gate_borrow[0], gate_borrow[1], f"the {m.one_layer}L SoLU-LN seeds"))
            t = _gate(t, g, f"{depth}L SoLU-LN")
        tests.append(t)
        parts.append(f"{depth}L: {t.interval_text}" + (f" (not testable: {t.why})" if t.why
                                                      else ""))
    if borrow is not None:
        parts.append(f"SD borrowed from {src}")
    return FIGURE4_DEPTH.scored(f"{m.instrument_label}, SoLU-LN minus GELU (one seed per "
                                "depth): " + "; ".join(parts), tests=tests,
                                values={"deeper": deeper})


PRIVILEGED_BASIS = ClaimSpec(
    "privileged_basis", "§3.2 (privileged basis)", "A coordinate-wise nonlinearity "
    "makes the MLP's neuron basis privileged: neurons more interpretable than "
    "random directions of the same space", "plausible, not guaranteed; no number",
    EMPIRICAL, "04-interpretability-quantitative",
    "neuron basis minus rotated basis, per 1-layer seed of SoLU-LN and GELU, under every "
    "instrument of s6_interpretability.PREFERRED that passes the planted rotation test "
    "(interp.calibration; none passing: not testable), effect of interest 5 points: every "
    "activation under every passing instrument must hold; " + SEED_RULE)


@PRIVILEGED_BASIS.decided_by
def decide_privileged_basis(m: InterpMeasurements) -> Claim:
    if m.calibration is None:  # unchecked: the full-spectrum judge, as before the test
        tables = {"spectrum": m.rotated_gains.get("spectrum", {})}
    else:
        if (ungated := _ungated(PRIVILEGED_BASIS, m)) is not None:
            return ungated
        passing = [i for i in PREFERRED if i in m.calibration.checks
                   and m.calibration.passes(i)]
        tables = {}
        for inst in passing:
            for name, mi in m.instruments.items():
                gain = mi.gain(inst) if "rotated" in mi.bases else math.nan
                if depth_of(name) == m.one_layer and act_of(name) in ("solu_ln", "gelu") \
                        and gain == gain:  # a basis or null not measured (NaN) is left out
                    tables.setdefault(inst, {}).setdefault(variant_of(name), {})[
                        seed_of(name)] = gain
    tests = {inst: {v: seed_test([by_seed[i] for i in sorted(by_seed)],
                                 interest=INTEREST_POINTS, null="rotated basis of the same model",
                                 unit=_in_points(inst), scale=100)
                    for v, by_seed in table.items()} for inst, table in tables.items()}
    if not any(tests.values()):
        return PRIVILEGED_BASIS.scored("no null controls scored", NOT_TESTABLE)
    ours = "; ".join(
        f"{INSTRUMENT_LABELS[inst]}, neuron basis minus rotated basis: " + ", ".join(
            f"{label(v)} {t.interval_text} ({t.verdict})" for v, t in by_v.items())
        for inst, by_v in tests.items())
    flat = sorted((t for by_v in tests.values() for t in by_v.values()),
                  key=lambda t: ("contradicted", "not testable here", "inconclusive",
                                 "reproduced").index(t.verdict))
    return PRIVILEGED_BASIS.scored(ours, tests=flat)


SPECTRUM_NOTE = ClaimSpec(
    "spectrum_note", "§6.1 note", "Top examples may not reflect the whole "
    "activation spectrum (added after publication)", "a caution, no number",
    EMPIRICAL, "04-interpretability-quantitative",
    "reported beside the top-20 view; the paper gives no number to compare")


@SPECTRUM_NOTE.decided_by
def decide_spectrum_note(m: InterpMeasurements) -> Claim:
    spec = m.seed_difference("solu_ln", "gelu", "spectrum")
    return SPECTRUM_NOTE.scored(
        "full-spectrum judge, SoLU-LN minus GELU, 1L over seeds: "
        + (interval_points(spec) if spec is not None else "n/a"), NOT_TESTABLE,
        values=None if spec is None else spec.to_dict())


SOLU_ALONE = ClaimSpec(
    "solu_alone", "§4.3", "SoLU alone (without the LN) makes neurons more "
    "interpretable, and adding the LN keeps most of that gain", "qualitative",
    EMPIRICAL, "04-interpretability-quantitative",
    INSTRUMENT_RULE + "over matched 1-layer seeds, both must hold: SoLU (no LN) minus GELU "
    "above 0 (gated on SoLU's basis beating its rotation), and adding the LN keeps at least "
    "half of that gain: (SoLU-LN minus SoLU) + 0.5 (SoLU minus GELU) above 0 (gated on SoLU's "
    "and SoLU-LN's bases beating their rotations); " + SEED_RULE)


@SOLU_ALONE.decided_by
def decide_solu_alone(m: InterpMeasurements) -> Claim:
    if (ungated := _ungated(SOLU_ALONE, m)) is not None:
        return ungated
    alone = judged_test(m, "solu", "gelu", null="GELU of the same seed")
    keeps = judged_test(m, "solu_ln", "solu", weights=(("solu", "gelu", 0.5),),
                        null="SoLU having lost half its gain over GELU")
    if alone is None or keeps is None:
        return SOLU_ALONE.scored("no SoLU-without-LN model", NOT_TESTABLE)
    gate = rotation_gate(m, "solu")
    tests = [_gate(alone, gate, "SoLU (no LN)"),
             _gate(_gate(keeps, gate, "SoLU (no LN)"), rotation_gate(m, "solu_ln"), "SoLU-LN")]
    return SOLU_ALONE.scored(
        f"{m.instrument_label}: SoLU (no LN) minus GELU: {tests[0].text}; adding the LN keeps "
        f"half of it, (SoLU-LN minus SoLU) + half the gain: {tests[1].interval_text} "
        f"({tests[1].verdict})", tests=tests)


LN_ONLY_HALFWAY = ClaimSpec(
    "ln_only_halfway", "§6.2", "The LN-only ablation scores about halfway between "
    "baseline and SoLU-LN (16 layers); tested as its order, between the two", "halfway",
    EMPIRICAL,
    "04-interpretability-quantitative",
    INSTRUMENT_RULE + "over matched 1-layer seeds, both must hold: GELU-LN minus GELU above 0 "
    "(gated on GELU-LN's basis beating its rotation) and SoLU-LN minus GELU-LN above 0 (gated "
    "on SoLU-LN's); " + SEED_RULE + ". Our ablation has 1 layer, the paper's 16")


@LN_ONLY_HALFWAY.decided_by
def decide_ln_only_halfway(m: InterpMeasurements) -> Claim:
    if (ungated := _ungated(LN_ONLY_HALFWAY, m)) is not None:
        return ungated
    above = judged_test(m, "gelu_ln", "gelu", null="GELU of the same seed")
    below = judged_test(m, "solu_ln", "gelu_ln", null="GELU-LN of the same seed")
    if above is None or below is None:
        return LN_ONLY_HALFWAY.scored("no LN-only ablation", NOT_TESTABLE)
    tests = [_gate(above, rotation_gate(m, "gelu_ln"), "GELU-LN"),
             _gate(below, rotation_gate(m, "solu_ln"), "SoLU-LN")]
    return LN_ONLY_HALFWAY.scored(
        f"{m.instrument_label}: GELU-LN minus GELU: {tests[0].text}; SoLU-LN minus GELU-LN: "
        f"{tests[1].interval_text} ({tests[1].verdict})", tests=tests)


def _at_floor(m: InterpMeasurements) -> str:
    """Why the stricter bar cannot test the claim when it is at floor: GELU and every rotated
    basis have no feature above the bar in any seed, so the comparison and its null are the
    same numbers ("" when the bar is above floor for some of them)."""
    strict = m.judged("strict").get(m.variant("gelu"), {})
    gains, values = m.judged("strict_gain"), m.judged("strict")
    rotated = [values[v][i] - gains[v][i] for v in gains for i in gains[v]
               if i in values.get(v, {})]
    if strict and rotated and all(x == 0 for x in strict.values()) and all(
            abs(x) < 1e-12 for x in rotated):
        return ("the stricter bar is at floor: no feature of GELU or of any rotated basis "
                "reaches it in any seed, so the comparison, its null and its gate are the same "
                "numbers")
    return ""


STRICTER_ANNOTATOR = ClaimSpec(
    "stricter_annotator", "§6.2", "One annotator held a higher bar (\"less willing to "
    "ignore small activations\"); the SoLU-LN advantage holds for the stricter one too",
    "consistent under both", EMPIRICAL, "04-interpretability-quantitative",
    INSTRUMENT_RULE + "the stricter annotator as the paper describes it, a full-spectrum "
    "criterion: on the rotation-fair score, the share of features a single direction "
    "explains with r² above 0.8 over every token (s6_interpretability.STRICT_EXPOSED), so "
    "weak firings off the feature count against it; on the unchecked judge, the full-spectrum "
    "view; sparse probing has no such bar (not testable). SoLU-LN minus GELU over matched "
    "1-layer seeds, and the same net of each model's rotated basis at that bar, must both "
    "hold, gated on SoLU-LN's basis beating its rotation at that bar; a sub-claim, so never "
    "above its parent (figure4): the verdict is combined with the parent's; " + SEED_RULE)


@STRICTER_ANNOTATOR.decided_by
def decide_stricter_annotator(m: InterpMeasurements) -> Claim:
    if (ungated := _ungated(STRICTER_ANNOTATOR, m)) is not None:
        return ungated
    strict = judged_test(m, "solu_ln", "gelu", "strict", null="GELU of the same seed")
    if strict is None:
        why = ("no matched 1-layer pair" if m.judged_difference("solu_ln", "gelu") is None
               else f"{m.instrument_label} has no stricter bar")
        return STRICTER_ANNOTATOR.scored(why, NOT_TESTABLE)
    net = judged_test(m, "solu_ln", "gelu", "strict_gain",
                      null="each model's rotated basis at the stricter bar")
    gate = rotation_gate(m, "solu_ln", "strict_gain")
    floor = _at_floor(m)
    tests = [gated(strict, floor) if floor else _gate(strict, gate, "SoLU-LN")]
    if net is not None:
        tests.append(gated(net, floor) if floor else _gate(net, gate, "SoLU-LN"))
    parent = decide_figure4(m)
    bar = ("full-spectrum view of the judge" if m.instrument in ("top", "spectrum") else
           f"share of features exposed at r² above {STRICT_EXPOSED:g}")
    ours = f"SoLU-LN minus GELU under the stricter annotator ({bar}): {tests[0].text}"
    if net is not None:
        ours += f"; net of the rotated bases: {net.interval_text}"
    if gate is not None:
        ours += f"; gate, SoLU-LN basis minus rotation at that bar: {gate.interval_text}"
    ours += f"; parent claim (figure4): {parent.verdict}"
    verdict = combined(*(t.verdict for t in tests), parent.verdict)
    return STRICTER_ANNOTATOR.scored(ours, verdict, tests=tests)


BLOCKED_INTERP = ClaimSpec(
    "blocked_interp", "§4.4", "Blocking SoLU's softmax and LN has no substantial "
    "effect on interpretability", "no substantial effect", EMPIRICAL,
    "04-interpretability-quantitative",
    INSTRUMENT_RULE + "an equivalence claim: blocked SoLU-LN minus SoLU-LN over matched "
    "seeds against a fixed margin of ±5 points (s6_interpretability.BLOCKED_MARGIN): "
    "reproduced (equivalent) if the 90% interval lies inside the margin (TOST at 5%), "
    "contradicted (not equivalent) if the 95% interval lies wholly outside, else not "
    "testable at this scale when the smallest margin the design could show exceeds ±5, "
    "else inconclusive; gated on the blocked model's basis beating its rotation")


@BLOCKED_INTERP.decided_by
def decide_blocked_interp(m: InterpMeasurements) -> Claim:
    if (ungated := _ungated(BLOCKED_INTERP, m)) is not None:
        return ungated
    diffs = _paired(m.judged(), m.variant("solu_ln_b4"), m.variant("solu_ln"))
    if diffs is None:
        return BLOCKED_INTERP.scored("no blocked SoLU-LN model", NOT_TESTABLE)
    margin = BLOCKED_MARGIN
    test = seed_test(diffs, interest=margin, null="SoLU-LN of the same seed (margin ±5 points)",
                     unit=_in_points(m.instrument), scale=100, kind=EQUIVALENCE)
    gate = rotation_gate(m, "solu_ln_b4")
    test = _gate(test, gate, "blocked SoLU-LN")
    return BLOCKED_INTERP.scored(
        f"{m.instrument_label}: blocked SoLU-LN (4 blocks) minus SoLU-LN: {test.text}",
        tests=[test], values={"margin": margin})


DEPTH64 = ClaimSpec(
    "depth64", "§6.2", "At 64 layers the gain shrinks (42% vs 33%)", "42% vs 33%",
    EMPIRICAL, "04-interpretability-quantitative", "needs 64-layer models")


@DEPTH64.decided_by
def decide_depth64(m: InterpMeasurements) -> Claim:
    return DEPTH64.scored(f"our deepest models have {max(m.solu_vs_gelu, default=0)} layers",
                          NOT_TESTABLE)


HUMAN_BLIND = ClaimSpec(
    "human_blind", "§6.1-6.2", "Blinded human evaluators (the paper's measurement)",
    "+25 points", EMPIRICAL, "04-interpretability-quantitative",
    "matched pairs only (same depth and seed), SoLU-LN minus GELU in each session: the "
    "neurons judged are a random sample of each model's, so the 95% Newcombe interval over "
    "them is a sampling interval; every session must hold by the symmetric rule, with the "
    "smallest detectable effect from the interval's width (normal approximation, 80% power) "
    "against 5 points of interest")


def oriented(differences) -> list[tuple[str, str, float, float, float]]:
    """Blinded differences as (a, b, a - b, lo, hi) with a SoLU-LN model first when present."""
    out = []
    for d in differences:
        if act_of(d.model_b) == "solu_ln" and act_of(d.model_a) != "solu_ln":
            out.append((d.model_b, d.model_a, -d.diff, -d.hi, -d.lo))
        else:
            out.append((d.model_a, d.model_b, d.diff, d.lo, d.hi))
    return out


@HUMAN_BLIND.decided_by
def decide_human_blind(m: InterpMeasurements) -> Claim:
    judged = [s for s in m.blind if s.n_judgments]
    if not judged:
        return HUMAN_BLIND.scored("no blinded session with judgments in this copy of the book",
                                  NOT_TESTABLE)
    parts = []
    for s in judged:
        diffs = ", ".join(f"{a} - {b}: {pct(d, signed=True)} [{pct(lo, signed=True)}, "
                          f"{pct(hi, signed=True)}]"
                          for a, b, d, lo, hi in oriented(s.report.differences))
        parts.append(f"{s.path.name} ({s.n_judgments} judgments): {diffs}")
    # matched pairs only (same depth and seed); the weakest session decides
    diffs = [(d, lo, hi) for s in judged for a, b, d, lo, hi in oriented(s.report.differences)
             if act_of(a) == "solu_ln" and act_of(b) == "gelu"
             and depth_of(a) == depth_of(b) and seed_of(a) == seed_of(b)]
    tests = [Test(DIRECTIONAL, d, lo, hi, n, math.nan, 0, INTEREST_POINTS,
                  (hi - lo) / (2 * 1.959964) * (1.959964 + 0.841621), "GELU of the same seed "
                  "(neurons sampled at random, judged blind; the interval is over judged "
                  "neurons of one model pair, not over trained models)", "points", 100.0,
                  units="judged neurons")
             for s in judged for a, b, d, lo, hi in oriented(s.report.differences)
             for n in (s.n_judgments,)
             if act_of(a) == "solu_ln" and act_of(b) == "gelu"
             and depth_of(a) == depth_of(b) and seed_of(a) == seed_of(b)]
    return HUMAN_BLIND.scored("; ".join(parts), None if tests else NOT_TESTABLE, tests=tests)


CLAIMS: tuple[ClaimSpec, ...] = (FIGURE4, FIGURE4_DEPTH, PRIVILEGED_BASIS, SPECTRUM_NOTE, SOLU_ALONE,
                                 LN_ONLY_HALFWAY, STRICTER_ANNOTATOR, BLOCKED_INTERP, DEPTH64,
                                 HUMAN_BLIND)
