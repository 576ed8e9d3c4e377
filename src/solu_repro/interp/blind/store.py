"""The judgments file: append-only JSON lines, each written whole and fsynced.

A crash loses at most the judgment being written; a torn last line is skipped with a
``TornLineWarning`` and the next write starts on a fresh line, so it stays whole.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import BlindError, TornLineWarning
from .protocol import JUDGMENTS

JUDGMENTS_NAME = "judgments.jsonl"


@dataclass(frozen=True)
class Judgment:
    """One line of ``judgments.jsonl``."""

    item: str
    judgment: str
    evaluator: str
    hypothesis: str = ""
    time: str = ""
    seconds: float | None = None  # time the evaluator spent on the item (paper: 1-2 min)

    @property
    def interpretable(self) -> bool | None:
        """True / False, or None for a skip."""
        return None if self.judgment == "skip" else self.judgment == "interpretable"


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line durably: a single write, flush, fsync, under a file lock."""
    data = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
    is_new = not path.exists()
    with open(path, "a+b") as f:
        # Two evaluators' processes may append to one session at the same time.
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    # A torn line from a crash: start on a fresh line so ours stays whole.
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    if is_new:
        # Make the new file's directory entry durable too.
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse_judgment(rec: Any, where: str, manifest_hash: str,
                    item_ids: Mapping[str, Any]) -> Judgment:
    if not isinstance(rec, dict):
        raise BlindError(f"{where} is not a judgment record; this file was not written by "
                         "this tool: move it away")
    if rec.get("manifest") != manifest_hash:
        raise BlindError(
            f"{where} belongs to a different session (manifest {rec.get('manifest')!r}, this "
            f"session's is {manifest_hash!r}): the judgments file does not match manifest.json. "
            "Put the judgments next to the manifest they were made with, or move this file "
            "away to start judging this session afresh")
    try:
        j = Judgment(item=rec["item"], judgment=rec["judgment"], evaluator=rec["evaluator"],
                     hypothesis=rec.get("hypothesis") or "", time=rec.get("time", ""),
                     seconds=rec.get("seconds"))
    except KeyError as exc:
        raise BlindError(f"{where} lacks the field {exc}; the file is damaged") from None
    if j.item not in item_ids or j.judgment not in JUDGMENTS or not j.evaluator:
        raise BlindError(f"{where} has an unknown item, judgment or evaluator ({j.item!r}, "
                         f"{j.judgment!r}, {j.evaluator!r}); the file is damaged")
    return j


def read_judgments(path: Path, manifest_hash: str,
                   item_ids: Mapping[str, Any]) -> list[Judgment]:
    """All complete judgments in file order; incomplete (torn) lines are skipped with a warning.

    Raises:
        BlindError: A complete line from another session, or one that is not a judgment.
    """
    if not path.exists():
        return []
    torn = []
    out = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:  # includes UnicodeDecodeError: a write cut inside a character
            torn.append(number)
            continue
        out.append(_parse_judgment(rec, f"{path} line {number}", manifest_hash, item_ids))
    if torn:
        warnings.warn(f"ignored incomplete line(s) {torn} of {path}: a write was interrupted "
                      "(crash or kill); every complete judgment is intact",
                      TornLineWarning, stacklevel=3)
    return out
