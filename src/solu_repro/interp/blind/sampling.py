"""What is judged: the models under evaluation and the neurons drawn from them (paper §6.1)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .errors import BlindError

if TYPE_CHECKING:
    from ..harvest import Harvest

# Harvest metadata copied into the manifest so a resumed session can tell when a model was
# retrained or re-harvested under it (its neurons would then be different neurons).
_FINGERPRINT_KEYS = ("run_dir", "data_hash", "n_ctx", "n_tokens", "k", "rows", "seed")


@dataclass(frozen=True)
class ModelShape:
    """The lightest per-model entry: enough to sample neurons, not to render them."""

    n_layers: int
    d_mlp: int


@dataclass(frozen=True)
class BlindModel:
    """One model under evaluation: everything ``SnippetRenderer`` needs to show a neuron."""

    model: Any  # a solu_repro Transformer
    corpus: Any  # its TokenizedCorpus
    harvest: "Harvest"

    @property
    def n_layers(self) -> int:
        return self.harvest.n_layers

    @property
    def d_mlp(self) -> int:
        return self.harvest.d_mlp


def as_blind_model(name: str, entry: Any) -> BlindModel:
    """A ``BlindModel`` from a ``BlindModel`` or a ``(model, corpus, harvest)`` tuple."""
    if isinstance(entry, BlindModel):
        return entry
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        return BlindModel(*entry)
    raise BlindError(f"model {name!r}: rendering needs a BlindModel or a (model, corpus, "
                     f"harvest) tuple, got {type(entry).__name__}")


def model_source(name: str, entry: Any) -> dict[str, Any]:
    """Shape (and harvest fingerprint, when there is one) of an entry, for the manifest."""
    if isinstance(entry, (tuple, list)):
        entry = as_blind_model(name, entry)
    harvest = getattr(entry, "harvest", None)
    if harvest is None and hasattr(entry, "meta") and hasattr(entry, "top_examples"):
        harvest = entry  # a bare Harvest
    try:
        source = {"n_layers": int(entry.n_layers), "d_mlp": int(entry.d_mlp)}
    except AttributeError:
        raise BlindError(f"model {name!r}: expected a BlindModel, a (model, corpus, harvest) "
                         f"tuple, a Harvest or a ModelShape, got {type(entry).__name__}") from None
    if harvest is not None:
        fingerprint = {k: harvest.meta[k] for k in _FINGERPRINT_KEYS if k in harvest.meta}
        if "run_dir" in fingerprint:
            # The directory name carries the config hash; the parent may move (--runs-dir).
            fingerprint["run_dir"] = Path(fingerprint["run_dir"]).name
        source["harvest"] = fingerprint
    return source


@dataclass(frozen=True)
class BlindItem:
    """One neuron to judge. ``item`` is all the evaluator ever sees of its identity."""

    item: str
    model: str
    layer: int
    neuron: int

    @property
    def key(self) -> tuple[str, int, int]:
        return self.model, self.layer, self.neuron


def _name_seed(name: str) -> int:
    # A stable per-model stream: adding or reordering models does not change the others' draws.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _allowed_layers(name: str, n_layers: int, layers: Sequence[int] | None) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    bad = [l for l in layers if not 0 <= l < n_layers]
    if bad:
        raise BlindError(f"model {name!r} has {n_layers} layer(s) (0..{n_layers - 1}); layers "
                         f"{bad} do not exist: choose layers every model has, or omit them")
    return sorted(set(layers))


def sample_items(shapes: Mapping[str, ModelShape], n_per_model: int, seed: int,
                 layers: Sequence[int] | None = None) -> list[BlindItem]:
    """Draw ``n_per_model`` distinct neurons per model and shuffle them all together.

    Each model's neurons are uniform over all (layer, neuron) pairs of the allowed layers
    (paper §6.1: "neurons are selected randomly"). Item ids are given after the shuffle, so
    neither the ids nor the order say which model an item comes from.

    Args:
        shapes: Model name -> its shape.
        n_per_model: Neurons per model (paper: 60).
        seed: Makes the draw and the order reproducible.
        layers: Restrict the draw to these layers (default: all).

    Returns:
        The items in presentation order.
    """
    picks: list[tuple[str, int, int]] = []
    for name, shape in shapes.items():
        allowed = _allowed_layers(name, shape.n_layers, layers)
        total = len(allowed) * shape.d_mlp
        if n_per_model > total:
            where = "" if layers is None else f" in layers {allowed}"
            raise BlindError(f"cannot sample {n_per_model} neurons from model {name!r}: it has "
                             f"only {total}{where}; lower --n or allow more layers")
        rng = np.random.default_rng([seed, _name_seed(name)])
        for flat in sorted(rng.choice(total, size=n_per_model, replace=False).tolist()):
            picks.append((name, allowed[flat // shape.d_mlp], flat % shape.d_mlp))
    order = np.random.default_rng(seed).permutation(len(picks))
    width = max(3, len(str(len(picks) - 1)))
    return [BlindItem(f"item-{i:0{width}d}", *picks[j]) for i, j in enumerate(order.tolist())]
