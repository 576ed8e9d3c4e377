"""Side-by-side step-time measurement: is SoLU-LN slower to train than GELU (paper §5)?

Two (or more) callables are timed in interleaved rounds (A B A B ...), so machine noise
(other processes, thermal drift, a background training job) hits both alike; warmup calls
are discarded; each model's step time is the median of its samples; the slowdown is the ratio
of medians, with a bootstrap interval and the range of per-round ratios.

The paper reports SoLU-LN slows training by "less than 1%" with proper GPU kernels. Unfused
eager PyTorch on a CPU is a worst case: the softmax and the extra LayerNorm over ``d_mlp``
are memory-bound passes that a fused kernel would do in one sweep. ``make_activation_step``
times that stage alone, the part a fused kernel would shrink.

Used by ``benchmarks/train_throughput.py`` (many rounds, every depth) and by the book's
performance notebook (a few rounds at its scale's shapes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .activations import MLPActivation
from .model import ModelConfig
from .train import TrainConfig
from .train import precision as precision_mod
from .train.runtime import autocast, torch_threads  # noqa: F401  (re-exported)
from .train.step import make_step
from .train.timing import (Samples, Timer, _check_count, _sync, interleave,  # noqa: F401
                           quantile, ratio_stats)


def make_train_step(cfg: TrainConfig, device: torch.device | str = "cpu",
                    seed: int = 0) -> Callable[[], None]:
    """One full optimizer step of ``cfg``'s model on fixed random tokens (``train.make_step``)
    in the precision a run of ``cfg`` would choose on this machine (``resolved_precision``)."""
    return make_step(cfg, resolved_precision(cfg, device), device, seed)


# --- what is timed -----------------------------------------------------------------------------


def train_flops_per_token(m: ModelConfig) -> float:
    """Model FLOPs of one training token (forward + backward = 3x forward; PaLM's count):
    6 per matmul weight (QKV, O, W_in, W_out, W_U; no embedding lookups), plus attention's
    ``12 * n_layers * n_ctx * n_heads * d_head`` (scores and weighted sum, no causal
    discount). Used for MFU: achieved model FLOP/s over a measured matmul peak."""
    attn_w = m.d_model * 3 * m.n_heads * m.d_head + m.n_heads * m.d_head * m.d_model
    mlp_w = 2 * m.d_model * m.d_mlp
    matmul_weights = m.n_layers * (attn_w + mlp_w) + m.d_model * m.d_vocab
    return 6 * matmul_weights + 12 * m.n_layers * m.n_ctx * m.n_heads * m.d_head


PEAK_MATMUL_SIZE = 2048


def make_matmul(dtype: torch.dtype, device: torch.device | str = "cpu",
                size: int = PEAK_MATMUL_SIZE) -> Callable[[], None]:
    """One ``size``^3 square matmul in ``dtype`` (``2 * size**3`` FLOPs): the peak an MFU is
    measured against. ``benchmarks/train_throughput.py`` times it interleaved with the steps
    (``interleave``), so the peak and the steps see the same machine."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)

    def matmul() -> None:
        torch.mm(a, b, out=out)

    return matmul


def matmul_flops(size: int = PEAK_MATMUL_SIZE) -> float:
    return 2.0 * size ** 3


def matmul_peak_flops(dtype: torch.dtype, device: torch.device | str = "cpu",
                      size: int = PEAK_MATMUL_SIZE, calls: int = 5) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on ``device`` with the current threads
    (``make_matmul``; best of ``calls`` timed calls after one warmup)."""
    device = torch.device(device)
    matmul = make_matmul(dtype, device, size)
    best = float("inf")
    for i in range(calls + 1):
        _sync(device)
        t0 = time.perf_counter()
        matmul()
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - t0)
    return matmul_flops(size) / best


def resolved_precision(cfg: TrainConfig, device: torch.device | str) -> str:
    """The precision a new run of ``cfg`` trains in on ``device`` ("auto" is probed)."""
    return precision_mod.choose(cfg, torch.device(device)).precision


def make_activation_step(act_fn: str, cfg: TrainConfig, device: torch.device | str = "cpu",
                         seed: int = 0) -> Callable[[], None]:
    """Forward + backward of the MLP activation stage alone on a ``(batch*n_ctx, d_mlp)``
    tensor: everything else in a step is identical between GELU and SoLU-LN models."""
    device = torch.device(device)
    m = cfg.model
    act = MLPActivation(act_fn, m.d_mlp, m.solu_blocks, m.ln_eps).to(device)
    # Under bf16 autocast the activation sees the bf16 output of the W_in matmul.
    precision = resolved_precision(cfg, device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gen = torch.Generator().manual_seed(seed)
    shape = (cfg.batch_size * m.n_ctx, m.d_mlp)
    x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype).requires_grad_(True)
    grad = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)

    def step() -> None:
        with autocast(precision, device):
            _, post = act(x)
        post.backward(grad)
        x.grad = None
        for p in act.parameters():
            p.grad = None

    return step


# --- a whole comparison ------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeedComparison:
    """Median times of a baseline ``a`` and a candidate ``b`` timed side by side.

    Attributes:
        what: what one timed call does (e.g. "training step, 1L, cpu shapes").
        a, b: labels ("gelu", "solu_ln").
        median_a_s, median_b_s: median seconds per call.
        iqr_a_s, iqr_b_s: interquartile ranges of the call times.
        ratio: ``median_b_s / median_a_s`` (1.01 = b is 1% slower).
        ci90: 90% bootstrap interval of the ratio.
        round_range: min and max of the per-round ratios.
        n_samples: timed calls of each callable.
        threads: torch intra-op threads during the measurement.
    """

    what: str
    a: str
    b: str
    median_a_s: float
    median_b_s: float
    iqr_a_s: tuple[float, float]
    iqr_b_s: tuple[float, float]
    ratio: float
    ci90: tuple[float, float]
    round_range: tuple[float, float]
    n_samples: int
    threads: int

    @property
    def overhead(self) -> float:
        """Fractional slowdown of ``b``: ``ratio - 1``."""
        return self.ratio - 1

    @property
    def resolves(self) -> bool:
        """Whether the 90% interval excludes 1 (the slowdown is resolved by this run)."""
        return self.ci90[0] > 1 or self.ci90[1] < 1

    def __str__(self) -> str:
        return (f"{self.what}: {self.b} / {self.a} = {self.ratio:.3f}x (90% CI "
                f"{self.ci90[0]:.3f}-{self.ci90[1]:.3f}; {self.median_a_s * 1e3:.1f} vs "
                f"{self.median_b_s * 1e3:.1f} ms, {self.n_samples} samples each)")


def compare(fns: Mapping[str, Callable[[], None]], what: str,
            device: torch.device | str | None = None, rounds: int = 3, steps_per_round: int = 1,
            warmup: int = 1, threads: int | None = None, n_boot: int = 2000, seed: int = 0,
            timer: Timer = time.perf_counter) -> SpeedComparison:
    """Time exactly two callables side by side; the first is the baseline ``a``.

    Args:
        fns: ``{a_label: fn_a, b_label: fn_b}``.
        what: a label of what one call does, for reports.
        device, rounds, steps_per_round, warmup, timer: as for ``interleave``.
        threads: torch intra-op threads for the measurement (None: unchanged). On a CPU
            shared with other work, 1 avoids oversubscribed thread-pool stalls.
        n_boot, seed: bootstrap of the ratio's interval.
    """
    if len(fns) != 2:
        raise ValueError(f"compare times exactly two callables, got {len(fns)}")
    with torch_threads(threads):
        n_threads = torch.get_num_threads()
        samples = interleave(fns, device, rounds, steps_per_round, warmup, timer)
    (a_name, sa), (b_name, sb) = samples.items()
    r = ratio_stats(sa, sb, n_boot=n_boot, seed=seed)
    return SpeedComparison(
        what=what, a=a_name, b=b_name, median_a_s=sa.median, median_b_s=sb.median,
        iqr_a_s=sa.iqr(), iqr_b_s=sb.iqr(), ratio=r["ratio"], ci90=(r["ci90_lo"], r["ci90_hi"]),
        round_range=(r["round_min"], r["round_max"]), n_samples=len(sa.all), threads=n_threads)


def compare_train_steps(cfg_a: TrainConfig, cfg_b: TrainConfig, what: str | None = None,
                        device: torch.device | str = "cpu", seed: int = 0,
                        **kwargs) -> SpeedComparison:
    """Training-step time of two configs (e.g. matched GELU and SoLU-LN zoo models).

    ``kwargs`` go to ``compare`` (rounds, steps_per_round, warmup, threads, ...).
    """
    label_a, label_b = cfg_a.model.act_fn, cfg_b.model.act_fn
    if label_a == label_b:
        label_a, label_b = cfg_a.name or "a", cfg_b.name or "b"
    what = what or f"training step, {cfg_a.model.n_layers}L"
    with torch_threads(kwargs.get("threads")):
        fns = {label_a: make_train_step(cfg_a, device, seed),
               label_b: make_train_step(cfg_b, device, seed)}
    return compare(fns, what, device=device, seed=seed, **kwargs)


def compare_activations(cfg: TrainConfig, acts: tuple[str, str] = ("gelu", "solu_ln"),
                        device: torch.device | str = "cpu", seed: int = 0,
                        **kwargs) -> SpeedComparison:
    """MLP activation stage alone (forward + backward) at ``cfg``'s shapes, two activations."""
    if len(set(acts)) != 2:
        raise ValueError(f"compare_activations needs two different activations, got {acts}")
    m = cfg.model
    what = f"MLP activation fwd+bwd on ({cfg.batch_size * m.n_ctx}, {m.d_mlp})"
    fns = {act: make_activation_step(act, cfg, device, seed) for act in acts}
    return compare(fns, what, device=device, seed=seed, **kwargs)
