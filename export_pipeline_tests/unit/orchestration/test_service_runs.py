"""How an API export reads its run on an instance with run retries: a failed run settles the
export only once the instance has said whether it will be retried."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from export_pipeline.orchestration.jobs import RETRY_ALL_STEPS
from export_pipeline.orchestration.service_runs import DagsterExportRuns, api_export_job
from export_pipeline.service.exports import Status


def _runs_on(instance: dg.DagsterInstance) -> DagsterExportRuns:
    """The observer alone: observing reads only the instance (no code location needed)."""
    runs = DagsterExportRuns.__new__(DagsterExportRuns)
    runs._instance = instance
    return runs


def _failed_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    """A run as it is between its failure being stored and the will-retry tag being added."""
    run = instance.add_run(dg.DagsterRun(job_name="api_export_job", tags=tags))
    instance.handle_run_event(
        run.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_FAILURE.value, "api_export_job"))
    return instance.get_run_by_id(run.run_id)


def test_a_failed_run_not_yet_tagged_keeps_the_export_running_where_runs_are_retried(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides={
            "run_retries": {"enabled": True, "max_retries": 1}}) as instance:
        undecided = _failed_run(instance, {"export_pipeline/export_id": "e1"})
        assert undecided.status is dg.DagsterRunStatus.FAILURE and WILL_RETRY_TAG not in undecided.tags
        assert _runs_on(instance)._observe(undecided).status is Status.running
        instance.add_run_tags(undecided.run_id, {WILL_RETRY_TAG: "false"})
        assert _runs_on(instance)._observe(instance.get_run_by_id(undecided.run_id)).status is Status.failed


def test_without_run_retries_a_failed_run_fails_the_export_at_once(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = _failed_run(instance, {"export_pipeline/export_id": "e1"})
        assert _runs_on(instance)._observe(run).status is Status.failed


def test_the_export_jobs_retry_every_step():
    """Saved exports' jobs too, and their runs from the asset page, which get the job's tags
    from their plan step (``saved_export_run_tags``)."""
    from export_pipeline.orchestration.jobs import export_job
    from export_pipeline.orchestration.saved_export_jobs import (
        partitions_for,
        saved_export_asset,
        saved_export_job,
        saved_export_run_tags,
    )
    from export_pipeline.saved_exports.definitions import parse_saved_export
    from export_pipeline_tests.unit.saved_exports.test_definitions import definition

    saved = parse_saved_export(definition(), "daily.yaml")
    saved_job = saved_export_job(saved, saved_export_asset(saved))
    partitions = partitions_for(saved)
    asset_page_run = saved_export_run_tags(saved, partitions, partitions.get_first_partition_key())
    for tags in (export_job.tags, api_export_job.tags, saved_job.tags, asset_page_run):
        assert tags["dagster/retry_strategy"] == RETRY_ALL_STEPS["dagster/retry_strategy"] == "ALL_STEPS"
