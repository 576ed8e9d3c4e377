"""Sparse probing against ground-truth labels (interp/probing.py): planted label detectors
have dedicated neurons and a random rotation of them does not; on heavy-tailed detectors the
single-direction F1 falls by more than half under rotation while AUROC barely moves; the
sampling, the threshold search and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_recall_curve

from solu_repro.interp.controls import rotated
from solu_repro.interp.harvest import ModelNeurons
from solu_repro.interp.probing import (DEDICATED_MARGIN, ProbeResult,
                                       best_threshold_f1, sparse_probe)
from solu_repro.model import ConfigError, ModelConfig, Transformer

N_CTX = 64
N_DETECTORS = 64


class LabelDetectors:
    """A one-layer ``NeuronSource``: neuron ``j`` fires exactly where label ``j`` holds (the
    token is one of ``sets[j]``), at ``magnitudes[j] * (1 + 0.5 u)``, u ~ U(0, 1), over a
    background of ``0.02 |N(0, 1)|``; then ``n_noise`` dense neurons ``|N(0, 1)|`` (the
    random neurons of ``planted.PlantedNeurons``). Noise comes from a seeded generator."""

    def __init__(self, sets: list[tuple[int, ...]], magnitudes, n_noise: int = 0, seed: int = 0):
        self.lookup = torch.full((1 << 16,), -1, dtype=torch.long)
        for j, tokens in enumerate(sets):
            self.lookup[list(tokens)] = j
        self.magnitudes = torch.as_tensor(np.asarray(magnitudes), dtype=torch.float32)
        self.n_detectors, self.n_noise = len(sets), n_noise
        self.n_layers, self.d_mlp, self.hooks = 1, len(sets) + n_noise, ("mid",)
        self.generator = torch.Generator().manual_seed(seed)

    def activations(self, tokens: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        B, T = tokens.shape
        j = self.lookup[tokens.cpu()]
        fires = torch.nn.functional.one_hot(j.clamp(min=0), self.n_detectors).float()
        fires *= (j >= 0)[..., None]
        u = torch.rand(B, T, self.n_detectors, generator=self.generator)
        detectors = fires * self.magnitudes * (1 + 0.5 * u)
        detectors += 0.02 * torch.randn(B, T, self.n_detectors, generator=self.generator).abs()
        noise = torch.randn(B, T, self.n_noise, generator=self.generator).abs()
        return {"mid": [torch.cat([detectors, noise], dim=-1)]}


@pytest.fixture(scope="module")
def val(corpus):
    """The session corpus' validation split (8,680 tokens: about 4,300 per half at n_ctx
    64, under the default budget, so no subsampling), its tokens, and 64 detector token sets:
    pairs of the 128 most frequent tokens, so label frequencies fall off like the corpus'
    (Zipf-like: 487 down to 35 tokens)."""
    split = corpus.split("val")
    tokens = split.window(0, split.n_tokens).astype(np.int64)
    order = np.argsort(-np.bincount(tokens), kind="stable")
    sets = [tuple(int(t) for t in order[2 * j:2 * j + 2]) for j in range(N_DETECTORS)]
    return split, tokens, sets


def _labels(tokens, sets, which) -> dict[str, np.ndarray]:
    return {f"L{j}": np.isin(tokens, sets[j]) for j in which}


def _probe(source, split, labels, **kw) -> ProbeResult:
    return sparse_probe(source, split, labels, n_ctx=N_CTX, progress=False, **kw)


def _mean(xs) -> float:
    return float(np.mean(list(xs)))


@pytest.fixture(scope="module")
def uniform(val):
    """64 equal-magnitude detectors and 16 dense noise neurons, in their own basis and in a
    random rotation; 16 of the labels probed (every 4th detector's)."""
    split, tokens, sets = val
    labels = _labels(tokens, sets, range(0, N_DETECTORS, 4))

    def source():
        return LabelDetectors(sets, np.ones(N_DETECTORS), n_noise=16, seed=0)

    return _probe(source(), split, labels), _probe(rotated(source(), seed=0), split, labels)


@pytest.fixture(scope="module")
def heavy(val):
    """The issue's simulation: 64 detectors with Zipf-like frequencies and lognormal
    (sigma = 1.5) peak magnitudes, so that a few dominate; 32 labels probed (every other),
    single neurons only."""
    split, tokens, sets = val
    magnitudes = np.random.default_rng(0).lognormal(0.0, 1.5, N_DETECTORS)
    labels = _labels(tokens, sets, range(0, N_DETECTORS, 2))

    def source():
        return LabelDetectors(sets, magnitudes, seed=0)

    return (_probe(source(), split, labels, ks=(1,)),
            _probe(rotated(source(), seed=0), split, labels, ks=(1,)))


# --- the threshold search -----------------------------------------------------------------------

def test_best_threshold_f1_matches_scikit_learn():
    """The vectorised search finds the best F1 of scikit-learn's precision-recall curve, with
    ties and weights, on either sign, and its threshold reproduces that F1."""
    rng = np.random.default_rng(0)
    n = 400
    y = rng.random(n) < 0.15
    x = np.stack([np.round(y * 1.0 + rng.normal(0, 0.7, n), 1),  # ties, reads y high
                  np.round(-2.0 * y + rng.normal(0, 1.0, n), 1),  # reads y low
                  rng.normal(size=n)], axis=1)
    w = rng.uniform(0.2, 3.0, n)
    f1, sign, threshold = best_threshold_f1(x, y, w)
    assert list(sign[:2]) == [1, -1]
    for j in range(3):
        curves = [precision_recall_curve(y, s * x[:, j], sample_weight=w) for s in (1, -1)]
        expected = max(np.nanmax(2 * p * r / np.where(p + r > 0, p + r, np.nan))
                       for p, r, _ in curves)
        assert f1[j] == pytest.approx(expected, abs=1e-9), j
        predicted = sign[j] * x[:, j] > sign[j] * threshold[j]
        assert f1_score(y, predicted, sample_weight=w) == pytest.approx(f1[j], abs=1e-9)
    one_sign, _, _ = best_threshold_f1(x[:, 1], y, w, both_signs=False)
    assert one_sign[0] < f1[1] - 0.3  # read high, the low-reading column is poor


# --- planted detectors --------------------------------------------------------------------------

def test_planted_detectors_have_dedicated_neurons_and_their_rotation_has_none(uniform):
    """Known answer: each label's own neuron reads it with F1 1; in a random rotation no
    label has a dedicated direction. Measured (rotation seed 0): best single direction F1
    0.11 on average (at most 0.44), full probe 1.00 in both bases, privileged-basis gap +0.89
    on average (at least +0.56); rotation seeds 1 and 2 gave mean gaps of +0.87 and +0.85.

    The 16 dense neurons matter: without them (features that never co-occur, over a nearly
    silent background) a rotated direction isolates whichever label it weights most, and 5 of
    the 16 labels keep a dedicated direction (mean best F1 0.72, gap +0.28)."""
    plain, turned = uniform
    for name, p in plain.labels.items():
        j = int(name[1:])
        assert (p.best_neuron.layer, p.best_neuron.neuron, p.best_neuron.sign) == (0, j, 1)
        assert p.best_neuron.f1 > 0.99 and p.full_probe_f1 > 0.99, (name, p)
        assert p.neurons[1] == [(0, j)]
        assert p.count == p.n_score_positives > 0  # no subsampling at this size
    assert plain.dedicated() == list(plain.labels)
    assert turned.dedicated() == []
    assert all(p.full_probe_f1 > 0.99 for p in turned.labels.values())  # nothing is lost...
    gap = plain.privileged_basis_gap(turned)
    assert min(gap.values()) > 0.4 and _mean(gap.values()) > 0.7, gap  # ...but the neurons
    assert max(turned.best_f1().values()) < 1 - DEDICATED_MARGIN


def test_heavy_tailed_gap_falls_by_at_least_half_under_rotation(heavy):
    """The issue's Done-when: on heavy-tailed detectors the best single direction's F1, on
    average over the labels, falls to at most half of the neuron basis's. Measured (seed 0):
    0.98 -> 0.39 (ratio 0.40, mean gap +0.59; 7 of 32 labels keep a dedicated direction:
    the loudest detectors, which dominate whichever directions weight them). Planting and
    rotation seeds 1, 2, 3 gave ratios 0.47, 0.43, 0.40."""
    plain, turned = heavy
    before, after = _mean(plain.best_f1().values()), _mean(turned.best_f1().values())
    assert before > 0.95
    assert after <= before / 2, (before, after)
    gap = plain.privileged_basis_gap(turned)
    assert _mean(gap.values()) >= before / 2
    assert len(turned.dedicated()) <= len(plain.dedicated()) / 2


def test_auroc_stays_high_under_rotation_while_f1_drops(heavy):
    """Why F1 compares bases: a rotated direction ranks its label's tokens above almost all
    others (AUROC 0.93 on average against 1.00), but no threshold separates them from the
    louder detectors it mixes in (F1 0.39 against 0.98). Same for the 1-sparse probe (AUROC
    0.92)."""
    plain, turned = heavy

    def mean(result, field):
        return _mean(getattr(p.best_neuron, field) for p in result.labels.values())

    auroc_drop = mean(plain, "auroc") - mean(turned, "auroc")
    f1_drop = mean(plain, "f1") - mean(turned, "f1")
    assert mean(turned, "auroc") > 0.9 and mean(turned, "f1") < 0.5
    assert auroc_drop < f1_drop / 4, (auroc_drop, f1_drop)
    one = {name: _mean(r.labels[n].auroc[1] for n in r.labels) for name, r in
           (("plain", plain), ("turned", turned))}
    assert one["turned"] > 0.85 and one["plain"] - one["turned"] < f1_drop / 4


def test_k_sparse_f1_grows_with_k_and_stays_below_the_full_probe(uniform):
    """F1 is non-decreasing in k up to 0.05 per label (a larger probe can lose a little to
    the threshold chosen on the other half), and at most the full probe's + 0.05. In the
    rotated basis it climbs from 0.11 (k=1) to 0.97 (k=16): a feature spread over directions
    needs many of them."""
    plain, turned = uniform
    tol = 0.05
    for result in (plain, turned):
        assert result.ks == (1, 2, 4, 8, 16)
        for name, p in result.labels.items():
            f1 = [p.f1[k] for k in result.ks]
            assert all(b >= a - tol for a, b in zip(f1, f1[1:])), (name, f1)
            assert max(f1) <= p.full_probe_f1 + tol, (name, f1, p.full_probe_f1)
            assert [len(p.neurons[k]) for k in result.ks] == list(result.ks)
            assert p.neurons[16][:4] == p.neurons[4]  # nested: the top of one ranking
    means = [_mean(p.f1[k] for p in turned.labels.values()) for k in turned.ks]
    assert means[0] < 0.4 and means[-1] > 0.9 and means == sorted(means), means


# --- the token sample ---------------------------------------------------------------------------

def test_stratified_sample_keeps_rare_positives_and_estimates_all_tokens(corpus):
    """On the train split (106k tokens per half), a budget of 4,000 tokens per half keeps
    every positive of a rare label, lands near the budget, and (weighted) still reads planted
    detectors perfectly; the count and base rate describe all the scoring rows' tokens."""
    split = corpus.split("train")
    tokens = split.window(0, split.n_tokens).astype(np.int64)
    counts = np.bincount(tokens)
    order = np.argsort(-counts, kind="stable")
    rare = int(order[600])
    sets = [(int(order[0]),), (int(order[10]),), (rare,)]
    labels = _labels(tokens, sets, range(3))
    kw = dict(max_tokens=4000, seed=3)
    result = _probe(LabelDetectors(sets, [1.0, 1.0, 1.0], n_noise=4), split, labels, ks=(1, 2),
                    **kw)
    meta = result.meta
    assert meta["fit_half_tokens"] > 100_000
    for n in (meta["n_fit_tokens"], meta["n_score_tokens"]):
        assert 3400 < n < 4600, meta
    t1 = N_CTX - 1
    n_rows = split.n_tokens // t1
    odd = np.concatenate([np.arange(r * t1, (r + 1) * t1) for r in range(1, n_rows, 2)])
    for j, (name, p) in enumerate(result.labels.items()):
        assert p.count == int(labels[name][odd].sum())
        assert p.base_rate == pytest.approx(p.count / len(odd))
        assert p.best_neuron.f1 > 0.99 and p.best_neuron.neuron == j
    rare_probe = result.labels["L2"]
    assert 0 < rare_probe.count < 4000 // (4 * 3)  # below the floor: every positive is kept
    assert rare_probe.n_score_positives == rare_probe.count
    frequent = result.labels["L0"]
    assert frequent.n_score_positives < frequent.count  # subsampled, and weighted back
    again = _probe(LabelDetectors(sets, [1.0, 1.0, 1.0], n_noise=4), split, labels, ks=(1, 2),
                   **kw)
    assert again.labels == result.labels  # a pure function of the seed


# --- models and controls ------------------------------------------------------------------------

def _model(act_fn: str) -> Transformer:
    return Transformer(ModelConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64,
                                   d_vocab=1024, n_ctx=N_CTX, act_fn=act_fn, seed=0)).eval()


def test_a_transformer_and_its_rotation_are_probed(val):
    """A ``Transformer`` is wrapped like ``score_neurons`` does (its context is the row
    length), neurons of every layer are named (layer, neuron), and ``rotated(model)``,
    ``hook="post"`` and one layer alone all work."""
    split, tokens, sets = val
    labels = _labels(tokens, sets, range(3))
    model = _model("solu_ln")
    kw = dict(ks=(1, 4), progress=False)
    direct = sparse_probe(model, split, labels, **kw)
    assert direct.meta["n_ctx"] == N_CTX and direct.meta["layers"] == [0, 1]
    assert direct.meta["n_neurons"] == 128
    wrapped = sparse_probe(ModelNeurons(model), split, labels, **kw)
    assert wrapped.labels == direct.labels
    for p in direct.labels.values():
        assert all(0 <= l < 2 and 0 <= n < 64 for l, n in p.neurons[4])
        assert 0.0 <= p.best_neuron.f1 <= 1.0 and 0.0 <= p.full_probe_auroc <= 1.0
    turned = sparse_probe(rotated(model, seed=0), split, labels, **kw)
    assert set(direct.privileged_basis_gap(turned)) == set(labels)
    post = sparse_probe(model, split, labels, hook="post", layer=1, **kw)
    assert post.meta["hook_read"] == "post" and post.meta["layers"] == [1]
    assert all(p.best_neuron.layer == 1 for p in post.labels.values())
    gelu = sparse_probe(_model("gelu"), split, labels, hook="post", layer=0, **kw)
    assert gelu.meta["hook_read"] == "mid"  # no extra LN: post is mid


# --- the result -----------------------------------------------------------------------------

def test_result_round_trips_through_json(uniform, tmp_path):
    plain, turned = uniform
    path = plain.save(tmp_path / "probe.json")
    back = ProbeResult.load(path)
    assert back.labels == plain.labels and back.meta == plain.meta
    assert back.ks == plain.ks and back.dedicated() == plain.dedicated()
    assert back.privileged_basis_gap(turned) == plain.privileged_basis_gap(turned)
    assert "16 with a dedicated neuron" in repr(back)
    (tmp_path / "bad.json").write_text('{"format": 0}')
    with pytest.raises(ConfigError, match="probe again"):
        ProbeResult.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="sparse_probe"):
        ProbeResult.load(tmp_path / "missing.json")


def test_gap_and_dedicated_refuse_what_does_not_compare(uniform, heavy):
    plain, _ = uniform
    with pytest.raises(ConfigError, match="same labels"):
        plain.privileged_basis_gap(heavy[1])
    with pytest.raises(ConfigError, match="ProbeResult"):
        plain.privileged_basis_gap({"L0": 0.5})
    other_hook = ProbeResult(plain.labels, {**plain.meta, "hook": "post"})
    with pytest.raises(ConfigError, match="hook"):
        plain.privileged_basis_gap(other_hook)
    with pytest.raises(ConfigError, match="margin"):
        plain.dedicated(margin=-0.1)
    # a looser margin admits more; min_f1 keeps out a label no linear read-out finds well
    assert set(uniform[1].dedicated(margin=0.9)) > set(uniform[1].dedicated())
    name, weakest = min(heavy[0].labels.items(), key=lambda item: item[1].full_probe_f1)
    assert name in heavy[0].dedicated(margin=1.0, min_f1=weakest.full_probe_f1)
    assert name not in heavy[0].dedicated(margin=1.0, min_f1=weakest.full_probe_f1 + 1e-6)


# --- bad input ----------------------------------------------------------------------------------

def test_bad_input_gets_a_clear_error(val):
    split, tokens, sets = val
    source = LabelDetectors(sets[:4], np.ones(4))
    good = _labels(tokens, sets, range(2))

    def probe(labels=good, **kw):
        return _probe(source, split, labels, **{"ks": (1,), **kw})

    with pytest.raises(ConfigError, match=r"label 'short' has shape \(10,\).*8680 tokens"):
        probe({**good, "short": np.zeros(10, dtype=bool)})
    with pytest.raises(ConfigError, match="label 'never' has no positive tokens in the fitting"):
        probe({**good, "never": np.zeros(split.n_tokens, dtype=bool)})
    odd_only = np.zeros(split.n_tokens, dtype=bool)
    odd_only[N_CTX - 1:2 * (N_CTX - 1)] = True  # row 1 only
    with pytest.raises(ConfigError, match="no positive tokens in the fitting \\(even\\) rows"):
        probe({"odd_only": odd_only})
    with pytest.raises(ConfigError, match="no negative tokens"):
        probe({"always": np.ones(split.n_tokens, dtype=bool)})
    with pytest.raises(ConfigError, match="boolean"):
        probe({"counts": np.where(good["L0"], 2, 0)})
    with pytest.raises(ConfigError, match="non-empty dict"):
        probe({})
    with pytest.raises(ConfigError, match="unknown hook 'pre'"):
        probe(hook="pre")
    with pytest.raises(ConfigError, match="'odd' or 'even'"):
        probe(rows="all")
    with pytest.raises(ConfigError, match="k=9 exceeds the 4 neurons"):
        probe(ks=(1, 9))
    with pytest.raises(ConfigError, match="positive integers"):
        probe(ks=(0, 1))
    with pytest.raises(ConfigError, match="layer must be in"):
        probe(layer=1)
    with pytest.raises(ConfigError, match="max_tokens"):
        probe(max_tokens=10)
    with pytest.raises(ConfigError, match="pass n_ctx"):
        sparse_probe(source, split, good, progress=False)
    with pytest.raises(ConfigError, match="exceeds the model's context"):
        sparse_probe(_model("gelu"), split, good, n_ctx=2 * N_CTX, progress=False)


def test_a_budget_too_small_for_the_labels_is_refused(val):
    """100 tokens for 30 labels keeps about one token of each class per label: some label
    ends up with none in a sample, and the error says to raise the budget."""
    split, tokens, sets = val
    labels = _labels(tokens, sets, range(30))
    with pytest.raises(ConfigError, match="raise max_tokens"):
        _probe(LabelDetectors(sets, np.ones(N_DETECTORS)), split, labels, ks=(1,),
               max_tokens=100)


def test_rows_even_swaps_the_halves(val):
    """``rows="even"`` scores on the even rows and fits on the odd ones: the counts are the
    even rows' positives."""
    split, tokens, sets = val
    labels = _labels(tokens, sets, range(2))
    result = _probe(LabelDetectors(sets[:2], np.ones(2)), split, labels, ks=(1,), rows="even")
    assert (result.meta["rows"], result.meta["fit_rows"]) == ("even", "odd")
    t1 = N_CTX - 1
    even = np.concatenate([np.arange(r * t1, (r + 1) * t1)
                           for r in range(0, split.n_tokens // t1, 2)])
    assert [p.count for p in result.labels.values()] == [int(labels[n][even].sum())
                                                         for n in labels]
