"""Chapter 4's "over training" section: the Figure 4 pair measured at every step its weights
were kept (``solu_repro.paper.s6_2_training``), drawn against tokens seed by seed, with the
trend carried to the released models' budget as a prediction, not a result."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..fmt import num
from ..paper import s6_2_training as tr
from . import style
from .context import BookContext
from .tables import markdown_table


def gather(ctx: BookContext) -> tr.TrainingMeasurements:
    """Every seed of the 1-layer pair at every step it kept, measured (cached) through the
    same instruments as the finished models."""
    names = tr.pair_names(ctx.all_names, min(ctx.depths))
    points = [p for name in names
              for p in tr.measure_run(ctx.run(name), ctx.seed, ctx.progress)]
    return tr.measure(points)


def tokens_text(tokens: float) -> str:
    """0.20 M, 5.73 M, 22 B."""
    if tokens >= 1e9:
        return f"{tokens / 1e9:.0f} B"
    if tokens >= 1e5:
        return f"{tokens / 1e6:.2f} M"
    return f"{tokens / 1e3:.1f} k"


def figure(tm: tr.TrainingMeasurements) -> go.Figure:
    """One panel per metric: SoLU-LN minus GELU against training tokens (log axis), one thin
    line per matched seed, the mean over seeds thick, 0 as a grey line, and the paper's value
    where it gives one (dashed). The top-20 panel also shows the same difference between the two
    models' rotated bases (dotted): what the view credits a rotation with."""
    keys = list(tm.trajectories)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[tr.METRICS[k].short for k in keys],
                        horizontal_spacing=0.12, vertical_spacing=0.2)
    for i, key in enumerate(keys):
        row, col = i // 2 + 1, i % 2 + 1
        t = tm.trajectories[key]
        for seed in t.seeds:
            fig.add_trace(go.Scatter(
                x=t.tokens, y=t.differences[seed], mode="lines+markers",
                line=dict(color=style.color("solu_ln"), width=1), opacity=0.5,
                marker=dict(size=4), name=f"seed {seed}", legendgroup=f"seed{seed}",
                showlegend=i == 0), row=row, col=col)
        fig.add_trace(go.Scatter(
            x=t.tokens, y=t.mean(), mode="lines+markers",
            line=dict(color=style.color("solu_ln"), width=3), name="mean over seeds",
            legendgroup="mean", showlegend=i == 0), row=row, col=col)
        if key == "top20":
            r = tm.rotated_top20
            fig.add_trace(go.Scatter(
                x=r.tokens, y=r.mean(), mode="lines", line=dict(color="#555", dash="dot"),
                name="rotated bases, mean (top-20 view)", showlegend=True), row=row, col=col)
        fig.add_hline(y=0, line_color="#888", line_width=1, row=row, col=col)
        metric = tr.METRICS[key]
        if metric.paper is not None and metric.paper != 0:
            fig.add_hline(y=metric.paper, line_dash="dash", line_color="#222", row=row, col=col,
                          annotation_text="paper", annotation_position="top left")
        fig.update_xaxes(type="log", title_text="training tokens", row=row, col=col)
        fig.update_yaxes(title_text=f"SoLU-LN minus GELU ({metric.unit})", row=row, col=col)
    fig.update_layout(height=760, font=style.FONT, template="plotly_white",
                      title="The Figure 4 pair over training (1 layer, every seed)",
                      legend=dict(orientation="h", x=0.0, y=-0.12, yanchor="top"),
                      margin=dict(l=60, r=20, t=80, b=60))
    return fig


def _interval(mean: float, lo: float, hi: float, fmt: str) -> str:
    if math.isnan(lo):
        return num(mean, fmt)
    return f"{num(mean, fmt)} [{num(lo, fmt)}, {num(hi, fmt)}]"


def table_markdown(tm: tr.TrainingMeasurements) -> str:
    """Each metric's SoLU-LN minus GELU at every step: the mean over seeds and its 95% t
    interval."""
    rows = []
    for key, t in tm.trajectories.items():
        lo, hi = t.interval()
        fmt = "+.3f" if key == "val_loss" else "+.1f"
        row = {"SoLU-LN minus GELU": f"{tr.METRICS[key].short} ({tr.METRICS[key].unit})"}
        for k, tokens in enumerate(t.tokens):
            row[tokens_text(tokens)] = _interval(float(t.mean()[k]), float(lo[k]), float(hi[k]),
                                                 fmt)
        rows.append(row)
    return markdown_table(rows)


def values_markdown(tm: tr.TrainingMeasurements) -> str:
    """Each model's own numbers at every step (mean over seeds): the two arms of each
    difference above."""
    rows = []
    for key, t in tm.trajectories.items():
        for act in tr.PAIR:
            v = np.mean([t.values[act][s] for s in t.seeds], axis=0)
            fmt = ".3f" if key == "val_loss" else ".1f"
            row = {"metric": tr.METRICS[key].short, "model": style.label(act)}
            row.update({tokens_text(x): num(float(y), fmt) for x, y in zip(t.tokens, v)})
            rows.append(row)
    return markdown_table(rows)


def trend_markdown(tm: tr.TrainingMeasurements) -> str:
    """Each metric's trend per decade of tokens (seed mean, 95% t interval over seeds), over all
    points and over the last ``LATE_POINTS``, and what each predicts at the released models'
    budget."""
    rows = []
    for key, tnd in tm.trends.items():
        fmt = "+.3f" if key == "val_loss" else "+.1f"
        m = tr.METRICS[key]
        late = tm.late_trends.get(key)
        at = tokens_text(tnd.at_tokens)
        row = {"SoLU-LN minus GELU": f"{m.short} ({m.unit})",
               "per decade, all points": _interval(tnd.slope, tnd.slope_lo, tnd.slope_hi, fmt)}
        if late is not None:
            row[f"per decade, from {tokens_text(late.first_tokens)}"] = _interval(
                late.slope, late.slope_lo, late.slope_hi, fmt)
        row["trend"] = tm.direction(key)
        row[f"at {at}, all points"] = _interval(tnd.predicted, tnd.predicted_lo,
                                                tnd.predicted_hi, fmt)
        if late is not None:
            row[f"at {at}, from {tokens_text(late.first_tokens)}"] = _interval(
                late.predicted, late.predicted_lo, late.predicted_hi, fmt)
        row["paper"] = (f"{num(m.paper, fmt)} ({m.paper_note})" if m.paper is not None
                        else "—")
        rows.append(row)
    return markdown_table(rows)


def glue_values(tm: tr.TrainingMeasurements) -> dict[str, Any]:
    """The numbers the section's prose quotes."""
    out: dict[str, Any] = {}
    first = next(iter(tm.trajectories.values()))
    out["train_first_tokens"] = tokens_text(first.tokens[0])
    out["train_last_tokens"] = tokens_text(first.tokens[-1])
    out["train_n_points"] = len(first.tokens)
    out["train_n_seeds"] = len(first.seeds)
    for key, t in tm.trajectories.items():
        out[f"train_{key}_first"] = float(t.mean()[0])
        out[f"train_{key}_last"] = float(t.mean()[-1])
    for key, tnd in tm.trends.items():
        out[f"trend_{key}"] = tm.direction(key)
        out[f"trend_{key}_decades"] = float(tnd.decades)
        out[f"trend_{key}_at"] = float(tnd.predicted)
        late = tm.late_trends.get(key)
        out[f"trend_{key}_late_at"] = float(late.predicted) if late else float("nan")
    return out
