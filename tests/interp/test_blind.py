"""The blinded human evaluation (paper §6.1): sampling, blinding, crash safety, resume,
unblinding arithmetic, the terminal loop (quitting at every prompt) and the notebook app."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest

from solu_repro.data import build_dataset
from solu_repro.interp.blind import (
    HYPOTHESIS_PROMPT,
    INSTRUCTION,
    JUDGMENTS_NAME,
    KEYS,
    MANIFEST_NAME,
    PROMPT,
    BlindApp,
    BlindError,
    BlindModel,
    BlindSession,
    ModelShape,
    SnippetRenderer,
    TornLineWarning,
    add_blind_arguments,
    judge_loop,
    judgments_by_neuron,
    run_blind_cli,
    sample_items,
    unblind,
)
from solu_repro.interp.harvest import harvest
from solu_repro.interp.stats import difference_interval, wilson_interval
from solu_repro.model import ModelConfig, Transformer

from solu_repro.zoo import SCALES

SMALL_DATA = SCALES["tiny"].data

NAMES = ("1L-gelu", "1L-solu_ln")
I, N, S = "interpretable", "not_interpretable", "skip"


class FakeRenderer:
    """Shows only the item id: enough to drive the session logic without a model."""

    def __init__(self):
        self.shown = []

    def html(self, item):
        self.shown.append(item.item)
        return f"<p>snippets of {item.item}</p>"

    def text(self, item):
        self.shown.append(item.item)
        return f"snippets of {item.item}"


def shapes(**sizes):
    return {name: ModelShape(*shape) for name, shape in sizes.items()}


def small_session(tmp_path, n=5, seed=0):
    entries = {"A": ModelShape(2, 16), "B": ModelShape(1, 8)}
    return BlindSession.create(tmp_path / "session", entries, n_per_model=n, seed=seed)


@pytest.fixture(scope="module")
def tiny_models(data_dir):
    """Two random-init 1-layer models with a real harvest each, named like zoo models."""
    corpus = build_dataset(SMALL_DATA, data_dir, progress=False)
    out = {}
    for name in NAMES:
        act = name.split("-", 1)[1]
        model = Transformer(ModelConfig(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=32,
                                        d_vocab=SMALL_DATA.vocab_size, n_ctx=32, act_fn=act))
        h = harvest(model, corpus.split("val"), 32, corpus.bos_id, k=6, max_rows=24,
                    progress=False, meta={"name": name, "act_fn": act})
        out[name] = BlindModel(model.eval(), corpus, h)
    return out


# --- sampling ----------------------------------------------------------------------------------
def test_sampling_is_seeded_balanced_and_shuffled():
    sizes = shapes(A=(3, 40), B=(2, 50))
    items = sample_items(sizes, 30, seed=7)
    assert items == sample_items(sizes, 30, seed=7)
    assert items != sample_items(sizes, 30, seed=8)
    assert [it.item for it in items] == [f"item-{i:03d}" for i in range(60)]
    for name, shape in sizes.items():
        mine = [(it.layer, it.neuron) for it in items if it.model == name]
        assert len(mine) == 30 and len(set(mine)) == 30
        assert all(0 <= l < shape.n_layers and 0 <= n < shape.d_mlp for l, n in mine)
    assert len({it.layer for it in items if it.model == "A"}) == 3  # across all layers
    order = "".join(it.model for it in items)
    assert "A" * 30 not in order and "B" * 30 not in order  # interleaved, not in blocks
    # A model's draw does not depend on which other models are in the session.
    alone = sample_items(shapes(A=(3, 40)), 30, seed=7)
    assert {it.key for it in alone} == {it.key for it in items if it.model == "A"}


def test_layers_restriction_and_sampling_errors():
    items = sample_items(shapes(A=(4, 10)), 10, seed=0, layers=[2, 3])
    assert {it.layer for it in items} <= {2, 3}
    with pytest.raises(BlindError, match="only 20 in layers"):
        sample_items(shapes(A=(4, 10)), 21, seed=0, layers=[2, 3])
    with pytest.raises(BlindError, match="cannot sample 61 neurons from model 'A'.*lower --n"):
        sample_items(shapes(A=(1, 60)), 61, seed=0)
    with pytest.raises(BlindError, match="layers \\[1\\] do not exist"):
        sample_items(shapes(A=(1, 60)), 5, seed=0, layers=[1])


def test_create_writes_a_reproducible_manifest(tmp_path):
    entries = {"A": ModelShape(2, 16), "B": ModelShape(1, 8)}
    s = BlindSession.create(tmp_path / "one", entries, n_per_model=5, seed=3, n_examples=7)
    manifest = json.loads((tmp_path / "one" / MANIFEST_NAME).read_text())
    assert manifest["instruction"] == INSTRUCTION
    assert manifest["settings"]["n_per_model"] == 5 and manifest["settings"]["n_examples"] == 7
    assert len(manifest["items"]) == 10
    assert {"item", "model", "layer", "neuron"} == set(manifest["items"][0])
    again = BlindSession.create(tmp_path / "two", entries, n_per_model=5, seed=3, n_examples=7)
    assert again.items == s.items
    # Same settings at the same path: reopened, not resampled.
    assert BlindSession.create(tmp_path / "one", entries, n_per_model=5, seed=3,
                               n_examples=7).manifest_hash == s.manifest_hash
    with pytest.raises(BlindError, match="seed: session has 3, asked for 4.*another path.*resume"):
        BlindSession.create(tmp_path / "one", entries, n_per_model=5, seed=4, n_examples=7)


def test_paper_instruction_is_verbatim():
    assert ("80% or more of the strongest firings can be explained by a single rule or "
            "category (e.g. the word “apple,\" or any phrase relating to music)") in INSTRUCTION
    assert "INTERPRETABLE" in INSTRUCTION and "NOT INTERPRETABLE otherwise" in INSTRUCTION


# --- judgments: resume, supersede, crash safety --------------------------------------------------
def test_resume_supersede_and_several_evaluators(tmp_path):
    s = small_session(tmp_path)
    items = s.items
    s.record(items[0].item, "interpretable", "ann", "the word apple")
    s.record(items[1], "skip", "ann")
    s.record(items[0], "not_interpretable", "bob")
    again = BlindSession.open(s.path)
    assert again.next_item("ann") == items[2]  # a skip counts as judged
    assert again.next_item("bob") == items[1]
    assert again.next_item("carol") == items[0]
    assert again.progress("ann") == (2, 10)
    again.record(items[0], "not_interpretable", "ann")  # re-judging supersedes
    assert BlindSession.open(s.path).judged("ann")[items[0].item].judgment == "not_interpretable"
    assert [j.evaluator for j in again.judgments] == ["ann", "ann", "bob", "ann"]
    assert again.evaluators() == ["ann", "bob"]
    lines = (s.path / JUDGMENTS_NAME).read_text().splitlines()
    first = json.loads(lines[0])
    assert first["hypothesis"] == "the word apple" and first["manifest"] == s.manifest_hash
    assert first["judgment"] == "interpretable" and first["time"]


def test_torn_last_line_is_ignored_and_the_next_write_stays_whole(tmp_path):
    s = small_session(tmp_path)
    for it in s.items[:3]:
        s.record(it, "interpretable", "ann")
    path = s.path / JUDGMENTS_NAME
    whole = path.read_bytes()
    # A crash in the middle of writing the fourth line.
    torn = json.dumps({"item": s.items[3].item, "judgment": "interpretable"})[:25]
    path.write_bytes(whole + torn.encode())
    with pytest.warns(TornLineWarning, match="incomplete line"):
        resumed = BlindSession.open(s.path)
    assert len(resumed.judgments) == 3 and resumed.next_item("ann") == s.items[3]
    resumed.record(s.items[3], "skip", "ann")
    with pytest.warns(TornLineWarning):
        reopened = BlindSession.open(s.path)
    assert reopened.judged("ann")[s.items[3].item].judgment == "skip"
    assert reopened.next_item("ann") == s.items[4]
    # A write cut inside a multi-byte character is a torn line too, not a crash.
    path.write_bytes(whole + "{\"hypothesis\": \"é".encode()[:-1])
    with pytest.warns(TornLineWarning):
        assert len(BlindSession.open(s.path).judgments) == 3


WRITER = textwrap.dedent("""
    import sys, time
    from solu_repro.interp.blind import BlindSession
    s = BlindSession.open(sys.argv[1])
    print("ready", flush=True)
    for item in s.items:
        s.record(item, "interpretable", "bot", hypothesis="x" * 4000)
        print(item.item, flush=True)
        time.sleep(0.01)
    time.sleep(60)
""")


@pytest.mark.slow
def test_killed_writer_loses_no_confirmed_judgment(tmp_path):
    s = BlindSession.create(tmp_path / "session", {"A": ModelShape(1, 100)}, n_per_model=60)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(s.path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        confirmed = [proc.stdout.readline().strip() for _ in range(8)]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornLineWarning)  # the kill may land mid-line
        resumed = BlindSession.open(s.path)
    judged = resumed.judged("bot")
    assert set(confirmed) <= set(judged)
    m = len(judged)
    assert [it.item for it in s.items[:m]] == list(judged)  # an unbroken prefix
    assert resumed.next_item("bot") == (s.items[m] if m < len(s.items) else None)
    assert all(j.hypothesis == "x" * 4000 for j in judged.values())


# --- errors ------------------------------------------------------------------------------------
def test_judgments_from_another_session_are_refused(tmp_path):
    a = small_session(tmp_path / "a", seed=0)
    b = small_session(tmp_path / "b", seed=1)
    a.record(a.items[0], "interpretable", "ann")
    (b.path / JUDGMENTS_NAME).write_bytes((a.path / JUDGMENTS_NAME).read_bytes())
    with pytest.raises(BlindError, match="different session.*does not match manifest.json"):
        BlindSession.open(b.path)


def test_damaged_or_missing_sessions_are_clear_errors(tmp_path):
    with pytest.raises(BlindError, match="no blind session.*create one"):
        BlindSession.open(tmp_path / "nowhere")
    s = small_session(tmp_path)
    (s.path / MANIFEST_NAME).write_text("{ not json")
    with pytest.raises(BlindError, match="does not parse.*restore it"):
        BlindSession.open(s.path)
    (s.path / MANIFEST_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BlindError, match="not a blind-session manifest"):
        BlindSession.open(s.path)
    lost = tmp_path / "lost"
    lost.mkdir()
    (lost / JUDGMENTS_NAME).write_text("")
    with pytest.raises(BlindError, match="no manifest.json"):
        BlindSession.create(lost, {"A": ModelShape(1, 8)}, n_per_model=2)
    assert issubclass(BlindError, ValueError)


def test_bad_records_and_settings_are_refused(tmp_path):
    s = small_session(tmp_path)
    with pytest.raises(BlindError, match="judgment must be one of"):
        s.record(s.items[0], "maybe", "ann")
    with pytest.raises(BlindError, match="no item 'item-999'"):
        s.record("item-999", "skip", "ann")
    with pytest.raises(BlindError, match="evaluator name is required"):
        s.record(s.items[0], "skip", "  ")
    assert not (s.path / JUDGMENTS_NAME).exists()
    with pytest.raises(BlindError, match="n_per_model must be an integer >= 1"):
        BlindSession.create(tmp_path / "x", {"A": ModelShape(1, 8)}, n_per_model=0)
    with pytest.raises(BlindError, match="hook must be"):
        BlindSession.create(tmp_path / "x", {"A": ModelShape(1, 8)}, hook="pre")
    with pytest.raises(BlindError, match="no models"):
        BlindSession.create(tmp_path / "x", {})
    with pytest.raises(BlindError, match="expected a BlindModel"):
        BlindSession.create(tmp_path / "x", {"A": object()})


# --- unblinding ----------------------------------------------------------------------------------
def judge_model(session, model, evaluator, answers):
    mine = [it for it in session.items if it.model == model]
    for it, answer in zip(mine, answers):
        session.record(it, answer, evaluator)


def test_unblind_arithmetic_matches_hand_computed_intervals(tmp_path):
    s = BlindSession.create(tmp_path / "s", {"gelu": ModelShape(1, 50), "solu": ModelShape(1, 50)},
                            n_per_model=10, seed=1)
    judge_model(s, "gelu", "ann", [I] * 3 + [N] * 6 + [S])
    judge_model(s, "solu", "ann", [N] * 10)
    judge_model(s, "solu", "ann", [I] * 7 + [N] * 3)  # superseded: 7 of 10
    report = unblind(s)
    g, u = report.model("gelu"), report.model("solu")
    assert (g.n_interpretable, g.n_judged, g.n_skipped, g.n_pending) == (3, 9, 1, 0)
    assert (u.n_interpretable, u.n_judged, u.n_skipped) == (7, 10, 0)
    # Wilson 3/9 by hand: centre (1/3 + z²/18)/(1 + z²/9) = 0.38320, half-width 0.26261.
    assert (g.fraction_interpretable.lo, g.fraction_interpretable.hi) == pytest.approx(
        (0.12058, 0.64580), abs=1e-4)
    assert (u.fraction_interpretable.lo, u.fraction_interpretable.hi) == pytest.approx(
        (0.39678, 0.89221), abs=1e-4)
    [d] = report.differences
    assert (d.model_a, d.model_b) == ("solu", "gelu")  # later minus earlier: SoLU - baseline
    assert (d.diff, d.lo, d.hi) == pytest.approx((0.36667, -0.06874, 0.65338), abs=1e-4)
    assert (d.diff, d.lo, d.hi) == pytest.approx(difference_interval(7, 10, 3, 9))
    md = report.to_markdown()
    assert "| gelu | 9 | 3 | 33.3% | 12.1% – 64.6% | 1 | 0 |" in md
    assert "| solu − gelu | +36.7 pp | -6.9 to +65.3 pp |" in md
    assert json.loads(json.dumps(report.to_dict()))["models"][0]["n_judged"] == 9
    empty = unblind(BlindSession.create(tmp_path / "empty", {"a": ModelShape(1, 5)}, n_per_model=2))
    assert empty.to_dict()["models"][0]["fraction_interpretable"]["fraction"] is None
    assert "n/a" in empty.to_markdown() and "nobody yet" in empty.to_markdown()
    json.dumps(empty.to_dict(), allow_nan=False)


def test_unblind_per_evaluator_agreement_and_majority(tmp_path):
    s = BlindSession.create(tmp_path / "s", {"A": ModelShape(1, 50), "B": ModelShape(1, 50)},
                            n_per_model=4, seed=2)
    judge_model(s, "A", "ann", [I, I, N, N])
    judge_model(s, "B", "ann", [I, I, I, S])
    judge_model(s, "A", "bob", [I, N, N, N])
    judge_model(s, "B", "bob", [I, N, I, I])
    judge_model(s, "A", "cat", [N, N])  # cat stopped half-way through A
    report = unblind(s)
    assert report.evaluators == ["ann", "bob", "cat"]
    a = report.model("A")
    assert (a.n_interpretable, a.n_judged, a.n_pending) == (3, 10, 12 - 10)
    assert report.model("B", "bob").fraction_interpretable.fraction == pytest.approx(0.75)
    assert report.model("B", "ann").n_skipped == 1
    lo, hi = wilson_interval(3, 3)  # the skip is left out of the denominator
    assert report.model("B", "ann").fraction_interpretable.lo == pytest.approx(lo)
    ann_bob = report.agreement[0]
    # Both judged 7 items (ann skipped one): ann I,I,N,N,I,I,I vs bob I,N,N,N,I,N,I.
    assert (ann_bob.evaluator_a, ann_bob.evaluator_b, ann_bob.n_items) == ("ann", "bob", 7)
    assert ann_bob.agreement == pytest.approx(5 / 7)
    # p_e = (5/7)(3/7) + (2/7)(4/7) = 23/49; kappa = (5/7 - 23/49)/(1 - 23/49) = 12/26.
    assert ann_bob.kappa == pytest.approx(12 / 26)
    md = report.to_markdown()
    assert "### Evaluator bob" in md and "Cohen's kappa" in md and "too narrow" in md
    votes = judgments_by_neuron(s)
    items_a = [it for it in s.items if it.model == "A"]
    # Item A0: ann I, bob I, cat N -> I. A1: I, N, N -> N. A2, A3: N.
    assert [votes[it.key] for it in items_a] == [True, False, False, False]
    items_b = [it for it in s.items if it.model == "B"]
    # B1: ann I, bob N -> tie, left out. B3: ann skip, bob I -> I.
    assert items_b[1].key not in votes and votes[items_b[3].key] is True
    assert judgments_by_neuron(s, "bob")[items_b[1].key] is False


# --- rendering and blinding --------------------------------------------------------------------
def test_snippets_are_blind(tmp_path, tiny_models):
    s = BlindSession.create(tmp_path / "s", tiny_models, n_per_model=4, n_examples=5)
    renderer = SnippetRenderer(s, tiny_models)
    # Sampling needs only the harvests; rendering later with the full entries matches them.
    bare = BlindSession.create(tmp_path / "bare", {n: m.harvest for n, m in tiny_models.items()},
                               n_per_model=4, n_examples=5)
    assert bare.settings == s.settings and bare.items == s.items
    SnippetRenderer(bare, tiny_models)
    for item in s.items:
        shown = renderer.html(item) + renderer.text(item)
        for secret in (*NAMES, "solu_ln", f"L{item.layer}N{item.neuron}"):
            assert secret not in shown
        assert "[[" in renderer.text(item)
        # Hover values are relative to the strongest firing: no absolute activation scale.
        values = [float(v) for v in re.findall(r'title="([-0-9.e+]+)"', renderer.html(item))]
        assert values and max(values) == pytest.approx(1.0)


def test_renderer_refuses_a_different_model(tmp_path, tiny_models):
    s = BlindSession.create(tmp_path / "s", tiny_models, n_per_model=2)
    with pytest.raises(TypeError, match="first argument must be the BlindSession"):
        SnippetRenderer(tiny_models, s)  # the arguments swapped, as chapter 4 once did
    with pytest.raises(BlindError, match="needs models"):
        SnippetRenderer(s, {"1L-gelu": tiny_models["1L-gelu"]})
    swapped = {"1L-gelu": tiny_models["1L-gelu"], "1L-solu_ln": tiny_models["1L-gelu"]}
    s2 = BlindSession.create(tmp_path / "s2", {n: ModelShape(1, 32) for n in NAMES}, n_per_model=2)
    with pytest.raises(BlindError, match="not the one this session sampled from"):
        SnippetRenderer(s2, swapped)


# --- the command line --------------------------------------------------------------------------
def parse(*argv):
    parser = argparse.ArgumentParser()
    add_blind_arguments(parser)
    return parser.parse_args(list(argv))


class Script:
    """A scripted ``input``: answers in order, then end of input."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.prompts = []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


def test_cli_judge_quit_resume_finish_unblind(tmp_path, tiny_models):
    loads = []

    def load(names, scale, runs_dir, data_dir, k):
        loads.append((tuple(names), scale, k))
        return {n: tiny_models[n] for n in names}

    out = []
    session = str(tmp_path / "s")
    first = parse("--session", session, "--scale", "tiny", "--models", *NAMES, "--n", "3",
                  "--n-examples", "4", "--evaluator", "ann", "--no-color")
    script = Script("i", "a rule", "maybe", "n", "", "q")
    assert run_blind_cli(first, script, out.append, load) == 0
    assert loads == [(NAMES, "tiny", 20)]
    s = BlindSession.open(session)
    assert [j.judgment for j in s.judgments] == ["interpretable", "not_interpretable"]
    assert s.judgments[0].hypothesis == "a rule" and s.judgments[0].seconds is not None
    assert s.meta == {"scale": "tiny"} and len(s.items) == 6
    assert any("please answer" in str(o) for o in out)
    assert any("2 / 6 judged" in str(o) for o in out) and INSTRUCTION in "\n".join(map(str, out))

    resume = parse("--session", session, "--evaluator", "ann", "--no-color")
    # The last "i" meets end of input at its hypothesis prompt: recorded, then all are judged.
    script = Script("s", "i any phrase relating to music", "n", "", "i")
    assert run_blind_cli(resume, script, out.append, load) == 0
    assert loads[-1] == (NAMES, "tiny", 20)
    assert "all 6 neurons judged by ann" in str(out[-1])
    judged = BlindSession.open(session).judged("ann")
    assert [j.judgment for j in judged.values()] == [
        "interpretable", "not_interpretable", "skip", "interpretable", "not_interpretable",
        "interpretable"]
    assert list(judged.values())[3].hypothesis == "any phrase relating to music"
    shown = "\n".join(map(str, out))
    assert not any(name in shown for name in NAMES)  # blind until unblinded

    n_loads = len(loads)
    assert run_blind_cli(resume, Script(), out.append, load) == 0
    assert len(loads) == n_loads  # done: models are not loaded again
    out.clear()
    assert run_blind_cli(parse("--session", session, "--unblind"), Script(), out.append) == 0
    report = out[-1]
    assert "1L-gelu" in report and "1L-solu_ln −" in report and "pending" in report


def test_cli_errors(tmp_path, tiny_models):
    def load(names, scale, runs_dir, data_dir, k):
        return {n: tiny_models[n] for n in names}

    session = str(tmp_path / "s")
    with pytest.raises(BlindError, match="unknown model.*'3L-relu'.*choose from"):
        run_blind_cli(parse("--session", session, "--scale", "tiny", "--models", "3L-relu"),
                      Script(), print, load)
    with pytest.raises(BlindError, match="cannot sample 40 neurons.*only 32"):
        run_blind_cli(parse("--session", session, "--scale", "tiny", "--models", *NAMES,
                            "--n", "40"), Script(), print, load)
    run_blind_cli(parse("--session", session, "--scale", "tiny", "--models", *NAMES, "--n", "2"),
                  Script("q"), print, load)
    with pytest.raises(BlindError, match="created with --seed 0, not 5.*drop the option"):
        run_blind_cli(parse("--session", session, "--seed", "5"), Script(), print, load)
    with pytest.raises(BlindError, match="no blind session"):
        run_blind_cli(parse("--session", str(tmp_path / "none"), "--unblind"), Script(), print)

    def interrupt(prompt):
        raise KeyboardInterrupt

    out = []
    assert run_blind_cli(parse("--session", session), interrupt, out.append, load) == 130
    assert "saved" in out[-1] and "resume" in out[-1]


# --- the terminal loop: quitting at every prompt ------------------------------------------------
def on_disk(session, evaluator="ann"):
    """``item index -> (judgment, hypothesis)`` as a reopened session reads them back."""
    index = {it.item: i for i, it in enumerate(session.items)}
    return {index[item]: (j.judgment, j.hypothesis)
            for item, j in BlindSession.open(session.path).judged(evaluator).items()}


@pytest.mark.parametrize("word", ["q", "Q", "quit", "exit", "  q  "])
def test_quit_at_the_judgment_prompt_keeps_what_was_judged(tmp_path, word):
    s = small_session(tmp_path, n=2)
    out = []
    script = Script("i", "rule one", "n", "", word, "i", "never read")
    assert judge_loop(s, FakeRenderer(), "ann", script, out.append) == 0
    assert on_disk(s) == {0: (I, "rule one"), 1: (N, "")}
    assert script.answers == ["i", "never read"] and script.prompts[-1] == PROMPT
    assert "saved 2 judgment(s)" in out[-1] and "resume" in out[-1]


@pytest.mark.parametrize("word", ["q", "QUIT", "exit", " q "])
def test_quit_at_the_hypothesis_prompt_records_the_judgment_not_the_word(tmp_path, word):
    s = small_session(tmp_path, n=2)
    out = []
    script = Script("n", word, "i", "never read")
    assert judge_loop(s, FakeRenderer(), "ann", script, out.append) == 0
    assert on_disk(s) == {0: (N, "")}
    assert script.prompts == [PROMPT, HYPOTHESIS_PROMPT]
    assert script.answers == ["i", "never read"]
    assert "saved 1 judgment(s)" in out[-1]


@pytest.mark.parametrize("answers, prompts, expected", [
    # End of input at the judgment prompt.
    (["i", "first"], [PROMPT, HYPOTHESIS_PROMPT, PROMPT], {0: (I, "first")}),
    # At the hypothesis prompt: the judgment just given is kept.
    (["i", "first", "n"], [PROMPT, HYPOTHESIS_PROMPT, PROMPT, HYPOTHESIS_PROMPT],
     {0: (I, "first"), 1: (N, "")}),
    # At the judgment prompt asked again after an answer it did not understand.
    (["i", "first", "maybe"], [PROMPT, HYPOTHESIS_PROMPT, PROMPT, PROMPT], {0: (I, "first")}),
])
def test_end_of_input_at_any_prompt_quits_and_keeps_what_was_answered(tmp_path, answers,
                                                                      prompts, expected):
    s = small_session(tmp_path, n=2)
    out = []
    script = Script(*answers)
    assert judge_loop(s, FakeRenderer(), "ann", script, out.append) == 0
    assert script.prompts == prompts  # nothing is asked after the end of input
    assert on_disk(s) == expected
    assert f"saved {len(expected)} judgment(s)" in out[-1]


def test_a_hypothesis_that_is_a_quit_word_goes_on_the_judgment_line(tmp_path):
    s = small_session(tmp_path, n=2)
    out = []
    script = Script("i q", "n quit", "s", "i", "the letter q")
    assert judge_loop(s, FakeRenderer(), "ann", script, out.append) == 0
    assert on_disk(s) == {0: (I, "q"), 1: (N, "quit"), 2: (S, ""), 3: (I, "the letter q")}
    assert out[0] == KEYS and "i q" in KEYS  # the loop says how, before the first neuron
    assert "all 4 neurons judged by ann" in out[-1]


def test_quit_then_resume_continues_at_the_next_unjudged_neuron(tmp_path):
    s = small_session(tmp_path, n=2)
    first = FakeRenderer()
    # Quit at the third neuron's hypothesis prompt: its judgment is the third one kept.
    assert judge_loop(s, first, "ann", Script("i", "apple", "s", "n", "q"), print) == 0
    assert first.shown == [it.item for it in s.items[:3]]
    second, out = FakeRenderer(), []
    assert judge_loop(BlindSession.open(s.path), second, "ann", Script("n", ""), out.append) == 0
    assert second.shown == [s.items[3].item]
    assert on_disk(s) == {0: (I, "apple"), 1: (S, ""), 2: (N, ""), 3: (N, "")}
    assert "all 4 neurons judged by ann" in out[-1]


def test_ctrl_c_quits_at_once_without_the_neuron_on_screen(tmp_path):
    s = small_session(tmp_path, n=2)
    typed = iter(["i", "apple", "n"])

    def interrupted_at_the_second_hypothesis(prompt):
        try:
            return next(typed)
        except StopIteration:
            raise KeyboardInterrupt from None

    out = []
    assert judge_loop(s, FakeRenderer(), "ann", interrupted_at_the_second_hypothesis,
                      out.append) == 130
    assert on_disk(s) == {0: (I, "apple")}
    assert "1 judgment(s) are saved" in out[-1]


def test_piped_answers_through_the_real_input(tmp_path, monkeypatch, capsys):
    s = small_session(tmp_path, n=2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("i\nthe word q\nn\n"))
    assert judge_loop(s, FakeRenderer(), "ann") == 0  # end of input at the 2nd hypothesis
    assert on_disk(s) == {0: (I, "the word q"), 1: (N, "")}
    printed = capsys.readouterr().out
    assert HYPOTHESIS_PROMPT in printed and "saved 2 judgment(s)" in printed


# --- the notebook app --------------------------------------------------------------------------
def test_app_buttons_append_and_advance(tmp_path):
    s = small_session(tmp_path, n=2)
    renderer = FakeRenderer()
    app = BlindApp(s, renderer, evaluator="ann")
    assert "0 / 4" in app.progress.value and s.items[0].item in app.snippets.value
    assert "80% or more of the strongest firings" in app.instruction.value
    app.hypothesis.value = "the word apple"
    app.buttons["interpretable"].click()
    lines = (s.path / JUDGMENTS_NAME).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["hypothesis"] == "the word apple"
    assert app.hypothesis.value == "" and "1 / 4" in app.progress.value
    assert app.current == s.items[1]
    app.buttons["skip"].click()
    app.buttons["not_interpretable"].click()
    # A reopened app (e.g. after the notebook was closed) resumes where it stopped.
    app2 = BlindApp(BlindSession.open(s.path), renderer, evaluator="ann")
    assert app2.current == s.items[3] and "3 / 4" in app2.progress.value
    app2.buttons["interpretable"].click()
    assert app2.current is None and app2.judging.layout.display == "none"
    assert app2.finished.layout.display != "none"
    app2.unblind_button.click()
    assert "A" in app2.report.value and "fraction" in app2.report.value
    assert [json.loads(l)["judgment"] for l in
            (s.path / JUDGMENTS_NAME).read_text().splitlines()] == [
        "interpretable", "skip", "not_interpretable", "interpretable"]
    # Another evaluator starts from the beginning; no name means no judging.
    app2.evaluator_box.value = "bob"
    assert app2.current == s.items[0] and "0 / 4" in app2.progress.value
    app2.evaluator_box.value = ""
    app2.buttons["interpretable"].click()
    assert "Enter your name" in app2.message.value
    assert len(BlindSession.open(s.path).judgments) == 4


def test_app_with_real_snippets_is_blind(tmp_path, tiny_models):
    s = BlindSession.create(tmp_path / "s", tiny_models, n_per_model=2, n_examples=4)
    app = BlindApp(s, SnippetRenderer(s, tiny_models), evaluator="ann")
    assert "solu-snippets" in app.snippets.value
    app.buttons["not_interpretable"].click()
    assert s.judged("ann")[s.items[0].item].judgment == "not_interpretable"
    shown = app.snippets.value + app.progress.value + app.instruction.value
    assert not any(name in shown for name in NAMES)
