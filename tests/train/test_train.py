"""Training: config validation, optimizer recipe, schedule, exact resume, NaN handling, DDP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from solu_repro.train import step as train_mod
from solu_repro.train.checkpoint import CheckpointError, list_checkpoints, load_weights
from solu_repro.model import ConfigError
from solu_repro.train import (read_snapshot, snapshot_path, TrainConfig, TrainingDivergedError, lr_multiplier, param_groups,
                              read_metrics, train)
from solu_repro.model import Transformer

REPO = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, SOLU_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO / "src"))
    return env


def _write_config(cfg: TrainConfig, path: Path) -> Path:
    path.write_text(json.dumps(cfg.to_dict()))
    return path


# --- configuration ---------------------------------------------------------------------------
def test_config_roundtrip_and_hash(small_config):
    cfg = small_config()
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.run_hash() == cfg.run_hash()
    # Operational fields do not change what is computed, so they keep the hash ...
    assert cfg.replace(checkpoint_every=99, device="cpu", name="x").run_hash() == cfg.run_hash()
    # ... while anything that changes the weights does not.
    assert cfg.replace(max_steps=13).run_hash() != cfg.run_hash()
    assert cfg.replace(data_seed=1).run_hash() != cfg.run_hash()
    # snapshots are part of a run (it has them or not); without any, the hash is the old one
    assert cfg.replace(snapshot_steps=(4,)).run_hash() != cfg.run_hash()
    assert "snapshot_steps" not in cfg.to_dict()
    assert cfg.replace(snapshot_steps=[8, 4, 4]).snapshot_steps == (4, 8)


@pytest.mark.parametrize("changes, field", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 6, "grad_accum": 4}, "grad_accum"),
    ({"precision": "fp8"}, "precision"),
    ({"device": "tpu"}, "device"),
    ({"lr_hidden": -1.0}, "lr_hidden"),
    ({"lr_embed": float("nan")}, "lr_embed"),
    ({"betas": (0.9, 1.5)}, "betas"),
    ({"snapshot_steps": (0, 5)}, "snapshot_steps"),
    ({"snapshot_steps": (12,)}, "snapshot_steps"),   # the final weights are kept anyway
    ({"snapshot_steps": ("5",)}, "snapshot_steps"),
    ({"snapshot_steps": 5}, "snapshot_steps"),
])
def test_config_validation_names_the_field(small_config, changes, field):
    with pytest.raises(ConfigError, match=field):
        small_config(**changes)


def test_from_dict_rejects_unknown_keys(small_config):
    d = small_config().to_dict()
    d["max_stpes"] = 5
    with pytest.raises(ConfigError, match="max_stpes"):
        TrainConfig.from_dict(d)
    d = small_config().to_dict()
    d["model"]["n_layer"] = 2
    with pytest.raises(ConfigError, match="n_layer"):
        TrainConfig.from_dict(d)


# --- optimizer recipe ------------------------------------------------------------------------
def test_lr_schedule_warmup_then_cosine_to_tenth(small_config):
    cfg = small_config(max_steps=100, warmup_steps=10)
    mults = [lr_multiplier(s, cfg) for s in range(100)]
    assert mults[0] == pytest.approx(0.1) and mults[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(mults[:10], mults[1:10]))
    assert all(a >= b for a, b in zip(mults[10:], mults[11:]))
    assert lr_multiplier(100, cfg) == pytest.approx(0.1)


def test_param_groups_follow_the_recipe(small_config):
    cfg = small_config(model={"d_model": 64, "n_heads": 2, "d_head": 32})
    model = Transformer(cfg.model)
    hidden, other = param_groups(model, cfg)
    assert hidden["lr"] == pytest.approx(2e-3 / (64 / 256)) and hidden["weight_decay"] == 0.05
    assert other["lr"] == pytest.approx(1e-3) and other["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    hidden_names = {names[id(p)].rsplit(".", 1)[-1] for p in hidden["params"]}
    other_names = {names[id(p)].rsplit(".", 1)[-1] for p in other["params"]}
    assert hidden_names == {"W_QKV", "W_O", "W_in", "W_out", "W_U"}
    assert {"W_E", "w", "b", "b_in", "b_U"} <= other_names
    assert len(hidden["params"]) + len(other["params"]) == len(list(model.parameters()))


# --- training --------------------------------------------------------------------------------
def test_training_lowers_loss_and_writes_run_dir(small_config, data_dir, tmp_path):
    cfg = small_config(max_steps=30)
    result = train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
    metrics = read_metrics(tmp_path / "run")
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0] - 0.5
    assert result["val_loss"] < math.log(cfg.model.d_vocab)
    assert set(result["val_loss_per_source"]) == {"sotu", "python-stdlib"}
    assert any("val_loss" in m for m in metrics if m["step"] < 30)  # periodic evaluation
    run = tmp_path / "run"
    assert (run / "result.json").exists() and (run / "config.json").exists()
    # cleaned up once finished, but for the newest: what `--retrain` repairs from
    assert [c.name for c in list_checkpoints(run)] == ["step_0000028"]
    model = load_weights(run / "model.safetensors")
    assert model.cfg == cfg.model
    # A finished run is not retrained: same result, files untouched.
    mtime = (run / "model.safetensors").stat().st_mtime_ns
    assert train(cfg, run, progress=False, data_dir=data_dir) == result
    assert (run / "model.safetensors").stat().st_mtime_ns == mtime


def test_run_dir_refuses_a_different_config(small_config, data_dir, tmp_path):
    train(small_config(max_steps=2), tmp_path / "run", progress=False, data_dir=data_dir)
    (tmp_path / "run" / "result.json").unlink()
    with pytest.raises(ConfigError, match="different run"):
        train(small_config(max_steps=3), tmp_path / "run", progress=False, data_dir=data_dir)


def test_grad_accumulation_matches_full_batch(small_config, data_dir, tmp_path):
    a = train(small_config(grad_accum=1), tmp_path / "a", progress=False, data_dir=data_dir)
    b = train(small_config(grad_accum=4), tmp_path / "b", progress=False, data_dir=data_dir)
    assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-4)


def test_vocab_mismatch_is_a_clear_error(small_config, data_dir, tmp_path):
    cfg = small_config(model={"d_vocab": 100})
    with pytest.raises(ConfigError, match="d_vocab"):
        train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)


def test_bf16_autocast_trains(small_config, data_dir, tmp_path):
    cfg = small_config(precision="bf16", max_steps=4)
    result = train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
    assert math.isfinite(result["val_loss"])
    # Master weights stay float32 under autocast.
    assert load_weights(tmp_path / "run" / "model.safetensors").blocks[0].mlp.W_in.dtype == torch.float32


def test_nan_loss_stops_and_keeps_last_good_checkpoint(small_config, data_dir, tmp_path,
                                                       monkeypatch):
    _fail_at_training_call(monkeypatch, 7, make_loss=lambda loss: loss * float("nan"))
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="step 6.*step_0000004"):
        train(small_config(eval_every=0), run, progress=False, data_dir=data_dir)
    assert not (run / "result.json").exists()
    ckpts = list_checkpoints(run)
    assert [c.name for c in ckpts] == ["step_0000004"]
    model = load_weights(ckpts[-1] / "model.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _fail_at_training_call(monkeypatch, n: int, make_loss=None):
    """Make the n-th training loss call misbehave (NaN, or an interrupt by default)."""
    real_loss, calls = train_mod.model_loss, {"n": 0}

    def loss(model, tokens, per_token=False):
        value = real_loss(model, tokens, per_token)
        if not per_token:
            calls["n"] += 1
            if calls["n"] == n:
                if make_loss is None:
                    raise KeyboardInterrupt
                return make_loss(value)
        return value

    monkeypatch.setattr(train_mod, "model_loss", loss)


def test_corrupt_newest_checkpoint_falls_back(small_config, data_dir, tmp_path, monkeypatch):
    cfg = small_config(max_steps=12, checkpoint_every=4, keep_checkpoints=3, eval_every=0)
    reference = train(cfg, tmp_path / "ref", progress=False, data_dir=data_dir)
    run = tmp_path / "run"
    _fail_at_training_call(monkeypatch, 11)  # interrupted during step 10: checkpoints 4 and 8
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False, data_dir=data_dir)
    monkeypatch.undo()
    assert [c.name for c in list_checkpoints(run)] == ["step_0000004", "step_0000008"]
    (run / "checkpoints" / "step_0000008" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_weights(run / "checkpoints" / "step_0000008" / "model.safetensors")
    resumed = train(cfg, run, progress=False, data_dir=data_dir)  # falls back to step 4
    assert resumed["val_loss"] == reference["val_loss"]


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no model weights"):
        load_weights(tmp_path / "nothing.safetensors")


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(small_config, data_dir, tmp_path):
    """Kill a training process after its first checkpoint; resuming ends with the same loss."""
    cfg = small_config(max_steps=400, checkpoint_every=20, eval_every=0, log_every=20,
                       snapshot_steps=(10, 200, 390))
    config_path = _write_config(cfg, tmp_path / "cfg.json")
    env = _env(data_dir)
    cmd = [sys.executable, "-m", "solu_repro.cli", "train", str(config_path), "--quiet"]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--run-dir", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list_checkpoints(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists()
    resumed_from = list_checkpoints(killed)[-1].name
    assert resumed_from != "step_0000400"

    # Without --resume the interrupted run is not silently restarted or overwritten.
    refused = subprocess.run(cmd + ["--run-dir", str(killed)], env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    subprocess.run(cmd + ["--run-dir", str(killed), "--resume"], env=env, check=True,
                   capture_output=True)
    clean = tmp_path / "clean"
    subprocess.run(cmd + ["--run-dir", str(clean)], env=env, check=True, capture_output=True)

    r_killed = json.loads((killed / "result.json").read_text())
    r_clean = json.loads((clean / "result.json").read_text())
    assert r_killed["val_loss"] == r_clean["val_loss"], f"resumed from {resumed_from}"
    a = load_weights(killed / "model.safetensors").state_dict()
    b = load_weights(clean / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [m["step"] for m in read_metrics(killed) if "loss" in m]
    assert steps == sorted(set(steps)), "metrics after the checkpoint were logged twice"
    # the kept snapshots are the uninterrupted run's, each recorded once
    for step in cfg.snapshot_steps:
        a = load_weights(snapshot_path(killed, step)).state_dict()
        b = load_weights(snapshot_path(clean, step)).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), step
        assert read_snapshot(killed, step) == read_snapshot(clean, step)
    snaps = [m["step"] for m in read_metrics(killed) if m.get("snapshot")]
    assert snaps == list(cfg.snapshot_steps)


@pytest.mark.slow
def test_ddp_two_processes_match_one(small_config, data_dir, tmp_path):
    """2 gloo processes with the same global batch end where 1 process does."""
    cfg = small_config(max_steps=10, batch_size=8, grad_accum=2, eval_every=5)
    config_path = _write_config(cfg, tmp_path / "cfg.json")
    env = _env(data_dir)
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "solu_repro.cli", "train", str(config_path),
                    "--quiet", "--run-dir", str(single)], env=env, check=True,
                   capture_output=True)
    ddp = tmp_path / "ddp"
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "solu_repro.cli", "train",
                          str(config_path), "--quiet", "--run-dir", str(ddp)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r1 = json.loads((single / "result.json").read_text())
    r2 = json.loads((ddp / "result.json").read_text())
    assert r2["world_size"] == 2 and r1["world_size"] == 1
    assert r2["val_loss"] == pytest.approx(r1["val_loss"], abs=1e-4)
    a = load_weights(single / "model.safetensors").state_dict()
    b = load_weights(ddp / "model.safetensors").state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=1e-3)
    train_losses_1 = [m["loss"] for m in read_metrics(single) if "loss" in m]
    train_losses_2 = [m["loss"] for m in read_metrics(ddp) if "loss" in m]
    assert train_losses_2 == pytest.approx(train_losses_1, abs=1e-4)


@pytest.mark.slow
def test_torch_compile_path_trains(small_config, data_dir, tmp_path):
    cfg = small_config(compile=True, max_steps=3, eval_every=0)
    eager = train(cfg.replace(compile=False), tmp_path / "eager", progress=False,
                  data_dir=data_dir)
    compiled = train(cfg, tmp_path / "compiled", progress=False, data_dir=data_dir)
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], abs=1e-3)


class _InfiniteGradient(torch.autograd.Function):
    """Identity forward, infinite backward: a finite loss with non-finite gradients."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def test_non_finite_gradients_stop_before_the_weights_change(small_config, data_dir, tmp_path,
                                                             monkeypatch):
    _fail_at_training_call(monkeypatch, 7, make_loss=_InfiniteGradient.apply)
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="gradient norm became"):
        train(small_config(eval_every=0), run, progress=False, data_dir=data_dir)
    model = load_weights(list_checkpoints(run)[-1] / "model.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_finished_run_of_another_config_is_refused(small_config, data_dir, tmp_path):
    train(small_config(max_steps=2), tmp_path / "run", progress=False, data_dir=data_dir)
    with pytest.raises(ConfigError, match="finished run of a different config"):
        train(small_config(max_steps=3), tmp_path / "run", progress=False, data_dir=data_dir)


def test_run_records_its_corpus_and_keeps_its_tokenizer(small_config, data_dir, tmp_path):
    result = train(small_config(max_steps=2), tmp_path / "run", progress=False,
                   data_dir=data_dir)
    assert (data_dir / result["data_hash"] / "meta.json").exists()
    saved = (tmp_path / "run" / "tokenizer.json").read_bytes()
    assert saved == (data_dir / result["data_hash"] / "tokenizer.json").read_bytes()


def test_resume_on_a_different_corpus_is_refused(small_config, data_dir, tmp_path, monkeypatch):
    cfg = small_config(eval_every=0)
    _fail_at_training_call(monkeypatch, 6)  # interrupted after the checkpoint at step 4
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
    monkeypatch.undo()
    state_path = list_checkpoints(tmp_path / "run")[-1] / "state.json"
    state = json.loads(state_path.read_text())
    state["data_hash"] = "0123456789ab"  # as if built from another Python's stdlib
    state_path.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="started on corpus 0123456789ab"):
        train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
