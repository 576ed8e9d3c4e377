"""A bf16 run is harvested in bf16 (the precision it trained and was evaluated in); fp32
runs exactly as before."""

from __future__ import annotations

import importlib

import pytest
import torch

from solu_repro.interp.harvest import ModelNeurons, harvest, harvest_path, harvest_run
from solu_repro.model import ConfigError, ModelConfig, Transformer
from solu_repro.train import train
from solu_repro.zoo import SCALES, ZooRun

harvest_module = importlib.import_module("solu_repro.interp.harvest")
N_CTX = 32


def _model() -> Transformer:
    cfg = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64,
                      d_vocab=SCALES["tiny"].data.vocab_size, n_ctx=N_CTX, act_fn="solu_ln")
    model = Transformer(cfg).eval()
    with torch.no_grad():
        model.blocks[0].mlp.W_in.mul_(30)
    return model


@pytest.fixture(scope="module")
def val(corpus):
    return corpus.split("val")


def test_bf16_activations_run_under_autocast_and_come_back_in_float32():
    model = _model()
    tokens = torch.randint(0, model.cfg.d_vocab, (3, N_CTX))
    fp32 = ModelNeurons(model).activations(tokens)
    bf16 = ModelNeurons(model, "bf16").activations(tokens)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        _, cache = model.run_with_cache(tokens, ["blocks.0.mlp.hook_mid",
                                                 "blocks.0.mlp.hook_post"], return_logits=False)
    for hook in ("mid", "post"):
        assert bf16[hook][0].dtype == torch.float32
        assert torch.equal(bf16[hook][0], cache[f"blocks.0.mlp.hook_{hook}"].float())
        assert not torch.equal(bf16[hook][0], fp32[hook][0])
        torch.testing.assert_close(bf16[hook][0], fp32[hook][0], rtol=0.05,
                                   atol=0.05 * fp32[hook][0].abs().max().item())
    with pytest.raises(ConfigError, match="precision"):
        ModelNeurons(model, "fp16")


def test_harvest_records_a_bf16_precision_and_keeps_fp32_metadata(val, corpus):
    model = _model()
    kwargs = dict(k=4, max_rows=8, progress=False)
    fp32 = harvest(model, val, N_CTX, corpus.bos_id, **kwargs)
    assert "precision" not in fp32.meta
    bf16 = harvest(model, val, N_CTX, corpus.bos_id, precision="bf16", **kwargs)
    assert bf16.meta["precision"] == "bf16"
    assert not torch.equal(bf16.stat("mean"), fp32.stat("mean"))
    with pytest.raises(ConfigError, match="ModelNeurons"):
        harvest(ModelNeurons(model), val, N_CTX, corpus.bos_id, precision="bf16", **kwargs)


def test_harvest_run_reads_fp32_unless_asked(small_config, data_dir, tmp_path, monkeypatch):
    """By default a run is harvested in fp32, the precision the judge's held-out re-runs, the
    instruments and the controls read it in; ``precision="auto"`` reads it in its own."""
    cfg = small_config(max_steps=2, eval_every=0, final_eval_rows=8, checkpoint_every=2)
    result = train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
    assert result["precision"] == "fp32"
    run = ZooRun("1L-test", "tiny", cfg, tmp_path / "run", result)
    fp32_path = harvest_path(run, k=5, max_rows=16)
    bf16_run = ZooRun("1L-test", "tiny", cfg, tmp_path / "run", {**result, "precision": "bf16"})
    monkeypatch.setattr(harvest_module, "_NATIVE_BF16", [True])
    assert harvest_module.harvest_precision(bf16_run) == "bf16"
    assert harvest_path(bf16_run, k=5, max_rows=16) == fp32_path
    assert harvest_path(bf16_run, k=5, max_rows=16, precision="auto") != fp32_path
    seen = []
    real = harvest_module.harvest
    monkeypatch.setattr(harvest_module, "harvest",
                        lambda *a, **kw: seen.append(kw["precision"]) or real(*a, **kw))
    harvest_run(bf16_run, k=5, max_rows=16, progress=False, data_dir=data_dir)
    assert seen == ["fp32"]
    h = harvest_run(bf16_run, k=5, max_rows=16, progress=False, data_dir=data_dir,
                    precision="auto")
    assert seen == ["fp32", "bf16"] and h.meta["precision"] == "bf16"
    # where bf16 matmuls are emulated, "auto" reads a bf16 run in fp32 (the fp32 harvest's file)
    monkeypatch.setattr(harvest_module, "_NATIVE_BF16", [False])
    assert harvest_module.harvest_precision(bf16_run) == "fp32"
    assert harvest_path(bf16_run, k=5, max_rows=16, precision="auto") == fp32_path
