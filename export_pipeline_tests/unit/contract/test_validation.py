"""Request validation: every rule, its JSON path and message, and all problems in one pass."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any

import pytest

from export_pipeline.store.source import StoreSchema
from export_pipeline.timeline.periods import AggregationPeriod
from export_pipeline.contract.problems import InvalidRequest, Problem
from export_pipeline.contract.validation import ValidatedRequest, validate_document
from export_pipeline_tests.support.helpers import utc

# Seed 000's example request, verbatim.
SEED_ENVELOPE_TEXT = """
{
  "action": "external-service",
  "data": {
    "id": "req-csv-001",
    "route": "external-service/csv-generator",
    "body": {
      "csvFormat": {
        "columns": [
          { "heading": "Date" },
          { "heading": "Entries", "metricId": "entries-by-day", "fetchValue": "entries" }
        ],
        "sortBy": [0],
        "rowFilters": ["entity"]
      },
      "metricRequests": [
        {
          "metricId": "entries-by-day",
          "name": "Entries by day",
          "start": "2024-04-01T00:00:00.000Z",
          "end":   "2024-04-30T23:59:59.000Z",
          "entities": ["64a1b2c3d4e5f6a7b8c9d0e3"],
          "entityType": "location",
          "facets": ["segments"],
          "aggregationPeriod": "day"
        }
      ]
    }
  }
}
"""

# The names of the demo store (see ``demo_store``).
SCHEMA = StoreSchema(
    dimensions=("entity_type", "segments", "age", "taxonomy"),
    measures=("entries", "exits", "sales_volume"),
)
KNOWN_DIMENSIONS = "entity, entity_type, segments, age, taxonomy"


def envelope() -> dict[str, Any]:
    return json.loads(SEED_ENVELOPE_TEXT)


def body() -> dict[str, Any]:
    return envelope()["data"]["body"]


def problems_of(document: Any, schema: StoreSchema | None = None) -> list[Problem]:
    with pytest.raises(InvalidRequest) as caught:
        validate_document(document, schema)
    assert caught.value.problems, "InvalidRequest must carry at least one problem"
    return caught.value.problems


def only_problem(document: Any, schema: StoreSchema | None = None) -> Problem:
    problems = problems_of(document, schema)
    assert len(problems) == 1, problems
    return problems[0]


def assert_problem(problems: list[Problem], path: str, *fragments: str) -> None:
    at_path = [p for p in problems if p.path == path]
    assert at_path, f"no problem at {path!r}; got {problems}"
    assert any(all(f in p.message for f in fragments) for p in at_path), (
        f"no problem at {path!r} mentions {fragments}; got {at_path}"
    )


def second_request(doc: dict, **changes: Any) -> dict:
    extra = copy.deepcopy(doc["metricRequests"][0])
    extra.update({"metricId": "exits-by-day", **changes})
    doc["metricRequests"].append(extra)
    return extra


# --- the seed ---------------------------------------------------------------------------------


def test_seed_body_validates_verbatim():
    validated = validate_document(body())
    assert isinstance(validated, ValidatedRequest)
    assert validated.request_id is None
    request = validated.request
    assert [c.heading for c in request.csv_format.columns] == ["Date", "Entries"]
    assert request.csv_format.sort_by == [0]
    assert request.csv_format.row_filters == ["entity"]
    (metric_request,) = request.metric_requests
    assert metric_request.metric_id == "entries-by-day"
    assert metric_request.start == utc(2024, 4, 1)
    assert metric_request.end == utc(2024, 4, 30, 23, 59, 59)
    assert metric_request.entities == ["64a1b2c3d4e5f6a7b8c9d0e3"]
    assert metric_request.entity_type == "location"
    assert metric_request.facets == ["segments"]
    assert metric_request.aggregation_period is AggregationPeriod.day


def test_seed_envelope_validates_verbatim_and_its_id_becomes_the_request_id():
    validated = validate_document(envelope())
    assert validated.request_id == "req-csv-001"
    assert validated.request == validate_document(body()).request


def test_the_packaged_example_is_the_seed_verbatim():
    packaged = files("export_pipeline").joinpath("examples/seed_000_request.json").read_text()
    assert json.loads(packaged) == envelope()
    assert validate_document(json.loads(packaged), SCHEMA).request_id == "req-csv-001"


def test_seed_validates_against_the_demo_store_schema():
    assert validate_document(envelope(), SCHEMA).request_id == "req-csv-001"


def test_instants_are_converted_to_utc():
    doc = body()
    doc["metricRequests"][0]["start"] = "2024-04-01T02:00:00+02:00"
    request = validate_document(doc).request
    start = request.metric_requests[0].start
    assert start == utc(2024, 4, 1)
    assert start.utcoffset() == timezone.utc.utcoffset(None)


# --- sortBy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [2, 5, -1])
def test_sort_index_out_of_range(index):
    doc = body()
    doc["csvFormat"]["sortBy"] = [index]
    problem = only_problem(doc)
    assert problem == Problem(
        "csvFormat.sortBy[0]", f"index {index} is out of range (2 columns)"
    )
    assert str(problem) == f"csvFormat.sortBy[0]: index {index} is out of range (2 columns)"


def test_sort_by_objects_is_rejected_with_a_hint_that_it_takes_indices():
    doc = body()
    doc["csvFormat"]["sortBy"] = [{"column": 0, "direction": "asc"}]
    problem = only_problem(doc)
    assert problem.path == "csvFormat.sortBy[0]"
    assert "column indices" in problem.message
    assert "not objects" in problem.message


@pytest.mark.parametrize("value", ["0", 1.5, True, None, [0]])
def test_sort_index_must_be_an_integer(value):
    doc = body()
    doc["csvFormat"]["sortBy"] = [0, value]
    assert only_problem(doc) == Problem("csvFormat.sortBy[1]", "must be an integer")


def test_duplicate_sort_index():
    doc = body()
    doc["csvFormat"]["sortBy"] = [1, 0, 1]
    assert only_problem(doc) == Problem(
        "csvFormat.sortBy[2]", "index 1 is already listed at sortBy[0]"
    )


def test_sort_by_is_required_but_may_be_empty():
    doc = body()
    doc["csvFormat"]["sortBy"] = []
    validate_document(doc)
    del doc["csvFormat"]["sortBy"]
    assert only_problem(doc) == Problem("csvFormat.sortBy", "required")


# --- rowFilters -------------------------------------------------------------------------------


def test_row_filters_must_not_be_empty():
    doc = body()
    doc["csvFormat"]["rowFilters"] = []
    assert only_problem(doc) == Problem("csvFormat.rowFilters", "must not be empty")


def test_row_filters_are_required():
    doc = body()
    del doc["csvFormat"]["rowFilters"]
    assert only_problem(doc) == Problem("csvFormat.rowFilters", "required")


def test_duplicate_row_filter():
    doc = body()
    doc["csvFormat"]["rowFilters"] = ["entity", "age", "entity"]
    problem = only_problem(doc)
    assert problem.path == "csvFormat.rowFilters[2]"
    assert "'entity' is listed twice" in problem.message


def test_date_is_not_a_row_filter():
    doc = body()
    doc["csvFormat"]["rowFilters"] = ["entity", "date"]
    problem = only_problem(doc)
    assert problem.path == "csvFormat.rowFilters[1]"
    assert "'date' is always a row dimension" in problem.message


def test_unknown_row_filter_dimension_is_checked_against_the_schema():
    doc = body()
    doc["csvFormat"]["rowFilters"] = ["entity", "colour"]
    validate_document(doc)  # without a schema, any name may be a dimension
    assert only_problem(doc, SCHEMA) == Problem(
        "csvFormat.rowFilters[1]",
        f"unknown dimension 'colour' (the store has: {KNOWN_DIMENSIONS})",
    )


def test_known_row_filters_pass_the_schema_check():
    doc = body()
    doc["csvFormat"]["rowFilters"] = ["entity", "entity_type", "age", "taxonomy"]
    request = validate_document(doc, SCHEMA).request
    assert request.csv_format.row_filters == ["entity", "entity_type", "age", "taxonomy"]


# --- columns ----------------------------------------------------------------------------------


def test_columns_must_not_be_empty():
    doc = body()
    doc["csvFormat"]["columns"] = []
    doc["csvFormat"]["sortBy"] = []
    assert only_problem(doc) == Problem("csvFormat.columns", "must not be empty")


def test_column_metric_id_must_match_a_metric_request():
    doc = body()
    doc["csvFormat"]["columns"][1]["metricId"] = "entries-by-week"
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[1].metricId"
    assert "'entries-by-week' matches no metricRequests[].metricId" in problem.message
    assert "'entries-by-day'" in problem.message  # the known ids are listed


def test_column_metric_id_with_no_metric_ids_at_all():
    doc = body()
    del doc["metricRequests"][0]["metricId"]
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[1].metricId"
    assert "known: none" in problem.message


def test_fetch_value_is_required_with_a_metric_id():
    doc = body()
    del doc["csvFormat"]["columns"][1]["fetchValue"]
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[1].fetchValue"
    assert "required when metricId is set" in problem.message


def test_fetch_value_and_filter_without_metric_id_are_rejected():
    doc = body()
    doc["csvFormat"]["columns"][0].update(fetchValue="entries", filter={"age": "18-24"})
    problems = problems_of(doc)
    assert {p.path for p in problems} == {
        "csvFormat.columns[0].fetchValue",
        "csvFormat.columns[0].filter",
    }
    for problem in problems:
        assert "only a column with a metricId takes one" in problem.message


@pytest.mark.parametrize(
    "column, row_filters",
    [
        ({"heading": "Date"}, ["entity"]),
        ({"heading": "  DATE "}, ["entity"]),
        ({"heading": "Entity"}, ["entity"]),
        ({"heading": "Age"}, ["entity", "age"]),
        ({"heading": "Age band", "field": "age"}, ["entity", "age"]),
        ({"heading": "Location", "field": "entity"}, ["entity"]),
        ({"heading": "Day", "field": "date"}, ["entity"]),
    ],
)
def test_dimension_columns_that_name_a_row_dimension(column, row_filters):
    doc = body()
    doc["csvFormat"]["columns"][0] = column
    doc["csvFormat"]["rowFilters"] = row_filters
    accepted = validate_document(doc).request.csv_format.columns[0]
    assert not accepted.is_metric
    assert accepted.dimension_name == column.get("field", column["heading"].strip().lower())


def test_dimension_column_heading_must_name_a_row_dimension():
    doc = body()
    doc["csvFormat"]["columns"][0] = {"heading": "Segment"}
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[0].heading"
    assert "'segment' is none of them" in problem.message  # the heading, lower-cased
    assert "'date'" in problem.message and "'entity'" in problem.message
    assert "metricId" in problem.message and "rowFilters" in problem.message


def test_dimension_column_field_must_name_a_row_dimension():
    doc = body()
    # field wins over the heading: "Date" would be fine, "segments" is not a row dimension
    doc["csvFormat"]["columns"][0] = {"heading": "Date", "field": "segments"}
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[0].field"
    assert "'segments' is none of them" in problem.message


def test_dimension_column_problem_names_each_known_dimension_once():
    doc = body()
    doc["csvFormat"]["columns"][0] = {"heading": "Segment"}
    problem = only_problem(doc)
    assert problem.message.count("'entity'") == 1, problem.message


def test_duplicate_headings():
    doc = body()
    doc["csvFormat"]["columns"].append(
        {"heading": "Entries", "metricId": "entries-by-day", "fetchValue": "exits"}
    )
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[2].heading"
    assert "'Entries' is already the heading of columns[1]" in problem.message


def test_filter_values_are_strings_or_non_empty_lists_of_strings():
    doc = body()
    doc["csvFormat"]["columns"][1]["filter"] = {"taxonomy": ["Products:Clothing", "Services"]}
    validate_document(doc, SCHEMA)
    doc["csvFormat"]["columns"][1]["filter"] = {"taxonomy": []}
    problem = only_problem(doc)
    assert problem.path == "csvFormat.columns[1].filter.taxonomy"
    assert "a string or a non-empty list of strings" in problem.message


# --- metric requests --------------------------------------------------------------------------


def test_metric_requests_must_not_be_empty():
    doc = body()
    doc["metricRequests"] = []
    problems = problems_of(doc)
    assert_problem(problems, "metricRequests", "must not be empty")


def test_metric_ids_are_unique():
    doc = body()
    second_request(doc, metricId="entries-by-day")
    assert only_problem(doc) == Problem(
        "metricRequests[1].metricId", "'entries-by-day' is already used by metricRequests[0]"
    )


@pytest.mark.parametrize("key", ["start", "end"])
@pytest.mark.parametrize("value", ["2024-04-01", "1 May 2024", 1711929600])
def test_instants_must_be_iso_8601_with_a_time(key, value):
    doc = body()
    doc["metricRequests"][0][key] = value
    if key == "start":
        doc["metricRequests"][0]["end"] = "2024-04-30T00:00:00Z"
    problem = only_problem(doc)
    assert problem.path == f"metricRequests[0].{key}"
    assert "ISO 8601 instant" in problem.message


@pytest.mark.parametrize("key", ["start", "end"])
def test_a_null_bound_is_a_missing_bound(key):
    doc = body()
    doc["metricRequests"][0][key] = None
    problem = only_problem(doc)
    assert problem.path == f"metricRequests[0].{key}"
    assert problem.message.startswith("required")


@pytest.mark.parametrize("key", ["start", "end"])
def test_naive_instants_are_rejected(key):
    doc = body()
    doc["metricRequests"][0][key] = "2024-04-10T00:00:00"
    problem = only_problem(doc)
    assert problem.path == f"metricRequests[0].{key}"
    assert "timezone" in problem.message


@pytest.mark.parametrize("key", ["start", "end"])
def test_instants_are_required(key):
    doc = body()
    del doc["metricRequests"][0][key]
    problem = only_problem(doc)
    assert problem.path == f"metricRequests[0].{key}"
    assert problem.message.startswith("required")


@pytest.mark.parametrize(
    "start, end",
    [
        ("2024-04-30T00:00:00Z", "2024-04-01T00:00:00Z"),  # after
        ("2024-04-01T00:00:00Z", "2024-04-01T00:00:00Z"),  # equal
        ("2024-04-01T02:00:00+02:00", "2024-04-01T00:00:00Z"),  # equal, other offset
        ("2024-04-01T00:30:00Z", "2024-04-01T01:00:00+01:00"),  # after, other offset
    ],
)
def test_start_must_be_before_end(start, end):
    doc = body()
    doc["metricRequests"][0].update(start=start, end=end)
    problem = only_problem(doc)
    assert problem.path == "metricRequests[0].end"
    assert "must be after start" in problem.message


def test_start_before_end_is_compared_as_instants():
    doc = body()
    # 23:00 UTC on March 31st, before midnight UTC although its wall clock reads later
    doc["metricRequests"][0].update(start="2024-04-01T01:00:00+02:00", end="2024-04-01T00:00:00Z")
    accepted = validate_document(doc).request.metric_requests[0]
    assert accepted.start == datetime(2024, 3, 31, 23, tzinfo=timezone.utc)
    assert accepted.end == datetime(2024, 4, 1, tzinfo=timezone.utc)


def test_start_after_end_is_rejected_whatever_the_instant_spelling():
    doc = body()
    doc["metricRequests"][0].update(start="2024-05-01t00:00:00z", end="2024-04-01T00:00:00Z")
    assert_problem(problems_of(doc), "metricRequests[0].end", "must be after start")


@pytest.mark.parametrize("period", [p.value for p in AggregationPeriod])
def test_every_aggregation_period_is_accepted(period):
    doc = body()
    doc["metricRequests"][0]["aggregationPeriod"] = period
    assert validate_document(doc).request.metric_requests[0].aggregation_period.value == period


def test_aggregation_period_defaults_to_day():
    doc = body()
    del doc["metricRequests"][0]["aggregationPeriod"]
    assert validate_document(doc).request.metric_requests[0].aggregation_period is AggregationPeriod.day


@pytest.mark.parametrize("period", ["fortnight", "Day", "daily", ""])
def test_unknown_aggregation_period(period):
    doc = body()
    doc["metricRequests"][0]["aggregationPeriod"] = period
    problem = only_problem(doc)
    assert problem.path == "metricRequests[0].aggregationPeriod"
    assert f"{period!r} is not one of" in problem.message
    for name in ("minute", "hour", "day", "week", "month", "quarter", "year"):
        assert repr(name) in problem.message


def test_mixed_aggregation_periods_are_rejected():
    doc = body()
    second_request(doc, aggregationPeriod="week")
    problem = only_problem(doc)
    assert problem.path == "metricRequests[1].aggregationPeriod"
    assert "must match metricRequests[0] ('day')" in problem.message


def test_an_omitted_aggregation_period_is_day_when_comparing():
    doc = body()
    extra = second_request(doc)
    del extra["aggregationPeriod"]
    accepted = validate_document(doc).request  # day and (default) day agree
    assert [m.aggregation_period for m in accepted.metric_requests] == [AggregationPeriod.day] * 2
    del doc["metricRequests"][0]["aggregationPeriod"]
    extra["aggregationPeriod"] = "month"
    assert_problem(problems_of(doc), "metricRequests[1].aggregationPeriod", "must match")


# --- unknown fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where, path",
    [
        (lambda d: d, "sortby"),
        (lambda d: d["csvFormat"], "csvFormat.sortby"),
        (lambda d: d["csvFormat"]["columns"][1], "csvFormat.columns[1].sortby"),
        (lambda d: d["metricRequests"][0], "metricRequests[0].sortby"),
    ],
)
def test_unknown_fields_are_rejected(where, path):
    doc = body()
    where(doc)["sortby"] = [0]
    assert only_problem(doc) == Problem(path, "unknown field")


def test_snake_case_field_names_are_unknown_on_the_wire():
    doc = body()
    doc["csvFormat"]["columns"][1]["fetch_value"] = "exits"
    assert only_problem(doc) == Problem("csvFormat.columns[1].fetch_value", "unknown field")


def test_required_top_level_fields():
    problems = problems_of({})
    assert set(problems) == {
        Problem("csvFormat", "required"),
        Problem("metricRequests", "required"),
    }


# --- names checked against the store schema ---------------------------------------------------


def test_fetch_value_must_be_a_store_measure():
    doc = body()
    doc["csvFormat"]["columns"][1]["fetchValue"] = "visits"
    validate_document(doc)
    assert only_problem(doc, SCHEMA) == Problem(
        "csvFormat.columns[1].fetchValue",
        "unknown measure 'visits' (the store has: entries, exits, sales_volume)",
    )


def test_a_dimension_is_not_a_measure():
    doc = body()
    doc["csvFormat"]["columns"][1]["fetchValue"] = "age"
    assert only_problem(doc, SCHEMA).path == "csvFormat.columns[1].fetchValue"


def test_facets_must_be_store_dimensions():
    doc = body()
    doc["metricRequests"][0]["facets"] = ["segments", "mood"]
    assert only_problem(doc, SCHEMA) == Problem(
        "metricRequests[0].facets[1]",
        f"unknown dimension 'mood' (the store has: {KNOWN_DIMENSIONS})",
    )


def test_filter_keys_must_be_store_dimensions():
    doc = body()
    doc["csvFormat"]["columns"][1]["filter"] = {
        "taxonomy": "Products:Clothing", "entity": "x", "colour": "red",
    }
    assert only_problem(doc, SCHEMA) == Problem(
        "csvFormat.columns[1].filter.colour",
        f"unknown dimension 'colour' (the store has: {KNOWN_DIMENSIONS})",
    )


# --- the envelope -----------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["a", "A1", "req.2024_04-15", "9" * 128])
def test_valid_envelope_ids(request_id):
    doc = envelope()
    doc["data"]["id"] = request_id
    assert validate_document(doc).request_id == request_id


@pytest.mark.parametrize(
    "request_id", ["", "../etc/passwd", "-leading-dash", ".hidden", "has space", "a/b", "x" * 129, 42]
)
def test_invalid_envelope_ids(request_id):
    doc = envelope()
    doc["data"]["id"] = request_id
    problem = only_problem(doc)
    assert problem.path == "data.id"
    assert "letters, digits" in problem.message


def test_envelope_without_id_has_no_request_id():
    doc = envelope()
    del doc["data"]["id"]
    assert validate_document(doc).request_id is None


def test_envelope_with_the_wrong_route():
    doc = envelope()
    doc["data"]["route"] = "external-service/pdf-generator"
    problem = only_problem(doc)
    assert problem.path == "data.route"
    assert "'external-service/csv-generator'" in problem.message
    assert "not 'external-service/pdf-generator'" in problem.message


@pytest.mark.parametrize("missing_body", [None, [], "text"])
def test_envelope_without_a_body(missing_body):
    doc = envelope()
    if missing_body is None:
        del doc["data"]["body"]
    else:
        doc["data"]["body"] = missing_body
    problem = only_problem(doc)
    assert problem.path == "data.body"
    assert "required" in problem.message


def test_body_problems_in_an_envelope_are_prefixed_with_data_body():
    doc = envelope()
    doc["data"]["body"]["csvFormat"]["sortBy"] = [5]
    doc["data"]["body"]["metricRequests"][0]["aggregationPeriod"] = "fortnight"
    doc["data"]["body"]["metricRequests"][0]["facets"] = ["mood"]
    problems = problems_of(doc, SCHEMA)
    assert {p.path for p in problems} == {
        "data.body.csvFormat.sortBy[0]",
        "data.body.metricRequests[0].aggregationPeriod",
        "data.body.metricRequests[0].facets[0]",
    }
    assert_problem(problems, "data.body.csvFormat.sortBy[0]", "index 5 is out of range (2 columns)")


def test_envelope_problems_and_body_problems_are_reported_together():
    doc = envelope()
    doc["data"]["id"] = "no spaces allowed"
    doc["data"]["route"] = "elsewhere"
    doc["data"]["extra"] = True
    doc["trace"] = "abc"
    doc["data"]["body"]["csvFormat"]["columns"][1]["metricId"] = "nope"
    problems = problems_of(doc)
    assert {p.path for p in problems} == {
        "data.id", "data.route", "data.extra", "trace", "data.body.csvFormat.columns[1].metricId",
    }
    assert_problem(problems, "data.extra", "unknown field")
    assert_problem(problems, "trace", "unknown field")


def test_envelope_data_must_be_an_object():
    assert only_problem({"action": "external-service", "data": ["x"]}) == Problem(
        "data", "must be an object, not an array"
    )


@pytest.mark.parametrize(
    "document, kind",
    [([], "an array"), ("csv", "a string"), (None, "null"), (3, "a number"), (True, "a boolean")],
)
def test_a_document_must_be_an_object(document, kind):
    assert only_problem(document) == Problem("", f"a request is a JSON object, not {kind}")
    assert str(only_problem(document)) == f"a request is a JSON object, not {kind}"


# --- every problem at once --------------------------------------------------------------------


def test_every_problem_is_reported_at_once():
    doc = body()
    fmt = doc["csvFormat"]
    fmt["sortBy"] = [7, {"column": 1}]
    fmt["rowFilters"] = ["entity", "date", "colour"]
    fmt["columns"] = [
        {"heading": "Date"},
        {"heading": "Entries", "metricId": "entries-by-day", "fetchValue": "visits"},
        {"heading": "Entries", "metricId": "nope"},
        {"heading": "Mood", "filter": {"age": "18-24"}},
    ]
    doc["metricRequests"][0].update(
        start="2024-05-01T00:00:00Z", end="2024-04-01T00:00:00Z", facets=["segments", "mood"],
    )
    second_request(doc, metricId="entries-by-day", aggregationPeriod="hour", start="2024-04-01")
    doc["metricRequests"][1]["colour"] = "red"

    problems = problems_of(doc, SCHEMA)
    expected = {
        ("csvFormat.sortBy[0]", "index 7 is out of range (4 columns)"),
        ("csvFormat.sortBy[1]", "column indices"),
        ("csvFormat.rowFilters[1]", "'date' is always a row dimension"),
        ("csvFormat.rowFilters[2]", "unknown dimension 'colour'"),
        ("csvFormat.columns[1].fetchValue", "unknown measure 'visits'"),
        ("csvFormat.columns[2].heading", "already the heading of columns[1]"),
        ("csvFormat.columns[2].metricId", "matches no metricRequests[].metricId"),
        ("csvFormat.columns[2].fetchValue", "required when metricId is set"),
        ("csvFormat.columns[3].filter", "only a column with a metricId"),
        ("csvFormat.columns[3].heading", "'mood' is none of them"),
        ("metricRequests[0].end", "must be after start"),
        ("metricRequests[0].facets[1]", "unknown dimension 'mood'"),
        ("metricRequests[1].metricId", "already used by metricRequests[0]"),
        ("metricRequests[1].aggregationPeriod", "must match metricRequests[0]"),
        ("metricRequests[1].start", "ISO 8601 instant"),
        ("metricRequests[1].facets[1]", "unknown dimension 'mood'"),
        ("metricRequests[1].colour", "unknown field"),
    }
    for path, fragment in expected:
        assert_problem(problems, path, fragment)
    assert {p.path for p in problems} == {path for path, _ in expected}
    assert len(problems) == len(set(problems)), "a problem is reported twice"


def test_invalid_request_lists_every_problem_in_its_message():
    doc = body()
    doc["csvFormat"]["sortBy"] = [5]
    doc["csvFormat"]["rowFilters"] = []
    with pytest.raises(InvalidRequest) as caught:
        validate_document(doc)
    lines = str(caught.value).splitlines()
    assert "csvFormat.sortBy[0]: index 5 is out of range (2 columns)" in lines
    assert "csvFormat.rowFilters: must not be empty" in lines
    assert len(lines) == len(caught.value.problems)
