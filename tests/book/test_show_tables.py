"""The code on the page is the package's (``book.show``), and tables and numbers are formatted
by one helper each (``book.tables``, ``solu_repro.fmt``)."""

from __future__ import annotations

import math
from dataclasses import dataclass


from solu_repro import fmt
from solu_repro.book import show, tables
from solu_repro.paper import registry


def test_show_source_is_the_functions_own_source():
    md = show.source_markdown(fmt.pct)
    assert md.startswith("```python\ndef pct(") and md.endswith("\n```")
    assert 'format(x, f"{' in md


def test_show_source_of_a_property_is_its_getter():
    from solu_repro.interp.instruments import JudgeAgreement

    md = show.source_markdown(JudgeAgreement.precision)
    assert md.startswith("```python\n@property\ndef precision(self)")


def test_a_fence_is_longer_than_any_backtick_run_in_the_code():
    assert show.fenced("x = '```'").startswith("````python\n")


def test_show_claim_gives_the_rule_and_the_code_that_applies_it():
    for spec in registry.CLAIMS:
        md = show.claim_markdown(spec)
        assert spec.statement in md and spec.rule in md
        assert f"def {spec.decide.__name__}(" in md


def test_percentages_and_points():
    assert fmt.pct(0.1234) == "12.3%" and fmt.pct(0.05, signed=True) == "+5.0%"
    assert fmt.pct(None) == "n/a" and fmt.pct(math.nan) == "n/a"
    for x in (0.0, -0.0371, 0.5, 1.0):  # what the chapters wrote before
        assert fmt.pct(x, signed=True) == f"{x:+.1%}" and fmt.pct(x) == f"{x:.1%}"
    assert fmt.points(0.042) == "+4.2" and fmt.points(-math.inf) == "-inf"
    assert fmt.num(None, ".2f") == "n/a" and fmt.num(math.inf, ".2f") == "inf"
    assert fmt.num(0.125, ".2f") == "0.12"


@dataclass
class Row:
    model: str
    loss: float
    n: int


def test_tables_from_dicts_or_dataclasses():
    rows = [Row("1L-gelu", 4.56789, 1200), Row("1L-solu_ln", 4.5, 7)]
    md = tables.markdown_table(rows, digits=3)
    assert md.splitlines() == ["| model | loss | n |", "|---|---|---|",
                               "| 1L-gelu | 4.57 | 1,200 |", "| 1L-solu_ln | 4.5 | 7 |"]
    text = tables.text_table([{"a": 1, "bb": "x"}], columns=["bb", "a"])
    assert text.splitlines() == ["bb  a", "--  -", "x   1"]
    assert tables.markdown_table([]) == "" and tables.text_table([]) == ""
