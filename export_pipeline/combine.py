"""Combine the fetched frames into the export table: one row per bucket and row dimensions.

Rows are keyed by the bucket and the ``rowFilters`` dimensions. Each metric column is the sum
of its measure over the rows of its metric request that pass its filter; metric requests are
joined in full, so a key missing from one request leaves an empty cell and never drops a row.
The sort is by the ``sortBy`` columns, ascending on typed values (dates as dates, numbers as
numbers), empty cells last, then by the row keys (bucket, then ``rowFilters`` in order), so
the order is total and the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from export_pipeline.metric_source import BUCKET, ENTITY_DIMENSION, store_column, sum_or_null
from export_pipeline.periods import AggregationPeriod
from export_pipeline.request import Column, ExportRequest

_KEY_PREFIX = "__key_"


@dataclass(frozen=True)
class ExportTable:
    """The export's cells, in column order, with the headings to write above them."""

    frame: pl.DataFrame
    headings: list[str]

    @property
    def rows(self) -> int:
        return self.frame.height


def column_name(index: int) -> str:
    """Internal column names: headings may repeat characters polars dislikes, or each other."""
    return f"c{index}"


def filter_expr(column: Column) -> pl.Expr:
    """A column's slice. ``:`` is a hierarchy: ``A:B`` matches ``A:B`` and ``A:B:C``."""
    expr = pl.lit(True)
    for dimension, values in column.filter_values().items():
        name = pl.col(store_column(dimension))
        matches = [(name == v) | name.str.starts_with(f"{v}:") for v in values]
        any_match = matches[0]
        for m in matches[1:]:
            any_match |= m
        expr &= any_match
    return expr


def _row_keys(request: ExportRequest) -> list[str]:
    return [BUCKET, *(store_column(d) for d in request.csv_format.row_filters)]


def _metric_frame(
    request: ExportRequest, indices: list[int], frames: list[pl.DataFrame]
) -> pl.LazyFrame:
    """The columns of metric requests that share their fetched frames, per row key; windows
    stack (and re-add split buckets). Requests read by one scan are summed in one pass: their
    key sets are the same, so this equals joining them one by one."""
    keys = _row_keys(request)
    columns = [
        (i, c) for index in indices
        for i, c in request.columns_of(request.metric_requests[index].metric_id)
    ]
    if _already_aggregated(request, columns, frames):
        return frames[0].lazy().select(
            *keys, *(pl.col(c.fetch_value).alias(column_name(i)) for i, c in columns)
        )
    stacked = pl.concat([f.lazy() for f in frames], how="vertical_relaxed")
    aggregations = [
        sum_or_null(pl.col(c.fetch_value).filter(filter_expr(c))).alias(column_name(i))
        for i, c in columns
    ]
    if not aggregations:
        return stacked.select(keys).unique()
    return stacked.group_by(keys).agg(aggregations)


_SUM_STABLE = (pl.Int64, pl.UInt64, pl.Float64, pl.Float32)


def _already_aggregated(
    request: ExportRequest, columns: list[tuple[int, Column]], frames: list[pl.DataFrame]
) -> bool:
    """One window, grouped by exactly the row keys, no column filter: every row key is one
    row already, and summing one value gives it back (these dtypes are their own sum's)."""
    if len(frames) != 1 or not columns or any(c.filter_values() for _, c in columns):
        return False
    measures = {c.fetch_value for _, c in columns}
    schema = frames[0].schema
    frame_keys = {n for n in schema if n not in measures}
    return frame_keys == set(_row_keys(request)) and all(
        schema[m] in _SUM_STABLE for m in measures
    )


def _shared_fetches(fetched: dict[int, list[pl.DataFrame]]) -> list[list[int]]:
    """Metric request indices grouped by the frames they were answered with (one store scan)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index in sorted(fetched):
        groups.setdefault(tuple(id(f) for f in fetched[index]), []).append(index)
    return list(groups.values())


def format_bucket(column: str, period: AggregationPeriod) -> pl.Expr:
    """``YYYY-MM-DD`` for a day or longer; ISO 8601 with its offset below a day."""
    if period.is_subdaily:
        return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
    return pl.col(column).dt.strftime("%Y-%m-%d")


def _dimension_key(column: Column) -> str:
    """The row key a dimension column shows."""
    name = column.dimension_name
    if name == "date":
        return BUCKET
    return store_column(ENTITY_DIMENSION if name == "entity" else name)


def _dimension_expr(column: Column) -> pl.Expr:
    return pl.col(_dimension_key(column))


def _sort_columns(request: ExportRequest, keys: list[str], key_aliases: list[str]) -> list[str]:
    """The ``sortBy`` columns, then the row keys as tie-breakers; a key the ``sortBy`` already
    sorted on (through its dimension column) is left out, as a repeated sort key cannot
    change the order and only costs time."""
    columns = request.csv_format.columns
    sort_by: list[str] = []
    covered: set[str] = set()
    for i in request.csv_format.sort_by:
        key = None if columns[i].is_metric else _dimension_key(columns[i])
        if key is not None:
            if key in covered:
                continue
            covered.add(key)
        sort_by.append(column_name(i))
    return sort_by + [a for k, a in zip(keys, key_aliases) if k not in covered]


def _format_dates(frame: pl.DataFrame, dates: list[str], period: AggregationPeriod) -> pl.DataFrame:
    """``format_bucket`` applied to each distinct bucket (thousands, not millions of rows) and
    mapped back: the same strings, without formatting every row."""
    if frame.height == 0:
        return frame.with_columns(format_bucket(d, period) for d in dates)
    for d in dates:
        distinct = frame.select(pl.col(d).unique())
        distinct = distinct.with_columns(format_bucket(d, period).alias("text"))
        frame = frame.with_columns(
            pl.col(d).replace_strict(
                distinct[d], distinct["text"], return_dtype=distinct.schema["text"]
            )
        )
    return frame


def combine(request: ExportRequest, fetched: dict[int, list[pl.DataFrame]]) -> ExportTable:
    """The export table from each metric request's fetched window frames (by request index)."""
    keys = _row_keys(request)
    period = request.metric_requests[0].aggregation_period
    joined: pl.LazyFrame | None = None
    for indices in _shared_fetches({i: fetched[i] for i in range(len(request.metric_requests))}):
        part = _metric_frame(request, indices, fetched[indices[0]])
        joined = part if joined is None else joined.join(
            part, on=keys, how="full", coalesce=True, nulls_equal=True
        )
    assert joined is not None

    columns = request.csv_format.columns
    cells = [
        pl.col(column_name(i)) if c.is_metric else _dimension_expr(c).alias(column_name(i))
        for i, c in enumerate(columns)
    ]
    key_aliases = [f"{_KEY_PREFIX}{k}" for k in keys]
    table = joined.select(*cells, *(pl.col(k).alias(a) for k, a in zip(keys, key_aliases)))
    sort_by = _sort_columns(request, keys, key_aliases)
    dates = [column_name(i) for i, c in enumerate(columns) if not c.is_metric and c.dimension_name == "date"]
    frame = table.sort(sort_by, nulls_last=True).select(pl.exclude(key_aliases)).collect()
    frame = _format_dates(frame, dates, period)
    return ExportTable(frame=frame, headings=[c.heading for c in columns])
