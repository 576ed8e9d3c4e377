"""Analyses: pre/post-LN consistency by band, layer roles, sparsity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from solu_repro.interp.analysis import (kurtosis_values, layer_roles, ln_consistency,
                                        sparsity_table)
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.harvest import harvest
from solu_repro.interp.planted import Plant, PlantedNeurons
from solu_repro.interp.score import NeuronScore, NeuronScores, score_neurons
from solu_repro.model import ModelConfig, Transformer

N_CTX = 64


@pytest.fixture(scope="module")
def token(corpus):
    val = corpus.split("val")
    return int(np.argmax(np.bincount(val.window(0, val.n_tokens).astype(np.int64))))


class SmugglingNeuron:
    """hook_mid: a clean detector of one token. hook_post: the same firings plus unrelated
    activity up to ~70% of the peak -- what the paper suspects LN does to weak firings."""

    n_layers, d_mlp, hooks = 1, 1, ("mid", "post")

    def __init__(self, token: int):
        self.token = token
        self.generator = torch.Generator().manual_seed(0)

    def activations(self, tokens):
        rule = (tokens == self.token).float()
        strength = 1 + 0.5 * torch.rand(tokens.shape, generator=self.generator)
        noise = torch.rand(tokens.shape, generator=self.generator)
        mid = rule * strength + (1 - rule) * 0.01 * noise
        post = rule * strength + (1 - rule) * 1.0 * noise
        return {"mid": [mid.unsqueeze(-1)], "post": [post.unsqueeze(-1)]}


def test_ln_consistency_separates_clean_from_smuggled_bands(corpus, tables, token):
    val = corpus.split("val")
    source = SmugglingNeuron(token)
    h = harvest(source, val, N_CTX, 0, progress=False)
    scores = score_neurons(source, h, val, tables, progress=False)
    assert scores.get(0, 0).interpretable
    assert scores.get(0, 0).explanation_obj() == Explanation("token", (token,))
    rows = {(r.hook, r.band): r for r in ln_consistency(h, scores, val, tables, per_band=30)}
    assert len(rows) == 20
    # Above 10% of the max, hook_mid fires only on the token; hook_post fires on noise up to
    # ~1/1.5 = 67% of its max.
    for band in range(1, 10):
        mid = rows[("mid", band)]
        assert mid.n_inconsistent == 0, mid
    for band in range(1, 6):
        assert rows[("post", band)].fraction > 0.9
    for band in (7, 8, 9):
        assert rows[("post", band)].fraction == 0
    r = rows[("post", 3)]
    lo, hi = r.interval()
    assert lo <= r.fraction <= hi and r.n_neurons == 1
    assert r.to_dict()["fraction"] == r.fraction


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
