"""Read-ahead: a run's store reads, started before the run and handed to it.

A one-shot ``export-pipeline run`` spends about a second importing Dagster before the first op
runs, on one core, while the other sits idle. The CLI knows the plan before that (it validates
and plans with the plain modules), so it starts each store read in a background thread and
hands the ``ReadAhead`` to the run (see ``planning.prepared``); the fetch op takes a read's
result instead of starting it. The query, the store and the code that runs are the same as
the op's own read, only earlier: the numbers cannot differ, and a read that failed raises the
same error in the op. Nothing here is shared between runs: each ``ReadAhead`` is its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import polars as pl

from export_pipeline.store.source import MetricQuery, MetricSource


class ReadAhead:
    """``queries`` against ``source``, read one after another in a daemon thread (a process
    that exits early does not wait for it)."""

    def __init__(self, source: MetricSource, queries: list[MetricQuery]):
        self.source = source
        self._lock = threading.Lock()
        self._pending: dict[MetricQuery, Future] = {q: Future() for q in dict.fromkeys(queries)}
        reads = list(self._pending.items())
        threading.Thread(target=self._read_all, args=(reads,), name="read-ahead", daemon=True).start()

    def _read_all(self, reads: list[tuple[MetricQuery, Future]]) -> None:
        for query, future in reads:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self.source.fetch(query))
            except BaseException as error:
                future.set_exception(error)

    def take(self, query: MetricQuery) -> pl.DataFrame | None:
        """The result of ``query`` read ahead (waiting for it if it is still running), once;
        None when it was not read ahead. Raises what the read raised."""
        with self._lock:
            future = self._pending.pop(query, None)
        return None if future is None else future.result()

    def fetch(self, query: MetricQuery) -> tuple[pl.DataFrame, bool]:
        """``query``'s frame, and whether it was read ahead (else it is read now)."""
        frame = self.take(query)
        return (frame, True) if frame is not None else (self.source.fetch(query), False)

    def cancel(self) -> None:
        """Drop the reads not yet started (the run is over)."""
        with self._lock:
            futures = list(self._pending.values())
            self._pending.clear()
        for future in futures:
            future.cancel()
