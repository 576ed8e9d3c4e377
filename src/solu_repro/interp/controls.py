"""Null controls for the automated judge: neuron sources that should *not* beat a model.

Each control is a ``NeuronSource`` (see ``harvest.NeuronSource``), so it goes through exactly
the harvest -> score pipeline a trained model does, and its scores read on the same scale:

* ``rotated(source, seed)``: the same activations seen in a random orthogonal basis. The
  paper's argument (§3.2, "privileged basis"; §3.4, superposition) is that a coordinate-wise
  nonlinearity makes the neuron basis special, so features tend to line up with neurons; a
  Haar-random rotation of the MLP space has no reason to line up with anything, spreading
  each feature over all directions. Predictions: a rotated model is less interpretable than
  the neuron basis, and SoLU's gain over GELU should vanish after rotation (if it did not,
  the judge would be measuring something other than alignment of features with neurons).
  Read it on the full-spectrum view: when features are sparse (one active per token), a
  rotated direction's top firings are all the one feature it weights most, so the top-20
  rule is nearly blind to the rotation (tests/interp/test_controls.py measures both views on
  planted detectors).
* ``random_init(cfg_or_run)``: the untrained model of the same config (the trained run's own
  initial weights, seeded by ``ModelConfig.seed``). Whatever it scores is what the judge
  finds in token statistics alone (an untrained 1-layer MLP still "detects" tokens through
  its random embeddings), the floor a trained model must clear.
* ``solu_readout(gelu_model)``: SoLU's readout, ``pre * softmax(pre)`` over the MLP hidden
  dimension, applied post hoc to a trained GELU model's pre-activations, without retraining.
  It asks whether the sparsity of the readout alone explains SoLU's gain: if the post hoc
  readout scores like a trained SoLU model, the gain is a property of the measurement; if
  it scores like GELU, training with SoLU changed what the neurons represent.

``score_control(run, control)`` harvests and scores a control of a zoo run with the same
settings as ``score.score_run``, caching both files in ``<run_dir>/controls/``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..activations import solu
from ..hooks import act_name
from ..model import ConfigError, ModelConfig, Transformer
from .harvest import (FORMAT_VERSION, HOOKS, Harvest, ModelNeurons, NeuronSource, harvest,
                      weights_digest)
from .score import SCORE_FORMAT, NeuronScores, ScoreSettings, score_neurons

CONTROLS = ("rotated", "random_init", "solu_readout")
"""The null controls ``score_control`` knows, in the order the book shows them."""

CONTROLS_FORMAT = 1
"""Bumped when a control's definition changes, so older cache files are not reused."""


# --- rotated ----------------------------------------------------------------------------------

def haar_orthogonal(d: int, seed: int | tuple[int, ...]) -> Tensor:
    """A Haar-random (uniform over O(d)) orthogonal ``d x d`` float32 matrix, a pure function
    of ``seed``.

    QR of a standard Gaussian matrix, with the signs of R's diagonal moved into Q (without that
    correction Q is orthogonal but not Haar-distributed). Computed in float64, so Q is
    orthogonal to float32 rounding.
    """
    words = [int(s) for s in (seed if isinstance(seed, tuple) else (seed,))]
    state = int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0])
    gen = torch.Generator().manual_seed(state)
    g = torch.randn((d, d), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return (q * signs).float()


class RotatedNeurons:
    """``source``'s neurons in a random orthogonal basis: ``a -> a @ Q[hook][layer]``.

    Each (layer, hook) gets its own Haar-random ``Q`` (``haar_orthogonal(d_mlp, (seed,
    hook_index, layer))``, ``hook_index`` = position in ``HOOKS``), drawn on first use. The
    rotation preserves everything basis-free (per-token norms, inner products, the
    information the layer carries) and changes only which directions are called neurons.
    Activations are returned in float32 on the device the source produced them on.
    """

    def __init__(self, source: NeuronSource, seed: int = 0):
        if isinstance(source, Transformer):
            source = ModelNeurons(source)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"rotation seed must be a non-negative integer, got {seed!r}")
        self.source, self.seed = source, int(seed)
        self.n_layers, self.d_mlp = source.n_layers, source.d_mlp
        self.hooks = tuple(source.hooks)
        self._bases: dict[tuple[str, int], Tensor] = {}
        self._on_device: dict[tuple[str, int, str], Tensor] = {}

    def basis(self, layer: int, hook: str = "mid") -> Tensor:
        """The ``(d_mlp, d_mlp)`` orthogonal matrix of this layer and hook (CPU, float32):
        rotated neuron ``j`` reads ``a @ Q[:, j]``."""
        if hook not in self.hooks:
            raise ConfigError(f"hook {hook!r} is not one of the source's hooks {self.hooks}")
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer must be in [0, {self.n_layers}), got {layer}")
        key = (hook, layer)
        if key not in self._bases:
            self._bases[key] = haar_orthogonal(self.d_mlp, (self.seed, HOOKS.index(hook), layer))
        return self._bases[key]

    def _basis_on(self, layer: int, hook: str, device: torch.device) -> Tensor:
        key = (hook, layer, str(device))
        if key not in self._on_device:
            self._on_device[key] = self.basis(layer, hook).to(device)
        return self._on_device[key]

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        acts = self.source.activations(tokens)
        with torch.inference_mode():
            return {h: [a.float() @ self._basis_on(l, h, a.device) for l, a in enumerate(acts[h])]
                    for h in self.hooks}


def rotated(source: NeuronSource | Transformer, seed: int = 0) -> RotatedNeurons:
    """``source`` (a ``NeuronSource`` or a ``Transformer``) seen in a seeded random orthogonal
    basis of each layer and hook: the superposition null (module docstring)."""
    return RotatedNeurons(source, seed)


# --- random init ------------------------------------------------------------------------------

def _model_config(cfg_or_run) -> ModelConfig:
    if isinstance(cfg_or_run, ModelConfig):
        return cfg_or_run
    train_cfg = getattr(cfg_or_run, "config", cfg_or_run)  # a ZooRun, or a TrainConfig
    model = getattr(train_cfg, "model", None)
    if isinstance(model, ModelConfig):
        return model
    raise ConfigError(f"random_init needs a ModelConfig, a TrainConfig or a ZooRun, got "
                      f"{type(cfg_or_run).__name__}")


def random_init(cfg_or_run, device: str | torch.device = "cpu") -> ModelNeurons:
    """The untrained model of the same ``ModelConfig`` (from a ``ModelConfig``, a
    ``TrainConfig`` or a ``ZooRun``), wrapped in ``ModelNeurons``.

    ``Transformer(cfg)`` draws its weights from a private generator seeded by
    ``cfg.seed`` (0 for every zoo model), so this is exactly the weights the run started
    training from, whatever the global torch seed.
    """
    model = Transformer(_model_config(cfg_or_run)).to(device).eval()
    return ModelNeurons(model)


# --- SoLU readout on a GELU model ---------------------------------------------------------------

class SoluReadout:
    """A GELU model's MLP pre-activations read out through SoLU: ``mid = pre * softmax(pre)``
    over ``d_mlp`` (``activations.solu``), in float32. No LayerNorm follows (the GELU model
    has none to reuse), so the only hook is ``"mid"``. The model itself is unchanged: its
    forward pass still uses GELU, so later layers see the trained GELU computation."""

    def __init__(self, model: Transformer):
        if not isinstance(model, Transformer):
            raise ConfigError(f"solu_readout needs a Transformer, got {type(model).__name__}")
        act = model.cfg.act_fn
        if act != "gelu":
            raise ConfigError(
                f"solu_readout applies SoLU's readout to a GELU model's pre-activations, but "
                f"this model has act_fn={act!r}: pass a GELU model (e.g. the zoo's "
                f"'{model.cfg.n_layers}L-gelu'); a SoLU model is scored directly")
        self.model = model
        self.n_layers, self.d_mlp = model.cfg.n_layers, model.cfg.d_mlp
        self.hooks = ("mid",)

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        names = [act_name("pre", l) for l in range(self.n_layers)]
        with torch.inference_mode():
            _, cache = self.model.run_with_cache(tokens, names=names, return_logits=False)
            return {"mid": [solu(cache[name].float()) for name in names]}


def solu_readout(gelu_model: Transformer) -> SoluReadout:
    """SoLU's readout applied post hoc to a GELU model (``SoluReadout``); raises
    ``ConfigError`` for any other activation."""
    return SoluReadout(gelu_model)


# --- zoo runs ---------------------------------------------------------------------------------

def controls_for(run) -> tuple[str, ...]:
    """The controls that apply to a zoo run: all of ``CONTROLS`` for a GELU run, no
    ``solu_readout`` otherwise."""
    act = run.config.model.act_fn
    return tuple(c for c in CONTROLS if c != "solu_readout" or act == "gelu")


def _check_control(run, control: str) -> None:
    if control not in CONTROLS:
        raise ConfigError(f"unknown control {control!r}: choose one of {CONTROLS}")
    if control not in controls_for(run):
        raise ConfigError(f"control {control!r} does not apply to {run.name} (act_fn="
                          f"{run.config.model.act_fn!r}): it needs a GELU run; this run's "
                          f"controls are {controls_for(run)}")


def control_source(run, control: str, seed: int = 0,
                   device: str | torch.device = "cpu") -> NeuronSource:
    """The ``NeuronSource`` of ``control`` for a zoo run (``seed``: the rotation's basis;
    the other two controls have no seed of their own)."""
    _check_control(run, control)
    if control == "rotated":
        return rotated(ModelNeurons(run.load_model(device).eval()), seed)
    if control == "random_init":
        return random_init(run, device)
    return solu_readout(run.load_model(device).eval())


def _control_seed(run, control: str, seed: int) -> int:
    """The seed that defines the control: the rotation's, or random_init's init seed."""
    if control == "rotated":
        return int(seed)
    if control == "random_init":
        return int(run.config.model.seed)
    return 0


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def control_harvest_path(run, control: str, *, k: int = 20, samples_per_bin: int = 4,
                         rows: str = "even", max_rows: int | None = None,
                         seed: int = 0) -> Path:
    """Where ``score_control`` keeps the harvest of a control of a zoo run: keyed by the
    control, its seed, the harvest settings, the run's weights and corpus (and, for
    ``random_init``, the model config its weights are drawn from)."""
    _check_control(run, control)
    key = {"control": control, "control_seed": _control_seed(run, control, seed),
           "controls_format": CONTROLS_FORMAT, "k": k, "samples_per_bin": samples_per_bin,
           "rows": rows, "max_rows": max_rows, "seed": seed, "format": FORMAT_VERSION,
           "weights": weights_digest(run), "data": run.result.get("data_hash"),
           "model": run.config.model.to_dict() if control == "random_init" else None}
    return Path(run.run_dir) / "controls" / f"{control}-harvest-{_digest(key)}.safetensors"


def control_score_path(harvest_file: Path, settings: ScoreSettings) -> Path:
    """Where the scores of a control harvest live for these score settings."""
    control = harvest_file.name.split("-harvest-", 1)[0]
    key = {"harvest": harvest_file.name, "settings": settings.key(), "format": SCORE_FORMAT,
           "controls_format": CONTROLS_FORMAT}
    return harvest_file.parent / f"{control}-score-{_digest(key)}.json"


def score_control(run, control: str, settings: ScoreSettings = ScoreSettings(), *, k: int = 20,
                  batch_size: int = 16, seed: int = 0, device: str | torch.device = "cpu",
                  progress: bool = True, data_dir: str | Path | None = None,
                  rebuild: bool = False) -> NeuronScores:
    """Harvest and score a null control of a zoo run, or reload the cached result.

    The pipeline is ``score.score_run``'s: ``harvest`` of the run's validation split on the
    selection rows (``rows="even"``, ``samples_per_bin=4``), then ``score_neurons`` with the
    same control source rerun on the held-out rows. Both files are written atomically to
    ``<run_dir>/controls/`` (``<control>-harvest-<hash>.safetensors`` and
    ``<control>-score-<hash>.json``); the harvest is shared by every score setting.

    Args:
        run: A ``solu_repro.zoo.ZooRun``.
        control: One of ``controls_for(run)`` (``CONTROLS``; ``"solu_readout"`` needs GELU).
        settings: ``ScoreSettings`` (as for ``score_run``).
        k: Top firings kept by the harvest (must be >= ``settings.k``).
        seed: Seed of the harvest's reservoirs, as in ``score_run``, and of the rotation's
            basis for ``"rotated"``; every seed is cached separately.
        rebuild: Harvest and score again even if saved results exist.
        (the rest as in ``score_run``)

    Returns:
        ``NeuronScores`` whose ``meta`` has the run's ``name`` plus ``control`` and
        ``control_seed``.
    """
    from .explanations import VocabTables

    hpath = control_harvest_path(run, control, k=k, seed=seed)
    spath = control_score_path(hpath, settings)
    if spath.is_file() and not rebuild:
        return NeuronScores.load(spath)
    source = control_source(run, control, seed, device)
    corpus = run.corpus(data_dir)
    split = corpus.split("val")
    control_seed = _control_seed(run, control, seed)
    tag = {"name": run.name, "scale": run.scale, "act_fn": run.config.model.act_fn,
           "control": control, "control_seed": control_seed}
    if hpath.is_file() and not rebuild:
        h = Harvest.load(hpath)
    else:
        h = harvest(source, split, run.config.model.n_ctx, corpus.bos_id, rows="even", k=k,
                    samples_per_bin=4, batch_size=batch_size, seed=seed, device=device,
                    progress=progress,
                    meta={**tag, "run_dir": str(run.run_dir),
                          "data_hash": run.result.get("data_hash"), "split": "val"})
        h.save(hpath)
    scores = score_neurons(source, h, split, VocabTables(corpus.tokenizer), settings,
                           batch_size=batch_size, device=device, progress=progress,
                           meta={**tag, "n_layers": run.config.model.n_layers})
    scores.save(spath)
    return scores
