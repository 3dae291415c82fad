"""The PDF report on tables a CSV export can hold: negative, zero, NaN and empty totals, one row,
no rows; and text in any script, printed as stored in a font that has its glyphs."""

from __future__ import annotations

import io
import re

import polars as pl
import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from export_pipeline.contract.validation import validate_document
from export_pipeline.formats.pdf_report import render_pdf
from export_pipeline.table.model import ExportTable

HEADINGS = ["Date", "Entity", "Net", "Refunds"]
SCHEMA = {"c0": pl.String, "c1": pl.String, "c2": pl.Float64, "c3": pl.Float64}
CJK_FONTS = {"/STSong-Light", "/HeiseiMin-W3", "/HYSMyeongJo-Medium"}


def request(headings=HEADINGS, title: str | None = None):
    body = {
        "csvFormat": {
            "columns": [
                {"heading": headings[0], "field": "date"}, {"heading": headings[1], "field": "entity"},
                {"heading": headings[2], "metricId": "m", "fetchValue": "net"},
                {"heading": headings[3], "metricId": "m", "fetchValue": "refunds"},
            ],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [{"metricId": "m", "start": "2024-04-01T00:00:00Z", "end": "2024-04-03T23:59:59Z"}],
        "format": {"extension": "pdf", **({"title": title} if title else {})},
    }
    return validate_document(body).request


def report(rows: dict, headings=HEADINGS, title: str | None = None) -> bytes:
    frame = pl.DataFrame(rows, schema=SCHEMA)
    table = ExportTable(frame=frame, headings=list(headings), date_columns=("c0",))
    return render_pdf(request(headings, title), table, request_id="r-1", previous=table)


def text_of(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_negative_totals_are_charted_as_bars_and_added_up():
    data = report({"c0": ["2024-04-01", "2024-04-02", "2024-04-03"], "c1": ["north", "south", "east"],
                   "c2": [120.0, -450.0, 30.0], "c3": [-5.0, -7.5, 0.0]})
    text = text_of(data)
    assert "Some totals are negative" in text
    assert "-300" in text and "-12.50" in text  # 120 - 450 + 30 and -5 - 7.5, the KPI totals
    assert "Share of total Net" not in text


@pytest.mark.parametrize("rows, says", [
    ({"c0": ["2024-04-01"] * 2, "c1": ["a", "b"], "c2": [0.0, 0.0], "c3": [0.0, 0.0]},
     "No share chart: the total of Net is zero."),
    ({"c0": ["2024-04-01"] * 2, "c1": ["a", "b"], "c2": [float("nan"), 2.0], "c3": [None, 1.0]},
     "No share chart: the total of Net is not a finite number."),
    ({"c0": ["2024-04-01"] * 2, "c1": ["a", None], "c2": [None, None], "c3": [None, None]},
     "No share chart: no total to chart."),
    ({"c0": [], "c1": [], "c2": [], "c3": []}, "No data in the requested range."),
    ({"c0": ["2024-04-02"], "c1": ["only"], "c2": [7.0], "c3": [-1.0]}, "Share of total Net"),
    ({"c0": [None, "2024-04-02"], "c1": [None, "x"], "c2": [-1.0, float("inf")], "c3": [None, 2.0]},
     "No share chart: the total of Net is not a finite number."),
])
def test_zero_nan_empty_and_single_row_tables_make_a_report(rows, says):
    text = text_of(report(rows))
    assert says in text
    assert "Appendix" in text


STORED = [
    "Fish & Chips <Ltd> > 3",
    "東京 本店",
    "ひらがなと漢字",
    "서울 매장",
    "Москва Ёлка",
    "Αθήνα αβγ",
    "tab\there",
    "bell\x07end",
]
RIGHT_TO_LEFT = ["مرحبا بكم", "שלום"]


def font_runs(data: bytes) -> list[tuple[str, dict]]:
    runs: list[tuple[str, dict]] = []
    for page in PdfReader(io.BytesIO(data)).pages:
        page.extract_text(visitor_text=lambda text, cm, tm, font, size: runs.append((text, font or {})))
    return [(t, f) for t, f in runs if t.strip()]


def drawn_characters(font) -> set[str]:
    """The characters an embedded TrueType subset really draws: its ToUnicode map, through the
    subset's own cmap, to a glyph with an outline."""
    descriptor = font["/FontDescriptor"].get_object()
    face = TTFont(io.BytesIO(descriptor["/FontFile2"].get_data()))
    cmap = face["cmap"].tables[0].cmap
    glyphs = face["glyf"]
    drawn = set()
    for code, unicode in re.findall(rb"<([0-9A-F]{2})> <([0-9A-F]{4,8})>", font["/ToUnicode"].get_data()):
        name = cmap.get(int(code, 16))
        if name and name != ".notdef" and (glyphs[name].numberOfContours != 0 or unicode == b"0020"):
            drawn.add(chr(int(unicode, 16)))
    return drawn


ALL = STORED + RIGHT_TO_LEFT


def test_text_prints_as_stored_in_fonts_that_have_its_glyphs():
    heading = "Umsatz & <Netto> Δ"
    data = report(
        {"c0": ["2024-04-01"] * len(ALL), "c1": ALL, "c2": [float(i + 1) for i in range(len(ALL))],
         "c3": [1.0] * len(ALL)},
        headings=["Date", "Entity", heading, "Refunds"], title="Rapport 東京 & Cie",
    )
    text = text_of(data)
    assert "&amp;" not in text and "&lt;" not in text
    for value in [heading, "Rapport 東京 & Cie", *STORED[:6]]:
        assert value in text, value
    # control characters are shown, as U+FFFD, never dropped or passed through
    assert "tab\ufffdhere" in text and "bell\ufffdend" in text
    assert "\x07" not in text
    # right-to-left text is drawn unshaped, left to right; a reader may give it back reversed
    for value in RIGHT_TO_LEFT:
        assert all(word in text or word[::-1] in text for word in value.split()), value
    # every character is drawn by a font that has it: the embedded subset's own glyph, or a
    # CJK font the reader supplies
    missing = []
    for run, font in font_runs(data):
        name = font.get("/BaseFont")
        if "/FontFile2" in font.get("/FontDescriptor", {}):
            drawn = drawn_characters(font)
            missing += [(ch, name) for ch in run if ch not in drawn and not ch.isspace()]
        elif name in CJK_FONTS:
            assert all(ord(ch) >= 0x2E80 or ch.isspace() for ch in run), (run, name)
        else:
            missing += [(ch, name) for ch in run if not ch.isspace()]
    assert not missing
    fonts = {f.get("/BaseFont") for _, f in font_runs(data)}
    assert {"/STSong-Light", "/HeiseiMin-W3", "/HYSMyeongJo-Medium"} <= fonts


def test_decimal_totals_print_with_every_digit():
    """Decimal cells and totals print in their own digits (grouped), never cut to integers or
    rounded through floats; shares and changes are worked out from them all the same."""
    decimals = lambda values: pl.Series(values).cast(pl.Decimal(38, 2))  # noqa: E731
    frame = pl.DataFrame({
        "c0": ["2024-04-01", "2024-04-02", "2024-04-03"], "c1": ["north", "south", "east"],
        "c2": decimals(["0.10", "0.20", "123456789012345678.05"]), "c3": decimals(["-0.30", None, "0.01"]),
    })
    table = ExportTable(frame=frame, headings=HEADINGS, date_columns=("c0",))
    text = text_of(render_pdf(request(), table, request_id="r-1", previous=table))
    assert "123,456,789,012,345,678.35" in text and "-0.29" in text  # the KPI totals
    assert "0.20" in text and "100.0%" in text and "+0.0%" in text
