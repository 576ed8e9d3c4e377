"""Small stand-ins for the released SoLU/GELU models, saved in their released layout.

A stand-in is a real TransformerLens ``HookedTransformer`` with every parameter perturbed
away from its init (so a wrong mapping of any LayerNorm weight or bias shows), saved the way
the hub repositories hold Neel Nanda's models: ``config.json`` with TL's config keys and a
``<name>_final.pth`` state dict, optionally ``tokenizer.json``. ``hf_cache_entry`` puts such a
directory into a Hugging Face cache layout (``models--owner--name/snapshots/<commit>``), the
way ``hf download`` leaves it, so that aliases resolve offline.

Used by tests/test_pretrained.py and the chapter-4 test; nothing here touches the network.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import torch

COMMIT = "0123456789abcdef0123456789abcdef01234567"

SHAPE = dict(d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=32)


def tl_config(act_fn: str, n_layers: int, d_vocab: int, normalization: str = "LN",
              seed: int = 0, **shape):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        n_layers=n_layers, d_vocab=d_vocab, act_fn=act_fn, normalization_type=normalization,
        positional_embedding_type="standard", seed=seed, **{**SHAPE, **shape})


@torch.no_grad()
def perturb(ht: torch.nn.Module, seed: int = 1) -> None:
    """LayerNorm weights 1 + noise, biases noise, matrices ~ 2/sqrt(fan_in): no identity left."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in ht.named_parameters():
        z = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "w":
            p.copy_(1 + 0.3 * z)
        elif leaf.startswith("b"):
            p.copy_(0.3 * z)
        elif leaf in ("W_E", "W_pos"):
            p.copy_(z)
        else:
            fan_in = p.shape[-2] * (p.shape[0] if leaf == "W_O" else 1)
            p.copy_(2 * z / math.sqrt(fan_in))


def make_hooked(act_fn: str, n_layers: int, d_vocab: int, fold_ln: bool = False,
                seed: int = 0, **shape):
    """A perturbed HookedTransformer; ``fold_ln``: then TL's weight processing (fold_ln,
    centring), which leaves affine-free LayerNorms ("LNPre")."""
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ht = HookedTransformer(tl_config(act_fn, n_layers, d_vocab, seed=seed, **shape))
    perturb(ht, seed + 1)
    if fold_ln:
        ht.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    return ht.eval()


def old_layout(sd: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """A TL state dict as the old Pile models store it (the inverse of TL's
    ``convert_neel_solu_old_weights``): LayerNorms named ``norm``, the final one ``norm`` at top
    level; up to 8 layers ``W_pos`` transposed, up to 6 every other weight matrix too."""
    out = {}
    for key, value in sd.items():
        if key.startswith("ln_final."):
            key = "norm." + key[len("ln_final."):]
        out[key.replace("ln", "norm")] = value.clone()
    if n_layers <= 8:
        out["pos_embed.W_pos"] = out["pos_embed.W_pos"].T.contiguous()
    if n_layers <= 6:
        for key, value in out.items():
            if "W_" in key and "W_pos" not in key:
                out[key] = value.transpose(-2, -1).contiguous()
    return out


def save_released(ht, directory: Path, name: str, tokenizer_file: Path | None = None,
                  tokenizer_name: str | None = None, old: bool = False,
                  extra_config: dict | None = None) -> Path:
    """Save ``ht`` in the released layout; returns the directory."""
    cfg = ht.cfg
    directory.mkdir(parents=True, exist_ok=True)
    config = {"d_model": cfg.d_model, "n_layers": cfg.n_layers, "d_mlp": cfg.d_mlp,
              "d_head": cfg.d_head, "n_heads": cfg.n_heads, "n_ctx": cfg.n_ctx,
              "d_vocab": cfg.d_vocab, "act_fn": cfg.act_fn, "attn_only": False,
              "normalization": cfg.normalization_type, "tokenizer_name": tokenizer_name,
              "shortformer_pos": False, "final_rms": False, "model_name": name,
              # training keys the released configs also carry, which a loader must ignore
              "lr": 1e-3, "batch_size": 512, "seed": 0, **(extra_config or {})}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    sd = {k: v.detach().clone() for k, v in ht.state_dict().items()}
    if old:
        sd = old_layout(sd, cfg.n_layers)
    torch.save(sd, directory / f"{name}_final.pth")
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, directory / "tokenizer.json")
    return directory


def hf_cache_entry(cache: Path, repo_id: str, source: Path) -> Path:
    """Copy a directory into a Hugging Face cache as ``repo_id``'s snapshot; returns it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def tokenizer_entry(cache: Path, repo_id: str, tokenizer_file: Path) -> Path:
    """A tokenizer repository (``tokenizer.json`` only) in a Hugging Face cache."""
    tmp = cache / ".tok-src"
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
    try:
        return hf_cache_entry(cache, repo_id, tmp)
    finally:
        shutil.rmtree(tmp)
