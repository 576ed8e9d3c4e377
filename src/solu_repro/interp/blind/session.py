"""A blind session: a directory holding the manifest (the unblinding key) and the judgments.

* ``manifest.json``: the sampled items (opaque id -> model, layer, neuron) and the settings.
  It is the unblinding key: evaluators should not open it before they are done.
* ``judgments.jsonl`` (``store``): append-only, one line per judgment. A later judgment of an
  item by the same evaluator supersedes an earlier one, so re-judging is just appending.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...atomic import write_json
from ..harvest import HOOKS
from .defaults import DEFAULT_HOOK, DEFAULT_N_EXAMPLES, DEFAULT_N_PER_MODEL, DEFAULT_SEED
from .errors import BlindError
from .protocol import INSTRUCTION, JUDGMENTS
from .sampling import BlindItem, ModelShape, model_source, sample_items
from .store import JUDGMENTS_NAME, Judgment, append_line, read_judgments

MANIFEST_NAME = "manifest.json"
FORMAT = "solu-repro-blind"
FORMAT_VERSION = 1


def now() -> str:
    """The current UTC time, to the second, as ISO 8601 (what every record carries)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_evaluator() -> str:
    """The login name, as a default evaluator name."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "evaluator"


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """Short hash of a manifest's settings and items; every judgment line carries it."""
    key = json.dumps({"settings": manifest["settings"], "items": manifest["items"]},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _settings(entries: Mapping[str, Any], n_per_model: int, seed: int,
              layers: Sequence[int] | None, hook: str, n_examples: int,
              meta: Mapping[str, Any] | None) -> dict[str, Any]:
    for name, value, low in (("n_per_model", n_per_model, 1), ("n_examples", n_examples, 1),
                             ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise BlindError(f"{name} must be an integer >= {low}, got {value!r}")
    if hook not in HOOKS:
        raise BlindError(f"hook must be 'mid' (what the paper interprets) or 'post', got {hook!r}")
    if not entries:
        raise BlindError("no models given: a blind comparison needs at least one model "
                         "(the paper compares a SoLU model with its baseline)")
    settings = {
        "models": list(entries), "n_per_model": n_per_model, "seed": seed,
        "layers": None if layers is None else sorted({int(l) for l in layers}),
        "hook": hook, "n_examples": n_examples, "meta": dict(meta or {}),
        "sources": {name: model_source(name, e) for name, e in entries.items()},
    }
    return json.loads(json.dumps(settings))  # tuples -> lists, so it compares with a reload


def refuse_orphan_judgments(path: Path) -> None:
    """Refuse to start a session where judgments lie without the manifest that decodes them."""
    if (path / JUDGMENTS_NAME).exists() and not (path / MANIFEST_NAME).exists():
        raise BlindError(f"{path} has a {JUDGMENTS_NAME} but no {MANIFEST_NAME}: the key to "
                         "those judgments is lost. Restore the manifest, or pick another path")


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"key: session has X, asked for Y; ..."`` for each key whose value differs."""
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: session has {old.get(k)!r}, asked for {new.get(k)!r}"
                     for k in keys if old.get(k) != new.get(k))


class BlindSession:
    """A blinded evaluation in a directory: the manifest and the append-only judgments.

    Use ``BlindSession.create`` to start (or idempotently reopen) and ``BlindSession.open``
    to resume.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        self.settings: dict[str, Any] = manifest["settings"]
        self.items = [BlindItem(d["item"], d["model"], int(d["layer"]), int(d["neuron"]))
                      for d in manifest["items"]]
        self._by_id = {it.item: it for it in self.items}
        self.manifest_hash = manifest_hash(manifest)
        self._judgments = read_judgments(self.judgments_path, self.manifest_hash, self._by_id)

    # --- files ----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME

    @property
    def judgments_path(self) -> Path:
        return self.path / JUDGMENTS_NAME

    @property
    def models(self) -> list[str]:
        return list(self.settings["models"])

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.settings.get("meta") or {})

    def __repr__(self) -> str:
        return (f"BlindSession({str(self.path)!r}: {len(self.items)} items, "
                f"{len(self._judgments)} judgments by {len(self.evaluators())} evaluator(s))")

    @classmethod
    def create(cls, path: str | os.PathLike, entries: Mapping[str, Any],
               n_per_model: int = DEFAULT_N_PER_MODEL, seed: int = DEFAULT_SEED,
               layers: Sequence[int] | None = None, hook: str = DEFAULT_HOOK,
               n_examples: int = DEFAULT_N_EXAMPLES,
               meta: Mapping[str, Any] | None = None) -> "BlindSession":
        """Sample the neurons and write the manifest; reopen it if it already exists as asked.

        Args:
            path: Session directory (created if missing).
            entries: Model name -> ``BlindModel``, ``(model, corpus, harvest)``, a ``Harvest``
                or a ``ModelShape``: only the shape is needed here.
            n_per_model: Neurons per model (paper §6.1: 60).
            seed: Seed of the draw and of the shuffle.
            layers: Restrict the draw to these layers (default: all layers).
            hook: Which activation is shown: "mid" (paper) or "post" (after SoLU's LN).
            n_examples: Top dataset examples per neuron (paper: "typically 20").
            meta: Extra settings stored with the session (e.g. the zoo scale).

        Raises:
            BlindError: Bad settings, too few neurons, or a session already at ``path`` with
                different settings.
        """
        path = Path(path)
        settings = _settings(entries, n_per_model, seed, layers, hook, n_examples, meta)
        if (path / MANIFEST_NAME).exists():
            existing = cls.open(path)
            if existing.settings != settings:
                raise BlindError(
                    f"a different blind session already exists at {path} "
                    f"({describe_differences(existing.settings, settings)}): pick another "
                    "path for a new session, or resume this one with BlindSession.open "
                    "(`solu-repro blind --session DIR` without the changed options)")
            return existing
        refuse_orphan_judgments(path)
        shapes = {name: ModelShape(s["n_layers"], s["d_mlp"])
                  for name, s in settings["sources"].items()}
        items = sample_items(shapes, n_per_model, seed, settings["layers"])
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "created": now(),
                    "instruction": INSTRUCTION, "settings": settings,
                    "items": [asdict(it) for it in items]}
        write_json(path / MANIFEST_NAME, manifest)
        return cls(path, manifest)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "BlindSession":
        """Resume the session at ``path`` (judgments already made are read back).

        Raises:
            BlindError: No session there, or its manifest is damaged or from another tool.
        """
        manifest_path = Path(path) / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BlindError(f"no blind session at {path} (no {MANIFEST_NAME}): create one "
                             "with BlindSession.create or `solu-repro blind --session DIR`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (ValueError, OSError) as exc:
            raise BlindError(f"{manifest_path} does not parse ({exc}); it is the only key to the "
                             "judgments: restore it from a backup, or start a new session at "
                             "another path") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BlindError(f"{manifest_path} is not a blind-session manifest: pick another "
                             "session directory")
        if manifest.get("version") != FORMAT_VERSION:
            raise BlindError(f"{manifest_path} has format version {manifest.get('version')}, "
                             f"this code reads {FORMAT_VERSION}")
        try:
            return cls(path, manifest)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BlindError):
                raise
            raise BlindError(f"{manifest_path} is damaged ({exc!r}): restore it from a "
                             "backup, or start a new session at another path") from None

    def reload(self) -> None:
        """Re-read the judgments file (e.g. to see another evaluator's process's judgments)."""
        self._judgments = read_judgments(self.judgments_path, self.manifest_hash, self._by_id)

    # --- judgments ----------------------------------------------------------------------------
    @property
    def judgments(self) -> list[Judgment]:
        """Every judgment in file order, superseded ones included."""
        return list(self._judgments)

    def item(self, item_id: str) -> BlindItem:
        if item_id not in self._by_id:
            raise BlindError(f"no item {item_id!r} in this session (items are "
                             f"{self.items[0].item}..{self.items[-1].item})")
        return self._by_id[item_id]

    def evaluators(self) -> list[str]:
        """Evaluators in order of their first judgment."""
        return list(dict.fromkeys(j.evaluator for j in self._judgments))

    def latest(self, evaluator: str | None = None) -> dict[tuple[str, str], Judgment]:
        """``(evaluator, item) -> judgment``, each the latest (re-judging supersedes)."""
        out: dict[tuple[str, str], Judgment] = {}
        for j in self._judgments:
            if evaluator is None or j.evaluator == evaluator:
                out[(j.evaluator, j.item)] = j
        return out

    def judged(self, evaluator: str) -> dict[str, Judgment]:
        """``item -> latest judgment`` by ``evaluator``."""
        return {item: j for (_, item), j in self.latest(evaluator).items()}

    def next_item(self, evaluator: str) -> BlindItem | None:
        """The first item ``evaluator`` has not judged (skips count as judged), or None."""
        done = self.judged(evaluator)
        return next((it for it in self.items if it.item not in done), None)

    def progress(self, evaluator: str) -> tuple[int, int]:
        """``(items judged by evaluator, items in the session)``."""
        return len(self.judged(evaluator)), len(self.items)

    def record(self, item: str | BlindItem, judgment: str, evaluator: str,
               hypothesis: str = "", seconds: float | None = None) -> Judgment:
        """Append one judgment durably (fsynced before this returns).

        Args:
            item: Item id (or the item).
            judgment: "interpretable", "not_interpretable" or "skip".
            evaluator: Who judged (several evaluators can share a session).
            hypothesis: Optional free text: the rule or category the evaluator saw.
            seconds: Optional time spent on the item.
        """
        item_id = item.item if isinstance(item, BlindItem) else item
        self.item(item_id)
        if judgment not in JUDGMENTS:
            raise BlindError(f"judgment must be one of {JUDGMENTS}, got {judgment!r}")
        evaluator = (evaluator or "").strip()
        if not evaluator:
            raise BlindError("an evaluator name is required (judgments of several evaluators "
                             "are kept apart)")
        j = Judgment(item_id, judgment, evaluator, (hypothesis or "").strip(), now(),
                     None if seconds is None else round(float(seconds), 1))
        record = {**asdict(j), "manifest": self.manifest_hash}
        if record["seconds"] is None:
            del record["seconds"]
        append_line(self.judgments_path, record)
        self._judgments.append(j)
        return j
