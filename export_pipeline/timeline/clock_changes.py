"""Bucket starts that a daylight-saving change skips or repeats, and the instant each starts at.

Buckets are cut on the local wall clock (``periods.bucket_expr``): a timestamp's bucket is its
local time truncated to the width, read back as an instant. polars reads a wall time back by
the rules of ``truncate``, which are right except in two cases, both fixed here:

- **A skipped start.** When the clock jumps over a grid point (Chatham's 02:45 to 03:45 skips
  03:00; New York's 02:00 to 03:00 skips 02:40 of a 40-minute grid), polars moves that start
  forward by the jump (03:00 becomes 04:00), later than the readings in it, and onto the next
  bucket, whose hour then holds 75 minutes. The bucket starts where the clock lands, the end
  of the jump.
- **A repeated day.** When the clock goes back over midnight (the Azores and Havana go from
  01:00 back to 00:00), polars starts a second bucket at the second midnight: the day appears
  twice, an hour and then a whole day. A day (week, month…) is one bucket from its first
  midnight, 25 hours long. Below a day, each pass of a repeated hour stays its own bucket, its
  start labelled with its own offset (01:00-04:00, then 01:00-05:00).

Each fix names a range of local bucket starts and the instant they start at. The ranges come
from the zone's offset changes over the span of the data, so a span without a change costs
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import polars as pl

_STEP = 6 * 3600  # offset changes are months apart; a step finer than any gap between two
_GRID_LIMIT = 2000  # bucket starts worth checking one by one rather than by offset changes
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class BucketFix:
    """Local bucket starts ``first <= start < stop`` (naive wall times) begin at ``instant``."""

    first: datetime
    stop: datetime
    instant: datetime  # aware, UTC


def offset_segments(tz: ZoneInfo | timezone, lo: int, hi: int) -> list[tuple[int, int]]:
    """``(first UTC epoch second, UTC offset in seconds)`` of each stretch of constant offset
    between ``lo`` and ``hi`` (the first stretch starts at ``lo``)."""

    def offset(second: int) -> int:
        moment = datetime.fromtimestamp(second, timezone.utc).astimezone(tz)
        return int(moment.utcoffset().total_seconds())

    segments = [(lo, offset(lo))]
    t = lo
    while t < hi:
        nxt = min(t + _STEP, hi)
        if offset(nxt) != segments[-1][1]:
            low, high = t, nxt  # offset(low) is the current one, offset(high) differs
            while high - low > 1:
                mid = (low + high) // 2
                if offset(mid) == segments[-1][1]:
                    low = mid
                else:
                    high = mid
            segments.append((high, offset(high)))
        t = nxt
    return segments


def bucket_fixes(
    time_zone: str, every: str, whole_days: bool, start: datetime, end: datetime
) -> list[BucketFix]:
    """The fixes for buckets of width ``every`` (a polars duration; ``whole_days`` for a day
    and longer) that data between ``start`` and ``end`` (aware) can fall in, and the bucket
    before them (where a first bucket's previous one is looked up). Found for whole months
    around the span, and kept: an export reads its range in many slices, and a fix outside
    the data applies to nothing."""
    first = start.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (end.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            + timedelta(days=32)).replace(day=1)
    return list(_month_fixes(time_zone, every, whole_days, first, last))


@lru_cache(maxsize=256)
def _month_fixes(
    time_zone: str, every: str, whole_days: bool, start: datetime, end: datetime
) -> tuple[BucketFix, ...]:
    tz = ZoneInfo(time_zone)
    first = _truncate(_truncate(start.astimezone(tz).replace(tzinfo=None), every) - _TICK, every)
    last = end.astimezone(tz).replace(tzinfo=None)
    if (last - first) / _shortest(every) > _GRID_LIMIT:
        return tuple(_change_fixes(tz, every, whole_days, first, last))
    grid = pl.datetime_range(first, last, every, eager=True, time_unit="us")
    return tuple(f for b in grid.to_list() if (f := _start_fix(b, tz, whole_days)) is not None)


def _start_fix(start: datetime, tz: ZoneInfo, whole_days: bool) -> BucketFix | None:
    """The fix for one bucket start, checked on its own (a few starts: wide buckets)."""
    earlier, later = start.replace(tzinfo=tz, fold=0), start.replace(tzinfo=tz, fold=1)
    if earlier.utcoffset() == later.utcoffset():
        return None
    stop = start + _TICK
    if earlier.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != start:
        # skipped: fold 0 reads it at the offset before the jump, past where the clock lands
        lands = _change_between(tz, later.astimezone(timezone.utc), earlier.astimezone(timezone.utc))
        # a start on the jump itself (02:00 of 02:00 to 03:00) polars reads where it lands too
        return None if lands == earlier.astimezone(timezone.utc) else BucketFix(start, stop, lands)
    if whole_days:
        return BucketFix(start, stop, earlier.astimezone(timezone.utc))
    return None


def _change_fixes(
    tz: ZoneInfo, every: str, whole_days: bool, first: datetime, last: datetime
) -> list[BucketFix]:
    """The fixes around each offset change between the local times ``first`` and ``last``
    (many starts: narrow buckets over a long span)."""
    epoch = datetime(1970, 1, 1)
    lo = int((first - epoch).total_seconds()) - 2 * 86400
    hi = int((last - epoch).total_seconds()) + 2 * 86400
    segments = offset_segments(tz, lo, hi)
    fixes = []
    for (_, before), (change, after) in zip(segments, segments[1:]):
        instant = datetime.fromtimestamp(change, timezone.utc)
        wall_before = (instant + timedelta(seconds=before)).replace(tzinfo=None)
        wall_after = (instant + timedelta(seconds=after)).replace(tzinfo=None)
        if after > before:  # a jump forward: starts strictly inside it are skipped
            if _truncate(wall_after - _TICK, every) > wall_before:
                fixes.append(BucketFix(wall_before + _TICK, wall_after, instant))
        elif whole_days:  # back: a start in the repeated stretch begins at its first pass
            start = _truncate(wall_before - _TICK, every)
            if start >= wall_after:
                fixes.append(BucketFix(
                    start, start + _TICK,
                    (start - timedelta(seconds=before)).replace(tzinfo=timezone.utc),
                ))
    return fixes


def _change_between(tz: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The first instant in ``(lo, hi]`` at ``hi``'s offset: where the clock lands after the
    change between them (to the second, as offset changes are)."""
    target = hi.astimezone(tz).utcoffset()
    low, high = int(lo.timestamp()), int(hi.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, timezone.utc).astimezone(tz).utcoffset() == target:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, timezone.utc)


_SHORTEST_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 28 * 86400,
                  "q": 89 * 86400, "y": 365 * 86400}


def _shortest(every: str) -> timedelta:
    """The shortest a bucket of ``every`` (``15m``, ``3mo``) can be in wall time."""
    count = int("".join(c for c in every if c.isdigit()))
    return timedelta(seconds=count * _SHORTEST_UNIT[every.lstrip("0123456789")])


def _truncate(wall: datetime, every: str) -> datetime:
    return pl.select(pl.lit(wall, pl.Datetime("us")).dt.truncate(every)).item()
