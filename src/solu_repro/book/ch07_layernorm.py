"""Chapter 7 (paper §6.4, Figure 9): the page's figures, tables, sentences and the example
neuron; the measurements and the verdict are ``solu_repro.paper.s6_4_layernorm``'s.

The notebook fetches its inputs with ``gather(ctx)``, measures once with
``s6_4_layernorm.measure(**gather(ctx), ...)``, decides its claim with
``registry.decide("07-layernorm", m)``, glues ``glue_values(m)`` and draws
``ln_consistency_figure`` / ``band_difference_figure`` / ``seed_figure``.
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
from ..interp.analysis import HELDOUT_RULE, BandRow, holds_out, level_bands
from ..interp.explanations import VocabTables
from ..interp.harvest import Example, ModelNeurons
from ..interp.ranking import rank_neurons
from ..interp.view import neuron_snippets, snippets_html
from ..paper.claim import CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, REPRODUCED, Test
from ..paper.s6_4_layernorm import (CONTROL, FLOOR, INTEREST, LOW_LEVELS, MAX_ROWS, N_BANDS,
                                    PRIMARY, BandDifference, LayerNormMeasurements, bands_text,
                                    has_room, low_bands, measured_rows, pts, split_features)
from . import style
from .checks import Check
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
def seeds_text(m: LayerNormMeasurements, names: Sequence[str], label: str,
               effect: Test | None) -> str:
    """One variant's seeds in a phrase: the low-band fractions before and after the LN and
    the untrained level (means over the seeds), and the test over seeds."""
    have = [n for n in names if m.per_model[n].n_neurons]
    if not have:
        return f"{label}: no neuron to compare"
    n = sum(m.per_model[x].n_neurons for x in have)
    floor = m.seed_mean(have, "floor")
    untrained = f", untrained {pct(floor)}" if floor == floor else ""
    return (f"{label}: inconsistent before the LN {pct(m.seed_mean(have, 'mid'))}, after "
            f"{pct(m.seed_mean(have, 'post'))}{untrained} (chance "
            f"{pct(m.seed_mean(have, 'chance'))}; means of {len(have)} seed"
            f"{'s' if len(have) != 1 else ''}, {n} neurons); after - before "
            f"{effect.interval_text if effect is not None else 'n/a'}")


def room_text(m: LayerNormMeasurements) -> str:
    """The gate in a sentence: how far below the untrained level SoLU-LN's low bands start."""
    r = m.room
    if r.n == 0 or not math.isfinite(r.effect):
        return "There is no untrained floor to measure the room against."
    ok = has_room(r)
    return (f"Before the LN, SoLU-LN's low bands sit {r.interval_text} below the untrained "
            f"model's level: " + ("room for an increase of the "
                                  f"{INTEREST * 100:.0f} points of interest, so the test "
                                  "below can decide" if ok else
                                  "not enough room, over the seeds, for an increase of the "
                                  f"{INTEREST * 100:.0f} points of interest: not testable"))


def reading_text(m: LayerNormMeasurements) -> str:
    """What the numbers say beside the verdict, in sentences: the room below the untrained
    level, whether the LN's rescaling varies between positions (the channel §6.4 needs), the
    GELU-LN control, and how the result compares with the paper's."""
    if m.effect.n == 0:
        return ("With no SoLU-LN neuron to compare, this build says nothing about §6.4; at "
                "`tiny` scale that is expected (the models are barely trained).")
    out = [room_text(m)]
    fd = m.seed_mean(m.solu_names, "floor_diff")
    if fd == fd:
        out.append(f"Banded the same way, the untrained model's low bands are {pts(fd)} more "
                   "often inconsistent after its LN than before it (mean of the seeds): "
                   + ("less than the effect of interest, so the banding alone does not make "
                      "an effect of that size." if abs(fd) < INTEREST else
                      "as large as the effect of interest: the banding alone moves the "
                      "numbers."))
    measured = [m.models[n] for n in m.solu_names if n in m.models and m.models[n]["positions"]]
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
        control_spreads = [m.models[n]["spread"] for n in m.control_names
                           if n in m.models and m.models[n]["positions"]]
        after_gelu = (f" (after GELU: {float(np.median(control_spreads)):.1f}x)"
                      if control_spreads else "")
        out.append(f"The extra LN's factor on SoLU-LN's outputs varies {spread:.1f}x between "
                   f"the 10th and the 90th percentile of positions{after_gelu}, and {eps}: "
                   f"{channel}.")
    if m.control_effect is not None and m.control_effect.n:
        vs = m.vs_control
        out.append(f"The same LN after GELU gives {m.control_effect.interval_text}; SoLU-LN "
                   f"minus GELU-LN, seed by seed, "
                   f"{vs.interval_text + ' (' + vs.verdict + ')' if vs is not None else 'n/a'}"
                   ": whether the effect needs SoLU is a question for more seeds.")
    paper = {REPRODUCED: "agrees with the paper's impression from one hand-labelled neuron",
             INCONCLUSIVE: "neither confirms nor rules out the paper's impression, though "
                           "these seeds could have detected an effect of interest",
             CONTRADICTED: "disagrees with the paper's impression from one hand-labelled "
                           "neuron (\"much more likely\" after the LN)",
             NOT_TESTABLE: "cannot be compared with the paper"}[m.verdict]
    n = sum(l.n_neurons for l in m.solu)
    out.append(f"Measured over {n} neurons of {m.effect.n} seeds and every token of the "
               f"held-out rows, the result {paper}.")
    return " ".join(out)


def glue_values(m: LayerNormMeasurements) -> dict[str, Any]:
    """Every number and phrase the chapter's text glues (besides the claim's own sentence
    and verdict, ``record.glue_claims``), by glue name."""
    return {"heldout_rule": HELDOUT_RULE, "n_bands": m.n_bands, "floor": FLOOR,
            "low_text": bands_text(m.low, m.n_bands),
            "interest": f"{INTEREST * 100:.0f} points",
            "solu_text": seeds_text(m, m.solu_names, f"{PRIMARY} ({len(m.solu_names)} seeds)",
                                    m.effect),
            "control_text": (seeds_text(m, m.control_names, f"{CONTROL} "
                                        f"({len(m.control_names)} seeds)", m.control_effect)
                             if m.control_names else "no control model"),
            "room_text": room_text(m), "reason": m.reason, "reading": reading_text(m),
            "rescale_solu": m.rescale_text(m.solu_names, "SoLU-LN"),
            "rescale_control": m.rescale_text(m.control_names, "GELU-LN")}


# --- tables -------------------------------------------------------------------------------------
BAND_COLUMNS = ["band (% of max)", "hook", "neurons", "tokens", "inconsistent", "pooled",
                "mean over neurons", "range over seeds"]
MODEL_COLUMNS = ["model", "hold out", "compared", "before", "after", "untrained", "room",
                 "after - before", "worse / better", "rescale median (10-90%)", "spread",
                 "gain median"]


def _range(lo: float, hi: float, fmt: str = ".3f") -> str:
    return f"{lo:{fmt}}-{hi:{fmt}}" if math.isfinite(lo) and math.isfinite(hi) else "n/a"


def band_table(rows: Sequence[BandRow]) -> str:
    """Rows as a Markdown table: band, hook, neurons, tokens, pooled and per-neuron
    inconsistent fraction, and the range of the per-seed means."""
    out = []
    for r in rows:
        mean = (f"{r.mean_fraction:.3f}" if r.n_examples and not math.isnan(r.mean_fraction)
                else "n/a")
        out.append({"band (% of max)": f"{pct(r.lo, 0)}-{pct(r.hi, 0)}", "hook": r.hook,
                    "neurons": r.n_neurons, "tokens": r.n_examples,
                    "inconsistent": r.n_inconsistent, "pooled": pct(r.fraction),
                    "mean over neurons": mean, "range over seeds": _range(r.seed_lo, r.seed_hi)})
    return markdown_table(out, BAND_COLUMNS)


def models_table(m: LayerNormMeasurements) -> str:
    """Per model, as a Markdown table: neurons that hold out and were compared, the low-band
    census before and after the LN and of the untrained model, the room, how many neurons got
    worse or better, the LN's rescaling."""
    out = []
    for name, summary in m.models.items():
        d = m.per_model[name]
        measured = bool(summary["positions"])
        out.append({"model": name, "hold out": f"{summary['hold_out']}/{summary['neurons']}",
                    "compared": d.n_neurons, "before": pct(d.mid), "after": pct(d.post),
                    "untrained": pct(d.floor),
                    "room": pts(d.room) if d.room == d.room else "n/a",
                    "after - before": pts(d.diff) if d.n_neurons else "n/a",
                    "worse / better": f"{d.n_up} / {d.n_down}",
                    "rescale median (10-90%)": (f"x{summary['rescale_median']:.3g} "
                                                f"(x{summary['rescale_q10']:.3g}-"
                                                f"x{summary['rescale_q90']:.3g})"
                                                if measured else "n/a"),
                    "spread": f"{summary['spread']:.2f}x" if measured else "n/a",
                    "gain median": f"{summary['gain_median']:.3f}" if measured else "n/a"})
    return markdown_table(out, MODEL_COLUMNS)


# --- checks (pinned) ----------------------------------------------------------------------------
def level_band_checks(rows: Sequence[BandRow], n_bands: int,
                      hooks: Sequence[str] = ("mid", "post")) -> list[Check]:
    """Bookkeeping of the activation-level bands that holds on any CPU, whatever the models
    learnt (and with no neuron at all): ``n_bands`` contiguous bands from 0 to 100% of the
    max on each hook; 0 <= inconsistent <= tokens; every mean over neurons a fraction, inside
    the range of the per-seed means when there is one."""
    out = []
    for hook in hooks:
        mine = sorted((r for r in rows if r.hook == hook), key=lambda r: r.band)
        edges_ok = (len(mine) == n_bands and abs(mine[0].lo) < 1e-12
                    and abs(mine[-1].hi - 1) < 1e-12
                    and all(abs(a.hi - b.lo) < 1e-12 for a, b in zip(mine, mine[1:])))
        out.append(Check(f"hook {hook}: {n_bands} contiguous bands from 0 to 100% of the max",
                         edges_ok, f"{[(r.lo, r.hi) for r in mine]}"))
        bad = [r.band for r in mine if not 0 <= r.n_inconsistent <= r.n_examples]
        out.append(Check(f"hook {hook}: 0 <= inconsistent <= tokens in every band", not bad,
                         f"bands {bad}"))
        off = [r.band for r in mine if r.n_examples and not (
            0 <= r.mean_fraction <= 1 and (math.isnan(r.seed_lo) or
                                           r.seed_lo - 1e-9 <= r.mean_fraction
                                           <= r.seed_hi + 1e-9))]
        out.append(Check(f"hook {hook}: mean fractions in [0, 1], between the seeds' means",
                         not off, f"bands {off}"))
    return out


# --- figures ------------------------------------------------------------------------------------
def _centres(rows: Sequence[Any], n_bands: int) -> list[float]:
    return [100 * (r.band + 0.5) / n_bands for r in rows]


def _seed_bars(values: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> dict:
    return dict(type="data", symmetric=False,
                array=[max(h - v, 0) if math.isfinite(h) else 0 for v, h in zip(values, hi)],
                arrayminus=[max(v - l, 0) if math.isfinite(l) else 0
                            for v, l in zip(values, lo)])


def ln_consistency_figure(rows: Sequence[BandRow], title: str | None = None,
                          chance: float | None = None, low: Sequence[float] | None = None,
                          floor_rows: Sequence[BandRow] = ()) -> go.Figure:
    """Figure 9 analogue: per activation-level band (fraction of the neuron's max on that
    hook), the mean over neurons of the fraction of tokens inconsistent with the neuron's
    explanation, before and after the LN; bars span the per-seed means (no interval over
    neurons: they are a census). The untrained model's level (``floor_rows``) as thin dotted
    lines, ``chance`` as a dotted line, the low regime shaded."""
    fig = style.figure(title or "Tokens inconsistent with the neuron's explanation, by "
                       "activation level (paper Figure 9)",
                       "activation, % of the neuron's max on that hook",
                       "fraction inconsistent (mean over neurons)", height=440)
    n_bands = max((r.band for r in rows), default=0) + 1
    for hook in ("mid", "post"):
        hook_rows = [r for r in rows if r.hook == hook and r.n_examples]
        if not hook_rows:
            continue
        y = [r.mean_fraction for r in hook_rows]
        fig.add_trace(go.Scatter(
            x=_centres(hook_rows, n_bands), y=y, mode="lines+markers", name=HOOK_LABELS[hook],
            line=dict(color=style.HOOK_COLORS[hook], dash="solid" if hook == "mid" else "dash"),
            error_y=_seed_bars(y, [r.seed_lo for r in hook_rows],
                               [r.seed_hi for r in hook_rows]),
            customdata=[[r.n_inconsistent, r.n_examples, r.n_neurons] for r in hook_rows],
            hovertemplate=("%{customdata[2]} neurons, %{customdata[1]} tokens "
                           "(%{customdata[0]} inconsistent): mean %{y:.3f}<extra></extra>")))
        floor = [r for r in floor_rows if r.hook == hook and r.n_examples]
        if floor:
            fig.add_trace(go.Scatter(
                x=_centres(floor, n_bands), y=[r.mean_fraction for r in floor], mode="lines",
                name=f"untrained model, {HOOK_LABELS[hook].split(' (')[0]}",
                line=dict(color=style.HOOK_COLORS[hook], dash="dot", width=1),
                hovertemplate="untrained: mean %{y:.3f}<extra></extra>"))
    if not fig.data:
        fig.add_annotation(text="no neuron whose explanation holds out: nothing to count",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    else:
        if chance is not None and math.isfinite(chance):
            fig.add_hline(y=chance, line=dict(color="#555", dash="dot", width=1),
                          annotation_text=f"chance {pct(chance, 0)}",
                          annotation_position="bottom right")
        if low is not None:
            fig.add_vrect(x0=100 * low[0], x1=100 * low[1], fillcolor="#999", opacity=0.1,
                          line_width=0, annotation_text="low regime",
                          annotation_position="top left")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(range=[0, 100])
    return fig


def band_difference_figure(series: dict[str, Sequence[BandDifference]], n_bands: int,
                           low: Sequence[float] | None = None) -> go.Figure:
    """Per activation-level band, the per-neuron difference after - before the LN (mean over
    neurons, bars spanning the per-seed means), one line per group of models (e.g. SoLU-LN
    and the control)."""
    fig = style.figure("After minus before the LN, per neuron, by activation level",
                       "activation, % of the neuron's max on that hook",
                       "inconsistent after - before (mean over neurons)", height=400)
    for name, diffs in series.items():
        diffs = [d for d in diffs if d.n_neurons]
        if not diffs:
            continue
        y = [d.diff for d in diffs]
        fig.add_trace(go.Scatter(
            x=[100 * (d.band + 0.5) / n_bands for d in diffs], y=y,
            mode="lines+markers", name=style.label(name) if "-" in name else name,
            line=dict(color=style.color(name), dash=style.dash(name)),
            error_y=_seed_bars(y, [d.seed_lo for d in diffs], [d.seed_hi for d in diffs]),
            customdata=[[d.n_neurons] for d in diffs],
            hovertemplate="%{customdata[0]} neurons: %{y:+.3f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    if not fig.data:
        fig.add_annotation(text="no neuron to compare", xref="paper", yref="paper", x=0.5,
                           y=0.5, showarrow=False)
    elif low is not None:
        fig.add_vrect(x0=100 * low[0], x1=100 * low[1], fillcolor="#999", opacity=0.1,
                      line_width=0)
    fig.update_xaxes(range=[0, 100])
    return fig


def seed_figure(m: LayerNormMeasurements) -> go.Figure:
    """The units of the test: each seed's low-band after - before difference (and its room
    below the untrained level), SoLU-LN and GELU-LN, with the 95% interval over seeds of each
    variant's mean and the smallest effect of interest as a dotted line."""
    fig = style.figure("Low regime, one point per trained model (seed)", "",
                       "points (after - before the LN; room below the untrained level)",
                       height=380)
    groups = [(PRIMARY, m.solu_names, m.effect, "after - before"),
              (PRIMARY, m.solu_names, m.room, "room"),
              (CONTROL, m.control_names, m.control_effect, "after - before")]
    for variant, names, test, what in groups:
        have = [n for n in names if m.per_model[n].n_neurons]
        if not have or test is None:
            continue
        key = "room" if what == "room" else "diff"
        x = f"{style.label(variant)}: {what}"
        ys = [100 * getattr(m.per_model[n], key) for n in have]
        fig.add_trace(go.Scatter(x=[x] * len(ys), y=ys, mode="markers", text=have,
                                 marker=dict(color=style.color(variant), size=9,
                                             symbol="circle-open" if what == "room" else "circle"),
                                 name=x, hovertemplate="%{text}: %{y:+.1f} pts<extra></extra>"))
        fig.add_trace(style.interval_marker(x, test))
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    fig.add_hline(y=100 * INTEREST, line=dict(color="#555", dash="dot", width=1),
                  annotation_text=f"effect of interest {100 * INTEREST:.0f} pts",
                  annotation_position="top right")
    if len(fig.data) == 0:
        fig.add_annotation(text="no seed to show", xref="paper", yref="paper", x=0.5, y=0.5,
                           showarrow=False)
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
                      low: Sequence[float] = LOW_LEVELS, n: int = 8,
                      max_rows: int | None = MAX_ROWS) -> dict[str, list]:
    """Per hook, ``n`` random tokens (seeded) of the neuron's low regime on the measured rows
    (``low`` of its max on that hook, ``level_bands``), as ``harvest.Example``s with whether
    the explanation holds there."""
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
    wanted = sorted(low_bands(n_bands, low))
    rng = np.random.default_rng([ctx.seed, record.layer, record.neuron])
    per_row = cfg.n_ctx - 1
    drawn: dict[str, list] = {}
    for hook, parts in acts.items():
        a = np.concatenate(parts)
        band = level_bands(a, n_bands)
        where = np.flatnonzero(np.isin(band, wanted))
        pick = np.sort(rng.choice(where, min(n, where.size), replace=False)) if where.size else []
        drawn[hook] = [(Example(int(rows[i // per_row]), int(i % per_row) + 1, float(a[i])),
                        bool(holds[i])) for i in pick]
    return drawn


def band_pair_html(ctx, name: str, record, *, n_bands: int = N_BANDS,
                   low: Sequence[float] = LOW_LEVELS, n_examples: int = 8) -> str:
    """One neuron's tokens from its low regime before and after the LN, side by side, each
    labelled with whether the scorer's explanation holds there."""
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    drawn = low_band_examples(ctx, name, record, n_bands=n_bands, low=low, n=n_examples)
    columns = {}
    for hook, items in drawn.items():
        snippets = neuron_snippets(model, corpus, harvest, record.layer, record.neuron,
                                   [e for e, _ in items], hook=hook, left=16, right=4)
        snippets = [replace(s, source=f"{s.source} · {'holds' if ok else 'INCONSISTENT'}")
                    for s, (_, ok) in zip(snippets, items)]
        bad = sum(not ok for _, ok in items)
        peak = float(harvest.stat("max", hook)[record.layer, record.neuron])
        title = (f"{HOOK_LABELS[hook]}, {pct(low[0], 0)}-{pct(low[1], 0)} of its max: "
                 f"{bad} of {len(items)} inconsistent")
        columns[title] = snippets_html(snippets, max_value=peak if peak > 0 else None)
    return verdict_html(record, name) + side_by_side_html(columns)


def no_neuron_html(name: str) -> str:
    return (f'<p class="solu-empty" style="font-family:sans-serif;color:#555">No neuron of '
            f"{html.escape(name)} has an explanation that holds up on held-out rows: no "
            "example to show.</p>")
