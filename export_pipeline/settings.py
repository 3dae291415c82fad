"""Every setting of the product, read from the environment in one place (pydantic-settings).

Each field has its type, default and description; the README's settings tables are checked
against this module by a test. Dagster resources take their values from here (as ``EnvVar``
where the UI should show where a value came from); plain modules are handed values, they never
read the environment themselves.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

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


class ServiceSettings(BaseSettings):
    """The export service API (``export-pipeline serve``): who may call it, where its own
    records live and what one call may cost."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_SERVICE_", extra="ignore")

    tenants_file: str | None = Field(
        None, validation_alias="EXPORT_TENANTS_FILE",
        description="YAML file of the tenants and their API key hashes; required to serve",
    )
    state: str | None = Field(
        None, validation_alias="EXPORT_SERVICE_STATE",
        description="SQLite file of the export resources (name, notes, tags, owner); "
        "default export-service.sqlite in DAGSTER_HOME",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="largest request body accepted, bytes; larger is refused (413) unread"
    )
    rate_limit_requests: int = Field(
        120, ge=1, description="calls a tenant may make per window when its entry sets no rate_limit"
    )
    rate_limit_seconds: float = Field(60.0, gt=0, description="the rate limit's window, seconds")
    monthly_quota: int = Field(
        1000, ge=0, description="exports a tenant may create per calendar month (UTC) when its entry sets none"
    )
    page_size: int = Field(50, ge=1, le=500, description="exports per page of GET /v1/exports when no limit is given")
    url_ttl: int = Field(
        3600, ge=1, le=604_800, validation_alias="EXPORT_URL_TTL",
        description="signed URL lifetime, seconds, counted from each view of an export",
    )


def get_service_settings() -> ServiceSettings:
    return ServiceSettings()


class CleanupSettings(BaseSettings):
    """Clearing multipart uploads that runs killed outright left open (their parts are
    billed): the sweep's threshold and schedule, and the lifecycle rule's age."""

    model_config = SettingsConfigDict(env_prefix="EXPORT_", extra="ignore")

    stale_upload_hours: float = Field(
        24, gt=0, description="the sweep aborts uploads under the export prefix begun longer ago than this"
    )
    stale_upload_schedule: str = Field(
        "0 * * * *", pattern=r"^\s*\S+(\s+\S+){4}\s*$",
        description="cron schedule of the sweep (the stale_upload_sweep schedule), five fields",
    )
    stale_upload_sweep: Literal["running", "stopped"] = Field(
        "stopped", description="the sweep schedule's state when the code location loads: on "
        "for stores without lifecycle rules"
    )
    abort_upload_days: int = Field(
        1, ge=1, description="DaysAfterInitiation of the lifecycle rule `cleanup lifecycle` sets"
    )


def get_cleanup() -> CleanupSettings:
    return CleanupSettings()
