"""Chapter 6's page (``solu_repro.book.ch06_layers``, notebook 06, paper §6.3.2-6.3.4): the
roles-by-layer table and figure, examples of each role and the glued numbers."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from solu_repro.book import ch06_layers as ch06
from solu_repro.book.neuron_cards import ROLE_LABELS
from solu_repro.interp.analysis import ROLE_ORDER, layer_roles
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.score import NeuronScore, NeuronScores
from solu_repro.paper import s6_3_neurons as S

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "06-neurons-across-layers.ipynb"


def _record(layer, neuron, kind="token", values=(1,), interpretable=True, precision=0.5,
            recall=0.5):
    e = Explanation(kind, values)
    return NeuronScore(layer, neuron, e.key(), f"{kind} {values}", e.role, 0.9, 0.01, 10.0,
                       interpretable, False, precision, recall, 0.5, 10, 10)


def _scores(records):
    return NeuronScores({"name": "synthetic"}, records)


def _rows():
    records = [_record(0, 0, "bigram", ((1, 2),)), _record(0, 1, "token", (3,)),
               _record(1, 0, "class", ("digits",)), _record(1, 1, "token", (5,), False)]
    roles = layer_roles(_scores(records))
    return [{"model": "2L-solu_ln", "act": "solu_ln", "depth": 2,
             "position": S.layer_position(r["layer"], 2), **r} for r in roles]


def test_layer_roles_figure_stacks_counts_per_role():
    rows = _rows()
    fig = ch06.layer_roles_figure(rows)
    names = [t.name for t in fig.data]
    assert names == [ROLE_LABELS[r] for r in ROLE_ORDER] + [ch06.UNCONFIRMED_LABEL]
    by_name = {t.name: list(t.y) for t in fig.data}
    assert by_name[ROLE_LABELS["detokenization"]] == [1, 0]
    assert by_name[ROLE_LABELS["token"]] == [1, 0]
    assert by_name[ROLE_LABELS["token_class"]] == [0, 1]
    assert by_name[ROLE_LABELS["source"]] == [0, 0]
    assert fig.layout.barmode == "stack"


def test_layer_roles_table_counts_and_shares():
    table = ch06.layer_roles_table(_rows())
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["model", "layer", "interpretable"]
    assert "L0 (first)" in lines[2] and "1 (50%)" in lines[2]
    assert "L1 (last)" in lines[3] and "1 (100%)" in lines[3]


def test_role_examples_pick_the_best_of_each_role():
    records = [_record(0, 0, "bigram", ((1, 2),), precision=0.6, recall=0.6),
               _record(0, 1, "bigram", ((1, 3),), precision=0.9, recall=0.9),
               _record(1, 0, "class", ("digits",))]
    got = ch06.role_examples(S.ScoredModel(None, _scores(records)), per_role=1)
    assert [(r.layer, r.neuron) for r in got["detokenization"]] == [(0, 1)]
    assert [(r.layer, r.neuron) for r in got["token_class"]] == [(1, 0)]
    assert got["token"] == [] and got["retokenization"] == [] and list(got) == list(ROLE_ORDER)


def test_glue_values_name_the_pair_and_the_depth_check():
    got = ch06.glue_values(S.LayersMeasurements("4L-solu_ln", "4L-gelu"))
    assert (got["deepest"], got["baseline"]) == ("4L-solu_ln", "4L-gelu")
    assert "unknown" in got["depth_note"]
    none = ch06.glue_values(S.LayersMeasurements(None, None))
    assert (none["deepest"], none["baseline"]) == ("no multi-layer SoLU-LN model",
                                                   "no GELU model of that depth")
    losses = {"2L-solu_ln": 4.3, "4L-solu_ln": 4.35, "2L-gelu": 4.3, "4L-gelu": 4.2}
    m = S.LayersMeasurements("4L-solu_ln", "4L-gelu",
                             depth=[S.depth_check(n, losses) for n in ("4L-solu_ln", "4L-gelu")])
    note = ch06.glue_values(m)["depth_note"]
    assert note.startswith("depth was not learned: 4L-solu_ln") and "4L-gelu" not in note
    table = ch06.depth_table(m)
    assert table.splitlines()[2].split()[-1] == "no" and table.splitlines()[3].split()[-1] == "yes"


def test_census_table_shows_counts_without_intervals():
    rows = [_row("4L-solu_ln", i, detokenization=d, retokenization=r, token_class=c)
            for i, (d, r, c) in enumerate([(3, 0, 1), (0, 0, 4), (0, 0, 2), (0, 2, 0)])]
    rows += [_row("4L-gelu", i, detokenization=1 if i == 0 else 0) for i in range(4)]
    m = S.measure_layers(rows)
    table = ch06.census_table(m)
    assert "3/100 = 3.0%" in table and "1/100 = 1.0%" in table and "+2.0 points" in table
    assert "[" not in table
    assert "n/a" in ch06.census_table(S.LayersMeasurements(None, None))


def _row(model, layer, n_neurons=100, **counts):
    counts = {role: counts.get(role, 0) for role in ROLE_ORDER}
    n = sum(counts.values())
    return {"model": model, "act": model.split("-")[1], "depth": 4, "layer": layer,
            "position": S.layer_position(layer, 4), "n_neurons": n_neurons,
            "n_interpretable": n, "retokenization_unconfirmed": 0, **counts}


def test_final_losses_and_one_layer_gathering():
    runs = {"1L-gelu": {"val_loss": 4.5}, "2L-gelu": {"val_loss": 4.3},
            "1L-gelu_ln": {"val_loss": 4.4}, "2L-solu_ln": {}}
    ctx = types.SimpleNamespace(
        names=list(runs), all_names=list(runs) + ["1L-gelu-s1"],
        seeds=lambda name: [name, name + "-s1"],
        run=lambda name: types.SimpleNamespace(result=runs.get(name, {}),
                                               load_model=lambda: "weights"),
        scores=lambda name: f"scores {name}")
    assert ch06.final_losses(ctx) == {"1L-gelu": 4.5, "2L-gelu": 4.3}
    assert list(ch06.gather_one_layer(ctx)) == ["1L-gelu", "1L-gelu-s1"]


def test_gather_defaults_to_the_multi_layer_models():
    loaded = []
    run = types.SimpleNamespace(load_model=lambda: "weights")
    ctx = types.SimpleNamespace(names=["1L-gelu", "2L-gelu", "2L-solu_ln"],
                                run=lambda name: run,
                                scores=lambda name: loaded.append(name) or f"scores {name}")
    got = ch06.gather(ctx)
    assert list(got) == ["2L-gelu", "2L-solu_ln"] == loaded
    assert got["2L-gelu"].model == "weights" and got["2L-gelu"].scores == "scores 2L-gelu"


def test_the_page_shows_each_definition_and_rule():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("show_source(layer_roles" in s for s in code)
    assert any("show_source(s6_3.role_shift" in s for s in code)
    assert any("s6_3.depth_check" in s and "s6_3.one_layer_detokenization" in s for s in code)
    assert any("ch06.census_table(measured)" in s for s in code)
    assert any("show_claim(s6_3.EARLY_DETOKENIZATION, s6_3.LATE_RETOKENIZATION, "
               "s6_3.MIDDLE_ABSTRACT)" in s for s in code)
    glue_cells = [c for c in nb.cells if c.cell_type == "code" and "glue(" in c.source]
    assert len(glue_cells) == 1 and "remove-cell" in glue_cells[0].metadata["tags"]
    figures = [c for c in nb.cells if c.cell_type == "code"
               and "layer_roles_figure(rows)" in c.source]
    assert figures and all("hide-input" in c.metadata.get("tags", []) for c in figures)


# --- the tiny zoo --------------------------------------------------------------------------------


@pytest.mark.slow
def test_roles_of_the_tiny_2l_models(ctx):
    models = ch06.gather(ctx, ["2L-solu_ln", "2L-gelu"])
    rows = S.layer_roles_rows(models)
    assert [(r["model"], r["layer"]) for r in rows] == [
        ("2L-solu_ln", 0), ("2L-solu_ln", 1), ("2L-gelu", 0), ("2L-gelu", 1)]
    table = ch06.layer_roles_table(rows)
    assert "L0 (first)" in table and "L1 (last)" in table
    assert len(ch06.layer_roles_figure(rows).data) == len(ROLE_ORDER) + 1
    examples = ch06.role_examples(models["2L-solu_ln"], per_role=1, seed=ctx.seed)
    page = ch06.role_examples_html(ctx, "2L-solu_ln", examples, n_examples=2)
    assert page.count("<h4") == len(ROLE_ORDER)
    assert page.count("solu-card") == sum(len(v) for v in examples.values())
