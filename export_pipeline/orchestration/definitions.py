"""The Dagster definitions that ``workspace.yaml`` and the CLI load.

Environment: ``EXPORT_BUCKET`` (required to run), ``EXPORT_METRICS_PATH`` (default: the demo
store), ``EXPORT_URL_TTL`` (seconds, default 3600), ``EXPORT_PREFIX`` (default ``exports``),
``EXPORT_PART_SIZE`` (multipart part size in bytes, default 8 MiB; S3's minimum is 5 MiB).
PDF branding: ``EXPORT_BRAND_NAME``, ``EXPORT_BRAND_LOGO`` (a PNG or JPEG path),
``EXPORT_BRAND_PRIMARY`` and ``EXPORT_BRAND_ACCENT`` (hex colours).
The request inbox, saved exports and notifications: see ``inbox_and_saved_exports`` and the
README's tables.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from export_pipeline.demo_store import default_path
from export_pipeline.file_naming import DEFAULT_PREFIX
from export_pipeline.orchestration.inbox import RequestInbox, build_inbox_sensor, build_result_sensors
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.orchestration.notifications import Notifier, build_notification_sensors
from export_pipeline.orchestration.resources import (
    DestinationsResource,
    ExportStorage,
    ParquetMetricStore,
    ReportBranding,
)
from export_pipeline.orchestration.saved_exports import saved_export_definitions
from export_pipeline.pdf_report import Branding
from export_pipeline.s3_upload import PART_SIZE
from export_pipeline.saved_exports import load_saved_exports


def _env_or(name: str, default):
    """``EnvVar(name)`` when it is set (so the UI shows where a value came from), else ``default``."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int_or(name: str, default: int):
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def _sensor_status(name: str) -> dg.DefaultSensorStatus:
    running = os.environ.get(name, "running").strip().lower() != "stopped"
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def inbox_and_saved_exports() -> tuple[list, list, list, dict]:
    """Jobs, schedules, sensors and resources of the request inbox, the saved exports in
    ``EXPORT_DEFINITIONS_PATH`` and the notifications.

    ``EXPORT_INBOX_BUCKET`` (default ``EXPORT_BUCKET``), ``EXPORT_INBOX_PREFIX`` (``requests/``),
    ``EXPORT_RESULTS_PREFIX`` (``results/``), ``EXPORT_INBOX_SENSOR`` (``running``/``stopped``),
    ``EXPORT_SENSOR_INTERVAL_SECONDS`` (30), ``EXPORT_SMTP_*``, ``EXPORT_SLACK_WEBHOOK_URL``,
    ``EXPORT_DISCORD_WEBHOOK_URL``, ``EXPORT_TELEGRAM_BOT_TOKEN``, ``EXPORT_TELEGRAM_API_URL``,
    ``EXPORT_NOTIFY_ATTEMPTS`` (3), ``EXPORT_NOTIFY_BACKOFF_SECONDS`` (2).
    """
    interval = int(os.environ.get("EXPORT_SENSOR_INTERVAL_SECONDS", "30"))
    jobs, schedules = [], []
    if os.environ.get("EXPORT_DEFINITIONS_PATH"):
        jobs, schedules = saved_export_definitions(
            load_saved_exports(os.environ["EXPORT_DEFINITIONS_PATH"])
        )
    sensors = [
        build_inbox_sensor(interval, _sensor_status("EXPORT_INBOX_SENSOR")),
        *build_result_sensors(interval),
        *build_notification_sensors(interval),
    ]
    resources = {
        "request_inbox": RequestInbox(
            s3=S3Resource(),
            bucket=_env_or("EXPORT_INBOX_BUCKET", dg.EnvVar("EXPORT_BUCKET")),
            prefix=_env_or("EXPORT_INBOX_PREFIX", "requests/"),
            results_prefix=_env_or("EXPORT_RESULTS_PREFIX", "results/"),
        ),
        "notifier": Notifier(
            smtp_host=_env_or("EXPORT_SMTP_HOST", None),
            smtp_port=_env_int_or("EXPORT_SMTP_PORT", 587),
            smtp_username=_env_or("EXPORT_SMTP_USERNAME", None),
            smtp_password=_env_or("EXPORT_SMTP_PASSWORD", None),
            smtp_sender=_env_or("EXPORT_SMTP_FROM", "export-pipeline@localhost"),
            smtp_security=_env_or("EXPORT_SMTP_SECURITY", "starttls"),
            slack_webhook_url=_env_or("EXPORT_SLACK_WEBHOOK_URL", None),
            discord_webhook_url=_env_or("EXPORT_DISCORD_WEBHOOK_URL", None),
            telegram_bot_token=_env_or("EXPORT_TELEGRAM_BOT_TOKEN", None),
            telegram_api_url=_env_or("EXPORT_TELEGRAM_API_URL", "https://api.telegram.org"),
            attempts=_env_int_or("EXPORT_NOTIFY_ATTEMPTS", 3),
            backoff_seconds=float(os.environ.get("EXPORT_NOTIFY_BACKOFF_SECONDS", "2")),
        ),
    }
    return jobs, schedules, sensors, resources


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def destinations_resource() -> DestinationsResource:
    """Delivery settings; see the README's "Destinations" section for each variable."""
    return DestinationsResource(
        allowed_hosts=_env_or("EXPORT_DESTINATION_HOSTS", ""),
        allow_private_networks=_env_flag("EXPORT_DESTINATION_ALLOW_PRIVATE"),
        allow_loopback=_env_flag("EXPORT_DESTINATION_ALLOW_LOOPBACK"),
        sftp_known_hosts=_env_or("EXPORT_SFTP_KNOWN_HOSTS", None),
        sftp_keys_dir=_env_or("EXPORT_SFTP_KEYS_DIR", None),
        s3_endpoint_url=_env_or("EXPORT_DESTINATION_S3_ENDPOINT", None),
        ftps_ca_file=_env_or("EXPORT_FTPS_CA_FILE", None),
        gcs_project=_env_or("EXPORT_GCS_PROJECT", None),
        sealing_key=_env_or("EXPORT_SEALING_KEY", None),
        timeout_seconds=float(os.environ.get("EXPORT_DESTINATION_TIMEOUT") or 30),
    )


def build_definitions() -> dg.Definitions:
    saved_jobs, schedules, sensors, inbox_resources = inbox_and_saved_exports()
    return dg.Definitions(
        jobs=[export_job, *saved_jobs],
        schedules=schedules,
        sensors=sensors,
        resources={
            **inbox_resources,
            "metric_source": ParquetMetricStore(
                path=_env_or("EXPORT_METRICS_PATH", str(default_path()))
            ),
            "export_storage": ExportStorage(
                s3=S3Resource(),
                bucket=dg.EnvVar("EXPORT_BUCKET"),
                prefix=_env_or("EXPORT_PREFIX", DEFAULT_PREFIX),
                url_ttl_seconds=_env_int_or("EXPORT_URL_TTL", 3600),
                part_size_bytes=_env_int_or("EXPORT_PART_SIZE", PART_SIZE),
            ),
            "report_branding": ReportBranding(
                name=_env_or("EXPORT_BRAND_NAME", ""),
                logo_path=_env_or("EXPORT_BRAND_LOGO", ""),
                primary_color=_env_or("EXPORT_BRAND_PRIMARY", Branding.primary_color),
                accent_color=_env_or("EXPORT_BRAND_ACCENT", Branding.accent_color),
            ),


            "destinations": destinations_resource(),
            "io_manager": dg.mem_io_manager,
            # The export's record and the delivery tasks (credentials sealed) are kept in the
            # instance's storage so "re-execute from failure" re-runs only the deliveries.
            "delivery_io_manager": dg.FilesystemIOManager(),
        },
    )


defs = build_definitions()
