"""The automated scorer: explanation family, the top-20 rule, the full-spectrum view, and
validation on neurons whose answer is known (planted detectors, noise, polysemantic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from solu_repro.interp.explanations import (Background, Explanation, PositionFeatures,
                                            candidate_explanations, point_features,
                                            range_features, regex_flags)
from solu_repro.interp.harvest import harvest
from solu_repro.interp.planted import Plant, PlantedNeurons, plant_token_detectors
from solu_repro.interp.score import (NeuronScores, ScoreSettings, best_explanation,
                                     score_neurons, surprise)
from solu_repro.model import ConfigError, ModelConfig, Transformer


N_CTX = 64


@pytest.fixture(scope="module")
def val(corpus):
    return corpus.split("val")


def _rows_containing(val, token: int) -> int:
    rows = val.n_tokens // (N_CTX - 1)
    tokens = val.window(0, rows * (N_CTX - 1)).reshape(rows, N_CTX - 1)
    return int((tokens[::2] == token).any(1).sum())


@pytest.fixture(scope="module")
def frequent(val):
    """Tokens present in at least 30 selection rows, most frequent first (so a detector of
    one of them has 20 top firings that are all that token)."""
    tokens = val.window(0, val.n_tokens).astype(np.int64)
    order = np.argsort(-np.bincount(tokens))
    return [int(t) for t in order[:80] if _rows_containing(val, int(t)) >= 30]


@pytest.fixture(scope="module")
def common(val):
    """The 40 most frequent tokens of the split."""
    tokens = val.window(0, val.n_tokens).astype(np.int64)
    return [int(t) for t in np.argsort(-np.bincount(tokens))[:40]]


@pytest.fixture(scope="module")
def frequent_bigram(val):
    tokens = val.window(0, val.n_tokens).astype(np.int64)
    pairs, counts = np.unique(tokens[:-1] * 4096 + tokens[1:], return_counts=True)
    for p in pairs[np.argsort(-counts)]:
        a, b = int(p // 4096), int(p % 4096)
        if a != b:
            return a, b
    raise AssertionError("no bigram")


# --- explanations --------------------------------------------------------------------------

def test_regex_flags_mark_tokens_overlapping_a_match():
    texts = ["In", " 18", "61", ",", " see", " http", "://", "x", ".org", " now"]
    flags = regex_flags(texts)
    assert flags["year"].tolist() == [False, True, True] + [False] * 7
    assert flags["url"].tolist() == [False] * 5 + [True, True, True, True, False]
    flags = regex_flags(["x", " =", " 0", "xdeadbeef", "\n", "    ", "return"])
    assert flags["hexadecimal"][2] and flags["hexadecimal"][3] and not flags["hexadecimal"][6]
    assert flags["indentation"].tolist() == [False] * 5 + [True, False]
    b64 = regex_flags(["data", ":", " aGVsbG8gV29ybGQhIEhlbGxv", "Q29kZQ==", " end"])
    assert b64["base64"][2] and not b64["base64"][4]


def test_vocab_classes(tables):
    def has(name, text):
        ids = [i for i, t in enumerate(tables.text) if t == text]
        return ids and bool(tables.classes[name][ids[0]])

    assert has("newline", "\n") and has("whitespace", "\n")
    assert has("punctuation", ",") and not has("punctuation", " the")
    assert not has("capitalized", " the")


def test_features_of_a_range_match_the_split(val, tables):
    f = range_features(val, tables, 100, 50)
    stream = val.window(99, 52).astype(np.int64)
    assert f.tokens.tolist() == stream[1:51].tolist()
    assert f.prev.tolist() == stream[:50].tolist()
    assert f.next.tolist() == stream[2:].tolist()
    p = point_features(val, tables, [100, 149])
    assert p.tokens.tolist() == [stream[1], stream[50]]
    edge = range_features(val, tables, 0, 3)
    assert edge.prev[0] == 0  # EOT before the first token
    for name in f.regex:  # regexes at single points agree with the range computation
        assert p.regex[name].tolist() == [f.regex[name][0], f.regex[name][49]]


def test_explanation_holds_and_text(tables):
    V = tables.vocab_size
    a, b = 5, 9
    f = PositionFeatures(np.array([a, b, b, a]), np.array([0, a, b, b]), np.array([b, b, a, 0]),
                         np.array([0, 0, 1, 1]), {k: np.zeros(4, bool) for k in
                                                  ("year", "url", "hexadecimal", "base64",
                                                   "indentation")}, ["sotu", "python-stdlib"])
    assert Explanation("token", (a,)).holds(f, tables).tolist() == [True, False, False, True]
    assert Explanation("bigram", ((a, b),)).holds(f, tables).tolist() == [False, True, False, False]
    assert Explanation("prev_token", (b,)).holds(f, tables).tolist() == [False, False, True, True]
    assert Explanation("next_token", (a,)).holds(f, tables).tolist() == [False, False, True, False]
    assert Explanation("source", ("python-stdlib",)).holds(f, tables).tolist() == [False, False, True, True]
    for e in candidate_explanations(f, tables):
        assert Explanation.from_key(e.key()) == e
        assert e.text(tables)
    assert V == 1024


def test_surprise_prefers_rare_rules():
    assert surprise(0.9, 0.05) > surprise(0.95, 0.3)
    assert surprise(1.0, 0.04) > surprise(0.8, 0.01)
    assert surprise(0.3, 0.3) == pytest.approx(0.0, abs=1e-12)


def test_best_explanation_is_specific(val, tables):
    """A rule holding everywhere can't explain anything: lift keeps it out."""
    f = range_features(val, tables, 0, 2000)
    background = Background(f, tables)
    top = f.take(np.arange(20))
    settings = ScoreSettings(min_lift=1e9)
    e, coverage, base, specific = best_explanation(top, tables, background, settings)
    assert not specific


def test_settings_are_validated():
    for bad in (dict(threshold=0), dict(threshold=1.5), dict(k=0), dict(min_lift=0.5),
                dict(max_set=0), dict(fire_fraction=1.0), dict(hook="pre")):
        with pytest.raises(ConfigError):
            ScoreSettings(**bad)


# --- planted-neuron validation -----------------------------------------------------------

def test_planted_neurons_are_found_and_noise_is_not(val, tables, frequent, frequent_bigram,
                                                     common):
    assert len(frequent) >= 7
    plants = [Plant("token", (frequent[2],)), Plant("token", (frequent[6],)),
              Plant("bigram", frequent_bigram), Plant("random"), Plant("random"),
              Plant("random"), Plant("polysemantic", tuple(common[4:28:2]))]
    source = PlantedNeurons(plants, seed=1)
    h = harvest(source, val, N_CTX, 0, progress=False)
    scores = score_neurons(source, h, val, tables, progress=False)
    by = {r.neuron: r for r in scores.records}
    for i in (0, 1):
        r = by[i]
        assert r.interpretable, r
        assert r.explanation_obj() == Explanation("token", plants[i].tokens), r.text
        assert r.precision > 0.9 and r.recall > 0.9 and r.correlation > 0.8
        assert r.spectrum_interpretable
    bigram = by[2]
    assert bigram.interpretable
    assert bigram.explanation_obj() == Explanation("bigram", (frequent_bigram,)), bigram.text
    assert bigram.precision > 0.8
    for i in (3, 4, 5):
        assert not by[i].interpretable, by[i]
        assert abs(by[i].correlation) < 0.1
    poly = by[6]
    assert not poly.interpretable or not poly.spectrum_interpretable, poly
    assert scores.fraction_interpretable().successes == 3


def test_token_detectors_planted_in_real_model_weights(val, tables, frequent):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layers=1, d_model=128, n_heads=2, d_head=16, d_mlp=16,
                                    d_vocab=tables.vocab_size, n_ctx=N_CTX, act_fn="gelu"))
    detectors = {0: frequent[1], 5: frequent[4], 9: frequent[7]}
    plant_token_detectors(model, detectors)
    h = harvest(model, val, N_CTX, 0, progress=False)
    scores = score_neurons(model, h, val, tables, progress=False)
    for neuron, token in detectors.items():
        r = scores.get(0, neuron)
        assert r.interpretable and r.explanation_obj() == Explanation("token", (token,)), r.text
        assert r.precision > 0.95 and r.recall > 0.95


def test_scores_roundtrip_and_aggregate(tmp_path, val, tables, frequent):
    source = PlantedNeurons([Plant("token", (frequent[0],)), Plant("random")], seed=0)
    h = harvest(source, val, N_CTX, 0, progress=False)
    scores = score_neurons(source, h, val, tables, progress=False, meta={"name": "planted"})
    path = scores.save(tmp_path / "s.json")
    again = NeuronScores.load(path)
    assert [r.text for r in again.records] == [r.text for r in scores.records]
    a, b = scores.get(0, 1), again.get(0, 1)
    assert (math.isnan(a.precision) and math.isnan(b.precision)) or a.precision == b.precision
    p = again.fraction_interpretable()
    assert (p.successes, p.n) == (1, 2) and p.lo < 0.5 < p.hi
    layer = again.by_layer()[0]
    assert layer["interpretable"] == 1 and layer["n"] == 2
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="delete it"):
        NeuronScores.load(tmp_path / "bad.json")


def test_scorer_refuses_to_hold_out_the_selection_rows(val, tables):
    source = PlantedNeurons([Plant("random")])
    h = harvest(source, val, N_CTX, 0, rows="odd", progress=False)
    with pytest.raises(ConfigError, match="hold"):
        score_neurons(source, h, val, tables, progress=False)


def test_dead_neurons_are_not_interpretable(val, tables):
    class Dead:
        n_layers, d_mlp, hooks = 1, 2, ("mid",)

        def activations(self, tokens):
            return {"mid": [-torch.ones(*tokens.shape, 2)]}

    h = harvest(Dead(), val, N_CTX, 0, progress=False)
    scores = score_neurons(Dead(), h, val, tables, progress=False)
    assert all(r.dead and not r.interpretable for r in scores.records)


def test_human_agreement_counts():
    from solu_repro.interp.score import NeuronScore, human_agreement

    def rec(n, ok):
        return NeuronScore(0, n, None, "", None, 0, 0, 0, ok, False, 0, 0, 0, 0, 0)

    scores = {"a": NeuronScores({}, [rec(0, True), rec(1, True), rec(2, False), rec(3, False)])}
    judged = {("a", 0, 0): True, ("a", 0, 1): False, ("a", 0, 2): False, ("a", 0, 3): True,
              ("b", 0, 0): True}  # model b was not scored: left out
    out = human_agreement(scores, judged)
    assert out["n"] == 4 and out["agreement"] == 0.5
    assert (out["both_interpretable"], out["human_only"], out["scorer_only"], out["neither"]) == (1, 1, 1, 1)
    assert out["kappa"] == pytest.approx(0.0)
    assert math.isnan(human_agreement(scores, {})["agreement"])
