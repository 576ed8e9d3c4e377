"""Our Transformer against TransformerLens: same logits and same activations, hook for hook.

TransformerLens (TL) implements the paper's SoLU-LN MLP independently, so agreement with it
is the strongest check that our forward pass is the claimed architecture. All parameters are
perturbed away from their init (LayerNorm weights and every bias included), so a wrong
mapping of any of them shows up; a negative control shows the comparison can fail.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch

pytest.importorskip("transformer_lens")

from solu_repro.interop import (  # noqa: E402
    from_hooked_config,
    from_hooked_transformer,
    register_gelu_ln,
    to_hooked_config,
    to_hooked_transformer,
)
from solu_repro.model import ModelConfig, Transformer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Shapes with n_heads * d_head both equal to and different from d_model, odd vocab sizes.
SHAPES = {
    "1l": dict(n_layers=1, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=61, n_ctx=16),
    "2l": dict(n_layers=2, d_model=48, n_heads=3, d_head=16, d_mlp=96, d_vocab=50, n_ctx=20),
    "3l": dict(n_layers=3, d_model=24, n_heads=2, d_head=6, d_mlp=40, d_vocab=37, n_ctx=12),
}
ACT_FNS = ("gelu", "solu", "solu_ln", "gelu_ln")
POS_EMBEDS = ("learned", "rotary")


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every parameter a random, O(1)-activation value (not the structured init).

    LayerNorm weights become 1 + noise and every bias becomes noise, so none of them is an
    identity that would hide a wrong mapping. Weight matrices get std ~ 2/sqrt(fan_in), large
    enough that SoLU's softmax is peaked rather than near-uniform (the regime where a wrong
    activation function would be visible).
    """
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "w":
            p.copy_(1 + 0.3 * z)
        elif leaf.startswith("b"):
            p.copy_(0.3 * z)
        elif leaf in ("W_E", "W_pos"):
            p.copy_(z)
        else:
            fan_in = p.shape[0] * p.shape[1] if leaf == "W_O" else p.shape[0]
            p.copy_(2 * z / math.sqrt(fan_in))


def make_model(shape: str, act_fn: str, pos_embed: str, seed: int = 0) -> Transformer:
    model = Transformer(ModelConfig(**SHAPES[shape], act_fn=act_fn, pos_embed=pos_embed))
    perturb(model, seed + 1)
    return model.eval()


def tokens_for(cfg: ModelConfig, batch: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.d_vocab, (batch, cfg.n_ctx), generator=gen)


def assert_close_scaled(ours: torch.Tensor, theirs: torch.Tensor, what: str,
                        rel: float = 1e-4) -> float:
    """Assert max |ours - theirs| <= rel * max(1, max |theirs|); return the max difference."""
    scale = max(1.0, theirs.abs().max().item())
    diff = (ours - theirs).abs().max().item()
    assert diff <= rel * scale, f"{what}: max abs diff {diff:.3g} > {rel} * {scale:.3g}"
    return diff


def mlp_hooks(cfg: ModelConfig) -> list[str]:
    names = []
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}.mlp"
        names += [f"{p}.hook_pre", f"{p}.hook_post"]
        if cfg.has_mlp_ln:  # TL only has hook_mid for *_ln activations
            names.append(f"{p}.hook_mid")
    return names


@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
@pytest.mark.parametrize("act_fn", ACT_FNS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
@torch.no_grad()
def test_logits_and_hooks_match_transformer_lens(shape, act_fn, pos_embed):
    model = make_model(shape, act_fn, pos_embed)
    ht = to_hooked_transformer(model)
    tokens = tokens_for(model.cfg)
    ours_logits, ours = model.run_with_cache(tokens)
    tl_logits, tl = ht.run_with_cache(tokens)
    assert ours_logits.dtype == tl_logits.dtype == torch.float32
    assert ours_logits.std() > 0.5  # a non-trivial output, so the tolerance means something
    assert_close_scaled(ours_logits, tl_logits, "logits")
    for name in mlp_hooks(model.cfg):
        assert_close_scaled(ours[name], tl[name], name)
    # Every other hook we share with TL must agree too (residuals, patterns, embeddings).
    for name in model.hook_names():
        if name in tl.cache_dict:
            assert ours[name].shape == tl[name].shape, name
            assert_close_scaled(ours[name], tl[name], name)


def test_solu_ln_hook_mid_is_the_interpreted_activation():
    """hook_mid is SoLU's output before the extra LN in both libraries (paper §4.3)."""
    model = make_model("1l", "solu_ln", "rotary")
    ht = to_hooked_transformer(model)
    _, tl = ht.run_with_cache(tokens_for(model.cfg))
    pre, mid = tl["blocks.0.mlp.hook_pre"], tl["blocks.0.mlp.hook_mid"]
    torch.testing.assert_close(mid, pre * pre.softmax(-1))


@pytest.mark.parametrize("act_fn", ACT_FNS)
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
def test_round_trip_gives_identical_state_dict(act_fn, pos_embed):
    model = make_model("2l", act_fn, pos_embed)
    back = from_hooked_transformer(to_hooked_transformer(model))
    assert back.cfg == model.cfg
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("act_fn", ACT_FNS)
@torch.no_grad()
def test_native_transformer_lens_model_converts(act_fn):
    """TL -> ours on a model TL built itself (not one we exported), then back to TL."""
    from transformer_lens import HookedTransformer

    cfg = ModelConfig(**SHAPES["2l"], act_fn=act_fn, pos_embed="rotary")
    ht = HookedTransformer(to_hooked_config(cfg))
    perturb(ht, seed=7)
    model = from_hooked_transformer(ht)
    tokens = tokens_for(cfg)
    assert_close_scaled(model(tokens), ht(tokens), "logits")
    again = to_hooked_transformer(model).state_dict()
    for key, value in ht.state_dict().items():
        assert torch.equal(value, again[key]), key


@pytest.mark.parametrize("act_fn", ["gelu", "solu_ln"])
@torch.no_grad()
def test_tl_processed_weights_convert_back(act_fn):
    """After TL's fold_ln/centering (normalization 'LNPre'), log-probs are unchanged."""
    model = make_model("2l", act_fn, "learned")
    ht = to_hooked_transformer(model)
    ht.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert ht.cfg.normalization_type == "LNPre"
    back = from_hooked_transformer(ht)
    tokens = tokens_for(model.cfg)
    # center_unembed shifts each position's logits by a constant: compare log-probs.
    assert_close_scaled(back(tokens).log_softmax(-1), model(tokens).log_softmax(-1),
                        "log-probs")


def test_folded_gelu_ln_is_refused():
    """TL's fold_ln silently drops the gelu_ln MLP LayerNorm, so we refuse the result."""
    ht = to_hooked_transformer(make_model("1l", "gelu_ln", "rotary"))
    ht.process_weights_()
    with pytest.raises(NotImplementedError, match="gelu_ln"):
        from_hooked_transformer(ht)


@torch.no_grad()
def test_negative_control_one_changed_weight_is_detected():
    model = make_model("2l", "solu_ln", "rotary")
    ht = to_hooked_transformer(model)
    tokens = tokens_for(model.cfg)
    ours_logits, ours = model.run_with_cache(tokens)
    # Change one entry of W_in, for a neuron that actually fires: SoLU suppresses weak
    # neurons so strongly that perturbing one of those barely moves the logits.
    neuron = ours["blocks.1.mlp.hook_mid"].abs().mean((0, 1)).argmax()
    ht.blocks[1].mlp.W_in[3, neuron] += 0.5
    tl_logits, tl = ht.run_with_cache(tokens)
    with pytest.raises(AssertionError):
        assert_close_scaled(ours_logits, tl_logits, "logits")
    with pytest.raises(AssertionError):
        assert_close_scaled(ours["blocks.1.mlp.hook_pre"], tl["blocks.1.mlp.hook_pre"], "pre")
    # ...while the untouched layer still agrees.
    assert_close_scaled(ours["blocks.0.mlp.hook_post"], tl["blocks.0.mlp.hook_post"], "post")


@torch.no_grad()
def test_negative_control_wrong_activation_is_detected():
    """SoLU and GELU models with the same weights must disagree: the act_fn mapping matters."""
    model = make_model("1l", "solu_ln", "rotary")
    other = Transformer(model.cfg.replace(act_fn="gelu_ln"))
    other.load_state_dict(model.state_dict())
    tokens = tokens_for(model.cfg)
    with pytest.raises(AssertionError):
        assert_close_scaled(other(tokens), to_hooked_transformer(model)(tokens), "logits")


def test_config_mapping():
    cfg = ModelConfig(**SHAPES["2l"], act_fn="solu_ln", pos_embed="rotary", ln_eps=1e-6,
                      rotary_base=500.0, init_std=0.05)
    tl_cfg = to_hooked_config(cfg)
    assert tl_cfg.positional_embedding_type == "rotary"
    assert tl_cfg.rotary_dim == cfg.d_head and tl_cfg.rotary_adjacent_pairs is False
    assert tl_cfg.rotary_base == 500.0 and tl_cfg.eps == 1e-6
    assert tl_cfg.attn_scale == pytest.approx(math.sqrt(cfg.d_head))
    assert tl_cfg.normalization_type == "LN" and tl_cfg.act_fn == "solu_ln"
    assert from_hooked_config(tl_cfg) == cfg
    learned = to_hooked_config(cfg.replace(pos_embed="learned"))
    assert learned.positional_embedding_type == "standard"


def test_blocked_model_raises_naming_solu_blocks():
    model = Transformer(ModelConfig(**SHAPES["1l"], act_fn="solu_ln", solu_blocks=4))
    with pytest.raises(NotImplementedError, match="solu_blocks=4"):
        to_hooked_transformer(model)


@pytest.mark.parametrize("field, value", [
    ("gated_mlp", True),
    ("rotary_adjacent_pairs", True),
    ("act_fn", "relu"),
    ("positional_embedding_type", "shortformer"),
    ("normalization_type", "RMS"),
])
def test_unsupported_tl_features_raise_naming_the_field(field, value):
    tl_cfg = to_hooked_config(ModelConfig(**SHAPES["1l"], pos_embed="rotary"))
    setattr(tl_cfg, field, value)
    with pytest.raises(NotImplementedError, match=field):
        from_hooked_config(tl_cfg)


def test_gelu_ln_registration_is_exact_gelu_and_idempotent():
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    register_gelu_ln()
    register_gelu_ln()
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(SUPPORTED_ACTIVATIONS["gelu_ln"](x),
                               0.5 * x * (1 + torch.erf(x / math.sqrt(2))))


def test_missing_transformer_lens_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'solu-repro\[interop\]'"):
        to_hooked_transformer(Transformer(ModelConfig(**SHAPES["1l"])))
