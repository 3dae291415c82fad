"""The workbook read back with openpyxl, cell by cell, against values written out by hand."""

from __future__ import annotations

import io
import math
import re
import zipfile
from datetime import datetime

import openpyxl
import polars as pl
import pytest

from export_pipeline.formats.xlsx_writer import (
    CELLS_PER_SLICE, MAX_COLUMNS, WIDE, iter_xlsx, rows_per_slice, slices, write_xlsx,
)
from export_pipeline.table.model import ExportTable

TEXT = [
    "plain",
    "=HYPERLINK(\"http://evil.example\",\"x\")",  # a formula
    "+1+2", "-3", "@SUM(A1)",
    "12345", "1e5", "007", "TRUE",  # numbers and a boolean, as text
    "https://example.com/a?b=1&c=2",  # a URL
    "a & b < c > d \"quoted\" 'single'",  # XML's special characters
    "Zürich – café 東京 😀 𝄞",
    " leading and trailing ",
    "tab\there\nnew line",
    "bell\x07 nul\x00 esc\x1b cr\r us\x1f",  # control characters XML 1.0 cannot hold
    "_x0041_ looks like an escape",
    "\ufffe\uffff",
    None,
    "",
]


def excel_text(raw: str | None) -> str | None:
    """A text cell as Excel reads it: ``_xHHHH_`` decoded, left to right (openpyxl keeps them)."""
    if raw is None:
        return None
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m[1], 16)), raw)


def read(data_or_path) -> openpyxl.Workbook:
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    return openpyxl.load_workbook(source)


def workbook_bytes(table: ExportTable, **options) -> bytes:
    return b"".join(iter_xlsx(table, **options))


def mixed_table() -> ExportTable:
    n = len(TEXT)
    frame = pl.DataFrame({
        "c0": [f"2024-04-{d:02d}" if d % 5 else None for d in range(1, n + 1)],
        "c1": TEXT,
        "c2": [None if i % 4 == 2 else (-1) ** i * i * 1_000_003 for i in range(n)],
        "c3": [0.1, 1 / 3, 2.0, float("nan"), float("inf"), float("-inf"), None, -0.5, 1e20, 1e-7,
               123456.789012345678, 5e-324, 1.7976931348623157e308, 45383.541666666664, -1234.5,
               3.0, 0.30000000000000004, 2.5, 7.0][:n],
    })
    return ExportTable(frame=frame, headings=["Date", "Name", "Count", "Value"], date_columns=("c0",))


def assert_cells(cells, i: int, frame: pl.DataFrame) -> None:
    """The four cells of row ``i`` of ``mixed_table``, against the values written out above."""
    day, name, count, value = cells
    d = i + 1
    if d % 5:
        assert day.value == datetime(2024, 4, d) and day.number_format == "yyyy-mm-dd"
    else:
        assert day.value is None
    want = TEXT[i] or None  # empty text is an empty cell, as xlsxwriter wrote it
    if want is None:
        assert name.value is None
    else:
        assert name.data_type == "s", (i, name.value)  # never a formula, number or URL
        assert excel_text(name.value) == want
        assert name.hyperlink is None
    if i % 4 == 2:
        assert count.value is None
    else:
        assert count.data_type == "n" and count.value == (-1) ** i * i * 1_000_003
        assert isinstance(count.value, int)
    v = frame["c3"][i]
    if v is None:
        assert value.value is None
    elif math.isnan(v):
        assert (value.data_type, value.value) == ("f", "=#NUM!")  # xlsxwriter's error cells
    elif math.isinf(v):
        assert (value.data_type, value.value) == ("f", "=1/0" if v > 0 else "=-1/0")
    else:
        assert value.data_type == "n" and value.value == v  # exactly, not to 15 digits
        if abs(v) < 1e15:  # a whole number reads back as an integer, as it did (3, not 3.0)
            assert isinstance(value.value, int) == v.is_integer()


def test_every_cell_reads_back_with_its_type_and_value():
    table = mixed_table()
    sheet = read(workbook_bytes(table)).active
    rows = list(sheet.iter_rows(min_row=2))
    assert len(rows) == len(TEXT)
    for i, cells in enumerate(rows):
        assert_cells(cells, i, table.frame)


def test_a_wide_table_reads_back_the_same(tmp_path):
    """Past ``WIDE`` columns a slice is built in the long form: every cell still in place."""
    table = mixed_table()
    copies = 17
    frame = pl.concat(
        [table.frame.rename({f"c{j}": f"c{4 * k + j}" for j in range(4)}) for k in range(copies)], how="horizontal"
    )
    assert frame.width > WIDE
    wide = ExportTable(frame=frame, headings=table.headings * copies,
                       date_columns=tuple(f"c{4 * k}" for k in range(copies)))
    sheet = read(workbook_bytes(wide, cells_per_slice=4 * copies * 5)).active  # slices of 5 rows
    assert [c.value for c in sheet[1]] == table.headings * copies
    rows = list(sheet.iter_rows(min_row=2))
    assert len(rows) == len(TEXT)
    for i, cells in enumerate(rows):
        for k in range(copies):
            assert_cells(cells[4 * k:4 * k + 4], i, table.frame)


def test_text_is_escaped_as_xlsxwriter_escapes_it():
    """The XML itself: control characters as ``_xHHHH_``, a literal escape escaped, ``&<>``
    as entities, spaces kept, inline text cells."""
    table = ExportTable(frame=pl.DataFrame({"c0": [TEXT[14], TEXT[15], TEXT[10], TEXT[12]]}), headings=["=x"])
    with zipfile.ZipFile(io.BytesIO(workbook_bytes(table))) as package:
        xml = package.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert '<c r="A1" s="1" t="inlineStr"><is><t>=x</t></is></c>' in xml
    assert "<t>bell_x0007_ nul_x0000_ esc_x001B_ cr_x000D_ us_x001F_</t>" in xml
    assert "<t>_x005F_x0041_ looks like an escape</t>" in xml
    assert "<t>a &amp; b &lt; c &gt; d \"quoted\" 'single'</t>" in xml
    assert '<t xml:space="preserve"> leading and trailing </t>' in xml
    assert "<f>" not in xml


def test_datetimes_below_a_day_are_local_wall_times_with_minutes():
    stamps = ["2024-04-01T00:00:00-04:00", "2024-04-01T13:45:00-04:00", "1999-12-31T23:59:00+01:00",
              "2024-11-03T01:30:00-05:00"]
    frame = pl.DataFrame({"c0": stamps, "c1": [1, 2, 3, 4]})
    table = ExportTable(frame=frame, headings=["Date", "N"], date_columns=("c0",), subdaily=True)
    sheet = read(workbook_bytes(table)).active
    cells = [r[0] for r in sheet.iter_rows(min_row=2)]
    assert [c.value for c in cells] == [datetime.fromisoformat(s[:19]) for s in stamps]
    assert {c.number_format for c in cells} == {"yyyy-mm-dd hh:mm"}


def test_header_is_bold_frozen_and_columns_sized_as_before(tmp_path):
    frame = pl.DataFrame({"c0": ["2024-04-01"], "c1": ["x" * 24], "c2": [7], "c3": ["y" * 90]})
    table = ExportTable(frame=frame, headings=["Date", "Entity", "Entries", "Long"], date_columns=("c0",))
    write_xlsx(table, tmp_path / "x.xlsx")
    sheet = read(tmp_path / "x.xlsx").active
    assert sheet.freeze_panes == "A2"
    assert all(c.font.b for c in sheet[1]) and not sheet["B2"].font.b
    assert sheet["A1"].border.bottom.style == "thin"
    # xlsxwriter's widths for 12, 26, 9 and 60 (the cap) characters
    widths = {k: v.width for k, v in sheet.column_dimensions.items()}
    assert widths == {"A": 12.7109375, "B": 26.7109375, "C": 9.7109375, "D": 60.7109375}


def test_sheets_continue_past_the_row_limit(tmp_path):
    frame = pl.DataFrame({"c0": [f"e{i}" for i in range(25)], "c1": list(range(25))})
    table = ExportTable(frame=frame, headings=["Entity", "Value"])
    assert write_xlsx(table, tmp_path / "x.xlsx", max_rows=10) == 3
    workbook = read(tmp_path / "x.xlsx")
    assert workbook.sheetnames == ["Export", "Export (2)", "Export (3)"]
    values = []
    for sheet in workbook.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0] == ("Entity", "Value") and sheet.freeze_panes == "A2"
        assert sheet["A1"].font.b
        values += rows[1:]
    assert values == [(f"e{i}", i) for i in range(25)]


def test_an_empty_table_is_a_header_alone():
    table = ExportTable(frame=pl.DataFrame({"c0": [], "c1": []}, schema={"c0": pl.String, "c1": pl.Int64}),
                        headings=["Entity", "Value"])
    workbook = read(workbook_bytes(table))
    assert workbook.sheetnames == ["Export"]
    assert list(workbook.active.iter_rows(values_only=True)) == [("Entity", "Value")]


def test_rows_are_written_in_slices_of_bounded_size():
    """Memory is bounded by the slice, not the table: each slice holds at most the cells of
    ``cells_per_slice``, and the file comes out a slice at a time."""
    assert rows_per_slice(4) * 4 <= CELLS_PER_SLICE and rows_per_slice(MAX_COLUMNS) >= 1
    frame = pl.DataFrame({"c0": [f"e{i}" for i in range(1_000)], "c1": list(range(1_000))})
    cut = list(slices(frame, rows_per_slice(2, 300)))
    assert [(len(rows), first) for rows, first in cut][:2] == [(150, 2), (150, 152)]
    assert sum(len(rows) for rows, _ in cut) == 1_000 and max(len(rows) for rows, _ in cut) == 150
    table = ExportTable(frame=frame, headings=["Entity", "Value"])
    chunks = list(iter_xlsx(table, cells_per_slice=300))
    assert len(chunks) == len(cut) + 1  # handed on after each slice (the last with the end)
    sheet = read(b"".join(chunks)).active
    assert [r for r in sheet.iter_rows(min_row=2, values_only=True)] == [(f"e{i}", i) for i in range(1_000)]


def test_a_table_wider_than_a_sheet_is_refused_before_anything_is_written():
    frame = pl.DataFrame({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)})
    table = ExportTable(frame=frame, headings=[f"h{i}" for i in range(MAX_COLUMNS + 1)])
    with pytest.raises(ValueError, match="16,384"):
        iter_xlsx(table)  # not at the first chunk: an upload is never started


def test_dates_before_march_1900_skip_excels_phantom_leap_day():
    days = ["1900-01-01", "1900-02-28", "1900-03-01", "2024-02-29"]
    table = ExportTable(frame=pl.DataFrame({"c0": days}), headings=["Date"], date_columns=("c0",))
    with zipfile.ZipFile(io.BytesIO(workbook_bytes(table))) as package:
        xml = package.read("xl/worksheets/sheet1.xml").decode("utf-8")
    # Excel's serials: 1900-01-01 is 1, its 1900-02-29 (which never was) 60
    assert [int(v) for v in re.findall(r"<v>(\d+)</v>", xml)] == [1, 59, 61, 45351]
    sheet = read(workbook_bytes(table)).active
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [datetime.fromisoformat(d) for d in days]


@pytest.mark.parametrize("width", [3, WIDE + 1])
def test_numbers_kept_as_text_are_number_cells_with_every_digit(width):
    """A crosstab mixing integer and float metrics keeps each number as its exact text
    (``number_columns``); in the workbook they are numbers all the same, with every digit in
    the file, and NaN and the infinities are the usual error cells."""
    values = ["306515364555933897", "993.0", "-5", "NaN", "inf", "-inf", None, "1.5e-07"]
    columns = {"Entity": [f"e{i}" for i in range(len(values))]}
    columns.update({f"c{j}": values for j in range(width - 1)})
    table = ExportTable(frame=pl.DataFrame(columns), headings=list(columns), time_zone="UTC",
                        number_columns=tuple(c for c in columns if c != "Entity"))
    data = workbook_bytes(table)
    sheet = read(data).worksheets[0]
    got = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert got == [306515364555933897, 993.0, -5, "=#NUM!", "=1/0", "=-1/0", None, 1.5e-07]  # as float NaN and infinities are
    assert all(row[-1] == row[1] for row in sheet.iter_rows(min_row=2, values_only=True))
    xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<v>306515364555933897</v>" in xml and 'inlineStr"><is><t>993.0' not in xml


@pytest.mark.parametrize("width", [3, WIDE + 1])
def test_decimals_are_number_cells_with_every_digit(width):
    """A decimal cell holds the decimal's own digits (``0.30``, a 20-digit total to the cent),
    as the CSV file does, not the shortest text of the nearest float."""
    values = ["0.30", "-0.30", "123456789012345678.92", "10000000000.00", None]
    columns = {"Entity": [f"e{i}" for i in range(len(values))]}
    columns.update({f"c{j}": pl.Series(values).cast(pl.Decimal(38, 2)) for j in range(width - 1)})
    table = ExportTable(frame=pl.DataFrame(columns), headings=list(columns), time_zone="UTC")
    data = workbook_bytes(table)
    sheet = read(data).worksheets[0]
    assert [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        0.3, -0.3, 123456789012345678.92, 10000000000.0, None]
    xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<v>0.30</v>" in xml and "<v>123456789012345678.92</v>" in xml and "e+17" not in xml
