"""Text output for terminals: columns aligned by display width (a hanzi takes two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

EMPTY = "无记录 (none)"


def width(text: str) -> int:
    """Columns a terminal gives the text: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    """The text padded with spaces to `columns` display columns (never cut)."""
    return text + " " * max(0, columns - width(text))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], gap: int = 2) -> str:
    """Rows under a header, every column as wide as its widest cell; `None` shows as '-'.
    With no rows, the header and 无记录."""
    cells = [[str(h) for h in header]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "".join(pad(cell, w + gap) for cell, w in zip(row[:-1], widths, strict=False)) + row[-1]

    lines = [line(cells[0]), "-" * (sum(widths) + gap * (len(widths) - 1))]
    lines += [line(row) for row in cells[1:]] or [EMPTY]
    return "\n".join(lines).rstrip()
