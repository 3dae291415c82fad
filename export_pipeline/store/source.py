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


def ordered_sum(expr: pl.Expr) -> pl.Expr:
    """``sum_or_null`` added strictly in row order (a running sum's last value).

    polars' float ``sum`` and ``mean`` may group their additions differently from one run to
    the next (the last bit of a float changes); a running sum always adds left to right, so
    the same values in the same order give the same bits on every run, however the range was
    cut into windows.
    """
    values = expr.drop_nulls()
    return pl.when(values.count() > 0).then(values.cum_sum().last())
