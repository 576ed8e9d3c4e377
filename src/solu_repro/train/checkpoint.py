"""Checkpoints: weights in safetensors, trainer state beside them, every write atomic.

A checkpoint is a directory ``checkpoints/step_XXXXXXX/`` holding
``model.safetensors`` (weights + the model config in its metadata), ``trainer.pt``
(optimizer state, RNG state; loaded with ``weights_only=True`` so no pickled code runs)
and ``state.json`` (step, tokens seen). It is written to a temporary directory and renamed
into place, so a killed process never leaves a half checkpoint where a reader looks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..model import ModelConfig, Transformer

CONFIG_KEY = "solu_repro.model_config"


class CheckpointError(RuntimeError):
    """A checkpoint or run directory is missing or unreadable; the message says what to do."""


def save_weights(model: Transformer, path: Path) -> None:
    """Write a model's weights (and its config, as safetensors metadata) to ``path``."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={CONFIG_KEY: model.cfg.to_json()})


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> Transformer:
    """Build a ``Transformer`` from a ``model.safetensors`` file written by ``save_weights``.

    Raises:
        CheckpointError: if the file is missing, truncated, or not one of ours.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no model weights at {path}: train the run first "
                              "(`solu-repro train ...`) or check the path")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"model weights at {path} are corrupt or unreadable ({exc}); delete the file "
            "(or its run directory) and retrain, or resume from an earlier checkpoint") from exc
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path} has no {CONFIG_KEY!r} metadata: it was not written by "
                              "solu_repro.train.checkpoint.save_weights")
    try:
        model = Transformer(ModelConfig.from_json(metadata[CONFIG_KEY]))
    except (ValueError, TypeError) as exc:  # ConfigError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path} carries an invalid model config ({exc}); delete it and "
                              "retrain, or resume from an earlier checkpoint") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights at {path} do not match their config: {exc}") from exc
    return model.to(device)


def save_checkpoint(ckpt_dir: Path, model: Transformer, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> Path:
    """Atomically write a checkpoint directory ``ckpt_dir``.

    Args:
        ckpt_dir: final directory, e.g. ``run/checkpoints/step_0000100``.
        model: the (unwrapped) model.
        optimizer: its optimizer.
        state: JSON-serializable trainer state (step, tokens seen, ...).

    Returns:
        ``ckpt_dir``.
    """
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{ckpt_dir.name}.", dir=ckpt_dir.parent))
    try:
        save_weights(model, tmp / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
                   tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        for written in tmp.iterdir():  # on disk before the rename publishes them
            with open(written, "rb") as f:
                os.fsync(f.fileno())
        if ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
        tmp.rename(ckpt_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ckpt_dir


def load_checkpoint(ckpt_dir: Path, device: str | torch.device = "cpu"
                    ) -> tuple[Transformer, dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by ``save_checkpoint``.

    Returns:
        ``(model, trainer, state)``: the model, the ``trainer.pt`` dict (optimizer state and
        RNG) and the ``state.json`` dict.

    Raises:
        CheckpointError: if any part is missing or corrupt.
    """
    model = load_weights(ckpt_dir / "model.safetensors", device)
    try:
        trainer = torch.load(ckpt_dir / "trainer.pt", map_location=device, weights_only=True)
        state = json.loads((ckpt_dir / "state.json").read_text())
    except Exception as exc:  # torch raises several types for truncated/garbled files
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt or incomplete ({exc}); delete it "
                              "to resume from the previous checkpoint") from exc
    return model, trainer, state


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories of a run, oldest first (temporary leftovers are ignored)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (and stale temporary directories)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return
    for stale in root.glob(".step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    checkpoints = list_checkpoints(run_dir)
    for old in checkpoints[:max(0, len(checkpoints) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
