"""Numbers as the book writes them: one function per format, used by the claims' sentences
(``solu_repro.paper``) and the book's tables (``solu_repro.book.tables``) alike."""

from __future__ import annotations

import math
from typing import Any

NA = "n/a"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None, digits: int = 1, signed: bool = False) -> str:
    """A fraction as a percentage: ``pct(0.123)`` is "12.3%", ``pct(0.05, signed=True)``
    "+5.0%"; None or NaN is "n/a"."""
    if _missing(x):
        return NA
    return format(x, f"{'+' if signed else ''}.{digits}%")


def points(x: float, digits: int = 1) -> str:
    """A difference of fractions in signed percentage points ("+4.2"); infinite ends of a
    one-seed interval as "+inf" / "-inf"."""
    if x == math.inf:
        return "+inf"
    if x == -math.inf:
        return "-inf"
    return f"{x * 100:+.{digits}f}"


def num(x: float | None, spec: str) -> str:
    """``format(x, spec)``, with None or NaN as "n/a" and infinities as "inf" / "-inf"."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NA if _missing(x) else ("inf" if x > 0 else "-inf")
    return format(x, spec)
