"""Shared fixtures: one small corpus per test session, and small training configs on it."""

from __future__ import annotations

import pytest
import torch

from solu_repro.data import build_dataset
from solu_repro.model import ModelConfig
from solu_repro.train import TrainConfig
from solu_repro.zoo import SCALES

# The tiny scale's corpus: built once per session, shared by the training and zoo tests.
SMALL_DATA = SCALES["tiny"].data


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
                                      d_vocab=SMALL_DATA.vocab_size, n_ctx=32, act_fn="solu_ln"), **model_changes})
        defaults = dict(model=model, data=SMALL_DATA, name="test", batch_size=8, max_steps=12,
                        warmup_steps=2, eval_every=6, eval_rows=8, final_eval_rows=32,
                        checkpoint_every=4, log_every=2,
                        # explicit: "auto" probes the CPU, and tests that compare two runs
                        # need both in one precision (tests/train/test_precision.py covers "auto")
                        precision="fp32")
        return TrainConfig(**{**defaults, **changes})

    return make


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory):
    """Nothing a test does falls back to the user's ./data or ./runs."""
    import os

    saved = {k: os.environ.get(k) for k in ("SOLU_DATA_DIR", "SOLU_RUNS_DIR")}
    os.environ["SOLU_DATA_DIR"] = str(tmp_path_factory.mktemp("default-data"))
    os.environ["SOLU_RUNS_DIR"] = str(tmp_path_factory.mktemp("default-runs"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Run in-process torch on one CPU thread: fastest for the tests' small tensors, and immune
    to the OpenMP spin-wait stalls (10-100x slowdowns) when other processes share the cores."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="session")
def corpus(data_dir):
    """The session's small corpus (already built by ``data_dir``)."""
    return build_dataset(SMALL_DATA, data_dir, progress=False)


@pytest.fixture(scope="session")
def tables(corpus):
    """Explanation lookup tables of the small corpus' tokenizer (interp tests)."""
    from solu_repro.interp.explanations import VocabTables

    return VocabTables(corpus.tokenizer)


@pytest.fixture(scope="session")
def tiny_zoo(_isolated_dirs):
    """The whole tiny zoo, trained once per session into the session's ``$SOLU_RUNS_DIR``
    (corpus in ``$SOLU_DATA_DIR``): what the notebooks at their default scale use (nbval, the
    book build test). Returns the runs directory."""
    import os
    from pathlib import Path

    from solu_repro.zoo import train_zoo

    train_zoo("tiny", progress=False)
    return Path(os.environ["SOLU_RUNS_DIR"])


@pytest.fixture(scope="session")
def book_runs_dir(tmp_path_factory):
    """A runs directory of the session for the chapter tests: a tiny model is trained there
    when a test first asks for it (``ctx.run``), once per session."""
    return tmp_path_factory.mktemp("book-runs")


@pytest.fixture(scope="module")
def ctx(data_dir, book_runs_dir):
    """A book context at scale tiny on ``book_runs_dir`` and the session's corpus: where a
    chapter's ``gather`` finds its inputs."""
    from solu_repro.book import book_context

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOLU_DATA_DIR", str(data_dir))
        yield book_context(scale="tiny", runs_dir=book_runs_dir, interactive=False,
                           progress=False)
