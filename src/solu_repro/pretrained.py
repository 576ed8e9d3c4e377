"""The released SoLU and GELU models (Neel Nanda's, listed by TransformerLens), loaded offline.

TransformerLens (TL) lists toy models trained with the recipe the paper's SoLU models follow:

* ``solu-1l`` ... ``solu-4l`` and ``gelu-1l`` ... ``gelu-4l``: d_model 512, d_mlp 2048, 22B
  tokens of C4 and code, matched init and data order at each depth: the matched pairs of
  Figure 4;
* ``solu-6l``, ``solu-8l``, ``solu-10l``, ``solu-12l``: wider, 30B tokens;
* ``solu-1l-wiki`` and ``solu-4l-wiki``: fine-tuned on Wikipedia;
* the older Pile models ``solu-1l-pile`` ... ``solu-12l-pile``.

Each lives in a hub repository in TL's own layout: a ``config.json`` with TL's config keys
(``d_model``, ``n_layers``, ``d_mlp``, ``d_head``, ``n_heads``, ``n_ctx``, ``d_vocab``,
``act_fn``, ``attn_only``, ``normalization`` or ``normalization_type``, optionally
``tokenizer_name``, ``final_rms``, ``shortformer_pos``), a ``*final.pth`` state dict under TL's
parameter names, and ``checkpoints/`` from training. The tokenizer lives in another
repository (``tokenizer_name``: ``NeelNanda/gpt-neox-tokenizer-digits`` for the C4 models,
``EleutherAI/gpt-neox-20b`` for the Pile ones).

TL's ``from_pretrained`` lists a repository's files on the hub before loading anything, so it
fails offline. ``load_tl_model`` reads only the local Hugging Face cache (or a directory you
name), never the network; ``download`` is the one call that needs the internet, run once.

What is exact and what is refused (facts from TL's ``convert_neel_model_config`` and
``convert_neel_solu_old_weights``):

* the C4 models (``architecture`` "neel"): loaded exactly;
* LayerNorms without affine weights (``normalization`` "LNPre", also what TL's ``fold_ln``
  leaves): identity weights, exact;
* the old Pile models (``neel-solu-old``): the 1-, 2-, 4- and 6-layer ones store every weight
  matrix transposed ([out, in]) and the 8-layer one only ``W_pos``; their LayerNorms are named
  ``norm``. Those layouts are undone exactly. But ``solu-1l-pile``, ``solu-2l-pile``,
  ``solu-4l-pile`` and ``solu-6l-pile`` end in an RMS norm (``final_rms``), which our
  ``Transformer`` does not have: they are refused, naming the model. ``solu-8l-pile``,
  ``solu-10l-pile`` and ``solu-12l-pile`` load exactly;
* attention-only models, shortformer positions and activations other than ours are refused.

``.pth`` files are read with ``torch.load(weights_only=True)``: a pickle that would build
objects or run code is refused with a ``PretrainedError``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import Tensor

from . import paths
from .data import DataError, DataSpec, TokenizedCorpus, build_dataset
from .data.tokenizer import load_tokenizer
from .interop import from_tl_state_dict
from .hooks import block
from .model import ConfigError, ModelConfig, Transformer

__all__ = ["ALIASES", "MODELS", "PREFIX", "PretrainedError", "PublishedRun", "ReleasedModel",
           "download", "is_published", "load_tl_model", "model_config", "published_run",
           "resolve"]

PREFIX = "tl:"
"""How a released model is named where a zoo name could also go: ``tl:solu-1l``."""

MODELS: dict[str, tuple[str, ...]] = {
    # hub repository -> TL's aliases, the default one first (transformer_lens.supported_models)
    "NeelNanda/SoLU_1L512W_C4_Code": ("solu-1l", "solu-1l-new", "solu-1l-c4-code"),
    "NeelNanda/SoLU_2L512W_C4_Code": ("solu-2l", "solu-2l-new", "solu-2l-c4-code"),
    "NeelNanda/SoLU_3L512W_C4_Code": ("solu-3l", "solu-3l-new", "solu-3l-c4-code"),
    "NeelNanda/SoLU_4L512W_C4_Code": ("solu-4l", "solu-4l-new", "solu-4l-c4-code"),
    "NeelNanda/GELU_1L512W_C4_Code": ("gelu-1l", "gelu-1l-new", "gelu-1l-c4-code"),
    "NeelNanda/GELU_2L512W_C4_Code": ("gelu-2l", "gelu-2l-new", "gelu-2l-c4-code"),
    "NeelNanda/GELU_3L512W_C4_Code": ("gelu-3l", "gelu-3l-new", "gelu-3l-c4-code"),
    "NeelNanda/GELU_4L512W_C4_Code": ("gelu-4l", "gelu-4l-new", "gelu-4l-c4-code"),
    "NeelNanda/SoLU_6L768W_C4_Code": ("solu-6l", "solu-6l-new", "solu-6l-c4-code"),
    "NeelNanda/SoLU_8L1024W_C4_Code": ("solu-8l", "solu-8l-new", "solu-8l-c4-code"),
    "NeelNanda/SoLU_10L1280W_C4_Code": ("solu-10l", "solu-10l-new", "solu-10l-c4-code"),
    "NeelNanda/SoLU_12L1536W_C4_Code": ("solu-12l", "solu-12l-new", "solu-12l-c4-code"),
    "NeelNanda/SoLU_1L512W_Wiki_Finetune": ("solu-1l-wiki", "solu-1l-wiki-finetune",
                                            "solu-1l-finetune"),
    "NeelNanda/SoLU_4L512W_Wiki_Finetune": ("solu-4l-wiki", "solu-4l-wiki-finetune",
                                            "solu-4l-finetune"),
    "NeelNanda/SoLU_1L_v9_old": ("solu-1l-pile", "solu-1l-old"),
    "NeelNanda/SoLU_2L_v10_old": ("solu-2l-pile", "solu-2l-old"),
    "NeelNanda/SoLU_4L_v11_old": ("solu-4l-pile", "solu-4l-old"),
    "NeelNanda/SoLU_6L_v13_old": ("solu-6l-pile", "solu-6l-old"),
    "NeelNanda/SoLU_8L_v21_old": ("solu-8l-pile", "solu-8l-old"),
    "NeelNanda/SoLU_10L_v22_old": ("solu-10l-pile", "solu-10l-old"),
    "NeelNanda/SoLU_12L_v23_old": ("solu-12l-pile", "solu-12l-old"),
}
ALIASES: dict[str, str] = {alias: repo for repo, names in MODELS.items() for alias in names}
"""TL alias -> hub repository."""

# The files a model needs, and those of its tokenizer's repository (not the checkpoints/).
MODEL_FILES = ("config.json", "*final.pth", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

_BUFFERS = re.compile(r"(^|\.)(mask|IGNORE|rotary_sin|rotary_cos)$")
_OLD = "neel-solu-old"
PILE_TOKENIZER = "EleutherAI/gpt-neox-20b"
"""The tokenizer of every old Pile model (the C4 models use NeelNanda/gpt-neox-tokenizer-digits)."""
TL_ACT_FNS = ("solu_ln", "solu", "gelu")
"""Activations of the released models that TL and this package both implement (exact GELU)."""
TL_LN_EPS = 1e-5
_OLD_NAMES = re.compile(r"(^|\.)norm\d?\.")


class PretrainedError(ValueError):
    """A released model cannot be found offline, read safely, or represented exactly."""


def is_published(name: str) -> bool:
    """``name`` names a released model (``tl:<alias or repo>``) rather than a zoo model."""
    return isinstance(name, str) and name.startswith(PREFIX)


def default_name(repo_or_alias: str) -> str:
    """TL's default alias of a repository or alias, or the name itself."""
    repo = ALIASES.get(repo_or_alias.lower(), repo_or_alias)
    return MODELS[repo][0] if repo in MODELS else repo_or_alias


@dataclass(frozen=True)
class ReleasedModel:
    """The local files of one released model and what they declare.

    Attributes:
        name: its TL alias (``solu-1l``), its repository, or the directory's name.
        repo_id: the hub repository, when known.
        directory: where ``config.json`` and the weights are.
        weights: the ``*final.pth`` file.
        tokenizer_file: the ``tokenizer.json`` it is read with.
        config: ``config.json`` as read.
        architecture: "neel" (C4 models) or "neel-solu-old" (Pile models).
    """

    name: str
    repo_id: str | None
    directory: Path
    weights: Path
    tokenizer_file: Path
    config: dict[str, Any] = field(repr=False)
    architecture: str


def _cached_snapshot(repo_id: str, patterns: tuple[str, ...],
                     cache_dir: str | os.PathLike | None, what: str) -> Path:
    """The snapshot directory of ``repo_id`` in the local Hugging Face cache (no network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(patterns),
                                      cache_dir=cache_dir,
                                      local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, or a damaged cache entry
        from huggingface_hub import constants

        where = cache_dir or constants.HF_HUB_CACHE
        raise PretrainedError(
            f"{what} ({repo_id}) is not in the local Hugging Face cache ({where}): download it "
            f"once, with internet, by `solu-repro download {PREFIX}{default_name(repo_id)}` "
            f"(or `hf download {repo_id} --include config.json \"*final.pth\"`, without the "
            "training checkpoints); then it loads offline "
            f"({type(exc).__name__}: {exc})") from exc


def _repo_of(source: str) -> str:
    if source.lower() in ALIASES:
        return ALIASES[source.lower()]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        return source
    known = ", ".join(m[0] for m in MODELS.values())
    raise PretrainedError(
        f"{source!r} is neither a local directory, a TransformerLens alias nor a hub repository "
        f"id (owner/name): released SoLU/GELU models are {known}")


def _read_config(path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise PretrainedError(f"{name}: {path.parent} has no config.json: a released model's "
                              "directory holds config.json and a *final.pth")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PretrainedError(f"{name}: {path} is not readable JSON ({exc}); delete it and "
                              "download the model again") from exc
    if not isinstance(config, dict):
        raise PretrainedError(f"{name}: {path} must hold a JSON object of TL config keys")
    return config


def _weights_file(directory: Path, name: str) -> Path:
    found = sorted(directory.glob("*final.pth")) or sorted(directory.rglob("*final.pth"))
    if not found:
        raise PretrainedError(f"{name}: no *final.pth weights in {directory}; download the "
                              f"model with `solu-repro download {PREFIX}{name}`")
    if len(found) > 1:
        raise PretrainedError(f"{name}: several *final.pth files in {directory} "
                              f"({', '.join(p.name for p in found)}): keep one")
    return found[0]


def resolve(source: str, cache_dir: str | os.PathLike | None = None) -> ReleasedModel:
    """Find a released model's files: ``source`` is a local directory, a TL alias
    (``solu-1l``, optionally ``tl:solu-1l``) or a hub repository id, the latter two looked up
    in the local Hugging Face cache (``cache_dir``, default ``$HF_HUB_CACHE``) only.

    Raises:
        PretrainedError: not found locally (the message gives the download command), or the
            directory lacks the released layout.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise PretrainedError(f"a released model is named by a string, got {source!r}")
    text = str(source)
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    local = Path(text).expanduser()
    if local.is_dir():
        directory, repo_id, name = local.resolve(), None, local.resolve().name
        # A snapshot inside the HF cache: models--owner--name/snapshots/<commit>
        parts = directory.parts
        if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
            repo_id = parts[-3][len("models--"):].replace("--", "/", 1)
            name = default_name(repo_id)
    else:
        if os.sep in text and not re.fullmatch(r"[\w.-]+/[\w.-]+", text):
            raise PretrainedError(f"{text} is not a directory: give the directory holding a "
                                  "released model's config.json and *final.pth")
        repo_id = _repo_of(text)
        name = default_name(repo_id)
        directory = _cached_snapshot(repo_id, MODEL_FILES, cache_dir, f"model {name}")
    config = _read_config(directory / "config.json", name)
    weights = _weights_file(directory, name)
    architecture = config.get("architecture")
    if architecture is None:
        # TL's rule: the old Pile repositories' names end in _old. A copy in a directory of
        # another name still reads the Pile tokenizer (and a square W_pos would hide its
        # transposition from the shape check, so it must not be missed).
        old = "_old" in (repo_id or name) or config.get("tokenizer_name") == PILE_TOKENIZER
        architecture = _OLD if old else "neel"
    if architecture not in ("neel", _OLD):
        raise PretrainedError(f"{name}: architecture {architecture!r} in {directory / 'config.json'}"
                              " is not one of Neel Nanda's SoLU/GELU formats ('neel', "
                              f"'{_OLD}')")
    tokenizer_file = directory / "tokenizer.json"
    if not tokenizer_file.is_file():
        tok_repo = config.get("tokenizer_name")
        if not tok_repo:
            raise PretrainedError(f"{name}: {directory} has no tokenizer.json and its config "
                                  "names no tokenizer_name; put the model's tokenizer.json "
                                  "beside config.json")
        tokenizer_file = _cached_snapshot(tok_repo, TOKENIZER_FILES, cache_dir,
                                          f"the tokenizer of {name}") / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise PretrainedError(f"{name}: the cached tokenizer repository {tok_repo} has no "
                                  f"tokenizer.json; download it again with `solu-repro "
                                  f"download {PREFIX}{name}`")
    return ReleasedModel(name, repo_id, directory, weights, tokenizer_file, config, architecture)


def model_config(config: dict[str, Any], name: str = "model") -> tuple[ModelConfig, bool]:
    """Our ``ModelConfig`` for a released ``config.json``, and whether its LayerNorms are
    affine-free ("LNPre").

    Raises:
        PretrainedError: a key is missing, or the model has a feature our ``Transformer``
            lacks (final RMS norm, attention only, shortformer positions, another
            activation); the message names the model.
    """
    required = ("d_model", "n_layers", "d_mlp", "d_head", "n_heads", "n_ctx", "d_vocab",
                "act_fn")
    missing = [k for k in required if k not in config]
    if missing:
        raise PretrainedError(f"{name}: config.json lacks {', '.join(missing)} (TL's keys: "
                              f"{', '.join(required)}, attn_only, normalization)")

    def refuse(why: str) -> PretrainedError:
        return PretrainedError(f"cannot load {name} exactly: {why}; solu_repro's Transformer "
                               "has no such part, and an approximation would not be the "
                               "released model. Load it with TransformerLens instead")

    flags = {}
    for key in ("final_rms", "attn_only", "shortformer_pos"):
        value = config.get(key)
        if value is not None and not isinstance(value, bool):
            raise PretrainedError(f"{name}: config.json {key}={value!r} must be true, false or "
                                  "null")
        flags[key] = bool(value)
    if flags["final_rms"]:
        raise refuse("it ends in an RMS norm (final_rms), not a LayerNorm "
                     "(the old Pile models solu-1l/2l/4l/6l-pile do)")
    if flags["attn_only"]:
        raise refuse("it is attention-only (attn_only), with no MLP neurons to study")
    if flags["shortformer_pos"]:
        raise refuse("it uses shortformer positions (shortformer_pos)")
    norm = config.get("normalization", config.get("normalization_type"))
    if norm is None:
        raise PretrainedError(f"{name}: config.json has neither 'normalization' nor "
                              "'normalization_type' (TL's keys; 'LN' or 'LNPre')")
    if norm not in ("LN", "LNPre"):
        raise refuse(f"its normalization is {norm!r} (only LayerNorm, 'LN' or 'LNPre')")
    act = config["act_fn"]
    if act not in TL_ACT_FNS:
        raise refuse(f"its activation is {act!r} (TransformerLens and this package share "
                     f"{', '.join(TL_ACT_FNS)})")
    try:
        d_model = int(config["d_model"])
        cfg = ModelConfig(
            n_layers=int(config["n_layers"]), d_model=d_model, n_heads=int(config["n_heads"]),
            d_head=int(config["d_head"]), d_mlp=int(config["d_mlp"]),
            d_vocab=int(config["d_vocab"]), n_ctx=int(config["n_ctx"]), act_fn=act,
            solu_blocks=1, pos_embed="learned",
            # TL's defaults for these models, which it does not read from config.json: init
            # std 0.8/sqrt(d_model) (only the untrained control draws from it), LayerNorm
            # eps 1e-5.
            init_std=0.8 / math.sqrt(d_model), ln_eps=TL_LN_EPS, seed=0)
    except (TypeError, ValueError, ConfigError) as exc:
        raise PretrainedError(f"{name}: config.json does not describe a valid model: {exc}") from exc
    return cfg, norm == "LNPre"


def _load_state_dict(path: Path, name: str) -> dict[str, Tensor]:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PretrainedError(
            f"refused to load {path} ({name}): it is not a plain state dict of tensors, and "
            "unpickling it would build objects or run code it names. Only weights_only "
            f"checkpoints are loaded; get the file from its hub repository ({reason})") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise PretrainedError(f"cannot read {path} ({name}): {exc}. The file is damaged or "
                              "incomplete: delete it and download the model again") from exc
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                           for k, v in sd.items()):
        raise PretrainedError(f"{path} ({name}) holds {type(sd).__name__}, not a state dict "
                              "of named tensors")
    return sd


def _undo_old_layout(sd: dict[str, Tensor], n_layers: int) -> dict[str, Tensor]:
    """The Pile models' state dict under TL's names and [in, out] layout (facts from TL's
    ``convert_neel_solu_old_weights``: LayerNorms were named ``norm``, the final one ``norm``
    at top level; models of up to 8 layers store ``W_pos`` transposed and those of up to 6
    every other weight matrix)."""
    out = {}
    for key, value in sd.items():
        key = key.replace("norm", "ln")
        if key.startswith("ln."):
            key = "ln_final." + key[len("ln."):]
        out[key] = value
    if n_layers <= 8 and "pos_embed.W_pos" in out:
        out["pos_embed.W_pos"] = out["pos_embed.W_pos"].T
    if n_layers <= 6:
        for key, value in out.items():
            if "W_" in key and "W_pos" not in key:
                out[key] = value.transpose(-2, -1)
    return out


def _expected_shapes(cfg: ModelConfig, folded: bool) -> dict[str, tuple[int, ...]]:
    shapes = {"embed.W_E": (cfg.d_vocab, cfg.d_model), "pos_embed.W_pos": (cfg.n_ctx, cfg.d_model),
              "unembed.W_U": (cfg.d_model, cfg.d_vocab), "unembed.b_U": (cfg.d_vocab,)}
    norms = {"ln_final": cfg.d_model}
    for layer in range(cfg.n_layers):
        p = block(layer)
        for n in "QKV":
            shapes[f"{p}.attn.W_{n}"] = (cfg.n_heads, cfg.d_model, cfg.d_head)
            shapes[f"{p}.attn.b_{n}"] = (cfg.n_heads, cfg.d_head)
        shapes[f"{p}.attn.W_O"] = (cfg.n_heads, cfg.d_head, cfg.d_model)
        shapes[f"{p}.attn.b_O"] = (cfg.d_model,)
        shapes[f"{p}.mlp.W_in"] = (cfg.d_model, cfg.d_mlp)
        shapes[f"{p}.mlp.b_in"] = (cfg.d_mlp,)
        shapes[f"{p}.mlp.W_out"] = (cfg.d_mlp, cfg.d_model)
        shapes[f"{p}.mlp.b_out"] = (cfg.d_model,)
        norms[f"{p}.ln1"] = norms[f"{p}.ln2"] = cfg.d_model
        if cfg.has_mlp_ln:
            norms[f"{p}.mlp.ln"] = cfg.d_mlp
    if not folded:
        for prefix, size in norms.items():
            shapes[f"{prefix}.w"] = shapes[f"{prefix}.b"] = (size,)
    return shapes


def _check_state_dict(sd: dict[str, Tensor], cfg: ModelConfig, folded: bool,
                      released: ReleasedModel) -> None:
    expected = _expected_shapes(cfg, folded)
    where = f"{released.name} ({released.weights})"
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise PretrainedError(f"{where} lacks {', '.join(missing[:6])}"
                              f"{' ...' if len(missing) > 6 else ''} for the architecture its "
                              "config.json declares")
    extra = sorted(k for k in set(sd) - set(expected) if not _BUFFERS.search(k))
    if extra:
        raise PretrainedError(f"{where} has parameters the declared architecture has no place "
                              f"for: {', '.join(extra[:6])}{' ...' if len(extra) > 6 else ''}; "
                              "it cannot be loaded exactly")
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {shape})" for k, shape in expected.items()
             if tuple(sd[k].shape) != shape]
    if wrong:
        hint = ("" if released.architecture == _OLD else
                " (an old Pile model stores its weights transposed: keep its repository's "
                "name, NeelNanda/SoLU_*_old, in the directory's name, or add \"architecture\": "
                f"\"{_OLD}\" to its config.json)")
        raise PretrainedError(f"{where}: shapes differ from its config.json: "
                              f"{'; '.join(wrong[:4])}{hint}")


def load_tl_model(source: str, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32,
                  cache_dir: str | os.PathLike | None = None) -> tuple[Transformer, Tokenizer]:
    """A released SoLU/GELU model as our ``Transformer``, with its own tokenizer, offline.

    Args:
        source: a TL alias (``"solu-1l"`` or ``"tl:solu-1l"``), a hub repository id
            (``"NeelNanda/SoLU_1L512W_C4_Code"``), or a local directory in the released
            layout (``config.json``, ``*final.pth``, optionally ``tokenizer.json``).
        device, dtype: where and in what precision the model is returned.
        cache_dir: the Hugging Face cache (default ``$HF_HUB_CACHE``); only read.

    Returns:
        ``(model, tokenizer)``. The model computes exactly what TL's ``HookedTransformer``
        built from the same files without weight processing computes: the same logits and
        ``hook_pre``/``hook_mid``/``hook_post`` activations, to float rounding.

    Raises:
        PretrainedError: see ``resolve``, ``model_config`` and the module docstring.
    """
    released = resolve(source, cache_dir)
    model = _build(released)
    tokenizer = _tokenizer(released, model.cfg)
    return model.to(device=device, dtype=dtype).eval(), tokenizer


def _build(released: ReleasedModel) -> Transformer:
    cfg, folded = model_config(released.config, released.name)
    sd = _load_state_dict(released.weights, released.name)
    old = released.architecture == _OLD or (
        # a Pile model that neither its name nor its tokenizer gave away: "norm" LayerNorms
        "architecture" not in released.config and any(_OLD_NAMES.search(k) for k in sd))
    if old:
        sd = _undo_old_layout(sd, cfg.n_layers)
    _check_state_dict(sd, cfg, folded, released)
    sd = {k: v.to(torch.float32) for k, v in sd.items()}
    return from_tl_state_dict(cfg, sd, folded)


def _tokenizer(released: ReleasedModel, cfg: ModelConfig) -> Tokenizer:
    try:
        tokenizer = load_tokenizer(released.tokenizer_file, eot_id=None)
    except DataError as exc:
        raise PretrainedError(f"{released.name}: {exc}") from exc
    if tokenizer.get_vocab_size() > cfg.d_vocab:
        raise PretrainedError(
            f"{released.name}: its tokenizer {released.tokenizer_file} has "
            f"{tokenizer.get_vocab_size()} tokens, more than the model's d_vocab={cfg.d_vocab}: "
            "it is not this model's tokenizer")
    return tokenizer


def download(source: str, cache_dir: str | os.PathLike | None = None) -> ReleasedModel:
    """Download a released model and its tokenizer into the Hugging Face cache, once, with
    internet (the only function here that uses the network), then ``resolve`` it offline.

    Only ``config.json``, the ``*final.pth`` weights and the tokenizer's files are fetched, not
    the training checkpoints.
    """
    from huggingface_hub import snapshot_download

    text = source[len(PREFIX):] if source.startswith(PREFIX) else source
    repo_id = _repo_of(text)
    try:
        directory = Path(snapshot_download(repo_id, allow_patterns=list(MODEL_FILES),
                                           cache_dir=cache_dir))
        config = _read_config(directory / "config.json", default_name(repo_id))
        tok_repo = config.get("tokenizer_name")
        if tok_repo and not (directory / "tokenizer.json").is_file():
            snapshot_download(tok_repo, allow_patterns=list(TOKENIZER_FILES),
                              cache_dir=cache_dir)
    except PretrainedError:
        raise
    except Exception as exc:
        raise PretrainedError(f"downloading {repo_id} failed ({type(exc).__name__}: {exc}); "
                              "this needs internet access to huggingface.co (and "
                              "HF_HUB_OFFLINE unset)") from exc
    return resolve(repo_id, cache_dir)


# --- released models in the harvest/score/blind pipeline --------------------------------------

class PublishedRun:
    """A released model where the interpretability tools expect a zoo run (``zoo.ZooRun``).

    Its harvests, scores and controls are cached in ``run_dir``
    (``<runs_dir>/published/<name>-<digest>/``, the digest of the model's files), keyed like a
    zoo run's by the weights file and the corpus. The corpus is ``sources`` (default: the
    embedded default corpus; or ``files:<glob>``, ``hf:<name>``) tokenised with the model's
    own tokenizer, split into train/validation as the zoo's is; the tools read its
    validation split.
    """

    scale = "published"

    def __init__(self, released: ReleasedModel, runs_dir: str | os.PathLike | None = None,
                 sources: tuple[str, ...] | None = None,
                 max_chars_per_source: int | None = None) -> None:
        self.released = released
        self.name = PREFIX + released.name
        cfg, _ = model_config(released.config, released.name)
        self.config = SimpleNamespace(model=cfg)
        try:
            self.data_spec = DataSpec.for_tokenizer(
                released.tokenizer_file, max_chars_per_source=max_chars_per_source,
                **({"sources": tuple(sources)} if sources else {}))
        except DataError as exc:
            raise PretrainedError(f"{released.name}: {exc}") from exc
        stat = released.weights.stat()
        ident = json.dumps([str(released.weights.resolve()), stat.st_size, stat.st_mtime_ns])
        digest = hashlib.sha256(ident.encode()).hexdigest()[:10]
        root = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
        safe = re.sub(r"[^\w.-]+", "_", released.name)
        self.run_dir = root / "published" / f"{safe}-{digest}"
        self.result = {"data_hash": self.data_spec.hash(), "source": str(released.directory)}
        self._tokenizer: Tokenizer | None = None

    @property
    def weights_path(self) -> Path:
        return self.released.weights

    def load_model(self, device: str | torch.device = "cpu") -> Transformer:
        return _build(self.released).to(device).eval()

    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = _tokenizer(self.released, self.config.model)
        return self._tokenizer

    def corpus(self, data_dir: str | os.PathLike | None = None,
               progress: bool = False) -> TokenizedCorpus:
        """The corpus tokenised with this model's tokenizer (built once, then cached)."""
        self.tokenizer()  # refuses a tokenizer that does not fit the model first
        return build_dataset(self.data_spec, data_dir, progress=progress)

    def __repr__(self) -> str:
        return f"PublishedRun({self.name!r}, {str(self.released.directory)!r})"


def published_run(name: str, runs_dir: str | os.PathLike | None = None,
                  sources: tuple[str, ...] | None = None,
                  cache_dir: str | os.PathLike | None = None,
                  max_chars_per_source: int | None = None) -> PublishedRun:
    """``PublishedRun`` of ``tl:<alias>``, ``tl:<repo id>``, ``tl:<directory>`` or a directory."""
    return PublishedRun(resolve(name, cache_dir), runs_dir, sources, max_chars_per_source)
