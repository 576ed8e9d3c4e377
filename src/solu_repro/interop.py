"""Exact conversion between our ``Transformer`` and TransformerLens's ``HookedTransformer``.

TransformerLens (TL) is the standard tool for inspecting small transformers, and it already
implements SoLU: its ``solu_ln`` MLP is ``LN(x * softmax(x))`` with the interpreted
activation at ``blocks.{l}.mlp.hook_mid``, the same place our ``run_with_cache`` records it.
Converting lets the trained models be studied with TL's tooling, and converting back and
forth is also the strongest available check that our forward pass is the architecture we
claim (``tests/test_interop.py`` compares logits and every MLP hook).

The mapping is one-to-one; only the layout of Q, K and V differs (we fuse them into one
``W_QKV (d_model, 3, n_heads, d_head)``, TL keeps ``W_Q/W_K/W_V (n_heads, d_model, d_head)``).
Weights are loaded into TL *without* its optional processing (LayerNorm folding, centering,
value-bias folding): those are exact for the logits' softmax but change ``hook_post``
and the raw logits, so a freshly converted TL model reproduces ours hook for hook.

What does not convert:

* blocked models (``solu_blocks > 1``, paper §4.4): TL's softmax and MLP LayerNorm always
  span all ``d_mlp`` units, so there is no TL equivalent;
* TL configurations with features our model lacks (gated MLPs, parallel attention, GPT-J
  rotary layout, grouped-query attention, ...): ``from_hooked_config`` names the offending
  field.

The one extension we make to TL: it has no ``gelu_ln`` activation (the paper's LN-only
ablation, §6.2), but its MLP treats *any* ``act_fn`` ending in ``_ln`` as "activation then
the MLP's own LayerNorm", looking the function itself up in the dict
``transformer_lens.utilities.activation_functions.SUPPORTED_ACTIVATIONS`` (both the config
check and ``ActivationFunctionFactory`` read that same dict). ``register_gelu_ln`` adds
``"gelu_ln" -> torch.nn.functional.gelu`` (exact erf GELU, as ours and TL's ``"gelu"``) to
it, which is all TL needs. Caveat: TL's ``fold_ln`` folds the MLP LayerNorm only for
``solu*`` activations, so calling ``process_weights_(fold_ln=True)`` on a ``gelu_ln`` TL
model silently drops that LayerNorm's weights; convert such models without folding.

Requires the optional dependency: ``pip install 'solu-repro[interop]'``.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .activations import ACT_FNS
from .hooks import block
from .model import ModelConfig, Transformer

if TYPE_CHECKING:  # only for annotations: transformer_lens is an optional dependency
    from transformer_lens import HookedTransformer, HookedTransformerConfig

__all__ = [
    "from_hooked_config",
    "from_hooked_transformer",
    "from_tl_state_dict",
    "register_gelu_ln",
    "tl_config_dict",
    "tl_state_dict",
    "to_hooked_config",
    "to_hooked_transformer",
]

_INSTALL_HINT = "pip install 'solu-repro[interop]'"

_POS_TO_TL = {"learned": "standard", "rotary": "rotary"}
_POS_FROM_TL = {v: k for k, v in _POS_TO_TL.items()}

# TL config fields that change the forward pass, with the value our architecture implies.
# getattr() with the expected value as default keeps older/newer TL versions (which may lack
# a field) working.
_TL_MUST_EQUAL: dict[str, Any] = {
    "attn_only": False,
    "gated_mlp": False,
    "parallel_attn_mlp": False,
    "attention_dir": "causal",
    "use_attn_scale": True,
    "scale_attn_by_inverse_layer_idx": False,
    "use_local_attn": False,
    "final_rms": False,
    "post_embedding_ln": False,
    "use_normalization_before_and_after": False,
    "use_qk_norm": False,
    "clip_qkv": None,
    "num_experts": None,
    "use_attention_sinks": False,
    "use_logn_attn": False,
    "use_dynamic_ntk_rope": False,
    "use_NTK_by_parts_rope": False,
    "use_yarn_rope": False,
}


def _require_transformer_lens() -> None:
    try:
        import transformer_lens  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"solu_repro.interop needs transformer-lens, which is not installed: "
            f"run {_INSTALL_HINT}") from e


def register_gelu_ln() -> None:
    """Teach TransformerLens the ``gelu_ln`` activation (exact GELU, then the MLP LayerNorm).

    Idempotent. This is the only change we make to TL; see the module docstring for why it
    is enough.

    Raises:
        ImportError: transformer-lens is not installed.
        RuntimeError: TL already defines ``gelu_ln`` as something other than exact GELU.
    """
    _require_transformer_lens()
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    existing: Callable[..., Tensor] | None = SUPPORTED_ACTIVATIONS.get("gelu_ln")
    if existing is None:
        SUPPORTED_ACTIVATIONS["gelu_ln"] = F.gelu
    elif existing is not F.gelu:
        raise RuntimeError(
            f"this TransformerLens version already defines act_fn 'gelu_ln' as {existing!r}, "
            "not the exact GELU solu_repro means by it: conversion of gelu_ln models would "
            "not be exact; pin transformer-lens==3.9.0")


def _check_convertible(cfg: ModelConfig) -> None:
    """Raise if ``cfg`` has no exact TransformerLens equivalent (any TL version)."""
    if cfg.solu_blocks > 1:
        raise NotImplementedError(
            f"ModelConfig.solu_blocks={cfg.solu_blocks}: TransformerLens has no blocked SoLU "
            "or blocked MLP LayerNorm (paper §4.4) - its softmax and LayerNorm always span all "
            f"d_mlp={cfg.d_mlp} units - so this model cannot be converted exactly; only "
            "solu_blocks=1 models convert")


def tl_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` keyword arguments (TL 3.x) describing ``cfg`` exactly.

    Needs no TransformerLens: every value is a plain JSON type, so the dict can be written
    next to a state dict from ``tl_state_dict`` and read by anyone with TL 3.x:
    ``HookedTransformer(HookedTransformerConfig(**d))`` then ``load_state_dict``. Device and
    dtype are left to the caller (TL's defaults: float32, CUDA if available). A ``gelu_ln``
    model additionally needs ``register_gelu_ln()`` before the config is built, since TL has
    no such activation of its own.

    ``cfg.seed`` is deliberately not passed on: TL's config reseeds the global RNGs when it
    has a seed, and the weights are copied anyway. ``init_weights`` is False because the
    weights are always loaded afterwards.

    Raises:
        NotImplementedError: ``cfg.solu_blocks > 1`` (no TL equivalent).
    """
    _check_convertible(cfg)
    rotary = cfg.pos_embed == "rotary"
    return dict(
        model_name=f"solu-repro-{cfg.n_layers}l-{cfg.act_fn}",
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        d_vocab_out=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn=cfg.act_fn,
        normalization_type="LN",
        eps=float(cfg.ln_eps),
        positional_embedding_type=_POS_TO_TL[cfg.pos_embed],
        rotary_dim=cfg.d_head if rotary else None,
        rotary_adjacent_pairs=False,  # our rotary pairs unit i with i + d_head/2 (GPT-NeoX)
        rotary_base=float(cfg.rotary_base),
        use_attn_scale=True,
        attn_scale=math.sqrt(cfg.d_head),
        attn_only=False,
        initializer_range=float(cfg.init_std),
        init_weights=False,
    )


def to_hooked_config(cfg: ModelConfig, device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32) -> "HookedTransformerConfig":
    """The ``HookedTransformerConfig`` describing the same architecture as ``cfg``.

    Built from ``tl_config_dict`` (see there for what is and is not passed on).

    Args:
        cfg: our model configuration.
        device: device of the TL model.
        dtype: parameter dtype of the TL model.

    Returns:
        The TL config (with ``init_weights=False``: the weights are loaded afterwards).

    Raises:
        ImportError: transformer-lens is not installed.
        NotImplementedError: ``cfg.solu_blocks > 1`` (no TL equivalent).
    """
    _require_transformer_lens()
    from transformer_lens import HookedTransformerConfig

    kwargs = tl_config_dict(cfg)
    if cfg.act_fn == "gelu_ln":
        register_gelu_ln()
    return HookedTransformerConfig(**kwargs, device=str(device), dtype=dtype)


def from_hooked_config(tl_cfg: "HookedTransformerConfig") -> ModelConfig:
    """The ``ModelConfig`` of the same architecture as a TL config, if there is one.

    Accepts ``normalization_type`` "LN" and "LNPre" (LayerNorms whose affine weights TL has
    folded into the next layer, which we represent with identity weights).

    Args:
        tl_cfg: a TransformerLens ``HookedTransformerConfig``.

    Returns:
        The matching ``ModelConfig`` (``solu_blocks=1``, ``seed=0``; ``init_std`` from TL's
        ``initializer_range``, which only documents how the weights were first drawn).

    Raises:
        ImportError: transformer-lens is not installed.
        NotImplementedError: the TL config uses a feature our model does not have (the
            message names the field).
    """
    _require_transformer_lens()

    def unsupported(field: str, value: Any, why: str) -> NotImplementedError:
        return NotImplementedError(
            f"cannot convert this TransformerLens model: HookedTransformerConfig.{field}="
            f"{value!r} has no equivalent in solu_repro.model ({why})")

    for field, expected in _TL_MUST_EQUAL.items():
        value = getattr(tl_cfg, field, expected)
        if value != expected:
            raise unsupported(field, value, f"only {expected!r} is supported")
    if tl_cfg.act_fn not in ACT_FNS:
        raise unsupported("act_fn", tl_cfg.act_fn, f"supported: {ACT_FNS}")
    if tl_cfg.normalization_type not in ("LN", "LNPre"):
        raise unsupported("normalization_type", tl_cfg.normalization_type,
                          "only LayerNorm ('LN' or folded 'LNPre') is supported")
    if tl_cfg.normalization_type == "LNPre" and tl_cfg.act_fn == "gelu_ln":
        # TL's fold_ln folds the MLP LayerNorm only for solu* activations and drops it
        # otherwise, so these weights are already lost inside TL.
        raise unsupported("normalization_type", "LNPre",
                          "TL's fold_ln drops the gelu_ln MLP LayerNorm weights; convert the "
                          "model before calling process_weights_/fold_ln")
    pos = tl_cfg.positional_embedding_type
    if pos not in _POS_FROM_TL:
        raise unsupported("positional_embedding_type", pos,
                          f"supported: {sorted(_POS_FROM_TL)}")
    if pos == "rotary":
        if tl_cfg.rotary_dim != tl_cfg.d_head:
            raise unsupported("rotary_dim", tl_cfg.rotary_dim,
                              f"we rotate the whole head, rotary_dim must equal d_head="
                              f"{tl_cfg.d_head}")
        if tl_cfg.rotary_adjacent_pairs:
            raise unsupported("rotary_adjacent_pairs", True, "we use the GPT-NeoX half split")
        scaling = getattr(tl_cfg, "rotary_scaling_factor", 1.0)
        if scaling != 1.0:
            raise unsupported("rotary_scaling_factor", scaling, "no RoPE scaling")
    if not math.isclose(tl_cfg.attn_scale, math.sqrt(tl_cfg.d_head), rel_tol=1e-9):
        raise unsupported("attn_scale", tl_cfg.attn_scale,
                          f"we divide attention scores by sqrt(d_head)={math.sqrt(tl_cfg.d_head)}")
    n_kv = getattr(tl_cfg, "n_key_value_heads", None)
    if n_kv not in (None, tl_cfg.n_heads):
        raise unsupported("n_key_value_heads", n_kv, "no grouped-query attention")
    if tl_cfg.d_vocab_out != tl_cfg.d_vocab:
        raise unsupported("d_vocab_out", tl_cfg.d_vocab_out, f"must equal d_vocab={tl_cfg.d_vocab}")
    for field in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        cap = getattr(tl_cfg, field, -1.0)
        if cap is not None and cap > 0:
            raise unsupported(field, cap, "no soft-capping")
    init_std = tl_cfg.initializer_range
    return ModelConfig(
        n_layers=tl_cfg.n_layers,
        d_model=tl_cfg.d_model,
        n_heads=tl_cfg.n_heads,
        d_head=tl_cfg.d_head,
        d_mlp=tl_cfg.d_mlp,
        d_vocab=tl_cfg.d_vocab,
        n_ctx=tl_cfg.n_ctx,
        act_fn=tl_cfg.act_fn,
        solu_blocks=1,
        pos_embed=_POS_FROM_TL[pos],
        init_std=float(init_std) if init_std > 0 else ModelConfig.init_std,
        ln_eps=float(tl_cfg.eps),
        rotary_base=float(tl_cfg.rotary_base),
    )


def tl_state_dict(model: Transformer) -> dict[str, Tensor]:
    """Our parameters under TransformerLens 3.x's names and layouts, without needing TL.

    The result is what ``HookedTransformer.load_state_dict`` (or
    ``load_and_process_state_dict``) of the ``tl_config_dict`` model takes, and what TL 4's
    ``convert_tl_checkpoint`` reads. Every tensor is a contiguous copy (TL can't alias ours,
    and safetensors can save it as is).

    Raises:
        NotImplementedError: ``model.cfg.solu_blocks > 1`` (no TL equivalent).
    """
    cfg = model.cfg
    _check_convertible(cfg)
    ours = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd = {
        "embed.W_E": ours["W_E"],
        "ln_final.w": ours["ln_final.w"],
        "ln_final.b": ours["ln_final.b"],
        "unembed.W_U": ours["W_U"],
        "unembed.b_U": ours["b_U"],
    }
    if cfg.pos_embed == "learned":
        sd["pos_embed.W_pos"] = ours["W_pos"]
    for layer in range(cfg.n_layers):
        p = block(layer)
        W_QKV, b_QKV = ours[f"{p}.attn.W_QKV"], ours[f"{p}.attn.b_QKV"]
        for i, name in enumerate("QKV"):
            # (d_model, n_heads, d_head) -> TL's (n_heads, d_model, d_head)
            sd[f"{p}.attn.W_{name}"] = W_QKV[:, i].permute(1, 0, 2).contiguous()
            sd[f"{p}.attn.b_{name}"] = b_QKV[i]
        for name in ("W_O", "b_O"):
            sd[f"{p}.attn.{name}"] = ours[f"{p}.attn.{name}"]
        for name in ("W_in", "b_in", "W_out", "b_out"):
            sd[f"{p}.mlp.{name}"] = ours[f"{p}.mlp.{name}"]
        for ln in ("ln1", "ln2"):
            for name in ("w", "b"):
                sd[f"{p}.{ln}.{name}"] = ours[f"{p}.{ln}.{name}"]
        if cfg.has_mlp_ln:
            for name in ("w", "b"):
                sd[f"{p}.mlp.ln.{name}"] = ours[f"{p}.mlp.act.ln.{name}"]
    return {k: v.contiguous() for k, v in sd.items()}


def to_hooked_transformer(model: Transformer) -> "HookedTransformer":
    """A TransformerLens ``HookedTransformer`` computing exactly what ``model`` computes.

    The TL model gets copies of the weights, on the same device and in the same dtype, loaded
    without TL's weight processing, so its logits and its ``hook_pre``/``hook_mid``/
    ``hook_post`` activations match ours up to float rounding.

    Args:
        model: our transformer (``solu_blocks`` must be 1).

    Returns:
        The TL model, in eval mode.

    Raises:
        ImportError: transformer-lens is not installed.
        NotImplementedError: the model is blocked (``solu_blocks > 1``).
    """
    _require_transformer_lens()
    from transformer_lens import HookedTransformer

    W_E = model.W_E
    tl_cfg = to_hooked_config(model.cfg, device=W_E.device, dtype=W_E.dtype)
    with warnings.catch_warnings():
        # TL 3.x deprecates HookedTransformer in favour of TransformerBridge, which wraps
        # Hugging Face models; for a custom architecture HookedTransformer is the right API.
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated",
                                category=DeprecationWarning)
        ht = HookedTransformer(tl_cfg)
    sd = tl_state_dict(model)
    # load_and_process_state_dict loads key by key with strict=False, so a misspelt key would
    # be silently skipped: check every key exists first.
    missing = sorted(set(sd) - set(ht.state_dict()))
    if missing:
        raise RuntimeError(
            f"TransformerLens has no parameter(s) {missing}; solu_repro.interop is written "
            "for transformer-lens==3.9.0: install that version")
    # No folding/centering: they preserve the log-probs but change hook_post and the logits.
    ht.load_and_process_state_dict(sd, fold_ln=False, center_writing_weights=False,
                                   center_unembed=False, fold_value_biases=False)
    return ht.eval()


def from_hooked_transformer(ht: "HookedTransformer") -> Transformer:
    """Our ``Transformer`` computing exactly what a TransformerLens model computes.

    Inverse of ``to_hooked_transformer``. Also accepts TL models whose LayerNorms were folded
    (``normalization_type="LNPre"``, e.g. after ``ht.process_weights_()``): the folded norms
    get identity affine weights, which computes the same function.

    Args:
        ht: a ``HookedTransformer`` whose config ``from_hooked_config`` accepts.

    Returns:
        Our model with copies of the weights, on ``ht``'s device and in its dtype, in eval
        mode. ``cfg.seed`` is 0 (TL does not record it; the weights are copied anyway).

    Raises:
        ImportError: transformer-lens is not installed.
        NotImplementedError: the TL model uses a feature our model lacks.
    """
    _require_transformer_lens()
    cfg = from_hooked_config(ht.cfg)
    tl = {k: v.detach() for k, v in ht.state_dict().items()}
    return from_tl_state_dict(cfg, tl, folded=ht.cfg.normalization_type == "LNPre")


def from_tl_state_dict(cfg: ModelConfig, tl: dict[str, Tensor], folded: bool) -> Transformer:
    """Our ``Transformer`` of config ``cfg`` from a state dict under TL's names and layouts
    (a ``HookedTransformer.state_dict()``, or a released model's ``.pth``), without needing
    TransformerLens.

    Args:
        cfg: the architecture (``from_hooked_config``, or ``pretrained.model_config``).
        tl: TL parameter name -> tensor; TL's buffers (``attn.mask``, ``attn.IGNORE``, rotary
            tables) may be present and are not read.
        folded: the LayerNorms have no affine weights (TL's ``"LNPre"``): they get identity
            weights, which computes the same function.

    Returns:
        The model, in eval mode, on the tensors' device and in their dtype.

    Raises:
        KeyError: a parameter the architecture needs is missing from ``tl`` (the message
            names it).
    """
    W_E = tl["embed.W_E"]

    def ln(prefix: str, size: int) -> dict[str, Tensor]:
        if folded:  # TL folded the affine part into the next weights: identity remains
            return {"w": torch.ones(size, dtype=W_E.dtype, device=W_E.device),
                    "b": torch.zeros(size, dtype=W_E.dtype, device=W_E.device)}
        return {"w": tl[f"{prefix}.w"], "b": tl[f"{prefix}.b"]}

    sd: dict[str, Tensor] = {"W_E": W_E, "W_U": tl["unembed.W_U"], "b_U": tl["unembed.b_U"]}
    sd.update({f"ln_final.{k}": v for k, v in ln("ln_final", cfg.d_model).items()})
    if cfg.pos_embed == "learned":
        sd["W_pos"] = tl["pos_embed.W_pos"]
    for layer in range(cfg.n_layers):
        p = block(layer)
        # TL's (n_heads, d_model, d_head) -> our fused (d_model, 3, n_heads, d_head)
        sd[f"{p}.attn.W_QKV"] = torch.stack(
            [tl[f"{p}.attn.W_{n}"].permute(1, 0, 2) for n in "QKV"], dim=1)
        sd[f"{p}.attn.b_QKV"] = torch.stack([tl[f"{p}.attn.b_{n}"] for n in "QKV"])
        for name in ("W_O", "b_O"):
            sd[f"{p}.attn.{name}"] = tl[f"{p}.attn.{name}"]
        for name in ("W_in", "b_in", "W_out", "b_out"):
            sd[f"{p}.mlp.{name}"] = tl[f"{p}.mlp.{name}"]
        for norm in ("ln1", "ln2"):
            sd.update({f"{p}.{norm}.{k}": v for k, v in ln(f"{p}.{norm}", cfg.d_model).items()})
        if cfg.has_mlp_ln:
            sd.update({f"{p}.mlp.act.ln.{k}": v
                       for k, v in ln(f"{p}.mlp.ln", cfg.d_mlp).items()})
    model = Transformer(cfg).to(device=W_E.device, dtype=W_E.dtype)
    # strict=True: every one of our parameters must come from TL, nothing left at init.
    model.load_state_dict(sd, strict=True)
    return model.eval()
