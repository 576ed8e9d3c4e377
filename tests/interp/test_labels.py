"""Ground-truth labels (interp/labels.py): code labels from tokenize/ast, prose labels from
regexes, their mapping onto BPE tokens of the real corpus, and the cache beside the corpus."""

from __future__ import annotations

import ast
import json
import shutil
import textwrap
import tokenize
from types import SimpleNamespace

import numpy as np
import pytest

from solu_repro.data import ShardWriter, TokenSplit, open_dataset
from solu_repro.interp import labels as labels_module
from solu_repro.interp.labels import (CODE_LABELS, LABEL_HALF, LABELS, PROSE_LABELS,
                                      LabelCacheError, TokenLabels, UnparsableCode,
                                      code_char_labels, label_report, labels_for, labels_path,
                                      load_labels, prose_char_labels, token_labels, token_spans,
                                      tokens_from_chars)


def runs(text: str, mask: np.ndarray) -> list[str]:
    """The maximal labelled stretches of ``text``, in order."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return [text[a:b] for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def lines_touched(text: str, mask: np.ndarray) -> list[int]:
    """1-based numbers of the lines holding a labelled character."""
    return sorted({text.count("\n", 0, i) + 1 for i in np.flatnonzero(mask)})


# --- code ---------------------------------------------------------------------------------------

CODE = textwrap.dedent('''\
    #!/usr/bin/env python3
    """Module docstring with "quotes" and # no comment."""
    import os  # it's a "comment" with 'quotes' and (brackets

    @decorator(arg=1)
    class Foo(Base):
        'class docstring'

        def method(self, x=[1, (2, 3)]):
            """Method docstring."""
            "a plain string statement"
            y = f"{x!r:>{10}} and {'nested'} {{literal}}"
            z = 'a "nested" string' + "it's # no comment"
            total = 1 + \\
                2
            call(a,
                 b)  # trailing
            return 0x1F
    ''')
FSTRING = '''f"{x!r:>{10}} and {'nested'} {{literal}}"'''


@pytest.fixture(scope="module")
def code():
    return code_char_labels(CODE)


def test_strings_docstrings_and_fstrings(code):
    assert runs(CODE, code["string"]) == [
        '"""Module docstring with "quotes" and # no comment."""', "'class docstring'",
        '"""Method docstring."""', '"a plain string statement"', FSTRING,
        '\'a "nested" string\'', '"it\'s # no comment"']
    # the first statement of a module, class or def; a later string statement is not one
    assert runs(CODE, code["docstring"]) == [
        '"""Module docstring with "quotes" and # no comment."""', "'class docstring'",
        '"""Method docstring."""']
    assert runs(CODE, code["fstring"]) == [FSTRING]


def test_comments_hold_their_quotes_and_strings_hold_their_hashes(code):
    assert runs(CODE, code["comment"]) == [
        "#!/usr/bin/env python3", "# it's a \"comment\" with 'quotes' and (brackets",
        "# trailing"]


def test_names_keywords_numbers_skip_the_inside_of_fstrings(code):
    assert runs(CODE, code["keyword"]) == ["import", "class", "def", "return"]
    assert runs(CODE, code["def_name"]) == ["Foo", "method"]
    # x, r and 10 inside the f-string's fields are string, not names or numbers
    assert runs(CODE, code["identifier"]) == ["os", "decorator", "arg", "Foo", "Base", "method",
                                              "self", "x", "y", "z", "total", "call", "a", "b"]
    assert runs(CODE, code["number"]) == ["1", "1", "2", "3", "1", "2", "0x1F"]


def test_brackets_span_lines_and_ignore_strings_and_comments(code):
    # strictly inside the brackets; the "(" in the comment and f-string braces do not count
    assert runs(CODE, code["bracket>=1"]) == ["arg=1", "Base", "self, x=[1, (2, 3)]",
                                              "a,\n             b"]
    assert runs(CODE, code["bracket>=2"]) == ["1, (2, 3)"]


def test_logical_lines_and_indentation(code):
    # a backslash continuation (line 15) and a bracketed one (17) start no logical line;
    # comment-only and blank lines are not logical lines
    assert lines_touched(CODE, code["line_start"]) == [2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14,
                                                       16, 18]
    assert code["line_start"].sum() == 13  # one character each
    assert lines_touched(CODE, code["indent>=1"]) == [7, *range(9, 19)]
    assert lines_touched(CODE, code["indent>=2"]) == list(range(10, 19))
    # the span starts at column 0: the indentation itself is labelled
    line_10 = CODE.index('        """Method')
    assert code["indent>=2"][line_10:line_10 + 8].all()


def test_python_312_fstring_tokens_give_the_311_labels(monkeypatch):
    """Python 3.12+ splits an f-string into FSTRING_START/MIDDLE/END around its fields' own
    tokens; replay such a stream (as 3.12 emits it) and expect exactly the labels of the single
    STRING token that this interpreter's tokenize gives."""
    text = """x = f"a{b!r}c{f'{d}'}"  # c\n"""
    start_type, middle_type, end_type = (getattr(tokenize, n, 1000 + i) for i, n in
                                         enumerate(("FSTRING_START", "FSTRING_MIDDLE",
                                                    "FSTRING_END")))
    monkeypatch.setattr(labels_module, "_STRING_START", {start_type: "FSTRING_START"})
    monkeypatch.setattr(labels_module, "_STRING_END", {end_type})
    pieces = [(tokenize.NAME, "x"), (tokenize.OP, "="), (start_type, 'f"'),
              (middle_type, "a"), (tokenize.OP, "{"), (tokenize.NAME, "b"), (tokenize.OP, "!"),
              (tokenize.NAME, "r"), (tokenize.OP, "}"), (middle_type, "c"), (tokenize.OP, "{"),
              (start_type, "f'"), (tokenize.OP, "{"), (tokenize.NAME, "d"), (tokenize.OP, "}"),
              (end_type, "'"), (tokenize.OP, "}"), (end_type, '"'), (tokenize.COMMENT, "# c"),
              (tokenize.NEWLINE, "\n")]
    stream, at = [], 0
    for kind, string in pieces:
        at = text.index(string, at)
        stream.append(tokenize.TokenInfo(kind, string, (1, at), (1, at + len(string)), text))
        at += len(string)
    stream.append(tokenize.TokenInfo(tokenize.ENDMARKER, "", (2, 0), (2, 0), ""))
    replayed = labels_module._code_labels_from_tokens(text, ast.parse(text), stream, [text],
                                                      np.array([0, len(text)]))
    monkeypatch.undo()
    native = code_char_labels(text)
    assert runs(text, replayed["fstring"]) == ["""f"a{b!r}c{f'{d}'}\""""]
    assert runs(text, replayed["identifier"]) == ["x"]
    for name in CODE_LABELS:
        assert np.array_equal(replayed[name], native[name]), name


@pytest.mark.parametrize("source, stage", [
    ("print 'hello'\n", "ast"),                       # Python 2
    ("def f(:\n    pass\n", "ast"),                    # broken
    ("x = 1\n\0\n", "ast"),                            # a null byte
])
def test_unparsable_code_is_refused_with_the_reason(source, stage):
    with pytest.raises(UnparsableCode, match=f"^{stage}: "):
        code_char_labels(source)


# --- prose --------------------------------------------------------------------------------------

PROSE = ('Mr. Smith said "We will (soon) win." The year 1812 saw 1,250.5 dollars spent '
         '(in total) and 30 men.\n\n“Curly quotes here.” Next sentence! And the U.S. Army '
         'won. Another? Yes. An open "quote runs on\n\n"to the next paragraph."\n')


def test_prose_regexes():
    p = prose_char_labels(PROSE)
    assert runs(PROSE, p["quotation"]) == ["We will (soon) win.", "Curly quotes here.",
                                           "to the next paragraph."]
    assert runs(PROSE, p["parenthetical"]) == ["soon", "in total"]
    assert runs(PROSE, p["numeral"]) == ["1812", "1,250.5", "30"]
    assert runs(PROSE, p["year"]) == ["1812"]
    # not "Smith" (after Mr.) nor "Army" (after U.S.); "We" opens a quotation mid-sentence
    assert runs(PROSE, p["sentence_start"]) == ["Mr", "The", "Curly", "Next", "And", "Another",
                                                "Yes", "An"]


# --- tokens -------------------------------------------------------------------------------------

def _documents(split: TokenSplit):
    for doc in range(split.n_docs):
        start, end = split.doc_span(doc)
        yield doc, start, end, split.window(start, end - start)


def test_decoded_spans_rebuild_every_document_of_the_corpus(corpus):
    shared = 0
    for name in ("val", "train"):
        split = corpus.split(name)
        for _, _, _, ids in _documents(split):
            assert ids[-1] == corpus.eot_id
            spans = token_spans(corpus.tokenizer, ids[:-1])
            assert spans.text == corpus.tokenizer.decode(ids[:-1].tolist())  # HF's decoder
            n = len(ids) - 1
            assert spans.char_start[0] == 0 and spans.char_end[-1] == len(spans.text)
            gap = spans.char_end[:-1] - spans.char_start[1:]
            assert set(np.unique(gap)) <= {0, 1}  # contiguous, or sharing one split character
            shared += int(gap.sum())
            whole = np.flatnonzero(np.concatenate([[0], gap]) + np.concatenate([gap, [0]]) == 0)
            pieces = [spans.text[spans.char_start[i]:spans.char_end[i]] for i in range(n)]
            assert "".join(pieces[i] for i in whole) == "".join(
                corpus.tokenizer.decode([int(ids[i])]) for i in whole)
    # the tiny train split holds two ("momentÕs" in 1807-Jefferson-1): both tokens share it
    assert shared > 0, "the corpus should hold a multi-byte character split across tokens"


def test_a_split_character_labels_both_of_its_tokens(corpus):
    text = "x — “日本”"
    ids = corpus.tokenizer.encode(text).ids
    spans = token_spans(corpus.tokenizer, ids)
    assert spans.text == text
    ji = text.index("日")
    holding = np.flatnonzero((spans.char_start <= ji) & (spans.char_end > ji))
    assert len(holding) >= 2  # 日 is three bytes the tiny vocabulary has not merged
    only_ji = np.zeros(len(text), dtype=bool)
    only_ji[ji] = True
    assert np.array_equal(np.flatnonzero(tokens_from_chars(spans, only_ji)), holding)


@pytest.fixture(scope="module")
def handmade(corpus, tmp_path_factory):
    """A split of three documents: code, Python 2 code, prose (the corpus's tokenizer)."""
    docs = [("python-stdlib", "good.py", 'x = "s"  # c\nif x:\n    y = (1, 2)\n'),
            ("python-stdlib", "py2.py", "print 'old'\n"),
            ("sotu", "speech", 'He said "no (never)." Then 1999 came.\n')]
    names = ["sotu", "python-stdlib"]
    directory = tmp_path_factory.mktemp("split")
    writer = ShardWriter(directory, corpus.dtype, corpus.eot_id, shard_tokens=7)
    for source, doc_id, text in docs:
        writer.add_document(corpus.tokenizer.encode(text).ids, names.index(source), doc_id)
    split = TokenSplit(directory, writer.close(names), names)
    return split, token_labels(split, corpus.tokenizer)


def test_token_labels_of_a_split(handmade, corpus):
    split, labels = handmade
    assert isinstance(labels, TokenLabels) and list(labels) == list(LABELS)
    assert all(v.dtype == bool and v.shape == (split.n_tokens,) for v in labels.values())
    assert set(labels.skipped) == {"py2.py"} and labels.skipped["py2.py"].startswith("ast: ")
    (g0, g1), _, (s0, s1) = (split.doc_span(d) for d in range(3))
    expected_code = np.zeros(split.n_tokens, dtype=bool)
    expected_code[g0:g1 - 1] = True
    expected_prose = np.zeros(split.n_tokens, dtype=bool)
    expected_prose[s0:s1 - 1] = True
    assert np.array_equal(labels.domain["code"], expected_code)
    assert np.array_equal(labels.domain["prose"], expected_prose)
    for name in LABELS:  # each label lives in its half's domain, never elsewhere
        assert not (labels[name] & ~labels.domain_of(name)).any(), name
    present = {"string", "comment", "bracket>=1", "keyword", "identifier", "number",
               "line_start", "indent>=1", "quotation", "sentence_start", "numeral", "year",
               "parenthetical"}
    assert {name for name in LABELS if labels[name].any()} == present
    # token by token, through the tokenizer: the overlap rule
    words = [corpus.tokenizer.decode([int(t)]) for t in split.window(g0, g1 - g0 - 1)]
    assert "".join(w for w, c in zip(words, labels["comment"][g0:g1]) if c) in ("# c", " # c")
    said = [corpus.tokenizer.decode([int(t)]) for t in split.window(s0, s1 - s0 - 1)]
    assert "".join(w for w, q in zip(said, labels["year"][s0:s1]) if q).strip() == "1999"


def test_unknown_tokenizer_or_split_mismatch_is_refused(handmade):
    from tokenizers import Tokenizer, models

    split, _ = handmade
    bare = Tokenizer(models.BPE())
    with pytest.raises(labels_module.LabelError, match="endoftext"):
        token_labels(split, bare)


# --- what the labels need -----------------------------------------------------------------------

def test_label_report_tells_token_identity_from_context():
    rng = np.random.default_rng(0)
    n_ctx, n = 33, 32 * 400
    tokens = rng.integers(0, 50, n)
    split = SimpleNamespace(n_tokens=n, window=lambda s, k: tokens[s:s + k])
    values = {name: np.zeros(n, dtype=bool) for name in LABELS}
    values["keyword"] = tokens < 10                    # given away by the token
    values["string"] = rng.random(n) < 0.3             # independent of the token
    values["quotation"] = (tokens < 5) & (rng.random(n) < 0.5)
    domain = {"code": np.ones(n, dtype=bool), "prose": np.ones(n, dtype=bool)}
    report = {s.name: s for s in label_report(TokenLabels(values, domain, {}), split, n_ctx)}
    assert list(report) == list(LABELS) and report["keyword"].half == "code"
    assert report["keyword"].token_f1 == 1.0 and report["keyword"].token_ap == 1.0
    assert report["keyword"].base_rate == pytest.approx(0.2, abs=0.02)
    assert report["string"].token_f1 < 0.55 and report["string"].token_ap < 0.4
    assert 0.5 < report["quotation"].token_f1 < 0.8
    assert np.isnan(report["comment"].token_f1) and report["comment"].base_rate == 0.0


# --- the cache ----------------------------------------------------------------------------------

@pytest.fixture
def own_corpus(corpus, tmp_path):
    """A private copy of the session corpus: the cache writes into the corpus directory."""
    shutil.copytree(corpus.path, tmp_path / corpus.path.name)
    return open_dataset(tmp_path / corpus.path.name)


def test_cache_is_written_beside_the_corpus_and_reused(own_corpus, monkeypatch):
    first = labels_for(own_corpus, "val")
    path = labels_path(own_corpus, "val")
    assert path.parent == own_corpus.path / "labels" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left
    direct = token_labels(own_corpus.split("val"), own_corpus.tokenizer)
    monkeypatch.setattr(labels_module, "token_labels",
                        lambda *a, **k: pytest.fail("the cached labels were not reused"))
    again = labels_for(own_corpus, "val")
    for name in LABELS:
        assert np.array_equal(first[name], direct[name]) and np.array_equal(again[name],
                                                                            direct[name])
    for half in ("code", "prose"):
        assert np.array_equal(again.domain[half], direct.domain[half])
    assert again.skipped == direct.skipped


def test_cache_key_follows_split_corpus_build_and_label_version(own_corpus, monkeypatch):
    path = labels_path(own_corpus, "val")
    assert labels_path(own_corpus, "train") != path
    assert labels_path(own_corpus, "train").name.startswith("train-")
    monkeypatch.setattr(labels_module, "LABELS_VERSION", labels_module.LABELS_VERSION + 1)
    assert labels_path(own_corpus, "val") != path
    monkeypatch.undo()
    monkeypatch.setitem(own_corpus.meta, "build_id", "another build")
    assert labels_path(own_corpus, "val") != path


def test_a_corrupt_cache_is_refused_and_rebuilt(own_corpus):
    good = labels_for(own_corpus, "val")
    path = labels_path(own_corpus, "val")
    key = labels_module._cache_key(own_corpus, "val")
    n = own_corpus.split("val").n_tokens
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(LabelCacheError, match=f"{path}.*unreadable.*delete it"):
        load_labels(path, key, n)
    with pytest.warns(UserWarning, match="unreadable.*rebuilding"):
        rebuilt = labels_for(own_corpus, "val")
    assert all(np.array_equal(rebuilt[k], good[k]) for k in LABELS)
    load_labels(path, key, n)  # the file is whole again
    # a file made for something else is refused too
    with pytest.raises(LabelCacheError, match="another corpus build"):
        load_labels(path, {**key, "build_id": "x"}, n)
    with pytest.raises(LabelCacheError, match="tokens"):
        load_labels(path, key, n + 1)


def test_label_tables_are_consistent():
    assert list(LABELS) == [*CODE_LABELS, *PROSE_LABELS]
    assert all(isinstance(v, str) and v and "\n" not in v for v in LABELS.values())
    assert {LABEL_HALF[n] for n in CODE_LABELS} == {"code"}
    assert {LABEL_HALF[n] for n in PROSE_LABELS} == {"prose"}
    json.dumps(LABELS)
