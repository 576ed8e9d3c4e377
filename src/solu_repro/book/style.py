"""Plotting style of the book: one place for model colours, line styles and the layout.

Paper conventions carried over: the baseline is drawn dotted and SoLU solid (Figure 1); the
baseline is blue, SoLU red and the LN-only ablation green (Figure 4).
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

ACT_COLORS = {
    "gelu": "#1f77b4",      # baseline (paper: blue)
    "solu_ln": "#d62728",   # SoLU + LN (paper: red)
    "gelu_ln": "#2ca02c",   # LN-only ablation (paper: green)
    "solu": "#ff7f0e",      # SoLU without its LN
    "solu_ln_b4": "#9467bd",  # blocked SoLU + LN (§4.4)
}
ACT_DASH = {"gelu": "dot", "solu_ln": "solid", "gelu_ln": "dash", "solu": "dashdot",
            "solu_ln_b4": "longdash"}
HOOK_COLORS = {"mid": "#d62728", "post": "#7f7f7f"}  # pre-LN (interpreted) vs post-LN
FONT = dict(family="Helvetica, Arial, sans-serif", size=13)


from ..zoo import ACT_LABELS, act_of, depth_of, label, seed_of, variant_of  # noqa: E402,F401  (re-exported for the chapters)


def color(name_or_act: str) -> str:
    act = act_of(name_or_act) if "-" in name_or_act else name_or_act
    return ACT_COLORS.get(act, "#444444")


def dash(name_or_act: str) -> str:
    act = act_of(name_or_act) if "-" in name_or_act else name_or_act
    return ACT_DASH.get(act, "solid")


def figure(title: str, xaxis: str, yaxis: str, height: int = 420, **layout: Any) -> go.Figure:
    """An empty figure in the book's layout."""
    fig = go.Figure()
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), template="plotly_white",
                      font=FONT, height=height, margin=dict(l=60, r=20, t=60, b=50),
                      legend=dict(orientation="v"), **layout)
    fig.update_xaxes(title_text=xaxis)
    fig.update_yaxes(title_text=yaxis)
    return fig


def interval_marker(x: str, test) -> go.Scatter:
    """A test's mean (a bar) with its interval over seeds (error bars, in points: x 100), at
    category ``x`` of a seed figure; an infinite end draws no bar on that side."""
    mean = 100 * test.effect
    lo = 100 * test.lo if math.isfinite(test.lo) else None
    hi = 100 * test.hi if math.isfinite(test.hi) else None
    return go.Scatter(x=[x], y=[mean], mode="markers", showlegend=False,
                      marker=dict(color="#333", symbol="line-ew-open", size=24),
                      error_y=dict(type="data", symmetric=False,
                                   array=[hi - mean if hi is not None else 0],
                                   arrayminus=[mean - lo if lo is not None else 0]),
                      hovertemplate=f"{test.interval_text}<extra></extra>")
