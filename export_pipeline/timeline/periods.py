"""Aggregation periods: how timestamps fall into buckets, in polars and in plain Python.

The two views must agree exactly: the range guard cuts windows on the Python boundaries and
the metric source buckets rows with the polars expression, and a disagreement would split a
bucket across two windows. Buckets are cut in the export's time zone: a "day" is a local day,
23 or 25 hours long on a daylight-saving change. A decimation (``ds``: ``15m``, ``PT1H``,
``P1M``…) is a ``Granularity`` too, so every bucket width goes through the same functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from export_pipeline.timeline.clock_changes import bucket_fixes

UTC = "UTC"


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

MAX_BUCKET_YEARS = 100
_PER_YEAR = {
    AggregationPeriod.minute: 366 * 24 * 60, AggregationPeriod.hour: 366 * 24,
    AggregationPeriod.day: 366, AggregationPeriod.week: 53, AggregationPeriod.month: 12,
    AggregationPeriod.quarter: 4, AggregationPeriod.year: 1,
}


@dataclass(frozen=True)
class Granularity:
    """A bucket width: ``count`` units of ``unit`` (``15`` × minute, ``1`` × month…).

    ``unit`` is the aggregation period the windows are cut on; a multiple such as ``2h`` is
    bucketed by polars from the epoch in local time and its windows are cut on whole hours
    (the export re-aggregates a bucket that a window cut, so the result is exact either way).
    """

    unit: AggregationPeriod
    count: int = 1

    @property
    def every(self) -> str:
        """The polars duration string (``15m``, ``1d``, ``3mo``)."""
        base = _POLARS_EVERY[self.unit]
        return f"{self.count * int(base[0])}{base[1:]}"

    @property
    def is_subdaily(self) -> bool:
        return self.unit.is_subdaily

    @property
    def label(self) -> str:
        return self.unit.value if self.count == 1 else f"{self.count} {self.unit.value}s"


def as_granularity(period: AggregationPeriod | Granularity) -> Granularity:
    return period if isinstance(period, Granularity) else Granularity(period)


_SHORTHAND = re.compile(r"^([1-9][0-9]{0,5})(m|min|h|d|w|mo|q|y)$")
_SHORTHAND_UNITS = {
    "m": AggregationPeriod.minute, "min": AggregationPeriod.minute, "h": AggregationPeriod.hour,
    "d": AggregationPeriod.day, "w": AggregationPeriod.week, "mo": AggregationPeriod.month,
    "q": AggregationPeriod.quarter, "y": AggregationPeriod.year,
}
ISO_DURATION = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def parse_granularity(text: str) -> Granularity:
    """``15m``/``1h``/``1d``/``1w``/``1mo``/``1q``/``1y`` or one ISO 8601 duration (``PT15M``, ``P1M``).

    A bucket has one unit: ``PT1H30M`` is 90 minutes, but ``P1M15D`` (a month and a half) is
    not a bucket width and is refused, as are seconds (the finest bucket is a minute).
    """
    value = text.strip()
    match = _SHORTHAND.match(value)
    if match:
        return _bounded(Granularity(_SHORTHAND_UNITS[match.group(2)], int(match.group(1))), text)
    match = ISO_DURATION.match(value.upper())
    if not match:
        raise ValueError(
            f"{text!r} is not a duration: use 15m, 1h, 1d, 1w, 1mo, 1q, 1y or ISO 8601 (PT15M, P1D)"
        )
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    if seconds:
        raise ValueError(f"{text!r}: the finest bucket is one minute")
    calendar = years * 12 + months
    clock = hours * 60 + minutes
    if sum(1 for part in (calendar, weeks, days, clock) if part) != 1:
        raise ValueError(
            f"{text!r}: a bucket width has one kind of unit (months/years, weeks, days or "
            "hours/minutes), not a mix"
        )
    if calendar:
        granularity = (
            Granularity(AggregationPeriod.year, calendar // 12) if calendar % 12 == 0
            else Granularity(AggregationPeriod.quarter, calendar // 3) if calendar % 3 == 0
            else Granularity(AggregationPeriod.month, calendar)
        )
    elif weeks:
        granularity = Granularity(AggregationPeriod.week, weeks)
    elif days:
        granularity = Granularity(AggregationPeriod.day, days)
    elif clock % 60 == 0:
        granularity = Granularity(AggregationPeriod.hour, clock // 60)
    else:
        granularity = Granularity(AggregationPeriod.minute, clock)
    return _bounded(granularity, text)


def _bounded(granularity: Granularity, text: str) -> Granularity:
    """A bucket of at most ``MAX_BUCKET_YEARS``: a wider one is no bucket of any export and
    its polars duration would overflow."""
    if granularity.count > MAX_BUCKET_YEARS * _PER_YEAR[granularity.unit]:
        raise ValueError(f"{text!r}: a bucket is at most {MAX_BUCKET_YEARS} years wide")
    return granularity


def zone(name: str) -> ZoneInfo | timezone:
    """The IANA time zone ``name`` (``utc`` in any case is UTC); ``ValueError`` if unknown."""
    if name.strip().upper() in ("UTC", "Z", "ETC/UTC"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None


def canonical_zone(name: str) -> str:
    """The polars time-zone name for ``name`` (``UTC`` for any spelling of it)."""
    tz = zone(name)
    return UTC if tz is timezone.utc else name


def bucket_expr(
    column: str | pl.Expr,
    period: AggregationPeriod | Granularity,
    time_zone: str = UTC,
    span: tuple[datetime, datetime] | None = None,
) -> pl.Expr:
    """The bucket start of each (UTC) timestamp in ``column``, cut in ``time_zone``.

    ``span``: the first and last instant the timestamps can hold. Where a daylight-saving
    change in it skips or repeats a bucket start, that start is read back as
    ``clock_changes`` says rather than as polars' ``truncate`` would; without a span (or in
    UTC) polars' reading is kept."""
    granularity = as_granularity(period)
    expr = pl.col(column) if isinstance(column, str) else column
    if time_zone == UTC:
        return expr.dt.truncate(granularity.every)
    local = expr.dt.convert_time_zone(time_zone)
    cut = local.dt.truncate(granularity.every)
    fixes = [] if span is None else bucket_fixes(
        time_zone, granularity.every, not granularity.is_subdaily, *span
    )
    if not fixes:
        return cut
    wall = local.dt.replace_time_zone(None).dt.truncate(granularity.every)
    for fix in fixes:
        cut = (
            pl.when(wall.is_between(fix.first, fix.stop, closed="left"))
            .then(pl.lit(fix.instant).dt.cast_time_unit("us").dt.convert_time_zone(time_zone))
            .otherwise(cut)
        )
    return cut


_JUST_BEFORE = timedelta(milliseconds=1)  # finer than any bucket edge, coarse enough for ms data


def previous_bucket_expr(
    bucket: str | pl.Expr,
    period: AggregationPeriod | Granularity,
    time_zone: str = UTC,
    span: tuple[datetime, datetime] | None = None,
) -> pl.Expr:
    """The start of the bucket just before each bucket start in ``bucket``: the bucket that
    ``bucket_expr`` puts the instant just before it in. Not ``bucket - width``: a local bucket
    next to a daylight-saving change is longer or shorter than its width (a 23-hour day, a
    90-minute hour on Lord Howe), and only the bucketing rule knows where its neighbour starts."""
    expr = pl.col(bucket) if isinstance(bucket, str) else bucket
    return bucket_expr(expr - _JUST_BEFORE, period, time_zone, span)


def bucket_starts(
    start: datetime, end: datetime, period: AggregationPeriod | Granularity, time_zone: str = UTC
) -> pl.Series:
    """Every bucket from the one holding ``start`` to the one holding ``end`` (aware instants),
    as ``bucket_expr`` cuts them, so exactly the buckets data can fall in: stepping the width
    in real time (or in local time from the first bucket) drifts off them after a
    daylight-saving change that is not a whole bucket. The candidates are the local
    wall-clock grid of the width, each read at both offsets of a repeated hour, put through
    ``bucket_expr``; a grid point that a daylight-saving gap swallows has no instant, and its
    bucket (starting at the gap's end) is found as the one just before the next bucket (two
    buckets in a row cannot both start in a gap: the first would lie wholly in it)."""
    granularity = as_granularity(period)
    instants = pl.lit(pl.Series([start, end])).dt.cast_time_unit("us").dt.convert_time_zone(UTC)
    local = instants.dt.convert_time_zone(time_zone) if time_zone != UTC else instants
    wall = bucket_expr(local.dt.replace_time_zone(None), granularity)  # naive: the grid itself
    grid = pl.datetime_range(wall.min(), wall.max(), granularity.every, closed="both")
    candidates = pl.concat([
        grid.dt.replace_time_zone(time_zone, ambiguous=side, non_existent="null")
        for side in ("earliest", "latest")
    ]).drop_nulls()
    span = (start, end)
    found = bucket_expr(candidates, granularity, time_zone, span)
    ends = bucket_expr(instants, granularity, time_zone, span)
    buckets = pl.concat([found, previous_bucket_expr(found, granularity, time_zone, span), ends])
    return pl.select(
        buckets.filter(buckets.is_between(ends.min(), ends.max())).unique().sort().alias("bucket")
    ).to_series()


def bucket_start(t: datetime, period: AggregationPeriod) -> datetime:
    """The start of the bucket holding ``t`` (same time zone as ``t``, wall-clock rules)."""
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


_EPOCH = datetime(1970, 1, 1)
_MINUTES_PER = {
    AggregationPeriod.minute: 1, AggregationPeriod.hour: 60, AggregationPeriod.day: 1440,
    AggregationPeriod.week: 10080,
}
_MONDAY_OFFSET = 3 * 1440  # 1970-01-01 was a Thursday; weeks start on Mondays


def _bucket_index(local: datetime, granularity: Granularity) -> int:
    """Which bucket (counted from the epoch, in local wall time) holds ``local``."""
    unit = granularity.unit
    if unit in _MINUTES_PER:
        elapsed = local - _EPOCH
        minutes = elapsed.days * 1440 + elapsed.seconds // 60
        if unit is AggregationPeriod.week:
            minutes += _MONDAY_OFFSET
        return minutes // (_MINUTES_PER[unit] * granularity.count)
    months = (local.year - 1970) * 12 + local.month - 1
    return months // (_MONTHS_PER[unit] * granularity.count)


def bucket_count(
    start: datetime, end: datetime, period: AggregationPeriod | Granularity, time_zone: str = UTC
) -> int:
    """How many buckets of ``period`` the range ``start <= t <= end`` touches in ``time_zone``,
    by arithmetic alone (no bucket is built), so a century of minutes costs nothing to count.
    Buckets below a day follow real time from the first one (a daylight-saving change skips or
    repeats an hour of them); longer ones follow the local calendar."""
    granularity = as_granularity(period)
    tz = zone(time_zone)
    first = start.astimezone(tz).replace(tzinfo=None)
    if granularity.is_subdaily:
        width = timedelta(minutes=_MINUTES_PER[granularity.unit] * granularity.count)
        elapsed = first - _EPOCH
        first_bucket = start - elapsed % width  # real time back to the bucket's local start
        return max(0, (end - first_bucket) // width + 1)
    last = end.astimezone(tz).replace(tzinfo=None)
    return max(0, _bucket_index(last, granularity) - _bucket_index(first, granularity) + 1)
