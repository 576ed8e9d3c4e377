"""Chapter 7's page (``solu_repro.book.ch07_layernorm``, notebook 07): figures, tables, the
glued sentences, the inputs it gathers from the book's context, and the notebook's layout."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from solu_repro.book import ch07_layernorm as ch07
from solu_repro.interp.analysis import HELDOUT_RULE, NeuronBands
from solu_repro.paper import claim as C
from solu_repro.paper import s6_4_layernorm as LN

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07-layernorm.ipynb"
LOW = [0, 1]
STRONG = [3, 4, 3, 4, 3, 4, 3, 4]


def neuron(mid_bad, post_bad, per_band=10, n=0, chance=0.9):
    ex = np.array([[0 if b is None else per_band for b in mid_bad],
                   [0 if b is None else per_band for b in post_bad]])
    bad = np.array([[b or 0 for b in mid_bad], [b or 0 for b in post_bad]])
    return NeuronBands(0, n, '["token", [1]]', ex, bad, np.zeros((2, len(mid_bad) + 1)), chance)


def shifted(diffs, base=5):
    return [neuron([base, base, 1, 0], [base + d, base + d, 1, 0], n=i)
            for i, d in enumerate(diffs)]


def measurements(solu, control):
    s = LN.paired_difference({"1L-solu_ln": shifted(solu)}, LOW, "solu", n_resamples=500)
    c = vs = None
    if control is not None:
        c = LN.paired_difference({"1L-gelu_ln": shifted(control)}, LOW, "control",
                                 n_resamples=500)
        vs = LN.contrast(s, c, n_resamples=500)
    rescale = LN.rescale_summary(np.linspace(0.01, 1, 50), 1e-5)
    models = {"1L-solu_ln": {**rescale, "neurons": 128, "interpretable": 9, "hold_out": 8,
                             "measured": 8, "tokens": 1000},
              "1L-gelu_ln": {**rescale, "neurons": 128, "interpretable": 5, "hold_out": 5,
                             "measured": 5, "tokens": 1000}}
    per_model = {"1L-solu_ln": s, **({"1L-gelu_ln": c} if c else {})}
    return LN.LayerNormMeasurements(4, 0.5, LOW, models, s, c, vs, per_model, [], [], [], [])


# --- the module ----------------------------------------------------------------------------------
def test_the_chapter_imports_no_other_chapter():
    tree = ast.parse((ROOT / "src/solu_repro/book/ch07_layernorm.py").read_text())
    imported = {("." * n.level) + (n.module or "") for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}
    assert not [m for m in imported if re.search(r"\.ch\d\d_", m)]


# --- sentences and tables -------------------------------------------------------------------------
def test_difference_text():
    d = LN.paired_difference({"a": shifted([2, 3, 2, 3, 2, 3]), "b": shifted([1, 2])}, LOW,
                             "pooled", n_resamples=500)
    assert "+22.5 pts" in ch07.difference_text(d) and \
        "8 neurons of 2 models" in ch07.difference_text(d)
    assert "inconsistent before the LN 50.0%" in ch07.difference_text(d)
    none = LN.paired_difference({"x": []}, LOW, "none")
    assert ch07.difference_text(none) == "none: no neuron to compare"


def test_glue_values_name_every_glued_phrase_of_the_page():
    m = measurements(STRONG, [0, 1, 0, -1, 0, 1, 0, 0])
    values = ch07.glue_values(m)
    assert values["heldout_rule"] == HELDOUT_RULE and values["n_bands"] == 4
    assert values["low_text"] == "bands 1-2 of 4, quantiles 0%-50% of each hook's firings"
    assert values["solu_text"] == ch07.difference_text(m.solu)
    assert values["control_text"] == ch07.difference_text(m.control)
    assert values["reason"] == m.reason
    assert values["rescale_solu"].startswith("SoLU-LN x") and \
        values["rescale_control"].startswith("GELU-LN x")
    alone = ch07.glue_values(measurements(STRONG, None))
    assert alone["control_text"] == "no control model"
    assert alone["rescale_control"] == "GELU-LN not measured"
    # Every glue name the page's text uses is glued: by glue_values or by the claims.
    nb = json.loads(NOTEBOOK.read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    used = set(re.findall(r"\{glue:text\}`([^`]+)`", text))
    claims = {f"{k}_ln_low_activation" for k in ("claim", "verdict")}
    assert used <= set(values) | claims, used - set(values) - claims


def test_reading_text_reports_room_channel_control_and_the_paper():
    m = measurements(STRONG, [0, 1, 0, -1, 0, 1, 0, 0])
    text = ch07.reading_text(m)
    assert m.verdict == C.REPRODUCED
    assert "already 50% inconsistent, against 90%" in text and "about 40 points" in text
    assert "after GELU" in text and "the channel §6.4 describes is open" in text
    assert f"after GELU gives {LN.pts(m.control.diff)} in its low bands" in text
    assert f"between the two, {LN.pts(m.vs_control.diff)}." in text
    assert "agrees with the paper" in text
    empty = measurements(STRONG, None)
    empty.solu = LN.paired_difference({"1L-solu_ln": []}, LOW, "solu")
    assert "says nothing about §6.4" in ch07.reading_text(empty)


def test_models_table_lists_every_model():
    m = measurements(STRONG, [0, 1, 0, -1, 0, 1, 0, 0])
    text = ch07.models_table(m)
    assert text.startswith("| model | hold out |")
    assert "1L-solu_ln" in text and "1L-gelu_ln" in text and "8/128" in text
    assert "+35.0 pts" in text


def test_band_table_and_figures_show_both_hooks_chance_and_the_control():
    ns = [neuron([10, 5, 0, 0], [10, 10, 0, 0]), neuron([6, 5, 0, 0], [10, 10, 0, 2])]
    rows = LN.band_rows(ns, 4, n_resamples=200)
    assert "0%-25%" in ch07.band_table(rows)
    fig = ch07.ln_consistency_figure(rows, chance=0.9, low_quantile=0.5)
    assert [t.name for t in fig.data] == [ch07.HOOK_LABELS["mid"], ch07.HOOK_LABELS["post"]]
    assert list(fig.data[0].x) == pytest.approx([12.5, 37.5, 62.5, 87.5])
    assert list(fig.data[0].y) == pytest.approx([0.8, 0.5, 0.0, 0.0])
    assert any("chance" in (a.text or "") for a in fig.layout.annotations)
    empty = ch07.ln_consistency_figure(LN.band_rows([], 4))
    assert not empty.data and empty.layout.annotations
    series = {"1L-solu_ln": LN.band_differences(ns, 4, n_resamples=200),
              "1L-gelu_ln": LN.band_differences(ns[:1], 4, n_resamples=200)}
    fig = ch07.band_difference_figure(series, 4, low_quantile=0.5)
    assert len(fig.data) == 2 and list(fig.data[0].y)[0] == pytest.approx(0.2)
    assert not ch07.band_difference_figure({"x": []}, 4).data
    assert "no example" in ch07.no_neuron_html("<1L>") and "&lt;1L&gt;" in \
        ch07.no_neuron_html("<1L>")


# --- the page -------------------------------------------------------------------------------------
def test_the_page_shows_the_definition_the_call_and_the_rule():
    nb = json.loads(NOTEBOOK.read_text())
    code = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in nb["cells"]
            if c["cell_type"] == "code"]
    visible = [s for s, tags in code if "remove-cell" not in tags]
    assert any("show_source(" in s and "s6_4.paired_difference" in s for s in visible)
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
    drawn = ch07.low_band_examples(ctx, name, record, n_bands=4, low_quantile=0.5, n=3)
    assert set(drawn) == {"mid", "post"} and all(len(v) <= 3 for v in drawn.values())
    html = ch07.band_pair_html(ctx, name, record, n_bands=4, low_quantile=0.5, n_examples=3)
    assert "before the LN (hook_mid)" in html and "after the LN (hook_post)" in html
    assert not math.isnan(record.coverage)
