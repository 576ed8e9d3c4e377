"""Training rows and a resumable, deterministic row order.

A split's token stream is cut into non-overlapping chunks of ``n_ctx - 1`` tokens;
row ``r`` is ``[BOS] + tokens[r*(n_ctx-1) : (r+1)*(n_ctx-1)]``. Starting every row
with BOS gives the model a fixed first position (attention sink) regardless of
where in a document the chunk starts. The leftover tail shorter than a chunk is
dropped.

Row order is a fresh permutation per epoch, a pure function of ``(seed, epoch)``,
and the rows of global step ``k`` are a pure function of ``(seed, k, batch_size)``.
So resuming at step ``k`` sees exactly the data an uninterrupted run would, and
distributed ranks can each take a slice of the same global batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from solu_repro.data import DataError
from solu_repro.data.shards import TokenSplit


def _check_n_ctx(n_ctx: int) -> None:
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, (int, np.integer)) or n_ctx < 2:
        raise DataError(f"n_ctx must be an integer >= 2 (BOS + at least one token), got {n_ctx!r}")


def num_rows(split: TokenSplit, n_ctx: int) -> int:
    """Return how many full training rows a split holds.

    Args:
        split: The token split.
        n_ctx: Row length including the BOS token.

    Returns:
        ``split.n_tokens // (n_ctx - 1)``.
    """
    _check_n_ctx(n_ctx)
    return split.n_tokens // (n_ctx - 1)


def row_order(n_rows: int, seed: int, epoch: int) -> np.ndarray:
    """Return the row permutation for one epoch.

    Args:
        n_rows: Number of rows.
        seed: Data-order seed (non-negative).
        epoch: Epoch number (non-negative).

    Returns:
        int64 permutation of ``range(n_rows)``, identical for identical arguments.
    """
    if seed < 0 or epoch < 0:
        raise DataError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    generator = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch)]))
    )
    return generator.permutation(n_rows).astype(np.int64)


def _rows_as_numpy(
    split: TokenSplit, row_indices: Sequence[int] | np.ndarray, n_ctx: int, bos_id: int
) -> np.ndarray:
    _check_n_ctx(n_ctx)
    rows = np.asarray(row_indices, dtype=np.int64).reshape(-1)
    n_available = num_rows(split, n_ctx)
    if rows.size and (rows.min() < 0 or rows.max() >= n_available):
        raise IndexError(
            f"row index out of range: split has {n_available} rows of n_ctx={n_ctx}, "
            f"got indices in [{rows.min()}, {rows.max()}]"
        )
    chunk = n_ctx - 1
    out = np.empty((rows.size, n_ctx), dtype=np.int64)
    out[:, 0] = bos_id
    for i, row in enumerate(rows):
        out[i, 1:] = split.window(int(row) * chunk, chunk)
    return out


def get_rows(
    split: TokenSplit, row_indices: Sequence[int] | np.ndarray, n_ctx: int, bos_id: int
) -> torch.Tensor:
    """Gather training rows.

    Args:
        split: The token split.
        row_indices: Which rows (see ``num_rows``).
        n_ctx: Row length including BOS.
        bos_id: Token placed at column 0 (the corpus' ``bos_id``).

    Returns:
        LongTensor of shape ``[len(row_indices), n_ctx]``.

    Raises:
        IndexError: If a row index is out of range.
    """
    return torch.from_numpy(_rows_as_numpy(split, row_indices, n_ctx, bos_id))


def get_rows_with_sources(
    split: TokenSplit, row_indices: Sequence[int] | np.ndarray, n_ctx: int, bos_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather training rows together with each position's source index.

    Args:
        split: The token split.
        row_indices: Which rows.
        n_ctx: Row length including BOS.
        bos_id: Token placed at column 0.

    Returns:
        ``(tokens, sources)``: two LongTensors of shape ``[len(row_indices), n_ctx]``;
        ``sources`` indexes ``split.source_names``. The BOS column gets the source of
        the token after it, so every position of a row has a real source.
    """
    tokens = _rows_as_numpy(split, row_indices, n_ctx, bos_id)
    chunk = n_ctx - 1
    sources = np.empty_like(tokens)
    for i, row in enumerate(np.asarray(row_indices, dtype=np.int64).reshape(-1)):
        sources[i, 1:] = split.sources_of_window(int(row) * chunk, chunk)
    sources[:, 0] = sources[:, 1]
    return torch.from_numpy(tokens), torch.from_numpy(sources)


class RowSampler:
    """Deterministic, resumable row indices for each global training step.

    Step ``k`` with global batch size ``B`` takes positions ``k*B .. k*B+B-1`` of the
    infinite sequence ``row_order(epoch 0) ++ row_order(epoch 1) ++ ...``, so a batch
    may straddle two epochs and every row is seen once per epoch.

    Args:
        split: The token split to sample rows from.
        n_ctx: Row length including BOS.
        seed: Data-order seed.

    Raises:
        DataError: If the split is too short for a single row.
    """

    def __init__(self, split: TokenSplit, n_ctx: int, seed: int):
        self.split = split
        self.n_ctx = n_ctx
        self.seed = seed
        self.n_rows = num_rows(split, n_ctx)
        if self.n_rows == 0:
            raise DataError(
                f"split {split.directory} has {split.n_tokens} tokens, fewer than one row of "
                f"n_ctx - 1 = {n_ctx - 1}; use a smaller n_ctx or a larger corpus"
            )
        self._cached_epoch: int | None = None
        self._cached_order: np.ndarray | None = None

    def _order(self, epoch: int) -> np.ndarray:
        # Consecutive steps almost always hit the same epoch: cache one permutation.
        if self._cached_epoch != epoch:
            self._cached_order = row_order(self.n_rows, self.seed, epoch)
            self._cached_epoch = epoch
        return self._cached_order

    def epoch_of_step(self, step: int, batch_size: int) -> int:
        """Return the epoch that the first row of ``step`` belongs to.

        Args:
            step: Global step (0-based).
            batch_size: Global batch size.

        Returns:
            ``floor(step * batch_size / n_rows)``.
        """
        return (step * batch_size) // self.n_rows

    def rows_for_step(
        self, step: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> np.ndarray:
        """Return the row indices of one step (the whole global batch, or one rank's slice).

        Args:
            step: Global step (0-based).
            batch_size: Global batch size ``B`` (all ranks together).
            rank: This process' rank; with ``world_size > 1`` it gets the contiguous
                slice ``[rank * B/world_size, (rank+1) * B/world_size)``.
            world_size: Number of ranks; must divide ``batch_size``.

        Returns:
            int64 array of row indices.
        """
        if step < 0 or batch_size < 1:
            raise DataError(
                f"need step >= 0 and batch_size >= 1, got step={step}, batch_size={batch_size}"
            )
        if world_size < 1 or batch_size % world_size or not 0 <= rank < world_size:
            raise DataError(
                f"batch_size {batch_size} must split evenly over world_size {world_size} "
                f"with 0 <= rank < world_size (got rank {rank})"
            )
        per_rank = batch_size // world_size
        first = step * batch_size + rank * per_rank
        positions = np.arange(first, first + per_rank, dtype=np.int64)
        epochs = positions // self.n_rows
        rows = np.empty(per_rank, dtype=np.int64)
        for epoch in np.unique(epochs):
            selected = epochs == epoch
            rows[selected] = self._order(int(epoch))[positions[selected] % self.n_rows]
        return rows
