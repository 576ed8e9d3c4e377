"""Fixtures of the book's tests: a tiny zoo trained on the portable kernels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from results_snapshot import PORTABLE_ENV, ROOT
from solu_repro.book.build import BuildReport, build_book


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


@dataclass
class BuiltBook:
    """The tiny book built once per session, and what it was built from."""

    report: BuildReport
    runs: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, portable_zoo):
    """The whole tiny book (notebooks executed, HTML built) into a temporary root, from a copy
    of the portable zoo and on the portable kernels: the HTML tests open its pages, and
    ``test_results_unchanged`` compares what it recorded with the record, so one build serves
    both. The notebooks' kernels and the scoring processes inherit the environment."""
    root = tmp_path_factory.mktemp("book")
    runs = root.parent / (root.name + "-runs")
    shutil.copytree(portable_zoo, runs)
    # A checkout holds folders of other markdown (.venv's packages, runs, ...); the build must
    # not read them (-W would fail on the broken reference of these decoys).
    for folder in (".venv/lib/pkg", ".ci-runs", "runs", "notebooks", "src/solu_repro"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "README.md").write_text("# Decoy\n\nSee {ref}`no-such-label`.\n")
    env = {**PORTABLE_ENV, "SOLU_RUNS_DIR": str(runs)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        report = build_book("tiny", runs_dir=runs, root=root, repo=ROOT, progress=False,
                            quiet=True, log=print)
    assert report.html_dir == root / "_build" / "html"
    return BuiltBook(report, runs, env)
