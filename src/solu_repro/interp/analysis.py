"""The analyses the book's §6 notebooks plot, computed from harvests and scores.

* ``ln_consistency`` -- paper §6.4, Figure 9: for interpretable neurons and their best
  explanation, the fraction of dataset examples inconsistent with it in each activation band,
  before (``hook_mid``) and after (``hook_post``) SoLU's extra LayerNorm.
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
from typing import Any

import numpy as np
import torch

from ..data import TokenSplit
from ..model import Transformer
from .explanations import ROLES, VocabTables, point_features
from .harvest import Harvest
from .score import NeuronScores
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


@dataclass
class BandRow:
    """Inconsistent examples in one activation band of one hook, pooled over neurons."""

    hook: str
    band: int
    lo: float  # band edges as fractions of each neuron's max
    hi: float
    n_examples: int
    n_inconsistent: int
    n_neurons: int

    @property
    def fraction(self) -> float:
        return self.n_inconsistent / self.n_examples if self.n_examples else math.nan

    def interval(self) -> tuple[float, float]:
        p = proportion(self.n_inconsistent, self.n_examples)
        return p.lo, p.hi

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval()
        return {"hook": self.hook, "band": self.band, "band_lo": self.lo, "band_hi": self.hi,
                "n_examples": self.n_examples, "n_inconsistent": self.n_inconsistent,
                "n_neurons": self.n_neurons, "fraction": self.fraction, "ci_lo": lo, "ci_hi": hi}


def ln_consistency(harvest: Harvest, scores: NeuronScores, split: TokenSplit,
                   tables: VocabTables, *, n_bands: int = 10, per_band: int = 20,
                   max_neurons: int | None = None, seed: int = 0) -> list[BandRow]:
    """Figure 9 analogue over many neurons.

    For every neuron the scorer found interpretable (on ``hook_mid``), sample up to
    ``per_band`` examples in each of ``n_bands`` equal bands of ``(0, max]`` of the neuron's
    ``hook_mid`` activation, and likewise of its ``hook_post`` activation, and count the
    examples where the neuron's explanation does not hold. The paper's hypothesis: after the
    LN, weak activations are much more often unrelated to the feature.

    Args:
        harvest: A harvest with both hooks (models with the extra LN).
        scores: That model's ``NeuronScores`` (hook ``mid``).
        split: The harvested split.
        tables: ``VocabTables`` of the tokenizer.
        n_bands: Bands per hook.
        per_band: Examples drawn per band and neuron.
        max_neurons: Use at most this many interpretable neurons (seeded choice).
        seed: Seed of example and neuron sampling.

    Returns:
        One ``BandRow`` per (hook, band).
    """
    neurons = [r for r in scores.records if r.interpretable]
    if max_neurons is not None and len(neurons) > max_neurons:
        rng = np.random.default_rng(seed)
        neurons = [neurons[i] for i in sorted(rng.choice(len(neurons), max_neurons, replace=False))]
    hooks = ("mid", "post") if not harvest.meta.get("post_is_mid") else ("mid",)
    rows = []
    for hook in hooks:
        for band in range(n_bands):
            n_ex = n_bad = n_used = 0
            for r in neurons:
                examples = harvest.band_examples(r.layer, r.neuron, band, n_bands, hook,
                                                 per_band, seed)
                if not examples:
                    continue
                f = point_features(split, tables, [e.position(harvest.n_ctx) for e in examples])
                holds = r.explanation_obj().holds(f, tables)
                n_ex += len(examples)
                n_bad += int((~holds).sum())
                n_used += 1
            rows.append(BandRow(hook, band, band / n_bands, (band + 1) / n_bands,
                                n_ex, n_bad, n_used))
    return rows


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
