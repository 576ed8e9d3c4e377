"""Which precision a run trains in: chosen by measurement on CPUs, bf16 on CUDA.

``precision="auto"`` means "the faster of fp32 and bf16 autocast on this machine". On a CUDA
GPU with bf16 support that is bf16. On a CPU it depends on the chip: with native bf16
matmuls (AVX-512 BF16, AMX) a bf16 step can be several times faster than fp32; without
them, bf16 is emulated and far slower. So ``choose`` times a few training steps of the run's
own model in each precision, interleaved, on a small batch (about a second at the cpu zoo's
shapes), and picks bf16 only when it is clearly faster (``BF16_MIN_SPEEDUP``). A small
matmul is timed first: where bf16 is emulated (a bf16 matmul many times slower) no step is
timed at all.

The choice belongs to the run, not to the config: the config keeps "auto", so the run hash
and directory are the same on every machine; the resolved precision and the probe's figures
go into each checkpoint and into ``result.json``; a resumed run keeps the precision it started
with, even on a machine that would choose differently.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from .runtime import autocast, torch_threads  # noqa: F401  (autocast: re-exported)
from .step import make_step
from .timing import interleave

# bf16 must be at least this much faster than fp32 (median step time) to be chosen: a
# near-tie is not worth bf16's rounding, and a margin keeps the choice from flipping between
# runs on one machine when the two are close.
BF16_MIN_SPEEDUP = 1.1
PROBE_ROWS = 4  # rows per probe step (of the run's own n_ctx); 2 rows understated bf16's gain
PROBE_ROUNDS = 3  # interleaved fp32, bf16 rounds after one warmup step of each
# A bf16 matmul this much slower than fp32 (fp32 time / bf16 time below this) is emulated:
# fp32 without timing any steps.
MATMUL_GATE = 0.5


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains in, and why.

    Attributes:
        precision: "fp32" or "bf16".
        reason: "config" (set explicitly), "cuda" (bf16 where the GPU supports it),
            "probe" (measured on this CPU), "zoo probe" (one probe shared by every model of
            a zoo on this machine, ``zoo.shared_precision``) or "resumed" (kept from the
            run's checkpoint).
        fp32_step_s, bf16_step_s: the probe's median step times (probe only).
        speedup: ``fp32_step_s / bf16_step_s`` (probe only).
        probe_rows, probe_threads: the probe's batch rows and torch threads.
        cpu_capability: torch's CPU kernel path during the probe (e.g. "AVX512").
        matmul_speedup: fp32 over bf16 time of a small matmul, the probe's first look; below
            ``MATMUL_GATE`` bf16 is emulated and no steps are timed.
    """

    precision: str
    reason: str
    fp32_step_s: float | None = None
    bf16_step_s: float | None = None
    speedup: float | None = None
    probe_rows: int | None = None
    probe_threads: int | None = None
    cpu_capability: str | None = None
    matmul_speedup: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PrecisionChoice":
        return cls(**d)

    def __str__(self) -> str:
        if self.reason not in ("probe", "zoo probe"):
            return f"{self.precision} ({self.reason})"
        if self.speedup is None:
            return (f"{self.precision} ({self.reason}: a bf16 matmul ran {1 / self.matmul_speedup:.0f}x "
                    "slower than fp32, so bf16 is emulated here)")
        return (f"{self.precision} ({self.reason}: fp32 {self.fp32_step_s * 1e3:.0f} ms, bf16 "
                f"{self.bf16_step_s * 1e3:.0f} ms per {self.probe_rows}-row step, bf16 "
                f"{self.speedup:.2f}x; bf16 needs {BF16_MIN_SPEEDUP}x)")


def cpu_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


_PROBES: dict[tuple, PrecisionChoice] = {}


def probe_cpu(cfg, rows: int = PROBE_ROWS, rounds: int = PROBE_ROUNDS) -> PrecisionChoice:
    """Time training steps of ``cfg``'s model in fp32 and in bf16 autocast on this CPU.

    The steps are ``make_step``'s (the training loop's own step) on
    ``rows`` random rows, on one thread. Results are remembered per model shape and kernel
    path for the life of the process.
    """
    rows = max(1, min(rows, cfg.batch_size // cfg.grad_accum))
    key = (cfg.model, rows, cpu_capability())
    if key in _PROBES:
        return _PROBES[key]
    small = cfg.replace(batch_size=rows, grad_accum=1)
    # One thread: what separates native from emulated bf16 is the kernels, and a thread pool
    # on a core that another process is using stalls at every parallel region, which once
    # made an fp32 probe 13x slower than bf16 here (against 1.4x on an idle machine).
    with torch_threads(1):
        matmul = matmul_speedup()
        if matmul < MATMUL_GATE:
            # Emulated bf16 (seen: 0.4 against 85 GFLOP/s): a bf16 step would take many
            # seconds, so the steps are not timed at all.
            choice = PrecisionChoice("fp32", "probe", probe_rows=0, probe_threads=1,
                                     cpu_capability=cpu_capability(), matmul_speedup=matmul)
            _PROBES[key] = choice
            return choice
        steps = {p: make_step(small.replace(precision=p), p, "cpu")
                 for p in ("fp32", "bf16")}
        samples = interleave(steps, "cpu", rounds=rounds, steps_per_round=1, warmup=1)
    fp32_s = statistics.median(samples["fp32"].all)
    bf16_s = statistics.median(samples["bf16"].all)
    speedup = fp32_s / bf16_s
    choice = PrecisionChoice("bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32", "probe",
                             fp32_s, bf16_s, speedup, rows, 1, cpu_capability(), matmul)
    _PROBES[key] = choice
    return choice


def matmul_speedup(size: int = 256, calls: int = 3) -> float:
    """fp32 time over bf16 time of a small square matmul (best of ``calls``), a few ms."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            x @ x
            times.append(time.perf_counter() - t0)
        best[dtype] = min(times)
    return best[torch.float32] / best[torch.bfloat16]


SHARED_ENV = "SOLU_SHARED_PRECISION"
"""Set by the zoo (``zoo.shared_precision``) to one ``PrecisionChoice`` as JSON: every "auto"
CPU run it trains takes that choice instead of probing on its own. A probe times the machine
as it is at that moment, so beside another job each run of a zoo could choose differently
(seen: 3 of 6 matched models in fp32, 3 in bf16, with CI running beside the build), and a
matched seed pair would then compare two precisions."""


def shared_choice() -> PrecisionChoice | None:
    """The zoo's shared choice from ``SHARED_ENV``, or None when it is not set."""
    raw = os.environ.get(SHARED_ENV)
    if not raw:
        return None
    try:
        d = json.loads(raw)
        choice = PrecisionChoice.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{SHARED_ENV} must be a precision choice as JSON (the zoo sets it), "
                         f"got {raw!r}: unset it") from exc
    if choice.precision not in ("fp32", "bf16"):
        raise ValueError(f"{SHARED_ENV} names precision {choice.precision!r}: unset it")
    return choice


def choose(cfg, device: torch.device) -> PrecisionChoice:
    """The precision a new run of ``cfg`` trains in on ``device``: the config's, bf16 on a
    CUDA GPU that supports it, the zoo's shared choice (``SHARED_ENV``), else a probe."""
    if cfg.precision != "auto":
        return PrecisionChoice(cfg.precision, "config")
    if device.type == "cuda":
        return PrecisionChoice("bf16" if torch.cuda.is_bf16_supported() else "fp32", "cuda")
    shared = shared_choice()
    if shared is not None:
        return shared
    return probe_cpu(cfg)


