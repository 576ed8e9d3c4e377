"""Paper §5 (and the §4.3 ablation) at our scale: is SoLU-LN as good a language model as GELU?

What the performance notebook shows, each computed from the zoo's own run files:

* loss curves of every zoo model (Figure 1 top: baseline dotted, SoLU solid);
* final validation loss per model and SoLU-LN minus GELU at each depth;
* the effective model-size multiplier (Figure 1 bottom): a scaling law fitted to the GELU
  baseline sizes (``solu_repro.scaling``), each other model's loss expressed as the baseline
  size that would reach it; at the final step and at every evaluation step;
* the SoLU-without-LN penalty (§4.3: "equivalent to a model 30-50% smaller");
* validation loss per source (prose vs code), our stand-in for the downstream breakdown;
* the training-speed overhead, measured live side by side (``solu_repro.speed``).

``performance_measurements`` gathers the numbers the scorecard needs, so they have one source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go
import torch

from ..interp.stats import Equivalence, SeedInterval, equivalence_test, paired_seed_difference
from ..paper import registry
from ..paper import claim as claim_rules
from ..paper.claim import (INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PAPER_LOSS_MARGIN, PAPER_MULTIPLIER_RANGE,
                     PAPER_NO_LN_MULTIPLIER, PAPER_SPEED_OVERHEAD, PARTLY, REPRODUCED, Claim)
from ..scaling import EffectiveSize, ScalingFit, ScalingFitError, effective_size_multiplier, \
    fit_scaling_law
from ..speed import SpeedComparison, compare_activations, compare_train_steps
from ..train import read_metrics
from ..zoo import ZooRun, model_name, zoo_config
from . import style
from .context import BookContext, check_int

BASELINE = "gelu"
SOLU_LN = "solu_ln"
SOLU_NO_LN = "solu"

BLOCKED = "solu_ln_b4"
SPEED_IMPLAUSIBLE = 0.97
"""A step-time ratio CI entirely below this says the timing was disturbed, not that SoLU-LN
(which adds work) is faster."""

SOURCE_LABELS = {"sotu": "prose (State of the Union)", "python-stdlib": "code (Python stdlib)"}


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source)


def _sources(losses: Mapping[str, "ModelLoss"]) -> list[str]:
    """Every source of the validation losses: the known ones first (prose, code), then others."""
    found = {s for m in losses.values() for s in m.per_source}
    return [s for s in SOURCE_LABELS if s in found] + sorted(found - set(SOURCE_LABELS))


# --- final losses ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelLoss:
    """A finished zoo model's final validation loss.

    Attributes:
        name: zoo name ("2L-solu_ln").
        act: its activation.
        depth: its number of layers.
        n_params: non-embedding parameters (the N of the scaling law).
        tokens: training tokens.
        val_loss: final validation loss (nats/token, the whole validation split unless the
            scale caps it).
        per_source: the same per corpus source.
    """

    name: str
    act: str
    depth: int
    n_params: int
    tokens: int
    val_loss: float
    per_source: dict[str, float]


def final_losses(runs: Mapping[str, ZooRun]) -> dict[str, ModelLoss]:
    """The final validation losses of trained zoo runs, in zoo order."""
    out = {}
    for name, run in runs.items():
        r = run.result
        out[name] = ModelLoss(name=name, act=style.act_of(name), depth=style.depth_of(name),
                              n_params=int(r["n_params"]), tokens=int(r["tokens"]),
                              val_loss=float(r["val_loss"]),
                              per_source=dict(r.get("val_loss_per_source", {})))
    return out


def seed_losses(losses: Mapping[str, ModelLoss]) -> dict[str, dict[int, float]]:
    """Final validation loss of every seed of each variant: {"1L-gelu": {0: ..., 1: ...}}."""
    out: dict[str, dict[int, float]] = {}
    for name, m in losses.items():
        out.setdefault(style.variant_of(name), {})[style.seed_of(name)] = m.val_loss
    return out


def seed_mean_losses(losses: Mapping[str, ModelLoss]) -> dict[str, ModelLoss]:
    """One ``ModelLoss`` per variant (named without the seed), its losses the mean over its
    seeds: what the tables, the scaling law and the multipliers use."""
    groups: dict[str, list[ModelLoss]] = {}
    for name, m in losses.items():
        groups.setdefault(style.variant_of(name), []).append(m)
    out = {}
    for variant, ms in groups.items():
        sources = sorted({s for m in ms for s in m.per_source})
        out[variant] = ModelLoss(
            name=variant, act=ms[0].act, depth=ms[0].depth, n_params=ms[0].n_params,
            tokens=ms[0].tokens, val_loss=float(np.mean([m.val_loss for m in ms])),
            per_source={s: float(np.mean([m.per_source[s] for m in ms if s in m.per_source]))
                        for s in sources})
    return out


def matched_seeds(per_seed: Mapping[str, Mapping[int, float]], a: str, b: str
                  ) -> tuple[list[float], list[float]]:
    """The losses of variants ``a`` and ``b`` on the seeds both have (matched pairs: same init
    and data order), in seed order."""
    common = sorted(set(per_seed.get(a, {})) & set(per_seed.get(b, {})))
    return [per_seed[a][i] for i in common], [per_seed[b][i] for i in common]


def seed_table_markdown(per_seed: Mapping[str, Mapping[int, float]]) -> str:
    """Every variant's per-seed final validation loss, mean and seed-to-seed spread."""
    n = max((len(v) for v in per_seed.values()), default=0)
    lines = ["| model | seeds | " + " | ".join(f"seed {i}" for i in range(n))
             + " | mean | sd over seeds |", "|---|---:|" + "---:|" * (n + 2)]
    for variant, by_seed in per_seed.items():
        vals = [by_seed[i] for i in sorted(by_seed)]
        cells = [f"{by_seed[i]:.4f}" if i in by_seed else "" for i in range(n)]
        sd = f"{np.std(vals, ddof=1):.4f}" if len(vals) > 1 else ""
        lines.append(f"| {style.label(variant)} | {len(vals)} | " + " | ".join(cells)
                     + f" | {np.mean(vals):.4f} | {sd} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class DepthCheck:
    """Does depth help the baseline at this budget (GELU loss falls 1L > 2L > 4L)?"""

    losses: dict[int, float]
    monotone: bool

    @property
    def sentence(self) -> str:
        shown = ", ".join(f"{d}L {v:.3f}" for d, v in sorted(self.losses.items()))
        if len(self.losses) < 2:
            return "the zoo has one baseline depth: depth is not compared"
        return (f"GELU final validation loss by depth: {shown}; "
                + ("each deeper model beats the shallower one at this budget"
                   if self.monotone else "a deeper model does NOT beat a shallower one at "
                   "this budget, so the baseline scaling law below has nothing monotone to fit"))


def depth_check(losses: Mapping[str, ModelLoss]) -> DepthCheck:
    """``losses``: seed means (``seed_mean_losses``)."""
    by_depth = {m.depth: m.val_loss for m in losses.values() if m.act == BASELINE}
    ordered = [by_depth[d] for d in sorted(by_depth)]
    return DepthCheck(by_depth, all(b < a for a, b in zip(ordered, ordered[1:])))


def loss_deltas(losses: Mapping[str, ModelLoss], act: str = SOLU_LN) -> dict[int, float]:
    """``act`` minus the GELU baseline, final validation loss, at each depth that has both."""
    out = {}
    for m in losses.values():
        base = losses.get(model_name(m.depth, BASELINE))
        if m.act == act and base is not None:
            out[m.depth] = m.val_loss - base.val_loss
    return out


def format_losses(losses: Mapping[str, ModelLoss], decimals: int = 2,
                  per_source: bool = True) -> str:
    """A fixed-width text table of final validation losses, overall and, with ``per_source``,
    per corpus source."""
    sources = _sources(losses) if per_source else []
    lines = [f"{'model':<12} {'val loss':>8} " + " ".join(f"{s:>14}" for s in sources)]
    for m in losses.values():
        per = " ".join(f"{m.per_source[s]:>14.{decimals}f}" if s in m.per_source else
                       f"{'-':>14}" for s in sources)
        lines.append(f"{m.name:<12} {m.val_loss:>8.{decimals}f} {per}")
    return "\n".join(line.rstrip() for line in lines)


def losses_markdown(losses: Mapping[str, ModelLoss]) -> str:
    """Final validation loss of every model and its difference to the same-depth baseline."""
    lines = ["| model | non-embedding params | tokens | val loss | minus same-depth GELU |",
             "|---|---:|---:|---:|---:|"]
    for m in losses.values():
        base = losses.get(model_name(m.depth, BASELINE))
        delta = "" if base is None or m.act == BASELINE else f"{m.val_loss - base.val_loss:+.4f}"
        lines.append(f"| {style.label(m.name)} | {m.n_params:,} | {m.tokens:,} | "
                     f"{m.val_loss:.4f} | {delta} |")
    return "\n".join(lines)


# --- loss curves -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossCurve:
    """A run's logged training loss and its periodic validation losses.

    The periodic evaluations use ``eval_rows`` evenly spaced validation rows; the last point
    is the final evaluation (the whole validation split unless the scale caps it).
    """

    name: str
    train_tokens: list[int]
    train_loss: list[float]
    val_steps: list[int]
    val_tokens: list[int]
    val_loss: list[float]
    val_per_source: list[dict[str, float]]


def loss_curves(runs: Mapping[str, ZooRun]) -> dict[str, LossCurve]:
    """Read every run's ``metrics.jsonl``."""
    out = {}
    for name, run in runs.items():
        train = [r for r in read_metrics(run.run_dir) if "loss" in r]
        val = [r for r in read_metrics(run.run_dir) if "val_loss" in r]
        out[name] = LossCurve(
            name=name, train_tokens=[int(r["tokens"]) for r in train],
            train_loss=[float(r["loss"]) for r in train],
            val_steps=[int(r["step"]) for r in val], val_tokens=[int(r["tokens"]) for r in val],
            val_loss=[float(r["val_loss"]) for r in val],
            val_per_source=[dict(r.get("val_loss_per_source", {})) for r in val])
    return out


def smooth(values: list[float], weight: float) -> list[float]:
    """Debiased exponential moving average (``weight`` 0: no smoothing)."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** (i + 1)))
    return out


def loss_curve_figure(curves: Mapping[str, LossCurve], smoothing: float = 0.0) -> go.Figure:
    """Figure 1 (top) analogue: training loss vs tokens, validation losses as markers.

    The baseline is dotted and SoLU solid, as in the paper; colours by activation, line width
    by depth.
    """
    fig = style.figure("Loss curves of every zoo model", "training tokens",
                       "loss (nats/token)", height=480)
    depths = sorted({style.depth_of(n) for n in curves})
    for name, c in curves.items():
        width = 1.5 + depths.index(style.depth_of(name))
        train_label = "train loss" + (f", EMA {smoothing:g}" if smoothing else "")
        fig.add_trace(go.Scatter(
            x=c.train_tokens, y=smooth(c.train_loss, smoothing), mode="lines",
            name=style.label(name), legendgroup=name,
            line=dict(color=style.color(name), dash=style.dash(name), width=width),
            hovertemplate=f"{name} {train_label}<br>%{{x:,}} tokens: %{{y:.3f}}<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=c.val_tokens, y=c.val_loss, mode="markers", name=f"{name} val",
            legendgroup=name, showlegend=False,
            marker=dict(color=style.color(name), size=5 + depths.index(style.depth_of(name)),
                        symbol="circle-open"),
            hovertemplate=f"{name} validation<br>%{{x:,}} tokens: %{{y:.4f}}<extra></extra>"))
    fig.update_xaxes(type="log")
    return fig


# --- the scaling law and the effective size multiplier -------------------------------------------
@dataclass(frozen=True)
class BaselineFit:
    """The GELU baseline's scaling law, or why there is none.

    Attributes:
        points: baseline name -> (non-embedding params, loss).
        fit: the fitted law, or None.
        reason: why there is no fit (None when there is one).
    """

    points: dict[str, tuple[int, float]]
    fit: ScalingFit | None
    reason: str | None

    def __str__(self) -> str:
        if self.fit is None:
            return f"no scaling law: {self.reason}"
        notes = []
        if self.fit.dof == 0:
            notes.append(f"{self.fit.n_points} points, {self.fit.n_points} parameters: the "
                         "curve passes through every point and the data cannot test it")
        if not self.fit.c_fitted:
            notes.append("c fixed at 0")
        if self.fit.c_at_bound:
            notes.append("c at the edge of [0, min loss): not identified by the data")
        return str(self.fit) + (f" ({'; '.join(notes)})" if notes else "")


def fit_baseline(points: Mapping[str, tuple[int, float]]) -> BaselineFit:
    """Fit ``L(N) = a*N^-alpha + c`` to baseline (N, loss) points; a failure is a reason."""
    points = dict(points)
    try:
        fit = fit_scaling_law([n for n, _ in points.values()], [l for _, l in points.values()])
    except ScalingFitError as exc:
        return BaselineFit(points, None, str(exc))
    return BaselineFit(points, fit, None)


def baseline_fit(losses: Mapping[str, ModelLoss]) -> BaselineFit:
    """The scaling law of the GELU baseline's final validation losses."""
    return fit_baseline({m.name: (m.n_params, m.val_loss) for m in losses.values()
                         if m.act == BASELINE})


@dataclass(frozen=True)
class SizeMultiplier:
    """One model's effective size in baseline sizes, or why it has none.

    Attributes:
        name: zoo name.
        n_params: its non-embedding parameters (the multiplier divides by these).
        loss: the loss converted.
        effective: the conversion (None when the baseline has no fit).
        reason: why there is no multiplier, or a note on the one there is.
    """

    name: str
    n_params: int
    loss: float
    effective: EffectiveSize | None
    reason: str | None

    @property
    def status(self) -> str:
        return "not testable" if self.effective is None else self.effective.status

    @property
    def value(self) -> float | None:
        """The multiplier, or None when it is not testable or only a lower bound."""
        if self.effective is None or self.effective.is_lower_bound:
            return None
        return self.effective.multiplier

    def __str__(self) -> str:
        return "not testable" if self.effective is None else str(self.effective)


def size_multiplier(name: str, n_params: int, loss: float, bfit: BaselineFit) -> SizeMultiplier:
    if bfit.fit is None:
        return SizeMultiplier(name, n_params, loss, None,
                              f"the baseline has no scaling law: {bfit.reason}")
    eff = effective_size_multiplier(loss, n_params, bfit.fit)
    reason = {"interpolated": None,
              "extrapolated": "the equivalent baseline size is outside the fitted sizes",
              "below_asymptote": "the loss is below the fitted irreducible loss c; only a "
                                 "lower bound (the largest baseline) is known"}[eff.status]
    return SizeMultiplier(name, n_params, loss, eff, reason)


def effective_sizes(losses: Mapping[str, ModelLoss], bfit: BaselineFit
                    ) -> dict[str, SizeMultiplier]:
    """Every non-baseline model's final loss as a multiple of the baseline size."""
    return {m.name: size_multiplier(m.name, m.n_params, m.val_loss, bfit)
            for m in losses.values() if m.act != BASELINE}


def multipliers_markdown(sizes: Mapping[str, SizeMultiplier]) -> str:
    lines = ["| model | non-embedding params | val loss | equivalent baseline size | "
             "multiplier | note |", "|---|---:|---:|---:|---:|---|"]
    for s in sizes.values():
        eq = "" if s.effective is None else (
            "beyond every baseline" if math.isinf(s.effective.baseline_n)
            else f"{s.effective.baseline_n:,.0f}")
        note = "no baseline scaling law (see above)" if s.effective is None else s.reason or ""
        lines.append(f"| {style.label(s.name)} | {s.n_params:,} | {s.loss:.4f} | {eq} | "
                     f"{s} | {note} |")
    return "\n".join(lines)


def scaling_figure(losses: Mapping[str, ModelLoss], bfit: BaselineFit) -> go.Figure:
    """Final validation loss against non-embedding parameters, with the baseline's law."""
    fig = style.figure("Final validation loss vs model size", "non-embedding parameters N",
                       "validation loss (nats/token)", height=440)
    by_act: dict[str, list[ModelLoss]] = {}
    for m in losses.values():
        by_act.setdefault(m.act, []).append(m)
    if bfit.fit is not None:
        lo, hi = bfit.fit.n_range
        grid = np.geomspace(lo / 2, hi * 2, 100)
        fig.add_trace(go.Scatter(x=grid, y=bfit.fit.predict(grid), mode="lines",
                                 name=f"baseline fit: {bfit.fit}",
                                 line=dict(color="#7f7f7f", dash="dash", width=1)))
    for act, ms in by_act.items():
        ms = sorted(ms, key=lambda m: m.n_params)
        fig.add_trace(go.Scatter(
            x=[m.n_params for m in ms], y=[m.val_loss for m in ms],
            mode="lines+markers" if len(ms) > 1 else "markers", name=style.label(act),
            text=[m.name for m in ms], marker=dict(color=style.color(act), size=9),
            line=dict(color=style.color(act), dash=style.dash(act)),
            hovertemplate="%{text}<br>N=%{x:,}<br>loss %{y:.4f}<extra></extra>"))
    if bfit.fit is None:
        fig.add_annotation(text="no scaling law: the baseline does not improve with size",
                           xref="paper", yref="paper", x=0.5, y=1.0, showarrow=False,
                           font=dict(color="#d62728"))
    fig.update_xaxes(type="log")
    return fig


@dataclass(frozen=True)
class MultiplierCurve:
    """Effective size multipliers at every evaluation step shared by the models.

    Attributes:
        tokens: training tokens at each evaluation.
        fits: the baseline fit at each evaluation.
        sizes: model name -> its multiplier at each evaluation.
    """

    tokens: list[int]
    fits: list[BaselineFit]
    sizes: dict[str, list[SizeMultiplier]]

    @property
    def n_testable(self) -> int:
        return sum(f.fit is not None for f in self.fits)


def multiplier_curves(curves: Mapping[str, LossCurve], losses: Mapping[str, ModelLoss],
                      acts: tuple[str, ...] = (SOLU_LN,)) -> MultiplierCurve:
    """Figure 1 (bottom): the multiplier of each ``acts`` model over training.

    At each evaluation step the baseline's validation losses get their own fit; a step where
    the baseline does not improve with size has no multiplier.
    """
    base = [n for n, m in losses.items() if m.act == BASELINE]
    others = [n for n, m in losses.items() if m.act in acts]
    if not base:
        return MultiplierCurve([], [], {n: [] for n in others})
    steps = sorted(set.intersection(*(set(curves[n].val_steps) for n in base + others)))
    tokens, fits, sizes = [], [], {n: [] for n in others}
    for step in steps:
        at = {n: curves[n].val_steps.index(step) for n in base + others}
        bfit = fit_baseline({n: (losses[n].n_params, curves[n].val_loss[at[n]]) for n in base})
        tokens.append(curves[base[0]].val_tokens[at[base[0]]])
        fits.append(bfit)
        for n in others:
            sizes[n].append(size_multiplier(n, losses[n].n_params, curves[n].val_loss[at[n]],
                                            bfit))
    return MultiplierCurve(tokens, fits, sizes)


def multiplier_figure(mc: MultiplierCurve) -> go.Figure:
    """Figure 1 (bottom) analogue: effective size multiplier vs training tokens.

    The paper's band (0.95x-1.05x) is shaded; points are drawn only where the baseline has a
    scaling law at that evaluation; open markers are extrapolations.
    """
    fig = style.figure("Effective model size of SoLU-LN, in baseline sizes",
                       "training tokens", "effective size multiplier", height=420)
    fig.add_hrect(y0=PAPER_MULTIPLIER_RANGE[0], y1=PAPER_MULTIPLIER_RANGE[1],
                  fillcolor="#d62728", opacity=0.12, line_width=0)
    # On a log axis an annotation's y is log10 of the value.
    fig.add_annotation(text="paper §5: 0.95x-1.05x", xref="paper", x=0.01, yref="y",
                       y=math.log10(PAPER_MULTIPLIER_RANGE[1]), yanchor="bottom",
                       xanchor="left", showarrow=False, font=dict(color="#d62728"))
    fig.add_hline(y=1.0, line=dict(color="#7f7f7f", dash="dot", width=1))
    for name, sizes in mc.sizes.items():
        xs = [t for t, s in zip(mc.tokens, sizes) if s.value is not None]
        ys = [s.value for s in sizes if s.value is not None]
        symbols = ["circle" if s.status == "interpolated" else "circle-open"
                   for s in sizes if s.value is not None]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=style.label(name),
            marker=dict(color=style.color(name), symbol=symbols, size=9),
            line=dict(color=style.color(name), width=1 + style.depth_of(name) / 2),
            hovertemplate=f"{name}<br>%{{x:,}} tokens: %{{y:.3f}}x<extra></extra>"))
    if mc.n_testable < len(mc.tokens):
        fig.add_annotation(
            text=f"the baseline improves with size at {mc.n_testable} of {len(mc.tokens)} "
                 "evaluations; elsewhere no multiplier exists", xref="paper", yref="paper",
            x=0.5, y=-0.25, showarrow=False, font=dict(color="#444444"))
        fig.update_layout(margin=dict(b=90))
    # Fixed ranges keep the band readable, and the axes sensible when no point exists.
    values = [s.value for sizes in mc.sizes.values() for s in sizes if s.value is not None]
    lo, hi = min(values + [0.5]), max(values + [2.0])
    fig.update_yaxes(type="log", range=[math.log10(lo / 1.2), math.log10(hi * 1.2)])
    if mc.tokens:
        fig.update_xaxes(type="log", range=[math.log10(min(mc.tokens) / 1.5),
                                            math.log10(max(mc.tokens) * 1.5)])
    return fig


# --- SoLU without its LayerNorm (§4.3) ----------------------------------------------------------
@dataclass(frozen=True)
class NoLNPenalty:
    """The §4.3 ablation: SoLU without its extra LayerNorm against GELU and SoLU-LN.

    Attributes:
        depth: the ablation's depth.
        solu_loss, gelu_loss, solu_ln_loss: final validation losses (``solu_ln_loss`` None if
            the zoo has no SoLU-LN model of that depth).
        gap_vs_gelu: SoLU minus GELU (positive: SoLU without LN is worse).
        gap_vs_solu_ln: SoLU minus SoLU-LN (positive: the LN helps).
        multiplier: SoLU's effective size in baseline sizes (paper: ~0.5-0.7x).
    """

    depth: int
    solu_loss: float
    gelu_loss: float
    solu_ln_loss: float | None
    gap_vs_gelu: float
    gap_vs_solu_ln: float | None
    multiplier: SizeMultiplier
    gap_over_seeds: SeedInterval | None = None
    """SoLU minus GELU over matched seeds (paired t interval)."""


def solu_without_ln(losses: Mapping[str, ModelLoss], bfit: BaselineFit,
                    per_seed: Mapping[str, Mapping[int, float]] | None = None
                    ) -> NoLNPenalty | None:
    """The SoLU-without-LN penalty, or None if the zoo has no such model (``losses``: seed
    means; ``per_seed``: ``seed_losses`` of every run, for the seed-level interval)."""
    solu = next((m for m in losses.values() if m.act == SOLU_NO_LN), None)
    if solu is None or model_name(solu.depth, BASELINE) not in losses:
        return None
    gelu = losses[model_name(solu.depth, BASELINE)]
    solu_ln = losses.get(model_name(solu.depth, SOLU_LN))
    return NoLNPenalty(
        depth=solu.depth, solu_loss=solu.val_loss, gelu_loss=gelu.val_loss,
        solu_ln_loss=None if solu_ln is None else solu_ln.val_loss,
        gap_vs_gelu=solu.val_loss - gelu.val_loss,
        gap_vs_solu_ln=None if solu_ln is None else solu.val_loss - solu_ln.val_loss,
        multiplier=size_multiplier(solu.name, solu.n_params, solu.val_loss, bfit),
        gap_over_seeds=None if per_seed is None else paired_seed_difference(
            *matched_seeds(per_seed, solu.name, gelu.name)))


def no_ln_markdown(no_ln: NoLNPenalty | None) -> str:
    """SoLU without LN against the same-depth GELU and SoLU-LN models."""
    if no_ln is None:
        return "This zoo has no SoLU-without-LN model."
    d = no_ln.depth
    lines = ["| model | val loss | SoLU without LN minus this |", "|---|---:|---:|",
             f"| {d}L SoLU without LN | {no_ln.solu_loss:.4f} | |",
             f"| {d}L GELU baseline | {no_ln.gelu_loss:.4f} | {no_ln.gap_vs_gelu:+.4f} |"]
    if no_ln.solu_ln_loss is not None:
        lines.append(f"| {d}L SoLU + LN | {no_ln.solu_ln_loss:.4f} | "
                     f"{no_ln.gap_vs_solu_ln:+.4f} |")
    out = "\n".join(lines) + f"\n\nEffective size of SoLU without LN: {no_ln.multiplier}."
    if no_ln.gap_over_seeds is not None:
        out += (f" Over matched seeds, SoLU without LN minus GELU: "
                f"{no_ln.gap_over_seeds.format('+.4f')} ({no_ln.gap_over_seeds.method}).")
    return out


# --- per-source validation loss -----------------------------------------------------------------
def per_source_deltas(losses: Mapping[str, ModelLoss], act: str = SOLU_LN
                      ) -> dict[int, dict[str, float]]:
    """``act`` minus same-depth GELU validation loss, per source, at each depth."""
    out = {}
    for m in losses.values():
        base = losses.get(model_name(m.depth, BASELINE))
        if m.act == act and base is not None:
            out[m.depth] = {s: m.per_source[s] - base.per_source[s]
                            for s in m.per_source if s in base.per_source}
    return out


def per_source_markdown(losses: Mapping[str, ModelLoss]) -> str:
    """Validation loss per source for every model, and minus the same-depth baseline."""
    sources = _sources(losses)
    head = " | ".join(f"{source_label(s)} | minus GELU" for s in sources)
    lines = [f"| model | {head} |", "|---|" + "---:|---:|" * len(sources)]
    for m in losses.values():
        base = losses.get(model_name(m.depth, BASELINE))
        cells = []
        for s in sources:
            v = m.per_source.get(s)
            cells.append("" if v is None else f"{v:.4f}")
            cells.append("" if v is None or base is None or m.act == BASELINE
                         or s not in base.per_source else f"{v - base.per_source[s]:+.4f}")
        lines.append(f"| {style.label(m.name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_source_figure(losses: Mapping[str, ModelLoss]) -> go.Figure:
    """Each model's validation loss minus its same-depth baseline, per source (grouped bars;
    below zero: better than GELU on that kind of text)."""
    fig = style.figure("Validation loss per source, minus the same-depth GELU baseline",
                       "model", "loss minus GELU (nats/token)", height=440, barmode="group")
    others = [m for m in losses.values() if m.act != BASELINE
              and model_name(m.depth, BASELINE) in losses]
    palette = ["#9467bd", "#8c564b", "#17becf", "#bcbd22"]  # sources, not activations
    for i, s in enumerate(_sources(losses)):
        ms = [m for m in others if s in m.per_source
              and s in losses[model_name(m.depth, BASELINE)].per_source]
        fig.add_trace(go.Bar(
            x=[style.label(m.name) for m in ms],
            y=[m.per_source[s] - losses[model_name(m.depth, BASELINE)].per_source[s]
               for m in ms],
            name=source_label(s), marker_color=palette[i % len(palette)],
            hovertemplate=f"{source_label(s)}<br>%{{x}}: %{{y:+.4f}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#444444", width=1))
    return fig


# --- training speed -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeedMeasurement:
    """SoLU-LN against GELU, timed side by side at a zoo scale's shapes.

    Attributes:
        scale, depth: which zoo models were timed (random init, random tokens).
        device: where ("cpu" or "cuda"); in the precision the zoo's runs would choose there
            (``solu_repro.precision``: bf16 on CUDA, measured on a CPU).
        step: full training steps (forward, backward, clipping, AdamW).
        activation: the MLP activation stage alone (what a fused kernel would shrink).
        tokens_per_step: tokens in one step.
    """

    scale: str
    depth: int
    device: str
    step: SpeedComparison
    activation: SpeedComparison
    tokens_per_step: int


def measure_speed(ctx: BookContext, depth: int | None = None, rounds: int = 3,
                  warmup: int = 1, threads: int | None = None,
                  device: str = "auto") -> SpeedMeasurement:
    """Time training steps of the matched GELU and SoLU-LN models of ``depth`` (default the
    smallest) at ``ctx.scale``'s shapes, interleaved for ``rounds`` rounds.

    Args:
        ctx: the notebook context (its scale and seed).
        depth: a depth of the zoo (None: the smallest).
        rounds: interleaved rounds of one step of each model.
        warmup: discarded steps of each model first.
        threads: torch CPU threads while timing (None: unchanged).
        device: "auto" (CUDA if available), "cpu" or "cuda".
    """
    depth = min(ctx.depths) if depth is None else depth
    if depth not in ctx.depths:
        raise ValueError(f"depth {depth} is not in the {ctx.scale} zoo (depths {ctx.depths})")
    check_int("speed_rounds", rounds, minimum=1, maximum=1000)
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cfgs = [zoo_config(model_name(depth, act), ctx.scale).replace(device=device)
            for act in (BASELINE, SOLU_LN)]
    step = compare_train_steps(*cfgs, what=f"training step, {depth}L {ctx.scale} shapes",
                               device=device, seed=ctx.seed, rounds=rounds, warmup=warmup,
                               threads=threads)
    act = compare_activations(cfgs[0], device=device, seed=ctx.seed, rounds=rounds,
                              steps_per_round=5, warmup=max(warmup, 2), threads=threads)
    return SpeedMeasurement(ctx.scale, depth, device, step, act, cfgs[0].tokens_per_step)


def speed_markdown(speed: SpeedMeasurement) -> str:
    lines = ["| what | GELU ms | SoLU-LN ms | SoLU-LN / GELU | 90% interval | samples |",
             "|---|---:|---:|---:|---|---:|"]
    for c in (speed.step, speed.activation):
        lines.append(f"| {c.what} | {c.median_a_s * 1e3:.2f} | {c.median_b_s * 1e3:.2f} | "
                     f"{c.ratio:.3f}x | {c.ci90[0]:.3f}-{c.ci90[1]:.3f} | {c.n_samples} |")
    return "\n".join(lines)


# --- the measurements and the claims they decide -------------------------------------------------
@dataclass(frozen=True)
class PerformanceMeasurements:
    """Everything notebook 3 measures, computed once; ``claims`` turns it into verdicts.

    Attributes:
        scale: the zoo scale.
        val_loss: final validation loss per variant (the mean over its seeds).
        per_seed: variant -> {seed: final validation loss}.
        loss_delta: SoLU-LN minus GELU (seed means), per depth.
        parity: TOST of SoLU-LN vs GELU over the smallest depth's matched seeds, margin
            ±0.01 nats (the paper's).
        per_source_delta: SoLU-LN minus GELU per source, per depth.
        baseline: the baseline's scaling law (``baseline.fit`` None with ``baseline.reason``).
        multiplier: SoLU-LN effective size multiplier per depth.
        no_ln: the SoLU-without-LN ablation (None if the zoo lacks it).
        blocked: TOST of blocked SoLU-LN vs SoLU-LN over matched seeds (None if no blocked model).
        blocked_gap: blocked minus SoLU-LN over matched seeds.
        depth: does depth help the baseline at this budget.
        speed: the speed measurement (only on a GPU; None elsewhere).
        device: where the speed would be measured ("cpu" or "cuda").
    """

    scale: str
    val_loss: dict[str, float]
    per_seed: dict[str, dict[int, float]]
    loss_delta: dict[int, float]
    parity: Equivalence | None
    per_source_delta: dict[int, dict[str, float]]
    baseline: BaselineFit
    multiplier: dict[int, SizeMultiplier]
    no_ln: NoLNPenalty | None
    blocked: Equivalence | None
    blocked_gap: SeedInterval | None
    depth: DepthCheck
    speed: SpeedMeasurement | None
    device: str = "cpu"

    @property
    def multiplier_testable(self) -> bool:
        return self.baseline.fit is not None

    @property
    def multipliers_in_paper_range(self) -> bool | None:
        """Whether every SoLU-LN multiplier is within 0.95x-1.05x (None: not testable)."""
        values = [m.value for m in self.multiplier.values()]
        if not values or any(v is None for v in values):
            return None
        lo, hi = PAPER_MULTIPLIER_RANGE
        return all(lo <= v <= hi for v in values)


def speed_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def performance_measurements(ctx: BookContext, speed: SpeedMeasurement | None = None,
                             speed_rounds: int = 3) -> PerformanceMeasurements:
    """The performance numbers of ``ctx``'s zoo (every seed).

    Args:
        ctx: the notebook context (its zoo is trained if missing).
        speed: a speed measurement already made; if None and a GPU is present one is made
            with ``speed_rounds`` rounds (0: skip). On a CPU speed is not measured: eager CPU
            timing cannot test a claim about fused GPU kernels.
        speed_rounds: rounds of a new speed measurement.
    """
    every = final_losses(ctx.runs(ctx.all_names))
    per_seed = seed_losses(every)
    losses = seed_mean_losses(every)
    bfit = baseline_fit(losses)
    sizes = effective_sizes(losses, bfit)
    device = speed_device()
    if speed is None and speed_rounds and device == "cuda":
        speed = measure_speed(ctx, rounds=speed_rounds, device=device)
    one = min(ctx.depths)
    gelu, solu_ln, blocked = (model_name(one, BASELINE), model_name(one, SOLU_LN),
                              f"{one}L-{BLOCKED}")
    parity = (equivalence_test(*matched_seeds(per_seed, solu_ln, gelu), PAPER_LOSS_MARGIN)
              if solu_ln in per_seed and gelu in per_seed else None)
    has_blocked = blocked in per_seed and solu_ln in per_seed
    pair = matched_seeds(per_seed, blocked, solu_ln) if has_blocked else None
    return PerformanceMeasurements(
        scale=ctx.scale, val_loss={n: m.val_loss for n, m in losses.items()},
        per_seed=per_seed, loss_delta=loss_deltas(losses), parity=parity,
        per_source_delta=per_source_deltas(losses), baseline=bfit,
        multiplier={losses[n].depth: s for n, s in sizes.items() if losses[n].act == SOLU_LN},
        no_ln=solu_without_ln(losses, bfit, per_seed),
        blocked=equivalence_test(*pair, PAPER_LOSS_MARGIN) if pair else None,
        blocked_gap=paired_seed_difference(*pair) if pair else None,
        depth=depth_check(losses), speed=speed, device=device)


def _depth_list(values: Mapping[int, str]) -> str:
    return ", ".join(f"{d}L ({v})" for d, v in sorted(values.items()))


def _equivalence_text(eq: Equivalence, a: str, b: str) -> str:
    if not math.isfinite(eq.p_value):
        return f"{a} minus {b}: {eq.diff:+.4f} nats ({eq.method})"
    return (f"{a} minus {b}: {eq.diff:+.4f} nats, 90% interval [{eq.ci_lo:+.4f}, "
            f"{eq.ci_hi:+.4f}] over {eq.n_seeds} matched seeds; TOST p = {eq.p_value:.3f} "
            f"against ±{eq.margin:g}")


def _equivalence_verdict(eq: Equivalence | None) -> str:
    if eq is None or not math.isfinite(eq.p_value):
        return NOT_TESTABLE
    if eq.equivalent:
        return REPRODUCED
    if eq.ci_lo > eq.margin or eq.ci_hi < -eq.margin:  # shown to differ by more than the margin
        return NOT_REPRODUCED
    return PARTLY if eq.noninferior else INCONCLUSIVE


def claims(pm: PerformanceMeasurements) -> list[Claim]:
    """The claims of chapter 3 (§5, the §4.3 no-LN penalty and §4.4 blocked performance),
    each decided once from ``pm`` by the rule the registry states."""
    out = []
    # §5 / Figure 1: the size multiplier
    lo, hi = PAPER_MULTIPLIER_RANGE
    if not pm.multiplier_testable:
        ours = f"no baseline scaling law: {pm.baseline.reason}"
        verdict = NOT_TESTABLE
    else:
        ours = "SoLU-LN effective size " + _depth_list({d: str(m) for d, m in
                                                         pm.multiplier.items()})
        in_range = pm.multipliers_in_paper_range
        verdict = (NOT_TESTABLE if in_range is None else REPRODUCED if in_range
                   else NOT_REPRODUCED)
        ours += (": some are only bounds, so the range is not tested" if in_range is None else
                 f": {'all' if in_range else 'not all'} within {lo:.2f}x-{hi:.2f}x")
        if pm.baseline.fit.dof == 0:
            ours += " (the law has as many parameters as points: it interpolates)"
    out.append(registry.scored("size_multiplier", ours, verdict, values={
        "multiplier": {d: m.value for d, m in pm.multiplier.items()}}))
    # §5: loss parity, TOST over matched seeds
    deltas = _depth_list({d: f"{v:+.3f}" for d, v in pm.loss_delta.items()})
    if pm.parity is None:
        ours, verdict = "no matched GELU/SoLU-LN pair", NOT_TESTABLE
    else:
        ours = (_equivalence_text(pm.parity, "SoLU-LN", "GELU") + "; seed-mean differences by "
                f"depth {deltas} (deeper pairs: one seed)")
        verdict = _equivalence_verdict(pm.parity)
    out.append(registry.scored("loss_parity", ours, verdict, values={
        "parity": None if pm.parity is None else pm.parity.to_dict(),
        "loss_delta": pm.loss_delta}))
    # §5 / Figure 2: downstream tasks (proxy only)
    per = "; ".join(f"{d}L: " + ", ".join(f"{source_label(s)} {v:+.3f}"
                                          for s, v in sorted(ps.items()))
                    for d, ps in sorted(pm.per_source_delta.items()))
    out.append(registry.scored("downstream", f"proxy only, SoLU-LN minus GELU validation loss "
                               f"per source: {per} nats/token", NOT_TESTABLE,
                               values={"per_source_delta": pm.per_source_delta}))
    # §4.3: SoLU without LN
    if pm.no_ln is None:
        out.append(registry.scored("no_ln_penalty", "no SoLU-without-LN model", NOT_TESTABLE))
    else:
        n = pm.no_ln
        plo, phi = PAPER_NO_LN_MULTIPLIER
        gap = n.gap_over_seeds
        value = n.multiplier.value
        ours = (f"{n.depth}L SoLU without LN minus GELU: "
                + (gap.format("+.4f") + f" nats ({gap.method})" if gap is not None
                   else f"{n.gap_vs_gelu:+.4f} nats")
                + f"; effective size {n.multiplier}")
        verdict = (claim_rules.directional(gap.estimate, gap.lo, gap.hi) if gap is not None
                   else claim_rules.directional(n.gap_vs_gelu, -math.inf, math.inf))
        if verdict == REPRODUCED and not (value is not None and plo <= value <= phi):
            verdict = PARTLY
        out.append(registry.scored("no_ln_penalty", ours, verdict, values={
            "gap": None if gap is None else gap.to_dict(), "multiplier": value}))
    # §5: speed, only where fused GPU kernels could be tested
    if pm.speed is None:
        where = ("eager CPU timing cannot test a claim about fused GPU kernels"
                 if pm.device == "cpu" else "not measured in this run")
        out.append(registry.scored("speed", f"not measured: {where}", NOT_TESTABLE))
    else:
        r, (clo, chi) = pm.speed.step.ratio, pm.speed.step.ci90
        verdict = (NOT_TESTABLE if chi < SPEED_IMPLAUSIBLE else
                   REPRODUCED if chi < 1 + PAPER_SPEED_OVERHEAD else INCONCLUSIVE)
        out.append(registry.scored(
            "speed", f"{pm.speed.depth}L step time ratio {r:.3f} (90% CI {clo:.3f}-{chi:.3f}) "
            f"on {pm.speed.device}, eager PyTorch (no fused SoLU kernel)", verdict, timed=True,
            values={"ratio": r, "ci90": [clo, chi]}))
    # §4.4: blocked SoLU-LN, performance
    if pm.blocked is None:
        out.append(registry.scored("blocked_loss", "no blocked SoLU-LN model in this zoo",
                                   NOT_TESTABLE))
    else:
        out.append(registry.scored(
            "blocked_loss", _equivalence_text(pm.blocked, "blocked SoLU-LN (4 blocks)",
                                              "SoLU-LN"),
            _equivalence_verdict(pm.blocked), values={"tost": pm.blocked.to_dict()}))
    return out


def glue_values(pm: PerformanceMeasurements) -> dict[str, Any]:
    """Flat name -> value pairs for ``myst_nb.glue`` beside the claims' own sentences
    (``claims.glue_claims``): the numbers the chapter's prose quotes."""
    key = lambda name: re.sub(r"\W", "_", name)  # "1L-solu_ln" -> "1L_solu_ln"
    out: dict[str, Any] = {f"val_loss_{key(n)}": v for n, v in pm.val_loss.items()}
    out.update({f"loss_delta_{d}L": v for d, v in pm.loss_delta.items()})
    out["fit"] = str(pm.baseline)
    out["fit_reason"] = pm.baseline.reason or ""
    for d, m in pm.multiplier.items():
        out[f"multiplier_{d}L"] = str(m)
    out["depth_check"] = pm.depth.sentence
    gelu = [v for n, v in pm.per_seed.items() if style.act_of(n) == BASELINE]
    out["n_seeds_pair"] = max((len(v) for v in gelu), default=0)
    return out
