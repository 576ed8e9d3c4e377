"""Chapter 3's page (``solu_repro.book.ch03_performance`` and notebooks/03-performance.ipynb):
its figures, tables and glued numbers on a synthetic zoo whose losses follow a known scaling
law, the gathering of its inputs, and what the notebook shows."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest

from solu_repro.book import book_context
from solu_repro.book import ch03_performance as ch03
from solu_repro.paper import s5_performance as s5
from fakes import synthetic_runs as make_synthetic_runs

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "03-performance.ipynb"

# --- a synthetic zoo with a known scaling law (as in tests/paper/test_s5_performance.py) ----------






@pytest.fixture
def measured(synthetic_runs):
    return s5.measure(synthetic_runs)


@pytest.fixture
def synthetic_runs(tmp_path):
    """The synthetic zoo of ``fakes.synthetic_runs`` (losses from a known scaling law)."""
    return make_synthetic_runs(tmp_path)


# --- figures ---------------------------------------------------------------------------------------
def test_figures(measured):
    fig = ch03.loss_curve_figure(measured.curves, smoothing=0.5)
    assert len(fig.data) == 2 * len(measured.curves)
    lines = {t.name: t for t in fig.data if t.mode == "lines"}
    assert lines["1L GELU baseline"].line.dash == "dot"     # paper Figure 1: baseline dotted
    assert lines["1L SoLU + LN"].line.dash == "solid"       # and SoLU solid
    for f in (ch03.scaling_figure(measured.losses, measured.baseline),
              ch03.multiplier_figure(measured.over_training),
              ch03.per_source_figure(measured.losses)):
        json.loads(f.to_json())
    mult = ch03.multiplier_figure(measured.over_training)
    trace = next(t for t in mult.data if t.name == "2L SoLU + LN")
    assert list(trace.x) == [120 * 512]  # the first evaluation has no baseline law
    assert any("1 of 2" in a.text for a in mult.layout.annotations)
    no_fit = s5.fit_baseline({"1L-gelu": (100, 5.0)})
    assert any("no scaling law" in a.text
               for a in ch03.scaling_figure(measured.losses, no_fit).layout.annotations)


def test_smooth():
    xs = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert ch03.smooth(xs, 0.0) == xs
    assert ch03.smooth([2.0] * 5, 0.9) == pytest.approx([2.0] * 5)  # debiased: no start bias
    assert np.all(np.diff(ch03.smooth([1.0, 0.0, 0.0], 0.5)) < 0)
    with pytest.raises(ValueError):
        ch03.smooth(xs, 1.0)


# --- tables ------------------------------------------------------------------------------------------
def test_tables(measured):
    seeds = ch03.seed_table_markdown(measured.per_seed).splitlines()
    assert seeds[0] == "| model | seeds | seed 0 | seed 1 | mean | sd over seeds |"
    assert len(seeds) == 2 + len(measured.per_seed)
    gelu = next(line for line in seeds if line.startswith("| 1L GELU baseline |"))
    assert f"{measured.val_loss['1L-gelu']:.4f}" in gelu
    losses = ch03.losses_markdown(measured.losses)
    assert "| 1L SoLU + LN | 13,024 | 61,440 |" in losses
    assert f"{measured.loss_delta[2]:+.4f}" in losses
    sizes = ch03.multipliers_markdown(measured.sizes)
    assert "1.00x" in sizes and "beyond every baseline" in sizes and "lower bound" in sizes
    no_fit = s5.fit_baseline({"1L-gelu": (100, 5.0)})
    untestable = s5.effective_sizes(measured.losses, no_fit)
    assert "not testable" in ch03.multipliers_markdown(untestable)
    no_ln = ch03.no_ln_markdown(measured.no_ln)
    assert "SoLU without LN" in no_ln and "0.60x" in no_ln
    assert ch03.no_ln_markdown(None) == "This zoo has no SoLU-without-LN model."
    per_source = ch03.per_source_markdown(measured.losses).splitlines()
    assert per_source[0] == ("| model | prose (State of the Union) | prose (State of the Union) "
                             "minus GELU | code (Python stdlib) | code (Python stdlib) minus GELU |")
    comparison = SimpleNamespace(what="training step", median_a_s=0.010, median_b_s=0.0105,
                                 ratio=1.05, ci90=(1.01, 1.09), n_samples=5)
    speed = s5.SpeedMeasurement("tiny", 1, "cuda", comparison, comparison, 512)
    assert "| training step | 10.00 | 10.50 | 1.050x | 1.010-1.090 | 5 |" in \
        ch03.speed_markdown(speed)
    power = ch03.power_markdown(measured).splitlines()
    assert power[0].startswith("| test | kind | effect [interval] | smallest detectable |")
    assert len(power) == 2 + 5  # 1L parity, the two deeper pairs, no-LN, blocked
    assert "(borrowed)" in power[3] and "equivalence" in power[2]
    assert "none (no SD)" in power[5]  # one seed of SoLU without LN


def test_the_ngram_reference_points(measured):
    """The synthetic zoo records no corpus: no reference, and the reason, everywhere; with
    reference losses, the table's rows and the figure's lines."""
    assert measured.ngram is None and measured.ngram_reason == "the runs record no corpus"
    assert ch03.reference_losses_markdown(measured.losses, None, measured.ngram_reason) == \
        "No unigram or bigram reference: the runs record no corpus."
    glued = ch03.ngram_glue(measured)
    assert math.isnan(glued["ngram_bigram_kn"]) and glued["ngram_reason"]
    ngram = s5.NgramBaselines(
        loss={"unigram": 6.5, "bigram": 5.0, "bigram_kn": 4.75},
        per_source={"sotu": {"unigram": 6.4, "bigram": 4.9, "bigram_kn": 4.7},
                    "python-stdlib": {"unigram": 6.6, "bigram": 5.1, "bigram_kn": 4.8}},
        train_tokens=1000, val_tokens=100, val_rows=2, vocab_size=1024, discount=0.75)
    lines = ch03.reference_losses_markdown(measured.losses, ngram).splitlines()
    assert lines[0] == ("| model | val loss | prose (State of the Union) | code (Python stdlib) "
                        "| minus KN bigram |")
    assert lines[2] == "| unigram (add-one) | 6.5000 | 6.4000 | 6.6000 | +1.7500 |"
    assert lines[4] == "| bigram (Kneser-Ney) | 4.7500 | 4.7000 | 4.8000 |  |"
    gelu = measured.losses["1L-gelu"]
    assert f"| 1L GELU baseline | {gelu.val_loss:.4f} |" in lines[5]
    assert lines[5].endswith(f"| {gelu.val_loss - 4.75:+.4f} |")
    assert len(lines) == 2 + 3 + len(measured.losses)
    fig = ch03.loss_curve_figure(measured.curves, 0.5, ngram)
    assert [s.y0 for s in fig.layout.shapes] == [6.5, 4.75]
    assert "bigram (Kneser-Ney): 4.750" in [a.text for a in fig.layout.annotations]
    assert len(fig.data) == 2 * len(measured.curves)
    best = min(measured.losses.values(), key=lambda x: x.val_loss)
    glued = ch03.ngram_glue(dataclasses.replace(measured, ngram=ngram, ngram_reason=None))
    assert glued["ngram_bigram_kn"] == 4.75 and glued["ngram_unigram"] == 6.5
    assert glued["ngram_best_minus_bigram"] == pytest.approx(best.val_loss - 4.75)
    assert glued["ngram_reason"] == ""


def test_no_ln_markdown_states_the_power(measured):
    gap = s5.no_ln_test([4.6, 4.3], [4.3, 4.34])
    text = ch03.no_ln_markdown(measured.no_ln.__class__(**{**vars(measured.no_ln),
                                                          "gap_test": gap}))
    assert "2 seeds" in text and "not testable at this scale" in text
    assert "matched seed pairs" in text


# --- glued numbers -------------------------------------------------------------------------------
def test_glue_values(measured):
    values = ch03.glue_values(measured)
    variants = ["1L_gelu", "1L_solu_ln", "2L_gelu", "2L_solu_ln", "4L_gelu", "4L_solu_ln",
                "1L_gelu_ln", "1L_solu", "1L_solu_ln_b4"]
    assert set(values) == ({f"val_loss_{v}" for v in variants}
                           | {f"loss_delta_{d}L" for d in (1, 2, 4)}
                           | {f"multiplier_{d}L" for d in (1, 2, 4)}
                           | {"fit", "fit_reason", "depth_check", "n_seeds_pair", "n_models",
                              "tokens_per_model", "n_testable_evals", "n_evals",
                              "parity_sd", "parity_detectable", "parity_seeds_needed",
                              "no_ln_interest", "zoo_composition"}
                           | set(ch03.ngram_glue(measured)))
    assert all(isinstance(v, (str, int, float)) for v in values.values())
    assert all(k.replace("_", "").isalnum() for k in values)  # valid glue keys
    assert values["n_models"] == 11 and values["tokens_per_model"] == 120 * 512
    assert values["n_seeds_pair"] == 2
    assert (values["n_testable_evals"], values["n_evals"]) == (1, 2)
    assert values["multiplier_1L"] == str(measured.multiplier[1])
    assert values["parity_sd"] == measured.parity.sd
    assert values["parity_seeds_needed"] == "2"  # the synthetic seeds agree closely
    assert values["no_ln_interest"] == pytest.approx(s5.NO_LN_INTEREST)


# --- gathering the inputs --------------------------------------------------------------------------
def test_gather_gives_what_measure_takes(synthetic_runs, monkeypatch, tmp_path):
    ctx = book_context(scale="tiny", runs_dir=tmp_path, progress=False)
    monkeypatch.setattr(ctx, "runs", lambda names=None: {n: synthetic_runs[n] for n in names})
    monkeypatch.setattr(s5, "speed_device", lambda: "cpu")
    inputs = ch03.gather(ctx, speed_rounds=3)
    assert inputs == {"runs": synthetic_runs, "speed": None, "device": "cpu"}
    assert s5.measure(**inputs).device == "cpu"


def test_measure_speed_rejects_bad_arguments():
    depths = (1, 2, 4)
    with pytest.raises(ValueError, match="depth 3"):
        s5.measure_speed("tiny", depths, depth=3)
    with pytest.raises(ValueError, match="speed_rounds"):
        s5.measure_speed("tiny", depths, rounds=0)
    with pytest.raises(ValueError, match="device"):
        s5.measure_speed("tiny", depths, device="tpu")


@pytest.mark.slow
def test_measure_speed_times_both_models():
    """One interleaved round at the tiny shapes (random init: nothing is trained first)."""
    speed = s5.measure_speed("tiny", (1, 2, 4), rounds=1, device="cpu")
    assert (speed.scale, speed.depth, speed.device) == ("tiny", 1, "cpu")
    assert speed.step.n_samples == 1 and speed.step.ratio > 0
    assert "| training step, 1L tiny shapes |" in ch03.speed_markdown(speed)


# --- the page ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_page_measures_once_and_shows_each_claim(notebook):
    code = [c.source for c in _code(notebook)]
    text = "\n".join(code)
    assert text.count("s5.measure(") == 1 and text.count("ch03.gather(") == 1
    assert "perf." not in text and "performance_measurements" not in text
    for spec in s5.CLAIMS:
        name = next(k for k, v in vars(s5).items() if v is spec)
        assert f"show_claim(s5.{name})" in code, spec.id
    # the definitions behind the numbers, as the package runs them
    for shown in ("s5.measure", "s5.fit_baseline, s5.size_multiplier", "s5.matched_seeds",
                  "s5.loss_equivalence, s5.deeper_parity", "s5.seeds_needed, s5.power_text",
                  "s5.no_ln_test", "s5.solu_without_ln",
                  "s5.per_source_deltas", "s5.multiplier_curves", "s5.measure_speed"):
        assert any(c.startswith("show_source(") and shown in c for c in code), shown


def test_the_page_glues_in_one_hidden_cell(notebook, measured):
    gluing = [c for c in _code(notebook) if "glue(" in c.source or "glue_claims(" in c.source]
    assert len(gluing) == 1 and "remove-cell" in gluing[0].metadata.get("tags", [])
    assert "ch03.glue_values(m)" in gluing[0].source
    # every glued name the prose quotes is glued
    prose = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    quoted = set(re.findall(r"\{glue(?::\w+)?\}`([\w]+)", prose))
    claims = {f"{kind}_{spec.id}" for spec in s5.CLAIMS for kind in ("claim", "verdict")}
    assert quoted <= set(ch03.glue_values(measured)) | claims, \
        quoted - set(ch03.glue_values(measured)) - claims
    # the opening line is a sentence, not a claim's measurement string pasted in
    found = next(line for line in notebook.cells[0].source.split("\n\n")
                 if line.startswith("**Found in this build.**"))
    assert "claim_" not in found and "verdict_loss_parity" in found


def test_figures_and_tables_hide_their_code(notebook):
    for cell in _code(notebook):
        if ".show()" in cell.source or "_markdown(" in cell.source:
            assert "hide-input" in cell.metadata.get("tags", []), cell.source
