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
    assert not poly.interpretable and not poly.spectrum_interpretable, poly
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


# --- the judge's rules: sets make one rule, top lists hold firings, held-out coverage ------

def _token_id(tables, text):
    return tables.text.index(text)


def test_sets_count_only_when_they_make_one_rule(tables):
    from solu_repro.interp.explanations import is_one_rule, related_tokens

    ids = lambda *texts: [_token_id(tables, t) for t in texts]  # noqa: E731
    digits = [t for t in tables.text if t.isdigit() and t.isascii()][:3]
    assert len(digits) >= 2 and related_tokens(ids(*digits), tables)
    puncts = [t for t in (",", ".", ";", ":", ")") if t in tables.text][:3]
    assert len(puncts) >= 2 and related_tokens(ids(*puncts), tables)
    words = [t for t in tables.text if t.startswith(" ") and t[1:].isalpha() and len(t) > 3]
    # two different words: not one rule
    pair = next((a, b) for a in words for b in words if a.strip().lower() != b.strip().lower()
                and not b.strip().lower().startswith(a.strip().lower()))
    assert not related_tokens(ids(*pair), tables)
    # a word and punctuation and another word: polysemantic
    assert not related_tokens(ids(pair[0], puncts[0], pair[1]), tables)
    # case and space variants of one word are one rule
    variants = next(((w, w.strip()) for w in words if w.strip() in tables.text), None)
    if variants:
        assert related_tokens(ids(*variants), tables)
    plural = next(((w, w + "s") for w in words if w + "s" in tables.text), None)
    if plural:
        assert related_tokens(ids(*plural), tables)
    # single values are always one rule; bigram sets need both sides related
    assert is_one_rule(Explanation("token", (ids(pair[0])[0],)), tables)
    a, b = ids(*pair)
    assert not is_one_rule(Explanation("bigram", ((a, a), (b, b))), tables)
    assert is_one_rule(Explanation("bigram", ((a, ids(digits[0])[0]), (a, ids(digits[1])[0]))),
                       tables)
    f = PositionFeatures(np.array([a, b, a, b, ids(puncts[0])[0]]),
                         np.zeros(5, dtype=np.int64), np.zeros(5, dtype=np.int64),
                         np.zeros(5, dtype=np.int64), {k: np.zeros(5, dtype=bool)
                                                       for k in regex_flags([]).keys()},
                         ["x"])
    sets = [e for e in candidate_explanations(f, tables) if e.kind == "token"]
    assert all(len(e.values) == 1 for e in sets), [e.values for e in sets]


def test_small_polysemantic_set_is_not_interpretable(val, tables, frequent):
    """Three unrelated frequent tokens, within the old small-set limit: polysemantic."""
    picks = []
    for t in frequent:
        from solu_repro.interp.explanations import related_tokens
        if all(not related_tokens([t, p], tables) for p in picks):
            picks.append(t)
        if len(picks) == 3:
            break
    assert len(picks) == 3
    source = PlantedNeurons([Plant("polysemantic", tuple(picks)), Plant("token", (picks[0],))],
                            seed=2)
    h = harvest(source, val, N_CTX, 0, progress=False)
    scores = score_neurons(source, h, val, tables, progress=False)
    poly, detector = scores.get(0, 0), scores.get(0, 1)
    assert not poly.interpretable, poly.text
    assert detector.interpretable, detector.text


def test_rare_detector_is_judged_on_its_real_firings(val, tables):
    """A detector whose token is in fewer than k windows: its top list is its firings (no
    near-zero padding), and it is found."""
    rows = val.n_tokens // (N_CTX - 1)
    grid = val.window(0, rows * (N_CTX - 1)).reshape(rows, N_CTX - 1)
    counts = {}
    for parity in (0, 1):
        present = np.unique(np.concatenate([np.unique(r) for r in grid[parity::2]]),
                            return_counts=True)
        counts[parity] = dict(zip(*present))
    token = next(int(t) for t, c in counts[0].items()
                 if 8 <= c <= 15 and 8 <= counts[1].get(t, 0) <= 15)
    source = PlantedNeurons([Plant("token", (token,))], seed=3)
    h = harvest(source, val, N_CTX, 0, progress=False)
    assert len(h.top_examples(0, 0)) == 20  # the harvest keeps k examples, padding included
    r = score_neurons(source, h, val, tables, progress=False).get(0, 0)
    assert r.interpretable and r.explanation_obj() == Explanation("token", (token,)), r.text
    assert 8 <= r.n_top <= 15 and r.coverage == 1.0 and not r.rare


def test_coverage_is_measured_on_the_heldout_top_firings(val, tables, frequent):
    """The explanation is chosen on the selection rows and measured on the held-out harvest:
    a held-out harvest where the neuron fires on another token fails it."""
    a, b = frequent[1], frequent[3]
    chosen_on = PlantedNeurons([Plant("token", (a,))], seed=4)
    other = PlantedNeurons([Plant("token", (b,))], seed=4)
    selection = harvest(chosen_on, val, N_CTX, 0, progress=False)
    same = harvest(chosen_on, val, N_CTX, 0, rows="odd", progress=False)
    moved = harvest(other, val, N_CTX, 0, rows="odd", progress=False)
    ok = score_neurons(chosen_on, selection, val, tables, progress=False, heldout=same)
    bad = score_neurons(chosen_on, selection, val, tables, progress=False, heldout=moved)
    assert ok.get(0, 0).interpretable and ok.get(0, 0).coverage == 1.0
    r = bad.get(0, 0)
    assert r.selection_coverage == 1.0 and r.coverage < 0.2 and not r.interpretable
    with pytest.raises(ConfigError, match="held-out"):
        score_neurons(chosen_on, selection, val, tables, progress=False, heldout=selection)
    with pytest.raises(ConfigError, match="must not overlap"):
        score_neurons(chosen_on, harvest(chosen_on, val, N_CTX, 0, rows="all", progress=False),
                      val, tables, progress=False)
