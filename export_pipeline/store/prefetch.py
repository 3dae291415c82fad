"""Read-ahead: start a run's store reads while Dagster is still starting up.

A one-shot ``export-pipeline run`` spends about a second importing Dagster before the first op
runs, on one core, while the other sits idle. The CLI knows the plan before that (it validates
and plans with the plain modules), so it starts each store read in a background thread; the
fetch op then takes the read's result instead of starting it. The query, the store and the
code that runs are the same as the op's own read, only earlier: the numbers cannot differ, and
a read that failed raises the same error in the op. A result nobody takes is simply dropped.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import polars as pl

from export_pipeline.store.source import MetricQuery, MetricSource

_lock = threading.Lock()
_pending: dict[tuple[Any, MetricQuery], Future] = {}


def store_identity(source: MetricSource) -> Any:
    """What makes two sources read the same data: the class and its folder (or None)."""
    return type(source).__name__, str(getattr(source, "path", id(source)))


def start(source: MetricSource, queries: list[MetricQuery]) -> None:
    """Run ``queries`` against ``source`` one after another in a daemon thread (a process that
    exits early does not wait for it)."""
    futures = []
    with _lock:
        for query in queries:
            future: Future = Future()
            _pending[(store_identity(source), query)] = future
            futures.append((query, future))

    def read_all() -> None:
        for query, future in futures:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(source.fetch(query))
            except BaseException as error:
                future.set_exception(error)

    threading.Thread(target=read_all, name="prefetch", daemon=True).start()


def take(source: MetricSource, query: MetricQuery) -> pl.DataFrame | None:
    """The read-ahead result of ``query`` on ``source`` (waiting for it if it is still running),
    or None when none was started. Raises what the read raised."""
    with _lock:
        future = _pending.pop((store_identity(source), query), None)
    if future is None:
        return None
    return future.result()


def clear() -> None:
    """Drop every read-ahead nobody took (the CLI's run is over): a later run in the same
    process reads the store itself rather than take a result read before it started."""
    with _lock:
        futures = list(_pending.values())
        _pending.clear()
    for future in futures:
        future.cancel()
