"""Beyond the paper: sparse dictionaries on the same models, judged by the same instruments
(chapter 08, "After SoLU: features").

SoLU changes the architecture so that neurons become readable. The field's later answer
(Bricken et al., "Towards Monosemanticity", 2023) leaves the architecture alone and learns a
sparse overcomplete dictionary of the MLP activations afterwards (a sparse autoencoder, SAE).
On the zoo's matched 1-layer GELU and SoLU-LN seeds this section puts four bases side by side
on the book's instruments: GELU neurons, SoLU-LN neurons, a GELU SAE's features and a SoLU-LN
SAE's features (``hook_mid``), plus a SoLU-LN SAE on ``hook_post``, after the extra LayerNorm.

Measurements only: the rows below are computed by ``solu_repro.book.ch08_features.gather``
from the cached SAEs (``solu_repro.interp.sae``) and the cached instruments; this module turns
them into tests over seed pairs and decides three claims that the paper did not make (kind
``BEYOND``), under the same rules as every other claim (``claim.SEED_RULE``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..fmt import pct, points
from .claim import (BEYOND, INTEREST_POINTS, SEED_RULE, Claim, ClaimSpec, Test, gated,
                    paired_test, seed_test)

GELU = "1L-gelu"
SOLU_LN = "1L-solu_ln"
MODELS = (GELU, SOLU_LN)
"""The matched pair whose seeds are the units (seed ``i`` of each is pair ``i``)."""

BASES = ("neurons", "sae mid", "sae post")
"""A model's bases: its neurons (``hook_mid``), an SAE's features on ``hook_mid`` and, where the
model has the extra LayerNorm, on ``hook_post``."""

INTEREST = INTEREST_POINTS
"""The smallest effect of interest of every test here: 5 points of a 0-1 score (the mean best
F1, a share of features, a cosine), as everywhere in the book (``claim.INTEREST_POINTS``)."""

COUNTERPART_R = 0.5
"""A feature has a counterpart among ``hook_mid``'s neurons when some neuron's activation
correlates with the feature's at |r| of at least this on held-out tokens (r² 0.25: a quarter of
the feature's variance follows one neuron). Below it, no single neuron shows the feature."""


# --- the rows the chapter gathers -----------------------------------------------------------------
@dataclass(frozen=True)
class BasisRow:
    """One basis of one trained model on the book's instruments.

    Attributes:
        name: the zoo run ("1L-gelu-s1").
        model: its variant (``GELU`` or ``SOLU_LN``).
        seed: its seed (the pair index).
        basis: one of ``BASES``.
        n_directions: neurons or dictionary features in the basis.
        n_judged: directions the judge read (a seeded sample of a dictionary's features).
        interpretable: the judge's fraction interpretable (top-20 view, paper §6.1's rule).
        exposed: the rotation-fair judge score: mean best r² over the shared features.
        probe_f1: mean over ground-truth labels of the best single direction's held-out F1.
    """

    name: str
    model: str
    seed: int
    basis: str
    n_directions: int
    n_judged: int
    interpretable: float
    exposed: float
    probe_f1: float


@dataclass(frozen=True)
class DictionaryRow:
    """One SAE: how well it reconstructs, how sparse it is, where its decoder points.

    ``alignment``: mean over its live features (active on enough held-out tokens:
    ``interp.sae.FeatureCounterparts.active``; dead features keep directions near their random
    start) of the largest |cosine| between the decoder direction and a single neuron (a basis
    vector); ``alignment_null``: the same statistic for uniformly random unit directions of the
    same dimension (what an SAE blind to the basis would give); ``aligned``: the share of live
    features whose largest |cosine| is at least 0.9. ``no_counterpart``: the share of live
    features whose activation no single neuron of the *other* hook follows (best |r| below
    ``COUNTERPART_R``): a ``hook_post`` dictionary against ``hook_mid``'s neurons, a ``hook_mid``
    dictionary against ``hook_post``'s (GELU, with one hook, against its own)."""

    name: str
    model: str
    seed: int
    hook: str
    d_sae: int
    k: int
    fve: float
    loss_clean: float
    loss_spliced: float
    loss_zero: float
    l0: float
    dead: float
    alignment: float
    alignment_null: float
    aligned: float
    no_counterpart: float

    @property
    def loss_recovered(self) -> float:
        """``(zero - spliced) / (zero - clean)``: 1 when splicing the reconstruction in costs
        nothing, 0 when it is as bad as zeroing the hook."""
        gap = self.loss_zero - self.loss_clean
        return (self.loss_zero - self.loss_spliced) / gap if gap > 0 else math.nan

    @property
    def loss_increase(self) -> float:
        return self.loss_spliced - self.loss_clean


# --- the measurements over seeds ------------------------------------------------------------------
@dataclass
class FeatureMeasurements:
    """Every row, and the three tests over seed pairs."""

    bases: list[BasisRow]
    dictionaries: list[DictionaryRow]
    seeds: list[int]
    alignment: Test
    dictionary_gain: Test
    hidden: Test
    gains: dict[str, list[float]] = field(default_factory=dict)
    alignment_beats_null: dict[str, Test] = field(default_factory=dict)

    def basis(self, model: str, basis: str, seed: int) -> BasisRow | None:
        return next((r for r in self.bases if r.model == model and r.basis == basis
                     and r.seed == seed), None)

    def dictionary(self, model: str, hook: str, seed: int) -> DictionaryRow | None:
        return next((r for r in self.dictionaries if r.model == model and r.hook == hook
                     and r.seed == seed), None)

    def mean(self, rows: Sequence[Any], field_name: str) -> float:
        values = [getattr(r, field_name) for r in rows]
        values = [v for v in values if v is not None and v == v]
        return float(np.mean(values)) if values else math.nan


def _values(rows: Mapping[int, Any], seeds: Sequence[int], get) -> list[float]:
    return [get(rows[s]) if s in rows and rows[s] is not None else math.nan for s in seeds]


def alignment_test(gelu: Sequence[DictionaryRow], solu: Sequence[DictionaryRow]) -> Test:
    """Per seed pair: the SoLU-LN SAE's mean alignment minus the GELU SAE's (``hook_mid``)."""
    return paired_test([r.alignment for r in solu], [r.alignment for r in gelu],
                       interest=INTEREST, unit="points of cosine x 100", scale=100.0,
                       null="0 (a SoLU-LN dictionary's features as far from single neurons as "
                            "a GELU dictionary's)")


def null_test(rows: Sequence[DictionaryRow]) -> Test:
    """Per seed: mean alignment minus the random-direction null's."""
    return seed_test([r.alignment - r.alignment_null for r in rows], interest=INTEREST,
                     unit="points of cosine x 100", scale=100.0, null="random unit directions")


def gain(neurons: BasisRow, features: BasisRow) -> float:
    """What a dictionary adds on the ground-truth instrument: its features' mean best F1 minus
    the neurons'."""
    return features.probe_f1 - neurons.probe_f1


def dictionary_gain_test(gelu_gain: Sequence[float], solu_gain: Sequence[float]) -> Test:
    """Per seed pair: GELU's gain from a dictionary minus SoLU-LN's (positive: SoLU-LN's
    neurons leave less for a dictionary to find)."""
    return paired_test(gelu_gain, solu_gain, interest=INTEREST, unit="points of F1 x 100",
                       scale=100.0,
                       null="0 (a dictionary adds as much to SoLU-LN's neurons as to GELU's)")


def hidden_test(post: Sequence[DictionaryRow], mid: Sequence[DictionaryRow]) -> Test:
    """Per SoLU-LN seed: the share of ``hook_post`` features with no ``hook_mid`` neuron as
    counterpart minus the share of ``hook_mid`` features with no ``hook_post`` neuron as
    counterpart. The control is the same LayerNorm crossed the other way: its per-token
    rescaling lowers a correlation across it alike in both directions, so only features that
    exist on one side and not on the other make the difference."""
    return paired_test([r.no_counterpart for r in post], [r.no_counterpart for r in mid],
                       interest=INTEREST, unit="points (share of features)", scale=100.0,
                       null="0 (as many hook_post features lack a hook_mid neuron as hook_mid "
                            "features lack a hook_post neuron)")


def measure(bases: Sequence[BasisRow], dictionaries: Sequence[DictionaryRow], *,
            why: str = "") -> FeatureMeasurements:
    """The three tests from the rows, over the seeds that have every row they need; ``why``:
    the reason there are no rows (every test is then not testable, with that reason)."""
    by = {(r.model, r.basis, r.seed): r for r in bases}
    dicts = {(r.model, r.hook, r.seed): r for r in dictionaries}
    seeds = sorted({r.seed for r in bases} | {r.seed for r in dictionaries})
    pair = [s for s in seeds if (GELU, "mid", s) in dicts and (SOLU_LN, "mid", s) in dicts]
    align = alignment_test([dicts[GELU, "mid", s] for s in pair],
                           [dicts[SOLU_LN, "mid", s] for s in pair])
    beats = {m: null_test([dicts[m, "mid", s] for s in pair]) for m in MODELS}
    # a sanity gate (any basis a dictionary learned should beat random directions); only an
    # interval that reaches 0 fails it (one seed has no interval: the test itself says so)
    weak = [m for m, t in beats.items() if math.isfinite(t.lo) and t.lo <= 0]
    if pair and weak:
        align = gated(align, f"the alignment of {', '.join(weak)} does not beat random "
                             "directions")
    have = [s for s in seeds if all((m, b, s) in by for m in MODELS
                                    for b in ("neurons", "sae mid"))]
    gains = {m: [gain(by[m, "neurons", s], by[m, "sae mid", s]) for s in have] for m in MODELS}
    dgain = dictionary_gain_test(gains[GELU], gains[SOLU_LN])
    post = [s for s in seeds if (SOLU_LN, "post", s) in dicts and (SOLU_LN, "mid", s) in dicts]
    hidden = hidden_test([dicts[SOLU_LN, "post", s] for s in post],
                         [dicts[SOLU_LN, "mid", s] for s in post])
    if why:
        align, dgain, hidden = (gated(t, why) for t in (align, dgain, hidden))
    return FeatureMeasurements(list(bases), list(dictionaries), seeds, align, dgain, hidden,
                               gains, beats)


# --- the claims -----------------------------------------------------------------------------------
_SECTION = "Beyond the paper: sparse dictionaries (2023)"

SAE_ALIGNED = ClaimSpec(
    "sae_aligned", _SECTION, "A SoLU-LN model's dictionary features lie closer to single "
    "neurons than a GELU model's (SoLU makes the basis the features live in)",
    "not in the paper (its premise, §3-4: SoLU pushes features onto neurons)", BEYOND,
    "08-features",
    "a TopK SAE on hook_mid of each seed (same settings for both models); per live feature "
    "(active on at least 20 held-out tokens), the largest |cosine| between its decoder "
    "direction and a basis vector; per model, the mean over live features; per seed pair, "
    "SoLU-LN minus GELU. A sanity gate: not testable if either model's mean fails to beat "
    "uniformly random unit directions (its 95% interval over seeds reaching 0). Then "
    + SEED_RULE)

DICTIONARY_GAIN = ClaimSpec(
    "dictionary_gain", _SECTION, "A dictionary adds less to SoLU-LN's neurons than to "
    "GELU's (SoLU makes a dictionary less necessary)",
    "not in the paper (Towards Monosemanticity: a dictionary's features beat a GELU "
    "model's neurons)", BEYOND, "08-features",
    "the ground-truth instrument: sparse probing of each basis against the corpus's labels, "
    "the mean over labels of the best single direction's held-out F1; the dictionary offers "
    "a seeded uniform sample of its features as large as the neuron basis (512 of 2,048 at "
    "the cpu scales), so both maxima run over equally many directions; a model's gain is its "
    "hook_mid SAE's features minus its neurons; per seed pair, GELU's gain minus SoLU-LN's. "
    + SEED_RULE)

LN_HIDDEN_FEATURES = ClaimSpec(
    "ln_hidden_features", _SECTION, "A dictionary after SoLU's extra LayerNorm finds features "
    "that no neuron before it shows (§6.4's features smuggled through the LN)",
    "not measured in the paper (§6.4 proposes the mechanism)", BEYOND, "08-features",
    f"SoLU-LN seeds; a TopK SAE on hook_post and one on hook_mid; a live feature has no "
    f"counterpart across the LN when no single neuron on its other side follows it (best "
    f"|r| below {COUNTERPART_R} on held-out tokens); per seed, the share of hook_post "
    f"features with no hook_mid counterpart minus the share of hook_mid features with no "
    f"hook_post counterpart (the control: the same LN crossed the other way, whose per-token "
    f"rescaling lowers both alike). " + SEED_RULE)


def _ours(test: Test, what: str) -> str:
    return f"{what}: {test.interval_text}"


@SAE_ALIGNED.decided_by
def decide_sae_aligned(m: FeatureMeasurements) -> Claim:
    t = m.alignment
    g = [r for r in m.dictionaries if r.model == GELU and r.hook == "mid"]
    s = [r for r in m.dictionaries if r.model == SOLU_LN and r.hook == "mid"]
    ours = (f"mean largest |cos| of a feature to one neuron: SoLU-LN "
            f"{m.mean(s, 'alignment'):.3f}, GELU {m.mean(g, 'alignment'):.3f} (random "
            f"directions {m.mean(s, 'alignment_null'):.3f}); SoLU-LN - GELU per seed pair "
            f"{t.interval_text}")
    return SAE_ALIGNED.scored(ours, values={"per_seed": [asdict(r) for r in g + s],
                                            "null_tests": {k: v.to_dict() for k, v in
                                                           m.alignment_beats_null.items()}},
                              tests=[t])


@DICTIONARY_GAIN.decided_by
def decide_dictionary_gain(m: FeatureMeasurements) -> Claim:
    t = m.dictionary_gain
    g, s = m.gains.get(GELU, []), m.gains.get(SOLU_LN, [])
    ours = (f"mean best F1, features minus neurons: GELU "
            f"{points(float(np.mean(g))) if g else 'n/a'}, SoLU-LN "
            f"{points(float(np.mean(s))) if s else 'n/a'}; GELU's gain - SoLU-LN's per seed "
            f"pair {t.interval_text}")
    return DICTIONARY_GAIN.scored(ours, values={"gains": m.gains,
                                                "bases": [asdict(r) for r in m.bases]},
                                  tests=[t])


@LN_HIDDEN_FEATURES.decided_by
def decide_ln_hidden_features(m: FeatureMeasurements) -> Claim:
    t = m.hidden
    post = [r for r in m.dictionaries if r.model == SOLU_LN and r.hook == "post"]
    mid = [r for r in m.dictionaries if r.model == SOLU_LN and r.hook == "mid"]
    ours = (f"hook_post features with no hook_mid neuron counterpart "
            f"{pct(m.mean(post, 'no_counterpart'))}, hook_mid features with no hook_post "
            f"neuron counterpart {pct(m.mean(mid, 'no_counterpart'))}; the difference per seed "
            f"{t.interval_text}")
    return LN_HIDDEN_FEATURES.scored(ours, values={"post": [asdict(r) for r in post],
                                                   "mid": [asdict(r) for r in mid],
                                                   "counterpart_r": COUNTERPART_R},
                                     tests=[t])


CLAIMS: tuple[ClaimSpec, ...] = (SAE_ALIGNED, DICTIONARY_GAIN, LN_HIDDEN_FEATURES)
