"""The rotation-fair instruments on zoo runs and their null controls, each cached beside the run.

Three instruments read a model's MLP basis (``hook_mid``, what the paper interprets):

* the judge (``score.score_run`` / ``controls.score_control``): the paper's per-neuron view;
* the rotation-fair judge score (``basis_score.basis_score``), each feature counted once:
  ``basis_score_run``;
* sparse probing against ground-truth labels (``probing.sparse_probe`` on
  ``labels.labels_for``): ``probe_run``;

and ``judge_agreement`` checks the judge's explanations against the labels. Each is computed
on the run's own basis (``control=None``) or on a null control of it (``"rotated"``,
``"random_init"``: ``controls.control_source``), and saved atomically under
``<run_dir>/instruments/``, keyed by the run's weights and corpus, the control and its seed,
and the instrument's settings; a cached file is reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..atomic import read_json, write_json
from ..data import num_rows
from ..model import ConfigError
from .basis_score import BASIS_SCORE_FORMAT, BasisScore, basis_score
from .controls import CONTROLS_FORMAT, _control_seed, control_source, score_control
from .harvest import ModelNeurons, weights_digest
from .labels import LABELS, LABELS_VERSION, labels_for
from .probing import DEFAULT_KS, PROBE_FORMAT, ProbeResult, best_threshold_f1, sparse_probe
from .score import NeuronScores, ScoreSettings, score_run

PROBE_TOKENS = 4_000
"""Each half's token budget for the book's probes (``sparse_probe``'s ``max_tokens``), under the
library default of 20,000 so that 36 probes of the cpu zoo's 1-layer models fit the book's
time budget. The sample is stratified (every label keeps at least 4,000 / (4 x 18) = 55
tokens of each class) and weighted back to the whole half. On the cpu 1L SoLU-LN, 10,000 tokens
gave a mean best single-neuron F1 of 0.347 and a mean full-probe F1 of 0.540 over the 18
labels; 6,000 gave 0.340 and 0.518, in 64% of the time."""

MIN_POSITIVES = 20
"""A label is probed only where both halves of the split hold at least this many positive
tokens (the tiny corpus lacks f-strings and quotations, for instance)."""

NULLS = ("rotated", "random_init")
"""The null controls: a random rotation of the basis, and the same architecture untrained."""

UNION = (None, "rotated")
"""The bases whose explanations make the rotation-fair score's features: the run's own and its
rotation's, the version of the score the planted rotation test checks
(``calibration.rotation_test`` scores a basis and its rotation over their union)."""

INSTRUMENTS_FORMAT = 1


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _source(run, control: str | None, seed: int, device):
    if control is None:
        return ModelNeurons(run.load_model(device).eval())
    return control_source(run, control, seed, device)


def _run_key(run, control: str | None, seed: int) -> dict[str, Any]:
    return {"weights": weights_digest(run), "data": run.result.get("data_hash"),
            "control": control, "controls_format": CONTROLS_FORMAT,
            "control_seed": None if control is None else _control_seed(run, control, seed),
            "model": run.config.model.to_dict() if control == "random_init" else None,
            "format": INSTRUMENTS_FORMAT}


def _judge(run, control: str | None, settings: ScoreSettings, seed: int, progress: bool,
           data_dir) -> NeuronScores:
    if control is None:
        return score_run(run, settings, seed=seed, progress=progress, data_dir=data_dir)
    return score_control(run, control, settings, seed=seed, progress=progress,
                         data_dir=data_dir)


# --- ground-truth labels ----------------------------------------------------------------------
def probe_labels(corpus, n_ctx: int, min_positives: int = MIN_POSITIVES
                 ) -> dict[str, np.ndarray]:
    """The validation split's ground-truth labels (``labels.labels_for``) that hold, and fail, on
    at least ``min_positives`` tokens of both halves of its rows (even: fitting, odd: scoring),
    in ``labels.LABELS`` order."""
    labels = labels_for(corpus, "val")
    split = corpus.split("val")
    n = num_rows(split, n_ctx) * (n_ctx - 1)
    odd = (np.arange(n) // (n_ctx - 1)) % 2 == 1
    out = {}
    for name in LABELS:
        y = np.asarray(labels[name][:n], dtype=bool)
        counts = (int(y[odd].sum()), int(y[~odd].sum()), int((~y[odd]).sum()),
                  int((~y[~odd]).sum()))
        if min(counts) >= min_positives:  # both classes, in both halves
            out[name] = np.asarray(labels[name], dtype=bool)
    return out


def run_probe_labels(run, corpus) -> dict[str, np.ndarray]:
    """``probe_labels`` of a run's corpus at its ``n_ctx``; ``ConfigError`` when none holds."""
    labels = probe_labels(corpus, run.config.model.n_ctx)
    if not labels:
        raise ConfigError(f"no ground-truth label has {MIN_POSITIVES} positive tokens in both "
                          f"halves of {run.name}'s validation split: use a larger corpus")
    return labels


# --- sparse probing ---------------------------------------------------------------------------
def probe_path(run, control: str | None = None, *, seed: int = 0,
               max_tokens: int = PROBE_TOKENS, ks: Sequence[int] = DEFAULT_KS,
               labels: Sequence[str] = (), full: bool = True) -> Path:
    """Where ``probe_run`` keeps a run's (or a null's) probe result."""
    key = {**_run_key(run, control, seed), "probe_format": PROBE_FORMAT, "seed": int(seed),
           "max_tokens": int(max_tokens), "ks": [int(k) for k in ks], "labels": list(labels),
           "labels_version": LABELS_VERSION, **({} if full else {"full": False})}
    return Path(run.run_dir) / "instruments" / f"{control or 'basis'}-probe-{_digest(key)}.json"


def probe_run(run, control: str | None = None, *, seed: int = 0,
              max_tokens: int = PROBE_TOKENS, ks: Sequence[int] = DEFAULT_KS,
              device: str | torch.device = "cpu", progress: bool = True, data_dir=None,
              rebuild: bool = False, full: bool = True) -> ProbeResult:
    """Sparse probing of a run's ``hook_mid`` neurons (``control=None``) or of a null control's
    directions against the corpus's ground-truth labels (``probe_labels``), cached.

    ``seed`` is the token sample's and the rotation's (the same seed as ``score_control``'s,
    so the rotation probed is the one the judge scored). ``ks=()`` with ``full=False``: each
    label's best single neuron only (``sparse_probe``), what the metrics over training read.
    """
    corpus = run.corpus(data_dir)
    n_ctx = run.config.model.n_ctx
    labels = run_probe_labels(run, corpus)
    path = probe_path(run, control, seed=seed, max_tokens=max_tokens, ks=ks, labels=list(labels),
                      full=full)
    if path.is_file() and not rebuild:
        return ProbeResult.load(path)
    result = sparse_probe(_source(run, control, seed, device), corpus.split("val"), labels, ks,
                          hook="mid", max_tokens=max_tokens, seed=seed, n_ctx=n_ctx,
                          bos_id=corpus.bos_id, device=device, progress=progress,
                          meta={"name": run.name, "control": control}, full=full)
    result.save(path)
    return result


# --- the rotation-fair judge score ----------------------------------------------------------
def basis_score_path(run, control: str | None = None, *, seed: int = 0,
                     settings: ScoreSettings = ScoreSettings(),
                     union: Sequence[str | None] = UNION) -> Path:
    """Where ``basis_score_run`` keeps a run's (or a null's) rotation-fair score."""
    key = {**_run_key(run, control, seed), "basis_score_format": BASIS_SCORE_FORMAT,
           "seed": int(seed), "settings": settings.key(), "union": list(union)}
    return Path(run.run_dir) / "instruments" / f"{control or 'basis'}-fair-{_digest(key)}.json"


def basis_score_run(run, control: str | None = None, *, seed: int = 0,
                    settings: ScoreSettings = ScoreSettings(),
                    union: Sequence[str | None] = UNION,
                    device: str | torch.device = "cpu", progress: bool = True,
                    data_dir=None, rebuild: bool = False) -> BasisScore:
    """The rotation-fair judge score of a run's basis (``control=None``) or of a null control,
    cached: every basis in ``union`` (``None``: the run's own) is judged, and each is scored
    over the union of their explanations, so the basis and its nulls are scored over one set
    of features."""
    if control not in union:
        raise ConfigError(f"the union {list(union)} must include the basis scored ({control!r})")
    path = basis_score_path(run, control, seed=seed, settings=settings, union=union)
    if path.is_file() and not rebuild:
        return BasisScore.load(path)
    judged = {c: _judge(run, c, settings, seed, progress, data_dir) for c in union}
    others = sorted({r.explanation for c, s in judged.items() if c != control
                     for r in s.records if isinstance(r.explanation, str) and r.explanation})
    corpus = run.corpus(data_dir)
    from .explanations import VocabTables

    result = basis_score(judged[control], _source(run, control, seed, device),
                         corpus.split("val"), VocabTables(corpus.tokenizer),
                         explanations=others, hook=settings.hook, seed=seed, device=device,
                         progress=progress)
    result.save(path)
    return result


# --- the judge checked against the ground truth ----------------------------------------------
AGREEMENT_FORMAT = 2  # 2: thresholds chosen on the even rows, firing high only
AGREE_F1 = 0.5
"""An explanation *names* a label when its indicator matches the label with F1 at least this
on the held-out tokens; a neuron *reads* a label when its activation, at its best threshold,
does."""


@dataclass(frozen=True)
class JudgeAgreement:
    """The judge's explanations against the ground-truth labels, for one basis.

    Attributes:
        n_interpretable: Neurons the judge calls interpretable (top-20 view).
        named: ``{(layer, neuron): label}``: interpretable neurons whose explanation names a
            label (its indicator matches the label with F1 >= ``AGREE_F1`` on held-out tokens).
        confirmed: Those of ``named`` whose activation reads that label: firing high where it
            holds, with F1 >= ``AGREE_F1`` on held-out (odd) rows at a threshold chosen on the
            selection (even) rows.
        read: Labels that some single neuron reads (the probe's best neuron, held-out F1 >=
            ``AGREE_F1``).
        found: Those of ``read`` that some confirmed neuron names.
        label_f1: ``{label: held-out F1 of the probe's best neuron}``.
    """

    n_interpretable: int
    named: dict[tuple[int, int], str]
    confirmed: list[tuple[int, int]]
    read: list[str]
    found: list[str]
    label_f1: dict[str, float]

    @property
    def precision(self) -> float:
        """Of the interpretable neurons whose explanation names a label, the share that read it
        (nan when none names one)."""
        return len(self.confirmed) / len(self.named) if self.named else float("nan")

    @property
    def recall(self) -> float:
        """Of the labels a single neuron reads, the share that a neuron the judge explains
        names and reads (nan when no neuron reads any)."""
        return len(self.found) / len(self.read) if self.read else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"n_interpretable": self.n_interpretable,
                "named": [[l, n, lab] for (l, n), lab in self.named.items()],
                "confirmed": [list(x) for x in self.confirmed], "read": self.read,
                "found": self.found, "label_f1": self.label_f1}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "JudgeAgreement":
        return cls(int(d["n_interpretable"]),
                   {(int(l), int(n)): str(lab) for l, n, lab in d["named"]},
                   [(int(l), int(n)) for l, n in d["confirmed"]], list(d["read"]),
                   list(d["found"]), {k: float(v) for k, v in d["label_f1"].items()})


def _sample_rows(split, n_ctx: int, part: str, max_rows: int, seed: int) -> np.ndarray:
    from .harvest import selection_rows

    rows = selection_rows(num_rows(split, n_ctx), part)
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    return rows


def _activations(source, split, rows: np.ndarray, n_ctx: int, bos_id: int, layers,
                 batch_size: int) -> dict[int, np.ndarray]:
    from ..data import get_rows

    acts: dict[int, list[np.ndarray]] = {l: [] for l in layers}
    for start in range(0, len(rows), batch_size):
        tokens = get_rows(split, rows[start:start + batch_size], n_ctx, bos_id)
        out = source.activations(tokens)["mid"]
        for l in acts:
            acts[l].append(out[l][:, 1:].reshape(-1, out[l].shape[-1]).float().cpu().numpy())
    return {l: np.concatenate(v) for l, v in acts.items()}


def judge_agreement(scores: NeuronScores, source, split, tables, labels: Mapping[str, np.ndarray],
                    probe: ProbeResult, *, n_ctx: int, bos_id: int, max_rows: int = 200,
                    seed: int = 0, batch_size: int = 16) -> JudgeAgreement:
    """Check the judge's interpretable neurons against the labels (``JudgeAgreement``).

    On at most ``max_rows`` of the selection (even) rows and as many held-out (odd) rows, a
    seeded subset of each: each interpretable neuron's explanation indicator is matched to
    every label on the odd rows (F1 of indicator against label); where it names one, the
    neuron's activation is thresholded where F1 is best on the even rows (firing high, as the
    judge's top firings do) and scored on the odd rows. Recall uses ``probe`` (``sparse_probe``
    of the same source and labels) to say which labels a single neuron reads.
    """
    from .explanations import Explanation
    from .score import heldout_features

    T1 = n_ctx - 1
    fit_rows = _sample_rows(split, n_ctx, "even", max_rows, seed)
    rows = _sample_rows(split, n_ctx, "odd", max_rows, seed)

    def label_matrix(rs: np.ndarray) -> np.ndarray:
        positions = (rs[:, None] * T1 + np.arange(T1)).ravel()
        return np.stack([np.asarray(labels[n], dtype=bool)[positions] for n in names], axis=1)

    names = list(labels)
    y, y_fit = label_matrix(rows), label_matrix(fit_rows)
    interpretable = [r for r in scores.records if r.interpretable and r.explanation]
    feats = heldout_features(split, tables, rows, n_ctx)
    named: dict[tuple[int, int], str] = {}
    for r in interpretable:
        holds = Explanation.from_key(r.explanation).holds(feats, tables)
        tp = (holds[:, None] & y).sum(0)
        f1 = 2 * tp / np.maximum(holds.sum() + y.sum(0), 1)
        if f1.max() >= AGREE_F1:
            named[(r.layer, r.neuron)] = names[int(f1.argmax())]
    confirmed: list[tuple[int, int]] = []
    if named:
        layers = sorted({l for l, _ in named})
        x_fit = _activations(source, split, fit_rows, n_ctx, bos_id, layers, batch_size)
        x = _activations(source, split, rows, n_ctx, bos_id, layers, batch_size)
        for (l, n), lab in named.items():
            j = names.index(lab)
            _, _, threshold = best_threshold_f1(x_fit[l][:, n], y_fit[:, j], both_signs=False)
            predicted = x[l][:, n] > float(np.asarray(threshold).ravel()[0])
            tp = float((predicted & y[:, j]).sum())
            f1 = 2 * tp / max(float(predicted.sum() + y[:, j].sum()), 1.0)
            if f1 >= AGREE_F1:
                confirmed.append((l, n))
    label_f1 = {n: p.best_neuron.f1 for n, p in probe.labels.items()}
    read = [n for n in names if label_f1.get(n, 0.0) >= AGREE_F1]
    confirmed_labels = {named[c] for c in confirmed}
    found = [n for n in read if n in confirmed_labels]
    return JudgeAgreement(len(interpretable), named, confirmed, read, found, label_f1)


def agreement_path(run, control: str | None = None, *, seed: int = 0, data_dir=None) -> Path:
    """Where ``judge_agreement_run`` keeps a run's (or a null's) agreement."""
    key = {**_run_key(run, control, seed), "seed": int(seed), "agree_f1": AGREE_F1,
           "agreement_format": AGREEMENT_FORMAT,
           "probe": probe_path(run, control, seed=seed, labels=list(
               probe_labels(run.corpus(data_dir), run.config.model.n_ctx))).name}
    return Path(run.run_dir) / "instruments" / f"{control or 'basis'}-agree-{_digest(key)}.json"


def judge_agreement_run(run, control: str | None = None, *, seed: int = 0,
                        device: str | torch.device = "cpu", progress: bool = True,
                        data_dir=None, rebuild: bool = False) -> JudgeAgreement:
    """``judge_agreement`` of a run's basis (or a null's) with its probe, cached."""
    path = agreement_path(run, control, seed=seed, data_dir=data_dir)
    if path.is_file() and not rebuild:
        return read_json(path, JudgeAgreement.from_dict, "judge agreement",
                         "delete it and run again", ConfigError)
    corpus = run.corpus(data_dir)
    n_ctx = run.config.model.n_ctx
    from .explanations import VocabTables

    result = judge_agreement(
        _judge(run, control, ScoreSettings(), seed, progress, data_dir),
        _source(run, control, seed, device), corpus.split("val"),
        VocabTables(corpus.tokenizer), probe_labels(corpus, n_ctx),
        probe_run(run, control, seed=seed, device=device, progress=progress,
                  data_dir=data_dir), n_ctx=n_ctx, bos_id=corpus.bos_id, seed=seed)
    write_json(path, result.to_dict())
    return result
