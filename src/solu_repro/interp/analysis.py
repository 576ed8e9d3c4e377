"""The analyses the book's §6 notebooks plot, computed from harvests and scores.

* ``ln_consistency`` -- paper §6.4, Figure 9: for neurons whose explanation holds up on
  held-out rows, the fraction of tokens inconsistent with it in each activation-level band
  (fractions of the neuron's max: 0-10%, 10-20%, ...), before (``hook_mid``) and after
  (``hook_post``) SoLU's extra LayerNorm, and the same neurons of an untrained control.
* ``layer_roles`` -- paper §6.3.2-6.3.4: per layer, what interpretable neurons are about
  (``LAYER_ROLES``): the current token, the token in context (de-tokenization), a class of
  tokens or a text pattern (digits, capitalized words, punctuation, a year, indentation, ...),
  the source of the text (prose or code), or the next token (re-tokenization, corroborated by
  the neuron's direct effect on the logits).
* ``sparsity_table`` -- activation sparsity and per-neuron kurtosis, SoLU vs GELU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..data import TokenSplit
from ..model import Transformer
from .explanations import ROLES, VocabTables
from .harvest import Harvest
from .score import NeuronScore, NeuronScores

ROLE_ORDER = ("token", "detokenization", "token_class", "source", "retokenization")
LAYER_ROLES = {"token": "token", "folded": "token", "prev_token": "detokenization",
               "bigram": "detokenization", "class": "token_class", "regex": "token_class",
               "source": "source", "next_token": "retokenization"}
"""The role of each explanation kind in the layer analysis, named for what the explanation
says: ``token_class`` is a class of tokens (``explanations.TOKEN_CLASSES``: digits, numbers,
capitalized or ALL-CAPS words, punctuation, whitespace, line breaks) or a pattern in the text
(``REGEX_CLASSES``: a year, a URL, hexadecimal, base64, indentation); ``source`` is the corpus
source of the text. Neither is the paper's "abstract" feature ("numbers of people", "clauses
about music"), which the explanation family cannot express."""
if set(LAYER_ROLES) != set(ROLES) or set(LAYER_ROLES.values()) != set(ROLE_ORDER):
    raise RuntimeError("LAYER_ROLES must give every explanation kind one role of ROLE_ORDER")


HOOKS_LN = ("mid", "post")
"""The two hooks ``ln_consistency`` compares: before SoLU's extra LN and after it."""
_CHUNK_NEURONS = 32  # neurons banded at once by ``ln_consistency``


@dataclass
class BandRow:
    """Tokens in one activation-level band of one hook, pooled over neurons (paper Figure 9).

    Band ``band`` holds, for each neuron, its tokens whose activation on this hook lies from
    ``lo`` to ``hi`` of that neuron's maximum on this hook (``level_bands``: 0.1-0.2 is 10% to
    20% of the max). ``fraction`` pools the tokens of every neuron; ``mean_fraction`` is the
    mean over neurons of each neuron's own fraction (every neuron weighs the same). The
    neurons are a census of the models measured, not a sample, so there is no interval over
    them: ``seed_lo``/``seed_hi`` are the lowest and highest of the per-model means (the
    spread between trained models, NaN with one model).
    """

    hook: str
    band: int
    lo: float  # band edges as fractions of each neuron's max activation on this hook
    hi: float
    n_examples: int
    n_inconsistent: int
    n_neurons: int
    mean_fraction: float = math.nan
    seed_lo: float = math.nan
    seed_hi: float = math.nan

    @property
    def fraction(self) -> float:
        return self.n_inconsistent / self.n_examples if self.n_examples else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"hook": self.hook, "band": self.band, "band_lo": self.lo, "band_hi": self.hi,
                "n_examples": self.n_examples, "n_inconsistent": self.n_inconsistent,
                "n_neurons": self.n_neurons, "fraction": self.fraction,
                "mean_fraction": self.mean_fraction, "seed_lo": self.seed_lo,
                "seed_hi": self.seed_hi}


def _check_bands(n_bands) -> int:
    if isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive integer, got {n_bands!r}")
    return int(n_bands)


def _level_bands(a: np.ndarray, n_bands: int, peak: np.ndarray) -> np.ndarray:
    """``level_bands`` of ``a`` (``(P,)`` or ``(P, K)``) against ``peak`` (scalar or ``(K,)``)."""
    peak = np.asarray(peak, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        level = np.asarray(a, dtype=np.float64) / np.where(peak > 0, peak, np.nan)
        band = np.minimum(np.floor(level * n_bands), n_bands - 1)
    fired = (np.asarray(a) > 0) & np.isfinite(band)  # NaN is not a firing; no peak, no band
    return np.where(fired, band, -1).astype(np.int64)


def level_bands(values: np.ndarray, n_bands: int, peak: float | None = None) -> np.ndarray:
    """The activation-level band of each value: ``floor(n_bands * value / peak)``, the top band
    closed (the max itself is in band ``n_bands - 1``, as is anything above ``peak``); -1 for
    values <= 0 (or NaN), and everywhere when nothing is positive.

    ``peak`` is the neuron's maximum activation on the hook (default: the max of ``values``).
    With 10 bands, band 0 holds the firings below 10% of the max, band 9 those from 90% up:
    the paper's Figure 9 bins examples by activation level like this, so the bands are not of
    equal size (most of SoLU's firings are tiny and land in band 0).
    """
    n_bands = _check_bands(n_bands)
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if peak is None:
        fired = a[a > 0]
        peak = float(fired.max()) if fired.size else math.nan
    return _level_bands(a, n_bands, peak)


@dataclass
class NeuronBands:
    """One neuron's tokens and inconsistent tokens per activation-level band of each hook.

    Arrays are ``(len(hooks), n_bands)``: row 0 ``hook_mid``, row 1 ``hook_post``. Band ``b``
    of a hook holds the tokens from ``b / n_bands`` to ``(b + 1) / n_bands`` of the neuron's
    max on that hook (``level_bands``); ``peak[h]`` is that max (NaN where the hook never
    fires). ``chance`` is the inconsistent fraction over every measured token, the level a
    band of tokens unrelated to the neuron would show.
    """

    layer: int
    neuron: int
    explanation: str
    examples: np.ndarray
    inconsistent: np.ndarray
    peak: np.ndarray
    chance: float
    hooks: tuple[str, ...] = HOOKS_LN

    @property
    def n_bands(self) -> int:
        return int(self.examples.shape[1])

    def _row(self, hook: str) -> int:
        if hook not in self.hooks:
            raise ValueError(f"hook must be one of {self.hooks}, got {hook!r}")
        return self.hooks.index(hook)

    def fractions(self, hook: str) -> np.ndarray:
        """Inconsistent fraction per band of ``hook`` (NaN for an empty band)."""
        i = self._row(hook)
        n = self.examples[i].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.inconsistent[i] / np.maximum(n, 1), math.nan)

    def level(self, hook: str, bands: Sequence[int]) -> float:
        """The inconsistent fraction of ``hook`` in ``bands``: the mean of the bands' own
        fractions, each band weighing the same (as Figure 9 shows each level), over the bands
        where the hook has tokens; NaN if it has none there."""
        f = self.fractions(hook)[list(bands)]
        f = f[np.isfinite(f)]
        return float(f.mean()) if f.size else math.nan

    def difference(self, bands: Sequence[int]) -> float:
        """After minus before the LN in ``bands``: the mean over the bands where both hooks
        have tokens of ``fraction(post) - fraction(mid)`` (NaN if there is no such band)."""
        d = (self.fractions("post") - self.fractions("mid"))[list(bands)]
        d = d[np.isfinite(d)]
        return float(d.mean()) if d.size else math.nan


def band_counts(acts: Sequence[np.ndarray], holds: np.ndarray, n_bands: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hook and activation-level band: tokens, tokens where the explanation fails, peak.

    Args:
        acts: Activations per hook over the same P tokens, each ``(P,)`` for one neuron or
            ``(P, K)`` for K neurons.
        holds: Whether each neuron's explanation holds at each token, ``(P,)`` or ``(P, K)``.
        n_bands: Bands per hook, at fractions of each neuron's max there (``level_bands``).

    Returns:
        ``(examples, inconsistent, peak)`` of shapes ``(H, n_bands)``, ``(H, n_bands)`` and
        ``(H,)`` for one neuron; with K neurons ``(K, H, n_bands)``, ... and ``(K, H)``. The
        peak is the neuron's max on the hook over these tokens (NaN where it never fires).
    """
    n_bands = _check_bands(n_bands)
    holds = np.asarray(holds, dtype=bool)
    single = holds.ndim == 1
    holds = holds.reshape(holds.shape[0], -1)
    P, K = holds.shape
    H = len(acts)
    examples = np.zeros((K, H, n_bands), dtype=np.int64)
    inconsistent = np.zeros((K, H, n_bands), dtype=np.int64)
    peaks = np.full((K, H), math.nan)
    offset = np.arange(K) * n_bands
    for h, a in enumerate(acts):
        a = np.asarray(a, dtype=np.float64).reshape(np.shape(a)[0], -1)
        if a.shape != holds.shape:
            raise ValueError(f"activations {a.shape} and explanation {holds.shape} must cover "
                             "the same tokens")
        with np.errstate(invalid="ignore"):
            peak = np.where(a > 0, a, -np.inf).max(axis=0, initial=-np.inf)
        peak[~np.isfinite(peak)] = math.nan  # never fires (NaN is not a firing)
        peaks[:, h] = peak
        band = _level_bands(a, n_bands, peak)
        fired = band >= 0
        cell = (band + offset)[fired]
        examples[:, h] = np.bincount(cell, minlength=K * n_bands).reshape(K, n_bands)
        inconsistent[:, h] = np.bincount((band + offset)[fired & ~holds],
                                         minlength=K * n_bands).reshape(K, n_bands)
    if single:
        return examples[0], inconsistent[0], peaks[0]
    return examples, inconsistent, peaks


HELDOUT_RULE = ("the scorer's interpretable neurons: the explanation was chosen on the top "
                "firings of the even rows and covers at least 80% of the top firings of the "
                "held-out odd rows (at least 5 of them), at least 3x its base rate")


def holds_out(record: NeuronScore, min_coverage: float = 0.8, min_top: int = 5) -> bool:
    """``HELDOUT_RULE``: the neuron's explanation holds up on held-out rows."""
    return bool(record.interpretable and record.explanation and not record.rare
                and record.coverage >= min_coverage - 1e-12 and record.n_top >= min_top)


@dataclass
class LNConsistency:
    """What ``ln_consistency`` measured on one model.

    Attributes:
        neurons: Per measured neuron, its band counts.
        floor: The same neurons, explanations, tokens and bands read from the ``floor``
            source (the untrained model of the same config: what a neuron with no learned
            relation to the explanation shows); empty without one.
        n_candidates: Neurons that passed ``HELDOUT_RULE`` (before the ``max_neurons`` cap).
        n_tokens: Tokens measured (held-out rows, BOS excluded).
        n_rows: Rows measured.
        mid_var: Variance of ``hook_mid`` over each position's neurons (per block), for every
            layer and measured token, flattened: what the extra LN divides by.
    """

    neurons: list[NeuronBands]
    n_candidates: int
    n_tokens: int
    n_rows: int
    mid_var: np.ndarray
    floor: list[NeuronBands] = field(default_factory=list)


def _ln_source(source, what: str):
    from .harvest import ModelNeurons

    if isinstance(source, Transformer):
        if not source.cfg.has_mlp_ln:
            raise ValueError(f"a {source.cfg.act_fn!r} model has no LayerNorm after its "
                             "activation: hook_post is hook_mid, there is nothing to compare")
        source = ModelNeurons(source.eval())
    if tuple(source.hooks) != HOOKS_LN:
        raise ValueError(f"{what} needs both hooks {HOOKS_LN}, it has {tuple(source.hooks)}")
    return source


def ln_consistency(source, scores: NeuronScores, split: TokenSplit, tables: VocabTables,
                   rows: np.ndarray, *, n_ctx: int, bos_id: int = 0, n_bands: int = 10,
                   max_neurons: int | None = None, seed: int = 0, ln_blocks: int = 1,
                   batch_size: int = 16, features=None, floor=None) -> LNConsistency:
    """Figure 9 analogue over many neurons, by activation level (paper §6.4).

    For every neuron whose explanation holds up on held-out rows (``holds_out``), run the
    model on ``rows`` (the scorer's held-out rows, where the explanation was not chosen), cut
    the neuron's positive ``hook_mid`` activations into ``n_bands`` bands at fractions of its
    max there (``level_bands``: 0-10% of the max, 10-20%, ...) and, separately, its positive
    ``hook_post`` activations at fractions of *their* max, and count in every band the tokens
    where its explanation does not hold. Every token of the rows is counted, not a sample. The
    paper's hypothesis: after the LN, weak firings are much more often unrelated to the
    feature.

    Args:
        source: The model (a ``Transformer`` or a ``NeuronSource`` with both hooks).
        scores: That model's ``NeuronScores`` (hook ``mid``).
        split: The split the rows come from.
        tables: ``VocabTables`` of the tokenizer.
        rows: Row indices of ``split`` to measure on.
        n_ctx: Row length including BOS.
        bos_id: Token at column 0 of every row.
        n_bands: Activation-level bands per hook.
        max_neurons: Measure at most this many of the neurons that hold out (seeded choice).
        seed: Seed of that choice.
        ln_blocks: Blocks of the extra LN, for ``mid_var``.
        batch_size: Rows per forward pass.
        features: ``heldout_features(split, tables, rows, n_ctx)`` if already computed.
        floor: A control source with both hooks and the same neurons (e.g.
            ``controls.random_init(run)``), banded the same way against the *trained*
            neurons' explanations (``LNConsistency.floor``); None: no floor.
    """
    from ..data import get_rows
    from .score import heldout_features

    sources = {"model": _ln_source(source, "the model")}
    if floor is not None:
        sources["floor"] = _ln_source(floor, "the floor")
        if (sources["floor"].n_layers, sources["floor"].d_mlp) != (
                sources["model"].n_layers, sources["model"].d_mlp):
            raise ValueError("the floor must have the model's layers and neurons")
    rows = np.asarray(rows, dtype=np.int64)
    candidates = [r for r in scores.records if holds_out(r)]
    neurons = candidates
    if max_neurons is not None and len(neurons) > max_neurons:
        rng = np.random.default_rng(seed)
        neurons = [neurons[i] for i in sorted(rng.choice(len(neurons), max_neurons,
                                                         replace=False))]
    by_layer: dict[int, list[int]] = {}
    for r in neurons:
        by_layer.setdefault(r.layer, []).append(r.neuron)
    kept = {s: {h: {l: [] for l in by_layer} for h in HOOKS_LN} for s in sources}
    variances = []
    for start in range(0, len(rows), batch_size):
        tokens = get_rows(split, rows[start:start + batch_size], n_ctx, bos_id)
        for which, src in sources.items():
            acts = src.activations(tokens)
            if which == "model":
                for layer, mid in enumerate(acts["mid"]):
                    m = mid[:, 1:].reshape(-1, mid.shape[-1]).double()
                    variances.append(m.unflatten(-1, (ln_blocks, m.shape[-1] // ln_blocks))
                                     .var(-1, unbiased=False).flatten().cpu().numpy())
            for hook in HOOKS_LN:
                for layer, cols in by_layer.items():
                    a = acts[hook][layer][:, 1:]
                    kept[which][hook][layer].append(
                        a.reshape(-1, a.shape[-1])[:, cols].float().cpu().numpy())
    n_tokens = len(rows) * (n_ctx - 1)
    if features is None and neurons:
        features = heldout_features(split, tables, rows, n_ctx)
    holds_cache: dict[str, np.ndarray] = {}
    out: dict[str, list[NeuronBands]] = {s: [] for s in sources}
    for which in sources:
        stacked = {h: {l: np.concatenate(v) for l, v in kept[which][h].items()}
                   for h in HOOKS_LN}
        for layer, cols in by_layer.items():
            records = [scores.get(layer, n) for n in cols]
            for r in records:
                if r.explanation not in holds_cache:
                    holds_cache[r.explanation] = r.explanation_obj().holds(features, tables)
            for start in range(0, len(cols), _CHUNK_NEURONS):  # bounded memory: (P, chunk)
                chunk = records[start:start + _CHUNK_NEURONS]
                holds = np.stack([holds_cache[r.explanation] for r in chunk], axis=1)
                ex, bad, peak = band_counts(
                    [stacked[h][layer][:, start:start + len(chunk)] for h in HOOKS_LN], holds,
                    n_bands)
                for j, r in enumerate(chunk):
                    out[which].append(NeuronBands(
                        layer, r.neuron, r.explanation, ex[j], bad[j], peak[j],
                        float(1 - holds[:, j].mean()) if len(holds) else math.nan))
        out[which].sort(key=lambda b: (b.layer, b.neuron))
    return LNConsistency(out["model"], len(candidates), n_tokens, len(rows),
                         np.concatenate(variances) if variances else np.zeros(0),
                         out.get("floor", []))


def direct_effect_ranks(model: Transformer, layer: int, neuron: int,
                        token_ids: list[int]) -> list[int]:
    """Ranks (0 = most increased) of ``token_ids`` in the neuron's direct logit effect."""
    from .view import direct_logit_effect

    effect = direct_logit_effect(model, layer, neuron)
    order = torch.argsort(effect, descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return [int(rank[t]) for t in token_ids]


def layer_roles(scores: NeuronScores, model: Transformer | None = None,
                top_logits: int = 10) -> list[dict[str, Any]]:
    """Per layer, the share of interpretable neurons in each role (``LAYER_ROLES``).

    With ``model``, a next-token explanation counts as re-tokenization only when the
    neuron's direct logit effect ranks one of the explained next tokens in its top
    ``top_logits`` (the neuron itself pushes that token); others are reported as
    ``retokenization_unconfirmed`` and left out of the role shares.

    Returns:
        One dict per layer: ``n_neurons`` (every neuron of the layer, dead ones included),
        ``n_interpretable`` (those counted in a role), ``retokenization_unconfirmed``, and
        per role its count and its fraction of ``n_interpretable``.
    """
    out = []
    for layer in sorted({r.layer for r in scores.records}):
        counts = dict.fromkeys(ROLE_ORDER, 0)
        unconfirmed = 0
        records = scores.select(layer)
        for r in records:
            if not r.interpretable:
                continue
            role = LAYER_ROLES[r.explanation_obj().kind]
            if role == "retokenization" and model is not None:
                ranks = direct_effect_ranks(model, r.layer, r.neuron,
                                            list(r.explanation_obj().values))
                if min(ranks) >= top_logits:
                    unconfirmed += 1
                    continue
            counts[role] += 1
        total = sum(counts.values())
        row: dict[str, Any] = {"layer": layer, "n_neurons": len(records),
                               "n_interpretable": total,
                               "retokenization_unconfirmed": unconfirmed}
        for role in ROLE_ORDER:
            row[role] = counts[role]
            row[f"{role}_fraction"] = counts[role] / total if total else math.nan
        out.append(row)
    return out


def sparsity_table(harvests: dict[str, Harvest], hook: str = "mid",
                   fractions: tuple[float, ...] = (0.1, 0.5)) -> list[dict[str, Any]]:
    """Activation sparsity per model: kurtosis quartiles and how often neurons fire.

    SoLU should make activations sparser (paper §4): higher per-neuron kurtosis and fewer
    tokens above a given fraction of each neuron's max. Excess kurtosis of a Gaussian is 0.

    Returns:
        One dict per model with ``kurtosis_q25/median/q75``, ``frac_positive`` and
        ``frac_above_<f>`` (mean over neurons) for each ``f`` in ``fractions``.
    """
    rows = []
    for name, h in harvests.items():
        k = h.stat("kurtosis", hook).flatten()
        k = k[torch.isfinite(k)].double()
        q = torch.quantile(k, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)) \
            if len(k) else torch.full((3,), math.nan)
        row = {"model": name, "n_neurons": h.n_layers * h.d_mlp, "hook": hook,
               "kurtosis_q25": float(q[0]), "kurtosis_median": float(q[1]),
               "kurtosis_q75": float(q[2]),
               "frac_positive": float(h.stat("frac_positive", hook).mean())}
        for f in fractions:
            row[f"frac_above_{f:g}"] = float(h.fraction_above(f, hook).mean())
        rows.append(row)
    return rows


def kurtosis_values(harvest: Harvest, hook: str = "mid") -> np.ndarray:
    """Every neuron's excess kurtosis (finite values only), for histograms."""
    k = harvest.stat("kurtosis", hook).flatten().numpy()
    return k[np.isfinite(k)]
