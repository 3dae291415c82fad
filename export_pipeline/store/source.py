"""The metric store interface: what an export asks of any source of metric data.

A source answers one query at a time with a polars DataFrame of sums per time bucket, entity
and the requested dimensions. The Parquet folder is the first implementation; an HTTP metric
API or a SQL warehouse would be others, behind the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

from export_pipeline.timeline.periods import UTC, AggregationPeriod, Granularity, as_granularity
from export_pipeline.timeline.windows import Window

TIMESTAMP = "timestamp"
ENTITY_ID = "entity_id"
ENTITY_TYPE = "entity_type"
BUCKET = "bucket"

# The request-facing name of the entity dimension, and the store column behind it.
ENTITY_DIMENSION = "entity"


class MetricSourceError(RuntimeError):
    """The store cannot be read, or does not follow the documented layout."""


@dataclass(frozen=True)
class StoreSchema:
    """The names a request may use: string dimensions and numeric measures."""

    dimensions: tuple[str, ...]
    measures: tuple[str, ...]

    @property
    def request_dimensions(self) -> tuple[str, ...]:
        """Dimension names as a request spells them (``entity`` for ``entity_id``)."""
        return (ENTITY_DIMENSION, *self.dimensions)


def store_column(dimension: str) -> str:
    """The store column behind a request's dimension name."""
    return ENTITY_ID if dimension == ENTITY_DIMENSION else dimension


@dataclass(frozen=True)
class MetricQuery:
    """Sum ``measures`` per bucket, entity and ``dimensions``, for rows inside ``window``.

    Buckets are cut in ``time_zone`` and carry it. With ``samples`` the rows are summed per
    stored timestamp instead (the ``bucket`` column is the timestamp itself): a decimation
    such as ``avg`` or ``stddev`` needs every sample of a bucket, and the export computes it
    once over all windows, so a bucket cut by a window is never averaged twice.
    """

    window: Window
    period: AggregationPeriod | Granularity
    entities: tuple[str, ...] | None
    entity_type: str | None
    dimensions: tuple[str, ...]
    measures: tuple[str, ...]
    time_zone: str = UTC
    samples: bool = False

    @property
    def granularity(self) -> Granularity:
        return as_granularity(self.period)

    @property
    def key_columns(self) -> list[str]:
        return [BUCKET, ENTITY_ID, *self.dimensions]


class MetricSource(Protocol):
    def schema(self) -> StoreSchema:
        """The store's dimensions and measures, read without scanning its data."""
        ...

    def fetch(self, query: MetricQuery) -> pl.DataFrame:
        """Columns ``bucket`` (UTC), ``entity_id``, the query's dimensions and measures."""
        ...


def sum_or_null(expr: pl.Expr) -> pl.Expr:
    """Sum that stays empty when there is nothing to add: no value is not a zero."""
    return pl.when(expr.count() > 0).then(expr.sum())


def sum_types(dtype: pl.DataType) -> tuple[pl.DataType, pl.DataType] | None:
    """The type a measure of ``dtype`` is added up in, and the type its sums are exported in;
    ``None`` for a type summed as it is (decimals). The one rule for every sum: the Parquet
    store's, the ordered sums of a decimation, the SQL engine's and every sum of sums.

    Integers are added in Int128, so no total wraps (polars keeps an Int32 sum in Int32 and
    lets an Int64 one wrap), and exported as Int64, what SQL engines give and every format
    writes; ``exported`` fails the export on a total that does not fit, as writing it would
    be wrong. Floats are added and exported in Float64: a Float32 value widens exactly, but a
    Float32 total rounds (16777216 + 1 stays 16777216) and is written in its short form."""
    if dtype.is_integer():
        return pl.Int128, pl.Int64
    if dtype.is_float():
        return pl.Float64, pl.Float64
    return None


def adding_type(dtype: pl.DataType) -> pl.DataType:
    types = sum_types(dtype)
    return types[0] if types else dtype


def exported_type(dtype: pl.DataType) -> pl.DataType:
    types = sum_types(dtype)
    return types[1] if types else dtype


def exact_sum(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``sum_or_null`` of a column of ``dtype``, added in its adding type (``sum_types``)."""
    return sum_or_null(expr.cast(adding_type(dtype)))


_QUICK_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


def quick_sum(name: str, dtype: pl.DataType) -> pl.Expr:
    """The sum of measure ``name`` as polars adds fastest: an integer one in Int64, modular,
    so exact whenever the true total fits, which ``quick_sums_exact`` tells beforehand.
    Adding every integer in Int128 (``exact_sum``) costs a tenth of a store read."""
    column = pl.col(name)
    if dtype not in _QUICK_INTEGERS:
        return exact_sum(column, dtype).alias(name)
    return sum_or_null(column.cast(pl.Int64)).alias(name)


def magnitude_bounds(measures: tuple[str, ...] | list[str], schema: dict) -> list[pl.Expr]:
    """Over the rows a slice sums: their count and each integer measure's largest magnitude
    (a reduction without groups, read with the group-by's scan)."""
    return [pl.len().alias("rows")] + [
        pl.max_horizontal(pl.col(m).cast(pl.Int128).max().abs(), pl.col(m).cast(pl.Int128).min().abs())
        .alias(m)
        for m in measures if schema[m] in _QUICK_INTEGERS
    ]


def quick_sums_exact(bounds: pl.DataFrame) -> bool:
    """Whether no group of the slice can total beyond Int64: no group has more rows than the
    slice, nor a value larger than its largest."""
    rows = bounds["rows"][0] or 0
    return all(int64_holds(bounds[m][0] or 0, rows) for m in bounds.columns if m != "rows")


def int64_holds(largest_magnitude: int, count: int) -> bool:
    """Whether Int64 holds every total, and every running total, of up to ``count`` integers
    of at most ``largest_magnitude``: the one bound by which integers are added in Int64
    rather than Int128 (``sum_types``)."""
    return largest_magnitude * count < 2**63


def measure_names(query: MetricQuery) -> dict[str, str]:
    """How an error names each measure of a store's frame (the same for every source)."""
    return {m: f"measure '{m}'" for m in query.measures}


class SumOutOfRange(MetricSourceError):
    """A sum (or a difference of sums) that its exported type cannot hold."""


def exported(
    frame: pl.DataFrame, names: dict[str, str], keys: list[str] | dict[str, str]
) -> pl.DataFrame:
    """``frame`` with the columns of ``names`` cast to their exported types (``sum_types``).

    A value the type cannot hold (an integer total beyond Int64) raises ``SumOutOfRange``
    naming the column as ``names`` describes it, the value and its row's ``keys`` (columns,
    or columns and the names to show them by): the export
    stops rather than write a wrapped number. Columns already in their type cost nothing."""
    casts = {
        n: exported_type(frame.schema[n]) for n in names
        if exported_type(frame.schema[n]) != frame.schema[n]
    }
    if not casts:
        return frame
    out = frame.with_columns(pl.col(n).cast(t, strict=False) for n, t in casts.items())
    for n, target in casts.items():
        if out[n].null_count() != frame[n].null_count():
            lost = out[n].is_null() & frame[n].is_not_null()
            row = frame.filter(lost).row(0, named=True)
            labels = keys if isinstance(keys, dict) else {k: k for k in keys}
            where = ", ".join(f"{label} {row[k]}" for k, label in labels.items() if k in row)
            raise SumOutOfRange(
                f"{names[n]}: the sum {row[n]} ({where}) does not fit the {target} the export "
                "writes; the export stops rather than write a wrong number"
            )
    return out


def ordered_sum(expr: pl.Expr) -> pl.Expr:
    """``sum_or_null`` added strictly in row order (a running sum's last value).

    polars' float ``sum`` and ``mean`` may group their additions differently from one run to
    the next (the last bit of a float changes); a running sum always adds left to right, so
    the same values in the same order give the same bits on every run, however the range was
    cut into windows.
    """
    values = expr.drop_nulls()
    return pl.when(values.count() > 0).then(values.cum_sum().last())
