"""The export table: its cells in column order with their headings, and the naming rules
that ``combine`` and the layouts share (internal column names, row keys, bucket text)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from export_pipeline.contract.models import Column
from export_pipeline.store.source import BUCKET, ENTITY_DIMENSION, store_column
from export_pipeline.timeline.periods import AggregationPeriod, Granularity


@dataclass(frozen=True)
class ExportTable:
    """The export's cells, in column order, with the headings to write above them."""

    frame: pl.DataFrame
    headings: list[str]
    date_columns: tuple[str, ...] = ()
    # Text columns holding numbers, each as the long layout writes its own type (a crosstab
    # mixing integer and float metric columns): numbers, so never formula-guarded.
    number_columns: tuple[str, ...] = ()
    time_zone: str = "UTC"
    subdaily: bool = False
    previous: "ExportTable | None" = field(default=None, compare=False)

    @property
    def rows(self) -> int:
        return self.frame.height


def column_name(index: int) -> str:
    """Internal column names: headings may repeat characters polars dislikes, or each other."""
    return f"c{index}"


def facet_column(index: int) -> str:
    return f"f{index}"


def format_bucket(column: str, period: AggregationPeriod | Granularity) -> pl.Expr:
    """``YYYY-MM-DD`` for a day or longer; ISO 8601 with its offset below a day."""
    if period.is_subdaily:
        return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
    return pl.col(column).dt.strftime("%Y-%m-%d")


def dimension_key(column: Column) -> str:
    """The row key a dimension column shows."""
    name = column.dimension_name
    if name == "date":
        return BUCKET
    return store_column(ENTITY_DIMENSION if name == "entity" else name)


def dimension_expr(column: Column) -> pl.Expr:
    return pl.col(dimension_key(column))
