"""Exact conversion between our ``Transformer`` and TransformerLens, in both of its lines.

TransformerLens (TL) is the standard tool for inspecting small transformers, and it already
implements SoLU. Converting lets the trained models be studied with TL's tooling, and
converting back and forth is also the strongest available check that our forward pass is the
architecture we claim (``tests/test_interop.py`` compares logits and every hook we share).

Two TL lines are in use, and both are supported exactly (``to_transformer_lens`` and
``from_transformer_lens`` pick by the installed version; the tested versions are in
``TESTED_TL``; any other major version gets ``TransformerLensVersionError``):

* **TL 3.x** (``pip install transformer-lens==3.9.0``; SAELens 6 still needs it): the model is
  ``HookedTransformer``. Our hook names are TL 3's (``hooks.py``), so a cache reads the same.
* **TL 4.x** (``pip install transformer-lens==4.3.0``): ``HookedTransformer`` is gone; the
  model is a ``TransformerBridge`` around TL's own ``NativeModel``, booted with
  ``TransformerBridge.boot_native(TransformerBridgeConfig)``. ``tl_hook_name`` translates our
  hook names to its names.

The weight mapping is one-to-one. We fuse Q, K and V into one ``W_QKV (d_model, 3, n_heads,
d_head)``; TL 3 keeps ``W_Q/W_K/W_V (n_heads, d_model, d_head)`` (``tl_state_dict``), TL 4
keeps ``nn.Linear`` weights ``q.weight (n_heads * d_head, d_model)`` and so on
(``tl4_state_dict``; the same layout TL's ``convert_tl_checkpoint`` makes from TL-3 names).
Weights are loaded *without* TL's optional processing (LayerNorm folding, centering,
value-bias folding, TL 4's ``enable_compatibility_mode``): those are exact for the logits'
softmax but change ``hook_post`` and the raw logits, so a freshly converted TL model
reproduces ours hook for hook.

Where a TL line cannot express a model exactly, conversion refuses with a message that says
so (``NotImplementedError``), never a model that is almost ours:

* blocked models (``solu_blocks > 1``, paper §4.4), in both lines: TL's softmax and MLP
  LayerNorm always span all ``d_mlp`` units;
* ``gelu_ln`` (the paper's LN-only ablation, §6.2) in TL 4: its native MLP adds the extra
  LayerNorm only for ``act_fn == "solu_ln"``. TL 3 expresses it (``register_gelu_ln``);
* rotary models with a non-integer ``rotary_base`` in TL 4 (its config stores ``int(base)``);
* TL models with features our model lacks (gated MLPs, parallel attention, grouped-query
  attention, ...): the message names the offending field.

Rotary in TL 4: its native rotary always rotates *adjacent* pairs (unit 2i with 2i+1); ours
pairs unit i with i + d_head/2 (GPT-NeoX half split, as TL 3 with
``rotary_adjacent_pairs=False``). Both rotate a pair by the same angle, so reordering each
head's Q and K units by the same permutation (i -> 2i, i + d_head/2 -> 2i + 1) turns one into
the other exactly: the rotated queries and keys are the same numbers in another order, and
attention scores are dot products over that axis. A rotary bridge's ``hook_q``/``hook_k``
(which we do not record) are therefore in the permuted order; every hook we share is not
affected.

``gelu_ln`` in TL 3: it has no such activation, but its MLP treats *any* ``act_fn`` ending in
``_ln`` as "activation then the MLP's own LayerNorm", looking the function itself up in the
dict ``transformer_lens.utilities.activation_functions.SUPPORTED_ACTIVATIONS`` (both the
config check and ``ActivationFunctionFactory`` read that same dict). ``register_gelu_ln``
adds ``"gelu_ln" -> torch.nn.functional.gelu`` (exact erf GELU, as ours and TL's ``"gelu"``)
to it, which is all TL 3 needs. Caveat: TL's ``fold_ln`` folds the MLP LayerNorm only for
``solu*`` activations, so calling ``process_weights_(fold_ln=True)`` on a ``gelu_ln`` TL model
silently drops that LayerNorm's weights; convert such models without folding.

``tl_config_dict``/``tl_state_dict`` (TL 3) and ``tl4_config_dict``/``tl4_state_dict`` (TL 4)
need no TL: they are what an exported model is written as, so that TL loads it without this
package.

Requires the optional dependency: ``pip install 'solu-repro[interop]'`` (TL 3.9.0), or
``pip install transformer-lens==4.3.0`` for the TL 4 line.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import warnings
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .activations import ACT_FNS
from .hooks import ATTN_HOOKS, GLOBAL_HOOKS, MLP_HOOKS, RESID_HOOKS, act_name, block
from .model import ModelConfig, Transformer

if TYPE_CHECKING:  # only for annotations: transformer_lens is an optional dependency
    from transformer_lens import HookedTransformer, HookedTransformerConfig

__all__ = [
    "TESTED_TL",
    "TransformerLensVersionError",
    "bridge_from_tl",
    "from_hooked_config",
    "from_hooked_transformer",
    "from_tl_config_dict",
    "from_tl_state_dict",
    "from_transformer_lens",
    "installed_tl_version",
    "register_gelu_ln",
    "tl4_config_dict",
    "tl4_state_dict",
    "tl_config_dict",
    "tl_hook_name",
    "tl_state_dict",
    "to_hooked_config",
    "to_hooked_transformer",
    "to_transformer_lens",
]

TESTED_TL = {3: "3.9.0", 4: "4.3.0"}
"""The TransformerLens version of each supported major line that the tests run against."""

_INSTALL_HINT = "pip install 'solu-repro[interop]'"
_TL3_HINT = f"pip install transformer-lens=={TESTED_TL[3]}"
_TL4_HINT = f"pip install transformer-lens=={TESTED_TL[4]}"

_POS_TO_TL = {"learned": "standard", "rotary": "rotary"}
_POS_FROM_TL = {v: k for k, v in _POS_TO_TL.items()}

# TL 4's NativeMLP (model_bridge/sources/native/model.py) knows these of our activations;
# "solu_ln" is the only one it follows with the MLP LayerNorm.
_TL4_ACT_FNS = ("gelu", "solu", "solu_ln")

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

# The fields TL 4's NativeModel reads (besides the shapes), with the value ours implies.
_TL4_MUST_EQUAL: dict[str, Any] = {
    "attn_only": False,
    "gated_mlp": False,
    "final_rms": False,
    "attention_dir": "causal",
    "rope_scaling": None,
    "layer_norm_folding": False,
}


class TransformerLensVersionError(ImportError):
    """The installed TransformerLens is not a version this function works with; the message
    names the installed version and the ``pip install`` line that fixes it."""


def _require_transformer_lens() -> None:
    try:
        import transformer_lens  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "transformer_lens":
            raise _broken_tl(e) from e
        raise ImportError(
            f"solu_repro.interop needs transformer-lens, which is not installed: "
            f"run {_INSTALL_HINT}") from e
    except ImportError as e:
        raise _broken_tl(e) from e


def _broken_tl(e: ImportError) -> TransformerLensVersionError:
    """TL is installed but does not import (e.g. a version built for other dependencies)."""
    try:
        version = importlib.metadata.version("transformer-lens")
    except importlib.metadata.PackageNotFoundError:
        version = "(unknown version)"
    return TransformerLensVersionError(
        f"transformer-lens {version} is installed but does not import ({e}); solu_repro.interop "
        f"is tested with {TESTED_TL[3]} ({_TL3_HINT}) and {TESTED_TL[4]} ({_TL4_HINT})")


def installed_tl_version() -> str:
    """The installed TransformerLens version (the package metadata of the ``transformer_lens``
    that imports first, so a copy earlier on ``PYTHONPATH`` counts).

    Raises:
        ImportError: transformer-lens is not installed (the message says how to install it).
        TransformerLensVersionError: it imports but has no package metadata to tell its
            version by.
    """
    _require_transformer_lens()
    try:
        return importlib.metadata.version("transformer-lens")
    except importlib.metadata.PackageNotFoundError as e:
        raise TransformerLensVersionError(
            "transformer_lens imports but has no package metadata, so its version is unknown: "
            f"install it with pip ({_TL3_HINT} or {_TL4_HINT})") from e


def _tl_major() -> int:
    """The installed TL's major version, if it is a supported line."""
    version = installed_tl_version()
    match = re.match(r"(\d+)\.", version)
    major = int(match.group(1)) if match else None
    if major not in TESTED_TL:
        raise TransformerLensVersionError(
            f"transformer-lens {version} is installed, but solu_repro.interop supports the "
            f"3.x line (tested with {TESTED_TL[3]}: {_TL3_HINT}) and the 4.x line (tested "
            f"with {TESTED_TL[4]}: {_TL4_HINT})")
    return major


def _require_tl3(what: str) -> None:
    """Raise our error, not TL 4's ImportError, when a TL-3-only function meets TL 4."""
    if _tl_major() != 3:
        raise TransformerLensVersionError(
            f"{what} needs TransformerLens 3.x (HookedTransformer was removed in TL 4.0), but "
            f"transformer-lens {installed_tl_version()} is installed: use "
            f"solu_repro.interop.to_transformer_lens / from_transformer_lens (a "
            f"TransformerBridge under TL 4), or {_TL3_HINT}")


def _tl4_api() -> tuple[type, type, type]:
    """``(TransformerBridge, TransformerBridgeConfig, NativeModel)`` of the installed TL 4."""
    if _tl_major() != 4:
        raise TransformerLensVersionError(
            f"this needs TransformerLens 4.x (TransformerBridge.boot_native), but "
            f"transformer-lens {installed_tl_version()} is installed: {_TL4_HINT}, or use "
            "to_transformer_lens, which gives a HookedTransformer under TL 3")
    try:
        from transformer_lens.config import TransformerBridgeConfig
        from transformer_lens.model_bridge import TransformerBridge
        from transformer_lens.model_bridge.sources.native import NativeModel
    except ImportError as e:
        raise TransformerLensVersionError(
            f"transformer-lens {installed_tl_version()} lacks the native TransformerBridge "
            f"({e}); solu_repro.interop is tested with {TESTED_TL[4]}: {_TL4_HINT}") from e
    if not hasattr(TransformerBridge, "boot_native"):
        raise TransformerLensVersionError(
            f"transformer-lens {installed_tl_version()} has no TransformerBridge.boot_native; "
            f"solu_repro.interop is tested with {TESTED_TL[4]}: {_TL4_HINT}")
    return TransformerBridge, TransformerBridgeConfig, NativeModel


def register_gelu_ln() -> None:
    """Teach TransformerLens 3.x the ``gelu_ln`` activation (exact GELU, then the MLP
    LayerNorm).

    Idempotent. This is the only change we make to TL; see the module docstring for why it
    is enough. TL 4 has no such hook: its native MLP adds the LayerNorm only for ``solu_ln``,
    whatever the activation dict holds, so under TL 4 this raises instead of doing nothing.

    Raises:
        ImportError: transformer-lens is not installed.
        TransformerLensVersionError: TL 4.x (or another unsupported version) is installed.
        RuntimeError: TL already defines ``gelu_ln`` as something other than exact GELU.
    """
    if _tl_major() != 3:
        raise TransformerLensVersionError(
            f"register_gelu_ln works with TransformerLens 3.x only; transformer-lens "
            f"{installed_tl_version()} is installed, whose native MLP adds the extra "
            "LayerNorm only for act_fn 'solu_ln', so a gelu_ln model cannot be expressed in "
            f"it: {_TL3_HINT}")
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    existing: Callable[..., Tensor] | None = SUPPORTED_ACTIVATIONS.get("gelu_ln")
    if existing is None:
        SUPPORTED_ACTIVATIONS["gelu_ln"] = F.gelu
    elif existing is not F.gelu:
        raise RuntimeError(
            f"this TransformerLens version already defines act_fn 'gelu_ln' as {existing!r}, "
            "not the exact GELU solu_repro means by it: conversion of gelu_ln models would "
            f"not be exact; {_TL3_HINT}")


def _check_convertible(cfg: ModelConfig) -> None:
    """Raise if ``cfg`` has no exact TransformerLens equivalent (any TL version)."""
    if cfg.solu_blocks > 1:
        raise NotImplementedError(
            f"ModelConfig.solu_blocks={cfg.solu_blocks}: TransformerLens has no blocked SoLU "
            "or blocked MLP LayerNorm (paper §4.4) - its softmax and LayerNorm always span all "
            f"d_mlp={cfg.d_mlp} units - so this model cannot be converted exactly; only "
            "solu_blocks=1 models convert")


def _check_tl4_expressible(cfg: ModelConfig) -> None:
    """Raise if TL 4's native model cannot compute exactly what ``cfg`` describes."""
    _check_convertible(cfg)
    if cfg.act_fn not in _TL4_ACT_FNS:
        raise NotImplementedError(
            f"act_fn={cfg.act_fn!r} cannot be expressed exactly in TransformerLens 4: its "
            "native MLP adds the extra LayerNorm only for act_fn 'solu_ln' (supported there: "
            f"{_TL4_ACT_FNS}); convert it under the TL 3 line instead: {_TL3_HINT}")
    if cfg.pos_embed == "rotary" and cfg.rotary_base != int(cfg.rotary_base):
        raise NotImplementedError(
            f"rotary_base={cfg.rotary_base} cannot be expressed exactly in TransformerLens 4: "
            "its config stores int(rotary_base); convert it under the TL 3 line instead: "
            f"{_TL3_HINT}")


def tl_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` keyword arguments (TL 3.x) describing ``cfg`` exactly.

    Needs no TransformerLens: every value is a plain JSON type, so the dict can be written
    next to a state dict from ``tl_state_dict`` and read by anyone with TL 3.x:
    ``HookedTransformer(HookedTransformerConfig(**d))`` then ``load_state_dict``. Device and
    dtype are left to the caller (TL's defaults: float32, CUDA if available). A ``gelu_ln``
    model additionally needs ``register_gelu_ln()`` before the config is built, since TL has
    no such activation of its own. ``from_tl_config_dict`` is the inverse.

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
    """The TL 3.x ``HookedTransformerConfig`` describing the same architecture as ``cfg``.

    Built from ``tl_config_dict`` (see there for what is and is not passed on).

    Args:
        cfg: our model configuration.
        device: device of the TL model.
        dtype: parameter dtype of the TL model.

    Returns:
        The TL config (with ``init_weights=False``: the weights are loaded afterwards).

    Raises:
        ImportError: transformer-lens is not installed.
        TransformerLensVersionError: the installed TL is not 3.x.
        NotImplementedError: ``cfg.solu_blocks > 1`` (no TL equivalent).
    """
    _require_tl3("to_hooked_config")
    from transformer_lens import HookedTransformerConfig

    kwargs = tl_config_dict(cfg)
    if cfg.act_fn == "gelu_ln":
        register_gelu_ln()
    return HookedTransformerConfig(**kwargs, device=str(device), dtype=dtype)


_REQUIRED = object()


def _model_config_from_tl(field: Callable[[str, Any], Any]) -> ModelConfig:
    """The ``ModelConfig`` of a TL-3 config read through ``field(name, default)`` (the default
    is ``_REQUIRED`` for a field that must be there)."""

    def unsupported(name: str, value: Any, why: str) -> NotImplementedError:
        return NotImplementedError(
            f"cannot convert this TransformerLens model: HookedTransformerConfig.{name}="
            f"{value!r} has no equivalent in solu_repro.model ({why})")

    for name, expected in _TL_MUST_EQUAL.items():
        value = field(name, expected)
        if value != expected:
            raise unsupported(name, value, f"only {expected!r} is supported")
    act_fn = field("act_fn", _REQUIRED)
    if act_fn not in ACT_FNS:
        raise unsupported("act_fn", act_fn, f"supported: {ACT_FNS}")
    norm = field("normalization_type", _REQUIRED)
    if norm not in ("LN", "LNPre"):
        raise unsupported("normalization_type", norm,
                          "only LayerNorm ('LN' or folded 'LNPre') is supported")
    if norm == "LNPre" and act_fn == "gelu_ln":
        # TL's fold_ln folds the MLP LayerNorm only for solu* activations and drops it
        # otherwise, so these weights are already lost inside TL.
        raise unsupported("normalization_type", "LNPre",
                          "TL's fold_ln drops the gelu_ln MLP LayerNorm weights; convert the "
                          "model before calling process_weights_/fold_ln")
    d_head = field("d_head", _REQUIRED)
    pos = field("positional_embedding_type", _REQUIRED)
    if pos not in _POS_FROM_TL:
        raise unsupported("positional_embedding_type", pos,
                          f"supported: {sorted(_POS_FROM_TL)}")
    if pos == "rotary":
        rotary_dim = field("rotary_dim", _REQUIRED)
        if rotary_dim != d_head:
            raise unsupported("rotary_dim", rotary_dim,
                              f"we rotate the whole head, rotary_dim must equal d_head={d_head}")
        if field("rotary_adjacent_pairs", False):
            raise unsupported("rotary_adjacent_pairs", True, "we use the GPT-NeoX half split")
        scaling = field("rotary_scaling_factor", 1.0)
        if scaling != 1.0:
            raise unsupported("rotary_scaling_factor", scaling, "no RoPE scaling")
    attn_scale = field("attn_scale", _REQUIRED)
    if not math.isclose(attn_scale, math.sqrt(d_head), rel_tol=1e-9):
        raise unsupported("attn_scale", attn_scale,
                          f"we divide attention scores by sqrt(d_head)={math.sqrt(d_head)}")
    n_heads = field("n_heads", _REQUIRED)
    n_kv = field("n_key_value_heads", None)
    if n_kv not in (None, n_heads):
        raise unsupported("n_key_value_heads", n_kv, "no grouped-query attention")
    d_vocab = field("d_vocab", _REQUIRED)
    d_vocab_out = field("d_vocab_out", _REQUIRED)
    if d_vocab_out != d_vocab:
        raise unsupported("d_vocab_out", d_vocab_out, f"must equal d_vocab={d_vocab}")
    for name in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        cap = field(name, -1.0)
        if cap is not None and cap > 0:
            raise unsupported(name, cap, "no soft-capping")
    init_std = field("initializer_range", -1.0)
    return ModelConfig(
        n_layers=field("n_layers", _REQUIRED),
        d_model=field("d_model", _REQUIRED),
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=field("d_mlp", _REQUIRED),
        d_vocab=d_vocab,
        n_ctx=field("n_ctx", _REQUIRED),
        act_fn=act_fn,
        solu_blocks=1,
        pos_embed=_POS_FROM_TL[pos],
        init_std=float(init_std) if init_std > 0 else ModelConfig.init_std,
        ln_eps=float(field("eps", _REQUIRED)),
        rotary_base=float(field("rotary_base", 10000)),
    )


def from_hooked_config(tl_cfg: "HookedTransformerConfig") -> ModelConfig:
    """The ``ModelConfig`` of the same architecture as a TL 3.x config, if there is one.

    Accepts ``normalization_type`` "LN" and "LNPre" (LayerNorms whose affine weights TL has
    folded into the next layer, which we represent with identity weights).

    Args:
        tl_cfg: a TransformerLens ``HookedTransformerConfig``.

    Returns:
        The matching ``ModelConfig`` (``solu_blocks=1``, ``seed=0``; ``init_std`` from TL's
        ``initializer_range``, which only documents how the weights were first drawn).

    Raises:
        ImportError: transformer-lens is not installed.
        TransformerLensVersionError: the installed TL is not 3.x.
        NotImplementedError: the TL config uses a feature our model does not have (the
            message names the field).
    """
    _require_tl3("from_hooked_config")

    def field(name: str, default: Any) -> Any:
        return getattr(tl_cfg, name) if default is _REQUIRED else getattr(tl_cfg, name, default)

    return _model_config_from_tl(field)


def from_tl_config_dict(config: dict[str, Any]) -> ModelConfig:
    """The ``ModelConfig`` of a TL-3 config dict (``HookedTransformerConfig`` keyword
    arguments, as ``tl_config_dict`` writes them); the inverse of ``tl_config_dict``.

    Needs no TransformerLens. A field TL would default may be left out; the shapes,
    ``act_fn``, ``normalization_type``, ``positional_embedding_type``, ``attn_scale``,
    ``eps`` and ``d_vocab_out`` must be given (TL derives some of them from others; we do not
    guess).

    Raises:
        ConfigError: a required field is missing (the message names it).
        NotImplementedError: a field asks for a feature our model does not have.
    """
    from .model import ConfigError

    def field(name: str, default: Any) -> Any:
        if name in config:
            return config[name]
        if default is _REQUIRED:
            raise ConfigError(f"TransformerLens config dict has no {name!r}: it needs every "
                              "field tl_config_dict writes")
        return default

    return _model_config_from_tl(field)


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
    """A TransformerLens 3.x ``HookedTransformer`` computing exactly what ``model`` computes.

    The TL model gets copies of the weights, on the same device and in the same dtype, loaded
    without TL's weight processing, so its logits and its ``hook_pre``/``hook_mid``/
    ``hook_post`` activations match ours up to float rounding.

    Args:
        model: our transformer (``solu_blocks`` must be 1).

    Returns:
        The TL model, in eval mode.

    Raises:
        ImportError: transformer-lens is not installed.
        TransformerLensVersionError: the installed TL is not 3.x (TL 4 has no
            HookedTransformer; ``to_transformer_lens`` gives its bridge).
        NotImplementedError: the model is blocked (``solu_blocks > 1``).
    """
    _require_tl3("to_hooked_transformer")
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
            f"for transformer-lens=={TESTED_TL[3]} in the 3.x line: {_TL3_HINT}")
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
        TransformerLensVersionError: the installed TL is not 3.x.
        NotImplementedError: the TL model uses a feature our model lacks.
    """
    _require_tl3("from_hooked_transformer")
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


# --- TransformerLens 4.x: TransformerBridge around TL's native model -------------------------

def _rotary_order(d_head: int, device: torch.device | None = None) -> Tensor:
    """Index ``perm`` with ``x[..., perm]`` turning our half-split head units into TL 4's
    adjacent pairs: unit 2i is our unit i, unit 2i + 1 is our unit i + d_head/2."""
    half = d_head // 2
    first = torch.arange(half, device=device)
    return torch.stack([first, first + half], dim=-1).flatten()


def tl4_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The ``TransformerBridgeConfig`` keyword arguments (TL 4.x) describing ``cfg`` exactly.

    Needs no TransformerLens; every value is a plain JSON type. With ``tl4_state_dict``:
    ``b = TransformerBridge.boot_native(TransformerBridgeConfig(**d))`` then
    ``b.load_state_dict(sd, strict=True)``. ``init_weights`` is False (the weights are loaded
    afterwards); ``rotary_adjacent_pairs`` is True because ``tl4_state_dict`` reorders Q and
    K for TL 4's adjacent-pair rotary (TL 4's native model rotates adjacent pairs whatever the
    flag says; it is set so the config describes the weights truthfully).

    Raises:
        NotImplementedError: TL 4 cannot express the model exactly (``solu_blocks > 1``,
            ``gelu_ln``, a non-integer rotary base); the message names the TL 3 line.
    """
    _check_tl4_expressible(cfg)
    rotary = cfg.pos_embed == "rotary"
    # TL 3's keywords (one description of the architecture), with what TL 4 reads differently
    d = tl_config_dict(cfg)
    d = {"model_name": d.pop("model_name"), "architecture": "TransformerLensNative", **d}
    d.update(rotary_adjacent_pairs=rotary, rotary_base=int(cfg.rotary_base))
    return d


def tl4_state_dict(model: Transformer) -> dict[str, Tensor]:
    """Our parameters under the names and layouts of a TL 4 native bridge's ``state_dict``
    (``nn.Linear`` weights ``(out, in)``; Q and K of rotary models reordered for TL 4's
    adjacent-pair rotary, see the module docstring). Needs no TransformerLens.

    It equals TL's own ``convert_tl_checkpoint`` of ``tl_state_dict`` (after that reorder),
    which ``tests/test_interop.py`` checks under TL 4. Every tensor is a contiguous copy.

    Raises:
        NotImplementedError: TL 4 cannot express the model exactly (see ``tl4_config_dict``).
    """
    cfg = model.cfg
    _check_tl4_expressible(cfg)
    tl = tl_state_dict(model)
    H, Dh, D = cfg.n_heads, cfg.d_head, cfg.d_model
    sd = {
        "embed.weight": tl["embed.W_E"],
        "ln_final.weight": tl["ln_final.w"],
        "ln_final.bias": tl["ln_final.b"],
        "unembed.weight": tl["unembed.W_U"].T,
        "unembed.bias": tl["unembed.b_U"],
    }
    if cfg.pos_embed == "learned":
        sd["pos_embed.weight"] = tl["pos_embed.W_pos"]
    order = _rotary_order(Dh) if cfg.pos_embed == "rotary" else None
    for layer in range(cfg.n_layers):
        p = block(layer)
        for name in "QKV":
            W, b = tl[f"{p}.attn.W_{name}"], tl[f"{p}.attn.b_{name}"]  # (H, D, Dh), (H, Dh)
            if order is not None and name in "QK":
                W, b = W[..., order], b[..., order]
            # (H, D, Dh) -> nn.Linear's (H * Dh, D)
            sd[f"{p}.attn.{name.lower()}.weight"] = W.permute(0, 2, 1).reshape(H * Dh, D)
            sd[f"{p}.attn.{name.lower()}.bias"] = b.reshape(H * Dh)
        sd[f"{p}.attn.o.weight"] = tl[f"{p}.attn.W_O"].reshape(H * Dh, D).T  # (D, H * Dh)
        sd[f"{p}.attn.o.bias"] = tl[f"{p}.attn.b_O"]
        sd[f"{p}.mlp.in.weight"] = tl[f"{p}.mlp.W_in"].T
        sd[f"{p}.mlp.in.bias"] = tl[f"{p}.mlp.b_in"]
        sd[f"{p}.mlp.out.weight"] = tl[f"{p}.mlp.W_out"].T
        sd[f"{p}.mlp.out.bias"] = tl[f"{p}.mlp.b_out"]
        for ln in ("ln1", "ln2") + (("mlp.ln",) if cfg.has_mlp_ln else ()):
            sd[f"{p}.{ln}.weight"] = tl[f"{p}.{ln}.w"]
            sd[f"{p}.{ln}.bias"] = tl[f"{p}.{ln}.b"]
    return {k: v.contiguous() for k, v in sd.items()}


def _tl_state_dict_from_tl4(cfg: ModelConfig, sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of ``tl4_state_dict``: TL-3 names and layouts from a bridge's state dict."""
    H, Dh, D = cfg.n_heads, cfg.d_head, cfg.d_model
    tl = {
        "embed.W_E": sd["embed.weight"],
        "ln_final.w": sd["ln_final.weight"],
        "ln_final.b": sd["ln_final.bias"],
        "unembed.W_U": sd["unembed.weight"].T,
        "unembed.b_U": sd["unembed.bias"],
    }
    if cfg.pos_embed == "learned":
        tl["pos_embed.W_pos"] = sd["pos_embed.weight"]
    inverse = (torch.argsort(_rotary_order(Dh)) if cfg.pos_embed == "rotary" else None)
    for layer in range(cfg.n_layers):
        p = block(layer)
        for name in "QKV":
            W = sd[f"{p}.attn.{name.lower()}.weight"].reshape(H, Dh, D).permute(0, 2, 1)
            b = sd[f"{p}.attn.{name.lower()}.bias"].reshape(H, Dh)
            if inverse is not None and name in "QK":
                W, b = W[..., inverse], b[..., inverse]
            tl[f"{p}.attn.W_{name}"], tl[f"{p}.attn.b_{name}"] = W, b
        tl[f"{p}.attn.W_O"] = sd[f"{p}.attn.o.weight"].T.reshape(H, Dh, D)
        tl[f"{p}.attn.b_O"] = sd[f"{p}.attn.o.bias"]
        tl[f"{p}.mlp.W_in"] = sd[f"{p}.mlp.in.weight"].T
        tl[f"{p}.mlp.b_in"] = sd[f"{p}.mlp.in.bias"]
        tl[f"{p}.mlp.W_out"] = sd[f"{p}.mlp.out.weight"].T
        tl[f"{p}.mlp.b_out"] = sd[f"{p}.mlp.out.bias"]
        for ln in ("ln1", "ln2") + (("mlp.ln",) if cfg.has_mlp_ln else ()):
            tl[f"{p}.{ln}.w"] = sd[f"{p}.{ln}.weight"]
            tl[f"{p}.{ln}.b"] = sd[f"{p}.{ln}.bias"]
    return tl


def _to_bridge(model: Transformer) -> Any:
    """A TL 4 native ``TransformerBridge`` computing exactly what ``model`` computes."""
    TransformerBridge, TransformerBridgeConfig, _ = _tl4_api()
    W_E = model.W_E
    bridge_cfg = TransformerBridgeConfig(**tl4_config_dict(model.cfg))
    sd = tl4_state_dict(model)
    # Building the native model draws nn.Linear's default init from the global RNG (with
    # init_weights=False boot_native does not fork it); the weights are replaced anyway, so
    # leave the caller's RNG stream as it was.
    with torch.random.fork_rng(devices=[]):
        bridge = TransformerBridge.boot_native(bridge_cfg, device=W_E.device, dtype=W_E.dtype)
    # strict: every parameter and the unembed bias buffer come from us, nothing is left at
    # init and nothing of ours is dropped.
    bridge.load_state_dict(sd, strict=True)
    return bridge.eval()


def bridge_from_tl(config: dict[str, Any], state_dict: dict[str, Tensor]) -> Any:
    """A TL 4 ``TransformerBridge`` from a TL-3 config dict and state dict, as
    ``tl_config_dict`` and ``tl_state_dict`` make them (an exported model's files).

    The model is built through ours (``from_tl_config_dict``, ``from_tl_state_dict``, strict),
    so every parameter is checked to be there, then converted as ``to_transformer_lens``
    converts. The bridge is on the tensors' device and in their dtype, in eval mode.

    Raises:
        ImportError / TransformerLensVersionError: TL 4.x is not what is installed.
        ConfigError: the config dict lacks a required field.
        KeyError: the state dict lacks a parameter (the message names it).
        NotImplementedError: TL 4 cannot express the model exactly (the message names the
            TL 3 line), or our model lacks a feature the config asks for.
    """
    _tl4_api()
    cfg = from_tl_config_dict(config)
    _check_tl4_expressible(cfg)
    model = from_tl_state_dict(cfg, state_dict, folded=config["normalization_type"] == "LNPre")
    return _to_bridge(model)


def _model_config_from_bridge(bridge: Any) -> ModelConfig:
    """The ``ModelConfig`` of a TL 4 native bridge, if ours can compute the same function."""
    _, _, NativeModel = _tl4_api()
    bcfg = bridge.cfg

    def unsupported(name: str, value: Any, why: str) -> NotImplementedError:
        return NotImplementedError(
            f"cannot convert this TransformerBridge: cfg.{name}={value!r} has no equivalent in "
            f"solu_repro.model ({why})")

    if not isinstance(bridge.original_model, NativeModel):
        raise unsupported("architecture", getattr(bcfg, "architecture", None),
                          "only bridges around TL's own native model convert: "
                          "TransformerBridge.boot_native, as to_transformer_lens makes them")
    if getattr(bridge, "compatibility_mode", False):
        raise NotImplementedError(
            "cannot convert this TransformerBridge: enable_compatibility_mode() was called on "
            "it, which folds and centres its weights (exact for the log-probs, not for the "
            "raw logits and hooks); convert the bridge before calling it")
    for name, expected in _TL4_MUST_EQUAL.items():
        value = getattr(bcfg, name, expected)
        if value != expected:
            raise unsupported(name, value, f"only {expected!r} is supported")
    act_fn = (bcfg.act_fn or "").lower()
    if act_fn not in _TL4_ACT_FNS:
        raise unsupported("act_fn", bcfg.act_fn, f"supported: {_TL4_ACT_FNS}")
    if bcfg.normalization_type != "LN":
        raise unsupported("normalization_type", bcfg.normalization_type, "only 'LN'")
    pos = (bcfg.positional_embedding_type or "standard").lower()
    if pos not in _POS_FROM_TL:
        raise unsupported("positional_embedding_type", pos, f"supported: {sorted(_POS_FROM_TL)}")
    if pos == "rotary" and bcfg.rotary_dim not in (None, bcfg.d_head):
        raise unsupported("rotary_dim", bcfg.rotary_dim,
                          f"we rotate the whole head, rotary_dim must equal d_head={bcfg.d_head}")
    # NativeAttention divides by attn_scale when use_attn_scale and attn_scale > 0, else by
    # sqrt(d_head).
    scale = (bcfg.attn_scale if bcfg.use_attn_scale and bcfg.attn_scale > 0
             else math.sqrt(bcfg.d_head))
    if not math.isclose(scale, math.sqrt(bcfg.d_head), rel_tol=1e-9):
        raise unsupported("attn_scale", bcfg.attn_scale,
                          f"we divide attention scores by sqrt(d_head)={math.sqrt(bcfg.d_head)}")
    if bcfg.n_key_value_heads not in (None, bcfg.n_heads):
        raise unsupported("n_key_value_heads", bcfg.n_key_value_heads,
                          "no grouped-query attention")
    if bcfg.d_vocab_out not in (-1, bcfg.d_vocab):
        raise unsupported("d_vocab_out", bcfg.d_vocab_out, f"must equal d_vocab={bcfg.d_vocab}")
    for name in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        cap = getattr(bcfg, name, -1.0)
        if cap is not None and cap > 0:
            raise unsupported(name, cap, "no soft-capping")
    init_std = bcfg.initializer_range
    return ModelConfig(
        n_layers=bcfg.n_layers, d_model=bcfg.d_model, n_heads=bcfg.n_heads,
        d_head=bcfg.d_head, d_mlp=bcfg.d_mlp, d_vocab=bcfg.d_vocab, n_ctx=bcfg.n_ctx,
        act_fn=act_fn, solu_blocks=1, pos_embed=_POS_FROM_TL[pos],
        init_std=float(init_std) if init_std > 0 else ModelConfig.init_std,
        ln_eps=float(bcfg.eps), rotary_base=float(bcfg.rotary_base))


def _from_bridge(bridge: Any) -> Transformer:
    cfg = _model_config_from_bridge(bridge)
    sd = {k: v.detach() for k, v in bridge.state_dict().items()}
    return from_tl_state_dict(cfg, _tl_state_dict_from_tl4(cfg, sd), folded=False)


# --- either line ------------------------------------------------------------------------------

def to_transformer_lens(model: Transformer) -> Any:
    """A TransformerLens model computing exactly what ``model`` computes: a
    ``HookedTransformer`` under TL 3.x (``to_hooked_transformer``), a native
    ``TransformerBridge`` under TL 4.x.

    Either gets copies of the weights, on the same device and in the same dtype, without TL's
    weight processing, so its logits and the activations at every hook we share match ours
    up to float rounding (``tl_hook_name`` gives a hook's name in TL 4).

    Raises:
        ImportError: transformer-lens is not installed.
        TransformerLensVersionError: the installed TL is neither 3.x nor 4.x.
        NotImplementedError: the installed TL cannot express the model exactly (blocked models
            in both lines; ``gelu_ln`` and non-integer rotary bases in TL 4, whose message
            names the TL 3 line).
    """
    if _tl_major() == 3:
        return to_hooked_transformer(model)
    return _to_bridge(model)


def from_transformer_lens(tl_model: Any) -> Transformer:
    """Our ``Transformer`` computing exactly what a TransformerLens model computes: a TL 3.x
    ``HookedTransformer`` (``from_hooked_transformer``, folded LayerNorms included) or a TL
    4.x ``TransformerBridge`` around TL's native model (unprocessed: not after
    ``enable_compatibility_mode``).

    Returns:
        Our model with copies of the weights, on the TL model's device and in its dtype, in
        eval mode. ``cfg.seed`` is 0 (TL does not record it).

    Raises:
        ImportError / TransformerLensVersionError: TL is missing or not a supported version.
        TypeError: ``tl_model`` is not the installed line's model class.
        NotImplementedError: the TL model uses a feature our model lacks (the message names
            it).
    """
    if _tl_major() == 3:
        from transformer_lens import HookedTransformer

        if not isinstance(tl_model, HookedTransformer):
            raise TypeError(
                f"from_transformer_lens under TransformerLens {installed_tl_version()} takes a "
                f"HookedTransformer, got {type(tl_model).__name__} (a TransformerBridge "
                f"converts under TL 4: {_TL4_HINT})")
        return from_hooked_transformer(tl_model)
    TransformerBridge, _, _ = _tl4_api()
    if not isinstance(tl_model, TransformerBridge):
        raise TypeError(
            f"from_transformer_lens under TransformerLens {installed_tl_version()} takes a "
            f"TransformerBridge, got {type(tl_model).__name__}")
    return _from_bridge(tl_model)


def _parse_hook(name: str) -> tuple[str, int | None]:
    """``(short name, layer)`` of one of our hook names (``hooks.act_name``'s inverse)."""
    for short, full in GLOBAL_HOOKS.items():
        if name == full:
            return short, None
    match = re.fullmatch(r"blocks\.(\d+)\..+", name)
    if match:
        layer = int(match.group(1))
        for short in MLP_HOOKS + ATTN_HOOKS + RESID_HOOKS:
            if act_name(short, layer) == name:
                return short, layer
    raise ValueError(f"{name!r} is not one of our hook names: solu_repro.hooks.act_name(h, "
                     f"layer) for h in {list(MLP_HOOKS + ATTN_HOOKS + RESID_HOOKS)}, or one of "
                     f"{list(GLOBAL_HOOKS.values())}")


def tl_hook_name(name: str, act_fn: str, tl_major: int | None = None) -> str:
    """The TransformerLens hook that records what our hook ``name`` records.

    Our names are TL 3's, with one gap: TL 3 has ``hook_mid`` only for ``*_ln`` activations;
    without the extra LayerNorm ``mid`` equals ``post``, so it maps to ``hook_post``. TL 4 has
    no ``hook_mid`` at all: for ``solu_ln`` the activation before the extra LayerNorm is the
    input of the MLP's LayerNorm, ``blocks.{l}.mlp.ln.hook_in``. Every other hook we record
    (``hook_pre``, ``hook_post``, the residual hooks, ``attn.hook_pattern``, ``hook_embed``,
    ``hook_pos_embed``, ``ln_final.hook_normalized``) has the same name in both lines.

    Args:
        name: one of our hook names (``solu_repro.hooks``).
        act_fn: the model's activation.
        tl_major: 3 or 4; None: the installed TL's major version.

    Raises:
        ValueError: ``name`` is not one of ours, or ``tl_major`` is not 3 or 4.
        NotImplementedError: ``gelu_ln`` under TL 4 (no such model there).
    """
    if tl_major is None:
        tl_major = _tl_major()
    if tl_major not in TESTED_TL:
        raise ValueError(f"tl_major must be one of {sorted(TESTED_TL)}, got {tl_major!r}")
    if act_fn not in ACT_FNS:
        raise ValueError(f"act_fn must be one of {ACT_FNS}, got {act_fn!r}")
    short, layer = _parse_hook(name)
    if tl_major == 4 and act_fn not in _TL4_ACT_FNS:
        raise NotImplementedError(
            f"act_fn={act_fn!r} has no TransformerLens 4 model (its native MLP adds the extra "
            f"LayerNorm only for 'solu_ln'), so no hook names either: {_TL3_HINT}")
    if short != "mid":
        return name
    assert layer is not None
    if act_fn not in ("solu_ln", "gelu_ln"):
        return act_name("post", layer)
    return name if tl_major == 3 else f"{block(layer)}.mlp.ln.hook_in"
