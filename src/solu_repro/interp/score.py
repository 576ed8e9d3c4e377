"""Automated interpretability score: a blinded, mechanical stand-in for the paper's §6.1 look.

For each neuron the scorer searches a fixed family of simple explanations
(``explanations``) for the one that covers the most of its top-k firings (k = 20, one per
snippet, as the evaluators saw them) on the *selection* rows. It then measures that one
explanation on the top-k firings of the *held-out* rows, so choosing the best of ~30
candidates does not inflate the rate. The neuron is *interpretable at first glance* when the
explanation covers at least 80% of the held-out top firings -- the paper's rule -- and is
specific: it holds at least ``min_lift`` times more often among them than in text at large
(otherwise "the text is prose" would explain every prose neuron).

A top list holds only real firings: examples below ``top_floor`` of the neuron's max are
dropped (a neuron that fires in 14 windows has 14 top firings, not 14 and 6 near-zeros), and
a neuron with fewer than ``min_top`` firings on either side is too rare to judge (not
interpretable). A set of several tokens counts only when they make one rule
(``explanations.is_one_rule``).

The paper's own caveat is that top examples overstate monosemanticity, so every explanation
is also measured over the full activation spectrum on *held-out* rows (the harvest selects
examples from even rows; the scorer measures on odd rows):

* precision: of held-out tokens where the explanation holds, the fraction where the neuron
  fires (activation above ``fire_fraction`` x its max);
* recall: of held-out tokens where the neuron fires, the fraction the explanation covers;
* correlation: Pearson correlation between the explanation's indicator and the activation.

The scorer never sees which model a neuron comes from; it only sees tokens and activations.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json
from ..data import TokenSplit, get_rows, num_rows
from ..model import ConfigError, Transformer
from .explanations import (Background, Explanation, PositionFeatures, VocabTables,
                           candidate_explanations, point_features, range_features)
from .harvest import Harvest, ModelNeurons, NeuronSource, _resolve_rows, split_position
from .harvest import harvest as harvest_fn
from .stats import Proportion, proportion

SCORE_FORMAT = 2


@dataclass(frozen=True)
class ScoreSettings:
    """The scorer's knobs; defaults follow the paper where it says something.

    Attributes:
        threshold: Coverage of the top firings needed to count as interpretable (paper: 80%).
        k: Top firings examined (paper: ~20 snippets); ``None`` = all the harvest kept.
        min_lift: Coverage must exceed the explanation's base rate by this factor.
        max_set: Largest "small set" of tokens / bigrams an explanation may list.
        fire_fraction: A held-out token "fires" the neuron above this fraction of its max.
        heldout_rows: Rows for the full-spectrum view (``"odd"``: not used for selection).
        max_heldout_rows: Cap on held-out rows (``None``: all).
        hook: ``"mid"`` (what the paper interprets) or ``"post"`` (after the extra LN).
        top_floor: A top example counts as a firing above this fraction of the max.
        min_top: Fewest firings (on the selection and on the held-out rows) to judge.
        spectrum: Measure the full-spectrum view too (precision, recall, correlation on every
            held-out token); False leaves them NaN and the top-20 view and the explanations
            exactly as with True (the metrics over training need no more).
    """

    threshold: float = 0.8
    k: int | None = 20
    min_lift: float = 3.0
    max_set: int = 3
    fire_fraction: float = 0.5
    heldout_rows: str = "odd"
    max_heldout_rows: int | None = None
    hook: str = "mid"
    top_floor: float = 0.2
    min_top: int = 5
    spectrum: bool = True

    def key(self) -> dict[str, Any]:
        """The settings as a cache key (``spectrum`` only when off, so the keys of every
        result cached before it existed still hold)."""
        d = asdict(self)
        if d.pop("spectrum"):
            return d
        return {**d, "spectrum": False}

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if self.k is not None and (not isinstance(self.k, int) or self.k < 1):
            raise ConfigError(f"k must be a positive integer or None, got {self.k!r}")
        if not self.min_lift >= 1:
            raise ConfigError(f"min_lift must be >= 1, got {self.min_lift!r}")
        if not isinstance(self.max_set, int) or self.max_set < 1:
            raise ConfigError(f"max_set must be a positive integer, got {self.max_set!r}")
        if not 0 < self.fire_fraction < 1:
            raise ConfigError(f"fire_fraction must be in (0, 1), got {self.fire_fraction!r}")
        if not 0 <= self.top_floor < 1:
            raise ConfigError(f"top_floor must be in [0, 1), got {self.top_floor!r}")
        if not isinstance(self.min_top, int) or self.min_top < 1:
            raise ConfigError(f"min_top must be a positive integer, got {self.min_top!r}")
        if self.hook not in ("mid", "post"):
            raise ConfigError(f"hook must be 'mid' or 'post', got {self.hook!r}")


@dataclass
class NeuronScore:
    """The scorer's verdict on one neuron (both views). ``coverage``, ``base_rate`` and
    ``lift`` are measured on the held-out rows' top firings."""

    layer: int
    neuron: int
    explanation: str | None  # Explanation.key(), or None for a dead neuron
    text: str
    role: str | None
    coverage: float
    base_rate: float
    lift: float
    interpretable: bool
    dead: bool
    precision: float
    recall: float
    correlation: float
    n_holds: int
    n_fires: int
    selection_coverage: float = math.nan  # on the selection top firings it was chosen on
    n_top: int = 0  # held-out top firings the coverage is measured on
    rare: bool = False  # fewer than min_top firings to judge on

    def explanation_obj(self) -> Explanation | None:
        return Explanation.from_key(self.explanation) if self.explanation else None

    @property
    def spectrum_interpretable(self) -> bool:
        """Monosemantic over the full spectrum too: precision and recall both at least 0.5."""
        return bool(self.interpretable and self.precision >= 0.5 and self.recall >= 0.5)


class NeuronScores:
    """All neurons' scores for one model, with the aggregates the book reports."""

    def __init__(self, meta: dict[str, Any], records: list[NeuronScore]):
        self.meta, self.records = meta, records
        self._index = {(r.layer, r.neuron): r for r in records}

    def __repr__(self) -> str:
        p = self.fraction_interpretable()
        return (f"NeuronScores({self.meta.get('name', '?')}: {p.successes}/{p.n} interpretable "
                f"at first glance, {self.fraction_interpretable(view='spectrum').successes} over "
                "the full spectrum)")

    def get(self, layer: int, neuron: int) -> NeuronScore:
        return self._index[(layer, neuron)]

    def select(self, layer: int | None = None) -> list[NeuronScore]:
        return [r for r in self.records if layer is None or r.layer == layer]

    def fraction_interpretable(self, layer: int | None = None, view: str = "top") -> Proportion:
        """Fraction of neurons judged interpretable, with a 95% Wilson interval.

        Args:
            layer: One layer, or ``None`` for all.
            view: ``"top"`` (the paper's top-20 rule) or ``"spectrum"`` (also precise and
                complete on held-out tokens).
        """
        if view not in ("top", "spectrum"):
            raise ValueError(f"view must be 'top' or 'spectrum', got {view!r}")
        rs = self.select(layer)
        hits = sum(r.interpretable if view == "top" else r.spectrum_interpretable for r in rs)
        return proportion(hits, len(rs))

    def by_layer(self) -> list[dict[str, Any]]:
        """One row per layer: fractions (both views), mean precision/recall/correlation."""
        rows = []
        for layer in sorted({r.layer for r in self.records}):
            rs = self.select(layer)
            top, spec = self.fraction_interpretable(layer), self.fraction_interpretable(layer, "spectrum")
            good = [r for r in rs if r.interpretable]
            rows.append({"layer": layer, "n": len(rs), "interpretable": top.successes,
                         "fraction": top.fraction, "lo": top.lo, "hi": top.hi,
                         "spectrum_fraction": spec.fraction, "spectrum_lo": spec.lo,
                         "spectrum_hi": spec.hi,
                         "mean_precision": _nanmean([r.precision for r in good]),
                         "mean_recall": _nanmean([r.recall for r in good]),
                         "mean_correlation": _nanmean([r.correlation for r in good])})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"format": SCORE_FORMAT, "meta": self.meta,
                "records": [asdict(r) for r in self.records]}

    def save(self, path: str | Path) -> Path:
        write_json(path, _json_safe(self.to_dict()))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "NeuronScores":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no score file at {path}: run `solu-repro score` first")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != SCORE_FORMAT:
                raise ValueError(f"format {d.get('format')} != {SCORE_FORMAT}")
            names = {f.name for f in fields(NeuronScore)}
            records = [NeuronScore(**{k: _nan_back(v) for k, v in r.items() if k in names})
                       for r in d["records"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"score file {path} is corrupt or outdated ({exc}): delete it "
                              "and score again") from exc
        return cls(d["meta"], records)


def _nanmean(xs) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return float(np.mean(xs)) if xs else math.nan


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _nan_back(v):
    if v is None:
        return math.nan
    if v == "inf":
        return math.inf
    return v


def heldout_features(split: TokenSplit, tables: VocabTables, rows: np.ndarray,
                     n_ctx: int) -> PositionFeatures:
    """Features of every harvested column (1..n_ctx-1) of ``rows``, row after row."""
    return PositionFeatures.concat([range_features(split, tables, int(split_position(r, 1, n_ctx)),
                                                   n_ctx - 1) for r in rows])


def _lift(coverage: float, base: float) -> float:
    if base > 0:
        return coverage / base
    return math.inf if coverage > 0 else 0.0


def surprise(coverage: float, base_rate: float) -> float:
    """KL divergence (nats) of Bernoulli(coverage) from Bernoulli(base_rate).

    How much more often than in text at large the explanation holds among the top
    firings: high for a rare rule covering most firings, low for a common one.
    """
    eps = 1e-9
    c, b = min(max(coverage, 0.0), 1.0), min(max(base_rate, eps), 1 - eps)
    out = c * math.log(c / b) if c > 0 else 0.0
    return out + ((1 - c) * math.log((1 - c) / (1 - b)) if c < 1 else 0.0)


def best_explanation(top: PositionFeatures, tables: VocabTables, background: Background,
                     settings: ScoreSettings) -> tuple[Explanation | None, float, float, bool]:
    """Search the family on a neuron's top firings.

    Like a person looking for "a single rule or category" behind 80% of the firings, it
    prefers a specific rule to a vague one: among specific explanations (lift >=
    ``min_lift``) covering at least ``threshold`` of the firings it takes the most
    surprising (``surprise``: "underscore" beats "Python source" even at slightly lower
    coverage; "' the'" at 100% beats "'of' + ' the'" at 80%). If none reaches the
    threshold, the specific one covering most firings.

    Returns:
        ``(explanation, coverage, base_rate, specific)``; if no candidate is specific, the
        best unspecific one with ``specific=False``.
    """
    passing, best, fallback = None, None, None
    for e in candidate_explanations(top, tables, settings.max_set):
        coverage = float(e.holds(top, tables).mean())
        base = background.base_rate(e)
        lift = _lift(coverage, base)
        rank = (coverage, surprise(coverage, base), -len(e.values))
        item = (rank, e, coverage, base)
        if lift < settings.min_lift:
            fallback = max(fallback, item, key=lambda x: x[0]) if fallback else item
            continue
        best = max(best, item, key=lambda x: x[0]) if best else item
        if coverage >= settings.threshold:
            key = lambda x: (surprise(x[2], x[3]), x[2], -len(x[1].values))  # noqa: E731
            passing = max(passing, item, key=key) if passing else item
    chosen = passing or best or fallback
    if chosen is None:
        return None, 0.0, 0.0, False
    return chosen[1], chosen[2], chosen[3], chosen is not fallback


def score_neurons(source: NeuronSource | Transformer, harvest: Harvest, split: TokenSplit,
                  tables: VocabTables, settings: ScoreSettings = ScoreSettings(), *,
                  batch_size: int = 16, device: str | torch.device = "cpu",
                  progress: bool = True, meta: dict[str, Any] | None = None,
                  heldout: Harvest | None = None) -> NeuronScores:
    """Score every neuron of ``harvest`` (module docstring).

    Args:
        source: The model (or planted neurons) that was harvested; rerun on held-out rows.
        harvest: Its harvest of ``split`` (top firings from the selection rows).
        heldout: Its harvest of the held-out rows (``settings.heldout_rows``), whose top
            firings measure the coverage; None: harvested here.
        split: The same token split the harvest read.
        tables: ``VocabTables`` of the corpus tokenizer.
        settings: ``ScoreSettings``.
        batch_size: Held-out rows per forward pass.
        device: Where the model runs.
        progress: Show progress bars.
        meta: Extra metadata stored with the scores.
    """
    if isinstance(source, Transformer):
        source = ModelNeurons(source.to(device).eval())
    n_ctx = harvest.n_ctx
    if harvest.meta.get("rows") == settings.heldout_rows:
        raise ConfigError(f"the harvest selected examples from {settings.heldout_rows!r} rows, "
                          "the rows the scorer holds out: harvest 'even' rows and hold out 'odd'")
    selection = harvest.meta.get("rows")
    if selection not in ("even", "odd") or selection == settings.heldout_rows:
        raise ConfigError(f"the harvest's selection rows are {selection!r} and the scorer holds "
                          f"out {settings.heldout_rows!r}: harvest 'even' rows and hold out 'odd'"
                          " (the two must not overlap)")
    rows, _ = _resolve_rows(settings.heldout_rows, num_rows(split, n_ctx),
                            settings.max_heldout_rows)
    if heldout is None:
        heldout = harvest_fn(source, split, n_ctx, harvest.meta.get("bos_id", 0),
                             rows=settings.heldout_rows, k=harvest.k, samples_per_bin=1,
                             batch_size=batch_size, max_rows=settings.max_heldout_rows,
                             device=device, progress=progress)
    elif heldout.meta.get("rows") != settings.heldout_rows:
        raise ConfigError(f"the held-out harvest read rows {heldout.meta.get('rows')!r}, not "
                          f"the held-out {settings.heldout_rows!r}")
    held = heldout_features(split, tables, rows, n_ctx)
    background = Background(held, tables)
    records = _top_view(harvest, heldout, split, tables, background, settings, progress)
    if settings.spectrum:
        _spectrum_view(records, source, harvest, split, tables, held, rows, settings,
                       batch_size, device, progress)
    info = {"format": SCORE_FORMAT, "settings": asdict(settings), "n_heldout_rows": int(len(rows)),
            "n_heldout_tokens": int(len(held)), "harvest": {k: v for k, v in harvest.meta.items()
                                                           if k != "bin_edges"}, **(meta or {})}
    info.setdefault("name", harvest.meta.get("name"))
    return NeuronScores(info, records)


def firing_examples(h: Harvest, layer: int, neuron: int, settings: ScoreSettings) -> list:
    """A neuron's top examples that are real firings: above ``top_floor`` of its max."""
    examples = h.top_examples(layer, neuron, settings.hook, settings.k)
    peak = float(h.stat("max", settings.hook)[layer, neuron])
    return [e for e in examples if e.value > settings.top_floor * peak and e.value > 0]


def _top_view(harvest: Harvest, heldout: Harvest, split: TokenSplit, tables: VocabTables,
              background: Background, settings: ScoreSettings,
              progress: bool) -> list[NeuronScore]:
    """Choose each neuron's explanation on the selection top firings, and measure it on the
    held-out top firings."""
    neurons = [(l, n) for l in range(harvest.n_layers) for n in range(harvest.d_mlp)]
    if progress:
        from tqdm.auto import tqdm
        neurons = tqdm(neurons, desc="explain", unit="neuron")
    max_act = harvest.stat("max", settings.hook)
    records = []
    for layer, neuron in neurons:
        examples = firing_examples(harvest, layer, neuron, settings)
        if float(max_act[layer, neuron]) <= 0 or not examples:
            records.append(NeuronScore(layer, neuron, None, "never fires", None, 0.0, 0.0, 0.0,
                                       False, True, math.nan, math.nan, math.nan, 0, 0))
            continue
        top = point_features(split, tables, [e.position(harvest.n_ctx) for e in examples])
        e, chosen_coverage, _, _ = best_explanation(top, tables, background, settings)
        held_examples = firing_examples(heldout, layer, neuron, settings)
        rare = min(len(examples), len(held_examples)) < settings.min_top
        coverage = base = lift = 0.0
        if e is not None and held_examples:
            held_top = point_features(split, tables,
                                      [x.position(heldout.n_ctx) for x in held_examples])
            coverage = float(e.holds(held_top, tables).mean())
            base = background.base_rate(e)
            lift = _lift(coverage, base)
        specific = lift >= settings.min_lift
        text = e.text(tables) if e else "no candidate"
        if rare:
            text += f" (fires in too few windows to judge: {len(examples)} selected, " \
                    f"{len(held_examples)} held out)"
        elif e is not None and not specific:
            text += " (too common in text to count)"
        records.append(NeuronScore(
            layer, neuron, e.key() if e else None, text, e.role if e else None, coverage, base,
            lift, bool(e is not None and specific and not rare
                       and coverage >= settings.threshold), False,
            math.nan, math.nan, math.nan, 0, 0, selection_coverage=chosen_coverage,
            n_top=len(held_examples), rare=rare))
    return records


def _spectrum_view(records: list[NeuronScore], source: NeuronSource, harvest: Harvest,
                   split: TokenSplit, tables: VocabTables, held: PositionFeatures,
                   rows: np.ndarray, settings: ScoreSettings, batch_size: int,
                   device, progress: bool) -> None:
    """Fill precision, recall and correlation of each neuron's explanation on held-out rows."""
    L, N, T1 = harvest.n_layers, harvest.d_mlp, harvest.n_ctx - 1
    by_layer = [[records[l * N + n] for n in range(N)] for l in range(L)]
    explanations = [[r.explanation_obj() for r in layer] for layer in by_layer]
    threshold = (harvest.stat("max", settings.hook) * settings.fire_fraction).double()
    sums = {name: torch.zeros((L, N), dtype=torch.float64)
            for name in ("h", "f", "hf", "a", "a2", "ha")}
    n_total = 0
    hook = settings.hook if settings.hook in source.hooks else "mid"
    batches = range(0, len(rows), batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="held-out", unit="batch")
    for start in batches:
        batch_rows = rows[start:start + batch_size]
        tokens = get_rows(split, batch_rows, harvest.n_ctx, harvest.meta.get("bos_id", 0))
        acts = source.activations(tokens.to(device))[hook]
        f = held.take(slice(start * T1, (start + len(batch_rows)) * T1))
        n_total += len(f)
        for l in range(L):
            a = acts[l][:, 1:].reshape(-1, N).double().cpu()  # (P, N)
            h = torch.zeros_like(a)
            cache: dict[str, np.ndarray] = {}
            for n, e in enumerate(explanations[l]):
                if e is None:
                    continue
                key = e.key()
                if key not in cache:
                    cache[key] = e.holds(f, tables)
                h[:, n] = torch.from_numpy(cache[key].astype(np.float64))
            fire = (a > threshold[l]).double()
            sums["h"][l] += h.sum(0)
            sums["f"][l] += fire.sum(0)
            sums["hf"][l] += (h * fire).sum(0)
            sums["a"][l] += a.sum(0)
            sums["a2"][l] += (a * a).sum(0)
            sums["ha"][l] += (h * a).sum(0)
    n = max(n_total, 1)
    for l in range(L):
        for i, r in enumerate(by_layer[l]):
            if r.explanation is None:
                continue
            h, f_, hf = (float(sums[k][l, i]) for k in ("h", "f", "hf"))
            sa, sa2, sha = (float(sums[k][l, i]) for k in ("a", "a2", "ha"))
            r.n_holds, r.n_fires = int(h), int(f_)
            r.precision = hf / h if h else math.nan
            r.recall = hf / f_ if f_ else math.nan
            var_h = h / n - (h / n) ** 2
            var_a = sa2 / n - (sa / n) ** 2
            cov = sha / n - (h / n) * (sa / n)
            r.correlation = cov / math.sqrt(var_h * var_a) if var_h > 0 and var_a > 0 else math.nan


def score_path(harvest_file: Path, settings: ScoreSettings) -> Path:
    key = json.dumps({"harvest": harvest_file.name, "settings": settings.key(),
                      "format": SCORE_FORMAT}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return harvest_file.parent / f"score-{digest}.json"


def score_run(run, settings: ScoreSettings = ScoreSettings(), *, k: int = 20,
              batch_size: int = 16, seed: int = 0, device: str | torch.device = "cpu",
              progress: bool = True, data_dir: str | Path | None = None,
              rebuild: bool = False) -> NeuronScores:
    """Harvest (cached) and score a zoo run; the scores are cached next to the harvest. Two
    processes scoring one run at once score it once: the second waits, then loads.

    Args:
        run: A ``solu_repro.zoo.ZooRun``.
        settings: ``ScoreSettings``.
        k: Top firings kept by the harvest (must be >= ``settings.k``).
        seed: Seed of the harvest it scores (its random per-band samples); each seed's
            harvest and scores are cached separately.
        rebuild: Score again even if a saved result exists.
    """
    from .harvest import cached, harvest_path, harvest_run

    path = score_path(harvest_path(run, k=k, seed=seed), settings)
    if settings.k is not None and settings.k > k:
        raise ConfigError(f"settings.k={settings.k} top firings but the harvest keeps k={k}")

    def compute() -> NeuronScores:
        h = harvest_run(run, k=k, batch_size=batch_size, seed=seed, device=device,
                        progress=progress, data_dir=data_dir, rebuild=rebuild)
        heldout = harvest_run(run, k=k, samples_per_bin=1, rows=settings.heldout_rows,
                              max_rows=settings.max_heldout_rows, batch_size=batch_size,
                              seed=seed, device=device, progress=progress, data_dir=data_dir,
                              rebuild=rebuild)
        corpus = run.corpus(data_dir)
        tables = VocabTables(corpus.tokenizer)
        scores = score_neurons(run.load_model(device), h, corpus.split("val"), tables,
                               settings, batch_size=batch_size, device=device,
                               progress=progress, heldout=heldout,
                               meta={"name": run.name, "scale": run.scale,
                                     "act_fn": run.config.model.act_fn,
                                     "n_layers": run.config.model.n_layers})
        scores.save(path)
        return scores

    # one process scores a run at a time: a second one waits, then loads the first's scores
    return cached(path, rebuild, NeuronScores.load, compute)


def human_agreement(scores: dict[str, NeuronScores],
                    judgments: dict[tuple[str, int, int], bool]) -> dict[str, Any]:
    """How often the scorer's top-20 verdict matches blinded human judgments.

    Args:
        scores: ``NeuronScores`` by model name.
        judgments: ``(model, layer, neuron) -> interpretable?`` from
            ``blind.judgments_by_neuron``.

    Returns:
        ``n`` compared neurons, ``agreement`` (fraction equal), Cohen's ``kappa``, the
        confusion counts, and the fraction each side calls interpretable.
    """
    from .stats import agreement, cohen_kappa

    human, machine = [], []
    for (model, layer, neuron), judged in sorted(judgments.items()):
        if model in scores:
            human.append(bool(judged))
            machine.append(scores[model].get(layer, neuron).interpretable)
    n = len(human)
    both = sum(h and m for h, m in zip(human, machine))
    out: dict[str, Any] = {
        "n": n, "both_interpretable": both,
        "human_only": sum(h and not m for h, m in zip(human, machine)),
        "scorer_only": sum(m and not h for h, m in zip(human, machine)),
        "neither": sum(not h and not m for h, m in zip(human, machine)),
        "human_fraction": sum(human) / n if n else math.nan,
        "scorer_fraction": sum(machine) / n if n else math.nan,
        "agreement": agreement(human, machine) if n else math.nan,
        "kappa": cohen_kappa(human, machine) if n else math.nan,
    }
    return out
