"""The planted rotation test: which instrument can tell a privileged basis from its rotation?

An instrument that credits a random rotation of a basis with as much interpretability as the
basis itself cannot say whether SoLU makes *neurons* interpretable. This module runs each of
the book's instruments on a basis whose answer is known, and on one random rotation of it,
on the book's own corpus:

* the basis: ``N_DETECTORS`` token detectors of the corpus's most frequent tokens, with
  lognormal (sigma ``SIGMA``) peak activations so that a few loud detectors dominate
  (``planted.HeavyTailedDetectors``): the case where the top-20 judge is fooled, because each
  rotated direction's top firings are those of whichever loud detector it weights positively;
* the rotation: ``controls.rotated(basis, seed)``, a Haar-random orthogonal basis of the same
  space, which holds the same information and no privileged direction.

The instruments, each as one number per basis:

* ``top``: the fraction of directions the judge calls interpretable, top-20 view (the
  paper's metric, ``score.score_neurons``);
* ``spectrum``: the same, full-spectrum view;
* ``features_exposed``: the rotation-fair judge score (``basis_score.basis_score``), the basis
  and its rotation scored over one union of explanations;
* ``probe_f1``: the mean over labels of the best single direction's held-out F1
  (``probing.sparse_probe``, k = 1), the labels being every other detector's token.

An instrument **passes** when the rotation keeps at most ``PASS_RATIO`` (half) of the basis's
number: the test issue 20 sets ("falls by at least half under rotation"). The book decides
the claims that rest on interpretability with an instrument that passes
(``paper.s6_interpretability``), and reports the others as they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic import read_json, write_json
from ..model import ConfigError

N_DETECTORS = 64
MIN_DETECTORS = 16
"""Fewer frequent tokens than this in the split: the test is refused (a small split may plant
fewer than ``N_DETECTORS``; ``meta["n_detectors"]`` says how many)."""
SIGMA = 1.5
PASS_RATIO = 0.5
ROTATION_TEST_FORMAT = 1
INSTRUMENTS = {
    "top": "judge, top-20 view (fraction of directions interpretable)",
    "spectrum": "judge, full-spectrum view (fraction of directions interpretable)",
    "features_exposed": "rotation-fair judge score (features exposed, mean best r²)",
    "probe_f1": "sparse probing (best single direction's F1, mean over labels)",
}
"""The instruments the test checks, in the order the book prefers them for verdicts: after
the paper's own two views, the rotation-fair score, then ground-truth probing."""


@dataclass(frozen=True)
class InstrumentCheck:
    """One instrument on the planted basis and on its rotation."""

    instrument: str
    basis: float
    rotated: float

    @property
    def ratio(self) -> float:
        """The rotation's number over the basis's (nan when the basis scores 0)."""
        return self.rotated / self.basis if self.basis > 0 else math.nan

    @property
    def passes(self) -> bool:
        """The rotation keeps at most ``PASS_RATIO`` of the basis's number."""
        return self.basis > 0 and self.rotated <= PASS_RATIO * self.basis


@dataclass
class RotationTest:
    """``rotation_test``'s result: one ``InstrumentCheck`` per instrument, and its settings."""

    checks: dict[str, InstrumentCheck]
    meta: dict[str, Any] = field(default_factory=dict)

    def passes(self, instrument: str) -> bool:
        return self.checks[instrument].passes

    @property
    def passing(self) -> list[str]:
        """The instruments that pass, in ``INSTRUMENTS`` order."""
        return [i for i in INSTRUMENTS if i in self.checks and self.checks[i].passes]

    def to_dict(self) -> dict[str, Any]:
        return {"format": ROTATION_TEST_FORMAT, "meta": self.meta,
                "checks": [asdict(c) for c in self.checks.values()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RotationTest":
        if d.get("format") != ROTATION_TEST_FORMAT:
            raise ConfigError(f"rotation test format {d.get('format')!r} is not "
                              f"{ROTATION_TEST_FORMAT}: run it again")
        checks = [InstrumentCheck(str(c["instrument"]), float(c["basis"]), float(c["rotated"]))
                  for c in d["checks"]]
        return cls({c.instrument: c for c in checks}, dict(d["meta"]))

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "RotationTest":
        return read_json(path, cls.from_dict, "rotation test", "run rotation_test again",
                         ConfigError)


def rotation_test(split, tables, n_ctx: int, bos_id: int, *, n_detectors: int = N_DETECTORS,
                  sigma: float = SIGMA, seed: int = 0, max_heldout_rows: int | None = None,
                  progress: bool = False) -> RotationTest:
    """Run every instrument on heavy-tailed planted detectors and on one rotation of them.

    Args:
        split: The token split the book's judge reads (the corpus's validation split).
        tables: ``VocabTables`` of its tokenizer.
        n_ctx: Row length with BOS (the zoo models' context).
        bos_id: The corpus's BOS token.
        n_detectors: Detectors planted, on the most frequent tokens (``planted.frequent_tokens``);
            fewer where the split has fewer frequent enough (at least ``MIN_DETECTORS``).
        sigma: Lognormal spread of their peak activations.
        seed: Seed of the peaks, the detectors' context tables and the rotation.
        max_heldout_rows: Cap on the judge's held-out rows (``None``: all, as the book's judge).
        progress: Progress bars.

    Raises:
        ConfigError: The split has fewer than ``MIN_DETECTORS`` tokens frequent enough.
    """
    from .basis_score import basis_score
    from .controls import rotated
    from .harvest import harvest
    from .planted import HeavyTailedDetectors, frequent_tokens
    from .probing import sparse_probe
    from .score import ScoreSettings, score_neurons

    started = time.perf_counter()
    tokens = frequent_tokens(split, n_ctx, bos_id, n_detectors)
    if len(tokens) < MIN_DETECTORS:
        raise ConfigError(f"the split has {len(tokens)} tokens frequent enough to plant "
                          f"detectors on (in 5 selection and 5 held-out rows), fewer than "
                          f"{MIN_DETECTORS}: use a larger validation split")
    n_detectors = len(tokens)  # a small split may hold fewer than asked for
    peaks = np.random.default_rng(seed).lognormal(0.0, sigma, n_detectors)
    plain = HeavyTailedDetectors(tokens, peaks, tables.vocab_size, seed=seed)
    turned = rotated(plain, seed=seed)
    settings = ScoreSettings(max_heldout_rows=max_heldout_rows)
    scores = {}
    for name, source in (("basis", plain), ("rotated", turned)):
        h = harvest(source, split, n_ctx, bos_id, seed=seed, progress=progress)
        scores[name] = score_neurons(source, h, split, tables, settings, progress=progress)
    fair = {"basis": basis_score(scores["basis"], plain, split, tables,
                                 explanations=scores["rotated"], seed=seed),
            "rotated": basis_score(scores["rotated"], turned, split, tables,
                                   explanations=scores["basis"], seed=seed)}
    all_tokens = split.window(0, split.n_tokens).astype(np.int64)
    labels = {f"token {t}": all_tokens == t for t in tokens[::2]}
    probes = {name: sparse_probe(source, split, labels, ks=(1,), n_ctx=n_ctx, bos_id=bos_id,
                                 seed=seed, progress=progress)
              for name, source in (("basis", plain), ("rotated", turned))}
    numbers: dict[str, dict[str, float]] = {i: {} for i in INSTRUMENTS}
    for name in ("basis", "rotated"):
        numbers["top"][name] = scores[name].fraction_interpretable(view="top").fraction
        numbers["spectrum"][name] = scores[name].fraction_interpretable(view="spectrum").fraction
        numbers["features_exposed"][name] = fair[name].features_exposed
        numbers["probe_f1"][name] = float(np.mean(list(probes[name].best_f1().values())))
    checks = {i: InstrumentCheck(i, v["basis"], v["rotated"]) for i, v in numbers.items()}
    meta = {"n_detectors": n_detectors, "sigma": sigma, "seed": seed, "n_ctx": n_ctx,
            "n_labels": len(labels), "pass_ratio": PASS_RATIO,
            "split": Path(str(getattr(split, "directory", ""))).name,
            "tokens": tokens, "peaks_max_over_median": float(peaks.max() / np.median(peaks)),
            "n_features": len(fair["basis"].features),
            "n_features_exposed": {k: v.n_features_exposed for k, v in fair.items()},
            "distinct_explanations": {k: v.distinct_explanations for k, v in fair.items()},
            "seconds": round(time.perf_counter() - started, 1)}
    return RotationTest(checks, meta)


def rotation_test_path(corpus, n_ctx: int, seed: int = 0) -> Path:
    """Where ``rotation_test_for`` keeps a corpus's test: beside the corpus, keyed by its build,
    the row length, the seed, the test's settings and the instruments' settings and formats."""
    from .basis_score import BASIS_SCORE_FORMAT, DEFAULT_MAX_TOKENS
    from .probing import MAX_TOKENS, PROBE_FORMAT
    from .score import SCORE_FORMAT, ScoreSettings

    key = {"corpus": corpus.meta.get("spec_hash", corpus.path.name),
           "build_id": corpus.meta.get("build_id"), "n_ctx": int(n_ctx), "seed": int(seed),
           "n_detectors": N_DETECTORS, "sigma": SIGMA, "format": ROTATION_TEST_FORMAT,
           "score": [SCORE_FORMAT, asdict(ScoreSettings())],
           "basis_score": [BASIS_SCORE_FORMAT, DEFAULT_MAX_TOKENS],
           "probe": [PROBE_FORMAT, MAX_TOKENS], "pass_ratio": PASS_RATIO}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(corpus.path) / "calibration" / f"rotation-test-{digest}.json"


def rotation_test_for(corpus, n_ctx: int, seed: int = 0, *, progress: bool = False,
                      rebuild: bool = False) -> RotationTest:
    """``rotation_test`` on a corpus's validation split, computed once and kept beside it."""
    from .explanations import VocabTables

    path = rotation_test_path(corpus, n_ctx, seed)
    if path.is_file() and not rebuild:
        return RotationTest.load(path)
    result = rotation_test(corpus.split("val"), VocabTables(corpus.tokenizer), n_ctx,
                           corpus.bos_id, seed=seed, progress=progress)
    result.save(path)
    return result
