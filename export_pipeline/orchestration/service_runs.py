"""The export service's runs in the Dagster instance: the API's job, launched through the
instance's run coordinator (``submit_run``), so the UI shows, queues and cancels API exports
beside every other run, and what a run reports back (status, outcome, progress).

With the QueuedRunCoordinator (the deployments) ``submit_run`` queues the run and the daemon
launches it; with the local instance's PromptRunCoordinator it is launched at once while there
is room, and with the DefaultRunCoordinator always.
Either way the run executes in its own process, through the code location this module loads
(``export_pipeline.orchestration.definitions``, the same name ``workspace.yaml`` gives it).
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, WILL_RETRY_TAG

from export_pipeline.orchestration.jobs import RETRY_ALL_STEPS, export_graph, request_run_config
from export_pipeline.orchestration.run_outcomes import (
    NAME_TAG,
    NOTIFICATION_TAG,
    canceled_errors,
    export_response,
    failure_errors,
    run_progress,
)
from export_pipeline.service.api import Launch
from export_pipeline.service.exports import RunObservation, Status

JOB_NAME = "api_export_job"
DEFINITIONS_MODULE = "export_pipeline.orchestration.definitions"

_STATUS = {
    dg.DagsterRunStatus.QUEUED: Status.queued,
    dg.DagsterRunStatus.NOT_STARTED: Status.queued,
    dg.DagsterRunStatus.STARTING: Status.queued,
    dg.DagsterRunStatus.MANAGED: Status.queued,
    dg.DagsterRunStatus.STARTED: Status.running,
    dg.DagsterRunStatus.CANCELING: Status.running,
    dg.DagsterRunStatus.SUCCESS: Status.complete,
    dg.DagsterRunStatus.FAILURE: Status.failed,
    dg.DagsterRunStatus.CANCELED: Status.failed,
}


def api_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """The export job's run config for the API: the request, the file at the fixed path the
    service chose under the tenant's prefix, and the tenant's PDF branding if it has one."""
    run_config = request_run_config(config["request"])
    run_config["ops"]["materialize_export"] = {"config": {"fixed_key": config["file_path"]}}
    if config.get("branding"):
        run_config["resources"] = {"report_branding": {"config": dict(config["branding"])}}
    return run_config


api_export_job = export_graph.to_job(
    name=JOB_NAME,
    config=dg.ConfigMapping(
        config_fn=api_run_config,
        config_schema={
            "request": dg.Field(dg.Permissive()),
            "file_path": dg.Field(str),
            "branding": dg.Field(dg.Permissive(), is_required=False),
        },
    ),
    executor_def=dg.in_process_executor,
    description="An export requested through the export service API (POST /v1/exports); "
    "tagged with its tenant and export id.",
    tags={"export_pipeline/kind": "api", **RETRY_ALL_STEPS},
)


class DagsterExportRuns:
    """``ExportRuns`` on a Dagster instance. Holds the code location open (a gRPC server
    process) for as long as the service runs."""

    def __init__(self, instance: dg.DagsterInstance):
        # Dagster's workspace and command-line helpers are imported in here, not at the top:
        # every process that loads the code location (each run's) imports this module for
        # the job, and only the service launches.
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget

        from export_pipeline.orchestration.run_launcher import WarmRunLauncher

        self._instance = instance
        self._workspace = WorkspaceProcessContext(
            instance, ModuleTarget(DEFINITIONS_MODULE, None, None, None)
        )
        self._lock = threading.Lock()
        if isinstance(instance.run_launcher, WarmRunLauncher):
            instance.run_launcher.prestart()  # the service's first export starts warm too

    def close(self) -> None:
        self._workspace.__exit__(None, None, None)

    def launch(self, launch: Launch) -> str:
        from dagster._cli.workspace.cli_target import (
            get_code_location_from_workspace,
            get_remote_repository_from_code_location,
        )
        from dagster._core.definitions.selector import JobSubsetSelector

        tags = {**launch.tags, NAME_TAG: launch.name}
        if launch.notification is not None:
            tags[NOTIFICATION_TAG] = json.dumps(launch.notification.model_dump(mode="json"))
        run_config = {"request": launch.document, "file_path": launch.file_path}
        if launch.branding:
            run_config["branding"] = launch.branding
        with self._lock:
            workspace = self._workspace.create_request_context()
            location = get_code_location_from_workspace(workspace, None)
            repository = get_remote_repository_from_code_location(location, None)
            job = location.get_job(JobSubsetSelector(
                location_name=location.name, repository_name=repository.name,
                job_name=JOB_NAME, op_selection=None,
            ))
            plan = location.get_execution_plan(
                job, run_config, step_keys_to_execute=None, known_state=None, instance=self._instance
            ).execution_plan_snapshot
            run = self._instance.create_run(
                job_name=JOB_NAME, run_id=None, run_config=run_config,
                resolved_op_selection=None, step_keys_to_execute=plan.step_keys_to_execute,
                op_selection=None, status=None, root_run_id=None, parent_run_id=None,
                tags={**job.tags, **tags}, job_snapshot=job.job_snapshot,
                execution_plan_snapshot=plan, parent_job_snapshot=job.parent_job_snapshot,
                remote_job_origin=job.get_remote_origin(), job_code_origin=job.get_python_origin(),
                asset_selection=None, asset_check_selection=None, asset_graph=repository.asset_graph,
            )
            self._instance.submit_run(run.run_id, workspace)
        return run.run_id

    def cancel(self, run_id: str) -> None:
        """Through the run coordinator: a queued run is dropped, a running one terminated."""
        run = self._instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self._instance.run_coordinator.cancel_run(run_id)

    def observe(self, run_ids: list[str]) -> dict[str, RunObservation]:
        runs = self._instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids))
        return {run.run_id: self._observe(run) for run in runs}

    def _observe(self, run: dg.DagsterRun) -> RunObservation:
        if (run.status is dg.DagsterRunStatus.FAILURE and WILL_RETRY_TAG not in run.tags
                and self._instance.run_retries_enabled):
            # The instance tags a failed run with whether it will be retried just after storing
            # its failure: until then the export is not settled (failed is final for the API).
            return RunObservation(Status.running)
        if run.status is dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
            # The instance's run retries start a new run for a run whose worker died: the
            # export follows it rather than settling as failed (the new run writes the same key).
            retries = self._instance.get_runs(
                filters=dg.RunsFilter(tags={PARENT_RUN_ID_TAG: run.run_id}), limit=1
            )
            return self._observe(retries[0]) if retries else RunObservation(Status.running)
        status = _STATUS.get(run.status, Status.queued)
        if status is Status.complete:
            response = export_response(self._instance, run.run_id)
            if response is None:
                return RunObservation(Status.failed, [{"path": "", "message": "the run wrote no file"}])
            return RunObservation(status, rows=response["rows"], bytes=response["bytes"])
        if status is Status.failed:
            if run.status is dg.DagsterRunStatus.CANCELED:
                return RunObservation(status, canceled_errors())
            return RunObservation(status, run_errors(self._instance, run.run_id))
        if status is Status.running:
            return RunObservation(status, progress=run_progress(self._instance, run.run_id))
        return RunObservation(status)


def run_errors(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, str]]:
    records = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    )
    events = [r.dagster_event for r in records if r.dagster_event is not None]
    steps = [e for e in events if e.event_type is dg.DagsterEventType.STEP_FAILURE]
    run_failure = next((e for e in events if e.event_type is dg.DagsterEventType.RUN_FAILURE), None)
    return [{"path": e["path"], "message": e["message"]} for e in failure_errors(steps, run_failure)]


def build_export_service(settings: Any, instance: dg.DagsterInstance):
    """The service with its parts: tenants, state, this instance's runs, the export bucket.
    ``settings`` is the whole ``Settings``. Returns the service and what to close when it
    stops. Raises ``StorageUnavailable`` when exports cannot be written to the bucket."""
    from pathlib import Path

    from export_pipeline.saved_exports.definitions import load_saved_exports
    from export_pipeline.service.api import ExportService
    from export_pipeline.service.files import S3ExportFiles
    from export_pipeline.service.state import open_state
    from export_pipeline.service.tenants import load_tenants
    from export_pipeline.store.configured import metric_source

    service_settings = settings.service
    tenants = load_tenants(service_settings.tenants_file)
    files = S3ExportFiles.from_environment()
    files.check_writable(settings.bucket.bucket, settings.bucket.prefix)
    state = open_state(
        service_settings.state or Path(instance.root_directory) / "export-service.sqlite"
    )
    definitions = settings.saved_exports.definitions_path
    saved = {s.name: s for s in load_saved_exports(definitions)} if definitions else {}

    def schema():
        """The schema of the deployment's metric source, Parquet or SQL, read at each call as
        a run would read it (a column added to the table counts at once); a SQL source's
        connection is closed again."""
        source = metric_source(settings.metric_store)
        try:
            return source.schema()
        finally:
            getattr(source, "close", lambda: None)()

    runs = DagsterExportRuns(instance)
    service = ExportService(
        tenants=tenants,
        state=state,
        limiter=state.rate_limiter(),
        runs=runs,
        files=files,
        bucket=settings.bucket.bucket,
        prefix=settings.bucket.prefix,
        url_ttl=settings.bucket.url_ttl,
        schema=schema,
        saved_exports=lambda: saved,
        rate_limit=(service_settings.rate_limit_requests, service_settings.rate_limit_seconds),
        monthly_quota=service_settings.monthly_quota,
        page_size=service_settings.page_size,
        sealing_keys=settings.delivery.sealing_keys(),
        retention=timedelta(days=settings.retention.retention_days),
    )

    def close() -> None:
        runs.close()
        state.close()

    return service, close
