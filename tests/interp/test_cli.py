"""`solu-repro harvest` and `solu-repro score` on the tiny zoo."""

from __future__ import annotations

import json

import pytest

from solu_repro import cli, zoo
from solu_repro.interp import Harvest, NeuronScores, harvest_path


@pytest.mark.parametrize("command", [["harvest"], ["score"], ["blind"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(command + ["--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.slow
def test_harvest_then_score_reuses_saved_results(tmp_path, data_dir, capsys):
    argv = ["--scale", "tiny", "--only", "1L-solu_ln", "--quiet", "--runs-dir", str(tmp_path),
            "--data-dir", str(data_dir)]
    assert cli.main(["harvest"] + argv) == 0
    assert "hooks mid/post" in capsys.readouterr().out
    run = zoo.ensure_trained("1L-solu_ln", "tiny", tmp_path, progress=False, data_dir=data_dir)
    path = harvest_path(run)
    h = Harvest.load(path)
    assert h.meta["name"] == "1L-solu_ln" and h.meta["split"] == "val"
    stamp = path.stat().st_mtime_ns

    assert cli.main(["score", "--json"] + argv) == 0
    layers = json.loads(capsys.readouterr().out)["1L-solu_ln"]
    assert layers[0]["n"] == run.config.model.d_mlp
    assert 0 <= layers[0]["fraction"] <= 1 and layers[0]["lo"] <= layers[0]["fraction"]
    assert path.stat().st_mtime_ns == stamp  # the saved harvest was reused
    scores = sorted(path.parent.glob("score-*.json"))
    assert len(scores) == 1 and NeuronScores.load(scores[0]).meta["name"] == "1L-solu_ln"

    assert cli.main(["score"] + argv) == 0
    table = capsys.readouterr().out
    assert "interpretable (top-20 rule)" in table and "1L-solu_ln" in table


@pytest.mark.parametrize("argv, message", [
    (["score", "--threshold", "2"], "threshold"),
    (["harvest", "--only", "9L-gelu"], "no model '9L-gelu'"),
])
def test_bad_input_exits_2(argv, message, tmp_path, capsys):
    assert cli.main(argv + ["--scale", "tiny", "--runs-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
