"""Every chapter runs on the default cpu book's composition (the 1-layer pair only, no
ablations, no deeper models), at the tiny shapes: scale ``tiny-pair``, whose runs are the tiny
zoo's own."""

from __future__ import annotations

import json

import nbformat
import pytest

from results_snapshot import ROOT
from solu_repro.book.build import build_book
from solu_repro.book.ch06_layers import NO_DEEP_MODELS
from solu_repro.paper.registry import CLAIMS
from solu_repro.zoo import SCALES, variant_of, zoo_configs


def test_tiny_pair_is_the_cpu_books_composition_at_tiny_shapes():
    pair, cpu, tiny = SCALES["tiny-pair"], SCALES["cpu"], SCALES["tiny"]
    assert (pair.depths, pair.ablation_seeds, pair.blocks) == (cpu.depths, cpu.ablation_seeds,
                                                                 cpu.blocks)
    assert pair.d_model == tiny.d_model and pair.runs_under == "tiny"
    names = list(zoo_configs("tiny-pair"))
    assert names and all(n.startswith("1L-") and n.split("-")[1] in ("gelu", "solu_ln")
                         for n in names)
    assert set(names) <= set(zoo_configs("tiny"))
    cpu_names = list(zoo_configs("cpu"))
    assert {variant_of(n) for n in cpu_names} == {"1L-gelu", "1L-solu_ln"}
    assert len(cpu_names) == 2 * cpu.pair_seeds


def outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(text)


@pytest.mark.slow
def test_every_chapter_runs_without_ablations_or_deeper_models(tmp_path, built_book,
                                                               monkeypatch):
    for key, value in built_book.env.items():
        monkeypatch.setenv(key, value)
    report = build_book("tiny-pair", runs_dir=built_book.runs, root=tmp_path / "book",
                        repo=ROOT, html=False, progress=False, quiet=True, workers=1)
    assert all(r.status in ("executed", "reused") for r in report.notebooks), report.summary()
    executed = tmp_path / "book" / "book" / "executed"
    ch06 = nbformat.read(executed / "06-neurons-across-layers.ipynb", 4)
    assert NO_DEEP_MODELS.format(scale="tiny-pair") in outputs(ch06)
    ch04 = outputs(nbformat.read(executed / "04-interpretability-quantitative.ipynb", 4))
    assert "at 22 B, all points" in ch04   # the section over training ran, trends and all
    saved = {c["id"]: c for f in (built_book.runs / "tiny-pair" / "claims").glob("*.json")
             for c in json.loads(f.read_text())["claims"]}
    assert set(saved) == {c.id for c in CLAIMS}
    for cid in ("no_ln_penalty", "solu_alone", "ln_only_halfway", "blocked_loss",
                "figure4_depth", "early_detokenization"):
        assert saved[cid]["verdict"] == "not testable here", (cid, saved[cid])
