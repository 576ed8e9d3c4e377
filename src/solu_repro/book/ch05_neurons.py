"""Chapter 5 (paper §6.3.1, Figure 5): the page's tables, figure, neuron cards and glued
numbers, and the gathering of its inputs from the book's context.

The measurement (``next_token_agreement``: does a neuron's direct logit effect push the tokens
that follow its strongest firings?) and the verdict (``logit_agreement``) live in
``solu_repro.paper.s6_3_neurons``; this module fetches what they take (``gather``) and shows
what they found.

Neurons are chosen by the automated scorer (``solu_repro.interp.score``), never by hand:
``interp.ranking.select_neurons`` ranks the scorer's interpretable neurons by ``RANKING``;
``interp.ranking.closest_misses`` is what the page shows when nothing is interpretable (tiny
scale); the uncurated contrast draws ``s6_3_neurons.random_neurons``, the same seeded
procedure for every model (and the random live neurons shown beside the claim, whose null is
the mismatched pairing, ``s6_3_neurons.mismatched_agreement``).

Every HTML fragment escapes corpus-derived text (``book.neuron_cards``, ``interp.view``).
"""

from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go

from ..fmt import num
from ..interp.ranking import RANKING, explanation_kind
from ..interp.score import NeuronScore, NeuronScores
from ..paper.s6_3_neurons import Agreement, OneLayerMeasurements, ScoredModel, kind_counts, \
    random_neurons, seed_differences
from . import style
from .neuron_cards import neuron_cards_html, side_by_side_html
from .tables import text_table


# --- the inputs -------------------------------------------------------------------------------
def gather(ctx, names: Sequence[str]) -> dict[str, ScoredModel]:
    """Each model of ``names`` (zoo models, or released ones in a ``PublishedContext``) with
    its scores, corpus and harvest: what ``s6_3_neurons.measure_one_layer`` takes."""
    out = {}
    for name in names:
        run = ctx.run(name)
        out[name] = ScoredModel(run.load_model(), ctx.scores(name), run.corpus(),
                                ctx.harvest(name))
    return out


# --- the scorer's picks -----------------------------------------------------------------------
def scorer_summary(scores: NeuronScores) -> str:
    """One line: interpretable neurons (both views) and their explanation kinds."""
    top, spec = scores.fraction_interpretable(), scores.fraction_interpretable(view="spectrum")
    kinds = ", ".join(f"{k} {v}" for k, v in kind_counts(scores).items()) or "none"
    return (f"{scores.meta.get('name', '?')}: {top.successes}/{top.n} interpretable at first "
            f"glance, {spec.successes}/{spec.n} over the full spectrum; kinds: {kinds}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def picks_table(records: Sequence[NeuronScore]) -> str:
    """A plain-text table of chosen neurons and the scorer's numbers for them."""
    rows = [{"neuron": f"L{r.layer}N{r.neuron}",
             "verdict": "interpretable" if r.interpretable else "not interpretable",
             "kind": explanation_kind(r), "coverage": f"{r.coverage:.2f}",
             "lift": num(r.lift, ".0f"), "precision": num(r.precision, ".2f"),
             "recall": num(r.recall, ".2f"), "explanation": _clip(r.text, 60)}
            for r in records]
    return text_table(rows, ["neuron", "verdict", "kind", "coverage", "lift", "precision",
                             "recall", "explanation"])


def contrast_html(ctx, names: Sequence[str], n: int, *, n_examples: int = 6) -> str:
    """``random_neurons`` of each model (same seed, same procedure), in columns side by side,
    each card with the scorer's verdict: an uncurated contrast between models."""
    return side_by_side_html({
        style.label(name): neuron_cards_html(ctx, name, random_neurons(ctx.scores(name), n,
                                                                       ctx.seed),
                                             n_examples=n_examples, logits=False)
        for name in names})


def neuron_browser(ctx, names: Sequence[str]):
    """The ipywidgets ``NeuronBrowser`` over the zoo models ``names`` (JupyterLab only)."""
    from ..interp.view import NeuronBrowser

    entries = {}
    for name in names:
        run = ctx.run(name)
        entries[name] = (run.load_model(), run.corpus(), ctx.harvest(name))
    return NeuronBrowser(entries, seed=ctx.seed)


# --- the logit cross-check ----------------------------------------------------------------------
GROUP_ROWS = {"interpretable": "interpretable, own examples",
              "mismatched": "interpretable, others' examples",
              "random": "random live, own examples"}
"""How the table names ``s6_3_neurons.GROUPS``."""


def agreement_table(rows: Sequence[Agreement]) -> str:
    """``logit_agreement`` rows as a text table: per model and group, the mean percentile of
    the next token (what the claim compares), the median, its quartiles and the share of
    neurons above 0.75."""
    return text_table([{"model": a.model, "neurons": GROUP_ROWS.get(a.group, a.group),
                        "n": a.n, "mean": num(a.mean, ".3f"), "median": num(a.median, ".2f"),
                        "IQR": f"{num(a.q25, '.2f')}-{num(a.q75, '.2f')}",
                        "share > 0.75": num(a.share_above_075, ".2f")} for a in rows],
                      ["model", "neurons", "n", "mean", "median", "IQR", "share > 0.75"])


def seed_table(m: OneLayerMeasurements) -> str:
    """Per seed of the SoLU-LN model, the claim's unit: matched minus mismatched mean
    percentile (points), and beside it interpretable minus random live neurons."""
    null = seed_differences(m.agreement, m.seeds, "mismatched")
    rand = seed_differences(m.agreement, m.seeds, "random")
    pts = (lambda x: num(None if x is None else x * 100, "+.1f"))
    return text_table([{"seed": s, "matched - mismatched": pts(null[s]),
                        "interpretable - random": pts(rand[s])} for s in m.seeds],
                      ["seed", "matched - mismatched", "interpretable - random"])


GROUP_STYLE = {"interpretable": ("interpretable neurons, own examples", "#d62728", "circle"),
               "mismatched": ("the same neurons, others' examples (the null)", "#1f77b4",
                              "square"),
               "random": ("random live neurons, own examples", "#7f7f7f", "diamond")}


def agreement_figure(m: OneLayerMeasurements) -> go.Figure:
    """Per model (every seed of the SoLU-LN model, then the baseline), the median percentile
    of the next token in the neuron's logit effect, with its interquartile range, for the
    interpretable neurons against their own examples, the same neurons against other
    neurons' examples (the claim's null) and random live neurons; 0.5 is a neuron unrelated
    to what follows."""
    fig = style.figure("Does the logit effect push what follows the top firings? (§6.3.1)",
                       "model", "percentile of the next token in the logit effect",
                       height=400)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
                      margin=dict(b=90), scattermode="group")
    models = list(m.seeds) + [m.baseline]
    labels = {name: style.label(name) for name in models}
    for group, (name, color, symbol) in GROUP_STYLE.items():
        rows = {a.model: a for a in m.agreement if a.group == group}
        shown = [n for n in models if n in rows and rows[n].n > 0]
        fig.add_trace(go.Scatter(
            x=[labels[n] for n in shown], y=[rows[n].median for n in shown], name=name,
            mode="markers", marker=dict(color=color, symbol=symbol, size=11),
            error_y=dict(type="data", symmetric=False,
                         array=[rows[n].q75 - rows[n].median for n in shown],
                         arrayminus=[rows[n].median - rows[n].q25 for n in shown]),
            offsetgroup=group, customdata=[[rows[n].n] for n in shown],
            hovertemplate="%{x}: median %{y:.2f} over %{customdata[0]} neurons"
                          "<extra>" + name + "</extra>"))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#999999",
                  annotation_text="unrelated to what follows", annotation_position="bottom right")
    fig.update_xaxes(categoryorder="array", categoryarray=[labels[n] for n in models])
    fig.update_yaxes(range=[0, 1.02])
    if not any(a.n for a in m.agreement if a.group == "interpretable"):
        fig.add_annotation(text="the judge calls no neuron of these models interpretable: "
                                "only the random live neurons are drawn",
                           xref="paper", yref="paper", x=0.5, y=0.95, showarrow=False)
    return fig


# --- the page's numbers -------------------------------------------------------------------------
def glue_values(m: OneLayerMeasurements) -> dict[str, Any]:
    """Flat name -> value pairs for ``myst_nb.glue`` beside the claim's own sentence
    (``record.glue_claims``): the numbers the chapter's prose quotes."""
    return {"n_solu_interpretable": m.interpretable[m.model],
            "n_gelu_interpretable": m.interpretable[m.baseline],
            "n_neurons_1l": m.neurons[m.model],
            "ranking": RANKING,
            "n_solu_seeds": len(m.seeds),
            "n_random": m.n_random,
            "n_partners": m.n_partners}
