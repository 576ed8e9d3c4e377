"""Chapter 3 (paper §5, with §4.3's no-LN penalty and §4.4's blocked SoLU-LN): the page's
figures, tables and glued numbers, and the gathering of its inputs from the book's context.

The measurements and the verdicts live in ``solu_repro.paper.s5_performance``; this module
only fetches what they take (``gather``: the zoo's runs, and on a GPU a timing of the training
step) and shows what they found.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go

from ..paper import s5_performance as s5
from ..paper.claim import PAPER_MULTIPLIER_RANGE
from ..paper.s5_performance import (BASELINE, NGRAM_KINDS, LossCurve, ModelLoss,
                                    MultiplierCurve, NgramBaselines, NoLNPenalty,
                                    PerformanceMeasurements, SizeMultiplier, SpeedMeasurement,
                                    BaselineFit, loss_sources, source_label)
from ..zoo import SCALES, composition, model_name
from . import style
from .context import BookContext
from .tables import markdown_table


# --- the inputs -------------------------------------------------------------------------------
def gather(ctx: BookContext, speed_depth: int | None = None, speed_rounds: int = 3,
           speed_threads: int | None = None) -> dict[str, Any]:
    """What ``s5_performance.measure`` takes, fetched through the book's context: every zoo
    run of ``ctx.scale`` (trained first if missing) and, on a GPU only, a speed measurement of
    ``speed_rounds`` rounds (0: none). On a CPU nothing is timed: eager CPU timing cannot test
    a claim about fused GPU kernels."""
    runs = ctx.runs(ctx.all_names)
    device = s5.speed_device()
    speed = None
    if device == "cuda" and speed_rounds:
        speed = s5.measure_speed(ctx.scale, ctx.depths, ctx.seed, depth=speed_depth,
                                 rounds=speed_rounds, threads=speed_threads, device=device)
    return {"runs": runs, "speed": speed, "device": device}


# --- loss curves (Figure 1, top) ----------------------------------------------------------------
def smooth(values: list[float], weight: float) -> list[float]:
    """Debiased exponential moving average (``weight`` 0: no smoothing)."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** (i + 1)))
    return out


NGRAM_LINES = {"unigram": "#8c8c8c", "bigram_kn": "#444444"}
"""The reference lines of the loss curves: the unigram and the (Kneser-Ney) bigram loss."""


def loss_curve_figure(curves: Mapping[str, LossCurve], smoothing: float = 0.0,
                      ngram: NgramBaselines | None = None) -> go.Figure:
    """Figure 1 (top) analogue: training loss vs tokens, validation losses as markers.

    The baseline is dotted and SoLU solid, as in the paper; colours by activation, line width
    by depth. With ``ngram``, dashed horizontal lines mark the unigram and Kneser-Ney bigram
    losses of the same validation tokens.
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
    if ngram is not None:
        for kind, colour in NGRAM_LINES.items():
            fig.add_hline(y=ngram.loss[kind], line=dict(color=colour, dash="dash", width=1),
                          annotation_text=f"{NGRAM_KINDS[kind]}: {ngram.loss[kind]:.3f}",
                          annotation_position="top right",
                          annotation_font=dict(color=colour, size=11))
    fig.update_xaxes(type="log")
    return fig


# --- final losses -------------------------------------------------------------------------------
def seed_table_markdown(per_seed: Mapping[str, Mapping[int, float]]) -> str:
    """Every variant's per-seed final validation loss, mean and seed-to-seed spread."""
    n = max((len(v) for v in per_seed.values()), default=0)
    rows = []
    for variant, by_seed in per_seed.items():
        vals = [by_seed[i] for i in sorted(by_seed)]
        row: dict[str, Any] = {"model": style.label(variant), "seeds": len(vals)}
        row.update({f"seed {i}": f"{by_seed[i]:.4f}" if i in by_seed else "" for i in range(n)})
        row["mean"] = f"{np.mean(vals):.4f}"
        row["sd over seeds"] = f"{np.std(vals, ddof=1):.4f}" if len(vals) > 1 else ""
        rows.append(row)
    return markdown_table(rows)


def losses_markdown(losses: Mapping[str, ModelLoss]) -> str:
    """Final validation loss of every model and its difference to the same-depth baseline."""
    rows = []
    for m in losses.values():
        base = losses.get(model_name(m.depth, BASELINE))
        delta = "" if base is None or m.act == BASELINE else f"{m.val_loss - base.val_loss:+.4f}"
        rows.append({"model": style.label(m.name), "non-embedding params": m.n_params,
                     "tokens": m.tokens, "val loss": f"{m.val_loss:.4f}",
                     "minus same-depth GELU": delta})
    return markdown_table(rows)


def reference_losses_markdown(losses: Mapping[str, ModelLoss], ngram: NgramBaselines | None,
                              reason: str | None = None) -> str:
    """The unigram and bigram losses of the validation tokens, then every model's (seed
    means), overall and per source, each minus the Kneser-Ney bigram's (negative: the model
    predicts better than bigram statistics)."""
    if ngram is None:
        return f"No unigram or bigram reference: {reason or 'not measured'}."
    sources = [s for s in loss_sources(losses) if s in ngram.per_source] or list(ngram.per_source)

    def row(label: str, loss: float, per_source: Mapping[str, float]) -> dict[str, str]:
        out = {"model": label, "val loss": f"{loss:.4f}"}
        out.update({source_label(s): "" if per_source.get(s) is None
                    else f"{per_source[s]:.4f}" for s in sources})
        out["minus KN bigram"] = f"{loss - ngram.bigram:+.4f}"
        return out

    rows = [row(label, ngram.loss[kind], {s: v[kind] for s, v in ngram.per_source.items()})
            for kind, label in NGRAM_KINDS.items()]
    rows[-1]["minus KN bigram"] = ""
    rows += [row(style.label(m.name), m.val_loss, m.per_source) for m in losses.values()]
    return markdown_table(rows)


# --- the scaling law and the effective size multiplier (Figure 1, bottom) -----------------------
def multipliers_markdown(sizes: Mapping[str, SizeMultiplier]) -> str:
    """Each model's equivalent baseline size and multiplier, with a note on how it was got."""
    rows = []
    for s in sizes.values():
        eq = "" if s.effective is None else (
            "beyond every baseline" if math.isinf(s.effective.baseline_n)
            else f"{s.effective.baseline_n:,.0f}")
        note = "no baseline scaling law (see above)" if s.effective is None else s.reason or ""
        rows.append({"model": style.label(s.name), "non-embedding params": s.n_params,
                     "val loss": f"{s.loss:.4f}", "equivalent baseline size": eq,
                     "multiplier": str(s), "note": note})
    return markdown_table(rows)


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
def no_ln_markdown(no_ln: NoLNPenalty | None) -> str:
    """SoLU without LN against the same-depth GELU and SoLU-LN models."""
    if no_ln is None:
        return "This zoo has no SoLU-without-LN model."
    d = no_ln.depth
    rows = [{"model": f"{d}L SoLU without LN", "val loss": f"{no_ln.solu_loss:.4f}",
             "SoLU without LN minus this": ""},
            {"model": f"{d}L GELU baseline", "val loss": f"{no_ln.gelu_loss:.4f}",
             "SoLU without LN minus this": f"{no_ln.gap_vs_gelu:+.4f}"}]
    if no_ln.solu_ln_loss is not None:
        rows.append({"model": f"{d}L SoLU + LN", "val loss": f"{no_ln.solu_ln_loss:.4f}",
                     "SoLU without LN minus this": f"{no_ln.gap_vs_solu_ln:+.4f}"})
    out = markdown_table(rows) + f"\n\nEffective size of SoLU without LN: {no_ln.multiplier}."
    if no_ln.gap_test is not None:
        out += (f" Over matched seeds, SoLU without LN minus GELU: "
                f"{no_ln.gap_test.interval_text}; {s5.power_text(no_ln.gap_test)}.")
    return out


# --- the tests and their power ---------------------------------------------------------------------
def power_markdown(m: PerformanceMeasurements) -> str:
    """The chapter's seed tests in one table: effect, interval, the smallest effect the design
    detects with 80% power, the effect of interest, and the seed pairs that would be needed."""
    rows = []
    named = [("loss parity, 1L SoLU-LN − GELU", m.parity)]
    named += [(f"loss parity, {d}L SoLU-LN − GELU", t) for d, t in m.parity_deeper.items()]
    named += [("no-LN penalty, SoLU − GELU", m.no_ln.gap_test if m.no_ln else None),
              ("blocked − SoLU-LN", m.blocked)]
    for what, t in named:
        if t is None:
            continue
        need = s5.seeds_needed(t.sd, t.interest, t.kind)
        rows.append({"test": what, "kind": t.kind, "effect [interval]": t.interval_text,
                     "smallest detectable": f"{t.detectable:.3f}"
                     if math.isfinite(t.detectable) else "none (no SD)",
                     "of interest": f"{t.interest:.3f}",
                     "seed pairs needed": "" if need is None else f"{need:,}",
                     "SD": (f"{t.sd:.3f}" + (" (borrowed)" if t.borrowed else ""))
                     if math.isfinite(t.sd) else "none",
                     "verdict": t.verdict})
    return markdown_table(rows) if rows else "No seed tests in this zoo."


# --- per-source validation loss (the downstream proxy) ------------------------------------------
def per_source_markdown(losses: Mapping[str, ModelLoss]) -> str:
    """Validation loss per source for every model, and minus the same-depth baseline."""
    sources = loss_sources(losses)
    rows = []
    for m in losses.values():
        base = losses.get(model_name(m.depth, BASELINE))
        row = {"model": style.label(m.name)}
        for s in sources:
            v = m.per_source.get(s)
            row[source_label(s)] = "" if v is None else f"{v:.4f}"
            row[f"{source_label(s)} minus GELU"] = (
                "" if v is None or base is None or m.act == BASELINE
                or s not in base.per_source else f"{v - base.per_source[s]:+.4f}")
        rows.append(row)
    return markdown_table(rows)


def per_source_figure(losses: Mapping[str, ModelLoss]) -> go.Figure:
    """Each model's validation loss minus its same-depth baseline, per source (grouped bars;
    below zero: better than GELU on that kind of text)."""
    fig = style.figure("Validation loss per source, minus the same-depth GELU baseline",
                       "model", "loss minus GELU (nats/token)", height=440, barmode="group")
    others = [m for m in losses.values() if m.act != BASELINE
              and model_name(m.depth, BASELINE) in losses]
    palette = ["#9467bd", "#8c564b", "#17becf", "#bcbd22"]  # sources, not activations
    for i, s in enumerate(loss_sources(losses)):
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


# --- training speed ------------------------------------------------------------------------------
def speed_markdown(speed: SpeedMeasurement) -> str:
    """The timed step and activation stage: medians, their ratio and its 90% interval."""
    rows = [{"what": c.what, "GELU ms": f"{c.median_a_s * 1e3:.2f}",
             "SoLU-LN ms": f"{c.median_b_s * 1e3:.2f}", "SoLU-LN / GELU": f"{c.ratio:.3f}x",
             "90% interval": f"{c.ci90[0]:.3f}-{c.ci90[1]:.3f}", "samples": c.n_samples}
            for c in (speed.step, speed.activation)]
    return markdown_table(rows)


# --- the numbers the prose quotes -----------------------------------------------------------------
def glue_values(m: PerformanceMeasurements) -> dict[str, Any]:
    """Flat name -> value pairs for ``myst_nb.glue`` beside the claims' own sentences
    (``record.glue_claims``): the numbers the chapter's prose quotes."""
    key = lambda name: re.sub(r"\W", "_", name)  # "1L-solu_ln" -> "1L_solu_ln"
    out: dict[str, Any] = {f"val_loss_{key(n)}": v for n, v in m.val_loss.items()}
    out.update({f"loss_delta_{d}L": v for d, v in m.loss_delta.items()})
    out["fit"] = str(m.baseline)
    out["fit_reason"] = m.baseline.reason or ""
    for d, s in m.multiplier.items():
        out[f"multiplier_{d}L"] = str(s)
    out["depth_check"] = m.depth.sentence
    gelu = [v for n, v in m.per_seed.items() if style.act_of(n) == BASELINE]
    out["n_seeds_pair"] = max((len(v) for v in gelu), default=0)
    out["n_models"] = len(m.every)
    out["tokens_per_model"] = next(iter(m.every.values())).tokens
    out["zoo_composition"] = composition(m.scale) if m.scale in SCALES else m.scale
    out["n_testable_evals"] = m.over_training.n_testable
    out["n_evals"] = len(m.over_training.tokens)
    p = m.parity
    out["parity_sd"] = p.sd if p is not None else float("nan")
    out["parity_detectable"] = p.detectable if p is not None else float("nan")
    need = s5.seeds_needed(p.sd, p.interest, p.kind) if p is not None else None
    out["parity_seeds_needed"] = "no estimate" if need is None else f"{need:,}"
    out["no_ln_interest"] = s5.NO_LN_INTEREST
    out.update(ngram_glue(m))
    return out


def ngram_glue(m: PerformanceMeasurements) -> dict[str, Any]:
    """The reference points' glued numbers (NaN, and a reason, where there are none): the
    unigram and bigram losses, the best model (seed means) and its loss minus the KN bigram."""
    n = m.ngram
    nan = float("nan")
    out: dict[str, Any] = {f"ngram_{k}": nan if n is None else n.loss[k] for k in NGRAM_KINDS}
    best = min(m.losses.values(), key=lambda x: x.val_loss, default=None)
    out["ngram_best_model"] = "" if best is None else style.label(best.name)
    out["ngram_best_minus_bigram"] = nan if n is None or best is None else \
        best.val_loss - n.bigram
    out["ngram_train_tokens"] = 0 if n is None else n.train_tokens
    out["ngram_val_tokens"] = 0 if n is None else n.val_tokens
    out["ngram_reason"] = m.ngram_reason or ""
    return out
