"""Chapter 08, "After SoLU: features": gather the sparse dictionaries and their instruments from
the zoo, and present ``solu_repro.paper.s8_features``'s measurements (tables, figures, the
numbers the page glues)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..fmt import pct, points
from ..paper.s8_features import (BASES, COUNTERPART_R, GELU, INTEREST, MODELS, SOLU_LN,
                                 BasisRow, DictionaryRow, FeatureMeasurements)
from . import style
from .tables import markdown_table

BASIS_LABELS = {"neurons": "neurons", "sae mid": "SAE features (hook_mid)",
                "sae post": "SAE features (hook_post)"}


def basis_label(model: str, basis: str) -> str:
    return f"{style.label(model)} {BASIS_LABELS[basis]}"


# --- gathering ----------------------------------------------------------------------------------
def available(ctx) -> bool:
    """Whether the context's scale trains the dictionaries (``zoo.Scale.features``)."""
    from ..zoo import SCALES

    return SCALES[ctx.scale].features


def unavailable_text(ctx) -> str:
    """Why a scale's chapter 8 is empty, and the command that fills it."""
    return (f"The {ctx.scale} scale does not train the sparse dictionaries: the default book has "
            f"no room for them on the slowest CPU seen (README, \"Budget\"). `make book "
            f"SCALE=cpu-features` is the same zoo with them")


def pair_seeds(ctx) -> dict[str, list[str]]:
    """Every seed of the shallowest GELU and SoLU-LN models, seed ``i`` at index ``i``."""
    from ..paper.s6_interpretability import seeds_by_variant
    from ..zoo import seed_of

    seeds = seeds_by_variant(ctx.all_names, min(ctx.depths))
    return {model: sorted(seeds.get(model, []), key=seed_of) for model in MODELS}


def settings_for(ctx, hook: str, *, expansion: int, k: int | None = None,
                 train_tokens: int | None = None):
    """The ``SAESettings`` of one hook at the context's scale (``sae.scale_settings``: the same
    as ``solu-repro features --scale S`` trains), seeded by the context's seed."""
    from ..interp.sae import scale_settings

    return scale_settings(ctx.scale, hook, expansion=expansion, k=k, train_tokens=train_tokens,
                          seed=ctx.seed)


def _mean_f1(probe) -> float:
    f1 = [v for v in probe.best_f1().values() if v == v]
    return float(np.mean(f1)) if f1 else math.nan


def gather_run(ctx, name: str, *, expansion: int = 4, k: int | None = None,
               train_tokens: int | None = None, max_features: int | None = None
               ) -> dict[str, Any]:
    """One run of the pair (``gather``'s work for ``name``; ``book.precompute`` runs it for
    every seed in parallel before the chapter): its neurons and each of its SAEs on the three
    instruments, each SAE's report, decoder alignment and counterparts, all cached."""
    from ..interp import sae as S
    from ..zoo import seed_of

    model = next(m for m, names in pair_seeds(ctx).items() if name in names)
    run = ctx.run(name)
    d_mlp = run.config.model.d_mlp
    n_feat = d_mlp if max_features is None else max_features
    seed = seed_of(name)
    common = dict(seed=ctx.seed, progress=ctx.progress)
    mid = settings_for(ctx, "mid", expansion=expansion, k=k, train_tokens=train_tokens)
    fair_neurons = S.basis_score_features(run, mid, None, max_features=n_feat, **common)
    out: dict[str, Any] = {"bases": [], "dictionaries": [], "alignment": None,
                           "counterparts": {}, "d_mlp": d_mlp}
    out["bases"].append(BasisRow(name, model, seed, "neurons", d_mlp, d_mlp,
                                 ctx.scores(name).fraction_interpretable().fraction,
                                 float(fair_neurons.features_exposed),
                                 _mean_f1(ctx.probe(name))))
    for hook in S.hooks_for(run):
        settings = settings_for(ctx, hook, expansion=expansion, k=k, train_tokens=train_tokens)
        dictionary = S.sae_run(run, settings, progress=ctx.progress)
        judged = S.score_features(run, settings, max_features=n_feat, **common)
        fair = S.basis_score_features(run, settings, "sae", max_features=n_feat, **common)
        probe = S.probe_features(run, settings, max_features=n_feat, **common)
        out["bases"].append(BasisRow(name, model, seed, f"sae {hook}", dictionary.d_sae,
                                     min(n_feat, dictionary.d_sae),
                                     judged.fraction_interpretable().fraction,
                                     float(fair.features_exposed), _mean_f1(probe)))
        cp = S.feature_counterparts(run, settings, **common)
        live = cp.active()  # features active on enough held-out tokens; the dead are left out
        align = S.decoder_alignment(dictionary)[live]
        null = S.alignment_null(dictionary.d_in)
        # each dictionary against the other hook's neurons (GELU's one hook: its own), so the
        # LayerNorm's per-token rescaling lowers the correlations alike in both directions
        other = "mid" if hook == "post" else ("post" if run.config.model.has_mlp_ln else "mid")
        lacking = cp.without_counterpart(COUNTERPART_R, against=other)
        out["counterparts"][hook] = cp
        if hook == "mid":
            out["alignment"] = align
        r = dictionary.report
        out["dictionaries"].append(DictionaryRow(
            name, model, seed, hook, dictionary.d_sae, r.k, r.fve, r.clean_loss,
            r.spliced_loss, r.zero_loss, r.l0, r.dead / r.d_sae,
            float(align.mean()) if len(align) else math.nan, float(null.mean()),
            float((align >= 0.9).mean()) if len(align) else math.nan,
            len(lacking) / len(live) if len(live) else math.nan))
    return out


def gather(ctx, *, expansion: int = 4, k: int | None = None, train_tokens: int | None = None,
           max_features: int | None = None) -> dict[str, Any]:
    """Everything ``s8_features.measure`` and the page read, for every seed of the pair
    (``gather_run``; trained and cached through the zoo's runs). ``max_features``: features the
    judge and the probes read per SAE (None: as many as the model has neurons)."""
    from ..interp import sae as S

    bases: list[BasisRow] = []
    dictionaries: list[DictionaryRow] = []
    if not available(ctx):
        return {"bases": bases, "dictionaries": dictionaries,
                "alignments": {m: [] for m in MODELS}, "null": None, "counterparts": {},
                "why": unavailable_text(ctx)}
    alignments: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    counterparts: dict[str, Any] = {}
    d_mlp = None
    for model, names in pair_seeds(ctx).items():
        for name in names:
            one = gather_run(ctx, name, expansion=expansion, k=k, train_tokens=train_tokens,
                             max_features=max_features)
            bases += one["bases"]
            dictionaries += one["dictionaries"]
            if one["alignment"] is not None:
                alignments[model].append(one["alignment"])
            counterparts.update({f"{name}:{h}": cp for h, cp in one["counterparts"].items()})
            d_mlp = one["d_mlp"]
    return {"bases": bases, "dictionaries": dictionaries, "alignments": alignments,
            "null": S.alignment_null(d_mlp) if d_mlp else None, "counterparts": counterparts,
            "why": ""}


# --- tables -----------------------------------------------------------------------------------
def bases_table(m: FeatureMeasurements) -> str:
    """Every basis of every seed on the three instruments, seed by seed."""
    rows = []
    for r in sorted(m.bases, key=lambda r: (r.seed, MODELS.index(r.model), BASES.index(r.basis))):
        rows.append({"seed": r.seed, "basis": basis_label(r.model, r.basis),
                     "directions": f"{r.n_directions:,}" + (
                         f" ({r.n_judged:,} judged)" if r.n_judged != r.n_directions else ""),
                     "judge: interpretable": pct(r.interpretable),
                     "rotation-fair: mean best r²": f"{r.exposed:.3f}",
                     "probes: mean best F1": f"{r.probe_f1:.3f}"})
    return markdown_table(rows)


def dictionaries_table(m: FeatureMeasurements) -> str:
    """Each SAE: reconstruction, sparsity, dead features, decoder alignment, counterparts."""
    rows = []
    for r in sorted(m.dictionaries, key=lambda r: (r.seed, MODELS.index(r.model), r.hook)):
        rows.append({"seed": r.seed, "model": style.label(r.model), "hook": r.hook,
                     "features": f"{r.d_sae:,} (k={r.k})",
                     "variance explained": pct(r.fve),
                     "loss: clean → spliced": f"{r.loss_clean:.3f} → {r.loss_spliced:.3f}",
                     "loss recovered": pct(r.loss_recovered),
                     "L0": f"{r.l0:.1f}", "dead": pct(r.dead),
                     "mean largest cosine to a neuron": f"{r.alignment:.3f} "
                                                        f"(random {r.alignment_null:.3f})",
                     "cosine ≥ 0.9": pct(r.aligned),
                     f"no neuron of the other hook at r ≥ {COUNTERPART_R}":
                         pct(r.no_counterpart)})
    return markdown_table(rows)


# --- figures ----------------------------------------------------------------------------------
def instruments_figure(m: FeatureMeasurements) -> go.Figure:
    """The four bases (and the SoLU-LN hook_post dictionary) on each instrument: one point per
    seed, the mean as a bar."""
    from plotly.subplots import make_subplots

    panels = (("interpretable", "judge: fraction interpretable", 100, "%"),
              ("exposed", "rotation-fair: mean best r²", 1, ""),
              ("probe_f1", "probes: mean best F1", 1, ""))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[1] for p in panels])
    order = [(mod, b) for mod in MODELS for b in BASES
             if any(r.model == mod and r.basis == b for r in m.bases)]
    for col, (field, _, scale, unit) in enumerate(panels, start=1):
        for mod, b in order:
            rows = [r for r in m.bases if r.model == mod and r.basis == b]
            ys = [scale * getattr(r, field) for r in rows]
            x = f"{style.label(mod)}<br>{'neurons' if b == 'neurons' else b.replace('sae', 'SAE')}"
            fig.add_trace(go.Bar(x=[x], y=[float(np.mean(ys))], marker_color=style.color(mod),
                                 opacity=0.35 if b == "neurons" else 0.7, showlegend=False,
                                 hovertemplate="%{y:.3g}<extra>mean</extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=[x] * len(ys), y=ys, mode="markers",
                                     text=[r.name for r in rows], showlegend=False,
                                     marker=dict(color="#222", size=7),
                                     hovertemplate="%{text}: %{y:.3g}" + unit + "<extra></extra>"),
                          row=1, col=col)
    fig.update_layout(title="Four bases on the book's three instruments (points: seeds)",
                      height=420, template="plotly_white", margin=dict(t=80))
    return fig


def alignment_figure(alignments: Mapping[str, Sequence[np.ndarray]], null: np.ndarray | None
                     ) -> go.Figure:
    """Each feature's largest |cosine| to one neuron, pooled over seeds, GELU against SoLU-LN
    (``hook_mid`` dictionaries), with random unit directions as the null."""
    fig = style.figure("How close each SAE feature's decoder direction comes to a single "
                       "neuron (hook_mid)", "largest |cosine| to a basis vector",
                       "share of features", height=400)
    bins = dict(start=0.0, end=1.0, size=0.025)
    for model, arrays in alignments.items():
        if not arrays:
            continue
        x = np.concatenate([np.asarray(a, dtype=float) for a in arrays])
        fig.add_trace(go.Histogram(x=x, xbins=bins, histnorm="probability", opacity=0.6,
                                   marker_color=style.color(model),
                                   name=f"{style.label(model)} ({len(arrays)} seeds)"))
    if null is not None and len(null):
        fig.add_trace(go.Histogram(x=np.asarray(null, dtype=float), xbins=bins,
                                   histnorm="probability", opacity=0.5, marker_color="#999",
                                   name="random unit directions"))
    fig.update_layout(barmode="overlay")
    return fig


def seed_figure(m: FeatureMeasurements) -> go.Figure:
    """The units of the three tests: one point per seed pair (or SoLU-LN seed), with the 95%
    interval of the mean and the smallest effect of interest."""
    fig = style.figure("The three tests, one point per seed", "",
                       "points (cosine, F1 or share of features)", height=380)
    for label, test in (("SoLU-LN - GELU: alignment", m.alignment),
                        ("GELU's gain - SoLU-LN's gain", m.dictionary_gain),
                        ("hook_post - hook_mid: no counterpart", m.hidden)):
        ys = [100 * v for v in test.values]
        fig.add_trace(go.Scatter(x=[label] * len(ys), y=ys, mode="markers", name=label,
                                 marker=dict(size=9, color="#444"),
                                 hovertemplate="%{y:+.1f} pts<extra></extra>"))
        if math.isfinite(test.effect):
            fig.add_trace(style.interval_marker(label, test))
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    for y in (100 * INTEREST, -100 * INTEREST):
        fig.add_hline(y=y, line=dict(color="#555", dash="dot", width=1))
    fig.update_layout(showlegend=False)
    return fig


# --- sentences ---------------------------------------------------------------------------------
def _mean(rows: Sequence[Any], field: str) -> float:
    v = [getattr(r, field) for r in rows if getattr(r, field) == getattr(r, field)]
    return float(np.mean(v)) if v else math.nan


def glue_values(m: FeatureMeasurements) -> dict[str, Any]:
    """The numbers the page's text quotes (every key, "n/a" where nothing was measured)."""
    out: dict[str, Any] = {}
    for model in MODELS:
        for hook in ("mid", "post"):
            key = f"{'gelu' if model == GELU else 'solu'}_{hook}"
            rows = [r for r in m.dictionaries if r.model == model and r.hook == hook]
            if not rows:
                for what in ("fve", "recovered", "l0", "dead", "align"):
                    out[f"{what}_{key}"] = "n/a"
                continue
            out[f"fve_{key}"] = pct(_mean(rows, "fve"))
            out[f"recovered_{key}"] = pct(float(np.nanmean([r.loss_recovered for r in rows])))
            out[f"l0_{key}"] = f"{_mean(rows, 'l0'):.1f}"
            out[f"dead_{key}"] = pct(_mean(rows, "dead"))
            out[f"align_{key}"] = f"{_mean(rows, 'alignment'):.3f}"
    nulls = [r.alignment_null for r in m.dictionaries]
    out["align_null"] = f"{float(np.mean(nulls)):.3f}" if nulls else "n/a"
    out["n_seeds"] = len(m.seeds)
    for model in MODELS:
        key = "gelu" if model == GELU else "solu"
        g = m.gains.get(model, [])
        out[f"gain_{key}"] = points(float(np.mean(g))) if g else "n/a"
    for key, test in (("alignment_test", m.alignment), ("gain_test", m.dictionary_gain),
                      ("hidden_test", m.hidden)):
        # with no seed at all (a scale without dictionaries) the reason, not an empty interval
        out[key] = test.interval_text if test.n else test.why or "nothing measured"
    return out


# --- features after the LayerNorm, in the viewer ---------------------------------------------------
def hidden_examples(ctx, gathered: Mapping[str, Any], *, n: int, expansion: int,
                    k: int | None = None, train_tokens: int | None = None
                    ) -> tuple[str | None, Any, list[dict[str, Any]]]:
    """The first SoLU-LN seed's ``n`` least matched ``hook_post`` features (no ``hook_mid``
    neuron at |r| >= ``COUNTERPART_R``): its name, the SAE's settings and the features."""
    names = pair_seeds(ctx)[SOLU_LN]
    settings = settings_for(ctx, "post", expansion=expansion, k=k, train_tokens=train_tokens)
    for name in names:
        cp = gathered["counterparts"].get(f"{name}:post")
        if cp is not None:
            return name, settings, cp.examples(n, COUNTERPART_R)
    return None, settings, []


def examples_table(examples: Sequence[Mapping[str, Any]]) -> str:
    """The features shown in the viewer, with their best single-neuron matches."""
    if not examples:
        return "No `hook_post` feature without a `hook_mid` counterpart to show."
    return markdown_table([{"feature": e["feature"],
                            "best hook_mid neuron (r)": f"{e['mid_neuron']} ({e['mid_r']:.2f})",
                            "best hook_post neuron (r)":
                                f"{e['post_neuron']} ({e['post_r']:.2f})",
                            "random rotation of hook_mid (best r)": f"{e['rotated_r']:.2f}",
                            "active on": pct(e["frequency"])} for e in examples])
