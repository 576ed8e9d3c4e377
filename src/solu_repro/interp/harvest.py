"""Neuron harvesting: one streaming pass over held-out tokens, bounded memory.

For every MLP neuron of every layer, and for both the interpreted activation
(``hook_mid``, before SoLU's extra LayerNorm) and the post-LN one (``hook_post``), a pass
records:

* the **top-k firings**, at most one per context window (row), so the k examples are k
  distinct snippets, as the paper's evaluators saw them (§6.1);
* **samples at every activation level** (§6.4 needs examples across the range, not only the
  top): activations are bucketed on a fixed signed geometric grid (ratio 1.12 from 1e-3 to
  ~290); each (neuron, bucket) keeps a reservoir of ``samples_per_bin`` examples from
  distinct rows, chosen by random priority, plus an exact count of tokens in the bucket.
  Because the grid is fixed, no second pass is needed: a band defined after the fact
  (e.g. 40-50% of the neuron's max) is served from the buckets it overlaps, each sample
  weighted by the number of tokens it stands for;
* **summary statistics**: mean, std, max, min, fraction positive, excess kurtosis.

Memory is O(layers x d_mlp x (k + buckets x samples)), independent of corpus size.

Positions: row ``r`` of a split is ``[BOS] + tokens[r*(n_ctx-1):(r+1)*(n_ctx-1)]``; column
0 (BOS) is never harvested; ``(row, col)`` is split position ``r*(n_ctx-1) + col - 1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path
from ..data import TokenSplit, get_rows, num_rows
from ..hooks import act_name
from ..integrity import file_digest
from .stats import kurtosis_from_moments
from ..model import ActivationCache, ConfigError, Transformer
from ..train.runtime import autocast
from ..train.step import keep_freed_memory

HOOKS = ("mid", "post")
FORMAT_VERSION = 1

# Signed geometric bucket grid: |x| edges 1e-3 * 1.12**j, j = 0..111 (up to ~300), fine
# enough that a band of 10% of a neuron's max spans about one bucket or more near the top.
_MAGNITUDES = 1e-3 * 1.12 ** np.arange(112)
BIN_EDGES = np.concatenate([-_MAGNITUDES[::-1], _MAGNITUDES]).astype(np.float32)
N_BINS = len(BIN_EDGES) + 1  # bucket i holds (edges[i-1], edges[i]]; ends are open
_COL_BITS = 20  # priority keys carry the column in their low bits
_COL_MASK = (1 << _COL_BITS) - 1
_PRIORITY_RANGE = 2 ** 40  # reservoir priorities are uniform integers in [0, 2**40)
_CHUNK = 1 << 18  # activations folded in at once (whole rows; at least one): cache-sized
_MERGE_AT = 1 << 20  # pending reservoir candidates that force a merge before the batch ends
# Above this share of candidate tokens (see ``_HookAccumulator._candidates``), one dense
# per-row reduction over all tokens is cheaper than handling the candidates one by one.
_DENSE_SHARE = 0.125
# Bucketing by bits (``_bucketize``): cells of a float32's order key ``key >> _CELL_SHIFT``.
_CELL_SHIFT = 15
_CELL_MASK = (1 << (32 - _CELL_SHIFT)) - 1
# The accumulators count on the grid with one more edge, at 0, which splits the bucket of 0
# (-1e-3, 1e-3] in two: "split" bucket ``e`` is bucket ``e - (e > _ZERO)``, and the tokens in
# split buckets above ``_ZERO`` are the positive ones.
_ZERO = int((BIN_EDGES < 0).sum())  # the bucket of 0
_N_SPLIT = N_BINS + 1
_SPLIT_OF = torch.arange(N_BINS) + (torch.arange(N_BINS) > _ZERO)  # bucket -> split bucket


def _edge_tables() -> tuple[Tensor, Tensor]:
    """Tables for ``_bucketize``: bucketing by the bits of a float32, without a search.

    ``bits ^ ((bits >> 31) & 0x7FFFFFFF)`` of a float32's bit pattern ``bits`` (an int32) is
    a key that orders like the floats (negative ones get their magnitude bits flipped). Its
    top 17 bits name a cell of relative width <= 2**-8 in value, far narrower than a bucket
    (x1.12), so each cell holds at most one edge: ``base[cell]`` counts the edges below the
    cell, and one comparison with the next edge, ``upper[cell]``, finishes.
    """
    edges = np.insert(BIN_EDGES, _ZERO, np.float32(0.0))  # + an edge at 0: see _bucketize
    keys = edges.view(np.int32).astype(np.int64)
    keys = np.where(keys < 0, keys ^ 0x7FFFFFFF, keys)
    assert (np.diff(keys) > 0).all()
    cells = keys >> _CELL_SHIFT
    assert (np.diff(cells) >= 1).all(), "two bucket edges share a cell"
    starts = np.arange(-(1 << (31 - _CELL_SHIFT)), 1 << (31 - _CELL_SHIFT)) << _CELL_SHIFT
    base = np.searchsorted(keys, starts, side="left")  # edges strictly below the cell start
    upper = np.append(keys, np.iinfo(np.int32).max)[base]  # the next edge (none: int32 max)
    # Stored in the order of the cell's index ``(key >> shift) & mask`` (negative cells last).
    order = starts >> _CELL_SHIFT & _CELL_MASK
    tables = np.empty((2, len(starts)), dtype=np.int32)
    tables[0, order], tables[1, order] = base, upper
    return torch.from_numpy(tables[0]), torch.from_numpy(tables[1])


_BASE, _UPPER = _edge_tables()
_EDGES = torch.from_numpy(BIN_EDGES)


def _bucketize(x: Tensor, out: Tensor | None = None) -> Tensor:
    """The split bucket of float32 ``x``, as int32: ``torch.bucketize(x, BIN_EDGES) + (x > 0)``
    (bucket ``i`` holds ``(edges[i-1], edges[i]]``, the number of edges below ``x``; the split
    grid has one more edge, at 0), in a few elementwise passes instead of a binary search (see
    ``_edge_tables``). NaN lands in some valid bucket."""
    bits = x.view(torch.int32)
    key = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    cell = ((key >> _CELL_SHIFT) & _CELL_MASK).view(-1)
    base = torch.index_select(_BASE, 0, cell, out=out.view(-1) if out is not None else None)
    above = _UPPER.index_select(0, cell)
    torch.gt(key.view(-1), above, out=above)  # an int32 result: far faster than a bool one
    return base.add_(above).view(key.shape)


class HarvestError(ValueError):
    """A harvest file is missing, corrupt, or does not match what it is used with."""


def split_position(row: int | np.ndarray, col: int | np.ndarray, n_ctx: int):
    """Position in the split's token stream of ``(row, col)`` (``col >= 1``; 0 is BOS)."""
    return row * (n_ctx - 1) + col - 1


def selection_rows(n_rows: int, part: str = "even") -> np.ndarray:
    """Rows used to select examples (``"even"``), held out for scoring (``"odd"``), or ``"all"``.

    The scorer chooses each neuron's explanation from top firings on even rows and measures
    it on odd rows, so its precision/recall are out-of-sample.
    """
    if part == "even":
        return np.arange(0, n_rows, 2, dtype=np.int64)
    if part == "odd":
        return np.arange(1, n_rows, 2, dtype=np.int64)
    if part == "all":
        return np.arange(n_rows, dtype=np.int64)
    raise ConfigError(f"rows must be 'even', 'odd', 'all' or an array of row indices, got {part!r}")


class NeuronSource(Protocol):
    """Anything with MLP neurons: a ``Transformer`` (via ``ModelNeurons``) or planted neurons."""

    n_layers: int
    d_mlp: int
    hooks: tuple[str, ...]

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        """``{hook: [layer 0 (B, T, d_mlp), layer 1, ...]}`` for ``hook`` in ``self.hooks``."""
        ...


PRECISIONS = ("fp32", "bf16")


class ModelNeurons:
    """The MLP neurons of a ``Transformer``, read through its TransformerLens-style hooks.

    ``precision`` is the one the forward pass runs in: "fp32", or "bf16" (autocast, as a
    bf16 run trained and was evaluated; the activations come back in float32 either way).
    """

    def __init__(self, model: Transformer, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model = model
        self.precision = precision
        self.n_layers = model.cfg.n_layers
        self.d_mlp = model.cfg.d_mlp
        # Without an extra LN, hook_post is hook_mid; harvesting it twice would waste a pass.
        self.hooks = HOOKS if model.cfg.has_mlp_ln else ("mid",)

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        names = [act_name(h, l) for h in self.hooks for l in range(self.n_layers)]
        cache = _StoppingCache(names)
        with torch.inference_mode(), autocast(self.precision, tokens.device):
            try:
                self.model.forward(tokens, cache, stop_after_blocks=True)
            except _AllRecorded:
                pass  # the rest of the forward pass (the last MLP's output) is not needed
        missing = sorted(set(names) - set(cache))
        if missing:
            raise RuntimeError(f"the model's forward pass did not record {missing}")
        return {h: [cache[act_name(h, l)].float() for l in range(self.n_layers)]
                for h in self.hooks}


class _AllRecorded(Exception):
    """Raised by ``_StoppingCache`` to end a forward pass once it has what it wants."""


class _StoppingCache(ActivationCache):
    """An ``ActivationCache`` that stops the forward pass when the last wanted hook fires."""

    def record(self, name: str, value: Tensor) -> None:
        super().record(name, value)
        if len(self) == len(self.wanted):
            raise _AllRecorded


@dataclass(frozen=True)
class Example:
    """One firing: a row of the split, a column in it, the activation there."""

    row: int
    col: int
    value: float

    def position(self, n_ctx: int) -> int:
        return int(split_position(self.row, self.col, n_ctx))


def _flat_view(t: Tensor) -> np.ndarray:
    """The memory a (strided, non-negative strides) tensor spans, as a 1-D numpy view: element
    ``[i, j, ...]`` of ``t`` is at ``i * t.stride(0) + j * t.stride(1) + ...``."""
    span = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
    return t.as_strided((span,), (1,)).numpy()


class _HookAccumulator:
    """Running statistics of one hook over all layers: top-k, bucket reservoirs, moments.

    Reservoirs: token ``(row, col)`` of neuron ``n`` has a priority, 40 random bits (draw
    ``(col - 1, n)`` of a stream seeded by ``(seed, hook, layer, row)``, so batching does not
    matter) and the key ``priority << 20 | col``. A row's candidate for a bucket is its
    highest-keyed token there; the bucket keeps the candidates of the ``samples`` rows with
    the highest keys, highest first. Equivalently: visit the bucket's tokens in a uniformly
    random order and keep the first token of each of the first ``samples`` distinct rows.

    Once a bucket is full, only a token with a priority at least that of its lowest kept key
    can change it; ``floor`` holds that priority per bucket (-1 while the bucket is not full),
    so one comparison per token discards almost all tokens, and the few candidates left are
    merged once per batch (sooner when there are many). Keys only ever rise, so a floor that
    lags behind (candidates not merged yet) lets more tokens through, never fewer: the
    result is exactly that of merging every token of every row, whatever the batch size,
    chunking or merge schedule (up to ties between equal keys, which need two rows with the
    same 40-bit priority at the same column).
    """

    def __init__(self, n_layers: int, d_mlp: int, k: int, samples: int):
        L, N = n_layers, d_mlp
        self.k, self.samples = k, samples
        self.top_values = torch.full((L, N, k), -math.inf)
        self.top_rows = torch.full((L, N, k), -1, dtype=torch.long)
        self.top_cols = torch.full((L, N, k), -1, dtype=torch.long)
        # Reservoir of bucket (n, i) of a layer: "cell" n * N_BINS + i. A sample is its key
        # (which holds its column) and ``row << 32 | the float32 bits of its value``; -1: none.
        self.sample_keys = torch.full((L, N * N_BINS, samples), -1, dtype=torch.long)
        self.sample_data = torch.full((L, N * N_BINS, samples), -1, dtype=torch.long)
        # Per split cell n * _N_SPLIT + e (see _ZERO), the floor of bucket e - (e > _ZERO).
        self.floor = torch.full((L, N * _N_SPLIT), -1, dtype=torch.long)
        self.bin_counts = torch.zeros((L, N, N_BINS), dtype=torch.long)
        self.cell_offset = torch.arange(N, dtype=torch.int32) * _N_SPLIT
        # Moments are summed around a per-neuron shift (the first batch's mean) so that
        # float64 power sums stay accurate over millions of tokens.
        self.shift = torch.zeros((L, N), dtype=torch.float64)
        self.shift_set = [False] * L
        self.power_sums = torch.zeros((4, L, N), dtype=torch.float64)
        self.max = torch.full((L, N), -math.inf)
        self.min = torch.full((L, N), math.inf)
        self.n_positive = torch.zeros((L, N), dtype=torch.long)

    def update(self, layer: int, acts: Tensor, rows: Tensor, stream: Sequence[int],
               edges: Tensor) -> None:
        """Fold in ``acts`` ``(B, T-1, N)`` (BOS column removed) of batch rows ``rows`` ``(B,)``."""
        B, T1, N = acts.shape
        acts = acts.detach().cpu().float()
        rows = rows.cpu().long()
        if not self.shift_set[layer]:
            self.shift[layer] = acts.reshape(-1, N).double().mean(0)
            self.shift_set[layer] = True
        if edges is not _EDGES and edges.dtype == _EDGES.dtype and torch.equal(edges.cpu(),
                                                                                _EDGES):
            edges = _EDGES  # the grid _bucketize serves
        # A few rows at a time: the temporaries stay in cache (and bounded at any shape).
        step = max(1, _CHUNK // (T1 * N))
        maxima, pending, n_pending = [], [], 0
        cells = torch.empty((B, T1, N), dtype=torch.int32)  # split cell, per token
        for i in range(0, B, step):
            m, (cell, b, keys) = self._fold(layer, acts[i:i + step].contiguous(),
                                            rows[i:i + step], stream, edges, cells[i:i + step])
            maxima.append(m)
            pending.append((cell, b + i, keys))
            n_pending += cell.size
            # --- reservoirs: candidates are merged once per batch, or sooner when there are
            # many (early on, when merging raises the floors that filter the next rows) -----
            if n_pending > _MERGE_AT or (i + step >= B and n_pending):
                self._merge(layer, acts, rows, *(np.concatenate(f) for f in zip(*pending)))
                pending, n_pending = [], 0
        split = torch.bincount(cells.view(-1), minlength=N * _N_SPLIT).view(N, _N_SPLIT)
        counts = self.bin_counts[layer]
        counts += split[:, _SPLIT_OF]
        counts[:, _ZERO] += split[:, _ZERO + 1]
        self.n_positive[layer] += split[:, _ZERO + 1:].sum(1)
        # --- top-k, one per row ------------------------------------------------------------
        row_max, row_arg = (torch.cat(m) for m in zip(*maxima))  # (B, N)
        values = torch.cat([self.top_values[layer], row_max.T], dim=1)  # (N, k+B)
        cand_rows = torch.cat([self.top_rows[layer], rows.view(1, B).expand(N, B)], dim=1)
        cand_cols = torch.cat([self.top_cols[layer], (row_arg + 1).T], dim=1)
        best = values.topk(self.k, dim=1).indices
        self.top_values[layer] = values.gather(1, best)
        self.top_rows[layer] = cand_rows.gather(1, best)
        self.top_cols[layer] = cand_cols.gather(1, best)
        self.max[layer] = torch.maximum(self.max[layer], row_max.max(0).values)

    def _fold(self, layer: int, acts: Tensor, rows: Tensor, stream: Sequence[int],
              edges: Tensor, cells: Tensor):
        """Fold rows ``acts`` ``(B, T-1, N)`` into the moments and write their split cells
        (split bucket ``e`` of neuron ``n``: ``n * _N_SPLIT + e``) into ``cells``; return their
        per-row maxima and argmaxima ``(B, N)`` (``_row_maxima``) and reservoir candidates."""
        B, T1, N = acts.shape
        # --- buckets and reservoir candidates ---------------------------------------------
        if edges is _EDGES:
            _bucketize(acts, out=cells)
        else:
            torch.bucketize(acts, edges, out_int32=True, out=cells)
            cells += acts > 0
        cells += self.cell_offset
        found = self._candidates(layer, acts, rows, cells, stream)
        # --- moments ----------------------------------------------------------------------
        # (float64 first: subtracting a float64 from float32 in one op is several times slower)
        centred = acts.view(-1, N).double().sub_(self.shift[layer])
        # Column sums as products with ones: faster than .sum(0), as accurate in float64.
        ones = torch.ones(1, len(centred), dtype=torch.float64)
        sums = self.power_sums[:, layer]
        sums[0] += (ones @ centred)[0]
        powers = centred * centred
        for p in range(1, 4):
            if p > 1:
                powers *= centred
            sums[p] += (ones @ powers)[0]
        self.min[layer] = torch.minimum(self.min[layer], acts.amin(dim=(0, 1)))
        return self._row_maxima(layer, acts), found

    def _row_maxima(self, layer: int, acts: Tensor) -> tuple[Tensor, Tensor]:
        """Per row and neuron of ``acts`` ``(B, T-1, N)``: the maximum and (first) column of
        it, as ``max(dim=1)`` gives; the column only where the row may enter the top-k (its
        maximum is at least the k-th best so far), -1 elsewhere."""
        row_max = acts.amax(dim=1)  # (B, N): far cheaper than max(dim=1) with indices
        may_enter = (row_max >= self.top_values[layer, :, -1]) | row_max.isnan()
        b, neuron = may_enter.nonzero(as_tuple=True)
        if 4 * len(b) > may_enter.numel():  # most rows (the first batches)
            return acts.max(dim=1)
        row_arg = torch.full(row_max.shape, -1, dtype=torch.long)
        row_arg[b, neuron] = acts[b, :, neuron].argmax(dim=1)
        return row_max, row_arg

    def _candidates(self, layer: int, acts: Tensor, rows: Tensor, cells: Tensor,
                    stream: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tokens of rows ``acts`` ``(B, T-1, N)`` that may enter a reservoir, as arrays
        ``(cell, b, key)`` (``b`` indexes ``rows``): every token that can, perhaps more."""
        B, T1, N = acts.shape
        priority = torch.empty((B, T1, N), dtype=torch.long)
        for b, row in enumerate(rows.tolist()):
            # One priority stream per (seed, hook, layer, row): the low 40 bits of 64-bit
            # draws, as ``torch.randint(0, 2**40, (T1, N), generator=...)`` would give, faster.
            seed = int(np.random.SeedSequence([*stream, layer, row]).generate_state(1)[0])
            priority[b].random_(generator=torch.Generator().manual_seed(seed))
        priority &= _PRIORITY_RANGE - 1
        flat_cells = cells.view(-1)
        maybe = priority.view(-1) >= self.floor[layer].index_select(0, flat_cells)
        found = np.flatnonzero(maybe.numpy())  # (numpy's nonzero is fast on bools)
        if found.size <= _DENSE_SHARE * maybe.numel():
            col = (found // N) % T1 + 1
            keys = (priority.view(-1).numpy()[found] << _COL_BITS) | col
            split = flat_cells.numpy()[found].astype(np.int64)  # n * _N_SPLIT + e
            bucket = split % _N_SPLIT
            cell = split - split // _N_SPLIT - (bucket > _ZERO)  # n * N_BINS + bucket
            return cell, found // (T1 * N), keys
        # Many (the first batches): reduce to each row's best key per bucket first.
        keys = (priority << _COL_BITS) | torch.arange(1, T1 + 1).view(1, T1, 1)
        best = torch.full((B, N, _N_SPLIT), -1, dtype=torch.long)
        best.view(B, -1).scatter_reduce_(1, cells.view(B, -1).long(), keys.view(B, -1),
                                         reduce="amax")
        best[:, :, _ZERO] = torch.maximum(best[:, :, _ZERO], best[:, :, _ZERO + 1])
        best = best[:, :, _SPLIT_OF].view(B, -1).numpy()  # (B, n * N_BINS + bucket)
        b, cell = np.nonzero(best > self.sample_keys[layer, :, -1].numpy())
        return cell, b, best[b, cell]

    def _merge(self, layer: int, acts: Tensor, rows: Tensor, cells: np.ndarray,
               batch: np.ndarray, keys: np.ndarray) -> None:
        """Merge candidate tokens (``cells``, batch rows ``batch``, ``keys``) of ``acts``
        ``(B, T-1, N)`` (rows ``rows``) into their reservoirs."""
        B, T1, N = acts.shape
        S = self.samples
        n_cells = N * N_BINS
        touched = np.flatnonzero(np.bincount(cells, minlength=n_cells))
        rank = np.empty(n_cells, dtype=np.int64)
        rank[touched] = np.arange(touched.size)
        stored_keys, stored_data = self.sample_keys[layer].numpy(), self.sample_data[layer].numpy()
        # Per touched bucket: its reservoir's keys, then each batch row's best candidate key.
        offers = np.full((touched.size, S + B), -1, dtype=np.int64)
        offers[:, :S] = stored_keys[touched]
        np.maximum.at(offers.reshape(-1), rank[cells] * (S + B) + S + batch, keys)
        kept, pick = torch.from_numpy(offers).topk(S, dim=1)
        kept, pick = kept.numpy(), pick.numpy()
        # The kept samples of the old reservoir, then those from the batch.
        data = stored_data.reshape(-1)[touched[:, None] * S + np.minimum(pick, S - 1)]
        i, j = np.nonzero((pick >= S) & (kept >= 0))
        b = pick[i, j] - S
        strides = np.array(acts.stride())
        at = b * strides[0] + ((kept[i, j] & _COL_MASK) - 1) * strides[1] \
            + touched[i] // N_BINS * strides[2]
        values = _flat_view(acts).take(at)
        data[i, j] = (rows.numpy()[b] << 32) | values.view(np.uint32)
        data[kept < 0] = -1
        stored_keys[touched] = kept
        stored_data[touched] = data
        floor = kept[:, -1] >> _COL_BITS
        bucket = touched % N_BINS
        split = touched + touched // N_BINS + (bucket > _ZERO)  # n * _N_SPLIT + split bucket
        floors = self.floor[layer].numpy()
        floors[split] = floor
        zero = bucket == _ZERO  # both halves of the bucket of 0
        floors[split[zero] + 1] = floor[zero]

    def finish(self, n_tokens: int) -> dict[str, Tensor]:
        n = max(n_tokens, 1)
        s1, s2, s3, s4 = (self.power_sums[p] / n for p in range(4))
        mean_c = s1  # mean of centred values
        var = (s2 - mean_c ** 2).clamp(min=0)
        m4 = s4 - 4 * mean_c * s3 + 6 * mean_c ** 2 * s2 - 3 * mean_c ** 4
        kurtosis = kurtosis_from_moments(var, m4)
        L, N = self.max.shape
        shape = (L, N, N_BINS, self.samples)
        keys, data = self.sample_keys.numpy(), self.sample_data.numpy()
        empty = keys < 0
        values = (data & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
        return {
            "top_values": self.top_values, "top_rows": self.top_rows, "top_cols": self.top_cols,
            "sample_rows": torch.from_numpy(np.where(empty, -1, data >> 32)).view(shape),
            "sample_cols": torch.from_numpy(np.where(empty, -1, keys & _COL_MASK)).view(shape),
            "sample_values": torch.from_numpy(np.where(empty, np.float32(np.nan), values)
                                              ).view(shape),
            "bin_counts": self.bin_counts,
            "mean": (mean_c + self.shift).float(), "std": var.sqrt().float(),
            "kurtosis": kurtosis.float(), "max": self.max, "min": self.min,
            "frac_positive": (self.n_positive.double() / n).float(),
        }


_FIELDS = ("top_values", "top_rows", "top_cols", "sample_rows", "sample_cols", "sample_values",
           "bin_counts", "mean", "std", "kurtosis", "max", "min", "frac_positive")
_INDEX_FIELDS = ("top_rows", "top_cols", "sample_rows", "sample_cols")
STATS = ("mean", "std", "kurtosis", "max", "min", "frac_positive")


class Harvest:
    """What one harvesting pass recorded; see the module docstring.

    ``hooks`` are the hooks actually harvested. For models without an extra LN,
    ``hook_post`` is ``hook_mid``, and asking for ``"post"`` returns the ``"mid"`` records.
    """

    def __init__(self, meta: dict[str, Any], tensors: dict[str, dict[str, Tensor]]):
        self.meta = meta
        self.tensors = tensors

    # --- shape --------------------------------------------------------------------------
    @property
    def hooks(self) -> tuple[str, ...]:
        return tuple(self.meta["hooks"])

    @property
    def n_layers(self) -> int:
        return int(self.meta["n_layers"])

    @property
    def d_mlp(self) -> int:
        return int(self.meta["d_mlp"])

    @property
    def n_ctx(self) -> int:
        return int(self.meta["n_ctx"])

    @property
    def k(self) -> int:
        return int(self.meta["k"])

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    def __repr__(self) -> str:
        return (f"Harvest({self.meta.get('name', '?')}: {self.n_layers} layers x {self.d_mlp} "
                f"neurons, hooks {self.hooks}, {self.n_tokens} tokens, k={self.k})")

    def _hook(self, hook: str) -> dict[str, Tensor]:
        if hook not in HOOKS:
            raise ConfigError(f"hook must be one of {HOOKS} ('mid' is what gets interpreted, "
                              f"'post' is after SoLU's extra LayerNorm), got {hook!r}")
        if hook not in self.tensors:
            if hook == "post" and "mid" in self.tensors and self.meta.get("post_is_mid"):
                return self.tensors["mid"]
            raise HarvestError(f"hook {hook!r} was not harvested (have {self.hooks})")
        return self.tensors[hook]

    def check_neuron(self, layer: int, neuron: int) -> None:
        """Raise IndexError naming the valid range if ``L{layer}N{neuron}`` does not exist."""
        if not (0 <= layer < self.n_layers and 0 <= neuron < self.d_mlp):
            raise IndexError(f"neuron L{layer}N{neuron} out of range: the model has "
                             f"{self.n_layers} layer(s) of {self.d_mlp} neurons")

    # --- statistics -------------------------------------------------------------------------
    def stat(self, name: str, hook: str = "mid") -> Tensor:
        """A per-neuron statistic, shape ``(n_layers, d_mlp)``: one of ``STATS``."""
        if name not in STATS:
            raise KeyError(f"unknown statistic {name!r}; choose from {STATS}")
        return self._hook(hook)[name]

    def fraction_above(self, fraction_of_max: float, hook: str = "mid") -> Tensor:
        """Per neuron, the fraction of tokens whose activation exceeds ``fraction_of_max`` times
        the neuron's max: an activation-sparsity measure comparable across SoLU and GELU.

        Computed from the bucket counts; inside the bucket that straddles the threshold the
        tokens are taken as spread log-uniformly, so it is exact up to that one bucket.
        """
        t = self._hook(hook)
        threshold = (t["max"] * fraction_of_max).double()  # (L, N)
        counts = t["bin_counts"].double()  # (L, N, bins)
        edges = torch.from_numpy(BIN_EDGES).double()
        lower = torch.cat([torch.tensor([-math.inf], dtype=torch.float64), edges])
        upper = torch.cat([edges, torch.tensor([math.inf], dtype=torch.float64)])
        thr = threshold.unsqueeze(-1)
        above = (lower >= thr).double()
        straddle = (lower < thr) & (upper > thr) & (lower > 0) & torch.isfinite(upper)
        share = ((upper.log() - thr.clamp(min=1e-30).log())
                 / (upper.log() - lower.clamp(min=1e-30).log())).clamp(0, 1)
        weight = torch.where(straddle, share, above)
        return ((counts * weight).sum(-1) / counts.sum(-1).clamp(min=1)).float()

    # --- examples ---------------------------------------------------------------------------
    def top_examples(self, layer: int, neuron: int, hook: str = "mid",
                     n: int | None = None) -> list[Example]:
        """The neuron's strongest firings, one per row, strongest first."""
        self.check_neuron(layer, neuron)
        t = self._hook(hook)
        values = t["top_values"][layer, neuron]
        rows, cols = t["top_rows"][layer, neuron], t["top_cols"][layer, neuron]
        out = [Example(int(r), int(c), float(v)) for v, r, c in zip(values, rows, cols)
               if r >= 0 and math.isfinite(float(v))]
        return out[:n] if n is not None else out

    def band_range(self, layer: int, neuron: int, band: int, n_bands: int = 10,
                   hook: str = "mid") -> tuple[float, float]:
        """Activation interval ``(lo, hi]`` of band ``band`` of ``n_bands`` equal slices of
        ``(0, max]`` (paper §6.4: examples across a range of activation levels)."""
        if not (0 <= band < n_bands):
            raise IndexError(f"band must be in [0, {n_bands}), got {band}")
        self.check_neuron(layer, neuron)
        peak = float(self._hook(hook)["max"][layer, neuron])
        return peak * band / n_bands, peak * (band + 1) / n_bands

    def band_examples(self, layer: int, neuron: int, band: int, n_bands: int = 10,
                      hook: str = "mid", n: int = 20, seed: int = 0) -> list[Example]:
        """A random sample of firings with activation in band ``band`` (see ``band_range``)."""
        lo, hi = self.band_range(layer, neuron, band, n_bands, hook)
        return self.range_examples(layer, neuron, lo, hi, hook, n, seed)

    def quantile_range(self, layer: int, neuron: int, lo: float, hi: float,
                       hook: str = "mid") -> tuple[float, float]:
        """Activation interval holding the neuron's ``lo``..``hi`` quantiles of all tokens
        (at bucket resolution: widened to whole buckets)."""
        if not (0 <= lo < hi <= 1):
            raise ValueError(f"quantiles must satisfy 0 <= lo < hi <= 1, got {lo}, {hi}")
        self.check_neuron(layer, neuron)
        counts = self._hook(hook)["bin_counts"][layer, neuron].double()
        cdf = counts.cumsum(0) / counts.sum().clamp(min=1)
        first = int(torch.searchsorted(cdf, torch.tensor(lo, dtype=torch.float64), right=True))
        last = int(torch.searchsorted(cdf, torch.tensor(hi, dtype=torch.float64)))
        last = min(max(last, first), N_BINS - 1)
        low = -math.inf if first == 0 else float(BIN_EDGES[first - 1])
        high = math.inf if last == N_BINS - 1 else float(BIN_EDGES[last])
        return low, high

    def quantile_examples(self, layer: int, neuron: int, lo: float, hi: float,
                          hook: str = "mid", n: int = 20, seed: int = 0) -> list[Example]:
        """A random sample of firings between the neuron's ``lo`` and ``hi`` quantiles."""
        low, high = self.quantile_range(layer, neuron, lo, hi, hook)
        return self.range_examples(layer, neuron, low, high, hook, n, seed)

    def range_examples(self, layer: int, neuron: int, lo: float, hi: float, hook: str = "mid",
                       n: int = 20, seed: int = 0) -> list[Example]:
        """Up to ``n`` recorded firings with ``lo < activation <= hi``, strongest first.

        Each bucket's samples stand for all the bucket's tokens, so the draw is weighted by
        tokens per sample: the result approximates a uniform sample of the tokens in range.
        """
        self.check_neuron(layer, neuron)
        t = self._hook(hook)
        values = t["sample_values"][layer, neuron].double()  # (bins, s)
        rows, cols = t["sample_rows"][layer, neuron], t["sample_cols"][layer, neuron]
        valid = rows >= 0
        per_sample = t["bin_counts"][layer, neuron].double() / valid.sum(1).clamp(min=1)
        weights = per_sample.unsqueeze(1).expand_as(values)
        ok = valid & (values > lo) & (values <= hi)
        idx = ok.nonzero()
        out: list[Example] = []
        if len(idx):
            w = weights[ok].numpy()
            rng = np.random.default_rng([seed, layer, neuron])
            # Efraimidis-Spirakis weighted sampling without replacement.
            keys = np.log(rng.random(len(w))) / np.maximum(w, 1e-12)
            chosen = np.argsort(-keys)[:n]
            out = [Example(int(rows[i, j]), int(cols[i, j]), float(values[i, j]))
                   for i, j in idx[chosen].tolist()]
        if len(out) < n:
            # Near the top, buckets hold few samples; the exact top-k fills the band up.
            seen = {(e.row, e.col) for e in out}
            extra = [e for e in self.top_examples(layer, neuron, hook)
                     if lo < e.value <= hi and (e.row, e.col) not in seen]
            out += extra[:n - len(out)]
        return sorted(out, key=lambda e: -e.value)

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the harvest atomically as one safetensors file (metadata as JSON)."""
        from safetensors.torch import save_file

        path = Path(path)
        flat = {f"{hook}.{field}": _compact(field, t) for hook, fields in self.tensors.items()
                for field, t in fields.items()}
        with atomic_path(path) as tmp:
            save_file(flat, str(tmp), metadata={"harvest": json.dumps(self.meta)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Harvest":
        """Read a harvest written by ``save`` (no pickle involved)."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise HarvestError(f"no harvest file at {path}: run `solu-repro harvest` (or "
                               "solu_repro.interp.harvest_run) to create it")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            flat = load_file(str(path))
            meta = json.loads(metadata["harvest"])
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            raise HarvestError(f"harvest file {path} is corrupt or not a harvest ({exc}); "
                               "delete it and harvest again") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise HarvestError(f"harvest file {path} has format {meta.get('format_version')}, "
                               f"this code reads {FORMAT_VERSION}: delete it and harvest again")
        tensors: dict[str, dict[str, Tensor]] = {}
        for key, t in flat.items():
            hook, field = key.split(".", 1)
            tensors.setdefault(hook, {})[field] = t.long() if field in _INDEX_FIELDS else t
        missing = [f"{h}.{f}" for h in meta["hooks"] for f in _FIELDS
                   if f not in tensors.get(h, {})]
        if missing:
            raise HarvestError(f"harvest file {path} lacks {missing}: delete it and harvest again")
        return cls(meta, tensors)


def _compact(field: str, t: Tensor) -> Tensor:
    # Row and column indices fit in int32 (2**31 rows of >= 2 tokens); halves the file.
    return (t.int() if field in _INDEX_FIELDS else t).contiguous()


def _resolve_rows(rows: str | Sequence[int] | np.ndarray, n_rows: int,
                  max_rows: int | None) -> tuple[np.ndarray, str]:
    if isinstance(rows, str):
        chosen, label = selection_rows(n_rows, rows), rows
    else:
        if np.asarray(rows).dtype == bool:
            raise ConfigError("rows must be row indices, not a boolean mask: pass "
                              "np.flatnonzero(mask)")
        chosen = np.asarray(rows, dtype=np.int64).reshape(-1)
        if chosen.size and (chosen.min() < 0 or chosen.max() >= n_rows):
            raise ConfigError(f"row indices must be in [0, {n_rows}), got "
                              f"[{chosen.min()}, {chosen.max()}]")
        label = "custom"
        if len(np.unique(chosen)) != len(chosen):
            raise ConfigError("row indices must be distinct: a repeated row would fill several "
                              "of the k distinct snippets and count twice in every statistic")
    if max_rows is not None:
        if max_rows < 1:
            raise ConfigError(f"max_rows must be >= 1, got {max_rows}")
        chosen = chosen[:max_rows]
    if chosen.size == 0:
        raise ConfigError(f"no rows to harvest: the split has {n_rows} rows of this n_ctx; "
                          "use a longer split or a smaller n_ctx")
    return chosen, label


def harvest(source: NeuronSource | Transformer, split: TokenSplit, n_ctx: int, bos_id: int = 0,
            *, rows: str | Sequence[int] | np.ndarray = "even", k: int = 20,
            samples_per_bin: int = 4, batch_size: int = 16, max_rows: int | None = None,
            seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
            meta: dict[str, Any] | None = None, precision: str = "fp32") -> Harvest:
    """Stream ``split`` through ``source`` once and record every neuron (module docstring).

    Args:
        source: A ``Transformer`` or any ``NeuronSource`` (e.g. planted neurons).
        split: Token split to read (the validation split: text the model never trained on).
        n_ctx: Row length including BOS (the model's context).
        bos_id: Token at column 0 of every row.
        rows: ``"even"`` (default: the selection half; the scorer holds out ``"odd"``),
            ``"odd"``, ``"all"`` or explicit row indices.
        k: Top firings kept per neuron (paper: about 20).
        samples_per_bin: Reservoir size per activation bucket.
        batch_size: Rows per forward pass.
        max_rows: Harvest at most this many rows (for quick looks at large corpora).
        seed: Seed of the reservoir priorities (results are a pure function of it).
        device: Where the model runs; statistics are kept on the CPU.
        progress: Show a tqdm bar with tokens/s.
        meta: Extra metadata stored with the result (model name, run directory, ...).
        precision: The forward pass of a ``Transformer`` source: "fp32", or "bf16" autocast
            (a bf16 run's own precision, ``harvest_precision``; recorded in the metadata).
            A ``NeuronSource`` runs in its own (``ModelNeurons(model, precision)``).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    for name, value, low in (("k", k, 1), ("samples_per_bin", samples_per_bin, 1),
                             ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(source, Transformer):
        if source.cfg.n_ctx < n_ctx:
            raise ConfigError(f"n_ctx={n_ctx} exceeds the model's context {source.cfg.n_ctx}")
        source = ModelNeurons(source.to(device).eval(), precision)
    elif precision != "fp32":
        raise ConfigError("precision applies to a Transformer source; wrap a model as "
                          "ModelNeurons(model, precision) to harvest it in bf16")
    chosen, label = _resolve_rows(rows, num_rows(split, n_ctx), max_rows)
    keep_freed_memory()  # the per-batch temporaries reuse their pages (train.step)
    edges = _EDGES
    acc = {h: _HookAccumulator(source.n_layers, source.d_mlp, k, samples_per_bin)
           for h in source.hooks}
    batches = [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(chosen) * (n_ctx - 1), unit="tok", unit_scale=True, desc="harvest")
    n_tokens = 0
    for batch_rows in batches:
        tokens = get_rows(split, batch_rows, n_ctx, bos_id).to(device)
        acts = source.activations(tokens)
        row_ids = torch.from_numpy(batch_rows)
        for hook in source.hooks:
            for layer in range(source.n_layers):
                acc[hook].update(layer, acts[hook][layer][:, 1:], row_ids,
                                 (seed, HOOKS.index(hook)), edges)
        n_tokens += len(batch_rows) * (n_ctx - 1)
        if bar is not None:
            bar.update(len(batch_rows) * (n_ctx - 1))
    if bar is not None:
        bar.close()
    info = {
        "format_version": FORMAT_VERSION, "hooks": list(source.hooks),
        "post_is_mid": "post" not in source.hooks, "n_layers": source.n_layers,
        "d_mlp": source.d_mlp, "n_ctx": n_ctx, "bos_id": bos_id, "k": k,
        "samples_per_bin": samples_per_bin, "rows": label, "n_rows": int(len(chosen)),
        "n_tokens": n_tokens, "seed": seed, "bin_edges": BIN_EDGES.tolist(),
        "split": Path(split.directory).name, **(meta or {}),
    }
    if getattr(source, "precision", "fp32") != "fp32":  # (fp32 harvests' metadata unchanged)
        info["precision"] = source.precision
    return Harvest(info, {h: a.finish(n_tokens) for h, a in acc.items()})


def weights_digest(run) -> str:
    """SHA-256 of the file a run's weights load from (``run.weights_path``: a zoo run's
    ``model.safetensors``, a released model's ``.pth``), the key of its cached results;
    hashed once per process (``integrity.file_digest``)."""
    weights = Path(run.weights_path)
    if not weights.is_file():
        raise HarvestError(f"run {run.run_dir} has no weights file {weights.name}: train it "
                           "first")
    return file_digest(weights)


def harvest_precision(run, device: str | torch.device = "cpu") -> str:
    """The precision ``harvest_run`` reads a run in: the one it trained in
    (``result["precision"]``), except bf16 on a CPU that only emulates bf16 matmuls (the
    precision probe's matmul test), where bf16 would take many times longer: fp32."""
    precision = run.result.get("precision", "fp32")
    if precision not in PRECISIONS:
        return "fp32"
    if precision == "bf16" and torch.device(device).type == "cpu" and not _native_bf16():
        return "fp32"
    return precision


_NATIVE_BF16: list[bool] = []


_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) of native bf16 matrix products: AVX-512 BF16, Intel AMX."""


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (None where there is no such file)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def _native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively. Read from the CPU's flags where Linux lists
    them, so that every process on one machine answers the same (the answer is part of cache
    keys: a timing under load could differ between a book's worker and its kernel); timed
    (the precision probe's matmul test) only where there are no flags to read."""
    if not _NATIVE_BF16:
        flags = _cpu_flags()
        if flags is not None:  # (bf16 matmuls go to oneDNN, native under any ATen kernels)
            _NATIVE_BF16.append(any(f in flags for f in _BF16_FLAGS))
        else:
            from ..train import precision as precision_mod

            with precision_mod.torch_threads(1):
                _NATIVE_BF16.append(precision_mod.matmul_speedup() >= precision_mod.MATMUL_GATE)
    return _NATIVE_BF16[0]


def harvest_path(run, *, k: int = 20, samples_per_bin: int = 4, rows: str = "even",
                 max_rows: int | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", precision: str = "fp32") -> Path:
    """Where ``harvest_run`` keeps the harvest of a zoo run for these settings (a bf16
    harvest apart from an fp32 one)."""
    settings = {"k": k, "samples_per_bin": samples_per_bin, "rows": rows,
                "max_rows": max_rows, "seed": seed, "format": FORMAT_VERSION,
                "weights": weights_digest(run), "data": run.result.get("data_hash")}
    precision = harvest_precision(run, device) if precision == "auto" else precision
    if precision != "fp32":  # (the key of an fp32 harvest is what it always was)
        settings["precision"] = precision
    key = json.dumps(settings, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(run.run_dir) / "interp" / f"harvest-{digest}.safetensors"


def _waiting(path: Path) -> None:
    print(f"waiting for another process that is computing {path} (its result will be "
          "reused) ...", file=sys.stderr, flush=True)


@contextlib.contextmanager
def result_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock on computing the cached result ``path`` (a harvest, a score): a second
    process or thread waits until the first is done. The lock file (``.<name>.lock`` beside
    it) stays: removing it would race with one that has opened it but not yet locked it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _waiting(path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


T = TypeVar("T")


def cached(path: Path, rebuild: bool, load: Callable[[Path], T], compute: Callable[[], T]) -> T:
    """``load(path)`` of the saved result, else ``compute()`` (which saves it at ``path``),
    under ``result_lock``: two processes asking at once compute it once, the second waits and
    loads the first's. With ``rebuild`` it is computed again, unless a result appeared while
    this one waited (that one is new)."""
    def stamp() -> int | None:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    before = stamp()
    if before is not None and not rebuild:
        return load(path)
    with result_lock(path):
        now = stamp()
        if now is not None and (not rebuild or now != before):
            return load(path)
        return compute()


def harvest_run(run, *, k: int = 20, samples_per_bin: int = 4, rows: str = "even",
                max_rows: int | None = None, batch_size: int = 16, seed: int = 0,
                device: str | torch.device = "cpu", progress: bool = True,
                data_dir: str | Path | None = None, rebuild: bool = False,
                precision: str = "fp32") -> Harvest:
    """Harvest a trained zoo run's validation split, or reload the saved result.

    The file lives in the run directory (``interp/harvest-<hash>.safetensors``), keyed by the
    settings, the weights and the corpus, so a changed model or corpus is harvested afresh.
    Two processes asking for it at once harvest once: the second waits, then loads (``cached``).

    Args:
        run: A ``solu_repro.zoo.ZooRun`` (from ``ensure_trained``).
        rebuild: Harvest again even if a saved result exists.
        precision: "fp32" (default: the precision the judge's held-out re-runs, the
            instruments and the null controls read the model in, so a neuron's top firings and
            its thresholds come from the same numbers), "bf16", or "auto": the precision the
            run trained in (``harvest_precision``).
        (the rest as in ``harvest``)
    """
    precision = harvest_precision(run, device) if precision == "auto" else precision
    path = harvest_path(run, k=k, samples_per_bin=samples_per_bin, rows=rows,
                        max_rows=max_rows, seed=seed, device=device, precision=precision)

    def compute() -> Harvest:
        model = run.load_model(device)
        corpus = run.corpus(data_dir)
        result = harvest(model, corpus.split("val"), model.cfg.n_ctx, corpus.bos_id, rows=rows,
                         k=k, samples_per_bin=samples_per_bin, batch_size=batch_size,
                         max_rows=max_rows, seed=seed, device=device, progress=progress,
                         precision=precision,
                         meta={"name": run.name, "scale": run.scale,
                               "act_fn": model.cfg.act_fn, "run_dir": str(run.run_dir),
                               "data_hash": run.result.get("data_hash"), "split": "val"})
        result.save(path)
        return result

    return cached(path, rebuild, Harvest.load, compute)
