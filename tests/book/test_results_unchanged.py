"""The tiny book reports what its record says: every claim (id, kind, chapter, verdict,
measurement text and values) and every glued number, to 1e-9.

The record (``tests/book/data/tiny_results.json``) was made by the code before the move of
issue 19 (measurements into ``solu_repro.paper``, presentation into ``solu_repro.book``): a
worktree of commit 3e0c8f8 trained the portable tiny zoo and executed the book, and
``results_snapshot.py --from-build`` recorded that build. So this test shows the move changed
no result. It reads the session's tiny book build
(``conftest.built_book``), made from a tiny zoo trained and read on PyTorch's and MKL's
portable kernels (``results_snapshot.PORTABLE_ENV``), whose rounding does not depend on the
CPU. Where the record's environment differs (another Python, whose
standard library is half the corpus, or another torch), only what holds on any machine is
compared: which claims and which glued names, and the identity claims' verdicts and values
(float64 algebra, no trained weights).
"""

from __future__ import annotations

import json

import pytest

from results_snapshot import RECORD, differences, environment, snapshot, structure


@pytest.fixture(scope="module")
def record():
    if not RECORD.is_file():
        pytest.fail(f"no record at {RECORD}: make one with "
                    "`.venv/bin/python tests/book/results_snapshot.py --write`")
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def built(built_book):
    """What the session's tiny book build (``conftest.built_book``: the portable zoo, the
    portable kernels) recorded."""
    return snapshot(built_book.report.root, built_book.runs)


def test_differences_sees_a_changed_digit_a_verdict_and_a_missing_claim():
    old = {"claims": {"a": {"verdict": "reproduced", "ours": "+1.5 [+0.2, +2.8] points",
                            "values": {"x": 0.123456789}}}}
    assert differences(old, json.loads(json.dumps(old))) == []
    changed = json.loads(json.dumps(old))
    changed["claims"]["a"]["ours"] = "+1.6 [+0.2, +2.8] points"
    changed["claims"]["a"]["values"]["x"] = 0.1234568
    changed["claims"]["a"]["verdict"] = "direction only"
    diffs = differences(old, changed)
    assert len(diffs) == 3 and all("/claims/a/" in d for d in diffs)
    assert differences(old, {"claims": {}}) == ["/claims/a: only in the record"]


@pytest.mark.slow
def test_tiny_book_matches_its_record(record, built):
    assert structure(built) == structure(record), "claims or glued names differ"
    assert all(v is not None for ch in built["glue"].values() for v in ch.values()), \
        "a glued value was not read"
    identities = {k: v for k, v in record["claims"].items() if v["kind"] == "identity"}
    assert identities
    diffs = differences(identities, {k: built["claims"][k] for k in identities},
                        where="claims")
    assert not diffs, "\n".join(diffs)
    if record["environment"] != environment():
        print(f"recorded in {record['environment']}, running in {environment()}: the "
              "empirical claims and glued numbers are compared only where the environment "
              "is the record's")
        return
    diffs = differences({k: record[k] for k in ("claims", "glue")},
                        {k: built[k] for k in ("claims", "glue")})
    assert not diffs, (f"{len(diffs)} differences from the record (regenerate it only for a "
                       "change meant to change results):\n" + "\n".join(diffs[:40]))
