"""File checksums: a SHA-256 recorded when a file is written, checked when it is read.

Who records what:

* a run's final ``model.safetensors``: ``result.json``'s ``"sha256"``;
* a snapshot ``snapshots/step_XXXXXXX.safetensors``: its ``.json`` record's ``"sha256"``;
* a checkpoint's ``model.safetensors`` and ``trainer.pt``: its ``state.json``'s ``"sha256"``
  (``solu_repro.train.checkpoint``);
* a corpus' token shards and document index: ``meta.json``'s split entries
  (``solu_repro.data.shards``).

Each ``"sha256"`` maps a file name (beside the record) to its hex digest. A file without a
recorded digest (written before digests were recorded) is read unverified; a file whose
digest differs from the recorded one is refused by its reader, with the command that
repairs it.

Hashing streams the file in 1 MiB reads, so memory stays flat for a shard of any size, and
a file is hashed at most once per process while it stays the same file: digests are cached
by path, size, modification time (ns), inode and device, so a file that is rewritten or
edited in place is hashed again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

CHUNK_BYTES = 1 << 20
"""Bytes per read while hashing."""

_cache: dict[tuple[str, int, int, int, int], str] = {}
_lock = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file, read in ``CHUNK_BYTES`` pieces (never whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _identity(path: str | os.PathLike) -> tuple[str, int, int, int, int]:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def file_digest(path: str | os.PathLike) -> str:
    """``sha256_file(path)``, computed once per process while the file stays the same file.

    Raises:
        OSError: if the file cannot be read.
    """
    key = _identity(path)
    with _lock:
        known = _cache.get(key)
    if known is not None:
        return known
    digest = sha256_file(path)
    if _identity(path) == key:  # not cached if the file changed while it was read
        with _lock:
            _cache[key] = digest
    return digest


def remember(path: str | os.PathLike, digest: str) -> None:
    """Record ``digest`` as the digest of ``path`` as it is now, so this process does not hash
    a file it has just written and hashed (e.g. a shard hashed from memory while written)."""
    with _lock:
        _cache[_identity(path)] = digest


def forget() -> None:
    """Drop every cached digest (the next check of each file hashes it again)."""
    with _lock:
        _cache.clear()


def mismatch(path: str | os.PathLike, expected: str | None) -> str | None:
    """The digest ``path`` has if it is not ``expected``; None if it matches, or if nothing
    was recorded (``expected`` None: the file is unverified, not wrong)."""
    if not expected:
        return None
    found = file_digest(path)
    return None if found == expected else found


def describe(path: str | os.PathLike, record: str | os.PathLike, expected: str,
             found: str) -> str:
    """The first half of every checksum error: which file, which record, which digests."""
    return (f"{Path(path)} does not match the SHA-256 recorded in {Path(record)} (expected "
            f"{expected}, found {found}): it changed or was damaged after it was written")
