"""The format, layout, time and decimation options of a request: parsing and validation."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest

from export_pipeline_tests.support.requests import REPO
from export_pipeline.contract.models import CsvProfile, FileFormat, Layout
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import validate_document

SEED = json.loads(
    (REPO / "export_pipeline" / "examples" / "seed_000_request.json").read_text()
)["data"]["body"]


def body(**format_options):
    out = copy.deepcopy(SEED)
    if format_options:
        out["format"] = format_options
    return out


def problems_of(document) -> list[str]:
    with pytest.raises(InvalidRequest) as error:
        validate_document(document)
    return [str(p) for p in error.value.problems]


@pytest.mark.parametrize("value, expected", [
    ("csv", FileFormat.csv), ("CSV", FileFormat.csv), ("PDF", FileFormat.pdf), ("xlsx", FileFormat.xlsx),
])
def test_format_shorthand_any_case(value, expected):
    document = body()
    document["format"] = value
    assert validate_document(document).request.format.extension is expected


def test_defaults_are_the_plain_csv():
    fmt = validate_document(body()).request.format
    assert (fmt.extension, fmt.output_format, fmt.timezone, fmt.csv_delimiter, fmt.with_bom, fmt.formula_guard) == (
        FileFormat.csv, Layout.long, "UTC", ",", False, True
    )


def test_excel_profile_turns_the_bom_on_unless_told_otherwise():
    assert validate_document(body(profile="excel")).request.format.with_bom
    assert not validate_document(body(profile="excel", bom=False)).request.format.with_bom
    assert validate_document(body(bom=True)).request.format.profile is CsvProfile.rfc4180


def test_every_bad_option_is_reported_with_its_path():
    document = body(
        extension="docx", filename="../../etc/passwd", timezone="Mars/Olympus", csvDelimiter="ab",
        outputFormat="tall", template="fancy", formulaGuard="yes",
    )
    m = document["metricRequests"][0]
    m["decimation"] = {"ds": "P1M2D", "dsf": "median"}
    m["transform"] = "ratio"
    document["csvFormat"]["columns"][0]["dsf"] = "avg"
    problems = problems_of(document)
    paths = {p.split(":")[0] for p in problems}
    assert {
        "format.extension", "format.filename", "format.timezone", "format.csvDelimiter",
        "format.outputFormat", "format.template", "format.formulaGuard",
        "metricRequests[0].decimation.ds", "metricRequests[0].decimation.dsf",
        "metricRequests[0].transform", "csvFormat.columns[0].dsf",
    } <= paths, problems
    assert any("letters, digits, '-' and '_'" in p for p in problems)


@pytest.mark.parametrize("name", ["../x", "a/b", "a.csv", "-x", "a b", "é", "x" * 101, ""])
def test_file_names_cannot_leave_their_folder(name):
    assert any(p.startswith("format.filename") for p in problems_of(body(filename=name)))


def test_csv_options_on_other_formats_are_refused():
    problems = problems_of(body(extension="xlsx", csvDelimiter=";", bom=True))
    assert "format.csvDelimiter: applies to csv files only, not xlsx" in problems
    assert "format.bom: applies to csv files only, not xlsx" in problems


def test_from_to_unix_seconds_and_period():
    document = body()
    m = document["metricRequests"][0]
    del m["start"], m["end"]
    m["from"], m["to"] = 1711929600, 1714521599  # 2024-04-01T00:00Z .. 2024-04-30T23:59:59Z
    request = validate_document(document).request.metric_requests[0]
    assert request.start == datetime(2024, 4, 1, tzinfo=timezone.utc)
    assert request.end == datetime(2024, 4, 30, 23, 59, 59, tzinfo=timezone.utc)
    del m["to"]
    m["period"] = "P30D"
    request = validate_document(document).request.metric_requests[0]
    assert request.end == datetime(2024, 4, 30, 23, 59, 59, 999999, tzinfo=timezone.utc)
    del m["from"]
    m["end"] = "2024-04-30T23:59:59.999999Z"
    request = validate_document(document).request.metric_requests[0]
    assert request.start == datetime(2024, 4, 1, tzinfo=timezone.utc)


def test_period_alone_ends_now():
    document = body()
    m = document["metricRequests"][0]
    del m["start"], m["end"]
    m["period"] = "PT1H"
    request = validate_document(document).request.metric_requests[0]
    assert abs((datetime.now(timezone.utc) - request.end).total_seconds()) < 120


def test_conflicting_bounds():
    document = body()
    m = document["metricRequests"][0]
    m["from"], m["to"], m["period"] = 1711929600, 1714521599, "P1D"
    problems = problems_of(document)
    assert "metricRequests[0].from: give start or from, not both" in problems
    assert "metricRequests[0].to: give end or to, not both" in problems
    assert any(p.startswith("metricRequests[0].period: a period sets one bound") for p in problems)
    del m["start"], m["end"], m["from"], m["to"], m["period"]
    problems = problems_of(document)
    assert "metricRequests[0].start: required (or from, or a period with the other bound)" in problems
    assert "metricRequests[0].end: required (or to, or a period with the other bound)" in problems


def test_all_metric_requests_share_one_bucket_width():
    document = body()
    second = copy.deepcopy(document["metricRequests"][0])
    second["metricId"] = "other"
    second["decimation"] = {"ds": "1h", "dsf": "avg"}
    del second["aggregationPeriod"]
    document["metricRequests"].append(second)
    assert any(p.startswith("metricRequests[1].decimation.ds: must match") for p in problems_of(document))
    document["metricRequests"][0]["decimation"] = {"ds": "PT60M"}
    del document["metricRequests"][0]["aggregationPeriod"]
    validate_document(document)


def test_pivoted_layouts_need_a_date_and_a_metric_column():
    document = body(outputFormat="wide")
    document["csvFormat"]["columns"] = [{"heading": "Entity"}]
    document["csvFormat"]["sortBy"] = []
    problems = problems_of(document)
    assert any("pivots on the date" in p for p in problems)
    assert any("needs at least one metric column" in p for p in problems)


def test_crosstab_rows_are_labelled_by_every_row_key():
    document = body(outputFormat="crosstab")
    problems = problems_of(document)  # the seed shows the date and a metric, not the entity
    assert any(p.startswith("csvFormat.rowFilters[0]: the crosstab layout labels each row") for p in problems)
    document["csvFormat"]["columns"].insert(1, {"heading": "Entity"})
    validate_document(document)


@pytest.mark.parametrize("delimiter", [".", "-", "+", ":", "e", "E", "T", "Z", "5", " ", '"', "\r", ";;", "é", ""])
def test_csv_delimiters_that_split_numbers_or_dates_are_refused(delimiter):
    problems = problems_of(body(csvDelimiter=delimiter))
    assert any(p.startswith("format.csvDelimiter: must be a tab or one ASCII punctuation") for p in problems), problems


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|", "^", "~"])
def test_usual_csv_delimiters_pass(delimiter):
    assert validate_document(body(csvDelimiter=delimiter)).request.format.csv_delimiter == delimiter
