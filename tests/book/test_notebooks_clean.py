"""Committed notebooks are clean and follow the book's skeleton; the clean/refresh tool works,
and what it pins is what nbval 0.11 checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from solu_repro.book import notebook_files as nf
from solu_repro.book.build import find_notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = find_notebooks(ROOT)
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_committed_notebook_is_clean(notebook):
    problems = nf.check(notebook)
    assert not problems, (
        f"{notebook.name}:\n  " + "\n  ".join(problems) + "\n(fix outputs with `python -m "
        "solu_repro.book.notebook_files clean` / `refresh`; the skeleton is described in "
        "that module's docstring)")


# ----------------------------------------------------------------------------- the tool


def make_notebook(*, checked_output: bool = True, params: str | None = None,
                  validation: str | None = None) -> nbformat.NotebookNode:
    p = nbformat.v4.new_code_cell(params or 'scale = "tiny"\nruns_dir = None\nseed = 0\n'
                                  "interactive = True\nprogress = True\nn = 3")
    p.metadata["tags"] = ["parameters", "remove-cell"]
    checked = nbformat.v4.new_code_cell("print(round(2 / 3, 2))")
    checked.metadata["tags"] = ["nbval-check-output"]
    if checked_output:
        checked.outputs = [nbformat.v4.new_output("stream", name="stdout", text="0.67\n")]
        checked.execution_count = 4
    plain = nbformat.v4.new_code_cell("x = 1\nx", execution_count=5, outputs=[
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=5)])
    plain.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    imports = nbformat.v4.new_code_cell("import math", execution_count=1)
    check = nbformat.v4.new_code_cell(validation or (
        "ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed,\n"
        "                   interactive=interactive, progress=progress)\n"
        'n = check_int("n", n, minimum=1)'))
    imports.metadata["tags"] = check.metadata["tags"] = ["remove-cell"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 9. Test\n\nText."), imports, p, check, checked, plain])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["papermill"] = {"parameters": {}}
    return nb


def test_clean_keeps_only_the_pinned_outputs():
    nb = make_notebook()
    assert nf.check_clean(nb)  # stray outputs, counts and metadata
    cleaned = nf.clean(nb)
    assert nf.check_clean(cleaned) == [] and nf.check_structure(cleaned) == []
    checked, plain = cleaned.cells[4], cleaned.cells[5]
    assert checked.outputs[0]["text"] == "0.67\n" and checked.execution_count == 4
    assert plain.outputs == [] and plain.execution_count is None
    assert cleaned.cells[1].execution_count is None
    assert "execution" not in plain.metadata and "papermill" not in cleaned.metadata
    assert nf.clean(cleaned) == cleaned


def test_check_reports_an_unpinned_checked_cell():
    problems = nf.check_clean(nf.clean(make_notebook(checked_output=False)))
    assert any("pins no output" in p for p in problems)
    nb = nf.clean(make_notebook())
    nb.cells[4].execution_count = None
    assert any("no execution count" in p for p in nf.check_clean(nb))


@pytest.mark.parametrize("change, expected", [
    (dict(params="scale = 'tiny'\nseed = 0"), "lacks runs_dir, interactive, progress"),
    (dict(params="scale = 'tiny'\nruns_dir = None\nseed = 0\ninteractive = True\n"
                 "progress = True\nn = 2 + x"), "n is not a plain value"),
    (dict(validation="ctx = 1"), "must validate them with"),
    (dict(validation="ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed, "
                     "interactive=True, progress=progress)\nn = check_int('n', n)"),
     "must be passed interactive=interactive"),
    (dict(validation="ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed, "
                     "interactive=interactive, progress=progress)"),
     "parameters not validated in the validation cell (check_int, check_float, "
     "check_choice, ...): n"),
])
def test_check_structure(change, expected):
    problems = nf.check_structure(nf.clean(make_notebook(**change)))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("cell, change, expected", [
    (4, lambda c: setattr(c, "source", "# NBVAL_CHECK_OUTPUT\nprint(1)"),
     "not a `# NBVAL_CHECK_OUTPUT` comment"),
    (5, lambda c: setattr(c, "source", 'x = 1\nglue("x", x, display=False)'),
     "calls glue(...): move the glue calls into a cell tagged `remove-cell`"),
    (2, lambda c: c.metadata.__setitem__("tags", ["parameters"]),
     "(imports, parameters or validation) must be tagged `remove-cell`"),
    (3, lambda c: c.metadata.__setitem__("tags", []),
     "(imports, parameters or validation) must be tagged `remove-cell`"),
])
def test_check_structure_keeps_plumbing_out_of_the_pages(cell, change, expected):
    nb = nf.clean(make_notebook())
    assert nf.check_structure(nb) == []
    change(nb.cells[cell])
    problems = nf.check_structure(nb)
    assert any(expected in p for p in problems), problems


def test_papermills_injected_cell_and_test_tags_leave_the_page():
    from solu_repro.book.build import prepare_for_pages

    nb = nf.clean(make_notebook())
    injected = nbformat.v4.new_code_cell("# Parameters\nscale = 'cpu'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(3, injected)
    tags = [c.metadata.get("tags", []) for c in prepare_for_pages(nb).cells]
    assert tags[3] == ["injected-parameters", "remove-cell"]
    assert not any("nbval-check-output" in t for t in tags) and tags[5] == []
    assert sum("remove-cell" in t for t in tags) == 4  # imports, parameters, injected, validation


def test_check_structure_wants_parameters_right_after_imports():
    nb = nf.clean(make_notebook())
    nb.cells[1], nb.cells[2] = nb.cells[2], nb.cells[1]
    assert nf.check_structure(nb)
    nb = nf.clean(make_notebook())
    nb.cells[2].metadata["tags"] = []
    assert any("must be tagged `parameters`" in p for p in nf.check_structure(nb))


def _nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header",
         "--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
         str(path)], cwd=path.parent, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_refresh_pins_what_nbval_checks(tmp_path):
    """refresh executes and pins the checked cell (outputs + count); nbval then passes, fails
    on a corrupted pinned digit, and (nbval 0.11) fails a pinned cell without a count."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Pinning"),
        nbformat.v4.new_code_cell("import time"),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(round(2 / 3, 4), 'took 0.0 s')\n"
                                  "print(f'took {time.perf_counter() % 7:.1f} s')"),
        nbformat.v4.new_code_cell("print(time.time())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "pin.ipynb"
    nbformat.write(nb, path)
    assert nf.refresh(path, train=False) == 1
    pinned = nbformat.read(path, as_version=4)
    assert pinned.cells[2].outputs[0]["text"].startswith("0.6667 took 0.0 s\n")
    assert pinned.cells[2].execution_count == 2
    assert pinned.cells[3].outputs == [] and nf.check_clean(pinned) == []
    ok = _nbval(path)
    assert ok.returncode == 0, ok.stdout[-3000:]

    pinned.cells[2].outputs[0]["text"] = pinned.cells[2].outputs[0]["text"].replace("0.6667",
                                                                                     "0.6668")
    nbformat.write(pinned, path)
    bad = _nbval(path)
    assert bad.returncode == 1 and "0.6668" in bad.stdout, bad.stdout[-3000:]

    pinned.cells[2].outputs[0]["text"] = "0.6667 took 0.0 s\n"
    pinned.cells[2].execution_count = None
    nbformat.write(pinned, path)
    unrun = _nbval(path)
    assert unrun.returncode == 1 and "Unrun reference cell has outputs" in unrun.stdout


@pytest.mark.parametrize("chapter", sorted({c.chapter for c in __import__(
    "solu_repro.paper.registry", fromlist=["CLAIMS"]).CLAIMS}))
def test_the_page_shows_every_claim_it_decides(chapter):
    """Each claim the chapter decides is shown on its page with ``show_claim`` (its rule and
    the source of its ``decide``), in a cell whose output the page keeps."""
    import ast
    import importlib

    from solu_repro.paper import registry

    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    shown = set()
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "remove-cell" in tags or "remove-output" in tags:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "show_claim":
                shown |= {a.attr for a in node.args if isinstance(a, ast.Attribute)}
    for spec in registry.chapter_claims(chapter):
        module = importlib.import_module(spec.decide.__module__)
        name = next(n for n, v in vars(module).items() if v is spec)
        assert name in shown, f"{chapter} decides {spec.id} but does not show_claim({name})"
