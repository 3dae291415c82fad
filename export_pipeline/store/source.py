"""The metric store interface: what an export asks of any source of metric data.

A source answers one query at a time with a polars DataFrame of sums per time bucket, entity
and the requested dimensions. The Parquet folder is the first implementation; an HTTP metric
API or a SQL warehouse would be others, behind the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
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


DECIMAL_DIGITS = 38


def widest_decimal(scale: int) -> pl.DataType:
    """The decimal a measure of ``scale`` decimals is added and exported in (``sum_types``)."""
    return pl.Decimal(DECIMAL_DIGITS, scale)


def sum_or_null(expr: pl.Expr) -> pl.Expr:
    """Sum that stays empty when there is nothing to add: no value is not a zero."""
    return pl.when(expr.count() > 0).then(expr.sum())


def sum_types(dtype: pl.DataType) -> tuple[pl.DataType, pl.DataType] | None:
    """The type a measure of ``dtype`` is added up in, and the type its sums are exported in;
    ``None`` for a type summed as it is. The one rule for every sum: the Parquet store's, the
    ordered sums of a decimation, the SQL engine's and every sum of sums.

    Integers are added in Int128, so no total wraps (polars keeps an Int32 sum in Int32 and
    lets an Int64 one wrap), and exported as Int64, what SQL engines give and every format
    writes; ``exported`` fails the export on a total that does not fit, as writing it would
    be wrong. Floats are added and exported in Float64: a Float32 value widens exactly, but a
    Float32 total rounds (16777216 + 1 stays 16777216) and is written in its short form.
    Decimals are added and exported as decimals of their own scale, 38 digits wide (the widest
    polars, Arrow and DuckDB hold): exact, every source giving the same digits (0.10 + 0.20 is
    0.30, never the 0.30000000000000004 of floats). No total may pass 38 digits: decimals are
    added as such only under ``decimal_holds``, else by ``wide_sum``, and a total past them
    fails the export."""
    if dtype.is_integer():
        return pl.Int128, pl.Int64
    if dtype.is_float():
        return pl.Float64, pl.Float64
    if dtype.is_decimal():
        return widest_decimal(dtype.scale), widest_decimal(dtype.scale)
    return None


def adding_type(dtype: pl.DataType) -> pl.DataType:
    types = sum_types(dtype)
    return types[0] if types else dtype


def exported_type(dtype: pl.DataType) -> pl.DataType:
    types = sum_types(dtype)
    return types[1] if types else dtype


def exact_sum(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``sum_or_null`` of a column of ``dtype``, added in its adding type (``sum_types``); a
    decimal one only where ``decimal_holds``."""
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
    """Over the rows a slice sums: their count and each integer or decimal measure's largest
    magnitude (a reduction without groups, read with the group-by's scan); a decimal's stays a
    decimal, which tells ``quick_sums_exact`` which bound applies."""
    return [pl.len().alias("rows")] + [
        pl.max_horizontal(pl.col(m).cast(pl.Int128).max().abs(), pl.col(m).cast(pl.Int128).min().abs())
        .alias(m)
        for m in measures if schema[m] in _QUICK_INTEGERS
    ] + [pl.col(m).abs().max().alias(m) for m in measures if schema[m].is_decimal()]


def quick_sums_exact(bounds: pl.DataFrame) -> bool:
    """Whether no group of the slice can total beyond Int64, or a decimal beyond 38 digits: no
    group has more rows than the slice, nor a value larger than its largest."""
    rows = bounds["rows"][0] or 0
    return all(
        decimal_holds(largest_unscaled(bounds[m]), rows) if bounds.schema[m].is_decimal()
        else int64_holds(bounds[m][0] or 0, rows)
        for m in bounds.columns if m != "rows"
    )


def int64_holds(largest_magnitude: int, count: int) -> bool:
    """Whether Int64 holds every total, and every running total, of up to ``count`` integers
    of at most ``largest_magnitude``: the one bound by which integers are added in Int64
    rather than Int128 (``sum_types``)."""
    return largest_magnitude * count < 2**63


def decimal_holds(largest_unscaled: int, count: int) -> bool:
    """Whether 38 digits hold every total, and every running total, of up to ``count``
    decimals of at most ``largest_unscaled`` (in units of their last digit): the one bound
    under which decimals are added as decimals (``sum_types``). Past it polars' decimal sums
    are not to be trusted (a group-by's may wrap without a word), so ``wide_sum`` adds them."""
    return largest_unscaled * count < 10**DECIMAL_DIGITS


def largest_unscaled(values: pl.Series) -> int:
    """The largest magnitude of decimal ``values`` in units of their last digit (0 if none)."""
    return values.to_physical().cast(pl.Int128).abs().max() or 0


def decimals_hold(
    frame: pl.DataFrame | pl.LazyFrame, columns: list[str], count: int | None = None
) -> bool:
    """``decimal_holds`` for adding ``count`` values (every row of ``frame`` by default) of
    each decimal column of ``columns``: one reduction over the frame."""
    schema = frame.collect_schema()
    decimals = [c for c in columns if schema[c].is_decimal()]
    if not decimals:
        return True
    largest = (pl.col(c).abs().max() for c in decimals)
    found = frame.lazy().select(pl.len().alias("__rows"), *largest).collect()
    rows = found["__rows"][0] if count is None else count
    return all(decimal_holds(largest_unscaled(found[c]), rows) for c in decimals)


# A decimal's unscaled value (at most 38 digits) is high * _HALF + low, with 0 <= low < _HALF
# and |high| <= _HALF: Int128 adds up 10**19 of either without passing 2**127.
HALF_DIGITS = 19
_HALF = 10**HALF_DIGITS
_WIDE = ("__count", "__high", "__low")


def wide_names(name: str) -> tuple[str, str, str]:
    """The columns of ``name``'s total in wide form (``wide_columns``)."""
    return tuple(f"{name}{part}" for part in _WIDE)


def wide_parts(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The high and low halves of decimal ``expr``'s unscaled values (see ``_HALF``)."""
    unscaled = expr.to_physical().cast(pl.Int128)
    high = unscaled.floordiv(pl.lit(_HALF, pl.Int128))
    return high, unscaled - high * pl.lit(_HALF, pl.Int128)


def wide_columns(name: str, count: pl.Expr, high: pl.Expr, low: pl.Expr) -> list[pl.Expr]:
    """A decimal total in wide form, as ``wide_totals`` reads it: how many values it adds (none
    makes it empty) and the sums of their halves (``wide_parts``)."""
    return [e.alias(column) for e, column in zip((count, high, low), wide_names(name))]


def wide_sum(expr: pl.Expr, name: str) -> list[pl.Expr]:
    """The sum of decimal ``expr`` as three aggregations named after ``name``
    (``wide_columns``), exact however far the total goes; ``wide_totals`` turns them back into
    the decimal total, or fails on one past 38 digits."""
    high, low = wide_parts(expr)
    return wide_columns(name, expr.count(), high.sum(), low.sum())


def sums(expr: pl.Expr, name: str, dtype: pl.DataType, wide: bool = False) -> list[pl.Expr]:
    """The aggregations adding ``expr`` (of ``dtype``) into column ``name``: ``exact_sum``, or
    with ``wide`` (a decimal that could pass 38 digits) ``wide_sum``."""
    return wide_sum(expr, name) if wide else [exact_sum(expr, dtype).alias(name)]


def wide_totals(
    frame: pl.DataFrame, scales: dict[str, int], names: dict[str, str],
    keys: list[str] | dict[str, str],
) -> pl.DataFrame:
    """``frame`` with the ``wide_sum`` columns of each of ``scales`` (a column name and its
    decimal scale) turned into that column's total, a Decimal(38, scale), empty where there
    was nothing to add. A total past 38 digits raises ``SumOutOfRange`` naming the column as
    ``names`` does, the exact total and its row's ``keys``, as ``exported`` does."""
    half = pl.lit(_HALF, pl.Int128)
    for name, scale in scales.items():
        count, highs, lows = wide_names(name)
        high = pl.col(highs) + pl.col(lows).floordiv(half)
        low = pl.col(lows) - pl.col(lows).floordiv(half) * half  # from 0 to _HALF - 1
        fits = ((high > -half) & (high < half)) | ((high == -half) & (low > 0))
        frame = frame.with_columns(high.alias(highs), low.alias(lows), fits.alias(f"{name}__fits"))
        lost = frame.filter((pl.col(count) > 0) & ~pl.col(f"{name}__fits"))
        if lost.height:
            row = lost.row(0, named=True)
            total = Decimal(f"{row[highs] * _HALF + row[lows]}E-{scale}")
            raise SumOutOfRange(_out_of_range(names[name], total, row, keys, widest_decimal(scale)))
        unscaled = pl.col(highs).clip(-_HALF, _HALF) * half + pl.col(lows)
        value = unscaled.cast(widest_decimal(0)) * pl.lit(Decimal(f"1E-{scale}"), widest_decimal(scale))
        frame = frame.with_columns(pl.when(pl.col(count) > 0).then(value).alias(name)).drop(
            count, highs, lows, f"{name}__fits")
    return frame


def measure_names(query: MetricQuery) -> dict[str, str]:
    """How an error names each measure of a store's frame (the same for every source)."""
    return {m: f"measure '{m}'" for m in query.measures}


class SumOutOfRange(MetricSourceError):
    """A sum (or a difference of sums) that its exported type cannot hold."""


def exported(
    frame: pl.DataFrame, names: dict[str, str], keys: list[str] | dict[str, str],
    types: dict[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """``frame`` with the columns of ``names`` cast to their exported types (``sum_types``,
    or ``types`` for a column that comes as something else, such as a decimal's text).

    A value the type cannot hold (an integer total beyond Int64, a decimal one beyond 38
    digits) raises ``SumOutOfRange`` naming the column as ``names`` describes it, the value
    and its row's ``keys`` (columns, or columns and the names to show them by): the export
    stops rather than write a wrapped number. Columns already in their type cost nothing."""
    targets = {n: (types or {}).get(n) or exported_type(frame.schema[n]) for n in names}
    casts = {n: t for n, t in targets.items() if t != frame.schema[n]}
    if not casts:
        return frame
    out = frame.with_columns(pl.col(n).cast(t, strict=False) for n, t in casts.items())
    for n, target in casts.items():
        if out[n].null_count() != frame[n].null_count():
            lost = out[n].is_null() & frame[n].is_not_null()
            row = frame.filter(lost).row(0, named=True)
            raise SumOutOfRange(_out_of_range(names[n], row[n], row, keys, target))
    return out


def _out_of_range(
    name: str, total, row: dict, keys: list[str] | dict[str, str], target: pl.DataType
) -> str:
    labels = keys if isinstance(keys, dict) else {k: k for k in keys}
    where = ", ".join(f"{label} {row[k]}" for k, label in labels.items() if k in row)
    return (
        f"{name}: the sum {total}{f' ({where})' if where else ''} does not fit the {target} the "
        "export writes; the export stops rather than write a wrong number"
    )


def ordered_sum(expr: pl.Expr) -> pl.Expr:
    """``sum_or_null`` added strictly in row order (a running sum's last value).

    polars' float ``sum`` and ``mean`` may group their additions differently from one run to
    the next (the last bit of a float changes); a running sum always adds left to right, so
    the same values in the same order give the same bits on every run, however the range was
    cut into windows.
    """
    values = expr.drop_nulls()
    return pl.when(values.count() > 0).then(values.cum_sum().last())
