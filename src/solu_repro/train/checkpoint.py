"""Checkpoints: weights in safetensors, trainer state beside them, every write atomic and
checksummed.

A checkpoint is a directory ``checkpoints/step_XXXXXXX/`` holding
``model.safetensors`` (weights + the model config in its metadata), ``trainer.pt``
(optimizer state, RNG state; loaded with ``weights_only=True`` so no pickled code runs)
and ``state.json`` (step, tokens seen, and the SHA-256 of the two other files). It is
written to a temporary directory and renamed into place, so a killed process never leaves a
half checkpoint where a reader looks.

Reading weights is checked before anything is allocated: ``load_weights`` verifies the file's
SHA-256 against the record beside it (``recorded_digest``: a checkpoint's ``state.json``, a
snapshot's ``.json``, a finished run's ``result.json``; a file without one is read
unverified), then reads only the safetensors header and checks the model config in its
metadata against ``MODEL_LIMITS`` and a parameter budget, and every tensor's name, dtype and
shape against the shapes that config implies (``expected_shapes``). Only then is the
``Transformer`` built and the tensors read.

Every error names the file and one command that repairs it: for a file of a run directory,
``repair_command(run_dir)`` (``solu-repro train ... --retrain``; the zoo registers the
spelling by zoo name and scale with ``add_repair_command``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open

from .. import integrity
from ..model import ModelConfig, Transformer

CONFIG_KEY = "solu_repro.model_config"
DIGESTS_KEY = "sha256"
"""The key of a record (``result.json``, a snapshot's ``.json``, a checkpoint's ``state.json``)
that maps the names of the files beside it to their SHA-256."""

MODEL_LIMITS = {"n_layers": 1024, "n_heads": 4096, "d_head": 4096, "d_model": 65536,
                "d_mlp": 1 << 20, "d_vocab": 1 << 21, "n_ctx": 1 << 20}
"""The largest value of each ``ModelConfig`` dimension ``load_weights`` accepts from a file's
metadata (far above anything this package trains: the gpu scale has d_model 512 and a
32768-token vocabulary); a larger one means a damaged or foreign file."""

DEFAULT_MAX_PARAMS = 2_000_000_000
"""The most parameters ``load_weights`` builds a model for unless its caller raises
``max_params`` (8 GB of float32)."""

FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
"""safetensors dtypes a weight may be stored in (``load_state_dict`` casts to float32)."""


class CheckpointError(RuntimeError):
    """A checkpoint or run directory is missing or unreadable; the message says what to do."""


# --- what repairs a run ----------------------------------------------------------------------
_repair_rules: list[Callable[[Path], str | None]] = []


def add_repair_command(rule: Callable[[Path], str | None]) -> Callable[[Path], str | None]:
    """Register ``rule(run_dir)``: the command that retrains that run, or None if the rule does
    not know the run (``solu_repro.zoo`` registers the spelling by zoo name and scale)."""
    _repair_rules.append(rule)
    return rule


def repair_command(run_dir: str | Path) -> str:
    """The one command that restores ``run_dir``'s missing or damaged files:
    ``solu-repro train <run_dir>/config.json --run-dir <run_dir> --retrain`` unless a
    registered rule spells it shorter (``solu-repro train 1L-gelu --scale tiny --retrain``)."""
    run_dir = Path(run_dir)
    for rule in reversed(_repair_rules):
        try:
            command = rule(run_dir)
        except Exception:  # a hint must never hide the error it explains
            command = None
        if command:
            return command
    return (f"solu-repro train {shlex.quote(str(run_dir / 'config.json'))} "
            f"--run-dir {shlex.quote(str(run_dir))} --retrain")


def run_dir_of(path: str | Path) -> Path | None:
    """The run directory a weights file belongs to (its final weights, a snapshot, or a
    checkpoint's), or None if it lies in no run directory."""
    path = Path(path)
    if path.parent.parent.name == "checkpoints":
        run = path.parent.parent.parent
    elif path.parent.name == "snapshots":
        run = path.parent.parent
    else:
        run = path.parent
    return run if (run / "config.json").is_file() else None


def _fix(path: Path) -> str:
    """How to repair ``path``, for the end of an error message."""
    run = run_dir_of(path)
    if run is None:
        return ("it is not part of a run directory, so nothing here can rebuild it: write it "
                "again with save_weights, or use a good copy")
    return f"restore the run with `{repair_command(run)}`"


# --- records -----------------------------------------------------------------------------------
def read_record(path: str | Path, what: str) -> dict[str, Any] | None:
    """A JSON object written by this package (``result.json``, a snapshot's ``.json``, a
    checkpoint's ``state.json``), or None if the file does not exist.

    Raises:
        CheckpointError: the file is unreadable or not a JSON object; one line naming
            ``what`` it is, the file and the command that repairs its run.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} ({path}): {exc.strerror or exc}; "
                              f"{_fix(path)}") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{what} ({path}) is corrupt (not UTF-8 text: {exc.reason} at "
                              f"byte {exc.start}); {_fix(path)}") from exc
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{what} ({path}) is corrupt ({exc}); {_fix(path)}") from exc
    if not isinstance(record, dict):
        raise CheckpointError(f"{what} ({path}) is corrupt (a JSON {type(record).__name__}, "
                              f"not an object); {_fix(path)}")
    return record


def read_result(run_dir: str | Path) -> dict[str, Any] | None:
    """A finished run's ``result.json``, or None if the run has not finished.

    Raises:
        CheckpointError: ``result.json`` exists but is unreadable or corrupt (one line naming
            the file, the run and the ``--retrain`` command that restores it).
    """
    run_dir = Path(run_dir)
    what = f"the result.json of run {run_dir.name}"
    result = read_record(run_dir / "result.json", what)
    if result is not None and "run_hash" not in result:
        raise CheckpointError(f"{what} ({run_dir / 'result.json'}) is corrupt (it has no "
                              f"run_hash); {_fix(run_dir / 'result.json')}")
    return result


def _record_of(path: Path) -> Path | None:
    """Where the digest of a run's weights file is recorded (see ``recorded_digest``)."""
    if path.parent.name.startswith("step_") and path.parent.parent.name == "checkpoints":
        return path.parent / "state.json"
    if path.parent.name == "snapshots":
        return path.with_suffix(".json")
    if path.name == "model.safetensors":
        return path.parent / "result.json"
    return None


def recorded_digest(path: str | Path) -> tuple[str | None, Path | None]:
    """The SHA-256 recorded for a weights file of a run directory and the record holding it:
    a checkpoint's ``state.json``, a snapshot's ``.json``, a finished run's ``result.json``.
    ``(None, None)`` for a file with no record, or a record from before digests were kept.

    Raises:
        CheckpointError: the record exists but is corrupt.
    """
    path = Path(path)
    record = _record_of(path)
    if record is None:
        return None, None
    data = read_record(record, f"the record of {path.name}")
    digests = (data or {}).get(DIGESTS_KEY)
    if not isinstance(digests, dict) or not isinstance(digests.get(path.name), str):
        return None, None
    return digests[path.name], record


def verify_file(path: str | Path, expected: str | None = None,
                record: str | Path | None = None) -> bool:
    """Check ``path`` against its recorded SHA-256 (``recorded_digest``, or ``expected`` from
    ``record``), hashing it at most once per process.

    Returns:
        True if verified, False if no digest is recorded (an older run: unverified).

    Raises:
        CheckpointError: the digest differs: the file, both digests and the repair command.
    """
    path = Path(path)
    if expected is None:
        expected, record = recorded_digest(path)
    try:
        found = integrity.mismatch(path, expected)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path} ({exc.strerror or exc}); "
                              f"{_fix(path)}") from exc
    if found is not None:
        raise CheckpointError(f"{integrity.describe(path, record, expected, found)}; "
                              f"{_fix(path)}")
    return expected is not None


# --- shapes before allocation ----------------------------------------------------------------
def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of ``Transformer(cfg).state_dict()``, without
    building it (``tests/reliability/test_integrity.py`` checks that the two agree)."""
    D, H, Dh, M, V = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    shapes: dict[str, tuple[int, ...]] = {"W_E": (V, D)}
    if cfg.pos_embed == "learned":
        shapes["W_pos"] = (cfg.n_ctx, D)
    shapes.update({"W_U": (D, V), "b_U": (V,)})
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}"
        shapes.update({f"{p}.ln1.w": (D,), f"{p}.ln1.b": (D,),
                       f"{p}.attn.W_QKV": (D, 3, H, Dh), f"{p}.attn.b_QKV": (3, H, Dh),
                       f"{p}.attn.W_O": (H, Dh, D), f"{p}.attn.b_O": (D,),
                       f"{p}.ln2.w": (D,), f"{p}.ln2.b": (D,),
                       f"{p}.mlp.W_in": (D, M), f"{p}.mlp.b_in": (M,),
                       f"{p}.mlp.W_out": (M, D), f"{p}.mlp.b_out": (D,)})
        if cfg.has_mlp_ln:
            shapes.update({f"{p}.mlp.act.ln.w": (M,), f"{p}.mlp.act.ln.b": (M,)})
    shapes.update({"ln_final.w": (D,), "ln_final.b": (D,)})
    return shapes


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for size in shape:
        n *= size
    return n


def _check_header(path: Path, metadata: dict[str, str],
                  header: dict[str, tuple[str, tuple[int, ...]]],
                  max_params: int) -> ModelConfig:
    """The model config of a weights file, checked against the limits and against every
    tensor the header declares; nothing is allocated."""
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path} has no {CONFIG_KEY!r} metadata: it was not written by "
                              "solu_repro.train.checkpoint.save_weights; "
                              f"{_fix(path)}")
    try:
        raw = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} carries an unreadable model config ({exc}); "
                              f"{_fix(path)}") from exc
    if isinstance(raw, dict):  # bounds first: ModelConfig itself accepts any positive size
        for field, limit in MODEL_LIMITS.items():
            value = raw.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                raise CheckpointError(
                    f"{path}: its model config declares {field}={value}, above the limit "
                    f"{limit} of any model this package builds, so the file is damaged or not "
                    f"one of ours (nothing was allocated); {_fix(path)}")
    try:
        cfg = ModelConfig.from_dict(raw)
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
        raise CheckpointError(f"{path} carries an invalid model config ({exc}); "
                              f"{_fix(path)}") from exc
    expected = expected_shapes(cfg)
    n_params = sum(_numel(shape) for shape in expected.values())
    if n_params > max_params:
        raise CheckpointError(
            f"{path}: its model config implies {n_params:,} parameters, above the limit of "
            f"{max_params:,} (nothing was allocated); if the model really is that large, "
            f"pass a larger max_params to load_weights; otherwise {_fix(path)}")
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        what = (f"lacks tensor {missing[0]}" if missing else f"has a tensor {extra[0]}")
        raise CheckpointError(f"{path} {what} that the model config in its metadata does not "
                              f"imply ({len(missing)} missing, {len(extra)} unexpected); "
                              f"{_fix(path)}")
    for name, shape in expected.items():
        dtype, found = header[name]
        if tuple(found) != shape or dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{path}: tensor {name} is {dtype} {list(found)}, but the model config in its "
                f"metadata implies a float tensor of shape {list(shape)}; {_fix(path)}")
    return cfg


# --- weights ----------------------------------------------------------------------------------
def save_weights(model: Transformer, path: Path) -> str:
    """Write a model's weights (and its config, as safetensors metadata) to ``path``.

    Writing over a run's weights file whose record exists (a finished run's
    ``model.safetensors``, a snapshot) also records the new digest there, so weights replaced
    on purpose through this function still load; the training loop writes to a temporary
    path and records the digest itself.

    Returns:
        The file's SHA-256, for the record the caller writes beside it.
    """
    from safetensors.torch import save_file

    from .. import atomic

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={CONFIG_KEY: model.cfg.to_json()})
    digest = integrity.file_digest(path)
    record = _record_of(path)
    if record is not None and record.is_file():
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            data = None  # a damaged record stays as it is: loads report it
        if isinstance(data, dict):
            digests = data.get(DIGESTS_KEY) if isinstance(data.get(DIGESTS_KEY), dict) else {}
            atomic.write_json(record, {**data, DIGESTS_KEY: {**digests, path.name: digest}})
    return digest


def load_weights(path: str | Path, device: str | torch.device = "cpu",
                 max_params: int = DEFAULT_MAX_PARAMS) -> Transformer:
    """Build a ``Transformer`` from a ``model.safetensors`` file written by ``save_weights``.

    The file's SHA-256 is checked against its run's record (once per process), then its
    header: the model config in the metadata within ``MODEL_LIMITS`` and ``max_params``, and
    every tensor's name, dtype and shape as that config implies. Only then is the model built
    and the tensors read.

    Args:
        path: the weights file.
        device: where the model is returned.
        max_params: the largest model (parameters) to build.

    Raises:
        CheckpointError: if the file is missing, truncated, damaged, oversized or not one of
            ours; the message names the file and the command that restores it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no model weights at {path}: {_fix(path)}"
                              if run_dir_of(path) is not None else
                              f"no model weights at {path}: train the run first "
                              "(`solu-repro train ...`) or check the path")
    verify_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            header = {}
            for key in f.keys():
                piece = f.get_slice(key)
                header[key] = (piece.get_dtype(), tuple(piece.get_shape()))
            cfg = _check_header(path, metadata, header, max_params)
            model = Transformer(cfg)
            state = {key: f.get_tensor(key) for key in header}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"model weights at {path} are corrupt or unreadable "
                              f"({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                              f"{_fix(path)}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights at {path} do not match their config "
                              f"({str(exc).splitlines()[0]}); {_fix(path)}") from exc
    return model.to(device)


# --- checkpoints ------------------------------------------------------------------------------
def save_checkpoint(ckpt_dir: Path, model: Transformer, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> Path:
    """Atomically write a checkpoint directory ``ckpt_dir``.

    Args:
        ckpt_dir: final directory, e.g. ``run/checkpoints/step_0000100``.
        model: the (unwrapped) model.
        optimizer: its optimizer.
        state: JSON-serializable trainer state (step, tokens seen, ...); ``state.json`` gets
            it plus ``"sha256"``, the digests of ``model.safetensors`` and ``trainer.pt``.

    Returns:
        ``ckpt_dir``.
    """
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{ckpt_dir.name}.", dir=ckpt_dir.parent))
    try:
        digests = {"model.safetensors": save_weights(model, tmp / "model.safetensors")}
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
                   tmp / "trainer.pt")
        digests["trainer.pt"] = integrity.file_digest(tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps({**state, DIGESTS_KEY: digests}, indent=2,
                                                   sort_keys=True))
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
    """Read a checkpoint written by ``save_checkpoint``, verifying its files' SHA-256 (a
    checkpoint from before digests were recorded is read unverified).

    Returns:
        ``(model, trainer, state)``: the model, the ``trainer.pt`` dict (optimizer state and
        RNG) and the ``state.json`` dict.

    Raises:
        CheckpointError: if any part is missing, corrupt or differs from its digest.
    """
    broken = _fix(ckpt_dir / "state.json")  # repair drops it and resumes from a good one
    try:
        state = json.loads((ckpt_dir / "state.json").read_text())
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt or incomplete (state.json: "
                              f"{exc}); {broken}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt (state.json holds no object); "
                              f"{broken}")
    model = load_weights(ckpt_dir / "model.safetensors", device)
    verify_file(ckpt_dir / "trainer.pt")
    try:
        trainer = torch.load(ckpt_dir / "trainer.pt", map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/garbled files
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt or incomplete "
                              f"({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                              f"{broken}") from exc
    return model, trainer, state


def checkpoint_step(ckpt_dir: Path) -> int:
    """The step of a checkpoint directory (``step_0000100`` -> 100)."""
    return int(Path(ckpt_dir).name.split("_", 1)[1])


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
