"""The built book cannot contradict itself: chapter 9 renders only claim records made from the
inputs of the chapters the book publishes, and two book builds never share one folder.

The failure these tests reproduce: chapter 4 run by hand (``papermill notebooks/04-....ipynb
out.ipynb -p seed 1``) overwrote its saved claims; a later ``solu-repro book`` reused its
executed chapter 4 (whose inputs had not changed) but re-executed chapter 8, so the page said
one number and the scorecard another. The build runs on a small checkout of two fake chapters
(a chapter 4 that saves the real registry's claims for its chapter, quoting its seed, and a
chapter 9 that loads them as the scorecard does), so it takes seconds, not the tiny book's
minutes.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from solu_repro.book import build, keys, record
from solu_repro.book.build import build_book, find_notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = find_notebooks(ROOT)
CH4 = "04-interpretability-quantitative"
COMMON = ('scale = "tiny"\nruns_dir = None\nseed = 0\ninteractive = True\nprogress = True\n')


def _cells(nb: nbformat.NotebookNode) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters_cell(nb: nbformat.NotebookNode) -> list[str]:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return [stmt.targets[0].id for stmt in ast.parse(cell.source).body]


def _save_calls(nb: nbformat.NotebookNode) -> list[ast.Call]:
    calls = []
    for cell in _cells(nb):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "save" and getattr(node.func.value, "id", "") == "record":
                calls.append(node)
    return calls


@pytest.mark.parametrize("notebook", [nb for nb in NOTEBOOKS if nb.stem in
                                      record.CHAPTERS], ids=lambda p: p.stem)
def test_every_chapter_saves_its_claims_with_every_parameter(notebook):
    """Each chapter's ``record.save`` passes ``parameters=dict(name=name, ...)`` naming exactly
    the names of its parameters cell, each bound to itself: none can be forgotten."""
    nb = nbformat.read(notebook, as_version=4)
    calls = _save_calls(nb)
    assert len(calls) == 1, f"{notebook.name}: {len(calls)} record.save calls"
    call = calls[0]
    assert isinstance(call.args[1], ast.Constant) and call.args[1].value == notebook.stem
    passed = {kw.arg: kw.value for kw in call.keywords}
    assert "parameters" in passed, f"{notebook.name}: record.save(...) without parameters="
    value = passed["parameters"]
    assert isinstance(value, ast.Call) and getattr(value.func, "id", "") == "dict" \
        and not value.args, f"{notebook.name}: pass parameters=dict(name=name, ...)"
    names = [kw.arg for kw in value.keywords]
    assert names == _parameters_cell(nb), notebook.name
    assert all(isinstance(kw.value, ast.Name) and kw.value.id == kw.arg
               for kw in value.keywords), notebook.name


def test_the_scorecard_is_told_the_book_it_renders():
    nb = nbformat.read(ROOT / "notebooks" / f"{record.SCORECARD}.ipynb", as_version=4)
    assert "book_root" in _parameters_cell(nb)
    source = "\n".join(c.source for c in _cells(nb))
    assert "scorecard.scorecard(ctx, book_root=book_root)" in source
    assert record.SCORECARD not in record.CHAPTERS and record.SCORECARD == NOTEBOOKS[-1].stem


def test_left_out_parameters_are_declared_somewhere():
    """What the key leaves out is a parameter some chapter has (no stale names)."""
    declared = {n for nb in NOTEBOOKS for n in _parameters_cell(nbformat.read(nb, 4))}
    assert set(keys.NOT_IN_KEY) <= declared


# ----------------------------------------------------------------------------- the build


def _notebook(title: str, imports: str, params: str, validation: str, *body: str):
    cells = [nbformat.v4.new_markdown_cell(f"# {title}"), nbformat.v4.new_code_cell(imports),
             nbformat.v4.new_code_cell(params), nbformat.v4.new_code_cell(validation)]
    cells[2].metadata["tags"] = ["parameters", "remove-cell"]
    cells += [nbformat.v4.new_code_cell(b) for b in body]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


VALIDATE = ("ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed, "
            "interactive=interactive, progress=progress)")


def fake_checkout(repo: Path) -> Path:
    """A checkout with a chapter 4 that saves its registry claims quoting its seed (and prints
    what its page says) and a chapter 9 that renders them as the scorecard does."""
    (repo / "notebooks").mkdir(parents=True)
    (repo / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", repo / "_config.yml")
    # paths.project_root finds the checkout by this (the kernels run in notebooks/)
    (repo / "pyproject.toml").write_text('[project]\nname = "solu-repro"\n')
    (repo / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        f"- file: book/executed/{CH4}\n- file: book/executed/{record.SCORECARD}\n")
    (repo / "book" / "intro.md").write_text("# Intro\n")
    ch4 = _notebook(
        "4. Fake", "from solu_repro.book import book_context, record\n"
                   "from solu_repro.paper import registry", COMMON, VALIDATE,
        f"claims = [spec.scored(f'net of the nulls: {{seed}}', 'inconclusive')\n"
        f"          for spec in registry.CLAIMS if spec.chapter == {CH4!r}]\n"
        f"record.save(ctx, {CH4!r}, claims, parameters=dict(\n"
        "    scale=scale, runs_dir=runs_dir, seed=seed, interactive=interactive, "
        "progress=progress))\n"
        "print('PAGE:', claims[0].ours)")
    ch8 = _notebook(
        "8. Fake scorecard", "from solu_repro.book import book_context, record",
        COMMON + "book_root = None\n", VALIDATE + "\nbook_root = record.check_book_root(book_root)",
        f"claims = record.load(ctx, [{CH4!r}], book_root=book_root)\n"
        "print('SCORECARD:', claims[0].ours)")
    nbformat.write(ch4, repo / "notebooks" / f"{CH4}.ipynb")
    nbformat.write(ch8, repo / "notebooks" / f"{record.SCORECARD}.ipynb")
    return repo


def printed(executed: Path, prefix: str) -> str:
    """What an executed notebook printed after ``prefix``."""
    nb = nbformat.read(executed, as_version=4)
    for cell in _cells(nb):
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    raise AssertionError(f"{executed.name} printed no {prefix!r}")


@pytest.mark.slow
def test_a_hand_run_with_another_seed_cannot_make_the_book_contradict_itself(tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    repo = fake_checkout(tmp_path / "repo")
    runs = tmp_path / "runs"
    executed = repo / keys.EXECUTED

    def book():
        lines: list[str] = []
        report = build_book("tiny", runs_dir=runs, repo=repo, html=False, progress=False,
                            workers=1, log=lines.append)
        return {r.name: r.status for r in report.notebooks}, "\n".join(lines)

    status, _ = book()
    assert status == {CH4: "executed", record.SCORECARD: "executed"}
    assert printed(executed / f"{CH4}.ipynb", "PAGE:") == "net of the nulls: 0"
    assert printed(executed / f"{record.SCORECARD}.ipynb", "SCORECARD:") == "net of the nulls: 0"

    # chapter 4 by hand with another seed, as the README suggests: it overwrites the record
    papermill.execute_notebook(repo / "notebooks" / f"{CH4}.ipynb", tmp_path / "out.ipynb",
                               parameters={"seed": 1, "runs_dir": str(runs)},
                               kernel_name="python3", cwd=repo / "notebooks",
                               progress_bar=False)
    assert "nulls: 1" in (runs / "tiny" / "claims" / f"{CH4}.json").read_text()

    # chapter 9 by hand now refuses, naming the chapter and the seed
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(
            repo / "notebooks" / f"{record.SCORECARD}.ipynb", tmp_path / "out8.ipynb",
            parameters={"runs_dir": str(runs)}, kernel_name="python3",
            cwd=repo / "notebooks", progress_bar=False)
    assert err.value.ename == "StaleClaims"
    assert f"chapter {CH4}'s saved claims" in err.value.evalue
    assert "made with seed=1, this book uses seed=0" in err.value.evalue
    assert f"`solu-repro book --scale tiny --runs-dir {runs.resolve()}`" in err.value.evalue

    # the next build re-executes chapter 4 (the reported build re-executed only chapter 8:
    # its executed copy is removed here, as then) and the page and scorecard agree
    (executed / f"{record.SCORECARD}.ipynb").unlink()
    status, log = book()
    assert status == {CH4: "executed", record.SCORECARD: "executed"}, log
    assert f"{CH4}.ipynb at scale tiny (its saved claims came from other inputs: seed)" in log
    page = printed(executed / f"{CH4}.ipynb", "PAGE:")
    assert page == printed(executed / f"{record.SCORECARD}.ipynb", "SCORECARD:")
    assert page == "net of the nulls: 0"
    # chapter 9 is re-executed whenever a record it renders changes, even if its copy exists
    record_path = runs / "tiny" / "claims" / f"{CH4}.json"
    payload = json.loads(record_path.read_text())
    payload["claims"][0]["ours"] = "net of the nulls: 0 "
    record_path.write_text(json.dumps(payload))
    status, log = book()
    assert status == {CH4: "reused", record.SCORECARD: "executed"}, log
    assert "changed: the saved claims it renders" in log


def test_the_scorecard_is_re_executed_when_a_record_changes_and_the_key_is_stored(tmp_path):
    """``execute_all``'s inputs (no kernel): a chapter's carry its claim key, the
    scorecard's a digest of each record it renders and the book root it is told."""
    repo = fake_checkout(tmp_path / "repo")
    source = repo / "notebooks" / f"{CH4}.ipynb"
    key = keys.claims_key(source, {**keys.notebook_parameters(source), "seed": 1},
                          keys.zoo_fingerprint("tiny"), "p")
    assert key["parameters"]["seed"] == 1 and "interactive" not in key["parameters"]
    assert keys.differences(key, {**key, "package": "q"})[0] == ["package code"]
    assert build.stale_reason({"records": {CH4: "a"}}, {"records": {CH4: "b"}}) == \
        "changed: the saved claims it renders"
