"""Chapter 4's presentation (paper §6.1-6.2, with §3.2, §4.3 and §4.4): what the chapter reads
from the zoo (``gather``), the Figure 4 analogue and its tables, the null controls' tables and
sentences, the blinded human evaluation's command and app, and the chapter's glued values.

The measurements and verdicts are ``solu_repro.paper.s6_interpretability``'s::

    m = s6.measure(**ch04.gather(ctx))
    claims = registry.decide("04-interpretability-quantitative", m)
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import paths
from ..fmt import num, pct, points
from ..interp.blind import (MANIFEST_NAME, BlindApp, BlindSession, SnippetRenderer,
                            judgments_by_neuron, load_zoo_entries, unblind)
from ..interp.blind.defaults import DEFAULT_MODELS, DEFAULT_N_PER_MODEL
from ..interp.controls import controls_for
from ..interp.score import human_agreement
from ..interp.stats import Proportion
from ..paper.claim import NOT_TESTABLE
from ..interp.calibration import PASS_RATIO
from ..interp.instruments import MIN_POSITIVES, probe_labels
from ..interp.labels import LABELS, label_report, labels_for
from ..interp.stats import seed_mean_interval
from ..paper.s6_interpretability import (BASES, INSTRUMENT_LABELS, NULL_LABELS,
                                         VIEWS, BlindSummary,
                                         InterpMeasurements, ModelInstruments,
                                         ModelInterpretability, NullControls,
                                         RelativeDifference, ReleasedInterp,
                                         basis_instruments, comparisons, interval_points,
                                         judged_test,
                                         seeds_by_variant)
from ..zoo import seed_of
from . import style
from .context import ONE_MODEL_RULE, BookContext
from .tables import markdown_table

CHAPTER = "04-interpretability-quantitative"
BLIND_DIR = "blind"
"""Blinded sessions live in ``<runs_dir>/<scale>/blind/<session>/`` (one folder each)."""


# --- what the chapter reads from the zoo -------------------------------------------------------
def one_layer_seeds(ctx: BookContext) -> dict[str, list[str]]:
    """Every seed of each 1-layer variant of ``ctx``'s zoo (``seeds_by_variant``)."""
    return seeds_by_variant(ctx.all_names, min(ctx.depths))


def gather(ctx: BookContext, with_blind: bool = True) -> dict[str, Any]:
    """The inputs of ``s6_interpretability.measure``, scored (and cached) through ``ctx``:
    the judge's scores of every seed-0 model and every seed of the 1-layer variants, the
    stricter judge's of the 1-layer SoLU-LN / GELU pair, the null controls of each seed-0
    1-layer model and the rotated basis of every seed of the pair, and the blinded sessions
    found on disk (``with_blind``). ``book.precompute`` scores the same in parallel first."""
    one = min(ctx.depths)
    seeds = one_layer_seeds(ctx)
    names = list(dict.fromkeys(ctx.names + [n for ns in seeds.values() for n in ns]))
    scores = {name: ctx.scores(name) for name in names}
    pair = (f"{one}L-solu_ln", f"{one}L-gelu")
    # The paper's stricter annotator is measured on the rotation-fair score (r² above 0.8);
    # the old higher top-20 bar (coverage 90%, lift 5) is no longer scored (issue 22: it cost
    # a judge pass per model and decided nothing).
    strict: dict = {}
    controls = {name: {c: ctx.control_scores(name, c) for c in controls_for(ctx.run(name))}
                for name in ctx.names if style.depth_of(name) == one}
    for variant in pair:
        for name in seeds.get(variant, []):
            if name not in controls:
                controls[name] = {"rotated": ctx.control_scores(name, "rotated")}
    return dict(scores=scores, strict_scores=strict, control_scores=controls,
                blind=blind_sessions(ctx) if with_blind else [],
                instruments=gather_instruments(ctx), calibration=ctx.rotation_test())


def gather_instruments(ctx: BookContext) -> dict[str, ModelInstruments]:
    """Every 1-layer model and seed under the three instruments, with the judge's agreement with
    the labels, all cached through ``ctx``:

    - the neuron basis and its rotation under all three (the rotation-fair score over the union
      of their explanations, the version the planted rotation test checks);
    - the untrained model under sparse probing for every seed, and under the judge's top-20 view
      for the seed-0 model of each variant (the chapter's null controls), with no rotation-fair
      score (its features are the trained basis's and its rotation's);
    - each deeper seed-0 model's own basis under the rotation-fair score (its own explanations
      only), for the deeper pairs' point estimates.
    """
    one = min(ctx.depths)
    out = {}
    for name in [n for ns in one_layer_seeds(ctx).values() for n in ns]:
        bases = {key: basis_instruments(
            ctx.scores(name) if control is None else ctx.control_scores(name, control),
            ctx.fair_score(name, control), ctx.probe(name, control))
            for key, control in (("basis", None), ("rotated", "rotated"))}
        judged = seed_of(name) == 0 and "random_init" in controls_for(ctx.run(name))
        bases["random_init"] = basis_instruments(
            ctx.control_scores(name, "random_init") if judged else None, None,
            ctx.probe(name, "random_init"))
        out[name] = ModelInstruments(name, bases, ctx.judge_agreement(name))
    for name in ctx.names:
        if style.depth_of(name) != one:
            out[name] = ModelInstruments(name, {"basis": basis_instruments(
                ctx.scores(name), ctx.fair_score(name, None, union=(None,)))})
    return out


def gather_released(ctx: BookContext) -> dict[str, Any]:
    """The inputs of ``s6_interpretability.released_measurements`` for the released models of
    ``ctx`` (a ``PublishedContext``): their scores and all their nulls."""
    return dict(scores={name: ctx.scores(name) for name in ctx.names},
                control_scores={name: {c: ctx.control_scores(name, c)
                                       for c in controls_for(ctx.run(name))}
                                for name in ctx.names})


# --- figures -----------------------------------------------------------------------------------
def figure4(results: Mapping[str, ModelInterpretability]) -> go.Figure:
    """Fraction interpretable vs depth, per activation (a census of each model's neurons: no
    error bars; the seeds' spread is in the seed table and the claims).

    Left: the top-20 view (the paper's Figure 4 rule); right: the full-spectrum view. Lines
    join the GELU baseline and SoLU-LN sizes; ablations are single points at their depth. One
    legend, below both panels, so that the panels take the figure's whole width.
    """
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
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
                customdata=[[p.successes, p.n] for p in ps],
                hovertemplate="%{y:.1%} (%{customdata[0]}/%{customdata[1]})<extra></extra>"),
                row=1, col=col)
    depths = sorted({r.depth for r in results.values()})
    fig.update_xaxes(type="log", tickvals=depths, ticktext=[f"{d}L" for d in depths],
                     title_text="model depth (layers)")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(title_text="fraction of neurons interpretable", row=1, col=1)
    fig.update_layout(template="plotly_white", font=style.FONT, height=520,
                      title=dict(text="Figure 4 analogue: automated score, seed 0 (every "
                                 "neuron scored)",
                                 x=0.0, xanchor="left"),
                      legend=dict(orientation="h", x=0.0, xanchor="left", y=-0.24,
                                  yanchor="top"),
                      margin=dict(l=60, r=20, t=80, b=40))
    return fig


def add_nulls(fig: go.Figure, controls: Mapping[str, NullControls],
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
                customdata=[[p.successes, p.n]],
                hovertemplate=("%{y:.1%} (%{customdata[0]}/%{customdata[1]}), "
                               + NULL_LABELS[control] + "<extra></extra>")),
                row=1, col=col)
    return fig


def layer_figure(results: Mapping[str, ModelInterpretability], view: str = "top") -> go.Figure:
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


# --- tables ------------------------------------------------------------------------------------
def _count(p: Proportion) -> str:
    """A census count as a fraction: "60.0% (307/512)" (every unit scored: no interval)."""
    return f"{pct(p.fraction)} ({p.successes}/{p.n})"


def _difference(d: float) -> str:
    """A difference of census fractions, in points: "+25.0%"."""
    return pct(d, signed=True)


def results_markdown(results: Mapping[str, ModelInterpretability]) -> str:
    """Each model's judged-interpretable fraction in both views (a census of its neurons)."""
    return markdown_table([{"model": r.name, "neurons": r.top.n,
                            "top-20 view": _count(r.top),
                            "full spectrum": _count(r.spectrum)}
                           for r in results.values()])


def comparison_markdown(results: Mapping[str, ModelInterpretability]) -> str:
    """Each non-baseline model minus its same-depth baseline, both views, as a Markdown table."""
    return markdown_table([
        {"model": top.name, "baseline": top.baseline,
         "top-20 view: difference": _difference(top.diff),
         "ratio": f"{top.ratio:.2f}x" if math.isfinite(top.ratio) else "n/a",
         "full spectrum: difference": _difference(spec.diff)}
        for top, spec in zip(comparisons(results, "top"), comparisons(results, "spectrum"))])


def seed_table_markdown(m: InterpMeasurements, view: str = "top") -> str:
    """Every seed of each 1-layer variant: its judged-interpretable fraction, and the mean."""
    table = m.seed_fractions.get(view, {})
    n = max((len(v) for v in table.values()), default=0)
    return markdown_table([
        {"model": style.label(variant),
         **{f"seed {i}": pct(by_seed[i]) if i in by_seed else "" for i in range(n)},
         "mean": pct(sum(by_seed.values()) / len(by_seed))}
        for variant, by_seed in table.items()])


SEED_COMPARISONS = (("SoLU-LN minus GELU", "solu_ln", "gelu", "top", False),
                    ("SoLU-LN minus GELU", "solu_ln", "gelu", "spectrum", False),
                    ("SoLU (no LN) minus GELU", "solu", "gelu", "top", False),
                    ("GELU-LN minus GELU", "gelu_ln", "gelu", "top", False),
                    ("SoLU-LN minus GELU-LN", "solu_ln", "gelu_ln", "top", False),
                    ("blocked SoLU-LN minus SoLU-LN", "solu_ln_b4", "solu_ln", "top", False))
"""The seed-level comparisons the claims use: (label, a, b, view, under the stricter judge)."""


def seed_differences_markdown(m: InterpMeasurements) -> str:
    """The seed-level comparisons the claims use, as a table."""
    rows = []
    for label, a, b, view, strict in SEED_COMPARISONS:
        d = m.seed_difference(a, b, view, m.strict_fractions if strict else None)
        if d is not None:
            rows.append({"comparison (1 layer)": label, "view": VIEWS[view],
                         "difference [95% seed interval]": interval_points(d),
                         "method": d.method})
    net = m.net_of_rotation("top")
    if net is not None:
        rows.append({"comparison (1 layer)": "(SoLU-LN minus rotation) minus (GELU minus "
                     "rotation)", "view": VIEWS["top"],
                     "difference [95% seed interval]": interval_points(net),
                     "method": net.method})
    return markdown_table(rows)


def _null_columns(controls: Mapping[str, NullControls]) -> list[str]:
    return [c for c in NULL_LABELS if any(c in nc.nulls for nc in controls.values())]


def nulls_markdown(controls: Mapping[str, NullControls], view: str = "top") -> str:
    """Each 1-layer model's neuron basis beside its nulls, one view (counts of one model)."""
    cols = _null_columns(controls)
    rows = []
    for nc in controls.values():
        row = {"model": nc.name, "neuron basis": _count(getattr(nc.basis, view))}
        row.update({NULL_LABELS[c]: _count(getattr(nc.nulls[c], view))
                    if c in nc.nulls else "n/a" for c in cols})
        row["basis minus rotated"] = _difference(nc.gain("rotated", view))
        rows.append(row)
    return markdown_table(rows)


def distinct_markdown(controls: Mapping[str, NullControls]) -> str:
    """How many different explanations the interpretable neurons of each basis have: a
    basis whose directions all detect the same few tokens passes the rule many times over
    for one feature."""
    cols = _null_columns(controls)
    cell = lambda r: f"{r.distinct} in {r.top.successes}"  # noqa: E731
    return markdown_table([
        {"model": nc.name, "neuron basis": cell(nc.basis),
         **{NULL_LABELS[c]: cell(nc.nulls[c]) if c in nc.nulls else "n/a" for c in cols}}
        for nc in controls.values()])


def relative_markdown(rel: Mapping[str, RelativeDifference]) -> str:
    """SoLU-LN minus GELU in the neuron basis, in a rotated basis, and the difference."""
    return markdown_table([
        {"view": VIEWS[view], "SoLU-LN minus GELU, neuron basis": _difference(r.basis_diff),
         "... in a rotated basis": _difference(r.rotated_diff),
         "difference of the two (paired within each model)": _difference(r.diff_in_diff)}
        for view, r in rel.items()])


def null_verdict(controls: Mapping[str, NullControls], view: str = "top") -> str:
    """One sentence on whether each 1-layer model's neuron basis beats its rotated null."""
    beats, loses, ties = [], [], []
    for nc in controls.values():
        if "rotated" not in nc.nulls:
            continue
        outcome = {"beats": beats, "loses": loses, "ties": ties}[nc.against("rotated", view)]
        outcome.append(f"{nc.name} ({points(nc.gain('rotated', view))} points)")
    parts = []
    if beats:
        parts.append("the neuron basis beats its rotation for " + ", ".join(beats))
    if loses:
        parts.append("the rotated basis is judged more interpretable than the neuron basis "
                     "for " + ", ".join(loses))
    if ties:
        parts.append("the two are not told apart for " + ", ".join(ties))
    sentence = ("In the " + VIEWS[view] + " (seed 0, counts of each model), " + "; ".join(parts)
                + ".")
    if loses:
        sentence += (" Where a rotation wins, this view does not single out the neuron basis, "
                     "so a difference it measures between models cannot be credited to their "
                     "bases.")
    return sentence


def released_markdown(ri: ReleasedInterp) -> str:
    """SoLU-LN minus GELU at each depth, in the neuron basis, in the rotated basis and the
    difference of the two (census numbers: one model per arm, so not testable)."""
    if not ri.relative:
        return ("No depth has both a SoLU-LN and a GELU released model among those named, so "
                "no SoLU-minus-GELU comparison is made. " + ONE_MODEL_RULE)
    rows = [{"depth": f"{depth}L", "view": VIEWS[view],
             "SoLU-LN minus GELU, neuron basis": _difference(r.basis_diff),
             "... in a rotated basis": _difference(r.rotated_diff),
             "difference of the two": _difference(r.diff_in_diff),
             "verdict on the gain net of rotation": NOT_TESTABLE}
            for depth, by_view in ri.relative.items() for view, r in by_view.items()]
    return markdown_table(rows) + "\n\n" + ONE_MODEL_RULE


# --- instruments a rotation cannot fool (issue 20) ---------------------------------------------
def rotation_test_markdown(test) -> str:
    """The planted rotation test (``interp.calibration``): each instrument on heavy-tailed
    planted detectors and on one rotation of them, and whether it passes."""
    return markdown_table([
        {"instrument": INSTRUMENT_LABELS[c.instrument], "planted detectors": num(c.basis, ".2f"),
         "their rotation": num(c.rotated, ".2f"), "rotation / detectors": num(c.ratio, ".2f"),
         f"passes (at most {PASS_RATIO:g})": "yes" if c.passes else "no"}
        for c in test.checks.values()])


def label_markdown(ctx: BookContext) -> str:
    """The ground-truth labels probed: what each means, how common it is on the held-out rows
    and how much of it the current token alone gives away (``labels.label_report``)."""
    run = ctx.run(ctx.names[0])
    corpus, n_ctx = run.corpus(), run.config.model.n_ctx
    probed = probe_labels(corpus, n_ctx)
    stats = {st.name: st for st in label_report(labels_for(corpus, "val"), corpus.split("val"),
                                                n_ctx)}
    return markdown_table([
        {"label": f"`{name}`", "half": stats[name].half, "meaning": LABELS[name],
         "base rate (its half)": pct(stats[name].base_rate, 2),
         "current token alone: F1": num(stats[name].token_f1, ".2f"),
         "probed": "yes" if name in probed else f"no (< {MIN_POSITIVES} in a half)"}
        for name in LABELS])


def _bases_cell(mi: ModelInstruments, instrument: str) -> str:
    return " / ".join(num(mi.bases[b].value(instrument), ".2f") if b in mi.bases else "n/a"
                      for b in BASES)


def instruments_markdown(m: InterpMeasurements) -> str:
    """Every 1-layer model and seed under the three instruments, each cell "neuron basis /
    rotated basis / untrained model"."""
    rows = []
    for name, mi in m.instruments.items():
        if style.depth_of(name) != m.one_layer:
            continue
        row = {"model": style.label(name)}
        for inst in ("top", "features_exposed", "probe_f1"):
            row[INSTRUMENT_SHORT[inst]] = _bases_cell(mi, inst)
        row["labels with a dedicated neuron"] = " / ".join(
            str(len(mi.bases[b].dedicated)) if b in mi.bases and mi.bases[b].dedicated
            is not None else "n/a" for b in BASES)
        rows.append(row)
    return markdown_table(rows)


INSTRUMENT_SHORT = {"top": "top-20 judge: fraction", "spectrum": "full spectrum: fraction",
                    "features_exposed": "features exposed: mean best r²",
                    "probe_f1": "probing: mean best single F1"}


def instrument_gains_markdown(m: InterpMeasurements) -> str:
    """Per 1-layer variant, over seeds: each instrument's neuron basis minus its rotated null
    (t interval over seeds), and SoLU-LN minus GELU."""
    rows = []
    one = m.one_layer
    for inst in ("top", "features_exposed", "probe_f1"):
        by_variant: dict[str, list[float]] = {}
        for name, mi in m.instruments.items():
            if style.depth_of(name) == one and "rotated" in mi.bases:
                by_variant.setdefault(f"{one}L-{style.act_of(name)}", []).append(mi.gain(inst))
        for variant, gains in by_variant.items():
            g = seed_mean_interval(gains)
            rows.append({"instrument": INSTRUMENT_LABELS[inst], "model": style.label(variant),
                         "neuron basis minus rotated basis [95% seed interval]":
                         f"{num(g.estimate, '+.3f')} [{num(g.lo, '+.3f')}, {num(g.hi, '+.3f')}]"
                         f" ({g.n_seeds} seeds)"})
    return markdown_table(rows)


def sparse_probe_markdown(m: InterpMeasurements) -> str:
    """The k-sparse probes' F1 (mean over labels, then over seeds) for each 1-layer variant's
    neuron basis, rotated basis and untrained model, beside the best single neuron and the full
    probe (the ceiling): how many directions a label needs in each basis."""
    rows = []
    by_variant: dict[str, list[ModelInstruments]] = {}
    for name, mi in m.instruments.items():
        if style.depth_of(name) == m.one_layer:
            by_variant.setdefault(f"{m.one_layer}L-{style.act_of(name)}", []).append(mi)
    for variant, mis in by_variant.items():
        for b in BASES:
            got = [mi.bases[b] for mi in mis if b in mi.bases and mi.bases[b].sparse_f1]
            if not got:
                continue
            ks = sorted(got[0].sparse_f1)
            row = {"model": style.label(variant), "basis": BASES[b], "seeds": len(got),
                   "best single": num(float(np.mean([g.mean_probe_f1 for g in got])), ".3f")}
            row.update({f"k = {k}": num(float(np.mean([g.sparse_f1[k] for g in got])), ".3f")
                        for k in ks})
            row["full probe"] = num(float(np.mean([np.mean(list(g.full_probe_f1.values()))
                                                   for g in got])), ".3f")
            rows.append(row)
    return markdown_table(rows)


def gap_figure(m: InterpMeasurements) -> go.Figure:
    """The privileged-basis gap of each label (best single-neuron F1 minus the rotated basis's
    best single-direction F1), SoLU-LN against GELU at one layer: the mean over seeds, with
    each seed as a dot."""
    fig = style.figure("Privileged-basis gap per ground-truth label (1 layer, every seed)",
                       "label", "best single-neuron F1 minus rotated (F1)", height=460)
    for act in ("gelu", "solu_ln"):
        gaps = [mi.gap() for name, mi in m.instruments.items()
                if style.depth_of(name) == m.one_layer and style.act_of(name) == act
                and "rotated" in mi.bases]
        if not gaps:
            continue
        labels = [k for k in gaps[0] if all(k in g for g in gaps)]
        fig.add_trace(go.Bar(x=labels, y=[float(np.mean([g[k] for g in gaps])) for k in labels],
                             name=f"{style.label(act)} (mean of {len(gaps)} seeds)",
                             marker_color=style.color(act), opacity=0.75,
                             offsetgroup=act))
        fig.add_trace(go.Scatter(
            x=[k for k in labels for _ in gaps], y=[g[k] for k in labels for g in gaps],
            mode="markers", name=f"{style.label(act)}, each seed", offsetgroup=act,
            marker=dict(color="black", size=5, symbol="circle-open"), showlegend=act == "gelu",
            legendgroup="seeds"))
    fig.update_layout(barmode="group", scattermode="group",
                      legend=dict(orientation="h", x=0.0, y=-0.35, yanchor="top"))
    fig.add_hline(y=0, line_color="#888", line_width=1)
    return fig


def agreement_markdown(m: InterpMeasurements) -> str:
    """The judge against the ground truth, per 1-layer model and seed."""
    rows = []
    for name, mi in m.instruments.items():
        a = mi.agreement
        if a is None:
            continue
        rows.append({"model": style.label(name), "interpretable (top-20)": a.n_interpretable,
                     "explanation names a label": len(a.named),
                     "... and the neuron reads it": len(a.confirmed),
                     "precision": num(a.precision, ".2f"),
                     "labels a single neuron reads": len(a.read),
                     "... found by the judge": len(a.found), "recall": num(a.recall, ".2f"),
                     "labels named": ", ".join(sorted(set(a.named.values()))) or "none"})
    return markdown_table(rows)


def judged_seed_markdown(m: InterpMeasurements) -> str:
    """Every seed of each 1-layer variant under the instrument the claims are decided on."""
    table = m.judged("value")
    n = max((len(v) for v in table.values()), default=0)
    return markdown_table([
        {"model": style.label(variant),
         **{f"seed {i}": num(by_seed[i], ".3f") if i in by_seed else "" for i in range(n)},
         "mean": num(float(np.mean(list(by_seed.values()))), ".3f")}
        for variant, by_seed in table.items()])


JUDGED_COMPARISONS = (("SoLU-LN minus GELU", "solu_ln", "gelu", "value"),
                      ("(SoLU-LN minus rotation) minus (GELU minus rotation)", "solu_ln", "gelu",
                       "gain"),
                      ("SoLU-LN minus GELU, stricter (full-spectrum) bar", "solu_ln", "gelu",
                       "strict"),
                      ("... the same net of rotation", "solu_ln", "gelu", "strict_gain"),
                      ("SoLU (no LN) minus GELU", "solu", "gelu", "value"),
                      ("GELU-LN minus GELU", "gelu_ln", "gelu", "value"),
                      ("SoLU-LN minus GELU-LN", "solu_ln", "gelu_ln", "value"),
                      ("blocked SoLU-LN minus SoLU-LN", "solu_ln_b4", "solu_ln", "value"))
"""The seed-level comparisons the claims use under the deciding instrument:
(label, a, b, ``InterpMeasurements.judged`` kind)."""


def judged_differences_markdown(m: InterpMeasurements) -> str:
    """The seed-level comparisons the claims use, under the instrument that decides them: each
    a ``claim.Test`` (``s6_interpretability.judged_test``) with its 95% seed interval, the
    smallest effect 80% power detects with these seeds, and its verdict by the symmetric rule
    before any gate."""
    rows = []
    for text, a, b, kind in JUDGED_COMPARISONS:
        t = judged_test(m, a, b, kind, null=b)
        if t is not None:
            rows.append({"comparison (1 layer)": text,
                         "difference [95% seed interval]": t.interval_text,
                         "smallest detectable (80% power)": t._num(t.detectable, False),
                         "by itself": t.verdict})
    return markdown_table(rows)


SHORT_NAMES = {"top": "the judge's top-20 view", "spectrum": "its full-spectrum view",
               "features_exposed": "the rotation-fair score (features exposed)",
               "probe_f1": "sparse probing"}


def instrument_sentence(m: InterpMeasurements) -> str:
    """What the planted test decided, and what the claims rest on, in words."""
    test = m.calibration
    if test is None:
        return "No planted rotation test was run: the claims are decided on the top-20 view."

    def listed(checks) -> str:
        parts = [f"{SHORT_NAMES.get(c.instrument, c.instrument)} ({pct(c.ratio, 0)})"
                 for c in checks]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    failed = [c for c in test.checks.values() if not c.passes]
    passed = [test.checks[i] for i in test.passing]
    out = "On planted heavy-tailed detectors, a random rotation keeps "
    if failed:
        out += f"too much of what {listed(failed)} measure{'s' if len(failed) == 1 else ''}"
        out += f"; it keeps at most half for {listed(passed)}." if passed else "."
    else:
        out += f"at most half of what every instrument measures ({listed(passed)})."
    if m.instrument is None:
        return out + " No instrument passed, so the judge-based claims are not testable."
    return out + f" The judge-based claims are decided on {SHORT_NAMES[m.instrument]}."


# --- blinded human evaluation -----------------------------------------------------------------
def blind_root(ctx: BookContext) -> Path:
    return ctx.runs_dir / ctx.scale / BLIND_DIR


def blind_sessions(ctx: BookContext) -> list[BlindSummary]:
    """Every blinded session under ``blind_root(ctx)`` that has judgments, unblinded.

    A session folder without judgments is skipped (nothing to aggregate yet); a broken one
    raises ``BlindError`` naming the file.
    """
    out = []
    for folder in sorted(p for p in blind_root(ctx).glob("*") if (p / MANIFEST_NAME).is_file()):
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
              n: int = DEFAULT_N_PER_MODEL) -> BlindApp:
    """The JupyterLab judging app for a session under ``blind_root(ctx)``: created if new,
    resumed at this evaluator's first unjudged neuron if it exists."""
    # The harvest seed is the terminal tool's default (it is part of the session's fingerprint,
    # so a session started here resumes in `solu-repro blind` and back); ctx.seed draws the items.
    entries = load_zoo_entries(list(models), ctx.scale, ctx.runs_dir, progress=ctx.progress)
    session = BlindSession.create(blind_root(ctx) / session_name, entries, n_per_model=n,
                                  seed=ctx.seed)
    return BlindApp(session, SnippetRenderer(session, entries))


def blind_markdown(ctx: BookContext, summaries: list[BlindSummary]) -> str:
    """Each judged session's unblinded report and the judge's agreement with the humans."""
    if not summaries:
        return (f"No judged sessions under `{shown_path(blind_root(ctx))}` yet: this copy of "
                "the book reports the automated judge only.")
    parts = []
    for s in summaries:
        a = s.agreement
        parts.append(f"**Session `{s.path.name}`** ({s.n_judgments} judgments)\n\n"
                     f"{s.report.to_markdown()}\n\nJudge vs humans on {a['n']} neurons: "
                     f"agreement {pct(a['agreement'], 0)}, Cohen's kappa {a['kappa']:.2f}.")
    return "\n\n".join(parts)


# --- the chapter's glued values -------------------------------------------------------------
def glue_values(m: InterpMeasurements) -> dict[str, Any]:
    """Every number and sentence the chapter's text quotes (besides the claims'), by glue name."""
    one = m.one_layer
    top, spec = m.solu_vs_gelu[one], m.solu_vs_gelu_spectrum[one]
    out: dict[str, Any] = {
        "solu_1l": m.results[top.name].top.fraction * 100,
        "gelu_1l": m.results[top.baseline].top.fraction * 100,
        "diff_1l": top.diff * 100,
        "n_depths_solu_better": sum(c.diff > 0
                                    for c in m.solu_vs_gelu.values()),
        "n_depths": len(m.solu_vs_gelu),
    }
    for view in VIEWS:
        for name in (f"{one}L-solu_ln", f"{one}L-gelu"):
            out[f"rot_{view}_{style.act_of(name)}"] = m.rotated_gain(name, view) * 100
        out[f"did_{view}"] = m.relative[view].diff_in_diff * 100
    out.update({f"null_verdict_{view}": null_verdict(m.nulls, view) for view in VIEWS})
    out["decided_instrument"] = m.instrument_label
    out["instrument_sentence"] = instrument_sentence(m)
    if m.calibration is not None:
        for inst, c in m.calibration.checks.items():
            out.update({f"calib_{inst}_basis": c.basis, f"calib_{inst}_rotated": c.rotated})
    agreements = [mi.agreement for mi in m.instruments.values() if mi.agreement is not None]
    pooled = {"judge_named": sum(len(a.named) for a in agreements),
              "judge_confirmed": sum(len(a.confirmed) for a in agreements),
              "judge_read": sum(len(a.read) for a in agreements),
              "judge_found": sum(len(a.found) for a in agreements)}
    out.update(pooled, n_agreement_models=len(agreements),
               judge_precision=pooled["judge_confirmed"] / pooled["judge_named"]
               if pooled["judge_named"] else math.nan,
               judge_recall=pooled["judge_found"] / pooled["judge_read"]
               if pooled["judge_read"] else math.nan,
               n_labels_probed=len(agreements[0].label_f1) if agreements else 0)
    out.update({"spec_solu_1l": m.results[spec.name].spectrum.fraction * 100,
                "spec_gelu_1l": m.results[spec.baseline].spectrum.fraction * 100,
                "spec_diff_1l": spec.diff * 100,
                "n_blind_sessions": len(m.blind)})
    return out
