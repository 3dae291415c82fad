"""The export table as an Excel workbook (XLSX), written with xlsxwriter.

Cells are typed: numbers as numbers, dates as Excel dates (``yyyy-mm-dd``; ``yyyy-mm-dd
hh:mm`` below a day, the local wall time of the export's time zone, as Excel has no offsets),
text as text cells. Text is never read as a formula, a number or a URL (xlsxwriter's
``strings_to_*`` off), so a value such as ``=HYPERLINK(…)`` stays inert text. The header row
is bold and frozen, columns are sized to their content, and an export longer than one sheet
(1,048,575 data rows under the header) continues on further sheets. The workbook is written
in constant-memory mode row by row to a temporary file (xlsxwriter only writes cell by cell),
then streamed from there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import xlsxwriter

from export_pipeline.table.model import ExportTable

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows per sheet, less the header
MAX_COLUMNS = 16_384  # Excel's column limit (XFD)
MAX_WIDTH = 60
SHEET_NAME = "Export"
ROWS_PER_SLICE = 50_000
CHUNK = 8 * 1024 * 1024


def typed_frame(table: ExportTable) -> pl.DataFrame:
    """The table with its formatted date columns parsed back to dates or local datetimes."""
    if not table.date_columns:
        return table.frame
    if table.subdaily:
        parse = lambda c: pl.col(c).str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    else:
        parse = lambda c: pl.col(c).str.to_date("%Y-%m-%d")  # noqa: E731
    return table.frame.with_columns(parse(c) for c in table.date_columns)


def column_widths(frame: pl.DataFrame, headings: list[str]) -> list[int]:
    lengths = frame.select(
        pl.col(c).cast(pl.String).str.len_chars().max().fill_null(0) for c in frame.columns
    ).row(0) if frame.height else [0] * frame.width
    return [min(MAX_WIDTH, max(len(h), n, 10 if i == 0 else 6) + 2) for i, (h, n) in enumerate(zip(headings, lengths))]


def sheet_name(index: int) -> str:
    return SHEET_NAME if index == 0 else f"{SHEET_NAME} ({index + 1})"


def write_xlsx(table: ExportTable, path: str | Path, max_rows: int = MAX_DATA_ROWS) -> int:
    """Write the workbook to ``path``; returns the number of sheets.

    A table wider than a sheet is refused rather than cut: xlsxwriter ignores cells beyond
    the last column, and a file missing numbers is worse than no file.
    """
    if len(table.headings) > MAX_COLUMNS:
        raise ValueError(
            f"the export has {len(table.headings):,} columns and an Excel sheet holds "
            f"{MAX_COLUMNS:,}; use csv, the long layout, or fewer entities or buckets"
        )
    frame = typed_frame(table)
    workbook = xlsxwriter.Workbook(str(path), {
        "constant_memory": True,
        "strings_to_formulas": False,
        "strings_to_numbers": False,
        "strings_to_urls": False,
        "nan_inf_to_errors": True,
        "default_date_format": "yyyy-mm-dd hh:mm" if table.subdaily else "yyyy-mm-dd",
    })
    bold = workbook.add_format({"bold": True, "bottom": 1})
    widths = column_widths(frame, table.headings)
    sheets = max(1, -(-frame.height // max_rows))
    try:
        for s in range(sheets):
            sheet = workbook.add_worksheet(sheet_name(s))
            for i, width in enumerate(widths):
                sheet.set_column(i, i, width)
            sheet.write_row(0, 0, table.headings, bold)
            sheet.freeze_panes(1, 0)
            row = 1
            part = frame.slice(s * max_rows, max_rows)
            for offset in range(0, part.height, ROWS_PER_SLICE):
                for values in part.slice(offset, ROWS_PER_SLICE).iter_rows():
                    sheet.write_row(row, 0, values)
                    row += 1
    finally:
        workbook.close()
    return sheets


@contextmanager
def xlsx_file(table: ExportTable, max_rows: int = MAX_DATA_ROWS) -> Iterator[Path]:
    """The workbook in a temporary file, removed afterwards."""
    handle, name = tempfile.mkstemp(suffix=".xlsx", prefix="export-")
    os.close(handle)
    try:
        write_xlsx(table, name, max_rows)
        yield Path(name)
    finally:
        os.unlink(name)


def iter_file(path: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(chunk):
            yield data
