"""How often a tenant may call (a token bucket per tenant) and how many exports it may
create per calendar month (UTC). Both answer with the seconds to wait, for ``Retry-After``."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone


class RateLimiter:
    """A token bucket per tenant: ``requests`` calls at once, refilled evenly over
    ``per_seconds``. Kept in memory: a restart forgives, and several service processes each
    hold their own buckets (put one rate limit in front of them if that matters)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, tenant: str, requests: int, per_seconds: float) -> int:
        """0 and a token taken, or the whole seconds until a token is free."""
        rate = requests / per_seconds
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(tenant, (float(requests), now))
            tokens = min(float(requests), tokens + (now - then) * rate)
            if tokens >= 1:
                self._buckets[tenant] = (tokens - 1, now)
                return 0
            self._buckets[tenant] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / rate))


def month_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def quota_retry_after(used: int, quota: int, now: datetime) -> int:
    """0 while exports are left this month, else the seconds until the next month starts."""
    if used < quota:
        return 0
    return max(1, math.ceil((next_month_start(now) - now).total_seconds()))
