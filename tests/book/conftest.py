"""Fixtures of the book's tests: a tiny zoo trained on the portable kernels."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from results_snapshot import PORTABLE_ENV, ROOT


@pytest.fixture(scope="session")
def portable_zoo(tmp_path_factory, tiny_zoo):
    """The tiny zoo trained once more, on ATen's portable kernels and MKL's generic matrix
    products (``results_snapshot.PORTABLE_ENV``), into a runs directory nothing else writes
    to: tests copy it before they use it. The corpus is the session's (built by ``tiny_zoo``;
    tokenizing does not go through PyTorch's kernels)."""
    runs = tmp_path_factory.mktemp("runs-portable")
    env = {**os.environ, **PORTABLE_ENV, "SOLU_RUNS_DIR": str(runs)}
    proc = subprocess.run([sys.executable, "-m", "solu_repro.cli", "zoo", "--scale", "tiny",
                           "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return runs
