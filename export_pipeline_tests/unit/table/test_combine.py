"""Combining fetched frames into the export table: joins, filters, sort, date cells; and
combine's execution shortcuts (shared reads, already-aggregated frames, dates formatted per
distinct bucket) give exactly what the general path gives."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import polars as pl
import pytest

from export_pipeline.table.combine import (
    ExportTable,
    _format_dates,
    _sort_columns,
    column_name,
    combine,
    filter_expr,
    format_bucket,
    in_order,
)
from export_pipeline.timeline.periods import AggregationPeriod
from export_pipeline.contract.models import Column, ExportRequest
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import validate_document
from export_pipeline.planning import plan as planning
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline_tests.support.helpers import utc, write_store

UTC_TS = pl.Datetime("us", "UTC")


def metric_request(metric_id: str, period: str = "day") -> dict[str, Any]:
    return {
        "metricId": metric_id,
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-12-31T23:59:59Z",
        "aggregationPeriod": period,
    }


def make_request(
    columns: list[dict],
    metric_ids: list[str],
    *,
    sort_by: list[int] | None = None,
    row_filters: list[str] | None = None,
    period: str = "day",
) -> ExportRequest:
    """A request that passes validation, as every request reaching ``combine`` does."""
    document = {
        "csvFormat": {
            "columns": columns,
            "sortBy": sort_by if sort_by is not None else [],
            "rowFilters": row_filters or ["entity"],
        },
        "metricRequests": [metric_request(m, period) for m in metric_ids],
    }
    return validate_document(document).request


def frame(rows: list[tuple], dimensions: tuple[str, ...] = (), measures: tuple[str, ...] = ("m",)) -> pl.DataFrame:
    """A fetched frame, as ``MetricSource.fetch`` returns: bucket, entity_id, dims, measures."""
    schema = {
        "bucket": UTC_TS,
        "entity_id": pl.String,
        **{d: pl.String for d in dimensions},
        **{m: pl.Int64 for m in measures},
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def cells(table: ExportTable) -> list[tuple]:
    return table.frame.rows()


# --- joins ------------------------------------------------------------------------------------


def test_metric_requests_are_joined_in_full():
    request = make_request(
        [
            {"heading": "Date"},
            {"heading": "Entity"},
            {"heading": "A", "metricId": "a", "fetchValue": "m"},
            {"heading": "B", "metricId": "b", "fetchValue": "m"},
        ],
        ["a", "b"],
        sort_by=[0, 1],
    )
    a = frame([(utc(2024, 1, 1), "e1", 1), (utc(2024, 1, 2), "e1", 2)])
    b = frame([(utc(2024, 1, 2), "e1", 5), (utc(2024, 1, 3), "e2", 7)])
    table = combine(request, {0: [a], 1: [b]})
    assert table.headings == ["Date", "Entity", "A", "B"]
    assert table.frame.columns == [column_name(i) for i in range(4)]
    assert cells(table) == [
        ("2024-01-01", "e1", 1, None),  # missing from b: an empty cell, not a dropped row
        ("2024-01-02", "e1", 2, 5),
        ("2024-01-03", "e2", None, 7),  # missing from a
    ]
    assert table.rows == 3


def test_three_metric_requests_and_an_empty_one():
    request = make_request(
        [
            {"heading": "Date"},
            {"heading": "A", "metricId": "a", "fetchValue": "m"},
            {"heading": "B", "metricId": "b", "fetchValue": "m"},
            {"heading": "C", "metricId": "c", "fetchValue": "m"},
        ],
        ["a", "b", "c"],
        sort_by=[0],
    )
    a = frame([(utc(2024, 1, 1), "e1", 1)])
    b = frame([])
    c = frame([(utc(2024, 1, 2), "e1", 3), (utc(2024, 1, 1), "e1", 4)])
    assert cells(combine(request, {0: [a], 1: [b], 2: [c]})) == [
        ("2024-01-01", 1, None, 4),
        ("2024-01-02", None, None, 3),
    ]


def test_a_metric_request_without_columns_still_contributes_rows():
    request = make_request(
        [{"heading": "Date"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}],
        ["a", "b"],
        sort_by=[0],
    )
    a = frame([(utc(2024, 1, 1), "e1", 1)])
    b = frame([(utc(2024, 1, 1), "e1", 9), (utc(2024, 1, 5), "e1", 9)])
    assert cells(combine(request, {0: [a], 1: [b]})) == [("2024-01-01", 1), ("2024-01-05", None)]


def test_rows_are_summed_over_dimensions_that_are_not_row_filters():
    request = make_request(
        [{"heading": "Age"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}],
        ["a"],
        row_filters=["age"],
        sort_by=[0],
    )
    a = frame(
        [(utc(2024, 1, 1), "e1", "18-24", 1), (utc(2024, 1, 1), "e2", "18-24", 2),
         (utc(2024, 1, 1), "e2", "25-34", 4)],
        dimensions=("age",),
    )
    assert cells(combine(request, {0: [a]})) == [("18-24", 3), ("25-34", 4)]


def test_null_dimension_values_join_as_one_key():
    request = make_request(
        [
            {"heading": "Age"},
            {"heading": "A", "metricId": "a", "fetchValue": "m"},
            {"heading": "B", "metricId": "b", "fetchValue": "m"},
        ],
        ["a", "b"],
        row_filters=["entity", "age"],
    )
    a = frame([(utc(2024, 1, 1), "e1", None, 1)], dimensions=("age",))
    b = frame([(utc(2024, 1, 1), "e1", None, 2)], dimensions=("age",))
    assert cells(combine(request, {0: [a], 1: [b]})) == [(None, 1, 2)]


# --- column filters ---------------------------------------------------------------------------

TAXONOMY_ROWS = [
    ("Products:Clothing", 1),
    ("Products:Clothing:Shirts", 10),
    ("Products:ClothingX", 100),
    ("Products", 1000),
    ("Services:Alterations", 10000),
    ("Services", 100000),
]


def _taxonomy_frame() -> pl.DataFrame:
    return frame(
        [(utc(2024, 1, 1), "e1", taxonomy, value) for taxonomy, value in TAXONOMY_ROWS],
        dimensions=("taxonomy",),
    )


@pytest.mark.parametrize(
    "values, matched",
    [
        ("Products:Clothing", {"Products:Clothing", "Products:Clothing:Shirts"}),
        ("Products", {"Products", "Products:Clothing", "Products:Clothing:Shirts", "Products:ClothingX"}),
        ("Products:Clothing:Shirts", {"Products:Clothing:Shirts"}),
        ("Services:Alterations", {"Services:Alterations"}),
        ("Clothing", set()),
        (["Products:Clothing", "Services"], {"Products:Clothing", "Products:Clothing:Shirts", "Services", "Services:Alterations"}),
    ],
)
def test_filter_expr_is_hierarchical(values, matched):
    column = Column(heading="X", metric_id="a", fetch_value="m", filter={"taxonomy": values})
    got = _taxonomy_frame().filter(filter_expr(column))["taxonomy"].to_list()
    assert set(got) == matched


def test_filtered_columns():
    request = make_request(
        [
            {"heading": "All", "metricId": "a", "fetchValue": "m"},
            {"heading": "Clothing", "metricId": "a", "fetchValue": "m",
             "filter": {"taxonomy": "Products:Clothing"}},
            {"heading": "Clothing or services", "metricId": "a", "fetchValue": "m",
             "filter": {"taxonomy": ["Products:Clothing", "Services"]}},
            {"heading": "Footwear", "metricId": "a", "fetchValue": "m",
             "filter": {"taxonomy": "Products:Footwear"}},
        ],
        ["a"],
    )
    table = combine(request, {0: [_taxonomy_frame()]})
    # a filter that matches nothing gives an empty cell, not a zero
    assert cells(table) == [(111111, 1 + 10, 1 + 10 + 10000 + 100000, None)]


def test_filters_on_several_dimensions_must_all_match():
    request = make_request(
        [
            {"heading": "Young shirts", "metricId": "a", "fetchValue": "m",
             "filter": {"taxonomy": "Products:Clothing", "age": ["18-24", "25-34"]}},
        ],
        ["a"],
    )
    rows = [
        (utc(2024, 1, 1), "e1", "Products:Clothing:Shirts", "18-24", 1),
        (utc(2024, 1, 1), "e1", "Products:Clothing:Shirts", "25-34", 2),
        (utc(2024, 1, 1), "e1", "Products:Clothing:Shirts", "55+", 4),
        (utc(2024, 1, 1), "e1", "Services", "18-24", 8),
    ]
    table = combine(request, {0: [frame(rows, dimensions=("taxonomy", "age"))]})
    assert cells(table) == [(3,)]


def test_a_filter_on_the_entity():
    request = make_request(
        [{"heading": "Entity"}, {"heading": "E1 only", "metricId": "a", "fetchValue": "m",
                                 "filter": {"entity": "e1"}}],
        ["a"],
        sort_by=[0],
    )
    a = frame([(utc(2024, 1, 1), "e1", 1), (utc(2024, 1, 1), "e2", 2)])
    assert cells(combine(request, {0: [a]})) == [("e1", 1), ("e2", None)]


# --- sort -------------------------------------------------------------------------------------


def _sort_request(sort_by: list[int]) -> ExportRequest:
    return make_request(
        [
            {"heading": "Date"},
            {"heading": "Entity"},
            {"heading": "A", "metricId": "a", "fetchValue": "m"},
        ],
        ["a"],
        sort_by=sort_by,
    )


SORT_ROWS = [
    (utc(2024, 1, 2), "e2", 10),
    (utc(2024, 1, 1), "e3", None),
    (utc(2024, 1, 1), "e2", 9),
    (utc(2024, 1, 3), "e1", 100),
    (utc(2024, 1, 1), "e1", 10),
    (utc(2024, 1, 2), "e1", None),
]


def test_sort_by_a_metric_is_numeric_with_nulls_last_and_ties_broken_by_row_keys():
    table = combine(_sort_request([2]), {0: [frame(SORT_ROWS)]})
    assert cells(table) == [
        ("2024-01-01", "e2", 9),
        ("2024-01-01", "e1", 10),  # tie on 10: bucket first, then entity
        ("2024-01-02", "e2", 10),
        ("2024-01-03", "e1", 100),  # 100 after 10: numbers, not text
        ("2024-01-01", "e3", None),  # empty cells last, in row-key order
        ("2024-01-02", "e1", None),
    ]


def test_sort_by_two_columns():
    table = combine(_sort_request([1, 2]), {0: [frame(SORT_ROWS)]})
    assert cells(table) == [
        ("2024-01-01", "e1", 10),
        ("2024-01-03", "e1", 100),
        ("2024-01-02", "e1", None),
        ("2024-01-01", "e2", 9),
        ("2024-01-02", "e2", 10),
        ("2024-01-01", "e3", None),
    ]


def test_without_sort_by_rows_are_in_row_key_order():
    table = combine(_sort_request([]), {0: [frame(SORT_ROWS)]})
    assert [row[:2] for row in cells(table)] == [
        ("2024-01-01", "e1"), ("2024-01-01", "e2"), ("2024-01-01", "e3"),
        ("2024-01-02", "e1"), ("2024-01-02", "e2"), ("2024-01-03", "e1"),
    ]


def test_the_order_does_not_depend_on_the_input_order():
    forward = combine(_sort_request([2]), {0: [frame(SORT_ROWS)]})
    backward = combine(_sort_request([2]), {0: [frame(SORT_ROWS[::-1])]})
    assert cells(forward) == cells(backward)


def test_rows_fetched_out_of_order_are_sorted_and_in_order_ones_kept():
    shuffled = [SORT_ROWS[i] for i in (3, 0, 5, 1, 4, 2)]
    expected = cells(combine(_sort_request([]), {0: [frame(SORT_ROWS)]}))
    assert cells(combine(_sort_request([]), {0: [frame(shuffled)]})) == expected


@pytest.mark.parametrize(
    "a, b, ordered",
    [
        ([1, 2, 3], ["x", "x", "x"], True),
        ([1, 1, 2], ["a", "b", "a"], True),
        ([1, 1, 2], ["b", "a", "a"], False),  # a tie on the first column, broken wrongly
        ([2, 1, 3], ["a", "a", "a"], False),
        ([1, None, None], ["a", "a", "b"], True),  # nulls last; equal nulls fall to the next
        ([1, None, None], ["a", "b", "a"], False),
        ([None, 1, 2], ["a", "a", "a"], False),
        ([1, 2, 2], ["a", None, "b"], False),
        ([1, 2, 2], ["a", "b", None], True),
        ([1, 1, 1], ["a", "a", "a"], True),
        ([], [], True),
        ([5], ["z"], True),
    ],
)
def test_in_order(a, b, ordered):
    frame_ = pl.DataFrame({"a": a, "b": b}, schema={"a": pl.Int64, "b": pl.String})
    assert in_order(frame_, ["a", "b"]) is ordered


@pytest.mark.parametrize(
    "values, ordered",
    [
        ([1.0, float("nan"), float("nan"), None], True),  # as polars sorts: NaN last, then nulls
        ([float("nan"), 1.0], False),
        ([float("nan"), None, float("nan")], False),
    ],
)
def test_in_order_orders_nan_as_polars_sorts(values, ordered):
    frame_ = pl.DataFrame({"a": values}, schema={"a": pl.Float64})
    assert in_order(frame_, ["a"]) is ordered
    assert frame_.equals(frame_.sort("a", nulls_last=True)) is ordered


def test_in_order_agrees_with_a_sort_on_random_frames():
    import random

    rng = random.Random(3)
    for _ in range(300):
        n = rng.randrange(0, 12)
        frame_ = pl.DataFrame(
            {
                "a": [rng.choice([None, 1, 2, 3]) for _ in range(n)],
                "b": [rng.choice([None, "p", "q", "Q", "é"]) for _ in range(n)],
                "c": [rng.choice([None, -0.5, 2.0, float("nan")]) for _ in range(n)],
            },
            schema={"a": pl.Int64, "b": pl.String, "c": pl.Float64},
        )
        keys = rng.choice([["a", "b"], ["c", "a"], ["b", "c", "a"]])
        if rng.random() < 0.5:
            frame_ = frame_.sort(keys, nulls_last=True)
        assert in_order(frame_, keys) is frame_.select(keys).equals(
            frame_.select(keys).sort(keys, nulls_last=True)
        ), frame_.rows()


def test_dates_sort_as_dates_across_years():
    request = make_request(
        [{"heading": "Date"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}],
        ["a"], sort_by=[0], period="month",
    )
    a = frame([(utc(2024, 1, 1), "e1", 1), (utc(2023, 12, 1), "e1", 2), (utc(2023, 2, 1), "e1", 3)])
    assert cells(combine(request, {0: [a]})) == [("2023-02-01", 3), ("2023-12-01", 2), ("2024-01-01", 1)]


# --- date cells -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "period, bucket, text",
    [
        ("minute", utc(2024, 1, 2, 5, 7), "2024-01-02T05:07:00+00:00"),
        ("hour", utc(2024, 1, 2, 5), "2024-01-02T05:00:00+00:00"),
        ("day", utc(2024, 1, 2), "2024-01-02"),
        ("week", utc(2024, 1, 1), "2024-01-01"),
        ("month", utc(2024, 2, 1), "2024-02-01"),
        ("quarter", utc(2024, 4, 1), "2024-04-01"),
        ("year", utc(2024, 1, 1), "2024-01-01"),
    ],
)
def test_date_cells(period, bucket, text):
    request = make_request(
        [{"heading": "Date"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}],
        ["a"], period=period,
    )
    table = combine(request, {0: [frame([(bucket, "e1", 1)])]})
    assert cells(table) == [(text, 1)]
    assert table.frame.schema[column_name(0)] == pl.String


# --- windows --------------------------------------------------------------------------------


def test_a_bucket_split_across_windows_is_added_up_again():
    # A quarter is longer than the 90-day cap: its windows are cut on months, and each window
    # returns a partial sum for the same bucket.
    request = make_request(
        [{"heading": "Date"}, {"heading": "Entity"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}],
        ["a"], sort_by=[1], period="quarter",
    )
    first = frame([(utc(2024, 1, 1), "e1", 3), (utc(2024, 1, 1), "e2", None), (utc(2024, 1, 1), "e3", None)])
    second = frame([(utc(2024, 1, 1), "e1", 4), (utc(2024, 1, 1), "e2", 5), (utc(2024, 1, 1), "e3", None),
                    (utc(2024, 4, 1), "e1", 6)])
    third = frame([(utc(2024, 4, 1), "e1", 7)])
    table = combine(request, {0: [first, second, third]})
    assert cells(table) == [
        ("2024-01-01", "e1", 7),
        ("2024-04-01", "e1", 13),
        ("2024-01-01", "e2", 5),
        ("2024-01-01", "e3", None),  # nothing in any window stays empty
    ]


def test_window_frames_with_differing_integer_types_stack():
    request = make_request(
        [{"heading": "Date"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}], ["a"],
    )
    first = frame([(utc(2024, 1, 1), "e1", 1)]).with_columns(pl.col("m").cast(pl.Int32))
    second = frame([(utc(2024, 1, 1), "e1", 2)])
    assert cells(combine(request, {0: [first, second]})) == [("2024-01-01", 3)]


# --- dimension columns ------------------------------------------------------------------------


def test_dimension_columns_by_field_and_heading():
    request = make_request(
        [
            {"heading": "When", "field": "date"},
            {"heading": "Location", "field": "entity"},
            {"heading": "Age band", "field": "age"},
            {"heading": "Age"},
            {"heading": " ENTITY "},
            {"heading": "A", "metricId": "a", "fetchValue": "m"},
        ],
        ["a"],
        row_filters=["entity", "age"],
        sort_by=[2],
    )
    a = frame(
        [(utc(2024, 1, 1), "e1", "25-34", 1), (utc(2024, 1, 1), "e1", "18-24", 2)],
        dimensions=("age",),
    )
    table = combine(request, {0: [a]})
    assert table.headings == ["When", "Location", "Age band", "Age", " ENTITY ", "A"]
    assert cells(table) == [
        ("2024-01-01", "e1", "18-24", "18-24", "e1", 2),
        ("2024-01-01", "e1", "25-34", "25-34", "e1", 1),
    ]


def test_an_entity_column_needs_the_entity_row_filter():
    document = {
        "csvFormat": {
            "columns": [{"heading": "Entity"}, {"heading": "A", "metricId": "a", "fetchValue": "m"}],
            "sortBy": [],
            "rowFilters": ["age"],
        },
        "metricRequests": [metric_request("a")],
    }
    with pytest.raises(InvalidRequest) as error:
        validate_document(document)
    assert any(p.path == "csvFormat.columns[0].heading" for p in error.value.problems)


def test_the_table_keeps_the_cells_only():
    request = _sort_request([0])
    table = combine(request, {0: [frame(SORT_ROWS)]})
    assert table.frame.columns == ["c0", "c1", "c2"]
    assert isinstance(table.frame, pl.DataFrame)
    assert all(isinstance(v, str) for v in table.frame["c0"])
    assert not any(isinstance(v, datetime) for row in cells(table) for v in row)


# --- combine's execution shortcuts ------------------------------------------------------------

HOURS = [datetime(2024, 1, 1, h, tzinfo=timezone.utc) for h in (0, 0, 1, 2, 2)]
DST_HOURS = [datetime(2024, 11, 3, h, tzinfo=timezone.utc) for h in (4, 5, 5, 6, 7, 4)]  # New York falls back


def _request(sort_by=(0, 1)):
    window = {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z",
              "aggregationPeriod": "hour"}
    return validate_document({
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Entity"},
                        {"heading": "A", "metricId": "a", "fetchValue": "visits"},
                        {"heading": "B", "metricId": "b", "fetchValue": "revenue"},
                        {"heading": "C", "metricId": "c", "fetchValue": "visits"}],
            "sortBy": list(sort_by),
            "rowFilters": ["entity"],
        },
        "metricRequests": [{"metricId": m, **window} for m in ("a", "b", "c")],
    }).request


def _fetched():
    return pl.DataFrame({
        "bucket": HOURS, "entity_id": ["e2", "e1", "e1", "e1", None],
        "visits": [3, None, 5, 7, 1], "revenue": [0.5, 1.25, None, 2.0, 4.0],
    })


@pytest.mark.parametrize("sort_by", [(0, 1), (1, 0), (2, 0), (3,)])
def test_requests_sharing_a_frame_equal_requests_with_their_own(sort_by):
    request = _request(sort_by)
    shared = _fetched()
    together = combine(request, {0: [shared], 1: [shared], 2: [shared]})
    apart = combine(request, {i: [_fetched()] for i in range(3)})  # distinct objects: joined
    # Two windows per request: the general path, a group-by per request and full joins.
    general = combine(request, {i: [_fetched().slice(0, 2), _fetched().slice(2)] for i in range(3)})
    assert together.frame.equals(apart.frame)
    assert together.frame.equals(general.frame)
    assert together.frame.height == 5


def test_a_repeated_sort_key_is_left_out():
    request = _request((1, 0))
    keys, aliases = ["bucket", "entity_id"], ["k_bucket", "k_entity_id"]
    assert _sort_columns(request, keys, aliases) == ["c1", "c0"]
    assert _sort_columns(_request((2,)), keys, aliases) == ["c2", "k_bucket", "k_entity_id"]


@pytest.mark.parametrize("period", list(AggregationPeriod))
@pytest.mark.parametrize("values", [HOURS + [None], DST_HOURS, []])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_dates_formatted_per_distinct_bucket_equal_formatting_every_row(period, values, zone):
    """Local buckets (with their offsets below a day) format as ``format_bucket`` does."""
    frame = pl.DataFrame({"c0": pl.Series(values, dtype=pl.Datetime("us", "UTC"))})
    frame = frame.with_columns(pl.col("c0").dt.convert_time_zone(zone))
    expected = frame.with_columns(format_bucket("c0", period))
    assert _format_dates(frame, ["c0"], period).equals(expected)


def test_the_repeated_local_hour_keeps_both_offsets():
    frame = pl.DataFrame({"c0": pl.Series(DST_HOURS, dtype=pl.Datetime("us", "UTC"))})
    frame = frame.with_columns(pl.col("c0").dt.convert_time_zone("America/New_York"))
    assert _format_dates(frame, ["c0"], AggregationPeriod.hour)["c0"].to_list() == [
        "2024-11-03T00:00:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00", "2024-11-03T00:00:00-04:00",
    ]


# --- delta across daylight-saving changes -----------------------------------------------------


DELTA_CASES = {
    "Lord Howe, hourly, autumn": ("Australia/Lord_Howe", "2024-04-06T10:00:00Z", "2024-04-06T20:00:00Z", "hour", None),
    "Lord Howe, hourly, spring": ("Australia/Lord_Howe", "2024-10-05T10:00:00Z", "2024-10-05T20:00:00Z", "hour", None),
    "New York, 2 hours": ("America/New_York", "2024-11-03T00:00:00Z", "2024-11-03T15:59:59Z", None, "2h"),
    "New York, hourly": ("America/New_York", "2024-11-03T00:00:00Z", "2024-11-03T15:59:59Z", "hour", None),
    "Santiago, daily": ("America/Santiago", "2024-09-06T12:00:00Z", "2024-09-09T12:00:00Z", "day", None),
    "Chatham, hourly, 03:00 skipped": ("Pacific/Chatham", "2024-09-28T11:00:00Z", "2024-09-28T18:00:00Z", "hour", None),
    "Azores, daily, midnight twice": ("Atlantic/Azores", "2024-10-25T22:00:00Z", "2024-10-29T02:00:00Z", "day", None),
}


@pytest.mark.parametrize("case", DELTA_CASES)
def test_delta_follows_the_previous_local_bucket_across_daylight_saving(tmp_path, case):
    """With a reading every minute every bucket has a row, so each delta is the difference from
    the row before it in time (independent of how buckets are cut): none is left empty but
    the first of each entity, also right after a change that makes a bucket longer or shorter."""
    tz, start, end, period, ds = DELTA_CASES[case]
    minutes = pl.datetime_range(
        datetime.fromisoformat(start), datetime.fromisoformat(end), "1m", eager=True, time_zone="UTC"
    )
    readings = pl.concat([
        pl.DataFrame({"timestamp": minutes}).with_columns(
            entity_id=pl.lit(entity), entity_type=pl.lit("sensor"),
            value=(pl.int_range(pl.len()) * 7 % 13 + shift).cast(pl.Int64),
        )
        for shift, entity in enumerate(["A", "B"])
    ])
    source = ParquetMetricSource(write_store(tmp_path / "store", readings))

    def table(transform: str | None) -> list[tuple]:
        request = {"metricId": "m", "start": start, "end": end, "entities": ["A", "B"]}
        request.update({"decimation": {"ds": ds, "dsf": "sum"}} if ds else {"aggregationPeriod": period})
        if transform:
            request["transform"] = transform
        document = {
            "csvFormat": {
                "columns": [{"heading": "Date"}, {"heading": "Entity"},
                            {"heading": "v", "metricId": "m", "fetchValue": "value"}],
                "sortBy": [], "rowFilters": ["entity"],
            },
            "metricRequests": [request],
            "format": {"timezone": tz},
        }
        validated = validate_document(document, source.schema()).request
        fetched = defaultdict(list)
        for task in planning.plan_export(validated, "t").tasks:
            fetched[task.request_index].append(source.fetch(task.query))
        return combine(validated, fetched).frame.rows()

    sums, deltas = table(None), table("delta")
    assert [r[:2] for r in deltas] == [r[:2] for r in sums]
    last: dict[str, int] = {}
    want = []
    for date, entity, value in sums:
        want.append((date, entity, value - last[entity] if entity in last else None))
        last[entity] = value
    assert deltas == want
