"""The demo metric store: the documented layout, seed 000's entity, one year in twelve files."""

from __future__ import annotations

import json
from importlib.resources import files

import polars as pl
import pytest

from export_pipeline.demo.store import (
    AGES,
    LOCATIONS,
    SEED_ENTITY,
    SEGMENTS,
    TAXONOMY,
    YEAR,
    ZONES,
    build_demo_store,
)
from export_pipeline.store.source import StoreSchema
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.helpers import utc

COLUMNS = [
    "timestamp", "entity_id", "entity_type", "segments", "age", "taxonomy",
    "entries", "exits", "sales_volume",
]


@pytest.fixture(scope="module")
def demo_frame(demo_store_path) -> pl.DataFrame:
    return pl.read_parquet(demo_store_path / "*.parquet")


def test_twelve_monthly_files(demo_store_path):
    names = sorted(p.name for p in demo_store_path.glob("*.parquet"))
    assert names == [f"footfall-{YEAR}-{m:02d}.parquet" for m in range(1, 13)]
    for month, name in enumerate(names, start=1):
        stamps = pl.read_parquet(demo_store_path / name, columns=["timestamp"])["timestamp"]
        assert stamps.dt.month().unique().to_list() == [month], name


def test_the_documented_columns(demo_frame):
    assert demo_frame.columns == COLUMNS
    schema = demo_frame.schema
    assert schema["timestamp"] == pl.Datetime("us", "UTC")
    for name in ("entity_id", "entity_type", "segments", "age", "taxonomy"):
        assert schema[name] == pl.String, name
    for name in ("entries", "exits", "sales_volume"):
        assert schema[name].is_integer(), name


def test_the_store_schema(demo_store_path):
    assert ParquetMetricSource(demo_store_path).schema() == StoreSchema(
        dimensions=("entity_type", "segments", "age", "taxonomy"),
        measures=("entries", "exits", "sales_volume"),
    )


def test_one_year_of_opening_hours(demo_frame):
    stamps = demo_frame["timestamp"]
    assert stamps.min() == utc(YEAR, 1, 1, 8)
    assert stamps.max() == utc(YEAR, 12, 31, 21)
    assert stamps.dt.year().unique().to_list() == [YEAR]
    assert sorted(stamps.dt.hour().unique().to_list()) == list(range(8, 22))
    assert stamps.dt.date().n_unique() == 366  # 2024 is a leap year
    assert (stamps.dt.minute() == 0).all()


def test_the_entities(demo_frame):
    assert SEED_ENTITY in LOCATIONS
    entities = demo_frame.group_by("entity_id").agg(pl.col("entity_type").unique())
    types = {row["entity_id"]: row["entity_type"] for row in entities.iter_rows(named=True)}
    assert types == {**{e: ["location"] for e in LOCATIONS}, **{z: ["zone"] for z in ZONES}}
    assert len(LOCATIONS) == 12 and len(set(LOCATIONS)) == 12


def test_the_seed_entity_has_data_in_april(demo_frame):
    april = demo_frame.filter(
        (pl.col("entity_id") == SEED_ENTITY)
        & pl.col("timestamp").is_between(utc(YEAR, 4, 1), utc(YEAR, 4, 30, 23, 59, 59))
    )
    assert april["timestamp"].dt.date().n_unique() == 30
    assert april["entries"].sum() > 0


def test_dimension_values(demo_frame):
    assert set(demo_frame["segments"].unique()) == set(SEGMENTS)
    assert set(demo_frame["age"].unique()) == set(AGES)
    assert set(demo_frame["taxonomy"].unique()) == set(TAXONOMY)


def test_measures_are_plausible(demo_frame):
    assert demo_frame.select(pl.col("entries", "exits", "sales_volume").null_count().sum()).row(0) == (0, 0, 0)
    assert (demo_frame["entries"] >= 0).all()
    assert (demo_frame["exits"] >= 0).all()
    assert (demo_frame["exits"] <= demo_frame["entries"]).all()
    assert (demo_frame["sales_volume"] <= demo_frame["entries"]).all()
    assert demo_frame["entries"].sum() > 0


def test_the_seed_request_validates_against_the_demo_store(demo_store_path):
    schema = ParquetMetricSource(demo_store_path).schema()
    seed = json.loads(files("export_pipeline").joinpath("examples/seed_000_request.json").read_text())
    assert validate_document(seed, schema).request_id == "req-csv-001"


def test_rebuilding_replaces_the_store(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "footfall-1999-01.parquet").write_bytes(b"stale")
    (folder / "keep.txt").write_text("not ours")
    build_demo_store(folder, year=2023)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["keep.txt", *(f"footfall-2023-{m:02d}.parquet" for m in range(1, 13))])
    stamps = pl.read_parquet(folder / "*.parquet", columns=["timestamp"])["timestamp"]
    assert stamps.min() == utc(2023, 1, 1, 8)
    assert stamps.max() == utc(2023, 12, 31, 21)
    assert stamps.dt.date().n_unique() == 365


def test_the_build_is_deterministic(tmp_path, demo_frame):
    again = pl.read_parquet(build_demo_store(tmp_path / "again") / "*.parquet")
    assert again.equals(demo_frame)
