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
from ..interp.stats import (Proportion, SeedInterval, difference_interval,
                            paired_seed_difference, seed_mean_interval)
from ..zoo import act_of, depth_of, label, seed_of, variant_of
from .claim import (EMPIRICAL, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED,
                    SEED_RULE, Claim, ClaimSpec, at_most, combined, directional)

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
BLOCKED_MARGIN = 0.10
"""§4.4 "no substantial effect" on interpretability, on the top-20 view's fractions: within ±10
points of SoLU-LN. On the other instruments the margin is half of SoLU-LN's own gain over GELU
(``decide_blocked_interp``): their scales are not fractions of neurons."""


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
    """SoLU-LN (or an ablation) against the GELU baseline of the same depth, one view."""

    name: str
    baseline: str
    view: str
    diff: float
    lo: float
    hi: float
    ratio: float

    @property
    def significant(self) -> bool:
        """The 95% Newcombe interval of the difference excludes zero."""
        return self.lo > 0 or self.hi < 0


def compare(results: Mapping[str, ModelInterpretability], name: str, view: str = "top"
            ) -> Comparison:
    """``name`` minus the GELU baseline of its depth, with Newcombe's 95% interval."""
    baseline = f"{depth_of(name)}L-gelu"
    a = getattr(results[name], view)
    b = getattr(results[baseline], view)
    diff, lo, hi = difference_interval(a.successes, a.n, b.successes, b.n)
    ratio = a.fraction / b.fraction if b.successes else math.inf if a.successes else math.nan
    return Comparison(name, baseline, view, diff, lo, hi, ratio)


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

    def gain(self, control: str, view: str = "top") -> tuple[float, float, float]:
        """The basis' fraction minus the null's, with Newcombe's 95% interval."""
        a, b = getattr(self.basis, view), getattr(self.nulls[control], view)
        return difference_interval(a.successes, a.n, b.successes, b.n)

    def against(self, control: str = "rotated", view: str = "top") -> str:
        """Whether the neuron basis beats the null: "beats" if the 95% interval of ``gain``
        is above 0, "loses" if it is below 0, "ties" otherwise."""
        _, lo, hi = self.gain(control, view)
        return "beats" if lo > 0 else "loses" if hi < 0 else "ties"


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
    the two (what SoLU adds that a rotation takes away), one view.

    The intervals are 95%: Newcombe's for each difference; for the difference of differences
    a normal approximation, the four proportions independent (different neurons, different
    directions), each variance from its Wilson interval's half-width.
    """

    view: str
    basis_diff: tuple[float, float, float]
    rotated_diff: tuple[float, float, float]
    diff_in_diff: tuple[float, float, float]

    @property
    def verdict(self) -> str:
        """The directional rule on the gain net of rotation (``diff_in_diff``), capped at
        "direction only": one model per arm has no seed-level interval."""
        return at_most(directional(*self.diff_in_diff))


def relative_difference(controls: Mapping[str, NullControls], solu: str, gelu: str,
                        view: str = "top") -> RelativeDifference:
    s, g = controls[solu], controls[gelu]
    parts = [getattr(x, view) for x in (s.basis, s.nulls["rotated"], g.basis,
                                       g.nulls["rotated"])]
    basis = difference_interval(parts[0].successes, parts[0].n, parts[2].successes, parts[2].n)
    rotated = difference_interval(parts[1].successes, parts[1].n, parts[3].successes,
                                  parts[3].n)
    did = (parts[0].fraction - parts[1].fraction) - (parts[2].fraction - parts[3].fraction)
    se = math.sqrt(sum(((p.hi - p.lo) / (2 * 1.96)) ** 2 for p in parts))
    return RelativeDifference(view, basis, rotated, (did, did - 1.96 * se, did + 1.96 * se))


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
        (``"gain"``), and for the stricter-annotator claim the number at the default bar
        (``"bar"``) and at the stricter one (``"strict"``; {} where the instrument has no bar).
        A seed whose number is missing (NaN: not measured) is left out."""
        inst = self.instrument
        if inst in ("top", "spectrum"):
            table = {"value": self.seed_fractions.get(inst, {}),
                     "gain": self.rotated_gains.get(inst, {}),
                     "bar": self.seed_fractions.get(inst, {}) if inst == "top" else {},
                     "strict": self.strict_fractions if inst == "top" else {}}[kind]
            return table
        out: dict[str, dict[int, float]] = {}
        if inst is None or (kind in ("strict", "bar") and inst != "features_exposed"):
            return out
        for name, mi in self.instruments.items():
            if depth_of(name) != self.one_layer or "basis" not in mi.bases:
                continue
            if kind == "gain" and "rotated" not in mi.bases:
                continue
            basis = mi.bases["basis"]
            v = {"value": lambda: basis.value(inst), "gain": lambda: mi.gain(inst),
                 "bar": lambda: basis.exposed_share, "strict": lambda: basis.strict_share}[kind]()
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

    def rotated_gain(self, name: str, view: str = "top") -> tuple[float, float, float]:
        """``name``'s neuron basis minus its rotated null (Newcombe 95%)."""
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
        diff, lo, hi = difference_interval(a.successes, a.n, b.successes, b.n)
        ablation_vs_solu = Comparison(ablation.name, f"{depth}L-solu_ln", "top", diff, lo, hi,
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
    if all(v in seeds for v in pair):
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
                gains[view].setdefault(variant, {})[seed_of(name)] = nc.gain("rotated", view)[0]
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


def _verdict(d: SeedInterval) -> str:
    return directional(d.estimate, d.lo, d.hi)


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
                   "rotation test (interp.calibration), not testable if none passes; ")


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


FIGURE4 = ClaimSpec(
    "figure4", "§6.2 / Figure 4", "SoLU-LN neurons are more often interpretable at "
    "first glance than baseline neurons (~60% vs ~35%, +25 points, 1.7x; 1-40 "
    "layers)", "+25 points", EMPIRICAL, "04-interpretability-quantitative",
    INSTRUMENT_RULE + "SoLU-LN minus GELU over matched 1-layer seed "
    "pairs: reproduced if the seed interval is above 0, net of the rotated-basis "
    "nulls the gain's seed interval is above 0 too, and (under the unchecked top-20 "
    "view only) every deeper pair's point estimate is positive; direction only if the "
    "seed mean (and, so, every deeper pair's point estimate) is positive; under the "
    "rotation-fair score the deeper pairs (one seed each, scored on their own "
    "explanations: a version the planted test does not check) are reported and decide "
    "nothing; " + SEED_RULE)


@FIGURE4.decided_by
def decide_figure4(m: InterpMeasurements) -> Claim:
    if (gated := _ungated(FIGURE4, m)) is not None:
        return gated
    seed = m.judged_difference("solu_ln", "gelu")
    if seed is None:
        return FIGURE4.scored("no matched 1-layer pair", NOT_TESTABLE)
    deeper = m.deeper_differences()
    deciding = deeper if m.instrument in ("top", "spectrum") else {}
    net = m.judged_difference("solu_ln", "gelu", "gain")
    verdict = _verdict(seed)
    if verdict == REPRODUCED and not (net is not None and net.lo > 0):
        verdict = PARTLY  # not shown to be about the basis (or no null to show it)
    if verdict == PARTLY and not all(d > 0 for d in deciding.values()):
        verdict = INCONCLUSIVE  # the 1-layer direction is not the deeper pairs'
    if verdict == REPRODUCED and not all(d > 0 for d in deciding.values()):
        verdict = PARTLY
    unit = _in_points(m.instrument)
    ours = (f"{m.instrument_label}, SoLU-LN minus GELU, 1L over seeds: "
            f"{interval_points(seed, unit)}")
    if net is not None:
        ours += f"; net of the rotated-basis nulls: {interval_points(net, unit)}"
    if deeper:
        ours += "; " + "; ".join(f"{d}L (one seed, point estimate): {points(diff)} {unit}"
                                 for d, diff in sorted(deeper.items()))
        if not deciding:
            ours += " (the deeper pairs, on their own explanations only, decide nothing)"
    return FIGURE4.scored(ours, verdict, values={
        "instrument": m.instrument, "seed_difference": seed.to_dict(),
        "net_of_rotation": None if net is None else net.to_dict(), "deeper": deeper})


PRIVILEGED_BASIS = ClaimSpec(
    "privileged_basis", "§3.2 (privileged basis)", "A coordinate-wise nonlinearity "
    "makes the MLP's neuron basis privileged: neurons more interpretable than "
    "random directions of the same space", "plausible, not guaranteed; no number",
    EMPIRICAL, "04-interpretability-quantitative",
    "neuron basis minus rotated basis, per 1-layer seed of SoLU-LN and GELU, under every "
    "instrument of s6_interpretability.PREFERRED that passes the planted rotation test "
    "(interp.calibration; none passing: not testable): reproduced if the seed interval is "
    "above 0 for both activations under each; direction only if every seed mean is "
    "positive; " + SEED_RULE)


@PRIVILEGED_BASIS.decided_by
def decide_privileged_basis(m: InterpMeasurements) -> Claim:
    if m.calibration is None:  # unchecked: the full-spectrum judge, as before the test
        passing = ["spectrum"]
        tables = {"spectrum": m.rotated_gains.get("spectrum", {})}
    else:
        if (gated := _ungated(PRIVILEGED_BASIS, m)) is not None:
            return gated
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
    gains = {inst: {v: seed_mean_interval(list(by_seed.values()))
                    for v, by_seed in table.items()} for inst, table in tables.items()}
    if not any(gains.values()):
        return PRIVILEGED_BASIS.scored("no null controls scored", NOT_TESTABLE)
    ours = "; ".join(
        f"{INSTRUMENT_LABELS[inst]}, neuron basis minus rotated basis: " + ", ".join(
            f"{label(v)} {interval_points(g, _in_points(inst))}" for v, g in by_v.items())
        for inst, by_v in gains.items())
    verdict = combined(*(_verdict(g) for by_v in gains.values() for g in by_v.values()))
    return PRIVILEGED_BASIS.scored(ours, verdict, values={
        inst: {v: g.to_dict() for v, g in by_v.items()} for inst, by_v in gains.items()})


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
    INSTRUMENT_RULE + "over seeds: reproduced if SoLU (no LN) minus GELU has a seed "
    "interval above 0 and SoLU-LN is not below SoLU by more than half of SoLU's "
    "gain (point estimates); direction only if the SoLU gain's point estimate is "
    "positive; " + SEED_RULE)


@SOLU_ALONE.decided_by
def decide_solu_alone(m: InterpMeasurements) -> Claim:
    if (gated := _ungated(SOLU_ALONE, m)) is not None:
        return gated
    alone = m.judged_difference("solu", "gelu")
    keeps = m.judged_difference("solu_ln", "solu")
    if alone is None or keeps is None:
        return SOLU_ALONE.scored("no SoLU-without-LN model", NOT_TESTABLE)
    kept = keeps.estimate >= -0.5 * alone.estimate
    verdict = _verdict(alone)
    if verdict == REPRODUCED and not kept:
        verdict = PARTLY
    note = ("" if alone.estimate <= 0 else
            f" (adding the LN {'keeps' if kept else 'loses more than'} half of SoLU's gain, "
            "point estimates)")
    unit = _in_points(m.instrument)
    return SOLU_ALONE.scored(
        f"{m.instrument_label}: SoLU (no LN) minus GELU: {interval_points(alone, unit)}; "
        f"SoLU-LN minus SoLU: {interval_points(keeps, unit)}{note}", verdict,
        values={"alone": alone.to_dict(), "ln_minus_solu": keeps.to_dict()})


LN_ONLY_HALFWAY = ClaimSpec(
    "ln_only_halfway", "§6.2", "The LN-only ablation scores about halfway between "
    "baseline and SoLU-LN (16 layers)", "halfway", EMPIRICAL,
    "04-interpretability-quantitative",
    INSTRUMENT_RULE + "GELU-LN over seeds: reproduced if above GELU and below SoLU-LN "
    "with both seed "
    "intervals excluding 0; direction only if the seed means are in between; "
    + SEED_RULE + ". Our ablation has 1 layer, the paper's 16")


@LN_ONLY_HALFWAY.decided_by
def decide_ln_only_halfway(m: InterpMeasurements) -> Claim:
    if (gated := _ungated(LN_ONLY_HALFWAY, m)) is not None:
        return gated
    above = m.judged_difference("gelu_ln", "gelu")
    below = m.judged_difference("solu_ln", "gelu_ln")
    if above is None or below is None:
        return LN_ONLY_HALFWAY.scored("no LN-only ablation", NOT_TESTABLE)
    unit = _in_points(m.instrument)
    return LN_ONLY_HALFWAY.scored(
        f"{m.instrument_label}: GELU-LN minus GELU: {interval_points(above, unit)}; SoLU-LN "
        f"minus GELU-LN: {interval_points(below, unit)}",
        combined(_verdict(above), _verdict(below)),
        values={"above_gelu": above.to_dict(), "below_solu_ln": below.to_dict()})


STRICTER_ANNOTATOR = ClaimSpec(
    "stricter_annotator", "§6.2", "One annotator held a higher bar; the SoLU-LN "
    "advantage holds for the stricter one too", "consistent under both", EMPIRICAL,
    "04-interpretability-quantitative",
    INSTRUMENT_RULE + "the instrument at a higher bar and at its default one (the "
    "rotation-fair score: the share of features some single direction exposes with r² "
    "above 0.8, s6_interpretability.STRICT_EXPOSED, and above 0.5; the top-20 judge, "
    "unchecked: coverage 90% and lift 5, s6_interpretability.STRICT, and the default "
    "judge; sparse probing has no such bar: not testable), SoLU-LN minus GELU over "
    "matched 1-layer seeds: reproduced if the seed interval is above 0 at both bars; "
    "direction only if both seed means are positive; " + SEED_RULE)


@STRICTER_ANNOTATOR.decided_by
def decide_stricter_annotator(m: InterpMeasurements) -> Claim:
    if (gated := _ungated(STRICTER_ANNOTATOR, m)) is not None:
        return gated
    strict = m.judged_difference("solu_ln", "gelu", "strict")
    default = m.judged_difference("solu_ln", "gelu", "bar")
    if strict is None or default is None:
        why = ("no matched 1-layer pair" if m.judged_difference("solu_ln", "gelu") is None
               else f"{m.instrument_label} has no stricter bar")
        return STRICTER_ANNOTATOR.scored(why, NOT_TESTABLE)
    if m.instrument == "top":
        bar = f"coverage {pct(STRICT['threshold'], 0)}, lift {STRICT['min_lift']:g}"
        default_bar = "under the default judge"
    else:
        bar = f"share of features exposed at r² above {STRICT_EXPOSED:g}"
        default_bar = f"at r² above {EXPOSED_BAR:g}"
    return STRICTER_ANNOTATOR.scored(
        f"SoLU-LN minus GELU under the stricter bar ({bar}): {interval_points(strict)}; "
        f"{default_bar}: {interval_points(default)}",
        combined(_verdict(strict), _verdict(default)),
        values={"strict": strict.to_dict(), "default": default.to_dict()})


BLOCKED_INTERP = ClaimSpec(
    "blocked_interp", "§4.4", "Blocking SoLU's softmax and LN has no substantial "
    "effect on interpretability", "no substantial effect", EMPIRICAL,
    "04-interpretability-quantitative",
    INSTRUMENT_RULE + "blocked SoLU-LN minus SoLU-LN over matched seeds (paired t, 95%), "
    "against a margin: half of SoLU-LN's gain over GELU (seed mean) on the same instrument "
    "(not testable if there is no gain to keep; ±10 points on the unchecked top-20 view): "
    "reproduced if the interval lies within the margin (at least 2 seeds); not reproduced "
    "if it lies wholly outside; direction only if the point estimate lies within; "
    "inconclusive otherwise")


@BLOCKED_INTERP.decided_by
def decide_blocked_interp(m: InterpMeasurements) -> Claim:
    if (gated := _ungated(BLOCKED_INTERP, m)) is not None:
        return gated
    blocked = m.judged_difference("solu_ln_b4", "solu_ln")
    if blocked is None:
        return BLOCKED_INTERP.scored("no blocked SoLU-LN model", NOT_TESTABLE)
    margin = BLOCKED_MARGIN
    if m.instrument not in ("top", "spectrum"):
        gain = m.judged_difference("solu_ln", "gelu")
        if gain is None or not gain.estimate > 0:
            return BLOCKED_INTERP.scored(
                f"{m.instrument_label}: SoLU-LN has no gain over GELU to keep, so no margin "
                "for 'no substantial effect'", NOT_TESTABLE)
        margin = 0.5 * gain.estimate
    verdict = (REPRODUCED if -margin < blocked.lo and blocked.hi < margin
               and blocked.n_seeds > 1 else
               NOT_REPRODUCED if blocked.lo > margin or blocked.hi < -margin else
               PARTLY if abs(blocked.estimate) < margin else INCONCLUSIVE)
    return BLOCKED_INTERP.scored(
        f"{m.instrument_label}: blocked SoLU-LN (4 blocks) minus SoLU-LN: "
        f"{interval_points(blocked, _in_points(m.instrument))}, margin ±{100 * margin:.1f}",
        verdict, values={**blocked.to_dict(), "margin": margin})


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
    "matched pairs only (same depth and seed): reproduced if every session's SoLU-LN "
    "minus GELU interval is above 0, otherwise the weakest session's verdict by the "
    "directional rule")


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
    verdict = combined(*(directional(d, lo, hi) for d, lo, hi in diffs)) if diffs \
        else NOT_TESTABLE
    return HUMAN_BLIND.scored("; ".join(parts), verdict)


CLAIMS: tuple[ClaimSpec, ...] = (FIGURE4, PRIVILEGED_BASIS, SPECTRUM_NOTE, SOLU_ALONE,
                                 LN_ONLY_HALFWAY, STRICTER_ANNOTATOR, BLOCKED_INTERP, DEPTH64,
                                 HUMAN_BLIND)
