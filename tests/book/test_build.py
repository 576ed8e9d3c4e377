"""The HTML book: built at scale tiny into a temporary root, then opened from disk in headless
Chromium with every name lookup blocked, as a reader without network would.

Also: the plotly mime renderer on its own, papermill's rejection of a bad parameter, and a
failing notebook failing the build with a message that points at its executed copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from importlib.metadata import entry_points
from pathlib import Path

import nbformat
import pytest

from solu_repro.book import build
from solu_repro.book.build import BookBuildError, build_book, find_notebooks
from solu_repro.book.mime import PLOTLY_MIME, PlotlyMimeRenderer, figure_html

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = find_notebooks(ROOT)
CHROMIUM = os.environ.get("SOLU_CHROMIUM", "/usr/bin/chromium")
# The page that always shows the neuron viewer's shaded tokens (solu_repro.interp.view), even
# at scale tiny; chapter 6 shows them only for neurons the scorer finds (none at tiny scale).
NEURON_VIEW_PAGE = "05-one-layer-neurons"
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


# ----------------------------------------------------------------------------- helpers


class Page(HTMLParser):
    """What the checks need from an HTML document (static file or Chromium's DOM dump)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []        # src of every <script src>
        self.stylesheets: list[str] = []    # href of every <link rel=stylesheet|preload|...>
        self.plotly_divs = 0                # div.plotly-graph-div
        self.plotly_drawn = 0               # ... that plotly.js drew (class js-plotly-plot)
        self.main_svgs = 0                  # svg.main-svg (plotly's drawing)
        self.tok_alphas: list[float] = []   # background alpha of every span.solu-tok
        self.math = 0                       # sphinx math nodes (class math)
        self.mathjax = 0                    # mjx-container: MathJax typeset them
        self.widget_views = 0               # saved widget views
        self.widgets = 0                    # .jupyter-widgets: the widget manager drew them
        self.links: list[str] = []          # every <a href>
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "script":
            if a.get("src"):
                self.scripts.append(a["src"])
            if a.get("type") == "application/vnd.jupyter.widget-view+json":
                self.widget_views += 1
        elif tag == "link" and a.get("href") and set((a.get("rel") or "").lower().split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "prefetch"}:
            self.stylesheets.append(a["href"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "div" and "plotly-graph-div" in classes:
            self.plotly_divs += 1
            self.plotly_drawn += "js-plotly-plot" in classes
        if tag == "svg" and "main-svg" in classes:
            self.main_svgs += 1
        if tag == "span" and "solu-tok" in classes:
            m = re.search(r"rgba\(\s*[\d.]+\s*,\s*[\d.]+\s*,\s*[\d.]+\s*,\s*([\d.]+)\s*\)",
                          a.get("style") or "")
            self.tok_alphas.append(float(m.group(1)) if m else 0.0)
        if "math" in classes:
            self.math += 1
        if tag == "mjx-container":
            self.mathjax += 1
        if "jupyter-widgets" in classes:
            self.widgets += 1

    def external(self) -> list[str]:
        return [u for u in self.scripts + self.stylesheets if EXTERNAL.match(u)]


def dump_dom(path: Path, profile: Path) -> str:
    """The DOM of a page opened from disk after its scripts ran, with no network at all."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-quic", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=8000",
           "--dump-dom", path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "<html" in proc.stdout, (
        f"chromium failed on {path} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


# ----------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def book(built_book):
    """The book built at scale tiny into a temporary root (``conftest.built_book``)."""
    return built_book.report


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: install it with `make browser` (Debian's "
                    "chromium package), or point $SOLU_CHROMIUM at one")
    return CHROMIUM


def page_path(book, name: str) -> Path:
    if name == "intro":
        return book.html_dir / "book" / "intro.html"
    return book.html_dir / "book" / "executed" / f"{name}.html"


def test_book_has_the_nine_chapters():
    assert [nb.stem[:2] for nb in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 10)], NOTEBOOKS


@pytest.mark.slow
def test_toc_lists_every_notebook(book):
    assert (book.html_dir / "index.html").is_file()
    intro = Page(page_path(book, "intro").read_text())
    linked = {Path(h.split("#")[0]).stem for h in intro.links if "executed/" in h}
    assert linked == {nb.stem for nb in NOTEBOOKS}
    assert len(linked) == 9
    for nb in NOTEBOOKS:
        assert page_path(book, nb.stem).is_file(), nb


@pytest.mark.slow
def test_no_page_references_an_external_script_or_stylesheet(book):
    pages = sorted(book.html_dir.rglob("*.html"))
    assert len(pages) >= 9
    offenders = {str(p.relative_to(book.html_dir)): Page(p.read_text()).external()
                 for p in pages}
    assert not {k: v for k, v in offenders.items() if v}
    # the vendored JavaScript is what the pages load instead
    static = book.html_dir / "_static"
    for name in (build.PLOTLY_JS, build.WIDGETS_JS, build.MATHJAX_JS):
        assert (static / name).is_file(), name


@pytest.mark.slow
def test_rebuild_reuses_the_executed_notebooks(built_book, monkeypatch):
    for key, value in built_book.env.items():
        monkeypatch.setenv(key, value)
    again = build_book("tiny", runs_dir=built_book.runs, root=built_book.report.root, repo=ROOT,
                       html=False, progress=False)
    assert {r.status for r in again.notebooks} == {"reused"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["intro"] + [nb.stem for nb in NOTEBOOKS])
def test_page_renders_offline(book, browser, name, tmp_path):
    path = page_path(book, name)
    static = Page(path.read_text())
    dom = Page(dump_dom(path, tmp_path / "profile"))
    assert not dom.external(), f"{name} loads {dom.external()}"
    assert dom.plotly_divs == static.plotly_divs
    assert dom.plotly_drawn == static.plotly_divs, (
        f"{name}: plotly.js drew {dom.plotly_drawn} of {static.plotly_divs} figures")
    if static.plotly_divs:
        assert dom.main_svgs >= static.plotly_divs
    if static.math:
        assert dom.mathjax, f"{name}: MathJax did not typeset the page's maths"
    if static.widget_views:
        assert dom.widgets, f"{name}: the widget manager drew none of its saved widgets"
    if name == NEURON_VIEW_PAGE:
        assert dom.tok_alphas, f"{name} shows no neuron view (span.solu-tok)"
    if dom.tok_alphas or static.tok_alphas:  # every neuron view is drawn, shaded
        assert len(dom.tok_alphas) == len(static.tok_alphas)
        assert max(dom.tok_alphas) > 0, f"{name}: no token is shaded"


# What a reader of the HTML must not see: the notebooks' machinery.
PLUMBING = {
    "a test marker": re.compile(r"NBVAL_CHECK_OUTPUT|nbval-check-output"),
    "papermill's injected-parameters cell": re.compile(r"tag_injected-parameters|Injected Parameters", re.I),
    "the parameters cell": re.compile(r"tag_parameters\b"),
    "the validation cell": re.compile(r"book_context\("),
    "a glue call": re.compile(r"\bglue\("),
    "a saved progress bar": re.compile(r"FloatProgressModel|ProgressStyleModel|\d+%\|[^|<]*\|"),
    "an unresolved glue reference": re.compile(r"\{glue:"),
}
# Chapters that draw plotly figures at every scale (chapter 5 shows HTML neuron cards).
FIGURE_PAGES = {"02-solu-design", "03-performance", "04-interpretability-quantitative",
                "06-neurons-across-layers", "07-layernorm"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["intro"] + [nb.stem for nb in NOTEBOOKS])
def test_page_shows_no_plumbing(book, name):
    text = page_path(book, name).read_text()
    found = {what: m.group(0) for what, pattern in PLUMBING.items()
             if (m := pattern.search(text))}
    assert not found, f"{name} shows the notebook's machinery: {found}"
    if name in FIGURE_PAGES:
        assert Page(text).plotly_divs, f"{name} has no figure"


@pytest.mark.slow
@pytest.mark.parametrize("name", [nb.stem for nb in NOTEBOOKS])
def test_chapter_opens_with_what_it_found(book, name):
    """The first paragraph under the title states this build's result, glued from the run."""
    text = page_path(book, name).read_text()
    body = text[text.index("<h1"):]
    first = re.search(r"<p>(.*?)</p>", body, re.S).group(1)
    assert re.search(r"Found in this build|This copy of the book", first), first[:300]
    assert re.search(r"\d", re.sub(r"<[^>]+>", "", first)), first[:300]


@pytest.mark.slow
def test_design_chapter_shows_the_librarys_solu(book):
    """Chapter 2 shows the code the models run: the source of solu_repro.activations.solu."""
    import inspect
    from html import unescape

    from solu_repro.activations import solu

    text = unescape(re.sub(r"<[^>]+>", "", page_path(book, "02-solu-design").read_text()))
    first_lines = [line.strip() for line in inspect.getsource(solu).splitlines()[:3]]
    assert all(line in text for line in first_lines), first_lines


# ----------------------------------------------------------------------------- the parts


def test_mime_renderer_is_registered():
    eps = entry_points(group="myst_nb.mime_renderers")
    assert any(ep.load() is PlotlyMimeRenderer for ep in eps), list(eps)


def test_mime_renderer_turns_plotly_json_into_offline_html():
    import plotly.graph_objects as go
    from docutils import nodes
    from myst_nb.core.render import MimeData, get_mime_priority

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="<b>x</b>"))
    bundle = json.loads(json.dumps(fig.to_plotly_json()))  # as stored in a notebook
    renderer = type("Renderer", (), {})()
    data = MimeData(PLOTLY_MIME, bundle, cell_index=3, output_index=0)
    out = PlotlyMimeRenderer.handle_mime(renderer, data, False)
    assert len(out) == 1 and isinstance(out[0], nodes.raw) and out[0]["format"] == "html"
    html = out[0].astext()
    assert "Plotly.newPlot" in html and 'class="plotly-graph-div"' in html
    assert "<script src" not in html and "cdn" not in html.lower() and "mathjax" not in html
    # ids are deterministic (same HTML on every rebuild) and unique on a page
    again = PlotlyMimeRenderer.handle_mime(renderer, data, False)[0].astext()
    other = PlotlyMimeRenderer.handle_mime(type("Renderer", (), {})(), data, False)[0].astext()
    div_id = re.compile(r'id="([^"]+)"')
    assert div_id.search(html).group(1) != div_id.search(again).group(1)
    assert other == html
    # other mime types are left to myst-nb
    assert PlotlyMimeRenderer.handle_mime(renderer, MimeData("text/plain", "x"), False) is None
    # HTML builders prefer it to text/html; others never pick it
    html_priority = get_mime_priority("html", [])
    assert html_priority.index(PLOTLY_MIME) < html_priority.index("text/html")
    assert PLOTLY_MIME not in get_mime_priority("latex", [])


def test_figure_html_passes_the_figure_config():
    html = figure_html({"data": [], "layout": {}, "config": {"displaylogo": False}}, "fig1")
    assert '"displaylogo": false' in html and 'id="fig1"' in html


def test_toc_must_match_the_notebooks(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for name in ("01-a.ipynb", "02-b.ipynb"):
        (tmp_path / "notebooks" / name).write_text("{}")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n- file: book/executed/01-a\n"
        "- file: book/executed/03-c\n")
    with pytest.raises(BookBuildError) as err:
        build.check_toc(tmp_path, find_notebooks(tmp_path))
    assert "notebooks/02-b.ipynb is not listed" in str(err.value)
    assert "lists book/executed/03-c, but notebooks/03-c.ipynb does not exist" in str(err.value)


@pytest.mark.slow
def test_bad_scale_is_rejected_with_a_parameter_error(tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    smallest = min(NOTEBOOKS, key=lambda p: p.stat().st_size)
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(smallest, tmp_path / "out.ipynb", kernel_name="python3",
                                   parameters={"scale": "huge"}, progress_bar=False,
                                   cwd=smallest.parent)
    assert err.value.ename == "ParameterError"
    assert "parameter scale='huge' is invalid" in err.value.evalue
    assert "'tiny'" in err.value.evalue and "papermill" in err.value.evalue


def _fake_checkout(root: Path, cells: list) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "- file: book/executed/01-broken\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "notebooks" / "01-broken.ipynb")
    return root


@pytest.mark.slow
def test_a_failing_notebook_fails_the_build_and_keeps_its_executed_copy(tmp_path):
    params = nbformat.v4.new_code_cell('scale = "tiny"\nruns_dir = None\nprogress = True\n'
                                       "interactive = True")
    params.metadata["tags"] = ["parameters"]
    repo = _fake_checkout(tmp_path / "repo", [
        nbformat.v4.new_markdown_cell("# 1. Broken"), params,
        nbformat.v4.new_code_cell("print('before')"),
        nbformat.v4.new_code_cell("raise RuntimeError('the analysis broke')")])
    with pytest.raises(BookBuildError) as err:
        build_book("tiny", root=tmp_path / "out", repo=repo, html=False, progress=False)
    message = str(err.value)
    failed = tmp_path / "out" / "book" / "executed" / "failed" / "01-broken.ipynb"
    assert "01-broken.ipynb failed" in message and "the analysis broke" in message
    assert str(failed) in message
    kept = nbformat.read(failed, as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in kept.cells for o in c.get("outputs", []))
    assert not (tmp_path / "out" / "book" / "executed" / "01-broken.ipynb").exists()
    assert not (repo / "book" / "executed").exists()  # the checkout is left alone


# ----------------------------------------------------------------------------- one build per root


def test_a_second_build_in_the_same_root_refuses_while_another_process_holds_it(tmp_path):
    """Two builds into one folder would run the notebooks through the same ``running/``
    copies (one died with a Sphinx EOFError): the second one is refused, naming the first."""
    import sys

    repo = _fake_checkout(tmp_path / "repo", [nbformat.v4.new_markdown_cell("# 1. Broken")])
    root = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from solu_repro.book.build import book_lock; "
         "lock = book_lock(Path(sys.argv[1])); lock.__enter__(); print('held', flush=True); "
         "sys.stdin.read(); lock.__exit__(None, None, None)", str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(build.BookLockedError) as err:
            build_book("tiny", root=root, repo=repo, html=False, progress=False, wait=False)
        message = str(err.value)
        assert f"another `solu-repro book` (pid {holder.pid}) is building in {root}" in message
        assert "solu-repro book --output" in message and "\n" not in message
        assert not (root / "_config.yml").exists()   # it touched nothing
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    with build.book_lock(root, wait=False):  # released with its holder
        assert (root / build.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_a_second_build_waits_for_the_first_by_default(tmp_path):
    import threading

    root = tmp_path / "out"
    waiting, acquired, lines = threading.Event(), threading.Event(), []

    def log(line):
        lines.append(line)
        waiting.set()

    def second():
        with build.book_lock(root, log=log):
            acquired.set()

    with build.book_lock(root):
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=60), "the second build neither waited nor said so"
        assert not acquired.is_set()
        assert f"another `solu-repro book` (pid {os.getpid()}) is building in {root}; " \
               "waiting for it to finish" in lines[0]
    thread.join(timeout=60)
    assert acquired.is_set()
