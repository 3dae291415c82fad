"""The embedded metric store: every ``*.parquet`` file under a folder is one table.

Layout: ``timestamp`` (a UTC instant; a naive timestamp is read as UTC), ``entity_id`` and
``entity_type`` (strings), any number of string dimension columns and any number of numeric
measure columns. Reads are lazy: the window, entity and entity-type filters reach the Parquet
reader, only the needed columns are read, and each query (or each bucket-aligned slice of a
long one, see ``_slices``) is collected once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from export_pipeline.store.source import (
    BUCKET,
    ENTITY_ID,
    ENTITY_TYPE,
    TIMESTAMP,
    MetricQuery,
    MetricSourceError,
    StoreSchema,
    exported,
    measure_names,
    magnitude_bounds,
    quick_sum,
    quick_sums_exact,
    sums,
    wide_totals,
)
from export_pipeline.store.ordered import group_ordered_sums, sorted_on
from export_pipeline.timeline.periods import AggregationPeriod, as_granularity, bucket_expr
from export_pipeline.timeline.windows import Window, split_range

_TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)


class ParquetMetricSource:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()

    def _scan(self) -> pl.LazyFrame:
        if not self.path.is_dir():
            raise MetricSourceError(f"metric store {self.path} is not a folder")
        if next(self.path.rglob("*.parquet"), None) is None:
            raise MetricSourceError(f"metric store {self.path} holds no *.parquet files")
        return pl.scan_parquet(self.path / "**" / "*.parquet", hive_partitioning=False)

    def _raw_schema(self) -> pl.Schema:
        try:
            return self._scan().collect_schema()
        except (pl.exceptions.PolarsError, OSError) as error:
            raise MetricSourceError(f"cannot read metric store {self.path}: {error}") from error

    def schema(self) -> StoreSchema:
        raw = self._raw_schema()
        problems = []
        if not isinstance(raw.get(TIMESTAMP), pl.Datetime):
            problems.append(f"'{TIMESTAMP}' must be a datetime column (found {raw.get(TIMESTAMP)})")
        for name in (ENTITY_ID, ENTITY_TYPE):
            if not isinstance(raw.get(name), _TEXT_TYPES):
                problems.append(f"'{name}' must be a string column (found {raw.get(name)})")
        if problems:
            raise MetricSourceError(
                f"metric store {self.path} does not follow the layout: " + "; ".join(problems)
            )
        dimensions = tuple(
            n for n, t in raw.items() if n != ENTITY_ID and isinstance(t, _TEXT_TYPES)
        )
        measures = tuple(n for n, t in raw.items() if t.is_numeric())
        return StoreSchema(dimensions=dimensions, measures=measures)

    def fetch(self, query: MetricQuery) -> pl.DataFrame:
        slices = _slices(query)
        if len(slices) > 1:
            return pl.concat([self.fetch(replace(query, window=w)) for w in slices])
        scan = self._scan()
        raw = self._raw_schema()
        ts_type = raw[TIMESTAMP]
        window = query.window
        # Compare the stored column with bounds in its own time zone, so the predicate can use
        # the Parquet row-group statistics.
        start, end = (_as_stored(t, ts_type) for t in (window.start, window.end))
        predicate = pl.col(TIMESTAMP).is_between(start, end, closed=window.closed)
        if query.entities is not None:
            predicate &= pl.col(ENTITY_ID).is_in(list(query.entities))
        if query.entity_type is not None:
            predicate &= pl.col(ENTITY_TYPE) == query.entity_type
        ts = pl.col(TIMESTAMP)
        ts_utc = ts.dt.replace_time_zone("UTC") if ts_type.time_zone is None else ts.dt.convert_time_zone("UTC")
        if query.samples:
            bucket = ts_utc if query.time_zone == "UTC" else ts_utc.dt.convert_time_zone(query.time_zone)
        else:
            bucket = bucket_expr(ts_utc, query.period, query.time_zone, (window.start, window.end))
        keys = [
            bucket.alias(BUCKET),
            pl.col(ENTITY_ID).cast(pl.String),
            *(pl.col(d).cast(pl.String) for d in query.dimensions),
        ]
        if query.samples:
            rows = scan.filter(predicate).select(*keys, *(pl.col(m) for m in query.measures))
            return self._samples(rows, query)
        # Groups come out in the order their keys first appear: a store written in time order
        # (then by entity) yields them sorted already, and the sort is skipped.
        rows = scan.filter(predicate).select(*keys, *(pl.col(m) for m in query.measures))

        def grouped(sums: list[pl.Expr], *also: pl.LazyFrame) -> list[pl.DataFrame]:
            lazy = rows.group_by(query.key_columns, maintain_order=True).agg(sums)
            try:
                # The streaming engine reads the files in morsels and aggregates as it goes:
                # the store's rows are never all in memory at once.
                frames = pl.collect_all([lazy, *also], engine="streaming")
            except (pl.exceptions.PolarsError, OSError) as error:
                raise MetricSourceError(f"cannot read metric store {self.path}: {error}") from error
            return [sorted_on(frames[0], query.key_columns), *frames[1:]]

        # No integer total may wrap, nor a decimal one pass 38 digits (``sum_types``): each
        # measure is added quickly where the slice's largest magnitude and row count show it
        # cannot, else in its adding type (a decimal by ``wide_sum``), then checked into its
        # exported type. A decimal sum that overflows makes polars fail the quick read.
        names = measure_names(query)
        decimals = {m: raw[m].scale for m in query.measures if raw[m].is_decimal()}
        try:
            frame, bounds = grouped(
                [quick_sum(m, raw[m]) for m in query.measures],
                rows.select(magnitude_bounds(query.measures, raw)),
            )
            exact = quick_sums_exact(bounds)
        except MetricSourceError:
            if not decimals:
                raise
            exact = False
        if not exact:
            (frame,) = grouped(
                [e for m in query.measures for e in sums(pl.col(m), m, raw[m], m in decimals)]
            )
            frame = wide_totals(frame, decimals, names, query.key_columns).select(
                *query.key_columns, *query.measures)
        return exported(frame, names, query.key_columns)

    def _samples(self, rows: pl.LazyFrame, query: MetricQuery) -> pl.DataFrame:
        """The per-timestamp sums of a decimation: each key's rows added in the store's row
        order, which the in-memory engine keeps and a stable sort on the keys
        leaves in place; every key's rows are then summed at once (``group_ordered_sums``)."""
        keys = query.key_columns
        try:
            frame = sorted_on(rows.collect(engine="in-memory"), keys)
            sums = group_ordered_sums(frame, keys, list(query.measures), names=measure_names(query))
        except (pl.exceptions.PolarsError, OSError) as error:
            raise MetricSourceError(f"cannot read metric store {self.path}: {error}") from error
        return exported(sums, measure_names(query), keys)


# A query's window is read in slices of at most this span, so the group-by holds the groups
# of one slice at a time (memory stays flat however long the window); see ``_slices``.
SLICE_SPAN = timedelta(days=8)
_SLICED_PERIODS = (
    AggregationPeriod.minute, AggregationPeriod.hour, AggregationPeriod.day, AggregationPeriod.week
)


def _slices(query: MetricQuery) -> list[Window]:
    """The query's window cut on bucket boundaries of the query's time zone (a local midnight
    for days) into slices of at most ``SLICE_SPAN``, by the same rule as the range guard:
    every bucket falls whole in one slice, so the slices' sums stack without being added up
    again and the frame keeps one row per key. A decimation's samples are per stored
    timestamp, whole in any slice, and are cut on days. Read in one piece: periods longer
    than a slice and multiples such as ``2h`` (cut on whole hours, a bucket could straddle
    two slices)."""
    window = query.window
    granularity = as_granularity(query.period)
    unit = AggregationPeriod.day if query.samples else granularity.unit
    if (
        window.end - window.start <= SLICE_SPAN
        or not query.samples and (granularity.count != 1 or unit not in _SLICED_PERIODS)
    ):
        return [window]
    slices = split_range(window.start, window.end, unit, SLICE_SPAN, query.time_zone)
    return [*slices[:-1], replace(slices[-1], end_inclusive=window.end_inclusive)]


def _as_stored(t: datetime, ts_type: pl.Datetime) -> datetime:
    """``t`` in the stored column's time zone (naive UTC for a naive column)."""
    if ts_type.time_zone is None:
        return t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.astimezone(ZoneInfo(ts_type.time_zone))
