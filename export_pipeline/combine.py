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
    request: ExportRequest, index: int, frames: list[pl.DataFrame]
) -> pl.LazyFrame:
    """One metric request's columns per row key; windows stack (and re-add split buckets)."""
    keys = _row_keys(request)
    stacked = pl.concat([f.lazy() for f in frames], how="vertical_relaxed")
    metric_id = request.metric_requests[index].metric_id
    aggregations = [
        sum_or_null(pl.col(c.fetch_value).filter(filter_expr(c))).alias(column_name(i))
        for i, c in request.columns_of(metric_id)
    ]
    if not aggregations:
        return stacked.select(keys).unique()
    return stacked.group_by(keys).agg(aggregations)


def format_bucket(column: str, period: AggregationPeriod) -> pl.Expr:
    """``YYYY-MM-DD`` for a day or longer; ISO 8601 with its offset below a day."""
    if period.is_subdaily:
        return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
    return pl.col(column).dt.strftime("%Y-%m-%d")


def _dimension_expr(column: Column) -> pl.Expr:
    name = column.dimension_name
    if name == "date":
        return pl.col(BUCKET)
    return pl.col(store_column(ENTITY_DIMENSION if name == "entity" else name))


def combine(request: ExportRequest, fetched: dict[int, list[pl.DataFrame]]) -> ExportTable:
    """The export table from each metric request's fetched window frames (by request index)."""
    keys = _row_keys(request)
    period = request.metric_requests[0].aggregation_period
    joined: pl.LazyFrame | None = None
    for index in range(len(request.metric_requests)):
        part = _metric_frame(request, index, fetched[index])
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
    sort_by = [column_name(i) for i in request.csv_format.sort_by] + key_aliases
    dates = [column_name(i) for i, c in enumerate(columns) if not c.is_metric and c.dimension_name == "date"]
    frame = (
        table.sort(sort_by, nulls_last=True)
        .select(pl.exclude(key_aliases))
        .with_columns(format_bucket(d, period) for d in dates)
        .collect()
    )
    return ExportTable(frame=frame, headings=[c.heading for c in columns])
