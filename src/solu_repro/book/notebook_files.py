"""Keep the committed notebooks clean, and their pinned outputs current.

    python -m solu_repro.book.notebook_files check   [NOTEBOOK ...]
    python -m solu_repro.book.notebook_files clean   [NOTEBOOK ...]
    python -m solu_repro.book.notebook_files refresh [NOTEBOOK ...]

(default: every ``notebooks/NN-*.ipynb`` of the checkout.)

Committed notebooks carry no outputs and no execution counts, with one exception: the cells
marked ``# NBVAL_CHECK_OUTPUT`` (or tagged ``nbval-check-output``) keep the outputs that the
test suite's nbval run compares against, and their execution counts. nbval 0.11 treats a
cell whose ``execution_count`` is null as never run: it does not compare its outputs, and it
fails the cell ("Unrun reference cell has outputs") if it has any. So a pinned cell needs
both its outputs and a count, which ``refresh`` writes.

- ``clean``: strip every output and execution count except those of the checked cells, and
  drop transient metadata (papermill's, widget state, execution timings).
- ``refresh``: execute the notebook at its default parameters (scale "tiny", as nbval does)
  with papermill, after training the tiny zoo quietly (so no pinned output holds a training
  progress bar), and store the checked cells' outputs and counts; then clean.
- ``check``: report what ``clean``/``refresh`` would fix, and the notebook skeleton the book
  relies on: a title, an imports cell, right after it a ``parameters``-tagged cell of plain
  assignments of the common parameters, and right after that the ``book_context(...)``
  validation of every parameter. Exit status 1 if anything is wrong
  (tests/book/test_notebooks_clean.py runs this).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import nbformat

from ..atomic import atomic_path

CHECK_MARKER = "NBVAL_CHECK_OUTPUT"
CHECK_TAG = "nbval-check-output"
PARAMETERS_TAG = "parameters"
REMOVE_TAG = "remove-cell"  # Jupyter Book: the cell runs but is not in the HTML
COMMON_PARAMETERS = ("scale", "runs_dir", "seed", "interactive", "progress")
TRANSIENT_NOTEBOOK_METADATA = ("papermill", "widgets", "solu_repro_book", "execution")
TRANSIENT_CELL_METADATA = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")


def is_checked(cell: dict[str, Any]) -> bool:
    """A code cell whose outputs nbval compares (its marker comment or tag; nbval's rules)."""
    if cell.get("cell_type") != "code":
        return False
    if CHECK_TAG in cell.get("metadata", {}).get("tags", []):
        return True
    return any(line.strip().startswith("#") and line.strip().lstrip("#").strip() == CHECK_MARKER
               for line in _source(cell).splitlines())


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """Atomically write a notebook in nbformat's canonical layout (1-space indent)."""
    with atomic_path(path) as tmp:
        nbformat.write(nb, tmp)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without stray outputs, execution counts and transient metadata."""
    nb = copy.deepcopy(nb)
    for key in TRANSIENT_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in TRANSIENT_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if not is_checked(cell):
            cell.outputs = []
            cell.execution_count = None
        for output in cell.outputs:
            output.get("metadata", {}).pop("papermill", None)
    return nb


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _assigned_names(source: str) -> tuple[list[str], list[str]]:
    """Names a parameters cell assigns, and problems (anything but ``name = literal``)."""
    names, problems = [], []
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [], [f"parameters cell does not parse: {exc}"]
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            try:
                ast.literal_eval(stmt.value)
            except ValueError:
                problems.append(f"parameters cell: {stmt.targets[0].id} is not a plain value "
                                "(papermill can only override literals)")
            names.append(stmt.targets[0].id)
        else:
            problems.append(f"parameters cell line {stmt.lineno}: only `name = value` "
                            "assignments belong there")
    return names, problems


def _book_context_call(tree: ast.AST) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "book_context":
                return node
    return None


def _calls_glue(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "glue(" in source
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "glue"
               for n in ast.walk(tree))


def check_plumbing(nb: nbformat.NotebookNode) -> list[str]:
    """Machinery the published page must not show: the imports, ``parameters`` and validation
    cells and every cell that calls ``glue`` are tagged ``remove-cell`` (JupyterLab and nbval
    still run them); pinned cells carry the ``nbval-check-output`` tag, not a comment marker
    that the page would print."""
    problems = []
    code = _code_cells(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"cell {i}"
        if CHECK_MARKER in _source(cell):
            problems.append(f"{where}: mark a pinned cell with the `{CHECK_TAG}` tag, not a "
                            f"`# {CHECK_MARKER}` comment (the page would show it)")
        removed = REMOVE_TAG in _tags(cell)
        if _calls_glue(_source(cell)) and not removed:
            problems.append(f"{where} calls glue(...): move the glue calls into a cell tagged "
                            f"`{REMOVE_TAG}`")
        if any(cell is c for c in code[:3]) and not removed:
            problems.append(f"{where} (imports, parameters or validation) must be tagged "
                            f"`{REMOVE_TAG}`")
    return problems


def check_structure(nb: nbformat.NotebookNode) -> list[str]:
    """Problems with the skeleton every book notebook follows (empty list: fine)."""
    problems = check_plumbing(nb)
    if not nb.cells or nb.cells[0].cell_type != "markdown" or \
            not _source(nb.cells[0]).lstrip().startswith("# "):
        problems.append("the first cell must be markdown starting with the page title `# N. Title`")
    code = _code_cells(nb)
    if len(code) < 3:
        return problems + ["expected an imports cell, a `parameters` cell and a validation cell"]
    imports, params, validation = code[0], code[1], code[2]
    if PARAMETERS_TAG in _tags(imports):
        problems.append("the first code cell must hold the imports; the `parameters` cell "
                        "comes right after it")
    if PARAMETERS_TAG not in _tags(params):
        problems.append("the code cell right after the imports cell must be tagged "
                        "`parameters` (cell metadata tags)")
        return problems
    if sum(PARAMETERS_TAG in _tags(c) for c in code) > 1:
        problems.append("only one cell may be tagged `parameters`")
    names, assignment_problems = _assigned_names(_source(params))
    problems += assignment_problems
    missing = [p for p in COMMON_PARAMETERS if p not in names]
    if missing:
        problems.append(f"the parameters cell lacks {', '.join(missing)}")
    try:
        tree = ast.parse(_source(validation))
    except SyntaxError as exc:
        return problems + [f"the validation cell does not parse: {exc}"]
    call = _book_context_call(tree)
    if call is None:
        problems.append("the code cell after the parameters cell must validate them with "
                        "`ctx = book_context(scale=scale, runs_dir=runs_dir, seed=seed, "
                        "interactive=interactive, progress=progress)`")
        return problems
    passed = {kw.arg: kw.value for kw in call.keywords}
    for p in COMMON_PARAMETERS:
        value = passed.get(p)
        if not (isinstance(value, ast.Name) and value.id == p):
            problems.append(f"book_context(...) must be passed {p}={p}")
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    unvalidated = [n for n in names if n not in COMMON_PARAMETERS and n not in used]
    if unvalidated:
        problems.append("parameters not validated in the validation cell (check_int, "
                        f"check_float, check_choice, ...): {', '.join(unvalidated)}")
    return problems


def check_clean(nb: nbformat.NotebookNode) -> list[str]:
    """Outputs, counts and metadata that ``clean``/``refresh`` would change."""
    problems = []
    stray = [k for k in TRANSIENT_NOTEBOOK_METADATA if k in nb.metadata]
    if stray:
        problems.append(f"transient notebook metadata: {', '.join(stray)}")
    for i, cell in enumerate(nb.cells):
        where = f"cell {i}"
        transient = [k for k in ("papermill", "execution", "ExecuteTime") if k in cell.metadata]
        if transient:
            problems.append(f"{where}: transient cell metadata {', '.join(transient)}")
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            if not cell.outputs:
                problems.append(f"{where} is marked {CHECK_MARKER} but pins no output: run "
                                "`python -m solu_repro.book.notebook_files refresh`")
            elif cell.execution_count is None:
                problems.append(f"{where} is marked {CHECK_MARKER} but has no execution count, "
                                "so nbval would fail it as an unrun cell with outputs: run "
                                "`python -m solu_repro.book.notebook_files refresh`")
        else:
            if cell.outputs:
                problems.append(f"{where} has outputs (only {CHECK_MARKER} cells keep theirs)")
            if cell.execution_count is not None:
                problems.append(f"{where} has an execution count")
    return problems


def check(path: Path) -> list[str]:
    """Every problem of one committed notebook."""
    try:
        nb = read(path)
    except Exception as exc:  # noqa: BLE001 - unreadable is a problem to report
        return [f"cannot read: {exc}"]
    problems = check_clean(nb) + check_structure(nb)
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}, expected 'python3'")
    return problems


def refresh(path: Path, train: bool = True) -> int:
    """Re-execute ``path`` at its defaults and pin its checked cells' outputs; returns their
    number. The notebook is rewritten cleaned."""
    import papermill

    if train:  # pinned outputs must not depend on whether the zoo was trained before
        from ..zoo import train_zoo

        train_zoo("tiny", progress=False)
    source = read(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        papermill.execute_notebook(path, out, kernel_name="python3", cwd=path.parent,
                                   progress_bar=False)
        executed = read(out)
    if len(executed.cells) != len(source.cells):
        raise RuntimeError(f"{path}: executed notebook has {len(executed.cells)} cells, "
                           f"the source {len(source.cells)}")
    pinned = 0
    for cell, ran in zip(source.cells, executed.cells, strict=True):
        if _source(cell) != _source(ran):
            raise RuntimeError(f"{path}: cells changed while executing")
        if is_checked(cell):
            cell.outputs = ran.outputs
            cell.execution_count = ran.execution_count
            pinned += 1
    write(clean(source), path)
    return pinned


def default_notebooks() -> list[Path]:
    from .build import checkout_root, find_notebooks

    return find_notebooks(checkout_root())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solu_repro.book.notebook_files",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["check", "clean", "refresh"])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebooks/NN-*.ipynb of the checkout")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="refresh: tiny zoo runs (default: $SOLU_RUNS_DIR or ./runs)")
    args = parser.parse_args(argv)
    if args.runs_dir is not None:  # the notebooks' kernels inherit it
        os.environ["SOLU_RUNS_DIR"] = str(args.runs_dir.resolve())
    paths: Iterable[Path] = args.notebooks or default_notebooks()
    status = 0
    for path in paths:
        if args.command == "check":
            problems = check(path)
            for problem in problems:
                print(f"{path}: {problem}")
            status |= bool(problems)
        elif args.command == "clean":
            nb = read(path)
            cleaned = clean(nb)
            if cleaned != nb:
                write(cleaned, path)
                print(f"cleaned {path}")
        else:
            print(f"refreshing {path} ...", flush=True)
            print(f"  pinned the outputs of {refresh(path)} checked cell(s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
