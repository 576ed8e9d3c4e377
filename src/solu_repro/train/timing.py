"""Timing callables side by side: interleaved rounds (A B A B ...), so machine noise hits
both alike; warmup calls discarded; medians, and a bootstrap interval of their ratio.

Pure timing, below the training step: ``train.precision`` uses it to probe bf16 against fp32,
``solu_repro.speed`` and ``benchmarks/`` to compare activations and models.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

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

