"""Shared fixtures: one small corpus per test session, and small training configs on it."""

from __future__ import annotations

import pytest

from solu_repro.data import DataSpec, build_dataset
from solu_repro.model import ModelConfig
from solu_repro.train import TrainConfig

SMALL_DATA = DataSpec(max_chars_per_source=200_000, vocab_size=512)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A corpus cache shared by the session; the small corpus is built into it once."""
    path = tmp_path_factory.mktemp("data")
    build_dataset(SMALL_DATA, path, progress=False)
    return path


@pytest.fixture
def small_config():
    """Factory of a fast training config on the session corpus."""

    def make(**changes) -> TrainConfig:
        model_changes = changes.pop("model", {})
        model = ModelConfig(**{**dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64,
                                      d_vocab=512, n_ctx=32, act_fn="solu_ln"), **model_changes})
        defaults = dict(model=model, data=SMALL_DATA, name="test", batch_size=8, max_steps=12,
                        warmup_steps=2, eval_every=6, eval_rows=8, final_eval_rows=32,
                        checkpoint_every=4, log_every=2)
        return TrainConfig(**{**defaults, **changes})

    return make
