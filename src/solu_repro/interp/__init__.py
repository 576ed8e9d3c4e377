"""Interpretability tools for paper §6: harvest neurons, view them, judge them blind,
score them automatically, and the analyses the book's notebooks plot.

Modules: ``harvest`` (one streaming pass -> top-k, activation-level samples, statistics),
``view`` (Figure 3-style HTML, an ipywidgets browser, direct logit effects),
``blind`` (the §6.1 blinded human protocol), ``score`` (the automated stand-in),
``analysis`` (pre/post-LN consistency, layer roles, sparsity).
"""

from .harvest import (
    HOOKS,
    Example,
    Harvest,
    HarvestError,
    ModelNeurons,
    NeuronSource,
    harvest,
    harvest_path,
    harvest_run,
    selection_rows,
    split_position,
)

__all__ = [
    "HOOKS", "Example", "Harvest", "HarvestError", "ModelNeurons", "NeuronSource", "harvest",
    "harvest_path", "harvest_run", "selection_rows", "split_position",
]
