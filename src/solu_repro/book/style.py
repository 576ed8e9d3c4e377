"""Plotting style of the book: one place for model colours, line styles and the layout.

Paper conventions carried over: the baseline is drawn dotted and SoLU solid (Figure 1); the
baseline is blue, SoLU red and the LN-only ablation green (Figure 4).
"""

from __future__ import annotations

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
