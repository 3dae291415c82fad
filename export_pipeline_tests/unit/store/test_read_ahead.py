"""Read-ahead: a read started before the run is the same read, taken once, errors included,
and belongs to the run it was started for (no state shared through the module)."""

from __future__ import annotations

import importlib.util

import pytest

from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.store.read_ahead import ReadAhead
from export_pipeline.store.source import MetricQuery, MetricSourceError
from export_pipeline.timeline.periods import AggregationPeriod
from export_pipeline.timeline.windows import Window
from export_pipeline_tests.support.helpers import utc

QUERY = MetricQuery(
    window=Window(utc(2024, 4, 1), utc(2024, 4, 30, 23, 59, 59), True),
    period=AggregationPeriod.day, entities=None, entity_type="location",
    dimensions=("segments",), measures=("entries",),
)


def test_a_read_ahead_equals_the_read_and_is_taken_once(demo_store_path):
    source = ParquetMetricSource(demo_store_path)
    reads = ReadAhead(source, [QUERY])
    taken = reads.take(QUERY)
    assert taken is not None and taken.height > 0
    assert taken.sort(QUERY.key_columns).equals(source.fetch(QUERY).sort(QUERY.key_columns))
    assert reads.take(QUERY) is None


def test_fetch_reads_what_was_not_read_ahead(demo_store_path):
    source = ParquetMetricSource(demo_store_path)
    reads = ReadAhead(source, [QUERY])
    other = MetricQuery(**{**QUERY.__dict__, "measures": ("exits",)})
    assert reads.take(other) is None
    frame, ahead = reads.fetch(other)
    assert not ahead and frame.sort(other.key_columns).equals(source.fetch(other).sort(other.key_columns))
    assert reads.fetch(QUERY)[1] is True


def test_a_failed_read_raises_its_error_when_taken(tmp_path):
    reads = ReadAhead(ParquetMetricSource(tmp_path / "missing"), [QUERY])
    with pytest.raises(MetricSourceError, match="is not a folder"):
        reads.take(QUERY)


def test_a_read_in_another_time_zone_or_fetch_mode_is_not_taken(demo_store_path):
    """The key is the whole query: a UTC read never answers a local-time or samples query."""
    source = ParquetMetricSource(demo_store_path)
    reads = ReadAhead(source, [QUERY])
    local = MetricQuery(**{**QUERY.__dict__, "time_zone": "America/New_York"})
    samples = MetricQuery(**{**QUERY.__dict__, "samples": True})
    assert reads.take(local) is None and reads.take(samples) is None
    taken = ReadAhead(source, [local]).take(local)
    keys = local.key_columns
    assert taken is not None and taken.sort(keys).equals(source.fetch(local).sort(keys))


def test_two_runs_reading_the_same_query_each_get_their_own_read(demo_store_path, tmp_path):
    """A process-wide registry keyed by store and query let the second run's reads replace
    the first's; each read-ahead now belongs to the run it was handed to."""
    first = ReadAhead(ParquetMetricSource(demo_store_path), [QUERY])
    second = ReadAhead(ParquetMetricSource(tmp_path / "missing"), [QUERY])
    assert first.take(QUERY).height > 0
    with pytest.raises(MetricSourceError):
        second.take(QUERY)
    assert importlib.util.find_spec("export_pipeline.store.prefetch") is None


def test_cancel_drops_reads_nobody_took(demo_store_path):
    reads = ReadAhead(ParquetMetricSource(demo_store_path), [QUERY])
    reads.cancel()
    assert reads.take(QUERY) is None
