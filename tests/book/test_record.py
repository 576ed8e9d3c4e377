"""The record of scored claims (saved by each chapter, loaded by chapter 9) and the scorecard
that renders it."""

from __future__ import annotations

import json

import pytest

from solu_repro.book import book_context, checks, record, scorecard
from solu_repro.paper import claim as C
from solu_repro.paper import registry as REG


def _all_scored(verdict=C.NOT_TESTABLE):
    return [spec.scored(f"ours for <{spec.id}> & co", verdict) for spec in REG.CLAIMS]


@pytest.fixture
def fixed_package(monkeypatch):
    """A fixed package digest: the tests change it on purpose, nothing else may (the tree
    may be edited while they run)."""
    digest = {"value": "package-0"}
    monkeypatch.setattr(record.keys, "package_digest", lambda: digest["value"])
    return digest


def test_record_and_load_round_trip_and_refuse_what_is_missing_or_stale(tmp_path,
                                                                        fixed_package):
    ctx = book_context(scale="tiny", runs_dir=tmp_path, progress=False)
    rows = _all_scored()
    with pytest.raises(record.MissingClaims, match="03-performance") as err:
        record.load(ctx)
    assert "solu-repro book" in str(err.value)
    for chapter in REG.CHAPTERS:
        record.save(ctx, chapter, [r for r in rows if r.chapter == chapter])
    loaded = record.load(ctx)
    assert [c.to_dict() for c in loaded] == [r.to_dict() for r in rows]
    assert not scorecard.missing(loaded)
    # a chapter must score exactly its own claims
    with pytest.raises(ValueError, match="missing"):
        record.save(ctx, "03-performance", [r for r in rows if r.id == "loss_parity"])
    with pytest.raises(ValueError, match="foreign"):
        record.save(ctx, "03-performance", [r for r in rows if r.chapter in
                                         ("03-performance", "02-solu-design")])
    # claims saved for another zoo are stale; a corrupt file is named
    path = record.claims_dir(ctx) / "07-layernorm.json"
    payload = json.loads(path.read_text())
    path.write_text(json.dumps({**payload, "key": {**payload["key"], "zoo": "0" * 16}}))
    with pytest.raises(record.StaleClaims, match="07-layernorm.*another zoo"):
        record.load(ctx)
    path.write_text("{not json")
    with pytest.raises(record.MissingClaims, match="unreadable"):
        record.load(ctx)


CH4 = "04-interpretability-quantitative"


def _save_all(ctx):
    rows = _all_scored()
    for chapter in REG.CHAPTERS:
        record.save(ctx, chapter, [r for r in rows if r.chapter == chapter])
    return rows


def _ch4(rows):
    return [r for r in rows if r.chapter == CH4]


def test_the_key_holds_every_parameter_but_the_presentation_ones(tmp_path, fixed_package):
    ctx = book_context(scale="tiny", runs_dir=tmp_path / "runs", progress=False)
    record.save(ctx, CH4, _ch4(_all_scored()))
    key = json.loads((record.claims_dir(ctx) / f"{CH4}.json").read_text())["key"]
    assert set(key) == {"parameters", "zoo", "package", "notebook"}
    assert key["parameters"] == {"scale": "tiny", "seed": 0, "blind_session": "my-session",
                                 "blind_n": 60,
                                 "runs_dir": str((tmp_path / "runs").resolve())}
    assert key["package"] == "package-0" and key["zoo"] == record.zoo_fingerprint(ctx)
    assert key["notebook"] == record.keys.notebook_digest(record.notebook_path(CH4))
    # the names a notebook passes are checked against its parameters cell
    params = record.default_parameters(ctx, CH4)
    with pytest.raises(ValueError, match=r"missing blind_n.*unknown n_random"):
        record.save(ctx, CH4, _ch4(_all_scored()),
                    parameters={**{k: v for k, v in params.items() if k != "blind_n"},
                                "n_random": 3})
    # presentation-only parameters change no key
    record.save(ctx, CH4, _ch4(_all_scored()),
                parameters={**params, "interactive": False, "start_blind_app": True,
                            "models": ["tl:solu-1l"]})
    record.load(ctx, [CH4])


@pytest.mark.parametrize("part", ["parameters", "zoo", "package", "notebook"])
def test_load_refuses_a_record_made_from_other_inputs_naming_what_differs(
        tmp_path, fixed_package, monkeypatch, part):
    ctx = book_context(scale="tiny", runs_dir=tmp_path / "runs", progress=False)
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    source = record.notebook_path(CH4)
    (nbs / source.name).write_text(source.read_text())
    monkeypatch.setattr(record.keys, "notebooks_dir", lambda: nbs)
    rows = _ch4(_all_scored())
    params = record.default_parameters(ctx, CH4)
    if part == "parameters":   # a hand run: papermill ... -p seed 1 -p blind_n 5
        record.save(ctx, CH4, rows, parameters={**params, "seed": 1, "blind_n": 5})
    elif part == "zoo":
        monkeypatch.setattr(record.keys, "zoo_fingerprint", lambda scale: "another-zoo")
        record.save(ctx, CH4, rows, parameters=params)
        monkeypatch.undo()
        monkeypatch.setattr(record.keys, "notebooks_dir", lambda: nbs)
        monkeypatch.setattr(record.keys, "package_digest", lambda: "package-0")
    else:
        record.save(ctx, CH4, rows, parameters=params)
    if part in ("package", "notebook"):
        record.load(ctx, [CH4])   # what it was saved from: accepted
    if part == "package":
        fixed_package["value"] = "package-1"
    if part == "notebook":
        text = (nbs / source.name).read_text()
        (nbs / source.name).write_text(text.replace("blind_n = 60", "blind_n = 60 ", 1))
    with pytest.raises(record.StaleClaims) as err:
        record.load(ctx, [CH4])
    message = str(err.value)
    assert f"chapter {CH4}'s saved claims" in message and "\n" not in message
    expected = {"parameters": "they were made with blind_n=5, seed=1, this book uses "
                              "blind_n=60, seed=0",
                "zoo": "made for another zoo",
                "package": "the solu_repro package code changed since",
                "notebook": "its notebook changed since"}[part]
    assert expected in message
    assert sum(p in message for p in ("made with", "another zoo", "package code",
                                      "notebook changed")) == 1
    # the command it names: the book build, which re-executes what it must
    runs = (tmp_path / "runs").resolve()
    assert message.endswith(f"Re-run it: `solu-repro book --scale tiny --runs-dir {runs}`")


def test_chapter_8_by_hand_with_other_parameters_names_the_papermill_runs(tmp_path,
                                                                         fixed_package):
    ctx = book_context(scale="tiny", runs_dir=tmp_path, progress=False)
    _save_all(ctx)
    by_hand = book_context(scale="tiny", runs_dir=tmp_path, progress=False, seed=2)
    with pytest.raises(record.StaleClaims) as err:
        scorecard.scorecard(by_hand)
    message = str(err.value)
    assert all(f"chapter {c}'s saved claims" in message for c in REG.CHAPTERS)
    assert "made with seed=0, this book uses seed=2" in message
    command = message.split("Re-run them: `")[1].rstrip("`")
    assert command.count("papermill ") == len(REG.CHAPTERS)
    assert f"/notebooks/{CH4}.ipynb /tmp/{CH4}.ipynb -p scale tiny -p seed 2 -p runs_dir " \
           f"{tmp_path.resolve()}" in command


def _published(root, chapter, key):
    """An executed chapter of a book in ``root`` as ``solu-repro book`` writes it."""
    path = root / record.keys.EXECUTED / f"{chapter}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [], "metadata": {record.keys.METADATA_KEY: {
        "inputs": {"claims": key}}}}))


def test_in_a_book_build_the_record_is_compared_with_the_published_chapter(tmp_path,
                                                                          fixed_package):
    ctx = book_context(scale="tiny", runs_dir=tmp_path / "runs", progress=False)
    rows = _save_all(ctx)
    root = tmp_path / "book"
    for chapter in REG.CHAPTERS:
        _published(root, chapter, record.claims_key(ctx, chapter))
    assert len(scorecard.scorecard(ctx, book_root=root)) == len(rows)
    # the page of chapter 4 was executed with seed 1: the record at seed 0 does not match it
    seed1 = {**record.default_parameters(ctx, CH4), "seed": 1}
    _published(root, CH4, record.claims_key(ctx, CH4, seed1))
    with pytest.raises(record.StaleClaims) as err:
        scorecard.scorecard(ctx, book_root=root)
    message = str(err.value)
    assert f"chapter {CH4}'s saved claims" in message and "02-solu-design" not in message
    assert "made with seed=0, this book uses seed=1" in message
    assert message.endswith(f"`solu-repro book --scale tiny --runs-dir "
                            f"{(tmp_path / 'runs').resolve()} --output {root.resolve()}`")
    # an executed copy from before claims were keyed
    _published(root, CH4, None)
    (root / record.keys.EXECUTED / f"{CH4}.ipynb").write_text("{}")
    with pytest.raises(record.StaleClaims, match=f"no executed chapter {CH4} with a claim key"):
        scorecard.scorecard(ctx, book_root=root)


def test_book_root_parameter_is_checked(tmp_path):
    from solu_repro.book import ParameterError

    assert record.check_book_root(None) is None
    with pytest.raises(ParameterError, match="book_root=.*is invalid"):
        record.check_book_root(str(tmp_path))
    (tmp_path / record.keys.EXECUTED).mkdir(parents=True)
    assert record.check_book_root(str(tmp_path)) == tmp_path


def test_scorecard_counts_kinds_apart_and_escapes_corpus_text():
    rows = _all_scored(C.INCONCLUSIVE)
    rows[0] = REG.REGISTRY[rows[0].id].scored("<script>alert(1)</script>", C.REPRODUCED)
    html = scorecard.scorecard_html(rows)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<table") == 3 and "data-kind='identity'" in html
    assert "data-kind='beyond the paper'" in html
    ident = scorecard.counts(rows, kind=C.IDENTITY)
    emp = scorecard.counts(rows, kind=C.EMPIRICAL)
    beyond = scorecard.counts(rows, kind=C.BEYOND)
    assert sum(ident.values()) == 3 and ident[C.REPRODUCED] == 1
    assert sum(beyond.values()) == 3 and beyond[C.REPRODUCED] == 0
    assert sum(emp.values()) == len(REG.CLAIMS) - 6 and emp[C.REPRODUCED] == 0
    assert {v: ident[v] + emp[v] + beyond[v] for v in C.VERDICTS} == scorecard.counts(rows)
    assert set(scorecard.VERDICT_COLORS) == set(C.VERDICTS)
    assert not checks.failed(checks.scorecard_checks(rows))
    assert checks.failed(checks.scorecard_checks(rows[1:]))  # a registry claim unscored


def test_power_table_and_null_registry_show_every_empirical_claim_escaped():
    from solu_repro.paper import multiplicity

    rows = _all_scored(C.INCONCLUSIVE)
    t = C.seed_test([0.10, -0.12, 0.08], interest=0.05, null="<b>rotated</b>", unit="points",
                    scale=100)
    last = max(i for i, c in enumerate(rows) if c.kind == C.EMPIRICAL)  # the paper's last
    rows[last] = REG.REGISTRY[rows[last].id].scored("x", tests=[t])
    html = scorecard.power_html(rows)
    assert "<b>rotated" not in html and "&lt;b&gt;rotated" in html
    # every tested claim has a row: the paper's empirical claims and those beyond it
    assert html.count("<tr>") == 1 + sum(c.kind in C.TESTED_KINDS for c in rows)
    got = {r["claim"]: r for r in scorecard.power_rows(rows)}[rows[last].id]
    assert got["smallest detectable"] == t._num(t.detectable, False)
    assert got["seeds for 80% power"] == f"about {multiplicity.seeds_for(t):,}"
    sim = multiplicity.simulate_null(rows, n=200)
    table = scorecard.null_registry_markdown(sim, rows)
    assert "| not testable here |" in table and "under the null" in table
    assert "at least one \"reproduced\" in" in scorecard.multiplicity_sentence(sim)
    assert sim.claims == (rows[last].id,)   # only claims decided on a test are simulated
    assert len(sim.by_design) == sum(c.kind == C.EMPIRICAL for c in rows) - 1


def test_a_chapter_finds_its_notebook_wherever_it_runs(tmp_path, monkeypatch):
    """A kernel runs in its notebook's folder: a copy opened in JupyterLab outside the
    checkout keys its record by that copy; a script run anywhere else falls back to the
    checkout the package is installed from. Before, a copy outside the checkout could not save
    its claims at all (FileNotFoundError)."""
    from pathlib import Path

    source = Path(record.__file__).resolve().parents[3] / "notebooks" / f"{CH4}.ipynb"
    copy = tmp_path / "lab" / "notebooks" / source.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(source.read_bytes())
    monkeypatch.chdir(copy.parent)
    assert record.notebook_path(CH4) == copy
    monkeypatch.chdir(tmp_path)  # no copy here, and no checkout above
    assert record.notebook_path(CH4) == source
    with pytest.raises(FileNotFoundError, match="no-such-chapter.ipynb"):
        record.notebook_path("no-such-chapter")
