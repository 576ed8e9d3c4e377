"""Chapter 2's page (``solu_repro.book.ch02_design`` and notebooks/02-solu-design.ipynb): the
text nbval pins, the figures, tables and widget, the glued numbers and the notebook itself."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from solu_repro.book import ch02_design as ch02
from solu_repro.book import record
from solu_repro.paper import registry
from solu_repro.paper import s4_design as s4

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02-solu-design.ipynb"


@pytest.fixture(scope="module")
def m() -> s4.DesignMeasurements:
    return s4.measure(d_mlp=128, eps_d_mlps=(64, 256))


def _row(act: str, seed: int, share: float, trained: bool = True,
         readout: bool = False) -> s4.SparsityRow:
    return s4.SparsityRow(model=f"1L-{act}" + (f"-s{seed}" if seed else ""), act_fn=act,
                          seed=seed, trained=trained, positions=100, top_share_median=share,
                          kurtosis_median=1.0, top_neurons_effective=10.0, readout=readout)


def sparsity(solu_ln: list[float], gelu: list[float]) -> s4.TrainedSparsity:
    """Matched seeds; GELU's readout at 0.3 (between GELU's own share and SoLU-LN's)."""
    rows = [r for seed, (s, g) in enumerate(zip(solu_ln, gelu))
            for r in (_row("solu_ln", seed, s), _row("gelu", seed, g),
                      _row("solu_ln", seed, 0.05, False), _row("gelu", seed, 0.05, False),
                      _row("gelu", seed, 0.3, readout=True))]
    return s4.trained_sparsity(rows, d_mlp=128, n_rows=16)


# --- what the notebook prints (pinned) -------------------------------------------------------

def test_worked_examples_text_is_rounded_and_flags_failures(m):
    text = ch02.worked_examples_text(m.examples)
    assert ("SoLU(4,1,4,1): paper ≈ (2.00, 0.00, 2.00, 0.00), "
            "computed (1.91, 0.02, 1.91, 0.02)") in text
    assert "OUTSIDE" not in text and text == ch02.worked_examples_text()
    assert "OUTSIDE" in ch02.worked_examples_text(s4.worked_examples(lambda x: x))


def test_gelu_sigmoid_text(m):
    assert ch02.gelu_sigmoid_text(m.approximation) == \
        "max |GELU(x) - sigmoid(1.7x)*x| over [-10, 10]: 0.021 at |x| = 2.27"


def test_sparsity_checks():
    sp = sparsity([0.5, 0.6], [0.1, 0.1])
    assert all(c.passed for c in ch02.sparsity_checks(sp, expected_seeds=2))
    assert not ch02.sparsity_checks(sp, expected_seeds=3)[0].passed
    bad = sparsity([0.5, 0.6], [0.001, 0.1])  # below 1/128: impossible for a real model
    assert not ch02.sparsity_checks(bad, expected_seeds=2)[1].passed
    assert not ch02.sparsity_checks(None, expected_seeds=2)[0].passed


# --- figures, tables and the explorer ---------------------------------------------------------

def test_figures_have_their_traces(m):
    assert len(ch02.activations_figure().data) == 3 * 4
    lat = ch02.lateral_inhibition_figure(n=4, others=1.0)
    other = [t for t in lat.data if t.name.startswith("SoLU, each other")][0]
    assert other.y[-1] < 0.01 < other.y[0]  # suppressed as the first coordinate grows
    gelu_other = [t for t in lat.data if t.name == "GELU, each other coordinate"][0]
    assert np.ptp(gelu_other.y) == 0  # GELU: no inhibition
    assert len(ch02.superlinearity_figure(m.superlinearity, n=m.n_coords).data) == 5
    assert len(ch02.superlinearity_figure().data) == 5
    assert len(ch02.gelu_approximation_figure().data) == 3
    blk = ch02.blocked_inhibition_figure(n_per_block=4, blocks=2)
    assert np.ptp(blk.data[2].y) == 0 and blk.data[1].y[-1] < 0.01
    assert len(ch02.blocked_inhibition_figure(n_per_block=4, blocks=1).data) == 2
    assert len(ch02.explorer_figure([4, 1, 4, 1], blocks=2).data) == 5
    assert len(ch02.ln_eps_figure(m.eps_effect).data) == 3  # one line per pre-activation std


def test_top_share_figure_draws_every_model_and_the_even_spread():
    import torch

    from solu_repro.model import ModelConfig, Transformer

    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=50,
                      n_ctx=12, act_fn="solu_ln")
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    st = s4.mid_stats_from_model(Transformer(cfg), tokens, name="1L-solu_ln")
    assert len(ch02.top_share_figure([st]).data) == 2
    assert len(ch02.ln_eps_figure([], [st]).data) == 1
    gelu = Transformer(cfg.replace(act_fn="gelu") if hasattr(cfg, "replace") else
                       ModelConfig(**{**cfg.to_dict(), "act_fn": "gelu"}))
    readout = s4.readout_stats_from_model(gelu, tokens, name="1L-gelu")
    fig = ch02.top_share_figure([st, readout])
    assert len(fig.data) == 3 and "x·softmax(x)" in fig.data[1].name
    assert fig.data[1].line.dash == "dashdot"


def test_explorer_updates_when_a_slider_moves():
    box = ch02.explorer((4.0, 1.0, 4.0, 1.0))
    assert len(box.sliders) == 4 and list(box.blocks.options) == [1, 2, 4]
    box.sliders[0].value = 6.0
    box.blocks.value = 2  # no exception on either update


def test_tables(m):
    header = ch02.scale_invariance_table(m).data.splitlines()[0]
    assert header == "| alpha | std | max_diff_no_eps | max_diff_eps |"
    assert len(ch02.scale_invariance_table(m).data.splitlines()) == 2 + len(m.scale_invariance)
    assert len(ch02.eps_effect_table(m).data.splitlines()) == 2 + 3 * 3  # 64, 128, 256
    assert ch02.blocked_table(m).data.splitlines()[2].startswith("| 8 | 2 |")
    assert "Not measured" in ch02.mid_summary_table(m).data


# --- the book's context and the glued numbers ----------------------------------------------

class FakeCtx:
    """The names a tiny zoo's context gives; runs are their names (nothing is trained)."""

    scale = "tiny"
    depths = (1, 2)
    names = ["1L-gelu", "1L-solu_ln", "2L-gelu", "2L-solu_ln", "1L-solu", "1L-gelu_ln",
             "1L-solu_ln_b4"]

    def __init__(self):
        self.fetched = []

    def seeds(self, name):
        return [name, name + "-s1"]

    def run(self, name):
        self.fetched.append(name)
        return name


def test_gather_gives_what_measure_takes():
    ctx = FakeCtx()
    inputs = ch02.gather(ctx, trained_rows=8)
    assert inputs["d_mlp"] == 128 and inputs["trained_rows"] == 8
    assert inputs["runs"] == ["1L-gelu", "1L-solu_ln", "1L-solu", "1L-gelu_ln", "1L-solu_ln_b4",
                              "1L-solu_ln-s1", "1L-gelu-s1"]
    skipped = FakeCtx()
    assert ch02.gather(skipped, trained_rows=0) == {"d_mlp": 128, "runs": (), "trained_rows": 0}
    assert skipped.fetched == []  # trained_rows = 0 trains nothing


def test_glue_values(m):
    values = ch02.glue_values(m, scale="tiny")
    assert values["scale"] == "tiny" and values["eps"] == s4.LN_EPS
    assert values["dev_4000"] == m.examples[1].max_abs_deviation
    assert values["identity64"] == m.ln_solu_identity_max_diff
    assert values["spread_slope"] == pytest.approx(1 / m.n_coords)
    assert values["scale_inv_alpha_small"] == 1e-4
    assert values["kurtosis_difference"] == "not measured" and values["sparsity_d_mlp"] == 0
    assert all(isinstance(v, (int, float, str)) for v in values.values())
    measured = ch02.glue_values(
        dataclasses.replace(m, sparsity=sparsity([0.5, 0.6], [0.1, 0.1])), "cpu")
    assert measured["kurtosis_difference"].startswith("+0.0 [") and measured["sparsity_d_mlp"] == 128
    assert measured["top_share_readout"] == pytest.approx(0.3)
    assert measured["sparsity_test"].startswith("+0.") and "2 seeds" in measured["sparsity_test"]
    assert measured["sparsity_interest"] == pytest.approx(np.log(1.25))


def test_claims_are_recorded_and_loaded(tmp_path, m):
    class Ctx:
        scale = "tiny"
        runs_dir = tmp_path

    scored = registry.decide("02-solu-design",
                             dataclasses.replace(m, sparsity=sparsity([0.5, 0.6], [0.1, 0.1])))
    record.save(Ctx, "02-solu-design", scored)
    loaded = record.load(Ctx, ["02-solu-design"])
    assert [c.id for c in loaded] == [c.id for c in scored]
    assert loaded[3].values["difference"]["values"] == pytest.approx([0.4, 0.5])
    assert loaded[3].test.values == pytest.approx(np.log([0.5 / 0.3, 0.6 / 0.3]))
    assert loaded[3].test.null == s4.SPARSITY_NULL


# --- the page --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def _code(nb) -> list[tuple[str, list[str]]]:
    return [(c.source, c.metadata.get("tags", [])) for c in nb.cells if c.cell_type == "code"]


def test_the_page_measures_once_and_shows_each_claim(notebook):
    code = _code(notebook)
    visible = [s for s, tags in code if "remove-cell" not in tags]
    text = "\n".join(s for s, _ in code)
    assert text.count("s4.measure(") == 1 and text.count("ch02.gather(") == 1
    assert any("s4.measure(**ch02.gather(ctx" in s for s in visible)  # the one call, in view
    assert "design." not in text and "design_measurements" not in text
    for spec in s4.CLAIMS:
        name = next(k for k, v in vars(s4).items() if v is spec)
        assert any(f"s4.{name}" in s and s.startswith("show_claim(") for s in visible), spec.id
    for shown in ("s4.worked_examples", "s4.gelu_sigmoid_deviation", "s4.ln_scale_invariance",
                  "s4.ln_solu_identity", "s4.top_neuron_share", "s4.trained_sparsity"):
        assert any(s.startswith("show_source(") and shown in s for s in visible), shown


def test_the_page_glues_in_one_hidden_cell(notebook, m):
    gluing = [(s, tags) for s, tags in _code(notebook) if "glue(" in s or "glue_claims(" in s]
    assert len(gluing) == 1 and "remove-cell" in gluing[0][1]
    assert "ch02.glue_values(m, scale=ctx.scale)" in gluing[0][0]
    prose = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    quoted = set(re.findall(r"\{glue(?::\w+)?\}`(\w+)", prose))
    claims = {f"{kind}_{spec.id}" for spec in s4.CLAIMS for kind in ("claim", "verdict")}
    glued = set(ch02.glue_values(m, scale="tiny"))
    assert quoted <= glued | claims, quoted - glued - claims
    # the opening line is a sentence, not a claim's measurement string pasted in
    found = next(p for p in notebook.cells[0].source.split("\n\n")
                 if p.startswith("**Found in this build.**"))
    assert "claim_" not in found and "verdict_trained_sparsity" in found


def test_figures_and_tables_hide_their_code(notebook):
    for source, tags in _code(notebook):
        if ".show()" in source or "_table(" in source:
            assert "hide-input" in tags, source


def test_the_pinned_cells_print_what_they_printed(notebook, m):
    pinned = [c for c in notebook.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(pinned) == 2
    first = "".join(o["text"] for o in pinned[0].outputs)
    assert first == ch02.worked_examples_text(m.examples) + "\n" + \
        ch02.gelu_sigmoid_text(m.approximation) + "\n"
