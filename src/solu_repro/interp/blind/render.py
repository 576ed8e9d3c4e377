"""Showing a neuron without revealing it: Figure-3-style snippets on a relative scale.

Rendering needs each model, its corpus and its harvest (``BlindModel``);
``load_zoo_entries`` loads them for trained zoo models.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from .defaults import DEFAULT_N_EXAMPLES
from .errors import BlindError
from .sampling import BlindItem, BlindModel, as_blind_model, model_source
from .session import BlindSession, describe_differences


class Renderer(Protocol):
    """Shows one item's dataset examples; must never reveal the model, layer or neuron."""

    def html(self, item: BlindItem) -> str: ...

    def text(self, item: BlindItem) -> str: ...


def relative_snippets(snippets: Sequence[Any]) -> list[Any]:
    """The snippets with activations divided by their strongest firing (which becomes 1).

    Blinding: ``snippets_html`` shows exact activations on hover, and their absolute scale
    differs between GELU and SoLU models, so shown raw they would hint at the model.
    """
    peak = max((max([s.value, *s.activations]) for s in snippets), default=0.0)
    if not (peak > 0 and np.isfinite(peak)):
        peak = 1.0
    return [dataclasses.replace(s, value=s.value / peak,
                                activations=[a / peak for a in s.activations])
            for s in snippets]


class SnippetRenderer:
    """Figure-3-style dataset examples of a session's items, via ``solu_repro.interp.view``.

    Shown without the model name, layer or neuron, and with activations relative to the
    neuron's strongest shown firing (see ``relative_snippets``): nothing on screen says which
    model a neuron comes from (§6.1: "randomized and blinded").
    """

    def __init__(self, session: BlindSession, entries: Mapping[str, Any], left: int = 32,
                 right: int = 8, color: bool = False):
        if not isinstance(session, BlindSession):
            raise TypeError(f"SnippetRenderer(session, entries): the first argument must be "
                            f"the BlindSession, got {type(session).__name__}")
        self.session = session
        self.entries = {name: as_blind_model(name, e) for name, e in entries.items()}
        self.left, self.right, self.color = left, right, color
        self._check_entries()
        self._cache: dict[str, list[Any]] = {}

    def _check_entries(self) -> None:
        missing = [m for m in self.session.models if m not in self.entries]
        if missing:
            raise BlindError(f"the session needs models {missing} to show its neurons; pass "
                             f"them to SnippetRenderer (have {sorted(self.entries)})")
        for name in self.session.models:
            expected = self.session.settings["sources"][name]
            got = model_source(name, self.entries[name])
            if got != expected:
                raise BlindError(
                    f"model {name!r} is not the one this session sampled from "
                    f"({describe_differences(expected, got)}): it was retrained or "
                    "re-harvested since. Use the original, or start a new session")

    def snippets(self, item: BlindItem) -> list[Any]:
        """The item's top dataset examples, relative scale (the last item's are cached)."""
        if item.item not in self._cache:
            from .. import view

            m = self.entries[item.model]
            hook, n = self.session.settings["hook"], self.session.settings["n_examples"]
            examples = m.harvest.top_examples(item.layer, item.neuron, hook, n)
            snippets = view.neuron_snippets(m.model, m.corpus, m.harvest, item.layer,
                                            item.neuron, examples, hook=hook, left=self.left,
                                            right=self.right)
            self._cache = {item.item: relative_snippets(snippets)}
        return self._cache[item.item]

    def html(self, item: BlindItem) -> str:
        from .. import view

        snippets = self.snippets(item)
        if not snippets:
            return "<p><i>This neuron has no recorded firings.</i></p>"
        return view.snippets_html(snippets, max_value=1.0, title=item.item)

    def text(self, item: BlindItem) -> str:
        from .. import view

        snippets = self.snippets(item)
        if not snippets:
            return "(this neuron has no recorded firings)"
        return view.snippets_text(snippets, max_value=1.0, color=self.color)


def load_zoo_entries(names: Sequence[str], scale: str, runs_dir: str | Path | None = None,
                     data_dir: str | Path | None = None, k: int = DEFAULT_N_EXAMPLES,
                     progress: bool = True, seed: int = 0,
                     sources: Sequence[str] | None = None) -> dict[str, BlindModel]:
    """Trained zoo models (or released ones, ``tl:<name>``) with their corpus and (cached)
    harvest, ready to render (``sources``: the corpus released models read, in their own
    tokenizer; default the embedded default corpus).

    Trains a missing model first (``zoo.ensure_trained``) and harvests it once per run and
    ``seed`` (the book's chapters harvest with their context's seed; the same seed reuses their
    harvest).
    """
    from ... import zoo
    from ...pretrained import is_published, published_run
    from ..harvest import harvest_run

    out = {}
    for name in names:
        if is_published(name):  # a released model (solu_repro.pretrained), offline
            run = published_run(name, runs_dir, tuple(sources) if sources else None)
        else:
            run = zoo.ensure_trained(name, scale, runs_dir, progress=progress, data_dir=data_dir)
        harvest = harvest_run(run, k=k, seed=seed, progress=progress, data_dir=data_dir)
        out[name] = BlindModel(run.load_model(), run.corpus(data_dir), harvest)
    return out
