"""RFC 4180 CSV, UTF-8, encoded in slices so a large export is never one string in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from export_pipeline.combine import ExportTable

CONTENT_TYPE = "text/csv; charset=utf-8"
LINE_TERMINATOR = "\r\n"  # RFC 4180
ROWS_PER_SLICE = 100_000


def header_line(headings: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator=LINE_TERMINATOR).writerow(headings)
    return out.getvalue().encode("utf-8")


def iter_csv(table: ExportTable, rows_per_slice: int = ROWS_PER_SLICE) -> Iterator[bytes]:
    """The file as consecutive byte chunks: the header, then one chunk per slice of rows."""
    yield header_line(table.headings)
    for offset in range(0, table.frame.height, rows_per_slice):
        out = io.BytesIO()
        table.frame.slice(offset, rows_per_slice).write_csv(
            out,
            include_header=False,
            line_terminator=LINE_TERMINATOR,
            quote_style="necessary",
            null_value="",
        )
        yield out.getvalue()
