"""combine's execution shortcuts give exactly what the general path gives."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from export_pipeline.combine import _format_dates, _sort_columns, combine, format_bucket
from export_pipeline.periods import AggregationPeriod
from export_pipeline.validation import validate_document

HOURS = [datetime(2024, 1, 1, h, tzinfo=timezone.utc) for h in (0, 0, 1, 2, 2)]


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
@pytest.mark.parametrize("values", [HOURS + [None], []])
def test_dates_formatted_per_distinct_bucket_equal_formatting_every_row(period, values):
    frame = pl.DataFrame({"c0": pl.Series(values, dtype=pl.Datetime("us", "UTC"))})
    expected = frame.with_columns(format_bucket("c0", period))
    assert _format_dates(frame, ["c0"], period).equals(expected)
