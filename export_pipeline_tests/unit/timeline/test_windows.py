"""The 90-day range guard: windows on bucket boundaries, contiguous, covering the range."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from export_pipeline.timeline.periods import AggregationPeriod, bucket_start
from export_pipeline.timeline.windows import MAX_WINDOW, Window, split_range
from export_pipeline_tests.support.helpers import utc

P = AggregationPeriod
YEAR_END = utc(2024, 12, 31, 23, 59, 59)


def test_the_cap_is_90_days():
    assert MAX_WINDOW == timedelta(days=90)


@pytest.mark.parametrize("period", list(P))
def test_a_short_range_is_one_inclusive_window(period):
    start, end = utc(2024, 4, 1), utc(2024, 4, 30, 23, 59, 59)
    assert split_range(start, end, period) == [Window(start, end, end_inclusive=True)]


@pytest.mark.parametrize("period", list(P))
def test_exactly_90_days_is_one_window(period):
    start = utc(2024, 1, 1, 10, 30)
    end = start + timedelta(days=90)
    assert split_range(start, end, period) == [Window(start, end, True)]


def test_one_microsecond_over_90_days_is_two_windows():
    start = utc(2024, 1, 1)
    end = start + timedelta(days=90, microseconds=1)
    assert split_range(start, end, P.day) == [
        Window(start, utc(2024, 3, 31), False),
        Window(utc(2024, 3, 31), end, True),
    ]


def test_an_empty_range_is_one_window():
    t = utc(2024, 1, 1)
    assert split_range(t, t, P.day) == [Window(t, t, True)]


def test_end_before_start_is_refused():
    with pytest.raises(ValueError, match="before start"):
        split_range(utc(2024, 2, 1), utc(2024, 1, 1), P.day)


def test_window_closure_and_dict():
    half_open = Window(utc(2024, 1, 1), utc(2024, 2, 1), end_inclusive=False)
    closed = Window(utc(2024, 2, 1), utc(2024, 3, 1), end_inclusive=True)
    assert half_open.closed == "left"
    assert closed.closed == "both"
    assert closed.to_dict() == {
        "start": "2024-02-01T00:00:00+00:00",
        "end": "2024-03-01T00:00:00+00:00",
        "endInclusive": True,
    }


def test_a_year_by_day():
    assert split_range(utc(2024, 1, 1), YEAR_END, P.day) == [
        Window(utc(2024, 1, 1), utc(2024, 3, 31), False),
        Window(utc(2024, 3, 31), utc(2024, 6, 29), False),
        Window(utc(2024, 6, 29), utc(2024, 9, 27), False),
        Window(utc(2024, 9, 27), utc(2024, 12, 26), False),
        Window(utc(2024, 12, 26), YEAR_END, True),
    ]


def test_a_start_inside_a_day_cuts_at_the_next_day_boundaries():
    windows = split_range(utc(2024, 1, 1, 10, 30), utc(2024, 6, 1, 12), P.day)
    assert [w.start for w in windows] == [utc(2024, 1, 1, 10, 30), utc(2024, 3, 31)]
    assert windows[0].end - windows[0].start < MAX_WINDOW


def test_weeks_are_cut_on_mondays():
    windows = split_range(utc(2024, 1, 1), YEAR_END, P.week)
    cuts = [w.start for w in windows[1:]]
    assert cuts[0] == utc(2024, 3, 25)  # the last Monday within 90 days of 1 January
    assert all(c.weekday() == 0 and c == bucket_start(c, P.day) for c in cuts)


def test_a_year_by_month():
    windows = split_range(utc(2024, 1, 1), YEAR_END, P.month)
    assert [w.start for w in windows] == [
        utc(2024, 1, 1), utc(2024, 3, 1), utc(2024, 5, 1), utc(2024, 7, 1),
        utc(2024, 9, 1), utc(2024, 11, 1),
    ]


def test_quarters_fall_back_to_month_boundaries():
    # No whole quarter fits in 90 days from 1 January (Q1 2024 has 91 days): cut on a month.
    windows = split_range(utc(2024, 1, 1), YEAR_END, P.quarter)
    cuts = [w.start for w in windows[1:]]
    assert cuts[0] == utc(2024, 3, 1)
    assert all(c == bucket_start(c, P.month) for c in cuts)
    assert any(c != bucket_start(c, P.quarter) for c in cuts)


def test_a_quarter_boundary_within_reach_is_preferred():
    windows = split_range(utc(2024, 2, 15), utc(2024, 9, 30), P.quarter)
    assert windows[0] == Window(utc(2024, 2, 15), utc(2024, 4, 1), False)


def test_years_fall_back_to_month_boundaries():
    windows = split_range(utc(2023, 1, 1), YEAR_END, P.year)
    cuts = [w.start for w in windows[1:]]
    assert len(windows) > 1
    assert all(c == bucket_start(c, P.month) for c in cuts)


def test_hours_and_minutes_are_cut_on_their_boundaries():
    start = utc(2024, 1, 1, 0, 0, 30)
    for period in (P.hour, P.minute):
        windows = split_range(start, utc(2024, 12, 31), period)
        assert windows[0].end == bucket_start(start + MAX_WINDOW, period)
        for w in windows[1:]:
            assert w.start == bucket_start(w.start, period)


def test_a_smaller_cap():
    windows = split_range(utc(2024, 1, 1), utc(2024, 2, 1), P.day, max_span=timedelta(days=10))
    assert [(w.start, w.end) for w in windows] == [
        (utc(2024, 1, 1), utc(2024, 1, 11)),
        (utc(2024, 1, 11), utc(2024, 1, 21)),
        (utc(2024, 1, 21), utc(2024, 1, 31)),
        (utc(2024, 1, 31), utc(2024, 2, 1)),
    ]


def test_only_the_last_window_is_inclusive():
    windows = split_range(utc(2022, 1, 1), YEAR_END, P.week)
    assert [w.end_inclusive for w in windows] == [False] * (len(windows) - 1) + [True]
    assert [w.closed for w in windows] == ["left"] * (len(windows) - 1) + ["both"]


# --- invariants over many ranges --------------------------------------------------------------

# A finer period to check cuts on when the requested bucket is longer than the cap.
_CUT_PERIOD = {**{p: p for p in P}, P.quarter: P.month, P.year: P.month}
# The longest bucket of a period that fits in the cap: no window but the last is shorter than
# the cap less one bucket. (Quarters and years prefer their own boundary when one is in reach,
# however close, so their windows have no such lower bound.)
_LONGEST_BUCKET = {
    P.minute: timedelta(minutes=1), P.hour: timedelta(hours=1), P.day: timedelta(days=1),
    P.week: timedelta(days=7), P.month: timedelta(days=31),
}


def _contains(window: Window, t: datetime) -> bool:
    return window.start <= t < window.end or (window.end_inclusive and t == window.end)


def _check(start: datetime, end: datetime, period: AggregationPeriod) -> None:
    windows = split_range(start, end, period)
    context = (start, end, period, windows)
    assert windows[0].start == start, context
    assert windows[-1].end == end, context
    for before, after in zip(windows, windows[1:]):
        assert before.end == after.start, context  # contiguous: no gap, no overlap
    for i, w in enumerate(windows):
        last = i == len(windows) - 1
        assert w.end_inclusive is last, context
        assert w.end - w.start <= MAX_WINDOW, context
        if not last:
            assert w.start < w.end, context
            if period in _LONGEST_BUCKET:
                assert w.end - w.start > MAX_WINDOW - _LONGEST_BUCKET[period], context
            cut = w.end
            assert bucket_start(cut, _CUT_PERIOD[period]) == cut, context
    # every instant of the range is in exactly one window
    rng = random.Random(f"{start}{end}{period}")
    probes = [start, end, *(w.end for w in windows), *(w.end - timedelta(microseconds=1) for w in windows)]
    probes += [start + (end - start) * rng.random() for _ in range(20)]
    for t in probes:
        if start <= t <= end:
            assert sum(_contains(w, t) for w in windows) == 1, (t, context)


def test_invariants_over_many_ranges():
    rng = random.Random(0)
    base = utc(2020, 1, 1)
    checked = 0
    for _ in range(400):
        start = base + timedelta(
            days=rng.randrange(4 * 366), seconds=rng.randrange(86400),
            microseconds=rng.choice([0, rng.randrange(10**6)]),
        )
        if rng.random() < 0.3:
            start = bucket_start(start, rng.choice(list(P)))
        length = rng.choice([
            timedelta(seconds=rng.randrange(1, 3600)),
            timedelta(days=rng.randrange(1, 90)),
            timedelta(days=90),
            timedelta(days=rng.randrange(91, 1200), seconds=rng.randrange(86400)),
        ])
        period = rng.choice(list(P))
        _check(start, start + length, period)
        checked += 1
    assert checked == 400


@pytest.mark.parametrize("period", list(P))
def test_invariants_over_several_years_for_every_period(period):
    for start in (utc(2019, 1, 1), utc(2019, 2, 28, 13, 5), utc(2020, 2, 29), utc(2021, 10, 1)):
        _check(start, utc(2024, 12, 31, 23, 59, 59, 999999), period)
