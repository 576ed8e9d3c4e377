"""Chapter 8's page (``solu_repro.book.ch08_features``, notebook 08): what it gathers from the
zoo (every seed of the pair, each basis on the three instruments, each dictionary's report),
the scale without dictionaries, the tables, figures and glued numbers, and the notebook's
layout."""

from __future__ import annotations

import ast
import json
import math
import types
from pathlib import Path

import pytest

from solu_repro.book import ch08_features as ch08
from solu_repro.book import checks, precompute
from solu_repro.paper import claim as C
from solu_repro.paper import registry
from solu_repro.paper import s8_features as S

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "08-features.ipynb"


def test_the_chapter_imports_no_other_chapter():
    tree = ast.parse((ROOT / "src/solu_repro/book/ch08_features.py").read_text())
    imported = {("." * n.level) + (n.module or "") for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith(".ch0") for m in imported), imported


def test_the_notebook_saves_every_parameter_and_decides_its_chapter():
    nb = json.loads(NOTEBOOK.read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    names = [line.split("=")[0].strip() for line in "".join(params["source"]).splitlines()
             if "=" in line]
    save = next(c for c in cells if "record.save" in c)
    assert all(f"{n}={n}" in save for n in names), names
    assert 'registry.decide("08-features", measured)' in save


@pytest.fixture(scope="module")
def gathered(ctx):
    return ch08.gather(ctx)


@pytest.mark.slow
def test_gather_reads_every_seed_of_the_pair_on_every_instrument(ctx, gathered):
    pairs = ch08.pair_seeds(ctx)
    assert [len(v) for v in pairs.values()] == [2, 2]  # the tiny zoo's pair seeds
    m = S.measure(gathered["bases"], gathered["dictionaries"], why=gathered["why"])
    assert m.seeds == [0, 1] and gathered["why"] == ""
    d_mlp = ctx.run(pairs[S.GELU][0]).config.model.d_mlp
    for r in m.bases:
        assert r.n_judged == d_mlp and 0 <= r.interpretable <= 1 and 0 <= r.probe_f1 <= 1
    hooks = sorted((r.model, r.hook) for r in m.dictionaries if r.seed == 0)
    assert hooks == [(S.GELU, "mid"), (S.SOLU_LN, "mid"), (S.SOLU_LN, "post")]
    for r in m.dictionaries:
        assert r.d_sae == 4 * d_mlp and r.l0 == pytest.approx(32, abs=1e-6)
        # a random unit vector's largest component: above 1/sqrt(d), far below 1
        assert 1 / math.sqrt(d_mlp) < r.alignment_null < 0.5
    assert not checks.failed(checks.features_checks(m, expansion=4, k=32))
    # the page's pieces render from real rows
    assert "| seed |" in ch08.bases_table(m) and "| seed |" in ch08.dictionaries_table(m)
    assert len(ch08.instruments_figure(m).data) == 2 * 5 * 3  # bars and points, 5 bases
    assert ch08.alignment_figure(gathered["alignments"], gathered["null"]).data
    values = ch08.glue_values(m)
    assert values["n_seeds"] == 2 and "n/a" not in values["fve_solu_post"]
    claims = registry.decide("08-features", m)
    assert {c.id for c in claims} == {"sae_aligned", "dictionary_gain", "ln_hidden_features"}
    # the same rows again: every result is cached, nothing is trained, judged or probed twice
    import solu_repro.interp.basis_score as basis_mod
    import solu_repro.interp.probing as probing_mod
    import solu_repro.interp.sae as sae_mod
    import solu_repro.interp.score as score_mod

    def boom(*a, **k):
        raise AssertionError("computed again instead of read from the cache")

    with pytest.MonkeyPatch.context() as mp:
        for module, name in ((sae_mod, "train_sae"), (score_mod, "score_neurons"),
                             (probing_mod, "sparse_probe"), (basis_mod, "basis_score")):
            mp.setattr(module, name, boom)
        again = ch08.gather(ctx)
    assert again["dictionaries"] == gathered["dictionaries"]
    assert again["bases"] == gathered["bases"]


@pytest.mark.slow
def test_hidden_features_are_shown_with_their_best_neurons(ctx, gathered):
    name, settings, examples = ch08.hidden_examples(ctx, gathered, n=2, expansion=4, k=32)
    assert name == ch08.pair_seeds(ctx)[S.SOLU_LN][0] and settings.hook == "post"
    cp = gathered["counterparts"][f"{name}:post"]
    for e in examples:
        assert cp.mid_r[e["feature"]] < S.COUNTERPART_R
    table = ch08.examples_table(examples)
    assert table.startswith("| feature |") or table.startswith("No `hook_post`")


def test_a_scale_without_dictionaries_says_so_and_decides_nothing():
    ctx = types.SimpleNamespace(scale="cpu")
    assert not ch08.available(ctx)
    assert ch08.available(types.SimpleNamespace(scale="cpu-features"))
    got = ch08.gather(ctx)
    assert got["bases"] == [] and "SCALE=cpu-features" in got["why"]
    m = S.measure(got["bases"], got["dictionaries"], why=got["why"])
    for claim in registry.decide("08-features", m):
        assert claim.verdict == C.NOT_TESTABLE
        assert "cpu-features" in claim.test.why
    values = ch08.glue_values(m)
    assert values["fve_gelu_mid"] == "n/a" and values["gain_solu"] == "n/a"
    # the opening paragraph gives the reason, not an empty interval
    assert all("SCALE=cpu-features" in values[k]
               for k in ("alignment_test", "gain_test", "hidden_test"))
    ch08.instruments_figure(m), ch08.seed_figure(m)  # empty figures, no error
    assert not ch08.alignment_figure({S.GELU: [], S.SOLU_LN: []}, None).data


def test_precompute_and_the_notebook_read_the_same_dictionaries(ctx):
    """The notebook's defaults and precompute's call (``gather_run`` with its defaults) key the
    same cache entries, so the book's precomputed work is what the chapter reads."""
    nb = json.loads(NOTEBOOK.read_text())
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    defaults = {}
    exec("".join(params["source"]), {}, defaults)
    import inspect

    sig = inspect.signature(ch08.gather_run).parameters
    assert defaults["expansion"] == sig["expansion"].default
    assert defaults["k"] == sig["k"].default
    assert defaults["sae_tokens"] == sig["train_tokens"].default
    assert defaults["max_features"] == sig["max_features"].default
    for hook in ("mid", "post"):
        assert ch08.settings_for(ctx, hook, expansion=defaults["expansion"], k=defaults["k"],
                                 train_tokens=defaults["sae_tokens"]) == \
            ch08.settings_for(ctx, hook, expansion=sig["expansion"].default)


def test_precompute_trains_the_dictionaries_only_where_the_scale_has_them(ctx):
    tasks = precompute.tasks(ctx)
    with_features = {n for n, items in tasks.items() if ("features", None) in items}
    assert with_features == {n for names in ch08.pair_seeds(ctx).values() for n in names}


def test_the_three_tests_units_are_plotted_with_their_intervals():
    rows = [S.DictionaryRow(f"{m}-s{s}", m, s, h, 64, 4, 0.9, 3.0, 3.1, 5.0, 4.0, 0.1,
                            0.3 + 0.1 * (m == S.SOLU_LN) + 0.01 * s, 0.15, 0.0,
                            0.2 + 0.1 * (h == "post")) for s in range(3)
            for m, h in ((S.GELU, "mid"), (S.SOLU_LN, "mid"), (S.SOLU_LN, "post"))]
    bases = [S.BasisRow(f"{m}-s{s}", m, s, b, 16, 16, 0.2, 0.1, 0.3 + 0.1 * (b != "neurons"))
             for s in range(3) for m in S.MODELS for b in ("neurons", "sae mid")]
    m = S.measure(bases, rows)
    fig = ch08.seed_figure(m)
    ys = [100 * v for v in m.alignment.values]
    assert list(fig.data[0].y) == pytest.approx(ys)
    assert math.isfinite(m.alignment.effect) and m.alignment.n == 3
