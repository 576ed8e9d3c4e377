"""Paper §6.3: looking at neurons the scorer picked, and what layers of deeper models do.

Notebooks 05 (one-layer neurons, §6.3.1, Figure 5) and 06 (neurons across layers,
§6.3.2-6.3.5) call these functions; the scorecard calls ``neurons_measurements``.

Neurons are chosen by the automated scorer (``solu_repro.interp.score``), never by hand:

* ``select_neurons`` takes the scorer's *interpretable* neurons (top-20 rule) and ranks them by
  ``RANKING``: the F1 of the explanation's held-out precision and recall first (a rule that
  also holds over the full activation spectrum is the most trustworthy thing to show), then
  its coverage of the top firings, then its specificity (lift). Ties are broken by a seeded
  shuffle. Unless ``spread_kinds=False`` the list takes the best neuron of every explanation
  kind before the second of any kind, so the page is not twenty "current token is X".
* ``closest_misses`` is what a page shows when nothing is interpretable (tiny scale): the
  non-dead neurons whose best explanation came closest to the 80% rule, labelled as such.
* ``random_neurons`` is a seeded uniform draw of live neurons, the same procedure for every
  model: the baseline contrast of notebook 05 is not cherry-picked.

Every HTML fragment here escapes corpus-derived text (token strings, explanation texts);
the neuron views of ``solu_repro.interp.view`` escape theirs.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ..interp.analysis import ROLE_ORDER, direct_effect_ranks, layer_roles
from ..interp.explanations import KINDS, ROLES
from ..interp.score import NeuronScore, NeuronScores
from ..interp.stats import difference_interval, proportion
from ..interp.view import logit_effect_html, neuron_html
from . import style

RANKING = ("interpretable neurons only (the scorer's top-20 rule), best first by the F1 of "
           "the explanation's held-out precision and recall, then by its coverage of the top "
           "firings, then by its lift over the base rate; ties broken by a seeded shuffle; "
           "one neuron of each explanation kind before a second of any kind")

ROLE_LABELS = {
    "token": "current token",
    "detokenization": "token in context (de-tokenization)",
    "abstract": "abstract class",
    "retokenization": "next token (re-tokenization)",
}
ROLE_COLORS = {"token": "#8c8c8c", "detokenization": "#1f77b4", "abstract": "#9467bd",
               "retokenization": "#d62728"}
UNCONFIRMED_LABEL = "next token, not pushed by the neuron's logit effect"

_CARD_STYLE = ("border:1px solid #ccc;border-radius:4px;padding:6px 8px;margin:10px 0;"
               "background:#fff;color:#111")
_VERDICT_STYLE = "font-family:sans-serif;font-size:13px;margin-bottom:4px"


# --- choosing neurons --------------------------------------------------------------------------
def spectrum_f1(record: NeuronScore) -> float:
    """Harmonic mean of the explanation's held-out precision and recall (0 when undefined)."""
    p, r = record.precision, record.recall
    if p is None or r is None or math.isnan(p) or math.isnan(r) or p + r == 0:
        return 0.0
    return 2 * p * r / (p + r)


def _tie_breaks(records: Sequence[NeuronScore], seed: int) -> dict[tuple[int, int], float]:
    rng = np.random.default_rng(seed)
    return {(r.layer, r.neuron): float(x) for r, x in zip(records, rng.random(len(records)))}


def _num(x: float | None) -> float:
    """A sortable number: None and NaN count as 0."""
    return 0.0 if x is None or math.isnan(x) else x


def rank_neurons(records: Iterable[NeuronScore], seed: int = 0) -> list[NeuronScore]:
    """``records`` best first by ``RANKING`` (F1, coverage, lift; seeded tie-break).

    The seeded shuffle is drawn over the records in (layer, neuron) order, so the result
    depends only on the records and the seed, not on the order they come in.
    """
    records = sorted(records, key=lambda r: (r.layer, r.neuron))
    ties = _tie_breaks(records, seed)

    def key(r: NeuronScore):
        return (-spectrum_f1(r), -r.coverage, -_num(r.lift), ties[(r.layer, r.neuron)])

    return sorted(records, key=key)


def _kind(record: NeuronScore) -> str:
    e = record.explanation_obj()
    return e.kind if e is not None else "none"


def spread_over_kinds(ranked: Sequence[NeuronScore]) -> list[NeuronScore]:
    """Round robin over explanation kinds: each kind's best, then each kind's second, ...

    Kinds are visited in the order of their best neuron, so the first pick is always the
    overall best.
    """
    groups: dict[str, list[NeuronScore]] = {}
    for r in ranked:
        groups.setdefault(_kind(r), []).append(r)
    out: list[NeuronScore] = []
    depth = 0
    while len(out) < len(ranked):
        for members in groups.values():
            if depth < len(members):
                out.append(members[depth])
        depth += 1
    return out


def select_neurons(scores: NeuronScores, n: int, seed: int = 0, *, layer: int | None = None,
                   role: str | None = None, spread_kinds: bool = True) -> list[NeuronScore]:
    """Up to ``n`` of the scorer's interpretable neurons, chosen by ``RANKING``.

    Args:
        scores: A model's ``NeuronScores``.
        n: How many (fewer if fewer are interpretable; an empty list if none is).
        seed: Seed of the tie-break shuffle.
        layer: Only this layer.
        role: Only explanations of this role (``ROLE_ORDER``).
        spread_kinds: One neuron per explanation kind before a second of any kind.
    """
    pool = [r for r in scores.select(layer) if r.interpretable
            and (role is None or ROLES.get(_kind(r)) == role)]
    ranked = rank_neurons(pool, seed)
    if spread_kinds:
        ranked = spread_over_kinds(ranked)
    return ranked[:n]


def closest_misses(scores: NeuronScores, n: int, seed: int = 0) -> list[NeuronScore]:
    """The ``n`` live neurons the scorer did *not* call interpretable whose best explanation
    covered most of the top firings (then most specific): what to look at when nothing passes.
    """
    pool = [r for r in scores.records if not r.interpretable and not r.dead
            and r.explanation is not None]
    pool = sorted(pool, key=lambda r: (r.layer, r.neuron))
    ties = _tie_breaks(pool, seed)
    return sorted(pool, key=lambda r: (-r.coverage, -_num(r.lift),
                                       ties[(r.layer, r.neuron)]))[:n]


def random_neurons(scores: NeuronScores, n: int, seed: int = 0) -> list[NeuronScore]:
    """A seeded uniform sample of ``n`` live neurons, in (layer, neuron) order.

    The same procedure for every model, so two models' samples are comparable (the paper's
    §6.1 evaluation also looks at random neurons).
    """
    live = [r for r in scores.records if not r.dead]
    if len(live) <= n:
        return live
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(live), n, replace=False))
    return [live[i] for i in chosen]


def kind_counts(scores: NeuronScores) -> dict[str, int]:
    """Interpretable neurons per explanation kind, in the family's order (zeros left out)."""
    counts = {k: 0 for k in KINDS}
    for r in scores.records:
        if r.interpretable:
            counts[_kind(r)] += 1
    return {k: v for k, v in counts.items() if v}


def scorer_summary(scores: NeuronScores) -> str:
    """One line: interpretable neurons (both views) and their explanation kinds."""
    top, spec = scores.fraction_interpretable(), scores.fraction_interpretable(view="spectrum")
    kinds = ", ".join(f"{k} {v}" for k, v in kind_counts(scores).items()) or "none"
    return (f"{scores.meta.get('name', '?')}: {top.successes}/{top.n} interpretable at first "
            f"glance, {spec.successes}/{spec.n} over the full spectrum; kinds: {kinds}")


def picks_table(records: Sequence[NeuronScore]) -> str:
    """A plain-text table of chosen neurons and the scorer's numbers for them."""
    rows = [{"neuron": f"L{r.layer}N{r.neuron}",
             "verdict": "interpretable" if r.interpretable else "not interpretable",
             "kind": _kind(r), "coverage": f"{r.coverage:.2f}",
             "lift": _fmt(r.lift, ".0f"), "precision": _fmt(r.precision, ".2f"),
             "recall": _fmt(r.recall, ".2f"), "explanation": _clip(r.text, 60)}
            for r in records]
    return format_table(rows, ["neuron", "verdict", "kind", "coverage", "lift", "precision",
                               "recall", "explanation"])


def _fmt(x: float | None, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None or math.isnan(x) else ("inf" if x > 0 else "-inf")
    return format(x, spec)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows of dicts as a fixed-width text table (values rendered with ``str``)."""
    cells = [[str(c) for c in columns]] + [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- rendering ---------------------------------------------------------------------------------
def verdict_html(record: NeuronScore, model_name: str) -> str:
    """The scorer's verdict on one neuron as an escaped one-line header."""
    verdict = ("interpretable (top-20 rule)" if record.interpretable
               else "NOT interpretable by the scorer")
    color = "#1a7f37" if record.interpretable else "#b35900"
    numbers = (f"covers {record.coverage:.0%} of the top firings · "
               f"{_fmt(record.lift, '.0f')}x its base rate · held-out precision "
               f"{_fmt(record.precision, '.2f')}, recall {_fmt(record.recall, '.2f')}")
    role = ROLE_LABELS.get(ROLES.get(_kind(record), ""), "no role")
    return (f'<div class="solu-verdict" style="{_VERDICT_STYLE}">'
            f"<b>{html.escape(model_name)} L{record.layer}N{record.neuron}</b> · "
            f'<span style="color:{color};font-weight:bold">{verdict}</span><br>'
            f'scorer\'s explanation: <span class="solu-explanation" '
            f'style="font-family:monospace;background:#f4f4f4">{html.escape(record.text)}'
            f"</span> ({html.escape(role)})<br>"
            f'<span style="color:#555;font-size:12px">{numbers}</span></div>')


def neuron_card_html(model, corpus, harvest, record: NeuronScore, model_name: str, *,
                     n_examples: int = 8, n_logits: int = 8, band: Any = "top",
                     hook: str = "mid", logits: bool = True, seed: int = 0) -> str:
    """One neuron's card: the scorer's verdict, Figure 3-style examples and (optionally) the
    Figure 5-style direct logit effect.

    Args:
        model, corpus, harvest: The model, its corpus and its harvest.
        record: The neuron's ``NeuronScore``.
        model_name: Shown in the header (escaped).
        n_examples: Dataset examples shown.
        n_logits: Tokens per column of the logit effect.
        band: ``"top"`` or a band, as ``neuron_html`` takes it.
        hook: ``"mid"`` (interpreted) or ``"post"``.
        logits: Add the direct logit effect.
        seed: Seed of band samples.
    """
    parts = [f'<div class="solu-card" style="{_CARD_STYLE}">', verdict_html(record, model_name),
             neuron_html(model, corpus, harvest, record.layer, record.neuron, hook=hook,
                         band=band, n=n_examples, seed=seed, left=24, right=4)]
    if logits:
        parts.append(logit_effect_html(model, corpus.tokenizer, record.layer, record.neuron,
                                       n=n_logits))
    parts.append("</div>")
    return "".join(parts)


def neuron_cards_html(ctx, name: str, records: Sequence[NeuronScore], *, n_examples: int = 8,
                      n_logits: int = 8, logits: bool = True, empty: str = "No neurons.") -> str:
    """Cards of several neurons of the zoo model ``name`` (see ``neuron_card_html``)."""
    if not records:
        return (f'<p class="solu-empty" style="font-family:sans-serif;color:#555">'
                f"{html.escape(empty)}</p>")
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    return "".join(neuron_card_html(model, corpus, harvest, r, name, n_examples=n_examples,
                                    n_logits=n_logits, logits=logits, seed=ctx.seed)
                   for r in records)


def side_by_side_html(columns: dict[str, str]) -> str:
    """HTML fragments in equal columns, each under its (escaped) title."""
    cells = "".join(
        '<div style="flex:1 1 0;min-width:280px">'
        f'<div style="font-family:sans-serif;font-weight:bold;font-size:14px;margin:4px 0">'
        f"{html.escape(title)}</div>{body}</div>"
        for title, body in columns.items())
    return ('<div class="solu-side-by-side" style="display:flex;gap:16px;flex-wrap:wrap">'
            f"{cells}</div>")


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


# --- Figure 5 made checkable: does the logit effect agree with the examples? -------------------
def next_token_agreement(model, corpus, harvest, records: Sequence[NeuronScore],
                         hook: str = "post") -> dict[tuple[int, int], float]:
    """Per neuron, how strongly its direct logit effect promotes the tokens that actually
    follow its strongest firings (paper §6.3.1: check the dataset examples against the logit
    effect).

    For each of the neuron's top firings on ``hook`` (``hook_post`` by default: the logit
    effect is per unit of ``hook_post``, and its top firings are where the neuron pushes
    hardest), the percentile of the true next token among all tokens, ranked by the neuron's
    direct logit effect (1 = the token it pushes most, 0 = the one it suppresses most). The
    mean over firings is reported; a neuron unrelated to what comes next scores about 0.5.

    Exact for one-layer models up to the final LayerNorm's scale; for deeper models it is
    the direct path only.
    """
    from ..interp.view import direct_logit_effect

    split = corpus.split(harvest.meta.get("split", "val"))
    out = {}
    for r in records:
        examples = harvest.top_examples(r.layer, r.neuron, hook)
        positions = [e.position(harvest.n_ctx) + 1 for e in examples]
        positions = [p for p in positions if p < split.n_tokens]
        if not positions:
            out[(r.layer, r.neuron)] = math.nan
            continue
        effect = direct_logit_effect(model, r.layer, r.neuron)
        order = torch.argsort(effect)
        percentile = torch.empty_like(effect)
        percentile[order] = torch.arange(len(effect), dtype=effect.dtype) / max(len(effect) - 1, 1)
        nxt = [int(split.window(p, 1)[0]) for p in positions]
        out[(r.layer, r.neuron)] = float(percentile[nxt].mean())
    return out


@dataclass
class Agreement:
    """Summary of ``next_token_agreement`` over a group of neurons."""

    model: str
    group: str
    n: int
    median: float
    q25: float
    q75: float
    share_above_075: float  # neurons whose next tokens sit in the top quarter of their push

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement_summary(model: str, group: str, values: Iterable[float]) -> Agreement:
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if not len(v):
        return Agreement(model, group, 0, math.nan, math.nan, math.nan, math.nan)
    q25, med, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    return Agreement(model, group, len(v), float(med), float(q25), float(q75),
                     float((v > 0.75).mean()))


def logit_agreement(ctx, names: Sequence[str], n_random: int = 64) -> list[Agreement]:
    """``next_token_agreement`` of each model's interpretable neurons and of a seeded random
    sample of ``n_random`` live neurons (the reference)."""
    out = []
    for name in names:
        run, scores = ctx.run(name), ctx.scores(name)
        model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
        good = [r for r in scores.records if r.interpretable]
        sample = random_neurons(scores, n_random, ctx.seed)
        values = next_token_agreement(model, corpus, harvest, good + sample)
        out.append(agreement_summary(name, "interpretable",
                                     [values[(r.layer, r.neuron)] for r in good]))
        out.append(agreement_summary(name, "random",
                                     [values[(r.layer, r.neuron)] for r in sample]))
    return out


def agreement_table(rows: Sequence[Agreement]) -> str:
    return format_table([{"model": a.model, "neurons": a.group, "n": a.n,
                          "median": _fmt(a.median, ".2f"),
                          "IQR": f"{_fmt(a.q25, '.2f')}-{_fmt(a.q75, '.2f')}",
                          "share > 0.75": _fmt(a.share_above_075, ".2f")} for a in rows],
                        ["model", "neurons", "n", "median", "IQR", "share > 0.75"])


# --- layer roles (§6.3.2-6.3.4) -----------------------------------------------------------------
def multi_layer_models(ctx) -> list[str]:
    """The zoo's models with more than one layer, in zoo order."""
    return [n for n in ctx.names if style.depth_of(n) > 1]


def layer_position(layer: int, n_layers: int) -> str:
    """"first", "middle" or "last" (a 2-layer model has no middle)."""
    if layer == 0:
        return "first"
    return "last" if layer == n_layers - 1 else "middle"


def layer_roles_rows(ctx, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``layer_roles`` of each model (with the logit-effect check of re-tokenization), one
    row per (model, layer), with the model's name, activation, depth and layer position."""
    rows = []
    for name in names if names is not None else multi_layer_models(ctx):
        depth = style.depth_of(name)
        for row in layer_roles(ctx.scores(name), ctx.run(name).load_model()):
            rows.append({"model": name, "act": style.act_of(name), "depth": depth,
                         "position": layer_position(row["layer"], depth), **row})
    return rows


def layer_roles_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of ``layer_roles_rows`` as a text table: counts, and shares in brackets."""
    def cell(row, role):
        share = row[f"{role}_fraction"]
        return f"{row[role]} ({share:.0%})" if not math.isnan(share) else f"{row[role]}"

    out = [{"model": r["model"], "layer": f"L{r['layer']} ({r['position']})",
            "interpretable": r["n_interpretable"], **{role: cell(r, role) for role in ROLE_ORDER},
            "next-token unconfirmed": r["retokenization_unconfirmed"]} for r in rows]
    return format_table(out, ["model", "layer", "interpretable", *ROLE_ORDER,
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
            customdata=[[("n/a" if math.isnan(s) else f"{s:.0%}"), r["n_interpretable"]]
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


def role_examples(ctx, name: str, per_role: int = 1, seed: int | None = None,
                  top_logits: int = 10) -> dict[str, list[NeuronScore]]:
    """Per role, the best ``per_role`` interpretable neurons of ``name`` by ``RANKING``.

    Next-token (re-tokenization) neurons count only when their direct logit effect ranks an
    explained next token in its top ``top_logits``, as in ``layer_roles``.
    """
    seed = ctx.seed if seed is None else seed
    scores = ctx.scores(name)
    model = ctx.run(name).load_model() if any(
        r.interpretable and r.role == "retokenization" for r in scores.records) else None
    out = {}
    for role in ROLE_ORDER:
        ranked = select_neurons(scores, len(scores.records), seed, role=role)
        if role == "retokenization":
            ranked = [r for r in ranked if min(direct_effect_ranks(
                model, r.layer, r.neuron, list(r.explanation_obj().values))) < top_logits]
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


# --- measurements for the scorecard -------------------------------------------------------------
@dataclass
class RoleShift:
    """Is a role's share higher in one group of layers than in the others?

    ``diff`` is the share in ``layers`` minus the share in the other layers, with Newcombe's
    95% interval; NaN and (-1, 1) when either group has no interpretable neuron.
    """

    role: str
    layers: str  # "first", "last" or "middle"
    count: int
    n: int
    other_count: int
    other_n: int
    diff: float
    lo: float
    hi: float

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else math.nan

    @property
    def other_share(self) -> float:
        return self.other_count / self.other_n if self.other_n else math.nan

    @property
    def direction_agrees(self) -> bool | None:
        """The share is higher where the paper says (None when not measurable)."""
        return None if math.isnan(self.diff) else self.diff > 0

    @property
    def significant(self) -> bool:
        """The 95% interval of the difference excludes 0 on the paper's side."""
        return bool(self.lo > 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share, "other_share": self.other_share,
                "direction_agrees": self.direction_agrees, "significant": self.significant}


def role_shift(rows: Sequence[dict[str, Any]], role: str, layers: str) -> RoleShift:
    """``RoleShift`` of ``role`` in the layers at position ``layers`` vs the rest of a model's
    layers (``rows``: one model's ``layer_roles_rows``)."""
    inside = [r for r in rows if r["position"] == layers]
    outside = [r for r in rows if r["position"] != layers]
    c, n = sum(r[role] for r in inside), sum(r["n_interpretable"] for r in inside)
    oc, on = sum(r[role] for r in outside), sum(r["n_interpretable"] for r in outside)
    diff, lo, hi = difference_interval(c, n, oc, on)
    return RoleShift(role, layers, c, n, oc, on, diff, lo, hi)


@dataclass
class NeuronsMeasurements:
    """Numbers of notebooks 05 and 06 for the scorecard.

    Attributes:
        one_layer: Name of the 1-layer SoLU-LN model looked at (§6.3.1).
        one_layer_interpretable / one_layer_neurons: Its scorer counts (top-20 rule).
        one_layer_kinds: Its interpretable neurons per explanation kind.
        baseline, baseline_interpretable, baseline_neurons: The same for the 1-layer GELU.
        agreement: ``Agreement`` rows of both 1-layer models (interpretable and random).
        deepest: The deepest SoLU-LN model (§6.3.2-6.3.4), or None.
        deepest_roles: Its ``layer_roles_rows``.
        early_detokenization: De-tokenization share, first layer vs the others.
        late_retokenization: Re-tokenization share, last layer vs the others.
        middle_abstract: Abstract share, middle layers vs first and last (None below 3 layers).
    """

    one_layer: str
    one_layer_interpretable: int
    one_layer_neurons: int
    one_layer_kinds: dict[str, int]
    baseline: str
    baseline_interpretable: int
    baseline_neurons: int
    agreement: list[Agreement] = field(default_factory=list)
    deepest: str | None = None
    deepest_roles: list[dict[str, Any]] = field(default_factory=list)
    early_detokenization: RoleShift | None = None
    late_retokenization: RoleShift | None = None
    middle_abstract: RoleShift | None = None

    @property
    def one_layer_fraction(self):
        return proportion(self.one_layer_interpretable, self.one_layer_neurons)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items()
             if k not in ("agreement", "early_detokenization", "late_retokenization",
                          "middle_abstract")}
        d["agreement"] = [a.to_dict() for a in self.agreement]
        for k in ("early_detokenization", "late_retokenization", "middle_abstract"):
            v = getattr(self, k)
            d[k] = v.to_dict() if v is not None else None
        return d


def deepest_model(ctx, act: str = "solu_ln") -> str | None:
    names = [n for n in ctx.names if style.act_of(n) == act and style.depth_of(n) > 1]
    return max(names, key=style.depth_of) if names else None


def neurons_measurements(ctx, one_layer: str = "1L-solu_ln", baseline: str = "1L-gelu",
                         n_random: int = 64, deepest: str | None = None) -> NeuronsMeasurements:
    """The §6.3 numbers at this scale (see ``NeuronsMeasurements``).

    Args:
        ctx: The notebook's ``BookContext``.
        one_layer: The 1-layer model looked at (§6.3.1).
        baseline: Its baseline.
        n_random: Random neurons per model in the logit-agreement reference.
        deepest: The model whose layers are compared (default: the deepest SoLU-LN model).
    """
    s1, sb = ctx.scores(one_layer), ctx.scores(baseline)
    p1, pb = s1.fraction_interpretable(), sb.fraction_interpretable()
    m = NeuronsMeasurements(one_layer, p1.successes, p1.n, kind_counts(s1), baseline,
                            pb.successes, pb.n,
                            agreement=logit_agreement(ctx, [one_layer, baseline], n_random))
    m.deepest = deepest if deepest is not None else deepest_model(ctx)
    if m.deepest is not None:
        rows = layer_roles_rows(ctx, [m.deepest])
        m.deepest_roles = rows
        m.early_detokenization = role_shift(rows, "detokenization", "first")
        m.late_retokenization = role_shift(rows, "retokenization", "last")
        if style.depth_of(m.deepest) >= 3:
            m.middle_abstract = role_shift(rows, "abstract", "middle")
    return m


def role_shift_text(shift: RoleShift | None) -> str:
    """A sentence for a ``RoleShift`` (used by the notebooks' printed summaries)."""
    if shift is None:
        return "not measurable (no such layers)"
    where = {"first": "the first layer", "last": "the last layer",
             "middle": "the middle layers"}[shift.layers]
    if shift.n == 0 or shift.other_n == 0:
        return (f"{shift.role} share in {where}: not measurable ({shift.count}/{shift.n} "
                f"there, {shift.other_count}/{shift.other_n} elsewhere)")
    verdict = ("higher, 95% interval excludes 0" if shift.significant else
               "higher, but the interval includes 0" if shift.direction_agrees else
               "not higher")
    return (f"{shift.role} share in {where}: {shift.count}/{shift.n} = {shift.share:.0%} vs "
            f"{shift.other_count}/{shift.other_n} = {shift.other_share:.0%} elsewhere; "
            f"difference {shift.diff:+.0%} ({shift.lo:+.0%} to {shift.hi:+.0%}): {verdict}")
