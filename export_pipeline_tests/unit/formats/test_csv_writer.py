"""RFC 4180 CSV in UTF-8, written in slices that add up to one file."""

from __future__ import annotations

import csv
import io

import polars as pl
import pytest

from export_pipeline.table.model import ExportTable
from export_pipeline.formats.csv_writer import CONTENT_TYPE, CsvOptions, header_line, iter_csv

AWKWARD = [
    "plain",
    "comma, inside",
    'a "quoted" word',
    "two\nlines",
    "carriage\rreturn",
    "crlf\r\nline",
    "Zürich – café 東京 😀",
    "",
    None,
    " padded ",
]


def table(rows: int = len(AWKWARD)) -> ExportTable:
    frame = pl.DataFrame({
        "c0": [AWKWARD[i % len(AWKWARD)] for i in range(rows)],
        "c1": [None if i % 3 == 0 else i for i in range(rows)],
        "c2": [None if i % 4 == 1 else i / 4 for i in range(rows)],
    })
    return ExportTable(frame=frame, headings=["Name, full", 'Say "hi"', "Ünïcode\nheading"])


def read_back(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_content_type():
    assert CONTENT_TYPE == "text/csv; charset=utf-8"


def test_header_line_quotes_what_needs_it():
    assert header_line(["Date", "Entries"]) == b"Date,Entries\r\n"
    assert header_line(["a,b", 'say "x"', "two\nlines", "é"]) == (
        b'"a,b","say ""x""","two\nlines",\xc3\xa9\r\n'
    )


def test_round_trip_through_the_csv_module():
    data = b"".join(iter_csv(table()))
    rows = read_back(data)
    assert rows[0] == ["Name, full", 'Say "hi"', "Ünïcode\nheading"]
    expected_names = ["" if v is None else v for v in AWKWARD]
    assert [r[0] for r in rows[1:]] == expected_names
    assert [r[1] for r in rows[1:]] == ["" if i % 3 == 0 else str(i) for i in range(len(AWKWARD))]
    assert [float(r[2]) if r[2] else None for r in rows[1:]] == [
        None if i % 4 == 1 else i / 4 for i in range(len(AWKWARD))
    ]
    assert all(len(r) == 3 for r in rows)


def test_fields_are_quoted_as_rfc_4180_says():
    data = b"".join(iter_csv(table()))
    assert b'"comma, inside"' in data
    assert b'"a ""quoted"" word"' in data
    assert b'"two\nlines"' in data
    assert b'"carriage\rreturn"' in data
    assert b'"crlf\r\nline"' in data
    assert b"\r\nplain," in data  # nothing to quote: not quoted


def test_utf_8_without_a_byte_order_mark():
    data = b"".join(iter_csv(table()))
    assert not data.startswith(b"\xef\xbb\xbf")
    assert "Zürich – café 東京 😀".encode("utf-8") in data


def test_records_end_with_crlf():
    frame = pl.DataFrame({"c0": ["a", "b", "c"], "c1": [1, None, 3]})
    data = b"".join(iter_csv(ExportTable(frame, ["X", "Y"])))
    assert data == b"X,Y\r\na,1\r\nb,\r\nc,3\r\n"
    assert data.count(b"\n") == data.count(b"\r\n") == 4


def test_nulls_are_empty_cells():
    frame = pl.DataFrame(
        {"c0": [None, "x"], "c1": [None, 1], "c2": [None, 1.5]},
        schema={"c0": pl.String, "c1": pl.Int64, "c2": pl.Float64},
    )
    data = b"".join(iter_csv(ExportTable(frame, ["A", "B", "C"])))
    assert data == b"A,B,C\r\n,,\r\nx,1,1.5\r\n"


def test_an_empty_table_is_its_header():
    frame = pl.DataFrame({"c0": []}, schema={"c0": pl.String})
    assert list(iter_csv(ExportTable(frame, ["Only"]))) == [b"Only\r\n"]


@pytest.mark.parametrize("rows_per_slice", [1, 2, 3, 7, 25, 26, 1000])
def test_slices_add_up_to_the_same_bytes(rows_per_slice):
    whole = table(25)
    chunks = list(iter_csv(whole, rows_per_slice=rows_per_slice))
    assert b"".join(chunks) == b"".join(iter_csv(whole))  # one slice holds every row
    assert len(chunks) == 1 + -(-25 // rows_per_slice)
    assert chunks[0] == header_line(whole.headings)
    for chunk in chunks[1:]:
        assert chunk.endswith(b"\r\n")
        assert len(read_back(chunk)) <= rows_per_slice


def test_every_chunk_is_bytes():
    assert all(isinstance(c, bytes) for c in iter_csv(table(5), rows_per_slice=2))


ALLOWED_DELIMITERS = list("\t!#$%&'()*,/;<=>?@[\\]^_`{|}~")


@pytest.mark.parametrize("delimiter", ALLOWED_DELIMITERS)
def test_every_allowed_delimiter_parses_back_to_the_same_table(delimiter):
    texts = [f"left{delimiter}right", f"{delimiter}", "plain", None, f'q"{delimiter}"q']
    dates = ["2024-04-01", "2024-04-01T13:00:00+00:00", "2024-03-10T03:00:00-04:00", None, "2024-12-31"]
    integers = [-12, 0, 9_007_199_254_740_993, None, 7]
    floats = [-1.5, 3e20, -2.5e-7, None, 0.1]
    frame = pl.DataFrame({"c0": texts, "c1": dates, "c2": integers, "c3": floats})
    headings = [f"Entity{delimiter}name", "Date", "Count", "Mean"]
    options = CsvOptions(delimiter=delimiter, formula_guard=False)
    data = b"".join(iter_csv(ExportTable(frame, headings, date_columns=("c1",)), options=options))
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))
    assert rows[0] == headings
    assert all(len(r) == 4 for r in rows), rows
    body = rows[1:]
    assert [r[0] for r in body] == ["" if t is None else t for t in texts]
    assert [r[1] for r in body] == ["" if d is None else d for d in dates]
    assert [int(r[2]) if r[2] else None for r in body] == integers
    assert [float(r[3]) if r[3] else None for r in body] == floats


@pytest.mark.parametrize("delimiter", [".", "-", "+", ":", "e", "E", "1", " ", '"', "\n", "ab", ""])
def test_a_delimiter_a_number_or_date_can_hold_is_refused(delimiter):
    with pytest.raises(ValueError, match="no number or date contains"):
        CsvOptions(delimiter=delimiter)
