"""The book's tables of what was trained and how."""

from __future__ import annotations

from types import SimpleNamespace

from solu_repro.book.overview import training_rows, zoo_overview
from solu_repro.book.tables import markdown_table


def _run(**result):
    return SimpleNamespace(result={"tokens": 4096, "train_seconds": 2.0, "device": "cpu",
                                   **result})


def test_training_rows_say_which_precision_and_why():
    runs = {
        "probed": _run(precision="bf16", precision_choice={
            "precision": "bf16", "reason": "probe", "speedup": 1.62, "cpu_capability": "AVX512"}),
        "set": _run(precision="fp32", precision_choice={"precision": "fp32", "reason": "config"}),
        "old": _run(),
        "emulated": _run(precision="fp32", precision_choice={
            "precision": "fp32", "reason": "probe", "speedup": None, "matmul_speedup": 0.04,
            "cpu_capability": "AVX2"}),
    }
    rows = {r["model"]: r for r in training_rows(runs)}
    assert rows["probed"]["precision"] == "bf16 (probe: bf16 1.62x fp32 on AVX512)"
    assert rows["set"]["precision"] == "fp32 (config)"
    assert rows["old"]["precision"] == "fp32 (not recorded)"
    assert rows["emulated"]["precision"] == "fp32 (probe: bf16 emulated on AVX2, a matmul 25x slower)"
    assert rows["probed"]["tokens/s"] == "2,048"
    assert "| probed | bf16 (probe" in markdown_table(list(rows.values()))


def test_zoo_overview_counts_from_the_configs():
    rows = {r["model"]: r for r in zoo_overview("tiny")}
    assert rows["4L-gelu"]["neurons"] == 4 * rows["4L-gelu"]["d_mlp"]
    assert len({r["tokens"] for r in rows.values()}) == 1
