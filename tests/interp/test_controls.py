"""Null controls of the judge (interp/controls.py): a rotated basis, the untrained model and
SoLU's readout applied post hoc to GELU, each through the same harvest -> score pipeline."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from solu_repro import zoo
from solu_repro.interp.controls import (CONTROLS, RotatedNeurons, control_harvest_path,
                                        controls_for, haar_orthogonal, random_init, rotated,
                                        score_control, solu_readout)
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.harvest import Harvest, ModelNeurons, harvest
from solu_repro.interp.planted import Plant, PlantedNeurons
from solu_repro.interp.score import NeuronScores, ScoreSettings, score_neurons
from solu_repro.model import ConfigError, ModelConfig, Transformer

N_CTX = 64


def _model(act_fn: str, n_layers: int = 2, seed: int = 0) -> Transformer:
    return Transformer(ModelConfig(n_layers=n_layers, d_model=32, n_heads=2, d_head=16,
                                   d_mlp=64, d_vocab=1024, n_ctx=32, act_fn=act_fn,
                                   seed=seed)).eval()


def _tokens(seed: int = 0, shape=(3, 32)) -> torch.Tensor:
    return torch.randint(0, 1024, shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def gelu_run(tmp_path_factory, data_dir):
    """The tiny zoo's 1L-gelu (a few seconds of training on one thread)."""
    return zoo.ensure_trained("1L-gelu", "tiny", tmp_path_factory.mktemp("runs"),
                              progress=False, data_dir=data_dir)


# --- rotated ----------------------------------------------------------------------------------

def test_haar_orthogonal_is_orthogonal_and_seeded():
    q = haar_orthogonal(48, (0, 1, 2))
    assert q.dtype == torch.float32 and q.shape == (48, 48)
    eye = torch.eye(48)
    assert torch.allclose(q.T @ q, eye, atol=1e-5) and torch.allclose(q @ q.T, eye, atol=1e-5)
    assert torch.equal(q, haar_orthogonal(48, (0, 1, 2)))
    assert not torch.allclose(q, haar_orthogonal(48, (1, 1, 2)))
    # Haar on O(d), not SO(d): reflections (det -1) occur as often as rotations.
    dets = [float(torch.linalg.det(haar_orthogonal(8, s).double())) for s in range(40)]
    assert all(abs(abs(d) - 1) < 1e-4 for d in dets)
    assert 5 < sum(d < 0 for d in dets) < 35


def test_rotation_keeps_what_a_rotation_must():
    model = _model("solu_ln")  # 2 layers x hooks mid and post
    plain = ModelNeurons(model)
    rot = rotated(model, seed=0)
    assert isinstance(rot, RotatedNeurons)
    assert (rot.n_layers, rot.d_mlp, rot.hooks) == (2, 64, ("mid", "post"))
    tokens = _tokens()
    a, b = plain.activations(tokens), rot.activations(tokens)
    for hook in rot.hooks:
        for layer in range(2):
            x, y = a[hook][layer], b[hook][layer]
            assert y.dtype == torch.float32 and y.shape == x.shape
            # per token, the activation vector's norm is unchanged
            torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(y, x @ rot.basis(layer, hook))
            # but the neurons themselves are different directions
            assert not torch.allclose(y, x, atol=1e-3)
    # each (layer, hook) gets its own basis
    bases = [rot.basis(l, h) for h in rot.hooks for l in range(2)]
    for i in range(len(bases)):
        for j in range(i):
            assert not torch.allclose(bases[i], bases[j])
    # same seed, same output (a fresh object); another seed, another basis
    again = rotated(model, seed=0).activations(tokens)
    assert all(torch.equal(again[h][l], b[h][l]) for h in rot.hooks for l in range(2))
    other = rotated(model, seed=1)
    assert not torch.allclose(other.basis(0, "mid"), rot.basis(0, "mid"))
    assert not torch.allclose(other.activations(tokens)["mid"][0], b["mid"][0], atol=1e-3)
    with pytest.raises(ConfigError):
        rotated(model, seed=-1)


def test_rotation_computes_in_float32():
    class Float64:
        n_layers, d_mlp, hooks = 1, 8, ("mid",)

        def activations(self, tokens):
            return {"mid": [torch.ones(*tokens.shape, 8, dtype=torch.float64)]}

    out = rotated(Float64(), seed=3).activations(_tokens(shape=(2, 5)))["mid"][0]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.full((2, 5), 8 ** 0.5))


@pytest.mark.slow
def test_planted_detectors_lose_the_spectrum_view_under_rotation(corpus, tables):
    """Known answer: 48 detectors of frequent tokens are found in their own basis; after a
    random rotation each direction mixes all 48 detectors and far fewer pass the
    full-spectrum view. (The train split: planted neurons never train, and the val split is
    too small to have 48 tokens in 30+ selection rows.)

    Measured (rotation seed 0, 48 detectors, the held-out-coverage judge): unrotated 48/48
    top-20-interpretable and 48/48 spectrum-interpretable; rotated 41 top-20 -- the top view
    is nearly blind to the rotation, because a rotated direction's top firings are all the
    one token whose detector it weights most -- but only 15 spectrum-interpretable (median
    recall 0.38, median precision 0.99: the direction also fires on the other tokens it
    weights heavily). Seeds 1 and 2 gave 42/10 and 38/7 with the judge before held-out
    coverage.
    """
    split = corpus.split("train")
    rows = split.n_tokens // (N_CTX - 1)
    tokens = split.window(0, rows * (N_CTX - 1)).reshape(rows, N_CTX - 1).astype(np.int64)
    selection = tokens[::2]
    order = np.argsort(-np.bincount(tokens.ravel()))
    frequent = [int(t) for t in order[:400] if (selection == t).any(1).sum() >= 30][:48]
    assert len(frequent) == 48
    plants = [Plant("token", (t,)) for t in frequent]

    def judge(source):
        h = harvest(source, split, N_CTX, corpus.bos_id, progress=False)
        return score_neurons(source, h, split, tables, progress=False)

    plain = judge(PlantedNeurons(plants, seed=0))
    turned = judge(rotated(PlantedNeurons(plants, seed=0), seed=0))
    for r in plain.records:
        assert r.interpretable and r.spectrum_interpretable, r
        assert r.explanation_obj() == Explanation("token", plants[r.neuron].tokens), r.text
    n = len(plants)
    top, spectrum = (turned.fraction_interpretable(view=v).successes for v in ("top", "spectrum"))
    assert spectrum <= n // 2 and spectrum < top, (top, spectrum)
    assert np.nanmedian([r.recall for r in turned.records]) < 0.6


# --- random init ------------------------------------------------------------------------------

def test_random_init_is_the_untrained_model(gelu_run):
    tokens = _tokens(shape=(2, 64))
    torch.manual_seed(123)  # the init does not depend on the global seed
    untrained = random_init(gelu_run)
    assert isinstance(untrained, ModelNeurons) and untrained.hooks == ("mid",)
    assert gelu_run.config.model.seed == 0
    reference = Transformer(gelu_run.config.model).eval()
    for p, q in zip(untrained.model.parameters(), reference.parameters()):
        assert torch.equal(p, q)
    for other in (random_init(gelu_run.config), random_init(gelu_run.config.model)):
        assert torch.equal(other.activations(tokens)["mid"][0],
                           untrained.activations(tokens)["mid"][0])
    trained = ModelNeurons(gelu_run.load_model()).activations(tokens)["mid"][0]
    fresh = untrained.activations(tokens)["mid"][0]
    assert fresh.shape == trained.shape
    assert (fresh - trained).abs().mean() > 0.1 * trained.abs().mean()
    with pytest.raises(ConfigError, match="ModelConfig"):
        random_init("1L-gelu")


# --- SoLU readout -----------------------------------------------------------------------------

def test_solu_readout_is_solu_of_the_gelu_pre_activations():
    model = _model("gelu")
    source = solu_readout(model)
    assert (source.n_layers, source.d_mlp, source.hooks) == (2, 64, ("mid",))
    tokens = _tokens(1)
    out = source.activations(tokens)["mid"]
    _, cache = model.run_with_cache(tokens, names=[f"blocks.{l}.mlp.hook_pre" for l in range(2)])
    for layer in range(2):
        pre = cache[f"blocks.{layer}.mlp.hook_pre"].detach().double()
        by_hand = pre * torch.exp(pre - pre.max(-1, keepdim=True).values) \
            / torch.exp(pre - pre.max(-1, keepdim=True).values).sum(-1, keepdim=True)
        assert out[layer].dtype == torch.float32
        torch.testing.assert_close(out[layer].double(), by_hand, rtol=1e-5, atol=1e-7)
    # the model keeps its GELU: the readout is not what it was trained with
    gelu_mid = ModelNeurons(model).activations(tokens)["mid"][0]
    assert not torch.allclose(gelu_mid, out[0])


@pytest.mark.parametrize("act_fn", ["solu_ln", "solu", "gelu_ln"])
def test_solu_readout_refuses_other_models(act_fn):
    with pytest.raises(ConfigError, match="GELU model"):
        solu_readout(_model(act_fn))


# --- score_control ----------------------------------------------------------------------------

def test_controls_for_and_bad_controls(gelu_run):
    assert CONTROLS == ("rotated", "random_init", "solu_readout")
    assert controls_for(gelu_run) == CONTROLS
    solu_run = SimpleNamespace(name="1L-solu_ln",
                               config=SimpleNamespace(model=ModelConfig(act_fn="solu_ln")))
    assert controls_for(solu_run) == ("rotated", "random_init")
    with pytest.raises(ConfigError, match="needs a GELU run"):
        score_control(solu_run, "solu_readout")
    with pytest.raises(ConfigError, match="unknown control"):
        score_control(gelu_run, "shuffled")


@pytest.mark.slow
def test_score_control_caches_and_keys_its_files(gelu_run, data_dir):
    kw = dict(progress=False, data_dir=data_dir)
    scores = score_control(gelu_run, "rotated", **kw)
    folder = gelu_run.run_dir / "controls"
    harvests, jsons = sorted(folder.glob("rotated-harvest-*")), sorted(folder.glob("rotated-score-*"))
    assert len(harvests) == 1 and len(jsons) == 1
    assert harvests[0] == control_harvest_path(gelu_run, "rotated")
    assert scores.meta["name"] == "1L-gelu" and scores.meta["control"] == "rotated"
    assert scores.meta["control_seed"] == 0
    assert len(scores.records) == gelu_run.config.model.d_mlp
    h = Harvest.load(harvests[0])
    assert h.meta["control"] == "rotated" and h.meta["rows"] == "even" and h.meta["split"] == "val"
    stamps = {p: p.stat().st_mtime_ns for p in harvests + jsons}

    # the second call loads the saved scores
    again = score_control(gelu_run, "rotated", **kw)
    assert [r.text for r in again.records] == [r.text for r in scores.records]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert isinstance(again, NeuronScores)

    # a changed score setting: a new score file, the same harvest
    score_control(gelu_run, "rotated", ScoreSettings(threshold=0.7), **kw)
    assert len(list(folder.glob("rotated-score-*"))) == 2
    assert harvests[0].stat().st_mtime_ns == stamps[harvests[0]]
    # a changed seed (another basis) or harvest setting: a new harvest
    assert control_harvest_path(gelu_run, "rotated", seed=1) != harvests[0]
    assert control_harvest_path(gelu_run, "rotated", k=10) != harvests[0]
    other = score_control(gelu_run, "rotated", seed=1, **kw)
    assert other.meta["control_seed"] == 1
    assert len(list(folder.glob("rotated-harvest-*"))) == 2
    # rebuild writes afresh
    score_control(gelu_run, "rotated", rebuild=True, **kw)
    assert jsons[0].stat().st_mtime_ns != stamps[jsons[0]]


@pytest.mark.parametrize("control", ["random_init", "solu_readout"])
def test_score_control_runs_every_control(gelu_run, data_dir, control):
    scores = score_control(gelu_run, control, progress=False, data_dir=data_dir)
    assert scores.meta["control"] == control and scores.meta["name"] == "1L-gelu"
    assert len(scores.records) == gelu_run.config.model.d_mlp
    path = control_harvest_path(gelu_run, control)
    assert path.is_file() and Harvest.load(path).meta["control"] == control
    assert len({control_harvest_path(gelu_run, c) for c in CONTROLS}) == 3
    p = scores.fraction_interpretable()
    assert 0 <= p.fraction <= 1
