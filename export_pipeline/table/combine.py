"""Combine the fetched frames into the export table: one row per bucket and row dimensions.

Rows are keyed by the bucket and the ``rowFilters`` dimensions. Each metric column is the sum
of its measure over the rows of its metric request that pass its filter; metric requests are
joined in full, so a key missing from one request leaves an empty cell and never drops a row.
The sort is by the ``sortBy`` columns, ascending on typed values (dates as dates, numbers as
numbers), empty cells last, then by the row keys (bucket, then ``rowFilters`` in order), so
the order is total and the same on every run.

Beyond sums: a decimated metric request arrives as samples (one sum per stored timestamp) and
each bucket takes the ``dsf`` of its samples here, once, over all windows; ``transform:
delta`` is the difference from the previous bucket of the same series. The ``wide`` and
``crosstab`` layouts pivot the long table (see ``layouts``).
"""

from __future__ import annotations

import polars as pl

from export_pipeline.store.source import (
    BUCKET,
    ordered_sum,
    store_column,
    sum_or_null,
)
from export_pipeline.timeline.periods import AggregationPeriod, Granularity
from export_pipeline.table.model import (
    ExportTable,
    column_name,
    dimension_expr,
    dimension_key,
    facet_column,
    format_bucket,
)
from export_pipeline.contract.models import (
    expanded_facets,
    Column,
    DecimationFunction,
    ExportRequest,
    Layout,
    Transform,
)

_KEY_PREFIX = "__key_"


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
    dims = [*request.csv_format.row_filters, *expanded_facets(request)]
    return [BUCKET, *(store_column(d) for d in dims)]


def _mean(expr: pl.Expr) -> pl.Expr:
    return ordered_sum(expr) / expr.count()


def _variance(expr: pl.Expr) -> pl.Expr:
    """Sample variance (n - 1), two-pass for accuracy, summed in order for determinism."""
    deviations = (expr.drop_nulls() - _mean(expr)) ** 2
    return pl.when(expr.count() > 1).then(deviations.cum_sum().last() / (expr.count() - 1))


_DSF = {
    DecimationFunction.sum: ordered_sum,
    DecimationFunction.avg: _mean,
    DecimationFunction.min: lambda e: e.min(),
    DecimationFunction.max: lambda e: e.max(),
    DecimationFunction.stddev: lambda e: _variance(e).sqrt(),
    DecimationFunction.variance: _variance,
}


def _plain_sums(request: ExportRequest, index: int) -> bool:
    """Whether metric request ``index`` is only sums per bucket (no samples, no transform)."""
    return (
        not request.needs_samples(index)
        and request.metric_requests[index].transform is not Transform.delta
    )


def _metric_frame(
    request: ExportRequest, indices: list[int], frames: list[pl.DataFrame]
) -> pl.LazyFrame:
    """The columns of metric requests that share their fetched frames, per row key; windows
    stack (and re-add split buckets). Requests read by one scan are summed in one pass: their
    key sets are the same, so this equals joining them one by one. Only plain-sum requests
    are grouped (see ``_fetch_groups``); a decimated or delta request comes alone."""
    keys = _row_keys(request)
    columns = [
        (i, c) for index in indices
        for i, c in request.columns_of(request.metric_requests[index].metric_id)
    ]
    if all(_plain_sums(request, index) for index in indices) and _already_aggregated(
        request, columns, frames
    ):
        return frames[0].lazy().select(
            *keys, *(pl.col(c.fetch_value).alias(column_name(i)) for i, c in columns)
        )
    stacked = pl.concat([f.lazy() for f in frames], how="vertical_relaxed")
    present = set(stacked.collect_schema().names())
    stacked = stacked.with_columns(pl.lit(None, pl.String).alias(k) for k in keys if k not in present)
    sums = [
        sum_or_null(pl.col(c.fetch_value).filter(filter_expr(c))).alias(column_name(i))
        for i, c in columns
    ]
    if not sums:
        return stacked.select(keys).unique()
    if len(indices) > 1 or not request.needs_samples(indices[0]):
        frame = stacked.group_by(keys).agg(sums)
    else:
        metric_request = request.metric_requests[indices[0]]
        granularity = metric_request.granularity
        # One sample per stored timestamp and row key, then the bucket's function of them,
        # in time order so the result is the same however the range was cut into windows.
        # Samples in time order, every sum added in that order: the same bits whatever the
        # windows were. (A shared read also carries other requests' measures: none is a key.)
        measures = {c.fetch_value for c in request.csv_format.columns if c.is_metric}
        slices = [n for n in stacked.collect_schema().names() if n not in measures]
        samples = (
            stacked.sort(slices, nulls_last=True)
            .group_by(keys)
            .agg(
                ordered_sum(pl.col(c.fetch_value).filter(filter_expr(c))).alias(column_name(i))
                for i, c in columns
            )
            .sort(keys, nulls_last=True)
            .collect()
        )
        frame = (
            samples.lazy()
            .with_columns(pl.col(BUCKET).dt.truncate(granularity.every))
            .group_by(keys, maintain_order=True)
            .agg(
                _DSF[metric_request.decimation_function(c)](pl.col(column_name(i)))
                .alias(column_name(i))
                for i, c in columns
            )
        )
    if len(indices) == 1 and request.metric_requests[indices[0]].transform is Transform.delta:
        metric_request = request.metric_requests[indices[0]]
        frame = _delta(frame, keys, [column_name(i) for i, _ in columns], metric_request.granularity)
    return frame


_SUM_STABLE = (pl.Int64, pl.UInt64, pl.Float64, pl.Float32)


def _already_aggregated(
    request: ExportRequest, columns: list[tuple[int, Column]], frames: list[pl.DataFrame]
) -> bool:
    """One window, grouped by exactly the row keys, no column filter: every row key is one
    row already, and summing one value gives it back (these dtypes are their own sum's).
    A fetch's frame holds one row per key (its store reads are cut on bucket boundaries)."""
    if len(frames) != 1 or not columns or any(c.filter_values() for _, c in columns):
        return False
    # A shared read also carries the measures of requests combined apart: none is a key.
    every_measure = {c.fetch_value for c in request.csv_format.columns if c.is_metric}
    schema = frames[0].schema
    frame_keys = {n for n in schema if n not in every_measure}
    return frame_keys == set(_row_keys(request)) and all(
        schema[c.fetch_value] in _SUM_STABLE for _, c in columns
    )


def _fetch_groups(request: ExportRequest, fetched: dict[int, list[pl.DataFrame]]) -> list[list[int]]:
    """Metric request indices grouped by the frames they were answered with (one store scan).
    Only plain-sum requests share a group: a decimated or delta request is combined alone."""
    groups: dict[tuple, list[int]] = {}
    for index in sorted(fetched):
        shared = tuple(id(f) for f in fetched[index])
        groups.setdefault(shared if _plain_sums(request, index) else ("alone", index), []).append(index)
    return list(groups.values())


def _delta(
    frame: pl.LazyFrame, keys: list[str], values: list[str], granularity: Granularity
) -> pl.LazyFrame:
    """Each value minus the previous bucket's of the same series; empty without one."""
    series = keys[1:]
    frame = frame.sort([BUCKET, *series], nulls_last=True)

    def previous(expr: pl.Expr) -> pl.Expr:
        return expr.shift(1).over(series) if series else expr.shift(1)

    adjacent = previous(pl.col(BUCKET)).dt.offset_by(granularity.every) == pl.col(BUCKET)
    return frame.with_columns(
        pl.when(adjacent).then(pl.col(v) - previous(pl.col(v))).alias(v) for v in values
    )


def _sort_columns(request: ExportRequest, keys: list[str], key_aliases: list[str]) -> list[str]:
    """The ``sortBy`` columns, then the row keys as tie-breakers; a key the ``sortBy`` already
    sorted on (through its dimension column) is left out, as a repeated sort key cannot
    change the order and only costs time."""
    columns = request.csv_format.columns
    sort_by: list[str] = []
    covered: set[str] = set()
    for i in request.csv_format.sort_by:
        key = None if columns[i].is_metric else dimension_key(columns[i])
        if key is not None:
            if key in covered:
                continue
            covered.add(key)
        sort_by.append(column_name(i))
    return sort_by + [a for k, a in zip(keys, key_aliases) if k not in covered]


def in_order(frame: pl.DataFrame, columns: list[str]) -> bool:
    """Whether ``frame`` is already sorted on ``columns`` (ascending, nulls last), checked in one
    vectorised pass: fetched frames come in row-key order, and re-sorting two million sorted
    rows costs more than this check. Comparisons order as polars sorts: a NaN above every
    number, equal to another NaN, and nulls last."""
    if frame.height < 2 or not columns:
        return True
    after = pl.lit(True)
    for name in reversed(columns):
        current, previous = pl.col(name), pl.col(name).shift(1)
        before = (
            pl.when(previous.is_null()).then(False)
            .when(current.is_null()).then(True)
            .otherwise(previous < current)
        )
        after = before | (previous.eq_missing(current) & after)
    return bool(frame.select(after.slice(1).all()).item())


def _format_dates(
    frame: pl.DataFrame, dates: list[str], period: AggregationPeriod | Granularity
) -> pl.DataFrame:
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
    period = request.metric_requests[0].granularity
    joined: pl.LazyFrame | None = None
    for indices in _fetch_groups(request, {i: fetched[i] for i in range(len(request.metric_requests))}):
        part = _metric_frame(request, indices, fetched[indices[0]])
        joined = part if joined is None else joined.join(
            part, on=keys, how="full", coalesce=True, nulls_equal=True
        )
    assert joined is not None

    layout = request.format.output_format
    if layout is not Layout.long:
        from export_pipeline.table.layouts import crosstab, wide

        return (wide if layout is Layout.wide else crosstab)(request, joined.collect(), keys)

    columns = request.csv_format.columns
    facets = expanded_facets(request)
    cells = [
        pl.col(column_name(i)) if c.is_metric else dimension_expr(c).alias(column_name(i))
        for i, c in enumerate(columns)
    ] + [pl.col(store_column(f)).alias(facet_column(j)) for j, f in enumerate(facets)]
    key_aliases = [f"{_KEY_PREFIX}{k}" for k in keys]
    table = joined.select(*cells, *(pl.col(k).alias(a) for k, a in zip(keys, key_aliases)))
    sort_by = _sort_columns(request, keys, key_aliases)
    dates = [column_name(i) for i, c in enumerate(columns) if not c.is_metric and c.dimension_name == "date"]
    frame = table.collect()
    if not in_order(frame, sort_by):
        frame = frame.sort(sort_by, nulls_last=True)
    frame = frame.drop(key_aliases)
    frame = _format_dates(frame, dates, period)
    return ExportTable(
        frame=frame, headings=[c.heading for c in columns] + facets,
        date_columns=tuple(dates), time_zone=request.timezone, subdaily=period.is_subdaily,
    )
