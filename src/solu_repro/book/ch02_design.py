"""Chapter 2 (paper §3-4, "02-solu-design"): the figures, tables, widget and glued numbers.

The numbers come from ``solu_repro.paper.s4_design`` (``s4.measure``, once per build); this
module draws them. ``gather(ctx)`` fetches from the book's context what ``s4.measure`` takes
(the scale's ``d_mlp`` and the one-layer zoo runs), and ``glue_values(m)`` lists every number
the chapter's prose quotes.

* text the notebook pins: ``worked_examples_text``, ``gelu_sigmoid_text``;
* figures: ``gelu_approximation_figure``, ``activations_figure``,
  ``lateral_inhibition_figure``, ``superlinearity_figure``, ``ln_eps_figure``,
  ``blocked_inhibition_figure``, ``top_share_figure``; the JupyterLab explorer ``explorer``
  (``explorer_figure`` in the built book);
* tables: ``scale_invariance_table``, ``eps_effect_table``, ``blocked_table``,
  ``mid_summary_table``;
* ``sparsity_checks``: what the notebook's nbval run pins about the trained models.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display
from plotly.subplots import make_subplots
from torch import Tensor

from ..activations import gelu, solu
from ..paper import s4_design as s4
from ..paper.s4_design import (GELU_SIGMOID_COEFFICIENT, LN_EPS, PAPER_WORKED_EXAMPLES,
                               WORKED_EXAMPLE_TOLERANCE, DesignMeasurements, EpsEffectRow,
                               MidStats, SigmoidApproximation, TrainedSparsity, WorkedExample)
from ..zoo import SCALES, depth_of, model_name
from . import style
from .checks import Check
from .tables import markdown_table

CHAPTER = "02-solu-design"

# Colours of the functions compared in the figures; the SoLU and GELU hues are the model
# colours of ``style`` so that "SoLU" means the same colour across the book.
FUNCTION_COLORS = {
    "x": "#7f7f7f",
    "softmax(x)": "#9467bd",
    "SoLU(x)": style.ACT_COLORS["solu"],
    "LN(SoLU(x))": style.ACT_COLORS["solu_ln"],
    "GELU(x)": style.ACT_COLORS["gelu"],
}


# --- the book's context -> s4.measure's inputs ---------------------------------------------

def gather(ctx, trained_rows: int = 16) -> dict[str, Any]:
    """What ``s4.measure`` takes, fetched from the book's context: the scale's ``d_mlp`` and,
    unless ``trained_rows`` is 0, the smallest depth's runs (trained first if missing): the
    seed-0 model of every variant, in zoo order, then the other seeds of the SoLU-LN/GELU
    pair."""
    if trained_rows <= 0:
        return {"d_mlp": SCALES[ctx.scale].d_mlp, "runs": (), "trained_rows": trained_rows}
    one = min(ctx.depths)
    names = [n for n in ctx.names if depth_of(n) == one]
    names += [n for act in s4.SPARSITY_PAIR for n in ctx.seeds(model_name(one, act))
              if n not in names]
    return {"d_mlp": SCALES[ctx.scale].d_mlp, "runs": [ctx.run(n) for n in names],
            "trained_rows": trained_rows}


# --- what the notebook prints (pinned by nbval) --------------------------------------------

def _fmt(values: Sequence[float], digits: int) -> str:
    return "(" + ", ".join(f"{v:.{digits}f}" for v in values) + ")"


def worked_examples_text(rows: Sequence[WorkedExample] | None = None, digits: int = 2) -> str:
    """The worked examples as short, rounded, deterministic text (pinned by nbval)."""
    rows = s4.worked_examples() if rows is None else rows
    lines = []
    for r in rows:
        x = "(" + ",".join(f"{v:g}" for v in r.x) + ")"
        lines.append(f"SoLU{x}: paper ≈ {_fmt(r.paper, 2)}, computed {_fmt(r.computed, digits)}, "
                     f"max |dev| {r.max_abs_deviation:.{digits}f} "
                     f"({'within' if r.reproduced else 'OUTSIDE'} {WORKED_EXAMPLE_TOLERANCE:g})")
    return "\n".join(lines)


def gelu_sigmoid_text(a: SigmoidApproximation) -> str:
    """One line: the largest deviation of sigmoid(c x)·x from GELU, and where (pinned)."""
    return (f"max |GELU(x) - sigmoid({a.coefficient:g}x)*x| over [{a.lo:g}, {a.hi:g}]: "
            f"{a.max_abs_deviation:.3f} at |x| = {abs(a.at):.2f}")


# --- figures ---------------------------------------------------------------------------------

def _layout(fig: go.Figure, title: str, xaxis: str, yaxis: str, height: int = 420) -> go.Figure:
    template = style.figure(title, xaxis, yaxis, height=height)
    fig.update_layout(template.layout)
    fig.update_xaxes(title_text=xaxis)
    fig.update_yaxes(title_text=yaxis)
    return fig


def _bars(fig: go.Figure, table: dict[str, np.ndarray], names: Sequence[str],
          col: int | None = None, showlegend: bool = True) -> None:
    coords = [f"x{i}" for i in range(len(table["x"]))]
    where = {} if col is None else dict(row=1, col=col)
    for name in names:
        fig.add_bar(x=coords, y=table[name], name=name, legendgroup=name,
                    marker_color=FUNCTION_COLORS[name], showlegend=showlegend, **where)


def gelu_approximation_figure(coefficient: float = GELU_SIGMOID_COEFFICIENT, lo: float = -5.0,
                              hi: float = 5.0) -> go.Figure:
    """GELU and ``sigmoid(c*x)*x`` (left axis) and their difference (right axis)."""
    x = torch.linspace(lo, hi, 501, dtype=torch.float64)
    g = gelu(x)
    s = torch.sigmoid(coefficient * x) * x
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=x.numpy(), y=g.numpy(), name="GELU(x) (exact, erf)",
                    line=dict(color=FUNCTION_COLORS["GELU(x)"]))
    fig.add_scatter(x=x.numpy(), y=s.numpy(), name=f"sigmoid({coefficient:g}x)·x",
                    line=dict(color=FUNCTION_COLORS["SoLU(x)"], dash="dash"))
    fig.add_scatter(x=x.numpy(), y=(s - g).numpy(), name="difference", secondary_y=True,
                    line=dict(color="#7f7f7f", dash="dot"))
    _layout(fig, f"GELU vs sigmoid({coefficient:g}x)·x (paper §4.2)", "x", "activation")
    fig.update_yaxes(title_text="sigmoid approx. − GELU", secondary_y=True)
    return fig


def activations_figure(vectors: dict[str, Sequence[float]] | None = None,
                       names: Sequence[str] = ("x", "softmax(x)", "SoLU(x)", "GELU(x)"),
                       eps: float = LN_EPS) -> go.Figure:
    """Grouped bars of several functions on example vectors, one panel per vector.

    Args:
        vectors: title -> vector; default the three inputs of §4.2's worked examples.
        names: which of ``s4.activation_table``'s functions to draw.
    """
    if vectors is None:
        labels = ("large and small values", "basis-aligned", "spread out")
        vectors = {f"{lab}: {tuple(int(v) for v in x)}": x
                   for lab, (x, _) in zip(labels, PAPER_WORKED_EXAMPLES)}
    fig = make_subplots(rows=1, cols=len(vectors), subplot_titles=list(vectors),
                        shared_yaxes=True, horizontal_spacing=0.04)
    for j, x in enumerate(vectors.values(), start=1):
        _bars(fig, s4.activation_table(x, eps=eps), names, col=j, showlegend=j == 1)
    _layout(fig, "SoLU, GELU and softmax on the paper's example vectors", "", "value")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.15))
    return fig


def lateral_inhibition_figure(n: int = 4, others: float = 1.0, lo: float = -2.0,
                              hi: float = 8.0) -> go.Figure:
    """One coordinate ``t`` grows while the other ``n-1`` stay at ``others``.

    Under SoLU the growing coordinate takes the softmax mass from the others, whose output
    falls towards 0 although their input never changes (lateral inhibition, §4.1-4.2); GELU
    acts coordinate by coordinate, so their output stays where it was.
    """
    t = torch.linspace(lo, hi, 201, dtype=torch.float64)
    x = torch.full((len(t), n), others, dtype=torch.float64)
    x[:, 0] = t
    s, g = solu(x), gelu(x)
    fig = style.figure(f"Lateral inhibition: x = (t, {others:g}, …, {others:g}), {n} coordinates",
                       "t (the growing coordinate)", "output")
    for y, name, color, dash in (
            (s[:, 0], "SoLU, growing coordinate", FUNCTION_COLORS["SoLU(x)"], "solid"),
            (s[:, 1], f"SoLU, each other coordinate (input fixed at {others:g})",
             FUNCTION_COLORS["SoLU(x)"], "dash"),
            (g[:, 0], "GELU, growing coordinate", FUNCTION_COLORS["GELU(x)"], "solid"),
            (g[:, 1], "GELU, each other coordinate", FUNCTION_COLORS["GELU(x)"], "dash")):
        fig.add_scatter(x=t.numpy(), y=y.numpy(), name=name, line=dict(color=color, dash=dash))
    return fig


def superlinearity_figure(curves: Mapping[str, np.ndarray] | None = None, n: int = 4
                          ) -> go.Figure:
    """``s4.superlinearity_curves`` (of ``n`` coordinates) drawn, with the identity for
    reference."""
    c = s4.superlinearity_curves(n) if curves is None else curves
    fig = style.figure(f"Superlinearity: output norm vs input norm ({n} coordinates)",
                       "input norm ‖x‖", "output norm")
    fig.add_scatter(x=c["norm"], y=c["norm"], name="identity",
                    line=dict(color="#bbbbbb", dash="dot"))
    for key, color, dash in (("SoLU aligned", FUNCTION_COLORS["SoLU(x)"], "solid"),
                             ("SoLU spread", FUNCTION_COLORS["SoLU(x)"], "dash"),
                             ("GELU aligned", FUNCTION_COLORS["GELU(x)"], "solid"),
                             ("GELU spread", FUNCTION_COLORS["GELU(x)"], "dash")):
        label = key.replace("aligned", "of r·e₀ (basis-aligned)").replace(
            "spread", "of r·(1,…,1)/√n (spread out)")
        fig.add_scatter(x=c["norm"], y=c[key], name=label, line=dict(color=color, dash=dash))
    return fig


def ln_eps_figure(rows: Sequence[EpsEffectRow], stats: Sequence[MidStats] = (),
                  eps: float = LN_EPS) -> go.Figure:
    """Median LN gain against ``d_mlp``: Gaussian stand-ins (one line per pre-activation std)
    and, as diamonds, trained models' ``hook_mid`` (``MidStats`` of ``*_ln`` models)."""
    fig = style.figure(f"How much the extra LN (eps={eps:g}) shrinks SoLU outputs",
                       "d_mlp (neurons the softmax spreads over)",
                       "median √(var / (var + eps))  (1 = scale invariant)")
    for s in sorted({r.pre_std for r in rows}):
        sel = [r for r in rows if r.pre_std == s]
        fig.add_scatter(x=[r.d_mlp for r in sel], y=[r.gain_median for r in sel],
                        mode="lines+markers", name=f"Gaussian pre-activations, std {s:g}",
                        line=dict(dash="dot"))
    for st in stats:
        fig.add_scatter(x=[st.d_mlp], y=[float(np.median(st.ln_gain))], mode="markers",
                        name=f"trained {style.label(st.name)}",
                        marker=dict(size=13, symbol="diamond", color=style.color(st.name)))
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.05])
    return fig


def blocked_inhibition_figure(n_per_block: int = 4, blocks: int = 2, others: float = 1.0,
                              lo: float = -2.0, hi: float = 8.0) -> go.Figure:
    """Lateral inhibition with and without blocking: coordinate 0 grows, the rest stay fixed.

    Unblocked, every other coordinate is suppressed; with ``blocks`` groups only those in
    coordinate 0's block are, and the other blocks do not see it at all.
    """
    d = n_per_block * blocks
    t = torch.linspace(lo, hi, 201, dtype=torch.float64)
    x = torch.full((len(t), d), others, dtype=torch.float64)
    x[:, 0] = t
    one, many = solu(x, 1), solu(x, blocks)
    fig = style.figure(f"Blocked SoLU (§4.4): {d} coordinates in {blocks} blocks of {n_per_block}",
                       "t (coordinate 0)", f"SoLU output of a coordinate whose input is {others:g}")
    fig.add_scatter(x=t.numpy(), y=one[:, 1].numpy(), name="unblocked: any other coordinate",
                    line=dict(color=FUNCTION_COLORS["SoLU(x)"], dash="solid"))
    fig.add_scatter(x=t.numpy(), y=many[:, 1].numpy(),
                    name=f"blocks={blocks}: same block as coordinate 0",
                    line=dict(color=FUNCTION_COLORS["LN(SoLU(x))"], dash="dash"))
    if blocks > 1:
        fig.add_scatter(x=t.numpy(), y=many[:, n_per_block].numpy(),
                        name=f"blocks={blocks}: another block",
                        line=dict(color="#7f7f7f", dash="dot"))
    return fig


def top_share_figure(stats: Sequence[MidStats]) -> go.Figure:
    """Per-position share of ``hook_mid``'s positive activation in its top neuron: one
    cumulative distribution per model (further right = more concentrated on one neuron);
    controls faded: the untrained models thin, the SoLU readout of GELU dash-dotted."""
    fig = style.figure("How much of each position's MLP activation sits in its top neuron",
                       "max a⁺ / Σ a⁺ over a position's neurons (hook_mid, before the LN)",
                       "fraction of positions at or below")
    for st in stats:
        x = np.sort(st.top_share)
        y = np.arange(1, len(x) + 1) / max(len(x), 1)
        key = st.name or st.act_fn
        name = style.label(key) + ("" if st.trained else " (untrained)") + (
            ": its pre-activations through x·softmax(x)" if st.readout else "")
        control = st.readout or not st.trained
        fig.add_scatter(x=x, y=y, name=name, mode="lines", opacity=0.45 if control else 1.0,
                        line=dict(color=style.color(key),
                                  dash="dashdot" if st.readout else style.dash(key),
                                  width=2 if st.trained else 1))
    for d in sorted({st.d_mlp for st in stats}):
        fig.add_scatter(x=[1 / d, 1 / d], y=[0, 1], mode="lines", name=f"evenly spread (1/{d})",
                        line=dict(color="#bbbbbb", dash="dot"))
    fig.update_xaxes(type="log")
    return fig


# --- the JupyterLab explorer -----------------------------------------------------------------

def explorer_figure(x: Sequence[float] | Tensor, blocks: int = 1, eps: float = LN_EPS) -> go.Figure:
    """The explorer's bar chart: x, softmax(x), SoLU(x), LN(SoLU(x)) and GELU(x)."""
    table = s4.activation_table(x, blocks=blocks, eps=eps)
    fig = go.Figure()
    _bars(fig, table, list(FUNCTION_COLORS))
    title = "x and its activations" + (f" (softmax and LN per block of "
                                       f"{len(table['x']) // blocks})" if blocks > 1 else "")
    _layout(fig, title, "coordinate", "value", height=380)
    fig.update_layout(barmode="group")
    return fig


def explorer(values: Sequence[float] = (4.0, 1.0, 4.0, 1.0), lo: float = -4.0, hi: float = 8.0,
             eps: float = LN_EPS):
    """An ipywidgets app: one slider per coordinate, a blocks choice and a live bar chart.

    Args:
        values: the starting vector (its length is the number of sliders).
        lo, hi: slider range.
        eps: epsilon of the LayerNorm in ``LN(SoLU(x))`` (the models' 1e-5).

    Returns:
        The ``ipywidgets.VBox`` (display it). Its ``.sliders``, ``.blocks`` and ``.output``
        attributes are the parts, for scripting.
    """
    import ipywidgets as widgets  # only in JupyterLab: the built book draws explorer_figure

    n = len(values)
    sliders = [widgets.FloatSlider(value=float(v), min=lo, max=hi, step=0.1, description=f"x{i}",
                                   continuous_update=False, layout=widgets.Layout(width="320px"))
               for i, v in enumerate(values)]
    blocks = widgets.Dropdown(options=[b for b in range(1, n + 1) if n % b == 0], value=1,
                              description="blocks")
    output = widgets.Output()

    def update(_change: Any = None) -> None:
        with output:
            output.clear_output(wait=True)
            display(explorer_figure([s.value for s in sliders], blocks=blocks.value, eps=eps))

    for w in (*sliders, blocks):
        w.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([widgets.VBox(sliders), blocks]), output])
    box.sliders, box.blocks, box.output = sliders, blocks, output
    return box


# --- tables ----------------------------------------------------------------------------------

def scale_invariance_table(m: DesignMeasurements) -> Markdown:
    """``m.scale_invariance``: max |LN(αx) − LN(x)| without and with the models' eps."""
    return Markdown(markdown_table(m.scale_invariance, digits=3))


def eps_effect_table(m: DesignMeasurements) -> Markdown:
    """``m.eps_effect``: the eps caveat per hidden size and pre-activation std."""
    return Markdown(markdown_table(m.eps_effect, digits=3))


def blocked_table(m: DesignMeasurements) -> Markdown:
    """``m.blocked``: the §4.4 checks of blocked SoLU and LayerNorm."""
    return Markdown(markdown_table([m.blocked], digits=3))


def mid_summary_table(m: DesignMeasurements) -> Markdown:
    """The trained models' ``hook_mid`` summary (seed 0 of every measured variant)."""
    rows = [row for row in s4.mid_summary_by_act(m.mid_stats).values() if row["tokens"]]
    return Markdown(markdown_table(rows, digits=3) if rows else
                    "*Not measured in this build (trained_rows = 0).*")


# --- checks pinned by nbval ------------------------------------------------------------------

def sparsity_checks(sp: TrainedSparsity | None, expected_seeds: int) -> list[Check]:
    """Properties of the sparsity measurement that hold on any CPU (what nbval pins): the
    matched seeds the zoo defines, and every median top-neuron share in [1/d_mlp, 1] (true of
    any activation, by construction). Nothing about which activation is more concentrated."""
    if sp is None:
        return [Check("trained sparsity measured", False, "trained_rows = 0")]
    lo = 1 / sp.d_mlp - 1e-9
    bad = [r.model for r in sp.rows if not lo <= r.top_share_median <= 1 + 1e-9]
    return [Check(f"{expected_seeds} matched GELU/SoLU-LN seed pairs, trained, untrained and "
                  "GELU's readout",
                  len(sp.seeds) == expected_seeds, f"seeds {list(sp.seeds)}"),
            Check(f"every model's median top-neuron share within [1/{sp.d_mlp}, 1]", not bad,
                  f"outside: {bad}")]


# --- the numbers the prose quotes ----------------------------------------------------------

def glue_values(m: DesignMeasurements, scale: str) -> dict[str, Any]:
    """Every number chapter 2's prose quotes (``myst_nb.glue``), beside the claims' own
    sentences and verdicts (``record.glue_claims``).

    Args:
        m: the chapter's measurements (``s4.measure``).
        scale: the book's scale ("tiny", "cpu", "gpu").
    """
    ex = m.examples
    r, curves = m.superlinearity["norm"], m.superlinearity
    out: dict[str, Any] = {
        "scale": scale, "eps": m.eps, "n_coords": m.n_coords, "n_blocks": m.n_blocks,
        "tolerance": m.worked_example_tolerance,
        "dev_4141": ex[0].max_abs_deviation, "solu_4141_small": ex[0].computed[1],
        "dev_4000": ex[1].max_abs_deviation, "solu_4000_first": ex[1].computed[0],
        "gelu_sigmoid_dev": m.gelu_sigmoid_max_deviation,
        "gelu_sigmoid_at": m.gelu_sigmoid_at,
        "other_at_8_solu": float(m.inhibited["SoLU(x)"][1]),
        "other_at_8_gelu": float(m.inhibited["GELU(x)"][1]),
        "spread_slope": float(curves["SoLU spread"][-1] / r[-1]),
        "aligned_slope_small": float(curves["SoLU aligned"][1] / r[1]),
        "aligned_slope_large": float(curves["SoLU aligned"][-1] / r[-1]),
        "max_norm": float(r[-1]),
        "scale_inv_eps_small": m.scale_invariance[0].max_diff_eps,
        "scale_inv_alpha_small": m.scale_invariance[0].alpha,
        "identity64": m.ln_solu_identity_max_diff,
        "identity32": m.ln_solu_identity_max_diff_float32,
        "d_mlp": m.d_mlp, "eps_gain_scale": m.eps_gain_median,
        "eps_identity_scale": m.eps_identity_max_diff_median,
    }
    for act, row in s4.mid_summary_by_act(m.mid_stats).items():
        out[f"top_share_{act}"] = row["top_share_median"]
        out[f"ln_gain_{act}"] = row["ln_gain_median"]
    sp = m.sparsity
    out["trained_rows"] = m.trained_rows
    out["sparsity_d_mlp"] = sp.d_mlp if sp else 0
    for act in s4.SPARSITY_PAIR:
        out[f"kurtosis_{act}"] = sp.mean(act, "kurtosis_median") if sp else float("nan")
        out[f"top_neurons_{act}"] = sp.mean(act, "top_neurons_effective") if sp else float("nan")
    out["kurtosis_difference"] = (sp.kurtosis_difference.format("+.1f") if sp
                                  else "not measured")
    nan = float("nan")
    out["top_share_readout"] = sp.mean("gelu", readout=True) if sp else nan
    out["top_share_solu_ln_mean"] = sp.mean("solu_ln") if sp else nan
    out["top_share_gelu_mean"] = sp.mean("gelu") if sp else nan
    out["sparsity_difference"] = sp.difference.format("+.3f") if sp else "not measured"
    out["sparsity_test"] = sp.test.interval_text if sp else "not measured"
    out["sparsity_detectable"] = sp.test.detectable if sp else nan
    out["sparsity_interest"] = s4.SPARSITY_INTEREST
    return out
