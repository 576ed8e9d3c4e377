"""The instruments on zoo runs (interp/instruments.py) and the planted rotation test
(interp/calibration.py): what each caches and where, the labels probed, the judge checked
against the labels, and the test that decides which instrument the book's claims rest on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from solu_repro import zoo
from solu_repro.interp import instruments as I
from solu_repro.interp.calibration import (INSTRUMENTS, MIN_DETECTORS, InstrumentCheck,
                                           RotationTest, rotation_test, rotation_test_for,
                                           rotation_test_path)
from solu_repro.interp.labels import labels_for
from solu_repro.model import ConfigError

N_CTX = 64


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    """The tiny zoo's 1L-solu_ln (a few seconds of training on one thread), with the session's
    corpus as the data directory (where the instruments find it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOLU_DATA_DIR", str(data_dir))
        yield zoo.ensure_trained("1L-solu_ln", "tiny", tmp_path_factory.mktemp("runs"),
                                 progress=False, data_dir=data_dir)


# --- the planted rotation test ----------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(corpus, tables):
    return rotation_test(corpus.split("val"), tables, N_CTX, corpus.bos_id)


def test_the_rotation_fair_instruments_pass_the_planted_rotation_test(planted):
    """Issue 20's Done-when, on the book's own instruments: on heavy-tailed planted detectors
    the features-exposed score and the probing F1 fall by at least half under rotation. The
    top-20 view is reported as it is. Measured on this session's corpus (8,680 validation
    tokens, 64 detectors, seed 0): top-20 1.00 -> 0.41, full spectrum 1.00 -> 0.28, features
    exposed 0.98 -> 0.09, probe F1 1.00 -> 0.37: here every instrument passes. On the cpu
    book's corpus (186,618 validation tokens, n_ctx 256) the top-20 view fails, 0.98 -> 0.98,
    and the full spectrum too, 0.92 -> 0.56; features exposed 0.90 -> 0.09 and probe F1
    1.00 -> 0.39 pass: with more text, every rotated direction finds 20 clean top firings of
    the loud detector it weights."""
    assert list(planted.checks) == list(INSTRUMENTS)
    assert planted.meta["n_detectors"] >= MIN_DETECTORS
    for inst in ("features_exposed", "probe_f1"):
        c = planted.checks[inst]
        assert c.basis > 0.9 and c.passes, c
    assert {"features_exposed", "probe_f1"} <= set(planted.passing)
    top = planted.checks["top"]
    assert top.basis > 0.9 and 0 < top.rotated <= top.basis  # reported, whatever it is


def test_instrument_check_and_round_trip(planted, tmp_path):
    assert InstrumentCheck("x", 0.8, 0.4).passes and not InstrumentCheck("x", 0.8, 0.41).passes
    assert not InstrumentCheck("x", 0.0, 0.0).passes and np.isnan(InstrumentCheck("x", 0, 0).ratio)
    back = RotationTest.load(planted.save(tmp_path / "t.json"))
    assert back.checks == planted.checks and back.passing == planted.passing
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        RotationTest.load(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({"format": 0, "checks": [], "meta": {}}))
    with pytest.raises(ConfigError, match="run it again"):
        RotationTest.load(tmp_path / "old.json")


def test_a_split_too_small_to_plant_on_is_refused(corpus, tables):
    with pytest.raises(ConfigError, match=f"fewer than {MIN_DETECTORS}"):
        rotation_test(_Short(corpus.split("val")), tables, N_CTX, corpus.bos_id)


class _Short:
    """The first 600 tokens of a split: 9 rows, too few for a token in 5 of each half."""

    def __init__(self, split):
        self.split, self.n_tokens, self.directory = split, 600, split.directory

    def window(self, start, length):
        return self.split.window(start, min(length, self.n_tokens - start))

    def __getattr__(self, name):
        return getattr(self.split, name)


def test_rotation_test_is_cached_beside_the_corpus(run):
    corpus = run.corpus()
    path = rotation_test_path(corpus, N_CTX)
    assert path.parent == corpus.path / "calibration"
    first = rotation_test_for(corpus, N_CTX)
    assert path.is_file()
    assert rotation_test_for(corpus, N_CTX).checks == first.checks
    assert rotation_test_path(corpus, N_CTX, seed=1) != path


# --- the instruments on a run -----------------------------------------------------------------
def test_probe_labels_keep_labels_with_positives_in_both_halves(run):
    corpus = run.corpus()
    kept = I.probe_labels(corpus, N_CTX)
    everything = labels_for(corpus, "val")
    n = (corpus.split("val").n_tokens // (N_CTX - 1)) * (N_CTX - 1)
    odd = (np.arange(n) // (N_CTX - 1)) % 2 == 1
    for name in everything:
        y = everything[name][:n]
        both = min(y[odd].sum(), y[~odd].sum(), (~y[odd]).sum(), (~y[~odd]).sum()) >= \
            I.MIN_POSITIVES
        assert (name in kept) == both, name
    assert kept and len(kept) < len(everything)  # the tiny corpus lacks some labels
    assert I.probe_labels(corpus, N_CTX, min_positives=10**9) == {}


def test_probe_run_caches_per_control_and_reads_the_same_rotation_as_the_judge(run):
    basis = I.probe_run(run, progress=False)
    path = I.probe_path(run, None, labels=list(basis.labels))
    assert path.is_file() and path.parent == run.run_dir / "instruments"
    assert I.probe_run(run, progress=False).labels == basis.labels  # from the cache
    turned = I.probe_run(run, "rotated", progress=False)
    assert set(turned.labels) == set(basis.labels)
    assert I.probe_path(run, "rotated", labels=list(basis.labels)) != path
    assert I.probe_path(run, "rotated", seed=1, labels=list(basis.labels)) != \
        I.probe_path(run, "rotated", labels=list(basis.labels))
    gap = basis.privileged_basis_gap(turned)
    assert set(gap) == set(basis.labels)
    assert basis.meta["max_tokens"] == I.PROBE_TOKENS and turned.meta["control"] == "rotated"


def test_basis_score_run_scores_the_basis_and_its_nulls_over_one_union(run):
    scores = {c: I.basis_score_run(run, c, progress=False) for c in I.UNION}
    assert scores[None].features == scores["rotated"].features  # the planted test's version
    assert I.basis_score_path(run, None).is_file()
    three = (None, *I.NULLS)
    untrained = I.basis_score_run(run, "random_init", union=three, progress=False)
    assert untrained.features == I.basis_score_run(run, None, union=three,
                                                   progress=False).features
    assert set(scores[None].features) <= set(untrained.features)
    own = I.basis_score_run(run, None, union=(None,), progress=False)
    assert set(own.features) <= set(scores[None].features)
    with pytest.raises(ConfigError, match="must include the basis scored"):
        I.basis_score_run(run, "rotated", union=(None,))


def test_judge_agreement_counts_named_confirmed_read_and_found(run):
    a = I.judge_agreement_run(run, progress=False)
    assert set(a.confirmed) <= set(a.named) and set(a.found) <= set(a.read)
    assert set(a.found) <= {a.named[c] for c in a.confirmed}
    assert len(a.named) <= a.n_interpretable
    assert all(lab in a.label_f1 for lab in a.named.values())
    assert all(a.label_f1[lab] >= I.AGREE_F1 for lab in a.read)
    assert (np.isnan(a.precision) if not a.named else 0 <= a.precision <= 1)
    again = I.judge_agreement_run(run, progress=False)
    assert again == a  # from the cache
    assert I.JudgeAgreement.from_dict(json.loads(json.dumps(a.to_dict()))) == a
