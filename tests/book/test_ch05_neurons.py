"""Chapter 5's page (``solu_repro.book.ch05_neurons``, notebook 05, paper §6.3.1): the neurons
the scorer picks (``interp.ranking.select_neurons``), their escaped cards, the tables, the
figure and the glued numbers, on synthetic scores and on the tiny zoo."""

from __future__ import annotations

import math
import re
import types
from pathlib import Path

import pytest

from solu_repro.book import book_context, record
from solu_repro.book import ch05_neurons as ch05
from solu_repro.book.neuron_cards import neuron_card_html, neuron_cards_html, \
    side_by_side_html, verdict_html
from solu_repro.interp.ranking import RANKING, closest_misses, select_neurons, spectrum_f1
from solu_repro.paper import registry
from solu_repro.paper import s6_3_neurons as S
from fakes import neuron_record, neuron_scores

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "05-one-layer-neurons.ipynb"
SCRIPT = "<script>alert(1)</script>"


# --- synthetic scores ----------------------------------------------------------------------------




def test_select_neurons_ranks_interpretable_by_spectrum_f1_then_coverage():
    records = [
        neuron_record(0, 0, precision=0.9, recall=0.9),                      # f1 0.9
        neuron_record(0, 1, precision=1.0, recall=1.0, interpretable=False),  # best, not interpretable
        neuron_record(0, 2, precision=0.5, recall=0.5, coverage=1.0),         # f1 0.5, higher coverage
        neuron_record(0, 3, precision=0.5, recall=0.5, coverage=0.8),         # f1 0.5
        neuron_record(0, 4, precision=math.nan, recall=math.nan),             # f1 counts as 0
        neuron_record(0, 5, dead=True, interpretable=False),
    ]
    picked = select_neurons(neuron_scores(records), 10, spread_kinds=False)
    assert [r.neuron for r in picked] == [0, 2, 3, 4]
    assert all(r.interpretable for r in picked)
    assert [r.neuron for r in select_neurons(neuron_scores(records), 2, spread_kinds=False)] == [0, 2]
    assert spectrum_f1(records[4]) == 0.0
    assert spectrum_f1(records[0]) == pytest.approx(0.9)


def test_select_neurons_spreads_over_kinds_and_filters_layer_and_role():
    records = [neuron_record(0, 0, "token", (1,), precision=0.9, recall=0.9),
               neuron_record(0, 1, "token", (2,), precision=0.8, recall=0.8),
               neuron_record(0, 2, "token", (3,), precision=0.7, recall=0.7),
               neuron_record(1, 0, "bigram", ((1, 2),), precision=0.6, recall=0.6),
               neuron_record(1, 1, "next_token", (4,), precision=0.1, recall=0.1)]
    scores = neuron_scores(records)
    spread = select_neurons(scores, 5)
    assert [(r.layer, r.neuron) for r in spread] == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
    assert [r.neuron for r in select_neurons(scores, 5, layer=1)] == [0, 1]
    assert [(r.layer, r.neuron) for r in select_neurons(scores, 5, role="retokenization")] \
        == [(1, 1)]
    assert select_neurons(scores, 5, role="token_class") == []


def test_selection_is_deterministic_for_a_seed_and_ties_follow_the_seed():
    tied = [neuron_record(0, i) for i in range(12)]  # identical numbers: only the seed orders them
    scores = neuron_scores(tied)
    first = [r.neuron for r in select_neurons(scores, 12, seed=3)]
    assert first == [r.neuron for r in select_neurons(neuron_scores(list(reversed(tied))), 12,
                                                      seed=3)]
    orders = {tuple(r.neuron for r in select_neurons(scores, 12, seed=s)) for s in range(5)}
    assert len(orders) > 1 and sorted(first) == list(range(12))


def test_closest_misses_when_nothing_is_interpretable():
    records = [neuron_record(0, 0, interpretable=False, coverage=0.7),
               neuron_record(0, 1, interpretable=False, coverage=0.75),
               neuron_record(0, 2, dead=True, interpretable=False, coverage=0.0)]
    scores = neuron_scores(records)
    assert select_neurons(scores, 3) == []
    assert [r.neuron for r in closest_misses(scores, 3)] == [1, 0]
    assert "0/3 interpretable" in ch05.scorer_summary(scores)
    table = ch05.picks_table(closest_misses(scores, 3))
    assert table.count("not interpretable") == 2
    assert table.splitlines()[0].split() == ["neuron", "verdict", "kind", "coverage", "lift",
                                             "precision", "recall", "explanation"]


def test_verdict_and_side_by_side_escape_text():
    rec = neuron_record(0, 7, text=f"current token is {SCRIPT}")
    page = verdict_html(rec, f"model{SCRIPT}")
    page += side_by_side_html({SCRIPT: "<b>ok</b>"})
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<b>ok</b>" in page
    assert "L0N7" in page


# --- the logit cross-check on the page -----------------------------------------------------------
SEEDS = ["1L-solu_ln", "1L-solu_ln-s1"]


def _measured(interp_n=10):
    rows = []
    for s in SEEDS + ["1L-gelu"]:
        rows.append(S.Agreement(s, "interpretable", interp_n, 0.8, 0.7, 0.9, 0.5, 0.78)
                    if interp_n else S.agreement_summary(s, "interpretable", []))
        rows.append(S.Agreement(s, "mismatched", interp_n, 0.5, 0.4, 0.6, 0.0, 0.5)
                    if interp_n else S.agreement_summary(s, "mismatched", []))
        rows.append(S.Agreement(s, "random", 64, 0.55, 0.4, 0.7, 0.1, 0.56))
    return S.OneLayerMeasurements("1L-solu_ln", SEEDS, "1L-gelu", 64,
                                  {"1L-solu_ln": 3, "1L-solu_ln-s1": 0, "1L-gelu": 1},
                                  {n: 128 for n in SEEDS + ["1L-gelu"]}, {"token": 3}, rows)


def test_agreement_table_and_figure():
    m = _measured()
    table = ch05.agreement_table(m.agreement)
    assert table.splitlines()[0].split() == ["model", "neurons", "n", "mean", "median", "IQR",
                                             "share", ">", "0.75"]
    assert "0.70-0.90" in table and table.count("random live") == 3
    assert table.count("others' examples") == 3 and "0.780" in table
    fig = ch05.agreement_figure(m)
    names = [t.name for t in fig.data]
    assert names == [ch05.GROUP_STYLE[g][0] for g in S.GROUPS]
    assert list(fig.data[0].y) == [0.8, 0.8, 0.8] and list(fig.data[1].y) == [0.5] * 3
    assert len(fig.data[2].x) == 3
    seeds = ch05.seed_table(m)
    assert "+28.0" in seeds and "+22.0" in seeds and seeds.count("1L-solu_ln") == 2
    assert all("no neuron" not in (a.text or "") for a in fig.layout.annotations)
    none = _measured(interp_n=0)
    empty = ch05.agreement_figure(none)
    assert len(empty.data[0].x) == 0 and "n/a" in ch05.agreement_table(none.agreement)
    assert "n/a" in ch05.seed_table(none)
    assert any("no neuron" in (a.text or "") for a in empty.layout.annotations)


def test_glue_values_are_the_numbers_the_prose_quotes():
    assert ch05.glue_values(_measured()) == {
        "n_solu_interpretable": 3, "n_gelu_interpretable": 1, "n_neurons_1l": 128,
        "ranking": RANKING, "n_solu_seeds": 2, "n_random": 64,
        "n_partners": S.MISMATCHED_PARTNERS}


def test_decided_claims_are_saved_for_the_scorecard(tmp_path):
    out = registry.decide("05-one-layer-neurons", _measured())
    ctx = types.SimpleNamespace(runs_dir=tmp_path, scale="tiny")
    path = record.save(ctx, "05-one-layer-neurons", out)
    assert [c.id for c in record.load(ctx, ["05-one-layer-neurons"])] == ["logit_agreement"]
    assert path.is_file()


def test_the_page_shows_each_definition_and_rule():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("show_source(s6_3.direct_logit_effects" in s for s in code)
    assert any("s6_3.mismatched_agreement" in s and "s6_3.mismatched_partners" in s
               for s in code)
    assert any("ch05.seed_table(measured)" in s for s in code)
    assert any("show_claim(s6_3.LOGIT_AGREEMENT)" in s for s in code)
    assert any('registry.decide("05-one-layer-neurons"' in s for s in code)
    glue_cells = [c for c in nb.cells if c.cell_type == "code" and "glue(" in c.source]
    assert len(glue_cells) == 1 and "remove-cell" in glue_cells[0].metadata["tags"]
    figures = [c for c in nb.cells if c.cell_type == "code" and "agreement_figure" in c.source]
    assert all("hide-input" in c.metadata.get("tags", []) for c in figures)


# --- the tiny zoo --------------------------------------------------------------------------------


class _ScriptTokenizer:
    """Every token decodes to a script tag: whatever the view shows must be escaped."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def id_to_token(self, _id):
        return SCRIPT

    def get_vocab_size(self):
        return self._tokenizer.get_vocab_size()


class _PlantedCorpus:
    def __init__(self, corpus):
        self._corpus = corpus
        self.tokenizer = _ScriptTokenizer(corpus.tokenizer)

    def __getattr__(self, name):
        return getattr(self._corpus, name)


@pytest.mark.slow
def test_zoo_selection_is_the_scorers_interpretable_neurons(ctx):
    # At tiny scale few models have interpretable neurons: the first of these that does.
    candidates = ("1L-gelu", "1L-gelu_ln", "1L-solu")
    name = next((n for n in candidates if any(r.interpretable for r in ctx.scores(n).records)),
                None)
    assert name is not None, f"one of the tiny {candidates} should have interpretable neurons"
    scores = ctx.scores(name)
    good = {(r.layer, r.neuron) for r in scores.records if r.interpretable}
    picked = select_neurons(scores, 5, seed=ctx.seed)
    assert len(picked) == min(5, len(good))
    assert {(r.layer, r.neuron) for r in picked} <= good
    assert picked == select_neurons(ctx.scores(name), 5, seed=ctx.seed)
    everything = select_neurons(scores, len(scores.records), spread_kinds=False)
    assert {(r.layer, r.neuron) for r in everything} == good
    f1 = [spectrum_f1(r) for r in everything]
    assert f1 == sorted(f1, reverse=True)


@pytest.mark.slow
def test_scores_come_from_the_harvest_of_the_contexts_seed(ctx):
    from solu_repro.interp.harvest import harvest_path
    from solu_repro.interp.score import ScoreSettings, score_path

    name = "1L-gelu"
    other = book_context(scale="tiny", runs_dir=ctx.runs_dir, seed=ctx.seed + 1,
                         interactive=False, progress=False)
    run = other.run(name)
    mine = harvest_path(run, seed=other.seed)
    assert mine != harvest_path(run, seed=ctx.seed)
    other.scores(name)
    assert mine.is_file() and score_path(mine, ScoreSettings()).is_file()
    # The top firings the scorer reads do not depend on the seed: the verdicts agree.
    assert ([r.interpretable for r in other.scores(name).records]
            == [r.interpretable for r in ctx.scores(name).records])


@pytest.mark.slow
def test_gather_fetches_what_the_measurement_takes(ctx):
    models = ch05.gather(ctx, ["1L-gelu"])
    m = models["1L-gelu"]
    assert m.model.cfg.n_layers == 1 and m.corpus is not None and m.harvest is not None
    assert [r.interpretable for r in m.scores.records] == [
        r.interpretable for r in ctx.scores("1L-gelu").records]


@pytest.mark.slow
def test_neuron_card_escapes_planted_tokens(ctx):
    name = "1L-gelu"
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    rec = next(r for r in ctx.scores(name).records if not r.dead)
    planted = _PlantedCorpus(corpus)
    page = neuron_card_html(model, planted, harvest, rec, name, n_examples=3, n_logits=4)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 3 * 2 + 8  # every token shown, both logit columns
    assert len(re.findall(r'class="solu-tok', page)) > 3
    assert "Direct logit effect" in page and "solu-verdict" in page
    real = neuron_cards_html(ctx, name, [rec], n_examples=2, n_logits=3)
    assert real.count("solu-card") == 1 and "solu-tok solu-focus" in real
    assert "solu-empty" in neuron_cards_html(ctx, name, [], empty="none")
    contrast = ch05.contrast_html(ctx, [name], 2, n_examples=2)
    assert contrast.count("solu-card") == 2 and "solu-side-by-side" in contrast
