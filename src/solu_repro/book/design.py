"""Paper §4, computed live: SoLU against GELU and softmax, its lateral inhibition and
superlinearity, LayerNorm's scale invariance (and where the epsilon breaks it), blocked SoLU.

Everything here calls the package's own ``solu``, ``gelu`` and ``BlockedLayerNorm`` (the
functions the zoo models are trained with), so the book checks the code it runs, not a
re-derivation. Notebook 2 narrates these functions; the scorecard (notebook 8) reads
``design_measurements``.

* worked examples of §4.2: ``worked_examples``, ``worked_examples_text``;
* "GELU is approximated closely by sigmoid(1.7x)*x": ``gelu_sigmoid_deviation``;
* figures: ``activations_figure``, ``lateral_inhibition_figure``, ``superlinearity_figure``,
  ``gelu_approximation_figure``, ``blocked_inhibition_figure``, ``ln_eps_figure``,
  ``top_share_figure``; the JupyterLab explorer ``explorer``;
* §4.3: ``ln_scale_invariance``, ``ln_solu_identity``, ``ln_eps_effect`` (the eps caveat);
* §4.4: ``blocked_checks``;
* trained models: ``mid_activation_stats`` (how concentrated ``hook_mid`` is per token, and
  how much the eps of the extra LN shrinks it).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from ..activations import ACT_FNS, BlockedLayerNorm, gelu, solu
from ..model import ModelConfig
from . import style

LN_EPS = ModelConfig.ln_eps
"""The zoo models' LayerNorm epsilon (1e-5): the default ``eps`` everywhere below."""

# --- the paper's worked examples (§4.2) ----------------------------------------------------

PAPER_WORKED_EXAMPLES: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = (
    ((4.0, 1.0, 4.0, 1.0), (2.0, 0.0, 2.0, 0.0)),      # large values suppress small ones
    ((4.0, 0.0, 0.0, 0.0), (4.0, 0.0, 0.0, 0.0)),      # a basis-aligned vector is preserved
    ((1.0, 1.0, 1.0, 1.0), (0.25, 0.25, 0.25, 0.25)),  # a spread-out one is shrunk
)
"""(input, the value the paper states with "≈") for each of §4.2's examples."""

WORKED_EXAMPLE_TOLERANCE = 0.25
"""How far from the paper's rounded value a coordinate may be for "≈" to count as reproduced.

The paper's "≈" is loose: SoLU(4,0,0,0) is really 4*e^4/(e^4+3) ≈ 3.79, i.e. about 5% of the
largest input below the stated 4. A tolerance of 0.25 (about 6% of the largest input) accepts
that rounding and still fails any activation without lateral inhibition: a GELU-like
``x*sigmoid(1.7x)`` maps (4,1,4,1) to about (4.0, 0.85, 4.0, 0.85), and a softmax over the
wrong axis gives back ``x`` itself. (The tolerance was set after computing 3.79: it encodes
how loosely the paper rounds, not a prediction.)
"""

GELU_SIGMOID_COEFFICIENT = 1.7
"""§4.2: "GeLU is approximated closely by sigmoid(1.7x)*x"."""

# Colours of the functions compared in the figures; the SoLU and GELU hues are the model
# colours of ``style`` so that "SoLU" means the same colour across the book.
FUNCTION_COLORS = {
    "x": "#7f7f7f",
    "softmax(x)": "#9467bd",
    "SoLU(x)": style.ACT_COLORS["solu"],
    "LN(SoLU(x))": style.ACT_COLORS["solu_ln"],
    "GELU(x)": style.ACT_COLORS["gelu"],
}


@dataclass(frozen=True)
class WorkedExample:
    """One of §4.2's examples: the input, the paper's stated output and ours."""

    x: tuple[float, ...]
    paper: tuple[float, ...]
    computed: tuple[float, ...]

    @property
    def max_abs_deviation(self) -> float:
        return max(abs(c - p) for c, p in zip(self.computed, self.paper))

    @property
    def reproduced(self) -> bool:
        return self.max_abs_deviation <= WORKED_EXAMPLE_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "max_abs_deviation": self.max_abs_deviation,
                "reproduced": self.reproduced}


def worked_examples(activation: Callable[[Tensor], Tensor] = solu) -> list[WorkedExample]:
    """§4.2's worked examples evaluated with ``activation`` (the package's ``solu``).

    Args:
        activation: the function to evaluate; any other is only for showing that the check
            can fail.

    Returns:
        One ``WorkedExample`` per example of ``PAPER_WORKED_EXAMPLES``, in float64.
    """
    rows = []
    for x, paper in PAPER_WORKED_EXAMPLES:
        out = activation(torch.tensor(x, dtype=torch.float64))
        rows.append(WorkedExample(x=x, paper=paper, computed=tuple(float(v) for v in out)))
    return rows


def example_vector(n: int = 4, large: float = 4.0, small: float = 1.0) -> tuple[float, ...]:
    """``(4, 1, 4, 1, ...)`` of length ``n``: the first worked example, extended."""
    return tuple(large if i % 2 == 0 else small for i in range(n))


def format_table(rows: Sequence[Any], digits: int = 3) -> str:
    """Dataclass rows as a plain-text table (floats in ``digits`` significant figures)."""
    dicts = [r if isinstance(r, dict) else asdict(r) for r in rows]
    if not dicts:
        return ""
    keys = list(dicts[0])

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)

    cells = [keys] + [[cell(d[k]) for k in keys] for d in dicts]
    widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def _fmt(values: Sequence[float], digits: int) -> str:
    return "(" + ", ".join(f"{v:.{digits}f}" for v in values) + ")"


def worked_examples_text(rows: Sequence[WorkedExample] | None = None, digits: int = 2) -> str:
    """The worked examples as short, rounded, deterministic text (pinned by nbval)."""
    rows = worked_examples() if rows is None else rows
    lines = []
    for r in rows:
        x = "(" + ",".join(f"{v:g}" for v in r.x) + ")"
        lines.append(f"SoLU{x}: paper ≈ {_fmt(r.paper, 2)}, computed {_fmt(r.computed, digits)}, "
                     f"max |dev| {r.max_abs_deviation:.{digits}f} "
                     f"({'within' if r.reproduced else 'OUTSIDE'} {WORKED_EXAMPLE_TOLERANCE:g})")
    return "\n".join(lines)


# --- GELU ≈ sigmoid(1.7x)*x ------------------------------------------------------------------

@dataclass(frozen=True)
class SigmoidApproximation:
    """How far ``sigmoid(c*x)*x`` is from the exact (erf) GELU over ``[lo, hi]``."""

    coefficient: float
    lo: float
    hi: float
    max_abs_deviation: float
    at: float  # the x where the deviation is largest


def gelu_sigmoid_deviation(coefficient: float = GELU_SIGMOID_COEFFICIENT, lo: float = -10.0,
                           hi: float = 10.0, n: int = 200_001) -> SigmoidApproximation:
    """The largest ``|GELU(x) - sigmoid(c*x)*x|`` on a grid of ``n`` points over ``[lo, hi]``.

    Outside a few units of 0 both functions are 0 or x to within float precision, so a range
    of ±10 contains the maximum.
    """
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    dev = (gelu(x) - torch.sigmoid(coefficient * x) * x).abs()
    i = int(dev.argmax())
    return SigmoidApproximation(coefficient=coefficient, lo=lo, hi=hi,
                                max_abs_deviation=float(dev[i]), at=float(x[i]))


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


# --- the functions compared ------------------------------------------------------------------

def layer_norm(x: Tensor, eps: float = 0.0, blocks: int = 1) -> Tensor:
    """The model's extra LayerNorm (``BlockedLayerNorm``) at its initial affine (w=1, b=0).

    ``eps=0`` is the exactly scale-invariant LN of the paper's argument; the models use
    ``ModelConfig.ln_eps`` (1e-5).
    """
    ln = BlockedLayerNorm(x.shape[-1], blocks=blocks, eps=eps).to(x.dtype)
    with torch.no_grad():
        return ln(x)


def blocked_softmax(x: Tensor, blocks: int = 1) -> Tensor:
    """Softmax over each of ``blocks`` equal groups of the last dimension (paper §4.4)."""
    return torch.softmax(x.unflatten(-1, (blocks, x.shape[-1] // blocks)), -1).flatten(-2)


def activation_table(x: Sequence[float] | Tensor, blocks: int = 1,
                     eps: float = LN_EPS) -> dict[str, np.ndarray]:
    """``x``, ``softmax(x)``, ``SoLU(x)``, ``LN(SoLU(x))`` and ``GELU(x)`` of one vector.

    ``LN`` is the model's LayerNorm with ``eps`` at its initial affine; with ``blocks > 1``
    the softmax and the LN act per block, as in the blocked models.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    mid = solu(x, blocks)
    return {"x": x.numpy(), "softmax(x)": blocked_softmax(x, blocks).numpy(),
            "SoLU(x)": mid.numpy(), "LN(SoLU(x))": layer_norm(mid, eps, blocks).numpy(),
            "GELU(x)": gelu(x).numpy()}


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


def activations_figure(vectors: dict[str, Sequence[float]] | None = None,
                       names: Sequence[str] = ("x", "softmax(x)", "SoLU(x)", "GELU(x)"),
                       eps: float = LN_EPS) -> go.Figure:
    """Grouped bars of several functions on example vectors, one panel per vector.

    Args:
        vectors: title -> vector; default the three inputs of §4.2's worked examples.
        names: which of ``activation_table``'s functions to draw.
    """
    if vectors is None:
        labels = ("large and small values", "basis-aligned", "spread out")
        vectors = {f"{lab}: {tuple(int(v) for v in x)}": x
                   for lab, (x, _) in zip(labels, PAPER_WORKED_EXAMPLES)}
    fig = make_subplots(rows=1, cols=len(vectors), subplot_titles=list(vectors),
                        shared_yaxes=True, horizontal_spacing=0.04)
    for j, x in enumerate(vectors.values(), start=1):
        _bars(fig, activation_table(x, eps=eps), names, col=j, showlegend=j == 1)
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


def superlinearity_curves(n: int = 4, max_norm: float = 8.0,
                          points: int = 161) -> dict[str, np.ndarray]:
    """Output norm against input norm for a basis-aligned and a spread-out input.

    The aligned input is ``r*e_0``, the spread one ``r*(1,…,1)/sqrt(n)``: the same norm ``r``.
    SoLU of the spread input is ``r/n`` times the unit vector (linear, slope ``1/n``); SoLU of
    the aligned input grows from slope ``1/n`` to slope 1 (superlinear). GELU's two curves
    approach each other (both ≈ r for large r).

    Returns:
        ``{"norm": r, "SoLU aligned": ..., "SoLU spread": ..., "GELU aligned": ...,
        "GELU spread": ...}``, each of shape ``(points,)``.
    """
    r = torch.linspace(0.0, max_norm, points, dtype=torch.float64)
    aligned = torch.zeros(points, n, dtype=torch.float64)
    aligned[:, 0] = r
    spread = r[:, None].expand(points, n) / math.sqrt(n)
    out = {"norm": r.numpy()}
    for fname, f in (("SoLU", solu), ("GELU", gelu)):
        out[f"{fname} aligned"] = f(aligned).norm(dim=-1).numpy()
        out[f"{fname} spread"] = f(spread).norm(dim=-1).numpy()
    return out


def superlinearity_figure(n: int = 4, max_norm: float = 8.0) -> go.Figure:
    """``superlinearity_curves`` drawn, with the identity for reference."""
    c = superlinearity_curves(n, max_norm)
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


# --- the JupyterLab explorer -----------------------------------------------------------------

def explorer_figure(x: Sequence[float] | Tensor, blocks: int = 1, eps: float = LN_EPS) -> go.Figure:
    """The explorer's bar chart: x, softmax(x), SoLU(x), LN(SoLU(x)) and GELU(x)."""
    table = activation_table(x, blocks=blocks, eps=eps)
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
    import ipywidgets as widgets
    from IPython.display import display

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


# --- LayerNorm (§4.3) ------------------------------------------------------------------------

@dataclass(frozen=True)
class ScaleInvarianceRow:
    """``max |LN(alpha*x) - LN(x)|`` without and with the models' epsilon."""

    alpha: float
    std: float  # of alpha*x
    max_diff_no_eps: float
    max_diff_eps: float


def ln_scale_invariance(x: Sequence[float] | Tensor,
                        alphas: Sequence[float] = (1e-4, 1e-3, 1e-2, 0.1, 10.0, 1e3),
                        eps: float = LN_EPS) -> list[ScaleInvarianceRow]:
    """Paper §4.3: ``LN(alpha*x) = LN(x)`` because ``sigma(alpha*x) = alpha*sigma(x)``.

    Exact (to float64 rounding) for an LN without epsilon. The models' LN divides by
    ``sqrt(var + eps)``, so once ``alpha*x`` has a variance near ``eps`` its output shrinks by
    ``sqrt(var / (var + eps))``: compared here against ``LN(x)`` computed the same way.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    rows = []
    for a in alphas:
        d0 = (layer_norm(a * x) - layer_norm(x)).abs().max()
        d1 = (layer_norm(a * x, eps) - layer_norm(x, eps)).abs().max()
        rows.append(ScaleInvarianceRow(alpha=float(a), std=float((a * x).std(unbiased=False)),
                                       max_diff_no_eps=float(d0), max_diff_eps=float(d1)))
    return rows


def ln_solu_identity(x: Tensor, eps: float = 0.0, blocks: int = 1) -> float:
    """``max |LN(SoLU(x)) - LN(x*exp(x))|`` over all of ``x`` (any leading shape).

    Paper §4.3: the softmax denominator is a positive per-vector (per-block) scale, which an
    LN without epsilon removes exactly. Inputs should stay below ~80 in float32 (``exp``
    overflows at 88); use float64 to see the identity to rounding error.
    """
    mid = solu(x, blocks)
    direct = x * torch.exp(x)
    return float((layer_norm(mid, eps, blocks) - layer_norm(direct, eps, blocks)).abs().max())


def ln_gain(v: Tensor, eps: float, blocks: int = 1) -> Tensor:
    """``sqrt(var / (var + eps))`` per vector (per block): ``LN_eps(v) = gain * LN_0(v)``.

    1 means the LN is scale invariant for this vector; 0.5 means the vector's variance is
    ``eps/3`` and the LN only brings it halfway to unit scale.
    """
    var = v.unflatten(-1, (blocks, v.shape[-1] // blocks)).var(-1, unbiased=False)
    return (var / (var + eps)).sqrt()


@dataclass(frozen=True)
class EpsEffectRow:
    """The eps caveat at one hidden size, for Gaussian pre-activations of std ``pre_std``."""

    d_mlp: int
    pre_std: float
    solu_std_median: float      # std of SoLU(x) within a vector: ~ pre_std / d_mlp
    gain_median: float          # median of sqrt(var / (var + eps))
    gain_q10: float             # 10% of vectors are shrunk more than this
    identity_max_diff_median: float  # median over vectors of max |LN_eps(SoLU x) - LN_eps(x e^x)|


def ln_eps_effect(d_mlps: Sequence[int] = (128, 512, 2048),
                  pre_stds: Sequence[float] = (0.5, 1.0, 2.0), eps: float = LN_EPS, n: int = 512,
                  seed: int = 0) -> list[EpsEffectRow]:
    """How much the LN epsilon breaks scale invariance for distributed (suppressed) vectors.

    A pre-activation spread over many neurons gets a softmax of about ``1/d_mlp`` everywhere,
    so ``SoLU(x)`` has a std of roughly ``std(x)/d_mlp``: at ``d_mlp`` in the thousands its
    variance is below ``eps=1e-5``, and the extra LN can no longer rescale it to unit size as
    the paper's argument assumes. ``x*exp(x)`` has no such problem, so the identity
    ``LN(SoLU(x)) = LN(x*exp(x))`` holds only approximately.

    Gaussian pre-activations are a stand-in: ``mid_activation_stats`` measures trained models.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for d in d_mlps:
        for s in pre_stds:
            x = torch.randn(n, d, generator=gen, dtype=torch.float64) * s
            mid = solu(x)
            g = ln_gain(mid, eps)[:, 0]
            diff = (layer_norm(mid, eps) - layer_norm(x * torch.exp(x), eps)).abs().amax(-1)
            rows.append(EpsEffectRow(
                d_mlp=int(d), pre_std=float(s),
                solu_std_median=float(mid.std(-1, unbiased=False).median()),
                gain_median=float(g.median()), gain_q10=float(torch.quantile(g, 0.1)),
                identity_max_diff_median=float(diff.median())))
    return rows


def ln_eps_figure(rows: Sequence[EpsEffectRow], stats: Sequence["MidStats"] = (),
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


# --- blocked SoLU (§4.4) ---------------------------------------------------------------------

@dataclass(frozen=True)
class BlockedChecks:
    """Numerical checks of the package's blocked SoLU and LayerNorm (paper §4.4)."""

    d: int
    blocks: int
    unblocked_vs_definition: float   # max |solu(x, 1) - x*softmax(x)|
    blocked_vs_per_block: float      # max |solu(x, k) - concat_b solu(x_b)|
    softmax_sum_max_dev: float       # max over blocks |sum_block solu(x,k)/x - 1|
    ln_vs_per_block: float           # max |BlockedLayerNorm_k(v) - concat_b LN(v_b)|
    other_block_change: float        # max change of other blocks' outputs when x_0 grows by 10
                                     # (nan for blocks=1: there is no other block)


def blocked_checks(d: int = 8, blocks: int = 2, n: int = 64, seed: int = 0,
                   eps: float = LN_EPS) -> BlockedChecks:
    """Check that blocked SoLU / LN act per block and reduce to the unblocked ones at k=1.

    The per-block softmax is read back from the package's ``solu`` as ``solu(x, k) / x`` (no
    input coordinate is 0), so the check covers the code the models run.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * 2
    x = torch.where(x.abs() < 1e-3, torch.full_like(x, 1e-3), x)
    unblocked = (solu(x, 1) - x * torch.softmax(x, -1)).abs().max()
    per_block = torch.cat([solu(b) for b in x.chunk(blocks, -1)], -1)
    blocked = (solu(x, blocks) - per_block).abs().max()
    weights = (solu(x, blocks) / x).unflatten(-1, (blocks, d // blocks)).sum(-1)
    ln_per_block = torch.cat([layer_norm(b, eps) for b in x.chunk(blocks, -1)], -1)
    ln_blocked = (layer_norm(x, eps, blocks) - ln_per_block).abs().max()
    grown = x.clone()
    grown[:, 0] += 10.0
    other = slice(d // blocks, d)  # every block but coordinate 0's (none when blocks=1)
    change = (solu(grown, blocks)[:, other] - solu(x, blocks)[:, other]).abs().max() \
        if blocks > 1 else torch.tensor(math.nan)
    return BlockedChecks(d=d, blocks=blocks, unblocked_vs_definition=float(unblocked),
                         blocked_vs_per_block=float(blocked),
                         softmax_sum_max_dev=float((weights - 1).abs().max()),
                         ln_vs_per_block=float(ln_blocked), other_block_change=float(change))


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


# --- trained models: how concentrated hook_mid is ------------------------------------------

@dataclass
class MidStats:
    """Per-token statistics of a model's ``hook_mid`` (every layer, BOS excluded).

    Attributes:
        name: zoo name of the model.
        act_fn: its activation.
        d_mlp: neurons per layer.
        top_share: per token and layer, ``max_i |a_i| / sum_i |a_i|`` (1 = one neuron carries
            all the activation mass, ``1/d_mlp`` = spread evenly).
        ln_gain: per token, layer and block, ``sqrt(var / (var + eps))`` of ``hook_mid`` with
            the model's eps: how far the extra LN is from scale invariant there (only matters
            for the ``*_ln`` models).
    """

    name: str
    act_fn: str
    d_mlp: int
    top_share: np.ndarray
    ln_gain: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"model": self.name, "act_fn": self.act_fn, "d_mlp": self.d_mlp,
                "tokens": int(self.top_share.size),
                "top_share_median": float(np.median(self.top_share)),
                "ln_gain_median": float(np.median(self.ln_gain)),
                "frac_ln_gain_below_0.9": float((self.ln_gain < 0.9).mean())}


def mid_stats_from_model(model, tokens: Tensor, name: str = "") -> MidStats:
    """``MidStats`` of ``model`` (a ``solu_repro.model.Transformer``) on ``tokens`` ``(B, T)``."""
    cfg = model.cfg
    hooks = [f"blocks.{layer}.mlp.hook_mid" for layer in range(cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=hooks, return_logits=False)
    mid = torch.stack([cache[h][:, 1:].double() for h in hooks])  # (L, B, T-1, d_mlp)
    mass = mid.abs()
    top_share = mass.amax(-1) / mass.sum(-1).clamp(min=1e-30)
    gain = ln_gain(mid, cfg.ln_eps, cfg.solu_blocks)
    return MidStats(name=name, act_fn=cfg.act_fn, d_mlp=cfg.d_mlp,
                    top_share=top_share.flatten().numpy(), ln_gain=gain.flatten().numpy())


def mid_activation_stats(run, n_rows: int = 16) -> MidStats:
    """``MidStats`` of a trained zoo run on the first ``n_rows`` rows of its validation split."""
    from ..data.batches import get_rows, num_rows

    model = run.load_model()
    corpus = run.corpus()
    split = corpus.split("val")
    rows = range(min(n_rows, num_rows(split, model.cfg.n_ctx)))
    tokens = get_rows(split, rows, model.cfg.n_ctx, corpus.bos_id)
    return mid_stats_from_model(model.eval(), tokens, name=run.name)


def mid_stats_for(ctx, names: Sequence[str] | None = None, n_rows: int = 16) -> list[MidStats]:
    """``MidStats`` of zoo models (default: every model of the smallest depth, i.e. the GELU
    baseline, SoLU+LN and both 1-layer ablations), trained first if missing."""
    if names is None:
        names = [n for n in ctx.names if style.depth_of(n) == min(ctx.depths)]
    return [mid_activation_stats(ctx.run(name), n_rows=n_rows) for name in names]


def mid_summary_by_act(stats: Sequence[MidStats]) -> dict[str, dict[str, Any]]:
    """``MidStats.summary()`` keyed by activation, with NaN rows for activations not measured
    (so a notebook can glue every key whether or not it ran the models)."""
    out = {act: {"model": "-", "act_fn": act, "d_mlp": 0, "tokens": 0,
                 "top_share_median": math.nan, "ln_gain_median": math.nan,
                 "frac_ln_gain_below_0.9": math.nan} for act in ACT_FNS}
    out.update({st.act_fn: st.summary() for st in stats})
    return out


def top_share_figure(stats: Sequence[MidStats]) -> go.Figure:
    """Per-token share of ``hook_mid``'s mass in its largest neuron: one cumulative
    distribution per model (further right = more concentrated on one neuron)."""
    fig = style.figure("How much of each token's MLP activation sits in its top neuron",
                       "max |a_i| / Σ |a_i| over a token's neurons (hook_mid)",
                       "fraction of tokens at or below")
    for st in stats:
        x = np.sort(st.top_share)
        y = np.arange(1, len(x) + 1) / len(x)
        key = st.name or st.act_fn
        fig.add_scatter(x=x, y=y, name=style.label(key), mode="lines",
                        line=dict(color=style.color(key), dash=style.dash(key)))
    for d in sorted({st.d_mlp for st in stats}):
        fig.add_scatter(x=[1 / d, 1 / d], y=[0, 1], mode="lines", name=f"evenly spread (1/{d})",
                        line=dict(color="#bbbbbb", dash="dot"))
    fig.update_xaxes(type="log")
    return fig


# --- numbers for the scorecard ---------------------------------------------------------------

@dataclass(frozen=True)
class DesignMeasurements:
    """The numbers of paper §4 that the scorecard reports (one source of truth).

    Attributes:
        worked_example_deviations: max |computed - paper| per worked example, in the order of
            ``PAPER_WORKED_EXAMPLES``.
        worked_example_tolerance: ``WORKED_EXAMPLE_TOLERANCE``.
        worked_examples_reproduced: every example within the tolerance.
        gelu_sigmoid_max_deviation: max |GELU(x) - sigmoid(1.7x)x| over [-10, 10].
        gelu_sigmoid_at: |x| where it is reached (the deviation is even in x: the maximum is a
            tie between x and -x, which rounding may break either way).
        ln_scale_invariance_max_diff: max |LN(alpha x) - LN(x)| without eps over alphas
            1e-4..1e3 (float64).
        ln_solu_identity_max_diff: max |LN(SoLU(x)) - LN(x e^x)| without eps (float64).
        ln_solu_identity_max_diff_float32: the same in float32 (what the models compute).
        d_mlp: hidden size the eps caveat is measured at (the scale's models).
        eps: the models' LayerNorm eps.
        eps_gain_median: median sqrt(var/(var+eps)) of SoLU(x) for N(0,1) pre-activations of
            size ``d_mlp``.
        eps_identity_max_diff_median: median max |LN_eps(SoLU x) - LN_eps(x e^x)| there.
        blocked_equals_unblocked: max |solu(x, 1) - x softmax(x)|.
        blocked_softmax_sum_max_dev: max |per-block softmax sum - 1| at blocks=2.
        blocked_other_block_change: max change of another block's output when x_0 grows by 10.
    """

    worked_example_deviations: tuple[float, ...]
    worked_example_tolerance: float
    worked_examples_reproduced: bool
    gelu_sigmoid_max_deviation: float
    gelu_sigmoid_at: float
    ln_scale_invariance_max_diff: float
    ln_solu_identity_max_diff: float
    ln_solu_identity_max_diff_float32: float
    d_mlp: int
    eps: float
    eps_gain_median: float
    eps_identity_max_diff_median: float
    blocked_equals_unblocked: float
    blocked_softmax_sum_max_dev: float
    blocked_other_block_change: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def identity_test_vectors(n: int = 256, d: int = 4, std: float = 2.0, seed: int = 0,
                          dtype: torch.dtype = torch.float64) -> Tensor:
    """Random ``(n, d)`` pre-activations for the identity checks (Gaussian, clipped to ±20)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=gen, dtype=torch.float64) * std).clamp(-20, 20).to(dtype)


def design_measurements(ctx=None, d_mlp: int | None = None,
                        eps: float | None = None) -> DesignMeasurements:
    """Compute ``DesignMeasurements``; no trained model is needed.

    Args:
        ctx: a ``BookContext``; its scale's ``d_mlp`` is used for the eps caveat.
        d_mlp: overrides the hidden size (default: the ctx scale's, else 1024).
        eps: the LayerNorm eps (default ``ModelConfig.ln_eps``).
    """
    from ..zoo import SCALES

    if d_mlp is None:
        d_mlp = SCALES[ctx.scale].d_mlp if ctx is not None else 1024
    eps = LN_EPS if eps is None else eps
    rows = worked_examples()
    approx = gelu_sigmoid_deviation()
    x = identity_test_vectors(d=8)
    scale = max(r.max_diff_no_eps for r in ln_scale_invariance(x[0], eps=eps))
    caveat = ln_eps_effect(d_mlps=(d_mlp,), pre_stds=(1.0,), eps=eps)[0]
    checks = blocked_checks(eps=eps)
    return DesignMeasurements(
        worked_example_deviations=tuple(r.max_abs_deviation for r in rows),
        worked_example_tolerance=WORKED_EXAMPLE_TOLERANCE,
        worked_examples_reproduced=all(r.reproduced for r in rows),
        gelu_sigmoid_max_deviation=approx.max_abs_deviation, gelu_sigmoid_at=abs(approx.at),
        ln_scale_invariance_max_diff=scale,
        ln_solu_identity_max_diff=ln_solu_identity(x),
        ln_solu_identity_max_diff_float32=ln_solu_identity(
            identity_test_vectors(d=8, dtype=torch.float32)),
        d_mlp=int(d_mlp), eps=float(eps), eps_gain_median=caveat.gain_median,
        eps_identity_max_diff_median=caveat.identity_max_diff_median,
        blocked_equals_unblocked=checks.unblocked_vs_definition,
        blocked_softmax_sum_max_dev=checks.softmax_sum_max_dev,
        blocked_other_block_change=checks.other_block_change)


def source_markdown(obj: Callable) -> str:
    """The source code of ``obj`` (the package's own, as the models run it) as a fenced
    Markdown code block, to ``display(Markdown(...))`` in a notebook."""
    code = inspect.getsource(obj).rstrip("\n")
    fence = "`" * max(3, 1 + max((len(run) for run in _backtick_runs(code)), default=0))
    return f"{fence}python\n{code}\n{fence}"


def _backtick_runs(text: str) -> list[str]:
    import re

    return re.findall(r"`+", text)

