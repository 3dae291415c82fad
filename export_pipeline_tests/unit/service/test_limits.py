from __future__ import annotations

from datetime import datetime, timezone

from export_pipeline.service.limits import RateLimiter, next_month_start, quota_retry_after


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_one_call_per_refill():
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [limiter.retry_after("a", 3, 60) for _ in range(4)] == [0, 0, 0, 20]
    assert limiter.retry_after("b", 3, 60) == 0  # per tenant
    clock.now += 19
    assert limiter.retry_after("a", 3, 60) == 1
    clock.now += 1
    assert limiter.retry_after("a", 3, 60) == 0
    assert limiter.retry_after("a", 3, 60) == 20


def test_the_quota_waits_until_the_next_utc_month():
    now = datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc)
    assert next_month_start(now) == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert quota_retry_after(4, 5, now) == 0
    assert quota_retry_after(5, 5, now) == 3600
    assert quota_retry_after(0, 0, now) == 3600
