"""Issue 23, part A: checksums that catch damage, a repair command that works, bounded loading.

Each test reproduces one failure a tester found at the tiny scale and holds after the fix:

* a corrupt ``result.json`` stopped every command of the scale with a JSONDecodeError
  traceback that named neither the file nor the run;
* deleting corrupt weights, as the error advised, led nowhere: ``train`` returned the cached
  result without restoring them;
* bytes garbled in place at the right size, in weights or in a token shard, went unseen (a
  score of 0/128 instead of 10);
* a ``model.safetensors`` whose metadata declared ``d_vocab=2e8`` allocated 400 GB before any
  shape check.

Runs are the session's tiny 1L pair (trained once into ``$SOLU_RUNS_DIR``, the tiny zoo's own
folder, so ``tiny_zoo`` reuses them), copied into ``tmp_path`` before anything is damaged.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from solu_repro import cli, integrity, paths, zoo
from solu_repro.data import CorruptDataError, open_dataset
from solu_repro.data.build import rebuild_command
from solu_repro.model import ModelConfig, Transformer
from solu_repro.train import CheckpointError, load_checkpoint, load_weights, train
from solu_repro.train import checkpoint as checkpoint_mod
from solu_repro.train.checkpoint import CONFIG_KEY, expected_shapes, list_checkpoints

PAIR = ("1L-gelu", "1L-solu_ln")


@pytest.fixture(scope="module")
def pair_runs():
    """The tiny 1L pair, trained (once per session) where the tiny zoo keeps it."""
    return {name: zoo.ensure_trained(name, "tiny", progress=False) for name in PAIR}


def _copy_run(run: zoo.ZooRun, runs: Path) -> Path:
    """``run``'s directory copied into ``runs/tiny/`` (the zoo layout, so the advice names
    ``--runs-dir runs``)."""
    target = runs / "tiny" / run.run_dir.name
    shutil.copytree(run.run_dir, target)
    return target


def _flip(path: Path, offset_from_end: int = 64, n: int = 16) -> None:
    """Garble ``n`` bytes in place near the end of the file (in the tensor data, not the
    header); the size stays the same."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size - offset_from_end)
        data = bytearray(f.read(n))
        f.seek(size - offset_from_end)
        f.write(bytes(b ^ 0x5A for b in data))
    assert path.stat().st_size == size


def _advised(message: str) -> list[str]:
    """The command between backticks in an error message, as ``cli.main`` arguments."""
    command = message.split("`")[1]
    assert command.startswith("solu-repro "), message
    return shlex.split(command)[1:]


def _logits(model: Transformer) -> torch.Tensor:
    tokens = torch.arange(32).remainder(model.cfg.d_vocab)[None]
    with torch.no_grad():
        return model(tokens)


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


# --- same-size damage is caught -----------------------------------------------------------------
def test_weights_garbled_at_the_same_size_are_refused_and_the_advice_repairs_them(
        pair_runs, tmp_path, capsys):
    run = pair_runs["1L-gelu"]
    copy = _copy_run(run, tmp_path)
    weights = copy / "model.safetensors"
    recorded = json.loads((copy / "result.json").read_text())["sha256"]["model.safetensors"]
    assert recorded == integrity.sha256_file(weights)
    _flip(weights)
    with pytest.raises(CheckpointError) as info:
        load_weights(weights)
    message = str(info.value)
    assert str(weights) in message and str(copy / "result.json") in message
    assert f"expected {recorded}, found {integrity.sha256_file(weights)}" in message
    assert (f"`solu-repro train 1L-gelu --scale tiny --runs-dir {tmp_path} --retrain`"
            in message)
    assert "\n" not in message
    # the CLI says the same in one line, and a plain `train` does not pretend the run is fine
    code, err = _cli(["train", "1L-gelu", "--scale", "tiny", "--runs-dir", str(tmp_path),
                      "--quiet"], capsys)
    assert code == 2 and "does not match the SHA-256" in err and "--retrain" in err
    assert "Traceback" not in err
    # the advised command restores them, bit for bit, from the checkpoint the run kept
    assert cli.main(_advised(message) + ["--quiet"]) == 0
    assert weights.read_bytes() == run.weights_path.read_bytes()
    assert torch.equal(_logits(load_weights(weights)), _logits(run.load_model()))


def test_a_garbled_snapshot_names_its_record(pair_runs, tmp_path):
    copy = _copy_run(pair_runs["1L-gelu"], tmp_path)
    snapshot = copy / "snapshots" / "step_0000015.safetensors"
    _flip(snapshot)
    with pytest.raises(CheckpointError, match="step_0000015.json .*expected [0-9a-f]{64}, "
                                              "found [0-9a-f]{64}.*--retrain"):
        load_weights(snapshot)


def test_a_garbled_checkpoint_is_refused(pair_runs, tmp_path):
    copy = _copy_run(pair_runs["1L-gelu"], tmp_path)
    (ckpt,) = list_checkpoints(copy)
    _flip(ckpt / "trainer.pt", offset_from_end=400)
    with pytest.raises(CheckpointError, match=r"trainer\.pt does not match the SHA-256 "
                                              r"recorded in .*state\.json"):
        load_checkpoint(ckpt)


def test_a_token_shard_garbled_at_the_same_size_is_refused_and_rebuilt(pair_runs, tmp_path,
                                                                       capsys):
    corpus = pair_runs["1L-gelu"].corpus()
    data = tmp_path / "data"
    copy = data / corpus.path.name
    shutil.copytree(corpus.path, copy)
    shard = copy / "val" / corpus.meta["splits"]["val"]["shards"][0]["file"]
    original = shard.read_bytes()
    _flip(shard, offset_from_end=len(original) // 2, n=64)
    opened = open_dataset(copy)  # the sizes are right: only the checksum tells
    with pytest.raises(CorruptDataError) as info:
        opened.split("val")
    message = str(info.value)
    assert str(shard) in message and str(copy / "meta.json") in message
    assert f"found {integrity.sha256_file(shard)}" in message
    assert f"`solu-repro data --scale tiny --data-dir {data} --rebuild`" in message
    opened.split("train")  # the undamaged split still opens
    code, err = _cli(["data", "--scale", "tiny", "--data-dir", str(data)], capsys)
    assert code == 2 and "does not match the SHA-256" in err and "Traceback" not in err
    # the advised command rebuilds the same tokens
    assert cli.main(_advised(message)) == 0
    rebuilt = open_dataset(copy)
    rebuilt.verify()
    assert shard.read_bytes() == original


# --- result.json ----------------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", ['{"val_loss": 3.2, ', "\x00\xff\xfe", "[1, 2]", "{}"])
def test_a_corrupt_result_is_one_line_for_that_run_alone(pair_runs, tmp_path, capsys, garbage):
    copies = {name: _copy_run(run, tmp_path) for name, run in pair_runs.items()}
    result = copies["1L-gelu"] / "result.json"
    result.write_bytes(garbage.encode("latin-1"))
    base = ["--scale", "tiny", "--runs-dir", str(tmp_path), "--quiet"]
    for command in (["zoo", *base, "--workers", "1", "--only", "1L-gelu"],
                    ["score", *base, "--only", "1L-gelu"]):
        code, err = _cli(command, capsys)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(result) in err and "run 1L-gelu-" in err and "is corrupt" in err
        assert f"`solu-repro train 1L-gelu --scale tiny --runs-dir {tmp_path} --retrain`" in err
    advice = _advised(err)
    # the other run is not blocked
    code, err = _cli(["zoo", *base, "--workers", "1", "--only", "1L-solu_ln"], capsys)
    assert code == 0, err
    cli.main(["zoo", "--scale", "tiny", "--runs-dir", str(tmp_path), "--list"])
    listing = capsys.readouterr().out
    assert "1L-gelu      damaged" in listing and "1L-solu_ln   trained" in listing
    # the advice works: the result (and the weights) are the run's again
    assert cli.main(advice + ["--quiet"]) == 0
    capsys.readouterr()
    restored = zoo.ensure_trained("1L-gelu", "tiny", tmp_path, progress=False)
    assert restored.result["val_loss"] == pair_runs["1L-gelu"].result["val_loss"]
    assert restored.result["sha256"] == pair_runs["1L-gelu"].result["sha256"]


# --- missing weights: the advice works ------------------------------------------------------------
@pytest.mark.parametrize("checkpoint", ["kept", "damaged", "deleted"])
def test_deleted_weights_come_back_bit_identical_with_retrain(pair_runs, tmp_path, capsys,
                                                              checkpoint):
    run = pair_runs["1L-gelu"]
    copy = _copy_run(run, tmp_path)
    (copy / "model.safetensors").unlink()
    (ckpt,) = list_checkpoints(copy)
    if checkpoint == "damaged":
        _flip(ckpt / "model.safetensors")
    elif checkpoint == "deleted":  # a run finished before checkpoints were kept
        shutil.rmtree(copy / "checkpoints")
    code, err = _cli(["zoo", "--scale", "tiny", "--runs-dir", str(tmp_path), "--quiet",
                      "--workers", "1", "--only", "1L-gelu"], capsys)
    assert code == 2 and "model.safetensors is missing" in err, err
    with pytest.raises(CheckpointError, match="no model weights at .*--retrain"):
        load_weights(copy / "model.safetensors")
    assert cli.main(_advised(err) + ["--quiet"]) == 0
    out = capsys.readouterr().out
    start = "its checkpoint step_0000080" if checkpoint == "kept" else "scratch"
    assert f"retraining from {start}" in out
    # the same run in the same directory: the same weights, logits and snapshots
    assert [p.name for p in (tmp_path / "tiny").iterdir() if not p.name.startswith(".")] == \
        [copy.name]
    assert (copy / "model.safetensors").read_bytes() == run.weights_path.read_bytes()
    assert torch.equal(_logits(load_weights(copy / "model.safetensors")),
                       _logits(run.load_model()))
    for step in run.config.snapshot_steps:
        assert load_weights(copy / "snapshots" / f"step_{step:07d}.safetensors") is not None
    # and nothing is left to repair
    assert cli.main(_advised(err) + ["--quiet"]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_a_custom_run_names_a_retrain_command_that_works(small_config, tmp_path, capsys):
    cfg = small_config(max_steps=8, checkpoint_every=4, eval_every=0, snapshot_steps=(2,))
    run_dir = tmp_path / "my run"
    train(cfg, run_dir, progress=False)
    original = (run_dir / "model.safetensors").read_bytes()
    (run_dir / "snapshots" / "step_0000002.safetensors").unlink()
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as info:
        load_weights(run_dir / "model.safetensors")
    assert (f"`solu-repro train '{run_dir}/config.json' --run-dir '{run_dir}' --retrain`"
            in str(info.value))
    assert cli.main(_advised(str(info.value)) + ["--quiet"]) == 0
    assert (run_dir / "model.safetensors").read_bytes() == original
    assert (run_dir / "snapshots" / "step_0000002.safetensors").is_file()


# --- bounded loading ------------------------------------------------------------------------------
def _with_metadata(source: Path, target: Path, change) -> Path:
    """A copy of a weights file with its metadata config (and tensors) changed by ``change``."""
    tensors = load_file(str(source))
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as f:
        config = json.loads(f.metadata()[CONFIG_KEY])
    config, tensors = change(config, tensors)
    save_file(tensors, str(target), metadata={CONFIG_KEY: json.dumps(config)})
    return target


@pytest.mark.parametrize("change, expected", [
    (lambda c, t: ({**c, "d_vocab": 200_000_000}, t), "d_vocab=200000000, above the limit"),
    (lambda c, t: ({**c, "d_vocab": 1_000_000, "d_model": 4096}, t),
     r"implies [\d,]+ parameters, above the limit of 2,000,000,000"),
    (lambda c, t: ({**c, "d_mlp": 256}, t), r"tensor blocks\.0\.mlp\.W_in is F32 \[32, 128\], "
                                            r"but .* implies .* \[32, 256\]"),
    (lambda c, t: (c, {k: v for k, v in t.items() if k != "b_U"}), "lacks tensor b_U"),
    (lambda c, t: (c, {**t, "W_U": t["W_U"].to(torch.int32)}), "tensor W_U is I32"),
], ids=["d_vocab", "params", "shape", "missing", "dtype"])
def test_an_oversized_or_mismatched_header_is_refused_before_allocation(
        pair_runs, tmp_path, monkeypatch, change, expected):
    bad = _with_metadata(pair_runs["1L-gelu"].weights_path, tmp_path / "model.safetensors",
                         change)

    def no_model(*args, **kwargs):
        raise AssertionError("a Transformer was built before the header was checked")

    monkeypatch.setattr(checkpoint_mod, "Transformer", no_model)
    started = time.process_time()
    with pytest.raises(CheckpointError, match=expected) as info:
        load_weights(bad)
    assert time.process_time() - started < 5  # no 400 GB allocation, no huge init
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_a_caller_can_raise_the_parameter_limit(pair_runs):
    run = pair_runs["1L-gelu"]
    n = sum(p.numel() for p in run.load_model().parameters())
    with pytest.raises(CheckpointError, match=f"implies {n:,} parameters"):
        load_weights(run.weights_path, max_params=n - 1)
    assert load_weights(run.weights_path, max_params=n) is not None


@pytest.mark.parametrize("changes", [
    {}, {"act_fn": "gelu"}, {"act_fn": "gelu_ln", "solu_blocks": 4},
    {"act_fn": "solu", "pos_embed": "learned", "n_layers": 3},
])
def test_expected_shapes_are_the_models(changes):
    cfg = ModelConfig(**{**dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=128,
                                d_vocab=300, n_ctx=16), **changes})
    assert expected_shapes(cfg) == {k: tuple(v.shape)
                                    for k, v in Transformer(cfg).state_dict().items()}


# --- cheap: once per process, unverified when nothing is recorded ---------------------------------
def test_each_file_is_hashed_once_per_process_and_again_when_it_changes(pair_runs, tmp_path,
                                                                        monkeypatch):
    copy = _copy_run(pair_runs["1L-gelu"], tmp_path)
    corpus = pair_runs["1L-gelu"].corpus()
    hashed: list[str] = []
    real = integrity.sha256_file

    def counting(path):
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(integrity, "sha256_file", counting)
    integrity.forget()
    for _ in range(3):
        load_weights(copy / "model.safetensors")
        open_dataset(corpus.path).split("val")
    n_val_files = len(corpus.meta["splits"]["val"]["shards"]) + 3  # + the document index
    assert hashed.count("model.safetensors") == 1
    assert len(hashed) == 1 + n_val_files
    os.utime(copy / "model.safetensors")  # touched: it may have changed, so hashed again
    load_weights(copy / "model.safetensors")
    assert hashed.count("model.safetensors") == 2


def test_runs_and_corpora_without_digests_load_unverified(pair_runs, tmp_path):
    copy = _copy_run(pair_runs["1L-gelu"], tmp_path)
    result = json.loads((copy / "result.json").read_text())
    del result["sha256"]
    (copy / "result.json").write_text(json.dumps(result))
    assert not checkpoint_mod.verify_file(copy / "model.safetensors")
    assert load_weights(copy / "model.safetensors") is not None
    corpus = pair_runs["1L-gelu"].corpus()
    old = tmp_path / "data" / corpus.path.name
    shutil.copytree(corpus.path, old)
    meta = json.loads((old / "meta.json").read_text())
    for split in meta["splits"].values():
        del split["index_sha256"]
        for shard in split["shards"]:
            del shard["sha256"]
    (old / "meta.json").write_text(json.dumps(meta))
    open_dataset(old).verify()


def test_rebuild_advice_for_corpora_outside_the_zoo(tmp_path):
    from solu_repro.data import DataSpec

    def advice(spec: DataSpec, where: Path) -> str:
        where.mkdir(parents=True)
        (where / "spec.json").write_text(json.dumps(spec.to_dict()))
        return rebuild_command(where)

    default = paths.data_dir() / "abc"
    try:
        assert advice(DataSpec(vocab_size=300), default) == \
            "solu-repro data --vocab-size 300 --rebuild"
    finally:
        shutil.rmtree(default)
    assert advice(DataSpec(split_seed=3), tmp_path / "x") == f"rm -r {tmp_path / 'x'}"
    assert rebuild_command(tmp_path / "nothing") == f"rm -r {tmp_path / 'nothing'}"


def test_weights_replaced_through_save_weights_are_recorded(pair_runs, tmp_path):
    copy = _copy_run(pair_runs["1L-gelu"], tmp_path)
    model = load_weights(copy / "model.safetensors")
    with torch.no_grad():
        model.W_U.mul_(2)
    digest = checkpoint_mod.save_weights(model, copy / "model.safetensors")
    assert json.loads((copy / "result.json").read_text())["sha256"] == \
        {"model.safetensors": digest}
    assert torch.equal(load_weights(copy / "model.safetensors").W_U, model.W_U)


def test_retrain_refuses_to_run_under_torchrun(pair_runs, tmp_path, monkeypatch):
    from solu_repro.model import ConfigError
    from solu_repro.train import repair

    copy = _copy_run(pair_runs["1L-gelu"], tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="without torchrun"):
        repair(pair_runs["1L-gelu"].config, copy, progress=False)
