"""The cost of a request, known at validation: buckets, rows, columns and store reads counted
from the request alone, and refused above the limits with the path of what to change."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone

import pytest

from export_pipeline_tests.support.requests import SEED_BODY
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import validate_document
from export_pipeline.contract.cost import estimate
from export_pipeline.saved_exports.definitions import parse_saved_export
from export_pipeline.settings import LimitSettings
from export_pipeline.timeline.periods import AggregationPeriod, Granularity, bucket_count


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.mark.parametrize("start, end, period, tz, expected", [
    ("2024-04-01T00:00:00Z", "2024-04-30T23:59:59Z", "day", "UTC", 30),
    ("2024-04-01T00:00:00Z", "2024-04-30T23:59:59Z", "day", "America/New_York", 31),  # Mar 31 local
    ("2024-03-01T00:00:00+01:00", "2024-03-31T23:59:59+02:00", "hour", "Europe/Paris", 31 * 24 - 1),
    ("2024-10-01T00:00:00+02:00", "2024-10-31T23:59:59+01:00", "hour", "Europe/Paris", 31 * 24 + 1),
    ("2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z", "week", "UTC", 53),  # Monday to a Tuesday
    ("2024-01-03T00:00:00Z", "2024-01-07T23:59:59Z", "week", "UTC", 1),  # Wednesday to Sunday
    ("2024-01-03T00:00:00Z", "2024-01-08T00:00:00Z", "week", "UTC", 2),
    ("2024-02-15T00:00:00Z", "2024-11-15T00:00:00Z", "quarter", "UTC", 4),
    ("2024-02-15T00:00:00Z", "2024-11-15T00:00:00Z", "month", "UTC", 10),
    ("2023-12-31T23:00:00Z", "2024-01-01T00:30:00Z", "year", "UTC", 2),
    ("2023-12-31T23:00:00Z", "2024-01-01T00:30:00Z", "year", "Europe/Berlin", 1),  # both 2024 local
    ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "minute", "UTC", 1),
])
def test_bucket_count(start, end, period, tz, expected):
    assert bucket_count(utc(start), utc(end), AggregationPeriod(period), tz) == expected


def test_bucket_count_of_a_century_of_minutes_is_arithmetic():
    start, end = utc("1950-01-01T00:00:00Z"), utc("2049-12-31T23:59:00Z")
    expected = (date(2050, 1, 1) - date(1950, 1, 1)).days * 24 * 60
    assert bucket_count(start, end, AggregationPeriod.minute) == expected


@pytest.mark.parametrize("granularity, expected", [
    (Granularity(AggregationPeriod.minute, 15), 4 * 24),
    (Granularity(AggregationPeriod.hour, 2), 12),
    (Granularity(AggregationPeriod.month, 2), 1),  # Jan+Feb share a two-month bucket
])
def test_bucket_count_of_multiples(granularity, expected):
    assert bucket_count(utc("2024-01-01T00:00:00Z"), utc("2024-01-01T23:59:59Z"), granularity) == expected


def body(**metric_request) -> dict:
    document = copy.deepcopy(SEED_BODY)
    document["metricRequests"][0].update(metric_request)
    return document


def with_entities(document: dict, count: int) -> dict:
    document["metricRequests"][0]["entities"] = [f"e{i:07d}" for i in range(count)]
    return document


def layout(document: dict, output_format: str, **fmt) -> dict:
    document["format"] = {"outputFormat": output_format, **fmt}
    if output_format == "crosstab":
        document["csvFormat"]["columns"].insert(1, {"heading": "Entity"})
        document["csvFormat"]["sortBy"] = []
    return document


def test_the_seed_costs_what_it_returns():
    cost = estimate(validate_document(copy.deepcopy(SEED_BODY)).request)
    assert (cost.rows, cost.columns, cost.buckets, cost.series, cost.windows) == (30, 2, 30, 1, (1,))


def test_rows_are_buckets_times_named_entities_and_windows_are_the_range_guards():
    document = with_entities(body(start="2024-01-01T00:00:00Z", end="2024-12-31T23:59:59Z"), 7)
    cost = estimate(validate_document(document).request)
    # 366 days; 90-day windows cut at Mar 31, Jun 29, Sep 27 and Dec 26
    assert (cost.rows, cost.buckets, cost.series, cost.windows) == (366 * 7, 366, 7, (5,))


def test_wide_is_a_column_per_entity_and_metric_column():
    document = layout(with_entities(body(), 40), "wide")
    cost = estimate(validate_document(document).request)
    assert (cost.rows, cost.columns) == (30, 1 + 40)


def test_crosstab_is_a_column_per_bucket():
    document = layout(with_entities(body(aggregationPeriod="hour"), 3), "crosstab")
    cost = estimate(validate_document(document).request)
    assert (cost.rows, cost.columns) == (3, 1 + 30 * 24)


def problems_of(document, limits: LimitSettings | None = None) -> list[str]:
    with pytest.raises(InvalidRequest) as error:
        validate_document(document, limits=limits)
    return [str(p) for p in error.value.problems]


def test_minute_buckets_over_a_century_are_refused_before_anything_runs():
    document = body(start="1950-01-01T00:00:00Z", end="2049-12-31T23:59:59Z", aggregationPeriod="minute")
    minutes = (date(2050, 1, 1) - date(1950, 1, 1)).days * 24 * 60
    [problem] = problems_of(document)
    assert problem.startswith(
        f"metricRequests: the long export would have about {minutes:,} rows ({minutes:,} buckets "
        "of minute); at most 10,000,000 (EXPORT_MAX_ROWS)"
    )


def test_a_crosstab_of_a_million_and_a_half_columns_is_refused():
    document = layout(body(start="2024-01-01T00:00:00Z", end="2026-11-07T23:59:59Z",
                           aggregationPeriod="minute"), "crosstab")
    columns = 1 + (date(2026, 11, 8) - date(2024, 1, 1)).days * 24 * 60  # Entity, then minutes
    assert columns > 1_500_000
    problems = problems_of(document)
    assert any(p.startswith(f"format.outputFormat: the crosstab layout would have {columns:,} columns")
               for p in problems), problems


def test_an_xlsx_crosstab_wider_than_excel_is_refused_at_validation():
    document = layout(body(start="1980-01-01T00:00:00Z", end="2029-12-31T23:59:59Z"),
                      "crosstab", extension="xlsx")
    columns = 1 + (date(2030, 1, 1) - date(1980, 1, 1)).days
    wider = LimitSettings(columns=100_000)
    assert problems_of(document, wider) == [
        f"format.extension: the crosstab export would have {columns:,} columns and an Excel "
        "sheet holds 16,384: use csv, the long layout, or fewer entities or buckets"
    ]
    document["format"]["extension"] = "csv"
    validate_document(document, limits=wider)  # a csv may be that wide


def test_too_many_entity_ids_are_refused_at_the_entities():
    problems = problems_of(with_entities(body(), 800_000))
    assert problems == [
        "metricRequests[0].entities: 800,000 entity ids; a metric request names at most 10,000 "
        "(EXPORT_MAX_ENTITIES): leave entities out for all of them, or filter by entityType"
    ]


def test_too_many_columns_are_refused_at_the_columns():
    document = body()
    document["csvFormat"]["columns"] += [
        {"heading": f"Entries {i}", "metricId": "entries-by-day", "fetchValue": "entries"}
        for i in range(200_000)
    ]
    assert problems_of(document) == [
        "csvFormat.columns: 200,002 columns; a file has at most 10,000 (EXPORT_MAX_COLUMNS)"
    ]


def test_too_many_store_reads_are_refused_at_the_metric_request():
    document = body(start="1900-01-01T00:00:00Z", end="2399-12-31T23:59:59Z", aggregationPeriod="year")
    problems = problems_of(document)
    assert len(problems) == 1 and problems[0].startswith("metricRequests[0]: its range takes ")
    assert "at most 2,000 (EXPORT_MAX_WINDOWS)" in problems[0]


def test_store_reads_add_up_over_metric_requests():
    document = body(start="2020-01-01T00:00:00Z", end="2023-12-31T23:59:59Z")
    second = copy.deepcopy(document["metricRequests"][0])
    second["metricId"] = "other"
    document["metricRequests"].append(second)
    cost = estimate(validate_document(document).request)
    assert cost.windows == (17, 17)  # 1,461 days in windows of 90 days or less
    assert problems_of(document, LimitSettings(windows=20)) == [
        "metricRequests: the metric requests take 34 store reads of at most 90 days together; "
        "an export makes at most 20 (EXPORT_MAX_WINDOWS)"
    ]


def test_too_many_metric_requests_are_refused():
    document = body()
    document["metricRequests"] = [
        dict(document["metricRequests"][0], metricId=f"m{i}") for i in range(101)
    ]
    document["csvFormat"]["columns"][1]["metricId"] = "m0"
    assert problems_of(document) == [
        "metricRequests: 101 metric requests; an export takes at most 100 (EXPORT_MAX_METRIC_REQUESTS)"
    ]


def test_cells_are_rows_times_columns():
    document = with_entities(body(), 100)  # 3,000 rows x 2 columns
    assert problems_of(document, LimitSettings(cells=5_999)) == [
        "metricRequests: the long export would have about 6,000 cells (3,000 rows x 2 columns); "
        "at most 5,999 (EXPORT_MAX_CELLS)"
    ]
    validate_document(document, limits=LimitSettings(cells=6_000))


def test_the_previous_period_of_a_pdf_comparison_doubles_the_reads():
    document = body(start="2024-01-01T00:00:00Z", end="2024-12-31T23:59:59Z")
    document["format"] = {"extension": "pdf", "comparePrevious": True}
    assert estimate(validate_document(document).request).windows == (10,)


def test_limits_follow_the_settings(monkeypatch):
    monkeypatch.setenv("EXPORT_MAX_ROWS", "29")
    assert LimitSettings().rows == 29
    assert problems_of(copy.deepcopy(SEED_BODY), LimitSettings())[0].startswith(
        "metricRequests: the long export would have about 30 rows"
    )


def test_envelope_paths_carry_the_body_prefix():
    document = {"data": {"id": "big", "body": with_entities(body(), 10_001)}}
    assert problems_of(document)[0].startswith("data.body.metricRequests[0].entities: 10,001")


def test_saved_exports_are_costed_over_their_longest_partition():
    request = body(aggregationPeriod="minute")
    for metric_request in request["metricRequests"]:
        del metric_request["start"], metric_request["end"]
    with_entities(request, 300)  # a 31-day month of minutes x 300 = 13.4 million rows
    definition = {"name": "minutes", "start": "2024-04-01", "timezone": "UTC", "request": request}
    parse_saved_export(dict(definition, cadence="daily"))  # a day: 432,000 rows
    with pytest.raises(InvalidRequest) as error:
        parse_saved_export(dict(definition, cadence="monthly"))
    [problem] = error.value.problems
    assert problem.path == "request.metricRequests"
    assert "(EXPORT_MAX_ROWS)" in problem.message


def test_a_previous_period_before_year_one_is_a_problem_not_an_overflow():
    document = body(start="1900-01-01T00:00:00Z", end="3999-12-31T00:00:00Z", aggregationPeriod="year")
    document["format"] = {"extension": "pdf", "comparePrevious": True}
    assert problems_of(document, LimitSettings(windows=1_000_000)) == [
        "format.comparePrevious: the previous period of this range would begin before year 1; "
        "compare a shorter range"
    ]
