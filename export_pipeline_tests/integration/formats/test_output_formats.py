"""XLSX, the PDF report, CSV options and file names, through the real job and S3 server."""

from __future__ import annotations

import copy
import csv
import io
import os
import shutil
import subprocess
from datetime import date, datetime

import openpyxl
import polars as pl
import pytest
from pypdf import PdfReader

from export_pipeline.contract.validation import validate_document
from export_pipeline.formats.csv_writer import BOM
from export_pipeline.formats.xlsx_writer import write_xlsx
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.table.model import ExportTable
from export_pipeline_tests.support.helpers import all_objects, utc, write_store
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv, run_job


@pytest.fixture
def store_env(monkeypatch, demo_store_path, bucket):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    return demo_store_path


def export(document):
    result = run_job(document)
    assert result.success, result.get_step_failure_events()
    out = result.output_for_node("materialize_export")
    return out, download(out.signed_url)


def reference(store, body) -> list[list[str]]:
    """The expected rows of ``body``, computed from the store's raw rows (support/reference)."""
    return reference_csv_rows(store, validate_document(body, ParquetMetricSource(store).schema()).request)


def multi_entity_body(**format_options) -> dict:
    body = copy.deepcopy(SEED_BODY)
    body["csvFormat"]["columns"] = [
        {"heading": "Date"}, {"heading": "Entity"},
        {"heading": "Entries", "metricId": "entries-by-day", "fetchValue": "entries"},
        {"heading": "Sales", "metricId": "entries-by-day", "fetchValue": "sales_volume"},
    ]
    del body["metricRequests"][0]["entities"]
    if format_options:
        body["format"] = format_options
    return body


def test_xlsx_cells_are_typed_and_equal_the_reference(store_env, s3_client, bucket):
    xlsx_export, xlsx_data = export(multi_entity_body(extension="xlsx"))
    assert xlsx_export.key.endswith(".xlsx")
    head = s3_client.head_object(Bucket=bucket, Key=xlsx_export.key)
    assert head["ContentType"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_data))
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    want = reference(store_env, multi_entity_body())
    assert list(rows[0]) == ["Date", "Entity", "Entries", "Sales"]
    assert len(rows) - 1 == len(want) == xlsx_export.rows == 30 * 12
    for got, expected in zip(rows[1:], want):
        assert got[0].date() == date.fromisoformat(expected[0])  # an Excel date, not text
        assert got[1] == expected[1]
        assert isinstance(got[2], int) and got[2] == int(expected[2])
        assert got[3] == int(expected[3])
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.b and sheet["C1"].font.b
    assert sheet["A2"].number_format == "yyyy-mm-dd"
    assert sheet.column_dimensions["B"].width >= 24  # sized to the 24-character entity ids


def test_xlsx_continues_on_further_sheets():
    frame = pl.DataFrame({"c0": [f"e{i}" for i in range(25)], "c1": list(range(25))})
    table = ExportTable(frame=frame, headings=["Entity", "Value"])
    import tempfile, os
    path = os.path.join(tempfile.mkdtemp(), "x.xlsx")
    assert write_xlsx(table, path, max_rows=10) == 3
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Export", "Export (2)", "Export (3)"]
    values = []
    for sheet in workbook.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0] == ("Entity", "Value")
        values += [r[1] for r in rows[1:]]
    assert values == list(range(25))


def test_xlsx_text_that_looks_like_a_formula_stays_text(tmp_path):
    frame = pl.DataFrame({"c0": ["=1+1", "-5", "@SUM(A1)"], "c1": [-5.0, 3.0, -1.5]})
    path = tmp_path / "x.xlsx"
    write_xlsx(ExportTable(frame=frame, headings=["Name", "Value"]), path)
    sheet = openpyxl.load_workbook(path).active
    assert [c.data_type for c in sheet["A"][1:]] == ["s", "s", "s"]
    assert [c.value for c in sheet["B"][1:]] == [-5, 3, -1.5]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdf_report_has_every_section(store_env, s3_client, bucket, monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(3, 1))
    axis.axis("off")
    axis.text(0.5, 0.5, "ACME", fontsize=30, ha="center", va="center")
    figure.savefig(tmp_path / "logo.png")
    monkeypatch.setenv("EXPORT_BRAND_NAME", "Acme Malls")
    monkeypatch.setenv("EXPORT_BRAND_LOGO", str(tmp_path / "logo.png"))
    monkeypatch.setenv("EXPORT_BRAND_PRIMARY", "#0B6E4F")
    body = multi_entity_body(extension="PDF", title="Footfall April 2024", comparePrevious=True,
                             timezone="Europe/Paris", filename="footfall-april")
    out, data = export(body)
    assert out.key.endswith("/footfall-april.pdf")
    assert s3_client.head_object(Bucket=bucket, Key=out.key)["ContentType"] == "application/pdf"
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    for section in ("Acme Malls", "Footfall April 2024", "Generated", "Executive summary",
                    "Breakdown by Entity", "Share of total Entries", "Top 10 by Entries",
                    "Comparison with the previous period", "Appendix", "Date range", "Time zone",
                    "Europe/Paris", "Filters", "Units", "entity type: location"):
        assert section in text, section
    # the KPI total is the sum of the stored entries in the range, computed from the raw rows
    total = sum(int(r[2]) for r in reference(store_env, multi_entity_body(timezone="Europe/Paris")))
    assert total > 0 and f"{total:,}" in text
    # the previous period (March 2 to 31, 30 days) was fetched and compared
    previous = copy.deepcopy(multi_entity_body(timezone="Europe/Paris"))
    previous["metricRequests"][0]["start"] = "2024-03-02T00:00:00Z"
    previous["metricRequests"][0]["end"] = "2024-03-31T23:59:59Z"
    previous_total = sum(int(r[2]) for r in reference(store_env, previous))
    assert previous_total > 0 and f"{previous_total:,}" in text
    assert f"{(total - previous_total) / previous_total * 100:+.1f}%" in text


def test_pdf_of_a_large_export_stays_a_summary(tmp_path):
    from export_pipeline.formats.pdf_report import render_pdf
    from export_pipeline.contract.validation import validate_document

    body = multi_entity_body(extension="pdf")
    request = validate_document(body).request
    n = 200_000
    frame = pl.DataFrame({
        "c0": ["2024-04-01"] * n, "c1": [f"entity-{i:06d}" for i in range(n)],
        "c2": list(range(n)), "c3": [0.5] * n,
    })
    data = render_pdf(request, ExportTable(frame=frame, headings=["Date", "Entity", "Entries", "Sales"]),
                      request_id="big")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) <= 8
    text = pdf_text(data)
    assert f"{sum(range(n)):,}" in text and "entity-199999" in text and "199,980 more" in text


def csv_body(**format_options) -> dict:
    body = copy.deepcopy(SEED_BODY)
    body["format"] = format_options
    return body


def test_csv_delimiter_bom_and_excel_profile(store_env):
    want = [["Date", "Entries"], *reference(store_env, csv_body())]
    assert len(want) == 31

    def rows(data: bytes, delimiter: str = ",") -> list[list[str]]:
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))

    _, plain = export(csv_body())
    assert not plain.startswith(BOM) and rows(plain) == want
    _, semicolon = export(csv_body(csvDelimiter=";"))
    assert b"," not in semicolon and rows(semicolon, ";") == want
    for options in ({"profile": "excel"}, {"bom": True}):
        _, data = export(csv_body(**options))
        assert data.startswith(BOM) and b"\r\n" in data and rows(data[len(BOM):]) == want


def use_store(tmp_path, monkeypatch, frame: pl.DataFrame) -> None:
    """``frame`` as the metric store the export job reads."""
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(write_store(tmp_path / "store", frame)))


@pytest.fixture
def hostile_store(tmp_path, monkeypatch, bucket):
    names = ["=HYPERLINK(\"http://x\")", "+1+2", "-3+4", "@SUM(A1)", "\tcmd", "\rcmd", "plain", "-"]
    frame = pl.DataFrame({
        "timestamp": [utc(2024, 5, 1, 12)] * len(names),
        "entity_id": names,
        "entity_type": ["location"] * len(names),
        "value": [-5.5, -3, 0, 7, -1, 2, -100, 1],
    })
    use_store(tmp_path, monkeypatch, frame)
    return names


def hostile_body(**format_options) -> dict:
    return {
        "csvFormat": {
            "columns": [{"heading": "Entity"}, {"heading": "Value", "metricId": "v", "fetchValue": "value"}],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [{"metricId": "v", "start": "2024-05-01T00:00:00Z", "end": "2024-05-01T23:59:59Z"}],
        **({"format": format_options} if format_options else {}),
    }


def test_formula_guard_neutralises_text_and_never_numbers(hostile_store):
    _, guarded = export(hostile_body())
    rows = parse_csv(guarded)[1:]
    by_name = {r[0]: r[1] for r in rows}
    for name in hostile_store:
        if name in ("plain",):
            assert name in by_name
        else:
            assert "'" + name in by_name, name
    assert sorted(float(v) for v in by_name.values()) == sorted([-5.5, -3, 0, 7, -1, 2, -100, 1])
    assert any(v.startswith("-") for v in by_name.values())  # negative numbers untouched
    _, raw = export(hostile_body(formulaGuard=False))
    assert {r[0] for r in parse_csv(raw)[1:]} == set(hostile_store)


HOSTILE_HEADING = "=cmd|' /C calc'!A0"


def test_formula_guard_neutralises_headings_as_it_does_cells(hostile_store):
    body = hostile_body()
    body["csvFormat"]["columns"][1]["heading"] = HOSTILE_HEADING
    rows = parse_csv(export(body)[1])
    # csv: the heading gets the same quote prefix as a cell that would run as a formula
    assert rows[0] == ["Entity", "'" + HOSTILE_HEADING]
    assert "'" + hostile_store[0] in {r[0] for r in rows[1:]}
    body["format"] = {"formulaGuard": False}
    assert parse_csv(export(body)[1])[0] == ["Entity", HOSTILE_HEADING]
    # xlsx: cells are text cells, never formulas, and so is the heading
    body["format"] = {"extension": "xlsx"}
    sheet = openpyxl.load_workbook(io.BytesIO(export(body)[1])).active
    assert (sheet["B1"].data_type, sheet["B1"].value) == ("s", HOSTILE_HEADING)
    assert [c.data_type for c in sheet["A"][1:]] == ["s"] * len(hostile_store)
    assert hostile_store[0] in [c.value for c in sheet["A"][1:]]


@pytest.mark.skipif(
    shutil.which("soffice") is None and not os.environ.get("CI"),
    reason="LibreOffice (soffice) is not installed; .ci/run installs it (in CI this test runs)",
)
def test_guarded_cells_open_as_text_in_libreoffice(hostile_store, tmp_path):
    body = hostile_body(profile="excel")
    body["csvFormat"]["columns"][1]["heading"] = HOSTILE_HEADING
    _, data = export(body)
    source = tmp_path / "export.csv"
    source.write_bytes(data)
    profile = tmp_path / "lo-profile"
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xlsx",
         "--outdir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=180,
    )
    sheet = openpyxl.load_workbook(tmp_path / "export.xlsx").active
    heading = sheet["B1"]
    assert heading.data_type == "s" and not str(heading.value).startswith("="), heading.value
    rows = list(sheet.iter_rows(min_row=2))
    names = [r[0] for r in rows]
    values = [r[1] for r in rows]
    assert all(c.data_type == "s" for c in names), [(c.value, c.data_type) for c in names]
    assert not any(str(c.value).startswith("=") for c in names)
    assert all(c.data_type == "n" for c in values), [(c.value, c.data_type) for c in values]
    assert sorted(c.value for c in values) == sorted([-5.5, -3, 0, 7, -1, 2, -100, 1])


@pytest.mark.skipif(
    shutil.which("soffice") is None and not os.environ.get("CI"),
    reason="LibreOffice (soffice) is not installed; .ci/run installs it (in CI this test runs)",
)
def test_libreoffice_opens_the_workbook_with_every_cell_typed(tmp_path):
    """Another spreadsheet reads the streamed zip and the XML the same way: LibreOffice opens
    the workbook and saves it again, and that file holds the same typed cells."""
    texts = ["=1+1", "-5", "@SUM(A1)", "http://x.example", "007", "a & b < c", "ctl\x01", "café 😀"]
    frame = pl.DataFrame({
        "c0": [f"2024-04-{d:02d}" for d in range(1, 9)],
        "c1": texts,
        "c2": [1, None, 3, 4, 5, 6, 7, 8],
        "c3": [0.1, 1 / 3, 123456.78901234568, float("nan"), 2.5, None, -7.0, 1e-7],
    })
    table = ExportTable(frame=frame, headings=["Date", "Name", "Count", "Value"], date_columns=("c0",))
    write_xlsx(table, tmp_path / "export.xlsx", max_rows=5)
    profile = tmp_path / "lo-profile"
    out = tmp_path / "out"
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xlsx",
         "--outdir", str(out), str(tmp_path / "export.xlsx")],
        check=True, capture_output=True, timeout=180,
    )
    workbook = openpyxl.load_workbook(out / "export.xlsx")
    assert workbook.sheetnames == ["Export", "Export (2)"]
    rows = []
    for sheet in workbook.worksheets:
        assert [c.value for c in sheet[1]] == ["Date", "Name", "Count", "Value"]
        rows += list(sheet.iter_rows(min_row=2))
    assert len(rows) == 8
    for i, (day, name, count, value) in enumerate(rows):
        assert day.value == datetime(2024, 4, i + 1) and day.number_format.replace("\\", "") == "yyyy-mm-dd"
        assert name.data_type == "s" and name.value.replace("_x0001_", "\x01") == texts[i]
        assert count.value == frame["c2"][i]
    values = [v.value for v in (r[3] for r in rows)]
    # LibreOffice saves 15 significant digits of its own
    assert values[:3] == pytest.approx([0.1, 1 / 3, 123456.78901234568], rel=1e-14)
    assert values[4:] == [2.5, None, -7, 1e-7]
    assert rows[3][3].value == "#NUM!" or rows[3][3].value == "=#NUM!"


def test_named_file_key_and_extension(store_env, s3_client, bucket):
    out, _ = export(csv_body(filename="april-footfall"))
    assert out.key.startswith("exports/") and out.key.endswith("/april-footfall.csv")
    assert all_objects(s3_client, bucket) == [out.key]


def test_xlsx_subdaily_cells_are_local_datetimes(store_env):
    body = copy.deepcopy(SEED_BODY)
    body["metricRequests"][0]["aggregationPeriod"] = "hour"
    body["metricRequests"][0]["end"] = "2024-04-02T23:59:59Z"
    body["format"] = {"timezone": "America/New_York", "extension": "xlsx"}
    _, xlsx_data = export(body)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_data)).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    want = reference(store_env, body)
    assert want[0][0].endswith("-04:00") and len(want) == 28  # 14 open hours a day
    assert [r[0].isoformat() for r in rows] == [w[0][:19] for w in want]  # local wall time
    assert [r[1] for r in rows] == [int(w[1]) for w in want]
    assert sheet["A2"].number_format == "yyyy-mm-dd hh:mm"


def test_xlsx_refuses_a_table_wider_than_a_sheet(tmp_path):
    from export_pipeline.formats.xlsx_writer import MAX_COLUMNS

    frame = pl.DataFrame({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)})
    table = ExportTable(frame=frame, headings=[f"h{i}" for i in range(MAX_COLUMNS + 1)])
    with pytest.raises(ValueError, match="16,384"):
        write_xlsx(table, tmp_path / "x.xlsx")


@pytest.fixture
def refunds_store(tmp_path, monkeypatch, bucket):
    """Net sales with refunds: some entities' totals are negative, one is zero."""
    frame = pl.DataFrame({
        "timestamp": [utc(2024, 5, d, h) for d in (1, 2, 3) for h in (10, 15)] * 3,
        "entity_id": [e for e in ("north", "south", "east") for _ in range(6)],
        "entity_type": ["location"] * 18,
        "net": [120.5, -30.0, 80.0, -10.0, 5.0, 0.0,
                -400.0, -25.25, 60.0, -90.0, -5.0, 10.0,
                10.0, -10.0, 0.0, 0.0, 0.0, 0.0],
    })
    use_store(tmp_path, monkeypatch, frame)
    return frame


def refunds_body(**format_options) -> dict:
    return {
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Store", "field": "entity"},
                        {"heading": "Net sales", "metricId": "n", "fetchValue": "net"}],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [{"metricId": "n", "start": "2024-05-01T00:00:00Z", "end": "2024-05-03T23:59:59Z"}],
        **({"format": format_options} if format_options else {}),
    }


def test_negative_totals_export_as_csv_and_as_pdf(refunds_store):
    total = sum(refunds_store["net"].to_list())  # -284.75
    _, csv_data = export(refunds_body())
    assert sum(float(r[2]) for r in parse_csv(csv_data)[1:]) == pytest.approx(total)
    out, pdf = export(refunds_body(extension="pdf", title="Net sales & refunds"))
    assert out.key.endswith(".pdf")
    text = pdf_text(pdf)
    assert "Net sales & refunds" in text and "&amp;" not in text
    assert f"{total:,.2f}" in text
    assert "Some totals are negative" in text
    south = -400.0 - 25.25 + 60.0 - 90.0 - 5.0 + 10.0
    assert f"{south:,.2f}" in text
