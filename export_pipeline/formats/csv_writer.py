"""RFC 4180 CSV, UTF-8, encoded in slices so a large export is never one string in memory.

Options (``format``): the delimiter (every cell holding it is quoted), an opt-in UTF-8 BOM (the ``excel`` profile turns it on:
without it Excel reads UTF-8 as the local code page) and the formula-injection guard, on by
default. The defaults write the plain RFC 4180 file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from export_pipeline.contract.models import csv_delimiter_refusal
from export_pipeline.table.model import ExportTable
from export_pipeline.formats.formula_guard import guard_frame, guard_text

CONTENT_TYPE = "text/csv; charset=utf-8"
LINE_TERMINATOR = "\r\n"  # RFC 4180
ROWS_PER_SLICE = 100_000
BOM = "\ufeff".encode("utf-8")


@dataclass(frozen=True)
class CsvOptions:
    """A delimiter is one the request contract allows: none that a number or date holds, so
    only text cells can contain it, and those are quoted when they do."""

    delimiter: str = ","
    bom: bool = False
    formula_guard: bool = True

    def __post_init__(self) -> None:
        refusal = csv_delimiter_refusal(self.delimiter)
        if refusal:
            raise ValueError(f"csv delimiter {self.delimiter!r}: {refusal}")


def header_line(headings: list[str], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=LINE_TERMINATOR).writerow(headings)
    return out.getvalue().encode("utf-8")


def iter_csv(
    table: ExportTable, rows_per_slice: int = ROWS_PER_SLICE, options: CsvOptions = CsvOptions()
) -> Iterator[bytes]:
    """The file as consecutive byte chunks: the header, then one chunk per slice of rows."""
    headings = [guard_text(h) for h in table.headings] if options.formula_guard else table.headings
    yield (BOM if options.bom else b"") + header_line(headings, options.delimiter)
    for offset in range(0, table.frame.height, rows_per_slice):
        rows = table.frame.slice(offset, rows_per_slice)
        if options.formula_guard:
            rows = guard_frame(rows, table.date_columns + table.number_columns)
        out = io.BytesIO()
        rows.write_csv(
            out,
            include_header=False,
            separator=options.delimiter,
            line_terminator=LINE_TERMINATOR,
            quote_style="necessary",
            null_value="",
        )
        yield out.getvalue()
