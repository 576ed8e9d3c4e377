"""The fused, chunked unembedding + cross-entropy against the plain computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from solu_repro.model import ModelConfig, Transformer, model_loss, next_token_loss
from solu_repro.unembed_loss import chunk_tokens, linear_cross_entropy


def _inputs(n=300, d=24, v=97, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen).requires_grad_()
    W = (torch.randn(d, v, generator=gen) * 0.3).requires_grad_()
    b = (torch.randn(v, generator=gen) * 0.1).requires_grad_()
    t = torch.randint(0, v, (n,), generator=gen)
    return x, W, b, t


def _grads(loss, *params):
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize("chunk", [1, 7, 64, 300, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_plain_cross_entropy_in_fp32(chunk, reduction):
    x, W, b, t = _inputs()
    plain = F.cross_entropy(x @ W + b, t, reduction=reduction)
    fused = linear_cross_entropy(x, W, b, t, reduction=reduction, chunk=chunk)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    for g_fused, g_plain in zip(_grads(fused, x, W, b), _grads(plain, x, W, b)):
        torch.testing.assert_close(g_fused, g_plain, rtol=1e-5, atol=1e-5)


def test_per_token_losses_and_their_mean():
    x, W, b, t = _inputs()
    per_token = linear_cross_entropy(x.view(3, 100, -1), W, b, t.view(3, 100), reduction="none")
    assert per_token.shape == (3, 100)
    torch.testing.assert_close(per_token.reshape(-1),
                               F.cross_entropy(x @ W + b, t, reduction="none"),
                               rtol=1e-5, atol=1e-5)
    # An equal-weight reduction of the per-token losses has the same gradient as "mean".
    g_mean = _grads(per_token.mean(), W)[0]
    g_direct = _grads(linear_cross_entropy(x, W, b, t), W)[0]
    torch.testing.assert_close(g_mean, g_direct, rtol=1e-5, atol=1e-6)


def test_unequal_weights_are_refused():
    x, W, b, t = _inputs()
    losses = linear_cross_entropy(x, W, b, t, reduction="none")
    weights = torch.linspace(0, 1, len(t))
    with pytest.raises(RuntimeError, match="equal weights"):
        (losses * weights).sum().backward()


def test_extreme_logits_stay_finite():
    x, W, b, t = _inputs()
    with torch.no_grad():
        b[:] = 0
        b[t[0]] = 500.0  # one huge logit: naive exp() would overflow
    loss = linear_cross_entropy(x, W, b, t, reduction="none")
    plain = F.cross_entropy(x @ W + b, t, reduction="none")
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-4)


def test_bf16_autocast_matches_plain_autocast():
    """Under bf16 autocast the matmuls run in bf16 (as autocast would run them) and the
    softmax in fp32: the loss agrees with plain autocast's to bf16 rounding."""
    x, W, b, t = _inputs(n=256, d=64, v=512)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.cross_entropy((x @ W + b).float(), t)
        fused = linear_cross_entropy(x, W, b, t, chunk=50)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, plain, rtol=0, atol=2e-2)
    g_fused, g_plain = _grads(fused, W)[0], _grads(plain, W)[0]
    assert g_fused.dtype == torch.float32
    assert F.cosine_similarity(g_fused.flatten(), g_plain.flatten(), dim=0) > 0.999


def test_no_grad_path_and_shape_errors():
    x, W, b, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(x, W, b, t),
                                   F.cross_entropy(x @ W + b, t), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="targets have shape"):
        linear_cross_entropy(x, W, b, t[:-1])
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(x, W, b, t, reduction="max")
    assert chunk_tokens(10_000, 8192) == 128
    assert chunk_tokens(5, 8192) == 5


@pytest.mark.parametrize("act_fn,pos_embed", [("solu_ln", "rotary"), ("gelu", "learned")])
def test_model_loss_is_next_token_loss_without_the_logits(act_fn, pos_embed):
    """The model on all but the last position, fused loss: the same numbers and gradients as
    the plain logits of every position, sliced."""
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=101,
                      n_ctx=16, act_fn=act_fn, pos_embed=pos_embed)
    model = Transformer(cfg)
    tokens = torch.randint(0, 101, (3, 16), generator=torch.Generator().manual_seed(1))
    params = list(model.parameters())
    plain = next_token_loss(model(tokens), tokens)
    fused = model_loss(model, tokens)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    for g_fused, g_plain in zip(torch.autograd.grad(fused, params),
                                torch.autograd.grad(plain, params)):
        torch.testing.assert_close(g_fused, g_plain, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model_loss(model, tokens, per_token=True),
                               next_token_loss(model(tokens), tokens, per_token=True),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="run_with_cache"):
        model(tokens[:, :-1], cache={}, targets=tokens[:, 1:])


@pytest.mark.parametrize("chunk", [7, 50, 256])
def test_bf16_autocast_gradients_of_every_input(chunk):
    """Under bf16 the bias gradient is the float32 softmax's column sums minus the target
    counts (not the bf16-rounded ones'): every gradient agrees with plain autocast's."""
    x, W, b, t = _inputs(n=256, d=64, v=512)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.cross_entropy((x @ W + b).float(), t)
        fused = linear_cross_entropy(x, W, b, t, chunk=chunk)
    exact = F.cross_entropy(x.double() @ W.double() + b.double(), t)
    for g_fused, g_plain, g_exact in zip(_grads(fused, x, W, b), _grads(plain, x, W, b),
                                         _grads(exact, x, W, b)):
        assert g_fused.dtype == torch.float32
        assert F.cosine_similarity(g_fused.flatten(), g_plain.flatten(), dim=0) > 0.999
        # no less accurate than plain autocast's
        scale = g_exact.abs().max()
        assert (g_fused - g_exact).abs().max() <= 1.5 * (g_plain - g_exact).abs().max() \
            + 1e-3 * scale
