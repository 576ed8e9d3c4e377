"""The paper's blinded human evaluation (§6.1), as a resumable, crash-safe tool.

Protocol (§6.1): neurons are drawn at random from a SoLU model and its baseline, shuffled
together and shown without saying which model they come from. For each, the evaluator looks
at the top dataset examples (about 20 snippets, firing tokens highlighted by activation) for
1-2 minutes and marks it INTERPRETABLE if 80% or more of the strongest firings can be
explained by a single rule or category, NOT INTERPRETABLE otherwise. Only after all neurons
are judged is the data unblinded (§6.2: ~35% baseline vs ~60% SoLU).

A session is a directory:

* ``manifest.json``: the sampled items (opaque id -> model, layer, neuron) and the settings.
  It is the unblinding key: evaluators should not open it before they are done.
* ``judgments.jsonl``: append-only, one line per judgment, each line written with a single
  write + flush + fsync. A crash loses at most the judgment being written; a torn last line
  is ignored with a warning. A later judgment of an item by the same evaluator supersedes an
  earlier one, so re-judging is just appending.

Session logic needs only each model's shape (layers x neurons); rendering snippets needs the
model, its corpus and its harvest (``SnippetRenderer``). ``load_zoo_entries`` loads trained
zoo models for the command line (``solu-repro blind``); tests build sessions in memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import fcntl
import functools
import getpass
import hashlib
import html
import itertools
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from ..atomic import write_json
from .stats import Proportion, agreement, cohen_kappa, difference_interval, proportion

if TYPE_CHECKING:
    from .harvest import Harvest

# paper §6.1, quoted verbatim (including its mismatched quotation marks).
PAPER_INSTRUCTION = ("80% or more of the strongest firings can be explained by a single rule or "
                     "category (e.g. the word “apple,\" or any phrase relating to music)")
INSTRUCTION = (f"Mark INTERPRETABLE if “{PAPER_INSTRUCTION},” and NOT INTERPRETABLE "
               "otherwise.")
TIME_HINT = "The paper's evaluators spent 1-2 minutes per neuron (§6.1)."

JUDGMENTS = ("interpretable", "not_interpretable", "skip")
BUTTON_LABELS = {"interpretable": "Interpretable", "not_interpretable": "Not interpretable",
                 "skip": "Skip"}
MANIFEST_NAME = "manifest.json"
JUDGMENTS_NAME = "judgments.jsonl"
FORMAT = "solu-repro-blind"
FORMAT_VERSION = 1
DEFAULT_MODELS = ("1L-gelu", "1L-solu_ln")  # the paper's comparison at its smallest size
DEFAULT_SCALE = "cpu"
# Harvest metadata copied into the manifest so a resumed session can tell when a model was
# retrained or re-harvested under it (its neurons would then be different neurons).
_FINGERPRINT_KEYS = ("run_dir", "data_hash", "n_ctx", "n_tokens", "k", "rows", "seed")


class BlindError(ValueError):
    """A blind session is missing, corrupt, or used inconsistently; the message says the fix."""


class TornLineWarning(UserWarning):
    """The judgments file has an incomplete line: a write was interrupted (crash or kill)."""


# --- what is being judged ---------------------------------------------------------------------

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


def _model_source(name: str, entry: Any) -> dict[str, Any]:
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


# --- judgments file -------------------------------------------------------------------------

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


def _append_line(path: Path, record: dict[str, Any]) -> None:
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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_evaluator() -> str:
    """The login name, as a default evaluator name."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "evaluator"


# --- the session ----------------------------------------------------------------------------

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
    if hook not in ("mid", "post"):
        raise BlindError(f"hook must be 'mid' (what the paper interprets) or 'post', got {hook!r}")
    if not entries:
        raise BlindError("no models given: a blind comparison needs at least one model "
                         "(the paper compares a SoLU model with its baseline)")
    settings = {
        "models": list(entries), "n_per_model": n_per_model, "seed": seed,
        "layers": None if layers is None else sorted({int(l) for l in layers}),
        "hook": hook, "n_examples": n_examples, "meta": dict(meta or {}),
        "sources": {name: _model_source(name, e) for name, e in entries.items()},
    }
    return json.loads(json.dumps(settings))  # tuples -> lists, so it compares with a reload


def _refuse_orphan_judgments(path: Path) -> None:
    if (path / JUDGMENTS_NAME).exists() and not (path / MANIFEST_NAME).exists():
        raise BlindError(f"{path} has a {JUDGMENTS_NAME} but no {MANIFEST_NAME}: the key to "
                         "those judgments is lost. Restore the manifest, or pick another path")


def _describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
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
    def create(cls, path: str | os.PathLike, entries: Mapping[str, Any], n_per_model: int = 60,
               seed: int = 0, layers: Sequence[int] | None = None, hook: str = "mid",
               n_examples: int = 20, meta: Mapping[str, Any] | None = None) -> "BlindSession":
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
                    f"({_describe_differences(existing.settings, settings)}): pick another "
                    "path for a new session, or resume this one with BlindSession.open "
                    "(`solu-repro blind --session DIR` without the changed options)")
            return existing
        _refuse_orphan_judgments(path)
        shapes = {name: ModelShape(s["n_layers"], s["d_mlp"])
                  for name, s in settings["sources"].items()}
        items = sample_items(shapes, n_per_model, seed, settings["layers"])
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "created": _now(),
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
        j = Judgment(item_id, judgment, evaluator, (hypothesis or "").strip(), _now(),
                     None if seconds is None else round(float(seconds), 1))
        record = {**asdict(j), "manifest": self.manifest_hash}
        if record["seconds"] is None:
            del record["seconds"]
        _append_line(self.judgments_path, record)
        self._judgments.append(j)
        return j


# --- unblinding -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelResult:
    """One model's judgments: ``fraction_interpretable`` with its Wilson interval."""

    model: str
    n_items: int
    n_interpretable: int
    n_not_interpretable: int
    n_skipped: int
    n_pending: int
    fraction_interpretable: Proportion

    @property
    def n_judged(self) -> int:
        """Judgments in the denominator (skips excluded)."""
        return self.n_interpretable + self.n_not_interpretable

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_judged": self.n_judged}


@dataclass(frozen=True)
class ModelDifference:
    """``fraction(model_a) - fraction(model_b)`` with Newcombe's hybrid score interval."""

    model_a: str
    model_b: str
    diff: float
    lo: float
    hi: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RaterAgreement:
    """Two evaluators on the items both judged (skips excluded)."""

    evaluator_a: str
    evaluator_b: str
    n_items: int
    agreement: float
    kappa: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BlindReport:
    """Unblinded results: per model, pairwise differences, per evaluator, agreement.

    ``models`` pools every evaluator's latest judgments. With several evaluators judging the
    same neurons those are not independent, so the pooled intervals are too narrow; the
    per-evaluator results have honest intervals.
    """

    session: str
    confidence: float
    evaluators: list[str]
    models: list[ModelResult]
    differences: list[ModelDifference]
    per_evaluator: dict[str, list[ModelResult]] = field(default_factory=dict)
    per_evaluator_differences: dict[str, list[ModelDifference]] = field(default_factory=dict)
    agreement: list[RaterAgreement] = field(default_factory=list)

    def model(self, name: str, evaluator: str | None = None) -> ModelResult:
        rows = self.models if evaluator is None else self.per_evaluator[evaluator]
        return next(r for r in rows if r.model == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (undefined values, e.g. a fraction of 0 judged, are None)."""
        return _nan_to_none({
            "session": self.session, "confidence": self.confidence,
            "evaluators": self.evaluators,
            "models": [r.to_dict() for r in self.models],
            "differences": [d.to_dict() for d in self.differences],
            "per_evaluator": {e: [r.to_dict() for r in rows]
                              for e, rows in self.per_evaluator.items()},
            "per_evaluator_differences": {e: [d.to_dict() for d in rows]
                                          for e, rows in self.per_evaluator_differences.items()},
            "agreement": [a.to_dict() for a in self.agreement],
        })

    def to_markdown(self) -> str:
        pct = f"{self.confidence:.0%}"
        who = ", ".join(self.evaluators) or "nobody yet"
        lines = ["## Blinded evaluation (paper §6.1): fraction of neurons interpretable", "",
                 f"Session `{self.session}`; evaluators: {who}. {pct} intervals: Wilson "
                 "score for fractions, Newcombe hybrid score for differences. Skips are "
                 "excluded from the denominators.", ""]
        lines += _results_table(self.models, pct) + [""]
        lines += _differences_table(self.differences, pct)
        if len(self.evaluators) > 1:
            lines += ["", "Pooled over evaluators: judgments of the same neuron by different "
                      "evaluators are not independent, so the pooled intervals are too "
                      "narrow; the per-evaluator tables below are the honest ones.", ""]
            for evaluator in self.evaluators:
                lines += [f"### Evaluator {evaluator}", ""]
                lines += _results_table(self.per_evaluator[evaluator], pct) + [""]
                lines += _differences_table(self.per_evaluator_differences[evaluator], pct)
                lines += [""]
            lines += _agreement_table(self.agreement)
        return "\n".join(lines).rstrip() + "\n"


def _nan_to_none(obj: Any) -> Any:
    # Strict JSON has no NaN; the book reads these numbers with json.
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.1%}"


def _results_table(rows: list[ModelResult], pct: str) -> list[str]:
    out = [f"| model | judged | interpretable | fraction | {pct} CI | skipped | pending |",
           "|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        p = r.fraction_interpretable
        out.append(f"| {r.model} | {r.n_judged} | {r.n_interpretable} | {_pct(p.fraction)} | "
                   f"{_pct(p.lo)} – {_pct(p.hi)} | {r.n_skipped} | {r.n_pending} |")
    return out


def _differences_table(rows: list[ModelDifference], pct: str) -> list[str]:
    if not rows:
        return []
    out = [f"| comparison | difference | {pct} CI |", "|---|---:|---|"]
    for d in rows:
        diff = "n/a" if d.diff != d.diff else f"{d.diff * 100:+.1f} pp"
        out.append(f"| {d.model_a} − {d.model_b} | {diff} | "
                   f"{d.lo * 100:+.1f} to {d.hi * 100:+.1f} pp |")
    return out


def _agreement_table(rows: list[RaterAgreement]) -> list[str]:
    if not rows:
        return []
    out = ["### Agreement between evaluators", "",
           "| evaluators | items both judged | agreement | Cohen's kappa |", "|---|---:|---:|---:|"]
    for a in rows:
        kappa = "n/a" if a.kappa != a.kappa else f"{a.kappa:.2f}"
        out.append(f"| {a.evaluator_a} / {a.evaluator_b} | {a.n_items} | "
                   f"{_pct(a.agreement)} | {kappa} |")
    return out


def _model_results(session: BlindSession, judgments: Iterable[Judgment], n_evaluators: int,
                   confidence: float) -> list[ModelResult]:
    counts = {m: {j: 0 for j in JUDGMENTS} for m in session.models}
    for j in judgments:
        counts[session.item(j.item).model][j.judgment] += 1
    n_items = {m: sum(it.model == m for it in session.items) for m in session.models}
    out = []
    for m, c in counts.items():
        yes, no, skip = c["interpretable"], c["not_interpretable"], c["skip"]
        pending = n_items[m] * max(n_evaluators, 1) - (yes + no + skip)
        out.append(ModelResult(m, n_items[m], yes, no, skip, pending,
                               proportion(yes, yes + no, confidence)))
    return out


def _differences(results: list[ModelResult], confidence: float) -> list[ModelDifference]:
    # Later model minus earlier: with the baseline listed first (as in `--models 1L-gelu
    # 1L-solu_ln`) this is SoLU minus baseline, the paper's ~+25 points (§6.2).
    out = []
    for a, b in itertools.combinations(results, 2):
        d, lo, hi = difference_interval(b.n_interpretable, b.n_judged, a.n_interpretable,
                                        a.n_judged, confidence)
        out.append(ModelDifference(b.model, a.model, d, lo, hi))
    return out


def _rater_agreement(session: BlindSession, evaluators: list[str]) -> list[RaterAgreement]:
    out = []
    for ea, eb in itertools.combinations(evaluators, 2):
        ja, jb = session.judged(ea), session.judged(eb)
        common = [i for i in ja if i in jb and ja[i].interpretable is not None
                  and jb[i].interpretable is not None]
        a = [ja[i].interpretable for i in common]
        b = [jb[i].interpretable for i in common]
        if common:
            out.append(RaterAgreement(ea, eb, len(common), agreement(a, b), cohen_kappa(a, b)))
        else:
            out.append(RaterAgreement(ea, eb, 0, float("nan"), float("nan")))
    return out


def unblind(session: BlindSession, confidence: float = 0.95,
            by_evaluator: bool = True) -> BlindReport:
    """Reveal which model each judged neuron came from and compare the models (paper §6.2).

    Each evaluator's latest judgment of each item counts once; skips are left out of the
    denominators and reported.

    Args:
        session: The session to unblind (its judgments file is re-read first).
        confidence: Coverage of the intervals.
        by_evaluator: Also report each evaluator separately, and their agreement.
    """
    session.reload()
    evaluators = session.evaluators()
    latest = list(session.latest().values())
    models = _model_results(session, latest, len(evaluators), confidence)
    report = BlindReport(str(session.path), confidence, evaluators, models,
                         _differences(models, confidence))
    if by_evaluator:
        for e in evaluators:
            rows = _model_results(session, session.judged(e).values(), 1, confidence)
            report.per_evaluator[e] = rows
            report.per_evaluator_differences[e] = _differences(rows, confidence)
        report.agreement = _rater_agreement(session, evaluators)
    return report


def judgments_by_neuron(session: BlindSession,
                        evaluator: str | None = None) -> dict[tuple[str, int, int], bool]:
    """``(model, layer, neuron) -> interpretable?`` for comparing humans to an automated scorer.

    Each evaluator's latest non-skip judgment is one vote; the majority decides. Neurons with
    no vote, or a tied vote, are left out.

    Args:
        session: The session.
        evaluator: Use only this evaluator's judgments (default: all).
    """
    votes: dict[str, list[bool]] = {}
    for j in session.latest(evaluator).values():
        if j.interpretable is not None:
            votes.setdefault(j.item, []).append(j.interpretable)
    out = {}
    for item_id, v in votes.items():
        yes = sum(v)
        if 2 * yes != len(v):
            out[session.item(item_id).key] = 2 * yes > len(v)
    return out


# --- rendering ------------------------------------------------------------------------------

class Renderer(Protocol):
    """Shows one item's dataset examples; must never reveal the model, layer or neuron."""

    def html(self, item: BlindItem) -> str: ...

    def text(self, item: BlindItem) -> str: ...


def relative_snippets(snippets: Sequence[Any]) -> list[Any]:
    """The snippets with activations divided by their strongest firing (which becomes 1).

    Blinding: ``snippets_html`` shows exact activations on hover, and their absolute scale
    differs between GELU and SoLU models, so shown raw they would hint at the model.
    """
    peak = max((max([s.value, *s.activations]) for s in snippets), default=0.0)
    if not (peak > 0 and np.isfinite(peak)):
        peak = 1.0
    return [dataclasses.replace(s, value=s.value / peak,
                                activations=[a / peak for a in s.activations])
            for s in snippets]


class SnippetRenderer:
    """Figure-3-style dataset examples of a session's items, via ``solu_repro.interp.view``.

    Shown without the model name, layer or neuron, and with activations relative to the
    neuron's strongest shown firing (see ``relative_snippets``): nothing on screen says which
    model a neuron comes from (§6.1: "randomized and blinded").
    """

    def __init__(self, session: BlindSession, entries: Mapping[str, Any], left: int = 32,
                 right: int = 8, color: bool = False):
        self.session = session
        self.entries = {name: as_blind_model(name, e) for name, e in entries.items()}
        self.left, self.right, self.color = left, right, color
        self._check_entries()
        self._cache: dict[str, list[Any]] = {}

    def _check_entries(self) -> None:
        missing = [m for m in self.session.models if m not in self.entries]
        if missing:
            raise BlindError(f"the session needs models {missing} to show its neurons; pass "
                             f"them to SnippetRenderer (have {sorted(self.entries)})")
        for name in self.session.models:
            expected = self.session.settings["sources"][name]
            got = _model_source(name, self.entries[name])
            if got != expected:
                raise BlindError(
                    f"model {name!r} is not the one this session sampled from "
                    f"({_describe_differences(expected, got)}): it was retrained or "
                    "re-harvested since. Use the original, or start a new session")

    def snippets(self, item: BlindItem) -> list[Any]:
        """The item's top dataset examples, relative scale (the last item's are cached)."""
        if item.item not in self._cache:
            from . import view

            m = self.entries[item.model]
            hook, n = self.session.settings["hook"], self.session.settings["n_examples"]
            examples = m.harvest.top_examples(item.layer, item.neuron, hook, n)
            snippets = view.neuron_snippets(m.model, m.corpus, m.harvest, item.layer,
                                            item.neuron, examples, hook=hook, left=self.left,
                                            right=self.right)
            self._cache = {item.item: relative_snippets(snippets)}
        return self._cache[item.item]

    def html(self, item: BlindItem) -> str:
        from . import view

        snippets = self.snippets(item)
        if not snippets:
            return "<p><i>This neuron has no recorded firings.</i></p>"
        return view.snippets_html(snippets, max_value=1.0, title=item.item)

    def text(self, item: BlindItem) -> str:
        from . import view

        snippets = self.snippets(item)
        if not snippets:
            return "(this neuron has no recorded firings)"
        return view.snippets_text(snippets, max_value=1.0, color=self.color)


# --- notebook app ---------------------------------------------------------------------------

class BlindApp:
    """An ipywidgets app for judging a session: display ``app.widget`` (or ``app``).

    Every click appends to the judgments file at once (fsynced) and moves on, so closing the
    notebook loses nothing. Unblinding is offered only once this evaluator has judged every
    item, so nobody sees results mid-way (§6.1: blinded).
    """

    def __init__(self, session: BlindSession, renderer: Renderer, evaluator: str | None = None):
        import ipywidgets as w

        self.session, self.renderer = session, renderer
        self.current: BlindItem | None = None
        self._shown_at = time.monotonic()
        self.evaluator_box = w.Text(value=evaluator or default_evaluator(),
                                    description="Evaluator", continuous_update=False)
        self.progress = w.HTML()
        self.instruction = w.HTML(
            f"<p><b>{html.escape(INSTRUCTION)}</b><br><i>{html.escape(TIME_HINT)}</i></p>")
        self.snippets = w.HTML()
        self.hypothesis = w.Text(placeholder="optional: the rule or category you see",
                                 description="Hypothesis", layout=w.Layout(width="80%"))
        self.buttons = {j: w.Button(description=BUTTON_LABELS[j],
                                    button_style={"interpretable": "success",
                                                  "not_interpretable": "danger"}.get(j, ""))
                        for j in JUDGMENTS}
        self.message = w.HTML()
        self.unblind_button = w.Button(description="Unblind results", button_style="warning")
        self.report = w.HTML()
        self.judging = w.VBox([self.instruction, self.snippets, self.hypothesis,
                               w.HBox(list(self.buttons.values()))])
        self.finished = w.VBox([w.HTML("<p><b>All neurons judged.</b> Thank you.</p>"),
                                self.unblind_button, self.report])
        self.widget = w.VBox([w.HBox([self.evaluator_box, self.progress]), self.message,
                              self.judging, self.finished])
        for judgment, button in self.buttons.items():
            button.on_click(functools.partial(self._on_click, judgment))
        self.unblind_button.on_click(self._on_unblind)
        self.evaluator_box.observe(lambda _change: self.show_next(), names="value")
        self.show_next()

    @property
    def evaluator(self) -> str:
        return self.evaluator_box.value.strip()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def show_next(self) -> None:
        """Show this evaluator's first unjudged item, or the final screen."""
        self.message.value = ""
        if not self.evaluator:
            self.message.value = "<p style='color:#b00'>Enter your name as evaluator.</p>"
            return
        done, total = self.session.progress(self.evaluator)
        self.progress.value = f"<b>{done} / {total}</b> judged"
        self.current = self.session.next_item(self.evaluator)
        self.judging.layout.display = None if self.current else "none"
        self.finished.layout.display = "none" if self.current else None
        if self.current is None:
            return
        try:
            self.snippets.value = self.renderer.html(self.current)
        except Exception as exc:  # show it in the app rather than kill the widget callback
            self.snippets.value = f"<pre>could not render: {html.escape(repr(exc))}</pre>"
        self.hypothesis.value = ""
        self._shown_at = time.monotonic()

    def judge(self, judgment: str) -> Judgment | None:
        """Record ``judgment`` for the current item and advance (what the buttons do)."""
        if self.current is None or not self.evaluator:
            self.show_next()
            return None
        j = self.session.record(self.current, judgment, self.evaluator, self.hypothesis.value,
                                seconds=time.monotonic() - self._shown_at)
        self.show_next()
        return j

    def _on_click(self, judgment: str, _button: Any) -> None:
        self.judge(judgment)

    def _on_unblind(self, _button: Any) -> None:
        report = unblind(self.session)
        self.report.value = f"<pre>{html.escape(report.to_markdown())}</pre>"


# --- command line ---------------------------------------------------------------------------

PROMPT = "[i]nterpretable / [n]ot / [s]kip / [q]uit (optionally followed by a hypothesis): "
HYPOTHESIS_PROMPT = "hypothesis (optional, Enter for none): "
SEPARATOR = "\n" * 3 + "=" * 78
_ANSWERS = {"i": "interpretable", "interpretable": "interpretable",
            "n": "not_interpretable", "not": "not_interpretable",
            "not_interpretable": "not_interpretable", "s": "skip", "skip": "skip",
            "q": "quit", "quit": "quit", "exit": "quit"}


def add_blind_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``solu-repro blind`` (wired up in ``solu_repro.cli``)."""
    from .. import zoo

    parser.add_argument("--session", type=Path, required=True, metavar="DIR",
                        help="session directory: created if new, resumed if it exists")
    parser.add_argument("--scale", choices=sorted(zoo.SCALES), default=None,
                        help=f"zoo scale of the models (new sessions; default {DEFAULT_SCALE})")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="zoo models to compare (new sessions; default: "
                             f"{' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--n", type=int, default=None,
                        help="neurons per model (new sessions; default 60, as in the paper)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the draw and the order (new sessions; default 0)")
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="draw only from these layers (new sessions; default all)")
    parser.add_argument("--hook", choices=("mid", "post"), default=None,
                        help="activation shown: mid (paper, before SoLU's LN) or post")
    parser.add_argument("--n-examples", type=int, default=None,
                        help="dataset examples per neuron (new sessions; default 20)")
    parser.add_argument("--evaluator", default=None,
                        help="your name (default: login name); judgments are kept per evaluator")
    parser.add_argument("--unblind", action="store_true",
                        help="print the unblinded results instead of judging")
    parser.add_argument("--color", action=argparse.BooleanOptionalAction, default=None,
                        help="colour firing tokens in the terminal (default: if a terminal)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="trained runs (default: $SOLU_RUNS_DIR or ./runs)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="corpus cache (default: $SOLU_DATA_DIR or ./data)")


def load_zoo_entries(names: Sequence[str], scale: str, runs_dir: str | Path | None = None,
                     data_dir: str | Path | None = None, k: int = 20,
                     progress: bool = True) -> dict[str, BlindModel]:
    """Trained zoo models with their corpus and (cached) harvest, ready to render.

    Trains a missing model first (``zoo.ensure_trained``) and harvests it once per run.
    """
    from .. import zoo
    from .harvest import harvest_run

    out = {}
    for name in names:
        run = zoo.ensure_trained(name, scale, runs_dir, progress=progress, data_dir=data_dir)
        harvest = harvest_run(run, k=k, progress=progress, data_dir=data_dir)
        out[name] = BlindModel(run.load_model(), run.corpus(data_dir), harvest)
    return out


def _check_zoo_names(names: Sequence[str], scale: str) -> None:
    from .. import zoo

    known = zoo.zoo_configs(scale)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BlindError(f"unknown model(s) {unknown} at scale {scale!r}: choose from "
                         f"{sorted(known)}")
    if len(set(names)) != len(names):
        raise BlindError(f"--models lists a model twice: {list(names)}")


def _check_resume_options(session: BlindSession, args: argparse.Namespace) -> None:
    """Options given when resuming must agree with the session (they cannot change it)."""
    s = session.settings
    given = {"--models": (None if args.models is None else list(args.models), s["models"]),
             "--n": (args.n, s["n_per_model"]), "--seed": (args.seed, s["seed"]),
             "--layers": (None if args.layers is None else sorted(set(args.layers)), s["layers"]),
             "--hook": (args.hook, s["hook"]), "--n-examples": (args.n_examples, s["n_examples"])}
    if "scale" in session.meta:  # sessions made from Python may not record a zoo scale
        given["--scale"] = (args.scale, session.meta["scale"])
    for option, (asked, has) in given.items():
        if asked is not None and asked != has:
            raise BlindError(
                f"session {session.path} was created with {option} {has}, not {asked}: "
                "drop the option to resume it, or pick another --session to start anew")


def _ask(input_fn: Callable[[str], str], print_fn: Callable[..., Any]) -> tuple[str, str | None]:
    """``(judgment or "quit", inline hypothesis or None)``; end of input means quit."""
    while True:
        try:
            raw = input_fn(PROMPT)
        except EOFError:
            return "quit", None
        parts = raw.strip().split(maxsplit=1)
        answer = _ANSWERS.get(parts[0].lower().rstrip(":")) if parts else None
        if answer is not None:
            return answer, parts[1].strip() if len(parts) > 1 else None
        print_fn("please answer i, n, s or q")


def judge_loop(session: BlindSession, renderer: Renderer, evaluator: str,
               input_fn: Callable[[str], str] = input,
               print_fn: Callable[..., Any] = print) -> int:
    """Judge the evaluator's remaining items in the terminal until done or quit."""
    while (item := session.next_item(evaluator)) is not None:
        done, total = session.progress(evaluator)
        print_fn(SEPARATOR)
        print_fn(f"{done} / {total} judged   (evaluator {evaluator}, {item.item})")
        print_fn(f"{INSTRUCTION}\n{TIME_HINT}\n")
        print_fn(renderer.text(item))
        shown_at = time.monotonic()
        try:
            answer, hypothesis = _ask(input_fn, print_fn)
            if hypothesis is None and answer not in ("skip", "quit"):
                try:
                    hypothesis = input_fn(HYPOTHESIS_PROMPT)
                except EOFError:
                    hypothesis = ""
        except KeyboardInterrupt:
            print_fn(f"\ninterrupted; {done} judgment(s) are saved in {session.judgments_path}; "
                     "run the same command to resume")
            return 130
        if answer == "quit":
            print_fn(f"saved {done} judgment(s) in {session.judgments_path}; run the same "
                     "command to resume")
            return 0
        session.record(item, answer, evaluator, hypothesis or "",
                       seconds=time.monotonic() - shown_at)
    _print_done(session, evaluator, print_fn)
    return 0


def _print_done(session: BlindSession, evaluator: str, print_fn: Callable[..., Any]) -> None:
    print_fn(f"all {len(session.items)} neurons judged by {evaluator}. See the results with "
             f"`solu-repro blind --session {session.path} --unblind`.")


def run_blind_cli(args: argparse.Namespace, input_fn: Callable[[str], str] = input,
                  print_fn: Callable[..., Any] = print,
                  load_entries: Callable[..., Mapping[str, Any]] | None = None) -> int:
    """``solu-repro blind``: create or resume a session and judge in the terminal, or unblind.

    Args:
        args: Parsed options (see ``add_blind_arguments``).
        input_fn: Reads one answer (``input``; tests pass a scripted one).
        print_fn: Prints one block of output.
        load_entries: ``(names, scale, runs_dir, data_dir, k) -> {name: BlindModel}``
            (default ``load_zoo_entries``).

    Returns:
        The exit status.
    """
    load_entries = load_entries or load_zoo_entries
    path = Path(args.session)
    if args.unblind:
        print_fn(unblind(BlindSession.open(path)).to_markdown())
        return 0
    evaluator = (args.evaluator or default_evaluator()).strip()
    color = args.color if args.color is not None else sys.stdout.isatty()
    if (path / MANIFEST_NAME).exists():
        session = BlindSession.open(path)
        _check_resume_options(session, args)
        if session.next_item(evaluator) is None:  # nothing left: no need to load models
            _print_done(session, evaluator, print_fn)
            return 0
        scale = session.meta.get("scale") or args.scale or DEFAULT_SCALE
        entries = load_entries(session.models, scale, args.runs_dir, args.data_dir,
                               max(20, session.settings["n_examples"]))
    else:
        scale = args.scale or DEFAULT_SCALE
        models = list(args.models or DEFAULT_MODELS)
        _check_zoo_names(models, scale)
        _refuse_orphan_judgments(path)  # before loading (perhaps training) any model
        n_examples = args.n_examples if args.n_examples is not None else 20
        entries = load_entries(models, scale, args.runs_dir, args.data_dir, max(20, n_examples))
        session = BlindSession.create(
            path, {m: entries[m] for m in models},
            n_per_model=args.n if args.n is not None else 60,
            seed=args.seed if args.seed is not None else 0, layers=args.layers,
            hook=args.hook or "mid", n_examples=n_examples, meta={"scale": scale})
    renderer = SnippetRenderer(session, entries, color=color)
    return judge_loop(session, renderer, evaluator, input_fn, print_fn)

