"""EXPORT_METRICS_SOURCE picks the metric source resource; EXPORT_METRICS_PATH keeps working."""

import dagster as dg
import pytest

from export_pipeline.orchestration.environment import metric_source_resource
from export_pipeline.orchestration.resources import ParquetMetricStore, SqlMetricStore
from export_pipeline.settings import MetricStoreSettings, get_settings
from export_pipeline.store.configured import metric_source
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.store.source import MetricSourceError
from export_pipeline.store.sql import SqlMetricSource

VARS = ("EXPORT_METRICS_SOURCE", "EXPORT_METRICS_PATH", "EXPORT_METRICS_TABLE",
        "EXPORT_METRICS_COLUMNS", "EXPORT_METRICS_MEASURES", "EXPORT_METRICS_DIMENSIONS")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_parquet_path_is_still_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(tmp_path))
    resource = metric_source_resource(get_settings())
    assert isinstance(resource, ParquetMetricStore)
    assert resource.path == dg.EnvVar("EXPORT_METRICS_PATH")


def test_a_parquet_url(monkeypatch):
    monkeypatch.setenv("EXPORT_METRICS_SOURCE", "parquet:///data/metrics")
    resource = metric_source_resource(get_settings())
    assert isinstance(resource, ParquetMetricStore) and resource.path == "/data/metrics"


def test_a_sql_url_with_its_mapping(monkeypatch):
    monkeypatch.setenv("EXPORT_METRICS_SOURCE", "postgresql://db.internal:5433/analytics")
    monkeypatch.setenv("EXPORT_METRICS_TABLE", "public.metric_rows")
    monkeypatch.setenv("EXPORT_METRICS_COLUMNS", "timestamp=ts,entity_id=site")
    resource = metric_source_resource(get_settings())
    assert isinstance(resource, SqlMetricStore)
    assert resource.url == dg.EnvVar("EXPORT_METRICS_SOURCE")
    assert resource.table == dg.EnvVar("EXPORT_METRICS_TABLE")
    source = metric_source(MetricStoreSettings.load())
    assert isinstance(source, SqlMetricSource)
    assert source.target.host == "db.internal" and source.target.port == 5433
    assert source.target.database == "analytics" and source.table_name == "public.metric_rows"
    assert source.columns.timestamp == "ts" and source.columns.entity_id == "site"
    assert source.columns.entity_type == "entity_type"


def test_plain_factory_parquet_default(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(tmp_path))
    source = metric_source(MetricStoreSettings.load())
    assert isinstance(source, ParquetMetricSource) and source.path == tmp_path


def test_an_unknown_scheme_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("EXPORT_METRICS_SOURCE", "mysql://user@db/x")
    with pytest.raises(MetricSourceError, match="use parquet:///path") as caught:
        metric_source(MetricStoreSettings.load())
    assert "user" not in str(caught.value) and "\n" not in str(caught.value)
