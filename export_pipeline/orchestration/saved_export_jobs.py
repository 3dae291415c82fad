"""Saved export definitions in Dagster: each one a time-window partitioned asset,
``saved_exports/<name>`` (its cadence, in its timezone, DST-safe), with a job and a schedule
that runs the newest complete partition.

The partition key alone determines the export: the asset's plan step builds the request for
its partition's window. So the asset page's Materialize button, a backfill from the UI, the
schedule and a re-execution all export the same thing, with no run config at all.
"""

import json
from collections.abc import Mapping

import dagster as dg

from export_pipeline.destinations.host_tag import body_destination_host_tags
from export_pipeline.destinations.sealing import seal_for_run_config
from export_pipeline.orchestration.export_assets import SAVED_EXPORT_PREFIX, saved_export_asset_key
from export_pipeline.orchestration.jobs import RETRY_ALL_STEPS, export_steps
from export_pipeline.orchestration.ops import PLAN_DESCRIPTION, PLAN_OUTS, plan_outputs
from export_pipeline.orchestration.resources import MetricSourceResource
from export_pipeline.orchestration.run_outcomes import NAME_TAG, NOTIFICATION_TAG, WINDOW_TAG
from export_pipeline.saved_exports.definitions import Cadence, SavedExport
from export_pipeline.settings import DeliverySettings

SAVED_EXPORT_TAG = "export_pipeline/saved_export"
KIND_TAG = "export_pipeline/kind"
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


def saved_export_tags(saved: SavedExport) -> dict[str, str]:
    """The run tags the sensors (notifications) read: which saved export, and its messages;
    and, as for every export job, that a retried run runs every step again."""
    tags = {KIND_TAG: "saved_export", SAVED_EXPORT_TAG: saved.name, NAME_TAG: saved.name,
            **body_destination_host_tags(saved.body), **RETRY_ALL_STEPS}
    if saved.notification is not None:
        tags[NOTIFICATION_TAG] = json.dumps(saved.notification.model_dump(mode="json"))
    return tags


def saved_export_run_tags(
    saved: SavedExport, partitions_def: dg.TimeWindowPartitionsDefinition, partition_key: str
) -> dict[str, str]:
    """A partition run's tags: the saved export's, and the partition's window."""
    window = partitions_def.time_window_for_partition_key(partition_key)
    return {**saved_export_tags(saved), WINDOW_TAG: f"{window.start.isoformat()}/{window.end.isoformat()}"}


def _implied_tags(saved: SavedExport, partition: str) -> dict[str, str]:
    try:
        return saved_export_run_tags(saved, partitions_for(saved), partition)
    except ValueError:  # a key of an older version of the definition (another cadence)
        return saved_export_tags(saved)


def run_notifications(
    saved_exports: list[SavedExport], run: dg.DagsterRun
) -> list[tuple[Mapping[str, str], dg.AssetKey | None]]:
    """Whose messages a finished run sends: each as the tags to read them from (name, window,
    messages) and the asset whose materialization is its file (None: the run's only one).

    A run launched from the asset page (or a backfill of it) carries none of the job's tags and
    gets them from its plan step, so one that failed before that step (its resources could not
    start) is recognised by its asset selection and partition; a run of the saved export's job
    that ended before that step (canceled while queued) lacks the window the step would have
    tagged, and gets it from its partition too. Several saved exports of the
    same partitioning can be materialized in one run; the run's tags then hold one of them, so
    each one's tags come from its definition, and its file from its own asset."""
    partition = run.tags.get("dagster/partition")
    names = sorted({
        key.path[1] for key in run.asset_selection or ()
        if len(key.path) == 2 and key.path[0] == SAVED_EXPORT_PREFIX
    })
    if not names and SAVED_EXPORT_TAG in run.tags:  # the saved export's own job (its schedule)
        names = [run.tags[SAVED_EXPORT_TAG]]
    by_name = {saved.name: saved for saved in saved_exports}
    known = [name for name in names if name in by_name]
    if partition is None or not known:
        return [(run.tags, None)]
    if len(names) == 1:
        return [({**_implied_tags(by_name[known[0]], partition), **run.tags}, None)]
    own = {SAVED_EXPORT_TAG, NAME_TAG, NOTIFICATION_TAG, WINDOW_TAG}
    common = {k: v for k, v in run.tags.items() if k not in own}
    return [
        ({**common, **_implied_tags(by_name[name], partition)}, saved_export_asset_key(name))
        for name in known
    ]


def _plan_op(saved: SavedExport, partitions_def: dg.TimeWindowPartitionsDefinition) -> dg.OpDefinition:
    @dg.op(
        name=f"{saved.job_name}_plan", out=PLAN_OUTS,
        description=f"Build {saved.name!r}'s request for the partition's window. {PLAN_DESCRIPTION}",
    )
    def plan_saved_export(context: dg.OpExecutionContext, metric_source: MetricSourceResource):
        window = partitions_def.time_window_for_partition_key(context.partition_key)
        # A run launched from the asset page carries none of the job's tags: the sensors
        # (notifications) find the saved export's name, window and messages here.
        tags = saved_export_run_tags(saved, partitions_def, context.partition_key)
        missing = {k: v for k, v in tags.items() if k not in context.run.tags}
        if missing:
            context.instance.add_run_tags(context.run_id, missing)
        try:  # a definition file may carry inline credentials: sealed before the plan is stored
            document = seal_for_run_config(
                saved.request_for_window(window.start, window.end),
                DeliverySettings.load().sealing_keys(),
            )
        except ValueError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        yield from plan_outputs(
            context, document, metric_source, body_path=saved.body_path, source=saved.source
        )

    return plan_saved_export


def saved_export_asset(saved: SavedExport) -> dg.AssetsDefinition:
    partitions_def = partitions_for(saved)
    plan_op = _plan_op(saved, partitions_def)

    @dg.graph(name=f"{saved.job_name}_steps")
    def steps():
        return export_steps(*plan_op())

    description = saved.description or (
        f"Saved export {saved.name!r} ({saved.source}): {saved.cadence.value} in {saved.timezone}."
    )
    return dg.AssetsDefinition.from_graph(
        steps,
        keys_by_output_name={"result": saved_export_asset_key(saved.name)},
        partitions_def=partitions_def,
        group_name="saved_exports",
        descriptions_by_output_name={"result": description},
        metadata_by_output_name={"result": {
            "cadence": saved.cadence.value, "timezone": saved.timezone, "source": saved.source,
        }},
    )


def saved_export_job(saved: SavedExport, asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        name=saved.job_name,
        selection=[asset.key],
        executor_def=dg.in_process_executor,
        tags=saved_export_tags(saved),
        description=asset.descriptions_by_key[asset.key],
    )


def saved_export_schedule(saved: SavedExport, job) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{saved.job_name}_schedule",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if saved.enabled else dg.DefaultScheduleStatus.STOPPED
        ),
    )


def saved_export_definitions(saved_exports: list[SavedExport]) -> tuple[list, list, list]:
    """Each saved export's asset, job and schedule."""
    assets, jobs, schedules = [], [], []
    for saved in saved_exports:
        asset = saved_export_asset(saved)
        job = saved_export_job(saved, asset)
        assets.append(asset)
        jobs.append(job)
        schedules.append(saved_export_schedule(saved, job))
    return assets, jobs, schedules
