"""Chapter 7's page (``solu_repro.book.ch07_layernorm``, notebook 07): figures, tables, the
glued sentences, the inputs it gathers from the book's context, and the notebook's layout."""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from solu_repro.book import ch07_layernorm as ch07
from solu_repro.book import checks
from solu_repro.interp.analysis import HELDOUT_RULE, NeuronBands
from solu_repro.paper import claim as C
from solu_repro.paper import s6_4_layernorm as LN

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07-layernorm.ipynb"
N = 10


def neuron(mid_bad, post_bad, per_band=100, n=0, chance=0.99):
    ex = np.array([[0 if b is None else per_band for b in mid_bad],
                   [0 if b is None else per_band for b in post_bad]])
    bad = np.array([[b or 0 for b in mid_bad], [b or 0 for b in post_bad]])
    return NeuronBands(0, n, '["token", [1]]', ex, bad, np.ones(2), chance)


def model(diff, mid=60, level=None, k=4):
    """``k`` neurons: 99 of 100 inconsistent below 10% of the max, ``mid`` before and
    ``mid + diff`` after the LN at 10-50%, 10 above (``level``: every band at that level)."""
    if level is not None:
        return [neuron([level] * N, [level] * N, n=i) for i in range(k)]
    return [neuron([99] + [mid] * 4 + [10] * 5, [99] + [mid + diff] * 4 + [10] * 5, n=i)
            for i in range(k)]


def measurements(solu=(8, 9, 10), control=(0, 1), floors=(97, 96, 97)):
    """``LayerNormMeasurements`` of constructed seeds: per-seed differences in points."""
    names = ["1L-solu_ln"] + [f"1L-solu_ln-s{i}" for i in range(1, len(solu))]
    gelu = ["1L-gelu_ln"] + [f"1L-gelu_ln-s{i}" for i in range(1, len(control))]
    by_model = {n: model(d) for n, d in zip(names, solu)} | \
        {n: model(d) for n, d in zip(gelu, control)}
    fl = {n: model(0, level=f) for n, f in zip(names, floors)}
    rescale = LN.rescale_summary(np.linspace(0.01, 1, 50), 1e-5)
    models = {n: {**rescale, "neurons": 128, "interpretable": 9, "hold_out": 8,
                  "measured": 4, "tokens": 1000} for n in by_model}
    return LN.from_neurons(by_model, fl, n_bands=N, models=models)


# --- the module ----------------------------------------------------------------------------------
def test_the_chapter_imports_no_other_chapter():
    tree = ast.parse((ROOT / "src/solu_repro/book/ch07_layernorm.py").read_text())
    imported = {("." * n.level) + (n.module or "") for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}
    assert not [m for m in imported if re.search(r"\.ch\d\d_", m)]


# --- sentences and tables -------------------------------------------------------------------------
def test_seeds_text_and_room_text():
    m = measurements()
    text = ch07.seeds_text(m, m.solu_names, "SoLU-LN", m.effect)
    assert "inconsistent before the LN 60.0%, after 69.0%, untrained 96.7%" in text
    assert "means of 3 seeds, 12 neurons" in text and m.effect.interval_text in text
    assert ch07.seeds_text(m, [], "x", None) == "x: no neuron to compare"
    assert "room for an increase of the 5 points of interest" in ch07.room_text(m)
    flat = measurements(floors=(61, 61, 62))  # the low bands start at the untrained level
    assert flat.verdict == C.NOT_TESTABLE and "not enough room" in ch07.room_text(flat)


def test_glue_values_name_every_glued_phrase_of_the_page():
    m = measurements()
    values = ch07.glue_values(m)
    assert values["heldout_rule"] == HELDOUT_RULE and values["n_bands"] == N
    assert values["low_text"] == "10%-50% of each neuron's max on that hook (bands 2-5 of 10)"
    assert values["solu_text"] == ch07.seeds_text(m, m.solu_names, "1L-solu_ln (3 seeds)",
                                                  m.effect)
    assert values["control_text"].startswith("1L-gelu_ln (2 seeds): ")
    assert values["reason"] == m.reason and values["interest"] == "5 points"
    assert values["floor"] == LN.FLOOR and values["room_text"] == ch07.room_text(m)
    assert values["rescale_solu"].startswith("SoLU-LN x") and \
        values["rescale_control"].startswith("GELU-LN x")
    alone = ch07.glue_values(measurements(control=()))
    assert alone["control_text"] == "no control model"
    assert alone["rescale_control"] == "GELU-LN not measured"
    # Every glue name the page's text uses is glued: by glue_values or by the claims.
    nb = json.loads(NOTEBOOK.read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    used = set(re.findall(r"\{glue:text\}`([^`]+)`", text))
    claims = {f"{k}_ln_low_activation" for k in ("claim", "verdict")}
    assert used <= set(values) | claims, used - set(values) - claims


def test_reading_text_reports_room_banding_channel_control_and_the_paper():
    m = measurements()
    text = ch07.reading_text(m)
    assert m.verdict == C.REPRODUCED
    assert "room for an increase" in text and "banding alone does not make" in text
    assert "after GELU" in text and "the channel §6.4 describes is open" in text
    assert f"The same LN after GELU gives {m.control_effect.interval_text}" in text
    assert "agrees with the paper" in text and "12 neurons of 3 seeds" in text
    empty = LN.from_neurons({"1L-solu_ln": []}, {}, n_bands=N,
                            models={"1L-solu_ln": {"positions": 0}})
    assert "says nothing about §6.4" in ch07.reading_text(empty)
    against = measurements(solu=(-8, -9, -10))
    assert against.verdict == C.CONTRADICTED and "disagrees" in ch07.reading_text(against)


def test_models_table_is_a_census_per_model():
    m = measurements()
    text = ch07.models_table(m)
    assert text.startswith("| model | hold out |")
    assert "1L-solu_ln-s2" in text and "1L-gelu_ln" in text and "8/128" in text
    assert "+8.0 pts" in text and "4 / 0" in text and "+37.0 pts" in text
    assert "CI" not in text  # no interval over neurons


def test_band_table_checks_and_figures_show_both_hooks_the_floor_and_the_seeds():
    m = measurements()
    table = ch07.band_table(m.rows)
    assert "10%-20%" in table and "range over seeds" in table
    assert not checks.failed(ch07.level_band_checks(m.rows, N))
    assert not checks.failed(ch07.level_band_checks(m.control_rows, N))
    assert not checks.failed(ch07.level_band_checks(LN.band_rows({}, N), N))  # no neuron
    broken = [replace(r, n_inconsistent=r.n_examples + 1) if r.band == 3 else r
              for r in m.rows]
    assert [c.what for c in checks.failed(ch07.level_band_checks(broken, N))] == [
        "hook mid: 0 <= inconsistent <= tokens in every band",
        "hook post: 0 <= inconsistent <= tokens in every band"]
    assert checks.failed(ch07.level_band_checks(m.rows[:-1], N))
    fig = ch07.ln_consistency_figure(m.rows, chance=0.99, low=LN.LOW_LEVELS,
                                     floor_rows=m.floor_rows)
    names = [t.name for t in fig.data]
    assert names[0] == ch07.HOOK_LABELS["mid"] and ch07.HOOK_LABELS["post"] in names
    assert sum("untrained" in n for n in names) == 2
    assert list(fig.data[0].x) == pytest.approx([5 + 10 * b for b in range(N)])
    assert fig.data[0].y[1] == pytest.approx(0.6) and fig.data[2].y[1] == pytest.approx(0.69)
    assert any("chance" in (a.text or "") for a in fig.layout.annotations)
    empty = ch07.ln_consistency_figure(LN.band_rows({}, 4))
    assert not empty.data and empty.layout.annotations
    series = {"1L-solu_ln": m.differences, "1L-gelu_ln": m.control_differences}
    fig = ch07.band_difference_figure(series, N, low=LN.LOW_LEVELS)
    assert len(fig.data) == 2 and fig.data[0].y[1] == pytest.approx(0.09)
    assert not ch07.band_difference_figure({"x": []}, 4).data
    seeds = ch07.seed_figure(m)
    assert len([t for t in seeds.data if t.mode == "markers" and t.text is not None]) == 3
    assert "no example" in ch07.no_neuron_html("<1L>") and "&lt;1L&gt;" in \
        ch07.no_neuron_html("<1L>")


# --- the page -------------------------------------------------------------------------------------
def test_the_page_shows_the_definition_the_call_and_the_rule():
    nb = json.loads(NOTEBOOK.read_text())
    code = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in nb["cells"]
            if c["cell_type"] == "code"]
    visible = [s for s, tags in code if "remove-cell" not in tags]
    assert any("show_source(" in s and "s6_4.model_levels" in s and "s6_4.effect_test" in s
               for s in visible)
    assert any("show_source(" in s and "s6_4.ln_verdict" in s for s in visible)
    assert any("show_claim(s6_4.LN_LOW_ACTIVATION)" in s for s in visible)
    measure = [s for s, tags in code if "s6_4.measure(**ch07.gather(ctx)" in s]
    assert len(measure) == 1 and measure[0] in visible  # measured once, in view
    glue_cells = [s for s, tags in code if "glue(" in s]
    assert len(glue_cells) == 1 and "ch07.glue_values(measured)" in glue_cells[0]
    figures = [tags for s, tags in code if "_figure(" in s]
    assert figures and all("hide-input" in tags for tags in figures)


# --- the tiny zoo -------------------------------------------------------------------------------


@pytest.mark.slow
def test_gather_and_the_example_neuron_on_the_tiny_zoo(ctx):
    assert ch07.ln_models(ctx)[:1] == ["1L-solu_ln"] and "1L-gelu" not in ch07.ln_models(ctx)
    inputs = ch07.gather(ctx, ["1L-gelu_ln"])  # one model: each is trained here first
    assert set(inputs) == {"runs", "scores", "seed"} and list(inputs["runs"]) == ["1L-gelu_ln"]
    assert inputs["scores"]["1L-gelu_ln"].records and inputs["seed"] == ctx.seed
    name, record = ch07.first_example(ctx, "1L-gelu_ln")
    if record is None:  # the tiny zoo may have no neuron that holds out
        assert name == "1L-gelu_ln"
        return
    drawn = ch07.low_band_examples(ctx, name, record, n_bands=4, low=(0.0, 0.5), n=3)
    assert set(drawn) == {"mid", "post"} and all(len(v) <= 3 for v in drawn.values())
    html = ch07.band_pair_html(ctx, name, record, n_bands=4, low=(0.0, 0.5), n_examples=3)
    assert "before the LN (hook_mid)" in html and "after the LN (hook_post)" in html
    assert not math.isnan(record.coverage)
