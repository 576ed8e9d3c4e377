"""A rotation-fair judge score: each feature counted once, not once per direction.

The judge (``score.score_neurons``) counts directions: a basis is interpretable in proportion
to how many of its directions pass the top-20 rule. A random rotation fools that count when
one feature carries much of the variance. Each rotated direction is dominated, at each token,
by the one large neuron active there, so many rotated directions re-expose the same frequent
token, and each of them counts again. This module scores a basis by the *features* it
exposes, in two ways.

**Simulation.** Each direction's chosen explanation (picked by the judge on the selection
rows) becomes a simulator of its activation, as in OpenAI's automated interpretability
(Bills et al. 2023, ``scoring.py``: the correlation between simulated and true activations).
The simulator predicts a constant ``m > 0`` where the explanation holds and 0 elsewhere:
the judge chose the explanation to cover the direction's top, positive, firings. Pearson's
correlation does not depend on ``m``, so the simulator needs no fit: its score on the
held-out tokens is the correlation of the explanation's indicator with the activation
(``simulate``). ``max(r, 0)**2`` is the share of the direction's held-out variance that the
simulation explains after a least-squares scale. A simulator that anticorrelates explains
none, because its scale would have to be negative, against its own explanation.

**Features exposed.** The features are the union of the explanations the judge chose in
this basis and in the basis it is compared with (``explanations=``: pass the other basis's
``NeuronScores``, so the basis and its rotated null are scored over one union). For each
feature, the best squared correlation that any *single* direction reaches between the
feature's indicator and the direction's held-out activation (either sign: a direction that
is reliably low where the feature holds exposes it too). ``features_exposed`` is the mean
over the union, ``n_features_exposed`` the number above ``EXPOSED`` (0.5). A feature that
ten directions re-expose counts once.

Beside them, as in the issue's table: ``explained_variance`` (each direction's simulation
r², weighted by the direction's held-out variance), ``mean_direction_r2`` (the unweighted
per-direction mean, which stays partly fooled wherever one feature carries much of the
variance), and ``distinct_explanations`` among the directions the judge calls
interpretable.

Cost: one pass of ``source`` over the judge's held-out rows (at most ``max_tokens`` of
them; a seeded subset of whole rows beyond that), plus a ``(features x d_mlp)`` product per
batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse
import torch
from torch import Tensor

from ..atomic import read_json, write_json
from ..data import TokenSplit, get_rows, num_rows
from ..model import ConfigError, Transformer
from .explanations import KINDS, Explanation, PositionFeatures, VocabTables
from .controls import RotatedNeurons
from .harvest import ModelNeurons, NeuronSource, _resolve_rows
from .score import NeuronScores, heldout_features

EXPOSED = 0.5
"""A feature is exposed when some single direction's r² with its indicator exceeds this."""

DEFAULT_MAX_TOKENS = 1 << 18
"""Held-out tokens read at most (262,144): more than the cpu book's held-out half of the
validation split (about 93,000 tokens), so at that scale every held-out row is read."""

BASIS_SCORE_FORMAT = 1

# Agreement needed between the judge's recorded held-out correlations and this pass's, when
# both read the same rows: the median over directions of |r_judge - r_here|. A source whose
# activations carry fresh noise on every call (``planted.PlantedNeurons``) differs by far
# less; the scores of another source (another seed, the unrotated basis) by far more.
_FINGERPRINT_TOLERANCE = 0.02


@dataclass(eq=False)
class BasisScore:
    """A basis scored by the features it exposes (module docstring).

    Arrays are indexed by the union's features ``U`` and by the basis's ``L`` layers and
    ``D`` directions per layer.

    Attributes:
        features: ``(U,)`` explanation keys (``Explanation.key()``) of the union, sorted.
        feature_text: ``(U,)`` each feature as a sentence.
        best_r2: ``(U,)`` the best squared correlation any single direction reaches with the
            feature's indicator on the held-out tokens (0 for a feature absent there).
        best_direction: ``(U, 2)`` ``(layer, direction)`` reaching it (-1: none).
        n_exposing: ``(U,)`` how many directions exceed ``exposure_threshold`` on it.
        simulator_r: ``(L, D)`` Pearson r of each direction's simulator with its held-out
            activation (NaN for a dead direction, or a constant one).
        variance: ``(L, D)`` each direction's held-out variance.
        features_exposed: Mean of ``best_r2`` over the union.
        n_features_exposed: Features whose ``best_r2`` exceeds ``exposure_threshold``.
        explained_variance: ``sum(variance * r2) / sum(variance)``, ``r2 = max(r, 0)**2``.
        mean_direction_r2: Unweighted mean of ``r2`` over all ``L * D`` directions (dead ones
            count 0, as the judge counts them not interpretable).
        distinct_explanations: Distinct explanations among the directions the judge calls
            interpretable (top-20 view).
        n_interpretable: Directions the judge calls interpretable (top-20 view).
        n_tokens: Held-out tokens read.
        n_rows: Held-out rows read.
        hook: The hook scored.
        exposure_threshold: ``EXPOSED`` when computed.
        meta: Where it came from: the scores' ``name`` (and ``control``, ``control_seed``),
            the settings of this pass, whether the judge's correlations were checked.
    """

    features: list[str]
    feature_text: list[str]
    best_r2: np.ndarray
    best_direction: np.ndarray
    n_exposing: np.ndarray
    simulator_r: np.ndarray
    variance: np.ndarray
    features_exposed: float
    n_features_exposed: int
    explained_variance: float
    mean_direction_r2: float
    distinct_explanations: int
    n_interpretable: int
    n_tokens: int
    n_rows: int
    hook: str
    exposure_threshold: float = EXPOSED
    meta: dict[str, Any] = field(default_factory=dict)

    _ARRAYS: ClassVar[dict[str, type]] = {
        "best_r2": np.float64, "best_direction": np.int64, "n_exposing": np.int64,
        "simulator_r": np.float64, "variance": np.float64}

    def __repr__(self) -> str:
        return (f"BasisScore({self.meta.get('name') or '?'}: {self.n_features_exposed}/"
                f"{len(self.features)} features exposed (mean best r² "
                f"{self.features_exposed:.2f}), explained variance "
                f"{self.explained_variance:.2f}, per-direction r² {self.mean_direction_r2:.2f}, "
                f"{self.distinct_explanations} distinct explanations)")

    @property
    def direction_r2(self) -> np.ndarray:
        """``(L, D)`` the share of each direction's variance its simulator explains:
        ``max(r, 0)**2``, 0 where ``simulator_r`` is NaN."""
        return np.nan_to_num(np.clip(self.simulator_r, 0.0, None)) ** 2

    def summary(self) -> dict[str, float | int]:
        """The four numbers of the issue's table, and the counts beside them."""
        return {"features_exposed": self.features_exposed,
                "n_features_exposed": self.n_features_exposed, "n_features": len(self.features),
                "explained_variance": self.explained_variance,
                "mean_direction_r2": self.mean_direction_r2,
                "distinct_explanations": self.distinct_explanations,
                "n_interpretable": self.n_interpretable}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays as nested lists, NaN as ``None``."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._ARRAYS:
            d[name] = np.asarray(d[name]).tolist()
        return _json_safe({"format": BASIS_SCORE_FORMAT, **d})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BasisScore":
        if d.get("format") != BASIS_SCORE_FORMAT:
            raise ConfigError(f"basis score format {d.get('format')!r} is not "
                              f"{BASIS_SCORE_FORMAT}: compute it again with basis_score")
        names = {f.name for f in fields(cls)}
        missing = names - set(d) - {"exposure_threshold", "meta"}
        if missing:
            raise ConfigError(f"basis score lacks {sorted(missing)}: compute it again")
        kw = {k: v for k, v in d.items() if k in names}
        for name, dtype in cls._ARRAYS.items():
            kw[name] = np.array(_nan_back(kw[name]), dtype=dtype)
        for name in ("features_exposed", "explained_variance", "mean_direction_r2"):
            kw[name] = math.nan if kw[name] is None else float(kw[name])
        return cls(**kw)

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "BasisScore":
        return read_json(path, cls.from_dict, "basis score",
                         "compute it with basis_score and save it", ConfigError)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _nan_back(obj):
    if obj is None:
        return math.nan
    if isinstance(obj, list):
        return [_nan_back(v) for v in obj]
    return obj


def simulate(explanation: Explanation, features: PositionFeatures, tables: VocabTables,
             scale: float = 1.0) -> np.ndarray:
    """An explanation's simulation of a direction's activation: ``scale`` where the
    explanation holds, 0 elsewhere.

    Args:
        explanation: The judge's chosen explanation.
        features: ``PositionFeatures`` of ``P`` positions.
        tables: ``VocabTables`` of the corpus tokenizer.
        scale: The predicted activation where it holds (Pearson's r ignores any ``scale > 0``).

    Returns:
        ``(P,)`` float64 simulated activations.
    """
    return scale * explanation.holds(features, tables).astype(np.float64)


class HeldoutCorrelations:
    """Pearson correlations between ``U`` indicators and ``D`` activations, streamed.

    Sums are kept in float64 around a per-direction shift (the first batch's mean), so the
    moments stay accurate over many tokens whatever the activations' offset. ``U`` features,
    ``D`` directions; memory ``O(U * D)``, whatever the number of tokens.
    """

    def __init__(self, n_features: int, n_directions: int):
        U, D = n_features, n_directions
        self.n = 0
        self.shift: np.ndarray | None = None
        self.h = np.zeros(U)  # sum of indicators
        self.a = np.zeros(D)  # sum of shifted activations
        self.a2 = np.zeros(D)  # ... of their squares
        self.ha = np.zeros((U, D))  # sum of indicator x shifted activation

    def update(self, holds: np.ndarray | Tensor, acts: np.ndarray | Tensor) -> None:
        """Fold in a batch: ``holds`` ``(P, U)`` booleans, ``acts`` ``(P, D)``."""
        h = holds.numpy() if isinstance(holds, Tensor) else np.asarray(holds)
        a = (acts.detach().cpu().double().numpy() if isinstance(acts, Tensor)
             else np.asarray(acts, dtype=np.float64))
        if h.ndim != 2 or a.ndim != 2 or h.shape[0] != a.shape[0]:
            raise ValueError(f"holds (P, U) and acts (P, D) must share P, got "
                             f"{h.shape} and {a.shape}")
        if h.shape[1] != len(self.h) or a.shape[1] != len(self.a):
            raise ValueError(f"expected {len(self.h)} features and {len(self.a)} directions, "
                             f"got {h.shape[1]} and {a.shape[1]}")
        if self.shift is None:
            self.shift = a.mean(0)
        a = a - self.shift
        self.n += a.shape[0]
        self.h += h.sum(0)
        self.a += a.sum(0)
        self.a2 += (a * a).sum(0)
        # Most features hold at few tokens: a sparse product, exact in float64.
        self.ha += scipy.sparse.csc_matrix(h, dtype=np.float64).T @ a

    def variance(self) -> np.ndarray:
        """``(D,)`` each direction's variance over the tokens seen."""
        n = max(self.n, 1)
        mean = self.a / n
        return np.clip(self.a2 / n - mean * mean, 0.0, None)

    def correlation(self) -> np.ndarray:
        """``(U, D)`` Pearson r; NaN where an indicator or an activation is constant."""
        n = max(self.n, 1)
        p, mean = self.h / n, self.a / n
        cov = self.ha / n - p[:, None] * mean[None, :]
        denom = np.sqrt((p * (1 - p))[:, None] * self.variance()[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(denom > 0, cov / denom, math.nan)
        return np.clip(r, -1.0, 1.0)


def _explanation_keys(explanations) -> list[str]:
    if explanations is None:
        return []
    if isinstance(explanations, NeuronScores):
        return [r.explanation for r in explanations.records if _key_or_none(r.explanation)]
    if isinstance(explanations, (str, Explanation)):
        explanations = [explanations]
    keys = []
    for e in explanations:
        if isinstance(e, Explanation):
            e = e.key()
        if not isinstance(e, str):
            raise ConfigError(f"explanations must be NeuronScores, Explanation objects or "
                              f"Explanation.key() strings, got {type(e).__name__}")
        try:
            kind = Explanation.from_key(e).kind
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{e!r} is not an Explanation.key(): pass the other basis's "
                              "NeuronScores, or its records' .explanation") from exc
        if kind not in KINDS:
            raise ConfigError(f"explanation {e!r} has unknown kind {kind!r}: kinds are {KINDS}")
        keys.append(e)
    return keys


def _key_or_none(key) -> str | None:
    return key if isinstance(key, str) and key else None


def _judge_meta(scores: NeuronScores, source: NeuronSource, split: TokenSplit,
                hook: str) -> tuple[dict, dict]:
    """The judge's settings and harvest metadata, checked against this source and split."""
    if hook not in ("mid", "post"):
        raise ConfigError(f"hook must be 'mid' or 'post', got {hook!r}")
    settings, harvest = scores.meta.get("settings"), scores.meta.get("harvest")
    if not isinstance(settings, dict) or not isinstance(harvest, dict):
        raise ConfigError("the scores lack the judge's settings and harvest metadata: pass the "
                          "NeuronScores that score_neurons (or score_run, score_control) returned")
    shape = (harvest.get("n_layers"), harvest.get("d_mlp"))
    if shape != (source.n_layers, source.d_mlp) or len(scores.records) != math.prod(
            (source.n_layers, source.d_mlp)):
        raise ConfigError(f"the scores are of a source with (n_layers, d_mlp) = {shape} "
                          f"({len(scores.records)} records), but this source has "
                          f"{(source.n_layers, source.d_mlp)}: pass the scores of this source")
    split_name = Path(str(getattr(split, "directory", ""))).name
    if harvest.get("split") not in (None, split_name):
        raise ConfigError(f"the scores were computed on split {harvest.get('split')!r}, not "
                          f"{split_name!r}: pass the split the judge read")
    if settings.get("hook", "mid") != hook:
        raise ConfigError(f"the judge chose its explanations on hook {settings.get('hook')!r}, "
                          f"not {hook!r}: pass hook={settings.get('hook')!r}")
    control = scores.meta.get("control")
    seed = getattr(source, "seed", None)
    rotated_source = isinstance(source, RotatedNeurons)
    if control == "rotated" and not rotated_source:
        raise ConfigError("the scores are of a rotated null but the source is not rotated: "
                          "pass controls.rotated(source, seed) as the source")
    if rotated_source and control not in (None, "rotated"):
        raise ConfigError(f"the source is a rotation but the scores are of control "
                          f"{control!r}: pass the rotated null's scores")
    if rotated_source and control is None and "scale" in scores.meta:
        raise ConfigError(f"the source is a rotation but the scores are of the run "
                          f"{scores.meta.get('name')!r} itself: pass score_control(run, "
                          "'rotated', seed=...)'s scores")
    if control == "rotated" and scores.meta.get("control_seed") not in (None, seed):
        raise ConfigError(f"the scores are of rotation seed {scores.meta.get('control_seed')}, "
                          f"the source is rotation seed {seed}: rotate with the same seed")
    return settings, harvest


def basis_score(scores: NeuronScores, source: NeuronSource | Transformer, split: TokenSplit,
                tables: VocabTables, *,
                explanations: NeuronScores | Iterable[str | Explanation] | None = None,
                hook: str = "mid", max_tokens: int | None = DEFAULT_MAX_TOKENS, seed: int = 0,
                batch_size: int = 16, device: str | torch.device = "cpu",
                progress: bool = False) -> BasisScore:
    """Score a basis by the features it exposes, each counted once (module docstring).

    Args:
        scores: The judge's ``NeuronScores`` of ``source`` (``score_neurons``): each
            direction's explanation, chosen on the selection rows.
        source: The basis: a ``NeuronSource`` (a model's ``ModelNeurons``, a
            ``controls.rotated`` null, planted neurons) or a ``Transformer``.
        split: The token split the judge read.
        tables: ``VocabTables`` of the corpus tokenizer.
        explanations: The other basis's explanations (its ``NeuronScores``, or keys), joined
            to this basis's into the union of features; ``None``: this basis's alone.
        hook: The hook the judge scored (``"mid"``: what the paper interprets).
        max_tokens: Held-out tokens read at most; beyond it, a ``seed``-ed random subset of the
            judge's held-out rows (whole rows, at least one). ``None``: all of them. The
            judge's recorded correlations are checked against this source only when every
            held-out row is read.
        seed: Seed of that subset.
        batch_size: Rows per forward pass.
        device: Where the source runs.
        progress: Show a progress bar.

    Returns:
        A ``BasisScore``.

    Raises:
        ConfigError: The scores are not of this source (shape, split, hook, rotation seed, or
            held-out correlations that this source does not reproduce), or the union of
            explanations is empty (every direction of both bases dead).
    """
    if isinstance(source, Transformer):
        source = ModelNeurons(source.to(device).eval())
    if not isinstance(scores, NeuronScores):
        raise ConfigError(f"scores must be the judge's NeuronScores, got {type(scores).__name__}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or max_tokens < 1):
        raise ConfigError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")
    settings, harvest = _judge_meta(scores, source, split, hook)
    read_hook = hook if hook in source.hooks else "mid"  # as the judge does: post is mid here
    L, D = source.n_layers, source.d_mlp
    n_ctx, bos_id = int(harvest["n_ctx"]), int(harvest.get("bos_id", 0))
    T1 = n_ctx - 1

    # a dead direction has no explanation (None; NaN once its scores went through JSON)
    own = [[_key_or_none(scores.get(l, d).explanation) for d in range(D)] for l in range(L)]
    union = sorted({k for layer in own for k in layer if k} | set(_explanation_keys(explanations)))
    if not union:
        raise ConfigError("no explanations to score: every direction of this basis (and of the "
                          "basis passed as explanations=) is dead, so there is no feature to "
                          "look for; score a source whose neurons fire")
    index = {k: i for i, k in enumerate(union)}
    objs = [Explanation.from_key(k) for k in union]

    judge_rows, _ = _resolve_rows(settings.get("heldout_rows", "odd"), num_rows(split, n_ctx),
                                  settings.get("max_heldout_rows"))
    if scores.meta.get("n_heldout_rows") not in (None, len(judge_rows)):
        raise ConfigError(f"the judge held out {scores.meta['n_heldout_rows']} rows but this "
                          f"split gives {len(judge_rows)}: pass the split the judge read")
    rows = judge_rows
    if max_tokens is not None and len(rows) * T1 > max_tokens:
        keep = max(1, max_tokens // T1)
        rows = np.sort(np.random.default_rng(seed).choice(rows, keep, replace=False))
    held = heldout_features(split, tables, rows, n_ctx)

    moments = [HeldoutCorrelations(len(union), D) for _ in range(L)]
    batches = range(0, len(rows), batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="basis score", unit="batch")
    for start in batches:
        batch_rows = rows[start:start + batch_size]
        tokens = get_rows(split, batch_rows, n_ctx, bos_id).to(device)
        acts = source.activations(tokens)[read_hook]
        f = held.take(slice(start * T1, (start + len(batch_rows)) * T1))
        holds = np.stack([e.holds(f, tables) for e in objs], axis=1)  # (P, U)
        for l in range(L):
            moments[l].update(holds, acts[l][:, 1:].reshape(-1, D))

    corr = np.stack([m.correlation() for m in moments])  # (L, U, D)
    variance = np.stack([m.variance() for m in moments])  # (L, D)
    simulator_r = np.full((L, D), math.nan)
    for l in range(L):
        for d, key in enumerate(own[l]):
            if key:
                simulator_r[l, d] = corr[l, index[key], d]  # the simulator's scale drops out

    checked = bool(np.array_equal(rows, judge_rows))
    if checked:
        _check_fingerprint(scores, simulator_r)

    r2 = np.nan_to_num(corr) ** 2  # (L, U, D), either sign
    flat = r2.transpose(1, 0, 2).reshape(len(union), L * D)  # (U, L*D)
    best_flat = flat.argmax(1)
    best_r2 = flat[np.arange(len(union)), best_flat]
    best_direction = np.stack([best_flat // D, best_flat % D], axis=1)
    best_direction[best_r2 <= 0] = -1
    n_exposing = (flat > EXPOSED).sum(1)

    direction_r2 = np.nan_to_num(np.clip(simulator_r, 0.0, None)) ** 2
    total = float(variance.sum())
    interpretable = [r for r in scores.records if r.interpretable and r.explanation]
    meta = {k: scores.meta[k] for k in ("name", "control", "control_seed", "scale", "act_fn")
            if k in scores.meta}
    meta.update({"max_tokens": max_tokens, "seed": seed, "heldout_rows":
                 settings.get("heldout_rows", "odd"), "n_judge_rows": len(judge_rows),
                 "checked_against_judge": checked,
                 "n_own_features": len({k for layer in own for k in layer if k})})
    return BasisScore(
        features=union, feature_text=[e.text(tables) for e in objs], best_r2=best_r2,
        best_direction=best_direction, n_exposing=n_exposing, simulator_r=simulator_r,
        variance=variance, features_exposed=float(best_r2.mean()),
        n_features_exposed=int((best_r2 > EXPOSED).sum()),
        explained_variance=float((variance * direction_r2).sum() / total) if total > 0
        else math.nan,
        mean_direction_r2=float(direction_r2.mean()),
        distinct_explanations=len({r.explanation for r in interpretable}),
        n_interpretable=len(interpretable), n_tokens=int(len(rows) * T1), n_rows=len(rows),
        hook=hook, meta=meta)


def _check_fingerprint(scores: NeuronScores, simulator_r: np.ndarray) -> None:
    """The judge recorded each direction's held-out correlation with its explanation; on the
    same rows this source must reproduce it, or the scores are of another source."""
    L, D = simulator_r.shape
    judge = np.array([[scores.get(l, d).correlation for d in range(D)] for l in range(L)],
                     dtype=np.float64)
    both = np.isfinite(judge) & np.isfinite(simulator_r)
    if not both.any():
        return
    gap = float(np.median(np.abs(judge[both] - simulator_r[both])))
    if gap > _FINGERPRINT_TOLERANCE:
        raise ConfigError(
            f"these scores are not of this source: on the judge's own held-out rows its "
            f"explanations correlate with this source's directions differently (median "
            f"|r_judge - r_here| = {gap:.3f} > {_FINGERPRINT_TOLERANCE}); pass the scores "
            "score_neurons gave for this very source (for a rotated null, the same rotation "
            "seed)")
