"""Chapter 4's blinded-evaluation app, reached the way a user reaches it: the notebook run in
JupyterLab mode with ``start_blind_app=True``, and the app it builds judged through its own
buttons and text field, closed, reopened (resumed) and unblinded."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest

from solu_repro.book import book_context
from solu_repro.book import ch04_interpretability as iq
from solu_repro.interp.blind import (
    BUTTON_LABELS,
    DEFAULT_MODELS,
    INSTRUCTION,
    JUDGMENTS_NAME,
    MANIFEST_NAME,
    BlindSession,
    unblind,
)

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "notebooks" / "04-interpretability-quantitative.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
I, N, S = "interpretable", "not_interpretable", "skip"


@pytest.fixture
def blind_folder(tiny_zoo):
    """``name -> <runs>/tiny/blind/<name>``, each removed afterwards: the tiny zoo's runs are
    shared with the other book tests, which must not find these sessions."""
    made = []

    def folder(name: str) -> Path:
        made.append(tiny_zoo / "tiny" / iq.BLIND_DIR / name)
        assert not made[-1].exists()
        return made[-1]

    yield folder
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def widget_tree(state: dict, model_id: str) -> list[dict]:
    """The widget ``model_id`` and every widget below it, from a notebook's widget state."""
    found, todo = [], [model_id]
    while todo:
        widget = state[todo.pop()]["state"]
        found.append(widget)
        todo += [child.removeprefix("IPY_MODEL_") for child in widget.get("children", [])]
    return found


@pytest.mark.slow
def test_chapter4_in_jupyterlab_mode_shows_the_app_and_creates_the_session(
        tiny_zoo, blind_folder, tmp_path, monkeypatch):
    import nbformat
    import papermill

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    name = "test-chapter-app"
    folder = blind_folder(name)
    executed = tmp_path / CHAPTER.name
    papermill.execute_notebook(
        CHAPTER, executed, kernel_name="python3", cwd=CHAPTER.parent, progress_bar=False,
        parameters=dict(scale="tiny", runs_dir=str(tiny_zoo), interactive=True, progress=False,
                        start_blind_app=True, blind_session=name))
    nb = nbformat.read(executed, as_version=4)
    [cell] = [c for c in nb.cells if c.cell_type == "code" and "blind_app(" in c.source]
    views = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1, cell.outputs
    # The displayed widget is the app: its instruction, first neuron and buttons.
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    tree = widget_tree(state, views[0]["data"][WIDGET_VIEW]["model_id"])
    values = " ".join(str(w.get("value", "")) for w in tree)
    assert html.escape(INSTRUCTION) in values
    assert "solu-snippets" in values and "solu-tok" in values  # real dataset examples
    assert {w.get("description") for w in tree} >= set(BUTTON_LABELS.values())
    session = BlindSession.open(folder)  # the app created the session on start
    assert session.models == list(DEFAULT_MODELS) and session.items and not session.judgments
    assert f"<b>0 / {len(session.items)}</b> judged" in values
    assert not any(model in values for model in session.models)  # blind
    assert not (folder / JUDGMENTS_NAME).exists()


@pytest.mark.slow
def test_app_judges_resumes_and_unblinds_through_its_own_widgets(tiny_zoo, blind_folder):
    ctx = book_context("tiny", runs_dir=tiny_zoo, interactive=True, progress=False)
    name = "test-app-resume"
    folder = blind_folder(name)
    app = iq.blind_app(ctx, name, n=3)  # as chapter 4 builds it
    session = app.session
    items = session.items
    assert session.path == folder and (folder / MANIFEST_NAME).is_file() and len(items) == 6
    assert app.current == items[0] and "0 / 6" in app.progress.value
    assert "solu-snippets" in app.snippets.value
    clicks = [(I, "the word the"), (N, ""), (S, "")]
    for judgment, hypothesis in clicks:
        app.hypothesis.value = hypothesis  # typed into the app's text field
        app.buttons[judgment].click()
    assert app.current == items[3] and "3 / 6" in app.progress.value
    app.close()
    assert app.widget.comm is None and app.buttons[I].comm is None

    reopened = iq.blind_app(ctx, name, n=3)  # the notebook run again, same session name
    assert reopened.session.manifest_hash == session.manifest_hash
    assert reopened.current == items[3] and "3 / 6" in reopened.progress.value
    kept = reopened.session.judged(app.evaluator)
    assert [(kept[it.item].judgment, kept[it.item].hypothesis) for it in items[:3]] == clicks
    rest = [I, I, N]
    for judgment in rest:
        reopened.buttons[judgment].click()
    assert reopened.current is None and reopened.judging.layout.display == "none"
    assert reopened.finished.layout.display != "none"

    reopened.unblind_button.click()
    given = {it.item: j for it, j in zip(items, [j for j, _ in clicks] + rest)}
    report = unblind(BlindSession.open(folder))
    assert html.escape(report.to_markdown()) in reopened.report.value
    for model in session.models:
        mine = [given[it.item] for it in items if it.model == model]
        row = report.model(model)
        assert (row.n_interpretable, row.n_not_interpretable, row.n_skipped, row.n_pending) \
            == (mine.count(I), mine.count(N), mine.count(S), 0)
        assert f"| {model} | {row.n_judged} | {row.n_interpretable} |" in reopened.report.value
    reopened.close()
