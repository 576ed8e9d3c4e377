"""Our Transformer against TransformerLens: same logits and same activations, hook for hook.

TransformerLens (TL) implements the paper's SoLU-LN MLP independently, so agreement with it
is the strongest check that our forward pass is the claimed architecture. All parameters are
perturbed away from their init (LayerNorm weights and every bias included), so a wrong
mapping of any of them shows up; negative controls show the comparison can fail.

The module runs against whichever TL line imports: TL 3.x (``HookedTransformer``, the main
venv's 3.9.0) or TL 4.x (a native ``TransformerBridge``; ``tests/test_interop_tl4.py`` runs
this file again with TL 4.3.0 first on ``PYTHONPATH``). Tests of one line only say so in their
skip reason. The TL-free functions (config and state-dict layouts, hook names) run without TL.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from solu_repro import interop
from solu_repro.interop import (
    TESTED_TL,
    TransformerLensVersionError,
    from_tl_config_dict,
    from_tl_state_dict,
    from_transformer_lens,
    tl4_config_dict,
    tl4_state_dict,
    tl_config_dict,
    tl_hook_name,
    tl_state_dict,
    to_transformer_lens,
)
from solu_repro.model import ConfigError, ModelConfig, Transformer

HAS_TL = importlib.util.find_spec("transformer_lens") is not None
TL_VERSION = interop.installed_tl_version() if HAS_TL else None
TL_MAJOR = int(TL_VERSION.split(".")[0]) if TL_VERSION else None

if TL_VERSION and os.environ.get("SOLU_TL_VERSION_FILE"):
    # tests/test_interop_tl4.py reads which TL this run imported.
    Path(os.environ["SOLU_TL_VERSION_FILE"]).write_text(TL_VERSION)

needs_tl = pytest.mark.skipif(not HAS_TL, reason="transformer-lens is not installed")
tl3_only = pytest.mark.skipif(TL_MAJOR != 3, reason="TransformerLens 3.x API (installed: "
                              f"{TL_VERSION})")
tl4_only = pytest.mark.skipif(TL_MAJOR != 4, reason="TransformerLens 4.x API (installed: "
                              f"{TL_VERSION})")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Shapes with n_heads * d_head both equal to and different from d_model, odd vocab sizes.
SHAPES = {
    "1l": dict(n_layers=1, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=61, n_ctx=16),
    "2l": dict(n_layers=2, d_model=48, n_heads=3, d_head=16, d_mlp=96, d_vocab=50, n_ctx=20),
    "3l": dict(n_layers=3, d_model=24, n_heads=2, d_head=6, d_mlp=40, d_vocab=37, n_ctx=12),
}
ACT_FNS = ("gelu", "solu", "solu_ln", "gelu_ln")
TL4_ACT_FNS = ("gelu", "solu", "solu_ln")  # TL 4 cannot express gelu_ln
POS_EMBEDS = ("learned", "rotary")
TL3_LINE = rf"transformer-lens=={TESTED_TL[3]}"


def expressible(act_fn: str) -> bool:
    """Whether the installed TL line can express a model with this activation."""
    return TL_MAJOR == 3 or act_fn in TL4_ACT_FNS


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every parameter a random, O(1)-activation value (not the structured init).

    LayerNorm weights become 1 + noise and every bias becomes noise, so none of them is an
    identity that would hide a wrong mapping. Weight matrices get std ~ 2/sqrt(fan_in), large
    enough that SoLU's softmax is peaked rather than near-uniform (the regime where a wrong
    activation function would be visible). Works on our names, TL 3's and TL 4's.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        *path, leaf = name.split(".")
        if leaf == "w" or (leaf == "weight" and p.ndim == 1):  # LayerNorm scales
            p.copy_(1 + 0.3 * z)
        elif leaf.startswith("b"):
            p.copy_(0.3 * z)
        elif leaf in ("W_E", "W_pos") or (leaf == "weight" and path[-1] in ("embed", "pos_embed")):
            p.copy_(z)
        elif leaf == "weight":  # nn.Linear (out, in)
            p.copy_(2 * z / math.sqrt(p.shape[1]))
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


def w_in_key(layer: int) -> tuple[str, bool]:
    """The installed line's name of W_in and whether it is stored transposed (d_mlp first)."""
    if TL_MAJOR == 3:
        return f"blocks.{layer}.mlp.W_in", False
    return f"blocks.{layer}.mlp.in.weight", True


# ----------------------------------------------------------------------- both TL lines

@needs_tl
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
@pytest.mark.parametrize("act_fn", ACT_FNS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
@torch.no_grad()
def test_logits_and_hooks_match_transformer_lens(shape, act_fn, pos_embed):
    model = make_model(shape, act_fn, pos_embed)
    if not expressible(act_fn):
        with pytest.raises(NotImplementedError, match=TL3_LINE):
            to_transformer_lens(model)
        return
    tl_model = to_transformer_lens(model)
    tokens = tokens_for(model.cfg)
    ours_logits, ours = model.run_with_cache(tokens)
    tl_logits, tl = tl_model.run_with_cache(tokens)
    assert ours_logits.dtype == tl_logits.dtype == torch.float32
    assert ours_logits.std() > 0.5  # a non-trivial output, so the tolerance means something
    assert_close_scaled(ours_logits, tl_logits, "logits")
    # Every hook we record has a TL counterpart: MLP pre/mid/post, residuals, attention
    # patterns, embeddings, the final LayerNorm's normalized input.
    for name in model.hook_names():
        theirs = tl_hook_name(name, act_fn)
        assert theirs in tl, f"{name} -> {theirs} is not in TL {TL_VERSION}'s cache"
        assert ours[name].shape == tl[theirs].shape, name
        assert_close_scaled(ours[name], tl[theirs], f"{name} (TL: {theirs})")


@needs_tl
@torch.no_grad()
def test_solu_ln_hook_mid_is_the_interpreted_activation():
    """hook_mid is SoLU's output before the extra LN in both libraries (paper §4.3)."""
    model = make_model("1l", "solu_ln", "rotary")
    _, tl = to_transformer_lens(model).run_with_cache(tokens_for(model.cfg))
    pre = tl[tl_hook_name("blocks.0.mlp.hook_pre", "solu_ln")]
    mid = tl[tl_hook_name("blocks.0.mlp.hook_mid", "solu_ln")]
    post = tl[tl_hook_name("blocks.0.mlp.hook_post", "solu_ln")]
    torch.testing.assert_close(mid, pre * pre.softmax(-1))
    assert (mid - post).abs().max() > 0.1  # the LayerNorm lies between mid and post


@needs_tl
@pytest.mark.parametrize("act_fn", ACT_FNS)
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
def test_round_trip_gives_identical_state_dict(act_fn, pos_embed):
    if not expressible(act_fn):
        pytest.skip(f"TL {TL_VERSION} cannot express {act_fn} (refusal tested above)")
    model = make_model("2l", act_fn, pos_embed)
    back = from_transformer_lens(to_transformer_lens(model))
    assert back.cfg == model.cfg
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@needs_tl
@torch.no_grad()
def test_negative_control_one_changed_weight_is_detected():
    model = make_model("2l", "solu_ln", "rotary")
    tl_model = to_transformer_lens(model)
    tokens = tokens_for(model.cfg)
    ours_logits, ours = model.run_with_cache(tokens)
    # Change one entry of W_in, for a neuron that actually fires: SoLU suppresses weak
    # neurons so strongly that perturbing one of those barely moves the logits.
    neuron = ours["blocks.1.mlp.hook_mid"].abs().mean((0, 1)).argmax()
    key, transposed = w_in_key(1)
    sd = tl_model.state_dict()
    sd[key][(neuron, 3) if transposed else (3, neuron)] += 0.5
    tl_model.load_state_dict(sd)
    tl_logits, tl = tl_model.run_with_cache(tokens)
    with pytest.raises(AssertionError):
        assert_close_scaled(ours_logits, tl_logits, "logits")
    with pytest.raises(AssertionError):
        assert_close_scaled(ours["blocks.1.mlp.hook_pre"], tl["blocks.1.mlp.hook_pre"], "pre")
    # ...while the untouched layer still agrees.
    assert_close_scaled(ours["blocks.0.mlp.hook_post"], tl["blocks.0.mlp.hook_post"], "post")


@needs_tl
@torch.no_grad()
def test_negative_control_wrong_activation_is_detected():
    """SoLU and GELU models with the same weights must disagree: the act_fn mapping matters."""
    model = make_model("1l", "solu_ln", "rotary")
    other = Transformer(model.cfg.replace(act_fn="gelu_ln"))
    other.load_state_dict(model.state_dict())
    tokens = tokens_for(model.cfg)
    with pytest.raises(AssertionError):
        assert_close_scaled(other(tokens), to_transformer_lens(model)(tokens), "logits")


@needs_tl
def test_blocked_model_raises_naming_solu_blocks():
    model = Transformer(ModelConfig(**SHAPES["1l"], act_fn="solu_ln", solu_blocks=4))
    with pytest.raises(NotImplementedError, match="solu_blocks=4"):
        to_transformer_lens(model)


@needs_tl
def test_installed_line_is_the_expected_one():
    """tests/test_interop_tl4.py sets SOLU_EXPECT_TL_MAJOR: this run must import that line."""
    expected = os.environ.get("SOLU_EXPECT_TL_MAJOR")
    if expected is None:
        pytest.skip("no SOLU_EXPECT_TL_MAJOR: whatever TL is installed is the one tested")
    assert TL_MAJOR == int(expected), (
        f"expected TransformerLens {expected}.x, imported {TL_VERSION} from "
        f"{sys.modules['transformer_lens'].__file__ if 'transformer_lens' in sys.modules else '?'}")


@needs_tl
@pytest.mark.parametrize("version", ["2.16.1", "5.0.0", "unknown"])
def test_unsupported_version_gets_our_message(monkeypatch, version):
    monkeypatch.setattr(interop.importlib.metadata, "version", lambda name: version)
    model = make_model("1l", "gelu", "learned")
    for call in (lambda: to_transformer_lens(model), lambda: from_transformer_lens(model),
                 lambda: tl_hook_name("hook_embed", "gelu")):
        with pytest.raises(TransformerLensVersionError,
                           match=rf"{version}.*=={TESTED_TL[3]}.*=={TESTED_TL[4]}"):
            call()


@needs_tl
def test_missing_transformer_lens_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'solu-repro\[interop\]'"):
        to_transformer_lens(Transformer(ModelConfig(**SHAPES["1l"])))


@needs_tl
def test_transformer_lens_that_fails_to_import_gets_our_message(monkeypatch, tmp_path):
    """Installed but broken (e.g. built for other dependencies) is not "not installed"."""
    package = tmp_path / "transformer_lens"
    package.mkdir()
    (package / "__init__.py").write_text("import a_dependency_that_is_missing\n")
    monkeypatch.delitem(sys.modules, "transformer_lens")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TransformerLensVersionError,
                       match=rf"does not import.*a_dependency_that_is_missing.*=={TESTED_TL[3]}"):
        to_transformer_lens(Transformer(ModelConfig(**SHAPES["1l"])))


@needs_tl
def test_wrong_model_class_is_refused():
    with pytest.raises(TypeError, match="Transformer"):
        from_transformer_lens(make_model("1l", "gelu", "learned"))


# ----------------------------------------------------------------------- TL 3.x only

@tl3_only
@pytest.mark.parametrize("act_fn", ACT_FNS)
@torch.no_grad()
def test_native_hooked_transformer_converts(act_fn):
    """TL -> ours on a model TL built itself (not one we exported), then back to TL."""
    from transformer_lens import HookedTransformer

    cfg = ModelConfig(**SHAPES["2l"], act_fn=act_fn, pos_embed="rotary")
    ht = HookedTransformer(interop.to_hooked_config(cfg))
    perturb(ht, seed=7)
    model = from_transformer_lens(ht)
    tokens = tokens_for(cfg)
    assert_close_scaled(model(tokens), ht(tokens), "logits")
    again = to_transformer_lens(model).state_dict()
    for key, value in ht.state_dict().items():
        assert torch.equal(value, again[key]), key


@tl3_only
@pytest.mark.parametrize("act_fn", ["gelu", "solu_ln"])
@torch.no_grad()
def test_tl_processed_weights_convert_back(act_fn):
    """After TL's fold_ln/centering (normalization 'LNPre'), log-probs are unchanged."""
    model = make_model("2l", act_fn, "learned")
    ht = to_transformer_lens(model)
    ht.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert ht.cfg.normalization_type == "LNPre"
    back = from_transformer_lens(ht)
    tokens = tokens_for(model.cfg)
    # center_unembed shifts each position's logits by a constant: compare log-probs.
    assert_close_scaled(back(tokens).log_softmax(-1), model(tokens).log_softmax(-1),
                        "log-probs")


@tl3_only
def test_folded_gelu_ln_is_refused():
    """TL's fold_ln silently drops the gelu_ln MLP LayerNorm, so we refuse the result."""
    ht = to_transformer_lens(make_model("1l", "gelu_ln", "rotary"))
    ht.process_weights_()
    with pytest.raises(NotImplementedError, match="gelu_ln"):
        from_transformer_lens(ht)


@tl3_only
def test_config_mapping():
    cfg = ModelConfig(**SHAPES["2l"], act_fn="solu_ln", pos_embed="rotary", ln_eps=1e-6,
                      rotary_base=500.0, init_std=0.05)
    tl_cfg = interop.to_hooked_config(cfg)
    assert tl_cfg.positional_embedding_type == "rotary"
    assert tl_cfg.rotary_dim == cfg.d_head and tl_cfg.rotary_adjacent_pairs is False
    assert tl_cfg.rotary_base == 500.0 and tl_cfg.eps == 1e-6
    assert tl_cfg.attn_scale == pytest.approx(math.sqrt(cfg.d_head))
    assert tl_cfg.normalization_type == "LN" and tl_cfg.act_fn == "solu_ln"
    assert interop.from_hooked_config(tl_cfg) == cfg
    learned = interop.to_hooked_config(cfg.replace(pos_embed="learned"))
    assert learned.positional_embedding_type == "standard"


@tl3_only
@pytest.mark.parametrize("field, value", [
    ("gated_mlp", True),
    ("rotary_adjacent_pairs", True),
    ("act_fn", "relu"),
    ("positional_embedding_type", "shortformer"),
    ("normalization_type", "RMS"),
])
def test_unsupported_tl_features_raise_naming_the_field(field, value):
    tl_cfg = interop.to_hooked_config(ModelConfig(**SHAPES["1l"], pos_embed="rotary"))
    setattr(tl_cfg, field, value)
    with pytest.raises(NotImplementedError, match=field):
        interop.from_hooked_config(tl_cfg)


@tl3_only
def test_gelu_ln_registration_is_exact_gelu_and_idempotent():
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    interop.register_gelu_ln()
    interop.register_gelu_ln()
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(SUPPORTED_ACTIVATIONS["gelu_ln"](x),
                               0.5 * x * (1 + torch.erf(x / math.sqrt(2))))


@tl3_only
@torch.no_grad()
def test_exported_tl3_files_load_in_hooked_transformer():
    """tl_config_dict + tl_state_dict, through JSON, load with TL's own classes alone."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    model = make_model("2l", "solu_ln", "rotary")
    config = json.loads(json.dumps(tl_config_dict(model.cfg)))
    ht = HookedTransformer(HookedTransformerConfig(**config, device="cpu"))
    ht.load_state_dict(tl_state_dict(model), strict=False)  # TL's buffers are not ours
    assert set(tl_state_dict(model)) <= set(ht.state_dict())
    tokens = tokens_for(model.cfg)
    assert_close_scaled(model(tokens), ht(tokens), "logits")


@tl3_only
def test_bridge_from_tl_needs_tl4():
    model = make_model("1l", "gelu", "learned")
    with pytest.raises(TransformerLensVersionError, match=rf"=={TESTED_TL[4]}"):
        interop.bridge_from_tl(tl_config_dict(model.cfg), tl_state_dict(model))


# ----------------------------------------------------------------------- TL 4.x only

@tl4_only
@pytest.mark.parametrize("call", ["to_hooked_transformer", "to_hooked_config",
                                  "register_gelu_ln"])
def test_tl3_functions_under_tl4_name_the_tl3_line(call):
    model = make_model("1l", "solu_ln", "learned")
    args = {"to_hooked_transformer": (model,), "to_hooked_config": (model.cfg,),
            "register_gelu_ln": ()}[call]
    with pytest.raises(TransformerLensVersionError, match=rf"{call}.*{TL3_LINE}"):
        getattr(interop, call)(*args)


@tl4_only
@pytest.mark.parametrize("act_fn", TL4_ACT_FNS)
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
@torch.no_grad()
def test_native_bridge_converts(act_fn, pos_embed):
    """TL -> ours on a bridge TL booted itself (not one we exported), then back to TL."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    shape = SHAPES["2l"]
    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(
        **shape, act_fn=act_fn, positional_embedding_type=_tl_pos(pos_embed), seed=3))
    perturb(bridge, seed=7)
    model = from_transformer_lens(bridge)
    # init_std is TL's initializer_range, which TL derives from d_model.
    assert model.cfg == ModelConfig(**shape, act_fn=act_fn, pos_embed=pos_embed,
                                    init_std=bridge.cfg.initializer_range)
    tokens = tokens_for(model.cfg)
    assert_close_scaled(model(tokens), bridge(tokens), "logits")
    again = to_transformer_lens(model).state_dict()
    for key, value in bridge.state_dict().items():
        assert torch.equal(value, again[key]), key


def _tl_pos(pos_embed: str) -> str:
    return {"learned": "standard", "rotary": "rotary"}[pos_embed]


@tl4_only
@torch.no_grad()
def test_rotary_needs_the_qk_reorder():
    """Without reordering Q and K, TL 4's adjacent-pair rotary computes another function;
    with it, our layout is exactly TL's own convert_tl_checkpoint of the reordered TL-3 one."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    model = make_model("2l", "solu_ln", "rotary")
    bcfg = TransformerBridgeConfig(**tl4_config_dict(model.cfg))
    tl3 = tl_state_dict(model)
    order = interop._rotary_order(model.cfg.d_head)
    reordered = {k: (v[..., order] if k.endswith(("W_Q", "W_K", "b_Q", "b_K")) else v)
                 for k, v in tl3.items()}
    ours = tl4_state_dict(model)
    theirs = convert_tl_checkpoint(reordered, bcfg)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    naive = TransformerBridge.boot_native(bcfg)
    naive.load_state_dict(convert_tl_checkpoint(tl3, bcfg), strict=True)
    tokens = tokens_for(model.cfg)
    with pytest.raises(AssertionError):
        assert_close_scaled(model(tokens), naive(tokens), "logits without the reorder")
    assert_close_scaled(model(tokens), to_transformer_lens(model)(tokens), "logits")


@tl4_only
@torch.no_grad()
def test_exported_tl4_files_load_in_a_bridge():
    """tl4_config_dict + tl4_state_dict, through JSON, load with TL's own classes alone."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    model = make_model("2l", "solu_ln", "rotary")
    config = json.loads(json.dumps(tl4_config_dict(model.cfg)))
    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**config))
    bridge.load_state_dict(tl4_state_dict(model), strict=True)
    tokens = tokens_for(model.cfg)
    assert_close_scaled(model(tokens), bridge(tokens), "logits")


@tl4_only
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
@torch.no_grad()
def test_bridge_from_tl3_files(pos_embed):
    """A TL-3 export (tl_config_dict + tl_state_dict) boots as a TL 4 bridge with our logits."""
    model = make_model("2l", "solu_ln", pos_embed)
    config = json.loads(json.dumps(tl_config_dict(model.cfg)))
    bridge = interop.bridge_from_tl(config, tl_state_dict(model))
    tokens = tokens_for(model.cfg)
    assert_close_scaled(model(tokens), bridge(tokens), "logits")
    gelu_ln = make_model("1l", "gelu_ln", pos_embed)
    with pytest.raises(NotImplementedError, match=TL3_LINE):
        interop.bridge_from_tl(tl_config_dict(gelu_ln.cfg), tl_state_dict(gelu_ln))


@tl4_only
def test_non_integer_rotary_base_is_refused():
    model = Transformer(ModelConfig(**SHAPES["1l"], rotary_base=500.5))
    with pytest.raises(NotImplementedError, match=rf"rotary_base=500.5.*{TL3_LINE}"):
        to_transformer_lens(model)


@tl4_only
def test_processed_bridge_is_refused():
    bridge = to_transformer_lens(make_model("1l", "solu_ln", "learned"))
    bridge.enable_compatibility_mode(disable_warnings=True)
    with pytest.raises(NotImplementedError, match="enable_compatibility_mode"):
        from_transformer_lens(bridge)


@tl4_only
@pytest.mark.parametrize("field, value", [
    ("gated_mlp", True),
    ("act_fn", "relu"),
    ("normalization_type", "RMS"),
    ("n_key_value_heads", 2),
    ("final_rms", True),
])
def test_unsupported_bridge_features_raise_naming_the_field(field, value):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    config = {**tl4_config_dict(ModelConfig(**SHAPES["1l"])), field: value,
              "init_weights": True}
    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**config))
    with pytest.raises(NotImplementedError, match=field):
        from_transformer_lens(bridge)


# ----------------------------------------------------------------------- no TL needed

@pytest.mark.parametrize("act_fn", ACT_FNS)
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
def test_tl_config_dict_is_json_and_inverts(act_fn, pos_embed):
    cfg = ModelConfig(**SHAPES["2l"], act_fn=act_fn, pos_embed=pos_embed, ln_eps=1e-6,
                      rotary_base=500.0, init_std=0.05)
    config = tl_config_dict(cfg)
    assert json.loads(json.dumps(config)) == config
    assert from_tl_config_dict(config) == cfg.replace(seed=0)
    if act_fn in TL4_ACT_FNS:
        config4 = tl4_config_dict(cfg)
        assert json.loads(json.dumps(config4)) == config4
        assert config4["rotary_adjacent_pairs"] is (pos_embed == "rotary")
    else:
        with pytest.raises(NotImplementedError, match=TL3_LINE):
            tl4_config_dict(cfg)


@pytest.mark.parametrize("field, value", [
    ("gated_mlp", True),
    ("rotary_adjacent_pairs", True),
    ("act_fn", "relu"),
    ("positional_embedding_type", "shortformer"),
    ("normalization_type", "RMS"),
    ("n_key_value_heads", 2),
    ("attn_scale", 1.0),
])
def test_unsupported_config_dict_fields_raise_naming_the_field(field, value):
    config = {**tl_config_dict(ModelConfig(**SHAPES["1l"], pos_embed="rotary")), field: value}
    with pytest.raises(NotImplementedError, match=field):
        from_tl_config_dict(config)


def test_config_dict_missing_field_is_named():
    config = tl_config_dict(ModelConfig(**SHAPES["1l"]))
    del config["d_mlp"]
    with pytest.raises(ConfigError, match="d_mlp"):
        from_tl_config_dict(config)


@pytest.mark.parametrize("act_fn", TL4_ACT_FNS)
@pytest.mark.parametrize("pos_embed", POS_EMBEDS)
def test_state_dict_layouts_invert(act_fn, pos_embed):
    model = make_model("3l", act_fn, pos_embed)
    tl3 = tl_state_dict(model)
    tl4 = tl4_state_dict(model)
    assert all(v.is_contiguous() for v in [*tl3.values(), *tl4.values()])
    for back in (from_tl_state_dict(model.cfg, tl3, folded=False),
                 from_tl_state_dict(model.cfg,
                                    interop._tl_state_dict_from_tl4(model.cfg, tl4),
                                    folded=False)):
        for key, value in model.state_dict().items():
            assert torch.equal(value, back.state_dict()[key]), key
    if pos_embed == "rotary":  # the reorder is not the identity
        plain = tl3["blocks.0.attn.W_Q"].permute(0, 2, 1).reshape(-1, model.cfg.d_model)
        assert not torch.equal(tl4["blocks.0.attn.q.weight"], plain)


def test_rotary_order_pairs_unit_i_with_i_plus_half():
    order = interop._rotary_order(8)
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("act_fn, tl_major, ours, theirs", [
    ("solu_ln", 4, "blocks.2.mlp.hook_mid", "blocks.2.mlp.ln.hook_in"),
    ("solu_ln", 3, "blocks.2.mlp.hook_mid", "blocks.2.mlp.hook_mid"),
    ("gelu_ln", 3, "blocks.0.mlp.hook_mid", "blocks.0.mlp.hook_mid"),
    ("gelu", 4, "blocks.1.mlp.hook_mid", "blocks.1.mlp.hook_post"),
    ("solu", 3, "blocks.1.mlp.hook_mid", "blocks.1.mlp.hook_post"),
    ("solu_ln", 4, "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_pre"),
    ("solu_ln", 4, "blocks.0.mlp.hook_post", "blocks.0.mlp.hook_post"),
    ("gelu", 4, "blocks.3.attn.hook_pattern", "blocks.3.attn.hook_pattern"),
    ("gelu", 4, "blocks.3.hook_resid_mid", "blocks.3.hook_resid_mid"),
    ("gelu", 4, "ln_final.hook_normalized", "ln_final.hook_normalized"),
    ("gelu", 4, "hook_pos_embed", "hook_pos_embed"),
])
def test_tl_hook_name(act_fn, tl_major, ours, theirs):
    assert tl_hook_name(ours, act_fn, tl_major) == theirs


def test_tl_hook_name_refusals():
    with pytest.raises(NotImplementedError, match=TL3_LINE):
        tl_hook_name("blocks.0.mlp.hook_mid", "gelu_ln", 4)
    with pytest.raises(ValueError, match="hook_bogus"):
        tl_hook_name("blocks.0.mlp.hook_bogus", "gelu", 4)
    with pytest.raises(ValueError, match="tl_major"):
        tl_hook_name("hook_embed", "gelu", 2)


@pytest.mark.slow
def test_interop_and_pretrained_import_without_transformer_lens():
    """Importing our modules never imports TL (it is optional; pretrained stays TL-free)."""
    import subprocess

    code = ("import sys; sys.modules['transformer_lens'] = None\n"
            "import solu_repro.interop, solu_repro.pretrained\n"
            "from solu_repro.interop import tl_config_dict, tl_state_dict, tl4_state_dict\n"
            "from solu_repro.model import ModelConfig, Transformer\n"
            "m = Transformer(ModelConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, d_mlp=16,"
            " d_vocab=11, n_ctx=4))\n"
            "tl_config_dict(m.cfg); tl_state_dict(m); tl4_state_dict(m); print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
