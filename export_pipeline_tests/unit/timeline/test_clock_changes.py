"""Buckets around daylight-saving changes, every minute, against a rule written with plain
``zoneinfo``: a bucket starts at its local start time, read on the same side of the change as
the reading where that time exists there; a day (or longer) at its first reading; a start the
clock jumps over, where the clock lands. So no bucket starts after a reading in it, and a day
the clock repeats an hour of is one bucket."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from export_pipeline.timeline.clock_changes import bucket_fixes
from export_pipeline.timeline.periods import bucket_expr, parse_granularity
from export_pipeline_tests.support.helpers import utc

CHANGES = {
    "Chatham forward 02:45 to 03:45": ("Pacific/Chatham", utc(2024, 9, 28, 11), utc(2024, 9, 28, 18)),
    "Chatham back 03:45 to 02:45": ("Pacific/Chatham", utc(2024, 4, 6, 11), utc(2024, 4, 6, 18)),
    "New York forward": ("America/New_York", utc(2024, 3, 10, 4), utc(2024, 3, 10, 10)),
    "New York back": ("America/New_York", utc(2024, 11, 3, 3), utc(2024, 11, 3, 9)),
    "Lord Howe forward half an hour": ("Australia/Lord_Howe", utc(2024, 10, 5, 13), utc(2024, 10, 5, 18)),
    "Azores back over midnight": ("Atlantic/Azores", utc(2024, 10, 25, 22), utc(2024, 10, 29, 2)),
    "Havana back over midnight": ("America/Havana", utc(2024, 11, 1, 3), utc(2024, 11, 5, 6)),
    "Havana forward at midnight": ("America/Havana", utc(2024, 3, 8, 3), utc(2024, 3, 12, 6)),
    "Santiago forward at midnight": ("America/Santiago", utc(2024, 9, 6), utc(2024, 9, 10)),
}
WIDTHS = ("1h", "2h", "7m", "20m", "40m", "PT1H30M", "1d", "1w", "1mo")


def reference(t: datetime, wall: datetime, width: str, tz: ZoneInfo) -> datetime:
    """The bucket start of ``t``, whose local time truncated to the width is ``wall``, by the
    rule above, one reading at a time."""
    local = t.astimezone(tz)
    readings = [
        u for fold in (0, 1)
        if (u := wall.replace(tzinfo=tz, fold=fold)).astimezone(timezone.utc).astimezone(tz)
        .replace(tzinfo=None) == wall
    ]
    if not readings:  # jumped over: the first minute whose clock is past it
        u = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
        while u.astimezone(tz).replace(tzinfo=None) < wall:
            u += timedelta(minutes=1)
        return u
    instants = sorted({u.astimezone(timezone.utc) for u in readings})
    if not parse_granularity(width).is_subdaily:
        return instants[0]
    same_side = [u for u in instants if u.astimezone(tz).utcoffset() == local.utcoffset()]
    return (same_side or instants)[0]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("change", CHANGES)
def test_every_minute_falls_in_the_bucket_the_rule_gives(change, width):
    zone_name, start, end = CHANGES[change]
    tz = ZoneInfo(zone_name)
    minutes = pl.datetime_range(start, end, "1m", eager=True, time_zone="UTC")
    got = pl.select(
        bucket_expr(pl.lit(minutes), parse_granularity(width), zone_name, (start, end))
    ).to_series().dt.convert_time_zone("UTC").to_list()
    walls = minutes.dt.convert_time_zone(zone_name).dt.replace_time_zone(None).dt.truncate(
        parse_granularity(width).every)
    want = [reference(t, w, width, tz) for t, w in zip(minutes.to_list(), walls.to_list())]
    wrong = [(t, g, w) for t, g, w in zip(minutes.to_list(), got, want) if g != w]
    assert not wrong, wrong[:3]
    assert all(g <= t for t, g in zip(minutes.to_list(), got))


def test_the_cases_polars_reads_otherwise():
    """Without the fixes (no span) polars puts Chatham's 03:45 in an hour starting 04:00 and
    the Azores' 2024-10-27 in two days: these fail without them."""
    minutes = pl.datetime_range(utc(2024, 9, 28, 14), utc(2024, 9, 28, 14, 14), "1m",
                                eager=True, time_zone="UTC")
    hour = parse_granularity("1h")
    span = (minutes[0], minutes[-1])
    plain = pl.select(bucket_expr(pl.lit(minutes), hour, "Pacific/Chatham")).to_series()
    fixed = pl.select(bucket_expr(pl.lit(minutes), hour, "Pacific/Chatham", span)).to_series()
    assert plain.dt.convert_time_zone("UTC").unique().to_list() == [utc(2024, 9, 28, 14, 15)]
    assert fixed.dt.convert_time_zone("UTC").unique().to_list() == [utc(2024, 9, 28, 14)]
    day = parse_granularity("1d")
    azores = pl.datetime_range(utc(2024, 10, 27), utc(2024, 10, 28), "1h", eager=True, time_zone="UTC")
    span = (azores[0], azores[-1])
    assert pl.select(bucket_expr(pl.lit(azores), day, "Atlantic/Azores")).n_unique() == 2
    assert pl.select(bucket_expr(pl.lit(azores), day, "Atlantic/Azores", span)).n_unique() == 1


def test_a_span_without_a_change_needs_no_fix_and_a_long_one_finds_each_change():
    assert bucket_fixes("America/New_York", "1h", False, utc(2024, 6, 1), utc(2024, 7, 1)) == []
    # three years of minutes: found from the offset changes, not bucket by bucket
    fixes = bucket_fixes("Pacific/Chatham", "1h", False, utc(2022, 1, 1), utc(2025, 1, 1))
    assert [f.instant for f in fixes] == [
        utc(2022, 9, 24, 14), utc(2023, 9, 23, 14), utc(2024, 9, 28, 14)]
    # each autumn's midnight is repeated (the day starts at the first); each spring's is the
    # jump itself, which polars already reads where the clock lands: no fix
    days = bucket_fixes("Atlantic/Azores", "1d", True, utc(2022, 1, 1), utc(2025, 1, 1))
    assert [f.instant for f in days] == [utc(2022, 10, 30), utc(2023, 10, 29), utc(2024, 10, 27)]
    assert bucket_fixes("Europe/Berlin", "1h", False, utc(2024, 1, 1), utc(2024, 12, 31)) == []
