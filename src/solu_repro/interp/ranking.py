"""Which scored neurons to show first: a ranking a reader can state in one sentence
(``RANKING``, applied by ``select_neurons``), a round robin over explanation kinds so a short
list is not all one kind, and the closest misses when no neuron passes (``closest_misses``)."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from .analysis import LAYER_ROLES
from .score import NeuronScore, NeuronScores


RANKING = ("interpretable neurons only (the scorer's top-20 rule), best first by the F1 of "
           "the explanation's held-out precision and recall, then by its coverage of the top "
           "firings, then by its lift over the base rate; ties broken by a seeded shuffle; "
           "one neuron of each explanation kind before a second of any kind")


def spectrum_f1(record: NeuronScore) -> float:
    """Harmonic mean of the explanation's held-out precision and recall (0 when undefined)."""
    p, r = record.precision, record.recall
    if p is None or r is None or math.isnan(p) or math.isnan(r) or p + r == 0:
        return 0.0
    return 2 * p * r / (p + r)


def _tie_breaks(records: Sequence[NeuronScore], seed: int) -> dict[tuple[int, int], float]:
    rng = np.random.default_rng(seed)
    return {(r.layer, r.neuron): float(x) for r, x in zip(records, rng.random(len(records)))}


def _num(x: float | None) -> float:
    """A sortable number: None and NaN count as 0."""
    return 0.0 if x is None or math.isnan(x) else x


def rank_neurons(records: Iterable[NeuronScore], seed: int = 0) -> list[NeuronScore]:
    """``records`` best first by ``RANKING`` (F1, coverage, lift; seeded tie-break).

    The seeded shuffle is drawn over the records in (layer, neuron) order, so the result
    depends only on the records and the seed, not on the order they come in.
    """
    records = sorted(records, key=lambda r: (r.layer, r.neuron))
    ties = _tie_breaks(records, seed)

    def key(r: NeuronScore):
        return (-spectrum_f1(r), -r.coverage, -_num(r.lift), ties[(r.layer, r.neuron)])

    return sorted(records, key=key)


def explanation_kind(record: NeuronScore) -> str:
    e = record.explanation_obj()
    return e.kind if e is not None else "none"


def spread_over_kinds(ranked: Sequence[NeuronScore]) -> list[NeuronScore]:
    """Round robin over explanation kinds: each kind's best, then each kind's second, ...

    Kinds are visited in the order of their best neuron, so the first pick is always the
    overall best.
    """
    groups: dict[str, list[NeuronScore]] = {}
    for r in ranked:
        groups.setdefault(explanation_kind(r), []).append(r)
    out: list[NeuronScore] = []
    depth = 0
    while len(out) < len(ranked):
        for members in groups.values():
            if depth < len(members):
                out.append(members[depth])
        depth += 1
    return out



def select_neurons(scores: NeuronScores, n: int, seed: int = 0, *, layer: int | None = None,
                   role: str | None = None, spread_kinds: bool = True) -> list[NeuronScore]:
    """Up to ``n`` of the scorer's interpretable neurons, chosen by ``RANKING``.

    Args:
        scores: A model's ``NeuronScores``.
        n: How many (fewer if fewer are interpretable; an empty list if none is).
        seed: Seed of the tie-break shuffle.
        layer: Only this layer.
        role: Only explanations of this role (``analysis.ROLE_ORDER``).
        spread_kinds: One neuron per explanation kind before a second of any kind.
    """
    pool = [r for r in scores.select(layer) if r.interpretable
            and (role is None or LAYER_ROLES.get(explanation_kind(r)) == role)]
    ranked = rank_neurons(pool, seed)
    if spread_kinds:
        ranked = spread_over_kinds(ranked)
    return ranked[:n]


def closest_misses(scores: NeuronScores, n: int, seed: int = 0) -> list[NeuronScore]:
    """The ``n`` live neurons the scorer did *not* call interpretable whose best explanation
    covered most of the top firings (then most specific): what to look at when nothing passes.
    """
    pool = [r for r in scores.records if not r.interpretable and not r.dead
            and r.explanation is not None]
    pool = sorted(pool, key=lambda r: (r.layer, r.neuron))
    ties = _tie_breaks(pool, seed)
    return sorted(pool, key=lambda r: (-r.coverage, -_num(r.lift),
                                       ties[(r.layer, r.neuron)]))[:n]
