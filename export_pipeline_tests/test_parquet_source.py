"""The Parquet metric source: a long window read in slices gives the same frame as one read."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from export_pipeline import parquet_source
from export_pipeline.metric_source import MetricQuery
from export_pipeline.parquet_source import ParquetMetricSource, _slices
from export_pipeline.periods import AggregationPeriod
from export_pipeline.windows import Window
from export_pipeline_tests.helpers import utc


@pytest.mark.parametrize("period", ["minute", "hour", "day", "week"])
@pytest.mark.parametrize("end_inclusive", [True, False])
def test_slices_cut_on_bucket_boundaries_and_keep_the_window_closure(period, end_inclusive):
    period = AggregationPeriod(period)
    window = Window(utc(2024, 1, 3, 6, 30), utc(2024, 3, 1, 12), end_inclusive)
    slices = _slices(window, period)
    assert len(slices) > 1
    assert slices[0].start == window.start and slices[-1].end == window.end
    assert slices[-1].end_inclusive == end_inclusive
    assert all(not s.end_inclusive for s in slices[:-1])
    for before, after in zip(slices, slices[1:]):
        assert before.end == after.start
        assert after.start - before.start <= parquet_source.SLICE_SPAN


def test_long_periods_are_read_in_one_piece():
    window = Window(utc(2024, 1, 1), utc(2024, 3, 30), True)
    assert _slices(window, AggregationPeriod.month) == [window]


@pytest.mark.parametrize("period", ["hour", "day", "week"])
def test_a_sliced_read_equals_one_read(demo_store_path, monkeypatch, period):
    source = ParquetMetricSource(demo_store_path)
    query = MetricQuery(
        window=Window(utc(2024, 2, 3, 9, 30), utc(2024, 4, 20, 17, 45), True),
        period=AggregationPeriod(period),
        entities=None, entity_type="location", dimensions=("segments",),
        measures=("entries", "sales_volume"),
    )
    keys = query.key_columns
    sliced = source.fetch(query).sort(keys)
    monkeypatch.setattr(parquet_source, "SLICE_SPAN", timedelta(days=365))
    whole = source.fetch(query).sort(keys)
    assert sliced.height == whole.height > 0
    assert sliced.equals(whole)
    assert sliced.select(pl.struct(keys).is_unique().all()).item()
