"""Every setting of the product, read from the environment in one place (pydantic-settings).

Each field has its type, default and description; the README's settings tables are checked
against this module by a test. Dagster resources take their values from here (as ``EnvVar``
where the UI should show where a value came from); plain modules are handed values, they never
read the environment themselves.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LimitSettings(BaseSettings):
    """What one request may cost, estimated at validation and refused above these numbers,
    before anything runs. The same limits hold for the CLI, the Launchpad, the inbox, saved
    exports and the API."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_MAX_", extra="ignore")

    rows: int = Field(10_000_000, ge=1, description="estimated rows of one export file")
    columns: int = Field(10_000, ge=1, description="columns of one export file (XLSX allows at most 16,384)")
    cells: int = Field(200_000_000, ge=1, description="estimated cells (rows x columns) of one export file")
    windows: int = Field(2_000, ge=1, description="store reads (90-day windows x metric requests) of one export")
    entities: int = Field(10_000, ge=1, description="entity ids named in one metric request")
    metric_requests: int = Field(100, ge=1, description="metric requests in one export")


@lru_cache(maxsize=1)
def get_limits() -> LimitSettings:
    return LimitSettings()


# --- metric source --------------------------------------------------------------------------


class MetricSourceSettings(BaseSettings):
    """Where metric data is read: a Parquet folder (the default) or a SQL table, and how that
    table maps onto the store's model. Credentials are never part of these: PostgreSQL reads
    ``PGUSER``/``PGPASSWORD`` (or ``~/.pgpass``) from the environment as libpq does."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_METRICS_", extra="ignore")

    source: str = Field(
        "",
        description="parquet:///path, duckdb:///path/file.db or postgresql://host[:port]/db; "
        "empty: the Parquet folder EXPORT_METRICS_PATH",
    )
    path: str = Field("", description="folder of the Parquet metric store (empty: the demo store)")
    table: str = Field("metrics", description="SQL table (or view), optionally schema.table")
    columns: str = Field(
        "", description="SQL columns behind the model: timestamp=COL,entity_id=COL,entity_type=COL"
    )
    measures: str = Field("", description="comma-separated measure columns (empty: every numeric column)")
    dimensions: str = Field("", description="comma-separated dimension columns (empty: every string column)")
    statement_timeout: float = Field(
        600.0, ge=0, description="seconds one SQL query may run before the engine stops it (0: none)"
    )
    retries: int = Field(
        3, ge=0, le=10,
        description="retries of a transient SQL error (reset connection, serialization failure, "
        "too many connections), backoff 0.5 s doubling",
    )

    @property
    def scheme(self) -> str:
        return self.source.partition("://")[0].lower() if "://" in self.source else "parquet"

    @property
    def parquet_path(self) -> str:
        """The Parquet folder: ``parquet://PATH`` or ``EXPORT_METRICS_PATH``."""
        if self.source and self.scheme == "parquet":
            return self.source.partition("://")[2]
        return self.path


def get_metric_source_settings() -> MetricSourceSettings:
    return MetricSourceSettings()
