"""Aggregation periods: how timestamps fall into buckets, in polars and in plain Python.

The two views must agree exactly: the range guard cuts windows on the Python boundaries and
the metric source buckets rows with the polars expression, and a disagreement would split a
bucket across two windows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

import polars as pl


class AggregationPeriod(str, Enum):
    minute = "minute"
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"
    quarter = "quarter"
    year = "year"

    @property
    def is_subdaily(self) -> bool:
        return self in (AggregationPeriod.minute, AggregationPeriod.hour)


_POLARS_EVERY = {
    AggregationPeriod.minute: "1m",
    AggregationPeriod.hour: "1h",
    AggregationPeriod.day: "1d",
    AggregationPeriod.week: "1w",  # polars weeks start on Monday, as ISO 8601
    AggregationPeriod.month: "1mo",
    AggregationPeriod.quarter: "1q",
    AggregationPeriod.year: "1y",
}

_MONTHS_PER = {AggregationPeriod.month: 1, AggregationPeriod.quarter: 3, AggregationPeriod.year: 12}


def bucket_expr(column: str | pl.Expr, period: AggregationPeriod) -> pl.Expr:
    """The bucket start of each timestamp in ``column``."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.dt.truncate(_POLARS_EVERY[period])


def bucket_start(t: datetime, period: AggregationPeriod) -> datetime:
    """The start of the bucket holding ``t`` (same time zone as ``t``)."""
    if period is AggregationPeriod.minute:
        return t.replace(second=0, microsecond=0)
    if period is AggregationPeriod.hour:
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is AggregationPeriod.day:
        return day
    if period is AggregationPeriod.week:
        return day - timedelta(days=day.weekday())
    months = _MONTHS_PER[period]
    month0 = (t.month - 1) // months * months
    return day.replace(month=month0 + 1, day=1)


def next_bucket_start(t: datetime, period: AggregationPeriod) -> datetime:
    """The start of the bucket after the one holding ``t``."""
    start = bucket_start(t, period)
    if period is AggregationPeriod.minute:
        return start + timedelta(minutes=1)
    if period is AggregationPeriod.hour:
        return start + timedelta(hours=1)
    if period is AggregationPeriod.day:
        return start + timedelta(days=1)
    if period is AggregationPeriod.week:
        return start + timedelta(days=7)
    month_index = start.year * 12 + start.month - 1 + _MONTHS_PER[period]
    return start.replace(year=month_index // 12, month=month_index % 12 + 1)
