"""Chapter 4's analysis: per-model fractions, comparisons, the Figure 4 analogue, and the
aggregation of blinded sessions found under the runs directory."""

from __future__ import annotations

import math

import pytest

from solu_repro import paths
from solu_repro.book import ParameterError, book_context
from solu_repro.book import interp_quant as iq
from solu_repro.interp.blind import BlindSession, ModelShape
from solu_repro.interp.stats import difference_interval, proportion


def fake(name: str, hits: int, n: int, spectrum_hits: int = 0) -> iq.ModelInterpretability:
    depth, act = int(name.split("L-")[0]), name.split("-", 1)[1]
    return iq.ModelInterpretability(name, act, depth, proportion(hits, n),
                                    proportion(spectrum_hits, n), [])


@pytest.fixture
def results():
    return {r.name: r for r in [fake("1L-gelu", 35, 100, 10), fake("1L-solu_ln", 60, 100, 30),
                                fake("2L-gelu", 30, 200), fake("2L-solu_ln", 40, 200),
                                fake("1L-gelu_ln", 50, 100)]}


def test_comparisons_use_the_same_depth_baseline_and_newcombe(results):
    c = iq.compare(results, "1L-solu_ln")
    assert c.baseline == "1L-gelu"
    assert (c.diff, c.lo, c.hi) == pytest.approx(difference_interval(60, 100, 35, 100))
    assert c.ratio == pytest.approx(60 / 35) and c.significant
    names = [c.name for c in iq.comparisons(results)]
    assert names == ["1L-solu_ln", "2L-solu_ln", "1L-gelu_ln"]
    assert not iq.compare(results, "2L-solu_ln").significant or \
        iq.compare(results, "2L-solu_ln").lo > 0


def test_ratio_against_a_zero_baseline_is_not_a_number():
    rs = {r.name: r for r in [fake("1L-gelu", 0, 50), fake("1L-solu_ln", 5, 50)]}
    assert math.isinf(iq.compare(rs, "1L-solu_ln").ratio)
    assert "n/a" in iq.comparison_markdown(rs)


def test_figure4_has_one_trace_per_activation_and_view_with_wilson_bars(results):
    fig = iq.figure4(results)
    assert len(fig.data) == 2 * 3  # gelu, solu_ln, gelu_ln in both panels
    solu = [t for t in fig.data if t.legendgroup == "solu_ln"][0]
    assert list(solu.x) == [1, 2]
    p = results["1L-solu_ln"].top
    assert solu.y[0] == pytest.approx(p.fraction)
    assert solu.error_y.array[0] == pytest.approx(p.hi - p.fraction)
    assert solu.error_y.arrayminus[0] == pytest.approx(p.fraction - p.lo)
    assert "60.0%" in iq.results_markdown(results)


def test_blinded_sessions_are_found_unblinded_and_compared_with_the_judge(tmp_path):
    ctx = book_context("tiny", runs_dir=tmp_path, progress=False)
    root = iq.blind_root(ctx)
    shapes = {name: ModelShape(1, 128) for name in ("1L-gelu", "1L-solu_ln")}
    BlindSession.create(root / "empty", shapes, n_per_model=3, seed=1)   # no judgments yet
    session = BlindSession.create(root / "judged", shapes, n_per_model=3, seed=1)
    items = []
    while (item := session.next_item("ann")) is not None:
        session.record(item, "interpretable" if len(items) % 2 else "not_interpretable", "ann")
        items.append(item)
    found = iq.blind_sessions(ctx)
    assert [s.path.name for s in found] == ["judged"]
    summary = found[0]
    assert summary.n_judgments == len(items)
    assert {m.model for m in summary.report.models} == set(shapes)
    assert summary.agreement["n"] == len(items)
    assert "blind" in iq.blind_command(ctx) and str(root) in iq.blind_command(ctx)


def test_blind_command_shows_paths_relative_to_the_repository(tmp_path, monkeypatch):
    repo = tmp_path / "my repo"
    monkeypatch.setattr(paths, "project_root", lambda: repo)
    inside = book_context("tiny", runs_dir=repo / "runs", progress=False)
    command = iq.blind_command(inside, n=7)
    assert command.endswith("--n 7 --runs-dir runs --session runs/tiny/blind/my-session --seed 0")
    assert "--session runs/tiny/blind/judge-2" in iq.blind_command(inside, "judge-2")
    assert str(tmp_path) not in command          # the builder's paths stay out of the book
    outside = book_context("tiny", runs_dir=tmp_path / "other runs", progress=False)
    assert f"--runs-dir '{tmp_path / 'other runs'}'" in iq.blind_command(outside)  # quoted


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


# --- null controls ----------------------------------------------------------------------------

def _nulls():
    solu = iq.NullControls("1L-solu_ln", fake("1L-solu_ln", 60, 100, 30),
                           {"rotated": fake("1L-solu_ln", 50, 100, 5),
                            "random_init": fake("1L-solu_ln", 10, 100, 0)})
    gelu = iq.NullControls("1L-gelu", fake("1L-gelu", 35, 100, 10),
                           {"rotated": fake("1L-gelu", 33, 100, 4),
                            "random_init": fake("1L-gelu", 10, 100, 0),
                            "solu_readout": fake("1L-gelu", 40, 100, 12)})
    return {"1L-solu_ln": solu, "1L-gelu": gelu}


def test_null_gain_and_difference_net_of_the_rotated_nulls():
    nulls = _nulls()
    assert nulls["1L-solu_ln"].gain("rotated") == pytest.approx(difference_interval(60, 100, 50, 100))
    rel = iq.relative_difference(nulls, "1L-solu_ln", "1L-gelu", "top")
    assert rel.basis_diff == pytest.approx(difference_interval(60, 100, 35, 100))
    assert rel.rotated_diff == pytest.approx(difference_interval(50, 100, 33, 100))
    did, lo, hi = rel.diff_in_diff
    assert did == pytest.approx((0.60 - 0.50) - (0.35 - 0.33))
    assert lo < did < hi and hi - lo > 0.1  # four proportions of 100 neurons: wide
    spec = iq.relative_difference(nulls, "1L-solu_ln", "1L-gelu", "spectrum")
    assert spec.diff_in_diff[0] == pytest.approx((0.30 - 0.05) - (0.10 - 0.04))


def test_null_tables_and_figure():
    nulls = _nulls()
    top = iq.nulls_markdown(nulls, "top")
    assert "| 1L-solu_ln | 60.0% [" in top and "| n/a |" in top  # no SoLU readout of SoLU
    assert "SoLU readout of GELU" in top and "+10.0%" in top
    rel = {v: iq.relative_difference(nulls, "1L-solu_ln", "1L-gelu", v) for v in iq.VIEWS}
    assert iq.relative_markdown(rel).count("\n") == 3
    fig = iq.add_nulls(iq.figure4({n: nc.basis for n, nc in nulls.items()}), nulls)
    hollow = [t for t in fig.data if t.marker.symbol == "circle-open"]
    assert len(hollow) == 4  # two models x two panels
    assert {t.y[0] for t in hollow} == {0.50, 0.33, 0.05, 0.04}


def test_distinct_explanations_and_the_null_verdict():
    nulls = _nulls()
    assert "| 1L-solu_ln | 0 in 60 |" in iq.distinct_markdown(nulls)
    verdict = iq.null_verdict(nulls, "spectrum")
    assert "beats its rotation for 1L-solu_ln (+25.0 points)" in verdict
    nulls["1L-gelu"].nulls["rotated"] = fake("1L-gelu", 70, 100, 4)
    top = iq.null_verdict(nulls, "top")
    assert "more interpretable than the neuron basis for 1L-gelu" in top
    assert "cannot be credited" in top


def test_scorecard_weighs_the_figure4_claim_against_the_rotated_nulls():
    from types import SimpleNamespace

    from solu_repro.book import scorecard as sc

    nulls = _nulls()
    results = {n: nc.basis for n, nc in nulls.items()}
    rel = {v: iq.relative_difference(nulls, "1L-solu_ln", "1L-gelu", v) for v in iq.VIEWS}
    im = SimpleNamespace(solu_vs_gelu={1: iq.compare(results, "1L-solu_ln")},
                         solu_vs_gelu_spectrum={1: iq.compare(results, "1L-solu_ln", "spectrum")},
                         ablation=None, ablation_vs_solu=None, blind=[], nulls=nulls,
                         relative=rel)
    claims = {c.section: c for c in sc.interp_claims(im)}
    fig4 = claims["§6.2 / Figure 4"]
    # +25 points, significant, but net of the rotated nulls only +8 [CI crossing 0]
    assert fig4.verdict == sc.PARTLY and "net of the rotated-basis nulls" in fig4.ours
    basis = claims["§3.2 (privileged basis)"]
    assert basis.verdict == sc.PARTLY  # +25 and +6 points, the second interval crossing 0
    nulls["1L-gelu"].nulls["rotated"] = fake("1L-gelu", 33, 100, 0)
    assert {c.section: c for c in sc.interp_claims(im)}["§3.2 (privileged basis)"].verdict \
        == sc.REPRODUCED
    nulls["1L-gelu"].nulls["rotated"] = fake("1L-gelu", 33, 100, 40)
    assert {c.section: c for c in sc.interp_claims(im)}["§3.2 (privileged basis)"].verdict \
        == sc.NOT_REPRODUCED
    no_nulls = SimpleNamespace(**{**vars(im), "nulls": {}, "relative": {}})
    assert {c.section: c for c in sc.interp_claims(no_nulls)}["§6.2 / Figure 4"].verdict \
        == sc.REPRODUCED
