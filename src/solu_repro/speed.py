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

import contextlib
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch

from .activations import MLPActivation
from . import precision as precision_mod
from .model import ModelConfig, Transformer
from .train import (Runtime, TrainConfig, make_optimizer, set_lr,
                    train_step)

Timer = Callable[[], float]


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def quantile(xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (``q`` in [0, 1]) of a non-empty list."""
    if not xs:
        raise ValueError("quantile of an empty list")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Samples:
    """Per-call times (seconds) of one timed callable, grouped by round."""

    rounds: list[list[float]] = field(default_factory=list)

    @property
    def all(self) -> list[float]:
        return [t for r in self.rounds for t in r]

    @property
    def median(self) -> float:
        return statistics.median(self.all)

    def iqr(self) -> tuple[float, float]:
        xs = self.all
        return quantile(xs, 0.25), quantile(xs, 0.75)


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def interleave(fns: Mapping[str, Callable[[], None]], device: torch.device | str | None = None,
               rounds: int = 3, steps_per_round: int = 1, warmup: int = 1,
               timer: Timer = time.perf_counter) -> dict[str, Samples]:
    """Time each callable in A B A B ... rounds; ``warmup`` calls of each are discarded.

    Args:
        fns: name -> a callable doing one unit of work (e.g. one training step).
        device: a CUDA device is synchronized around each call; None or CPU is not.
        rounds: interleaved rounds.
        steps_per_round: timed calls of each callable per round.
        warmup: untimed calls of each callable first (allocator, caches, lazy init).
        timer: the clock (tests pass a fake one).

    Returns:
        name -> its samples: ``rounds`` rounds of ``steps_per_round`` times each.
    """
    if not fns:
        raise ValueError("nothing to time: fns is empty")
    for name, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"fns[{name!r}] is not callable")
    _check_count("rounds", rounds, 1)
    _check_count("steps_per_round", steps_per_round, 1)
    _check_count("warmup", warmup, 0)
    for fn in fns.values():  # warmup, also interleaved
        for _ in range(warmup):
            fn()
    _sync(device)
    samples = {name: Samples() for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times = []
            for _ in range(steps_per_round):
                _sync(device)
                t0 = timer()
                fn()
                _sync(device)
                times.append(timer() - t0)
            samples[name].rounds.append(times)
    return samples


def ratio_stats(a: Samples, b: Samples, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """How much slower ``b`` is than ``a``.

    Returns:
        ``ratio``: median(b) / median(a); ``round_min``/``round_max``: the extremes of the
        per-round ratios of round medians; ``ci90_lo``/``ci90_hi``: a 90% bootstrap interval
        of the ratio of medians (each model's times resampled with replacement, ``n_boot``
        times, seeded).
    """
    if not a.rounds or not b.rounds:
        raise ValueError("ratio_stats needs samples of both callables")
    if len(a.rounds) != len(b.rounds):
        raise ValueError(f"a has {len(a.rounds)} rounds but b has {len(b.rounds)}: "
                         "compare samples of the same interleaved run")
    _check_count("n_boot", n_boot, 1)
    per_round = [statistics.median(rb) / statistics.median(ra)
                 for ra, rb in zip(a.rounds, b.rounds)]
    rng = random.Random(seed)
    xa, xb = a.all, b.all
    boot = [statistics.median(rng.choices(xb, k=len(xb)))
            / statistics.median(rng.choices(xa, k=len(xa))) for _ in range(n_boot)]
    return {"ratio": b.median / a.median, "round_min": min(per_round),
            "round_max": max(per_round), "ci90_lo": quantile(boot, 0.05),
            "ci90_hi": quantile(boot, 0.95)}


# --- what is timed -----------------------------------------------------------------------------
def make_train_step(cfg: TrainConfig, device: torch.device | str = "cpu",
                    seed: int = 0) -> Callable[[], None]:
    """One full optimizer step of ``cfg``'s model on fixed random tokens: ``train``'s own
    ``train_step`` (forward on all but the last position, fused unembedding and
    cross-entropy, backward, gradient clipping, AdamW over ``param_groups``), at the peak
    learning rate, in the precision a run of ``cfg`` would choose on this machine
    (``resolved_precision``)."""
    device = torch.device(device)
    precision = resolved_precision(cfg, device)
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


def train_flops_per_token(m: ModelConfig) -> float:
    """Model FLOPs of one training token (forward + backward = 3x forward; PaLM's count):
    6 per matmul weight (QKV, O, W_in, W_out, W_U; no embedding lookups), plus attention's
    ``12 * n_layers * n_ctx * n_heads * d_head`` (scores and weighted sum, no causal
    discount). Used for MFU: achieved model FLOP/s over a measured matmul peak."""
    attn_w = m.d_model * 3 * m.n_heads * m.d_head + m.n_heads * m.d_head * m.d_model
    mlp_w = 2 * m.d_model * m.d_mlp
    matmul_weights = m.n_layers * (attn_w + mlp_w) + m.d_model * m.d_vocab
    return 6 * matmul_weights + 12 * m.n_layers * m.n_ctx * m.n_heads * m.d_head


def matmul_peak_flops(dtype: torch.dtype, device: torch.device | str = "cpu", size: int = 2048,
                      calls: int = 5) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on ``device`` with the current threads:
    the peak an MFU is measured against (best of ``calls`` timed calls after one warmup)."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    best = float("inf")
    for i in range(calls + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best


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
        with precision_mod.autocast(precision, device):
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


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op CPU threads (None: leave as is)."""
    if threads is None:
        yield
        return
    _check_count("threads", threads, 1)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


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
