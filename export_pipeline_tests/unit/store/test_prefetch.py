"""Read-ahead: a prefetched read is the same read, taken once, errors included."""

from __future__ import annotations

import pytest

from export_pipeline.store import prefetch
from export_pipeline.store.source import MetricQuery, MetricSourceError
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.timeline.periods import AggregationPeriod
from export_pipeline.timeline.windows import Window
from export_pipeline_tests.support.helpers import utc

QUERY = MetricQuery(
    window=Window(utc(2024, 4, 1), utc(2024, 4, 30, 23, 59, 59), True),
    period=AggregationPeriod.day, entities=None, entity_type="location",
    dimensions=("segments",), measures=("entries",),
)


def test_a_prefetched_read_equals_the_read_and_is_taken_once(demo_store_path):
    source = ParquetMetricSource(demo_store_path)
    prefetch.start(source, [QUERY])
    taken = prefetch.take(ParquetMetricSource(demo_store_path), QUERY)
    assert taken is not None and taken.height > 0
    assert taken.sort(QUERY.key_columns).equals(source.fetch(QUERY).sort(QUERY.key_columns))
    assert prefetch.take(source, QUERY) is None


def test_nothing_is_taken_for_another_store_or_query(demo_store_path, tmp_path):
    source = ParquetMetricSource(demo_store_path)
    prefetch.start(source, [QUERY])
    assert prefetch.take(ParquetMetricSource(tmp_path), QUERY) is None
    other = MetricQuery(**{**QUERY.__dict__, "measures": ("exits",)})
    assert prefetch.take(source, other) is None
    assert prefetch.take(source, QUERY) is not None


def test_a_failed_read_raises_its_error_when_taken(tmp_path):
    source = ParquetMetricSource(tmp_path / "missing")
    prefetch.start(source, [QUERY])
    with pytest.raises(MetricSourceError, match="is not a folder"):
        prefetch.take(source, QUERY)


def test_a_read_in_another_time_zone_or_fetch_mode_is_not_taken(demo_store_path):
    """The key is the whole query: a UTC read never answers a local-time or samples query."""
    source = ParquetMetricSource(demo_store_path)
    prefetch.start(source, [QUERY])
    local = MetricQuery(**{**QUERY.__dict__, "time_zone": "America/New_York"})
    samples = MetricQuery(**{**QUERY.__dict__, "samples": True})
    assert prefetch.take(source, local) is None
    assert prefetch.take(source, samples) is None
    prefetch.start(source, [local])
    taken = prefetch.take(source, local)
    keys = local.key_columns
    assert taken is not None and taken.sort(keys).equals(source.fetch(local).sort(keys))
    assert taken.schema["bucket"] == source.fetch(local).schema["bucket"]
    prefetch.clear()


def test_clear_drops_reads_nobody_took(demo_store_path):
    source = ParquetMetricSource(demo_store_path)
    prefetch.start(source, [QUERY])
    prefetch.clear()
    assert prefetch.take(source, QUERY) is None
