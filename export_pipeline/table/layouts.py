"""Pivoted layouts of the export table: ``wide`` and ``crosstab`` (``format.outputFormat``).

``wide``: one row per bucket; every series (a combination of the row keys other
than the date) gets a column per metric column, headed ``<heading> (<key>, <key>)``, series in
ascending key order (empty last), metric columns in request order. ``crosstab``: one
row per series (and metric column, when there are several), one column per bucket of the
requested range, headed by its date, every bucket present even when it holds no data.
Both are pivots of the long table, so they hold exactly its numbers.
"""

from __future__ import annotations

import polars as pl

from export_pipeline.table.model import ExportTable, column_name, dimension_expr, format_bucket
from export_pipeline.store.source import BUCKET
from export_pipeline.timeline.periods import Granularity, bucket_starts
from export_pipeline.contract.models import ExportRequest

_SERIES = "__series"
EMPTY_LABEL = "(empty)"


def _series(long: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The series (row keys but the date), sorted, numbered, with a readable label."""
    others = keys[1:]
    if not others:
        return pl.DataFrame({_SERIES: [0], "__label": [""]}, schema={_SERIES: pl.UInt32, "__label": pl.String})
    combos = long.select(others).unique().sort(others, nulls_last=True).with_row_index(_SERIES)
    label = pl.concat_str(
        [pl.col(k).cast(pl.String).fill_null(EMPTY_LABEL) for k in others], separator=", "
    )
    return combos.with_columns(label.alias("__label"))


def _metric_columns(request: ExportRequest) -> list[tuple[str, str]]:
    return [(column_name(i), c.heading) for i, c in enumerate(request.csv_format.columns) if c.is_metric]


def wide(request: ExportRequest, long: pl.DataFrame, keys: list[str]) -> ExportTable:
    period = request.metric_requests[0].granularity
    others = keys[1:]
    series = _series(long, keys)
    metrics = _metric_columns(request)
    if others:
        long = long.join(series.select(_SERIES, *others), on=others, nulls_equal=True)
    else:
        long = long.with_columns(pl.lit(0, pl.UInt32).alias(_SERIES))
    frame = long.select(BUCKET).unique().sort(BUCKET)
    headings = [next(
        c.heading for c in request.csv_format.columns if not c.is_metric and c.dimension_name == "date"
    )]
    labels = series["__label"].to_list()
    for name, heading in metrics:
        pivoted = long.select(BUCKET, _SERIES, name).pivot(
            on=_SERIES, index=BUCKET, values=name, aggregate_function=None
        )
        renamed = {str(j): f"{name}_s{j}" for j in range(len(labels)) if str(j) in pivoted.columns}
        frame = frame.join(pivoted.rename(renamed), on=BUCKET, how="left", nulls_equal=True)
    ordered = []
    for j, label in enumerate(labels):
        for name, heading in metrics:
            column = f"{name}_s{j}"
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None).alias(column))
            ordered.append(column)
            headings.append(f"{heading} ({label})" if others else heading)
    frame = frame.select(format_bucket(BUCKET, period).alias("date"), *ordered)
    return ExportTable(
        frame=frame, headings=headings, date_columns=("date",), time_zone=request.timezone,
        subdaily=period.is_subdaily,
    )


def all_buckets(request: ExportRequest) -> pl.Series:
    """Every bucket start of the requested range, in the export's time zone, cut as the
    data's buckets are (``bucket_starts``)."""
    granularity = request.metric_requests[0].granularity
    start = min(m.start for m in request.metric_requests)
    end = max(m.end for m in request.metric_requests)
    return bucket_starts(start, end, granularity, request.timezone).alias(BUCKET)


def cell_type(dtypes: list[pl.DataType]) -> pl.DataType:
    """The one type of crosstab cells holding several metric columns' values, none of them
    changed: their own type when they share one, else the widest integer when all are integers
    and one holds them all, else text, each value written as the long layout writes it (a
    Float64 cell would turn 306515364555933897 into 3.065153645559339e+17, 993 into 993.0)."""
    kinds = set(dtypes)
    if len(kinds) == 1:
        return kinds.pop()
    if all(t.is_integer() for t in kinds):
        signed = [t for t in kinds if t.is_signed_integer()]
        unsigned = [t for t in kinds if t.is_unsigned_integer()]
        bits = max([_BITS[t] for t in signed], default=0)
        if unsigned:
            widest = max(_BITS[t] for t in unsigned)
            if not signed:
                return _UNSIGNED[widest]
            bits = max(bits, 2 * widest)
        if bits in _SIGNED:
            return _SIGNED[bits]
    return pl.String


_SIGNED = {8: pl.Int8, 16: pl.Int16, 32: pl.Int32, 64: pl.Int64, 128: pl.Int128}
_UNSIGNED = {8: pl.UInt8, 16: pl.UInt16, 32: pl.UInt32, 64: pl.UInt64}
_BITS = {**{t: b for b, t in _SIGNED.items()}, **{t: b for b, t in _UNSIGNED.items()}}


def crosstab(request: ExportRequest, long: pl.DataFrame, keys: list[str]) -> ExportTable:
    period = request.metric_requests[0].granularity
    others = keys[1:]
    metrics = _metric_columns(request)
    buckets = all_buckets(request)
    if long.schema[BUCKET] != buckets.dtype:
        buckets = buckets.cast(long.schema[BUCKET])
    dims = [
        (column_name(i), c) for i, c in enumerate(request.csv_format.columns)
        if not c.is_metric and c.dimension_name != "date"
    ]
    value_type = cell_type([long.schema[name] for name, _ in metrics])
    metric_label = "__metric"
    parts = []
    for order, (name, heading) in enumerate(metrics):
        parts.append(long.select(
            BUCKET, *others,
            pl.lit(heading).alias(metric_label), pl.lit(order).alias("__order"),
            pl.col(name).cast(value_type).alias("__value"),
        ))
    stacked = pl.concat(parts)
    labels = [f"__b{j}" for j in range(buckets.len())]
    index = pl.DataFrame({BUCKET: buckets, "__bucket_label": labels})
    stacked = stacked.join(index, on=BUCKET, how="left")
    _refuse_lost_buckets(stacked, period)
    row_keys = [*others, "__order", metric_label]
    frame = stacked.pivot(on="__bucket_label", index=row_keys, values="__value", aggregate_function=None)
    for label in labels:
        if label not in frame.columns:
            frame = frame.with_columns(pl.lit(None, value_type).alias(label))
    frame = frame.sort([*others, "__order"], nulls_last=True)
    bucket_headings = pl.DataFrame({BUCKET: buckets}).select(format_bucket(BUCKET, period)).to_series().to_list()
    row_cells = [dimension_expr(c).alias(name) for name, c in dims]
    headings = [c.heading for _, c in dims]
    if len(metrics) > 1:
        row_cells.append(pl.col(metric_label).alias("__metric_cell"))
        headings.append("Metric")
    frame = frame.select(*row_cells, *labels)
    return ExportTable(
        frame=frame, headings=headings + bucket_headings, time_zone=request.timezone,
        subdaily=period.is_subdaily,
        number_columns=tuple(labels) if value_type == pl.String else (),
    )


def _refuse_lost_buckets(stacked: pl.DataFrame, period: Granularity) -> None:
    """A row whose bucket has no column would be left out of the pivot: an export missing
    numbers is worse than none, so it is an error, never a dropped cell."""
    lost = stacked.filter(pl.col("__bucket_label").is_null())
    if lost.height:
        shown = lost.select(format_bucket(BUCKET, period)).to_series().unique().sort().head(5)
        raise RuntimeError(
            f"crosstab: {lost.height} value(s) fall in buckets with no column "
            f"({', '.join(shown.to_list())}): the columns disagree with the data's buckets"
        )
