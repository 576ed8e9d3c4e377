"""Sparse probing against ground-truth labels (Gurnee et al. 2023, "Finding Neurons in a
Haystack"): does a known feature have a neuron of its own?

The judge (``score``) asks whether a neuron's top firings share an explanation; a rotation of
the basis can fool it (``controls``). Probing asks the question the other way round: given a
feature known independently of the model (a boolean label per token, e.g. "inside a string
literal" from Python's ``tokenize``), how well does the best *single* neuron read it, compared
with the best linear read-out of the whole layer? A privileged basis has single neurons that
come close to the ceiling; a random rotation of it should not, because each rotated direction
mixes every feature.

Per label, on the neurons of one hook (all layers pooled, or one layer):

* **best single neuron**: every neuron's F1 at its best threshold, either sign, on the
  *fitting* rows; the neuron with the highest is applied, with that threshold and sign, to the
  *scoring* rows: its held-out F1 and AUROC (``BestNeuron``);
* **k-sparse probes**, k in ``ks``: neurons ranked on the fitting rows by the difference of
  class means, the cheapest of the selection heuristics Gurnee et al. compare, here on
  standardised activations (the mean activation on the label's positive tokens minus that on
  its negative ones, divided by the neuron's standard deviation, by absolute value: raw, the
  ranking would favour loud neurons, and SoLU's heavy-tailed scale would decide it); a
  scikit-learn ``LogisticRegression`` is fitted on the top k; its F1 on the scoring rows at
  the threshold that maximises F1 on the fitting rows, and its AUROC;
* **full probe**: the same logistic regression on all neurons: the ceiling of a linear
  read-out.

**F1, not AUROC, compares bases.** AUROC is lenient to a direction that mixes in other
features: a rotated direction that weights label A's detector and, more heavily, B's still
ranks A's tokens above almost all others (B is rare), so its AUROC for A is near 1, but any
threshold that catches A also catches B, and its precision, hence F1, collapses
(tests/interp/test_probing.py measures both on planted detectors).

**Class weights.** Labels are rare (a base rate of 1% is common), so every regression is
fitted with balanced class weights: each class carries half the total weight. Unweighted, a
label at 1% contributes 1% of the loss, the L2 penalty outweighs it and the probe's direction
is fitted less for rare labels than for frequent ones; balanced, the penalty weighs the same
against every label, so probes of labels with different base rates compare. Calibration does
not matter: the threshold is chosen on the fitting rows.

**Rows.** Rows of ``n_ctx`` tokens are read from the split exactly as the harvest and the
scorer read them (``data.get_rows``: row ``r`` is ``[BOS] + tokens[r*(n_ctx-1):(r+1)*(n_ctx-1)]``,
the BOS column is never probed; ``harvest.split_position``). ``rows="odd"`` scores on the odd
rows (the scorer's held-out half) and fits, selects neurons and chooses thresholds on the even
rows (the harvest's selection half); ``rows="even"`` swaps them.

**Cost: a stratified token sample.** Each half is subsampled to about ``max_tokens`` tokens
(``MAX_TOKENS`` by default) with a seeded Poisson sample that keeps rare labels' positives
(and rare negatives): every label guarantees itself about ``max_tokens / (4 x labels)``
tokens of each class (all of them when it has fewer), and a uniform rate fills the rest of the
budget. Every kept token carries the weight ``1 / P(kept)``, and every fit, F1 and AUROC uses
those weights, so the numbers estimate the values on all the half's tokens (Horvitz-Thompson),
not on the enriched sample, whose base rates differ.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import brentq
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..atomic import read_json, write_json
from ..data import TokenSplit, get_rows, num_rows
from ..model import ConfigError, Transformer
from .harvest import HOOKS, ModelNeurons, NeuronSource, selection_rows

PROBE_FORMAT = 1
"""Bumped when a ``ProbeResult``'s fields or their meaning change."""

DEFAULT_KS = (1, 2, 4, 8, 16)
"""The probe sizes of Gurnee et al.'s sweep that a 512-neuron layer can afford."""

MAX_TOKENS = 20_000
"""Default token budget per half (the pilot's 20,000 code positions). The cpu book's
validation split has about 90,000 tokens per half. At this budget every label of a set of 20
keeps at least 250 tokens of each class per half (all of them when it has fewer), so a
held-out F1 is good to a few hundredths; one ``sparse_probe`` of 20 labels on a 1-layer
model with 512 neurons took about 20 s on one shared CPU core (half the budget: about 10 s).
"""

DEDICATED_MARGIN = 0.1
"""A label has a dedicated neuron when its best single neuron's held-out F1 is within this of
the full probe's. 0.1 is about three standard errors of an F1 measured on the 250 positives a
label keeps at the default budget (``MAX_TOKENS``), so sampling noise alone does not decide
it, and well below the gaps a rotation opens on planted detectors (+0.6 to +0.9 on average,
tests/interp/test_probing.py)."""

DEDICATED_MIN_F1 = 0.5
"""...and when the full probe itself reads the label with F1 at least this: a label that no
linear read-out of the layer finds (a context feature an untrained model does not compute)
has no feature for a neuron to be dedicated to, however close a poor neuron comes to a poor
ceiling."""

_MAX_ITER = 1000  # lbfgs iterations; a fit that needs more is counted in meta["not_converged"]
_CHUNK_ELEMENTS = 1 << 22  # (tokens x neurons) elements sorted and summed at once


# --- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BestNeuron:
    """The best single neuron (or direction) for one label.

    Attributes:
        layer: Its layer.
        neuron: Its index in the layer.
        sign: +1 if the label is read where the neuron is high, -1 where it is low.
        threshold: The threshold chosen on the fitting rows: the label is predicted where
            ``sign * activation > sign * threshold``.
        fit_f1: Its F1 on the fitting rows at that threshold (the selection criterion).
        f1: Its F1 on the scoring rows with the same threshold and sign.
        auroc: Its AUROC on the scoring rows (activation times ``sign``).
    """

    layer: int
    neuron: int
    sign: int
    threshold: float
    fit_f1: float
    f1: float
    auroc: float


@dataclass(frozen=True)
class LabelProbe:
    """One label's probes (all scores on the scoring rows, weighted to all their tokens).

    Attributes:
        count: The label's positive tokens in the scoring rows (all of them, not the sample).
        base_rate: ``count`` over the scoring rows' tokens.
        f1: ``{k: F1 of the k-sparse probe}``.
        auroc: ``{k: AUROC of the k-sparse probe}``.
        neurons: ``{k: [(layer, neuron), ...]}``, the k neurons the probe reads, best first.
        best_neuron: The best single neuron (``BestNeuron``).
        full_probe_f1: F1 of the logistic regression on all neurons: the ceiling.
        full_probe_auroc: Its AUROC.
        n_fit_positives: Positive tokens in the fitting sample.
        n_score_positives: Positive tokens in the scoring sample.
    """

    count: int
    base_rate: float
    f1: dict[int, float]
    auroc: dict[int, float]
    neurons: dict[int, list[tuple[int, int]]]
    best_neuron: BestNeuron
    full_probe_f1: float
    full_probe_auroc: float
    n_fit_positives: int
    n_score_positives: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["neurons"] = {k: [list(n) for n in v] for k, v in self.neurons.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LabelProbe":
        return cls(count=int(d["count"]), base_rate=float(d["base_rate"]),
                   f1={int(k): float(v) for k, v in d["f1"].items()},
                   auroc={int(k): float(v) for k, v in d["auroc"].items()},
                   neurons={int(k): [(int(l), int(n)) for l, n in v]
                            for k, v in d["neurons"].items()},
                   best_neuron=BestNeuron(**d["best_neuron"]),
                   full_probe_f1=float(d["full_probe_f1"]),
                   full_probe_auroc=float(d["full_probe_auroc"]),
                   n_fit_positives=int(d["n_fit_positives"]),
                   n_score_positives=int(d["n_score_positives"]))


@dataclass
class ProbeResult:
    """``sparse_probe``'s result: one ``LabelProbe`` per label, and how it was measured.

    Attributes:
        labels: ``{label name: LabelProbe}``, in the order the labels were given.
        meta: The settings (hook, layers, ks, rows, n_ctx, max_tokens, seed), the sample sizes,
            the number of fits that hit the iteration limit, the seconds taken, and whatever
            the caller passed as ``meta``.
    """

    labels: dict[str, LabelProbe]
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"ProbeResult({self.meta.get('name', '?')}, hook {self.meta.get('hook')!r}: "
                f"{len(self.labels)} labels, {len(self.dedicated())} with a dedicated neuron)")

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.meta.get("ks", ()))

    def best_f1(self) -> dict[str, float]:
        """``{label: held-out F1 of its best single neuron}``."""
        return {name: p.best_neuron.f1 for name, p in self.labels.items()}

    def privileged_basis_gap(self, rotated: "ProbeResult") -> dict[str, float]:
        """Each label's best single-neuron F1 here minus its best single-direction F1 in
        ``rotated`` (the ``sparse_probe`` of ``controls.rotated(source)`` on the same split,
        labels and settings). Positive: the neuron basis reads the label better than a random
        basis does.

        Raises:
            ConfigError: If the two results probe different labels or different hooks.
        """
        if not isinstance(rotated, ProbeResult):
            raise ConfigError(f"privileged_basis_gap needs the ProbeResult of the rotated "
                              f"source, got {type(rotated).__name__}")
        if set(rotated.labels) != set(self.labels):
            raise ConfigError(f"the rotated result probes labels {list(rotated.labels)}, this "
                              f"one {list(self.labels)}: probe both with the same labels")
        for key in ("hook", "layers", "rows", "n_ctx"):
            if self.meta.get(key) != rotated.meta.get(key):
                raise ConfigError(f"the two results differ in {key} ({self.meta.get(key)!r} vs "
                                  f"{rotated.meta.get(key)!r}): probe both with one setting")
        return {name: p.best_neuron.f1 - rotated.labels[name].best_neuron.f1
                for name, p in self.labels.items()}

    def dedicated(self, margin: float = DEDICATED_MARGIN,
                  min_f1: float = DEDICATED_MIN_F1) -> list[str]:
        """The labels with a dedicated neuron: best single-neuron F1 at least
        ``full_probe_f1 - margin``, where the full probe reaches at least ``min_f1``
        (``DEDICATED_MARGIN`` and ``DEDICATED_MIN_F1`` say why these defaults)."""
        if not 0 <= margin <= 1 or not 0 <= min_f1 <= 1:
            raise ConfigError(f"margin and min_f1 are F1 differences and levels in [0, 1], got "
                              f"margin={margin!r}, min_f1={min_f1!r}")
        return [name for name, p in self.labels.items()
                if p.full_probe_f1 >= min_f1 and p.best_neuron.f1 >= p.full_probe_f1 - margin]

    def to_dict(self) -> dict[str, Any]:
        # a list, not a mapping: the labels keep their order through key-sorted JSON
        return {"format": PROBE_FORMAT, "meta": self.meta,
                "labels": [{"name": name, **p.to_dict()} for name, p in self.labels.items()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProbeResult":
        if d.get("format") != PROBE_FORMAT:
            raise ConfigError(f"probe result format {d.get('format')!r} is not {PROBE_FORMAT}: "
                              "probe again")
        return cls({p["name"]: LabelProbe.from_dict(p) for p in d["labels"]}, dict(d["meta"]))

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "ProbeResult":
        return read_json(path, cls.from_dict, "probe result",
                         "run sparse_probe and save it", ConfigError)


# --- F1 at the best threshold, every column at once --------------------------------------------

@dataclass(frozen=True)
class _Thresholds:
    f1: np.ndarray  # (D,) best F1 on the data it was chosen on
    sign: np.ndarray  # (D,) +1 or -1
    threshold: np.ndarray  # (D,) predict positive where sign * x > sign * threshold


class _SortedColumns:
    """The columns of ``x`` ``(n, D)`` sorted once (high to low) with their weights ``w``
    ``(n,)``, so that the best-threshold F1 of every column can be found for many labels
    without sorting again."""

    def __init__(self, x: np.ndarray, w: np.ndarray):
        self.n, self.d = x.shape
        self.w, self.total = w, float(w.sum())
        self.order = np.argsort(-x, axis=0, kind="stable").astype(np.int32)  # (n, D)
        self.values = np.take_along_axis(x, self.order, axis=0)  # (n, D), descending
        self.predicted = np.cumsum(w[self.order], axis=0)  # (n, D): weight of the top i+1
        # A cut after row i is a threshold only between distinct values (the last: all rows).
        self.no_cut = np.zeros((self.n, self.d), dtype=bool)
        self.no_cut[:-1] = self.values[:-1] == self.values[1:]

    def best(self, y: np.ndarray, both_signs: bool = True) -> _Thresholds:
        """The threshold (and sign) of each column that maximises the weighted F1 of
        ``y`` ``(n,)`` bool."""
        n, d = self.n, self.d
        yw = np.where(y, self.w, 0.0)
        p = float(yw.sum())
        out = [np.empty(d), np.empty(d, dtype=np.int64), np.empty(d)]
        step = max(1, _CHUNK_ELEMENTS // n)
        for c0 in range(0, d, step):
            c1 = min(d, c0 + step)
            cols = np.arange(c1 - c0)
            tp = np.cumsum(yw[self.order[:, c0:c1]], axis=0)  # true positives of the top i+1
            pp = self.predicted[:, c0:c1]
            no_cut = self.no_cut[:, c0:c1]
            f1 = 2 * tp / (pp + p)  # F1 = 2 TP / (predicted + actual positives)
            f1[no_cut] = -1.0
            i_top = f1.argmax(0)
            best_top = f1[i_top, cols]
            i_bot, best_bot = np.zeros(c1 - c0, dtype=np.int64), np.full(c1 - c0, -np.inf)
            if both_signs and n > 1:  # predict the bottom n-i-1 rows, i < n-1 (never empty)
                f1 = 2 * (p - tp[:-1]) / (self.total - pp[:-1] + p)
                f1[no_cut[:-1]] = -1.0
                i_bot = f1.argmax(0)
                best_bot = f1[i_bot, cols]
            negative = best_bot > best_top
            i = np.where(negative, i_bot, i_top)
            s = self.values[:, c0:c1]
            here = s[i, cols].astype(np.float64)
            below = s[np.minimum(i + 1, n - 1), cols].astype(np.float64)
            out[0][c0:c1] = np.where(negative, best_bot, best_top)
            out[1][c0:c1] = np.where(negative, -1, 1)
            out[2][c0:c1] = np.where(i < n - 1, (here + below) / 2, -np.inf)  # n-1: all rows
        return _Thresholds(*out)


def best_threshold_f1(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
                      both_signs: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weighted F1 of each column of ``x`` at its best threshold.

    Args:
        x: Scores, ``(n,)`` or ``(n, D)``.
        y: Labels, ``(n,)`` bool.
        w: Sample weights ``(n,)``; ``None``: all 1.
        both_signs: Also try predicting the label where the score is *low*.

    Returns:
        ``(f1, sign, threshold)``, each ``(D,)`` (``(1,)`` for a 1-D ``x``): the label is
        predicted where ``sign * x > sign * threshold``.
    """
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    y = np.asarray(y, dtype=bool)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    if not len(x) == len(y) == len(w):
        raise ConfigError(f"x, y and w must have one entry per token, got {len(x)}, {len(y)} "
                          f"and {len(w)}")
    t = _SortedColumns(x, w).best(y, both_signs)
    return t.f1, t.sign, t.threshold


def _predict(x: np.ndarray, sign: float, threshold: float) -> np.ndarray:
    return sign * x > sign * threshold


# --- the token sample ---------------------------------------------------------------------------

def _inclusion_probabilities(y: np.ndarray, max_tokens: int) -> np.ndarray:
    """P(kept) of each token of a half, ``(n,)``, from its labels ``y`` ``(n_labels, n)``:
    each label's class of size c keeps ``min(1, floor / c)`` of its tokens, floor =
    ``max_tokens // (4 n_labels)``; a uniform rate ``u`` tops every token up so that the
    expected sample is ``max_tokens``."""
    n_labels, n = y.shape
    if n <= max_tokens:
        return np.ones(n)
    floor = max(1, max_tokens // (4 * n_labels))
    q = np.zeros(n)
    for row in y:
        c = int(row.sum())
        q = np.maximum(q, np.where(row, min(1.0, floor / max(c, 1)),
                                   min(1.0, floor / max(n - c, 1))))

    def excess(u: float) -> float:  # expected sample size over the budget, rising in u
        return float(np.maximum(u, q).sum()) - max_tokens

    u = 0.0 if excess(0.0) >= 0 else brentq(excess, 0.0, 1.0, xtol=1e-12)
    return np.maximum(u, q)


@dataclass
class _Half:
    """The sampled tokens of one half: where they are, their weights, activations, labels."""

    rows: np.ndarray  # (n,) row of each sampled token
    cols: np.ndarray  # (n,) column (1..n_ctx-1)
    weights: np.ndarray  # (n,) 1 / P(kept), normalised to mean 1
    y: np.ndarray  # (n_labels, n) bool
    counts: np.ndarray  # (n_labels,) positives among all the half's tokens
    n_tokens: int  # all the half's tokens
    x: np.ndarray | None = None  # (n, D) activations, filled by _read_activations


def _sample_half(rows: np.ndarray, labels: np.ndarray, n_ctx: int, max_tokens: int,
                 rng: np.random.Generator) -> _Half:
    t1 = n_ctx - 1
    positions = (rows[:, None] * t1 + np.arange(t1)).reshape(-1)  # split positions, row order
    y = labels[:, positions]  # (n_labels, n)
    p = _inclusion_probabilities(y, max_tokens)
    keep = np.flatnonzero(rng.random(len(p)) < p) if (p < 1).any() else np.arange(len(p))
    w = 1.0 / p[keep]
    return _Half(rows=rows[keep // t1], cols=keep % t1 + 1, weights=w / w.mean(),
                 y=y[:, keep], counts=y.sum(1), n_tokens=len(positions))


def _read_activations(source: NeuronSource, split: TokenSplit, halves: Sequence[_Half],
                      n_ctx: int, bos_id: int, hook: str, layers: Sequence[int],
                      batch_size: int, device, progress: bool) -> None:
    """Run ``source`` once over every row that holds a sampled token; fill each half's ``x``
    ``(n, len(layers) * d_mlp)`` (layer-major columns) in float32."""
    d = source.d_mlp
    for h in halves:
        h.x = np.empty((len(h.rows), len(layers) * d), dtype=np.float32)
    needed = np.unique(np.concatenate([h.rows for h in halves]))
    batches = range(0, len(needed), batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="probe", unit="batch")
    for start in batches:
        batch = needed[start:start + batch_size]
        tokens = get_rows(split, batch, n_ctx, bos_id).to(device)
        acts = source.activations(tokens)[hook]
        per_layer = [acts[l].detach().float().cpu().numpy() for l in layers]  # (B, T, d)
        for h in halves:
            take = np.flatnonzero((h.rows >= batch[0]) & (h.rows <= batch[-1]))
            local = np.searchsorted(batch, h.rows[take])
            for i, a in enumerate(per_layer):
                if a.shape[1:] != (n_ctx, d):
                    raise ConfigError(f"the source returned activations of shape {a.shape} for "
                                      f"rows of {n_ctx} tokens; expected (B, {n_ctx}, {d})")
                h.x[take, i * d:(i + 1) * d] = a[local, h.cols[take]]


# --- input checks -------------------------------------------------------------------------------

def _source_n_ctx(source) -> int | None:
    """The context of the ``Transformer`` behind ``source`` (through ``.model`` / ``.source``),
    or None for a source without one (planted neurons)."""
    seen: set[int] = set()
    while source is not None and id(source) not in seen:
        seen.add(id(source))
        model = source if isinstance(source, Transformer) else getattr(source, "model", None)
        if isinstance(model, Transformer):
            return int(model.cfg.n_ctx)
        source = getattr(source, "source", None)
    return None


def _check_labels(labels: Mapping[str, np.ndarray], n_tokens: int) -> tuple[list[str], np.ndarray]:
    if not isinstance(labels, Mapping) or not labels:
        raise ConfigError("labels must be a non-empty dict {name: bool array over the split's "
                          "tokens}, e.g. interp.labels.token_labels(split, tokenizer)")
    names, arrays = [], []
    for name, values in labels.items():
        a = np.asarray(values)
        if a.ndim != 1 or len(a) != n_tokens:
            raise ConfigError(f"label {name!r} has shape {a.shape}, but the split has {n_tokens} "
                              "tokens: give one boolean per token of this split (labels of "
                              "another split, or of the text before tokenising, do not align)")
        if a.dtype != bool:
            if not np.isin(a, (0, 1)).all():
                raise ConfigError(f"label {name!r} must be boolean (or 0/1), got values of "
                                  f"dtype {a.dtype} outside {{0, 1}}")
            a = a.astype(bool)
        names.append(str(name))
        arrays.append(a)
    return names, np.stack(arrays)


def _check_classes(names: list[str], half: _Half, which: str) -> None:
    for name, c in zip(names, half.counts):
        if c == 0 or c == half.n_tokens:
            kind = "positive" if c == 0 else "negative"
            raise ConfigError(
                f"label {name!r} has no {kind} tokens in the {which} rows ({half.n_tokens} "
                "tokens): F1 and AUROC need both classes there; drop the label, or probe a "
                "longer split or a smaller n_ctx")


def _check_ks(ks: Sequence[int], n_features: int, allow_empty: bool = False
              ) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(k) for k in ks}))
    except (TypeError, ValueError):
        raise ConfigError(f"ks must be positive integers, got {ks!r}") from None
    if not out and allow_empty:
        return out
    if not out or out[0] < 1 or any(isinstance(k, bool) for k in ks):
        raise ConfigError(f"ks must be positive integers, got {ks!r}")
    if out[-1] > n_features:
        raise ConfigError(f"k={out[-1]} exceeds the {n_features} neurons probed: use smaller ks")
    return out


# --- the probe ----------------------------------------------------------------------------------

def _probe_labels(names: list[str], fit: _Half, score: _Half, ks: tuple[int, ...],
                  layers: list[int], d_mlp: int, C: float, full: bool = True
                  ) -> tuple[dict[str, LabelProbe], int]:
    """Every label's best neuron, k-sparse probes and full probe (module docstring), from the
    two halves' sampled activations. Returns the results and the count of fits that hit the
    iteration limit."""
    # Standardised on the fitting half (weighted), for the ranking and for lbfgs.
    scaler = StandardScaler().fit(fit.x, sample_weight=fit.weights)
    xs_fit, xs_score = scaler.transform(fit.x), scaler.transform(score.x)
    sorted_fit = _SortedColumns(fit.x, fit.weights)
    neuron_of = [(layers[j // d_mlp], j % d_mlp) for j in range(fit.x.shape[1])]
    not_converged = 0

    def fitted(cols: np.ndarray | None, y_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A logistic regression on ``cols`` (None: all): its scores on the scoring half and
        whether each is above the threshold that maximises F1 on the fitting half."""
        nonlocal not_converged
        x_fit = xs_fit if cols is None else xs_fit[:, cols]
        x_score = xs_score if cols is None else xs_score[:, cols]
        wf = fit.weights
        w_pos, w_all = float(wf[y_fit].sum()), float(wf.sum())
        # balanced on the weighted (whole-half) class sizes: each class half the weight
        balanced = {False: w_all / (2 * (w_all - w_pos)), True: w_all / (2 * w_pos)}
        clf = LogisticRegression(C=C, class_weight=balanced, max_iter=_MAX_ITER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # counted below instead
            clf.fit(x_fit, y_fit, sample_weight=wf)
        not_converged += int(np.max(clf.n_iter_) >= _MAX_ITER)
        _, sign, thr = best_threshold_f1(clf.decision_function(x_fit), y_fit, wf,
                                         both_signs=False)
        s = clf.decision_function(x_score)
        return s, _predict(s, sign[0], thr[0])

    results: dict[str, LabelProbe] = {}
    for i, name in enumerate(names):
        y_fit, y_score = fit.y[i], score.y[i]
        # best single neuron: chosen on the fitting half, scored on the other
        best = sorted_fit.best(y_fit)
        j = int(np.argmax(best.f1))
        sign, thr = int(best.sign[j]), float(best.threshold[j])
        scores = [sign * score.x[:, j]]
        predictions = [_predict(score.x[:, j], sign, thr)]
        # k-sparse: rank by |mean difference| of standardised activations (Gurnee et al.)
        wp = np.where(y_fit, fit.weights, 0.0)
        wn = fit.weights - wp
        diff = wp @ xs_fit / wp.sum() - wn @ xs_fit / wn.sum()
        ranking = np.argsort(-np.abs(diff), kind="stable")
        for cols in [np.sort(ranking[:k]) for k in ks] + ([None] if full else []):
            s, pred = fitted(cols, y_fit)
            scores.append(s)
            predictions.append(pred)
        # One call each for all the probes of this label: the columns share the labels.
        truth = np.repeat(y_score[:, None], len(scores), axis=1)
        if len(scores) > 1:
            f1 = f1_score(truth, np.stack(predictions, 1), average=None,
                          sample_weight=score.weights, zero_division=0.0)
            auroc = roc_auc_score(truth, np.stack(scores, 1), average=None,
                                  sample_weight=score.weights)
        else:  # one column is a binary target to scikit-learn (per class, not per column)
            f1 = [f1_score(y_score, predictions[0], sample_weight=score.weights,
                           zero_division=0.0)]
            auroc = [roc_auc_score(y_score, scores[0], sample_weight=score.weights)]
        results[name] = LabelProbe(
            count=int(score.counts[i]), base_rate=float(score.counts[i] / score.n_tokens),
            f1={k: float(f1[1 + n]) for n, k in enumerate(ks)},
            auroc={k: float(auroc[1 + n]) for n, k in enumerate(ks)},
            neurons={k: [neuron_of[c] for c in ranking[:k]] for k in ks},
            best_neuron=BestNeuron(layer=neuron_of[j][0], neuron=neuron_of[j][1], sign=sign,
                                   threshold=thr, fit_f1=float(best.f1[j]), f1=float(f1[0]),
                                   auroc=float(auroc[0])),
            full_probe_f1=float(f1[-1]) if full else math.nan,
            full_probe_auroc=float(auroc[-1]) if full else math.nan,
            n_fit_positives=int(y_fit.sum()), n_score_positives=int(y_score.sum()))
    return results, not_converged


def sparse_probe(source: NeuronSource | Transformer, split: TokenSplit,
                 labels: Mapping[str, np.ndarray], ks: Sequence[int] = DEFAULT_KS,
                 rows: str = "odd", *, hook: str = "mid", layer: int | None = None,
                 max_tokens: int = MAX_TOKENS, seed: int = 0, n_ctx: int | None = None,
                 bos_id: int = 0, C: float = 1.0, batch_size: int = 16,
                 device: str | torch.device = "cpu", progress: bool = True,
                 meta: dict[str, Any] | None = None, full: bool = True) -> ProbeResult:
    """Probe ``source``'s neurons for every label (module docstring).

    Args:
        source: A ``Transformer`` or any ``NeuronSource`` (planted neurons,
            ``controls.rotated(...)``, ``controls.random_init(...)``).
        split: The token split the labels describe (the validation split).
        labels: ``{name: (split.n_tokens,) bool}``, one entry per token of ``split``
            (``interp.labels.token_labels``); each label needs positive and negative tokens
            in both halves.
        ks: Sizes of the sparse probes.
        rows: The half scored on: ``"odd"`` (fit on even rows, as the harvest selects) or
            ``"even"``.
        hook: ``"mid"`` (what the paper interprets) or ``"post"``; a source without an extra
            LN has no ``"post"`` and is read at ``"mid"``, which is the same activation.
        layer: Probe one layer; ``None``: all layers' neurons together, named (layer, neuron).
        max_tokens: Token budget of each half's stratified sample (``MAX_TOKENS``).
        seed: Seed of the token sample (the fits are deterministic).
        n_ctx: Row length with BOS; ``None``: the context of the source's model (a source
            without a model, such as planted neurons, needs it).
        bos_id: Token at column 0 of every row (the corpus' ``bos_id``).
        C: Inverse L2 strength of every logistic regression, on standardised activations.
        batch_size: Rows per forward pass.
        device: Where the source runs; the probes run on the CPU.
        progress: Show a progress bar over the forward passes.
        meta: Extra metadata stored with the result (model name, control, ...).
        full: Fit the full probe (the ceiling). ``full=False`` with ``ks=()`` measures the best
            single neuron of each label only (the metrics over training need no more), with
            NaN for the full probe.

    Returns:
        ``ProbeResult``.

    Raises:
        ConfigError: Labels that do not match the split or lack a class in a half, an unknown
            hook or layer, bad ks, rows, max_tokens or n_ctx.
    """
    started = time.perf_counter()
    if hook not in HOOKS:
        raise ConfigError(f"unknown hook {hook!r}: choose one of {HOOKS}")
    if rows not in ("odd", "even"):
        raise ConfigError(f"rows is the half scored on, 'odd' or 'even', got {rows!r} (the "
                          "other half fits the probes; the two must not overlap)")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) \
            or max_tokens < 100:
        raise ConfigError(f"max_tokens must be an integer >= 100, got {max_tokens!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(source, Transformer):
        source = ModelNeurons(source.to(device).eval())
    read = hook if hook in source.hooks else "mid"
    if read not in source.hooks:
        raise ConfigError(f"the source has hooks {tuple(source.hooks)}, not {hook!r}")
    layers = list(range(source.n_layers)) if layer is None else [layer]
    if layer is not None and not 0 <= layer < source.n_layers:
        raise ConfigError(f"layer must be in [0, {source.n_layers}) or None, got {layer!r}")
    model_ctx = _source_n_ctx(source)
    if n_ctx is None:
        if model_ctx is None:
            raise ConfigError("pass n_ctx (row length with BOS): this source has no model "
                              "whose context could be used")
        n_ctx = model_ctx
    if model_ctx is not None and n_ctx > model_ctx:
        raise ConfigError(f"n_ctx={n_ctx} exceeds the model's context {model_ctx}")
    ks = _check_ks(ks, len(layers) * source.d_mlp, allow_empty=not full)
    names, label_matrix = _check_labels(labels, split.n_tokens)

    n_rows = num_rows(split, n_ctx)
    fit_part = "even" if rows == "odd" else "odd"
    rng = np.random.default_rng(int(seed))
    fit = _sample_half(selection_rows(n_rows, fit_part), label_matrix, n_ctx, max_tokens, rng)
    score = _sample_half(selection_rows(n_rows, rows), label_matrix, n_ctx, max_tokens, rng)
    _check_classes(names, fit, f"fitting ({fit_part})")
    _check_classes(names, score, f"scoring ({rows})")
    for half, which in ((fit, "fitting"), (score, "scoring")):
        kept = half.y.sum(1)
        short = [n for n, c in zip(names, kept) if c == 0 or c == half.y.shape[1]]
        if short:
            raise ConfigError(
                f"the {which} sample kept no token of one class of labels {short}: each label "
                f"keeps about max_tokens / (4 x {len(names)} labels) = "
                f"{max_tokens / (4 * len(names)):.1f} tokens of each class; raise max_tokens")
    _read_activations(source, split, (fit, score), n_ctx, bos_id, read, layers, batch_size,
                      device, progress)
    # One BLAS thread: most fits are small, and on shared cores threads spin-wait more than
    # they help (a probe ran 5x slower with the default threads on 2 busy cores).
    with threadpool_limits(limits=1):
        results, not_converged = _probe_labels(names, fit, score, ks, layers, source.d_mlp, C,
                                               full)

    info = {"hook": hook, "hook_read": read, "layers": layers, "ks": list(ks), "rows": rows,
            "fit_rows": fit_part, "n_ctx": int(n_ctx), "bos_id": int(bos_id),
            "max_tokens": int(max_tokens), "seed": int(seed), "C": float(C),
            "full": bool(full), "n_neurons": int(fit.x.shape[1]), "n_fit_tokens": int(len(fit.rows)),
            "n_score_tokens": int(len(score.rows)), "fit_half_tokens": fit.n_tokens,
            "score_half_tokens": score.n_tokens, "not_converged": not_converged,
            "split": Path(str(getattr(split, "directory", ""))).name,
            "seconds": round(time.perf_counter() - started, 3), **(meta or {})}
    return ProbeResult(results, info)
