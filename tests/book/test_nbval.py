"""nbval regression run of every notebook at its default scale ("tiny"), twice.

Each notebook runs in its own ``pytest --nbval-lax`` subprocess (so a failure names the
notebook and shows nbval's cell diff). Only cells tagged ``nbval-check-output`` are compared
with their pinned outputs, after the sanitizers of tests/nbval_sanitize.cfg; every other cell
must merely run without an error (notebooks ``assert`` their invariants). Pinned outputs are
regenerated with ``python -m solu_repro.book.notebook_files refresh notebooks/NN-name.ipynb``.

The pins must hold on any CPU. Trained tiny models are not bit-identical across CPUs, so what
a notebook pins is either independent of trained weights (worked examples, parameter counts)
or a property with a margin (``solu_repro.book.checks``). To keep a machine-specific pin from
coming back unnoticed, the suite runs twice:

- ``test_notebook_nbval``: this machine's kernels (its own ``ATEN_CPU_CAPABILITY``), one
  thread, on the session's tiny zoo;
- ``test_notebook_nbval_other_kernels``: a second tiny zoo trained, and every notebook run,
  under ``ATEN_CPU_CAPABILITY=default`` (PyTorch's portable kernels, which round differently
  from every SIMD path, as another CPU would) and ``MKL_CBWR=COMPATIBLE`` (MKL's generic
  matrix products), the notebooks with two threads. Its zoo must differ from the first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from results_snapshot import PORTABLE_ENV
from solu_repro.book.build import find_notebooks

ROOT = Path(__file__).resolve().parents[2]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = find_notebooks(ROOT)

def nbval_command(notebook: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
            "tests.nbval_patience", "-q", "--no-header", "--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
            "--timeout", "900", str(notebook)]


def run_nbval(notebook: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(nbval_command(notebook), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=850)
    output = proc.stdout + proc.stderr
    shown = " ".join(f"{k}={env[k]}" for k in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS",
                                               "SOLU_RUNS_DIR") if k in env)
    assert proc.returncode == 0, (
        f"nbval failed for {notebook.name} (exit {proc.returncode}); rerun with\n  {shown} "
        + " ".join(nbval_command(notebook)) + f"\n\n{output[-12000:]}")
    assert " passed" in output, output[-4000:]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN-*.ipynb found"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_nbval(notebook, tiny_zoo):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           "SOLU_RUNS_DIR": str(tiny_zoo)}
    run_nbval(notebook, env)


def _capability(env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", "import torch; "
                           "print(torch.backends.cpu.get_cpu_capability())"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().upper()


def _val_losses(runs: Path) -> dict[str, float]:
    return {p.parent.name: json.loads(p.read_text())["val_loss"]
            for p in sorted(runs.glob("tiny/*/result.json"))}


@pytest.fixture(scope="session")
def other_kernels_env(tmp_path_factory, tiny_zoo, portable_zoo):
    """The environment of the second run, with its own copy of the tiny zoo trained on the
    portable kernels (``portable_zoo``). Besides ATen's portable kernels, ``MKL_CBWR=COMPATIBLE``
    puts MKL's matrix products (where CPUs differ most) on their generic code path; the zoo
    trained on one thread as always (``train_threads``), the notebooks read it with two."""
    runs = tmp_path_factory.mktemp("runs-other-kernels") / "runs"
    shutil.copytree(portable_zoo, runs)
    env = {**os.environ, **PORTABLE_ENV, "SOLU_RUNS_DIR": str(runs)}
    # PyTorch names the portable path "DEFAULT" (or "NO AVX" in some x86 builds)
    assert _capability(env) in {"DEFAULT", "NO AVX"}
    native, other = _val_losses(tiny_zoo), _val_losses(runs)
    assert native.keys() == other.keys() and native
    if _capability({**os.environ}) not in {"DEFAULT", "NO AVX"}:
        # Otherwise the second run would not test another rounding at all.
        assert native != other, "the other kernels trained a bit-identical zoo"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_nbval_other_kernels(notebook, other_kernels_env):
    run_nbval(notebook, other_kernels_env)


def test_nbval_waits_for_output_on_a_busy_machine():
    from types import SimpleNamespace

    import nbval_patience  # tests/ is on the path (as for fakes.py)

    assert "tests.nbval_patience" in nbval_command(NOTEBOOKS[0])
    cell, other = SimpleNamespace(output_timeout=5), SimpleNamespace()
    nbval_patience.pytest_collection_modifyitems([cell, other])
    assert cell.output_timeout == nbval_patience.OUTPUT_TIMEOUT >= 60
    assert not hasattr(other, "output_timeout")
