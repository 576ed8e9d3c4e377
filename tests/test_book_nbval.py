"""nbval regression run of every notebook at its default scale ("tiny").

Each notebook runs in its own ``pytest --nbval-lax`` subprocess (so a failure names the
notebook and shows nbval's cell diff), with the session's tiny zoo in ``$SOLU_RUNS_DIR``.
Only cells marked ``# NBVAL_CHECK_OUTPUT`` are compared with their pinned outputs, after the
sanitizers of tests/nbval_sanitize.cfg; every other cell must merely run without an error
(notebooks ``assert`` their invariants). Pinned outputs are regenerated with
``python -m solu_repro.book.notebook_files refresh notebooks/NN-name.ipynb``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from solu_repro.book.build import find_notebooks

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = find_notebooks(ROOT)


def nbval_command(notebook: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header",
            "--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
            "--timeout", "900", str(notebook)]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN-*.ipynb found"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_nbval(notebook, tiny_zoo):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(nbval_command(notebook), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"nbval failed for {notebook.name} (exit {proc.returncode}); rerun with\n  "
        + " ".join(nbval_command(notebook)) + f"\n\n{output[-12000:]}")
    assert " passed" in output, output[-4000:]
