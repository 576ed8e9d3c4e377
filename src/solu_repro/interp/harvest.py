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

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path
from ..data import TokenSplit, get_rows, num_rows
from ..model import ConfigError, Transformer

HOOKS = ("mid", "post")
FORMAT_VERSION = 1

# Signed geometric bucket grid: |x| edges 1e-3 * 1.12**j, j = 0..111 (up to ~300), fine
# enough that a band of 10% of a neuron's max spans about one bucket or more near the top.
_MAGNITUDES = 1e-3 * 1.12 ** np.arange(112)
BIN_EDGES = np.concatenate([-_MAGNITUDES[::-1], _MAGNITUDES]).astype(np.float32)
N_BINS = len(BIN_EDGES) + 1  # bucket i holds (edges[i-1], edges[i]]; ends are open
_COL_BITS = 20  # priority keys carry the column in their low bits
_MAX_CHUNK = 1 << 21  # activations folded in at once (row chunks of a batch)


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


class ModelNeurons:
    """The MLP neurons of a ``Transformer``, read through its TransformerLens-style hooks."""

    def __init__(self, model: Transformer):
        self.model = model
        self.n_layers = model.cfg.n_layers
        self.d_mlp = model.cfg.d_mlp
        # Without an extra LN, hook_post is hook_mid; harvesting it twice would waste a pass.
        self.hooks = HOOKS if model.cfg.has_mlp_ln else ("mid",)

    def activations(self, tokens: Tensor) -> dict[str, list[Tensor]]:
        names = [f"blocks.{l}.mlp.hook_{h}" for h in self.hooks for l in range(self.n_layers)]
        with torch.inference_mode():
            _, cache = self.model.run_with_cache(tokens, names=names, return_logits=False)
        return {h: [cache[f"blocks.{l}.mlp.hook_{h}"].float() for l in range(self.n_layers)]
                for h in self.hooks}


@dataclass(frozen=True)
class Example:
    """One firing: a row of the split, a column in it, the activation there."""

    row: int
    col: int
    value: float

    def position(self, n_ctx: int) -> int:
        return int(split_position(self.row, self.col, n_ctx))


class _HookAccumulator:
    """Running statistics of one hook over all layers: top-k, bucket reservoirs, moments."""

    def __init__(self, n_layers: int, d_mlp: int, k: int, samples: int):
        L, N = n_layers, d_mlp
        self.k, self.samples = k, samples
        self.top_values = torch.full((L, N, k), -math.inf)
        self.top_rows = torch.full((L, N, k), -1, dtype=torch.long)
        self.top_cols = torch.full((L, N, k), -1, dtype=torch.long)
        self.sample_keys = torch.full((L, N, N_BINS, samples), -1, dtype=torch.long)
        self.sample_rows = torch.full((L, N, N_BINS, samples), -1, dtype=torch.long)
        self.sample_cols = torch.full((L, N, N_BINS, samples), -1, dtype=torch.long)
        self.sample_values = torch.full((L, N, N_BINS, samples), math.nan)
        self.bin_counts = torch.zeros((L, N, N_BINS), dtype=torch.long)
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
        if B > 1 and B * T1 * N > _MAX_CHUNK:
            # Bound the int64 temporaries below (several GB at GPU-scale shapes otherwise).
            step = max(1, _MAX_CHUNK // (T1 * N))
            for i in range(0, B, step):
                self.update(layer, acts[i:i + step], rows[i:i + step], stream, edges)
            return
        acts = acts.detach().cpu().float().contiguous()
        # --- top-k, one per row ------------------------------------------------------------
        row_max, row_arg = acts.max(dim=1)  # (B, N)
        values = torch.cat([self.top_values[layer], row_max.T], dim=1)  # (N, k+B)
        cand_rows = torch.cat([self.top_rows[layer], rows.view(1, B).expand(N, B)], dim=1)
        cand_cols = torch.cat([self.top_cols[layer], (row_arg + 1).T], dim=1)
        best = values.topk(self.k, dim=1).indices
        self.top_values[layer] = values.gather(1, best)
        self.top_rows[layer] = cand_rows.gather(1, best)
        self.top_cols[layer] = cand_cols.gather(1, best)
        # --- bucket reservoirs: per row, a random winner per (bucket, neuron) ---------------
        bins = torch.bucketize(acts, edges)  # (B, T-1, N)
        # One priority stream per (seed, hook, layer, row): the samples do not depend on how
        # rows are batched or ordered.
        priority = torch.stack([
            torch.randint(0, 2 ** 40, (T1, N), generator=torch.Generator().manual_seed(
                int(np.random.SeedSequence([*stream, layer, int(r)]).generate_state(1)[0])))
            for r in rows])
        cols = torch.arange(1, T1 + 1).view(1, T1, 1)
        keys = (priority << _COL_BITS) | cols
        winners = torch.full((B, N_BINS, N), -1, dtype=torch.long)
        winners.scatter_reduce_(1, bins, keys, reduce="amax", include_self=True)
        win_cols = torch.where(winners >= 0, winners & ((1 << _COL_BITS) - 1), 1)  # (B, bins, N)
        win_values = acts.gather(1, win_cols - 1).permute(2, 1, 0)  # (N, bins, B)
        win_keys = winners.permute(2, 1, 0)
        win_cols = win_cols.permute(2, 1, 0)
        win_rows = rows.view(1, 1, B).expand(N, N_BINS, B)
        keys_all = torch.cat([self.sample_keys[layer], win_keys], dim=2)
        keep = keys_all.topk(self.samples, dim=2).indices
        self.sample_keys[layer] = keys_all.gather(2, keep)
        self.sample_rows[layer] = torch.cat([self.sample_rows[layer], win_rows], 2).gather(2, keep)
        self.sample_cols[layer] = torch.cat([self.sample_cols[layer], win_cols], 2).gather(2, keep)
        self.sample_values[layer] = torch.cat([self.sample_values[layer], win_values], 2).gather(2, keep)
        empty = self.sample_keys[layer] < 0
        self.sample_rows[layer][empty] = -1
        self.sample_cols[layer][empty] = -1
        self.sample_values[layer][empty] = math.nan
        counts = torch.zeros((N, N_BINS), dtype=torch.long)
        flat_bins = bins.reshape(-1, N).T  # (N, B*(T-1))
        counts.scatter_add_(1, flat_bins, torch.ones_like(flat_bins))
        self.bin_counts[layer] += counts
        # --- moments ----------------------------------------------------------------------
        flat = acts.reshape(-1, N).double()
        if not self.shift_set[layer]:
            self.shift[layer] = flat.mean(0)
            self.shift_set[layer] = True
        centred = flat - self.shift[layer]
        powers = centred.clone()
        for p in range(4):
            self.power_sums[p, layer] += powers.sum(0)
            powers *= centred
        self.max[layer] = torch.maximum(self.max[layer], row_max.max(0).values)
        self.min[layer] = torch.minimum(self.min[layer], acts.amin(dim=(0, 1)))
        self.n_positive[layer] += (acts > 0).sum(dim=(0, 1))

    def finish(self, n_tokens: int) -> dict[str, Tensor]:
        n = max(n_tokens, 1)
        s1, s2, s3, s4 = (self.power_sums[p] / n for p in range(4))
        mean_c = s1  # mean of centred values
        var = (s2 - mean_c ** 2).clamp(min=0)
        m4 = s4 - 4 * mean_c * s3 + 6 * mean_c ** 2 * s2 - 3 * mean_c ** 4
        kurtosis = torch.where(var > 0, m4 / var.clamp(min=1e-300) ** 2 - 3.0,
                               torch.full_like(var, math.nan))
        return {
            "top_values": self.top_values, "top_rows": self.top_rows, "top_cols": self.top_cols,
            "sample_rows": self.sample_rows, "sample_cols": self.sample_cols,
            "sample_values": self.sample_values, "bin_counts": self.bin_counts,
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
            meta: dict[str, Any] | None = None) -> Harvest:
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
    """
    for name, value, low in (("k", k, 1), ("samples_per_bin", samples_per_bin, 1),
                             ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(source, Transformer):
        if source.cfg.n_ctx < n_ctx:
            raise ConfigError(f"n_ctx={n_ctx} exceeds the model's context {source.cfg.n_ctx}")
        source = ModelNeurons(source.to(device).eval())
    chosen, label = _resolve_rows(rows, num_rows(split, n_ctx), max_rows)
    edges = torch.from_numpy(BIN_EDGES)
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
    return Harvest(info, {h: a.finish(n_tokens) for h, a in acc.items()})


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def harvest_path(run, *, k: int = 20, samples_per_bin: int = 4, rows: str = "even",
                 max_rows: int | None = None, seed: int = 0) -> Path:
    """Where ``harvest_run`` keeps the harvest of a zoo run for these settings."""
    weights = Path(run.run_dir) / "model.safetensors"
    if not weights.is_file():
        raise HarvestError(f"run {run.run_dir} has no model.safetensors: train it first")
    key = json.dumps({"k": k, "samples_per_bin": samples_per_bin, "rows": rows,
                      "max_rows": max_rows, "seed": seed, "format": FORMAT_VERSION,
                      "weights": _file_digest(weights), "data": run.result.get("data_hash")},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(run.run_dir) / "interp" / f"harvest-{digest}.safetensors"


def harvest_run(run, *, k: int = 20, samples_per_bin: int = 4, rows: str = "even",
                max_rows: int | None = None, batch_size: int = 16, seed: int = 0,
                device: str | torch.device = "cpu", progress: bool = True,
                data_dir: str | Path | None = None, rebuild: bool = False) -> Harvest:
    """Harvest a trained zoo run's validation split, or reload the saved result.

    The file lives in the run directory (``interp/harvest-<hash>.safetensors``), keyed by the
    settings, the weights and the corpus, so a changed model or corpus is harvested afresh.

    Args:
        run: A ``solu_repro.zoo.ZooRun`` (from ``ensure_trained``).
        rebuild: Harvest again even if a saved result exists.
        (the rest as in ``harvest``)
    """
    path = harvest_path(run, k=k, samples_per_bin=samples_per_bin, rows=rows,
                        max_rows=max_rows, seed=seed)
    if path.is_file() and not rebuild:
        return Harvest.load(path)
    model = run.load_model(device)
    corpus = run.corpus(data_dir)
    result = harvest(model, corpus.split("val"), model.cfg.n_ctx, corpus.bos_id, rows=rows,
                     k=k, samples_per_bin=samples_per_bin, batch_size=batch_size,
                     max_rows=max_rows, seed=seed, device=device, progress=progress,
                     meta={"name": run.name, "scale": run.scale, "act_fn": model.cfg.act_fn,
                           "run_dir": str(run.run_dir), "data_hash": run.result.get("data_hash"),
                           "split": "val"})
    result.save(path)
    return result
