"""The export job's resources as the deployment's environment sets them (``EnvVar``).

Its own module so a one-shot ``export-pipeline run`` can bind the export job without
building the code location's sensors, schedules and saved exports (see ``definitions``).

``EXPORT_BUCKET`` (required to run), ``EXPORT_METRICS_PATH`` (default: the demo store) or
``EXPORT_METRICS_SOURCE`` and its table settings (a SQL table, see ``settings``),
``EXPORT_URL_TTL`` (seconds, default 3600), ``EXPORT_PREFIX`` (default ``exports``),
``EXPORT_PART_SIZE`` (multipart part size in bytes, default 8 MiB; S3's minimum is 5 MiB).
PDF branding: ``EXPORT_BRAND_NAME``, ``EXPORT_BRAND_LOGO`` (a PNG or JPEG path),
``EXPORT_BRAND_PRIMARY`` and ``EXPORT_BRAND_ACCENT`` (hex colours). Destinations: see the
README's "Destinations" section.
"""

import os
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from export_pipeline.formats.branding import Branding
from export_pipeline.demo.store import default_path
from export_pipeline.publishing.keys import DEFAULT_PREFIX
from export_pipeline.orchestration.resources import (
    DestinationsResource,
    ExportStorage,
    MetricSourceResource,
    ParquetMetricStore,
    ReportBranding,
    SqlMetricStore,
)
from export_pipeline.publishing.s3_upload import PART_SIZE


def env_or(name: str, default: Any) -> Any:
    """``EnvVar(name)`` when it is set (so the UI shows where a value came from), else ``default``."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def env_int_or(name: str, default: int) -> Any:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def destinations_resource() -> DestinationsResource:
    """Delivery settings; see the README's "Destinations" section for each variable."""
    return DestinationsResource(
        allowed_hosts=env_or("EXPORT_DESTINATION_HOSTS", ""),
        allow_private_networks=_env_flag("EXPORT_DESTINATION_ALLOW_PRIVATE"),
        allow_loopback=_env_flag("EXPORT_DESTINATION_ALLOW_LOOPBACK"),
        sftp_known_hosts=env_or("EXPORT_SFTP_KNOWN_HOSTS", None),
        sftp_keys_dir=env_or("EXPORT_SFTP_KEYS_DIR", None),
        s3_endpoint_url=env_or("EXPORT_DESTINATION_S3_ENDPOINT", None),
        ftps_ca_file=env_or("EXPORT_FTPS_CA_FILE", None),
        gcs_project=env_or("EXPORT_GCS_PROJECT", None),
        sealing_key=env_or("EXPORT_SEALING_KEY", None),
        timeout_seconds=float(os.environ.get("EXPORT_DESTINATION_TIMEOUT") or 30),
    )


def metric_source_resource() -> MetricSourceResource:
    """The Parquet folder, or the SQL table ``EXPORT_METRICS_SOURCE`` names (see the README's
    "Your own data" sections); an unknown scheme fails the run's first step in one line."""
    from export_pipeline.settings import get_metric_source_settings

    settings = get_metric_source_settings()
    if settings.scheme == "parquet":
        if settings.parquet_path and settings.source:
            return ParquetMetricStore(path=settings.parquet_path)
        return ParquetMetricStore(path=env_or("EXPORT_METRICS_PATH", str(default_path())))
    return SqlMetricStore(
        url=dg.EnvVar("EXPORT_METRICS_SOURCE"),
        table=env_or("EXPORT_METRICS_TABLE", settings.table),
        columns=env_or("EXPORT_METRICS_COLUMNS", ""),
        measures=env_or("EXPORT_METRICS_MEASURES", ""),
        dimensions=env_or("EXPORT_METRICS_DIMENSIONS", ""),
        statement_timeout_seconds=settings.statement_timeout,
        retries=settings.retries,
    )


def export_resources() -> dict[str, Any]:
    """Every resource the export job (and each saved export's job) needs."""
    return {
        "metric_source": metric_source_resource(),
        "export_storage": ExportStorage(
            s3=S3Resource(),
            bucket=dg.EnvVar("EXPORT_BUCKET"),
            prefix=env_or("EXPORT_PREFIX", DEFAULT_PREFIX),
            url_ttl_seconds=env_int_or("EXPORT_URL_TTL", 3600),
            part_size_bytes=env_int_or("EXPORT_PART_SIZE", PART_SIZE),
        ),
        "report_branding": ReportBranding(
            name=env_or("EXPORT_BRAND_NAME", ""),
            logo_path=env_or("EXPORT_BRAND_LOGO", ""),
            primary_color=env_or("EXPORT_BRAND_PRIMARY", Branding.primary_color),
            accent_color=env_or("EXPORT_BRAND_ACCENT", Branding.accent_color),
        ),
        "destinations": destinations_resource(),
        "io_manager": dg.mem_io_manager,
        # The export's record and the delivery tasks (credentials sealed) are kept in the
        # instance's storage so "re-execute from failure" re-runs only the deliveries.
        "delivery_io_manager": dg.FilesystemIOManager(),
    }
