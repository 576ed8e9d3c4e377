"""Where a step runs: the device, the process group under torchrun, the autocast context of a
resolved precision, and torch's CPU thread count."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from ..model import ConfigError
from .config import TrainConfig


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



def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved precision ("fp32": none)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be resolved to 'fp32' or 'bf16', got {precision!r}")
    return torch.autocast(device_type=device.type, enabled=False)



@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op CPU threads (None: leave as is)."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)

