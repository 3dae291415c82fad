"""How often a tenant may call (a token bucket per tenant) and how many exports it may
create per calendar month (UTC). Both answer with the seconds to wait, for ``Retry-After``."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol


class Limiter(Protocol):
    def retry_after(self, tenant: str, requests: int, per_seconds: float) -> int:
        """0 and a token taken, or the whole seconds until a token is free."""
        ...


def take_token(tokens: float, then: float, now: float, requests: int,
               per_seconds: float) -> tuple[float, int]:
    """The token bucket's one rule, wherever the bucket is kept: ``tokens`` left at ``then``
    refill evenly up to ``requests`` over ``per_seconds``; one is taken at ``now`` if there is
    one. Returns the tokens left and 0, or the tokens and the whole seconds to wait."""
    rate = requests / per_seconds
    tokens = min(float(requests), tokens + max(0.0, now - then) * rate)
    if tokens >= 1:
        return tokens - 1, 0
    return tokens, max(1, math.ceil((1 - tokens) / rate))


class RateLimiter:
    """A token bucket per tenant: ``requests`` calls at once, refilled evenly over
    ``per_seconds``. Kept in memory, for one service process (SQLite state): a restart
    forgives. With the state in PostgreSQL the buckets are kept there, shared by every
    replica (``state.PostgresStateStore``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, tenant: str, requests: int, per_seconds: float) -> int:
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(tenant, (float(requests), now))
            tokens, wait = take_token(tokens, then, now, requests, per_seconds)
            self._buckets[tenant] = (tokens, now)
            return wait


def month_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def within_quota(used: int, quota: int) -> bool:
    """Whether one more export may be created after ``used`` this month."""
    return used < quota


def quota_retry_after(used: int, quota: int, now: datetime) -> int:
    """0 while exports are left this month, else the seconds until the next month starts."""
    if within_quota(used, quota):
        return 0
    return max(1, math.ceil((next_month_start(now) - now).total_seconds()))
