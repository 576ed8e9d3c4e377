"""The faster code paths of a bf16 training step on a CPU compute what the plain ones do:
the saved-pattern attention (``model._SavedPatternAttention``) against the fused kernel, the
rotary embedding's own backward (``model._Rotary``) against autograd's, bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from solu_repro import model as model_mod
from solu_repro.model import ModelConfig, Transformer, _causal_attention, _rotate_half


def _qkv(B=3, H=2, T=37, Dh=16, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    # (B, T, H, Dh) transposed, as the model passes them
    return [torch.randn(B, T, H, Dh, generator=gen).to(dtype).transpose(1, 2).requires_grad_()
            for _ in range(3)]


def _run(fn, q, k, v, grad):
    for t in (q, k, v):
        t.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(q, k, v)
    out.backward(grad)
    return [out] + [t.grad for t in (q, k, v)]


def test_saved_pattern_attention_matches_the_fused_kernel_in_bf16():
    q, k, v = _qkv()
    grad = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).bfloat16()
    fused = _run(lambda *a: F.scaled_dot_product_attention(*a, is_causal=True), q, k, v, grad)
    saved = _run(_causal_attention, q, k, v, grad)
    # float64 on the bf16-rounded inputs: what both approximate
    exact_in = [t.detach().bfloat16().double().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*exact_in, is_causal=True)
    out.backward(grad.double())
    exact = [out] + [t.grad for t in exact_in]
    for name, a, b, e in zip(("out", "dq", "dk", "dv"), fused, saved, exact):
        assert a.dtype == b.dtype, name
        err_fused = (a.double() - e).abs().max().item()
        err_saved = (b.double() - e).abs().max().item()
        # bf16 rounding of the pattern, as any bf16 attention: within 2x the kernel's error
        assert err_saved <= 2 * err_fused + 1e-2 * e.abs().max().item(), name


def test_attention_takes_the_saved_pattern_path_only_in_bf16_training(monkeypatch):
    calls = []
    real = model_mod._SavedPatternAttention.apply
    monkeypatch.setattr(model_mod._SavedPatternAttention, "apply",
                        lambda *a: calls.append(1) or real(*a))
    q, k, v = _qkv()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _causal_attention(q, k, v)
        with torch.no_grad():
            _causal_attention(q, k, v)  # inference: the fused kernel
    _causal_attention(q, k, v)  # fp32: the fused kernel
    assert len(calls) == 1
    monkeypatch.setattr(model_mod, "SAVED_PATTERN_MAX", 10)  # too large a pattern to keep
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _causal_attention(q, k, v)
    assert len(calls) == 1


def test_fp32_attention_is_the_fused_kernel_bit_for_bit():
    q, k, v = _qkv()
    assert torch.equal(_causal_attention(q, k, v),
                       F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize("shape", [(2, 5, 3, 8), (2, 5, 2, 3, 8)])
def test_rotary_backward_is_autograds_bit_for_bit(shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, requires_grad=True)
    table = (None, slice(None)) + (None,) * (len(shape) - 3) + (slice(None),)
    cos = torch.randn(shape[1], shape[-1], generator=gen)[table]
    sin = torch.randn(shape[1], shape[-1], generator=gen)[table]
    grad = torch.randn(shape, generator=gen)
    plain = x * cos + _rotate_half(x) * sin
    (g_plain,) = torch.autograd.grad(plain, x, grad)
    fast = model_mod._Rotary.apply(x, cos, sin)
    (g_fast,) = torch.autograd.grad(fast, x, grad)
    assert torch.equal(fast, plain)
    assert torch.equal(g_fast, g_plain)


def test_bf16_training_step_gradients_match_the_plain_path():
    """A whole bf16 step's gradients (saved-pattern attention, rotary backward, fused loss)
    against the same model with the fused kernel: equal to bf16 rounding."""
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=97,
                      n_ctx=33, act_fn="solu_ln")
    torch.manual_seed(0)
    model = Transformer(cfg)
    tokens = torch.randint(0, cfg.d_vocab, (4, cfg.n_ctx))

    def grads():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model_mod.model_loss(model, tokens)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_fast, fast = grads()
    real = model_mod.SAVED_PATTERN_MAX
    try:
        model_mod.SAVED_PATTERN_MAX = 0  # every layer through the fused kernel
        loss_plain, plain = grads()
    finally:
        model_mod.SAVED_PATTERN_MAX = real
    torch.testing.assert_close(loss_fast, loss_plain, rtol=0, atol=1e-2)
    for name in fast:
        cos = F.cosine_similarity(fast[name].flatten(), plain[name].flatten(), dim=0)
        assert cos > 0.99, (name, cos)
