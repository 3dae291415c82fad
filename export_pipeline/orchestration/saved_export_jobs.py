"""Saved export definitions as Dagster jobs: each one a time-window partitioned job (its cadence,
in its timezone, DST-safe) whose partition key alone determines the export, plus a schedule
that runs the newest complete partition. A backfill from the UI carries no run config: the
``PartitionedConfig`` fills the request's window from the partition."""

import json

import dagster as dg

from export_pipeline.destinations.sealing import seal_for_run_config
from export_pipeline.orchestration.jobs import export_graph, request_run_config
from export_pipeline.orchestration.run_outcomes import NAME_TAG, NOTIFICATION_TAG, WINDOW_TAG
from export_pipeline.saved_exports.definitions import Cadence, SavedExport
from export_pipeline.settings import DeliverySettings

SAVED_EXPORT_TAG = "export_pipeline/saved_export"
HOURLY_FMT = "%Y-%m-%dT%H-%M"  # no ':' in object keys


def partitions_for(saved: SavedExport) -> dg.TimeWindowPartitionsDefinition:
    """The definition's periods. The first is the first whole period at or after ``start``."""
    tz = saved.timezone
    if saved.cadence is Cadence.hourly:
        return dg.HourlyPartitionsDefinition(start_date=saved.start, timezone=tz, fmt=HOURLY_FMT)
    if saved.cadence is Cadence.daily:
        return dg.DailyPartitionsDefinition(start_date=saved.start, timezone=tz)
    if saved.cadence is Cadence.weekly:
        return dg.WeeklyPartitionsDefinition(start_date=saved.start, timezone=tz, day_offset=1)
    return dg.MonthlyPartitionsDefinition(start_date=saved.start, timezone=tz)


def saved_export_job(saved: SavedExport) -> dg.JobDefinition:
    partitions_def = partitions_for(saved)

    def run_config(partition_key: str) -> dict:
        window = partitions_def.time_window_for_partition_key(partition_key)
        # a definition file may carry inline credentials: sealed before they become run config
        document = seal_for_run_config(
            saved.request_for_window(window.start, window.end),
            DeliverySettings.load().sealing_keys(),
        )
        config = request_run_config(document)
        config["ops"]["materialize_export"] = {
            "config": {"fixed_key": f"{saved.name}/{partition_key}"}
        }
        return config

    def tags(partition_key: str) -> dict[str, str]:
        window = partitions_def.time_window_for_partition_key(partition_key)
        return {WINDOW_TAG: f"{window.start.isoformat()}/{window.end.isoformat()}"}

    job_tags = {"export_pipeline/kind": "saved_export", SAVED_EXPORT_TAG: saved.name, NAME_TAG: saved.name}
    if saved.notification is not None:
        job_tags[NOTIFICATION_TAG] = json.dumps(saved.notification.model_dump(mode="json"))
    return export_graph.to_job(
        name=saved.job_name,
        config=dg.PartitionedConfig(
            partitions_def=partitions_def,
            run_config_for_partition_key_fn=run_config,
            tags_for_partition_key_fn=tags,
        ),
        executor_def=dg.in_process_executor,
        tags=job_tags,
        description=(
            saved.description
            or f"Saved export {saved.name!r} ({saved.source}): {saved.cadence.value} in {saved.timezone}."
        ),
    )


def saved_export_schedule(saved: SavedExport, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{saved.job_name}_schedule",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if saved.enabled else dg.DefaultScheduleStatus.STOPPED
        ),
    )


def saved_export_definitions(
    saved_exports: list[SavedExport],
) -> tuple[list[dg.JobDefinition], list[dg.ScheduleDefinition]]:
    jobs, schedules = [], []
    for saved in saved_exports:
        job = saved_export_job(saved)
        jobs.append(job)
        schedules.append(saved_export_schedule(saved, job))
    return jobs, schedules
