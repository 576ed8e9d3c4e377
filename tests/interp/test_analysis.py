"""Analyses: pre/post-LN consistency by band, layer roles, sparsity."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from solu_repro.data import num_rows
from solu_repro.interp.analysis import (band_counts, holds_out, kurtosis_values, layer_roles,
                                        ln_consistency, level_bands, sparsity_table)
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.harvest import harvest, selection_rows
from solu_repro.interp.planted import Plant, PlantedNeurons
from solu_repro.interp.score import NeuronScore, NeuronScores, score_neurons
from solu_repro.model import ModelConfig, Transformer

N_CTX = 64


@pytest.fixture(scope="module")
def token(corpus):
    val = corpus.split("val")
    return int(np.argmax(np.bincount(val.window(0, val.n_tokens).astype(np.int64))))


class SmugglingNeuron:
    """hook_mid: fires (at any strength) only on one token. hook_post: the same firings plus
    unrelated tokens firing at the same strengths -- what the paper suspects the LN does to
    weak firings. hook_post's low levels mix the token with unrelated ones."""

    n_layers, d_mlp, hooks = 1, 1, ("mid", "post")

    def __init__(self, token: int):
        self.token = token
        self.generator = torch.Generator().manual_seed(0)

    def activations(self, tokens):
        rule = (tokens == self.token).float()
        strength = 0.1 + torch.rand(tokens.shape, generator=self.generator)
        noise = torch.rand(tokens.shape, generator=self.generator)
        mid = rule * strength - (1 - rule) * 0.01
        post = rule * strength + (1 - rule) * 0.3 * noise
        return {"mid": [mid.unsqueeze(-1)], "post": [post.unsqueeze(-1)]}


class Unrelated:
    """Both hooks fire at random strengths on every token, whatever it is: a neuron with no
    relation to any explanation (what the untrained floor stands for)."""

    n_layers, d_mlp, hooks = 1, 1, ("mid", "post")

    def __init__(self):
        self.generator = torch.Generator().manual_seed(1)

    def activations(self, tokens):
        a = torch.rand(tokens.shape, generator=self.generator).unsqueeze(-1)
        return {"mid": [a], "post": [a.clone()]}


def test_level_bands_are_fractions_of_the_max():
    values = np.array([0.5, -1.0, 0.1, 3.0, 0.0, 2.0, 0.2, np.nan, 1.0, 0.7])
    bands = level_bands(values, 3)  # max 3: bands below 1, 1-2, 2-3
    assert list(bands[[1, 4, 7]]) == [-1, -1, -1]  # not firing
    assert bands.tolist() == [0, -1, 0, 2, -1, 2, 0, -1, 1, 0]
    assert level_bands(values, 3, peak=6.0).tolist() == [0, -1, 0, 1, -1, 1, 0, -1, 0, 0]
    assert level_bands(np.array([0.05, 0.1, 0.95, 1.0, 2.0]), 10, peak=1.0).tolist() == \
        [0, 1, 9, 9, 9]  # the top band is closed, anything above the peak joins it
    assert list(level_bands(np.zeros(3), 2)) == [-1, -1, -1]
    with pytest.raises(ValueError, match="n_bands"):
        level_bands(values, 0)


def test_band_counts_count_tokens_and_inconsistent_ones_per_hook():
    mid = np.array([1.0, 2.0, 3.0, 4.0, -1.0, -1.0])
    post = np.array([-1.0, -1.0, 4.0, 3.0, 2.0, 1.0])
    holds = np.array([True, True, True, True, False, False])
    ex, bad, peak = band_counts([mid, post], holds, 2)  # bands: below 2, 2 up to 4
    assert ex.tolist() == [[1, 3], [1, 3]]
    assert bad.tolist() == [[0, 0], [1, 1]]  # post's weak band: an unrelated token
    assert peak.tolist() == [4.0, 4.0]
    ex, bad, peak = band_counts([np.full(6, -1.0), post], holds, 2)
    assert ex[0].tolist() == [0, 0] and np.isnan(peak[0])
    with pytest.raises(ValueError, match="same tokens"):
        band_counts([mid[:3]], holds, 2)
    # Several neurons at once: each column as if alone.
    many = band_counts([np.stack([mid, post], 1), np.stack([post, mid], 1)],
                       np.stack([holds, ~holds], 1), 2)
    one = band_counts([post, mid], ~holds, 2)
    assert [m[1].tolist() for m in many] == [o.tolist() for o in one]


def test_ln_consistency_finds_the_smuggled_tokens_by_activation_level(corpus, tables, token):
    val = corpus.split("val")
    source = SmugglingNeuron(token)
    h = harvest(source, val, N_CTX, 0, progress=False)
    scores = score_neurons(source, h, val, tables, progress=False)
    assert scores.get(0, 0).interpretable and holds_out(scores.get(0, 0))
    assert scores.get(0, 0).explanation_obj() == Explanation("token", (token,))
    rows = selection_rows(num_rows(val, N_CTX), "odd")
    m = ln_consistency(source, scores, val, tables, rows, n_ctx=N_CTX, n_bands=5,
                       floor=Unrelated())
    assert m.n_candidates == 1 and m.n_rows == len(rows) and m.n_tokens == len(rows) * (N_CTX - 1)
    (nb,) = m.neurons
    freq = 1 - nb.chance
    assert 0 < freq < 0.5
    # Before the LN only the token fires: every band is consistent. After it, unrelated
    # tokens (up to 0.3, under 30% of the max 1.1) fill the low bands.
    assert nb.inconsistent[0].tolist() == [0] * 5 and nb.examples[0].sum() > 0
    assert nb.fractions("post")[0] > 0.9 and nb.fractions("post")[-1] == 0
    assert nb.difference([0, 1]) > 0.5 and nb.level("mid", [0, 1]) == 0
    assert 1.0 < nb.peak[0] <= 1.1 and 1.0 < nb.peak[1] <= 1.1
    # The floor: the same neuron's explanation against unrelated firings, at chance in
    # every band and on both hooks.
    (fl,) = m.floor
    assert (fl.layer, fl.neuron, fl.explanation) == (nb.layer, nb.neuron, nb.explanation)
    assert np.allclose(fl.fractions("mid"), nb.chance, atol=0.05)
    assert fl.difference(range(5)) == pytest.approx(0)
    assert m.mid_var.shape == (m.n_tokens,)  # one neuron, one block: var 0
    assert ln_consistency(source, scores, val, tables, rows[:2], n_ctx=N_CTX).floor == []
    none = NeuronScores({}, [replace(scores.get(0, 0), interpretable=False)])
    empty = ln_consistency(source, none, val, tables, rows[:2], n_ctx=N_CTX)
    assert empty.neurons == [] and empty.n_candidates == 0
    with pytest.raises(ValueError, match="both hooks"):
        plain = SmugglingNeuron(token)
        plain.hooks = ("mid",)
        ln_consistency(plain, scores, val, tables, rows, n_ctx=N_CTX)


def test_holds_out_is_the_scorers_held_out_rule():
    e = Explanation("token", (1,))
    good = NeuronScore(0, 0, e.key(), "token", e.role, 0.9, 0.01, 90.0, True, False, 0.5, 0.5,
                       0.5, 10, 10, selection_coverage=0.95, n_top=20)
    assert holds_out(good)
    assert not holds_out(replace(good, interpretable=False))
    assert not holds_out(replace(good, coverage=0.7))
    assert not holds_out(replace(good, n_top=3))
    assert not holds_out(replace(good, rare=True))


def _record(layer, neuron, kind, values, interpretable=True):
    e = Explanation(kind, values)
    return NeuronScore(layer, neuron, e.key(), kind, e.role, 0.9, 0.01, 90.0, interpretable,
                       False, 0.5, 0.5, 0.5, 10, 10)


def test_layer_roles_counts_and_logit_confirmation():
    from solu_repro.interp.analysis import LAYER_ROLES, ROLE_ORDER

    records = [_record(0, 0, "token", (1,)), _record(0, 1, "bigram", ((1, 2),)),
               _record(0, 2, "class", ("digits",)), _record(0, 3, "token", (3,), False),
               _record(1, 0, "next_token", (7,)), _record(1, 1, "next_token", (8,)),
               _record(1, 2, "regex", ("year",))]
    scores = NeuronScores({"name": "x"}, records)
    rows = layer_roles(scores)
    assert rows[0]["n_interpretable"] == 3
    assert (rows[0]["token"], rows[0]["detokenization"], rows[0]["token_class"]) == (1, 1, 1)
    assert rows[0]["n_neurons"] == 4 and rows[1]["n_neurons"] == 3
    assert rows[1]["token_class"] == 1 and rows[1]["source"] == 0  # a year: a text pattern
    assert LAYER_ROLES["source"] == "source" and set(LAYER_ROLES.values()) == set(ROLE_ORDER)
    assert rows[1]["retokenization"] == 2 and rows[1]["retokenization_fraction"] == pytest.approx(2 / 3)

    # With a model: neuron (1, 0) pushes token 7 directly, (1, 1) does not push token 8.
    model = Transformer(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=4,
                                    d_vocab=32, n_ctx=8, act_fn="solu_ln"))
    with torch.no_grad():
        model.ln_final.w.fill_(1.0)
        model.W_U.zero_()
        model.W_U[0, 7] = 1.0
        model.W_U[0, 8] = -1.0
        model.blocks[1].mlp.W_out[:2] = 0.0
        model.blocks[1].mlp.W_out[:2, 0] = 1.0
    rows = layer_roles(scores, model)
    assert rows[1]["retokenization"] == 1 and rows[1]["retokenization_unconfirmed"] == 1


def test_sparsity_table_ranks_sparse_neurons_higher(corpus, token):
    val = corpus.split("val")
    sparse = harvest(PlantedNeurons([Plant("token", (token,))] * 3), val, N_CTX, 0,
                     progress=False)
    dense = harvest(PlantedNeurons([Plant("random")] * 3), val, N_CTX, 0, progress=False)
    rows = {r["model"]: r for r in sparsity_table({"sparse": sparse, "dense": dense})}
    assert rows["sparse"]["kurtosis_median"] > rows["dense"]["kurtosis_median"] + 3
    assert rows["sparse"]["frac_above_0.5"] < rows["dense"]["frac_above_0.5"]
    assert 0 <= rows["dense"]["frac_positive"] <= 1
    assert len(kurtosis_values(sparse)) == 3 and not math.isnan(kurtosis_values(dense)[0])
