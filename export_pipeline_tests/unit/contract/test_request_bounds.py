"""Requests that are wrong only in their size or characters: each is a Problem at its exact
path, never an OverflowError or a crash later in planning."""

from __future__ import annotations

import copy

import pytest

from export_pipeline_tests.support.requests import SEED_BODY
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import validate_document
from export_pipeline.planning.plan import plan_export

SUPPORTED = "the supported instants, 1900-01-01T00:00:00Z up to 9999-01-01T00:00:00Z"


def problems_of(document) -> list[str]:
    with pytest.raises(InvalidRequest) as error:
        validate_document(document)
    return [str(p) for p in error.value.problems]


def with_range(**fields) -> dict:
    document = copy.deepcopy(SEED_BODY)
    metric_request = document["metricRequests"][0]
    for key in ("start", "end"):
        metric_request.pop(key)
    metric_request.update(fields)
    return document


@pytest.mark.parametrize("fields, expected", [
    ({"start": "2024-01-01T00:00:00Z", "end": "9999-12-31T23:59:59-01:00"},
     f"metricRequests[0].end: is outside {SUPPORTED}"),
    ({"start": "0001-01-01T00:00:00+01:00", "end": "2024-01-01T00:00:00Z"},
     f"metricRequests[0].start: is outside {SUPPORTED}"),
    ({"start": "1899-12-31T23:59:59Z", "end": "2024-01-01T00:00:00Z"},
     f"metricRequests[0].start: is outside {SUPPORTED}"),
    ({"start": "2024-01-01T00:00:00Z", "period": "P9999999999D"},
     "metricRequests[0].period: 'P9999999999D' is longer than the supported instants span"),
    ({"end": "2024-01-01T00:00:00Z", "period": "P99999999999999999999Y"},
     "metricRequests[0].period: 'P99999999999999999999Y' is longer than the supported instants span"),
    ({"start": "2024-01-01T00:00:00Z", "period": "P9999Y"},
     "metricRequests[0].period: 'P9999Y' is longer than the supported instants span"),
    ({"start": "2024-01-01T00:00:00Z", "period": "P0D"},
     "metricRequests[0].period: 'P0D' is empty: a period is longer than zero"),
    ({"start": "2024-01-01T00:00:00Z", "period": "PT0S"},
     "metricRequests[0].period: 'PT0S' is empty: a period is longer than zero"),
    ({"start": "8000-01-01T00:00:00Z", "period": "P5000Y"},
     f"metricRequests[0].period: takes the range outside {SUPPORTED}"),
    ({"end": "3000-01-01T00:00:00Z", "period": "P8000Y"},
     f"metricRequests[0].period: takes the range outside {SUPPORTED}"),
    ({"from": 0, "to": 253402300799}, f"metricRequests[0].to: is outside {SUPPORTED}"),
])
def test_ranges_outside_the_supported_instants_are_problems_at_their_field(fields, expected):
    problems = problems_of(with_range(**fields))
    assert any(p.startswith(expected) for p in problems), problems
    assert not any(p.startswith("metricRequests[0]:") for p in problems), problems


@pytest.mark.parametrize("start, end, tz", [
    ("1900-01-01T00:00:00Z", "1900-12-31T23:59:59Z", "Pacific/Pago_Pago"),  # UTC-11: local 1899
    ("9998-01-01T00:00:00Z", "9998-12-31T23:59:59.999999Z", "Pacific/Kiritimati"),  # local 9999
])
@pytest.mark.parametrize("period", ["year", "quarter", "week", "hour"])
def test_the_edges_of_the_supported_instants_validate_and_plan(start, end, tz, period):
    document = with_range(start=start, end=end, aggregationPeriod=period)
    document["format"] = {"timezone": tz}
    plan = plan_export(validate_document(document).request, "edges")
    windows = [t.query.window for t in plan.tasks]
    assert windows[0].start.isoformat().replace("+00:00", "Z") == start
    assert windows[-1].end.isoformat().replace("+00:00", "Z") == end
    assert all(a.end == b.start for a, b in zip(windows, windows[1:]))


@pytest.mark.parametrize("ds, expected", [
    ("P99999999Y", "a bucket is at most 100 years wide"),
    ("999999y", "a bucket is at most 100 years wide"),
    ("PT99999999999M", "a bucket is at most 100 years wide"),
    ("P101Y", "a bucket is at most 100 years wide"),
])
def test_absurd_bucket_widths_are_refused(ds, expected):
    document = copy.deepcopy(SEED_BODY)
    metric_request = document["metricRequests"][0]
    del metric_request["aggregationPeriod"]
    metric_request["decimation"] = {"ds": ds}
    assert f"metricRequests[0].decimation.ds: {ds!r}: {expected}" in problems_of(document)


def test_a_century_bucket_is_still_a_bucket():
    document = copy.deepcopy(SEED_BODY)
    metric_request = document["metricRequests"][0]
    del metric_request["aggregationPeriod"]
    metric_request["decimation"] = {"ds": "P100Y"}
    assert validate_document(document).request.metric_requests[0].granularity.count == 100


def test_decimation_and_aggregation_period_together_are_refused():
    document = copy.deepcopy(SEED_BODY)
    document["metricRequests"][0]["decimation"] = {"ds": "1h"}  # the seed says aggregationPeriod: day
    assert problems_of(document) == [
        "metricRequests[0].aggregationPeriod: give decimation (its ds sets the buckets) or "
        "aggregationPeriod, not both"
    ]


CONTROL = "must not contain control characters (NUL, tab, line break, escape…)"


@pytest.mark.parametrize("text", ["a\x00b", "tab\there", "two\nlines", "\x1b[31mred", "del\x7f", "c1\x85"])
def test_control_characters_are_refused_in_headings_and_ids(text):
    document = copy.deepcopy(SEED_BODY)
    document["csvFormat"]["columns"][0]["heading"] = "Date" + text
    document["csvFormat"]["columns"][1]["heading"] = text
    document["csvFormat"]["columns"][1]["metricId"] = text
    metric_request = document["metricRequests"][0]
    metric_request["metricId"] = text
    metric_request["entities"] = ["64a1b2c3d4e5f6a7b8c9d0e3", text]
    metric_request["entityType"] = text
    problems = problems_of(document)
    for path in ("csvFormat.columns[0].heading", "csvFormat.columns[1].heading",
                 "csvFormat.columns[1].metricId", "metricRequests[0].metricId",
                 "metricRequests[0].entities[1]", "metricRequests[0].entityType"):
        assert f"{path}: {CONTROL}" in problems, problems
    assert not any(p.startswith("metricRequests[0].entities[0]") for p in problems)
    assert len(problems) == 6, problems  # no echo of the odd heading by other rules


def test_control_characters_are_refused_in_the_request_id():
    document = {"data": {"id": "req\x00one", "body": copy.deepcopy(SEED_BODY)}}
    assert any(p.startswith("data.id:") for p in problems_of(document))


def test_headings_are_1_to_256_characters():
    document = copy.deepcopy(SEED_BODY)
    document["csvFormat"]["columns"][0]["heading"] = ""
    document["csvFormat"]["columns"][1]["heading"] = "x" * 1_000_000
    problems = problems_of(document)
    assert "csvFormat.columns[0].heading: String should have at least 1 character" in problems
    assert "csvFormat.columns[1].heading: String should have at most 256 characters" in problems
    assert all(len(p) < 400 for p in problems)  # the megabyte is not echoed back
    document["csvFormat"]["columns"][0]["heading"] = "Date"
    document["csvFormat"]["columns"][1]["heading"] = "é" * 256
    validate_document(document)


def test_unicode_text_is_fine():
    document = copy.deepcopy(SEED_BODY)
    document["csvFormat"]["columns"][1]["heading"] = "Entrées – 東京 😀"
    document["metricRequests"][0]["entityType"] = "magasin é"
    request = validate_document(document).request
    assert request.csv_format.columns[1].heading == "Entrées – 東京 😀"
    assert request.metric_requests[0].entity_type == "magasin é"


def test_control_characters_are_refused_in_labels_shown_on_the_report():
    document = copy.deepcopy(SEED_BODY)
    document["metricRequests"][0]["name"] = "Entries\x00"
    document["format"] = {"extension": "pdf", "title": "Report\x1b[2J"}
    problems = problems_of(document)
    assert f"metricRequests[0].name: {CONTROL}" in problems
    assert f"format.title: {CONTROL}" in problems
