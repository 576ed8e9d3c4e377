"""Hook names are built in one place, and the model records exactly those."""

from __future__ import annotations

import pytest
import torch

from solu_repro import hooks
from solu_repro.model import ModelConfig, Transformer


def test_act_name_spells_transformerlens_names():
    assert hooks.act_name("mid", 0) == "blocks.0.mlp.hook_mid"
    assert hooks.act_name("post", 3) == "blocks.3.mlp.hook_post"
    assert hooks.act_name("pattern", 1) == "blocks.1.attn.hook_pattern"
    assert hooks.act_name("resid_pre", 2) == "blocks.2.hook_resid_pre"
    assert hooks.act_name("embed") == "hook_embed"
    assert hooks.act_name("normalized") == "ln_final.hook_normalized"
    with pytest.raises(ValueError, match="unknown hook"):
        hooks.act_name("z", 0)
    with pytest.raises(ValueError, match="needs a layer"):
        hooks.act_name("mid")
    with pytest.raises(ValueError, match="not per layer"):
        hooks.act_name("embed", 0)
    with pytest.raises(ValueError, match="non-negative"):
        hooks.block(-1)


@pytest.mark.parametrize("pos_embed", ["rotary", "learned"])
def test_the_model_records_every_hook_it_names_and_no_other(pos_embed):
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=50,
                      n_ctx=8, act_fn="solu_ln", pos_embed=pos_embed)
    model = Transformer(cfg)
    names = model.hook_names()
    assert names == hooks.hook_names(2, learned_pos=pos_embed == "learned")
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8)))
    assert sorted(cache) == sorted(names)
    assert cache[hooks.act_name("mid", 1)].shape == (2, 8, 32)
