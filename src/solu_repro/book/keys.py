"""What a chapter's results are keyed by: its notebook, its parameters, the package's code and
the zoo.

Shared by ``record`` (a chapter saves its scored claims under this key; chapter 9 refuses a
record whose key differs from the book it is about to publish) and ``build`` (an executed
chapter is reused only while these inputs are unchanged). It imports nothing of the book, so
both can import it.

A claim key is a dict of four parts::

    {"parameters": {...}, "zoo": "<zoo_fingerprint>", "package": "<package_digest>",
     "notebook": "<notebook_digest of notebooks/<chapter>.ipynb>"}

``parameters`` holds every parameter of the chapter's ``parameters`` cell except those in
``NOT_IN_KEY`` (which cannot change a saved claim), with ``runs_dir`` resolved to an absolute
path.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from .. import paths

PARAMETERS_TAG = "parameters"
EXECUTED = Path("book") / "executed"   # a book root's executed chapters (build.py writes them)
METADATA_KEY = "solu_repro_book"       # an executed chapter's metadata: {"inputs": ..., ...}
# Modules of the book's build machinery: notebooks do not run them, so editing them does not
# make executed notebooks stale.
BUILD_ONLY_MODULES = ("book/build.py", "book/notebook_files.py", "book/mime.py")

NOT_IN_KEY: dict[str, str] = {
    "interactive": "presentation only: widgets instead of static figures; no claim reads it",
    "progress": "presentation only: progress bars",
    "start_blind_app": "presentation only: shows the judging app; the claims read the "
                       "blinded sessions already judged, not the app",
    "models": "the released-models sections: their verdicts are printed beside the zoo's "
              "and never saved (record.save takes the zoo's claims only)",
    "published_sources": "the corpus of the released models (see models)",
}
"""Notebook parameters left out of a claim key, and why: none of them can change a saved
claim. Every other parameter of a chapter's ``parameters`` cell is in its key."""

PART_NAMES = {"parameters": "parameters", "zoo": "zoo", "package": "package code",
              "notebook": "notebook"}


# ----------------------------------------------------------------------------- digests


def package_digest() -> str:
    """A hash of the solu_repro package's files that notebooks run."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package).as_posix()
        if path.is_dir() or "__pycache__" in rel or rel in BUILD_ONLY_MODULES:
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def notebook_digest(path: Path) -> str:
    """A hash of what a notebook runs: its cells' types, sources and tags (outputs ignored)."""
    nb = json.loads(Path(path).read_text())
    cells = [(c.get("cell_type"), "".join(c.get("source", "")),
              c.get("metadata", {}).get("tags", [])) for c in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def zoo_fingerprint(scale: str) -> str:
    """A digest of the zoo's run hashes: claims saved for another zoo are stale."""
    from ..zoo import zoo_configs

    hashes = sorted(f"{n}:{c.run_hash()}" for n, c in zoo_configs(scale).items())
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- parameters


def notebooks_dir() -> Path:
    """The checkout's notebooks/ (found like ``paths.runs_dir``'s default: upwards from the
    working directory, which is notebooks/ itself when papermill or the book runs them)."""
    return paths.project_root() / "notebooks"


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The defaults of a notebook's ``parameters``-tagged cell, by name, in cell order."""
    nb = json.loads(Path(path).read_text())
    for cell in nb.get("cells", []):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell.get("source", ""))
            out = {}
            for stmt in ast.parse(source).body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                        and isinstance(stmt.targets[0], ast.Name):
                    out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            return out
    raise ValueError(f"{path} has no cell tagged `{PARAMETERS_TAG}`")


def resolved_runs_dir(runs_dir: Any) -> str:
    """``runs_dir`` as ``book_context`` resolves it, absolute (None/"": the default)."""
    root = paths.runs_dir() if runs_dir is None or runs_dir == "" else Path(runs_dir)
    return str(Path(os.path.expanduser(root)).resolve())


def key_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as a claim key holds them: without ``NOT_IN_KEY``, ``runs_dir``
    resolved, values as JSON has them (a tuple is a list), sorted by name."""
    out = {}
    for name in sorted(parameters):
        if name in NOT_IN_KEY:
            continue
        value = parameters[name]
        if name == "runs_dir":
            value = resolved_runs_dir(value)
        out[name] = json.loads(json.dumps(value, default=str))
    return out


def claims_key(notebook: Path, parameters: Mapping[str, Any], zoo: str,
               package: str | None = None) -> dict[str, Any]:
    """The key of the claims ``notebook`` saves when run with ``parameters`` on the zoo whose
    fingerprint is ``zoo`` (``package``: ``package_digest()``, computed if None)."""
    return {"parameters": key_parameters(parameters), "zoo": zoo,
            "package": package or package_digest(), "notebook": notebook_digest(notebook)}


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def differences(saved: Mapping[str, Any] | None, expected: Mapping[str, Any]
                ) -> tuple[list[str], list[str]]:
    """How a saved key differs from the expected one: (short names, e.g. ["seed",
    "package code"], and phrases, e.g. ["they were made with seed=1, this book uses seed=0",
    "the package code changed since"]). Both empty: the keys match."""
    if not isinstance(saved, Mapping):
        return ["key"], ["they were saved without a key (by an older solu-repro)"]
    names, phrases = [], []
    old, new = saved.get("parameters") or {}, expected.get("parameters") or {}
    was, now = [], []
    for name in sorted(set(old) | set(new)):
        if old.get(name, "<unset>") != new.get(name, "<unset>"):
            names.append(name)
            was.append(f"{name}={_show(old[name])}" if name in old else f"no {name}")
            now.append(f"{name}={_show(new[name])}" if name in new else f"no {name}")
    if was:
        phrases.append(f"they were made with {', '.join(was)}, this book uses {', '.join(now)}")
    if saved.get("zoo") != expected.get("zoo"):
        names.append("zoo")
        phrases.append("they were made for another zoo (other model configs)")
    if saved.get("package") != expected.get("package"):
        names.append("package code")
        phrases.append("the solu_repro package code changed since")
    if saved.get("notebook") != expected.get("notebook"):
        names.append("notebook")
        phrases.append("its notebook changed since")
    return names, phrases
