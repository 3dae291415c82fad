"""The 90-day range guard: no query to a metric store spans more than 90 days.

A long range is cut into consecutive windows on bucket boundaries, so every bucket is read
whole by one query and the windows' results simply stack. Quarters (90 to 92 days) and years
are longer than the cap itself; their windows are cut on month boundaries instead and the
partial sums of a bucket are added up again when the export is combined, which is exact for
sums.

Cuts are bucket boundaries in the export's time zone (a local midnight for days), while the
90-day span is measured in real elapsed time, so a window never exceeds the cap across a
daylight-saving change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from export_pipeline.timeline.periods import UTC, AggregationPeriod, Granularity, as_granularity, bucket_start, zone

MAX_WINDOW = timedelta(days=90)

# Finer periods to cut on when not even one bucket of the requested period fits in the cap.
_FALLBACK_CUTS = (AggregationPeriod.month, AggregationPeriod.day, AggregationPeriod.hour)


@dataclass(frozen=True)
class Window:
    """``start <= timestamp < end``, or ``<= end`` for the last window of a range."""

    start: datetime
    end: datetime
    end_inclusive: bool

    @property
    def closed(self) -> str:
        """The polars ``is_between`` closure for this window."""
        return "both" if self.end_inclusive else "left"

    def to_dict(self) -> dict[str, str | bool]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "endInclusive": self.end_inclusive,
        }


def _last_cut_within(
    after: datetime, limit: datetime, period: AggregationPeriod, time_zone: str = UTC
) -> datetime:
    tz = zone(time_zone)
    for cut_period in (period, *_FALLBACK_CUTS):
        cut = bucket_start(limit.astimezone(tz), cut_period).astimezone(timezone.utc)
        if cut > limit:  # a wall-clock boundary that a DST change moved past the limit
            continue
        if cut > after:
            return cut
    raise ValueError(f"no cut point between {after} and {limit}")  # pragma: no cover


def split_range(
    start: datetime,
    end: datetime,
    period: AggregationPeriod | Granularity,
    max_span: timedelta = MAX_WINDOW,
    time_zone: str = UTC,
) -> list[Window]:
    """Cut ``start <= t <= end`` into windows of at most ``max_span``, on bucket boundaries
    of ``period`` in ``time_zone``."""
    if end < start:
        raise ValueError("end is before start")
    unit = as_granularity(period).unit
    windows = []
    cursor, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    while end - cursor > max_span:
        cut = _last_cut_within(cursor, cursor + max_span, unit, time_zone)
        windows.append(Window(cursor, cut, end_inclusive=False))
        cursor = cut
    windows.append(Window(cursor, end, end_inclusive=True))
    return windows
