"""The resources as the deployment's settings (``export_pipeline.settings``) make them.

``from_settings`` decides, in this one place, how a setting reaches a resource: as
``EnvVar(name)`` when the environment sets it and Dagster can read it itself (text and whole
numbers), so the UI shows where the value came from and a secret never enters the resource's
config; otherwise as the value the settings module validated (its default, a flag, a number
with a fraction).

Its own module so a one-shot ``export-pipeline run`` can bind the export job without
building the code location's sensors, schedules and saved exports (see ``definitions``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from export_pipeline.orchestration.resources import (
    DestinationsResource,
    ExportStorage,
    MetricSourceResource,
    ParquetMetricStore,
    ReportBranding,
    S3Connection,
    SqlMetricStore,
)
from export_pipeline.settings import Settings, env_name, get_settings, is_set


def from_settings(section: BaseSettings, field: str, *, required: bool = False) -> Any:
    """What a resource field gets for a setting; ``required`` settings are ``EnvVar`` even
    when unset, so a run (not the code location) fails, naming the variable."""
    name = env_name(type(section), field)
    value = getattr(section, field)
    readable = isinstance(value, (str, int, Path, SecretStr)) and not isinstance(value, bool)
    if (is_set(type(section), field) and readable) or (required and value is None):
        return dg.EnvVar.int(name) if isinstance(value, int) and not isinstance(value, bool) else dg.EnvVar(name)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value) if isinstance(value, Path) else value


def destinations_resource(settings: Settings) -> DestinationsResource:
    """Delivery settings; see the README's "Operator settings"."""
    delivery = settings.delivery
    return DestinationsResource(
        allowed_hosts=from_settings(delivery, "destination_hosts"),
        allow_private_networks=from_settings(delivery, "destination_allow_private"),
        allow_loopback=from_settings(delivery, "destination_allow_loopback"),
        sftp_known_hosts=from_settings(delivery, "sftp_known_hosts"),
        sftp_keys_dir=from_settings(delivery, "sftp_keys_dir"),
        s3_endpoint_url=from_settings(delivery, "destination_s3_endpoint"),
        ftps_ca_file=from_settings(delivery, "ftps_ca_file"),
        gcs_project=from_settings(delivery, "gcs_project"),
        sealing_key=from_settings(delivery, "sealing_key"),
        timeout_seconds=from_settings(delivery, "destination_timeout"),
    )


def metric_source_resource(settings: Settings) -> MetricSourceResource:
    """The Parquet folder, or the SQL table ``EXPORT_METRICS_SOURCE`` names (see the README's
    "Your own data" sections); an unknown scheme fails the run's first step in one line."""
    store = settings.metric_store
    if store.scheme == "parquet":
        if store.source:
            return ParquetMetricStore(path=store.parquet_path)
        return ParquetMetricStore(path=from_settings(store, "path"))
    return SqlMetricStore(
        url=from_settings(store, "source"),
        table=from_settings(store, "table"),
        columns=from_settings(store, "columns"),
        measures=from_settings(store, "measures"),
        dimensions=from_settings(store, "dimensions"),
        statement_timeout_seconds=store.statement_timeout,
        retries=store.retries,
    )


def export_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Every resource the export job (and each saved export's job) needs."""
    settings = settings or get_settings()
    bucket, branding = settings.bucket, settings.branding
    return {
        "metric_source": metric_source_resource(settings),
        "export_storage": ExportStorage(
            s3=S3Connection(),
            bucket=from_settings(bucket, "bucket", required=True),
            prefix=from_settings(bucket, "prefix"),
            url_ttl_seconds=from_settings(bucket, "url_ttl"),
            part_size_bytes=from_settings(bucket, "part_size"),
        ),
        "report_branding": ReportBranding(
            name=from_settings(branding, "name"),
            logo_path=from_settings(branding, "logo"),
            primary_color=from_settings(branding, "primary"),
            accent_color=from_settings(branding, "accent"),
        ),
        "destinations": destinations_resource(settings),
        # The command line binds the request it validated and planned (``cli.run_export``).
        "prepared_export": dg.ResourceDefinition.hardcoded_resource(
            None, "Nothing prepared ahead: the plan step validates the run's request."
        ),
        "io_manager": dg.mem_io_manager,
        # The export's record and the delivery tasks (credentials sealed) are kept in the
        # instance's storage so "re-execute from failure" re-runs only the deliveries.
        "delivery_io_manager": dg.FilesystemIOManager(),
    }
