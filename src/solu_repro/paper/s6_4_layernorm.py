"""Paper §6.4 (the extra LayerNorm), chapter 7: are low-activation examples less consistent
with a neuron's feature after the LN than before it?

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book.ch07_layernorm``
presents them).

The paper had one author label about a thousand examples of one neuron ("left"/"right") at
every activation level, before and after the LN, and found post-LN examples "much more
likely to have unrelated activations in the low-activation regime" (Figure 9). Here the same
count is made mechanically over many neurons and every model with the extra LN:

* **Neurons:** those whose explanation holds up on held-out rows
  (``interp.analysis.HELDOUT_RULE``: the scorer chose it on the even rows' top firings and it
  covers at least 80% of the odd rows' top firings at 3x its base rate).
* **Tokens:** every token of the held-out (odd) rows, where the explanation was not chosen;
  an example is *inconsistent* when the explanation does not hold there.
* **Bands:** per neuron, ``n_bands`` equal-count quantile bands of its positive ``hook_mid``
  activations and, separately, of its positive ``hook_post`` activations
  (``interp.analysis.quantile_bands``). "Low" are the bands below ``low_quantile`` (the
  lower half of each hook's firings by default), so both hooks' low bands hold the same
  share of that hook's firings.
* **Statistic** (``paired_difference``): per neuron, the inconsistent fraction of its low
  bands after the LN minus before it; its mean over neurons, pooled over the seeds of a
  variant (and per model), with a 95% bootstrap interval over neurons
  (``scipy.stats.bootstrap``, BCa). The same for the LN-only ablation (GELU followed by the
  same LN) is the control, and SoLU-LN minus GELU-LN gets a two-sample bootstrap interval
  (``contrast``).
* **Verdict** (``ln_verdict``, applied by ``decide_ln_low_activation``): reproduced if
  SoLU-LN's difference is above 0 and above GELU-LN's, both with 95% bootstrap intervals
  excluding 0.
* **The LN's rescaling** (``rescale_summary``): per position, the factor ``1/sqrt(var+eps)``
  by which the extra LN multiplies the centred SoLU output, and how much it varies between
  positions. The channel §6.4 describes (the LN scaling weak, suppressed positions back up)
  needs that factor to be larger where SoLU's output is small; if every position got the same
  factor, the LN would be a fixed linear map and could smuggle nothing.

The entry point is ``measure(runs, scores, ...)``: the runs and scores of every model with
the extra LN, in, the ``LayerNormMeasurements``, out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..data import num_rows
from ..fmt import pct, points
from ..interp.analysis import (HELDOUT_RULE, BandRow, LNConsistency, NeuronBands, holds_out,
                               ln_consistency)
from ..interp.explanations import VocabTables
from ..interp.harvest import selection_rows
from ..interp.score import NeuronScores, heldout_features
from ..zoo import variant_of
from .claim import (EMPIRICAL, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED,
                    Claim, ClaimSpec)

N_BANDS = 10
LOW_QUANTILE = 0.5
""""Low-activation regime": the bands below this quantile of each hook's positive
activations (the weaker half of the neuron's firings on that hook)."""
MAX_NEURONS = 200
"""Neurons measured per model at most (seeded choice among those that hold out): every token
of the held-out rows is counted for each, about 0.05 s a neuron on a CPU."""
MAX_ROWS = 400
"""Held-out rows measured per model at most (the cpu zoo has 317: all of them)."""
CONFIDENCE = 0.95
N_RESAMPLES = 2000
PRIMARY = "1L-solu_ln"
"""The SoLU-LN variant the verdict rests on (all its seeds pooled)."""
CONTROL = "1L-gelu_ln"
"""The LN-only ablation: GELU followed by the same LN, the same depth (all seeds pooled)."""

_FEATURES: dict[tuple, Any] = {}


# --- the low bands ------------------------------------------------------------------------------
def low_bands(n_bands: int = N_BANDS, low_quantile: float = LOW_QUANTILE) -> list[int]:
    """Bands lying below ``low_quantile`` of the positive activations (at least band 0)."""
    if not 0 < low_quantile <= 1:
        raise ValueError(f"low_quantile must be in (0, 1], got {low_quantile!r}")
    return [b for b in range(n_bands) if (b + 1) / n_bands <= low_quantile + 1e-9] or [0]


def bands_text(bands: Sequence[int], n_bands: int) -> str:
    """e.g. "bands 1-5 of 10, quantiles 0%-50% of each hook's firings"."""
    lo, hi = bands[0] / n_bands, (bands[-1] + 1) / n_bands
    which = f"band {bands[0] + 1}" if len(bands) == 1 else f"bands {bands[0] + 1}-{bands[-1] + 1}"
    return f"{which} of {n_bands}, quantiles {pct(lo, 0)}-{pct(hi, 0)} of each hook's firings"


def pts(x: float) -> str:
    """A difference of fractions in percentage points, e.g. "+1.2 pts" (an infinite end of
    an interval as "-inf" / "+inf")."""
    return points(x) if math.isinf(x) else f"{points(x)} pts"


# --- the LN's rescaling -----------------------------------------------------------------------
def rescale_summary(mid_var: np.ndarray, eps: float) -> dict[str, float]:
    """What the extra LN does to each position's SoLU output, from its variance ``mid_var``.

    ``rescale = 1 / sqrt(var + eps)``: the factor the LN multiplies the position's centred
    ``hook_mid`` vector by (before its per-neuron weights). ``spread`` = its 90th over its
    10th percentile across positions: how much more the LN scales up the weakest positions
    than the strongest (1: every position alike, no channel). ``gain = sqrt(var / (var +
    eps))`` (``paper.s4_design.ln_gain``): 1 where the LN is scale invariant, small where eps
    dominates and the LN no longer normalizes the position.
    """
    var = np.asarray(mid_var, dtype=np.float64)
    if var.size == 0:
        return {k: math.nan for k in ("rescale_q10", "rescale_median", "rescale_q90", "spread",
                                      "gain_q10", "gain_median", "frac_gain_below_0.5")} | {
            "positions": 0}
    rescale = 1 / np.sqrt(var + eps)
    gain = np.sqrt(var / (var + eps))
    q10, q50, q90 = np.quantile(rescale, [0.1, 0.5, 0.9])
    return {"positions": int(var.size), "rescale_q10": float(q10), "rescale_median": float(q50),
            "rescale_q90": float(q90), "spread": float(q90 / q10),
            "gain_q10": float(np.quantile(gain, 0.1)), "gain_median": float(np.median(gain)),
            "frac_gain_below_0.5": float((gain < 0.5).mean())}


# --- measuring one model ----------------------------------------------------------------------
@dataclass
class ModelLN:
    """``ln_consistency`` of one zoo model, with its counts and the LN's rescaling."""

    name: str
    n_neurons: int
    n_interpretable: int
    n_heldout: int
    """Neurons that pass ``HELDOUT_RULE``."""
    consistency: LNConsistency
    rescale: dict[str, float]

    @property
    def neurons(self) -> list[NeuronBands]:
        return self.consistency.neurons

    def summary(self) -> dict[str, Any]:
        return {"model": self.name, "neurons": self.n_neurons,
                "interpretable": self.n_interpretable, "hold_out": self.n_heldout,
                "measured": len(self.neurons), "tokens": self.consistency.n_tokens,
                **self.rescale}


def measured_rows(split, n_ctx: int, max_rows: int | None = MAX_ROWS) -> np.ndarray:
    """The scorer's held-out rows of ``split`` (odd rows), at most ``max_rows``."""
    rows = selection_rows(num_rows(split, n_ctx), "odd")
    return rows[:max_rows] if max_rows else rows


def split_features(split, tables: VocabTables, rows: np.ndarray, n_ctx: int):
    """``heldout_features`` of ``rows``, kept for the next model read on the same rows (the
    zoo's models share one corpus; one corpus at a time, its features are not small)."""
    key = (str(split.directory), n_ctx, len(rows), int(rows[0]) if len(rows) else -1,
           int(rows[-1]) if len(rows) else -1)
    if key not in _FEATURES:
        _FEATURES.clear()
        _FEATURES[key] = heldout_features(split, tables, rows, n_ctx)
    return _FEATURES[key]


def measure_model(name: str, run, scores: NeuronScores, *, n_bands: int = N_BANDS,
                  max_neurons: int | None = MAX_NEURONS, max_rows: int | None = MAX_ROWS,
                  seed: int = 0) -> ModelLN:
    """``ln_consistency`` of model ``name`` (its ``run`` and ``scores``) on its held-out rows.

    Args:
        name: The model's name in the results.
        run: Its run (``ZooRun`` or a released model's run): ``config``, ``corpus()``,
            ``load_model()``.
        scores: Its automated interpretability scores (hook ``mid``).
        n_bands: Quantile bands per hook.
        max_neurons, max_rows: Caps (``MAX_NEURONS``, ``MAX_ROWS``).
        seed: Seed of the choice of neurons when more than ``max_neurons`` hold out.
    """
    cfg = run.config.model
    if not cfg.has_mlp_ln:
        raise ValueError(f"{name} has no LayerNorm after its activation: hook_post is "
                         "hook_mid, there is nothing to compare")
    corpus = run.corpus()
    split = corpus.split("val")
    tables = VocabTables(corpus.tokenizer)
    rows = measured_rows(split, cfg.n_ctx, max_rows)
    consistency = ln_consistency(
        run.load_model(), scores, split, tables, rows, n_ctx=cfg.n_ctx, bos_id=corpus.bos_id,
        n_bands=n_bands, max_neurons=max_neurons, seed=seed, ln_blocks=cfg.solu_blocks,
        features=split_features(split, tables, rows, cfg.n_ctx))
    return ModelLN(name, len(scores.records), sum(r.interpretable for r in scores.records),
                   sum(holds_out(r) for r in scores.records), consistency,
                   rescale_summary(consistency.mid_var, cfg.ln_eps))


# --- statistics -------------------------------------------------------------------------------
def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def bootstrap_interval(samples: Sequence[np.ndarray], statistic: Callable,
                       confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """``scipy.stats.bootstrap`` (BCa, resampling each sample independently) of
    ``statistic(*samples)``; ``(-inf, inf)`` when a sample has fewer than 2 values, zero width
    when no sample varies, the percentile interval where BCa is undefined."""
    samples = [np.asarray(s, dtype=float) for s in samples]
    if any(s.size < 2 for s in samples):
        return -math.inf, math.inf
    if all(np.ptp(s) == 0 for s in samples):
        value = float(statistic(*samples))
        return value, value
    from scipy.stats import bootstrap  # on first use: importing the paper modules stays cheap

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = bootstrap(tuple(samples), statistic, vectorized=True, paired=False,
                           confidence_level=confidence, n_resamples=n_resamples, method=method,
                           rng=np.random.default_rng(seed)).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return -math.inf, math.inf


@dataclass
class PairedDifference:
    """After minus before the LN, per neuron, in the low bands; mean over neurons.

    Attributes:
        label: What was pooled (a variant or one model).
        models: The models whose neurons are pooled.
        n_neurons: Neurons with firings in the low bands of both hooks (the others have no
            paired value and are left out).
        mid, post: Mean over those neurons of the low-band inconsistent fraction per hook.
        chance: Mean over them of the inconsistent fraction over all tokens (a band unrelated
            to the neuron would show about this).
        diff: Mean of the per-neuron differences ``post - mid`` (= ``post - mid``).
        lo, hi: 95% bootstrap interval of ``diff`` over neurons.
        per_model: ``diff`` of each model's own neurons (the seed-level view).
        values: The per-neuron differences.
    """

    label: str
    models: list[str]
    n_neurons: int
    mid: float
    post: float
    chance: float
    diff: float
    lo: float
    hi: float
    per_model: dict[str, float] = field(default_factory=dict)
    values: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def above_zero(self) -> bool:
        return bool(self.lo > 0)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "models": self.models, "n_neurons": self.n_neurons,
                "mid": self.mid, "post": self.post, "chance": self.chance, "diff": self.diff,
                "lo": self.lo, "hi": self.hi, "above_zero": self.above_zero,
                "per_model": self.per_model}


def paired_difference(by_model: dict[str, Sequence[NeuronBands]], bands: Sequence[int],
                      label: str, *, confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedDifference:
    """Pool the neurons of ``by_model`` and compare their low ``bands`` after vs before the LN
    (``PairedDifference``; a one-sample bootstrap on the per-neuron differences)."""
    mids, posts, chances, diffs, per_model = [], [], [], [], {}
    for name, neurons in by_model.items():
        mine = []
        for nb in neurons:
            m, p = nb.low_fraction("mid", bands), nb.low_fraction("post", bands)
            if math.isnan(m) or math.isnan(p):
                continue
            mids.append(m)
            posts.append(p)
            chances.append(nb.chance)
            mine.append(p - m)
        diffs += mine
        per_model[name] = float(np.mean(mine)) if mine else math.nan
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return PairedDifference(label, list(by_model), 0, math.nan, math.nan, math.nan,
                                math.nan, math.nan, math.nan, per_model, d)
    lo, hi = bootstrap_interval([d], _mean, confidence, n_resamples, seed)
    return PairedDifference(label, list(by_model), int(d.size), float(np.mean(mids)),
                            float(np.mean(posts)), float(np.nanmean(chances)), float(d.mean()),
                            lo, hi, per_model, d)


@dataclass
class Contrast:
    """SoLU-LN's paired difference minus the control's (independent neurons)."""

    diff: float
    lo: float
    hi: float

    @property
    def above_zero(self) -> bool:
        return bool(self.lo > 0)

    def to_dict(self) -> dict[str, Any]:
        return {"diff": self.diff, "lo": self.lo, "hi": self.hi, "above_zero": self.above_zero}


def contrast(solu: PairedDifference, control: PairedDifference, *,
             confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
             seed: int = 0) -> Contrast | None:
    """``solu.diff - control.diff`` with a two-sample bootstrap interval over neurons (None
    when either side has no neuron)."""
    if solu.n_neurons == 0 or control.n_neurons == 0:
        return None
    lo, hi = bootstrap_interval([solu.values, control.values], _mean_difference, confidence,
                                n_resamples, seed)
    return Contrast(float(solu.values.mean() - control.values.mean()), lo, hi)




# --- bands for the figure ---------------------------------------------------------------------
def band_rows(neurons: Sequence[NeuronBands], n_bands: int, *, confidence: float = CONFIDENCE,
              n_resamples: int = N_RESAMPLES, seed: int = 0) -> list[BandRow]:
    """One ``BandRow`` per (hook, band): pooled counts, and the mean over neurons of each
    neuron's inconsistent fraction with a bootstrap interval over neurons."""
    rows = []
    for hook in ("mid", "post"):
        for band in range(n_bands):
            n_ex = n_bad = n_used = 0
            fractions = []
            for nb in neurons:
                i = nb.hooks.index(hook)
                if nb.examples[i, band]:
                    n_ex += int(nb.examples[i, band])
                    n_bad += int(nb.inconsistent[i, band])
                    n_used += 1
                    fractions.append(nb.inconsistent[i, band] / nb.examples[i, band])
            mean = float(np.mean(fractions)) if fractions else math.nan
            lo, hi = (bootstrap_interval([np.asarray(fractions)], _mean, confidence,
                                         n_resamples, seed) if fractions else (math.nan, math.nan))
            rows.append(BandRow(hook, band, band / n_bands, (band + 1) / n_bands, n_ex, n_bad,
                                n_used, mean, lo, hi))
    return rows


@dataclass
class BandDifference:
    """After minus before the LN in one band: mean over neurons firing there on both hooks."""

    band: int
    n_neurons: int
    diff: float
    lo: float
    hi: float


def band_differences(neurons: Sequence[NeuronBands], n_bands: int, *,
                     confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                     seed: int = 0) -> list[BandDifference]:
    """Per band, the paired difference ``post - mid`` (``BandDifference``)."""
    out = []
    for band in range(n_bands):
        d = np.array([nb.difference([band]) for nb in neurons], dtype=float)
        d = d[np.isfinite(d)]
        lo, hi = (bootstrap_interval([d], _mean, confidence, n_resamples, seed)
                  if d.size else (math.nan, math.nan))
        out.append(BandDifference(band, int(d.size), float(d.mean()) if d.size else math.nan,
                                  lo, hi))
    return out


# --- the measurement --------------------------------------------------------------------------
@dataclass
class LayerNormMeasurements:
    """The §6.4 numbers at this scale (``measure``).

    Attributes:
        n_bands, low_quantile, low: The quantile bands and which of them are "low".
        models: ``ModelLN.summary()`` of every measured model (neurons, rescaling).
        solu: SoLU-LN's paired difference, ``PRIMARY``'s seeds pooled.
        control: The GELU-LN control's, ``CONTROL``'s seeds pooled (None if not in the zoo).
        vs_control: ``solu`` minus ``control`` (None if either has no neuron).
        per_model: Each measured model's own paired difference.
        rows, control_rows: ``band_rows`` of the SoLU-LN and control neurons (the figure).
        differences, control_differences: ``band_differences`` of each.
        verdict, reason (properties): ``ln_verdict``, the claim's rule.
        measured: Each model's ``ModelLN`` (its neurons' band counts).
    """

    n_bands: int
    low_quantile: float
    low: list[int]
    models: dict[str, dict[str, Any]]
    solu: PairedDifference
    control: PairedDifference | None
    vs_control: Contrast | None
    per_model: dict[str, PairedDifference]
    rows: list[BandRow]
    control_rows: list[BandRow]
    differences: list[BandDifference]
    control_differences: list[BandDifference]
    measured: dict[str, ModelLN] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        """The claim's verdict, by ``ln_verdict`` (the rule beside ``LN_LOW_ACTIVATION``)."""
        return ln_verdict(self.solu, self.control, self.vs_control)[0]

    @property
    def reason(self) -> str:
        """Why, in words (``ln_verdict``)."""
        return ln_verdict(self.solu, self.control, self.vs_control)[1]

    def to_dict(self) -> dict[str, Any]:
        return {"n_bands": self.n_bands, "low_quantile": self.low_quantile, "low": self.low,
                "models": self.models, "solu": self.solu.to_dict(),
                "control": self.control.to_dict() if self.control else None,
                "vs_control": self.vs_control.to_dict() if self.vs_control else None,
                "per_model": {k: v.to_dict() for k, v in self.per_model.items()},
                "rows": [r.to_dict() for r in self.rows],
                "control_rows": [r.to_dict() for r in self.control_rows],
                "verdict": self.verdict, "reason": self.reason}

    def rescale_text(self, names: Sequence[str], label: str = "") -> str:
        """The LN's rescaling of ``names`` (one variant's seeds) in a phrase, e.g. "x3.4
        (10-90% of positions x2.0-x34, 90th/10th percentile 17x), gain 1.000"; ranges over
        the seeds when there are several."""
        rs = [self.models[n] for n in names if n in self.models and self.models[n]["positions"]]
        if not rs:
            return f"{label} not measured".strip()

        def span(key, fmt, pre=""):
            lo, hi = min(r[key] for r in rs), max(r[key] for r in rs)
            a, b = format(lo, fmt), format(hi, fmt)
            return f"{pre}{a}" if a == b else f"{pre}{a}-{pre}{b}"

        seeds = f" over {len(rs)} seeds" if len(rs) > 1 else ""
        return (f"{label} {span('rescale_median', '.3g', 'x')}{seeds} (10-90% of positions "
                f"{span('rescale_q10', '.3g', 'x')} to {span('rescale_q90', '.3g', 'x')}, "
                f"90th/10th percentile {span('spread', '.2f')}x), gain "
                f"{span('gain_median', '.3f')}").strip()


def measure(runs: Mapping[str, Any], scores: Mapping[str, NeuronScores], *,
            n_bands: int = N_BANDS, low_quantile: float = LOW_QUANTILE,
            max_neurons: int | None = MAX_NEURONS, max_rows: int | None = MAX_ROWS,
            primary: str = PRIMARY, control: str | None = CONTROL,
            confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
            seed: int = 0) -> LayerNormMeasurements:
    """Figure 9's comparison at this scale (``LayerNormMeasurements``).

    Args:
        runs: The models measured, by zoo-style name ("1L-solu_ln-s1"): every model with the
            extra LN (all seeds); the seeds of ``primary`` and of ``control`` among them
            decide the verdict, the others are reported per model.
        scores: Each model's interpretability scores (hook ``mid``), by the same names.
        n_bands: Quantile bands per hook.
        low_quantile: "Low" bands lie below this quantile of the firings.
        max_neurons, max_rows: Caps per model (``MAX_NEURONS``, ``MAX_ROWS``).
        primary, control: The SoLU-LN variant and the GELU-LN control (``control=None``: none).
        confidence, n_resamples: Of the bootstrap intervals.
        seed: Of the choice of neurons and of the bootstrap.
    """
    names = list(runs)
    measured = {n: measure_model(n, runs[n], scores[n], n_bands=n_bands,
                                 max_neurons=max_neurons, max_rows=max_rows, seed=seed)
                for n in names}
    low = low_bands(n_bands, low_quantile)
    opts = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)

    def group(variant):
        return {n: measured[n].neurons for n in names if variant_of(n) == variant}

    solu_group = group(primary)
    solu = paired_difference(solu_group, low, _group_label(primary, solu_group), **opts)
    ctrl, vs, control_group = None, None, {}
    if control is not None:
        control_group = group(control)
        if control_group:
            ctrl = paired_difference(control_group, low, _group_label(control, control_group),
                                     **opts)
            vs = contrast(solu, ctrl, **opts)
    solu_neurons = [nb for ns in solu_group.values() for nb in ns]
    control_neurons = [nb for ns in control_group.values() for nb in ns]
    return LayerNormMeasurements(
        n_bands, low_quantile, low, {n: m.summary() for n, m in measured.items()}, solu, ctrl,
        vs, {n: paired_difference({n: m.neurons}, low, n, **opts) for n, m in measured.items()},
        band_rows(solu_neurons, n_bands, **opts), band_rows(control_neurons, n_bands, **opts),
        band_differences(solu_neurons, n_bands, **opts),
        band_differences(control_neurons, n_bands, **opts), measured)


def _group_label(variant: str, group: dict) -> str:
    return f"{variant} ({len(group)} seed{'s' if len(group) != 1 else ''})"


# --- the claim this section decides -------------------------------------------------------------
LN_LOW_ACTIVATION = ClaimSpec(
    "ln_low_activation", "§6.4 / Figure 9", "After the extra LN, low-activation "
    "examples are more often inconsistent with the neuron's feature", "much more "
    "(one neuron, ~1000 examples, not blinded)", EMPIRICAL, "07-layernorm",
    "neurons whose explanation holds up on held-out rows (the scorer's interpretable "
    "neurons: chosen on the even rows' top firings, covering at least 80% of the odd "
    "rows' top firings at 3x or more their base rate); every token of the odd rows; "
    "equal-count quantile bands of each hook's positive activations; per neuron, the "
    "inconsistent fraction of the low bands (the weaker half of the firings) after "
    "the LN minus before it; mean over neurons pooled over the 1-layer seeds, 95% BCa "
    "bootstrap over neurons; the same for GELU-LN is the control: reproduced if "
    "SoLU-LN's difference and SoLU-LN minus GELU-LN both have intervals above 0; "
    "direction only if both point estimates are above 0 but an interval includes 0, "
    "or there is no control; not reproduced if SoLU-LN's difference is not above 0 "
    "or not above GELU-LN's and its interval does not reach above 0 (inconclusive "
    "if it does); not testable without a SoLU-LN neuron to compare")


def ln_verdict(solu: PairedDifference | None, control: PairedDifference | None,
               vs_control: Contrast | None) -> tuple[str, str]:
    """The rule of ``LN_LOW_ACTIVATION`` (its text above), and the reason in words.

    * not testable: no SoLU-LN neuron to compare;
    * not reproduced: SoLU-LN's difference is not above 0, or not above the control's, and
      the interval of that difference does not reach above 0;
    * inconclusive: the same point estimates, but the interval reaches above 0;
    * reproduced: above 0 and above the control's, both 95% intervals excluding 0;
    * direction only: otherwise (right direction, but an interval includes 0, or there is
      no control to compare with).
    """
    if solu is None or solu.n_neurons == 0:
        return NOT_TESTABLE, ("no SoLU-LN neuron whose explanation holds up on held-out rows "
                              "fires in the low bands of both hooks")
    if not solu.diff > 0:
        if solu.hi > 0:
            return INCONCLUSIVE, ("SoLU-LN's difference is not above 0, but its 95% interval "
                                  "reaches above 0: these neurons cannot decide")
        return NOT_REPRODUCED, ("after the LN, low-band tokens are not more often inconsistent "
                                "than before it (SoLU-LN's difference and its 95% interval "
                                "are not above 0)")
    if control is None or control.n_neurons == 0 or vs_control is None:
        return PARTLY, ("SoLU-LN's difference is above 0"
                        + (" (95% interval above 0)" if solu.above_zero else
                           " but its 95% interval includes 0")
                        + ", and there is no GELU-LN control to compare it with")
    if not vs_control.diff > 0:
        if vs_control.hi > 0:
            return INCONCLUSIVE, ("the GELU-LN control's difference is as large or larger, but "
                                  "the interval of SoLU-LN minus GELU-LN reaches above 0")
        return NOT_REPRODUCED, ("the GELU-LN control's difference is as large or larger: what "
                                "the LN does to weak firings does not need SoLU")
    if solu.above_zero and vs_control.above_zero:
        return REPRODUCED, ("SoLU-LN's difference is above 0 and above GELU-LN's, both 95% "
                            "intervals excluding 0")
    which = [w for w, ok in (("SoLU-LN's difference", solu.above_zero),
                             ("SoLU-LN minus GELU-LN", vs_control.above_zero)) if not ok]
    return PARTLY, ("SoLU-LN's difference is above 0 and above GELU-LN's, but the 95% "
                    f"interval of {' and of '.join(which)} includes 0")


@LN_LOW_ACTIVATION.decided_by
def decide_ln_low_activation(m: LayerNormMeasurements) -> Claim:
    """The verdict by ``ln_verdict``, with the numbers it rests on in words."""
    verdict, reason = ln_verdict(m.solu, m.control, m.vs_control)
    low = bands_text(m.low, m.n_bands)
    s, c, vs = m.solu, m.control, m.vs_control
    rescale = m.rescale_text(s.models, "SoLU-LN")
    if c is not None and c.models:
        rescale += "; " + m.rescale_text(c.models, "GELU-LN")
    if s.n_neurons == 0:
        ours = f"no SoLU-LN neuron to compare ({low}); LN rescaling {rescale}"
        sentence = (f"There is nothing to compare: {reason} ({verdict}). The extra LN "
                    f"multiplies each position's centred activation vector by (median) "
                    f"{rescale}.")
    else:
        ours = (f"{low}, after - before the LN, per neuron: SoLU-LN {pts(s.diff)} "
                f"[{pts(s.lo)}, {pts(s.hi)}] ({s.n_neurons} neurons, {len(s.models)} seeds)")
        ours += (f"; GELU-LN control {pts(c.diff)} [{pts(c.lo)}, {pts(c.hi)}] "
                 f"({c.n_neurons} neurons)" if c is not None and c.n_neurons
                 else "; no GELU-LN control neuron")
        if vs is not None:
            ours += f"; SoLU-LN - GELU-LN {pts(vs.diff)} [{pts(vs.lo)}, {pts(vs.hi)}]"
        ours += f". LN rescaling of each position's SoLU output (median): {rescale}"
        sentence = (f"In the low bands ({low}), SoLU-LN's tokens are inconsistent with the "
                    f"neuron's explanation {pct(s.mid)} of the time before the LN and "
                    f"{pct(s.post)} after it (chance: {pct(s.chance)}): a paired difference of "
                    f"{pts(s.diff)} [{pts(s.lo)}, {pts(s.hi)}] over {s.n_neurons} neurons of "
                    f"{len(s.models)} seeds")
        if c is not None and c.n_neurons:
            sentence += (f"; in the GELU-LN control {pts(c.diff)} [{pts(c.lo)}, "
                         f"{pts(c.hi)}] over {c.n_neurons} neurons")
        if vs is not None:
            sentence += f", SoLU-LN minus control {pts(vs.diff)} [{pts(vs.lo)}, {pts(vs.hi)}]"
        sentence += (f". {reason[0].upper()}{reason[1:]} ({verdict}). The extra LN "
                     f"multiplies each position's centred activation vector by (median) "
                     f"{rescale}.")
    values = {"n_bands": m.n_bands, "low_bands": m.low, "low_quantile": m.low_quantile,
              "heldout_rule": HELDOUT_RULE, "solu": s.to_dict(),
              "control": c.to_dict() if c else None,
              "vs_control": vs.to_dict() if vs else None,
              "per_model": {k: v.to_dict() for k, v in m.per_model.items()},
              "rescale": dict(m.models), "reason": reason}
    return LN_LOW_ACTIVATION.scored(ours, verdict, sentence, values=values)


CLAIMS: tuple[ClaimSpec, ...] = (LN_LOW_ACTIVATION,)
