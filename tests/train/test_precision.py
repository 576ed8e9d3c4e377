"""precision="auto": probed on CPUs, recorded with the run, kept on resume."""

from __future__ import annotations

import json

import pytest
import torch

from solu_repro.train import precision
from solu_repro.train import step as train_mod
from solu_repro.train.checkpoint import list_checkpoints, load_weights
from solu_repro.model import model_loss
from solu_repro.train.precision import BF16_MIN_SPEEDUP, PrecisionChoice
from solu_repro.speed import Samples
from solu_repro.train import train


def _fake_probe(choice: str):
    def probe(cfg, *args, **kwargs):
        return PrecisionChoice(choice, "probe", 0.2, 0.1 if choice == "bf16" else 0.3, 2.0
                               if choice == "bf16" else 0.67, 2, 1, "AVX512")
    return probe


def test_explicit_precision_is_not_probed(small_config, monkeypatch):
    monkeypatch.setattr(precision, "probe_cpu", lambda *a, **k: pytest.fail("probed"))
    for p in ("fp32", "bf16"):
        assert precision.choose(small_config(precision=p), torch.device("cpu")) == \
            PrecisionChoice(p, "config")


@pytest.mark.parametrize("fp32_s,bf16_s,expected", [
    (1.0, 0.5, "bf16"),                       # bf16 2x faster
    (1.0, 1 / (BF16_MIN_SPEEDUP + 0.01), "bf16"),
    (1.0, 1 / (BF16_MIN_SPEEDUP - 0.05), "fp32"),  # faster, but inside the margin
    (1.0, 30.0, "fp32"),                      # emulated bf16 (no native support)
])
def test_probe_picks_bf16_only_when_clearly_faster(small_config, monkeypatch, fp32_s, bf16_s,
                                                   expected):
    monkeypatch.setattr(precision, "_PROBES", {})

    monkeypatch.setattr(precision, "matmul_speedup", lambda *a, **k: 1.0)

    def fake_interleave(fns, device, rounds, steps_per_round, warmup):
        assert set(fns) == {"fp32", "bf16"}
        times = {"fp32": fp32_s, "bf16": bf16_s}
        return {name: Samples([[times[name]]] * rounds) for name in fns}

    monkeypatch.setattr(precision, "interleave", fake_interleave)
    choice = precision.choose(small_config(precision="auto"), torch.device("cpu"))
    assert choice.precision == expected and choice.reason == "probe"
    assert choice.speedup == pytest.approx(fp32_s / bf16_s)


def test_emulated_bf16_is_refused_without_timing_a_step(small_config, monkeypatch):
    monkeypatch.setattr(precision, "_PROBES", {})
    monkeypatch.setattr(precision, "matmul_speedup", lambda *a, **k: 0.03)
    monkeypatch.setattr(precision, "interleave", lambda *a, **k: pytest.fail("timed steps"))
    choice = precision.choose(small_config(precision="auto"), torch.device("cpu"))
    assert choice.precision == "fp32" and choice.speedup is None
    assert "emulated" in str(choice)


def test_real_probe_on_this_cpu(small_config, monkeypatch):
    """Whatever this CPU is: emulated bf16 is refused at the matmul gate, native bf16 gets
    its steps timed."""
    monkeypatch.setattr(precision, "_PROBES", {})
    choice = precision.probe_cpu(small_config(precision="auto"))
    assert choice.precision in ("fp32", "bf16")
    assert choice.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert choice.matmul_speedup > 0
    if choice.matmul_speedup < precision.MATMUL_GATE:
        assert choice.precision == "fp32" and choice.fp32_step_s is None
        assert "emulated" in str(choice)
    else:
        assert choice.fp32_step_s > 0 and choice.bf16_step_s > 0
        assert "probe: fp32" in str(choice)


def test_auto_run_records_its_choice_and_hash_ignores_it(small_config, data_dir, tmp_path,
                                                        monkeypatch):
    cfg = small_config(precision="auto", max_steps=8, eval_every=0)
    monkeypatch.setattr(precision, "probe_cpu", _fake_probe("bf16"))
    result = train(cfg, tmp_path / "run", progress=False, data_dir=data_dir)
    assert result["precision"] == "bf16"
    assert result["precision_choice"]["reason"] == "probe"
    assert result["run_hash"] == cfg.run_hash()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "auto"


def _interrupt_at_call(monkeypatch, n: int):
    real, calls = train_mod.model_loss, {"n": 0}

    def loss(model, tokens, per_token=False):
        if not per_token:
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
        return real(model, tokens, per_token)

    monkeypatch.setattr(train_mod, "model_loss", loss)


def test_resume_keeps_the_precision_it_started_with(small_config, data_dir, tmp_path,
                                                    monkeypatch):
    """Started where bf16 won, resumed where fp32 would win: it finishes in bf16, with the
    weights of an uninterrupted bf16 run."""
    cfg = small_config(precision="auto", max_steps=12, checkpoint_every=4, eval_every=0)
    monkeypatch.setattr(precision, "probe_cpu", _fake_probe("bf16"))
    clean = train(cfg, tmp_path / "clean", progress=False, data_dir=data_dir)
    run = tmp_path / "run"
    _interrupt_at_call(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False, data_dir=data_dir)
    state = json.loads((list_checkpoints(run)[-1] / "state.json").read_text())
    assert state["precision"]["precision"] == "bf16"

    monkeypatch.setattr(train_mod, "model_loss", model_loss)
    monkeypatch.setattr(precision, "probe_cpu", _fake_probe("fp32"))
    resumed = train(cfg, run, progress=False, data_dir=data_dir)
    assert resumed["precision"] == "bf16"
    assert resumed["precision_choice"]["reason"] == "resumed"
    assert resumed["val_loss"] == clean["val_loss"]
    a = load_weights(run / "model.safetensors").state_dict()
    b = load_weights(tmp_path / "clean" / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)



# --- one decision per zoo (zoo.shared_precision) ------------------------------------------------
def test_the_zoos_shared_choice_is_taken_without_probing(small_config, monkeypatch):
    monkeypatch.setattr(precision, "probe_cpu", lambda *a, **k: pytest.fail("probed"))
    shared = PrecisionChoice("bf16", "zoo probe", 0.2, 0.1, 2.0, 4, 1, "AVX512", 3.0)
    monkeypatch.setenv(precision.SHARED_ENV, json.dumps(shared.to_dict()))
    assert precision.choose(small_config(precision="auto"), torch.device("cpu")) == shared
    # an explicit precision still wins
    assert precision.choose(small_config(precision="fp32"),
                            torch.device("cpu")) == PrecisionChoice("fp32", "config")


@pytest.mark.parametrize("raw", ["{bad", '{"precision": "fp16", "reason": "zoo probe"}',
                                 '{"nope": 1}'])
def test_a_damaged_shared_choice_is_refused_by_name(small_config, monkeypatch, raw):
    monkeypatch.setenv(precision.SHARED_ENV, raw)
    with pytest.raises(ValueError, match=precision.SHARED_ENV):
        precision.choose(small_config(precision="auto"), torch.device("cpu"))


def test_a_zoo_probes_once_per_machine_and_keeps_the_answer(tmp_path, monkeypatch):
    from solu_repro import zoo

    calls = []

    def probe(cfg, *a, **k):
        calls.append(cfg.name)
        return _fake_probe("bf16")(cfg)

    monkeypatch.setattr(precision, "probe_cpu", probe)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    first = zoo.shared_precision("cpu", tmp_path)
    assert first.precision == "bf16" and first.reason == "zoo probe"
    assert zoo.shared_precision("cpu", tmp_path) == first and len(calls) == 1
    saved = json.loads((tmp_path / "cpu" / zoo.SHARED_PRECISION_FILE).read_text())
    assert saved["choice"] == first.to_dict() and saved["machine"] == zoo._machine()
    # moved to another machine: probed again there
    monkeypatch.setattr(zoo, "_machine", lambda: {"cpu": "another", "cpu_capability": "AVX2",
                                                  "torch": torch.__version__})
    monkeypatch.setattr(precision, "probe_cpu", lambda cfg, *a, **k: _fake_probe("fp32")(cfg))
    assert zoo.shared_precision("cpu", tmp_path).precision == "fp32"
    # a scale with an explicit precision has nothing to share
    assert zoo.shared_precision("tiny", tmp_path) is None


@pytest.mark.slow
def test_every_new_run_of_a_zoo_takes_the_one_choice(tmp_path, monkeypatch, data_dir):
    """Two models of an "auto" zoo trained in this process: one probe, both runs record it."""
    import dataclasses

    from solu_repro import zoo

    auto = dataclasses.replace(zoo.SCALES["tiny-pair"], precision="auto", pair_seeds=1,
                               max_steps=4, eval_every=0, snapshot_steps=(),
                               checkpoint_every=4)
    monkeypatch.setitem(zoo.SCALES, "tiny-pair", auto)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = []

    def probe(cfg, *a, **k):
        calls.append(cfg.name)
        return _fake_probe("bf16" if len(calls) == 1 else "fp32")(cfg)

    monkeypatch.setattr(precision, "probe_cpu", probe)
    runs = zoo.train_zoo("tiny-pair", tmp_path, progress=False, data_dir=data_dir)
    assert len(runs) == 2 and calls == [calls[0]]
    for run in runs.values():
        assert run.result["precision"] == "bf16"
        assert run.result["precision_choice"]["reason"] == "zoo probe"
    assert precision.SHARED_ENV not in __import__("os").environ


def test_two_processes_deciding_at_once_share_one_probe(tmp_path):
    """Two processes ask for the zoo's precision at the same moment, with a probe that answers
    differently each time it runs: both get the first answer (the lock)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import json, os, sys, time
        import torch
        from solu_repro import zoo
        from solu_repro.train import precision
        from solu_repro.train.precision import PrecisionChoice
        torch.cuda.is_available = lambda: False
        def probe(cfg, *a, **k):
            with open({str(tmp_path / "probes")!r}, "a+") as f:
                f.seek(0)
                first = not f.read()
                f.write("probed\\n")
            time.sleep(1.0)  # long enough for the other process to arrive
            return PrecisionChoice("bf16" if first else "fp32", "probe")
        precision.probe_cpu = probe
        while not os.path.exists({str(tmp_path / "go")!r}):
            time.sleep(0.01)
        print(zoo.shared_precision("cpu", {str(tmp_path)!r}).precision)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    (tmp_path / "go").write_text("")
    out = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    saved = json.loads((tmp_path / "cpu" / "precision.json").read_text())
    assert out[0] == out[1] == saved["choice"]["precision"] == "bf16"
    assert (tmp_path / "probes").read_text() == "probed\n"  # one probe for both
