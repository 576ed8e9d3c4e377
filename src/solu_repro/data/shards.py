"""Token shards on disk: writing a split incrementally and reading it through memmaps.

A split directory holds:

* ``tokens-00000.bin``, ``tokens-00001.bin``, ... - raw little-endian token ids
  (``uint16`` or ``uint32``), at most ``shard_tokens`` each. Together they form one
  global token index: every document followed by the end-of-text token.
* ``doc_offsets.npy`` - int64, ``n_docs + 1`` entries: where each document starts in
  the global index (the last entry is ``n_tokens``).
* ``doc_sources.npy`` - int16, per document: index into the corpus' source names.
* ``doc_ids.json`` - per document: its id within its source.

Shards keep memory flat while writing a streamed corpus of any size; documents may
straddle shard boundaries, which ``TokenSplit.window`` hides from readers.

The split's entry in ``meta.json`` records every shard's SHA-256 (hashed from memory as it is
written) and the document index files' (``index_sha256``); ``verify_split`` checks them
(``TokenizedCorpus.split`` does, once per process and file), so a shard garbled in place at
the right size is refused instead of silently read. Entries from before digests were
recorded are read unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from solu_repro import integrity
from solu_repro.data import CorruptDataError, DataError

DEFAULT_SHARD_TOKENS = 2**26
TOKEN_FILE_PATTERN = "tokens-{:05d}.bin"
DOC_OFFSETS_FILE = "doc_offsets.npy"
DOC_SOURCES_FILE = "doc_sources.npy"
DOC_IDS_FILE = "doc_ids.json"
MAX_SOURCES = int(np.iinfo(np.int16).max) + 1


def token_dtype(vocab_size: int) -> np.dtype:
    """Return the smallest unsigned dtype that holds every token id.

    Args:
        vocab_size: Number of token ids (ids are ``0 .. vocab_size - 1``).

    Returns:
        ``uint16`` for vocabularies up to 65536, else ``uint32``.
    """
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


class ShardWriter:
    """Write one split (documents -> shards + document index) incrementally.

    Args:
        directory: The split directory to create (must not hold shards yet).
        dtype: Token dtype, see ``token_dtype``.
        eot_id: Token appended after every document.
        shard_tokens: Maximum tokens per shard file.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        dtype: np.dtype | str,
        eot_id: int,
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
    ):
        if shard_tokens < 1:
            raise DataError(f"shard_tokens must be a positive integer, got {shard_tokens}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(dtype)
        self.eot_id = eot_id
        self.shard_tokens = shard_tokens
        # np.empty only reserves address space; pages are touched as they fill.
        self._buffer = np.empty(shard_tokens, dtype=self.dtype)
        self._filled = 0
        self._shards: list[dict[str, Any]] = []
        self._n_tokens = 0
        # array('q') is ~8 bytes per document, unlike a list of Python ints.
        self._doc_offsets = array("q", [0])
        self._doc_sources = array("h")
        self._ids_file = open(self.directory / DOC_IDS_FILE, "w", encoding="utf-8")
        self._ids_file.write("[")
        self._closed = False

    def add_document(
        self, tokens: Sequence[int] | np.ndarray, source_index: int, doc_id: str
    ) -> None:
        """Append a document (the end-of-text token is added here).

        Args:
            tokens: The document's token ids, without end-of-text.
            source_index: Index of the document's source in the corpus source names.
            doc_id: The document's id within its source.
        """
        if not 0 <= source_index < MAX_SOURCES:
            raise DataError(
                f"source index {source_index} out of range (at most {MAX_SOURCES} sources)"
            )
        ids = np.asarray(tokens)
        if ids.size and int(ids.max()) > np.iinfo(self.dtype).max:
            raise DataError(f"token id {int(ids.max())} does not fit in {self.dtype}")
        self._append(ids.astype(self.dtype, copy=False))
        self._append(np.array([self.eot_id], dtype=self.dtype))
        self._doc_offsets.append(self._n_tokens)
        self._doc_sources.append(source_index)
        separator = "," if len(self._doc_sources) > 1 else ""
        self._ids_file.write(separator + json.dumps(doc_id, ensure_ascii=False))

    def _append(self, ids: np.ndarray) -> None:
        while ids.size:
            take = min(ids.size, self.shard_tokens - self._filled)
            self._buffer[self._filled : self._filled + take] = ids[:take]
            self._filled += take
            self._n_tokens += take
            ids = ids[take:]
            if self._filled == self.shard_tokens:
                self._flush()

    def _flush(self) -> None:
        if self._filled == 0:
            return
        name = TOKEN_FILE_PATTERN.format(len(self._shards))
        tokens = self._buffer[: self._filled]
        tokens.tofile(self.directory / name)
        self._shards.append(
            {
                "file": name,
                "n_tokens": self._filled,
                "bytes": self._filled * self.dtype.itemsize,
                # the bytes tofile wrote, hashed from memory (no copy, no read back)
                "sha256": hashlib.sha256(tokens).hexdigest(),
            }
        )
        self._filled = 0

    def close(self, source_names: Sequence[str]) -> dict[str, Any]:
        """Flush the last shard, write the document index and return the split's metadata.

        Args:
            source_names: Names for the source indices used in ``add_document``.

        Returns:
            A JSON-serializable dict: ``n_tokens``, ``n_docs``, ``dtype``, ``shards``
            (file, n_tokens, bytes, sha256), ``index_sha256`` (the document index files'
            SHA-256), ``tokens_per_source`` and ``docs_per_source``.
        """
        if self._closed:
            raise DataError("ShardWriter.close() called twice")
        self._closed = True
        self._flush()
        self._ids_file.write("]\n")
        self._ids_file.close()
        offsets = np.frombuffer(self._doc_offsets, dtype=np.int64)
        sources = np.frombuffer(self._doc_sources, dtype=np.int16)
        np.save(self.directory / DOC_OFFSETS_FILE, offsets)
        np.save(self.directory / DOC_SOURCES_FILE, sources)
        self._buffer = np.empty(0, dtype=self.dtype)  # release the shard buffer
        n_sources = len(source_names)
        tokens_per_source = np.bincount(sources, weights=np.diff(offsets), minlength=n_sources)
        docs_per_source = np.bincount(sources, minlength=n_sources)
        return {
            "n_tokens": self._n_tokens,
            "n_docs": len(sources),
            "dtype": self.dtype.name,
            "shards": list(self._shards),
            "index_sha256": {
                name: integrity.file_digest(self.directory / name)
                for name in (DOC_OFFSETS_FILE, DOC_SOURCES_FILE, DOC_IDS_FILE)
            },
            "tokens_per_source": {n: int(tokens_per_source[i]) for i, n in enumerate(source_names)},
            "docs_per_source": {n: int(docs_per_source[i]) for i, n in enumerate(source_names)},
        }


def validate_split(directory: str | os.PathLike, split_meta: dict[str, Any]) -> None:
    """Check that a split directory matches its metadata (files present, sizes right).

    Args:
        directory: The split directory.
        split_meta: The split's entry in ``meta.json``.

    Raises:
        CorruptDataError: Naming the first problem found.
    """
    directory = Path(directory)

    def corrupt(problem: str) -> CorruptDataError:
        return CorruptDataError(f"{directory}: {problem}")

    try:
        dtype = np.dtype(split_meta["dtype"])
        n_tokens, n_docs, shards = (
            split_meta["n_tokens"],
            split_meta["n_docs"],
            split_meta["shards"],
        )
    except (KeyError, TypeError) as exc:
        raise corrupt(f"split metadata is incomplete ({exc!r})") from exc
    if sum(s["n_tokens"] for s in shards) != n_tokens:
        raise corrupt("shard token counts do not add up to n_tokens")
    for shard in shards:
        path = directory / shard["file"]
        if not path.is_file():
            raise corrupt(f"missing shard {shard['file']}")
        expected = shard["n_tokens"] * dtype.itemsize
        actual = path.stat().st_size
        if actual != expected:
            raise corrupt(f"shard {shard['file']} has {actual} bytes, expected {expected}")
    for name in (DOC_OFFSETS_FILE, DOC_SOURCES_FILE, DOC_IDS_FILE):
        if not (directory / name).is_file():
            raise corrupt(f"missing {name}")
    try:
        offsets = np.load(directory / DOC_OFFSETS_FILE, mmap_mode="r")
        sources = np.load(directory / DOC_SOURCES_FILE, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise corrupt(f"unreadable document index ({exc})") from exc
    if offsets.shape != (n_docs + 1,) or sources.shape != (n_docs,):
        raise corrupt(
            f"document index has {offsets.shape[0]} offsets and {sources.shape[0]} sources, "
            f"expected {n_docs + 1} and {n_docs}"
        )
    if n_docs and (offsets[0] != 0 or offsets[-1] != n_tokens):
        raise corrupt("document offsets do not span the token stream")


def verify_split(directory: str | os.PathLike, split_meta: dict[str, Any], fix: str) -> None:
    """Check every file of a split against the SHA-256 its metadata records.

    Files are streamed in 1 MiB reads and hashed once per process while unchanged
    (``solu_repro.integrity``); a split written before digests were recorded passes
    unverified.

    Args:
        directory: The split directory.
        split_meta: The split's entry in ``meta.json``.
        fix: What repairs the corpus, appended to the error (e.g. the rebuild command).

    Raises:
        CorruptDataError: Naming the file, the expected and found digests, and ``fix``.
    """
    directory = Path(directory)
    files = [(s["file"], s.get("sha256")) for s in split_meta["shards"]]
    files += list((split_meta.get("index_sha256") or {}).items())
    meta_json = directory.parent / "meta.json"
    for name, expected in files:
        try:
            found = integrity.mismatch(directory / name, expected)
        except OSError as exc:
            raise CorruptDataError(f"cannot read {directory / name} ({exc}); {fix}") from exc
        if found is not None:
            raise CorruptDataError(
                f"{integrity.describe(directory / name, meta_json, expected, found)}; {fix}"
            )


class TokenSplit:
    """Read-only view of one split's tokens (train or val), backed by memmaps.

    Args:
        directory: The split directory.
        split_meta: The split's entry in ``meta.json``.
        source_names: The corpus' source names (index -> name).
    """

    def __init__(
        self, directory: str | os.PathLike, split_meta: dict[str, Any], source_names: Sequence[str]
    ):
        self.directory = Path(directory)
        self.meta = split_meta
        self.source_names: list[str] = list(source_names)
        self.dtype = np.dtype(split_meta["dtype"])
        self.n_tokens: int = int(split_meta["n_tokens"])
        self.n_docs: int = int(split_meta["n_docs"])
        self._shards = [
            np.memmap(
                self.directory / s["file"], dtype=self.dtype, mode="r", shape=(s["n_tokens"],)
            )
            for s in split_meta["shards"]
        ]
        sizes = [s["n_tokens"] for s in split_meta["shards"]]
        self._shard_starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.doc_offsets: np.ndarray = np.load(self.directory / DOC_OFFSETS_FILE, mmap_mode="r")
        self.doc_sources: np.ndarray = np.load(self.directory / DOC_SOURCES_FILE, mmap_mode="r")
        self._doc_ids: list[str] | None = None

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        return (
            f"TokenSplit({str(self.directory)!r}, n_tokens={self.n_tokens}, n_docs={self.n_docs})"
        )

    @property
    def tokens_per_source(self) -> dict[str, int]:
        """Token count (EOTs included) of each source in this split."""
        return dict(self.meta["tokens_per_source"])

    def _check_range(self, start: int, length: int) -> None:
        if length < 0 or start < 0 or start + length > self.n_tokens:
            raise IndexError(
                f"window [{start}, {start + length}) is outside the split's {self.n_tokens} tokens"
            )

    def window(self, start: int, length: int) -> np.ndarray:
        """Copy ``length`` consecutive tokens starting at ``start`` (across shards).

        Args:
            start: Global token index of the first token.
            length: Number of tokens.

        Returns:
            A new array of the split's dtype.

        Raises:
            IndexError: If the window leaves the split.
        """
        start, length = int(start), int(length)
        self._check_range(start, length)
        out = np.empty(length, dtype=self.dtype)
        shard = int(np.searchsorted(self._shard_starts, start, side="right")) - 1
        done = 0
        while done < length:
            offset = start + done - int(self._shard_starts[shard])
            take = min(length - done, self._shards[shard].shape[0] - offset)
            out[done : done + take] = self._shards[shard][offset : offset + take]
            done += take
            shard += 1
        return out

    def document_of(self, position: int | np.ndarray) -> int | np.ndarray:
        """Return the index of the document containing a token position.

        Args:
            position: Global token index (or an array of them).

        Returns:
            Document index (or an array of them).
        """
        pos = np.asarray(position)
        if pos.size and (pos.min() < 0 or pos.max() >= self.n_tokens):
            raise IndexError(f"position out of range for a split of {self.n_tokens} tokens")
        docs = np.searchsorted(self.doc_offsets, pos, side="right") - 1
        return int(docs) if docs.ndim == 0 else docs

    def source_of(self, position: int) -> str:
        """Return the source name of the document containing ``position``.

        Args:
            position: Global token index.

        Returns:
            The source name, e.g. ``"sotu"``.
        """
        return self.source_names[int(self.doc_sources[self.document_of(int(position))])]

    def sources_of_window(self, start: int, length: int) -> np.ndarray:
        """Return the source index of every position of a window (cheap: no token reads).

        Args:
            start: Global token index of the first position.
            length: Number of positions.

        Returns:
            int64 array of indices into ``source_names``.
        """
        start, length = int(start), int(length)
        self._check_range(start, length)
        docs = self.document_of(np.arange(start, start + length, dtype=np.int64))
        return np.asarray(self.doc_sources[docs], dtype=np.int64)

    def doc_id(self, doc_index: int) -> str:
        """Return a document's id within its source (the id list is loaded on first use).

        Args:
            doc_index: Document index in this split.

        Returns:
            The document id, e.g. ``"1790-Washington-1"`` or ``"json/decoder.py"``.
        """
        if self._doc_ids is None:
            with open(self.directory / DOC_IDS_FILE, encoding="utf-8") as f:
                self._doc_ids = json.load(f)
        return self._doc_ids[doc_index]

    def doc_source(self, doc_index: int) -> str:
        """Return a document's source name.

        Args:
            doc_index: Document index in this split.

        Returns:
            The source name.
        """
        return self.source_names[int(self.doc_sources[doc_index])]

    def doc_span(self, doc_index: int) -> tuple[int, int]:
        """Return ``(start, end)`` of a document in the global token index (EOT included).

        Args:
            doc_index: Document index in this split.

        Returns:
            Half-open token range.
        """
        return int(self.doc_offsets[doc_index]), int(self.doc_offsets[doc_index + 1])
