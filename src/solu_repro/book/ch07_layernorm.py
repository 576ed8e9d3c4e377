"""Chapter 7 (paper §6.4, Figure 9): the page's figures, tables, sentences and the example
neuron; the measurements and the verdict are ``solu_repro.paper.s6_4_layernorm``'s.

The notebook fetches its inputs with ``gather(ctx)``, measures once with
``s6_4_layernorm.measure(**gather(ctx), ...)``, decides its claim with
``registry.decide("07-layernorm", m)``, glues ``glue_values(m)`` and draws
``ln_consistency_figure`` / ``band_difference_figure``.
"""

from __future__ import annotations

import html
import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ..data import get_rows
from ..fmt import pct
from ..interp.analysis import HELDOUT_RULE, BandRow, holds_out, quantile_bands
from ..interp.explanations import VocabTables
from ..interp.harvest import Example, ModelNeurons
from ..interp.ranking import rank_neurons
from ..interp.view import neuron_snippets, snippets_html
from ..paper.claim import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PARTLY, REPRODUCED
from ..paper.s6_4_layernorm import (LOW_QUANTILE, MAX_ROWS, N_BANDS, PRIMARY, BandDifference,
                                    LayerNormMeasurements, PairedDifference, bands_text,
                                    low_bands, measured_rows, pts, split_features)
from . import style
from .neuron_cards import side_by_side_html, verdict_html
from .tables import markdown_table

HOOK_LABELS = {"mid": "before the LN (hook_mid)", "post": "after the LN (hook_post)"}


# --- the inputs ---------------------------------------------------------------------------------
def ln_models(ctx) -> list[str]:
    """Every zoo model with an LN after its activation (all seeds), in zoo order."""
    return [n for n in ctx.all_names if ctx.model_config(n).has_mlp_ln]


def gather(ctx, names: Sequence[str] | None = None) -> dict[str, Any]:
    """What ``s6_4_layernorm.measure`` takes, from the book's context: the runs and scores of
    ``names`` (default ``ln_models``: every model with the extra LN, all seeds; trained,
    harvested and scored first where missing) and the context's seed."""
    names = list(ln_models(ctx) if names is None else names)
    return {"runs": {n: ctx.run(n) for n in names},
            "scores": {n: ctx.scores(n) for n in names}, "seed": ctx.seed}


# --- sentences ----------------------------------------------------------------------------------
def difference_text(d: PairedDifference) -> str:
    """A paired difference in a phrase: both hooks' low-band fractions, chance, the
    difference and its interval."""
    if d.n_neurons == 0:
        return f"{d.label}: no neuron to compare"
    return (f"{d.label}: inconsistent before the LN {pct(d.mid)}, after {pct(d.post)} (chance "
            f"{pct(d.chance)}); after - before {pts(d.diff)} [{pts(d.lo)}, {pts(d.hi)}] over "
            f"{d.n_neurons} neurons of {len(d.models)} model"
            f"{'s' if len(d.models) != 1 else ''}")


def reading_text(m: LayerNormMeasurements) -> str:
    """What the numbers say beside the verdict, in sentences: how much room the low bands
    leave before chance, whether the LN's rescaling varies between positions (the channel
    §6.4 needs), and how the result compares with the paper's."""
    s, c = m.solu, m.control
    if s.n_neurons == 0:
        return ("With no SoLU-LN neuron to compare, this build says nothing about §6.4; at "
                "`tiny` scale that is expected (the models are barely trained).")
    room = s.chance - s.mid
    out = [f"Before the LN, SoLU-LN's low bands are already {pct(s.mid, 0)} inconsistent, "
           f"against {pct(s.chance, 0)} for tokens taken at random, so the LN could add at "
           f"most about {100 * room:.0f} points there."]
    measured = [m.models[n] for n in s.models if n in m.models and m.models[n]["positions"]]
    if measured:
        spread = float(np.median([r["spread"] for r in measured]))
        gain = min(r["gain_median"] for r in measured)
        channel = ("it scales the weakest positions up markedly more than the strongest, so "
                   "the channel §6.4 describes is open" if spread >= 1.5 else
                   "it treats nearly every position alike, which leaves little room for the "
                   "channel §6.4 describes")
        eps = (f"eps barely matters (median gain {gain:.3f} or more)" if gain >= 0.9 else
               f"eps matters (median gain down to {gain:.3f}, where the LN no longer "
               "normalizes)")
        control_spreads = [m.models[n]["spread"] for n in (c.models if c else [])
                           if n in m.models and m.models[n]["positions"]]
        after_gelu = (f" (after GELU: {float(np.median(control_spreads)):.1f}x)"
                      if control_spreads else "")
        out.append(f"The extra LN's factor on SoLU-LN's outputs varies {spread:.1f}x between "
                   f"the 10th and the 90th percentile of positions{after_gelu}, and {eps}: "
                   f"{channel}.")
    if c is not None and c.n_neurons:
        out.append(f"The same LN after GELU gives {pts(c.diff)} in its low bands, so what is "
                   "specific to SoLU is the difference between the two, "
                   f"{pts(m.vs_control.diff) if m.vs_control else 'n/a'}.")
    paper = {REPRODUCED: "agrees with the paper's impression from one hand-labelled neuron",
             PARTLY: "points the paper's way but is not decisive",
             INCONCLUSIVE: "does not point the paper's way, but these neurons cannot rule it "
                           "out either",
             NOT_REPRODUCED: "disagrees with the paper's impression from one hand-labelled "
                             "neuron (\"much more likely\" after the LN)",
             NOT_TESTABLE: "cannot be compared with the paper"}[m.verdict]
    out.append(f"Measured over {s.n_neurons} neurons and every token of the held-out rows, "
               f"the result {paper}.")
    return " ".join(out)


def glue_values(m: LayerNormMeasurements) -> dict[str, Any]:
    """Every number and phrase the chapter's text glues (besides the claim's own sentence
    and verdict, ``record.glue_claims``), by glue name."""
    return {"heldout_rule": HELDOUT_RULE, "n_bands": m.n_bands,
            "low_text": bands_text(m.low, m.n_bands), "solu_text": difference_text(m.solu),
            "control_text": difference_text(m.control) if m.control else "no control model",
            "reason": m.reason, "reading": reading_text(m),
            "rescale_solu": m.rescale_text(m.solu.models, "SoLU-LN"),
            "rescale_control": m.rescale_text(m.control.models if m.control else [],
                                              "GELU-LN")}


# --- tables -------------------------------------------------------------------------------------
BAND_COLUMNS = ["band (quantile)", "hook", "neurons", "tokens", "inconsistent", "pooled",
                "mean over neurons (95% CI)"]
MODEL_COLUMNS = ["model", "hold out", "compared", "before", "after", "after - before (95% CI)",
                 "rescale median (10-90%)", "spread", "gain median"]


def band_table(rows: Sequence[BandRow]) -> str:
    """Rows as a Markdown table: band, hook, neurons, tokens, pooled and per-neuron
    inconsistent fraction."""
    out = []
    for r in rows:
        lo, hi = r.interval()
        mean = (f"{r.mean_fraction:.3f} ({lo:.3f}-{hi:.3f})"
                if r.n_examples and not math.isnan(r.mean_fraction) else "n/a")
        out.append({"band (quantile)": f"{pct(r.lo, 0)}-{pct(r.hi, 0)}", "hook": r.hook,
                    "neurons": r.n_neurons, "tokens": r.n_examples,
                    "inconsistent": r.n_inconsistent, "pooled": pct(r.fraction),
                    "mean over neurons (95% CI)": mean})
    return markdown_table(out, BAND_COLUMNS)


def models_table(m: LayerNormMeasurements) -> str:
    """Per model, as a Markdown table: neurons that hold out and were compared, the paired
    difference, the LN's rescaling."""
    out = []
    for name, summary in m.models.items():
        d = m.per_model[name]
        diff = f"{pts(d.diff)} [{pts(d.lo)}, {pts(d.hi)}]" if d.n_neurons else "n/a"
        measured = bool(summary["positions"])
        out.append({"model": name, "hold out": f"{summary['hold_out']}/{summary['neurons']}",
                    "compared": d.n_neurons, "before": pct(d.mid), "after": pct(d.post),
                    "after - before (95% CI)": diff,
                    "rescale median (10-90%)": (f"x{summary['rescale_median']:.3g} "
                                                f"(x{summary['rescale_q10']:.3g}-"
                                                f"x{summary['rescale_q90']:.3g})"
                                                if measured else "n/a"),
                    "spread": f"{summary['spread']:.2f}x" if measured else "n/a",
                    "gain median": f"{summary['gain_median']:.3f}" if measured else "n/a"})
    return markdown_table(out, MODEL_COLUMNS)


# --- figures ------------------------------------------------------------------------------------
def _centres(rows: Sequence[Any], n_bands: int) -> list[float]:
    return [100 * (r.band + 0.5) / n_bands for r in rows]


def ln_consistency_figure(rows: Sequence[BandRow], title: str | None = None,
                          chance: float | None = None, low_quantile: float | None = None
                          ) -> go.Figure:
    """Figure 9 analogue: per quantile band, the mean over neurons of the fraction of tokens
    inconsistent with the neuron's explanation, before and after the LN, with 95% bootstrap
    intervals over neurons; ``chance`` as a dotted line, the low bands shaded."""
    fig = style.figure(title or "Tokens inconsistent with the neuron's explanation, by "
                       "quantile band (paper Figure 9)",
                       "quantile band of the neuron's positive activations on that hook (%)",
                       "fraction inconsistent (mean over neurons)", height=440)
    n_bands = max((r.band for r in rows), default=0) + 1
    for hook in ("mid", "post"):
        hook_rows = [r for r in rows if r.hook == hook and r.n_examples]
        if not hook_rows:
            continue
        y = [r.mean_fraction if not math.isnan(r.mean_fraction) else r.fraction
             for r in hook_rows]
        intervals = [r.interval() for r in hook_rows]
        fig.add_trace(go.Scatter(
            x=_centres(hook_rows, n_bands), y=y, mode="lines+markers", name=HOOK_LABELS[hook],
            line=dict(color=style.HOOK_COLORS[hook], dash="solid" if hook == "mid" else "dash"),
            error_y=dict(type="data", symmetric=False,
                         array=[max(hi - v, 0) if math.isfinite(hi) else 0
                                for v, (_, hi) in zip(y, intervals)],
                         arrayminus=[max(v - lo, 0) if math.isfinite(lo) else 0
                                     for v, (lo, _) in zip(y, intervals)]),
            customdata=[[r.n_inconsistent, r.n_examples, r.n_neurons, lo, hi]
                        for r, (lo, hi) in zip(hook_rows, intervals)],
            hovertemplate=("%{customdata[2]} neurons, %{customdata[1]} tokens "
                           "(%{customdata[0]} inconsistent): mean %{y:.3f} "
                           "[%{customdata[3]:.3f}, %{customdata[4]:.3f}]<extra></extra>")))
    if not fig.data:
        fig.add_annotation(text="no neuron whose explanation holds out: nothing to count",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    else:
        if chance is not None and math.isfinite(chance):
            fig.add_hline(y=chance, line=dict(color="#555", dash="dot", width=1),
                          annotation_text=f"chance {pct(chance, 0)}", annotation_position="bottom right")
        if low_quantile is not None:
            fig.add_vrect(x0=0, x1=100 * low_quantile, fillcolor="#999", opacity=0.1,
                          line_width=0, annotation_text="low bands",
                          annotation_position="top left")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(range=[0, 100])
    return fig


def band_difference_figure(series: dict[str, Sequence[BandDifference]], n_bands: int,
                           low_quantile: float | None = None) -> go.Figure:
    """Per quantile band, the paired difference after - before the LN (mean over neurons,
    95% bootstrap interval), one line per group of models (e.g. SoLU-LN and the control)."""
    fig = style.figure("After minus before the LN, per neuron, by quantile band",
                       "quantile band of the neuron's positive activations (%)",
                       "inconsistent after - before (mean over neurons)", height=400)
    for name, diffs in series.items():
        diffs = [d for d in diffs if d.n_neurons]
        if not diffs:
            continue
        fig.add_trace(go.Scatter(
            x=[100 * (d.band + 0.5) / n_bands for d in diffs], y=[d.diff for d in diffs],
            mode="lines+markers", name=style.label(name) if "-" in name else name,
            line=dict(color=style.color(name), dash=style.dash(name)),
            error_y=dict(type="data", symmetric=False,
                         array=[max(d.hi - d.diff, 0) if math.isfinite(d.hi) else 0
                                for d in diffs],
                         arrayminus=[max(d.diff - d.lo, 0) if math.isfinite(d.lo) else 0
                                     for d in diffs]),
            customdata=[[d.n_neurons, d.lo, d.hi] for d in diffs],
            hovertemplate=("%{customdata[0]} neurons: %{y:+.3f} [%{customdata[1]:+.3f}, "
                           "%{customdata[2]:+.3f}]<extra></extra>")))
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    if not fig.data:
        fig.add_annotation(text="no neuron to compare", xref="paper", yref="paper", x=0.5,
                           y=0.5, showarrow=False)
    elif low_quantile is not None:
        fig.add_vrect(x0=0, x1=100 * low_quantile, fillcolor="#999", opacity=0.1, line_width=0)
    fig.update_xaxes(range=[0, 100])
    return fig


# --- one neuron, low bands, before and after ----------------------------------------------------
def example_neuron(ctx, name: str):
    """The best neuron of ``name`` that holds out (``holds_out``), ranked by
    ``interp.ranking.RANKING`` (None if none)."""
    good = [r for r in ctx.scores(name).records if holds_out(r)]
    ranked = rank_neurons(good, ctx.seed)
    return ranked[0] if ranked else None


def first_example(ctx, variant: str = PRIMARY):
    """``(model, neuron)``: ``example_neuron`` of the first seed of ``variant`` that has one
    (``(variant, None)`` if none has)."""
    for name in ctx.seeds(variant):
        record = example_neuron(ctx, name)
        if record is not None:
            return name, record
    return variant, None


def low_band_examples(ctx, name: str, record, *, n_bands: int = N_BANDS,
                      low_quantile: float = LOW_QUANTILE, n: int = 8,
                      max_rows: int | None = MAX_ROWS) -> dict[str, list]:
    """Per hook, ``n`` random tokens (seeded) of the neuron's low quantile bands on the
    measured rows, as ``harvest.Example``s with whether the explanation holds there."""
    run = ctx.run(name)
    cfg, corpus = run.config.model, run.corpus()
    split, tables = corpus.split("val"), VocabTables(corpus.tokenizer)
    rows = measured_rows(split, cfg.n_ctx, max_rows)
    source = ModelNeurons(run.load_model().eval())
    acts = {"mid": [], "post": []}
    with torch.inference_mode():
        for start in range(0, len(rows), 16):
            out = source.activations(get_rows(split, rows[start:start + 16], cfg.n_ctx,
                                              corpus.bos_id))
            for hook in acts:
                acts[hook].append(out[hook][record.layer][:, 1:, record.neuron].reshape(-1)
                                  .numpy())
    holds = record.explanation_obj().holds(split_features(split, tables, rows, cfg.n_ctx),
                                           tables)
    low = set(low_bands(n_bands, low_quantile))
    rng = np.random.default_rng([ctx.seed, record.layer, record.neuron])
    per_row = cfg.n_ctx - 1
    drawn: dict[str, list] = {}
    for hook, parts in acts.items():
        a = np.concatenate(parts)
        band = quantile_bands(a, n_bands)
        where = np.flatnonzero(np.isin(band, sorted(low)))
        pick = np.sort(rng.choice(where, min(n, where.size), replace=False)) if where.size else []
        drawn[hook] = [(Example(int(rows[i // per_row]), int(i % per_row) + 1, float(a[i])),
                        bool(holds[i])) for i in pick]
    return drawn


def band_pair_html(ctx, name: str, record, *, n_bands: int = N_BANDS,
                   low_quantile: float = LOW_QUANTILE, n_examples: int = 8) -> str:
    """One neuron's tokens from its low quantile bands before and after the LN, side by side,
    each labelled with whether the scorer's explanation holds there."""
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    drawn = low_band_examples(ctx, name, record, n_bands=n_bands, low_quantile=low_quantile,
                              n=n_examples)
    columns = {}
    for hook, items in drawn.items():
        snippets = neuron_snippets(model, corpus, harvest, record.layer, record.neuron,
                                   [e for e, _ in items], hook=hook, left=16, right=4)
        snippets = [replace(s, source=f"{s.source} · {'holds' if ok else 'INCONSISTENT'}")
                    for s, (_, ok) in zip(snippets, items)]
        bad = sum(not ok for _, ok in items)
        peak = float(harvest.stat("max", hook)[record.layer, record.neuron])
        title = (f"{HOOK_LABELS[hook]}, the weakest {pct(low_quantile, 0)} of its firings: "
                 f"{bad} of {len(items)} inconsistent")
        columns[title] = snippets_html(snippets, max_value=peak if peak > 0 else None)
    return verdict_html(record, name) + side_by_side_html(columns)


def no_neuron_html(name: str) -> str:
    return (f'<p class="solu-empty" style="font-family:sans-serif;color:#555">No neuron of '
            f"{html.escape(name)} has an explanation that holds up on held-out rows: no "
            "example to show.</p>")
