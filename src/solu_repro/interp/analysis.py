"""The analyses the book's §6 notebooks plot, computed from harvests and scores.

* ``ln_consistency`` -- paper §6.4, Figure 9: for neurons whose explanation holds up on
  held-out rows, the fraction of tokens inconsistent with it in each quantile band of the
  neuron's positive activations, before (``hook_mid``) and after (``hook_post``) SoLU's extra
  LayerNorm.
* ``layer_roles`` -- paper §6.3.2-6.3.4: per layer, what interpretable neurons are about
  (``LAYER_ROLES``): the current token, the token in context (de-tokenization), a class of
  tokens or a text pattern (digits, capitalized words, punctuation, a year, indentation, ...),
  the source of the text (prose or code), or the next token (re-tokenization, corroborated by
  the neuron's direct effect on the logits).
* ``sparsity_table`` -- activation sparsity and per-neuron kurtosis, SoLU vs GELU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..data import TokenSplit
from ..model import Transformer
from .explanations import ROLES, VocabTables
from .harvest import Harvest
from .score import NeuronScore, NeuronScores
from .stats import proportion

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
    """Tokens in one quantile band of one hook, pooled over neurons (paper Figure 9).

    Band ``band`` holds, for each neuron, its tokens from quantile ``lo`` to quantile ``hi``
    of that neuron's *positive* activations on that hook (equal-count bands by rank, see
    ``quantile_bands``), so a band of ``hook_mid`` and the same band of ``hook_post`` hold the
    same share of each hook's firings. ``fraction`` pools the tokens of every neuron;
    ``mean_fraction`` is the mean over neurons of each neuron's own fraction (every neuron
    weighs the same), with ``ci_lo``/``ci_hi`` its interval over neurons when one was computed.
    """

    hook: str
    band: int
    lo: float  # band edges as quantiles of each neuron's positive activations on this hook
    hi: float
    n_examples: int
    n_inconsistent: int
    n_neurons: int
    mean_fraction: float = math.nan
    ci_lo: float = math.nan
    ci_hi: float = math.nan

    @property
    def fraction(self) -> float:
        return self.n_inconsistent / self.n_examples if self.n_examples else math.nan

    def interval(self) -> tuple[float, float]:
        """The interval of ``mean_fraction`` over neurons if computed, else the Wilson
        interval of the pooled ``fraction`` (which treats tokens as independent)."""
        if not (math.isnan(self.ci_lo) or math.isnan(self.ci_hi)):
            return self.ci_lo, self.ci_hi
        p = proportion(self.n_inconsistent, self.n_examples)
        return p.lo, p.hi

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval()
        return {"hook": self.hook, "band": self.band, "band_lo": self.lo, "band_hi": self.hi,
                "n_examples": self.n_examples, "n_inconsistent": self.n_inconsistent,
                "n_neurons": self.n_neurons, "fraction": self.fraction,
                "mean_fraction": self.mean_fraction, "ci_lo": lo, "ci_hi": hi}


def _check_bands(n_bands) -> int:
    if isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive integer, got {n_bands!r}")
    return int(n_bands)


def _quantile_bands(a: np.ndarray, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """``quantile_bands`` of a 1-D ``a`` and the band edges (see ``band_counts``).

    Equivalent to ranking the firings with a stable sort and cutting the ranks into equal
    bands, in linear time: the threshold of each band is found with ``np.partition`` and
    values are placed by comparing with the thresholds; only values equal to a threshold (ties that may
    straddle a band edge) are placed by their rank, in the order they come.
    """
    band = np.full(a.shape[0], -1, dtype=np.int64)
    edges = np.full(n_bands + 1, math.nan)
    where = np.flatnonzero(a > 0)  # NaN is not a firing
    n = where.size
    if n == 0:
        return band, edges
    v = a[where]
    first = -(-np.arange(n_bands) * n // n_bands)  # first rank of each band
    valid = first < n
    part = np.partition(v, np.unique(np.append(first[valid], n - 1)))
    thresholds = part[np.minimum(first, n - 1)]
    edges[:-1] = np.where(valid, thresholds, math.nan)
    edges[-1] = part[n - 1]
    b = np.zeros(n, dtype=np.int64)
    for t in thresholds[1:]:  # thresholds at or below each value (a few passes: no search)
        b += v >= t
    for t in np.unique(thresholds[valid]):
        tied = np.flatnonzero(v == t)
        below = np.count_nonzero(v < t)
        b[tied] = (below + np.arange(tied.size)) * n_bands // n
    band[where] = b
    return band, edges


def quantile_bands(values: np.ndarray, n_bands: int) -> np.ndarray:
    """The quantile band of each value among the positive ones; -1 for values <= 0 (or NaN).

    The positive values are ranked (ties in the order they come) and cut into ``n_bands``
    bands of equal count (sizes differ by at most one): band 0 holds the weakest tenth of
    the firings when ``n_bands`` is 10, band ``n_bands - 1`` the strongest.
    """
    n_bands = _check_bands(n_bands)
    return _quantile_bands(np.asarray(values).reshape(-1), n_bands)[0]


@dataclass
class NeuronBands:
    """One neuron's tokens and inconsistent tokens per quantile band of each hook.

    Arrays are ``(len(hooks), n_bands)``: row 0 ``hook_mid``, row 1 ``hook_post``.
    ``edges[h]`` are the activations at the band edges (the weakest positive firing, the
    quantiles between bands, the strongest firing; NaN where the hook never fires).
    ``chance`` is the inconsistent fraction over every measured token, the level a band of
    tokens unrelated to the neuron would show.
    """

    layer: int
    neuron: int
    explanation: str
    examples: np.ndarray
    inconsistent: np.ndarray
    edges: np.ndarray
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

    def low_fraction(self, hook: str, bands: Sequence[int]) -> float:
        """Inconsistent fraction over the tokens of ``bands`` of ``hook`` (NaN if none)."""
        i = self._row(hook)
        n = int(self.examples[i, list(bands)].sum())
        return float(self.inconsistent[i, list(bands)].sum() / n) if n else math.nan

    def difference(self, bands: Sequence[int]) -> float:
        """After minus before the LN: ``low_fraction("post") - low_fraction("mid")``."""
        return self.low_fraction("post", bands) - self.low_fraction("mid", bands)


def band_counts(acts: Sequence[np.ndarray], holds: np.ndarray, n_bands: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hook and quantile band: tokens, tokens where the explanation fails, band edges.

    Args:
        acts: Activations per hook over the same P tokens, each ``(P,)`` for one neuron or
            ``(P, K)`` for K neurons.
        holds: Whether each neuron's explanation holds at each token, ``(P,)`` or ``(P, K)``.
        n_bands: Quantile bands per hook (``quantile_bands``).

    Returns:
        ``(examples, inconsistent, edges)`` of shapes ``(H, n_bands)``, ``(H, n_bands)`` and
        ``(H, n_bands + 1)`` for one neuron; with K neurons ``(K, H, n_bands)``, ... The edges
        are the activations at the band edges (the weakest firing, the first of each later
        band, the strongest; NaN where a band is empty or the hook never fires).
    """
    n_bands = _check_bands(n_bands)
    holds = np.asarray(holds, dtype=bool)
    single = holds.ndim == 1
    holds = holds.reshape(holds.shape[0], -1)
    P, K = holds.shape
    H = len(acts)
    examples = np.zeros((K, H, n_bands), dtype=np.int64)
    inconsistent = np.zeros((K, H, n_bands), dtype=np.int64)
    edges = np.full((K, H, n_bands + 1), math.nan)
    for h, a in enumerate(acts):
        a = np.asarray(a).reshape(np.shape(a)[0], -1)
        if a.shape != holds.shape:
            raise ValueError(f"activations {a.shape} and explanation {holds.shape} must cover "
                             "the same tokens")
        for k in range(K):
            band, edges[k, h] = _quantile_bands(a[:, k], n_bands)
            fired = band >= 0
            examples[k, h] = np.bincount(band[fired], minlength=n_bands)
            inconsistent[k, h] = np.bincount(band[fired & ~holds[:, k]], minlength=n_bands)
    if single:
        return examples[0], inconsistent[0], edges[0]
    return examples, inconsistent, edges


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


def ln_consistency(source, scores: NeuronScores, split: TokenSplit, tables: VocabTables,
                   rows: np.ndarray, *, n_ctx: int, bos_id: int = 0, n_bands: int = 10,
                   max_neurons: int | None = None, seed: int = 0, ln_blocks: int = 1,
                   batch_size: int = 16, features=None) -> LNConsistency:
    """Figure 9 analogue over many neurons, by quantile band (paper §6.4).

    For every neuron whose explanation holds up on held-out rows (``holds_out``), run the
    model on ``rows`` (the scorer's held-out rows, where the explanation was not chosen), cut
    the neuron's positive ``hook_mid`` activations into ``n_bands`` equal-count quantile
    bands and, separately, its positive ``hook_post`` activations, and count in every band
    the tokens where its explanation does not hold. Every token of the rows is counted, not a
    sample. The paper's hypothesis: after the LN, weak firings are much more often unrelated
    to the feature.

    Args:
        source: The model (a ``Transformer`` or a ``NeuronSource`` with both hooks).
        scores: That model's ``NeuronScores`` (hook ``mid``).
        split: The split the rows come from.
        tables: ``VocabTables`` of the tokenizer.
        rows: Row indices of ``split`` to measure on.
        n_ctx: Row length including BOS.
        bos_id: Token at column 0 of every row.
        n_bands: Quantile bands per hook.
        max_neurons: Measure at most this many of the neurons that hold out (seeded choice).
        seed: Seed of that choice.
        ln_blocks: Blocks of the extra LN, for ``mid_var``.
        batch_size: Rows per forward pass.
        features: ``heldout_features(split, tables, rows, n_ctx)`` if already computed.
    """
    from ..data import get_rows
    from .harvest import ModelNeurons
    from .score import heldout_features

    if isinstance(source, Transformer):
        if not source.cfg.has_mlp_ln:
            raise ValueError(f"a {source.cfg.act_fn!r} model has no LayerNorm after its "
                             "activation: hook_post is hook_mid, there is nothing to compare")
        source = ModelNeurons(source.eval())
    if tuple(source.hooks) != HOOKS_LN:
        raise ValueError(f"need both hooks {HOOKS_LN}, the source has {tuple(source.hooks)}")
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
    kept = {h: {l: [] for l in by_layer} for h in HOOKS_LN}
    variances = []
    for start in range(0, len(rows), batch_size):
        tokens = get_rows(split, rows[start:start + batch_size], n_ctx, bos_id)
        acts = source.activations(tokens)
        for layer, mid in enumerate(acts["mid"]):
            m = mid[:, 1:].reshape(-1, mid.shape[-1]).double()
            variances.append(m.unflatten(-1, (ln_blocks, m.shape[-1] // ln_blocks))
                             .var(-1, unbiased=False).flatten().numpy())
        for hook in HOOKS_LN:
            for layer, cols in by_layer.items():
                a = acts[hook][layer][:, 1:]
                kept[hook][layer].append(a.reshape(-1, a.shape[-1])[:, cols].float().numpy())
    n_tokens = len(rows) * (n_ctx - 1)
    if features is None and neurons:
        features = heldout_features(split, tables, rows, n_ctx)
    stacked = {h: {l: np.concatenate(v) for l, v in kept[h].items()} for h in HOOKS_LN}
    holds_cache: dict[str, np.ndarray] = {}
    out = []
    for layer, cols in by_layer.items():
        records = [scores.get(layer, n) for n in cols]
        for r in records:
            if r.explanation not in holds_cache:
                holds_cache[r.explanation] = r.explanation_obj().holds(features, tables)
        for start in range(0, len(cols), _CHUNK_NEURONS):  # bounded memory: (P, chunk) arrays
            chunk = records[start:start + _CHUNK_NEURONS]
            holds = np.stack([holds_cache[r.explanation] for r in chunk], axis=1)
            ex, bad, edges = band_counts(
                [stacked[h][layer][:, start:start + len(chunk)] for h in HOOKS_LN], holds,
                n_bands)
            for j, r in enumerate(chunk):
                out.append(NeuronBands(layer, r.neuron, r.explanation, ex[j], bad[j], edges[j],
                                       float(1 - holds[:, j].mean()) if len(holds) else
                                       math.nan))
    out.sort(key=lambda b: (b.layer, b.neuron))
    return LNConsistency(out, len(candidates), n_tokens, len(rows),
                         np.concatenate(variances) if variances else np.zeros(0))


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
