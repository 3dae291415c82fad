"""Bucket widths: decimation durations and timezone-aware buckets."""

from __future__ import annotations

from datetime import timedelta, timezone

import polars as pl
import pytest

from export_pipeline.periods import AggregationPeriod, Granularity, bucket_expr, parse_granularity, zone
from export_pipeline.windows import split_range
from export_pipeline_tests.helpers import utc


@pytest.mark.parametrize("text, unit, count", [
    ("15m", "minute", 15), ("1h", "hour", 1), ("2h", "hour", 2), ("1d", "day", 1),
    ("1w", "week", 1), ("1mo", "month", 1), ("1q", "quarter", 1), ("1y", "year", 1),
    ("PT15M", "minute", 15), ("PT1H", "hour", 1), ("PT1H30M", "minute", 90), ("P1D", "day", 1),
    ("P1W", "week", 1), ("P1M", "month", 1), ("P3M", "quarter", 1), ("P1Y", "year", 1),
    ("p1d", "day", 1),
])
def test_parse_granularity(text, unit, count):
    assert parse_granularity(text) == Granularity(AggregationPeriod(unit), count)


@pytest.mark.parametrize("text", ["", "0m", "15s", "PT30S", "P1M2D", "P", "PT", "1 day", "-1h", "P1DT1H"])
def test_parse_granularity_refuses(text):
    with pytest.raises(ValueError):
        parse_granularity(text)


def test_local_days_across_dst_are_23_and_25_hours():
    for start, end in ((utc(2024, 3, 9), utc(2024, 3, 12)), (utc(2024, 11, 2), utc(2024, 11, 5))):
        hours = pl.datetime_range(start, end, "1h", eager=True, time_zone="UTC", closed="left")
        counts = (
            pl.DataFrame({"t": hours})
            .group_by(bucket_expr("t", AggregationPeriod.day, "America/New_York").alias("day"))
            .len().sort("day")
        )
        by_day = {d.date().isoformat(): n for d, n in counts.iter_rows()}
        if start.month == 3:
            assert by_day["2024-03-10"] == 23 and by_day["2024-03-09"] == 24
        else:
            assert by_day["2024-11-03"] == 25 and by_day["2024-11-02"] == 24


def test_windows_cut_on_local_midnight_and_never_exceed_90_real_days():
    ny = zone("America/New_York")
    windows = split_range(utc(2024, 1, 1, 5), utc(2024, 12, 31, 5), AggregationPeriod.day,
                          time_zone="America/New_York")
    assert len(windows) > 1
    for window in windows:
        assert window.end - window.start <= timedelta(days=90)
    for window in windows[1:]:
        local = window.start.astimezone(ny)
        assert (local.hour, local.minute) == (0, 0)
    assert windows[0].start == utc(2024, 1, 1, 5) and windows[-1].end == utc(2024, 12, 31, 5)
    for a, b in zip(windows, windows[1:]):
        assert a.end == b.start


def test_unknown_zone():
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")
    assert zone("utc") is timezone.utc
