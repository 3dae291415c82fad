"""Formula-injection guard for spreadsheet files (OWASP "CSV Injection").

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as
a formula by Excel, LibreOffice and Google Sheets. The guard prefixes such a cell with a
single quote, which spreadsheets show as text and never evaluate. Only text cells are touched:
numbers (negative numbers included) are typed numeric columns and are never altered.
"""

from __future__ import annotations

import polars as pl

TRIGGERS = r"^[=+\-@\t\r]"
PREFIX = "'"


def guard_text(value: str) -> str:
    """One text value (a heading), neutralised when a spreadsheet would evaluate it."""
    return PREFIX + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def guard_frame(frame: pl.DataFrame, skip: tuple[str, ...] = ()) -> pl.DataFrame:
    """Neutralise every text column of ``frame`` but ``skip`` (formatted dates)."""
    text = [n for n, t in frame.schema.items() if t == pl.String and n not in skip]
    if not text:
        return frame
    return frame.with_columns(
        pl.when(pl.col(n).str.contains(TRIGGERS)).then(PREFIX + pl.col(n)).otherwise(pl.col(n)).alias(n)
        for n in text
    )
