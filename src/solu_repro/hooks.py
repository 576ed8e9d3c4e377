"""Hook and parameter names, built in one place (TransformerLens's names and layout).

``act_name("mid", 0)`` is ``"blocks.0.mlp.hook_mid"``: SoLU's activation before its extra
LayerNorm, the one the paper interprets (§4.3). The model records its activations under these
names (``Transformer.run_with_cache``), and every tool that reads them asks this module, as
TransformerLens's ``utils.get_act_name`` does.
"""

from __future__ import annotations

MLP_HOOKS = ("pre", "mid", "post")
"""``blocks.{l}.mlp.hook_{pre,mid,post}``: the MLP's pre-activation, the activation (before
SoLU's extra LN) and its output after that LN (``post`` is ``mid`` without one)."""
ATTN_HOOKS = ("pattern",)
"""``blocks.{l}.attn.hook_pattern``."""
RESID_HOOKS = ("resid_pre", "resid_mid", "resid_post")
"""``blocks.{l}.hook_resid_{pre,mid,post}``: the residual stream around the block."""
GLOBAL_HOOKS = {"embed": "hook_embed", "pos_embed": "hook_pos_embed",
                "normalized": "ln_final.hook_normalized"}
"""Hooks outside the blocks."""


def block(layer: int) -> str:
    """The prefix of layer ``layer``'s parameters and hooks: ``"blocks.{layer}"``."""
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    return f"blocks.{layer}"


def act_name(name: str, layer: int | None = None) -> str:
    """The full hook name of activation ``name`` ("mid", "resid_pre", "pattern", "embed",
    ...) at ``layer`` (None for the hooks outside the blocks)."""
    if name in GLOBAL_HOOKS:
        if layer is not None:
            raise ValueError(f"hook {name!r} is not per layer")
        return GLOBAL_HOOKS[name]
    if layer is None:
        raise ValueError(f"hook {name!r} needs a layer")
    if name in MLP_HOOKS:
        return f"{block(layer)}.mlp.hook_{name}"
    if name in ATTN_HOOKS:
        return f"{block(layer)}.attn.hook_{name}"
    if name in RESID_HOOKS:
        return f"{block(layer)}.hook_{name}"
    raise ValueError(f"unknown hook {name!r}: one of "
                     f"{sorted(MLP_HOOKS + ATTN_HOOKS + RESID_HOOKS) + sorted(GLOBAL_HOOKS)}")


def hook_names(n_layers: int, learned_pos: bool) -> list[str]:
    """Every hook of a model, in the order its forward pass reaches them."""
    names = [act_name("embed")] + ([act_name("pos_embed")] if learned_pos else [])
    for layer in range(n_layers):
        names += [act_name("resid_pre", layer), act_name("pattern", layer),
                  act_name("resid_mid", layer)]
        names += [act_name(h, layer) for h in MLP_HOOKS]
        names.append(act_name("resid_post", layer))
    return names + [act_name("normalized")]
