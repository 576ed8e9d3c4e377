"""Chapter 4's page: the Figure 4 analogue and its tables, the null controls' tables and
sentences, the blinded sessions found under the runs directory, the glued values, and the
notebook itself (each claim's rule shown, one glue cell, one table per result)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from solu_repro import paths
from solu_repro.book import ParameterError, book_context
from solu_repro.book import ch04_interpretability as ch04
from solu_repro.book import ch04_training as ch04t
from solu_repro.paper import s6_2_training as tr
from solu_repro.interp.blind import BlindSession, ModelShape
from solu_repro.interp.score import NeuronScore, NeuronScores
from solu_repro.interp.stats import proportion
from solu_repro.paper import s6_interpretability as s6
from fakes import fake, nulls

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04-interpretability-quantitative.ipynb"




@pytest.fixture
def results():
    return {r.name: r for r in [fake("1L-gelu", 35, 100, 10), fake("1L-solu_ln", 60, 100, 30),
                                fake("2L-gelu", 30, 200), fake("2L-solu_ln", 40, 200),
                                fake("1L-gelu_ln", 50, 100)]}




# --- figures -------------------------------------------------------------------------------------
def test_figure4_has_one_trace_per_activation_and_view_without_census_bars(results):
    fig = ch04.figure4(results)
    assert len(fig.data) == 2 * 3  # gelu, solu_ln, gelu_ln in both panels
    solu = [t for t in fig.data if t.legendgroup == "solu_ln"][0]
    assert list(solu.x) == [1, 2]
    p = results["1L-solu_ln"].top
    assert solu.y[0] == pytest.approx(p.fraction)
    # every neuron is scored: a census, so no binomial error bars
    assert solu.error_y.array is None


def test_figure4_has_one_legend_below_the_panels(results):
    fig = ch04.add_nulls(ch04.figure4(results), nulls())
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert len(shown) == len(set(shown)) == 5  # each activation and each null once
    # the two panels share the width between them: no legend column on the right
    left, right = fig.layout.xaxis.domain, fig.layout.xaxis2.domain
    assert left[0] == 0 and right[1] == 1 and right[0] - left[1] < 0.1


def test_null_markers_in_both_panels(results):
    fig = ch04.add_nulls(ch04.figure4({n: nc.basis for n, nc in nulls().items()}), nulls())
    hollow = [t for t in fig.data if t.marker.symbol == "circle-open"]
    assert len(hollow) == 4  # two models x two panels
    assert {t.y[0] for t in hollow} == {0.50, 0.33, 0.05, 0.04}
    assert {t.name for t in hollow} == {"SoLU + LN, rotated basis", "GELU baseline, rotated basis"}


def test_layer_figure_draws_the_multi_layer_models():
    r = s6.ModelInterpretability("2L-solu_ln", "solu_ln", 2, proportion(3, 10),
                                 proportion(1, 10), [{"layer": 0, "fraction": 0.2,
                                                      "spectrum_fraction": 0.1},
                                                     {"layer": 1, "fraction": 0.4,
                                                      "spectrum_fraction": 0.1}])
    fig = ch04.layer_figure({"1L-gelu": fake("1L-gelu", 1, 10), "2L-solu_ln": r})
    assert [t.name for t in fig.data] == ["2L SoLU + LN"] and list(fig.data[0].y) == [0.2, 0.4]


# --- tables and sentences --------------------------------------------------------------------
def test_per_model_and_comparison_tables(results):
    table = ch04.results_markdown(results)
    assert "| 1L-solu_ln | 100 | 60.0% (60/100) |" in table
    assert table.count("\n") == 1 + len(results) and "CI" not in table
    comp = ch04.comparison_markdown(results)
    assert "| 1L-solu_ln | 1L-gelu | +25.0% |" in comp and "| 1.71x |" in comp
    zero = {r.name: r for r in [fake("1L-gelu", 0, 50), fake("1L-solu_ln", 5, 50)]}
    assert "| n/a |" in ch04.comparison_markdown(zero)


def test_null_tables(results):
    ns = nulls()
    top = ch04.nulls_markdown(ns, "top")
    assert "| 1L-solu_ln | 60.0% (60/100) |" in top and "| n/a |" in top  # no readout of SoLU
    assert "SoLU readout of GELU" in top and "+10.0%" in top
    rel = {v: s6.relative_difference(ns, "1L-solu_ln", "1L-gelu", v) for v in s6.VIEWS}
    assert ch04.relative_markdown(rel).count("\n") == 3


def test_distinct_explanations_and_the_null_verdict():
    ns = nulls()
    assert "| 1L-solu_ln | 0 in 60 |" in ch04.distinct_markdown(ns)
    verdict = ch04.null_verdict(ns, "spectrum")
    assert "beats its rotation for 1L-solu_ln (+25.0 points)" in verdict
    ns["1L-gelu"].nulls["rotated"] = fake("1L-gelu", 70, 100, 4)
    top = ch04.null_verdict(ns, "top")
    assert "more interpretable than the neuron basis for 1L-gelu" in top
    assert "cannot be credited" in top


def test_seed_tables():
    m = s6.InterpMeasurements(
        results={}, solu_vs_gelu={}, solu_vs_gelu_spectrum={}, ablation=None,
        ablation_vs_solu=None, blind=[],
        seed_fractions={"top": {"1L-gelu": {0: 0.3, 1: 0.32}, "1L-solu_ln": {0: 0.5, 1: 0.55},
                                "1L-solu": {0: 0.4}}},
        rotated_gains={"top": {"1L-gelu": {0: 0.05, 1: 0.04}, "1L-solu_ln": {0: 0.2, 1: 0.25}}},
        strict_fractions={"1L-gelu": {0: 0.2, 1: 0.2}, "1L-solu_ln": {0: 0.4, 1: 0.45}})
    seeds = ch04.seed_table_markdown(m)
    assert "| 1L SoLU + LN | 50.0% | 55.0% | 52.5% |" in seeds
    assert "| 1L SoLU without LN | 40.0% |  | 40.0% |" in seeds
    diffs = ch04.seed_differences_markdown(m)
    assert "| SoLU-LN minus GELU | top-20 view (paper §6.1 rule) | +21.5 [" in diffs
    assert "coverage 90% and lift 5" not in diffs and "minus rotation" in diffs  # no longer scored
    assert "GELU-LN" not in diffs  # no LN-only ablation in these measurements


def _training():
    """Made-up points of the pair over training (two seeds, four steps)."""
    pts = []
    for seed in (0, 1):
        for k, tokens in enumerate((2e5, 1.4e6, 2.9e6, 5.7e6)):
            for act, fair in (("solu_ln", 0.2 + 0.01 * k + 0.01 * seed), ("gelu", 0.1)):
                pts.append(tr.Point(f"1L-{act}" + (f"-s{seed}" if seed else ""), act, seed,
                                    50 * (k + 1), int(tokens), 5.0 - k, fair, 0.1, 0.5, 0.4,
                                    0.3, 0.2))
    return tr.measure(pts)


def test_glue_values_name_every_number_the_text_quotes():
    inputs = _measured_inputs()
    m = s6.measure(**inputs)
    values = ch04.glue_values(m)
    text = "".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]
                   if c["cell_type"] == "markdown")
    quoted = set(re.findall(r"\{glue:text\}`([a-z0-9_]+)", text))
    claims = {f"{kind}_{c.id}" for c in s6.CLAIMS for kind in ("claim", "verdict")}
    values_training = ch04t.glue_values(_training())  # the section over training
    assert quoted - claims <= set(values) | set(values_training), \
        quoted - claims - set(values) - set(values_training)
    assert values["solu_1l"] == pytest.approx(50.0) and values["n_blind_sessions"] == 0
    assert values["rot_top_solu_ln"] == pytest.approx(20.0)


def fake_scores(hits: int, n: int = 100) -> NeuronScores:
    """``n`` neurons of one layer, the first ``hits`` interpretable (over the full spectrum
    too)."""
    return NeuronScores({}, [NeuronScore(
        layer=0, neuron=i, explanation=f"token:{i}" if i < hits else None, text="", role=None,
        coverage=0.9, base_rate=0.01, lift=10.0, interpretable=i < hits, dead=False,
        precision=0.9, recall=0.9, correlation=0.5, n_holds=1, n_fires=20) for i in range(n)])


def _measured_inputs():
    """A 1- and 2-layer zoo, two seeds of the 1-layer pair, its controls and stricter judge."""
    hits = {"1L-gelu": 30, "1L-solu_ln": 50, "2L-gelu": 20, "2L-solu_ln": 40,
            "1L-gelu-s1": 34, "1L-solu_ln-s1": 58}
    pair = ("1L-solu_ln", "1L-solu_ln-s1", "1L-gelu", "1L-gelu-s1")
    return dict(scores={n: fake_scores(h) for n, h in hits.items()},
                strict_scores={n: fake_scores(hits[n] // 2) for n in pair},
                control_scores={n: {"rotated": fake_scores(hits[n] - (20 if "solu" in n else 5))}
                                for n in pair})


# --- blinded sessions ----------------------------------------------------------------------------
@pytest.mark.slow
def test_blinded_sessions_are_found_unblinded_and_compared_with_the_judge(tmp_path):
    ctx = book_context("tiny", runs_dir=tmp_path, progress=False)
    root = ch04.blind_root(ctx)
    shapes = {name: ModelShape(1, 128) for name in ("1L-gelu", "1L-solu_ln")}
    BlindSession.create(root / "empty", shapes, n_per_model=3, seed=1)   # no judgments yet
    session = BlindSession.create(root / "judged", shapes, n_per_model=3, seed=1)
    items = []
    while (item := session.next_item("ann")) is not None:
        session.record(item, "interpretable" if len(items) % 2 else "not_interpretable", "ann")
        items.append(item)
    found = ch04.blind_sessions(ctx)
    assert [s.path.name for s in found] == ["judged"]
    summary = found[0]
    assert summary.n_judgments == len(items)
    assert {m.model for m in summary.report.models} == set(shapes)
    assert summary.agreement["n"] == len(items)
    assert "blind" in ch04.blind_command(ctx) and str(root) in ch04.blind_command(ctx)
    page = ch04.blind_markdown(ctx, found)
    assert "**Session `judged`**" in page and "Cohen's kappa" in page
    assert "No judged sessions" in ch04.blind_markdown(ctx, [])


def test_blind_command_shows_paths_relative_to_the_repository(tmp_path, monkeypatch):
    repo = tmp_path / "my repo"
    monkeypatch.setattr(paths, "project_root", lambda: repo)
    inside = book_context("tiny", runs_dir=repo / "runs", progress=False)
    command = ch04.blind_command(inside, n=7)
    assert command.endswith("--n 7 --runs-dir runs --session runs/tiny/blind/my-session --seed 0")
    assert "--session runs/tiny/blind/judge-2" in ch04.blind_command(inside, "judge-2")
    assert str(tmp_path) not in command          # the builder's paths stay out of the book
    outside = book_context("tiny", runs_dir=tmp_path / "other runs", progress=False)
    assert f"--runs-dir '{tmp_path / 'other runs'}'" in ch04.blind_command(outside)  # quoted


def test_bad_parameters_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match="scale='huge'.*tiny"):
        book_context("huge")
    with pytest.raises(ParameterError, match="seed"):
        book_context("tiny", seed=-1)
    with pytest.raises(ParameterError, match="interactive"):
        book_context("tiny", interactive="yes")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="runs_dir"):
        book_context("tiny", runs_dir=tmp_path / "file")


# --- the page --------------------------------------------------------------------------------
def _code_cells():
    return [("".join(c["source"]), c.get("metadata", {}).get("tags", []))
            for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_page_shows_every_claims_rule_and_measures_once():
    cells = _code_cells()
    source = "\n".join(s for s, _ in cells)
    shown = set(re.findall(r"s6\.([A-Z0-9_]+)", " ".join(
        s for s, _ in cells if "show_claim(" in s)))
    assert {spec.id.upper() for spec in s6.CLAIMS} <= shown
    assert source.count("s6.measure(") == 1 and source.count("ch04.gather(") == 1
    assert source.count("registry.decide(") == 1
    glue_cells = [s for s, tags in cells if "glue(" in s]
    assert len(glue_cells) == 2 and all("remove-cell" in dict(cells)[c] for c in glue_cells)
    assert "ch04.glue_values(m)" in glue_cells[0] and "record.glue_claims(" in glue_cells[0]
    assert "ch04t.glue_values(training)" in glue_cells[1]
    # every figure's code is hidden
    assert all("hide-input" in tags or "remove-cell" in tags for s, tags in cells
               if ".show()" in s)


def test_the_per_model_table_is_shown_once():
    source = "\n".join(s for s, _ in _code_cells())
    assert source.count("ch04.results_markdown(results)") == 1
    assert "format_table" not in source and "text_table" not in source


# --- the book's precompute reads what the chapter reads --------------------------------------
@pytest.mark.slow
def test_precompute_warms_every_cache_chapter_4_reads(tiny_zoo):
    """The book scores the zoo in parallel first; chapter 4 then makes no new cache entry."""
    from solu_repro.book.precompute import precompute, tasks
    from solu_repro.interp.instruments import NULLS

    ctx = book_context(scale="tiny", runs_dir=tiny_zoo, progress=False)
    todo = tasks(ctx)
    assert set(todo) == set(ctx.all_names)
    assert ("control", "rotated") in todo["1L-gelu-s1"] and ("control", "random_init") in \
        todo["1L-gelu"]
    spent = precompute(ctx, workers=2, log=lambda _: None)
    assert set(spent) == set(ctx.all_names)
    before = {p: p.stat().st_mtime_ns for p in (tiny_zoo / "tiny").rglob("*")
              if p.is_file() and p.suffix in (".json", ".safetensors")}
    inputs = ch04.gather(ctx, with_blind=False)
    after = {p: p.stat().st_mtime_ns for p in (tiny_zoo / "tiny").rglob("*")
             if p.is_file() and p.suffix in (".json", ".safetensors")}
    assert after == before
    # what gather fetched is what precompute was told to score, no more
    asked = {(n, "scores") for n in inputs["scores"]} | \
        {(n, "strict") for n in inputs["strict_scores"]} | \
        {(n, c) for n, cs in inputs["control_scores"].items() for c in cs}
    listed = {(n, "scores" if arg is None else "strict") if kind == "scores" else (n, arg)
              for n, items in todo.items() for kind, arg in items
              if kind in ("scores", "control")}
    one = [n for ns in ch04.one_layer_seeds(ctx).values() for n in ns]
    # the instruments judge the rotation of every 1-layer seed, beyond the chapter's controls
    assert asked | {(n, "rotated") for n in one} == listed
    # the untrained model is probed for every seed, judged for seed 0 (the chapter's controls)
    assert all(inputs["instruments"][n].bases["random_init"].probe_f1 for n in one)
    deeper = [n for n in ctx.names if n not in one]
    assert set(inputs["instruments"]) == set(one) | set(deeper)
    assert all(set(inputs["instruments"][n].bases) == {"basis", *NULLS} for n in one)
    assert all(set(inputs["instruments"][n].bases) == {"basis"} for n in deeper)
    assert inputs["calibration"] is not None
    m = s6.measure(**inputs)
    assert set(m.results) == set(ctx.names)
    assert precompute(ctx, workers=1) == {}  # one worker: the notebooks score as they go


# --- the instruments a rotation cannot fool (issue 20) -------------------------------------------
def _instrumented():
    """Measurements with two seeds of the 1-layer pair under every instrument, and a planted
    test the top-20 view fails."""
    from solu_repro.interp.calibration import InstrumentCheck, RotationTest
    from solu_repro.interp.instruments import JudgeAgreement

    def basis(v, p):
        return s6.BasisInstruments(top=0.5, spectrum=0.2, features_exposed=v, exposed_share=v,
                                   strict_share=v / 2, n_features=100, explained_variance=v,
                                   distinct=10, probe_f1={"string": p, "keyword": p / 2},
                                   full_probe_f1={"string": 0.9, "keyword": 0.9},
                                   dedicated=("string",) if p > 0.8 else (),
                                   sparse_f1={1: p / 2, 16: p})
    table = {"1L-gelu": [(0.20, 0.15, 0.5), (0.22, 0.16, 0.4)],
             "1L-solu_ln": [(0.40, 0.15, 0.9), (0.45, 0.14, 0.85)]}
    instruments = {}
    for variant, seeds in table.items():
        for i, (v, r, p) in enumerate(seeds):
            name = variant if i == 0 else f"{variant}-s{i}"
            agree = JudgeAgreement(40, {(0, 3): "numeral"}, [(0, 3)], ["numeral", "string"],
                                   ["numeral"], {"numeral": 0.7, "string": 0.6})
            instruments[name] = s6.ModelInstruments(
                name, {"basis": basis(v, p), "rotated": basis(r, 0.3),
                       "random_init": basis(0.02, 0.1)}, agree)
    test = RotationTest({"top": InstrumentCheck("top", 0.98, 0.98),
                         "features_exposed": InstrumentCheck("features_exposed", 0.9, 0.09),
                         "probe_f1": InstrumentCheck("probe_f1", 1.0, 0.39)})
    return s6.measure(**_measured_inputs(), instruments=instruments, calibration=test)


def test_the_planted_test_and_the_instruments_are_tabled():
    m = _instrumented()
    assert m.instrument == "features_exposed"
    planted = ch04.rotation_test_markdown(m.calibration)
    assert "| judge, top-20 view (fraction of neurons interpretable) | 0.98 | 0.98 | 1.00 | no |" \
        in planted
    assert "| 0.90 | 0.09 | 0.10 | yes |" in planted
    sentence = ch04.instrument_sentence(m)
    assert sentence == ("On planted heavy-tailed detectors, a random rotation keeps too much "
                        "of what the judge's top-20 view (100%) measures; it keeps at most half "
                        "for the rotation-fair score (features exposed) (10%) and sparse "
                        "probing (39%). The judge-based claims are decided on the "
                        "rotation-fair score (features exposed).")
    side = ch04.instruments_markdown(m)
    assert "| 1L SoLU + LN (seed 1) | 0.50 / 0.50 / 0.50 | 0.45 / 0.14 / 0.02 | " \
        "0.64 / 0.22 / 0.08 | 1 / 0 / 0 |" in side
    gains = ch04.instrument_gains_markdown(m)
    assert "| 1L SoLU + LN | +0.280 [" in gains and "(2 seeds)" in gains
    seeds = ch04.judged_seed_markdown(m)
    assert "| 1L SoLU + LN | 0.400 | 0.450 | 0.425 |" in seeds
    diffs = ch04.judged_differences_markdown(m)
    assert "| SoLU-LN minus GELU | +21.5 [" in diffs and "stricter (full-spectrum) bar" in diffs
    sparse = ch04.sparse_probe_markdown(m)
    assert "| model | basis | seeds | best single | k = 1 | k = 16 | full probe |" in sparse
    assert "| 1L SoLU + LN | rotated basis | 2 | 0.225 | 0.150 | 0.300 | 0.900 |" in sparse
    agree = ch04.agreement_markdown(m)
    assert "| 1L GELU baseline | 40 | 1 | 1 | 1.00 | 2 | 1 | 0.50 | numeral |" in agree
    values = ch04.glue_values(m)
    assert values["judge_precision"] == 1.0 and values["judge_recall"] == 0.5
    assert (values["judge_named"], values["judge_read"], values["judge_found"]) == (4, 8, 4)
    assert values["calib_top_rotated"] == 0.98 and values["n_labels_probed"] == 2


def test_gap_figure_has_a_bar_per_activation_and_a_dot_per_seed():
    m = _instrumented()
    fig = ch04.gap_figure(m)
    bars = [t for t in fig.data if t.type == "bar"]
    dots = [t for t in fig.data if t.type == "scatter"]
    assert [t.name for t in bars] == ["GELU baseline (mean of 2 seeds)",
                                      "SoLU + LN (mean of 2 seeds)"]  # one per activation
    assert len(dots) == 2
    solu = next(t for t in bars if "SoLU" in t.name)
    assert list(solu.x) == ["string", "keyword"]
    assert list(solu.y) == pytest.approx([(0.6 + 0.55) / 2, (0.3 + 0.275) / 2])  # minus rotated
    assert len(dots[1].y) == 4  # 2 labels x 2 seeds
