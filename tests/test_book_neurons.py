"""Book §6.3 helpers (notebooks 05-06): neuron selection by the scorer, escaped views,
figures and measurements, on synthetic scores and on the tiny zoo (§6.4, notebook 07:
tests/test_book_layernorm.py)."""

from __future__ import annotations

import math
import re
import types

import pytest
import torch

from solu_repro.book import book_context
from solu_repro.paper import claim as C
from solu_repro.paper import registry as REG
from solu_repro.book import record
from solu_repro.book import neurons as N
from solu_repro.interp.analysis import ROLE_ORDER, layer_roles
from solu_repro.interp.explanations import Explanation
from solu_repro.interp.score import NeuronScore, NeuronScores
from solu_repro.interp.stats import difference_interval

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
    assert N.select_neurons(scores, 5, role="token_class") == []


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
    assert shift.versus == "the later layers" and shift.of == "interpretable neurons"
    empty = N.role_shift([{"position": "first", "n_interpretable": 0, "detokenization": 0}],
                         "detokenization", "first")
    assert empty.direction_agrees is None and not empty.significant and not empty.measurable
    assert N.shift_verdict(empty) == C.NOT_TESTABLE


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
    assert by_name[N.ROLE_LABELS["token_class"]] == [0, 1]
    assert by_name[N.ROLE_LABELS["source"]] == [0, 0]
    assert fig.layout.barmode == "stack"
    assert "L0 (first)" in N.layer_roles_table(rows)


# --- §6.3.1: the logit cross-check and its claim -----------------------------------------------
def test_token_percentiles_rank_within_each_row_and_split_ties():
    effects = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0],
                            [4.0, 3.0, 2.0, 1.0, 0.0],
                            [1.0, 1.0, 1.0, 0.0, 2.0]])
    tokens = torch.tensor([[4, 0], [4, 0], [0, 4]])
    got = N.token_percentiles(effects, tokens)
    # Row 2: token 0 is tied with two others (1 below, 2 others tied): (1 + 1) / 4.
    assert got.flatten().tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.5, 1.0])
    # Without ties it is the rank over (vocab - 1), the percentile of an argsort.
    x = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    t = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    rank = torch.argsort(torch.argsort(x, dim=1), dim=1).double() / 49
    assert N.token_percentiles(x, t).flatten().tolist() == pytest.approx(
        rank.gather(1, t).flatten().tolist())


def test_direct_logit_effects_match_the_single_neuron_view():
    from solu_repro.interp.view import direct_logit_effect
    from solu_repro.model import ModelConfig, Transformer

    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=6,
                                    d_vocab=40, n_ctx=8, act_fn="solu_ln"))
    with torch.no_grad():
        model.ln_final.w.uniform_(0.5, 1.5)
    batch = N.direct_logit_effects(model, 1, [4, 0, 2])
    for row, neuron in zip(batch, [4, 0, 2]):
        assert torch.allclose(row, direct_logit_effect(model, 1, neuron), atol=1e-6)
    with pytest.raises(IndexError):
        N.direct_logit_effects(model, 1, [6])


def _agreement(model, interp_median, random_median, n_interp=10, n_random=64):
    a = N.Agreement(model, "interpretable", n_interp, interp_median, 0, 1, 0)
    b = N.Agreement(model, "random", n_random, random_median, 0, 1, 0)
    if n_interp == 0:
        a = N.agreement_summary(model, "interpretable", [])
    return [a, b]


SEEDS = ["1L-solu_ln", "1L-solu_ln-s1", "1L-solu_ln-s2"]


def _logit_claim(medians, n_interp=(10, 10, 10)):
    rows = [row for s, (i, r), n in zip(SEEDS, medians, n_interp)
            for row in _agreement(s, i, r, n)]
    return N.logit_agreement_claim(rows, SEEDS[:len(medians)], 64)


def test_logit_agreement_claim_decides_on_the_seed_interval():
    claim = _logit_claim([(0.80, 0.60), (0.82, 0.61), (0.85, 0.60)])
    assert claim.id == "logit_agreement" and claim.verdict == C.REPRODUCED
    assert claim.values["interval"]["lo"] > 0 and claim.values["interval"]["n_seeds"] == 3
    assert "control" in claim.sentence and "64 live neurons" in claim.sentence
    assert "t on 3 seed values" in claim.sentence
    assert [claim.values["seeds"][s]["difference"] for s in SEEDS] == pytest.approx(
        [0.20, 0.21, 0.25])
    # Positive mean, interval across 0: direction only.
    assert _logit_claim([(0.80, 0.60), (0.55, 0.60), (0.70, 0.60)]).verdict == C.PARTLY
    # Mean at or below the control but the interval reaching above 0: inconclusive.
    worse = _logit_claim([(0.90, 0.92), (0.88, 0.90), (0.95, 0.93)])
    assert worse.verdict == C.INCONCLUSIVE and worse.values["interval"]["estimate"] < 0
    assert worse.values["interval"]["hi"] > 0
    # Interpretable below the control on the whole interval: not reproduced, whatever the
    # agreement is.
    below = _logit_claim([(0.60, 0.80), (0.61, 0.82), (0.60, 0.85)])
    assert below.verdict == C.NOT_REPRODUCED and below.values["interval"]["hi"] < 0


def test_logit_agreement_claim_with_missing_seeds():
    one = _logit_claim([(0.90, 0.60), (0.0, 0.6), (0.0, 0.6)], n_interp=(10, 0, 0))
    assert one.verdict == C.PARTLY  # one usable seed: no interval, at most direction only
    assert "1L-solu_ln-s1, 1L-solu_ln-s2 left out" in one.sentence
    assert "from one seed" in one.sentence
    assert one.values["seeds"]["1L-solu_ln-s1"]["difference"] is None
    none = _logit_claim([(0.0, 0.6), (0.0, 0.6)], n_interp=(0, 0))
    assert none.verdict == C.NOT_TESTABLE and "Not testable" in none.sentence
    # One seed against the claim: no interval to rule the claim out, so inconclusive.
    assert _logit_claim([(0.40, 0.60)]).verdict == C.INCONCLUSIVE


def test_chapter5_claims_are_the_chapters_registry_claims(tmp_path):
    m = N.OneLayerMeasurements("1L-solu_ln", SEEDS, "1L-gelu", 64, {}, {}, {},
                               [r for s in SEEDS for r in _agreement(s, 0.8, 0.6)])
    out = N.chapter5_claims(m)
    assert [c.id for c in out] == [c.id for c in REG.CLAIMS if c.chapter == "05-one-layer-neurons"]
    ctx = types.SimpleNamespace(runs_dir=tmp_path, scale="tiny")
    path = record.save(ctx, "05-one-layer-neurons", out)
    assert [c.id for c in record.load(ctx, ["05-one-layer-neurons"])] == ["logit_agreement"]
    assert path.is_file()


# --- §6.3.2-6.3.4: the layer claims -------------------------------------------------------------
def _role_row(model, layer, depth, n_neurons=100, **counts):
    counts = {role: counts.get(role, 0) for role in ROLE_ORDER}
    n = sum(counts.values())
    return {"model": model, "act": model.split("-")[1], "depth": depth,
            "position": N.layer_position(layer, depth), "layer": layer, "n_neurons": n_neurons,
            "n_interpretable": n, "retokenization_unconfirmed": 0, **counts,
            **{f"{r}_fraction": (v / n if n else math.nan) for r, v in counts.items()}}


def _layers(solu_layers, gelu_layers, depth=4):
    rows = ([_role_row("4L-solu_ln", i, depth, **c) for i, c in enumerate(solu_layers)]
            + [_role_row("4L-gelu", i, depth, **c) for i, c in enumerate(gelu_layers)])
    return rows


class _Ctx:
    """Just what ``layers_measurements`` reads when the rows are given."""

    names = ["1L-gelu", "1L-solu_ln", "2L-gelu", "2L-solu_ln", "4L-gelu", "4L-solu_ln",
             "1L-gelu_ln"]


def _measure(solu_layers, gelu_layers, depth=4):
    return N.layers_measurements(_Ctx(), rows=_layers(solu_layers, gelu_layers, depth))


def _claims(m):
    return {c.id: c for c in N.chapter6_claims(m)}


def test_early_detokenization_compares_with_the_baseline_of_the_same_depth():
    assert N.deepest_pair(_Ctx()) == ("4L-solu_ln", "4L-gelu")
    gelu = [dict(token=5, detokenization=2), {}, {}, {}]
    m = _measure([dict(token=5, detokenization=30), {}, {}, {}], gelu)
    early = m.early_detokenization
    assert (early.count, early.n, early.other_count, early.other_n) == (30, 100, 2, 100)
    assert early.of == "neurons" and early.versus == "4L-gelu's first layer"
    assert (early.diff, early.lo, early.hi) == pytest.approx(difference_interval(30, 100, 2, 100))
    claim = _claims(m)["early_detokenization"]
    # The interval is above 0, but one seed caps the verdict at direction only.
    assert early.lo > 0 and claim.verdict == C.PARTLY
    assert "4L-gelu" in claim.sentence and "one seed" in claim.sentence
    # The share is of all first-layer neurons: SoLU-LN with more interpretable neurons but
    # the same de-tokenization count does not count as more de-tokenization (no difference,
    # an interval across 0: inconclusive).
    same = _measure([dict(token=60, detokenization=2), {}, {}, {}], gelu)
    assert same.early_detokenization.diff == 0
    assert _claims(same)["early_detokenization"].verdict == C.INCONCLUSIVE
    assert _claims(_measure([dict(detokenization=4), {}, {}, {}], gelu))[
        "early_detokenization"].verdict == C.PARTLY
    fewer = _measure([dict(detokenization=1), {}, {}, {}], gelu)
    assert fewer.early_detokenization.diff < 0 < fewer.early_detokenization.hi
    assert _claims(fewer)["early_detokenization"].verdict == C.INCONCLUSIVE
    # The whole interval below 0: not reproduced.
    far_fewer = _measure([dict(detokenization=2), {}, {}, {}],
                         [dict(detokenization=30), {}, {}, {}])
    assert far_fewer.early_detokenization.hi < 0
    assert _claims(far_fewer)["early_detokenization"].verdict == C.NOT_REPRODUCED
    nothing = _measure([{}, dict(token=3), {}, {}], [{}, {}, {}, {}])
    claim = _claims(nothing)["early_detokenization"]
    assert claim.verdict == C.NOT_TESTABLE and "no first-layer neuron" in claim.sentence


def test_late_and_middle_claims_compare_layers_within_the_solu_model():
    gelu = [{}, {}, {}, {}]
    m = _measure([dict(token=20), dict(token=10, token_class=30), dict(token_class=30),
                  dict(retokenization=20, token=5)], gelu)
    got = _claims(m)
    assert m.late_retokenization.count == 20 and m.late_retokenization.n == 25
    # Both intervals above 0, but one seed caps the verdicts at direction only.
    assert m.late_retokenization.other_n == 90 and m.late_retokenization.lo > 0
    assert got["late_retokenization"].verdict == C.PARTLY
    mid = m.middle_token_class
    assert (mid.count, mid.n, mid.other_count, mid.other_n) == (60, 70, 0, 45)
    assert mid.lo > 0 and got["middle_abstract"].verdict == C.PARTLY
    assert "L1, L2" in got["middle_abstract"].sentence
    assert "not the paper's abstract features" in got["middle_abstract"].sentence
    # Only the point estimate on the paper's side: direction only.
    m = _measure([dict(token=3), dict(token=2, token_class=1), dict(token=3),
                  dict(retokenization=1, token=2)], gelu)
    got = _claims(m)
    assert got["late_retokenization"].verdict == C.PARTLY
    assert got["middle_abstract"].verdict == C.PARTLY
    # The estimate on the other side: inconclusive while the interval still reaches above 0
    # (late: 0/10 vs 5/30), not reproduced once the whole interval is at or below 0 (middle:
    # 0/20 vs 5/20).
    m = _measure([dict(token_class=5, retokenization=5), dict(token=10), dict(token=10),
                  dict(token=10)], gelu)
    got = _claims(m)
    assert m.late_retokenization.diff < 0 < m.late_retokenization.hi
    assert got["late_retokenization"].verdict == C.INCONCLUSIVE
    assert m.middle_token_class.hi <= 0
    assert got["middle_abstract"].verdict == C.NOT_REPRODUCED
    # And the other way round: no re-tokenization in the last layer against 30/30 before it
    # (not reproduced); no token-class neuron anywhere (no difference: inconclusive).
    m = _measure([dict(retokenization=10), dict(retokenization=10), dict(retokenization=10),
                  dict(token=10)], gelu)
    got = _claims(m)
    assert m.late_retokenization.hi <= 0
    assert got["late_retokenization"].verdict == C.NOT_REPRODUCED
    assert m.middle_token_class.diff == 0 < m.middle_token_class.hi
    assert got["middle_abstract"].verdict == C.INCONCLUSIVE
    # A group without interpretable neurons: not testable.
    got = _claims(_measure([dict(token=3), {}, {}, {}], gelu))
    assert got["late_retokenization"].verdict == C.NOT_TESTABLE
    assert got["middle_abstract"].verdict == C.NOT_TESTABLE


def test_layer_claims_without_a_deep_enough_model():
    two = N.layers_measurements(_Ctx(), pair=("2L-solu_ln", "2L-gelu"),
                                rows=[_role_row("2L-solu_ln", 0, 2, token=2, retokenization=1),
                                      _role_row("2L-solu_ln", 1, 2, retokenization=2, token=1),
                                      _role_row("2L-gelu", 0, 2), _role_row("2L-gelu", 1, 2)])
    got = _claims(two)
    assert two.middle_token_class is None and got["middle_abstract"].verdict == C.NOT_TESTABLE
    assert "2 layers" in got["middle_abstract"].sentence
    assert got["late_retokenization"].verdict == C.PARTLY  # 2/3 vs 1/3, interval wide
    none = N.LayersMeasurements(None, None)
    got = N.chapter6_claims(none)
    assert [c.id for c in got] == [c.id for c in REG.CLAIMS
                                   if c.chapter == "06-neurons-across-layers"]
    assert {c.verdict for c in got} == {C.NOT_TESTABLE}


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
    # At tiny scale few models have interpretable neurons: the first of these that does.
    candidates = ("1L-gelu", "1L-gelu_ln", "1L-solu")
    name = next((n for n in candidates if any(r.interpretable for r in ctx.scores(n).records)),
                None)
    assert name is not None, f"one of the tiny {candidates} should have interpretable neurons"
    scores = ctx.scores(name)
    good = {(r.layer, r.neuron) for r in scores.records if r.interpretable}
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
def test_next_token_agreement_matches_one_neuron_at_a_time(ctx, monkeypatch):
    from solu_repro.interp.view import direct_logit_effect

    name = "1L-gelu_ln"
    run = ctx.run(name)
    model, corpus, harvest = run.load_model(), run.corpus(), ctx.harvest(name)
    records = [r for r in ctx.scores(name).records if not r.dead][:12]
    monkeypatch.setattr(N, "AGREEMENT_CHUNK", 5)  # several chunks of one layer
    fast = N.next_token_agreement(model, corpus, harvest, records + records[:3])
    assert set(fast) == {(r.layer, r.neuron) for r in records}
    split = corpus.split(harvest.meta.get("split", "val"))
    for r in records:
        effect = direct_logit_effect(model, r.layer, r.neuron)
        below = {t: float((effect < effect[t]).sum() + ((effect == effect[t]).sum() - 1) / 2)
                 for t in range(len(effect))}
        nxt = [int(split.window(e.position(harvest.n_ctx) + 1, 1)[0])
               for e in harvest.top_examples(r.layer, r.neuron, "post")]
        want = sum(below[t] for t in nxt) / len(nxt) / (len(effect) - 1)
        assert fast[(r.layer, r.neuron)] == pytest.approx(want)


@pytest.mark.slow
def test_one_layer_measurements_cover_every_seed(ctx):
    m = N.one_layer_measurements(ctx, n_random=16)
    assert m.seeds == ctx.seeds("1L-solu_ln") and len(m.seeds) >= 2
    groups = {(a.model, a.group): a for a in m.agreement}
    for name in m.seeds + ["1L-gelu"]:
        scores = ctx.scores(name)
        assert m.interpretable[name] == sum(r.interpretable for r in scores.records)
        assert groups[(name, "interpretable")].n <= m.interpretable[name]
        assert groups[(name, "random")].n == 16
        assert 0 <= groups[(name, "random")].median <= 1
    (claim,) = N.chapter5_claims(m)
    assert claim.verdict in C.VERDICTS and set(claim.values["seeds"]) == set(m.seeds)


@pytest.mark.slow
def test_layers_measurements_match_layer_roles(ctx):
    m = N.layers_measurements(ctx, pair=("2L-solu_ln", "2L-gelu"))
    solu = layer_roles(ctx.scores("2L-solu_ln"), ctx.run("2L-solu_ln").load_model())
    gelu = layer_roles(ctx.scores("2L-gelu"), ctx.run("2L-gelu").load_model())
    early = m.early_detokenization
    assert (early.count, early.n) == (solu[0]["detokenization"], solu[0]["n_neurons"])
    assert (early.other_count, early.other_n) == (gelu[0]["detokenization"],
                                                  gelu[0]["n_neurons"])
    assert early.n == ctx.run("2L-solu_ln").config.model.d_mlp
    late = m.late_retokenization
    assert late.count == solu[-1]["retokenization"]
    assert late.other_n == solu[0]["n_interpretable"]
    assert m.middle_token_class is None  # two layers have no middle
    assert [c.id for c in N.chapter6_claims(m)] == ["early_detokenization",
                                                    "late_retokenization", "middle_abstract"]
    assert m.to_dict()["solu"] == "2L-solu_ln"
