"""Offline plotly figures in the HTML book: a myst-nb mime renderer plugin.

plotly's default renderer emits only ``application/vnd.plotly.v1+json``, a mime type that
myst-nb does not know (it warns and drops the figure). This plugin, registered in
pyproject.toml under the entry-point group ``myst_nb.mime_renderers``, turns that output into
the HTML of ``plotly.io.to_html(fig, include_plotlyjs=False, include_mathjax=False,
full_html=False)``: a ``<div>`` and a ``<script>`` calling ``Plotly.newPlot``. plotly.js
itself is not embedded: the book build copies the plotly package's own ``plotly.min.js`` next
to the pages and loads it once per page (``html_js_files`` in ``_config.yml``), so figures draw
from disk with no network. The notebooks keep plotly's default renderer, so JupyterLab shows
the same figures natively.

Sphinx renders every mime type of an output when it parses a notebook; a post-transform then
keeps the one of highest priority for the builder at hand. The plugin gives the plotly mime
type a priority only for the builders that accept ``text/html`` (just ahead of it); other
builders (LaTeX, text) ignore the figure as before.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"

# Per rendered document: how many figures got an id so far (ids must be unique on a page, even
# when one figure is shown twice, e.g. glued).
_counters: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


def figure_html(figure: dict[str, Any] | str, div_id: str | None = None) -> str:
    """The HTML of a plotly figure (its JSON output as a dict or a string), without plotly.js.

    The figure is not re-validated: it is JSON that plotly itself produced in the kernel.
    """
    import plotly.io as pio

    fig = json.loads(figure) if isinstance(figure, (str, bytes)) else dict(figure)
    config = fig.pop("config", None)  # a renderer's config travels inside the mime bundle
    return pio.to_html(fig, config=config, include_plotlyjs=False, include_mathjax=False,
                       full_html=False, validate=False, div_id=div_id)


def _div_id(renderer: Any, content: Any, data: Any) -> str:
    """A deterministic, page-unique div id: rebuilding the book gives the same HTML."""
    try:
        count = _counters.get(renderer, 0)
        _counters[renderer] = count + 1
    except TypeError:  # renderer not weak-referenceable: fall back to the cell position
        count = 0
    text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
    digest = hashlib.sha1(
        f"{data.cell_index}:{data.output_index}:{text}".encode()).hexdigest()[:12]
    return f"plotly-{digest}-{count}"


def _html_priorities() -> list[tuple[str, str, int]]:
    """(builder, plotly mime, priority) for every builder that renders ``text/html``."""
    from myst_nb.core.render import base_render_priority

    return [(builder, PLOTLY_MIME, priorities["text/html"] - 1)
            for builder, priorities in base_render_priority().items()
            if "text/html" in priorities]


class PlotlyMimeRenderer:
    """myst-nb ``MimeRenderPlugin``: plotly JSON outputs become HTML for HTML builders."""

    mime_priority_overrides = _html_priorities()

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[Any] | None:
        if data.mime_type != PLOTLY_MIME:
            return None  # not ours: myst-nb's own renderers handle it
        from docutils import nodes

        html = figure_html(data.content, div_id=_div_id(renderer, data.content, data))
        return [nodes.raw(text=html, format="html", classes=["output", "text_html",
                                                             "solu-plotly"])]
