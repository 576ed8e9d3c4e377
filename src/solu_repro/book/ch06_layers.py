"""Chapter 6 (paper §6.3.2-6.3.4): the page's roles-by-layer table and figure, example
neurons of each role, glued numbers, and the gathering of its inputs from the book's context.

The counts (``layer_roles_rows``), the comparisons (``measure_layers``: ``RoleShift``s of the
deepest SoLU-LN model and its GELU baseline, a census of one model each; the depth check from
the models' losses; the between-seed SD borrowed from the one-layer seeds) and the verdicts
(``early_detokenization``, ``late_retokenization``, ``middle_abstract``) live in
``solu_repro.paper.s6_3_neurons``.

Layer roles are ``interp.analysis.LAYER_ROLES``, named for what the explanation says (the
current token, the token in context, a token class or text pattern, the text's source, the
next token). Every HTML fragment escapes corpus-derived text.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import plotly.graph_objects as go

from ..fmt import pct
from ..interp.analysis import ROLE_ORDER, direct_effect_ranks
from ..interp.ranking import select_neurons
from ..interp.score import NeuronScore
from ..paper.s6_3_neurons import LayersMeasurements, ScoredModel, depth_failures, \
    multi_layer_models
from ..zoo import act_of
from . import style
from .neuron_cards import ROLE_LABELS, neuron_cards_html
from .tables import text_table

ROLE_COLUMNS = {"token": "token", "detokenization": "de-tok", "token_class": "token class",
                "source": "source", "retokenization": "re-tok"}
"""Short headers of the layer-roles table."""
ROLE_COLORS = {"token": "#8c8c8c", "detokenization": "#1f77b4", "token_class": "#9467bd",
               "source": "#2ca02c", "retokenization": "#d62728"}
if set(ROLE_LABELS) != set(ROLE_ORDER) or set(ROLE_COLORS) != set(ROLE_ORDER):
    raise RuntimeError("every role of ROLE_ORDER needs a label and a colour")
UNCONFIRMED_LABEL = "next token, not pushed by the neuron's logit effect"


# --- the inputs -------------------------------------------------------------------------------
def gather(ctx, names: Sequence[str] | None = None) -> dict[str, ScoredModel]:
    """Each model of ``names`` (default: every multi-layer model of ``ctx``, zoo or released)
    with its weights and scores: what ``s6_3_neurons.layer_roles_rows`` takes."""
    names = multi_layer_models(ctx.names) if names is None else names
    return {name: ScoredModel(ctx.run(name).load_model(), ctx.scores(name)) for name in names}


ONE_LAYER_PAIR = ("1L-solu_ln", "1L-gelu")
"""The one-layer models whose seeds lend ``early_detokenization`` its between-seed SD."""
DEPTH_ACTS = ("solu_ln", "gelu")
"""The activations whose losses ``depth_check`` compares across depths."""


def gather_one_layer(ctx) -> dict[str, ScoredModel]:
    """Every seed of the one-layer SoLU-LN and GELU models of ``ctx`` with weights and scores
    (what ``layer_roles_rows`` takes for ``measure_layers(..., one_layer=...)``); the models
    of ``ONE_LAYER_PAIR`` that ``ctx`` does not have are left out."""
    names = [s for base in ONE_LAYER_PAIR if base in ctx.all_names for s in ctx.seeds(base)]
    return gather(ctx, names)


def final_losses(ctx) -> dict[str, float]:
    """Final validation loss of each seed-0 model of ``ctx`` with an activation of
    ``DEPTH_ACTS`` (what ``measure_layers(..., losses=...)`` takes); models whose run records
    no loss (released models) are left out."""
    out = {}
    for name in ctx.names:
        if act_of(name) not in DEPTH_ACTS:
            continue
        loss = (getattr(ctx.run(name), "result", None) or {}).get("val_loss")
        if loss is not None:
            out[name] = float(loss)
    return out


def depth_table(m: LayersMeasurements) -> str:
    """``m.depth`` as a text table: each model of the pair against the next shallower one."""
    return text_table([{"model": c.model, "val loss": f"{c.loss:.3f}",
                        "shallower": c.shallower or "none",
                        "its val loss": f"{c.shallower_loss:.3f}",
                        "depth learned": {True: "yes", False: "no", None: "unknown"}[c.learned]}
                       for c in m.depth],
                      ["model", "val loss", "shallower", "its val loss", "depth learned"])


def census_table(m: LayersMeasurements) -> str:
    """The three comparisons as counts and shares (a census of one model each, no
    intervals)."""
    shifts = {"§6.3.2 de-tok, first layer vs GELU's": m.early_detokenization,
              "§6.3.3 re-tok, last layer vs earlier": m.late_retokenization,
              "§6.3.4 token class, middle vs first+last": m.middle_token_class}
    rows = []
    for label, sh in shifts.items():
        if sh is None:
            rows.append({"comparison": label, "count": "n/a", "versus": "n/a",
                         "difference": "n/a"})
            continue
        rows.append({"comparison": label,
                     "count": f"{sh.count}/{sh.n} = {pct(sh.share)}",
                     "versus": f"{sh.other_count}/{sh.other_n} = {pct(sh.other_share)}",
                     "difference": f"{pct(sh.diff, signed=True).rstrip('%')} points"})
    return text_table(rows, ["comparison", "count", "versus", "difference"])


# --- roles by layer -----------------------------------------------------------------------------
def layer_roles_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of ``layer_roles_rows`` as a text table: counts, and shares in brackets."""
    def cell(row, role):
        share = row[f"{role}_fraction"]
        return f"{row[role]} ({pct(share, 0)})" if not math.isnan(share) else f"{row[role]}"

    out = [{"model": r["model"], "layer": f"L{r['layer']} ({r['position']})",
            "interpretable": r["n_interpretable"],
            **{ROLE_COLUMNS[role]: cell(r, role) for role in ROLE_ORDER},
            "next-token unconfirmed": r["retokenization_unconfirmed"]} for r in rows]
    return text_table(out, ["model", "layer", "interpretable",
                            *(ROLE_COLUMNS[role] for role in ROLE_ORDER),
                            "next-token unconfirmed"])


def layer_roles_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Stacked bars: per model and layer, interpretable neurons by role (counts; the share
    is in the hover text), plus next-token neurons whose logit effect does not confirm them.
    """
    fig = style.figure("Roles of interpretable neurons by layer (paper §6.3.2-6.3.4)",
                       "model / layer", "interpretable neurons", height=460, barmode="stack")
    x = [[style.label(r["model"]) for r in rows], [f"L{r['layer']}" for r in rows]]
    for role in ROLE_ORDER:
        shares = [r[f"{role}_fraction"] for r in rows]
        fig.add_trace(go.Bar(
            x=x, y=[r[role] for r in rows], name=ROLE_LABELS[role],
            marker_color=ROLE_COLORS[role],
            customdata=[[pct(s, 0), r["n_interpretable"]]
                        for s, r in zip(shares, rows)],
            hovertemplate=(f"{ROLE_LABELS[role]}: %{{y}} of %{{customdata[1]}} "
                           "(%{customdata[0]})<extra></extra>")))
    fig.add_trace(go.Bar(x=x, y=[r["retokenization_unconfirmed"] for r in rows],
                         name=UNCONFIRMED_LABEL, marker_color="#ffffff",
                         marker_line_color=ROLE_COLORS["retokenization"], marker_line_width=1.5,
                         marker_pattern_shape="/",
                         hovertemplate="%{y} next-token neurons not confirmed<extra></extra>"))
    if not any(r["n_interpretable"] or r["retokenization_unconfirmed"] for r in rows):
        fig.add_annotation(text="no interpretable neuron in any layer of these models",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    return fig


# --- examples of each role ----------------------------------------------------------------------
NO_DEEP_MODELS = ("The {scale} zoo has no model with more than one layer: the default cpu book "
                  "spends its budget on the 1-layer pair (README, \"Budget\"); "
                  "`make book SCALE=cpu-full` adds a 2- and a 4-layer pair. This chapter's "
                  "comparisons are not testable at this scale.")
"""What the chapter shows in place of a multi-layer model's examples when the zoo has none."""


def role_examples(m: ScoredModel, per_role: int = 1, seed: int = 0,
                  top_logits: int = 10) -> dict[str, list[NeuronScore]]:
    """Per role, the best ``per_role`` interpretable neurons of one model by ``RANKING``.

    Next-token (re-tokenization) neurons count only when their direct logit effect ranks an
    explained next token in its top ``top_logits``, as in ``layer_roles``.
    """
    out = {}
    for role in ROLE_ORDER:
        ranked = select_neurons(m.scores, len(m.scores.records), seed, role=role)
        if role == "retokenization":
            ranked = [r for r in ranked if min(direct_effect_ranks(
                m.model, r.layer, r.neuron, list(r.explanation_obj().values))) < top_logits]
        out[role] = ranked[:per_role]
    return out


def role_examples_html(ctx, name: str, examples: dict[str, list[NeuronScore]], *,
                       n_examples: int = 6, n_logits: int = 6) -> str:
    """Cards of ``role_examples`` under a heading per role."""
    parts = []
    for role, records in examples.items():
        parts.append(f'<h4 style="font-family:sans-serif">{html.escape(ROLE_LABELS[role])}</h4>')
        parts.append(neuron_cards_html(
            ctx, name, records, n_examples=n_examples, n_logits=n_logits,
            empty=f"The scorer found no interpretable neuron of this role in {name}."))
    return "".join(parts)


# --- the page's numbers -------------------------------------------------------------------------
def glue_values(m: LayersMeasurements) -> dict[str, Any]:
    """Flat name -> value pairs for ``myst_nb.glue`` beside the claims' own sentences
    (``record.glue_claims``): the models the chapter's prose names."""
    if not m.depth:
        depth = "the models' losses were not given, so whether depth was learned is unknown"
    else:
        depth = (depth_failures(m.depth)
                 or "depth was learned: " + "; ".join(c.text for c in m.depth))
    return {"deepest": m.solu or "no multi-layer SoLU-LN model",
            "baseline": m.gelu or "no GELU model of that depth",
            "depth_note": depth}
