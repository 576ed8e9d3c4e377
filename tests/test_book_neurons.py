"""Book §6.3-6.4 helpers (notebooks 05-07): neuron selection by the scorer, escaped views,
figures and measurements, on synthetic scores and on the tiny zoo."""

from __future__ import annotations

import math
import re

import pytest

from solu_repro.book import book_context
from solu_repro.book import layernorm as LN
from solu_repro.book import neurons as N
from solu_repro.interp.analysis import ROLE_ORDER, BandRow, layer_roles
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.score import NeuronScore, NeuronScores
from solu_repro.interp.stats import difference_interval, wilson_interval

SCRIPT = "<script>alert(1)</script>"


# --- synthetic scores -----------------------------------------------------------------------
def _record(layer, neuron, kind="token", values=(1,), interpretable=True, coverage=0.9,
            precision=0.5, recall=0.5, lift=10.0, dead=False, text=None):
    e = Explanation(kind, values)
    return NeuronScore(layer, neuron, None if dead else e.key(), text or f"{kind} {values}",
                       None if dead else e.role, coverage, 0.01, lift, interpretable, dead,
                       precision, recall, 0.5, 10, 10)


def _scores(records):
    return NeuronScores({"name": "synthetic"}, records)


def test_select_neurons_ranks_interpretable_by_spectrum_f1_then_coverage():
    records = [
        _record(0, 0, precision=0.9, recall=0.9),                      # f1 0.9
        _record(0, 1, precision=1.0, recall=1.0, interpretable=False),  # best, not interpretable
        _record(0, 2, precision=0.5, recall=0.5, coverage=1.0),         # f1 0.5, higher coverage
        _record(0, 3, precision=0.5, recall=0.5, coverage=0.8),         # f1 0.5
        _record(0, 4, precision=math.nan, recall=math.nan),             # f1 counts as 0
        _record(0, 5, dead=True, interpretable=False),
    ]
    picked = N.select_neurons(_scores(records), 10, spread_kinds=False)
    assert [r.neuron for r in picked] == [0, 2, 3, 4]
    assert all(r.interpretable for r in picked)
    assert [r.neuron for r in N.select_neurons(_scores(records), 2, spread_kinds=False)] == [0, 2]
    assert N.spectrum_f1(records[4]) == 0.0
    assert N.spectrum_f1(records[0]) == pytest.approx(0.9)


def test_select_neurons_spreads_over_kinds_and_filters_layer_and_role():
    records = [_record(0, 0, "token", (1,), precision=0.9, recall=0.9),
               _record(0, 1, "token", (2,), precision=0.8, recall=0.8),
               _record(0, 2, "token", (3,), precision=0.7, recall=0.7),
               _record(1, 0, "bigram", ((1, 2),), precision=0.6, recall=0.6),
               _record(1, 1, "next_token", (4,), precision=0.1, recall=0.1)]
    scores = _scores(records)
    spread = N.select_neurons(scores, 5)
    assert [(r.layer, r.neuron) for r in spread] == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
    assert [r.neuron for r in N.select_neurons(scores, 5, layer=1)] == [0, 1]
    assert [(r.layer, r.neuron) for r in N.select_neurons(scores, 5, role="retokenization")] \
        == [(1, 1)]
    assert N.select_neurons(scores, 5, role="abstract") == []


def test_selection_is_deterministic_for_a_seed_and_ties_follow_the_seed():
    tied = [_record(0, i) for i in range(12)]  # identical numbers: only the seed orders them
    scores = _scores(tied)
    first = [r.neuron for r in N.select_neurons(scores, 12, seed=3)]
    assert first == [r.neuron for r in N.select_neurons(_scores(list(reversed(tied))), 12,
                                                        seed=3)]
    orders = {tuple(r.neuron for r in N.select_neurons(scores, 12, seed=s)) for s in range(5)}
    assert len(orders) > 1 and sorted(first) == list(range(12))
    sample = N.random_neurons(_scores(tied + [_record(1, 0, dead=True, interpretable=False)]),
                              4, seed=1)
    assert sample == N.random_neurons(_scores(tied), 4, seed=1)
    assert len(sample) == 4 and all(not r.dead for r in sample)


def test_closest_misses_when_nothing_is_interpretable():
    records = [_record(0, 0, interpretable=False, coverage=0.7),
               _record(0, 1, interpretable=False, coverage=0.75),
               _record(0, 2, dead=True, interpretable=False, coverage=0.0)]
    scores = _scores(records)
    assert N.select_neurons(scores, 3) == []
    assert [r.neuron for r in N.closest_misses(scores, 3)] == [1, 0]
    assert "0/3 interpretable" in N.scorer_summary(scores)
    table = N.picks_table(N.closest_misses(scores, 3))
    assert table.count("not interpretable") == 2


def test_verdict_and_side_by_side_escape_text():
    record = _record(0, 7, text=f"current token is {SCRIPT}")
    page = N.verdict_html(record, f"model{SCRIPT}")
    page += N.side_by_side_html({SCRIPT: "<b>ok</b>"})
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<b>ok</b>" in page
    assert "L0N7" in page


def test_role_shift_counts_and_interval():
    rows = [{"position": "first", "n_interpretable": 10, "detokenization": 6},
            {"position": "middle", "n_interpretable": 10, "detokenization": 2},
            {"position": "last", "n_interpretable": 20, "detokenization": 2}]
    shift = N.role_shift(rows, "detokenization", "first")
    assert (shift.count, shift.n, shift.other_count, shift.other_n) == (6, 10, 4, 30)
    assert (shift.diff, shift.lo, shift.hi) == pytest.approx(difference_interval(6, 10, 4, 30))
    assert shift.direction_agrees and shift.significant == (shift.lo > 0)
    empty = N.role_shift([{"position": "first", "n_interpretable": 0, "detokenization": 0}],
                         "detokenization", "first")
    assert empty.direction_agrees is None and not empty.significant
    assert "not measurable" in N.role_shift_text(empty)


def test_layer_roles_figure_stacks_counts_per_role():
    records = [_record(0, 0, "bigram", ((1, 2),)), _record(0, 1, "token", (3,)),
               _record(1, 0, "class", ("digits",)), _record(1, 1, "token", (5,), False)]
    roles = layer_roles(_scores(records))
    rows = [{"model": "2L-solu_ln", "act": "solu_ln", "depth": 2,
             "position": N.layer_position(r["layer"], 2), **r} for r in roles]
    fig = N.layer_roles_figure(rows)
    names = [t.name for t in fig.data]
    assert names == [N.ROLE_LABELS[r] for r in ROLE_ORDER] + [N.UNCONFIRMED_LABEL]
    by_name = {t.name: list(t.y) for t in fig.data}
    assert by_name[N.ROLE_LABELS["detokenization"]] == [1, 0]
    assert by_name[N.ROLE_LABELS["token"]] == [1, 0]
    assert by_name[N.ROLE_LABELS["abstract"]] == [0, 1]
    assert fig.layout.barmode == "stack"
    assert "L0 (first)" in N.layer_roles_table(rows)


def _band_rows():
    rows = []
    for hook, bad in (("mid", [9, 8, 5, 1]), ("post", [10, 9, 9, 4])):
        for band, n_bad in enumerate(bad):
            rows.append(BandRow(hook, band, band / 4, (band + 1) / 4, 10, n_bad, 2))
    return rows


def test_ln_figure_has_both_hooks_with_wilson_intervals():
    rows = _band_rows()
    fig = LN.ln_consistency_figure(rows)
    assert [t.name for t in fig.data] == [LN.HOOK_LABELS["mid"], LN.HOOK_LABELS["post"]]
    mid = fig.data[0]
    assert list(mid.y) == pytest.approx([0.9, 0.8, 0.5, 0.1])
    lo, hi = wilson_interval(5, 10)
    assert mid.error_y.array[2] == pytest.approx(hi - 0.5)
    assert mid.error_y.arrayminus[2] == pytest.approx(0.5 - lo)
    assert list(mid.x) == pytest.approx([12.5, 37.5, 62.5, 87.5])
    empty = LN.ln_consistency_figure([BandRow("mid", 0, 0, 1, 0, 0, 0)])
    assert not empty.data and empty.layout.annotations


def test_compare_and_pool_bands():
    rows = _band_rows()
    low = LN.compare_bands(rows, LN.low_bands(rows, 0.5), "low")
    assert (low.mid_inconsistent, low.mid_examples) == (17, 20)
    assert (low.post_inconsistent, low.post_examples) == (19, 20)
    assert (low.diff, low.lo, low.hi) == pytest.approx(difference_interval(19, 20, 17, 20))
    assert low.post_exceeds_mid and low.post_interval() == wilson_interval(19, 20)
    assert LN.post_worse_bands(rows) == []  # 10 examples a band: no interval excludes 0
    bad = {"mid": [50, 60, 50, 10], "post": [50, 40, 90, 40]}
    big = [BandRow(r.hook, r.band, r.lo, r.hi, 100, bad[r.hook][r.band], 2) for r in rows]
    assert LN.post_worse_bands(big) == [2, 3]  # 90 vs 50 and 40 vs 10 of 100
    assert LN.bands_text(rows, [0, 3]) == "0%-25%, 75%-100% of max"
    assert LN.bands_text(rows, []) == "no band"
    pooled = LN.pool_band_rows({"a": rows, "b": rows})
    assert len(pooled) == 8 and pooled[0].n_examples == 20 and pooled[0].n_neurons == 4
    with pytest.raises(ValueError, match="band layouts"):
        LN.pool_band_rows({"a": rows, "b": [BandRow("mid", 0, 0, 0.1, 1, 1, 1)]})


# --- the tiny zoo ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx(data_dir, tmp_path_factory):
    """A book context on a tiny zoo trained (only the models a test asks for) into a
    temporary runs directory, on the session's corpus."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOLU_DATA_DIR", str(data_dir))
        yield book_context(scale="tiny", runs_dir=tmp_path_factory.mktemp("runs"),
                           interactive=False, progress=False)


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
    name = "1L-gelu_ln"  # at tiny scale the SoLU models have no interpretable neuron
    scores = ctx.scores(name)
    good = {(r.layer, r.neuron) for r in scores.records if r.interpretable}
    assert good, "the tiny 1L-gelu_ln is expected to have interpretable neurons"
    picked = N.select_neurons(scores, 5, seed=ctx.seed)
    assert len(picked) == min(5, len(good))
    assert {(r.layer, r.neuron) for r in picked} <= good
    assert picked == N.select_neurons(ctx.scores(name), 5, seed=ctx.seed)
    everything = N.select_neurons(scores, len(scores.records), spread_kinds=False)
    assert {(r.layer, r.neuron) for r in everything} == good
    f1 = [N.spectrum_f1(r) for r in everything]
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
def test_neuron_card_escapes_planted_tokens(ctx):
    name = "1L-gelu"
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    record = next(r for r in ctx.scores(name).records if not r.dead)
    planted = _PlantedCorpus(corpus)
    page = N.neuron_card_html(model, planted, harvest, record, name, n_examples=3, n_logits=4)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 3 * 2 + 8  # every token shown, both logit columns
    assert len(re.findall(r'class="solu-tok', page)) > 3
    assert "Direct logit effect" in page and "solu-verdict" in page
    real = N.neuron_cards_html(ctx, name, [record], n_examples=2, n_logits=3)
    assert real.count("solu-card") == 1 and "solu-tok solu-focus" in real
    assert "solu-empty" in N.neuron_cards_html(ctx, name, [], empty="none")


@pytest.mark.slow
def test_layernorm_measurements_match_band_rows(ctx):
    name = "1L-gelu_ln"  # has the extra LN and interpretable neurons at tiny scale
    m = LN.layernorm_measurements(ctx, [name], per_band=10, max_neurons=8, control=None)
    rows = LN.ln_band_rows(ctx, [name], per_band=10, max_neurons=8)
    low = [r for r in rows if r.hi <= LN.LOW_BANDS_UP_TO + 1e-9]
    assert {r.band for r in low} == {0, 1, 2}
    mid = [r for r in low if r.hook == "mid"]
    post = [r for r in low if r.hook == "post"]
    assert m.low.mid_examples == sum(r.n_examples for r in mid) > 0
    assert m.low.mid_inconsistent == sum(r.n_inconsistent for r in mid)
    assert m.low.post_inconsistent == sum(r.n_inconsistent for r in post)
    top = [r for r in rows if r.band == 9]
    assert m.top.post_examples == sum(r.n_examples for r in top if r.hook == "post")
    assert m.overall.mid_examples == sum(r.n_examples for r in rows if r.hook == "mid")
    assert 0 < m.n_neurons[name] <= 8
    assert m.paper_direction_low == (m.low.post_fraction > m.low.mid_fraction)
    assert m.post_worse_bands == [b for b in range(10)
                                  if LN.compare_bands(rows, [b], "").lo > 0]
    assert m.control_model is None and m.to_dict()["control_low"] is None
    assert m.to_dict()["low"]["mid_inconsistent"] == m.low.mid_inconsistent
    fig = LN.ln_consistency_figure(rows)
    assert len(fig.data) == 2
    with pytest.raises(ValueError, match="no LayerNorm"):
        LN.band_rows_by_model(ctx, ["1L-gelu"])


@pytest.mark.slow
def test_neurons_measurements_match_layer_roles(ctx):
    m = N.neurons_measurements(ctx, deepest="2L-gelu", n_random=16)
    scores = ctx.scores("1L-solu_ln")
    assert m.one_layer_interpretable == sum(r.interpretable for r in scores.records)
    assert m.one_layer_neurons == len(scores.records)
    roles = layer_roles(ctx.scores("2L-gelu"), ctx.run("2L-gelu").load_model())
    first, last = roles[0], roles[-1]
    assert m.early_detokenization.count == first["detokenization"]
    assert m.early_detokenization.n == first["n_interpretable"]
    assert m.late_retokenization.count == last["retokenization"]
    assert m.late_retokenization.other_n == first["n_interpretable"]
    assert m.middle_abstract is None  # two layers have no middle
    groups = {(a.model, a.group): a for a in m.agreement}
    assert groups[("1L-gelu", "random")].n == 16
    assert 0 <= groups[("1L-gelu", "random")].median <= 1
    assert m.to_dict()["deepest"] == "2L-gelu"
