"""Unembedding and next-token cross-entropy in one chunked pass ("fused linear cross-entropy").

A training step's largest tensor is the logits: ``(batch, n_ctx, d_vocab)`` in float32 (134 MB
at the cpu zoo's shapes), and autograd keeps a gradient of the same size. Here the tokens are
taken a chunk at a time: a chunk's logits are computed, turned into losses and, when a
gradient is wanted, at once into the gradients of the hidden states, ``W_U`` and ``b_U``
(``softmax - onehot`` is the gradient of the mean cross-entropy with respect to the logits).
Only one chunk's logits ever exist, and no backward pass through them is needed: the
backward of this function scales the gradients it already holds by the incoming one.

The numbers are those of ``F.cross_entropy(x @ W + b, targets)``: the matmul runs in the
dtype autocast would give it (bfloat16 under bf16 autocast, else the inputs' dtype), the
softmax in float32 (one fused pass over a chunk; a loss is ``-log p(target)``, recomputed
by log-sum-exp where that probability underflows), the gradients are accumulated in
float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Logits held at once: 2**20 float32 numbers (4 MB), e.g. 128 tokens x 8192 vocabulary
# (measured: 128-token chunks beat 32, 512 and 2048 at the cpu zoo's shapes).
CHUNK_ELEMENTS = 1 << 20
# On a GPU small chunks would starve the matmuls: 2**26 logits (256 MB in float32), e.g.
# 2,048 tokens x 32,768 vocabulary at the gpu zoo's shapes. (Not measured on a GPU yet.)
CUDA_CHUNK_ELEMENTS = 1 << 26


# Below this a float32 probability has lost precision (subnormal): its loss is recomputed.
_SMALLEST = torch.finfo(torch.float32).tiny


def _compute_dtype(x: Tensor) -> torch.dtype:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def chunk_tokens(n_tokens: int, d_vocab: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """Tokens per chunk so that a chunk's logits hold about ``chunk_elements`` numbers."""
    return max(1, min(n_tokens, chunk_elements // max(1, d_vocab)))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, W: Tensor, b: Tensor, targets: Tensor, chunk: int,
                dtype: torch.dtype) -> Tensor:
        n, V = x.shape[0], W.shape[1]
        want_grad = x.requires_grad or W.requires_grad or b.requires_grad
        losses = torch.empty(n, dtype=torch.float32, device=x.device)
        W_c, b_f = W.to(dtype), b.float()
        grad_x = torch.empty(x.shape, dtype=torch.float32, device=x.device) if want_grad else None
        grad_W = torch.zeros(W.shape, dtype=torch.float32, device=W.device) if want_grad else None
        grad_b = torch.zeros(b.shape, dtype=torch.float32, device=b.device) if want_grad else None
        x_c_all = x.to(dtype)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            x_c, t = x_c_all[start:stop], targets[start:stop, None]
            logits = torch.addmm(b_f.to(dtype), x_c, W_c)  # (chunk, V), in the matmul dtype
            # One fused pass (read in the matmul dtype, computed and written in float32).
            probs = torch.softmax(logits, dim=1, dtype=torch.float32)
            p_target = probs.gather(1, t)
            loss = -p_target.log()
            # An underflowed probability: that loss by log-sum-exp. On a GPU both are computed
            # and selected, since asking whether any underflowed would wait for the device.
            if logits.is_cuda or bool((p_target < _SMALLEST).any()):
                exact = torch.logsumexp(logits.float(), dim=1, keepdim=True) \
                    - logits.gather(1, t).float()
                loss = torch.where(p_target < _SMALLEST, exact, loss)
            losses[start:stop] = loss.squeeze(1)
            if want_grad:
                # d(sum of losses)/d logits = softmax - onehot, in the matmul dtype (in float32
                # the softmax itself, overwritten). The onehot is written by a flat index_put_:
                # scatter_ copied the whole chunk twice on a CPU.
                g = probs.to(dtype)
                flat = torch.arange(stop - start, device=x.device) * V + t.view(-1)
                g.view(-1).index_put_((flat,), (p_target - 1).to(dtype).view(-1))
                grad_x[start:stop] = g @ W_c.T
                grad_W.add_(x_c.T @ g)
                if g is probs:
                    grad_b.add_(g.sum(0, dtype=torch.float32))
                else:
                    # The float32 softmax's column sums; the onehot is subtracted once at the
                    # end. (Summing the bf16 g would first copy it to float32.)
                    grad_b.add_(probs.sum(0))
        if want_grad:
            if dtype != torch.float32:  # g was a copy of the softmax: subtract the onehot
                counts = torch.zeros_like(grad_b).index_add_(
                    0, targets, torch.ones_like(targets, dtype=grad_b.dtype))
                grad_b.sub_(counts)
            ctx.save_for_backward(grad_x, grad_W, grad_b)
        ctx.want_grad = want_grad
        ctx.dtypes = (x.dtype, W.dtype, b.dtype)
        return losses

    @staticmethod
    def backward(ctx, grad_losses: Tensor):
        if not ctx.want_grad:
            raise RuntimeError("linear_cross_entropy was run without any input needing a grad")
        grad_x, grad_W, grad_b = ctx.saved_tensors
        x_dtype, W_dtype, b_dtype = ctx.dtypes
        g = grad_losses.float().reshape(-1)
        scale = g[0]
        # The stored gradients are of the plain sum: only an equal weight on every loss (a
        # sum or a mean, NaN included) can be applied afterwards.
        # (Not checked under torch.compile, where it would break the graph.)
        if not torch.compiler.is_compiling() and not bool(
                ((g == scale) | (g.isnan() & scale.isnan())).all()):
            raise RuntimeError("linear_cross_entropy's gradient supports a sum or mean of its "
                               "losses (equal weights); reduce with .sum() or .mean()")
        return ((grad_x * scale).to(x_dtype), (grad_W * scale).to(W_dtype),
                (grad_b * scale).to(b_dtype), None, None, None)


def linear_cross_entropy(x: Tensor, W: Tensor, b: Tensor, targets: Tensor,
                         reduction: str = "mean", chunk: int | None = None) -> Tensor:
    """Cross-entropy of ``targets`` under logits ``x @ W + b``, without the full logits.

    Args:
        x: hidden states ``(..., d_model)``.
        W: unembedding ``(d_model, d_vocab)``.
        b: unembedding bias ``(d_vocab,)``.
        targets: token ids of shape ``x.shape[:-1]``.
        reduction: "mean", "sum" or "none" (per-token losses of ``targets``' shape). The
            gradient exists for "mean" and "sum" (and for an equal-weight sum of "none").
        chunk: tokens per chunk (default: about ``CHUNK_ELEMENTS`` logits at once).

    Returns:
        float32 losses.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if targets.shape != x.shape[:-1]:
        raise ValueError(f"targets have shape {tuple(targets.shape)} but the hidden states "
                         f"{tuple(x.shape)} need {tuple(x.shape[:-1])}")
    flat_x, flat_t = x.reshape(-1, x.shape[-1]), targets.reshape(-1)
    chunk = chunk or chunk_tokens(flat_x.shape[0], W.shape[-1],
                                  CUDA_CHUNK_ELEMENTS if x.is_cuda else CHUNK_ELEMENTS)
    dtype = _compute_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        losses = _LinearCrossEntropy.apply(flat_x, W, b, flat_t, chunk, dtype)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses.view(targets.shape)
