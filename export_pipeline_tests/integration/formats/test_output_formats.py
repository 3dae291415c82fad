"""XLSX, the PDF report, CSV options and file names, through the real job and S3 server."""

from __future__ import annotations

import copy
import io
import shutil
import subprocess
from datetime import date

import openpyxl
import polars as pl
import pytest
from pypdf import PdfReader

from export_pipeline.table.model import ExportTable
from export_pipeline.formats.csv_writer import BOM
from export_pipeline.formats.xlsx_writer import write_xlsx
from export_pipeline_tests.support.helpers import all_objects, utc, write_store
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


def test_xlsx_reads_back_equal_to_the_csv_of_the_same_request(store_env, s3_client, bucket):
    csv_export, csv_data = export(multi_entity_body())
    xlsx_export, xlsx_data = export(multi_entity_body(extension="xlsx"))
    assert xlsx_export.key.endswith(".xlsx")
    head = s3_client.head_object(Bucket=bucket, Key=xlsx_export.key)
    assert head["ContentType"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_data))
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    csv_rows = parse_csv(csv_data)
    assert list(rows[0]) == csv_rows[0]
    assert len(rows) == len(csv_rows) == csv_export.rows + 1
    for got, want in zip(rows[1:], csv_rows[1:]):
        assert got[0].date() == date.fromisoformat(want[0])  # an Excel date, not text
        assert got[1] == want[1]
        assert isinstance(got[2], int) and got[2] == int(want[2])
        assert float(got[3]) == float(want[3])
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
    # the KPI total is the exact sum of the CSV export of the same request
    csv_out, csv_data = export(multi_entity_body(timezone="Europe/Paris"))
    total = sum(int(r[2]) for r in parse_csv(csv_data)[1:])
    assert f"{total:,}" in text
    # the previous period (March 2 to 31, 30 days) was fetched and compared
    previous = copy.deepcopy(multi_entity_body(timezone="Europe/Paris"))
    previous["metricRequests"][0]["start"] = "2024-03-02T00:00:00Z"
    previous["metricRequests"][0]["end"] = "2024-03-31T23:59:59Z"
    _, previous_csv = export(previous)
    previous_total = sum(int(r[2]) for r in parse_csv(previous_csv)[1:])
    assert f"{previous_total:,}" in text
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
    _, plain = export(csv_body())
    _, semicolon = export(csv_body(csvDelimiter=";"))
    assert semicolon == plain.replace(b",", b";")
    _, excel = export(csv_body(profile="excel"))
    assert excel == BOM + plain
    _, bom = export(csv_body(bom=True))
    assert bom == BOM + plain


@pytest.fixture
def hostile_store(tmp_path, monkeypatch, bucket):
    names = ["=HYPERLINK(\"http://x\")", "+1+2", "-3+4", "@SUM(A1)", "\tcmd", "\rcmd", "plain", "-"]
    frame = pl.DataFrame({
        "timestamp": [utc(2024, 5, 1, 12)] * len(names),
        "entity_id": names,
        "entity_type": ["location"] * len(names),
        "value": [-5.5, -3, 0, 7, -1, 2, -100, 1],
    })
    store = write_store(tmp_path / "store", frame)
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(store))
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


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed; .ci/run installs it")
def test_guarded_cells_open_as_text_in_libreoffice(hostile_store, tmp_path):
    _, data = export(hostile_body(profile="excel"))
    source = tmp_path / "export.csv"
    source.write_bytes(data)
    profile = tmp_path / "lo-profile"
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xlsx",
         "--outdir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=180,
    )
    sheet = openpyxl.load_workbook(tmp_path / "export.xlsx").active
    rows = list(sheet.iter_rows(min_row=2))
    names = [r[0] for r in rows]
    values = [r[1] for r in rows]
    assert all(c.data_type == "s" for c in names), [(c.value, c.data_type) for c in names]
    assert not any(str(c.value).startswith("=") for c in names)
    assert all(c.data_type == "n" for c in values), [(c.value, c.data_type) for c in values]
    assert sorted(c.value for c in values) == sorted([-5.5, -3, 0, 7, -1, 2, -100, 1])


def test_named_file_key_and_extension(store_env, s3_client, bucket):
    out, _ = export(csv_body(filename="april-footfall"))
    assert out.key.startswith("exports/") and out.key.endswith("/april-footfall.csv")
    assert all_objects(s3_client, bucket) == [out.key]


def test_xlsx_subdaily_cells_are_local_datetimes_of_the_csv(store_env):
    body = copy.deepcopy(SEED_BODY)
    body["metricRequests"][0]["aggregationPeriod"] = "hour"
    body["metricRequests"][0]["end"] = "2024-04-02T23:59:59Z"
    body["format"] = {"timezone": "America/New_York"}
    _, csv_data = export(body)
    body["format"]["extension"] = "xlsx"
    _, xlsx_data = export(body)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_data)).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    csv_rows = parse_csv(csv_data)[1:]
    assert csv_rows[0][0].endswith("-04:00")
    assert [r[0].isoformat() for r in rows] == [r[0][:19] for r in csv_rows]
    assert [r[1] for r in rows] == [int(r[1]) for r in csv_rows]
    assert sheet["A2"].number_format == "yyyy-mm-dd hh:mm"


def test_xlsx_refuses_a_table_wider_than_a_sheet(tmp_path):
    from export_pipeline.formats.xlsx_writer import MAX_COLUMNS

    frame = pl.DataFrame({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)})
    table = ExportTable(frame=frame, headings=[f"h{i}" for i in range(MAX_COLUMNS + 1)])
    with pytest.raises(ValueError, match="16,384"):
        write_xlsx(table, tmp_path / "x.xlsx")
