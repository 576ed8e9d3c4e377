"""After SoLU: sparse dictionaries (TopK sparse autoencoders) on the same MLP activations, read
by the same instruments.

A year after the paper, Anthropic's "Towards Monosemanticity" (2023) answered SoLU's question
another way: leave the architecture alone and train a sparse autoencoder (SAE) on the MLP
activations; its features are the basis to interpret. This module trains such dictionaries on
the zoo's models, with SAELens (the field's standard library: ``TopKTrainingSAE`` trained by
``SAETrainer``, saved in SAELens's own layout so ``sae_lens.SAE.load_from_disk`` reads them),
and makes their features a ``NeuronSource``, so the harvest, the judge (both views and the
rotation-fair score), the sparse probes and the viewer read features exactly as they read
neurons.

* ``SAESettings``: what an SAE is trained with (hook, expansion, k, tokens, batch, lr, seed).
* ``train_sae``: a TopK SAE trained on a ``NeuronSource``'s activations of a token split (the
  BOS column dropped, as the harvest drops it) or on any iterator of activation batches.
* ``sae_run``: a zoo run's SAE, trained on its *train* split and cached in
  ``<run_dir>/features/<hook>-sae-<digest>/`` (SAELens layout plus ``report.json``), with its
  ``SAEReport`` measured on the validation split: fraction of variance explained, the loss with
  the reconstruction spliced into the model, L0, dead features.
* ``SAEFeatures``: the dictionary's features as neurons (``n_layers=1``, ``d_mlp=d_sae`` or a
  seeded subset, the one hook ``"mid"``).
* ``score_features`` / ``probe_features`` / ``basis_score_features``: the three instruments of
  ``instruments.py`` on a run's SAE, cached in ``<run_dir>/features/``.
* ``decoder_alignment`` / ``alignment_null``: how close each feature's decoder direction comes to
  a single neuron, against Haar-random directions.
* ``feature_counterparts``: for each feature, the best correlation with any single neuron of
  ``hook_mid`` (and of ``hook_post``, and of a random rotation of ``hook_mid``): §6.4's
  question, are there features after SoLU's LayerNorm that no neuron before it shows?
* ``run_features_command``: ``solu-repro features`` (its options: ``solu_repro.cli``).

"mid" in an ``SAEFeatures`` source means "the feature activations", whichever model hook the
SAE reads: the instruments read hook ``"mid"`` of every source.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import integrity
from ..atomic import read_json, write_json
from ..data import TokenSplit, get_rows, num_rows
from ..hooks import act_name
from ..model import ConfigError, Transformer
from ..unembed_loss import linear_cross_entropy
from .harvest import (HOOKS, PRECISIONS, Harvest, HarvestError, ModelNeurons, NeuronSource,
                      cached, harvest, harvest_precision, weights_digest)

if TYPE_CHECKING:  # SAELens takes seconds to import: only the functions that use it do
    from sae_lens import SAE

SAE_FORMAT = 1
"""Bumped when what a cached SAE directory holds, or how it is trained, changes."""

FEATURES_FORMAT = 1
"""Bumped when a cached instrument result on features changes meaning."""

FEATURES_DIR = "features"
"""The folder of a run directory that holds its SAEs and their instruments."""

WEIGHTS_FILE = "sae_weights.safetensors"
CONFIG_FILE = "cfg.json"
REPORT_FILE = "report.json"
"""SAELens's two files (``sae_lens.constants``) and ours beside them."""

PRECISION_CHOICES = ("auto", "fp32", "bf16")

DEFAULT_K = 32
DEFAULT_TRAIN_TOKENS = 131_072
DEFAULT_BATCH_SIZE = 256
DEFAULT_LR = 3e-3
# (the numbers behind these defaults: SAESettings' docstring)

NORM_TOKENS = 8_192
"""Tokens of the first batches that set the input scale and the decoder bias's start."""

DEAD_WINDOW_TOKENS = 20_000
"""A feature that has not fired for this many training tokens counts as dead for the TopK
auxiliary loss (SAETrainer's ``dead_feature_window``, in steps of ``batch_size``), which pushes
dead features to explain what the live ones miss. SAELens's default, 1,000 steps, would never
trigger in a run of a few hundred steps."""

CHUNK_ROWS = 64
"""Rows whose activations are shuffled together before they are cut into training batches
(64 rows of the cpu book: 16,320 tokens from 64 random places of the split), so a batch never
holds the correlated tokens of one context only."""

REPORT_ROWS = 64
"""Validation rows the report is measured on (the same seeded rows for every SAE of a run)."""

MAX_FEATURES = 512
"""Features the instruments read by default: a seeded uniform subset when the dictionary has
more (the judge costs time per feature). 512 is the cpu book's ``d_mlp``: the subset has as
many directions as the neuron basis it is compared with, so "the best single direction" is a
maximum over equally many directions."""

COUNTERPART_R = 0.5
"""``FeatureCounterparts.without_counterpart``'s default: a feature has a counterpart among a
basis's neurons when some neuron's activation correlates with it at |r| >= 0.5 (a quarter of
the variance shared)."""

FEATURE_UNION = ("sae", None, "rotated")
"""The bases whose explanations make the rotation-fair score's features for the SAE
comparison: the SAE's own, the run's neurons' and their random rotation's (``instruments.UNION``
plus the SAE), so the SAE and the neurons are scored over one set of features."""


# --- settings ---------------------------------------------------------------------------------
def _int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"SAESettings.{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class SAESettings:
    """What a TopK SAE is trained with; ``key()`` keys its cache.

    Attributes:
        hook: The model hook read: ``"mid"`` (before SoLU's extra LayerNorm, what the paper
            interprets) or ``"post"`` (after it; a model without the LN has only ``"mid"``).
        expansion: ``d_sae = expansion * d_mlp`` (the issue asks for 4 to 8; any >= 1 works).
        k: Features active per token (TopK).
        train_tokens: Training tokens (``train_tokens // batch_size`` steps, each token seen
            once: the cpu train split has 6.8 million tokens).
        batch_size: Tokens per step.
        lr: Adam's learning rate (constant, then a linear decay over the second half).
        seed: Seed of the SAE's initial weights and of the training rows and their order.
        layer: The model layer read (the book's models have one).
        precision: The SAE's training step: ``"fp32"``, ``"bf16"`` (SAELens's autocast) or
            ``"auto"``: bf16 where the run trained in bf16 and this machine runs bf16 natively
            (``harvest.harvest_precision``), else fp32. Activations are always read in fp32
            (as the instruments read them), and the cache key holds the precision used.

    The defaults were measured on the local cpu book's 1-layer models (``d_mlp=512``,
    ``d_sae=2048``), FVE on 16,320 validation tokens, one torch thread, bf16 autocast:

    * k (FVE, dead features of 2,048, at 150,000 tokens): GELU mid k=16 0.804 (24 dead), k=32
      0.849 (45), k=64 0.883 (27); SoLU-LN mid 0.890 (275), 0.921 (120), 0.945 (58); SoLU-LN
      post 0.864 (159), 0.907 (73), 0.936 (33). From 16 to 32 FVE gains 4 to 5 points and
      SoLU's dead features halve; from 32 to 64 it gains 3 more at twice the L0 (64 of 512
      dimensions per token is no longer sparse): k=32.
    * batch and lr (GELU mid, k=32, 100,000 tokens): batch 1,024 at lr 1e-3 0.736, at 3e-3
      0.806; batch 256 at 1e-3 0.792, at 3e-3 0.830 (0.833 with the decay over the second
      half), at 1e-2 diverged (FVE -0.57); batch 512 at 3e-3 0.822: batch 256, lr 3e-3.
    * tokens: 300,000 instead of 150,000 gained 1.8 (GELU) to 4.3 (SoLU-LN post) points at
      twice the time. 131,072 tokens keep one SAE near half a minute: on an idle core
      (AVX-512 with native bf16) ``sae_run`` took 27 to 29 s per SAE, gathering activations
      and the report included (24 to 26 s of training), 43 s in fp32, plus 4.6 s to import
      SAELens once per process. At these defaults: GELU mid FVE 0.842, 33 dead, loss 3.602
      -> 3.800 spliced (zero ablation 7.386: 94.8% recovered); SoLU-LN mid 0.911, 95 dead,
      3.600 -> 3.760 (10.376: 97.6%); SoLU-LN post 0.894, 63 dead, 3.600 -> 3.739 (8.591:
      97.2%); L0 32 for all.
    """

    hook: str = "mid"
    expansion: int = 4
    k: int = DEFAULT_K
    train_tokens: int = DEFAULT_TRAIN_TOKENS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    seed: int = 0
    layer: int = 0
    precision: str = "auto"

    def __post_init__(self):
        if self.hook not in HOOKS:
            raise ConfigError(f"SAESettings.hook must be one of {HOOKS}, got {self.hook!r}")
        _int("expansion", self.expansion, 1)
        _int("k", self.k, 1)
        _int("batch_size", self.batch_size, 1)
        _int("train_tokens", self.train_tokens, 1)
        _int("seed", self.seed, 0)
        _int("layer", self.layer, 0)
        if self.train_tokens < self.batch_size:
            raise ConfigError(f"SAESettings.train_tokens={self.train_tokens} is less than one "
                              f"batch of {self.batch_size}: train on more tokens or use a "
                              "smaller batch_size")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) \
                or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"SAESettings.lr must be a number > 0, got {self.lr!r}")
        if self.precision not in PRECISION_CHOICES:
            raise ConfigError(f"SAESettings.precision must be one of {PRECISION_CHOICES}, got "
                              f"{self.precision!r}")

    @property
    def steps(self) -> int:
        return self.train_tokens // self.batch_size

    def d_sae(self, d_in: int) -> int:
        return self.expansion * d_in

    def key(self) -> dict[str, Any]:
        """The settings as a cache key (``precision`` as given; ``sae_run`` adds the one used)."""
        d = asdict(self)
        d["lr"] = float(d["lr"])
        return d


SCALE_TRAIN_TOKENS = {"tiny": 16_384, "tiny-pair": 16_384}
"""Training tokens of a scale whose zoo is too small for ``DEFAULT_TRAIN_TOKENS`` (the tiny
scales' train split, and the nbval runs of every chapter at that scale, which must stay quick).
Every other scale trains on the default."""


def scale_settings(scale: str, hook: str = "mid", **changes: Any) -> SAESettings:
    """The ``SAESettings`` the book and ``solu-repro features`` use at ``scale`` (one place, so
    the command prepares exactly the dictionaries the chapter reads); ``changes`` override
    (None: the default)."""
    tokens = SCALE_TRAIN_TOKENS.get(scale, DEFAULT_TRAIN_TOKENS)
    changes = {k: v for k, v in changes.items() if v is not None}
    return SAESettings(**{"hook": hook, "train_tokens": tokens, **changes})


# --- activation batches -----------------------------------------------------------------------
def _as_source(source) -> NeuronSource:
    if isinstance(source, Transformer):
        return ModelNeurons(source.eval(), "fp32")
    return source


def _check_source_hook(source: NeuronSource, hook: str, layer: int) -> None:
    if hook not in source.hooks:
        raise ConfigError(f"the source has hooks {tuple(source.hooks)}, not {hook!r}: a model "
                          "without SoLU's extra LayerNorm has one hook (its hook_post is "
                          "hook_mid): train on hook 'mid'")
    if not 0 <= layer < source.n_layers:
        raise ConfigError(f"layer {layer} is not a layer of the source (it has "
                          f"{source.n_layers})")


def activation_batches(source: NeuronSource | Transformer, split: TokenSplit, n_ctx: int,
                       bos_id: int = 0, *, hook: str = "mid", layer: int = 0,
                       batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                       chunk_rows: int = CHUNK_ROWS, row_batch: int = 16,
                       device: str | torch.device = "cpu") -> Iterator[Tensor]:
    """An endless stream of ``(batch_size, d_mlp)`` float32 activation batches of ``split``.

    Rows are read in a seeded random order (a new permutation each pass over the split), the
    BOS column is dropped (the harvest never reads it), and the tokens of ``chunk_rows`` rows at
    a time are shuffled together (seeded) before they are cut into batches; tokens left over
    start the next chunk. A pure function of its arguments.
    """
    source = _as_source(source)
    _check_source_hook(source, hook, layer)
    n_rows = num_rows(split, n_ctx)
    if n_rows == 0:
        raise ConfigError(f"the split has no full row of {n_ctx} tokens to train on: use a "
                          "longer split or a smaller n_ctx")
    rng = np.random.default_rng([seed, 1])
    gen = torch.Generator().manual_seed(int(seed))
    pending: Tensor | None = None
    while True:
        order = rng.permutation(n_rows)
        for start in range(0, n_rows, chunk_rows):
            rows = np.sort(order[start:start + chunk_rows])
            parts = [] if pending is None else [pending]
            for b in range(0, len(rows), row_batch):
                tokens = get_rows(split, rows[b:b + row_batch], n_ctx, bos_id).to(device)
                acts = source.activations(tokens)[hook][layer][:, 1:]
                parts.append(acts.reshape(-1, acts.shape[-1]).float())
            chunk = torch.cat(parts)
            chunk = chunk[torch.randperm(len(chunk), generator=gen).to(chunk.device)]
            n_full = len(chunk) // batch_size
            for i in range(n_full):
                yield chunk[i * batch_size:(i + 1) * batch_size]
            pending = chunk[n_full * batch_size:]


# --- training ---------------------------------------------------------------------------------
def _resolve_precision(precision: str, device, run=None) -> str:
    if precision != "auto":
        return precision
    if run is not None:
        return harvest_precision(run, device)
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    from .harvest import _native_bf16

    return "bf16" if dev.type == "cpu" and _native_bf16() else "fp32"


def _sae_lens_version() -> str:
    try:
        return importlib_metadata.version("sae-lens")
    except importlib_metadata.PackageNotFoundError:
        return "missing"


def _import_sae_lens():
    try:
        import sae_lens  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise ConfigError(f"SAELens is not installed ({exc}): install the pinned sae-lens "
                          "(pip install -e .)") from exc


def train_sae(source: NeuronSource | Transformer | Iterable[Tensor],
              split: TokenSplit | None, settings: SAESettings = SAESettings(), *,
              n_ctx: int | None = None, bos_id: int = 0, device: str | torch.device = "cpu",
              precision: str | None = None, progress: bool = True,
              metadata: Mapping[str, Any] | None = None):
    """Train a TopK SAE with SAELens (``TopKTrainingSAE``, stepped by ``SAETrainer``).

    Args:
        source: A ``NeuronSource`` (or ``Transformer``) whose hook ``settings.hook`` of layer
            ``settings.layer`` is read on ``split`` (``activation_batches``), or an iterable of
            ``(batch, d_in)`` activation batches (then ``split`` is None and the batches are
            used in the order given; they are re-cut to ``settings.batch_size``).
        split: The token split (a run's train split), or None with an iterable of batches.
        settings: ``SAESettings``.
        n_ctx: Row length with BOS (default: the source's model's context).
        bos_id: Token at column 0 of every row.
        device: Where the source and the SAE run.
        precision: ``"fp32"`` or ``"bf16"``: the SAE's training step (default: the settings',
            ``"auto"`` resolved for this device).
        progress: Show a progress bar over the steps.
        metadata: Stored in the SAE's config metadata (model name, hook name, ...).

    Returns:
        The trained ``TopKTrainingSAE`` with the input scaling folded into its weights (its
        decoder rows are normalised only when it is saved: ``save_sae``).

    Training: inputs are scaled so their mean norm is ``sqrt(d_in)`` (SAELens's
    ``expected_average_only_in``, the factor estimated on the first ``NORM_TOKENS`` tokens and
    folded back at the end), the decoder bias starts at their mean, the decoder rows at norm
    0.1 (SAELens's default), the learning rate is constant for the first half of the steps and
    decays linearly to 0 over the second half, and a feature silent for
    ``DEAD_WINDOW_TOKENS`` tokens gets the TopK auxiliary loss. Deterministic given the
    settings, on one machine and thread count.
    """
    _import_sae_lens()
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    precision = _resolve_precision(settings.precision if precision is None else precision,
                                   device)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    bs = settings.batch_size
    if hasattr(source, "activations") or isinstance(source, Transformer):
        if split is None:
            raise ConfigError("train_sae reads a NeuronSource on a token split: pass the split "
                              "(a run's train split)")
        if n_ctx is None:
            model = getattr(source, "model", source)
            n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
            if n_ctx is None:
                raise ConfigError("n_ctx is needed for a source without a model")
        batches = activation_batches(source, split, n_ctx, bos_id, hook=settings.hook,
                                     layer=settings.layer, batch_size=bs, seed=settings.seed,
                                     device=device)
    else:
        if split is not None:
            raise ConfigError("train_sae got activation batches and a split: pass split=None "
                              "with batches")
        batches = _rebatch(iter(source), bs)
    steps = settings.steps
    first: list[Tensor] = []
    for _ in range(min(steps, max(1, math.ceil(NORM_TOKENS / bs)))):
        batch = next(batches, None)
        if batch is None:
            break
        first.append(batch.float())
    if not first:
        raise ConfigError("no activations to train the SAE on")
    d_in = first[0].shape[-1]
    d_sae = settings.d_sae(d_in)
    if settings.k >= d_sae:
        raise ConfigError(f"k={settings.k} features active of d_sae={d_sae} is not sparse: use "
                          f"k < {d_sae}")
    sample = torch.cat(first)
    mean_norm = float(sample.norm(dim=-1).mean())
    if not math.isfinite(mean_norm) or mean_norm <= 0:
        raise ConfigError(f"the activations have mean norm {mean_norm}: nothing to encode")
    scale = math.sqrt(d_in) / mean_norm

    cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=settings.k, dtype="float32",
                                device="cpu", normalize_activations="expected_average_only_in")
    for name, value in (metadata or {}).items():
        setattr(cfg.metadata, name, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        sae = TopKTrainingSAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(sample.mean(0).cpu() * scale)
    decay = steps // 2
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * bs, train_batch_size_samples=bs, lr=settings.lr,
        lr_end=settings.lr, lr_scheduler_name="constant", lr_warm_up_steps=0,
        lr_decay_steps=decay, device=str(torch.device(device)),
        autocast=precision == "bf16", dead_feature_window=max(1, round(DEAD_WINDOW_TOKENS / bs)),
        feature_sampling_window=steps + 1, n_checkpoints=0, checkpoint_path=None,
        save_final_checkpoint=False, logger=LoggingConfig(log_to_wandb=False))
    stream = _chain(first, batches)
    trainer = SAETrainer(trainer_cfg, sae, stream)
    trainer.activation_scaler.scaling_factor = scale
    trainer.sae.to(trainer_cfg.device)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps * bs, unit="tok", unit_scale=True,
                   desc=f"SAE {settings.hook} k={settings.k} x{settings.expansion}")
    # SAETrainer.fit's loop through its public seams (``step``, ``set_final_sae_metadata``),
    # with our progress bar and without its wandb sparsity histograms.
    for _ in range(steps):
        batch = next(stream, None)
        if batch is None:
            raise ConfigError(f"the activation batches ran out after "
                              f"{trainer.n_training_steps} of {steps} steps: pass more "
                              "batches or lower train_tokens")
        trainer.step(batch)
        trainer.n_training_steps += 1
        if bar is not None:
            bar.update(bs)
    if bar is not None:
        bar.close()
    trainer.sae.fold_activation_norm_scaling_factor(scale)
    trainer.activation_scaler.scaling_factor = None
    trainer.set_final_sae_metadata()
    sae = trainer.sae
    sae.eval()
    sae.cfg.metadata.sae_precision = precision
    return sae


def _chain(first: list[Tensor], rest: Iterator[Tensor]) -> Iterator[Tensor]:
    yield from first
    yield from rest


def _rebatch(batches: Iterator[Tensor], size: int) -> Iterator[Tensor]:
    """Batches of exactly ``size`` rows cut from batches of any size (a remainder is dropped)."""
    pending: Tensor | None = None
    for batch in batches:
        batch = torch.as_tensor(batch).float()
        if batch.dim() != 2:
            raise ConfigError(f"activation batches must be (batch, d_in), got shape "
                              f"{tuple(batch.shape)}")
        pending = batch if pending is None else torch.cat([pending, batch])
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]


def save_sae(sae, path: str | Path) -> Path:
    """Write a trained SAE in SAELens's inference layout (``cfg.json``,
    ``sae_weights.safetensors``; decoder rows folded to unit norm), readable by
    ``sae_lens.SAE.load_from_disk``."""
    path = Path(path)
    sae.save_inference_model(str(path))
    return path


def load_sae(path: str | Path, device: str | torch.device = "cpu") -> "SAE":
    """``sae_lens.SAE.load_from_disk`` of a saved SAE (the TopK inference class)."""
    _import_sae_lens()
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(path), device=str(torch.device(device)))
    sae.eval()
    return sae


# --- the report: reconstruction on held-out tokens, the loss with it spliced in ---------------
@dataclass(frozen=True)
class SAEReport:
    """An SAE measured on held-out (validation) tokens it never trained on.

    Attributes:
        fve: Fraction of variance explained: ``1 - sum ||x - x_hat||^2 / sum ||x - mean||^2``
            over the held-out tokens (SAELens's ``explained_variance``).
        l0: Mean number of active features per token.
        dead: Features never active on the held-out tokens.
        d_sae: Features in the dictionary.
        k: Features active per token (TopK).
        clean_loss: The model's next-token loss at the spliced positions.
        spliced_loss: The loss with the hook's activation replaced by the reconstruction.
        zero_loss: The loss with the hook's activation replaced by zeros (zero ablation; for
            SoLU-LN's hook_mid its LayerNorm then outputs its bias): the scale of "fraction of
            loss recovered".
        n_tokens: Held-out tokens the reconstruction is measured on.
        n_loss_tokens: Next-token predictions the losses average (every column of a row but
            BOS's: BOS's activation is never replaced, and its prediction would not change).
        hook: The hook the SAE reads.
        meta: Where it came from: run, settings, precision, training seconds, rows.
    """

    fve: float
    l0: float
    dead: int
    d_sae: int
    k: int
    clean_loss: float
    spliced_loss: float
    zero_loss: float
    n_tokens: int
    n_loss_tokens: int
    hook: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def loss_increase(self) -> float:
        """``spliced_loss - clean_loss`` (nats per token)."""
        return self.spliced_loss - self.clean_loss

    @property
    def loss_recovered(self) -> float:
        """``(zero - spliced) / (zero - clean)``: 1 is the model's own loss, 0 is no better
        than zero ablation (NaN when zero ablation costs nothing)."""
        gap = self.zero_loss - self.clean_loss
        return (self.zero_loss - self.spliced_loss) / gap if gap > 0 else math.nan

    @property
    def dead_fraction(self) -> float:
        return self.dead / self.d_sae

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SAEReport":
        names = {f.name for f in fields(cls)}
        missing = names - set(d) - {"meta"}
        if missing:
            raise ValueError(f"missing {sorted(missing)}")
        kw = {k: d[k] for k in names if k in d}
        for name in ("fve", "l0", "clean_loss", "spliced_loss", "zero_loss"):
            kw[name] = float(kw[name])
        for name in ("dead", "d_sae", "k", "n_tokens", "n_loss_tokens"):
            kw[name] = int(kw[name])
        return cls(**kw)

    def line(self) -> str:
        """One line for the command line."""
        return (f"hook_{self.hook}: {self.d_sae} features (k={self.k}), FVE {self.fve:.3f}, "
                f"L0 {self.l0:.1f}, {self.dead} dead; loss {self.clean_loss:.3f} -> "
                f"{self.spliced_loss:.3f} spliced (+{self.loss_increase:.3f}; zero ablation "
                f"{self.zero_loss:.3f}: {self.loss_recovered:.1%} recovered)")


def _encode(sae, acts: Tensor) -> Tensor:
    """Feature activations ``(..., d_sae)`` of ``acts`` ``(..., d_in)``, float32."""
    device = sae.W_dec.device
    with torch.inference_mode():
        return sae.encode(acts.to(device=device, dtype=torch.float32)).float()


def _decode(sae, feats: Tensor) -> Tensor:
    with torch.inference_mode():
        return sae.decode(feats.to(sae.W_dec.device)).float()


def _tail_losses(model: Transformer, tokens: Tensor, resid_mid: Tensor, acts: Tensor,
                 hook: str, layer: int) -> Tensor:
    """The losses at columns 1..n_ctx-2 of ``tokens`` from layer ``layer``'s ``resid_mid`` and
    the hook's activation ``acts``: the rest of the forward pass, as ``model.MLP`` and
    ``Block`` compute it."""
    block = model.blocks[layer]
    post = acts
    if hook == "mid" and block.mlp.act.ln is not None:
        post = block.mlp.act.ln(acts)
    resid = resid_mid + (post @ block.mlp.W_out + block.mlp.b_out)
    for later in model.blocks[layer + 1:]:
        resid = later(resid)
    normalized = model.ln_final(resid)
    return linear_cross_entropy(normalized[:, 1:-1], model.W_U, model.b_U, tokens[:, 2:],
                                reduction="none")


def _spliced(acts: Tensor, replacement: Tensor) -> Tensor:
    out = acts.clone()
    out[:, 1:] = replacement.reshape(out[:, 1:].shape).to(acts.dtype)
    return out


def splice_losses(model: Transformer, tokens: Tensor, hook: str, layer: int = 0,
                  replace=None) -> Tensor:
    """Per-token next-token losses ``(B, n_ctx - 2)`` of ``tokens`` ``(B, n_ctx)`` at columns
    1..n_ctx-2, with hook ``hook`` of ``layer`` replaced by ``replace(acts)`` at every column but
    BOS's (``acts``: ``(B, n_ctx - 1, d_mlp)``, the non-BOS columns; ``None``: unchanged).

    The model has no patching hook, so the MLP's tail is recomputed from the cached residual
    stream, exactly as ``model.MLP`` and ``Block`` compute it: for ``"mid"``, SoLU's LayerNorm
    (when the model has it), then ``W_out``, ``b_out``, added to ``resid_mid``; the later blocks;
    the final LayerNorm and the unembedding (``unembed_loss.linear_cross_entropy``, as the
    model's own loss). With ``replace=None`` the result is the model's own loss at those
    positions. Columns 0 (BOS: never replaced, and the SAE never trained on it) and the last
    (no next token) are not scored.
    """
    if hook == "post" and not model.cfg.has_mlp_ln:
        raise ConfigError(f"a {model.cfg.act_fn} model has no LayerNorm after its activation: "
                          "its hook_post is hook_mid; splice hook 'mid'")
    names = [act_name("resid_mid", layer), act_name(hook, layer)]
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names=names, return_logits=False)
        acts = cache[names[1]]
        if replace is not None:
            acts = _spliced(acts, replace(acts[:, 1:]))
        return _tail_losses(model, tokens, cache[names[0]], acts, hook, layer)


def report_rows(split: TokenSplit, n_ctx: int, n: int = REPORT_ROWS) -> np.ndarray:
    """The validation rows a run's SAEs are measured on: a sorted uniform sample of ``n`` rows
    (seed 0: the same rows for every SAE of a run), or all rows when the split has fewer."""
    total = num_rows(split, n_ctx)
    if total == 0:
        raise ConfigError(f"the split has no full row of {n_ctx} tokens to measure the SAE on")
    if total <= n:
        return np.arange(total, dtype=np.int64)
    return np.sort(np.random.default_rng(0).choice(total, n, replace=False))


def measure_sae(model: Transformer, sae, split: TokenSplit, *, hook: str, layer: int = 0,
                n_ctx: int | None = None, bos_id: int = 0, rows: np.ndarray | None = None,
                batch_size: int = 16, device: str | torch.device = "cpu",
                meta: Mapping[str, Any] | None = None) -> SAEReport:
    """``SAEReport`` of ``sae`` on hook ``hook`` of ``model``, on ``rows`` of ``split``
    (default ``report_rows``), in fp32."""
    model = model.to(device).eval()
    n_ctx = n_ctx or model.cfg.n_ctx
    if n_ctx < 3:
        raise ConfigError(f"n_ctx={n_ctx}: the splice needs rows of at least 3 tokens")
    if hook == "post" and not model.cfg.has_mlp_ln:
        raise ConfigError(f"a {model.cfg.act_fn} model has no LayerNorm after its activation: "
                          "its hook_post is hook_mid; measure hook 'mid'")
    rows = report_rows(split, n_ctx) if rows is None else np.asarray(rows, dtype=np.int64)
    d_sae = int(sae.cfg.d_sae)
    shift = None
    sse = s2 = 0.0
    sum_x: Tensor | None = None
    n_tok = 0
    l0_sum = 0.0
    fired = torch.zeros(d_sae, dtype=torch.bool)
    losses = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    n_loss = 0
    names = [act_name("resid_mid", layer), act_name(hook, layer)]
    for start in range(0, len(rows), batch_size):
        tokens = get_rows(split, rows[start:start + batch_size], n_ctx, bos_id).to(device)
        with torch.inference_mode():
            _, cache = model.run_with_cache(tokens, names=names, return_logits=False)
            resid_mid, acts = cache[names[0]], cache[names[1]]
            x = acts[:, 1:].float()
            feats = _encode(sae, x)
            out = _decode(sae, feats).to(acts.device)
            clean = _tail_losses(model, tokens, resid_mid, acts, hook, layer)
            spliced = _tail_losses(model, tokens, resid_mid, _spliced(acts, out), hook, layer)
            zero = _tail_losses(model, tokens, resid_mid,
                                _spliced(acts, torch.zeros_like(x)), hook, layer)
        losses["clean"] += float(clean.double().sum())
        losses["spliced"] += float(spliced.double().sum())
        losses["zero"] += float(zero.double().sum())
        n_loss += clean.numel()
        xhat = out.reshape(-1, x.shape[-1]).double().cpu()
        x = x.reshape(-1, x.shape[-1]).double().cpu()
        f = feats.reshape(-1, d_sae).cpu()
        if shift is None:
            shift = x.mean(0)
        xs = x - shift
        sse += float(((x - xhat) ** 2).sum())
        sum_x = xs.sum(0) if sum_x is None else sum_x + xs.sum(0)
        s2 += float((xs * xs).sum())
        n_tok += x.shape[0]
        active = f > 0
        l0_sum += float(active.sum())
        fired |= active.any(0)
    total_var = s2 - float((sum_x * sum_x).sum()) / n_tok
    fve = 1.0 - sse / total_var if total_var > 0 else math.nan
    return SAEReport(
        fve=fve, l0=l0_sum / n_tok, dead=int((~fired).sum()), d_sae=d_sae,
        k=int(sae.cfg.k), clean_loss=losses["clean"] / n_loss,
        spliced_loss=losses["spliced"] / n_loss, zero_loss=losses["zero"] / n_loss,
        n_tokens=n_tok, n_loss_tokens=n_loss, hook=hook,
        meta={"rows": int(len(rows)), "n_ctx": int(n_ctx), **(meta or {})})


# --- a run's SAE, cached ----------------------------------------------------------------------
@dataclass(eq=False)
class FeatureDictionary:
    """A trained SAE as a dictionary of features: the SAELens model, where it is saved, what
    made it and its ``SAEReport``.

    Attributes:
        sae: The SAELens inference SAE (``TopKSAE``) loaded from ``path``.
        path: Its directory (SAELens layout plus ``report.json``).
        settings: ``SAESettings`` it was trained with.
        report: ``SAEReport`` on the run's validation split.
        meta: The cache key, the precision used, the run's name, scale and directory, the
            SHA-256 of the saved files and the repair command.
    """

    sae: Any
    path: Path | None
    settings: SAESettings
    report: SAEReport
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"FeatureDictionary({self.meta.get('run', '?')} {self.report.line()})"

    @property
    def name(self) -> str:
        """The directory's name, ``<hook>-sae-<digest>``: what the instruments' caches name."""
        return self.path.name if self.path is not None else f"{self.hook}-sae-unsaved"

    @property
    def hook(self) -> str:
        return self.settings.hook

    @property
    def layer(self) -> int:
        return self.settings.layer

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def sha256(self) -> str | None:
        return (self.meta.get("sha256") or {}).get(WEIGHTS_FILE)

    def encode(self, acts: Tensor) -> Tensor:
        """Feature activations ``(..., d_sae)`` of activations ``(..., d_in)``."""
        return _encode(self.sae, acts)

    def decode(self, feats: Tensor) -> Tensor:
        """The reconstruction ``(..., d_in)`` of feature activations ``(..., d_sae)``."""
        return _decode(self.sae, feats)

    def decoder(self) -> np.ndarray:
        """``(d_sae, d_in)`` the decoder directions, unit rows, float64."""
        w = self.sae.W_dec.detach().double().cpu().numpy()
        return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def repair_command(run) -> str:
    """The command that trains a run's SAEs afresh."""
    return f"solu-repro features --scale {run.scale} --only {run.name} --rebuild"


def sae_key(run, settings: SAESettings, device: str | torch.device = "cpu") -> dict[str, Any]:
    """What a run's SAE is keyed by: the run's weights and corpus, the settings, the precision
    the SAE trains in here, the SAELens version and ``SAE_FORMAT``."""
    return {"weights": weights_digest(run), "data": run.result.get("data_hash"),
            "settings": settings.key(),
            "precision": _resolve_precision(settings.precision, device, run),
            "sae_lens": _sae_lens_version(), "format": SAE_FORMAT}


def sae_path(run, settings: SAESettings = SAESettings(),
             device: str | torch.device = "cpu") -> Path:
    """Where ``sae_run`` keeps a run's SAE: ``<run_dir>/features/<hook>-sae-<digest12>/``."""
    return (Path(run.run_dir) / FEATURES_DIR
            / f"{settings.hook}-sae-{_digest(sae_key(run, settings, device))}")


def load_dictionary(path: str | Path, device: str | torch.device = "cpu") -> FeatureDictionary:
    """A saved dictionary (``sae_run``'s directory), its files checked against the SHA-256 its
    ``report.json`` recorded.

    Raises:
        HarvestError: The directory or its report is missing or unreadable, or a file does not
            match its recorded digest; the message names the repair command.
    """
    path = Path(path)
    report_file = path / REPORT_FILE
    if not report_file.is_file():
        raise HarvestError(f"no SAE at {path} (no {REPORT_FILE}): train it with `solu-repro "
                           "features` (or solu_repro.interp.sae.sae_run)")
    try:
        record = json.loads(report_file.read_text())
        if record.get("format") != SAE_FORMAT:
            raise ValueError(f"format {record.get('format')!r}, this code reads {SAE_FORMAT}")
        fix = record["meta"].get("repair", "delete the folder and train it again")
        settings = SAESettings(**record["settings"])
        report = SAEReport.from_dict(record["report"])
        digests = record["meta"]["sha256"]
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise HarvestError(f"SAE report {report_file} is corrupt or outdated ({exc}): delete "
                           f"{path} and train it again (`solu-repro features ... --rebuild`)") \
            from exc
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        try:
            found = integrity.mismatch(path / name, digests.get(name))
        except OSError as exc:
            raise HarvestError(f"cannot read {path / name} ({exc.strerror or exc}); repair it "
                               f"with `{fix}`") from exc
        if found is not None:
            what = integrity.describe(path / name, report_file, digests[name], found)
            raise HarvestError(f"{what}; repair it with `{fix}`")
    try:
        sae = load_sae(path, device)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise HarvestError(f"SAE {path} cannot be loaded ({exc}); repair it with `{fix}`") \
            from exc
    return FeatureDictionary(sae, path, settings, report, dict(record["meta"]))


def _write_dir_atomically(final: Path, write) -> None:
    """Build a directory with ``write(tmp)`` in a temporary sibling, then rename it to ``final``
    (an existing one is moved aside first and removed after), so a reader never sees a
    half-written directory."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    old = None
    try:
        write(tmp)
        for f in tmp.iterdir():
            with open(f, "rb+") as handle:
                os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old",
                                        dir=final.parent))
            os.rmdir(old)
            os.rename(final, old)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def sae_run(run, settings: SAESettings = SAESettings(), *, data_dir=None, rebuild: bool = False,
            progress: bool = True, device: str | torch.device = "cpu") -> FeatureDictionary:
    """A zoo run's SAE: trained on its train split (``train_sae``), measured on its validation
    split (``measure_sae``), cached in ``sae_path(run, settings)``; a saved one is reused.

    Two processes asking at once train once: the second waits, then loads
    (``harvest.cached``). The directory is written whole or not at all, and its files' SHA-256
    are recorded in its ``report.json`` and checked when it is loaded.
    """
    if settings.hook == "post" and not run.config.model.has_mlp_ln:
        raise ConfigError(f"{run.name} has no LayerNorm after its activation: its hook_post is "
                          "hook_mid; train its SAE on hook 'mid'")
    if not 0 <= settings.layer < run.config.model.n_layers:
        raise ConfigError(f"{run.name} has {run.config.model.n_layers} layer(s), not layer "
                          f"{settings.layer}")
    key = sae_key(run, settings, device)
    path = sae_path(run, settings, device)

    def compute() -> FeatureDictionary:
        started = time.perf_counter()
        model = run.load_model(device).eval()
        corpus = run.corpus(data_dir)
        n_ctx = model.cfg.n_ctx
        hook_name = act_name(settings.hook, settings.layer)
        sae = train_sae(ModelNeurons(model, "fp32"), corpus.split("train"), settings,
                        n_ctx=n_ctx, bos_id=corpus.bos_id, device=device,
                        precision=key["precision"], progress=progress,
                        metadata={"model_name": run.name, "hook_name": hook_name,
                                  "context_size": n_ctx, "prepend_bos": True,
                                  "dataset_path": str(run.result.get("data_hash"))})
        trained = time.perf_counter() - started
        meta = {"run": run.name, "scale": run.scale, "run_dir": str(run.run_dir),
                "key": key, "precision": key["precision"], "hook_name": hook_name,
                "repair": repair_command(run)}

        def write(tmp: Path) -> None:
            save_sae(sae, tmp)
            loaded = load_sae(tmp, device)
            report = measure_sae(model, loaded, corpus.split("val"), hook=settings.hook,
                                 layer=settings.layer, n_ctx=n_ctx, bos_id=corpus.bos_id,
                                 device=device,
                                 meta={"run": run.name, "train_seconds": round(trained, 2),
                                       "precision": key["precision"], "split": "val"})
            meta["sha256"] = {name: integrity.sha256_file(tmp / name)
                              for name in (WEIGHTS_FILE, CONFIG_FILE)}
            meta["seconds"] = round(time.perf_counter() - started, 2)
            write_json(tmp / REPORT_FILE, {"format": SAE_FORMAT, "settings": settings.key(),
                                           "report": report.to_dict(), "meta": meta})

        _write_dir_atomically(path, write)
        return load_dictionary(path, device)

    return cached(path, rebuild, lambda p: load_dictionary(p, device), compute)


# --- features as neurons ----------------------------------------------------------------------
def _sae_of(dictionary):
    return dictionary.sae if isinstance(dictionary, FeatureDictionary) else dictionary


def feature_subset(d_sae: int, max_features: int | None, seed: int = 0) -> np.ndarray | None:
    """A sorted seeded uniform subset of ``max_features`` feature indices (``None``: all of
    them, when ``max_features`` is None or not below ``d_sae``)."""
    if max_features is None or max_features >= d_sae:
        return None
    if isinstance(max_features, bool) or not isinstance(max_features, (int, np.integer)) \
            or max_features < 1:
        raise ConfigError(f"max_features must be a positive integer or None, got "
                          f"{max_features!r}")
    rng = np.random.default_rng([int(seed), int(d_sae), int(max_features)])
    return np.sort(rng.choice(d_sae, int(max_features), replace=False)).astype(np.int64)


class SAEFeatures:
    """A dictionary's features as the neurons of a ``NeuronSource``: one layer, one hook.

    ``activations(tokens)`` runs ``source`` (the model's neurons), takes hook ``hook`` of layer
    ``layer`` and encodes it: ``{"mid": [(B, T, n_features)]}``. "mid" here means "the feature
    activations", whichever model hook the SAE reads: the instruments read hook ``"mid"``.
    With ``features`` (indices into the dictionary), the source has just those features, in
    that order: neuron ``j`` of this source is feature ``features[j]``.
    """

    def __init__(self, source: NeuronSource | Transformer, dictionary, *,
                 hook: str | None = None, layer: int | None = None,
                 features: Sequence[int] | np.ndarray | None = None):
        self.source = _as_source(source)
        self.dictionary = dictionary
        self.sae = _sae_of(dictionary)
        fd = dictionary if isinstance(dictionary, FeatureDictionary) else None
        self.hook = hook or (fd.hook if fd else "mid")
        self.layer = layer if layer is not None else (fd.layer if fd else 0)
        _check_source_hook(self.source, self.hook, self.layer)
        d_in = int(self.sae.cfg.d_in)
        if d_in != self.source.d_mlp:
            raise ConfigError(f"the SAE reads {d_in} dimensions but the source's hook has "
                              f"{self.source.d_mlp}: pass the SAE of this model")
        d_sae = int(self.sae.cfg.d_sae)
        if features is None:
            self.features = None
            self.d_mlp = d_sae
        else:
            idx = np.asarray(features)
            if idx.ndim != 1 or idx.size == 0 or idx.dtype == bool \
                    or not np.issubdtype(idx.dtype, np.integer):
                raise ConfigError("features must be a non-empty 1-D array of feature indices")
            if idx.min() < 0 or idx.max() >= d_sae or len(np.unique(idx)) != len(idx):
                raise ConfigError(f"features must be distinct indices in [0, {d_sae})")
            self.features = idx.astype(np.int64)
            self.d_mlp = len(idx)
        self._index: dict[str, Tensor] = {}
        self.n_layers = 1
        self.hooks = ("mid",)
        self.precision = getattr(self.source, "precision", "fp32")

    def feature_id(self, neuron: int) -> int:
        """The dictionary's index of this source's neuron ``neuron``."""
        return int(neuron if self.features is None else self.features[neuron])

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        acts = self.source.activations(tokens)[self.hook][self.layer]
        feats = _encode(self.sae, acts)
        if self.features is not None:
            key = str(feats.device)
            if key not in self._index:
                self._index[key] = torch.from_numpy(self.features).to(feats.device)
            feats = feats.index_select(-1, self._index[key])
        return {"mid": [feats]}

    def as_model(self, n_ctx: int) -> "FeatureModel":
        """This source in the shape the viewer (``view.neuron_html``) reads a model in."""
        return FeatureModel(self, n_ctx)


@dataclass(frozen=True)
class _FeatureConfig:
    n_layers: int
    d_mlp: int
    n_ctx: int


class FeatureModel:
    """``SAEFeatures`` as the viewer sees a model (``view.neuron_snippets`` / ``neuron_html``):
    ``cfg`` (``n_layers=1``, ``d_mlp`` = features, ``n_ctx``), ``parameters()`` (the device)
    and ``run_with_cache`` recording hook ``blocks.0.mlp.hook_mid`` = the feature activations.
    Nothing else of a ``Transformer`` is there (no logit effect: a feature has no ``W_out``
    row of its own)."""

    def __init__(self, features: SAEFeatures, n_ctx: int):
        self.features = features
        self.cfg = _FeatureConfig(1, features.d_mlp, int(n_ctx))

    def parameters(self):
        yield self.features.sae.W_dec  # (the device the features are computed on)

    def run_with_cache(self, tokens: Tensor, names=None, return_logits: bool = True):
        name = act_name("mid", 0)
        if names is not None and set(names) - {name}:
            raise KeyError(f"a feature source records only {name}, not "
                           f"{sorted(set(names) - {name})}")
        return None, {name: self.features.activations(tokens)["mid"][0]}


# --- the instruments on a run's SAE, cached ---------------------------------------------------
def _features_path(run, dictionary: FeatureDictionary, kind: str, key: Mapping[str, Any],
                   ext: str = "json") -> Path:
    full = {"sae": dictionary.name, "sae_sha256": dictionary.sha256,
            "features_format": FEATURES_FORMAT, **key}
    return (Path(run.run_dir) / FEATURES_DIR
            / f"{dictionary.name}-{kind}-{_digest(full)}.{ext}")


def run_features(run, dictionary: FeatureDictionary, *, seed: int = 0,
                 max_features: int | None = MAX_FEATURES,
                 features: Sequence[int] | None = None,
                 device: str | torch.device = "cpu") -> SAEFeatures:
    """The run's SAE features as a ``NeuronSource``: the model's fp32 neurons encoded by the
    dictionary; ``features`` (dictionary indices, in that order), else the seeded subset of
    ``max_features`` of them (``feature_subset``)."""
    model = run.load_model(device).eval()
    if features is None:
        features = feature_subset(dictionary.d_sae, max_features, seed)
    return SAEFeatures(ModelNeurons(model, "fp32"), dictionary, features=features)


def _tag(run, dictionary: FeatureDictionary, features: SAEFeatures) -> dict[str, Any]:
    return {"name": run.name, "scale": run.scale, "act_fn": run.config.model.act_fn,
            "basis": "sae", "sae": dictionary.name, "sae_hook": dictionary.hook,
            "d_sae": dictionary.d_sae,
            "features": None if features.features is None else features.features.tolist()}


def harvest_features(run, settings: SAESettings = SAESettings(), *, seed: int = 0,
                     max_features: int | None = MAX_FEATURES,
                     features: Sequence[int] | None = None, k: int = 20,
                     samples_per_bin: int = 4, rows: str = "even", max_rows: int | None = None,
                     batch_size: int = 16, device: str | torch.device = "cpu",
                     progress: bool = True, data_dir=None, rebuild: bool = False) -> Harvest:
    """The harvest (``harvest.harvest``) of a run's SAE features on its validation split, as
    ``harvest_run`` harvests its neurons, cached in ``<run_dir>/features/``: the judge's subset
    (``seed``, ``max_features``), or the dictionary's ``features`` given (e.g. a few
    ``FeatureCounterparts.examples`` to show in the viewer). Its ``meta["features"]`` maps
    each harvested neuron to its feature (None: all, in order)."""
    dictionary = sae_run(run, settings, data_dir=data_dir, progress=progress, device=device)
    chosen = None if features is None else [int(f) for f in features]
    path = _features_path(run, dictionary, "harvest", {
        "kind": "harvest", "k": k, "samples_per_bin": samples_per_bin, "rows": rows,
        "max_rows": max_rows, "seed": int(seed),
        **({"max_features": max_features} if chosen is None else {"features": chosen}),
        "weights": weights_digest(run), "data": run.result.get("data_hash")}, "safetensors")

    def compute() -> Harvest:
        source = run_features(run, dictionary, seed=seed, max_features=max_features,
                              features=chosen, device=device)
        corpus = run.corpus(data_dir)
        h = harvest(source, corpus.split("val"), run.config.model.n_ctx, corpus.bos_id,
                    rows=rows, k=k, samples_per_bin=samples_per_bin, batch_size=batch_size,
                    max_rows=max_rows, seed=seed, device=device, progress=progress,
                    meta={**_tag(run, dictionary, source), "run_dir": str(run.run_dir),
                          "data_hash": run.result.get("data_hash"), "split": "val"})
        h.save(path)
        return h

    return cached(path, rebuild, Harvest.load, compute)


def feature_html(run, settings: SAESettings, features: Sequence[int], *, band="top",
                 n: int = 20, seed: int = 0, device: str | torch.device = "cpu",
                 progress: bool = False, data_dir=None) -> str:
    """The viewer's page (``view.neuron_html``: top firings, or a band of activation levels,
    §6.4) of each of the dictionary's ``features``, one after another, from their cached
    harvest (``harvest_features(features=...)``). The header's ``L0N<j>`` is the feature's
    position in ``features``; each page is preceded by the feature's index."""
    from .view import neuron_html

    h = harvest_features(run, settings, seed=seed, features=features, device=device,
                         progress=progress, data_dir=data_dir)
    dictionary = sae_run(run, settings, data_dir=data_dir, progress=progress, device=device)
    source = run_features(run, dictionary, features=list(features), device=device)
    model = source.as_model(run.config.model.n_ctx)
    corpus = run.corpus(data_dir)
    pages = []
    for j, feature in enumerate(features):
        pages.append(f'<div class="solu-feature" data-feature="{int(feature)}">'
                     f'<p style="font-family:sans-serif;font-size:12px;color:#555">'
                     f'{dictionary.name} feature {int(feature)}</p>'
                     + neuron_html(model, corpus, h, 0, j, band=band, n=n, seed=seed)
                     + "</div>")
    return "".join(pages)


def _check_score_settings(score_settings) -> None:
    if score_settings.hook != "mid":
        raise ConfigError("a feature source has one hook, 'mid' (the feature activations, "
                          "whichever model hook the SAE reads): score it with "
                          "ScoreSettings(hook='mid')")


def score_features(run, settings: SAESettings = SAESettings(), score_settings=None, *,
                   seed: int = 0, max_features: int | None = MAX_FEATURES, k: int = 20,
                   batch_size: int = 16, device: str | torch.device = "cpu",
                   progress: bool = True, data_dir=None, rebuild: bool = False):
    """The judge (``score.score_neurons``, both views) on a run's SAE features, as
    ``score.score_run`` judges its neurons: harvested on the even validation rows
    (``harvest_features``), held out on the odd ones; cached in ``<run_dir>/features/``.

    ``max_features``: the judge reads a seeded uniform subset of that many features
    (``feature_subset``; None: all), since it costs time per feature. The records' ``neuron``
    is the position in the subset; ``meta["features"]`` maps it to the feature.
    """
    from .explanations import VocabTables
    from .score import NeuronScores, ScoreSettings, score_neurons

    score_settings = score_settings or ScoreSettings()
    _check_score_settings(score_settings)
    if score_settings.k is not None and score_settings.k > k:
        raise ConfigError(f"score_settings.k={score_settings.k} top firings but the harvest "
                          f"keeps k={k}")
    dictionary = sae_run(run, settings, data_dir=data_dir, progress=progress, device=device)
    path = _features_path(run, dictionary, "score", {
        "kind": "score", "settings": score_settings.key(), "seed": int(seed), "k": k,
        "max_features": max_features, "weights": weights_digest(run),
        "data": run.result.get("data_hash")})

    def compute() -> NeuronScores:
        h = harvest_features(run, settings, seed=seed, max_features=max_features, k=k,
                             batch_size=batch_size, device=device, progress=progress,
                             data_dir=data_dir)
        source = run_features(run, dictionary, seed=seed, max_features=max_features,
                              device=device)
        corpus = run.corpus(data_dir)
        scores = score_neurons(source, h, corpus.split("val"), VocabTables(corpus.tokenizer),
                               score_settings, batch_size=batch_size, device=device,
                               progress=progress,
                               meta={**_tag(run, dictionary, source), "n_layers": 1})
        scores.save(path)
        return scores

    return cached(path, rebuild, NeuronScores.load, compute)


def probe_features(run, settings: SAESettings = SAESettings(), *, seed: int = 0,
                   max_features: int | None = MAX_FEATURES, max_tokens: int | None = None,
                   ks: Sequence[int] | None = None, full: bool = True,
                   device: str | torch.device = "cpu", progress: bool = True, data_dir=None,
                   rebuild: bool = False):
    """Sparse probing (``probing.sparse_probe``) of a run's SAE features against the corpus's
    ground-truth labels (``instruments.probe_labels``), as ``instruments.probe_run`` probes its
    neurons (same labels, token budget and ks by default), cached in ``<run_dir>/features/``.
    The features are the same seeded subset the judge reads (same ``seed`` and
    ``max_features``)."""
    from .instruments import PROBE_TOKENS, run_probe_labels
    from .labels import LABELS_VERSION
    from .probing import DEFAULT_KS, PROBE_FORMAT, ProbeResult, sparse_probe

    max_tokens = PROBE_TOKENS if max_tokens is None else max_tokens
    ks = DEFAULT_KS if ks is None else tuple(ks)
    corpus = run.corpus(data_dir)
    n_ctx = run.config.model.n_ctx
    labels = run_probe_labels(run, corpus)
    dictionary = sae_run(run, settings, data_dir=data_dir, progress=progress, device=device)
    path = _features_path(run, dictionary, "probe", {
        "kind": "probe", "probe_format": PROBE_FORMAT, "seed": int(seed),
        "max_tokens": int(max_tokens), "ks": [int(x) for x in ks], "labels": list(labels),
        "labels_version": LABELS_VERSION, "full": bool(full), "max_features": max_features,
        "weights": weights_digest(run), "data": run.result.get("data_hash")})

    def compute() -> ProbeResult:
        source = run_features(run, dictionary, seed=seed, max_features=max_features,
                              device=device)
        result = sparse_probe(source, corpus.split("val"), labels, ks, hook="mid",
                              max_tokens=max_tokens, seed=seed, n_ctx=n_ctx,
                              bos_id=corpus.bos_id, device=device, progress=progress,
                              meta=_tag(run, dictionary, source), full=full)
        result.save(path)
        return result

    return cached(path, rebuild, ProbeResult.load, compute)


def basis_score_features(run, settings: SAESettings = SAESettings(), basis: str | None = "sae",
                         *, union: Sequence[str | None] = FEATURE_UNION, score_settings=None,
                         seed: int = 0, max_features: int | None = MAX_FEATURES,
                         device: str | torch.device = "cpu", progress: bool = True,
                         data_dir=None, rebuild: bool = False):
    """The rotation-fair judge score (``basis_score.basis_score``) of one basis of the SAE
    comparison, over the union of the explanations of every basis in ``union``, cached.

    ``basis``: ``"sae"`` (the run's SAE features, the judge's subset), ``None`` (the run's
    neurons) or ``"rotated"`` (their random rotation, ``controls.score_control``). Every basis
    of ``union`` is judged (cached) and each is scored over the union of their explanations,
    so the SAE and the neurons are scored over one set of features (``FEATURE_UNION``: the SAE
    and the union ``instruments.basis_score_run`` uses). A feature is counted once, however
    many directions re-expose it; with ``max_features`` = ``d_mlp`` (the default at cpu scale)
    the SAE offers as many directions as the neuron basis.
    """
    from .basis_score import BASIS_SCORE_FORMAT, BasisScore
    from .basis_score import basis_score as basis_score_fn
    from .explanations import VocabTables
    from .instruments import _judge, _source, _run_key
    from .score import ScoreSettings

    score_settings = score_settings or ScoreSettings()
    _check_score_settings(score_settings)
    union = list(union)
    for b in union:
        if b not in ("sae", None, "rotated"):
            raise ConfigError(f"the union's bases are 'sae', None (the neurons) and 'rotated', "
                              f"got {b!r}")
    if basis not in union:
        raise ConfigError(f"the union {union} must include the basis scored ({basis!r})")
    dictionary = sae_run(run, settings, data_dir=data_dir, progress=progress, device=device)
    path = _features_path(run, dictionary, f"fair-{basis or 'basis'}", {
        "kind": "fair", "basis": basis, "union": union, "settings": score_settings.key(),
        "seed": int(seed), "max_features": max_features,
        "basis_score_format": BASIS_SCORE_FORMAT,
        "run": _run_key(run, basis if basis != "sae" else None, seed)})

    def judged(b):
        if b == "sae":
            return score_features(run, settings, score_settings, seed=seed,
                                  max_features=max_features, device=device, progress=progress,
                                  data_dir=data_dir)
        return _judge(run, b, score_settings, seed, progress, data_dir)

    def compute() -> BasisScore:
        scores = {b: judged(b) for b in union}
        others = sorted({r.explanation for b, s in scores.items() if b != basis
                         for r in s.records if isinstance(r.explanation, str) and r.explanation})
        source = (run_features(run, dictionary, seed=seed, max_features=max_features,
                               device=device) if basis == "sae"
                  else _source(run, basis, seed, device))
        corpus = run.corpus(data_dir)
        result = basis_score_fn(scores[basis], source, corpus.split("val"),
                                VocabTables(corpus.tokenizer), explanations=others,
                                hook="mid", seed=seed, device=device, progress=progress)
        result.meta.update({"basis": basis or "neurons", "union": [b or "neurons"
                                                                    for b in union],
                            "sae": dictionary.name})
        result.save(path)
        return result

    return cached(path, rebuild, BasisScore.load, compute)


# --- geometry: decoder directions against the neuron basis -----------------------------------
def _decoder(sae_or_weights) -> np.ndarray:
    if isinstance(sae_or_weights, FeatureDictionary):
        return sae_or_weights.decoder()
    w = getattr(sae_or_weights, "W_dec", sae_or_weights)
    w = w.detach().double().cpu().numpy() if isinstance(w, Tensor) else np.asarray(w, float)
    if w.ndim != 2:
        raise ConfigError(f"decoder weights must be (d_sae, d_in), got shape {w.shape}")
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


def decoder_alignment(sae) -> np.ndarray:
    """``(d_sae,)`` each feature's maximum |cosine| between its decoder direction and a
    standard basis vector (a single neuron of the hook it reads): 1 is a neuron exactly,
    ``alignment_null`` what a random direction reaches. ``sae``: a ``FeatureDictionary``, a
    SAELens SAE, or decoder weights ``(d_sae, d_in)``."""
    w = _decoder(sae)
    return np.abs(w).max(axis=1)


def alignment_null(d_in: int, n: int = 4096, seed: int = 0) -> np.ndarray:
    """``(n,)`` the same statistic for Haar-random unit directions in ``d_in`` dimensions (a
    normalised standard Gaussian vector is uniform on the sphere), seeded. For ``d_in=512``
    it centres near 0.17: a decoder direction far above that leans on one neuron."""
    if isinstance(d_in, bool) or not isinstance(d_in, (int, np.integer)) or d_in < 1:
        raise ConfigError(f"d_in must be a positive integer, got {d_in!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    g = np.random.default_rng([int(seed), int(d_in)]).standard_normal((n, d_in))
    return np.abs(g).max(axis=1) / np.linalg.norm(g, axis=1)


@dataclass(eq=False)
class FeatureCounterparts:
    """For each feature of a dictionary, its best single-neuron counterpart on held-out tokens.

    Arrays are indexed by feature (``d_sae``).

    Attributes:
        mid_r: max |Pearson r| of the feature's activation with any ``hook_mid`` neuron.
        mid_neuron: That neuron.
        post_r: The same against ``hook_post``'s neurons (``mid_r`` for a model without the
            extra LayerNorm, where hook_post is hook_mid).
        post_neuron: That neuron.
        rotated_r: The same against a Haar-random rotation of ``hook_mid`` (the null: what a
            basis that has no reason to align with anything reaches).
        frequency: Fraction of the held-out tokens where the feature is active.
        n_tokens: Held-out tokens read.
        meta: Run, dictionary, rows, seed.
    """

    mid_r: np.ndarray
    mid_neuron: np.ndarray
    post_r: np.ndarray
    post_neuron: np.ndarray
    rotated_r: np.ndarray
    frequency: np.ndarray
    n_tokens: int
    meta: dict[str, Any] = field(default_factory=dict)

    _ARRAYS: ClassVar[dict[str, type]] = {
        "mid_r": np.float64, "mid_neuron": np.int64, "post_r": np.float64,
        "post_neuron": np.int64, "rotated_r": np.float64, "frequency": np.float64}

    def active(self, min_active: int = 20) -> np.ndarray:
        """Features active on at least ``min_active`` held-out tokens (enough for a
        correlation to mean something)."""
        return np.flatnonzero(self.frequency * self.n_tokens >= min_active)

    def without_counterpart(self, threshold: float = COUNTERPART_R, min_active: int = 20,
                            against: str = "mid") -> np.ndarray:
        """Features (active on ``min_active`` tokens or more) whose best |r| with any single
        neuron of ``against`` (``"mid"`` or ``"post"``) is below ``threshold``, the least
        matched first: "features with no counterpart among hook_mid's neurons"."""
        r = {"mid": self.mid_r, "post": self.post_r}[against]
        ids = self.active(min_active)
        ids = ids[r[ids] < threshold]
        return ids[np.argsort(r[ids], kind="stable")]

    def examples(self, n: int = 5, threshold: float = COUNTERPART_R,
                 min_active: int = 20) -> list[dict[str, Any]]:
        """The ``n`` least matched features among those active on ``min_active`` held-out
        tokens or more (``without_counterpart``, lowest ``mid_r`` first), with their numbers:
        what the chapter shows in the viewer."""
        ids = self.without_counterpart(threshold, min_active)[:n]
        return [{"feature": int(i), "mid_r": float(self.mid_r[i]),
                 "mid_neuron": int(self.mid_neuron[i]), "post_r": float(self.post_r[i]),
                 "post_neuron": int(self.post_neuron[i]), "rotated_r": float(self.rotated_r[i]),
                 "frequency": float(self.frequency[i])} for i in ids]

    def to_dict(self) -> dict[str, Any]:
        d = {name: np.asarray(getattr(self, name)).tolist() for name in self._ARRAYS}
        return {"format": FEATURES_FORMAT, **d, "n_tokens": self.n_tokens,
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureCounterparts":
        if d.get("format") != FEATURES_FORMAT:
            raise ValueError(f"format {d.get('format')!r} is not {FEATURES_FORMAT}")
        kw = {name: np.array(d[name], dtype=t) for name, t in cls._ARRAYS.items()}
        return cls(**kw, n_tokens=int(d["n_tokens"]), meta=dict(d.get("meta", {})))


class _Correlations:
    """Pearson correlations between ``F`` features and ``D`` directions, streamed in float64
    sums of float32 products around a per-column shift (the first batch's mean)."""

    def __init__(self, n_features: int, n_directions: int):
        self.n = 0
        self.shift_f: Tensor | None = None
        self.shift_a: Tensor | None = None
        self.f = torch.zeros(n_features, dtype=torch.float64)
        self.f2 = torch.zeros(n_features, dtype=torch.float64)
        self.a = torch.zeros(n_directions, dtype=torch.float64)
        self.a2 = torch.zeros(n_directions, dtype=torch.float64)
        self.fa = torch.zeros(n_features, n_directions, dtype=torch.float64)

    def update(self, f: Tensor, a: Tensor) -> None:
        f, a = f.float().cpu(), a.float().cpu()
        if self.shift_f is None:
            self.shift_f, self.shift_a = f.mean(0), a.mean(0)
        f, a = f - self.shift_f, a - self.shift_a
        self.n += f.shape[0]
        self.f += f.sum(0).double()
        self.f2 += (f * f).sum(0).double()
        self.a += a.sum(0).double()
        self.a2 += (a * a).sum(0).double()
        self.fa += (f.T @ a).double()

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """``(best |r|, argmax)`` per feature (0 and -1 for a constant feature)."""
        n = max(self.n, 1)
        mf, ma = self.f / n, self.a / n
        vf = (self.f2 / n - mf * mf).clamp_min(0)
        va = (self.a2 / n - ma * ma).clamp_min(0)
        cov = self.fa / n - mf[:, None] * ma[None, :]
        denom = (vf[:, None] * va[None, :]).sqrt()
        r = torch.where(denom > 0, cov / denom.clamp_min(1e-300), torch.zeros_like(cov)).abs()
        best, arg = r.clamp(max=1.0).max(dim=1)
        arg[best <= 0] = -1
        return best.numpy(), arg.numpy()


def feature_counterparts(run, settings: SAESettings = SAESettings(), *, seed: int = 0,
                         max_rows: int = REPORT_ROWS, batch_size: int = 16,
                         device: str | torch.device = "cpu", progress: bool = True,
                         data_dir=None, rebuild: bool = False) -> FeatureCounterparts:
    """For every feature of the run's SAE (``settings``; typically ``hook="post"``), the best
    |correlation| of its activation with any single neuron of ``hook_mid``, of ``hook_post``
    and of a Haar-random rotation of ``hook_mid`` (``controls.haar_orthogonal``, seeded), on
    ``max_rows`` seeded validation rows (odd rows: the judge's held-out half; the BOS column
    dropped). Cached in ``<run_dir>/features/``.

    A ``hook_post`` feature whose best ``hook_mid`` neuron correlates weakly is a feature that
    no neuron before SoLU's LayerNorm shows (§6.4's "smuggling"); ``rotated_r`` is what a
    basis that has no reason to align reaches; the same call on the ``hook_mid`` SAE gives the
    match of a dictionary with its own basis.
    """
    from .controls import haar_orthogonal
    from .harvest import selection_rows

    dictionary = sae_run(run, settings, data_dir=data_dir, progress=progress, device=device)
    path = _features_path(run, dictionary, "counterparts", {
        "kind": "counterparts", "seed": int(seed), "max_rows": int(max_rows),
        "weights": weights_digest(run), "data": run.result.get("data_hash")})

    def compute() -> FeatureCounterparts:
        model = run.load_model(device).eval()
        source = ModelNeurons(model, "fp32")
        corpus = run.corpus(data_dir)
        split = corpus.split("val")
        n_ctx = model.cfg.n_ctx
        rows = selection_rows(num_rows(split, n_ctx), "odd")
        if len(rows) == 0:
            raise ConfigError(f"{run.name}'s validation split has no held-out (odd) row")
        if len(rows) > max_rows:
            rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
        layer, d, F = dictionary.layer, model.cfg.d_mlp, dictionary.d_sae
        q = haar_orthogonal(d, (seed, HOOKS.index("mid"), layer))
        corr = {name: _Correlations(F, d) for name in ("mid", "post", "rotated")}
        active = torch.zeros(F, dtype=torch.float64)
        n_tok = 0
        batches = range(0, len(rows), batch_size)
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc="counterparts", unit="batch")
        for start in batches:
            tokens = get_rows(split, rows[start:start + batch_size], n_ctx,
                              corpus.bos_id).to(device)
            acts = source.activations(tokens)
            mid = acts["mid"][layer][:, 1:].reshape(-1, d)
            post = acts["post"][layer][:, 1:].reshape(-1, d) if "post" in acts else mid
            own = acts[dictionary.hook][layer][:, 1:].reshape(-1, d)
            f = dictionary.encode(own).cpu()
            corr["mid"].update(f, mid)
            corr["post"].update(f, post)
            corr["rotated"].update(f, mid.float().cpu() @ q)
            active += (f > 0).double().sum(0)
            n_tok += f.shape[0]
        (mid_r, mid_n), (post_r, post_n), (rot_r, _) = (corr[k].best()
                                                        for k in ("mid", "post", "rotated"))
        result = FeatureCounterparts(
            mid_r=mid_r, mid_neuron=mid_n, post_r=post_r, post_neuron=post_n, rotated_r=rot_r,
            frequency=(active / max(n_tok, 1)).numpy(), n_tokens=n_tok,
            meta={"name": run.name, "sae": dictionary.name, "sae_hook": dictionary.hook,
                  "rows": int(len(rows)), "seed": int(seed)})
        write_json(path, result.to_dict())
        return result

    def load(p: Path) -> FeatureCounterparts:
        return read_json(p, FeatureCounterparts.from_dict, "feature counterparts",
                         "delete it and compute it again", ConfigError)

    return cached(path, rebuild, load, compute)


# --- the command line: solu-repro features ----------------------------------------------------
def feature_names(scale: str) -> list[str]:
    """The zoo models ``solu-repro features`` trains SAEs on by default: every seed of the
    shallowest GELU and SoLU-LN models of the scale."""
    from .. import zoo

    names = list(zoo.zoo_configs(scale))
    depth = min(zoo.depth_of(n) for n in names)
    return [n for n in names if zoo.depth_of(n) == depth and zoo.act_of(n) in ("gelu", "solu_ln")]


def hooks_for(run) -> tuple[str, ...]:
    """The hooks a run has SAEs on: mid and post with SoLU's extra LayerNorm, mid without."""
    return HOOKS if run.config.model.has_mlp_ln else ("mid",)


def run_features_command(args) -> int:
    """``solu-repro features``: train (or load) the SAEs and print one line per SAE."""
    from .. import zoo

    default = feature_names(args.scale)
    if args.only:
        known = set(zoo.zoo_configs(args.scale))
        for name in args.only:
            if name not in known:
                raise ConfigError(f"no model {name!r} in the {args.scale} zoo: the features "
                                  f"command trains SAEs on {default}")
    names = list(args.only or default)
    if args.hook and "post" in args.hook:  # before any training: a model without the LN
        configs = zoo.zoo_configs(args.scale)
        flat = [n for n in names if not configs[n].model.has_mlp_ln]
        if flat:
            raise ConfigError(f"--hook post needs SoLU's extra LayerNorm, which {', '.join(flat)} "
                              "does not have (its hook_post is hook_mid): drop --hook post or "
                              "those models from --only")
    runs = zoo.train_zoo(args.scale, args.runs_dir, names=names, progress=not args.quiet,
                         data_dir=args.data_dir)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        run = runs[name]
        hooks = tuple(dict.fromkeys(args.hook)) if args.hook else hooks_for(run)
        for hook in hooks:
            settings = scale_settings(args.scale, hook, expansion=args.expansion, k=args.k,
                                      train_tokens=args.train_tokens, seed=args.seed)
            dictionary = sae_run(run, settings, data_dir=args.data_dir, rebuild=args.rebuild,
                                 progress=not args.quiet, device=args.device)
            out.setdefault(name, {})[hook] = {**dictionary.report.to_dict(),
                                              "path": str(dictionary.path)}
            if not args.json:
                print(f"{name:14s} {dictionary.report.line()}\n{'':14s} -> {dictionary.path}")
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    return 0
