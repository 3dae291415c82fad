"""Aggregation periods: bucket boundaries in Python, and agreement with the polars expression."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from export_pipeline.timeline.periods import (
    AggregationPeriod,
    Granularity,
    bucket_expr,
    bucket_start,
    bucket_starts,
    next_bucket_start,
    parse_granularity,
    previous_bucket_expr,
    zone,
)
from export_pipeline.timeline.windows import split_range
from export_pipeline_tests.support.helpers import utc

P = AggregationPeriod

# Wednesday 15 May 2024, 13:47:31.123456 UTC
T = utc(2024, 5, 15, 13, 47, 31, 123456)


def test_periods_are_the_documented_names():
    assert [p.value for p in P] == ["minute", "hour", "day", "week", "month", "quarter", "year"]
    assert P("quarter") is P.quarter


def test_only_minute_and_hour_are_subdaily():
    assert {p for p in P if p.is_subdaily} == {P.minute, P.hour}


@pytest.mark.parametrize(
    "period, start, following",
    [
        (P.minute, utc(2024, 5, 15, 13, 47), utc(2024, 5, 15, 13, 48)),
        (P.hour, utc(2024, 5, 15, 13), utc(2024, 5, 15, 14)),
        (P.day, utc(2024, 5, 15), utc(2024, 5, 16)),
        (P.week, utc(2024, 5, 13), utc(2024, 5, 20)),
        (P.month, utc(2024, 5, 1), utc(2024, 6, 1)),
        (P.quarter, utc(2024, 4, 1), utc(2024, 7, 1)),
        (P.year, utc(2024, 1, 1), utc(2025, 1, 1)),
    ],
)
def test_bucket_of_a_timestamp(period, start, following):
    assert bucket_start(T, period) == start
    assert next_bucket_start(T, period) == following
    # a bucket start is its own bucket, and the next bucket follows it directly
    assert bucket_start(start, period) == start
    assert next_bucket_start(start, period) == following
    assert bucket_start(following, period) == following
    assert bucket_start(following - timedelta(microseconds=1), period) == start


@pytest.mark.parametrize("day", range(1, 8))
def test_weeks_start_on_monday(day):
    # 1 January 2024 is a Monday; the whole week up to Sunday the 7th belongs to it
    t = utc(2024, 1, day, 23, 59, 59)
    assert bucket_start(t, P.week) == utc(2024, 1, 1)
    assert bucket_start(t, P.week).weekday() == 0
    assert next_bucket_start(t, P.week) == utc(2024, 1, 8)


def test_a_week_can_start_in_the_previous_year():
    # Sunday 31 December 2023 is in the week of Monday 25 December
    assert bucket_start(utc(2023, 12, 31, 12), P.week) == utc(2023, 12, 25)
    # Tuesday 31 December 2024 is in the week of Monday 30 December; the next is in 2025
    assert bucket_start(utc(2024, 12, 31, 12), P.week) == utc(2024, 12, 30)
    assert next_bucket_start(utc(2024, 12, 31, 12), P.week) == utc(2025, 1, 6)


@pytest.mark.parametrize("month", range(1, 13))
def test_quarters(month):
    quarter_month = (month - 1) // 3 * 3 + 1
    t = utc(2023, month, 17, 5)
    assert bucket_start(t, P.quarter) == utc(2023, quarter_month, 1)
    following = utc(2024, 1, 1) if quarter_month == 10 else utc(2023, quarter_month + 3, 1)
    assert next_bucket_start(t, P.quarter) == following


@pytest.mark.parametrize(
    "period, following",
    [
        (P.minute, utc(2025, 1, 1)),
        (P.hour, utc(2025, 1, 1)),
        (P.day, utc(2025, 1, 1)),
        (P.month, utc(2025, 1, 1)),
        (P.quarter, utc(2025, 1, 1)),
        (P.year, utc(2025, 1, 1)),
    ],
)
def test_year_rollover(period, following):
    last_moment = utc(2024, 12, 31, 23, 59, 59, 999999)
    assert next_bucket_start(last_moment, period) == following


def test_leap_day():
    assert next_bucket_start(utc(2024, 2, 28, 12), P.day) == utc(2024, 2, 29)
    assert next_bucket_start(utc(2024, 2, 29, 12), P.day) == utc(2024, 3, 1)
    assert next_bucket_start(utc(2024, 2, 29, 12), P.month) == utc(2024, 3, 1)
    assert next_bucket_start(utc(2023, 2, 28, 12), P.day) == utc(2023, 3, 1)


@pytest.mark.parametrize("period", list(P))
def test_the_time_zone_is_kept(period):
    assert bucket_start(T, period).tzinfo is timezone.utc
    assert next_bucket_start(T, period).tzinfo is timezone.utc


def _random_instants(rng: random.Random, count: int) -> list[datetime]:
    base = utc(2019, 1, 1)
    span = int(timedelta(days=8 * 366).total_seconds())
    return [
        base + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
        for _ in range(count)
    ]


@pytest.mark.parametrize("period", list(P))
def test_bucket_properties_on_many_instants(period):
    rng = random.Random(0)
    for t in _random_instants(rng, 500):
        start, following = bucket_start(t, period), next_bucket_start(t, period)
        assert start <= t < following, (t, period)
        assert bucket_start(start, period) == start
        assert bucket_start(following, period) == following
        assert next_bucket_start(start, period) == following
        assert following - start <= timedelta(days=366)


# Instants on and next to the edges the polars expression and Python must agree on.
_EDGES = [
    utc(1970, 1, 1), utc(1969, 12, 29), utc(2023, 1, 1), utc(2024, 1, 1),
    utc(2024, 12, 30), utc(2024, 12, 31, 23, 59, 59, 999999), utc(2024, 2, 29, 12),
    utc(2024, 4, 1), utc(2024, 3, 31, 23, 59, 59, 999999), utc(2024, 10, 1),
]


@pytest.mark.parametrize("period", list(P))
def test_polars_buckets_agree_with_python(period):
    instants = _random_instants(random.Random(1), 1000) + _EDGES
    frame = pl.DataFrame({"t": instants}, schema={"t": pl.Datetime("us", "UTC")})
    buckets = frame.select(bucket_expr("t", period))["t"].to_list()
    assert buckets == [bucket_start(t, period) for t in instants]


@pytest.mark.parametrize("period", list(P))
def test_polars_buckets_of_naive_timestamps_read_as_utc_agree_with_python(period):
    instants = _random_instants(random.Random(2), 300) + _EDGES
    frame = pl.DataFrame({"t": [t.replace(tzinfo=None) for t in instants]})
    expr = bucket_expr(pl.col("t").dt.replace_time_zone("UTC"), period)
    assert frame.select(expr)["t"].to_list() == [bucket_start(t, period) for t in instants]


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


# --- bucket starts and the previous bucket, across daylight-saving changes ----------------------


BUCKET_RANGES = [
    ("Australia/Lord_Howe", "1h", (2024, 4, 6, 10), (2024, 4, 6, 20)),  # back half an hour
    ("Australia/Lord_Howe", "1h", (2024, 10, 5, 10), (2024, 10, 5, 20)),  # on half an hour
    ("Australia/Lord_Howe", "PT1H30M", (2024, 4, 6, 10), (2024, 4, 6, 20)),
    ("America/New_York", "2h", (2024, 11, 3, 0), (2024, 11, 3, 16)),
    ("America/New_York", "2h", (2024, 3, 10, 0), (2024, 3, 10, 16)),
    ("America/New_York", "1h", (2024, 11, 3, 0), (2024, 11, 3, 16)),  # the hour 01:00 twice
    ("America/Santiago", "1d", (2024, 9, 6, 12), (2024, 9, 9, 12)),  # the day starts at 01:00
    ("America/Havana", "1d", (2024, 3, 8, 12), (2024, 3, 12, 12)),
    ("America/Santiago", "1w", (2024, 8, 1), (2024, 10, 1)),
    ("Pacific/Apia", "1d", (2011, 12, 28), (2012, 1, 2)),  # 2011-12-30 never happened
    ("Asia/Kathmandu", "15m", (1985, 12, 31, 16), (1986, 1, 1)),  # on a quarter of an hour
    ("UTC", "1mo", (2024, 1, 15), (2024, 6, 1)),
    ("Pacific/Chatham", "1h", (2024, 9, 28, 11), (2024, 9, 28, 18)),  # 03:00 skipped
    ("America/New_York", "40m", (2024, 3, 10, 4), (2024, 3, 10, 10)),  # 02:40 skipped
    ("Atlantic/Azores", "1d", (2024, 10, 25, 22), (2024, 10, 29, 2)),  # midnight twice
    ("America/Havana", "1w", (2024, 10, 20), (2024, 11, 20)),
]


@pytest.mark.parametrize("zone_name, width, start, end", BUCKET_RANGES)
def test_bucket_starts_are_the_buckets_of_every_minute(zone_name, width, start, end):
    """Independent of how they are enumerated: every minute of the range, bucketed."""
    granularity = parse_granularity(width)
    first = datetime(*start, tzinfo=timezone.utc)
    last = datetime(*end, tzinfo=timezone.utc)
    minutes = pl.datetime_range(first, last, "1m", eager=True, time_zone="UTC")
    want = pl.select(
        bucket_expr(pl.lit(minutes), granularity, zone_name, (first, last)).unique().sort()
    ).to_series()
    assert bucket_starts(first, last, granularity, zone_name).to_list() == want.to_list()


@pytest.mark.parametrize("zone_name, width, start, end", BUCKET_RANGES)
def test_the_previous_bucket_is_the_one_before_in_time(zone_name, width, start, end):
    granularity = parse_granularity(width)
    span = (datetime(*start, tzinfo=timezone.utc), datetime(*end, tzinfo=timezone.utc))
    buckets = bucket_starts(*span, granularity, zone_name)
    previous = pl.select(
        previous_bucket_expr(pl.lit(buckets.slice(1)), granularity, zone_name, span)
    ).to_series()
    assert previous.to_list() == buckets.slice(0, buckets.len() - 1).to_list()
