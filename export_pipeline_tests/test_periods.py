"""Aggregation periods: bucket boundaries in Python, and agreement with the polars expression."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from export_pipeline.periods import (
    AggregationPeriod,
    bucket_expr,
    bucket_start,
    next_bucket_start,
)
from export_pipeline_tests.helpers import utc

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
