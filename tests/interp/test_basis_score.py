"""The rotation-fair judge score (interp/basis_score.py): features exposed, each counted once,
checked on heavy-tailed planted token detectors and their random rotation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from solu_repro.data import get_rows
from solu_repro.interp.basis_score import (EXPOSED, BasisScore, HeldoutCorrelations,
                                           basis_score, simulate)
from solu_repro.interp.controls import rotated
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.harvest import harvest
from solu_repro.interp.planted import HeavyTailedDetectors, frequent_tokens
from solu_repro.interp.score import (NeuronScores, ScoreSettings, heldout_features,
                                     score_neurons)
from solu_repro.model import ConfigError

N_CTX = 64
N_DETECTORS = 64
SIGMA = 1.5  # lognormal spread of the detectors' peak activations (the issue's simulation)


class Silent:
    """A ``NeuronSource`` whose directions never fire."""

    n_layers, d_mlp, hooks = 1, 8, ("mid",)

    def activations(self, tokens):
        return {"mid": [torch.zeros(*tokens.shape, self.d_mlp)]}


@pytest.fixture(scope="module")
def val(corpus):
    return corpus.split("val")


@pytest.fixture(scope="module")
def zipf_tokens(val, corpus):
    """The corpus's most frequent tokens that occur in at least 5 selection rows and 5
    held-out rows (``planted.frequent_tokens``)."""
    return frequent_tokens(val, N_CTX, corpus.bos_id, N_DETECTORS)


def _judge(source, val, corpus, tables, **settings) -> NeuronScores:
    h = harvest(source, val, N_CTX, corpus.bos_id, progress=False)
    return score_neurons(source, h, val, tables, ScoreSettings(**settings), progress=False)


@pytest.fixture(scope="module")
def simulation(zipf_tokens, val, corpus, tables):
    """The issue's simulation: 64 token detectors with lognormal (sigma 1.5) peaks, and one
    random rotation of them, each judged and basis-scored over one union of features."""
    peaks = np.random.default_rng(0).lognormal(0.0, SIGMA, N_DETECTORS)
    plain = HeavyTailedDetectors(zipf_tokens, peaks, tables.vocab_size)
    turned = rotated(plain, seed=0)
    plain_scores = _judge(plain, val, corpus, tables)
    turned_scores = _judge(turned, val, corpus, tables)
    return {"plain": plain, "turned": turned, "plain_scores": plain_scores,
            "turned_scores": turned_scores,
            "plain_basis": basis_score(plain_scores, plain, val, tables,
                                       explanations=turned_scores),
            "turned_basis": basis_score(turned_scores, turned, val, tables,
                                        explanations=plain_scores)}


def test_rotation_halves_the_features_exposed(simulation, zipf_tokens, val):
    """Done-when of issue 20: on heavy-tailed planted detectors the features-exposed score
    (mean and count) falls by at least half under rotation.

    Measured (the tiny corpus's val split, 4,284 held-out tokens; the 64 tokens occur 268 down
    to 30 times; peaks seed 0, rotation seed 0; peak and rotation seeds 1 and 2 in brackets):

    =====================================  ============  =========================
    score                                  neuron basis  one random rotation
    =====================================  ============  =========================
    features exposed (mean best r²)        0.98          0.09 (0.08, 0.08)
    features exposed (count of 64)         64            5 (3, 4)
    variance-weighted explained variance   0.98          0.26 (0.26, 0.32)
    per-direction mean r²                  0.98          0.24 (0.23, 0.32)
    distinct explanations (interpretable)  64            9 (6, 7)
    top-20 view: interpretable             64/64         26/64 (28, 29)
    full-spectrum view: interpretable      64/64         18/64 (25, 28)
    =====================================  ============  =========================

    The per-direction mean stays partly fooled: the rotation keeps more than twice as much of
    it as of the features exposed, because many rotated directions re-expose the same few
    large detectors (with rotation seed 1, 13 rotated directions say "current token is 'in'").
    """
    plain, turned = simulation["plain_basis"], simulation["turned_basis"]
    counts = np.bincount(val.window(0, val.n_tokens).astype(np.int64))[zipf_tokens]
    assert len(zipf_tokens) == N_DETECTORS and counts[0] >= 5 * counts[-1]  # Zipf: a long fall
    # One union for both bases, holding every planted token.
    assert plain.features == turned.features
    planted = {Explanation("token", (t,)).key() for t in zipf_tokens}
    assert planted <= set(plain.features)
    # The neuron basis exposes every planted feature.
    assert plain.n_features_exposed >= N_DETECTORS - 1 and plain.features_exposed > 0.9
    assert plain.explained_variance > 0.9 and plain.mean_direction_r2 > 0.9
    assert plain.distinct_explanations == N_DETECTORS
    # The rotation loses at least half of it, by mean and by count.
    assert turned.features_exposed <= plain.features_exposed / 2, turned.summary()
    assert turned.n_features_exposed <= plain.n_features_exposed / 2, turned.summary()
    # The per-direction average is partly fooled: it keeps far more than the features exposed.
    assert turned.mean_direction_r2 > 2 * turned.features_exposed, turned.summary()
    assert turned.explained_variance > 2 * turned.features_exposed, turned.summary()
    assert turned.distinct_explanations < turned.n_interpretable
    # The top-20 view, reported as it is: it still passes many rotated directions.
    top = sum(r.interpretable for r in simulation["turned_scores"].records)
    assert top > turned.n_features_exposed
    assert turned.meta["checked_against_judge"] and plain.meta["checked_against_judge"]


def test_a_feature_many_directions_re_expose_counts_once(zipf_tokens, val, corpus, tables):
    """Eight directions detecting one token, four detecting one token each: 12 directions
    pass, 5 features are exposed, and the shared one is exposed by all eight."""
    shared, others = zipf_tokens[0], zipf_tokens[1:5]
    tokens = [shared] * 8 + others
    peaks = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 1.0, 1.0, 1.0, 1.0])
    source = HeavyTailedDetectors(tokens, peaks, tables.vocab_size)
    scores = _judge(source, val, corpus, tables)
    b = basis_score(scores, source, val, tables)
    key = Explanation("token", (shared,)).key()
    assert b.features.count(key) == 1 and len(b.features) == 5
    assert b.n_exposing[b.features.index(key)] == 8
    assert (b.direction_r2 > EXPOSED).sum() == 12  # counted per direction: 12
    assert b.n_features_exposed == 5  # counted per feature: 5
    assert b.n_interpretable == 12 and b.distinct_explanations == 5
    # The best direction of the shared feature is one of its eight.
    assert b.best_direction[b.features.index(key)][0] == 0
    assert 0 <= b.best_direction[b.features.index(key)][1] < 8


class Negated:
    """``source`` with every direction's sign flipped: a reflection, one of the orthogonal
    maps a random rotation draws from."""

    def __init__(self, source):
        self.source = source
        self.n_layers, self.d_mlp, self.hooks = source.n_layers, source.d_mlp, source.hooks

    def activations(self, tokens):
        return {h: [-a for a in acts] for h, acts in self.source.activations(tokens).items()}


def test_features_exposed_ignores_the_sign_of_a_direction(zipf_tokens, val, corpus, tables):
    """Flipping every direction's sign leaves each feature's best r² as it was, while the
    judge finds nothing to explain (no positive firings) and the simulators explain nothing."""
    source = HeavyTailedDetectors(zipf_tokens[:5], np.array([1.0, 2.0, 4.0, 8.0, 16.0]),
                                  tables.vocab_size)
    scores = _judge(source, val, corpus, tables)
    flipped = Negated(source)
    flipped_scores = _judge(flipped, val, corpus, tables)
    assert all(r.dead for r in flipped_scores.records)
    plain = basis_score(scores, source, val, tables)
    mirror = basis_score(flipped_scores, flipped, val, tables, explanations=scores)
    assert mirror.features == plain.features
    np.testing.assert_allclose(mirror.best_r2, plain.best_r2, atol=1e-9)
    assert mirror.n_features_exposed == plain.n_features_exposed == 5
    assert mirror.mean_direction_r2 == 0.0 and plain.mean_direction_r2 > 0.9


def test_simulator_correlation_by_hand():
    """Activations (0, 2, 0, 4), explanation holding at the 2nd and 4th token: the simulator
    predicts their mean, 3, there and 0 elsewhere. Deviations from the means (1.5 each):
    activation (-1.5, 0.5, -1.5, 2.5), simulation (-1.5, 1.5, -1.5, 1.5); products sum to 9,
    squares to 11 and 9, so r = 9 / sqrt(99)."""
    acts = np.array([[0.0], [2.0], [0.0], [4.0]])
    holds = np.array([[False], [True], [False], [True]])
    want = 9 / math.sqrt(99)
    one = HeldoutCorrelations(1, 1)
    one.update(holds, acts)
    assert one.correlation()[0, 0] == pytest.approx(want, abs=1e-12)
    two = HeldoutCorrelations(1, 1)  # streamed in two batches: the same
    two.update(holds[:3], acts[:3])
    two.update(holds[3:], acts[3:])
    assert two.correlation()[0, 0] == pytest.approx(want, abs=1e-12)
    assert two.variance()[0] == pytest.approx(np.var(acts), abs=1e-12)
    # A constant indicator has no correlation; a large offset changes nothing.
    flat = HeldoutCorrelations(2, 1)
    flat.update(np.concatenate([holds, np.ones_like(holds)], 1), acts + 1e6)
    r = flat.correlation()
    assert r[0, 0] == pytest.approx(want, abs=1e-9) and math.isnan(r[1, 0])


def test_simulator_r_is_the_correlation_on_held_out_tokens(simulation, val, corpus, tables):
    """For rotated directions, ``simulator_r`` equals Pearson's r computed here from the
    held-out tokens: the simulation (the mean activation where the explanation holds, 0
    elsewhere) against the activation."""
    b, scores, source = (simulation["turned_basis"], simulation["turned_scores"],
                         simulation["turned"])
    rows = np.arange(1, val.n_tokens // (N_CTX - 1), 2)
    acts = source.activations(get_rows(val, rows, N_CTX, corpus.bos_id))["mid"][0]
    acts = acts[:, 1:].reshape(-1, source.d_mlp).double().numpy()
    held = heldout_features(val, tables, rows, N_CTX)
    for d in (0, 1, 2, 7, 30):
        e = scores.get(0, d).explanation_obj()
        a = acts[:, d]
        s = simulate(e, held, tables, scale=float(a[e.holds(held, tables)].mean()))
        ds, da = s - s.mean(), a - a.mean()
        r = (ds * da).sum() / math.sqrt((ds * ds).sum() * (da * da).sum())
        assert b.simulator_r[0, d] == pytest.approx(r, abs=1e-6)
        assert b.variance[0, d] == pytest.approx(a.var(), rel=1e-6)
    assert b.n_tokens == len(rows) * (N_CTX - 1)


def test_round_trip_and_cap(simulation, val, tables, tmp_path):
    b = simulation["turned_basis"]
    again = BasisScore.load(b.save(tmp_path / "basis.json"))
    assert again.to_dict() == b.to_dict()
    assert again.simulator_r.shape == (1, N_DETECTORS) and again.best_direction.dtype == np.int64
    assert again.summary() == b.summary()
    # A cap of 10 rows' tokens reads a seeded subset of 10 held-out rows, unchecked against
    # the judge (whose correlations used all of them).
    kw = {"explanations": simulation["plain_scores"], "max_tokens": 10 * (N_CTX - 1)}
    capped = basis_score(simulation["turned_scores"], simulation["turned"], val, tables, **kw)
    assert capped.n_rows == 10 and not capped.meta["checked_against_judge"]
    assert capped.features == b.features
    same = basis_score(simulation["turned_scores"], simulation["turned"], val, tables, **kw)
    assert np.array_equal(same.best_r2, capped.best_r2)
    other = basis_score(simulation["turned_scores"], simulation["turned"], val, tables, seed=1,
                        **kw)
    assert not np.array_equal(other.variance, capped.variance)
    with pytest.raises(ConfigError, match="corrupt or outdated"):
        (tmp_path / "bad.json").write_text('{"format": 0}')
        BasisScore.load(tmp_path / "bad.json")


def test_bad_input(simulation, zipf_tokens, val, corpus, tables):
    plain, turned = simulation["plain"], simulation["turned"]
    plain_scores, turned_scores = simulation["plain_scores"], simulation["turned_scores"]
    # Scores of another source: the unrotated basis, or another rotation of it.
    with pytest.raises(ConfigError, match="not of this source"):
        basis_score(plain_scores, turned, val, tables)
    with pytest.raises(ConfigError, match="not of this source"):
        basis_score(turned_scores, rotated(plain, seed=1), val, tables)
    with pytest.raises(ConfigError, match="n_layers, d_mlp"):
        basis_score(plain_scores,
                    HeavyTailedDetectors(zipf_tokens[:8], np.ones(8), tables.vocab_size),
                    val, tables)
    with pytest.raises(ConfigError, match="settings and harvest metadata"):
        basis_score(NeuronScores({}, plain_scores.records), plain, val, tables)
    with pytest.raises(ConfigError, match="split"):
        basis_score(plain_scores, plain, corpus.split("train"), tables)
    # Empty union: every direction dead, and nothing passed from another basis.
    silent_scores = _judge(Silent(), val, corpus, tables)
    assert all(r.dead for r in silent_scores.records)
    with pytest.raises(ConfigError, match="no explanations to score"):
        basis_score(silent_scores, Silent(), val, tables)
    # ... but the other basis's features can be looked for in it, and it exposes none.
    silent = basis_score(silent_scores, Silent(), val, tables, explanations=plain_scores)
    assert silent.n_features_exposed == 0 and silent.features_exposed == 0.0
    assert math.isnan(silent.explained_variance) and silent.mean_direction_r2 == 0.0
    with pytest.raises(ConfigError, match="Explanation.key"):
        basis_score(plain_scores, plain, val, tables, explanations=["the"])
    with pytest.raises(ConfigError, match="hook"):
        basis_score(plain_scores, plain, val, tables, hook="post")
    with pytest.raises(ConfigError, match="max_tokens"):
        basis_score(plain_scores, plain, val, tables, max_tokens=0)
