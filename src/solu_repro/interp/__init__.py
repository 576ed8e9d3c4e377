"""Interpretability tools for paper §6: harvest neurons, view them, judge them blind,
score them automatically, and the analyses the book's notebooks plot.

Modules:

* ``harvest``: one streaming pass -> top-k firings, activation-level samples, statistics.
* ``view``: Figure 3-style HTML of dataset examples, direct logit effects (Figure 5), an
  ipywidgets neuron browser.
* ``blind``: the §6.1 blinded human protocol (ipywidgets app and ``solu-repro blind``).
* ``explanations`` / ``score``: the automated stand-in for a quick human look, with a
  full-spectrum (held-out precision/recall) view beside the paper's top-20 rule.
* ``planted``: neurons with known answers, to validate harvesting and scoring.
* ``controls``: null sources (rotated basis, untrained model, post hoc SoLU readout) scored
  through the same pipeline.
* ``labels``: ground-truth token labels computed from the source text (``tokenize``/``ast``
  for code, exact regexes for prose), cached beside the corpus.
* ``probing``: sparse probing against those labels (Gurnee et al. 2023), the privileged-basis
  gap and dedicated neurons.
* ``basis_score``: the rotation-fair judge score (features exposed, each counted once).
* ``instruments``: the three instruments on zoo runs and their nulls, cached, and the judge
  checked against the labels.
* ``calibration``: the planted rotation test that says which instrument a rotation cannot
  fool.
* ``analysis``: pre/post-LN consistency by band (§6.4), layer roles (§6.3), sparsity.
* ``sae``: sparse autoencoders (SAELens TopK) on the MLP activations, their features read by
  the same instruments, and how their decoder directions align with the neurons.
* ``stats``: Wilson and Newcombe intervals, agreement and Cohen's kappa.
"""

# The ``harvest`` function is not re-exported: it would shadow the ``harvest`` module.
from .harvest import (
    HOOKS,
    Example,
    Harvest,
    HarvestError,
    ModelNeurons,
    NeuronSource,
    harvest_path,
    harvest_run,
    selection_rows,
    split_position,
)
from .score import NeuronScore, NeuronScores, ScoreSettings, human_agreement, score_neurons, score_run
from .controls import CONTROLS, controls_for, score_control
from .stats import Proportion, proportion, wilson_interval
from .sae import FeatureDictionary, SAEFeatures, SAEReport, SAESettings, sae_run, train_sae

__all__ = [
    "CONTROLS", "HOOKS", "Example", "Harvest", "HarvestError", "ModelNeurons", "NeuronScore",
    "NeuronScores", "NeuronSource", "Proportion", "ScoreSettings", "harvest_path",
    "controls_for", "harvest_run", "human_agreement", "proportion", "score_control",
    "score_neurons", "score_run",
    "selection_rows", "split_position", "wilson_interval",
]
__all__ += ["FeatureDictionary", "SAEFeatures", "SAEReport", "SAESettings", "sae_run",
            "train_sae"]
