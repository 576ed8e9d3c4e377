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
* **Bands:** as in Figure 9, by activation level: per neuron, ``n_bands`` bands at fractions
  of its max activation before the LN (``hook_mid``: 0-10% of the max, 10-20%, ...) and,
  separately, at fractions of its max after it (``hook_post``)
  (``interp.analysis.level_bands``). "Low" is ``LOW_LEVELS``, 10% to 50% of the max: below
  10% lie the noise-floor firings (SoLU's x·softmax(x) is positive wherever x > 0, about
  half the tokens), at chance on both hooks of every model, trained or not.
* **Per neuron** (``NeuronBands.level``, ``difference``): the inconsistent fraction of each
  low band, the bands weighing the same; after minus before the LN.
* **Per model** (``model_levels``): the mean over its measured neurons. The neurons are a
  census of the model, not a sample of anything, so these are numbers without intervals;
  so are the counts of neurons whose low bands got worse or better.
* **Floor** (the room the measurement has): the same neurons' explanations, tokens and bands
  read from the untrained model of the same config (``interp.controls.random_init``): what a
  neuron with no learned relation to its explanation shows. The *room* is that level minus
  the trained model's level before the LN: how far below "unrelated" the low bands start,
  hence how much more inconsistent they can become.
* **Between models** (``ln_tests``): the units are the seeds of the one-layer SoLU-LN model
  (``PRIMARY``), one number each. The claim's test is ``claim.seed_test`` on the per-seed
  after-minus-before differences, gated on the room; the LN-only ablation (GELU followed by
  the same LN, ``CONTROL``) is measured the same way and compared seed by seed
  (``claim.paired_test``), for the reading, not the verdict (the claim is about what the
  LN does after SoLU, not that only SoLU's LN does it).
* **Verdict** (``ln_verdict``, applied by ``decide_ln_low_activation``).
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
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..data import num_rows
from ..fmt import pct, points
from ..interp.analysis import (HELDOUT_RULE, BandRow, LNConsistency, NeuronBands, holds_out,
                               ln_consistency)
from ..interp.explanations import VocabTables
from ..interp.harvest import selection_rows
from ..interp.score import NeuronScores, heldout_features
from ..zoo import seed_of, variant_of
from .claim import (CONTRADICTED, EMPIRICAL, INCONCLUSIVE, INTEREST_POINTS, NOT_TESTABLE,
                    REPRODUCED, SEED_RULE, Claim, ClaimSpec, Test, gated, paired_test,
                    seed_test)

N_BANDS = 10
"""Activation-level bands per hook: 0-10% of the neuron's max, 10-20%, ..., 90-100%."""
LOW_LEVELS = (0.1, 0.5)
"""The "low-activation regime": activations from 10% to 50% of the neuron's max on that hook.
Below 10% lie the noise-floor firings (SoLU's x·softmax(x) is positive wherever x > 0, about
half the tokens), inconsistent at chance on both hooks of every model, trained or untrained;
from 50% up the neuron fires strongly."""
INTEREST = INTEREST_POINTS
"""The smallest effect of interest, 5 points of inconsistent fraction after minus before the
LN (``claim.INTEREST_POINTS``): the paper reports "much more likely", and an increase below 5
points would not be that."""
MAX_NEURONS = 200
"""Neurons measured per model at most (seeded choice among those that hold out): every token
of the held-out rows is counted for each, about 0.05 s a neuron on a CPU."""
MAX_ROWS = 400
"""Held-out rows measured per model at most (the cpu zoo has 317: all of them)."""
PRIMARY = "1L-solu_ln"
"""The SoLU-LN variant the verdict rests on (its seeds are the units)."""
CONTROL = "1L-gelu_ln"
"""The LN-only ablation: GELU followed by the same LN, the same depth (seeds paired with
``PRIMARY``'s by seed number)."""
FLOOR = "the untrained model of the same config (random init), read against the trained neurons' explanations"
"""What sets the floor (``interp.controls.random_init``)."""
NULL = ("0 (as often inconsistent after the LN as before it), gated on room below the "
        "untrained model's level")
"""The null of the claim's test, as chapter 9 shows it."""

_FEATURES: dict[tuple, Any] = {}


# --- the low bands ------------------------------------------------------------------------------
def low_bands(n_bands: int = N_BANDS, low: Sequence[float] = LOW_LEVELS) -> list[int]:
    """The bands lying within ``low`` (fractions of the max, ``(lo, hi)``): band ``b`` covers
    ``b / n_bands`` to ``(b + 1) / n_bands``. At least one band: the one holding ``lo``."""
    lo, hi = float(low[0]), float(low[1])
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"low must be two fractions of the max, 0 <= lo < hi <= 1, got {low!r}")
    eps = 1e-9
    return ([b for b in range(n_bands) if b / n_bands >= lo - eps and (b + 1) / n_bands <= hi + eps]
            or [min(int(lo * n_bands + eps), n_bands - 1)])


def bands_text(bands: Sequence[int], n_bands: int) -> str:
    """e.g. "10%-50% of each neuron's max on that hook (bands 2-5 of 10)"."""
    lo, hi = bands[0] / n_bands, (bands[-1] + 1) / n_bands
    which = f"band {bands[0] + 1}" if len(bands) == 1 else f"bands {bands[0] + 1}-{bands[-1] + 1}"
    return f"{pct(lo, 0)}-{pct(hi, 0)} of each neuron's max on that hook ({which} of {n_bands})"


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
    """``ln_consistency`` of one zoo model (with its untrained floor), its counts and the LN's
    rescaling."""

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

    @property
    def floor(self) -> list[NeuronBands]:
        """The same neurons read from the untrained model (empty without a floor)."""
        return self.consistency.floor

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
                  seed: int = 0, floor: bool = True) -> ModelLN:
    """``ln_consistency`` of model ``name`` (its ``run`` and ``scores``) on its held-out rows,
    with the untrained model of its config as the floor (``floor=False``: none).

    Args:
        name: The model's name in the results.
        run: Its run (``ZooRun`` or a released model's run): ``config``, ``corpus()``,
            ``load_model()``.
        scores: Its automated interpretability scores (hook ``mid``).
        n_bands: Activation-level bands per hook.
        max_neurons, max_rows: Caps (``MAX_NEURONS``, ``MAX_ROWS``).
        seed: Seed of the choice of neurons when more than ``max_neurons`` hold out.
        floor: Read the same neurons from ``interp.controls.random_init(run)`` too.
    """
    from ..interp.controls import random_init

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
        features=split_features(split, tables, rows, cfg.n_ctx),
        floor=random_init(cfg) if floor else None)
    return ModelLN(name, len(scores.records), sum(r.interpretable for r in scores.records),
                   sum(holds_out(r) for r in scores.records), consistency,
                   rescale_summary(consistency.mid_var, cfg.ln_eps))


# --- one model's census -----------------------------------------------------------------------
@dataclass
class ModelLevels:
    """One model's low bands, before and after the LN: means over its measured neurons.

    The neurons are every one of the model's that holds out (or a seeded choice of them), a
    census of this model: the numbers are what they are, with no interval over neurons. The
    uncertainty that matters is between trained models (``ln_tests``, over seeds).

    Attributes:
        name: The model.
        n_neurons: Neurons compared: with tokens in a low band on both hooks.
        mid, post: Mean over them of the low-band inconsistent fraction (``NeuronBands.level``)
            before and after the LN.
        floor: Mean over them of the untrained model's low-band fraction before the LN (its
            same neuron, the trained neuron's explanation, its own bands); NaN without one.
        chance: Mean over them of the inconsistent fraction over all tokens.
        diff: Mean of the per-neuron differences after minus before
            (``NeuronBands.difference``).
        n_up, n_down: Neurons whose low bands are more (less) often inconsistent after the LN.
        floor_diff: The untrained model's after minus before in the same bands (what the
            banding alone gives: a null for ``diff``); NaN without a floor.
    """

    name: str
    n_neurons: int
    mid: float
    post: float
    floor: float
    chance: float
    diff: float
    n_up: int
    n_down: int
    floor_diff: float = math.nan

    @property
    def room(self) -> float:
        """How far below the untrained level the low bands start before the LN: the room
        an increase after the LN has (NaN without a floor)."""
        return self.floor - self.mid

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_neurons": self.n_neurons, "mid": self.mid,
                "post": self.post, "floor": self.floor, "room": self.room,
                "chance": self.chance, "diff": self.diff, "n_up": self.n_up,
                "n_down": self.n_down, "floor_diff": self.floor_diff}


def _mean(values: Sequence[float]) -> float:
    x = np.asarray([v for v in values if v == v], dtype=float)
    return float(x.mean()) if x.size else math.nan


def model_levels(name: str, neurons: Sequence[NeuronBands], floor: Sequence[NeuronBands],
                 bands: Sequence[int]) -> ModelLevels:
    """``ModelLevels`` of one model's ``neurons`` (and the same neurons of its ``floor``) in
    the low ``bands``."""
    floors = {(f.layer, f.neuron): f for f in floor}
    kept = [nb for nb in neurons if math.isfinite(nb.difference(bands))]
    diffs = [nb.difference(bands) for nb in kept]
    mine = [floors[(nb.layer, nb.neuron)] for nb in kept if (nb.layer, nb.neuron) in floors]
    floor_levels = [f.level("mid", bands) for f in mine]
    return ModelLevels(name, len(kept), _mean([nb.level("mid", bands) for nb in kept]),
                       _mean([nb.level("post", bands) for nb in kept]), _mean(floor_levels),
                       _mean([nb.chance for nb in kept]), _mean(diffs),
                       sum(d > 0 for d in diffs), sum(d < 0 for d in diffs),
                       _mean([f.difference(bands) for f in mine]))


# --- between trained models: the tests --------------------------------------------------------
def effect_test(levels: Sequence[ModelLevels], null: str = NULL) -> Test:
    """The claim's test: ``seed_test`` on the per-seed after-minus-before differences of the
    models that have a neuron to compare (positive: more inconsistent after the LN)."""
    return seed_test([l.diff for l in levels if l.n_neurons], interest=INTEREST, null=null,
                     unit="points", scale=100)


def room_test(levels: Sequence[ModelLevels]) -> Test:
    """The room per seed (``ModelLevels.room``): the untrained level minus the trained level
    before the LN, over the models with a neuron to compare."""
    return seed_test([l.room for l in levels if l.n_neurons], interest=INTEREST,
                     null="the untrained model's low-band level (no room)", unit="points",
                     scale=100)


def has_room(room: Test) -> bool:
    """The gate: the room's interval over seeds lies above the smallest effect of interest,
    so the low bands start far enough below the untrained level for an increase of that size
    to show."""
    return math.isfinite(room.lo) and room.lo > room.interest


def paired_by_seed(a: Sequence[ModelLevels], b: Sequence[ModelLevels]
                   ) -> tuple[list[float], list[float], list[int]]:
    """The per-seed differences of ``a`` and ``b`` for the seeds both have (with a neuron to
    compare), matched by seed number: ``(a values, b values, seeds)``."""
    bs = {seed_of(l.name): l for l in b if l.n_neurons}
    pairs = [(l.diff, bs[seed_of(l.name)].diff, seed_of(l.name)) for l in a
             if l.n_neurons and seed_of(l.name) in bs]
    return [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]


def vs_control_test(solu: Sequence[ModelLevels], control: Sequence[ModelLevels]) -> Test | None:
    """SoLU-LN's difference minus GELU-LN's, seed by seed (``paired_test``); None when no
    seed has both."""
    a, b, _ = paired_by_seed(solu, control)
    if not a:
        return None
    return paired_test(a, b, interest=INTEREST, null="the same LN after GELU (GELU-LN), "
                       "paired by seed", unit="points", scale=100)


def ln_verdict(effect: Test, room: Test) -> tuple[str, str, Test]:
    """The rule of ``LN_LOW_ACTIVATION`` (its text below): ``(verdict, reason, test)``, the
    test being ``effect`` as the claim rests on it (gated when there is no room).

    * not testable: no SoLU-LN neuron to compare; no room below the untrained level
      (``has_room`` fails: "inconsistent" cannot rise by the effect of interest); or the
      design cannot detect the effect of interest (one seed, or the smallest detectable
      effect above ``INTEREST``);
    * otherwise the symmetric rule of ``claim.Test.verdict``: reproduced if the 95% interval
      over seeds is above 0, contradicted if below 0, else inconclusive.
    """
    if effect.n == 0:
        why = "no SoLU-LN neuron whose explanation holds up fires in the low bands of both hooks"
        return NOT_TESTABLE, why, gated(effect, why)
    if not has_room(room):
        if room.n == 0 or not math.isfinite(room.effect):
            why = "no untrained floor was measured, so the room for an increase is unknown"
        elif not math.isfinite(room.lo):
            why = (f"the room below the untrained level has no interval over seeds "
                   f"({room.interval_text}{'; ' + room.why if room.why else ''}), so whether "
                   "an increase of interest could show is unknown")
        else:
            why = (f"no room: before the LN the low bands sit {room.interval_text} below the "
                   f"untrained model's level, an interval not wholly above the "
                   f"{INTEREST * 100:.0f} points an increase of interest needs")
        return NOT_TESTABLE, why, gated(effect, why)
    v = effect.verdict
    seeds = f"{effect.n} seeds"
    if v == REPRODUCED:
        why = (f"after the LN, the low bands are more often inconsistent than before it, the "
               f"95% interval over {seeds} above 0")
    elif v == CONTRADICTED:
        why = (f"after the LN, the low bands are less often inconsistent than before it, the "
               f"95% interval over {seeds} below 0")
    elif v == INCONCLUSIVE:
        why = (f"the 95% interval over {seeds} includes 0, though this design detects "
               f"{effect.power_text}")
    else:
        why = (f"the interval over {seeds} includes 0 and this design cannot detect the effect "
               f"of interest ({effect.power_text})")
    return v, why, effect


# --- bands for the figure ---------------------------------------------------------------------
def _seed_range(values: Sequence[float]) -> tuple[float, float]:
    x = [v for v in values if v == v]
    return (min(x), max(x)) if len(x) >= 2 else (math.nan, math.nan)


def band_rows(by_model: Mapping[str, Sequence[NeuronBands]], n_bands: int) -> list[BandRow]:
    """One ``BandRow`` per (hook, band) over the neurons of every model in ``by_model``:
    pooled counts, the mean over neurons of each neuron's fraction, and the range of the
    per-model means (``seed_lo``, ``seed_hi``)."""
    rows = []
    for hook in ("mid", "post"):
        for band in range(n_bands):
            n_ex = n_bad = n_used = 0
            fractions, per_model = [], []
            for neurons in by_model.values():
                mine = []
                for nb in neurons:
                    i = nb.hooks.index(hook)
                    if nb.examples[i, band]:
                        n_ex += int(nb.examples[i, band])
                        n_bad += int(nb.inconsistent[i, band])
                        n_used += 1
                        mine.append(nb.inconsistent[i, band] / nb.examples[i, band])
                fractions += mine
                per_model.append(_mean(mine))
            lo, hi = _seed_range(per_model)
            rows.append(BandRow(hook, band, band / n_bands, (band + 1) / n_bands, n_ex, n_bad,
                                n_used, _mean(fractions), lo, hi))
    return rows


@dataclass
class BandDifference:
    """After minus before the LN in one band: the mean over neurons that have tokens there on
    both hooks, and the range of the per-model means (NaN with one model)."""

    band: int
    n_neurons: int
    diff: float
    seed_lo: float
    seed_hi: float


def band_differences(by_model: Mapping[str, Sequence[NeuronBands]], n_bands: int
                     ) -> list[BandDifference]:
    """Per band, the per-neuron difference ``post - mid`` (``BandDifference``)."""
    out = []
    for band in range(n_bands):
        pooled, per_model = [], []
        for neurons in by_model.values():
            d = [nb.difference([band]) for nb in neurons]
            d = [x for x in d if math.isfinite(x)]
            pooled += d
            per_model.append(_mean(d))
        lo, hi = _seed_range(per_model)
        out.append(BandDifference(band, len(pooled), _mean(pooled), lo, hi))
    return out


# --- the measurement --------------------------------------------------------------------------
@dataclass
class LayerNormMeasurements:
    """The §6.4 numbers at this scale (``measure``).

    Attributes:
        n_bands, low_levels, low: The activation-level bands, the low regime as fractions of
            the max, and the bands it covers.
        models: ``ModelLN.summary()`` of every measured model (neurons, rescaling).
        per_model: Each measured model's ``ModelLevels`` (its census).
        solu_names, control_names: The seeds of ``PRIMARY`` and of ``CONTROL`` measured.
        effect, room: ``effect_test`` and ``room_test`` of the SoLU-LN seeds.
        control_effect: ``effect_test`` of the GELU-LN seeds (None without the control).
        vs_control: ``vs_control_test`` (None without a seed of both).
        rows, control_rows, floor_rows: ``band_rows`` of SoLU-LN's neurons, GELU-LN's, and
            SoLU-LN's untrained floor (the figure).
        differences, control_differences: ``band_differences`` of each.
        measured: Each model's ``ModelLN`` (its neurons' band counts).
    """

    n_bands: int
    low_levels: tuple[float, float]
    low: list[int]
    models: dict[str, dict[str, Any]]
    per_model: dict[str, ModelLevels]
    solu_names: list[str]
    control_names: list[str]
    effect: Test
    room: Test
    control_effect: Test | None
    vs_control: Test | None
    rows: list[BandRow]
    control_rows: list[BandRow]
    floor_rows: list[BandRow]
    differences: list[BandDifference]
    control_differences: list[BandDifference]
    measured: dict[str, ModelLN] = field(default_factory=dict, repr=False)

    @property
    def solu(self) -> list[ModelLevels]:
        return [self.per_model[n] for n in self.solu_names]

    @property
    def control(self) -> list[ModelLevels]:
        return [self.per_model[n] for n in self.control_names]

    @property
    def decision(self) -> tuple[str, str, Test]:
        """``ln_verdict(effect, room)``."""
        return ln_verdict(self.effect, self.room)

    @property
    def verdict(self) -> str:
        return self.decision[0]

    @property
    def reason(self) -> str:
        return self.decision[1]

    def seed_mean(self, names: Sequence[str], attr: str) -> float:
        """The mean over the models ``names`` (with a neuron to compare) of ``attr``."""
        return _mean([getattr(self.per_model[n], attr) for n in names
                      if self.per_model[n].n_neurons])

    def to_dict(self) -> dict[str, Any]:
        return {"n_bands": self.n_bands, "low_levels": list(self.low_levels), "low": self.low,
                "models": self.models,
                "per_model": {k: v.to_dict() for k, v in self.per_model.items()},
                "solu_names": self.solu_names, "control_names": self.control_names,
                "effect": self.effect.to_dict(), "room": self.room.to_dict(),
                "control_effect": self.control_effect.to_dict() if self.control_effect else None,
                "vs_control": self.vs_control.to_dict() if self.vs_control else None,
                "rows": [r.to_dict() for r in self.rows],
                "control_rows": [r.to_dict() for r in self.control_rows],
                "floor_rows": [r.to_dict() for r in self.floor_rows],
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


def from_neurons(by_model: Mapping[str, Sequence[NeuronBands]],
                 floors: Mapping[str, Sequence[NeuronBands]], *, n_bands: int = N_BANDS,
                 low: Sequence[float] = LOW_LEVELS, primary: str = PRIMARY,
                 control: str | None = CONTROL, models: Mapping[str, dict] | None = None,
                 measured: Mapping[str, ModelLN] | None = None) -> LayerNormMeasurements:
    """``LayerNormMeasurements`` from each model's neurons and untrained floor (by zoo-style
    name): the census per model, the tests over seeds, the figure's bands."""
    bands = low_bands(n_bands, low)
    names = list(by_model)
    per_model = {n: model_levels(n, by_model[n], floors.get(n, []), bands) for n in names}
    solu_names = [n for n in names if variant_of(n) == primary]
    control_names = [n for n in names if control is not None and variant_of(n) == control]
    solu = [per_model[n] for n in solu_names]
    ctrl = [per_model[n] for n in control_names]
    control_effect = (effect_test(ctrl, null="0 (as often inconsistent after the LN as "
                                  "before it)") if ctrl else None)

    def group(ns):
        return {n: by_model[n] for n in ns}

    return LayerNormMeasurements(
        n_bands, (float(low[0]), float(low[1])), bands, dict(models or {}), per_model,
        solu_names, control_names, effect_test(solu), room_test(solu), control_effect,
        vs_control_test(solu, ctrl), band_rows(group(solu_names), n_bands),
        band_rows(group(control_names), n_bands),
        band_rows({n: floors.get(n, []) for n in solu_names}, n_bands),
        band_differences(group(solu_names), n_bands),
        band_differences(group(control_names), n_bands), dict(measured or {}))


def measure(runs: Mapping[str, Any], scores: Mapping[str, NeuronScores], *,
            n_bands: int = N_BANDS, low: Sequence[float] = LOW_LEVELS,
            max_neurons: int | None = MAX_NEURONS, max_rows: int | None = MAX_ROWS,
            primary: str = PRIMARY, control: str | None = CONTROL, floor: bool = True,
            seed: int = 0) -> LayerNormMeasurements:
    """Figure 9's comparison at this scale (``LayerNormMeasurements``).

    Args:
        runs: The models measured, by zoo-style name ("1L-solu_ln-s1"): every model with the
            extra LN (all seeds); the seeds of ``primary`` decide the verdict, ``control``'s
            are its comparison, the others are reported per model.
        scores: Each model's interpretability scores (hook ``mid``), by the same names.
        n_bands: Activation-level bands per hook.
        low: The low-activation regime, as fractions of the max (``LOW_LEVELS``).
        max_neurons, max_rows: Caps per model (``MAX_NEURONS``, ``MAX_ROWS``).
        primary, control: The SoLU-LN variant and the GELU-LN control (``control=None``: none).
        floor: Measure the untrained floor (``measure_model``) of the seeds of ``primary``
            and ``control`` (the others' rows of the table go without).
        seed: Of the choice of neurons.
    """
    low_bands(n_bands, low)  # check it before measuring
    measured = {n: measure_model(n, runs[n], scores[n], n_bands=n_bands,
                                 max_neurons=max_neurons, max_rows=max_rows, seed=seed,
                                 floor=floor and variant_of(n) in (primary, control))
                for n in runs}
    return from_neurons({n: m.neurons for n, m in measured.items()},
                        {n: m.floor for n, m in measured.items()}, n_bands=n_bands, low=low,
                        primary=primary, control=control,
                        models={n: m.summary() for n, m in measured.items()},
                        measured=measured)


# --- the claim this section decides -------------------------------------------------------------
LN_LOW_ACTIVATION = ClaimSpec(
    "ln_low_activation", "§6.4 / Figure 9", "After the extra LN, low-activation "
    "examples are more often inconsistent with the neuron's feature", "much more "
    "(one neuron, ~1000 examples, not blinded)", EMPIRICAL, "07-layernorm",
    "neurons whose explanation holds up on held-out rows (the scorer's interpretable "
    "neurons: chosen on the even rows' top firings, covering at least 80% of the odd "
    "rows' top firings at 3x or more their base rate); every token of the odd rows; "
    "bands at fractions of each neuron's max activation on each hook, as in Figure 9; the "
    "low regime is 10%-50% of the max (below 10% are the noise-floor firings); per "
    "neuron, the inconsistent fraction of the low bands (each band weighing the same) after "
    "the LN minus before it; per model, the mean over its neurons (a census, no interval); "
    "the units are the 1-layer SoLU-LN seeds. Floor: the same neurons of the untrained "
    "model of the same config; the room is its low-band level minus the trained one "
    "before the LN, and the claim is testable only if the room's 95% interval over seeds "
    "lies above the 5-point effect of interest (else not testable: no room). Then " + SEED_RULE
    + ". The GELU-LN control (paired by seed) is reported, not part of the verdict")


@LN_LOW_ACTIVATION.decided_by
def decide_ln_low_activation(m: LayerNormMeasurements) -> Claim:
    """The verdict by ``ln_verdict``, with the numbers it rests on in words."""
    verdict, reason, test = ln_verdict(m.effect, m.room)
    low = bands_text(m.low, m.n_bands)
    rescale = m.rescale_text(m.solu_names, "SoLU-LN")
    if m.control_names:
        rescale += "; " + m.rescale_text(m.control_names, "GELU-LN")
    solu = [l for l in m.solu if l.n_neurons]
    if not solu:
        ours = f"no SoLU-LN neuron to compare ({low}); LN rescaling {rescale}"
        sentence = (f"There is nothing to compare: {reason} ({verdict}). The extra LN "
                    f"multiplies each position's centred activation vector by (median) "
                    f"{rescale}.")
    else:
        mid, post = m.seed_mean(m.solu_names, "mid"), m.seed_mean(m.solu_names, "post")
        floor, n = m.seed_mean(m.solu_names, "floor"), sum(l.n_neurons for l in solu)
        up, down = sum(l.n_up for l in solu), sum(l.n_down for l in solu)
        ours = (f"{low}, after - before the LN, per seed: SoLU-LN {m.effect.interval_text} "
                f"(room below the untrained level {m.room.interval_text}; {up} of {n} "
                f"neurons worse after the LN, {down} better)")
        if m.control_effect is not None:
            ours += f"; GELU-LN {m.control_effect.interval_text}"
        if m.vs_control is not None:
            ours += f"; SoLU-LN - GELU-LN {m.vs_control.interval_text}"
        ours += f". LN rescaling of each position's SoLU output (median): {rescale}"
        sentence = (f"In the low bands ({low}), SoLU-LN's tokens are inconsistent with the "
                    f"neuron's explanation {pct(mid)} of the time before the LN and "
                    f"{pct(post)} after it (mean of {len(solu)} seeds, {n} neurons; the "
                    f"untrained model {pct(floor)}): after minus before, "
                    f"{m.effect.interval_text}")
        if m.control_effect is not None:
            sentence += f"; after GELU the same LN gives {m.control_effect.interval_text}"
        sentence += (f". {reason[0].upper()}{reason[1:]} ({verdict}). The extra LN "
                     f"multiplies each position's centred activation vector by (median) "
                     f"{rescale}.")
    values = {"n_bands": m.n_bands, "low_bands": m.low, "low_levels": list(m.low_levels),
              "heldout_rule": HELDOUT_RULE, "floor": FLOOR, "interest": INTEREST,
              "per_model": {k: v.to_dict() for k, v in m.per_model.items()},
              "solu_seeds": m.solu_names, "control_seeds": m.control_names,
              "room": m.room.to_dict(),
              "control_effect": m.control_effect.to_dict() if m.control_effect else None,
              "vs_control": m.vs_control.to_dict() if m.vs_control else None,
              "rescale": dict(m.models), "reason": reason}
    return LN_LOW_ACTIVATION.scored(ours, sentence=sentence, values=values, tests=[test])


CLAIMS: tuple[ClaimSpec, ...] = (LN_LOW_ACTIVATION,)
