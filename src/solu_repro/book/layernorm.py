"""Paper §6.4, Figure 9: are weak firings after SoLU's extra LayerNorm less often about the
neuron's feature than before it?

The paper had one author label about a thousand examples of one neuron ("left"/"right") at
every activation level, before and after the LN, and found post-LN examples "much more
likely to have unrelated activations in the low-activation regime". Here the same count is
made mechanically over many neurons and every model with the extra LN:

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
* **Statistic:** per neuron, the inconsistent fraction of its low bands after the LN minus
  before it (a paired difference); its mean over neurons, pooled over the seeds of a variant
  (and per model), with a 95% bootstrap interval over neurons (``scipy.stats.bootstrap``,
  BCa). The same for the LN-only ablation (GELU followed by the same LN) is the control, and
  SoLU-LN minus GELU-LN gets a two-sample bootstrap interval.
* **Verdict** (``ln_verdict``): reproduced if SoLU-LN's difference is above 0 and above
  GELU-LN's, both with 95% bootstrap intervals excluding 0.
* **The LN's rescaling** (``rescale_summary``): per position, the factor ``1/sqrt(var+eps)``
  by which the extra LN multiplies the centred SoLU output, and how much it varies between
  positions. The channel §6.4 describes (the LN scaling weak, suppressed positions back up)
  needs that factor to be larger where SoLU's output is small; if every position got the same
  factor, the LN would be a fixed linear map and could smuggle nothing.

Notebook 07 calls ``layernorm_measurements`` once, then ``claims`` (the registry claim
``ln_low_activation``) and the figures.
"""

from __future__ import annotations

import html
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import plotly.graph_objects as go

from ..interp.analysis import (HELDOUT_RULE, BandRow, LNConsistency, NeuronBands, holds_out,
                               ln_consistency)
from ..interp.explanations import VocabTables
from . import style
from ..paper.claim import (INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, Claim)
from ..paper.registry import scored
from .neurons import format_table
from ..interp.ranking import rank_neurons
from .neuron_cards import side_by_side_html, verdict_html

HOOK_LABELS = {"mid": "before the LN (hook_mid)", "post": "after the LN (hook_post)"}
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

_CACHE: dict[tuple, "ModelLN"] = {}
_FEATURES: dict[tuple, Any] = {}


# --- which models ------------------------------------------------------------------------------
def ln_models(ctx) -> list[str]:
    """Every zoo model with an LN after its activation (all seeds), in zoo order."""
    return [n for n in ctx.all_names if ctx.model_config(n).has_mlp_ln]


def low_bands(n_bands: int = N_BANDS, low_quantile: float = LOW_QUANTILE) -> list[int]:
    """Bands lying below ``low_quantile`` of the positive activations (at least band 0)."""
    if not 0 < low_quantile <= 1:
        raise ValueError(f"low_quantile must be in (0, 1], got {low_quantile!r}")
    return [b for b in range(n_bands) if (b + 1) / n_bands <= low_quantile + 1e-9] or [0]


def bands_text(bands: Sequence[int], n_bands: int) -> str:
    """e.g. "bands 1-5 of 10, quantiles 0-50% of each hook's firings"."""
    lo, hi = bands[0] / n_bands, (bands[-1] + 1) / n_bands
    which = f"band {bands[0] + 1}" if len(bands) == 1 else f"bands {bands[0] + 1}-{bands[-1] + 1}"
    return f"{which} of {n_bands}, quantiles {lo:.0%}-{hi:.0%} of each hook's firings"


# --- the LN's rescaling -----------------------------------------------------------------------
def rescale_summary(mid_var: np.ndarray, eps: float) -> dict[str, float]:
    """What the extra LN does to each position's SoLU output, from its variance ``mid_var``.

    ``rescale = 1 / sqrt(var + eps)``: the factor the LN multiplies the position's centred
    ``hook_mid`` vector by (before its per-neuron weights). ``spread`` = its 90th over its
    10th percentile across positions: how much more the LN scales up the weakest positions
    than the strongest (1: every position alike, no channel). ``gain = sqrt(var / (var +
    eps))`` (``book.design.ln_gain``): 1 where the LN is scale invariant, small where eps
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
    from ..data import num_rows
    from ..interp.harvest import selection_rows

    rows = selection_rows(num_rows(split, n_ctx), "odd")
    return rows[:max_rows] if max_rows else rows


def _features(split, tables: VocabTables, rows: np.ndarray, n_ctx: int):
    from ..interp.score import heldout_features

    key = (str(split.directory), n_ctx, len(rows), int(rows[0]) if len(rows) else -1,
           int(rows[-1]) if len(rows) else -1)
    if key not in _FEATURES:
        _FEATURES.clear()  # one corpus at a time: the features of 80k tokens are not small
        _FEATURES[key] = heldout_features(split, tables, rows, n_ctx)
    return _FEATURES[key]


def measure_model(ctx, name: str, *, n_bands: int = N_BANDS,
                  max_neurons: int | None = MAX_NEURONS, max_rows: int | None = MAX_ROWS
                  ) -> ModelLN:
    """``ln_consistency`` of zoo model ``name`` on its held-out rows (cached per context)."""
    key = (ctx.scale, str(ctx.runs_dir), ctx.seed, name, n_bands, max_neurons, max_rows)
    if key not in _CACHE:
        run = ctx.run(name)
        cfg = run.config.model
        if not cfg.has_mlp_ln:
            raise ValueError(f"{name} has no LayerNorm after its activation: hook_post is "
                             "hook_mid, there is nothing to compare")
        scores = ctx.scores(name)
        corpus = run.corpus()
        split = corpus.split("val")
        tables = VocabTables(corpus.tokenizer)
        rows = measured_rows(split, cfg.n_ctx, max_rows)
        consistency = ln_consistency(
            run.load_model(), scores, split, tables, rows, n_ctx=cfg.n_ctx,
            bos_id=corpus.bos_id, n_bands=n_bands, max_neurons=max_neurons, seed=ctx.seed,
            ln_blocks=cfg.solu_blocks, features=_features(split, tables, rows, cfg.n_ctx))
        _CACHE[key] = ModelLN(name, len(scores.records),
                              sum(r.interpretable for r in scores.records),
                              sum(holds_out(r) for r in scores.records), consistency,
                              rescale_summary(consistency.mid_var, cfg.ln_eps))
    return _CACHE[key]


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
    from scipy.stats import bootstrap

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

    def text(self) -> str:
        if self.n_neurons == 0:
            return f"{self.label}: no neuron to compare"
        return (f"{self.label}: inconsistent before the LN {self.mid:.1%}, after "
                f"{self.post:.1%} (chance {self.chance:.1%}); after - before "
                f"{_pts(self.diff)} [{_pts(self.lo)}, {_pts(self.hi)}] over "
                f"{self.n_neurons} neurons of {len(self.models)} model"
                f"{'s' if len(self.models) != 1 else ''}")


def _pts(x: float) -> str:
    """A difference of fractions in percentage points, e.g. "+1.2 pts"."""
    if math.isinf(x):
        return "-inf" if x < 0 else "+inf"
    return f"{100 * x:+.1f} pts"


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


def ln_verdict(solu: PairedDifference | None, control: PairedDifference | None,
               vs_control: Contrast | None) -> tuple[str, str]:
    """The verdict on ``ln_low_activation`` and the reason, in words.

    * not testable: no SoLU-LN neuron to compare;
    * not reproduced: SoLU-LN's difference is not above 0, or not above the control's;
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
    """The §6.4 numbers at this scale (``layernorm_measurements``).

    Attributes:
        n_bands, low_quantile, low: The quantile bands and which of them are "low".
        models: ``ModelLN.summary()`` of every measured model (neurons, rescaling).
        solu: SoLU-LN's paired difference, ``PRIMARY``'s seeds pooled.
        control: The GELU-LN control's, ``CONTROL``'s seeds pooled (None if not in the zoo).
        vs_control: ``solu`` minus ``control`` (None if either has no neuron).
        per_model: Each measured model's own paired difference.
        rows, control_rows: ``band_rows`` of the SoLU-LN and control neurons (the figure).
        differences, control_differences: ``band_differences`` of each.
        verdict, reason: ``ln_verdict``.
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
    verdict: str
    reason: str

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


def layernorm_measurements(ctx, names: Sequence[str] | None = None, *, n_bands: int = N_BANDS,
                           low_quantile: float = LOW_QUANTILE,
                           max_neurons: int | None = MAX_NEURONS,
                           max_rows: int | None = MAX_ROWS, primary: str = PRIMARY,
                           control: str | None = CONTROL, confidence: float = CONFIDENCE,
                           n_resamples: int = N_RESAMPLES) -> LayerNormMeasurements:
    """Figure 9's comparison at this scale (``LayerNormMeasurements``).

    Args:
        ctx: The notebook's ``BookContext``.
        names: Models measured (default ``ln_models``: every model with the extra LN, all
            seeds); the seeds of ``primary`` and of ``control`` among them decide the verdict.
        n_bands: Quantile bands per hook.
        low_quantile: "Low" bands lie below this quantile of the firings.
        max_neurons, max_rows: Caps per model (``MAX_NEURONS``, ``MAX_ROWS``).
        primary, control: The SoLU-LN variant and the GELU-LN control (``control=None``: none).
    """
    names = list(ln_models(ctx) if names is None else names)
    measured = {n: measure_model(ctx, n, n_bands=n_bands, max_neurons=max_neurons,
                                 max_rows=max_rows) for n in names}
    low = low_bands(n_bands, low_quantile)
    opts = dict(confidence=confidence, n_resamples=n_resamples, seed=ctx.seed)

    def group(variant):
        return {n: measured[n].neurons for n in names if style.variant_of(n) == variant}

    solu_group = group(primary)
    solu = paired_difference(solu_group, low, _group_label(primary, solu_group), **opts)
    ctrl, vs, control_group = None, None, {}
    if control is not None:
        control_group = group(control)
        if control_group:
            ctrl = paired_difference(control_group, low, _group_label(control, control_group),
                                     **opts)
            vs = contrast(solu, ctrl, **opts)
    verdict, reason = ln_verdict(solu, ctrl, vs)
    solu_neurons = [nb for ns in solu_group.values() for nb in ns]
    control_neurons = [nb for ns in control_group.values() for nb in ns]
    return LayerNormMeasurements(
        n_bands, low_quantile, low, {n: m.summary() for n, m in measured.items()}, solu, ctrl,
        vs, {n: paired_difference({n: m.neurons}, low, n, **opts) for n, m in measured.items()},
        band_rows(solu_neurons, n_bands, **opts), band_rows(control_neurons, n_bands, **opts),
        band_differences(solu_neurons, n_bands, **opts),
        band_differences(control_neurons, n_bands, **opts), verdict, reason)


def _group_label(variant: str, group: dict) -> str:
    return f"{variant} ({len(group)} seed{'s' if len(group) != 1 else ''})"


# --- the claim --------------------------------------------------------------------------------
def claims(lm: LayerNormMeasurements) -> list[Claim]:
    """The registry claim of this chapter, ``ln_low_activation``, scored from ``lm``."""
    low = bands_text(lm.low, lm.n_bands)
    s, c, vs = lm.solu, lm.control, lm.vs_control
    solu_models = s.models
    control_models = c.models if c else []
    rescale = lm.rescale_text(solu_models, "SoLU-LN")
    if control_models:
        rescale += "; " + lm.rescale_text(control_models, "GELU-LN")
    if s.n_neurons == 0:
        ours = f"no SoLU-LN neuron to compare ({low}); LN rescaling {rescale}"
    else:
        ours = (f"{low}, after - before the LN, per neuron: SoLU-LN {_pts(s.diff)} "
                f"[{_pts(s.lo)}, {_pts(s.hi)}] ({s.n_neurons} neurons, {len(solu_models)} "
                "seeds)")
        if c is not None and c.n_neurons:
            ours += (f"; GELU-LN control {_pts(c.diff)} [{_pts(c.lo)}, {_pts(c.hi)}] "
                     f"({c.n_neurons} neurons)")
        else:
            ours += "; no GELU-LN control neuron"
        if vs is not None:
            ours += f"; SoLU-LN - GELU-LN {_pts(vs.diff)} [{_pts(vs.lo)}, {_pts(vs.hi)}]"
        ours += f". LN rescaling of each position's SoLU output (median): {rescale}"
    if s.n_neurons == 0:
        sentence = (f"There is nothing to compare: {lm.reason} ({lm.verdict}). The extra LN "
                    f"multiplies each position's centred activation vector by (median) "
                    f"{rescale}.")
    else:
        sentence = (f"In the low bands ({low}), SoLU-LN's tokens are "
                    f"inconsistent with the neuron's explanation {s.mid:.1%} of the time "
                    f"before the LN and {s.post:.1%} after it (chance: {s.chance:.1%}): a "
                    f"paired difference of {_pts(s.diff)} [{_pts(s.lo)}, {_pts(s.hi)}] over "
                    f"{s.n_neurons} neurons of {len(solu_models)} seeds")
        if c is not None and c.n_neurons:
            sentence += (f"; in the GELU-LN control {_pts(c.diff)} [{_pts(c.lo)}, "
                         f"{_pts(c.hi)}] over {c.n_neurons} neurons")
        if vs is not None:
            sentence += f", SoLU-LN minus control {_pts(vs.diff)} [{_pts(vs.lo)}, {_pts(vs.hi)}]"
        sentence += (f". {lm.reason[0].upper()}{lm.reason[1:]} ({lm.verdict}). The extra LN "
                     f"multiplies each position's centred activation vector by (median) "
                     f"{rescale}.")
    values = {"n_bands": lm.n_bands, "low_bands": lm.low, "low_quantile": lm.low_quantile,
              "heldout_rule": HELDOUT_RULE, "solu": s.to_dict(),
              "control": c.to_dict() if c else None,
              "vs_control": vs.to_dict() if vs else None,
              "per_model": {k: v.to_dict() for k, v in lm.per_model.items()},
              "rescale": {k: v for k, v in lm.models.items()}, "reason": lm.reason}
    return [scored("ln_low_activation", ours, lm.verdict, sentence, values=values)]


def reading_text(lm: LayerNormMeasurements) -> str:
    """What the numbers say beside the verdict, in sentences: how much room the low bands
    leave before chance, whether the LN's rescaling varies between positions (the channel
    §6.4 needs), and how the result compares with the paper's."""
    s, c = lm.solu, lm.control
    if s.n_neurons == 0:
        return ("With no SoLU-LN neuron to compare, this build says nothing about §6.4; at "
                "`tiny` scale that is expected (the models are barely trained).")
    room = s.chance - s.mid
    out = [f"Before the LN, SoLU-LN's low bands are already {s.mid:.0%} inconsistent, against "
           f"{s.chance:.0%} for tokens taken at random, so the LN could add at most about "
           f"{100 * room:.0f} points there."]
    spreads = [lm.models[n]["spread"] for n in s.models
               if n in lm.models and lm.models[n]["positions"]]
    if spreads:
        spread = float(np.median(spreads))
        gains = [lm.models[n]["gain_median"] for n in s.models
                 if n in lm.models and lm.models[n]["positions"]]
        channel = ("it scales the weakest positions up markedly more than the strongest, so "
                   "the channel §6.4 describes is open" if spread >= 1.5 else
                   "it treats nearly every position alike, which leaves little room for the "
                   "channel §6.4 describes")
        eps = (f"eps barely matters (median gain {min(gains):.3f} or more)"
               if min(gains) >= 0.9 else f"eps matters (median gain down to {min(gains):.3f}, "
               "where the LN no longer normalizes)")
        control_spreads = [lm.models[n]["spread"] for n in (c.models if c else [])
                           if n in lm.models and lm.models[n]["positions"]]
        after_gelu = (f" (after GELU: {float(np.median(control_spreads)):.1f}x)"
                      if control_spreads else "")
        out.append(f"The extra LN's factor on SoLU-LN's outputs varies {spread:.1f}x between "
                   f"the 10th and the 90th percentile of positions{after_gelu}, and {eps}: "
                   f"{channel}.")
    if c is not None and c.n_neurons:
        out.append(f"The same LN after GELU gives {_pts(c.diff)} in its low bands, so what is "
                   "specific to SoLU is the difference between the two, "
                   f"{_pts(lm.vs_control.diff) if lm.vs_control else 'n/a'}.")
    paper = {REPRODUCED: "agrees with the paper's impression from one hand-labelled neuron",
             PARTLY: "points the paper's way but is not decisive",
             INCONCLUSIVE: "does not point the paper's way, but these neurons cannot rule it "
                           "out either",
             NOT_REPRODUCED: "disagrees with the paper's impression from one hand-labelled "
                             "neuron (\"much more likely\" after the LN)",
             NOT_TESTABLE: "cannot be compared with the paper"}[lm.verdict]
    out.append(f"Measured over {s.n_neurons} neurons and every token of the held-out rows, "
               f"the result {paper}.")
    return " ".join(out)


# --- tables and figures -----------------------------------------------------------------------
def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def band_table(rows: Sequence[BandRow]) -> str:
    """Rows as text: band, hook, neurons, tokens, pooled and per-neuron inconsistent fraction."""
    out = []
    for r in rows:
        lo, hi = r.interval()
        mean = (f"{r.mean_fraction:.3f} ({lo:.3f}-{hi:.3f})"
                if r.n_examples and not math.isnan(r.mean_fraction) else "n/a")
        out.append({"band (quantile)": f"{r.lo:.0%}-{r.hi:.0%}", "hook": r.hook,
                    "neurons": r.n_neurons, "tokens": r.n_examples,
                    "inconsistent": r.n_inconsistent, "pooled": _pct(r.fraction),
                    "mean over neurons (95% CI)": mean})
    return format_table(out, ["band (quantile)", "hook", "neurons", "tokens", "inconsistent",
                              "pooled", "mean over neurons (95% CI)"])


def models_table(lm: LayerNormMeasurements) -> str:
    """Per model: neurons that hold out and were measured, the paired difference, the LN's
    rescaling."""
    out = []
    for name, m in lm.models.items():
        d = lm.per_model[name]
        diff = (f"{_pts(d.diff)} [{_pts(d.lo)}, {_pts(d.hi)}]" if d.n_neurons else "n/a")
        out.append({"model": name, "hold out": f"{m['hold_out']}/{m['neurons']}",
                    "compared": d.n_neurons, "before": _pct(d.mid), "after": _pct(d.post),
                    "after - before (95% CI)": diff,
                    "rescale median (10-90%)": (f"x{m['rescale_median']:.3g} "
                                                f"(x{m['rescale_q10']:.3g}-"
                                                f"x{m['rescale_q90']:.3g})"
                                                if m["positions"] else "n/a"),
                    "spread": f"{m['spread']:.2f}x" if m["positions"] else "n/a",
                    "gain median": f"{m['gain_median']:.3f}" if m["positions"] else "n/a"})
    return format_table(out, ["model", "hold out", "compared", "before", "after",
                              "after - before (95% CI)", "rescale median (10-90%)", "spread",
                              "gain median"])


def _centres(rows: Sequence[Any], n_bands: int) -> list[float]:
    return [100 * (r.band + 0.5) / n_bands for r in rows]


def ln_consistency_figure(rows: Sequence[BandRow], title: str | None = None,
                          chance: float | None = None, low_quantile: float | None = None
                          ) -> go.Figure:
    """Figure 9 analogue: per quantile band, the mean over neurons of the fraction of tokens
    inconsistent with the neuron's explanation, before and after the LN, with 95% bootstrap
    intervals over neurons; ``chance`` as a dotted line, the low bands shaded."""
    fig = style.figure(title or "Tokens inconsistent with the neuron's explanation, by "
                       "quantile band (paper Figure 9)",
                       "quantile band of the neuron's positive activations on that hook (%)",
                       "fraction inconsistent (mean over neurons)", height=440)
    n_bands = max((r.band for r in rows), default=0) + 1
    for hook in ("mid", "post"):
        hook_rows = [r for r in rows if r.hook == hook and r.n_examples]
        if not hook_rows:
            continue
        y = [r.mean_fraction if not math.isnan(r.mean_fraction) else r.fraction
             for r in hook_rows]
        intervals = [r.interval() for r in hook_rows]
        fig.add_trace(go.Scatter(
            x=_centres(hook_rows, n_bands), y=y, mode="lines+markers", name=HOOK_LABELS[hook],
            line=dict(color=style.HOOK_COLORS[hook], dash="solid" if hook == "mid" else "dash"),
            error_y=dict(type="data", symmetric=False,
                         array=[max(hi - v, 0) if math.isfinite(hi) else 0
                                for v, (_, hi) in zip(y, intervals)],
                         arrayminus=[max(v - lo, 0) if math.isfinite(lo) else 0
                                     for v, (lo, _) in zip(y, intervals)]),
            customdata=[[r.n_inconsistent, r.n_examples, r.n_neurons, lo, hi]
                        for r, (lo, hi) in zip(hook_rows, intervals)],
            hovertemplate=("%{customdata[2]} neurons, %{customdata[1]} tokens "
                           "(%{customdata[0]} inconsistent): mean %{y:.3f} "
                           "[%{customdata[3]:.3f}, %{customdata[4]:.3f}]<extra></extra>")))
    if not fig.data:
        fig.add_annotation(text="no neuron whose explanation holds out: nothing to count",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    else:
        if chance is not None and math.isfinite(chance):
            fig.add_hline(y=chance, line=dict(color="#555", dash="dot", width=1),
                          annotation_text=f"chance {chance:.0%}", annotation_position="bottom right")
        if low_quantile is not None:
            fig.add_vrect(x0=0, x1=100 * low_quantile, fillcolor="#999", opacity=0.1,
                          line_width=0, annotation_text="low bands",
                          annotation_position="top left")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(range=[0, 100])
    return fig


def band_difference_figure(series: dict[str, Sequence[BandDifference]], n_bands: int,
                           low_quantile: float | None = None) -> go.Figure:
    """Per quantile band, the paired difference after - before the LN (mean over neurons,
    95% bootstrap interval), one line per group of models (e.g. SoLU-LN and the control)."""
    fig = style.figure("After minus before the LN, per neuron, by quantile band",
                       "quantile band of the neuron's positive activations (%)",
                       "inconsistent after - before (mean over neurons)", height=400)
    for name, diffs in series.items():
        diffs = [d for d in diffs if d.n_neurons]
        if not diffs:
            continue
        fig.add_trace(go.Scatter(
            x=[100 * (d.band + 0.5) / n_bands for d in diffs], y=[d.diff for d in diffs],
            mode="lines+markers", name=style.label(name) if "-" in name else name,
            line=dict(color=style.color(name), dash=style.dash(name)),
            error_y=dict(type="data", symmetric=False,
                         array=[max(d.hi - d.diff, 0) if math.isfinite(d.hi) else 0
                                for d in diffs],
                         arrayminus=[max(d.diff - d.lo, 0) if math.isfinite(d.lo) else 0
                                     for d in diffs]),
            customdata=[[d.n_neurons, d.lo, d.hi] for d in diffs],
            hovertemplate=("%{customdata[0]} neurons: %{y:+.3f} [%{customdata[1]:+.3f}, "
                           "%{customdata[2]:+.3f}]<extra></extra>")))
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    if not fig.data:
        fig.add_annotation(text="no neuron to compare", xref="paper", yref="paper", x=0.5,
                           y=0.5, showarrow=False)
    elif low_quantile is not None:
        fig.add_vrect(x0=0, x1=100 * low_quantile, fillcolor="#999", opacity=0.1, line_width=0)
    fig.update_xaxes(range=[0, 100])
    return fig


# --- one neuron, low bands, before and after ----------------------------------------------------
def example_neuron(ctx, name: str):
    """The best neuron of ``name`` that holds out (``holds_out``), ranked by
    ``neurons.RANKING`` (None if none)."""
    good = [r for r in ctx.scores(name).records if holds_out(r)]
    ranked = rank_neurons(good, ctx.seed)
    return ranked[0] if ranked else None


def first_example(ctx, variant: str = PRIMARY):
    """``(model, neuron)``: ``example_neuron`` of the first seed of ``variant`` that has one
    (``(variant, None)`` if none has)."""
    for name in ctx.seeds(variant):
        record = example_neuron(ctx, name)
        if record is not None:
            return name, record
    return variant, None


def low_band_examples(ctx, name: str, record, *, n_bands: int = N_BANDS,
                      low_quantile: float = LOW_QUANTILE, n: int = 8,
                      max_rows: int | None = MAX_ROWS) -> dict[str, list]:
    """Per hook, ``n`` random tokens (seeded) of the neuron's low quantile bands on the
    measured rows, as ``harvest.Example``s with whether the explanation holds there."""
    import torch

    from ..data import get_rows
    from ..interp.analysis import quantile_bands
    from ..interp.harvest import Example, ModelNeurons

    run = ctx.run(name)
    cfg, corpus = run.config.model, run.corpus()
    split, tables = corpus.split("val"), VocabTables(corpus.tokenizer)
    rows = measured_rows(split, cfg.n_ctx, max_rows)
    source = ModelNeurons(run.load_model().eval())
    acts = {"mid": [], "post": []}
    with torch.inference_mode():
        for start in range(0, len(rows), 16):
            out = source.activations(get_rows(split, rows[start:start + 16], cfg.n_ctx,
                                              corpus.bos_id))
            for hook in acts:
                acts[hook].append(out[hook][record.layer][:, 1:, record.neuron].reshape(-1)
                                  .numpy())
    holds = record.explanation_obj().holds(_features(split, tables, rows, cfg.n_ctx), tables)
    low = set(low_bands(n_bands, low_quantile))
    rng = np.random.default_rng([ctx.seed, record.layer, record.neuron])
    per_row = cfg.n_ctx - 1
    out: dict[str, list] = {}
    for hook, parts in acts.items():
        a = np.concatenate(parts)
        band = quantile_bands(a, n_bands)
        where = np.flatnonzero(np.isin(band, sorted(low)))
        pick = np.sort(rng.choice(where, min(n, where.size), replace=False)) if where.size else []
        out[hook] = [(Example(int(rows[i // per_row]), int(i % per_row) + 1, float(a[i])),
                      bool(holds[i])) for i in pick]
    return out


def band_pair_html(ctx, name: str, record, *, n_bands: int = N_BANDS,
                   low_quantile: float = LOW_QUANTILE, n_examples: int = 8) -> str:
    """One neuron's tokens from its low quantile bands before and after the LN, side by side,
    each labelled with whether the scorer's explanation holds there."""
    from ..interp.view import neuron_snippets, snippets_html

    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    drawn = low_band_examples(ctx, name, record, n_bands=n_bands, low_quantile=low_quantile,
                              n=n_examples)
    columns = {}
    for hook, items in drawn.items():
        snippets = neuron_snippets(model, corpus, harvest, record.layer, record.neuron,
                                   [e for e, _ in items], hook=hook, left=16, right=4)
        snippets = [replace(s, source=f"{s.source} · {'holds' if ok else 'INCONSISTENT'}")
                    for s, (_, ok) in zip(snippets, items)]
        bad = sum(not ok for _, ok in items)
        peak = float(harvest.stat("max", hook)[record.layer, record.neuron])
        title = (f"{HOOK_LABELS[hook]}, the weakest {low_quantile:.0%} of its firings: "
                 f"{bad} of {len(items)} inconsistent")
        columns[title] = snippets_html(snippets, max_value=peak if peak > 0 else None)
    return verdict_html(record, name) + side_by_side_html(columns)


def no_neuron_html(name: str) -> str:
    return (f'<p class="solu-empty" style="font-family:sans-serif;color:#555">No neuron of '
            f"{html.escape(name)} has an explanation that holds up on held-out rows: no "
            "example to show.</p>")
