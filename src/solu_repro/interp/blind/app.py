"""The judging app for JupyterLab (ipywidgets, imported only when an app is made)."""

from __future__ import annotations

import functools
import html
import time
from typing import Any

from .protocol import INSTRUCTION, JUDGMENTS, TIME_HINT
from .render import Renderer
from .report import unblind
from .sampling import BlindItem
from .session import BlindSession, default_evaluator
from .store import Judgment

BUTTON_LABELS = {"interpretable": "Interpretable", "not_interpretable": "Not interpretable",
                 "skip": "Skip"}


class BlindApp:
    """An ipywidgets app for judging a session: display ``app.widget`` (or ``app``).

    Every click appends to the judgments file at once (fsynced) and moves on, so closing the
    notebook loses nothing. Unblinding is offered only once this evaluator has judged every
    item, so nobody sees results mid-way (§6.1: blinded).
    """

    def __init__(self, session: BlindSession, renderer: Renderer, evaluator: str | None = None):
        import ipywidgets as w

        self.session, self.renderer = session, renderer
        self.current: BlindItem | None = None
        self._shown_at = time.monotonic()
        self.evaluator_box = w.Text(value=evaluator or default_evaluator(),
                                    description="Evaluator", continuous_update=False)
        self.progress = w.HTML()
        self.instruction = w.HTML(
            f"<p><b>{html.escape(INSTRUCTION)}</b><br><i>{html.escape(TIME_HINT)}</i></p>")
        self.snippets = w.HTML()
        self.hypothesis = w.Text(placeholder="optional: the rule or category you see",
                                 description="Hypothesis", layout=w.Layout(width="80%"))
        self.buttons = {j: w.Button(description=BUTTON_LABELS[j],
                                    button_style={"interpretable": "success",
                                                  "not_interpretable": "danger"}.get(j, ""))
                        for j in JUDGMENTS}
        self.message = w.HTML()
        self.unblind_button = w.Button(description="Unblind results", button_style="warning")
        self.report = w.HTML()
        self.judging = w.VBox([self.instruction, self.snippets, self.hypothesis,
                               w.HBox(list(self.buttons.values()))])
        self.finished = w.VBox([w.HTML("<p><b>All neurons judged.</b> Thank you.</p>"),
                                self.unblind_button, self.report])
        self.widget = w.VBox([w.HBox([self.evaluator_box, self.progress]), self.message,
                              self.judging, self.finished])
        for judgment, button in self.buttons.items():
            button.on_click(functools.partial(self._on_click, judgment))
        self.unblind_button.on_click(self._on_unblind)
        self.evaluator_box.observe(lambda _change: self.show_next(), names="value")
        self.show_next()

    @property
    def evaluator(self) -> str:
        return self.evaluator_box.value.strip()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Close every widget of the app (its judgments are on disk already)."""
        def close_tree(widget: Any) -> None:
            for child in getattr(widget, "children", ()):
                close_tree(child)
            widget.close()

        close_tree(self.widget)

    def show_next(self) -> None:
        """Show this evaluator's first unjudged item, or the final screen."""
        self.message.value = ""
        if not self.evaluator:
            self.message.value = "<p style='color:#b00'>Enter your name as evaluator.</p>"
            return
        done, total = self.session.progress(self.evaluator)
        self.progress.value = f"<b>{done} / {total}</b> judged"
        self.current = self.session.next_item(self.evaluator)
        self.judging.layout.display = None if self.current else "none"
        self.finished.layout.display = "none" if self.current else None
        if self.current is None:
            return
        try:
            self.snippets.value = self.renderer.html(self.current)
        except Exception as exc:  # show it in the app rather than kill the widget callback
            self.snippets.value = f"<pre>could not render: {html.escape(repr(exc))}</pre>"
        self.hypothesis.value = ""
        self._shown_at = time.monotonic()

    def judge(self, judgment: str) -> Judgment | None:
        """Record ``judgment`` for the current item and advance (what the buttons do)."""
        if self.current is None or not self.evaluator:
            self.show_next()
            return None
        j = self.session.record(self.current, judgment, self.evaluator, self.hypothesis.value,
                                seconds=time.monotonic() - self._shown_at)
        self.show_next()
        return j

    def _on_click(self, judgment: str, _button: Any) -> None:
        self.judge(judgment)

    def _on_unblind(self, _button: Any) -> None:
        report = unblind(self.session)
        self.report.value = f"<pre>{html.escape(report.to_markdown())}</pre>"
