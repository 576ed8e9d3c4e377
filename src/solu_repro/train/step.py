"""One optimizer step and what it needs: the learning-rate schedule, AdamW's parameter groups
and ``train_step``, the one definition of a step that ``train`` runs and the benchmarks time
(``make_step``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from contextlib import nullcontext
from typing import Any, Callable

import torch

from ..model import Transformer, model_loss
from .config import TrainConfig, TrainingDivergedError
from .runtime import Runtime, _all_reduce_sum, autocast


# glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30
_ALLOCATOR: list[bool] = []  # [whether the setting took], once set


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep the memory a CPU step frees, for the next step to reuse.

    A training step on a CPU allocates and frees tens of MB of activations, gradients and
    logit chunks. By default glibc serves each block above its (adaptive) mmap threshold with
    a fresh mapping and unmaps it when freed, and trims the heap's free top, so every step
    page-faults its buffers in again and the kernel zero-fills them: at the cpu zoo's shapes
    about 15,000 page faults and 30 ms of system time per 150 ms step. With the mmap threshold
    fixed at 256 MB and the trim threshold at 1 GB the pages stay mapped; a step got 1.25x
    faster (and TransformerLens's step in the same process alike). The cost: the process keeps
    its peak memory (RSS) until it exits.

    Process-wide and idempotent; ``train_step`` calls it on a CPU, ``harvest`` too. Nothing is
    changed off glibc, where the environment already sets malloc's thresholds
    (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``: a choice
    made on purpose, e.g. by the benchmarks' memory probes), or where
    ``SOLU_REPRO_DEFAULT_MALLOC`` is set. Returns whether it is in effect.
    """
    if _ALLOCATOR:
        return _ALLOCATOR[0]
    ok = False
    if sys.platform.startswith("linux") and not any(
            v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                      "GLIBC_TUNABLES", "SOLU_REPRO_DEFAULT_MALLOC")):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            if os.confstr("CS_GNU_LIBC_VERSION"):  # glibc (not musl), whose mallopt this is
                ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError, ValueError):
            ok = False
    _ALLOCATOR.append(ok)
    return ok


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


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> None:
    mult = lr_multiplier(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * mult


def train_step(wrapped: torch.nn.Module, model: Transformer, optimizer: torch.optim.Optimizer,
               micro_batches: list[torch.Tensor], cfg: TrainConfig, precision: str,
               rt: Runtime) -> tuple[float, float]:
    """One optimizer step: the definition ``train`` runs and ``make_step`` times.

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
    if rt.device.type == "cpu":
        keep_freed_memory()
    step_loss = torch.zeros((), dtype=torch.float64, device=rt.device)
    for i, tokens in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = nullcontext() if (last or not rt.distributed) else wrapped.no_sync()
        with sync:
            with autocast(precision, rt.device):
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



def make_step(cfg: TrainConfig, precision: str, device: torch.device | str = "cpu",
              seed: int = 0) -> Callable[[], None]:
    """One full optimizer step of ``cfg``'s model on fixed random tokens, in the resolved
    ``precision`` ("fp32" or "bf16"): ``train_step`` (forward on all but the last position,
    fused unembedding and cross-entropy, backward, gradient clipping, AdamW over
    ``param_groups``) at the peak learning rate. What the precision probe and the speed
    benchmarks time."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # the model's own init seed, no global side effect
        torch.manual_seed(cfg.model.seed)
        model = Transformer(cfg.model).to(device)
    model.train()
    optimizer = make_optimizer(model, cfg, device)
    set_lr(optimizer, cfg.warmup_steps, cfg)
    gen = torch.Generator().manual_seed(seed)
    micro = cfg.batch_size // cfg.grad_accum
    batches = [torch.randint(0, cfg.model.d_vocab, (micro, cfg.model.n_ctx), generator=gen)
               .to(device) for _ in range(cfg.grad_accum)]
    rt = Runtime(device)
    wrapped = torch.compile(model) if cfg.compile else model  # as train() wraps it

    def step() -> None:
        train_step(wrapped, model, optimizer, batches, cfg, precision, rt)

    return step
