"""The clean-up sweeps as Dagster jobs on schedules, for stores that have no lifecycle rules
(see ``publishing.cleanup``): the stale-upload sweep (hourly by default) aborts multipart
uploads under the export prefix that runs killed outright left open; the retention sweep
(daily by default) deletes export files older than the retention."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from export_pipeline.orchestration.resources import ExportStorage
from export_pipeline.publishing import cleanup
from export_pipeline.settings import CleanupSettings, RetentionSettings


class StaleUploadConfig(dg.Config):
    older_than_hours: float = CleanupSettings.model_fields["stale_upload_hours"].default


@dg.op(description="Abort multipart uploads under the export prefix begun longer ago than the threshold.")
def abort_stale_uploads(
    context: dg.OpExecutionContext, config: StaleUploadConfig, export_storage: ExportStorage
) -> None:
    if config.older_than_hours < 0:
        raise dg.Failure(description="older_than_hours: must be 0 or more", allow_retries=False)
    aborted = cleanup.abort_stale_uploads(
        export_storage.get_client(), export_storage.bucket, export_storage.prefix,
        timedelta(hours=config.older_than_hours), datetime.now(timezone.utc),
    )
    for upload in aborted:
        context.log.info(f"aborted {upload.key} (begun {upload.initiated.isoformat()})")
    context.add_output_metadata({"aborted": len(aborted), "keys": [u.key for u in aborted]})


@dg.job(
    description="Abort multipart uploads that killed runs left open under the export prefix.",
    tags={"export_pipeline/kind": "cleanup"},
)
def stale_upload_sweep_job():
    abort_stale_uploads()


def _sweep_schedule(name: str, job: dg.JobDefinition, cron: str, op: str, config: dict,
                    state: str) -> dg.ScheduleDefinition:
    """A sweep's schedule: its op's config from the settings, on only when the settings say."""
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=cron, run_config={"ops": {op: {"config": config}}},
        default_status=(dg.DefaultScheduleStatus.RUNNING if state == "running"
                        else dg.DefaultScheduleStatus.STOPPED),
    )


def stale_upload_schedule(settings: CleanupSettings) -> dg.ScheduleDefinition:
    return _sweep_schedule(
        "stale_upload_sweep", stale_upload_sweep_job, settings.stale_upload_schedule,
        "abort_stale_uploads", {"older_than_hours": settings.stale_upload_hours},
        settings.stale_upload_sweep,
    )


class RetentionConfig(dg.Config):
    retention_days: int = RetentionSettings.model_fields["retention_days"].default


@dg.op(description="Delete export files under the export prefix written longer ago than the retention.")
def delete_expired_exports(
    context: dg.OpExecutionContext, config: RetentionConfig, export_storage: ExportStorage
) -> None:
    if config.retention_days < 1:
        raise dg.Failure(description="retention_days: must be 1 or more", allow_retries=False)
    try:
        deleted = cleanup.delete_expired_exports(
            export_storage.get_client(), export_storage.bucket, export_storage.prefix,
            timedelta(days=config.retention_days), datetime.now(timezone.utc),
        )
    except ValueError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    for key in deleted:
        context.log.info(f"deleted {key}")
    context.add_output_metadata({"deleted": len(deleted)})


@dg.job(
    description="Delete export files older than the retention (stores without lifecycle rules).",
    tags={"export_pipeline/kind": "cleanup"},
)
def export_retention_sweep_job():
    delete_expired_exports()


def retention_schedule(settings: RetentionSettings) -> dg.ScheduleDefinition:
    return _sweep_schedule(
        "export_retention_sweep", export_retention_sweep_job, settings.retention_schedule,
        "delete_expired_exports", {"retention_days": settings.retention_days},
        settings.retention_sweep,
    )
