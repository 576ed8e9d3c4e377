"""A fixed family of simple, articulable neuron explanations, and the token features they read.

An ``Explanation`` is a predicate over corpus positions that a person could state in a
sentence: "the current token is ' the'", "the previous token is '('", "a year", "Python
source". The scorer (``score``) searches this family for the one that covers most of a
neuron's top firings, the automated stand-in for the paper's §6.1 rule.

Kinds, and the role each plays in the layer analysis (paper §6.3.2-6.3.4):

==============  ===================================================  ================
kind            holds at a position when ...                         role
==============  ===================================================  ================
``token``       the current token is one of a small set              token
``folded``      ... ignoring case and the leading space              token
``prev_token``  the previous token is one of a small set             detokenization
``bigram``      (previous, current) is one of a small set of pairs   detokenization
``next_token``  the token that follows is one of a small set         retokenization
``class``       the token is in a class (digits, all-caps, ...)      abstract
``regex``       the token is inside a match (year, URL, hex, ...)    abstract
``source``      the text comes from one corpus source                abstract
==============  ===================================================  ================
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..data import TokenSplit
from ..data.tokenizer import token_bytes

ROLES = {"token": "token", "folded": "token", "prev_token": "detokenization",
         "bigram": "detokenization", "next_token": "retokenization", "class": "abstract",
         "regex": "abstract", "source": "abstract"}
KINDS = tuple(ROLES)


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


# Token classes: predicates of the token's own text.
TOKEN_CLASSES = {
    "digits": lambda s: s.strip().isdigit() and s.strip().isascii(),
    "number": lambda s: re.fullmatch(r"\s?[-+]?(\d[\d,._]*|[\d,._]*\d)", s) is not None,
    "capitalized": lambda s: re.fullmatch(r"\s?[A-Z][a-z]+", s) is not None,
    "all_caps": lambda s: re.fullmatch(r"\s?[A-Z]{2,}", s) is not None,
    "punctuation": lambda s: bool(s.strip()) and all(_is_punct(c) for c in s.strip()),
    "whitespace": lambda s: bool(s) and s.isspace(),
    "newline": lambda s: "\n" in s,
}
CLASS_TEXT = {
    "digits": "a token of digits", "number": "part of a number",
    "capitalized": "a capitalized word", "all_caps": "an ALL-CAPS word",
    "punctuation": "punctuation", "whitespace": "whitespace", "newline": "a line break",
}

# Regex classes: the token overlaps a match in the surrounding text (multi-token patterns).
REGEX_CLASSES = {
    "year": re.compile(r"(?<!\d)(1[5-9]\d\d|20\d\d)(?!\d)"),
    "url": re.compile(r"https?://\S+|www\.\S+"),
    "hexadecimal": re.compile(r"\b0[xX][0-9a-fA-F]+\b|"
                              r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b"),
    "base64": re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[a-z])"
                         r"(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{16,}={0,2}"),
    "indentation": re.compile(r"(?m)^[ \t]+"),
}
REGEX_TEXT = {"year": "a year (1500-2099)", "url": "inside a URL",
              "hexadecimal": "inside a hexadecimal number", "base64": "inside a base64-like string",
              "indentation": "leading indentation of a line"}
REGEX_CONTEXT = 16  # tokens of text on each side used to evaluate regex classes


def show_token(text: str) -> str:
    """A token's text made visible in one line: quotes, newlines as \\n, tabs as \\t."""
    return json.dumps(text, ensure_ascii=False)


def fold(text: str) -> str:
    """Case and leading space folded: ' The' -> 'the'."""
    return text.strip().lower()


class VocabTables:
    """Per-vocabulary lookup tables: token text, folded form and token-class masks."""

    def __init__(self, tokenizer, vocab_size: int | None = None):
        size = vocab_size or tokenizer.get_vocab_size()
        # Raw bytes with replacement characters: regexes see what a reader would see.
        self.text = [token_bytes(tokenizer, i).decode("utf-8", "replace") for i in range(size)]
        folded = [fold(t) for t in self.text]
        self.folded_names = sorted(set(folded))
        index = {name: i for i, name in enumerate(self.folded_names)}
        self.folded_index = index
        self.folded_id = np.array([index[f] for f in folded], dtype=np.int64)
        self.classes = {name: np.array([bool(fn(t)) for t in self.text])
                        for name, fn in TOKEN_CLASSES.items()}

    @property
    def vocab_size(self) -> int:
        return len(self.text)


@dataclass
class PositionFeatures:
    """What explanations read at a set of positions: token ids, neighbours, source, regexes."""

    tokens: np.ndarray
    prev: np.ndarray
    next: np.ndarray
    source: np.ndarray
    regex: dict[str, np.ndarray]
    source_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def take(self, index) -> "PositionFeatures":
        return PositionFeatures(self.tokens[index], self.prev[index], self.next[index],
                                self.source[index], {k: v[index] for k, v in self.regex.items()},
                                self.source_names)

    @staticmethod
    def concat(parts: Sequence["PositionFeatures"]) -> "PositionFeatures":
        return PositionFeatures(
            np.concatenate([p.tokens for p in parts]), np.concatenate([p.prev for p in parts]),
            np.concatenate([p.next for p in parts]), np.concatenate([p.source for p in parts]),
            {k: np.concatenate([p.regex[k] for p in parts]) for k in REGEX_CLASSES},
            parts[0].source_names if parts else [])


def regex_flags(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """For a contiguous run of token texts, which tokens overlap a match of each regex class."""
    ends = np.cumsum([len(t) for t in texts])
    starts = ends - np.array([len(t) for t in texts], dtype=np.int64)
    joined = "".join(texts)
    out = {}
    for name, pattern in REGEX_CLASSES.items():
        flags = np.zeros(len(texts), dtype=bool)
        for m in pattern.finditer(joined):
            if m.end() > m.start():
                flags |= (starts < m.end()) & (ends > m.start())
        out[name] = flags
    return out


def range_features(split: TokenSplit, tables: VocabTables, start: int,
                   length: int) -> PositionFeatures:
    """Features of the contiguous positions ``start .. start+length-1`` of a split."""
    lo = max(start - REGEX_CONTEXT, 0)
    hi = min(start + length + REGEX_CONTEXT, split.n_tokens)
    window = split.window(lo, hi - lo).astype(np.int64)
    at = start - lo
    tokens = window[at:at + length]
    padded = np.concatenate([[0], window, [0]])  # EOT beyond the split's ends
    prev = padded[at:at + length]
    nxt = padded[at + 2:at + 2 + length]
    flags = regex_flags([tables.text[t] for t in window])
    return PositionFeatures(tokens, prev, nxt, split.sources_of_window(start, length),
                            {k: v[at:at + length] for k, v in flags.items()},
                            list(split.source_names))


def point_features(split: TokenSplit, tables: VocabTables,
                   positions: Sequence[int]) -> PositionFeatures:
    """Features at arbitrary positions (e.g. a neuron's top firings), each with its context."""
    parts = [range_features(split, tables, int(p), 1) for p in positions]
    if not parts:
        return PositionFeatures(*(np.zeros(0, dtype=np.int64) for _ in range(4)),
                                {k: np.zeros(0, dtype=bool) for k in REGEX_CLASSES},
                                list(split.source_names))
    return PositionFeatures.concat(parts)


@dataclass(frozen=True)
class Explanation:
    """One member of the explanation family; ``values`` depend on ``kind`` (module docstring)."""

    kind: str
    values: tuple

    @property
    def role(self) -> str:
        return ROLES[self.kind]

    def key(self) -> str:
        return json.dumps([self.kind, list(self.values)], ensure_ascii=False)

    @classmethod
    def from_key(cls, key: str) -> "Explanation":
        kind, values = json.loads(key)
        return cls(kind, tuple(tuple(v) if isinstance(v, list) else v for v in values))

    def text(self, tables: VocabTables) -> str:
        """The explanation as a sentence a reader can check against the examples."""
        def tokens(ids):
            shown = [show_token(tables.text[i]) for i in ids]
            return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)

        if self.kind == "token":
            return f"current token is {tokens(self.values)}"
        if self.kind == "folded":
            forms = ", ".join(show_token(v) if v else "(whitespace only)" for v in self.values)
            return (f"current token is {forms if len(self.values) == 1 else 'one of ' + forms} "
                    "(any case, with or without a leading space)")
        if self.kind == "prev_token":
            return f"previous token is {tokens(self.values)}"
        if self.kind == "bigram":
            pairs = [show_token(tables.text[a]) + " + " + show_token(tables.text[b])
                     for a, b in self.values]
            return "bigram " + (pairs[0] if len(pairs) == 1 else "one of " + "; ".join(pairs))
        if self.kind == "next_token":
            return f"next token is {tokens(self.values)}"
        if self.kind == "class":
            return "token is " + CLASS_TEXT[self.values[0]]
        if self.kind == "regex":
            return "token is " + REGEX_TEXT[self.values[0]]
        if self.kind == "source":
            return f"text from the {self.values[0]} source"
        raise ValueError(f"unknown explanation kind {self.kind!r}")

    def holds(self, f: PositionFeatures, tables: VocabTables) -> np.ndarray:
        """Boolean mask: where this explanation holds among the positions ``f``."""
        kind, values = self.kind, self.values
        if kind == "token":
            return np.isin(f.tokens, values)
        if kind == "folded":
            ids = [tables.folded_index[v] for v in values if v in tables.folded_index]
            return np.isin(tables.folded_id[f.tokens], ids)
        if kind == "prev_token":
            return np.isin(f.prev, values)
        if kind == "bigram":
            V = tables.vocab_size
            return np.isin(f.prev * V + f.tokens, [a * V + b for a, b in values])
        if kind == "next_token":
            return np.isin(f.next, values)
        if kind == "class":
            return tables.classes[values[0]][f.tokens]
        if kind == "regex":
            return f.regex[values[0]]
        if kind == "source":
            if values[0] not in f.source_names:
                return np.zeros(len(f), dtype=bool)
            return f.source == f.source_names.index(values[0])
        raise ValueError(f"unknown explanation kind {kind!r}")


# Narrow token classes a set's members may share and still be one rule ("a digit", "a
# punctuation mark"). Capitalized and ALL-CAPS words are left out: any name is one, so
# "one of ' States', ' Congress'" would pass as a rule while it is two unrelated words.
SET_CLASSES = ("digits", "number", "punctuation", "whitespace", "newline")
# Endings that make two folded forms variants of one word (' state' / ' States').
WORD_ENDINGS = ("s", "es", "ed", "d", "ing", "'s", "ly", "er")


def _word_variants(forms: Sequence[str]) -> bool:
    """Whether folded forms are one word with or without a common ending."""
    stem = min(forms, key=len)
    return bool(stem) and all(f == stem or (f.startswith(stem) and f[len(stem):] in WORD_ENDINGS)
                              for f in forms)


def related_tokens(ids: Sequence[int], tables: VocabTables) -> bool:
    """Whether a set of tokens is one rule a person would state, not several.

    Related: one token; case and leading-space variants of one word (' The', 'the');
    one word with or without a common ending (' state', ' states'); or members of one
    narrow class (``SET_CLASSES``: digits, numbers, punctuation, whitespace, line breaks).
    Anything else (',' with ' States' with ' def') is what polysemantic means.
    """
    ids = list(dict.fromkeys(int(i) for i in ids))
    if len(ids) <= 1:
        return True
    if _word_variants([tables.folded_names[tables.folded_id[i]] for i in ids]):
        return True
    return any(tables.classes[c][ids].all() for c in SET_CLASSES)


def related_forms(forms: Sequence[str], tables: VocabTables) -> bool:
    """``related_tokens`` for folded forms (the ``folded`` kind)."""
    if len(set(forms)) <= 1 or _word_variants(list(forms)):
        return True
    ids = [int(np.flatnonzero(tables.folded_id == tables.folded_index[f])[0])
           for f in forms if f in tables.folded_index]
    return len(ids) == len(forms) and any(tables.classes[c][ids].all() for c in SET_CLASSES)


def is_one_rule(e: "Explanation", tables: VocabTables) -> bool:
    """Whether an explanation's set of values makes one rule (``related_tokens``); a bigram
    set needs related first tokens and related second tokens."""
    if e.kind in ("token", "prev_token", "next_token"):
        return related_tokens(e.values, tables)
    if e.kind == "folded":
        return related_forms(e.values, tables)
    if e.kind == "bigram":
        return (related_tokens([a for a, _ in e.values], tables)
                and related_tokens([b for _, b in e.values], tables))
    return True


def candidate_explanations(f: PositionFeatures, tables: VocabTables,
                           max_set: int = 3) -> list[Explanation]:
    """The family's members worth trying on a neuron's top firings ``f``.

    Sets of tokens (or bigrams, ...) are built greedily from the most common values among
    the firings, up to ``max_set`` members: "a small set of tokens". A set is a candidate
    only when its members make one rule (``is_one_rule``): a set of unrelated tokens is a
    polysemantic neuron, not an explanation of one.
    """
    out: list[Explanation] = []

    def common_sets(kind: str, items: list) -> None:
        counts: dict[Any, int] = {}
        for item in items:
            counts[item] = counts.get(item, 0) + 1
        ranked = sorted(counts, key=lambda v: (-counts[v], str(v)))
        seen: set[tuple] = set()
        # Grown greedily from each of the most common values: add the next most common value
        # (seen at least twice) that keeps the set one rule.
        for seed in ranked[:max_set]:
            members = [seed]
            if (seed,) not in seen:
                seen.add((seed,))
                out.append(Explanation(kind, (seed,)))
            for value in ranked:
                if len(members) == max_set or counts[value] < 2:
                    break
                if value in members or not is_one_rule(
                        Explanation(kind, tuple(members + [value])), tables):
                    continue
                members.append(value)
                if tuple(members) not in seen:
                    seen.add(tuple(members))
                    out.append(Explanation(kind, tuple(members)))

    common_sets("token", [int(t) for t in f.tokens])
    common_sets("folded", [tables.folded_names[tables.folded_id[t]] for t in f.tokens])
    common_sets("prev_token", [int(t) for t in f.prev])
    common_sets("bigram", [(int(a), int(b)) for a, b in zip(f.prev, f.tokens)])
    common_sets("next_token", [int(t) for t in f.next])
    out += [Explanation("class", (name,)) for name in TOKEN_CLASSES]
    out += [Explanation("regex", (name,)) for name in REGEX_CLASSES]
    out += [Explanation("source", (name,)) for name in f.source_names]
    return out


class Background:
    """How often each explanation holds in text at large (held-out positions).

    An explanation that holds almost everywhere ("text is Python") trivially covers a
    neuron's top firings; the scorer requires coverage well above this base rate (lift).
    """

    def __init__(self, features: PositionFeatures, tables: VocabTables):
        self.features, self.tables = features, tables
        V = tables.vocab_size
        self.n = max(len(features), 1)
        self.token_counts = np.bincount(features.tokens, minlength=V)
        self.prev_counts = np.bincount(features.prev, minlength=V)
        self.next_counts = np.bincount(features.next, minlength=V)
        self.folded_counts = np.bincount(tables.folded_id[features.tokens],
                                         minlength=len(tables.folded_names))
        pairs, counts = np.unique(features.prev * V + features.tokens, return_counts=True)
        self.bigram_counts = dict(zip(pairs.tolist(), counts.tolist()))
        self._cache: dict[str, float] = {}

    def base_rate(self, e: Explanation) -> float:
        V = self.tables.vocab_size
        if e.kind == "token":
            count = self.token_counts[list(e.values)].sum()
        elif e.kind == "prev_token":
            count = self.prev_counts[list(e.values)].sum()
        elif e.kind == "next_token":
            count = self.next_counts[list(e.values)].sum()
        elif e.kind == "folded":
            ids = [self.tables.folded_index[v] for v in e.values if v in self.tables.folded_index]
            count = self.folded_counts[ids].sum()
        elif e.kind == "bigram":
            count = sum(self.bigram_counts.get(a * V + b, 0) for a, b in e.values)
        else:
            key = e.key()
            if key not in self._cache:
                self._cache[key] = float(e.holds(self.features, self.tables).mean()) \
                    if len(self.features) else 0.0
            return self._cache[key]
        return float(count) / self.n
