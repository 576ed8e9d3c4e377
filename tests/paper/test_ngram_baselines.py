"""The unigram and bigram reference points of chapter 3 (``s5_performance.ngram_baselines``):
exact values on a hand-made corpus, and properties on the real tiny corpus."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from solu_repro.data import ShardWriter, TokenSplit
from solu_repro.paper import s5_performance as s5
from solu_repro.zoo import ensure_trained

BOS = 0  # also the end-of-text token, as in the zoo's corpora
SOURCES = ["a", "b"]


def _split(directory, docs):
    writer = ShardWriter(directory, np.uint16, eot_id=BOS)
    for i, (source, tokens) in enumerate(docs):
        writer.add_document(tokens, SOURCES.index(source), f"doc{i}")
    return TokenSplit(directory, writer.close(SOURCES), SOURCES)


@pytest.fixture
def hand_made(tmp_path):
    """V = 4, rows of n_ctx = 3 (BOS + 2 tokens).

    train stream 1 2 1 2 1 0 | 3 3 0 -> rows (0 1 2) (0 1 2) (0 1 0) (0 3 3), tail "0" dropped:
        pairs (0,1) x3, (1,2) x2, (1,0), (0,3), (3,3); 8 targets.
    val stream 2 1 0 | 3 0 -> rows (0 2 1) (0 0 3), tail dropped: targets 2|0, 1|2, 0|0 (source
        a) and 3|0 (source b, after doc a's end-of-text token).
    """
    train = _split(tmp_path / "train", [("a", [1, 2, 1, 2, 1]), ("b", [3, 3])])
    val = _split(tmp_path / "val", [("a", [2, 1]), ("b", [3])])

    def corpus(splits):
        return SimpleNamespace(split=splits.__getitem__, bos_id=BOS, vocab_size=4,
                               source_names=SOURCES)
    return SimpleNamespace(corpus=corpus({"train": train, "val": val}),
                           swapped=corpus({"train": val, "val": train}))


def _mean_nats(*probs):
    return -sum(math.log(p) for p in probs) / len(probs)


# By hand. Add-one unigram: (c(w) + 1) / (8 + 4), c = {0: 1, 1: 3, 2: 2, 3: 2}.
UNIGRAM = {"a": [3 / 12, 4 / 12, 2 / 12], "b": [3 / 12]}          # targets 2, 1, 0 | 3
# Add-one bigram: (c(v, w) + 1) / (c(v) + 4), c(0) = 4, c(2) = 0.
BIGRAM = {"a": [1 / 8, 1 / 4, 1 / 8], "b": [2 / 8]}
# Kneser-Ney, D = 0.75: continuation N1+(.w) = {0: 1, 1: 1, 2: 1, 3: 2} of 5 pair types, every
# token seen, so P_cont = N1+(.w) / 5; context 0 has N1+(0.) = 2 kinds, context 2 is unseen.
KN = {"a": [(0.75 * 2 * 0.2) / 4, 0.2, (0.75 * 2 * 0.2) / 4],
      "b": [(0.25 + 0.75 * 2 * 0.4) / 4]}


def test_hand_made_values(hand_made):
    b = s5.ngram_baselines(hand_made.corpus, n_ctx=3)
    expected = {"unigram": UNIGRAM, "bigram": BIGRAM, "bigram_kn": KN}
    for kind, probs in expected.items():
        assert b.loss[kind] == pytest.approx(_mean_nats(*probs["a"], *probs["b"]), abs=1e-12)
        for source in SOURCES:
            assert b.per_source[source][kind] == pytest.approx(_mean_nats(*probs[source]),
                                                               abs=1e-12)
    assert b.bigram == b.loss["bigram_kn"]
    # BOS is a context, never a target: 4 train rows of 2 targets, 2 validation rows of 2
    assert (b.train_tokens, b.val_tokens, b.val_rows) == (8, 4, 2)
    assert (b.vocab_size, b.discount) == (4, s5.KN_DISCOUNT)


def test_counts_come_from_train_and_scores_from_val(hand_made):
    swapped = s5.ngram_baselines(hand_made.swapped, n_ctx=3)
    right = s5.ngram_baselines(hand_made.corpus, n_ctx=3)
    assert (swapped.train_tokens, swapped.val_tokens) == (4, 8)
    for kind in s5.NGRAM_KINDS:
        assert swapped.loss[kind] != pytest.approx(right.loss[kind])


def test_the_final_evaluations_row_cap(hand_made):
    """``max_rows`` picks the model's evenly spaced rows: one row of two is the first."""
    b = s5.ngram_baselines(hand_made.corpus, n_ctx=3, max_rows=1)
    assert (b.val_rows, b.val_tokens) == (1, 2)
    assert b.loss["unigram"] == pytest.approx(_mean_nats(3 / 12, 4 / 12))
    assert list(s5.validation_rows(10, 4)) == [0, 3, 6, 9]
    assert list(s5.validation_rows(3, None)) == [0, 1, 2]


def test_a_larger_vocabulary_spreads_add_one_mass(hand_made):
    b = s5.ngram_baselines(hand_made.corpus, n_ctx=3, vocab_size=6)
    assert b.vocab_size == 6
    assert b.per_source["b"]["unigram"] == pytest.approx(-math.log(3 / 14))
    with pytest.raises(ValueError, match="discount"):
        s5.ngram_baselines(hand_made.corpus, n_ctx=3, discount=1.5)


# --- the real tiny corpus ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_counts(corpus):
    return s5.bigram_counts(corpus, n_ctx=64)


def test_distributions_sum_to_one(corpus, tiny_counts):
    v = tiny_counts.vocab_size
    every = np.arange(v)
    unseen = np.flatnonzero(tiny_counts.pairs.sum(axis=1) == 0)
    contexts = [corpus.bos_id, 1, 100, v - 1, *unseen[:2]]
    assert tiny_counts.unigram_add_one(every).sum() == pytest.approx(1, abs=1e-12)
    assert tiny_counts.continuation(every).sum() == pytest.approx(1, abs=1e-12)
    for c in contexts:
        ctx = np.full(v, c)
        for p in (tiny_counts.bigram_add_one(ctx, every), tiny_counts.bigram_kn(ctx, every),
                  tiny_counts.bigram_kn(ctx, every, discount=0.5)):
            assert p.min() > 0 and p.sum() == pytest.approx(1, abs=1e-12), c


def test_kneser_ney_beats_add_one_on_the_tiny_corpus(corpus):
    b = s5.ngram_baselines(corpus, n_ctx=64, max_rows=64)
    assert b.loss["bigram_kn"] <= b.loss["bigram"] <= b.loss["unigram"] < math.log(b.vocab_size)
    for source, losses in b.per_source.items():
        assert losses["bigram_kn"] <= losses["unigram"], source
    assert set(b.per_source) == {"sotu", "python-stdlib"}
    assert s5.ngram_baselines(corpus, n_ctx=64, max_rows=64) == b  # deterministic


def test_the_zoo_scores_the_models_own_validation_tokens(tmp_path, data_dir, monkeypatch):
    """The baselines score exactly as many targets as the model's final evaluation did, and
    ``measure`` carries them (or says why there are none)."""
    run = ensure_trained("1L-gelu", "tiny", tmp_path, progress=False, data_dir=data_dir)
    monkeypatch.setenv("SOLU_DATA_DIR", str(tmp_path / "no-corpus-here"))
    assert s5.zoo_ngram_baselines({run.name: run})[0] is None  # corpus not in $SOLU_DATA_DIR
    monkeypatch.setenv("SOLU_DATA_DIR", str(data_dir))
    b, reason = s5.zoo_ngram_baselines({run.name: run})
    assert reason is None and b.val_tokens == run.result["val_tokens"]
    assert b.vocab_size == run.config.model.d_vocab
    assert b.val_rows == run.config.final_eval_rows
    m = s5.measure({run.name: run})
    assert m.ngram == b and m.ngram_reason is None
    no_corpus = {run.name: dataclasses.replace(run, result={
        k: v for k, v in run.result.items() if k != "data_hash"})}
    assert s5.zoo_ngram_baselines(no_corpus) == (None, "the runs record no corpus")
