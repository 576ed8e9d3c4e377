"""Scaling-law fits and the effective model-size multiplier of paper §5 (Figure 1, bottom).

The paper converts a loss difference into "the baseline model size [the SoLU model] performs
equivalently to, as predicted from the scale laws": fit ``L(N) = a * N**-alpha + c`` to the
baseline models' losses, invert it at the SoLU model's loss, and divide by the SoLU model's
size. Its worked example: a 1B baseline reaches 2.3, a 2B baseline 2.1, a 1B SoLU model 2.1,
so the SoLU model performs at 2x its size. The paper finds SoLU-LN within 0.95x-1.05x at every
size (§5) and SoLU without its LayerNorm like a model 30-50% smaller (§4.3), i.e. ~0.5-0.7x.

Which N: the non-embedding parameter count (``result.json``'s ``n_params``), the convention of
Kaplan et al. (2020), under which loss follows one power law across depths and widths. At the
book's small sizes the embedding and unembedding matrices are most of the parameters (at the
cpu scale ~2.1M of ~2.3M) and do not grow with depth, so total counts would squeeze the sizes
together and distort the exponent. A model's multiplier divides by its own N: SoLU-LN's extra
LayerNorm adds ``2 * d_mlp`` parameters per layer, so equal losses give slightly under 1x.

The fit is meaningful only if the baseline improves with size: fewer than two sizes, or a
larger baseline that is not better than a smaller one (undertrained small models, noise)
raise ``ScalingFitError`` with the reason, which a notebook reports instead of a number.

numpy only: ``c`` is profiled over ``[0, min L)``; for each ``c`` a straight-line fit of
``log(L - c)`` against ``log N`` gives ``a`` and ``alpha``, and the ``c`` with the smallest
squared error in loss is kept (grid search, then golden-section refinement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

STATUSES = ("interpolated", "extrapolated", "below_asymptote")
"""How an effective size was obtained: inside the fitted baseline sizes, outside them, or
for a loss below the fitted asymptote ``c`` (then only a lower bound is known)."""

_GRID = 400          # profile grid over c
_GOLDEN_ITERS = 100  # golden-section refinement steps (bracket shrinks by 0.618 each)
_RANGE_RTOL = 1e-9   # a size this close to a fitted size counts as inside the range


class ScalingFitError(ValueError):
    """The baseline losses cannot support a scaling-law fit; the message says why."""


def check_baseline(n_params: Sequence[float], losses: Sequence[float],
                   min_points: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate baseline sizes and losses for a fit; return them as arrays sorted by size.

    Args:
        n_params: the baseline models' non-embedding parameter counts.
        losses: their losses (same order).
        min_points: the fewest sizes a fit accepts.

    Returns:
        ``(n, loss)`` float arrays sorted by increasing ``n``.

    Raises:
        ScalingFitError: too few points, non-finite or non-positive values, a repeated size,
            or a larger model whose loss is not lower than a smaller one's.
    """
    n = np.asarray(n_params, dtype=np.float64).reshape(-1)
    loss = np.asarray(losses, dtype=np.float64).reshape(-1)
    if n.shape != loss.shape:
        raise ScalingFitError(f"{n.size} sizes but {loss.size} losses")
    if n.size < min_points:
        raise ScalingFitError(
            f"{n.size} baseline size(s): a scaling law needs at least {min_points} sizes")
    if not (np.all(np.isfinite(n)) and np.all(n > 0)):
        raise ScalingFitError(f"sizes must be finite and positive, got {n.tolist()}")
    if not (np.all(np.isfinite(loss)) and np.all(loss > 0)):
        raise ScalingFitError(f"losses must be finite and positive, got {loss.tolist()}")
    order = np.argsort(n, kind="stable")
    n, loss = n[order], loss[order]
    if np.any(np.diff(n) == 0):
        raise ScalingFitError(f"repeated baseline size in {n.tolist()}")
    worse = [(int(n[i]), float(loss[i]), int(n[i + 1]), float(loss[i + 1]))
             for i in range(n.size - 1) if loss[i + 1] >= loss[i]]
    if worse:
        pairs = "; ".join(f"N={n1:,} has loss {l1:.4f} >= {l0:.4f} at N={n0:,}"
                          for n0, l0, n1, l1 in worse)
        raise ScalingFitError(
            "the baseline does not improve with size (" + pairs + "): loss is not a "
            "decreasing function of N, so no scaling law L(N) = a*N^-alpha + c fits it and "
            "an effective size multiplier would be meaningless")
    return n, loss


@dataclass(frozen=True)
class ScalingFit:
    """A fitted ``L(N) = a * N**-alpha + c``.

    Attributes:
        a, alpha, c: the law's parameters (``alpha > 0``, ``0 <= c < min L``).
        n_params: the baseline sizes it was fitted to (increasing).
        losses: their losses.
        c_fitted: False when ``c`` was fixed rather than fitted (two points, or a given ``c``).
        c_at_bound: the best ``c`` sits at an end of ``[0, min L)``: the offset is not
            identified by the data (a pure power law, or an asymptote at the best loss).
        rms_residual: root-mean-square of ``L - L_fit`` over the points.
    """

    a: float
    alpha: float
    c: float
    n_params: tuple[float, ...]
    losses: tuple[float, ...]
    c_fitted: bool
    c_at_bound: bool
    rms_residual: float

    @property
    def n_points(self) -> int:
        return len(self.n_params)

    @property
    def dof(self) -> int:
        """Points minus fitted parameters: 0 means the law passes through every point and
        the data cannot test it."""
        return self.n_points - (3 if self.c_fitted else 2)

    @property
    def n_range(self) -> tuple[float, float]:
        return self.n_params[0], self.n_params[-1]

    def predict(self, n: float | np.ndarray) -> float | np.ndarray:
        """The law's loss at size(s) ``n``."""
        out = self.a * np.power(np.asarray(n, dtype=np.float64), -self.alpha) + self.c
        return float(out) if np.ndim(out) == 0 else out

    def size_for_loss(self, loss: float) -> float:
        """The baseline size the law predicts reaches ``loss`` (``inf`` at or below ``c``)."""
        if not math.isfinite(loss):
            raise ValueError(f"loss must be finite, got {loss}")
        if loss <= self.c:
            return math.inf
        with np.errstate(over="ignore"):
            n = float(np.exp(-np.log((loss - self.c) / self.a) / self.alpha))
        return n

    def __str__(self) -> str:
        return f"L(N) = {self.a:.4g} * N^-{self.alpha:.4g} + {self.c:.4g}"


def _loglinear(logn: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``y = log a - alpha * log N``: returns ``(a, alpha)``."""
    x = logn - logn.mean()
    slope = float(np.dot(x, y - y.mean()) / np.dot(x, x))
    intercept = float(y.mean() - slope * logn.mean())
    return math.exp(intercept), -slope


def _profile(n: np.ndarray, loss: np.ndarray, c: float) -> tuple[float, float, float]:
    """``(sse, a, alpha)`` of the best log-log line at a fixed offset ``c``."""
    logn = np.log(n)
    a, alpha = _loglinear(logn, np.log(loss - c))
    pred = a * np.exp(-alpha * logn) + c
    return float(np.sum((loss - pred) ** 2)), a, alpha


def fit_scaling_law(n_params: Sequence[float], losses: Sequence[float],
                    c: float | None = None) -> ScalingFit:
    """Fit ``L(N) = a * N**-alpha + c`` to baseline sizes and losses.

    With three or more sizes ``c`` is fitted in ``[0, min L)``; with two it is fixed at 0
    (two points determine only a pure power law), unless ``c`` is given.

    Args:
        n_params: baseline non-embedding parameter counts.
        losses: their losses; must strictly decrease with size.
        c: fix the irreducible loss instead of fitting it (``0 <= c < min L``).

    Returns:
        The fit; see ``ScalingFit.dof`` and ``c_at_bound`` for how far to trust it.

    Raises:
        ScalingFitError: see ``check_baseline``; or a given ``c`` outside ``[0, min L)``.
    """
    n, loss = check_baseline(n_params, losses)
    c_max = float(loss.min())
    if c is not None:
        if not (math.isfinite(c) and 0 <= c < c_max):
            raise ScalingFitError(f"c={c} must be in [0, min loss={c_max:.4g})")
        best_c, fitted = float(c), False
    elif n.size < 3:
        best_c, fitted = 0.0, False
    else:
        best_c, fitted = _best_offset(n, loss, c_max), True
    sse, a, alpha = _profile(n, loss, best_c)
    at_bound = fitted and (best_c <= 1e-6 * c_max or best_c >= c_max * (1 - 1e-5))
    return ScalingFit(a=a, alpha=alpha, c=best_c, n_params=tuple(n.tolist()),
                      losses=tuple(loss.tolist()), c_fitted=fitted, c_at_bound=at_bound,
                      rms_residual=math.sqrt(sse / n.size))


def _best_offset(n: np.ndarray, loss: np.ndarray, c_max: float) -> float:
    # c = c_max * (1 - q): the geometric grid in q is dense near c_max, where the objective
    # changes fastest (log(L - c) of the best point diverges there).
    q = np.geomspace(1e-7, 1.0, _GRID)
    cs = np.concatenate([c_max * (1 - q), [0.0]])
    cs = np.unique(np.clip(cs, 0.0, c_max * (1 - 1e-7)))
    sse = np.array([_profile(n, loss, ci)[0] for ci in cs])
    i = int(np.argmin(sse))
    lo, hi = cs[max(i - 1, 0)], cs[min(i + 1, cs.size - 1)]
    # Golden-section search for the minimum inside the grid bracket around the best point.
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = _profile(n, loss, x1)[0], _profile(n, loss, x2)[0]
    for _ in range(_GOLDEN_ITERS):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - g * (hi - lo)
            f1 = _profile(n, loss, x1)[0]
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + g * (hi - lo)
            f2 = _profile(n, loss, x2)[0]
    candidates = [(sse[i], float(cs[i])), (f1, x1), (f2, x2)]
    return min(candidates)[1]


@dataclass(frozen=True)
class EffectiveSize:
    """A model's size measured in baseline sizes (paper Figure 1, bottom).

    Attributes:
        loss: the model's loss.
        n_params: its own non-embedding parameter count.
        baseline_n: the baseline size the fitted law predicts reaches ``loss`` (``inf``
            below the asymptote).
        multiplier: ``baseline_n / n_params``; for ``below_asymptote`` the lower bound
            ``largest fitted baseline size / n_params`` (the model beat every baseline).
        status: "interpolated" (``baseline_n`` within the fitted sizes), "extrapolated"
            (outside them: the law is trusted beyond its data) or "below_asymptote".
    """

    loss: float
    n_params: float
    baseline_n: float
    multiplier: float
    status: str

    @property
    def is_lower_bound(self) -> bool:
        return self.status == "below_asymptote"

    def __str__(self) -> str:
        if self.status == "below_asymptote":
            return f">= {self.multiplier:.2f}x (loss below the fitted asymptote)"
        if self.status == "extrapolated":
            return f"{self.multiplier:.2f}x (extrapolated beyond the fitted sizes)"
        return f"{self.multiplier:.2f}x"


def effective_size_multiplier(loss: float, n_params: float, fit: ScalingFit) -> EffectiveSize:
    """The baseline size that would reach ``loss``, divided by ``n_params``.

    Args:
        loss: the model's loss (same kind of loss as the fit's: e.g. final validation loss).
        n_params: the model's non-embedding parameter count.
        fit: the baseline's scaling law.

    Returns:
        The multiplier with its status: 1.0x is "as good as a baseline of the same size",
        2.0x "as good as a baseline twice as big". Losses outside the fitted baseline losses
        are flagged "extrapolated"; a loss at or below ``fit.c`` gets the lower bound
        ``max(fit.n_params) / n_params`` and status "below_asymptote".
    """
    loss, n_params = float(loss), float(n_params)
    if not math.isfinite(loss) or loss <= 0:
        raise ValueError(f"loss must be finite and positive, got {loss}")
    if not math.isfinite(n_params) or n_params <= 0:
        raise ValueError(f"n_params must be finite and positive, got {n_params}")
    n_lo, n_hi = fit.n_range
    baseline_n = fit.size_for_loss(loss)
    if math.isinf(baseline_n):
        return EffectiveSize(loss, n_params, math.inf, n_hi / n_params, "below_asymptote")
    inside = n_lo * (1 - _RANGE_RTOL) <= baseline_n <= n_hi * (1 + _RANGE_RTOL)
    return EffectiveSize(loss, n_params, baseline_n, baseline_n / n_params,
                         "interpolated" if inside else "extrapolated")
