"""Paper §6.1-6.2 at our scale: the automated interpretability score of every zoo model, the
Figure 4 analogue, the full-spectrum view beside it, and blinded human judgments when a session
with judgments exists.

The scorer (``solu_repro.interp.score``) stands in for the paper's human evaluators; its
"interpretable at first glance" verdict applies the paper's 80%-of-the-top-20 rule mechanically.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import paths
from ..interp.blind.defaults import DEFAULT_MODELS, DEFAULT_N_PER_MODEL
from ..interp.score import ScoreSettings
from ..interp.stats import (Proportion, SeedInterval, difference_interval,
                            paired_seed_difference, seed_mean_interval)
from ..paper import registry
from ..paper import claim as claim_rules
from ..paper.claim import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED, Claim
from . import style
from .context import ONE_MODEL_RULE, BookContext

VIEWS = {"top": "top-20 view (paper §6.1 rule)", "spectrum": "full-spectrum view"}
BLIND_DIR = "blind"
"""Blinded sessions live in ``<runs_dir>/<scale>/blind/<session>/`` (one folder each)."""


@dataclass(frozen=True)
class ModelInterpretability:
    """One zoo model's automated score: both views overall and per layer."""

    name: str
    act: str
    depth: int
    top: Proportion
    spectrum: Proportion
    by_layer: list[dict[str, Any]]
    distinct: int = 0  # different explanations among the neurons interpretable at first glance

    def row(self) -> dict[str, Any]:
        return {"model": self.name, "neurons": self.top.n,
                "interpretable": self.top.successes, "fraction": self.top.fraction,
                "ci_lo": self.top.lo, "ci_hi": self.top.hi,
                "spectrum_fraction": self.spectrum.fraction,
                "spectrum_ci_lo": self.spectrum.lo, "spectrum_ci_hi": self.spectrum.hi}


@dataclass(frozen=True)
class Comparison:
    """SoLU-LN (or an ablation) against the GELU baseline of the same depth, one view."""

    name: str
    baseline: str
    view: str
    diff: float
    lo: float
    hi: float
    ratio: float

    @property
    def significant(self) -> bool:
        """The 95% Newcombe interval of the difference excludes zero."""
        return self.lo > 0 or self.hi < 0


def model_interpretability(ctx: BookContext, names: list[str] | None = None
                           ) -> dict[str, ModelInterpretability]:
    """Harvest and score (cached) each zoo model and summarise its interpretable fraction."""
    return {name: summarize(name, ctx.scores(name)) for name in names or ctx.names}


def summarize(name: str, scores, label: str | None = None) -> ModelInterpretability:
    """A model's (or a null control's) ``NeuronScores`` as fractions in both views."""
    return ModelInterpretability(
        name=label or name, act=style.act_of(name), depth=style.depth_of(name),
        top=scores.fraction_interpretable(view="top"),
        spectrum=scores.fraction_interpretable(view="spectrum"),
        by_layer=scores.by_layer(),
        distinct=len({r.explanation for r in scores.records if r.interpretable}))


def compare(results: dict[str, ModelInterpretability], name: str, view: str = "top"
            ) -> Comparison:
    """``name`` minus the GELU baseline of its depth, with Newcombe's 95% interval."""
    baseline = f"{style.depth_of(name)}L-gelu"
    a = getattr(results[name], view)
    b = getattr(results[baseline], view)
    diff, lo, hi = difference_interval(a.successes, a.n, b.successes, b.n)
    ratio = a.fraction / b.fraction if b.successes else math.inf if a.successes else math.nan
    return Comparison(name, baseline, view, diff, lo, hi, ratio)


def comparisons(results: dict[str, ModelInterpretability], view: str = "top"
                ) -> list[Comparison]:
    """Every non-baseline model against its same-depth baseline."""
    return [compare(results, name, view) for name, r in results.items()
            if r.act != "gelu" and f"{r.depth}L-gelu" in results]


def table(results: dict[str, ModelInterpretability]) -> list[dict[str, Any]]:
    return [r.row() for r in results.values()]


def format_table(results: dict[str, ModelInterpretability]) -> str:
    """A fixed-width text table of both views per model."""
    lines = [f"{'model':<12} {'neurons':>7} {'top-20 interpretable':>22} "
             f"{'full spectrum':>15}"]
    for r in results.values():
        lines.append(f"{r.name:<12} {r.top.n:>7} {r.top.successes:>8} ({r.top.fraction:6.1%}) "
                     f"     {r.spectrum.successes:>5} ({r.spectrum.fraction:6.1%})")
    return "\n".join(lines)


def figure4(results: dict[str, ModelInterpretability]) -> go.Figure:
    """Fraction interpretable vs depth, per activation, with 95% Wilson intervals.

    Left: the top-20 view (the paper's Figure 4 rule); right: the full-spectrum view. Lines
    join the GELU baseline and SoLU-LN sizes; ablations are single points at their depth.
    """
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True,
                        subplot_titles=[VIEWS["top"], VIEWS["spectrum"]])
    acts = list(dict.fromkeys(r.act for r in results.values()))
    for col, view in enumerate(VIEWS, start=1):
        for act in acts:
            rs = sorted((r for r in results.values() if r.act == act), key=lambda r: r.depth)
            ps = [getattr(r, view) for r in rs]
            fig.add_trace(go.Scatter(
                x=[r.depth for r in rs], y=[p.fraction for p in ps],
                mode="lines+markers" if len(rs) > 1 else "markers",
                name=style.label(act), legendgroup=act, showlegend=col == 1,
                line=dict(color=style.color(act), dash=style.dash(act)),
                marker=dict(size=9),
                error_y=dict(type="data", symmetric=False,
                             array=[p.hi - p.fraction for p in ps],
                             arrayminus=[p.fraction - p.lo for p in ps]),
                customdata=[[p.successes, p.n] for p in ps],
                hovertemplate="%{y:.1%} (%{customdata[0]}/%{customdata[1]})<extra></extra>"),
                row=1, col=col)
    depths = sorted({r.depth for r in results.values()})
    fig.update_xaxes(type="log", tickvals=depths, ticktext=[f"{d}L" for d in depths],
                     title_text="model depth (layers)")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(title_text="fraction of neurons interpretable", row=1, col=1)
    fig.update_layout(template="plotly_white", font=style.FONT, height=430,
                      title=dict(text="Figure 4 analogue: automated score, 95% Wilson intervals",
                                 x=0.0, xanchor="left"),
                      margin=dict(l=60, r=20, t=80, b=50))
    return fig


def layer_figure(results: dict[str, ModelInterpretability], view: str = "top") -> go.Figure:
    """Fraction interpretable per layer (relative depth) of every multi-layer model."""
    key = "fraction" if view == "top" else "spectrum_fraction"
    fig = style.figure(f"Interpretable fraction by layer ({VIEWS[view]})",
                       "layer", "fraction interpretable")
    for r in results.values():
        if r.depth < 2:
            continue
        fig.add_trace(go.Scatter(
            x=[row["layer"] for row in r.by_layer], y=[row[key] for row in r.by_layer],
            mode="lines+markers", name=style.label(r.name),
            line=dict(color=style.color(r.name), dash=style.dash(r.name)),
            marker=dict(symbol={2: "circle", 4: "square"}.get(r.depth, "diamond"))))
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


# --- null controls -------------------------------------------------------------------------------
NULL_LABELS = {"rotated": "rotated basis", "random_init": "untrained model",
               "solu_readout": "SoLU readout of GELU"}


@dataclass(frozen=True)
class NullControls:
    """One model's neuron basis beside its null controls (``interp.controls``), both views."""

    name: str
    basis: ModelInterpretability
    nulls: dict[str, ModelInterpretability]

    def gain(self, control: str, view: str = "top") -> tuple[float, float, float]:
        """The basis' fraction minus the null's, with Newcombe's 95% interval."""
        a, b = getattr(self.basis, view), getattr(self.nulls[control], view)
        return difference_interval(a.successes, a.n, b.successes, b.n)


def null_controls(ctx: BookContext, names: list[str] | None = None,
                  controls: tuple[str, ...] | None = None) -> dict[str, NullControls]:
    """Score the null controls (cached) of every seed-0 1-layer zoo model (or ``names``)
    beside its neuron basis; ``controls``: only these (default: every one that applies)."""
    from ..interp.controls import controls_for

    names = names or [n for n in ctx.names if style.depth_of(n) == min(ctx.depths)]
    basis = model_interpretability(ctx, names)
    out = {}
    for name in names:
        nulls = {}
        for control in controls_for(ctx.run(name)):
            if controls is not None and control not in controls:
                continue
            nulls[control] = summarize(name, ctx.control_scores(name, control),
                                       f"{name} ({NULL_LABELS[control]})")
        out[name] = NullControls(name, basis[name], nulls)
    return out


def _fmt(p: Proportion) -> str:
    return f"{p.fraction:.1%} [{p.lo:.0%}, {p.hi:.0%}]"


def nulls_markdown(controls: dict[str, NullControls], view: str = "top") -> str:
    """Each 1-layer model's neuron basis beside its nulls, one view, with Wilson intervals."""
    cols = [c for c in NULL_LABELS if any(c in nc.nulls for nc in controls.values())]
    lines = ["| model | neuron basis | " + " | ".join(NULL_LABELS[c] for c in cols)
             + " | basis minus rotated [95% CI] |", "|---|---|" + "---|" * len(cols) + "---|"]
    for nc in controls.values():
        cells = [_fmt(getattr(nc.nulls[c], view)) if c in nc.nulls else "n/a" for c in cols]
        diff, lo, hi = nc.gain("rotated", view)
        lines.append(f"| {nc.name} | {_fmt(getattr(nc.basis, view))} | " + " | ".join(cells)
                     + f" | {diff:+.1%} [{lo:+.1%}, {hi:+.1%}] |")
    return "\n".join(lines)


def distinct_markdown(controls: dict[str, NullControls]) -> str:
    """How many different explanations the interpretable neurons of each basis have: a
    basis whose directions all detect the same few tokens passes the rule many times over
    for one feature."""
    cols = [c for c in NULL_LABELS if any(c in nc.nulls for nc in controls.values())]
    lines = ["| model | neuron basis | " + " | ".join(NULL_LABELS[c] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for nc in controls.values():
        cell = lambda m: f"{m.distinct} in {m.top.successes}"  # noqa: E731
        lines.append(f"| {nc.name} | {cell(nc.basis)} | " + " | ".join(
            cell(nc.nulls[c]) if c in nc.nulls else "n/a" for c in cols) + " |")
    return "\n".join(lines)


def null_verdict(controls: dict[str, NullControls], view: str = "top") -> str:
    """One sentence on whether each 1-layer model's neuron basis beats its rotated null."""
    beats, loses, ties = [], [], []
    for nc in controls.values():
        if "rotated" not in nc.nulls:
            continue
        d, lo, hi = nc.gain("rotated", view)
        (beats if lo > 0 else loses if hi < 0 else ties).append(
            f"{nc.name} ({d * 100:+.1f} points)")
    parts = []
    if beats:
        parts.append("the neuron basis beats its rotation for " + ", ".join(beats))
    if loses:
        parts.append("the rotated basis is judged more interpretable than the neuron basis "
                     "for " + ", ".join(loses))
    if ties:
        parts.append("the two are not told apart for " + ", ".join(ties))
    sentence = "In the " + VIEWS[view] + ", " + "; ".join(parts) + "."
    if loses:
        sentence += (" Where a rotation wins, this view does not single out the neuron basis, "
                     "so a difference it measures between models cannot be credited to their "
                     "bases.")
    return sentence


@dataclass(frozen=True)
class RelativeDifference:
    """SoLU-LN minus GELU in the neuron basis, in the rotated basis, and the difference of
    the two (what SoLU adds that a rotation takes away), one view.

    The intervals are 95%: Newcombe's for each difference; for the difference of differences
    a normal approximation, the four proportions independent (different neurons, different
    directions), each variance from its Wilson interval's half-width.
    """

    view: str
    basis_diff: tuple[float, float, float]
    rotated_diff: tuple[float, float, float]
    diff_in_diff: tuple[float, float, float]


def relative_difference(controls: dict[str, NullControls], solu: str, gelu: str,
                        view: str = "top") -> RelativeDifference:
    s, g = controls[solu], controls[gelu]
    parts = [getattr(x, view) for x in (s.basis, s.nulls["rotated"], g.basis,
                                       g.nulls["rotated"])]
    basis = difference_interval(parts[0].successes, parts[0].n, parts[2].successes, parts[2].n)
    rotated = difference_interval(parts[1].successes, parts[1].n, parts[3].successes,
                                  parts[3].n)
    did = (parts[0].fraction - parts[1].fraction) - (parts[2].fraction - parts[3].fraction)
    se = math.sqrt(sum(((p.hi - p.lo) / (2 * 1.96)) ** 2 for p in parts))
    return RelativeDifference(view, basis, rotated, (did, did - 1.96 * se, did + 1.96 * se))


def relative_markdown(rel: dict[str, RelativeDifference]) -> str:
    lines = ["| view | SoLU-LN minus GELU, neuron basis | ... in a rotated basis | "
             "difference of the two |", "|---|---|---|---|"]
    for view, r in rel.items():
        cells = [f"{d:+.1%} [{lo:+.1%}, {hi:+.1%}]"
                 for d, lo, hi in (r.basis_diff, r.rotated_diff, r.diff_in_diff)]
        lines.append(f"| {VIEWS[view]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_nulls(fig: go.Figure, controls: dict[str, NullControls],
              control: str = "rotated") -> go.Figure:
    """Hollow markers for a null control of each 1-layer model, in both panels of
    ``figure4``."""
    for col, view in enumerate(VIEWS, start=1):
        for nc in controls.values():
            if control not in nc.nulls:
                continue
            p = getattr(nc.nulls[control], view)
            fig.add_trace(go.Scatter(
                x=[nc.basis.depth * 1.12], y=[p.fraction], mode="markers",
                name=f"{style.label(nc.basis.act)}, {NULL_LABELS[control]}",
                legendgroup=f"{nc.basis.act}-{control}", showlegend=col == 1,
                marker=dict(size=9, symbol="circle-open", color=style.color(nc.basis.act),
                            line=dict(width=2)),
                error_y=dict(type="data", symmetric=False, array=[p.hi - p.fraction],
                             arrayminus=[p.fraction - p.lo]),
                customdata=[[p.successes, p.n]],
                hovertemplate=("%{y:.1%} (%{customdata[0]}/%{customdata[1]}), "
                               + NULL_LABELS[control] + "<extra></extra>")),
                row=1, col=col)
    return fig


# --- blinded human evaluation -----------------------------------------------------------------
def blind_root(ctx: BookContext) -> Path:
    return ctx.runs_dir / ctx.scale / BLIND_DIR


@dataclass
class BlindSummary:
    """Aggregated blinded judgments of one session, and the scorer's agreement with them."""

    path: Path
    report: Any                     # interp.blind.BlindReport
    agreement: dict[str, Any] = field(default_factory=dict)

    @property
    def n_judgments(self) -> int:
        return sum(m.n_judged for m in self.report.models)


def blind_sessions(ctx: BookContext) -> list[BlindSummary]:
    """Every blinded session under ``blind_root(ctx)`` that has judgments, unblinded.

    A session folder without judgments is skipped (nothing to aggregate yet); a broken one
    raises ``BlindError`` naming the file.
    """
    from ..interp.blind import MANIFEST_NAME, BlindSession, judgments_by_neuron, unblind
    from ..interp.score import human_agreement

    root = blind_root(ctx)
    out = []
    for folder in sorted(p for p in root.glob("*") if (p / MANIFEST_NAME).is_file()):
        session = BlindSession.open(folder)
        if not session.judgments:
            continue
        scores = {name: ctx.scores(name) for name in session.models if name in ctx.all_names}
        out.append(BlindSummary(folder, unblind(session),
                                human_agreement(scores, judgments_by_neuron(session))))
    return out


def shown_path(path: Path) -> str:
    """``path`` as a published page may show it: relative to the repository root when inside it
    (no path of the machine that built the book), shell-quoted."""
    path = Path(path).resolve()
    try:
        return shlex.quote(str(path.relative_to(paths.project_root().resolve())))
    except ValueError:
        return shlex.quote(str(path))


def blind_command(ctx: BookContext, session_name: str = "my-session",
                  models: tuple[str, ...] = DEFAULT_MODELS, n: int = DEFAULT_N_PER_MODEL) -> str:
    """The terminal command that starts (or resumes) a session where this notebook finds it.

    Paths inside the repository are given relative to its root (where the command is meant to
    be run), so that a published book shows no path of the machine that built it."""
    return (f"solu-repro blind --scale {ctx.scale} --models {' '.join(models)} --n {n} "
            f"--runs-dir {shown_path(ctx.runs_dir)} "
            f"--session {shown_path(blind_root(ctx) / session_name)} "
            f"--seed {ctx.seed}")


def blind_app(ctx: BookContext, session_name: str, models: tuple[str, ...] = DEFAULT_MODELS,
              n: int = DEFAULT_N_PER_MODEL):
    """The JupyterLab judging app for a session under ``blind_root(ctx)``: created if new,
    resumed at this evaluator's first unjudged neuron if it exists."""
    from ..interp.blind import BlindApp, BlindSession, SnippetRenderer, load_zoo_entries

    # The harvest seed is the terminal tool's default (it is part of the session's fingerprint,
    # so a session started here resumes in `solu-repro blind` and back); ctx.seed draws the items.
    entries = load_zoo_entries(list(models), ctx.scale, ctx.runs_dir, progress=ctx.progress)
    session = BlindSession.create(blind_root(ctx) / session_name, entries, n_per_model=n,
                                  seed=ctx.seed)
    return BlindApp(session, SnippetRenderer(session, entries))


# --- the measurements, with seeds ----------------------------------------------------------------
STRICT = dict(threshold=0.9, min_lift=5.0)
"""The stricter judge of §6.2's "one annotator held a higher bar": 90% of the top firings
(not 80%) and a lift of 5 over the base rate (not 3)."""
BLOCKED_MARGIN = 0.10
"""§4.4 "no substantial effect" on interpretability: within ±10 points of SoLU-LN."""


@dataclass(frozen=True)
class InterpMeasurements:
    """Everything notebook 4 measures, computed once; ``claims`` turns it into verdicts.

    ``seed_fractions[view][variant][seed]`` is the judged-interpretable fraction of every
    seed of each 1-layer variant; ``rotated_gains[view][variant][seed]`` its neuron basis
    minus its rotated basis; ``strict_fractions[variant][seed]`` the top-20 fraction under the
    stricter judge (``STRICT``). The seed-0 models' neuron-level results stay in ``results``.
    """

    results: dict[str, ModelInterpretability]
    solu_vs_gelu: dict[int, Comparison]            # depth -> SoLU-LN minus baseline (top view)
    solu_vs_gelu_spectrum: dict[int, Comparison]
    ablation: Comparison | None                     # LN-only minus baseline (top view)
    ablation_vs_solu: Comparison | None             # LN-only minus SoLU-LN at the same depth
    blind: list[BlindSummary]
    nulls: dict[str, NullControls] = field(default_factory=dict)  # 1-layer models' controls
    relative: dict[str, RelativeDifference] = field(default_factory=dict)  # view -> 1L pair
    seed_fractions: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    rotated_gains: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    strict_fractions: dict[str, dict[int, float]] = field(default_factory=dict)
    one_layer: int = 1

    def rotated_gain(self, name: str, view: str = "top") -> tuple[float, float, float]:
        """``name``'s neuron basis minus its rotated null (Newcombe 95%)."""
        return self.nulls[name].gain("rotated", view)

    def variant(self, act: str) -> str:
        return f"{self.one_layer}L-{act}"

    def seed_difference(self, a: str, b: str, view: str = "top",
                        table: dict[str, dict[int, float]] | None = None) -> SeedInterval | None:
        """Variant ``a`` minus ``b`` (acts at one layer, e.g. "solu_ln", "gelu") over their
        matched seeds: a paired t interval (None if either is missing)."""
        table = self.seed_fractions.get(view, {}) if table is None else table
        fa, fb = table.get(self.variant(a)), table.get(self.variant(b))
        if not fa or not fb:
            return None
        common = sorted(set(fa) & set(fb))
        return paired_seed_difference([fa[i] for i in common], [fb[i] for i in common])

    def net_of_rotation(self, view: str = "top") -> SeedInterval | None:
        """(SoLU-LN minus its rotation) minus (GELU minus its rotation), over matched seeds."""
        return self.seed_difference("solu_ln", "gelu", view, self.rotated_gains.get(view, {}))


def one_layer_seeds(ctx: BookContext) -> dict[str, list[str]]:
    """Every seed of each 1-layer variant: {"1L-gelu": ["1L-gelu", "1L-gelu-s1", ...], ...}."""
    one = min(ctx.depths)
    return {name: ctx.seeds(name) for name in ctx.names if style.depth_of(name) == one}


def interp_measurements(ctx: BookContext, with_blind: bool = True,
                        with_nulls: bool = True) -> InterpMeasurements:
    results = model_interpretability(ctx)
    solu = {r.depth: compare(results, r.name) for r in results.values() if r.act == "solu_ln"}
    spec = {r.depth: compare(results, r.name, "spectrum")
            for r in results.values() if r.act == "solu_ln"}
    ablation = next((compare(results, r.name) for r in results.values() if r.act == "gelu_ln"),
                    None)
    ablation_vs_solu = None
    if ablation is not None:
        depth = style.depth_of(ablation.name)
        a, b = results[ablation.name].top, results[f"{depth}L-solu_ln"].top
        diff, lo, hi = difference_interval(a.successes, a.n, b.successes, b.n)
        ablation_vs_solu = Comparison(ablation.name, f"{depth}L-solu_ln", "top", diff, lo, hi,
                                      a.fraction / b.fraction if b.successes else math.nan)
    one = min(ctx.depths)
    seeds = one_layer_seeds(ctx)
    fractions: dict[str, dict[str, dict[int, float]]] = {view: {} for view in VIEWS}
    for variant, names in seeds.items():
        for name in names:
            r = results[name] if name in results else summarize(name, ctx.scores(name))
            for view in VIEWS:
                fractions[view].setdefault(variant, {})[style.seed_of(name)] = \
                    getattr(r, view).fraction
    pair = (f"{one}L-solu_ln", f"{one}L-gelu")
    strict = {}
    if all(v in seeds for v in pair):
        settings = ScoreSettings(**STRICT)
        for variant in pair:
            strict[variant] = {style.seed_of(n): ctx.scores(n, settings)
                               .fraction_interpretable(view="top").fraction
                               for n in seeds[variant]}
    nulls, relative, gains = {}, {}, {view: {} for view in VIEWS}
    if with_nulls:
        nulls = null_controls(ctx)
        if all(n in nulls for n in pair):
            relative = {view: relative_difference(nulls, *pair, view) for view in VIEWS}
        for variant in pair:
            for name in seeds.get(variant, []):
                nc = nulls[name] if name in nulls else null_controls(ctx, [name], ("rotated",))[name]
                for view in VIEWS:
                    gains[view].setdefault(variant, {})[style.seed_of(name)] = \
                        nc.gain("rotated", view)[0]
    return InterpMeasurements(results, solu, spec, ablation, ablation_vs_solu,
                              blind_sessions(ctx) if with_blind else [], nulls, relative,
                              fractions, gains, strict, one)


def seed_table_markdown(im: InterpMeasurements, view: str = "top") -> str:
    """Every seed of each 1-layer variant: its judged-interpretable fraction, and the mean."""
    table = im.seed_fractions.get(view, {})
    n = max((len(v) for v in table.values()), default=0)
    lines = ["| model | " + " | ".join(f"seed {i}" for i in range(n)) + " | mean |",
             "|---|" + "---:|" * (n + 1)]
    for variant, by_seed in table.items():
        cells = [f"{by_seed[i]:.1%}" if i in by_seed else "" for i in range(n)]
        lines.append(f"| {style.label(variant)} | " + " | ".join(cells)
                     + f" | {sum(by_seed.values()) / len(by_seed):.1%} |")
    return "\n".join(lines)


def seed_differences_markdown(im: InterpMeasurements) -> str:
    """The seed-level comparisons the claims use, as a table."""
    rows = [("SoLU-LN minus GELU", "solu_ln", "gelu", "top", None),
            ("SoLU-LN minus GELU", "solu_ln", "gelu", "spectrum", None),
            ("SoLU-LN minus GELU, stricter judge", "solu_ln", "gelu", "top",
             im.strict_fractions),
            ("SoLU (no LN) minus GELU", "solu", "gelu", "top", None),
            ("GELU-LN minus GELU", "gelu_ln", "gelu", "top", None),
            ("SoLU-LN minus GELU-LN", "solu_ln", "gelu_ln", "top", None),
            ("blocked SoLU-LN minus SoLU-LN", "solu_ln_b4", "solu_ln", "top", None)]
    lines = ["| comparison (1 layer) | view | difference [95% seed interval] | method |",
             "|---|---|---|---|"]
    for label, a, b, view, table in rows:
        d = im.seed_difference(a, b, view, table)
        if d is not None:
            lines.append(f"| {label} | {VIEWS[view]} | {_points(d)} | {d.method} |")
    net = im.net_of_rotation("top")
    if net is not None:
        lines.append(f"| (SoLU-LN minus rotation) minus (GELU minus rotation) | {VIEWS['top']} "
                     f"| {_points(net)} | {net.method} |")
    return "\n".join(lines)


def _points(d: SeedInterval) -> str:
    """A seed interval of fractions in percentage points."""
    f = lambda x: "-inf" if x == -math.inf else "+inf" if x == math.inf else f"{x * 100:+.1f}"
    seeds = "1 seed" if d.n_seeds == 1 else f"{d.n_seeds} seeds"
    return f"{f(d.estimate)} [{f(d.lo)}, {f(d.hi)}] points ({seeds})"


def claims(im: InterpMeasurements) -> list[Claim]:
    """The claims of chapter 4 (§3.2, §4.3, §4.4, §6.1-6.2), each decided once from ``im``."""
    out = []
    seed = im.seed_difference("solu_ln", "gelu", "top")
    deeper = {d: c for d, c in im.solu_vs_gelu.items() if d != im.one_layer}
    deeper_text = "; ".join(f"{d}L (one seed, 95% Newcombe over neurons): {c.diff * 100:+.1f} "
                            f"[{c.lo * 100:+.1f}, {c.hi * 100:+.1f}] points"
                            for d, c in sorted(deeper.items()))
    net = im.net_of_rotation("top")
    if seed is None:
        out.append(registry.scored("figure4", "no matched 1-layer pair", NOT_TESTABLE))
    else:
        verdict = _verdict(seed)
        if verdict == REPRODUCED and not (net is not None and net.lo > 0):
            verdict = PARTLY  # not shown to be about the basis (or no null to show it)
        if verdict == PARTLY and not all(c.diff > 0 for c in deeper.values()):
            verdict = INCONCLUSIVE  # the 1-layer direction is not the deeper pairs'
        if verdict == REPRODUCED and not all(c.diff > 0 for c in deeper.values()):
            verdict = PARTLY
        ours = f"automated judge, SoLU-LN minus GELU, 1L over seeds: {_points(seed)}"
        if net is not None:
            ours += f"; net of the rotated-basis nulls: {_points(net)}"
        if deeper_text:
            ours += f"; {deeper_text}"
        out.append(registry.scored("figure4", ours, verdict, values={
            "seed_difference": seed.to_dict(), "net_of_rotation": None if net is None
            else net.to_dict(), "deeper": {d: [c.diff, c.lo, c.hi] for d, c in deeper.items()}}))
    # §3.2: privileged basis, full spectrum, per seed
    gains = {v: seed_mean_interval(list(by_seed.values()))
             for v, by_seed in im.rotated_gains.get("spectrum", {}).items()}
    if not gains:
        out.append(registry.scored("privileged_basis", "no null controls scored", NOT_TESTABLE))
    else:
        ours = "full-spectrum judge, neuron basis minus rotated basis: " + "; ".join(
            f"{style.label(v)} {_points(g)}" for v, g in gains.items())
        verdict = claim_rules.combined(*(_verdict(g) for g in gains.values()))
        out.append(registry.scored("privileged_basis", ours, verdict,
                                   values={v: g.to_dict() for v, g in gains.items()}))
    spec = im.seed_difference("solu_ln", "gelu", "spectrum")
    out.append(registry.scored(
        "spectrum_note", "full-spectrum judge, SoLU-LN minus GELU, 1L over seeds: "
        + (_points(spec) if spec is not None else "n/a"), NOT_TESTABLE,
        values=None if spec is None else spec.to_dict()))
    # §4.3: SoLU alone, and what the LN keeps
    alone = im.seed_difference("solu", "gelu")
    keeps = im.seed_difference("solu_ln", "solu")
    if alone is None or keeps is None:
        out.append(registry.scored("solu_alone", "no SoLU-without-LN model", NOT_TESTABLE))
    else:
        kept = keeps.estimate >= -0.5 * alone.estimate
        verdict = _verdict(alone)
        if verdict == REPRODUCED and not kept:
            verdict = PARTLY
        note = ("" if alone.estimate <= 0 else
                f" (adding the LN {'keeps' if kept else 'loses more than'} half of SoLU's gain, "
                "point estimates)")
        out.append(registry.scored(
            "solu_alone", f"SoLU (no LN) minus GELU: {_points(alone)}; SoLU-LN minus SoLU: "
            f"{_points(keeps)}{note}", verdict,
            values={"alone": alone.to_dict(), "ln_minus_solu": keeps.to_dict()}))
    # §6.2: the LN-only ablation halfway
    above = im.seed_difference("gelu_ln", "gelu")
    below = im.seed_difference("solu_ln", "gelu_ln")
    if above is None or below is None:
        out.append(registry.scored("ln_only_halfway", "no LN-only ablation", NOT_TESTABLE))
    else:
        verdict = claim_rules.combined(_verdict(above), _verdict(below))
        out.append(registry.scored(
            "ln_only_halfway", f"GELU-LN minus GELU: {_points(above)}; SoLU-LN minus GELU-LN: "
            f"{_points(below)}", verdict,
            values={"above_gelu": above.to_dict(), "below_solu_ln": below.to_dict()}))
    # §6.2: the stricter annotator
    strict = im.seed_difference("solu_ln", "gelu", "top", im.strict_fractions)
    if strict is None or seed is None:
        out.append(registry.scored("stricter_annotator", "no matched 1-layer pair",
                                   NOT_TESTABLE))
    else:
        verdict = claim_rules.combined(_verdict(strict), _verdict(seed))
        out.append(registry.scored(
            "stricter_annotator", f"SoLU-LN minus GELU under the stricter judge (coverage "
            f"{STRICT['threshold']:.0%}, lift {STRICT['min_lift']:g}): {_points(strict)}; "
            f"under the default judge: {_points(seed)}", verdict,
            values={"strict": strict.to_dict(), "default": seed.to_dict()}))
    # §4.4: blocked SoLU-LN, interpretability
    blocked = im.seed_difference("solu_ln_b4", "solu_ln")
    if blocked is None:
        out.append(registry.scored("blocked_interp", "no blocked SoLU-LN model", NOT_TESTABLE))
    else:
        m = BLOCKED_MARGIN
        verdict = (REPRODUCED if -m < blocked.lo and blocked.hi < m and blocked.n_seeds > 1 else
                   NOT_REPRODUCED if blocked.lo > m or blocked.hi < -m else
                   PARTLY if abs(blocked.estimate) < m else INCONCLUSIVE)
        out.append(registry.scored(
            "blocked_interp", f"blocked SoLU-LN (4 blocks) minus SoLU-LN: {_points(blocked)}",
            verdict, values=blocked.to_dict()))
    depths = sorted(im.solu_vs_gelu)
    out.append(registry.scored("depth64", f"our deepest models have {max(depths, default=0)} "
                               "layers", NOT_TESTABLE))
    judged = [s for s in im.blind if s.n_judgments]
    if judged:
        parts = []
        for s in judged:
            diffs = ", ".join(f"{a} - {b}: {_pct(d)} [{_pct(lo)}, {_pct(hi)}]"
                              for a, b, d, lo, hi in _oriented(s.report.differences))
            parts.append(f"{s.path.name} ({s.n_judgments} judgments): {diffs}")
        ours, verdict = "; ".join(parts), _human_verdict(judged)
    else:
        ours, verdict = "no blinded session with judgments in this copy of the book", NOT_TESTABLE
    out.append(registry.scored("human_blind", ours, verdict))
    return out


def _verdict(d: SeedInterval) -> str:
    return claim_rules.directional(d.estimate, d.lo, d.hi)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.1%}"


def _oriented(differences) -> list[tuple[str, str, float, float, float]]:
    """Blinded differences as (a, b, a - b, lo, hi) with a SoLU-LN model first when present."""
    out = []
    for d in differences:
        if style.act_of(d.model_b) == "solu_ln" and style.act_of(d.model_a) != "solu_ln":
            out.append((d.model_b, d.model_a, -d.diff, -d.hi, -d.lo))
        else:
            out.append((d.model_a, d.model_b, d.diff, d.lo, d.hi))
    return out


def _human_verdict(summaries) -> str:
    """Matched pairs only (same depth and seed): reproduced if every session's SoLU-LN minus
    GELU interval is above 0, by the directional rule otherwise (the weakest session)."""
    diffs = [(d, lo, hi) for s in summaries for a, b, d, lo, hi in
             _oriented(s.report.differences)
             if style.act_of(a) == "solu_ln" and style.act_of(b) == "gelu"
             and style.depth_of(a) == style.depth_of(b) and style.seed_of(a) == style.seed_of(b)]
    return claim_rules.combined(*(claim_rules.directional(d, lo, hi) for d, lo, hi in diffs)) \
        if diffs else NOT_TESTABLE


def comparison_markdown(results: dict[str, ModelInterpretability]) -> str:
    """Each non-baseline model minus its same-depth baseline, both views, as a Markdown table."""
    lines = ["| model | baseline | top-20 view: difference [95% CI] | ratio | "
             "full spectrum: difference [95% CI] |", "|---|---|---|---|---|"]
    for top, spec in zip(comparisons(results, "top"), comparisons(results, "spectrum")):
        ratio = "n/a" if not math.isfinite(top.ratio) else f"{top.ratio:.2f}x"
        lines.append(f"| {top.name} | {top.baseline} | {top.diff:+.1%} [{top.lo:+.1%}, "
                     f"{top.hi:+.1%}] | {ratio} | {spec.diff:+.1%} [{spec.lo:+.1%}, "
                     f"{spec.hi:+.1%}] |")
    return "\n".join(lines)


def results_markdown(results: dict[str, ModelInterpretability]) -> str:
    lines = ["| model | neurons | top-20 view [95% CI] | full spectrum [95% CI] |",
             "|---|---|---|---|"]
    for r in results.values():
        lines.append(f"| {r.name} | {r.top.n:,} | {r.top.fraction:.1%} [{r.top.lo:.1%}, "
                     f"{r.top.hi:.1%}] | {r.spectrum.fraction:.1%} [{r.spectrum.lo:.1%}, "
                     f"{r.spectrum.hi:.1%}] |")
    return "\n".join(lines)


# --- released models (the ``models`` parameter) -----------------------------------------------
@dataclass(frozen=True)
class ReleasedInterp:
    """Chapter 4's measurements on released models (``PublishedContext``): each model's
    score, SoLU-LN minus GELU at each depth where both were named, and every model's nulls."""

    results: dict[str, ModelInterpretability]
    comparisons: dict[tuple[int, str], Comparison]
    nulls: dict[str, NullControls]
    relative: dict[int, dict[str, RelativeDifference]]


def released_measurements(ctx: BookContext) -> ReleasedInterp:
    """Score the released models of ``ctx`` (a ``PublishedContext``) and all their nulls
    (rotated basis, untrained model of the same architecture, SoLU readout of GELU)."""
    results = model_interpretability(ctx, ctx.names)
    comps = {(r.depth, view): compare(results, r.name, view)
             for r in results.values() if r.act == "solu_ln" and f"{r.depth}L-gelu" in results
             for view in VIEWS}
    nulls = null_controls(ctx, ctx.names)
    relative = {d: {view: relative_difference(nulls, f"{d}L-solu_ln", f"{d}L-gelu", view)
                    for view in VIEWS}
                for d in sorted({depth for depth, _ in comps})}
    return ReleasedInterp(results, comps, nulls, relative)


def released_markdown(ri: ReleasedInterp) -> str:
    """SoLU-LN minus GELU at each depth, in the neuron basis, in the rotated basis and the
    difference of the two, each with its verdict (one model per arm: at most direction
    only)."""
    if not ri.relative:
        return ("No depth has both a SoLU-LN and a GELU released model among those named, so "
                "no SoLU-minus-GELU comparison is made. " + ONE_MODEL_RULE)
    lines = ["| depth | view | SoLU-LN minus GELU, neuron basis | ... in a rotated basis | "
             "difference of the two | verdict on the gain net of rotation |",
             "|---|---|---|---|---|---|"]
    for depth, by_view in ri.relative.items():
        for view, r in by_view.items():
            cells = [f"{d:+.1%} [{lo:+.1%}, {hi:+.1%}]"
                     for d, lo, hi in (r.basis_diff, r.rotated_diff, r.diff_in_diff)]
            verdict = claim_rules.at_most(claim_rules.directional(*r.diff_in_diff))
            lines.append(f"| {depth}L | {VIEWS[view]} | " + " | ".join(cells)
                         + f" | {verdict} |")
    return "\n".join(lines) + "\n\n" + ONE_MODEL_RULE
