"""A realistic demo metric store: a year of store footfall, so the example request works out of the box.

Twelve retail locations (the example request's entity among them) and three mall zones, hourly from
08:00 to 21:00 UTC through 2024, each hour split into four slices by shopper segment, age band
and product taxonomy, with entries, exits and sales volume that follow the hour of day, the
day of week and the size of the location. One Parquet file per month, in the documented
layout. Generated with polars expressions (a hash of the row number stands in for a random
generator), so the same polars version always builds the same store.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

SEED_ENTITY = "64a1b2c3d4e5f6a7b8c9d0e3"
LOCATIONS = [
    SEED_ENTITY,
    "64a1b2c3d4e5f6a7b8c9d0e1",
    "64a1b2c3d4e5f6a7b8c9d0e2",
    *(f"64a1b2c3d4e5f6a7b8c9d0{n:02x}" for n in range(0xE4, 0xED)),
]
ZONES = ["zone-north-atrium", "zone-food-court", "zone-east-wing"]
SEGMENTS = ["new", "returning", "loyalty"]
AGES = ["18-24", "25-34", "35-44", "45-54", "55+"]
TAXONOMY = [
    "Products:Clothing:Shirts",
    "Products:Clothing:Trousers",
    "Products:Clothing:Outerwear",
    "Products:Footwear:Sneakers",
    "Products:Footwear:Boots",
    "Products:Accessories:Bags",
    "Services:Alterations",
]
SLICES_PER_HOUR = 4
OPEN_HOURS = range(8, 22)
YEAR = 2024


def _pick(values: list[str], seed: int) -> pl.Expr:
    index = (pl.col("row").hash(seed) % len(values)).cast(pl.Int64)
    return index.replace_strict(list(range(len(values))), values, return_dtype=pl.String)


def _noise(seed: int, spread: int) -> pl.Expr:
    """A deterministic pseudo-random integer in ``[0, spread)`` per row."""
    return (pl.col("row").hash(seed) % spread).cast(pl.Int64)


def demo_frame(year: int = YEAR) -> pl.DataFrame:
    hours = pl.DataFrame({
        "timestamp": pl.datetime_range(
            datetime(year, 1, 1, tzinfo=timezone.utc),
            datetime(year, 12, 31, 23, tzinfo=timezone.utc),
            "1h",
            eager=True,
            time_zone="UTC",
        )
    }).filter(pl.col("timestamp").dt.hour().is_in(list(OPEN_HOURS)))
    entities = pl.DataFrame({
        "entity_id": LOCATIONS + ZONES,
        "entity_type": ["location"] * len(LOCATIONS) + ["zone"] * len(ZONES),
        "size": [100 + 23 * i for i in range(len(LOCATIONS))] + [260, 340, 180],
    })
    slices = pl.DataFrame({"slice": list(range(SLICES_PER_HOUR))})
    hour = pl.col("timestamp").dt.hour()
    hour_curve = 30 + 70 * (1 - ((hour - 15).abs() / 8))  # peaks mid-afternoon
    weekday = pl.when(pl.col("timestamp").dt.weekday() >= 6).then(1.4).otherwise(1.0)
    frame = (
        hours.join(entities, how="cross")
        .join(slices, how="cross")
        .with_row_index("row")
        .with_columns(
            segments=_pick(SEGMENTS, 1),
            age=_pick(AGES, 2),
            taxonomy=_pick(TAXONOMY, 3),
            entries=(
                hour_curve * weekday * pl.col("size") / 400 * (60 + _noise(4, 80)) / 100
            ).round().cast(pl.Int64),
        )
        .with_columns(
            exits=(pl.col("entries") - _noise(5, 3)).clip(lower_bound=0),
            sales_volume=(pl.col("entries") * (5 + _noise(6, 30)) / 100).round().cast(pl.Int64),
        )
    )
    return frame.select(
        "timestamp", "entity_id", "entity_type", "segments", "age", "taxonomy",
        "entries", "exits", "sales_volume",
    )


def build_demo_store(path: str | Path, year: int = YEAR) -> Path:
    """Write the store, one Parquet file per month, replacing an earlier demo store there."""
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("footfall-*.parquet"):
        old.unlink()
    frame = demo_frame(year)
    for (month,), part in frame.group_by(pl.col("timestamp").dt.month(), maintain_order=True):
        part.write_parquet(folder / f"footfall-{year}-{month:02d}.parquet")
    return folder
