"""Neurons with a known answer, to validate the harvester and the scorer.

Two kinds:

* ``PlantedNeurons``: a ``NeuronSource`` whose neurons are written down as rules over
  tokens -- a token detector, a bigram detector, a polysemantic neuron, pure noise. It runs
  through exactly the harvest -> score pipeline a model does.
* ``plant_token_detectors``: hand-set weights of a real one-layer ``Transformer`` so that
  chosen MLP neurons detect chosen tokens; the check then includes the model's own forward
  pass and hooks.

A scorer that works finds the planted rule for each detector and calls noise and
polysemantic neurons not interpretable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import Transformer


@dataclass(frozen=True)
class Plant:
    """One planted neuron.

    ``kind`` is ``"token"`` (fires on ``tokens[0]``), ``"bigram"`` (fires on ``tokens[1]``
    right after ``tokens[0]``), ``"polysemantic"`` (fires equally on all of ``tokens``, which
    should be unrelated and more than the scorer's small-set limit) or ``"random"`` (noise).
    """

    kind: str
    tokens: tuple[int, ...] = ()


class PlantedNeurons:
    """A one-layer ``NeuronSource`` of planted neurons; ``hook_post`` is ``hook_mid``.

    A planted neuron's activation is 1 + 0.5*u where its rule holds (u ~ U(0,1)), and
    0.05*|noise| elsewhere, so firings vary in strength like real ones; a random neuron is
    |N(0,1)| everywhere. Noise comes from a seeded generator.
    """

    def __init__(self, plants: list[Plant], seed: int = 0):
        for p in plants:
            need = {"token": 1, "bigram": 2, "random": 0}.get(p.kind)
            if p.kind == "polysemantic":
                need = len(p.tokens) if len(p.tokens) >= 2 else 2
            if need is None or len(p.tokens) != need:
                raise ValueError(f"bad plant {p}: token takes 1 token, bigram 2, "
                                 "polysemantic >= 2, random none")
        self.plants = list(plants)
        self.n_layers, self.d_mlp, self.hooks = 1, len(plants), ("mid",)
        self.generator = torch.Generator().manual_seed(seed)

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        tokens = tokens.cpu()
        B, T = tokens.shape
        prev = torch.cat([torch.zeros(B, 1, dtype=tokens.dtype), tokens[:, :-1]], dim=1)
        out = torch.empty(B, T, self.d_mlp)
        for i, p in enumerate(self.plants):
            noise = torch.rand(B, T, generator=self.generator)
            background = 0.05 * torch.randn(B, T, generator=self.generator).abs()
            if p.kind == "random":
                out[:, :, i] = torch.randn(B, T, generator=self.generator).abs()
                continue
            if p.kind == "token":
                rule = tokens == p.tokens[0]
            elif p.kind == "bigram":
                rule = (prev == p.tokens[0]) & (tokens == p.tokens[1])
            else:
                rule = torch.isin(tokens, torch.tensor(p.tokens))
            out[:, :, i] = torch.where(rule, 1.0 + 0.5 * noise, background)
        return {"mid": [out]}


@torch.no_grad()
def plant_token_detectors(model: Transformer, detectors: dict[int, int],
                          strength: float = 12.0, cutoff: float = 0.6) -> Transformer:
    """Make ``model``'s neuron ``n`` detect token ``detectors[n]``, in place (1-layer models).

    Attention is switched off (``W_O = b_O = 0``), so the MLP input at a position is the
    LayerNormed embedding of its token; neuron ``n`` gets input weights along token ``t``'s
    normalised embedding, scaled so that its pre-activation is ``strength * (cos - cutoff)``
    where ``cos`` is the cosine with ``t``'s embedding. Only ``t`` (cos = 1) clears the
    cutoff by much when ``d_model`` is large enough for random embeddings to be near
    orthogonal. The other neurons keep their (random) weights.
    """
    if model.cfg.n_layers != 1:
        raise ValueError("plant_token_detectors builds one-layer models only")
    block = model.blocks[0]
    block.attn.W_O.zero_()
    block.attn.b_O.zero_()
    ln = block.ln2
    for neuron, token in detectors.items():
        x = model.W_E[token]
        normed = (x - x.mean()) / (x.var(unbiased=False) + model.cfg.ln_eps).sqrt()
        u = normed * ln.w + ln.b
        block.mlp.W_in[:, neuron] = strength * u / u.norm() ** 2
        block.mlp.b_in[neuron] = -strength * cutoff
    return model


class HeavyTailedDetectors:
    """One-layer token detectors with heavy-tailed peaks, a ``NeuronSource``: the simulation
    of issue 20, where a few loud detectors dominate every direction of a random rotation.

    Direction ``i`` reads ``peaks[i] * (1 + 0.5 u(prev))`` where the token is ``tokens[i]``
    and ``0.02 * peaks[i] * v_i(prev)`` elsewhere (``u``, ``v_i`` fixed uniform tables over the
    previous token): the firing strength varies with context, and every call gives the same
    activations, so the judge's held-out pass and any later pass see one source.
    """

    def __init__(self, tokens: list[int], peaks, vocab_size: int, seed: int = 0):
        self.tokens = torch.tensor(list(tokens))
        self.peaks = torch.as_tensor(peaks, dtype=torch.float32)
        if self.peaks.shape != self.tokens.shape:
            raise ValueError(f"one peak per detector token: {len(self.tokens)} tokens, "
                             f"{tuple(self.peaks.shape)} peaks")
        self.n_layers, self.d_mlp, self.hooks = 1, len(self.tokens), ("mid",)
        g = torch.Generator().manual_seed(seed)
        self.jitter = torch.rand(vocab_size, generator=g)
        self.background = 0.02 * self.peaks[:, None] * torch.rand(len(self.tokens), vocab_size,
                                                                  generator=g)

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        tokens = tokens.cpu()
        prev = torch.cat([torch.zeros_like(tokens[:, :1]), tokens[:, :-1]], dim=1)
        hit = tokens[..., None] == self.tokens  # (B, T, N)
        peak = self.peaks * (1 + 0.5 * self.jitter[prev])[..., None]  # (B, T, N)
        background = self.background[:, prev].permute(1, 2, 0)  # (B, T, N)
        return {"mid": [torch.where(hit, peak, background)]}


def frequent_tokens(split, n_ctx: int, bos_id: int, n: int, min_rows: int = 5) -> list[int]:
    """The ``n`` most frequent tokens of ``split`` (most frequent first) that occur in at least
    ``min_rows`` selection rows and ``min_rows`` held-out rows of ``n_ctx`` (so the judge has
    firings on both sides): their frequencies are the corpus's own, falling off by rank as
    Zipf's law says."""
    import numpy as np

    rows = split.n_tokens // (n_ctx - 1)
    tokens = split.window(0, rows * (n_ctx - 1)).reshape(rows, n_ctx - 1).astype(np.int64)
    selection, held_out = tokens[::2], tokens[1::2]
    counts = np.bincount(tokens.ravel())
    out = []
    for t in np.argsort(-counts, kind="stable"):
        if counts[t] == 0 or len(out) == n:
            break
        if t != bos_id and (selection == t).any(1).sum() >= min_rows and \
                (held_out == t).any(1).sum() >= min_rows:
            out.append(int(t))
    return out
