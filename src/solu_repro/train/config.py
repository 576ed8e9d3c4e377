"""What a training run is: ``TrainConfig`` (validated on construction, saved as JSON with the
run, hashed into its directory name) and the error a diverging run raises."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import DataSpec
from ..model import ConfigError, ModelConfig

PRECISIONS = ("auto", "fp32", "bf16")


DEVICES = ("auto", "cpu", "cuda")


NAME_RULE = ("up to 100 letters, digits, '.', '_' or '-', not starting with '.' (it names the "
             "run's folder inside the runs folder, so no '/', '..' or absolute path)")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


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
        name: a label for humans (zoo name); not part of the run hash. The run's folder is
            ``<name>-<hash>``, so a name is ``NAME_RULE`` (empty: "run").
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
            probe at the start of the run (``solu_repro.train.precision``). The choice is the
            run's: recorded in its checkpoints and ``result.json``, kept on resume.
        device: "auto", "cpu" or "cuda".
        compile: wrap the model in torch.compile.
        eval_every: steps between validation evaluations (0: only at the end).
        eval_rows: validation rows used by the periodic evaluations.
        final_eval_rows: validation rows of the final evaluation (None: all of them).
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many of the newest checkpoints to keep.
        log_every: steps between metrics lines.
        snapshot_steps: steps (below ``max_steps``) at which the weights are kept for good, with
            a validation evaluation on ``final_eval_rows`` (``snapshots/step_*.safetensors``
            and ``.json``): the points at which the book measures every metric over training.
            Part of the run hash (a run either has them or not).
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
    snapshot_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ConfigError("TrainConfig.model must be a ModelConfig")
        if not isinstance(self.name, str) or (self.name and not _NAME.fullmatch(self.name)):
            raise ConfigError(f"TrainConfig.name={self.name!r} is not a run name: use "
                              f"{NAME_RULE}, e.g. --set name=my-run")
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
        steps = self.snapshot_steps
        if not isinstance(steps, (list, tuple)) or not all(
                isinstance(k, int) and not isinstance(k, bool) and 0 < k < self.max_steps
                for k in steps):
            raise ConfigError(f"TrainConfig.snapshot_steps must be a list of steps from 1 to "
                              f"max_steps - 1 = {self.max_steps - 1}, got {steps!r} (the final "
                              "weights are kept anyway)")
        object.__setattr__(self, "snapshot_steps", tuple(sorted(set(steps))))
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
        d["snapshot_steps"] = list(self.snapshot_steps)
        if not self.snapshot_steps:
            d.pop("snapshot_steps")  # so runs without snapshots keep the hash they always had
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

