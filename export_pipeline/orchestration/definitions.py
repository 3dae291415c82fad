"""The Dagster definitions ``workspace.yaml`` loads: the export job, the saved exports' assets, jobs
and schedules, the inbox and notification sensors, the stale-upload sweep, and their
resources.

The export job's resources and their environment variables: see ``environment`` (the CLI's
``run`` binds the export job with those alone). The request inbox, saved exports and
notifications: see ``inbox_and_saved_exports`` and the README's tables.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from export_pipeline.orchestration.environment import env_int_or, env_or, export_resources
from export_pipeline.orchestration.inbox_sensors import RequestInbox, build_inbox_sensor, build_result_sensors
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.orchestration.notification_sensors import Notifier, build_notification_sensors
from export_pipeline.orchestration.saved_export_jobs import saved_export_definitions
from export_pipeline.orchestration.service_runs import api_export_job
from export_pipeline.orchestration.upload_cleanup import stale_upload_schedule, stale_upload_sweep_job
from export_pipeline.saved_exports.definitions import load_saved_exports
from export_pipeline.settings import get_cleanup


def _sensor_status(name: str) -> dg.DefaultSensorStatus:
    running = os.environ.get(name, "running").strip().lower() != "stopped"
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def inbox_and_saved_exports() -> tuple[list, list, list, list, dict]:
    """Assets, jobs, schedules, sensors and resources of the request inbox, the saved exports in
    ``EXPORT_DEFINITIONS_PATH`` and the notifications.

    ``EXPORT_INBOX_BUCKET`` (default ``EXPORT_BUCKET``), ``EXPORT_INBOX_PREFIX`` (``requests/``),
    ``EXPORT_RESULTS_PREFIX`` (``results/``), ``EXPORT_INBOX_SENSOR`` (``running``/``stopped``),
    ``EXPORT_SENSOR_INTERVAL_SECONDS`` (30), ``EXPORT_SMTP_*``, ``EXPORT_SLACK_WEBHOOK_URL``,
    ``EXPORT_DISCORD_WEBHOOK_URL``, ``EXPORT_TELEGRAM_BOT_TOKEN``, ``EXPORT_TELEGRAM_API_URL``,
    ``EXPORT_NOTIFY_ATTEMPTS`` (3), ``EXPORT_NOTIFY_BACKOFF_SECONDS`` (2).
    """
    interval = int(os.environ.get("EXPORT_SENSOR_INTERVAL_SECONDS", "30"))
    assets, jobs, schedules = [], [], []
    if os.environ.get("EXPORT_DEFINITIONS_PATH"):
        assets, jobs, schedules = saved_export_definitions(
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
            bucket=env_or("EXPORT_INBOX_BUCKET", dg.EnvVar("EXPORT_BUCKET")),
            prefix=env_or("EXPORT_INBOX_PREFIX", "requests/"),
            results_prefix=env_or("EXPORT_RESULTS_PREFIX", "results/"),
        ),
        "notifier": Notifier(
            smtp_host=env_or("EXPORT_SMTP_HOST", None),
            smtp_port=env_int_or("EXPORT_SMTP_PORT", 587),
            smtp_username=env_or("EXPORT_SMTP_USERNAME", None),
            smtp_password=env_or("EXPORT_SMTP_PASSWORD", None),
            smtp_sender=env_or("EXPORT_SMTP_FROM", "export-pipeline@localhost"),
            smtp_security=env_or("EXPORT_SMTP_SECURITY", "starttls"),
            slack_webhook_url=env_or("EXPORT_SLACK_WEBHOOK_URL", None),
            discord_webhook_url=env_or("EXPORT_DISCORD_WEBHOOK_URL", None),
            telegram_bot_token=env_or("EXPORT_TELEGRAM_BOT_TOKEN", None),
            telegram_api_url=env_or("EXPORT_TELEGRAM_API_URL", "https://api.telegram.org"),
            attempts=env_int_or("EXPORT_NOTIFY_ATTEMPTS", 3),
            backoff_seconds=float(os.environ.get("EXPORT_NOTIFY_BACKOFF_SECONDS", "2")),
        ),
    }
    return assets, jobs, schedules, sensors, resources


def build_definitions() -> dg.Definitions:
    assets, saved_jobs, schedules, sensors, inbox_resources = inbox_and_saved_exports()
    return dg.Definitions(
        assets=assets,
        jobs=[export_job, api_export_job, stale_upload_sweep_job, *saved_jobs],
        # the asset page's Materialize runs Dagster's own asset job: in process, like ours, so
        # the fetched frames stay in memory between steps
        executor=dg.in_process_executor,
        schedules=[*schedules, stale_upload_schedule(get_cleanup())],
        sensors=sensors,
        resources={**inbox_resources, **export_resources()},
    )


defs = build_definitions()
