"""The book's notebooks are interactive in JupyterLab: opened in a real browser, run, and worked.

A module fixture starts ``jupyter lab`` from this venv (tests/jupyterlab_session.py: a random
token, a free port, config/data/runtime dirs of its own, root a temporary copy of the
notebooks so that nothing is saved into the committed ones) with the session's
``$SOLU_RUNS_DIR`` holding the tiny zoo (the ``tiny_zoo`` fixture) and ``$SOLU_DATA_DIR``, and
opens it in Debian's Chromium driven by Selenium through ChromeDriver.

Each test opens a notebook at its defaults (scale "tiny", interactive=True), clears it and runs
every cell with JupyterLab's own ``notebook:run-all-cells`` command (what Run > Run All Cells
does), waits for every code cell to have run with the kernel idle and no error output, then
works the notebook's widget as a reader would:

* 02-solu-design: ``ch02_design.explorer``'s sliders and its plotly bar chart render; five
  ArrowRight presses on the x0 slider's handle move x0 from 4.0 to 4.5, and the chart is
  redrawn by the kernel with bar heights in the new proportions;
* 05-one-layer-neurons: the ``NeuronBrowser`` renders neuron L0N0 of the SoLU model with its
  shaded examples; typing neuron 3 and choosing the other model each change the page shown.

The fixture's teardown quits the browser, shuts the server down (it stops its kernels), kills
its process group, and fails if any server, kernel, ChromeDriver or Chromium process is left.
A failing check saves a screenshot, the page's text and the server log under the test's
tmp_path and names them. Without Chromium or ChromeDriver the tests fail: `make browser`.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import psutil
import pytest

from jupyterlab_session import (LabError, LabSession, describe, jupyter_children, missing_browser,
                                wait_for)

ROOT = Path(__file__).resolve().parents[2]
DESIGN = "02-solu-design.ipynb"
NEURONS = "05-one-layer-neurons.ipynb"

# Bounds of the waits, in seconds. Seen on a 2-core machine: the server answers in ~3 s,
# JupyterLab restores in ~3 s, notebook 02 runs in ~10 s and 05 in ~4 s (tiny zoo trained),
# a widget change is redrawn in under 1 s; the module takes ~35 s once the tiny zoo is trained
# (~15 s more if this is the session's first test to ask for it).
KERNEL_IDLE_S = 120
RUN_ALL_S = 240
RENDER_S = 60
UPDATE_S = 60
TEST_TIMEOUT_S = 420

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEST_TIMEOUT_S)]


# ----------------------------------------------------------------------------- the session


@pytest.fixture(scope="module")
def lab(tiny_zoo, tmp_path_factory):
    """JupyterLab on a copy of notebooks 02 and 05, open in Chromium; nothing left after."""
    problem = missing_browser()
    if problem:
        pytest.fail(problem, pytrace=False)
    env = {"SOLU_RUNS_DIR": str(tiny_zoo), "SOLU_DATA_DIR": os.environ["SOLU_DATA_DIR"],
           # one OpenMP thread: the kernel's small tensors, on cores shared with the browser
           "OMP_NUM_THREADS": "1"}
    # Harvest and score chapter 5's models now (cached next to each run), so the waits below
    # time JupyterLab, not a cold cache, when this module runs alone.
    from solu_repro.book import book_context

    ctx = book_context("tiny", runs_dir=tiny_zoo, interactive=False, progress=False)
    for name in ("1L-solu_ln", "1L-gelu"):
        ctx.scores(name)
    before = jupyter_children()  # another test's, not this module's to answer for
    workdir = tmp_path_factory.mktemp("jupyterlab")
    session = LabSession(workdir, [ROOT / "notebooks" / DESIGN, ROOT / "notebooks" / NEURONS],
                         env)
    with pytest.MonkeyPatch.context() as mp:
        from selenium.webdriver.common.selenium_manager import SeleniumManager

        def no_selenium_manager(*_args, **_kwargs):
            raise RuntimeError("Selenium Manager must not run: the driver's path is given")

        mp.setenv("SE_OFFLINE", "true")
        mp.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
        try:
            try:
                session.start()
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                evidence = session.save_evidence(workdir / "failure", "start")
                raise LabError(f"JupyterLab did not start in the browser: {exc}\n{evidence}"
                               ) from exc
            yield session
        finally:
            lingering = session.close()
    strays = jupyter_children(exclude=before)
    left = describe(strays)
    for p in strays:
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not lingering and not left, (
        "processes left after the JupyterLab session was shut down (now killed):\n  "
        + "\n  ".join(lingering + left))


@contextlib.contextmanager
def evidence_on_failure(lab: LabSession, tmp_path: Path, what: str):
    """Any failure inside becomes an AssertionError naming the screenshot and page text."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        evidence = lab.save_evidence(tmp_path, "jupyterlab")
        raise AssertionError(f"{what}: {exc}\n{evidence}") from exc


# ----------------------------------------------------------------------------- notebook steps


def open_notebook(lab: LabSession, path: str) -> None:
    """Open ``path`` in JupyterLab (a kernel starts) and make it the current widget."""
    lab.js("""
        const w = await app.commands.execute('docmanager:open', {path: args[0], factory: 'Notebook'});
        await w.context.ready;
        await w.sessionContext.ready;
        app.shell.activateById(w.id);
        return w.id;""", path, timeout=KERNEL_IDLE_S / 2)
    wait_for(f"the kernel of {path} idle", KERNEL_IDLE_S, lambda: _kernel_idle(lab, path))


def _kernel_idle(lab: LabSession, path: str):
    state = lab.js("""
        const w = notebook(args[0]);
        const kernel = w && w.sessionContext.session && w.sessionContext.session.kernel;
        return kernel ? [kernel.status, kernel.connectionStatus] : 'no kernel';""", path)
    return state == ["idle", "connected"], state


def run_all_cells(lab: LabSession, path: str) -> dict:
    """Clear the notebook and run every cell (Run > Run All Cells); its final state."""
    before = lab.js("""
        const w = notebook(args[0]);
        app.shell.activateById(w.id);
        if (app.shell.currentWidget !== w) throw new Error('the notebook is not the current widget');
        await app.commands.execute('notebook:clear-all-cell-outputs');
        window.__soluRunAll = {done: false};
        app.commands.execute('notebook:run-all-cells').then(
          (ok) => { window.__soluRunAll = {done: true, ok: ok}; },
          (e) => { window.__soluRunAll = {done: true, ok: false, error: String(e)}; });
        return Array.from(w.model.cells).filter((c) => c.type === 'code')
          .filter((c) => c.executionCount !== null).length;""", path)
    assert before == 0, f"{path}: {before} cells still had an execution count after clearing"

    def finished():
        s = lab.js("""
            const w = notebook(args[0]);
            const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
            const code = Array.from(w.model.cells).filter((c) => c.type === 'code');
            const outputs = code.flatMap((c) => c.outputs.toJSON());
            return {run: window.__soluRunAll, kernel: kernel ? kernel.status : 'no kernel',
                    code: code.length,
                    executed: code.filter((c) => c.executionCount !== null).length,
                    errors: outputs.filter((o) => o.output_type === 'error')
                                   .map((o) => `${o.ename}: ${o.evalue}`)};""", path)
        if s["errors"]:
            raise LabError(f"{path}: a cell failed in JupyterLab: {s['errors']}")
        if s["run"]["done"] and not s["run"]["ok"]:
            raise LabError(f"{path}: Run All Cells did not succeed: {s}")
        return (s["run"]["done"] and s["kernel"] == "idle" and s["executed"] == s["code"]), s

    return wait_for(f"{path}: every cell run, kernel idle", RUN_ALL_S, finished, interval=0.5)


def output_with_label(lab: LabSession, path: str, label: str, within: str = ".widget-label"):
    """The rendered cell output holding a widget whose description is ``label``."""
    def find():
        out = lab.js("""
            const w = notebook(args[0]);
            const label = Array.from(w.node.querySelectorAll(args[1]))
              .find((l) => l.textContent.trim() === args[2]);
            return label ? label.closest('.jp-OutputArea-output') : null;""",
                     path, within, label)
        return out is not None, out

    out = wait_for(f"{path}: a widget labelled {label!r} rendered", RENDER_S, find)
    lab.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", out)
    return out


def control(lab: LabSession, out, label: str, selector: str):
    """The element ``selector`` of the widget labelled ``label`` inside ``out``."""
    el = lab.js("""
        const label = Array.from(args[0].querySelectorAll('.widget-label'))
          .find((l) => l.textContent.trim() === args[1]);
        return label ? label.parentElement.querySelector(args[2]) : null;""",
                out, label, selector)
    assert el is not None, f"no {selector} in the widget labelled {label!r}"
    return el


# ----------------------------------------------------------------------------- 02: the explorer

_BAR = re.compile(r"M([-\d.e]+),([-\d.e]+)V([-\d.e]+)H([-\d.e]+)V([-\d.e]+)Z")


def explorer_state(lab: LabSession, out) -> dict:
    """The explorer's slider readouts and its chart as drawn (legend, bar paths)."""
    s = lab.js("""
        const out = args[0];
        return {
          readouts: Array.from(out.querySelectorAll('.widget-slider .widget-readout'))
                      .map((r) => r.textContent.trim()),
          svgs: out.querySelectorAll('svg.main-svg').length,
          title: Array.from(out.querySelectorAll('.gtitle')).map((t) => t.textContent).join(' '),
          legend: Array.from(out.querySelectorAll('.legendtext')).map((t) => t.textContent),
          traces: Array.from(out.querySelectorAll('g.trace.bars')).map(
            (g) => Array.from(g.querySelectorAll('path')).map((p) => p.getAttribute('d'))),
        };""", out)
    s["values"] = [float(r) for r in s["readouts"]]
    return s


def bar_heights(paths: list[str]) -> list[float]:
    """Pixel heights of plotly bars (``M x,y0 V y1 H x2 V y0 Z``), positive upwards."""
    heights = []
    for d in paths:
        m = _BAR.fullmatch(d or "")
        heights.append(float(m.group(2)) - float(m.group(3)) if m else 0.0)
    return heights


def shows_values(state: dict) -> bool:
    """The chart's "x" bars are in the proportions of the sliders' values (to 1%)."""
    if state["svgs"] == 0 or not state["traces"] or state["legend"][:1] != ["x"]:
        return False
    heights, values = bar_heights(state["traces"][0]), state["values"]
    if len(heights) != len(values) or max(heights) <= 0:
        return False
    top_h, top_v = max(heights), max(values)
    return all(abs(h / top_h - v / top_v) < 0.01 for h, v in zip(heights, values))


def test_design_explorer_sliders_redraw_the_figure(lab, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    with evidence_on_failure(lab, tmp_path, DESIGN):
        open_notebook(lab, DESIGN)
        run = run_all_cells(lab, DESIGN)
        assert run["executed"] >= 10, run
        env = lab.js("""
            const kernel = notebook(args[0]).sessionContext.session.kernel;
            const code = 'import os; print(os.environ["SOLU_RUNS_DIR"])';
            let text = '';
            const future = kernel.requestExecute({code: code, silent: false, store_history: false});
            future.onIOPub = (msg) => { if (msg.header.msg_type === 'stream') text += msg.content.text; };
            await future.done;
            return text.trim();""", DESIGN)
        assert env == os.environ["SOLU_RUNS_DIR"], (
            f"the kernel's SOLU_RUNS_DIR is {env!r}, not the session's tiny zoo")

        out = output_with_label(lab, DESIGN, "x0", within=".widget-slider .widget-label")
        start = wait_for("the explorer's plotly chart drawn with the sliders' values", RENDER_S,
                         lambda: (shows_values(s := explorer_state(lab, out)), s))
        assert start["readouts"] == ["4.00", "1.00", "4.00", "1.00"], start
        assert start["legend"] == ["x", "softmax(x)", "SoLU(x)", "LN(SoLU(x))", "GELU(x)"], start
        assert "x and its activations" in start["title"], start

        handle = control(lab, out, "x0", ".noUi-handle")
        lab.driver.execute_script("arguments[0].focus();", handle)
        assert lab.driver.switch_to.active_element == handle, "the x0 slider's handle has no focus"
        keys = ActionChains(lab.driver)
        for _ in range(5):  # step 0.1
            keys.send_keys(Keys.ARROW_RIGHT).pause(0.05)
        keys.perform()

        def redrawn():
            s = explorer_state(lab, out)
            return (s["readouts"][:1] == ["4.50"] and s["traces"] != start["traces"]
                    and shows_values(s)), s

        end = wait_for("the chart redrawn for x0 = 4.5", UPDATE_S, redrawn)
        assert end["values"] == [4.5, 1.0, 4.0, 1.0], end
        heights = bar_heights(end["traces"][0])
        assert heights[0] / heights[2] == pytest.approx(4.5 / 4.0, rel=0.01), end
        changed = [a != b for a, b in zip(start["traces"], end["traces"])]
        assert all(changed), f"every function's bars should change with x0: {changed}"


# ----------------------------------------------------------------------------- 05: the browser


def browser_state(lab: LabSession, out) -> dict:
    return lab.js("""
        const out = args[0];
        const text = (sel) => { const e = out.querySelector(sel); return e ? e.textContent : null; };
        const page = out.querySelector('.solu-neuron');
        return {label: text('.solu-neuron-label'), header: text('.solu-header'),
                error: text('.solu-error'), tokens: out.querySelectorAll('.solu-tok').length,
                html: page ? page.innerHTML : null};""", out)


def test_neuron_browser_controls_change_the_page(lab, tmp_path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    with evidence_on_failure(lab, tmp_path, NEURONS):
        open_notebook(lab, NEURONS)
        run_all_cells(lab, NEURONS)
        out = output_with_label(lab, NEURONS, "neuron")
        start = wait_for("the neuron browser's page", RENDER_S,
                         lambda: ((s := browser_state(lab, out))["label"] is not None, s))
        model = Select(control(lab, out, "model", "select"))
        models = [o.text for o in model.options]
        first = model.first_selected_option.text
        assert first == "1L-solu_ln" and len(models) == 2, models
        assert start["label"] == "L0N0" and start["header"].startswith(first), start
        assert start["error"] is None and start["tokens"] > 0, start

        neuron = control(lab, out, "neuron", "input")
        neuron.click()
        neuron.send_keys(Keys.CONTROL, "a")
        neuron.send_keys("3", Keys.ENTER)
        moved = wait_for("the page of neuron L0N3", UPDATE_S, lambda: (
            (s := browser_state(lab, out))["label"] == "L0N3" and s["html"] != start["html"], s))
        assert moved["header"].startswith(first) and moved["error"] is None, moved

        other = next(m for m in models if m != first)
        model.select_by_visible_text(other)
        switched = wait_for(f"the page of {other}'s L0N3", UPDATE_S, lambda: (
            (s := browser_state(lab, out))["header"].startswith(other)
            and s["html"] != moved["html"], s))
        assert switched["label"] == "L0N3" and switched["error"] is None, switched
        assert switched["tokens"] > 0, switched
