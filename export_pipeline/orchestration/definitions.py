"""The Dagster definitions ``workspace.yaml`` loads: the export job, the saved exports' assets, jobs
and schedules, the inbox and notification sensors, the stale-upload sweep, and their
resources.

``defs`` is a ``dg.definitions`` function: importing this module reads no setting and no
file; Dagster calls it when it loads the code location. The settings: ``export_pipeline.settings``
(the README's tables); how they reach the resources: ``environment``.
"""

from __future__ import annotations

import gc
import os

import dagster as dg

# Each launched run is a new process that imports Dagster, then this module; the objects the
# imports make live as long as the process, and every full garbage collection would walk
# them all again. Frozen, the collector skips them (the CLI does the same, ``cli.py``).
gc.freeze()

from export_pipeline.orchestration.environment import export_resources, from_settings
from export_pipeline.orchestration.inbox_sensors import (
    RequestInbox,
    build_inbox_sensor,
    build_result_sensors,
    inbox_result_hook,
)
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.orchestration.notification_sensors import Notifier, build_notification_sensors
from export_pipeline.orchestration.resources import S3Connection
from export_pipeline.orchestration.saved_export_jobs import saved_export_definitions
from export_pipeline.orchestration.service_runs import api_export_job
from export_pipeline.orchestration.upload_cleanup import (
    export_retention_sweep_job,
    retention_schedule,
    stale_upload_schedule,
    stale_upload_sweep_job,
)
from export_pipeline.saved_exports.definitions import load_saved_exports
from export_pipeline.settings import Settings, ThroughputSettings, get_settings

STATUS_SENSOR_PROCESS_LIMIT = "DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT"
STATUS_SENSOR_FETCH_LIMIT = "DAGSTER_RUN_STATUS_SENSOR_FETCH_LIMIT"


def apply_status_sensor_limits(throughput: ThroughputSettings) -> None:
    """Dagster caps what one run-status sensor tick handles only through its environment, read
    in the process that evaluates the sensors (the one loading these definitions): without
    this, a burst of inbox runs would see its results written five per tick. A limit the
    environment sets itself is left alone. The events fetched per tick keep Dagster's own ratio
    to the runs handled (five to one), since runs of other code locations are fetched and
    skipped."""
    runs = throughput.status_sensor_runs_per_tick
    os.environ.setdefault(STATUS_SENSOR_PROCESS_LIMIT, str(runs))
    os.environ.setdefault(STATUS_SENSOR_FETCH_LIMIT, str(5 * runs))


def inbox_and_saved_exports(settings: Settings) -> tuple[list, list, list, list, dict]:
    """Assets, jobs, schedules, sensors and resources of the request inbox, the saved exports in
    ``EXPORT_DEFINITIONS_PATH`` and the notifications."""
    inbox, notifications = settings.inbox, settings.notifications
    interval = inbox.sensor_interval_seconds
    assets, jobs, schedules, saved_exports = [], [], [], []
    if settings.saved_exports.definitions_path is not None:
        saved_exports = load_saved_exports(settings.saved_exports.definitions_path)
        assets, jobs, schedules = saved_export_definitions(saved_exports)
    inbox_status = (
        dg.DefaultSensorStatus.RUNNING if inbox.inbox_sensor == "running"
        else dg.DefaultSensorStatus.STOPPED
    )
    sensors = [
        build_inbox_sensor(interval, inbox_status),
        *build_result_sensors(interval),
        *build_notification_sensors(interval, saved_exports),
    ]
    resources = {
        "request_inbox": RequestInbox(
            s3=S3Connection(),
            bucket=(
                from_settings(inbox, "inbox_bucket") if inbox.inbox_bucket
                else from_settings(settings.bucket, "bucket", required=True)
            ),
            prefix=from_settings(inbox, "inbox_prefix"),
            results_prefix=from_settings(inbox, "results_prefix"),
        ),
        "notifier": Notifier(
            smtp_host=from_settings(notifications, "smtp_host"),
            smtp_port=from_settings(notifications, "smtp_port"),
            smtp_username=from_settings(notifications, "smtp_username"),
            smtp_password=from_settings(notifications, "smtp_password"),
            smtp_sender=from_settings(notifications, "smtp_from"),
            smtp_security=from_settings(notifications, "smtp_security"),
            slack_webhook_url=from_settings(notifications, "slack_webhook_url"),
            discord_webhook_url=from_settings(notifications, "discord_webhook_url"),
            telegram_bot_token=from_settings(notifications, "telegram_bot_token"),
            telegram_api_url=from_settings(notifications, "telegram_api_url"),
            attempts=from_settings(notifications, "notify_attempts"),
            backoff_seconds=from_settings(notifications, "notify_backoff_seconds"),
        ),
    }
    return assets, jobs, schedules, sensors, resources


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or get_settings()
    apply_status_sensor_limits(settings.throughput)
    assets, saved_jobs, schedules, sensors, inbox_resources = inbox_and_saved_exports(settings)
    return dg.Definitions(
        assets=assets,
        jobs=[export_job.with_hooks({inbox_result_hook}), api_export_job, stale_upload_sweep_job, export_retention_sweep_job, *saved_jobs],
        # the asset page's Materialize runs Dagster's own asset job: in process, like ours, so
        # the fetched frames stay in memory between steps
        executor=dg.in_process_executor,
        schedules=[*schedules, stale_upload_schedule(settings.cleanup), retention_schedule(settings.retention)],
        sensors=sensors,
        resources={**inbox_resources, **export_resources(settings)},
    )


@dg.definitions
def defs() -> dg.Definitions:
    definitions = build_definitions()
    gc.freeze()  # what this module's imports and the definitions made, as above
    return definitions
