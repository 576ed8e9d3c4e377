"""Build the HTML book: execute the notebooks at a scale, vendor the offline JavaScript, run
Jupyter Book (``solu-repro book --scale S``).

Three steps, each reusing what it can:

1. **Execute** every ``notebooks/NN-*.ipynb`` with papermill (parameters ``scale``,
   ``interactive=False``, ``runs_dir``, ``progress=False``) into ``<root>/book/executed/``. A
   notebook is skipped when its inputs did not change: the hash of its cells, the scale, the
   parameters and the ``solu_repro`` package's source files is stored in the executed copy and
   compared. A chapter that saves claims is also re-executed when its saved record
   (``<runs_dir>/<scale>/claims/``) was made from other inputs than its executed copy (a hand
   run with other parameters overwrote it; ``record``); the scorecard is told the book root, so
   it renders only records that match the chapters published there, and is re-executed when
   any record changes. A failed notebook stops the build; its executed copy, with the
   traceback, is kept in ``<root>/book/executed/failed/``.
2. **Vendor** the JavaScript the pages need, so that the HTML works from disk with no network:
   plotly.js from the installed plotly package, the standalone widget manager ``embed.js`` of
   ``@jupyter-widgets/html-manager`` (the release matching ipywidgets 8.1.9) and MathJax 3,
   both from the npm registry with ``npm pack`` (the tarballs are cached, checked against
   pinned integrity hashes, and reused). They go to ``<root>/book/vendor/`` (not committed;
   not a folder named ``_static``, whose every js/css file Jupyter Book 1 would add to every
   page), which ``_config.yml`` lists in ``html_static_path``.
3. **Build** the HTML with ``jupyter-book build . -W -n --keep-going`` (warnings are errors)
   into ``<root>/_build/html``.

One build at a time per root: a second ``solu-repro book`` into the same folder waits for the
first (``book_lock``), since both would run the notebooks through the same ``running/`` copies.

``root`` is the checkout itself by default. Any other folder (the tests use a temporary one)
gets a copy of the book's sources (``_config.yml``, ``_toc.yml``, ``book/``) and is built
there, so the checkout's ``book/executed`` and ``_build`` are left alone.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import paths
from ..atomic import atomic_path
from ..zoo_progress import duration
from . import keys
from .keys import (BUILD_ONLY_MODULES, EXECUTED, METADATA_KEY,  # noqa: F401 (re-exported)
                   notebook_digest, package_digest)

NOTEBOOK_NAME = re.compile(r"^\d\d-[A-Za-z0-9_-]+\.ipynb$")
VENDOR = Path("book") / "vendor"
BOOK_SOURCES = ("_config.yml", "_toc.yml")
LOCK_FILE = EXECUTED / ".build.lock"  # held by the one `solu-repro book` building in a root
KERNEL = "python3"
INJECTED_TAG = "injected-parameters"  # papermill's tag on the cell it adds
REMOVE_TAG = "remove-cell"            # Jupyter Book: not in the HTML
TEST_TAGS = ("nbval-check-output",)   # nbval's; the pages do not carry them


class BookBuildError(RuntimeError):
    """The book could not be built; the message says which step and what to look at."""


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm release: fetched once with ``npm pack``, checked, cached."""

    name: str
    version: str
    integrity: str  # the registry's sha512 (Subresource-Integrity format)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:  # npm pack's file name: @scope/pkg -> scope-pkg-VERSION.tgz
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


# The standalone widget manager of ipywidgets 8.1.9 (jupyterlab_widgets 3.0.17, whose
# jupyterlab-manager 5.0.16 pins the same @jupyter-widgets/base ^6.0.12 / controls ^5.0.13).
HTML_MANAGER = NpmPackage(
    "@jupyter-widgets/html-manager", "1.0.15",
    "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==")
MATHJAX = NpmPackage(
    "mathjax", "3.2.2",
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")

# What the book loads from book/vendor (= _static/ in the HTML); _config.yml names these paths.
PLOTLY_JS = "plotly.min.js"
WIDGETS_JS = "widgets/embed.js"
MATHJAX_JS = "mathjax/tex-mml-chtml.js"
# MathJax's es5 folder minus what the book never loads: the other combined components, the
# SVG output, node's entry point, and latest.js (which would load MathJax from a CDN).
_MATHJAX_SKIP = re.compile(
    r"^(?!tex-mml-chtml\.js$)[^/]+\.js$|^output/svg(/|\.js$)|^adaptors/|^node-main")
_MATHJAX_KEEP_TOP = {"core.js", "loader.js", "startup.js"}


@dataclass
class NotebookResult:
    name: str
    status: str  # "executed" | "reused"
    seconds: float
    path: Path


@dataclass
class BuildReport:
    root: Path
    notebooks: list[NotebookResult] = field(default_factory=list)
    html_dir: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def stages_line(self) -> str:
        """The stages' times on one line: "[book] precompute 3 min 12 s | notebooks 5 min 3 s |
        html 41 s | total 9 min 0 s" (vendoring the JavaScript counts as html)."""
        stages = {"precompute": self.seconds.get("precompute"),
                  "notebooks": self.seconds.get("execute"),
                  "html": (sum(self.seconds[k] for k in ("vendor", "html") if k in self.seconds)
                           if "html" in self.seconds or "vendor" in self.seconds else None)}
        parts = [f"{k} {duration(v)}" for k, v in stages.items() if v is not None]
        return "[book] " + " | ".join(parts + [f"total {duration(sum(self.seconds.values()))}"])

    def summary(self) -> str:
        lines = [f"{r.name:40s} {r.status:8s} {r.seconds:7.1f} s" for r in self.notebooks]
        lines.append(self.stages_line())
        if self.html_dir is not None:
            lines.append(f"book: {self.html_dir / 'index.html'}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- sources


def checkout_root(start: Path | None = None) -> Path:
    """The solu-repro checkout (``paths.project_root``), checked to hold the book's sources."""
    root = (start or paths.project_root()).resolve()
    missing = [p for p in (*BOOK_SOURCES, "notebooks") if not (root / p).exists()]
    if missing:
        raise BookBuildError(
            f"{root} is not a solu-repro checkout with a book (missing {', '.join(missing)}): "
            "run `solu-repro book` from the repository")
    return root


def find_notebooks(repo: Path) -> list[Path]:
    """The book's notebooks, ``notebooks/NN-name.ipynb``, in order."""
    return sorted(p for p in (repo / "notebooks").iterdir() if NOTEBOOK_NAME.match(p.name))


def toc_files(toc_path: Path) -> list[str]:
    """Every ``file:`` entry of a Jupyter Book ``_toc.yml`` (root first), without suffixes."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text())
    found: list[str] = [str(toc["root"])]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(ipynb|md)$", "", f) for f in found]


def check_toc(repo: Path, notebooks: Sequence[Path]) -> None:
    """The toc lists exactly the executed copies of the notebooks (else pages go missing)."""
    listed = {f for f in toc_files(repo / "_toc.yml") if f.startswith(EXECUTED.as_posix() + "/")}
    expected = {(EXECUTED / nb.stem).as_posix() for nb in notebooks}
    problems = [f"notebooks/{Path(f).name}.ipynb is not listed in _toc.yml (add `- file: {f}`)"
                for f in sorted(expected - listed)]
    problems += [f"_toc.yml lists {f}, but notebooks/{Path(f).name}.ipynb does not exist"
                 for f in sorted(listed - expected)]
    if problems:
        raise BookBuildError("_toc.yml and notebooks/ disagree:\n  " + "\n  ".join(problems))


def stage_sources(repo: Path, root: Path) -> None:
    """Copy the book's sources into another book root (no-op when root is the checkout)."""
    if root.resolve() == repo.resolve():
        return
    root.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        shutil.copy2(repo / name, root / name)
    skip = {(repo / EXECUTED).resolve(), (repo / VENDOR).resolve()}
    for src in (repo / "book").rglob("*"):
        if src.is_dir() or any(parent in skip for parent in src.resolve().parents):
            continue
        dest = root / src.relative_to(repo)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


# ----------------------------------------------------------------------------- execution


def notebook_inputs(path: Path, parameters: dict[str, Any], package: str,
                    environment: dict[str, str]) -> dict[str, Any]:
    """What decides an executed notebook: its cells, parameters, package and environment.

    ``execute_all`` adds ``claims`` to a chapter that saves claims (the key its record must
    carry, ``keys.claims_key``; chapter 9 reads it from the executed copy) and ``records`` to
    the scorecard (a digest of every record it renders, so it is re-executed when any
    changes)."""
    return {"notebook": notebook_digest(path), "parameters": parameters, "package": package,
            "environment": environment}


def inputs_hash(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def stored_inputs(executed: Path) -> dict[str, Any] | None:
    """The inputs an executed copy was made from (None if missing or unreadable)."""
    if not executed.is_file():
        return None
    try:
        nb = json.loads(executed.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return nb.get("metadata", {}).get(METADATA_KEY, {}).get("inputs")


def stale_reason(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """Why an executed copy must be redone (None: it is current)."""
    if old is None:
        return "not executed yet"
    changed = [_INPUT_NAMES.get(key, key) for key in new if old.get(key) != new[key]]
    return f"changed: {', '.join(changed)}" if changed else None


_INPUT_NAMES = {"claims": "claim key", "records": "the saved claims it renders"}


def execute_notebook(source: Path, executed: Path, parameters: dict[str, Any],
                     inputs: dict[str, Any], cwd: Path, progress: bool = True) -> None:
    """Run ``source`` with papermill; on success write it atomically to ``executed``.

    papermill saves the notebook after every cell into ``running/`` (a long run can be watched
    there); on success it is moved into place, on failure to ``failed/``, where it stays.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    running = executed.parent / "running" / executed.name
    failed = executed.parent / "failed" / executed.name
    running.parent.mkdir(parents=True, exist_ok=True)
    failed.unlink(missing_ok=True)
    try:
        papermill.execute_notebook(
            source, running, parameters=parameters, kernel_name=KERNEL, cwd=cwd,
            progress_bar=progress, request_save_on_cell_execute=True)
    except BaseException as exc:
        if running.is_file():
            failed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(running, failed)
        if isinstance(exc, PapermillExecutionError):
            raise BookBuildError(
                f"notebook {source.name} failed at cell [{exc.exec_count}] with {exc.ename}: "
                f"{exc.evalue}\n  the executed copy, with the full traceback: {failed}\n"
                f"  reproduce with: papermill {source} /tmp/{source.name} -k {KERNEL} "
                + " ".join(f"-p {k} {v}" for k, v in parameters.items() if v is not None)
            ) from exc
        if isinstance(exc, Exception):  # kernel died, timeout, no parameters cell, ...
            raise BookBuildError(
                f"notebook {source.name} could not be executed ({type(exc).__name__}: {exc})"
                + (f"\n  the partly executed copy: {failed}" if failed.is_file() else "")
            ) from exc
        raise  # KeyboardInterrupt
    nb = prepare_for_pages(nbformat.read(running, as_version=4))
    nb.metadata[METADATA_KEY] = {"inputs": inputs, "inputs_hash": inputs_hash(inputs)}
    with atomic_path(executed) as tmp:
        nbformat.write(nb, tmp)
    running.unlink()


def prepare_for_pages(nb: Any) -> Any:
    """The executed copy as the published page should show it: papermill's injected-parameters
    cell tagged ``remove-cell`` (the page shows the chapter, not the machinery that ran it; the
    copy keeps the cell), and no test tag (Jupyter Book writes every tag into the HTML as a
    class)."""
    for cell in nb.cells:
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t not in TEST_TAGS]
        if INJECTED_TAG in tags and REMOVE_TAG not in tags:
            tags.append(REMOVE_TAG)
        if tags or "tags" in cell.get("metadata", {}):
            cell.metadata["tags"] = tags
    return nb


def book_command(scale: str, runs_dir: Path | None, root: Path, repo: Path) -> str:
    """The ``solu-repro book`` command line that builds this book again."""
    import shlex

    parts = ["solu-repro", "book", "--scale", scale]
    if runs_dir is not None:
        parts += ["--runs-dir", str(runs_dir.resolve())]
    if root.resolve() != repo.resolve():
        parts += ["--output", str(root.resolve())]
    return "`" + " ".join(shlex.quote(p) for p in parts) + "`"


def execute_all(repo: Path, root: Path, scale: str, runs_dir: Path | None, force: bool = False,
                progress: bool = True, log: Callable[[str], None] = print
                ) -> list[NotebookResult]:
    """Execute every notebook whose inputs changed into ``root/book/executed``.

    A chapter that saves claims (``paper.registry.CHAPTERS``) is also re-executed when its
    saved record (``<runs_dir>/<scale>/claims/<chapter>.json``) is missing or was made from
    other inputs than its executed copy (a hand run with other parameters overwrote it); the
    scorecard (``record.SCORECARD``) is passed ``book_root`` so it checks each record against
    the executed copy published here, and is re-executed when any record changed."""
    from ..paper.registry import CHAPTERS
    from .record import SCORECARD, saved

    notebooks = find_notebooks(repo)
    if not notebooks:
        raise BookBuildError(f"no notebooks/NN-*.ipynb in {repo}")
    check_toc(repo, notebooks)
    parameters = {"scale": scale, "interactive": False,
                  "runs_dir": str(runs_dir.resolve()) if runs_dir is not None else None,
                  # No progress bars in the pages: saved tqdm widgets are noise to a reader.
                  # The build log shows papermill's own progress through each notebook.
                  "progress": False}
    # What the kernel inherits decides where models and corpora are found.
    environment = {"SOLU_RUNS_DIR": str(runs_dir.resolve() if runs_dir is not None
                                        else paths.runs_dir().resolve()),
                   "SOLU_DATA_DIR": str(paths.data_dir().resolve())}
    package = package_digest()
    zoo = keys.zoo_fingerprint(scale)
    claims_runs = environment["SOLU_RUNS_DIR"]  # where the chapters save their claims
    out_dir = root / EXECUTED
    results = []
    for source in notebooks:
        executed = out_dir / source.name
        chapter = source.stem
        passed = dict(parameters)
        if chapter == SCORECARD:
            passed["book_root"] = str(root.resolve())
        inputs = notebook_inputs(source, passed, package, environment)
        if chapter in CHAPTERS:
            inputs["claims"] = keys.claims_key(
                source, {**keys.notebook_parameters(source), **passed}, zoo, package)
        elif chapter == SCORECARD:
            inputs["records"] = {c: saved(claims_runs, scale, c)[1] for c in CHAPTERS}
        start = time.perf_counter()
        reason = "--force" if force else stale_reason(stored_inputs(executed), inputs)
        if reason is None and "claims" in inputs:
            key, digest = saved(claims_runs, scale, chapter)
            names, _ = keys.differences(key, inputs["claims"])
            if digest is None:
                reason = "its saved claims are missing"
            elif names:
                reason = f"its saved claims came from other inputs: {', '.join(names)}"
        if reason is None:
            results.append(NotebookResult(source.stem, "reused", 0.0, executed))
            continue
        log(f"executing {source.name} at scale {scale} ({reason}) ...")
        execute_notebook(source, executed, passed, inputs, cwd=source.parent,
                         progress=progress)
        if "claims" in inputs:  # what it saved must be what chapter 9 will expect
            key, digest = saved(claims_runs, scale, chapter)
            names, _ = keys.differences(key, inputs["claims"])
            path = Path(claims_runs) / scale / "claims" / f"{chapter}.json"
            if digest is not None and names and set(names) <= {"package code", "notebook"}:
                raise BookBuildError(
                    f"the {' and the '.join(names)} changed while notebook {source.name} ran "
                    f"(its saved claims {path} carry the new one): rebuild with "
                    + book_command(scale, runs_dir, root, repo))
            if digest is None or names:
                raise BookBuildError(
                    f"notebook {source.name} ran but its saved claims ({path}) "
                    + ("are missing" if digest is None else
                       f"carry other inputs than the build gave it ({', '.join(names)})")
                    + ", so chapter 9 would refuse them: its record.save(ctx, "
                    f"{chapter!r}, claims, parameters=dict(...)) call must pass the values "
                    "of its parameters cell as the notebook received them")
        seconds = time.perf_counter() - start
        log(f"  {source.name} done in {seconds:.0f} s")
        results.append(NotebookResult(source.stem, "executed", seconds, executed))
    names = {nb.name for nb in notebooks}
    for stale in out_dir.glob("*.ipynb"):  # notebooks that were renamed or removed
        if stale.name not in names:
            stale.unlink()
    return results


class BookLockedError(BookBuildError):
    """Another ``solu-repro book`` is building in the same root."""


@contextlib.contextmanager
def book_lock(root: Path, wait: bool = True, log: Callable[[str], None] = print):
    """An exclusive lock on a book root (``root/book/executed/.build.lock``, which holds the
    builder's pid): two builds into one folder would run every notebook through the same
    ``running/`` copies and publish a mix. A second build waits for the first (``wait``) or
    raises ``BookLockedError``."""
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "?"
            message = (f"another `solu-repro book` (pid {holder}) is building in {root}")
            if not wait:
                raise BookLockedError(
                    f"{message}; wait for it to finish, or build into another folder: "
                    f"`solu-repro book --output {root.parent / (root.name + '-2')}` "
                    "(with your other options)") from None
            log(f"[book] {message}; waiting for it to finish ...")
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            lock_file.seek(0)
            lock_file.truncate()
            lock_file.write(f"{os.getpid()}\n")
            lock_file.flush()
            yield
        finally:
            lock_file.seek(0)
            lock_file.truncate()
            lock_file.flush()
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- vendoring


def cache_dir() -> Path:
    """Where npm tarballs are kept between builds (``$SOLU_CACHE_DIR`` or ~/.cache/solu-repro)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "solu-repro"
    return Path(os.environ.get("SOLU_CACHE_DIR") or default).expanduser()


def _sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def npm_tarball(package: NpmPackage, cache: Path | None = None) -> Path:
    """The package's tarball from the cache, fetched with ``npm pack`` the first time."""
    folder = (cache or cache_dir()) / "npm"
    tarball = folder / package.tarball_name
    if tarball.is_file() and _sri(tarball) == package.integrity:
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise BookBuildError(
            f"npm is needed once to fetch {package.spec} (the book's offline JavaScript): "
            "install Node.js/npm (e.g. `apt-get install npm`) and rebuild")
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".pack-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    try:
        proc = subprocess.run([npm, "pack", package.spec, "--silent"], cwd=scratch,
                              capture_output=True, text=True)
        fetched = scratch / package.tarball_name
        if proc.returncode != 0 or not fetched.is_file():
            raise BookBuildError(f"`npm pack {package.spec}` failed:\n{proc.stderr.strip()}")
        if _sri(fetched) != package.integrity:
            raise BookBuildError(f"{package.spec} from npm does not match its pinned integrity "
                                 f"{package.integrity}")
        os.replace(fetched, tarball)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tarball


def _extract(tarball: Path, dest: Path, prefix: str, keep: Callable[[str], bool]) -> int:
    """Extract the members under ``prefix`` for which ``keep(relative path)`` holds."""
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            if ".." in Path(rel).parts or not keep(rel):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    return count


def _keep_mathjax(rel: str) -> bool:
    if "/" not in rel:
        return rel == "tex-mml-chtml.js" or rel in _MATHJAX_KEEP_TOP
    return not _MATHJAX_SKIP.match(rel)


def vendor_assets(dest: Path, cache: Path | None = None) -> None:
    """Put plotly.js, the widget manager and MathJax into ``dest`` (reused when current)."""
    import plotly

    stamp_path = dest / ".vendored.json"
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    stamp = {"plotly": plotly.__version__, "plotly_size": plotly_js.stat().st_size,
             "npm": [HTML_MANAGER.integrity, MATHJAX.integrity]}
    try:
        if json.loads(stamp_path.read_text()) == stamp and all(
                (dest / f).is_file() for f in (PLOTLY_JS, WIDGETS_JS, MATHJAX_JS)):
            return
    except (OSError, json.JSONDecodeError):
        pass
    tarballs = {p.name: npm_tarball(p, cache) for p in (HTML_MANAGER, MATHJAX)}
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(plotly_js, dest / PLOTLY_JS)
    # embed.js plus the font files it references relative to itself (not the AMD bundles)
    _extract(tarballs[HTML_MANAGER.name], dest / Path(WIDGETS_JS).parent, "package/dist/",
             lambda rel: "/" not in rel and (rel == "embed.js" or rel.endswith(
                 (".woff", ".woff2", ".ttf", ".eot", ".svg", "LICENSE.txt"))))
    _extract(tarballs[MATHJAX.name], dest / Path(MATHJAX_JS).parent, "package/es5/",
             _keep_mathjax)
    _extract(tarballs[MATHJAX.name], dest / Path(MATHJAX_JS).parent, "package/",
             lambda rel: rel == "LICENSE")
    stamp_path.write_text(json.dumps(stamp))


# ----------------------------------------------------------------------------- HTML


def build_html(root: Path, quiet: bool = False) -> Path:
    """``jupyter-book build . -W -n --keep-going`` in ``root``; returns ``root/_build/html``."""
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", ".", "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root, text=True,
                          stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode != 0:
        raise BookBuildError(
            "jupyter-book build failed (warnings are errors, -W -n)"
            + (f":\n{proc.stdout[-6000:]}" if quiet else "; see its messages above")
            + f"\n  book root: {root}")
    return root / "_build" / "html"


def build_book(scale: str = "cpu", runs_dir: Path | None = None, root: Path | None = None,
               repo: Path | None = None, force: bool = False, html: bool = True,
               progress: bool = True, quiet: bool = False,
               log: Callable[[str], None] = print, workers: int | None = None,
               wait: bool = True) -> BuildReport:
    """Execute the notebooks at ``scale``, vendor the JavaScript and build the HTML book,
    logging each stage's start and time ("[book] precompute done in 3 min 12 s").

    Args:
        scale: the zoo scale the notebooks run at ("tiny", "cpu", "gpu").
        runs_dir: zoo runs (default: ``$SOLU_RUNS_DIR`` or ``./runs``, resolved by notebooks).
        root: the book root to build in (default: the checkout).
        repo: the checkout holding notebooks/ and the book's sources (default: found from cwd).
        force: re-execute every notebook.
        html: also build the HTML (False: execute only).
        progress: papermill's per-notebook progress bar.
        quiet: capture Jupyter Book's output (shown only if it fails).
        workers: processes that score the zoo before the notebooks run
            (``book.precompute``; None: one per CPU core; 1: none, the notebooks score as
            they go).
        wait: when another ``solu-repro book`` is building in ``root``, wait for it (False:
            raise ``BookLockedError`` at once).
    """
    from ..zoo import SCALES

    if scale not in SCALES:
        raise BookBuildError(f"unknown scale {scale!r}: use one of {sorted(SCALES)}")
    repo = checkout_root(repo)
    root = (root or repo).resolve()
    with book_lock(root, wait=wait, log=log):
        return _build_book(scale, runs_dir, root, repo, force, html, progress, quiet, log,
                           workers)


def _build_book(scale: str, runs_dir: Path | None, root: Path, repo: Path, force: bool,
                html: bool, progress: bool, quiet: bool, log: Callable[[str], None],
                workers: int | None) -> BuildReport:
    """``build_book``'s stages, under the root's lock."""
    report = BuildReport(root=root)
    start = time.perf_counter()
    stage_sources(repo, root)
    if (workers or os.cpu_count() or 1) >= 2:
        # chapter 4's scores of every model, in parallel (changes no result)
        from .context import book_context
        from .precompute import precompute

        precompute(book_context(scale=scale, runs_dir=runs_dir, interactive=False,
                                progress=False), workers=workers,
                   log=lambda line: log(f"[book] precompute: {line.strip()}"))
        report.seconds["precompute"] = time.perf_counter() - start
        log(f"[book] precompute done in {duration(report.seconds['precompute'])}")
        start = time.perf_counter()
    log(f"[book] notebooks: {len(find_notebooks(repo))} at scale {scale}; executing those "
        "whose inputs changed ...")
    report.notebooks = execute_all(repo, root, scale, runs_dir, force=force,
                                   progress=progress, log=log)
    report.seconds["execute"] = time.perf_counter() - start
    executed = sum(r.status == "executed" for r in report.notebooks)
    log(f"[book] notebooks done in {duration(report.seconds['execute'])} ({executed} "
        f"executed, {len(report.notebooks) - executed} reused)")
    if html:
        log("[book] html: vendoring the JavaScript, then jupyter-book build ...")
        start = time.perf_counter()
        vendor_assets(root / VENDOR)
        report.seconds["vendor"] = time.perf_counter() - start
        start = time.perf_counter()
        report.html_dir = build_html(root, quiet=quiet)
        report.seconds["html"] = time.perf_counter() - start
        log(f"[book] html done in {duration(report.seconds['vendor'] + report.seconds['html'])}")
    return report
