"""Paper §6.4, Figure 9: are weak firings after SoLU's extra LayerNorm less often about the
neuron's feature than before it?

The paper had one author label about a thousand examples of one neuron ("left"/"right") at
every activation level, before and after the LN, and found post-LN examples "much more
likely to have unrelated activations in the low-activation regime". Here the same count is
made mechanically over many neurons: for every neuron the scorer calls interpretable (on
``hook_mid``), examples are drawn in each band of its activation (10 equal bands of
``(0, max]``) of ``hook_mid`` and, separately, of ``hook_post``, and an example is
*inconsistent* when the scorer's explanation of the neuron does not hold there
(``solu_repro.interp.analysis.ln_consistency``). Counts are pooled over neurons and models;
intervals are 95% Wilson intervals on the pooled counts (examples of one neuron are not
independent, so they are, if anything, too narrow).

Notebook 07 calls these functions; the scorecard calls ``layernorm_measurements``.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import plotly.graph_objects as go

from ..interp.analysis import BandRow, ln_consistency
from ..interp.explanations import VocabTables
from ..interp.stats import difference_interval, wilson_interval
from . import style
from .neurons import format_table, rank_neurons, side_by_side_html, verdict_html

HOOK_LABELS = {"mid": "before the LN (hook_mid)", "post": "after the LN (hook_post)"}
LOW_BANDS_UP_TO = 0.3  # "low-activation regime": bands within 0-30% of the neuron's max
# Interpretable neurons sampled per model (seeded): ~7 s of counting each on 2 CPU cores, and
# a few thousand examples per band group give intervals of about +-0.02.
MAX_NEURONS = 100

_CACHE: dict[tuple, dict[str, list[BandRow]]] = {}


def solu_ln_models(ctx) -> list[str]:
    """The zoo's SoLU-LN models (every depth), in zoo order."""
    return [n for n in ctx.names if style.act_of(n) == "solu_ln"]


def band_rows_by_model(ctx, names: Sequence[str], *, n_bands: int = 10, per_band: int = 20,
                       max_neurons: int | None = MAX_NEURONS) -> dict[str, list[BandRow]]:
    """``ln_consistency`` of each model (cached for the context's scale, runs and seed).

    Args:
        ctx: The notebook's ``BookContext``.
        names: Models with the extra LN (``*_ln``).
        n_bands: Equal bands of ``(0, max]`` per hook.
        per_band: Examples drawn per band and neuron.
        max_neurons: At most this many interpretable neurons per model (seeded choice;
            None: all of them).
    """
    out = {}
    for name in names:
        key = (ctx.scale, str(ctx.runs_dir), ctx.seed, name, n_bands, per_band, max_neurons)
        if key not in _CACHE:
            run = ctx.run(name)
            if not run.config.model.has_mlp_ln:
                raise ValueError(f"{name} has no LayerNorm after its activation: hook_post is "
                                 "hook_mid, there is nothing to compare")
            corpus = run.corpus()
            _CACHE[key] = ln_consistency(ctx.harvest(name), ctx.scores(name),
                                         corpus.split("val"), VocabTables(corpus.tokenizer),
                                         n_bands=n_bands, per_band=per_band,
                                         max_neurons=max_neurons, seed=ctx.seed)
        out[name] = _CACHE[key]
    return out


def pool_band_rows(by_model: dict[str, list[BandRow]]) -> list[BandRow]:
    """Sum the counts of the same (hook, band) over models (``n_neurons`` summed too)."""
    pooled: dict[tuple[str, int], BandRow] = {}
    for rows in by_model.values():
        for r in rows:
            key = (r.hook, r.band)
            if key not in pooled:
                pooled[key] = BandRow(r.hook, r.band, r.lo, r.hi, 0, 0, 0)
            p = pooled[key]
            p.n_examples += r.n_examples
            p.n_inconsistent += r.n_inconsistent
            p.n_neurons += r.n_neurons
            if (p.lo, p.hi) != (r.lo, r.hi):
                raise ValueError("band rows of different band layouts cannot be pooled")
    return sorted(pooled.values(), key=lambda r: (r.hook != "mid", r.band))


def ln_band_rows(ctx, names: Sequence[str] | None = None, **kwargs) -> list[BandRow]:
    """Pooled ``BandRow``s of ``names`` (default: every SoLU-LN model of the zoo)."""
    names = solu_ln_models(ctx) if names is None else names
    return pool_band_rows(band_rows_by_model(ctx, names, **kwargs))


def band_interval(row: BandRow) -> tuple[float, float]:
    """95% Wilson interval of a band's inconsistent fraction ((0, 1) for an empty band)."""
    return wilson_interval(row.n_inconsistent, row.n_examples)


def band_table(rows: Sequence[BandRow]) -> str:
    """Pooled rows as text: band, hook, neurons, examples, inconsistent fraction (interval)."""
    out = []
    for r in rows:
        lo, hi = band_interval(r)
        frac = f"{r.fraction:.2f} ({lo:.2f}-{hi:.2f})" if r.n_examples else "n/a"
        out.append({"band (% of max)": f"{r.lo:.0%}-{r.hi:.0%}", "hook": r.hook,
                    "neurons": r.n_neurons, "examples": r.n_examples,
                    "inconsistent": r.n_inconsistent, "fraction (95% CI)": frac})
    return format_table(out, ["band (% of max)", "hook", "neurons", "examples", "inconsistent",
                              "fraction (95% CI)"])


def ln_consistency_figure(rows: Sequence[BandRow], title: str | None = None) -> go.Figure:
    """Figure 9 analogue: fraction of examples inconsistent with the neuron's explanation per
    activation band, before and after the LN, with 95% Wilson intervals."""
    fig = style.figure(title or "Examples inconsistent with the neuron's explanation, by "
                       "activation band (paper Figure 9)",
                       "activation band (% of the neuron's max on that hook)",
                       "fraction inconsistent", height=440)
    for hook in ("mid", "post"):
        hook_rows = [r for r in rows if r.hook == hook and r.n_examples]
        if not hook_rows:
            continue
        intervals = [band_interval(r) for r in hook_rows]
        fig.add_trace(go.Scatter(
            x=[100 * (r.lo + r.hi) / 2 for r in hook_rows], y=[r.fraction for r in hook_rows],
            mode="lines+markers", name=HOOK_LABELS[hook],
            line=dict(color=style.HOOK_COLORS[hook], dash="solid" if hook == "mid" else "dash"),
            error_y=dict(type="data", symmetric=False,
                         array=[hi - r.fraction for r, (_, hi) in zip(hook_rows, intervals)],
                         arrayminus=[r.fraction - lo for r, (lo, _) in zip(hook_rows, intervals)]),
            customdata=[[r.n_inconsistent, r.n_examples, r.n_neurons, lo, hi]
                        for r, (lo, hi) in zip(hook_rows, intervals)],
            hovertemplate=("%{customdata[0]} of %{customdata[1]} examples (%{customdata[2]} "
                           "neurons): %{y:.2f} [%{customdata[3]:.2f}, %{customdata[4]:.2f}]"
                           "<extra></extra>")))
    if not fig.data:
        fig.add_annotation(text="no interpretable neuron: nothing to count", xref="paper",
                           yref="paper", x=0.5, y=0.5, showarrow=False)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(range=[0, 100])
    return fig


# --- measurements -----------------------------------------------------------------------------
@dataclass
class BandComparison:
    """Inconsistent examples in a group of bands, after the LN vs before it.

    ``diff`` = post - mid with Newcombe's 95% interval; the paper expects ``diff > 0`` in the
    low bands.
    """

    bands: str
    mid_inconsistent: int
    mid_examples: int
    post_inconsistent: int
    post_examples: int
    diff: float
    lo: float
    hi: float

    @property
    def mid_fraction(self) -> float:
        return self.mid_inconsistent / self.mid_examples if self.mid_examples else math.nan

    @property
    def post_fraction(self) -> float:
        return self.post_inconsistent / self.post_examples if self.post_examples else math.nan

    def mid_interval(self) -> tuple[float, float]:
        return wilson_interval(self.mid_inconsistent, self.mid_examples)

    def post_interval(self) -> tuple[float, float]:
        return wilson_interval(self.post_inconsistent, self.post_examples)

    @property
    def post_exceeds_mid(self) -> bool | None:
        """Post-LN inconsistency is higher (None when either side has no examples)."""
        return None if math.isnan(self.diff) else self.diff > 0

    @property
    def significant(self) -> bool:
        """The interval of post - mid lies above 0."""
        return bool(self.lo > 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mid_fraction": self.mid_fraction,
                "post_fraction": self.post_fraction, "mid_interval": self.mid_interval(),
                "post_interval": self.post_interval(), "post_exceeds_mid": self.post_exceeds_mid,
                "significant": self.significant}

    def text(self) -> str:
        if self.mid_examples == 0 or self.post_examples == 0:
            return f"{self.bands}: no examples (no interpretable neuron)"
        (ml, mh), (pl, ph) = self.mid_interval(), self.post_interval()
        return (f"{self.bands}: before the LN {self.mid_fraction:.2f} ({ml:.2f}-{mh:.2f}, "
                f"{self.mid_inconsistent}/{self.mid_examples}), after {self.post_fraction:.2f} "
                f"({pl:.2f}-{ph:.2f}, {self.post_inconsistent}/{self.post_examples}); "
                f"after - before {self.diff:+.2f} ({self.lo:+.2f} to {self.hi:+.2f})")


def compare_bands(rows: Sequence[BandRow], bands: Sequence[int], label: str) -> BandComparison:
    """Pool ``bands`` of each hook and compare post with mid."""
    def total(hook):
        sel = [r for r in rows if r.hook == hook and r.band in bands]
        return sum(r.n_inconsistent for r in sel), sum(r.n_examples for r in sel)

    (mc, mn), (pc, pn) = total("mid"), total("post")
    diff, lo, hi = difference_interval(pc, pn, mc, mn)
    return BandComparison(label, mc, mn, pc, pn, diff, lo, hi)


def low_bands(rows: Sequence[BandRow], up_to: float = LOW_BANDS_UP_TO) -> list[int]:
    """Bands lying within ``(0, up_to]`` of the max."""
    return sorted({r.band for r in rows if r.hi <= up_to + 1e-9})


@dataclass
class LayerNormMeasurements:
    """The §6.4 numbers at this scale.

    Attributes:
        models: The models pooled (SoLU-LN of every depth).
        n_neurons: Interpretable neurons that contributed examples (per model).
        low: Low bands (0-30% of max), post vs mid.
        top: The top band (90-100%), post vs mid.
        overall: Every band pooled, post vs mid.
        rows: The pooled ``BandRow``s, as dicts.
        post_worse_bands: Bands where post-LN examples are more often inconsistent than
            pre-LN ones, with a 95% Newcombe interval above 0 (band indices).
        control_model: The LN-only ablation (GELU + the same LN), if the zoo has it.
        control_low, control_top, control_overall: The same comparisons for it.
    """

    models: list[str]
    n_neurons: dict[str, int]
    low: BandComparison
    top: BandComparison
    overall: BandComparison
    rows: list[dict[str, Any]] = field(default_factory=list)
    post_worse_bands: list[int] = field(default_factory=list)
    control_model: str | None = None
    control_low: BandComparison | None = None
    control_top: BandComparison | None = None
    control_overall: BandComparison | None = None

    @property
    def paper_direction_low(self) -> bool | None:
        """Post-LN examples are more often inconsistent in the low bands (paper's claim)."""
        return self.low.post_exceeds_mid

    def to_dict(self) -> dict[str, Any]:
        return {"models": self.models, "n_neurons": self.n_neurons, "low": self.low.to_dict(),
                "top": self.top.to_dict(), "overall": self.overall.to_dict(), "rows": self.rows,
                "post_worse_bands": self.post_worse_bands, "control_model": self.control_model,
                **{k: (getattr(self, k).to_dict() if getattr(self, k) else None)
                   for k in ("control_low", "control_top", "control_overall")},
                "paper_direction_low": self.paper_direction_low}


def layernorm_measurements(ctx, names: Sequence[str] | None = None, *, n_bands: int = 10,
                           per_band: int = 20, max_neurons: int | None = MAX_NEURONS,
                           control: str | None = "1L-gelu_ln") -> LayerNormMeasurements:
    """Figure 9's comparison at this scale (see ``LayerNormMeasurements``)."""
    names = list(solu_ln_models(ctx) if names is None else names)
    by_model = band_rows_by_model(ctx, names, n_bands=n_bands, per_band=per_band,
                                  max_neurons=max_neurons)
    rows = pool_band_rows(by_model)
    low, top, overall = _standard_comparisons(rows, n_bands)
    m = LayerNormMeasurements(
        names, {n: max((r.n_neurons for r in rs), default=0) for n, rs in by_model.items()},
        low, top, overall, [r.to_dict() for r in rows], post_worse_bands(rows))
    if control is not None and control in ctx.names:
        crows = pool_band_rows(band_rows_by_model(ctx, [control], n_bands=n_bands,
                                                  per_band=per_band, max_neurons=max_neurons))
        m.control_model = control
        m.control_low, m.control_top, m.control_overall = _standard_comparisons(
            crows, n_bands, f"{control}, ")
    return m


def _standard_comparisons(rows: Sequence[BandRow], n_bands: int, prefix: str = ""
                          ) -> tuple[BandComparison, BandComparison, BandComparison]:
    """Low bands, the top band and every band, post vs mid."""
    low = low_bands(rows) or [0]
    return (compare_bands(rows, low, f"{prefix}bands {low[0]}-{low[-1]} "
                          f"(0-{LOW_BANDS_UP_TO:.0%} of max)"),
            compare_bands(rows, [n_bands - 1], f"{prefix}top band "
                          f"({(n_bands - 1) / n_bands:.0%}-100% of max)"),
            compare_bands(rows, list(range(n_bands)), f"{prefix}all bands"))


def post_worse_bands(rows: Sequence[BandRow]) -> list[int]:
    """Bands where the post-LN inconsistent fraction exceeds the pre-LN one, with the 95%
    Newcombe interval of the difference above 0."""
    return [b for b in sorted({r.band for r in rows})
            if compare_bands(rows, [b], "").significant]


def bands_text(rows: Sequence[BandRow], bands: Sequence[int]) -> str:
    """Band indices as their ranges, e.g. "50-60%, 90-100% of max" ("no band" if none)."""
    edges = {r.band: (r.lo, r.hi) for r in rows}
    if not bands:
        return "no band"
    return ", ".join(f"{edges[b][0]:.0%}-{edges[b][1]:.0%}" for b in bands) + " of max"


# --- one neuron, low band, before and after -----------------------------------------------------
def example_neuron(ctx, name: str):
    """The best interpretable neuron of ``name`` by ``neurons.RANKING`` (None if none)."""
    good = [r for r in ctx.scores(name).records if r.interpretable]
    ranked = rank_neurons(good, ctx.seed)
    return ranked[0] if ranked else None


def band_pair_html(ctx, name: str, record, band: int = 1, n_bands: int = 10,
                   n_examples: int = 8) -> str:
    """One neuron's examples in the same band before and after the LN, side by side."""
    from ..interp.view import neuron_html

    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    share = 100 / n_bands
    columns = {
        f"{HOOK_LABELS[hook]}, {band * share:.0f}-{(band + 1) * share:.0f}% of max":
            neuron_html(model, corpus, harvest, record.layer, record.neuron, hook=hook,
                        band=band, n=n_examples, n_bands=n_bands, seed=ctx.seed, left=16,
                        right=4)
        for hook in ("mid", "post")}
    return verdict_html(record, name) + side_by_side_html(columns)


def no_neuron_html(name: str) -> str:
    return (f'<p class="solu-empty" style="font-family:sans-serif;color:#555">The scorer found '
            f"no interpretable neuron in {html.escape(name)}: no example to show.</p>")
