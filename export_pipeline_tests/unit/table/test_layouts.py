"""The crosstab layout holds exactly the long layout's numbers: a column for every bucket the
data can fall in (also across daylight-saving changes that are not a whole bucket), each value
written as the long layout writes it, and never a value dropped without an error."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import polars as pl
import pytest

from export_pipeline.contract.validation import validate_document
from export_pipeline.formats.csv_writer import iter_csv
from export_pipeline.planning import plan as planning
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.store.source import BUCKET
from export_pipeline.table import combine, layouts
from export_pipeline.timeline.periods import bucket_expr
from export_pipeline_tests.support.helpers import utc, write_store

BIG = 306_515_364_555_933_897  # more digits than a float holds


@pytest.fixture
def store(tmp_path):
    """Two entities with a reading every minute around the 2024 daylight-saving changes of
    Lord Howe (half an hour, April and October), New York (March and November), Santiago
    (midnight, September), Chatham (02:45 to 03:45) and the Azores (01:00 back to 00:00), plus an integer measure too large for a float and a float one."""
    minutes = pl.concat([
        pl.datetime_range(utc(2024, 4, 6, 10), utc(2024, 4, 6, 20), "1m", eager=True, time_zone="UTC"),
        pl.datetime_range(utc(2024, 10, 5, 10), utc(2024, 10, 5, 20), "1m", eager=True, time_zone="UTC"),
        pl.datetime_range(utc(2024, 11, 3), utc(2024, 11, 3, 16), "1m", eager=True, time_zone="UTC"),
        pl.datetime_range(utc(2024, 9, 6), utc(2024, 9, 10), "1m", eager=True, time_zone="UTC"),
        pl.datetime_range(utc(2024, 9, 28, 11), utc(2024, 9, 28, 18), "1m", eager=True, time_zone="UTC"),
        pl.datetime_range(utc(2024, 3, 10, 4), utc(2024, 3, 10, 10), "1m", eager=True, time_zone="UTC"),
        pl.datetime_range(utc(2024, 10, 25, 22), utc(2024, 10, 29, 2), "1m", eager=True, time_zone="UTC"),
    ]).unique().sort()
    frame = pl.concat([
        pl.DataFrame({"timestamp": minutes}).with_columns(
            entity_id=pl.lit(entity), entity_type=pl.lit("sensor"),
            value=(pl.int_range(pl.len()) * 7 % 13 - 9 + shift).cast(pl.Int64),
            big=pl.lit(BIG // 100, pl.Int64) + pl.int_range(pl.len()),
            ratio=pl.int_range(pl.len()).cast(pl.Float64) / 3 - 100,
        )
        for shift, entity in enumerate(["A", "B"])
    ])
    return write_store(tmp_path / "store", frame)


def body(layout: str, tz: str, start: str, end: str, *, measures=("value",), period=None, ds=None,
         transform=None) -> dict:
    request = {"metricId": "m", "start": start, "end": end, "entities": ["A", "B"]}
    request.update({"decimation": {"ds": ds, "dsf": "sum"}} if ds else {"aggregationPeriod": period})
    if transform:
        request["transform"] = transform
    return {
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Entity"}, *(
                {"heading": m, "metricId": "m", "fetchValue": m} for m in measures
            )],
            "sortBy": [], "rowFilters": ["entity"],
        },
        "metricRequests": [request],
        "format": {"timezone": tz, "outputFormat": layout},
    }


def export(store, document: dict) -> list[list[str]]:
    """The CSV rows of ``document``, read, fetched and combined in process."""
    source = ParquetMetricSource(store)
    request = validate_document(document, source.schema()).request
    fetched = defaultdict(list)
    for task in planning.plan_export(request, "t").tasks:
        fetched[task.request_index].append(source.fetch(task.query))
    table = combine.combine(request, fetched)
    return list(csv.reader(io.StringIO(b"".join(iter_csv(table)).decode())))


def crosstab_cells(rows: list[list[str]], labels: int) -> dict[tuple, str]:
    """``(date, row labels…) -> cell`` of a crosstab, with no date heading repeated."""
    header, *body_rows = rows
    dates = header[labels:]
    assert len(set(dates)) == len(dates), dates
    return {
        (date, *row[:labels]): cell
        for row in body_rows for date, cell in zip(dates, row[labels:])
    }


CASES = {
    "Lord Howe, hourly, autumn": ("Australia/Lord_Howe", "2024-04-06T10:00:00Z", "2024-04-06T20:00:00Z", "hour", None),
    "Lord Howe, hourly, spring": ("Australia/Lord_Howe", "2024-10-05T10:00:00Z", "2024-10-05T20:00:00Z", "hour", None),
    "Lord Howe, 90 minutes": ("Australia/Lord_Howe", "2024-04-06T10:00:00Z", "2024-04-06T20:00:00Z", None, "PT1H30M"),
    "New York, 2 hours": ("America/New_York", "2024-11-03T00:00:00Z", "2024-11-03T15:59:59Z", None, "2h"),
    "Santiago, daily": ("America/Santiago", "2024-09-06T12:00:00Z", "2024-09-09T12:00:00Z", "day", None),
    "Chatham, hourly, 03:00 skipped": ("Pacific/Chatham", "2024-09-28T11:00:00Z", "2024-09-28T18:00:00Z", "hour", None),
    "Azores, daily, midnight twice": ("Atlantic/Azores", "2024-10-25T22:00:00Z", "2024-10-29T02:00:00Z", "day", None),
    "New York, 40 minutes, 02:40 skipped": ("America/New_York", "2024-03-10T04:00:00Z", "2024-03-10T10:00:00Z", None, "40m"),
}


@pytest.mark.parametrize("case", CASES)
def test_crosstab_holds_every_value_of_the_long_layout(store, case):
    tz, start, end, period, ds = CASES[case]
    long = export(store, body("long", tz, start, end, period=period, ds=ds))
    crosstab = export(store, body("crosstab", tz, start, end, period=period, ds=ds))
    want = {(date, entity): value for date, entity, value in long[1:]}
    got = crosstab_cells(crosstab, 1)
    assert {k: v for k, v in got.items() if v != ""} == want
    assert {date for date, _ in want} <= set(crosstab[0][1:])


@pytest.mark.parametrize("case", CASES)
def test_the_columns_are_the_buckets_of_the_data(store, case):
    """Whatever the data holds: every minute of the range, bucketed, gives the columns."""
    tz, start, end, period, ds = CASES[case]
    schema = ParquetMetricSource(store).schema()
    request = validate_document(body("crosstab", tz, start, end, period=period, ds=ds), schema).request
    granularity = request.metric_requests[0].granularity
    minutes = pl.datetime_range(
        request.metric_requests[0].start, request.metric_requests[0].end, "1m", eager=True,
        time_zone="UTC",
    )
    span = (request.metric_requests[0].start, request.metric_requests[0].end)
    data = pl.select(bucket_expr(pl.lit(minutes), granularity, tz, span).unique().sort()).to_series()
    assert layouts.all_buckets(request).to_list() == data.to_list()


def test_integer_and_float_metrics_keep_their_digits(store):
    """Each cell as the long layout writes it: the integer with all its digits, a whole float
    with its ``.0``, and a negative number never taken for a formula."""
    document = dict(measures=("big", "ratio", "value"), period="hour")
    span = ("UTC", "2024-11-03T00:00:00Z", "2024-11-03T05:59:59Z")
    long = export(store, body("long", *span, **document))
    crosstab = export(store, body("crosstab", *span, **document))
    assert crosstab[0][:2] == ["Entity", "Metric"]
    want = {}
    for date, entity, big, ratio, value in long[1:]:
        want.update({(date, entity, "big"): big, (date, entity, "ratio"): ratio, (date, entity, "value"): value})
    assert crosstab_cells(crosstab, 2) == want
    cells = set(want.values())
    assert any(len(c) > 16 and c.isdigit() for c in cells)  # beyond a float's digits
    assert any(c.endswith(".0") for c in cells) and any(c.startswith("-") for c in cells)


@pytest.mark.parametrize("dtypes, cell", [
    ([pl.Int64, pl.Int64], pl.Int64),
    ([pl.Float64], pl.Float64),
    ([pl.Int32, pl.Int64], pl.Int64),
    ([pl.UInt32, pl.UInt8], pl.UInt32),
    ([pl.UInt32, pl.Int32], pl.Int64),
    ([pl.UInt64, pl.Int64], pl.Int128),
    ([pl.Int64, pl.Float64], pl.String),
    ([pl.Float32, pl.Float64], pl.String),  # a Float32 as Float64 is written with other digits
])
def test_cell_type_changes_no_value(dtypes, cell):
    assert layouts.cell_type(dtypes) == cell


def test_a_value_outside_every_column_is_an_error(monkeypatch, store):
    """Should the columns ever disagree with the data's buckets, the export fails rather than
    leave the value out."""
    real = layouts.all_buckets
    monkeypatch.setattr(layouts, "all_buckets", lambda request: real(request).slice(1))
    with pytest.raises(RuntimeError, match="no column"):
        export(store, body("crosstab", *CASES["Santiago, daily"][:3], period="day"))


def test_all_buckets_is_the_bucket_column_type(store):
    request = validate_document(
        body("crosstab", "America/Santiago", "2024-09-06T12:00:00Z", "2024-09-09T12:00:00Z", period="day"),
        ParquetMetricSource(store).schema(),
    ).request
    buckets = layouts.all_buckets(request)
    assert buckets.name == BUCKET and buckets.dtype == pl.Datetime("us", "America/Santiago")
    assert buckets.dt.strftime("%Y-%m-%d").to_list() == ["2024-09-06", "2024-09-07", "2024-09-08", "2024-09-09"]
