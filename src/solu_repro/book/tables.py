"""Tables as the book prints them: one helper for Markdown (the pages) and one for fixed-width
text (printed in a notebook, where nbval compares them)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, Mapping, Sequence


def _rows(rows: Sequence[Any]) -> list[Mapping[str, Any]]:
    return [asdict(r) if is_dataclass(r) else r for r in rows]


def _cell(v: Any, digits: int | None) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float) and digits is not None:
        return f"{v:.{digits}g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown_table(rows: Sequence[Any], columns: Sequence[str] | None = None,
                   digits: int | None = None) -> str:
    """Rows (dicts or dataclasses) as a Markdown table for ``IPython.display.Markdown``.

    Args:
        rows: one mapping (or dataclass) per row.
        columns: the columns, in order (default: the first row's keys); also the headers.
        digits: significant figures of floats (None: ``str``). Ints get thousands commas.
    """
    rows = _rows(rows)
    if not rows:
        return ""
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, ""), digits) for c in columns) + " |"
              for r in rows]
    return "\n".join(lines)


def text_table(rows: Sequence[Any], columns: Sequence[str] | None = None,
               digits: int | None = None) -> str:
    """Rows (dicts or dataclasses) as a fixed-width text table with a rule under the header.

    Args:
        rows: one mapping (or dataclass) per row.
        columns: the columns, in order (default: the first row's keys).
        digits: significant figures of floats (None: ``str``).
    """
    rows = _rows(rows)
    columns = list(columns or (rows[0] if rows else []))
    if not columns:
        return ""
    cells = [[str(c) for c in columns]] + [[_cell(r.get(c, ""), digits) for c in columns]
                                          for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
