"""Paper §6.3: looking at neurons the scorer picked, and what layers of deeper models do.

Notebooks 05 (one-layer neurons, §6.3.1, Figure 5) and 06 (neurons across layers,
§6.3.2-6.3.5) call these functions. Each computes its measurement once
(``one_layer_measurements``, ``layers_measurements``) and scores its registry claims from it
(``chapter5_claims``: ``logit_agreement``; ``chapter6_claims``: ``early_detokenization``,
``late_retokenization``, ``middle_abstract``), which the notebook saves for the scorecard
(``claims.record``).

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
  model: the baseline contrast of notebook 05 is not cherry-picked, and it is the control of
  the logit-agreement claim.

Layer roles are ``interp.analysis.LAYER_ROLES``, named for what the explanation says (the
current token, the token in context, a token class or text pattern, the text's source, the
next token).

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

from ..interp.analysis import LAYER_ROLES, ROLE_ORDER, direct_effect_ranks, layer_roles
from ..interp.explanations import KINDS
from ..interp.score import NeuronScore, NeuronScores
from ..interp.stats import SeedInterval, difference_interval, seed_mean_interval
from ..interp.view import logit_effect_html, neuron_html
from . import style
from ..interp.ranking import RANKING, explanation_kind, rank_neurons, spectrum_f1, spread_over_kinds
from .neuron_cards import ROLE_LABELS, neuron_card_html, neuron_cards_html, side_by_side_html, verdict_html
from ..fmt import num as _fmt
from ..paper.claim import NOT_TESTABLE, PARTLY, Claim, at_most, directional
from ..paper.registry import scored


ROLE_COLUMNS = {"token": "token", "detokenization": "de-tok", "token_class": "token class",
                "source": "source", "retokenization": "re-tok"}
"""Short headers of the layer-roles table."""
ROLE_COLORS = {"token": "#8c8c8c", "detokenization": "#1f77b4", "token_class": "#9467bd",
               "source": "#2ca02c", "retokenization": "#d62728"}
if set(ROLE_LABELS) != set(ROLE_ORDER) or set(ROLE_COLORS) != set(ROLE_ORDER):
    raise RuntimeError("every role of ROLE_ORDER needs a label and a colour")
UNCONFIRMED_LABEL = "next token, not pushed by the neuron's logit effect"



# --- choosing neurons --------------------------------------------------------------------------












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
            and (role is None or LAYER_ROLES.get(explanation_kind(r)) == role)]
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
            counts[explanation_kind(r)] += 1
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
             "kind": explanation_kind(r), "coverage": f"{r.coverage:.2f}",
             "lift": _fmt(r.lift, ".0f"), "precision": _fmt(r.precision, ".2f"),
             "recall": _fmt(r.recall, ".2f"), "explanation": _clip(r.text, 60)}
            for r in records]
    return format_table(rows, ["neuron", "verdict", "kind", "coverage", "lift", "precision",
                               "recall", "explanation"])




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
AGREEMENT_CHUNK = 256
"""Neurons whose logit effects ``next_token_agreement`` holds at once (chunk x vocab floats)."""


def direct_logit_effects(model, layer: int, neurons: Sequence[int]) -> torch.Tensor:
    """``interp.view.direct_logit_effect`` of several neurons of one layer at once.

    Returns:
        ``(len(neurons), d_vocab)`` float32 tensor on the CPU, row ``i`` the change in the
        next-token logits per unit of neuron ``neurons[i]``'s ``hook_post`` (direct path).
    """
    cfg = model.cfg
    bad = [n for n in neurons if not 0 <= n < cfg.d_mlp]
    if not 0 <= layer < cfg.n_layers or bad:
        raise IndexError(f"neurons {bad} of layer {layer} out of range: the model has "
                         f"{cfg.n_layers} layer(s) of {cfg.d_mlp} neurons")
    with torch.no_grad():
        w_out = model.blocks[layer].mlp.W_out[list(neurons)].float()  # (k, d_model)
        w_out = w_out - w_out.mean(dim=1, keepdim=True)
        effect = (w_out * model.ln_final.w.float()) @ model.W_U.float()  # (k, d_vocab)
    return effect.detach().cpu()


def token_percentiles(effects: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Percentile of token ``tokens[i, j]`` among all tokens ranked by ``effects[i]``.

    ``(tokens below it + half of the others tied with it) / (vocab - 1)``: 1 for the token
    the neuron pushes most, 0 for the one it suppresses most, 0.5 on average for a token
    unrelated to the neuron. Costs a sort of each row (no ``k x m x vocab`` comparison).

    Args:
        effects: ``(k, vocab)`` logit effects.
        tokens: ``(k, m)`` token ids.
    """
    vocab = effects.shape[1]
    x = effects.gather(1, tokens).contiguous()
    ordered = effects.sort(dim=1).values.contiguous()
    below = torch.searchsorted(ordered, x, side="left")
    upto = torch.searchsorted(ordered, x, side="right")
    return (below + (upto - below - 1) / 2).double() / max(vocab - 1, 1)


def next_token_agreement(model, corpus, harvest, records: Sequence[NeuronScore],
                         hook: str = "post") -> dict[tuple[int, int], float]:
    """Per neuron, how strongly its direct logit effect promotes the tokens that actually
    follow its strongest firings (paper §6.3.1: check the dataset examples against the logit
    effect).

    For each of the neuron's top firings on ``hook`` (``hook_post`` by default: the logit
    effect is per unit of ``hook_post``, and its top firings are where the neuron pushes
    hardest), the percentile of the true next token among all tokens, ranked by the neuron's
    direct logit effect (``token_percentiles``: 1 = the token it pushes most, 0 = the one it
    suppresses most). The mean over firings is reported; a neuron unrelated to what comes next
    scores about 0.5. NaN for a neuron with no firing followed by a token.

    The logit effects of a layer's neurons are computed together, ``AGREEMENT_CHUNK`` at a
    time, so the cost per neuron is one row of ``W_out @ W_U``, one sort of the vocabulary and
    reading the tokens after its (at most ``k``) top firings.

    Exact for one-layer models up to the final LayerNorm's scale; for deeper models it is
    the direct path only.
    """
    split = corpus.split(harvest.meta.get("split", "val"))
    out: dict[tuple[int, int], float] = {}
    following: dict[int, dict[int, list[int]]] = {}
    for r in records:
        if (r.layer, r.neuron) in out or r.neuron in following.get(r.layer, {}):
            continue
        positions = [e.position(harvest.n_ctx) + 1
                     for e in harvest.top_examples(r.layer, r.neuron, hook)]
        nxt = [int(split.window(p, 1)[0]) for p in positions if p < split.n_tokens]
        if nxt:
            following.setdefault(r.layer, {})[r.neuron] = nxt
        else:
            out[(r.layer, r.neuron)] = math.nan
    for layer, by_neuron in following.items():
        neurons = list(by_neuron)
        for start in range(0, len(neurons), AGREEMENT_CHUNK):
            chunk = neurons[start:start + AGREEMENT_CHUNK]
            width = max(len(by_neuron[n]) for n in chunk)
            # Pad each neuron's next tokens to a common width; the mask drops the padding.
            tokens = torch.tensor([by_neuron[n] + by_neuron[n][:1] * (width - len(by_neuron[n]))
                                   for n in chunk], dtype=torch.int64)
            mask = torch.tensor([[j < len(by_neuron[n]) for j in range(width)] for n in chunk])
            pct = token_percentiles(direct_logit_effects(model, layer, chunk), tokens)
            means = (pct * mask).sum(dim=1) / mask.sum(dim=1)
            for n, v in zip(chunk, means.tolist()):
                out[(layer, n)] = float(v)
    return out


@dataclass
class Agreement:
    """Summary of ``next_token_agreement`` over a group of neurons of one model."""

    model: str
    group: str  # "interpretable" or "random"
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
    sample of ``n_random`` live neurons (``random_neurons``: the control, the same draw for
    every model; it may include interpretable neurons)."""
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


@dataclass
class OneLayerMeasurements:
    """Numbers of notebook 05 (§6.3.1), computed once by ``one_layer_measurements``.

    Attributes:
        model: The one-layer model looked at (seed 0), e.g. "1L-solu_ln".
        seeds: Every seed of it, seed 0 first (the claim's seed-level interval runs over
            these).
        baseline: Its GELU baseline (seed 0; shown beside it, not part of the claim).
        n_random: Size of each model's random control sample.
        interpretable, neurons: Per model (every seed and the baseline), the judge's
            interpretable neurons (top-20 rule) and all neurons.
        kinds: Interpretable neurons of ``model`` per explanation kind.
        agreement: ``logit_agreement`` rows ("interpretable" and "random") of every seed and
            of the baseline.
    """

    model: str
    seeds: list[str]
    baseline: str
    n_random: int
    interpretable: dict[str, int]
    neurons: dict[str, int]
    kinds: dict[str, int]
    agreement: list[Agreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["agreement"] = [a.to_dict() for a in self.agreement]
        return d


def one_layer_measurements(ctx, model: str = "1L-solu_ln", baseline: str = "1L-gelu",
                           n_random: int = 64) -> OneLayerMeasurements:
    """The §6.3.1 numbers: the judge's counts and the logit agreement of every seed of
    ``model`` and of ``baseline`` (seed 0)."""
    seeds = ctx.seeds(model)
    names = seeds + [baseline]
    tops = {name: ctx.scores(name).fraction_interpretable() for name in names}
    return OneLayerMeasurements(
        model, seeds, baseline, n_random, {n: p.successes for n, p in tops.items()},
        {n: p.n for n, p in tops.items()}, kind_counts(ctx.scores(model)),
        logit_agreement(ctx, names, n_random))


def seed_agreement_differences(agreement: Sequence[Agreement],
                               seeds: Sequence[str]) -> dict[str, float | None]:
    """Per seed, the median agreement of its interpretable neurons minus that of its random
    control (None when either group is empty)."""
    groups = {(a.model, a.group): a for a in agreement}
    out: dict[str, float | None] = {}
    for s in seeds:
        good, control = groups.get((s, "interpretable")), groups.get((s, "random"))
        ok = good is not None and control is not None and good.n > 0 and control.n > 0
        out[s] = good.median - control.median if ok else None
    return out


def _seed_interval_text(interval: SeedInterval, fmt: str = "+.2f") -> str:
    if interval.n_seeds < 2:
        return (f"{format(interval.estimate, fmt)} (1 seed: no interval, so at most "
                f"'{PARTLY}')")
    return f"{interval.format(fmt)}, {interval.method}"


def logit_agreement_claim(agreement: Sequence[Agreement], seeds: Sequence[str],
                          n_random: int) -> Claim:
    """§6.3.1 ``logit_agreement``: interpretable neurons' agreement minus the random
    control's, per seed of the one-layer SoLU-LN model; a t interval over seeds.

    Reproduced if the seed interval is above 0; direction only if the seed mean is; not
    reproduced otherwise; not testable if no seed has an interpretable neuron.
    """
    groups = {(a.model, a.group): a for a in agreement}
    diffs = seed_agreement_differences(agreement, seeds)
    usable = [s for s in seeds if diffs[s] is not None]
    control = (f"the control, a seeded random sample of {n_random} live neurons of the same "
               "model (interpretable or not) drawn the same way for every seed")
    values: dict[str, Any] = {
        "n_random": n_random,
        "seeds": {s: {"interpretable": groups[(s, "interpretable")].to_dict()
                      if (s, "interpretable") in groups else None,
                      "random": groups[(s, "random")].to_dict()
                      if (s, "random") in groups else None,
                      "difference": diffs[s]} for s in seeds}}
    if not usable:
        return scored("logit_agreement", f"no interpretable neuron in any of {len(seeds)} "
                      "seeds", NOT_TESTABLE,
                      f"Not testable in this build: the judge calls no neuron of the one-layer "
                      f"SoLU-LN model interpretable in any of its {len(seeds)} seeds, so there "
                      f"is nothing to set against {control}.", values=values)
    interval = seed_mean_interval([diffs[s] for s in usable])
    values["interval"] = interval.to_dict()
    good = float(np.mean([groups[(s, "interpretable")].median for s in usable]))
    rand = float(np.mean([groups[(s, "random")].median for s in usable]))
    verdict = directional(interval.estimate, interval.lo, interval.hi)
    skipped = [s for s in seeds if diffs[s] is None]
    note = (f" ({', '.join(skipped)} left out: no interpretable neuron)" if skipped else "")
    per_seed = ", ".join(f"{diffs[s]:+.2f}" for s in usable)
    ours = (f"interpretable minus random control {_seed_interval_text(interval)}; median "
            f"percentile {good:.2f} vs {rand:.2f}")
    if len(usable) == 1:
        average = f"the median over {usable[0]}'s neurons"
        result = (f"Interpretable minus control: {interval.estimate:+.2f} from one seed (no "
                  f"interval, so at most '{PARTLY}')")
    else:
        average = f"the mean over {len(usable)} seeds of each seed's median"
        result = (f"Interpretable minus control, one difference per seed ({per_seed}): mean "
                  f"{interval.format('+.2f')}, {interval.method}")
    sentence = (
        f"At each neuron's strongest firings, the token that actually comes next sits at a "
        f"median percentile of {good:.2f} of the neuron's direct logit effect for the judge's "
        f"interpretable neurons of the one-layer SoLU-LN model, against {rand:.2f} for "
        f"{control} (0.5: the logit effect unrelated to what follows; {average}). "
        f"{result}{note}.")
    return scored("logit_agreement", ours, verdict, sentence, values=values)


def chapter5_claims(m: OneLayerMeasurements) -> list[Claim]:
    """The registry claims of notebook 05 ("05-one-layer-neurons"): ``logit_agreement``."""
    return [logit_agreement_claim(m.agreement, m.seeds, m.n_random)]


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
            "interpretable": r["n_interpretable"],
            **{ROLE_COLUMNS[role]: cell(r, role) for role in ROLE_ORDER},
            "next-token unconfirmed": r["retokenization_unconfirmed"]} for r in rows]
    return format_table(out, ["model", "layer", "interpretable",
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
        r.interpretable and LAYER_ROLES.get(explanation_kind(r)) == "retokenization"
        for r in scores.records) else None
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


# --- chapter 6's measurement and claims (§6.3.2-6.3.4) ---------------------------------------
@dataclass
class RoleShift:
    """Is a role's share higher in one group of neurons than in another?

    ``count / n`` of the group (``layers`` of a model) against ``other_count / other_n`` of
    ``versus``; ``of`` says what ``n`` counts ("interpretable neurons" for a comparison within
    a model, "neurons" for one between models of the same size). ``diff`` is the first share
    minus the second with Newcombe's 95% interval over neurons; NaN and (-1, 1) when either
    group is empty.
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
    versus: str = "the other layers"
    of: str = "interpretable neurons"

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else math.nan

    @property
    def other_share(self) -> float:
        return self.other_count / self.other_n if self.other_n else math.nan

    @property
    def measurable(self) -> bool:
        return self.n > 0 and self.other_n > 0

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
    """``RoleShift`` of ``role`` among the interpretable neurons of the layers at position
    ``layers`` vs the rest of a model's layers (``rows``: one model's ``layer_roles_rows``)."""
    inside = [r for r in rows if r["position"] == layers]
    outside = [r for r in rows if r["position"] != layers]
    c, n = sum(r[role] for r in inside), sum(r["n_interpretable"] for r in inside)
    oc, on = sum(r[role] for r in outside), sum(r["n_interpretable"] for r in outside)
    diff, lo, hi = difference_interval(c, n, oc, on)
    versus = {"first": "the later layers", "last": "the earlier layers",
              "middle": "the first and last layers"}[layers]
    return RoleShift(role, layers, c, n, oc, on, diff, lo, hi, versus=versus)


def first_layer_comparison(rows: Sequence[dict[str, Any]], other_rows: Sequence[dict[str, Any]],
                           role: str = "detokenization") -> RoleShift:
    """``role``'s share of *all* first-layer neurons (dead ones included) of one model against
    another's (``layer_roles_rows`` of each): does the first model's first layer hold more
    neurons of that role? The two models have layers of the same size, so this compares
    counts; a share among interpretable neurons would hide a model that simply has more of
    them."""
    first = next(r for r in rows if r["layer"] == 0)
    other = next(r for r in other_rows if r["layer"] == 0)
    diff, lo, hi = difference_interval(first[role], first["n_neurons"], other[role],
                                       other["n_neurons"])
    return RoleShift(role, "first", first[role], first["n_neurons"], other[role],
                     other["n_neurons"], diff, lo, hi,
                     versus=f"{other.get('model', 'the baseline')}'s first layer", of="neurons")


def deepest_model(ctx, act: str = "solu_ln") -> str | None:
    """The deepest seed-0 model of activation ``act`` with more than one layer (None: none)."""
    names = [n for n in ctx.names if style.act_of(n) == act and style.depth_of(n) > 1]
    return max(names, key=style.depth_of) if names else None


def deepest_pair(ctx) -> tuple[str, str] | None:
    """The deepest multi-layer SoLU-LN model and the GELU model of the same depth (seed 0)."""
    depths = sorted({style.depth_of(n) for n in ctx.names if style.depth_of(n) > 1},
                    reverse=True)
    for depth in depths:
        solu, gelu = f"{depth}L-solu_ln", f"{depth}L-gelu"
        if solu in ctx.names and gelu in ctx.names:
            return solu, gelu
    return None


@dataclass
class LayersMeasurements:
    """Numbers of notebook 06 (§6.3.2-6.3.4), computed once by ``layers_measurements``.

    Attributes:
        solu, gelu: The deepest multi-layer SoLU-LN model and its GELU baseline of the same
            depth (None: no multi-layer pair). One seed each.
        roles: ``layer_roles_rows`` of both.
        early_detokenization: De-tokenization share of all first-layer neurons, SoLU-LN vs
            GELU (§6.3.2: SoLU helps early layers compared with the baseline).
        late_retokenization: Re-tokenization share of the SoLU-LN model's interpretable
            neurons, last layer vs the others (§6.3.3).
        middle_token_class: Token-class share of its interpretable neurons, middle layers vs
            first and last (§6.3.4 as far as the explanation family reaches; None below 3
            layers).
    """

    solu: str | None
    gelu: str | None
    roles: list[dict[str, Any]] = field(default_factory=list)
    early_detokenization: RoleShift | None = None
    late_retokenization: RoleShift | None = None
    middle_token_class: RoleShift | None = None

    def model_rows(self, name: str | None) -> list[dict[str, Any]]:
        return [r for r in self.roles if r["model"] == name]

    @property
    def depth(self) -> int:
        return style.depth_of(self.solu) if self.solu else 0

    def to_dict(self) -> dict[str, Any]:
        d = {"solu": self.solu, "gelu": self.gelu, "roles": self.roles}
        for k in ("early_detokenization", "late_retokenization", "middle_token_class"):
            v = getattr(self, k)
            d[k] = v.to_dict() if v is not None else None
        return d


def layers_measurements(ctx, pair: tuple[str, str] | None = None,
                        rows: Sequence[dict[str, Any]] | None = None) -> LayersMeasurements:
    """The §6.3.2-6.3.4 comparisons of the deepest SoLU-LN/GELU pair (``deepest_pair``).

    Args:
        ctx: The notebook's ``BookContext``.
        pair: (SoLU-LN model, GELU model of the same depth), default ``deepest_pair(ctx)``.
        rows: ``layer_roles_rows`` already computed (they must include both models); computed
            here if None.
    """
    pair = pair if pair is not None else deepest_pair(ctx)
    if pair is None:
        return LayersMeasurements(None, None)
    solu, gelu = pair
    if rows is None or not {solu, gelu} <= {r["model"] for r in rows}:
        rows = layer_roles_rows(ctx, [solu, gelu])
    m = LayersMeasurements(solu, gelu, [dict(r) for r in rows if r["model"] in pair])
    solu_rows = m.model_rows(solu)
    m.early_detokenization = first_layer_comparison(solu_rows, m.model_rows(gelu))
    m.late_retokenization = role_shift(solu_rows, "retokenization", "last")
    if style.depth_of(solu) >= 3:
        m.middle_token_class = role_shift(solu_rows, "token_class", "middle")
    return m


def shift_verdict(shift: RoleShift | None) -> str:
    """The directional rule on the 95% interval over neurons, capped at direction only: the
    deeper models have one seed, and 'reproduced' needs seeds (``claims.SEED_RULE``); not
    testable when a group is empty or missing."""
    if shift is None or not shift.measurable:
        return NOT_TESTABLE
    return at_most(directional(shift.diff, shift.lo, shift.hi))


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _shift_numbers(shift: RoleShift) -> str:
    return (f"{shift.count}/{shift.n} = {_pct(shift.share)} against {shift.other_count}/"
            f"{shift.other_n} = {_pct(shift.other_share)} in {shift.versus}; difference "
            f"{shift.diff:+.1%} [{shift.lo:+.1%}, {shift.hi:+.1%}]")


ONE_SEED = ("95% Newcombe interval over neurons; the zoo has one seed of each multi-layer "
            "model, so it does not cover seed-to-seed variation")


def early_detokenization_claim(m: LayersMeasurements) -> Claim:
    """§6.3.2: the SoLU-LN model's first layer holds more de-tokenization neurons than the
    GELU model's of the same depth."""
    shift = m.early_detokenization
    values = {"solu": m.solu, "gelu": m.gelu,
              "shift": shift.to_dict() if shift is not None else None}
    if shift is None:
        return scored("early_detokenization", "no multi-layer SoLU-LN/GELU pair",
                      NOT_TESTABLE, "Not testable: the zoo has no multi-layer SoLU-LN model "
                      "with a GELU model of the same depth.", values=values)
    firsts = [r for r in m.roles if r["layer"] == 0]
    interpretable = {r["model"]: r["n_interpretable"] for r in firsts}
    values["first_layer_interpretable"] = interpretable
    if not shift.measurable or not any(interpretable.values()):
        return scored("early_detokenization", f"no interpretable first-layer neuron in "
                      f"{m.solu} or {m.gelu}", NOT_TESTABLE,
                      f"Not testable in this build: the judge calls no first-layer neuron of "
                      f"{m.solu} or {m.gelu} interpretable, so neither can show "
                      "de-tokenization neurons.", values=values)
    verdict = shift_verdict(shift)
    ours = f"{m.solu} minus {m.gelu}, first layer: {_shift_numbers(shift)} (one seed)"
    sentence = (
        f"De-tokenization neurons (an interpretable previous-token or bigram explanation) "
        f"make up {shift.count}/{shift.n} = {_pct(shift.share)} of the first-layer neurons "
        f"of {m.solu}, against {shift.other_count}/{shift.other_n} = "
        f"{_pct(shift.other_share)} of those of {m.gelu}, the GELU model of the same depth; "
        f"SoLU-LN minus GELU {shift.diff:+.1%} [{shift.lo:+.1%}, {shift.hi:+.1%}] "
        f"({ONE_SEED}).")
    return scored("early_detokenization", ours, verdict, sentence, values=values)


def late_retokenization_claim(m: LayersMeasurements) -> Claim:
    """§6.3.3: the last layer of the deepest SoLU-LN model holds a larger share of
    re-tokenization neurons than its other layers."""
    shift = m.late_retokenization
    values = {"model": m.solu, "shift": shift.to_dict() if shift is not None else None}
    if shift is None:
        return scored("late_retokenization", "no multi-layer SoLU-LN model", NOT_TESTABLE,
                      "Not testable: the zoo has no multi-layer SoLU-LN model.", values=values)
    if not shift.measurable:
        return scored("late_retokenization", f"{m.solu}: {shift.n} interpretable neurons in "
                      f"the last layer, {shift.other_n} in the others", NOT_TESTABLE,
                      f"Not testable in this build: the judge finds {shift.n} interpretable "
                      f"neurons in the last layer of {m.solu} and {shift.other_n} in its "
                      "other layers, and a share needs some in both.", values=values)
    ours = f"{m.solu}, last layer: {_shift_numbers(shift)} (one seed)"
    sentence = (
        f"Re-tokenization neurons (a next-token explanation that the neuron's own direct "
        f"logit effect confirms) are {shift.count}/{shift.n} = {_pct(shift.share)} of the "
        f"interpretable neurons in the last layer of {m.solu}, against "
        f"{shift.other_count}/{shift.other_n} = {_pct(shift.other_share)} in its earlier "
        f"layers; difference {shift.diff:+.1%} [{shift.lo:+.1%}, {shift.hi:+.1%}] "
        f"({ONE_SEED}).")
    return scored("late_retokenization", ours, shift_verdict(shift), sentence, values=values)


def middle_token_class_claim(m: LayersMeasurements) -> Claim:
    """§6.3.4 (registry id ``middle_abstract``): the middle layers of the deepest SoLU-LN
    model hold a larger share of token-class neurons than its first and last layers. What is
    measured is the token-class role (a class of tokens or a text pattern), the nearest the
    explanation family comes to the paper's abstract features."""
    shift = m.middle_token_class
    values = {"model": m.solu, "role": "token_class",
              "shift": shift.to_dict() if shift is not None else None}
    if shift is None:
        why = ("the zoo has no multi-layer SoLU-LN model" if m.solu is None else
               f"{m.solu} has {m.depth} layers, so no middle layer")
        return scored("middle_abstract", f"no middle layer ({why})", NOT_TESTABLE,
                      f"Not testable: {why}.", values=values)
    if not shift.measurable:
        return scored("middle_abstract", f"{m.solu}: {shift.n} interpretable neurons in the "
                      f"middle layers, {shift.other_n} in the first and last", NOT_TESTABLE,
                      f"Not testable in this build: the judge finds {shift.n} interpretable "
                      f"neurons in the middle layers of {m.solu} and {shift.other_n} in its "
                      "first and last layers, and a share needs some in both.", values=values)
    middle = ", ".join(f"L{r['layer']}" for r in m.model_rows(m.solu)
                       if r["position"] == "middle")
    ours = f"{m.solu}, middle layers ({middle}), token class: {_shift_numbers(shift)} (one seed)"
    sentence = (
        f"Token-class neurons (an interpretable explanation that is a class of tokens or a "
        f"text pattern: digits, numbers, capitalized words, punctuation, a year, "
        f"indentation, ...) are {shift.count}/{shift.n} = {_pct(shift.share)} of the "
        f"interpretable neurons in the middle layers ({middle}) of {m.solu}, against "
        f"{shift.other_count}/{shift.other_n} = {_pct(shift.other_share)} in its first and "
        f"last layers; difference {shift.diff:+.1%} [{shift.lo:+.1%}, {shift.hi:+.1%}] "
        f"({ONE_SEED}). This measures token classes, not the paper's abstract features "
        f"(numbers of people, clauses about music), which the explanation family cannot "
        f"express.")
    return scored("middle_abstract", ours, shift_verdict(shift), sentence, values=values)


def chapter6_claims(m: LayersMeasurements) -> list[Claim]:
    """The registry claims of notebook 06 ("06-neurons-across-layers"):
    ``early_detokenization``, ``late_retokenization`` and ``middle_abstract``."""
    return [early_detokenization_claim(m), late_retokenization_claim(m),
            middle_token_class_claim(m)]
