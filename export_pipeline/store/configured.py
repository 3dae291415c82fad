"""The metric source a deployment's settings name: a Parquet folder or a SQL table."""

from __future__ import annotations

from export_pipeline.settings import MetricStoreSettings
from export_pipeline.store.source import MetricSource, MetricSourceError


def metric_source(settings: MetricStoreSettings) -> MetricSource:
    """The source ``settings`` name: the Parquet folder, or the SQL table of ``source``."""
    if settings.scheme == "parquet":
        from export_pipeline.store.parquet import ParquetMetricSource

        return ParquetMetricSource(settings.parquet_path)
    from export_pipeline.store.sql import sql_source
    from export_pipeline.store.sql_url import SQL_SCHEMES, safe_url

    if settings.scheme not in SQL_SCHEMES:
        raise MetricSourceError(
            f"EXPORT_METRICS_SOURCE {safe_url(settings.source)!r}: use parquet:///path, "
            "duckdb:///path/file.db or postgresql://host[:port]/database"
        )
    return sql_source(settings)
