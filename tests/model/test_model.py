"""ModelConfig validation, initialisation, forward pass, run_with_cache and a tiny overfit."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from solu_repro.activations import solu
from solu_repro.model import ConfigError, ModelConfig, Transformer, next_token_loss

TINY = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=50, n_ctx=12)
INT_FIELDS = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx",
              "solu_blocks")
ACT_CONFIGS = [("gelu", 1), ("solu", 1), ("solu_ln", 1), ("gelu_ln", 1), ("solu_ln", 4)]


@pytest.fixture(autouse=True)
def _seed_torch():
    """Seed the global RNG per test so results don't depend on test order."""
    torch.manual_seed(0)


def tiny(**changes) -> Transformer:
    return Transformer(ModelConfig(**{**TINY, **changes}))


def random_tokens(cfg: ModelConfig, batch: int = 3, length: int | None = None,
                  seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.d_vocab, (batch, length or cfg.n_ctx), generator=gen)


# --- ModelConfig -----------------------------------------------------------------------

@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [0, -1, 2.0, True])
def test_sizes_must_be_positive_integers(field, value):
    with pytest.raises(ConfigError, match=f"ModelConfig.{field} must be a positive integer"):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("changes, field", [
    (dict(d_mlp=1000, solu_blocks=3), "d_mlp"),
    (dict(act_fn="relu"), "act_fn"),
    (dict(pos_embed="alibi"), "pos_embed"),
    (dict(act_fn="gelu", solu_blocks=2), "solu_blocks"),
    (dict(pos_embed="rotary", d_head=7), "d_head"),
    (dict(init_std=0.0), "init_std"),
    (dict(ln_eps=0.0), "ln_eps"),
    (dict(seed=-1), "seed"),
])
def test_invalid_config_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        ModelConfig(**changes)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ConfigError, match=r"\['d_modle'\].*valid fields"):
        ModelConfig.from_dict({"d_modle": 64})


def test_json_round_trip():
    cfg = ModelConfig(**TINY, act_fn="gelu_ln", solu_blocks=4, pos_embed="learned",
                      init_std=0.03, ln_eps=1e-6, rotary_base=500.0, seed=9)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert set(cfg.to_dict()) == {f.name for f in dataclasses.fields(ModelConfig)}


# --- initialisation --------------------------------------------------------------------

@pytest.mark.parametrize("other_act", ["solu_ln", "solu", "gelu_ln"])
def test_same_seed_models_share_every_shared_parameter(other_act):
    """The paper's matched pairs: GELU and SoLU models start from the same weights."""
    base = tiny(act_fn="gelu", seed=3).state_dict()
    other = tiny(act_fn=other_act, seed=3).state_dict()
    shared = base.keys() & other.keys()
    assert shared == base.keys()  # SoLU-LN only *adds* the MLP LayerNorm
    for name in shared:
        assert torch.equal(base[name], other[name]), name
    different_seed = tiny(act_fn=other_act, seed=4).state_dict()
    assert not torch.equal(base["blocks.0.mlp.W_in"], different_seed["blocks.0.mlp.W_in"])


def test_init_stds_as_documented():
    cfg = ModelConfig(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=1000,
                      n_ctx=256, pos_embed="learned", init_std=0.02)
    model = Transformer(cfg)
    out_std = 0.02 / math.sqrt(cfg.n_layers)
    expected = {"W_E": 0.02, "W_pos": 0.01, "W_U": 0.02, "attn.W_QKV": 0.02, "mlp.W_in": 0.02,
                "attn.W_O": out_std, "mlp.W_out": out_std}
    for name, p in model.named_parameters():
        suffix = next((k for k in expected if name.endswith(k)), None)
        if suffix is not None:
            assert p.std().item() == pytest.approx(expected[suffix], rel=0.05), name
            assert p.mean().abs().item() < 0.1 * expected[suffix], name
        elif name.endswith(".w"):
            assert torch.equal(p, torch.ones_like(p)), name
        else:  # every bias starts at zero
            assert torch.equal(p, torch.zeros_like(p)), name


def test_n_params_non_embedding():
    cfg = ModelConfig(**TINY, act_fn="solu_ln")
    D, H, Dh, M = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
    per_layer = (4 * D * H * Dh + 3 * H * Dh + D  # attention weights and biases
                 + 2 * D * M + M + D  # MLP
                 + 4 * D + 2 * M)  # ln1, ln2 and the SoLU LayerNorm
    model = Transformer(cfg)
    assert model.n_params() == cfg.n_layers * per_layer + 2 * D
    embedding = cfg.d_vocab * D + D * cfg.d_vocab + cfg.d_vocab
    assert model.n_params(non_embedding=False) == model.n_params() + embedding


# --- forward -----------------------------------------------------------------------------

@pytest.mark.parametrize("pos_embed", ["rotary", "learned"])
def test_forward_shapes(pos_embed):
    model = tiny(pos_embed=pos_embed)
    for length in (1, 5, model.cfg.n_ctx):
        logits = model(random_tokens(model.cfg, batch=2, length=length))
        assert logits.shape == (2, length, model.cfg.d_vocab)
        assert logits.dtype == torch.float32


def test_sequence_longer_than_n_ctx_raises():
    model = tiny()
    with pytest.raises(ValueError, match="n_ctx=12"):
        model(random_tokens(model.cfg, length=13))


@pytest.mark.parametrize("pos_embed", ["rotary", "learned"])
@torch.no_grad()
def test_causal(pos_embed):
    model = tiny(pos_embed=pos_embed)
    tokens = random_tokens(model.cfg)
    changed = tokens.clone()
    t = 7
    changed[:, t] = (changed[:, t] + 1) % model.cfg.d_vocab
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :t], after[:, :t], atol=1e-6, rtol=0)
    assert (before[:, t:] - after[:, t:]).abs().amax(dim=(0, 2)).min() > 1e-6


def test_rotary_scores_depend_only_on_relative_position():
    """With the same query and key at every position, rotated q.k depends only on i - j."""
    attn = tiny(pos_embed="rotary").blocks[0].attn
    T = 12
    q = torch.randn(1, 1, 1, 8).expand(1, T, 1, 8)
    k = torch.randn(1, 1, 1, 8).expand(1, T, 1, 8)
    scores = torch.einsum("id,jd->ij", attn._rotate(q)[0, :, 0], attn._rotate(k)[0, :, 0])
    for offset in (0, 2, 5):
        diagonal = scores.diagonal(-offset)
        torch.testing.assert_close(diagonal, diagonal[0].expand_as(diagonal))
    assert not torch.allclose(scores.diagonal(0)[0], scores.diagonal(-2)[0])


# --- run_with_cache ----------------------------------------------------------------------

@pytest.mark.parametrize("pos_embed", ["rotary", "learned"])
@pytest.mark.parametrize("act_fn", ["gelu", "solu_ln"])
@torch.no_grad()
def test_run_with_cache_names_and_shapes(pos_embed, act_fn):
    model = tiny(pos_embed=pos_embed, act_fn=act_fn)
    cfg, B, T = model.cfg, 2, 9
    logits, cache = model.run_with_cache(random_tokens(cfg, batch=B, length=T))
    assert set(cache) == set(model.hook_names())
    assert ("hook_pos_embed" in cache) == (pos_embed == "learned")
    for name, value in cache.items():
        if name.endswith("hook_pattern"):
            expected = (B, cfg.n_heads, T, T)
        elif ".mlp." in name:
            expected = (B, T, cfg.d_mlp)
        else:
            expected = (B, T, cfg.d_model)
        assert value.shape == expected, name
    assert logits.shape == (B, T, cfg.d_vocab)


@torch.no_grad()
def test_run_with_cache_names_filter_records_only_those():
    model = tiny()
    wanted = ["blocks.1.mlp.hook_mid", "hook_embed"]
    _, cache = model.run_with_cache(random_tokens(model.cfg), names=wanted)
    assert set(cache) == set(wanted)


def test_run_with_cache_unknown_name_lists_valid_names():
    model = tiny()
    with pytest.raises(KeyError, match=r"blocks\.9\.mlp\.hook_post.*blocks\.0\.mlp\.hook_post"):
        model.run_with_cache(random_tokens(model.cfg), names=["blocks.9.mlp.hook_post"])


@torch.no_grad()
def test_mlp_hooks_are_consistent():
    for act_fn in ("gelu", "solu"):
        model = tiny(act_fn=act_fn)
        _, cache = model.run_with_cache(random_tokens(model.cfg))
        for layer in range(2):
            p = f"blocks.{layer}.mlp"
            assert torch.equal(cache[f"{p}.hook_post"], cache[f"{p}.hook_mid"])
    model = tiny(act_fn="solu_ln")
    _, cache = model.run_with_cache(random_tokens(model.cfg))
    pre, mid = cache["blocks.0.mlp.hook_pre"], cache["blocks.0.mlp.hook_mid"]
    torch.testing.assert_close(mid, solu(pre))  # hook_mid: before the extra LN (§4.3)
    torch.testing.assert_close(cache["blocks.0.mlp.hook_post"], F.layer_norm(mid, (64,)))


@torch.no_grad()
def test_ln_final_hook_normalized_is_before_the_affine():
    model = tiny()
    model.ln_final.w.data.normal_()
    model.ln_final.b.data.normal_()
    _, cache = model.run_with_cache(random_tokens(model.cfg))
    resid = cache["blocks.1.hook_resid_post"]
    torch.testing.assert_close(cache["ln_final.hook_normalized"], F.layer_norm(resid, (32,)))


@torch.no_grad()
def test_return_logits_false():
    model = tiny()
    logits, cache = model.run_with_cache(random_tokens(model.cfg), return_logits=False)
    assert logits is None
    assert "blocks.1.mlp.hook_post" in cache and "ln_final.hook_normalized" not in cache


@pytest.mark.parametrize("pos_embed", ["rotary", "learned"])
@torch.no_grad()
def test_run_with_cache_logits_equal_forward(pos_embed):
    model = tiny(pos_embed=pos_embed)
    tokens = random_tokens(model.cfg)
    plain = model(tokens)
    # Without hook_pattern the same (SDPA) attention path runs: bit-identical.
    logits, _ = model.run_with_cache(tokens, names=["blocks.0.mlp.hook_post"])
    assert torch.equal(logits, plain)
    # Recording patterns takes the explicit softmax path: equal up to float rounding.
    logits_all, _ = model.run_with_cache(tokens)
    torch.testing.assert_close(logits_all, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos_embed", ["rotary", "learned"])
@torch.no_grad()
def test_attention_pattern_and_manual_path(pos_embed):
    model = tiny(pos_embed=pos_embed)
    gen = torch.Generator().manual_seed(0)
    for p in model.parameters():  # larger weights: sharp, non-uniform attention patterns
        p.add_(0.3 * torch.randn(p.shape, generator=gen))
    tokens = random_tokens(model.cfg)
    _, manual = model.run_with_cache(tokens)
    _, sdpa = model.run_with_cache(tokens, names=["blocks.1.hook_resid_mid"])
    expected = sdpa["blocks.1.hook_resid_mid"]
    # Float rounding differs between the two paths: compare relative to the overall scale.
    torch.testing.assert_close(manual["blocks.1.hook_resid_mid"], expected, rtol=0,
                               atol=1e-5 * expected.abs().max().item())
    for layer in range(2):
        pattern = manual[f"blocks.{layer}.attn.hook_pattern"]
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
        T = pattern.shape[-1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        assert (pattern[..., future] == 0).all()  # causal
        assert pattern.amax() > 0.5  # not uniform: the comparison above is meaningful


# --- loss and training -------------------------------------------------------------------

@pytest.mark.parametrize("act_fn, blocks", ACT_CONFIGS)
def test_loss_at_init_is_log_vocab(act_fn, blocks):
    cfg = ModelConfig(**{**TINY, "d_vocab": 500}, act_fn=act_fn, solu_blocks=blocks)
    model = Transformer(cfg)
    tokens = random_tokens(cfg, batch=8)
    with torch.no_grad():
        logits = model(tokens)
    assert next_token_loss(logits, tokens).item() == pytest.approx(math.log(500), abs=0.1)
    per_token = next_token_loss(logits, tokens, per_token=True)
    assert per_token.shape == (8, cfg.n_ctx - 1)
    torch.testing.assert_close(per_token.mean(), next_token_loss(logits, tokens))


@pytest.mark.parametrize("act_fn, blocks", ACT_CONFIGS)
def test_adamw_overfits_a_repeated_batch(act_fn, blocks):
    cfg = ModelConfig(**{**TINY, "n_ctx": 8}, act_fn=act_fn, solu_blocks=blocks)
    model = Transformer(cfg)
    tokens = random_tokens(cfg, batch=4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = next_token_loss(model(tokens), tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
