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

from datetime import datetime

import polars as pl

from export_pipeline.store.ordered import group_ordered_sums, in_order, sorted_on
from export_pipeline.store.source import (
    BUCKET,
    adding_type,
    decimals_hold,
    exported,
    exported_type,
    store_column,
    sums,
    wide_columns,
    wide_parts,
    wide_totals,
)
from export_pipeline.table.decimation import decimate
from export_pipeline.timeline.periods import AggregationPeriod, Granularity, previous_bucket_expr
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


def _plain_sums(request: ExportRequest, index: int) -> bool:
    """Whether metric request ``index`` is only sums per bucket (no samples, no transform)."""
    return (
        not request.needs_samples(index)
        and request.metric_requests[index].transform is not Transform.delta
    )


def _metric_frame(
    request: ExportRequest, indices: list[int], frames: list[pl.DataFrame], names: dict[str, str]
) -> pl.LazyFrame:
    """The columns of metric requests that share their fetched frames, per row key; windows
    stack (and re-add split buckets). Requests read by one scan are summed in one pass: their
    key sets are the same, so this equals joining them one by one. Plain-sum requests are
    grouped, and so are decimated ones (see ``_fetch_groups``); a delta request comes alone.
    ``names``: how an error names each column, as ``combine`` does."""
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
    schema = stacked.collect_schema()
    stacked = stacked.with_columns(pl.lit(None, pl.String).alias(k) for k in keys if k not in schema)
    if not columns:
        return stacked.select(keys).unique()
    if request.needs_samples(indices[0]):
        frame = _decimated(request, indices, stacked.collect(), keys, names).lazy()
    else:
        # Decimals are summed wide where a total could pass 38 digits (``decimal_holds``).
        measures = list({c.fetch_value for _, c in columns})
        wide = {} if decimals_hold(stacked, measures) else {
            column_name(i): schema[c.fetch_value].scale for i, c in columns
            if schema[c.fetch_value].is_decimal()
        }
        frame = stacked.group_by(keys).agg(
            e for i, c in columns for e in sums(
                pl.col(c.fetch_value).filter(filter_expr(c)), column_name(i), schema[c.fetch_value],
                column_name(i) in wide,
            )
        )
        if wide:
            frame = wide_totals(frame.collect(), wide, names, keys).lazy()
    if len(indices) == 1 and request.metric_requests[indices[0]].transform is Transform.delta:
        metric_request = request.metric_requests[indices[0]]
        frame = _delta(
            frame, keys, [column_name(i) for i, _ in columns], metric_request.granularity,
            request.timezone, (metric_request.start, metric_request.end), names,
        )
    return frame


def _decimated(
    request: ExportRequest, indices: list[int], stacked: pl.DataFrame, keys: list[str],
    names: dict[str, str],
) -> pl.DataFrame:
    """Decimated metric requests sharing their fetched frames: one sample per stored timestamp
    and row key (the sum of the rows of every entity and dimension under the key, added in
    their sorted order), then each bucket's function of its samples, in time order. Every
    sum is added in a fixed order, so the bits are the same however the range was cut into
    windows. (A shared read also carries other requests' measures: none is a key.)"""
    measures = {c.fetch_value for c in request.csv_format.columns if c.is_metric}
    slices = [n for n in stacked.columns if n not in measures]
    # The frames hold one row per stored timestamp, entity and dimensions: when the row keys
    # cover all of them, every row is its own sample, and only the samples' time order counts.
    one_row_per_key = set(slices) <= set(keys)
    if one_row_per_key:
        rows = stacked if stacked[BUCKET].is_sorted() else stacked.sort(keys, nulls_last=True)
    else:
        rows = sorted_on(sorted_on(stacked, slices), keys)
    functions = {}
    values = []
    for index in indices:
        metric_request = request.metric_requests[index]
        for i, c in request.columns_of(metric_request.metric_id):
            functions[column_name(i)] = metric_request.decimation_function(c)
            values.append(pl.when(filter_expr(c)).then(pl.col(c.fetch_value)).alias(column_name(i)))
    samples = group_ordered_sums(
        rows.select(*keys, *values), keys, list(functions), one_row_per_key, names
    )
    granularity = request.metric_requests[indices[0]].granularity
    return decimate(samples, keys, functions, granularity, request.timezone, names)


def _already_aggregated(
    request: ExportRequest, columns: list[tuple[int, Column]], frames: list[pl.DataFrame]
) -> bool:
    """One window, grouped by exactly the row keys, no column filter: every row key is one
    row already, and summing one value gives it back (the measure is in its exported type).
    A fetch's frame holds one row per key (its store reads are cut on bucket boundaries)."""
    if len(frames) != 1 or not columns or any(c.filter_values() for _, c in columns):
        return False
    # A shared read also carries the measures of requests combined apart: none is a key.
    every_measure = {c.fetch_value for c in request.csv_format.columns if c.is_metric}
    schema = frames[0].schema
    frame_keys = {n for n in schema if n not in every_measure}
    return frame_keys == set(_row_keys(request)) and all(
        exported_type(schema[c.fetch_value]) == schema[c.fetch_value] for _, c in columns
    )


def _fetch_groups(request: ExportRequest, fetched: dict[int, list[pl.DataFrame]]) -> list[list[int]]:
    """Metric request indices grouped by the frames they were answered with (one store scan).
    Plain-sum requests share a group, and decimated ones (their frames hold the same samples,
    their buckets the same width); a delta request is combined alone."""
    groups: dict[tuple, list[int]] = {}
    for index in sorted(fetched):
        shared = tuple(id(f) for f in fetched[index])
        if request.metric_requests[index].transform is Transform.delta:
            group = ("alone", index)
        elif request.needs_samples(index):
            group = ("samples", request.metric_requests[index].granularity, *shared)
        else:
            group = shared
        groups.setdefault(group, []).append(index)
    return list(groups.values())


def _delta(
    frame: pl.LazyFrame, keys: list[str], values: list[str], granularity: Granularity,
    time_zone: str, span: tuple[datetime, datetime], names: dict[str, str],
) -> pl.LazyFrame:
    """Each value minus the previous bucket's of the same series; empty without one. The
    previous bucket is the one cut just before this one in the local calendar
    (``previous_bucket_expr``), not this one less the width: next to a daylight-saving
    change a bucket is longer or shorter than its width. Integers subtract in their adding
    type, as two Int64 values can be further apart than Int64 holds (``exported`` checks the
    difference); decimals as decimals, or wide where a difference could pass 38 digits
    (``wide_totals`` checks it)."""
    series = keys[1:]
    frame = frame.sort([BUCKET, *series], nulls_last=True)
    schema = frame.collect_schema()

    def previous(expr: pl.Expr) -> pl.Expr:
        return expr.shift(1).over(series) if series else expr.shift(1)

    adjacent = previous(pl.col(BUCKET)) == previous_bucket_expr(
        BUCKET, granularity, time_zone, span
    )
    wide = {} if decimals_hold(frame, values, count=2) else {
        v: schema[v].scale for v in values if schema[v].is_decimal()
    }
    typed = {v: pl.col(v).cast(adding_type(schema[v])) for v in values if v not in wide}
    differences = [pl.when(adjacent).then(typed[v] - previous(typed[v])).alias(v) for v in typed]
    for v in wide:
        high, low = wide_parts(pl.col(v))
        both = adjacent & pl.col(v).is_not_null() & previous(pl.col(v)).is_not_null()
        differences += wide_columns(v, both.cast(pl.Int64), high - previous(high), low - previous(low))
    frame = frame.with_columns(differences)
    return wide_totals(frame.collect(), wide, names, keys).lazy() if wide else frame


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
    columns = request.csv_format.columns
    metrics = {
        column_name(i): f"column '{c.heading}' (metric '{c.metric_id}', measure '{c.fetch_value}')"
        for i, c in enumerate(columns) if c.is_metric
    }
    joined: pl.LazyFrame | None = None
    for indices in _fetch_groups(request, {i: fetched[i] for i in range(len(request.metric_requests))}):
        part = _metric_frame(request, indices, fetched[indices[0]], metrics)
        joined = part if joined is None else joined.join(
            part, on=keys, how="full", coalesce=True, nulls_equal=True
        )
    assert joined is not None

    layout = request.format.output_format
    if layout is not Layout.long:
        from export_pipeline.table.layouts import crosstab, wide

        frame = exported(joined.collect(), metrics, keys)
        return (wide if layout is Layout.wide else crosstab)(request, frame, keys)

    facets = expanded_facets(request)
    cells = [
        pl.col(column_name(i)) if c.is_metric else dimension_expr(c).alias(column_name(i))
        for i, c in enumerate(columns)
    ] + [pl.col(store_column(f)).alias(facet_column(j)) for j, f in enumerate(facets)]
    key_aliases = [f"{_KEY_PREFIX}{k}" for k in keys]
    table = joined.select(*cells, *(pl.col(k).alias(a) for k, a in zip(keys, key_aliases)))
    sort_by = _sort_columns(request, keys, key_aliases)
    dates = [column_name(i) for i, c in enumerate(columns) if not c.is_metric and c.dimension_name == "date"]
    # Sums of sums, differences and decimated sums come in their adding types: each is checked
    # into its exported type here, where the table is collected.
    frame = exported(table.collect(), metrics, dict(zip(key_aliases, keys)))
    if not in_order(frame, sort_by):
        frame = frame.sort(sort_by, nulls_last=True)
    frame = frame.drop(key_aliases)
    frame = _format_dates(frame, dates, period)
    return ExportTable(
        frame=frame, headings=[c.heading for c in columns] + facets,
        date_columns=tuple(dates), time_zone=request.timezone, subdaily=period.is_subdaily,
    )
