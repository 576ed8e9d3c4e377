"""MLP activation functions of the paper: SoLU, its LayerNorm variant and the blocked forms.

Paper §4.2: ``SoLU(x) = x * softmax(x)`` over the MLP hidden dimension.
Paper §4.3: the model actually trained is ``LN(SoLU(x))``; the activations that are
interpreted are the ones *before* that extra LayerNorm (``hook_mid``).
Paper §4.4: "blocked" models split the softmax and the LayerNorm into equal groups of hidden
units so each tensor-parallel shard can compute its part locally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACT_FNS = ("gelu", "solu", "solu_ln", "gelu_ln")
"""Supported MLP activations: the GELU baseline, SoLU without LN, SoLU+LN (the paper's main
model) and GELU+LN (the LN-only ablation: an extra LayerNorm without the softmax)."""

LN_ACT_FNS = ("solu_ln", "gelu_ln")
"""Activations followed by their own learned LayerNorm (paper §4.3)."""


def _blocked(x: Tensor, blocks: int) -> Tensor:
    """View ``(..., d)`` as ``(..., blocks, d // blocks)``."""
    return x.unflatten(-1, (blocks, x.shape[-1] // blocks))


def solu(x: Tensor, blocks: int = 1) -> Tensor:
    """Softmax linear unit, ``x * softmax(x)``, with the softmax over ``blocks`` equal groups.

    Args:
        x: pre-activations, ``(..., d_mlp)``.
        blocks: number of equal groups of hidden units the softmax runs over (paper §4.4);
            1 is the unblocked SoLU.

    Returns:
        Tensor of the same shape and dtype as ``x``.
    """
    if x.shape[-1] % blocks:
        raise ValueError(f"hidden size {x.shape[-1]} is not divisible by blocks={blocks}")
    xb = x if blocks == 1 else _blocked(x, blocks)
    # Softmax in at least float32 even under bf16 autocast: exp() of large pre-activations is
    # where low precision hurts, and the cost is negligible next to the matmuls. (promote_types
    # keeps float64 inputs in float64 instead of silently rounding them to float32.)
    compute = torch.promote_types(x.dtype, torch.float32)
    out = xb.to(compute) * torch.softmax(xb.to(compute), dim=-1)
    out = out.to(x.dtype)
    return out if blocks == 1 else out.flatten(-2)


def gelu(x: Tensor) -> Tensor:
    """The exact (erf) GELU of the baseline models."""
    return F.gelu(x)


class BlockedLayerNorm(nn.Module):
    """LayerNorm over ``blocks`` equal groups of the last dimension, with per-unit affine.

    With ``blocks=1`` this is an ordinary LayerNorm (same arithmetic as
    TransformerLens's ``LayerNorm``: biased variance, eps inside the square root).
    """

    def __init__(self, d: int, blocks: int = 1, eps: float = 1e-5):
        super().__init__()
        if d % blocks:
            raise ValueError(f"LayerNorm size {d} is not divisible by blocks={blocks}")
        self.d, self.blocks, self.eps = d, blocks, eps
        self.w = nn.Parameter(torch.ones(d))
        self.b = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor) -> Tensor:
        if self.blocks == 1:
            return F.layer_norm(x, (self.d,), self.w, self.b, self.eps)
        normed = F.layer_norm(_blocked(x, self.blocks), (self.d // self.blocks,), eps=self.eps)
        return normed.flatten(-2) * self.w + self.b

    def extra_repr(self) -> str:
        return f"{self.d}, blocks={self.blocks}, eps={self.eps}"


class MLPActivation(nn.Module):
    """The activation stage of an MLP block: ``pre -> mid -> post``.

    ``mid`` is the activation function's output (what the paper interprets); ``post`` is what
    multiplies ``W_out``: ``LN(mid)`` for the ``*_ln`` activations, otherwise ``mid`` itself.
    """

    def __init__(self, act_fn: str, d_mlp: int, blocks: int = 1, eps: float = 1e-5):
        super().__init__()
        if act_fn not in ACT_FNS:
            raise ValueError(f"unknown act_fn {act_fn!r}: expected one of {ACT_FNS}")
        self.act_fn, self.blocks = act_fn, blocks
        self.ln = BlockedLayerNorm(d_mlp, blocks, eps) if act_fn in LN_ACT_FNS else None

    def mid(self, pre: Tensor) -> Tensor:
        if self.act_fn.startswith("solu"):
            return solu(pre, self.blocks)
        return gelu(pre)

    def forward(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(mid, post)``."""
        mid = self.mid(pre)
        post = self.ln(mid) if self.ln is not None else mid
        return mid, post
