"""The request inbox, wired into Dagster: a sensor that launches ``export_job`` for each new or
changed request file, and run-status sensors that keep each request's result object current
(``queued`` -> ``running`` -> ``complete`` | ``failed``). The logic lives in ``export_pipeline.inbox.requests``.
"""

import json
import time
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource
from pydantic import Field

from export_pipeline.inbox import requests as inbox
from export_pipeline.destinations.sealing import seal_for_run_config
from export_pipeline.store.source import MetricSourceError
from export_pipeline.notifications.messages import parse_notification
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.orchestration.resources import MetricSourceResource, s3_field
from export_pipeline.orchestration.run_outcomes import (
    NAME_TAG,
    NOTIFICATION_TAG,
    WINDOW_TAG,
    export_response,
    failure_errors,
)
from export_pipeline.contract.models import InvalidRequest, Problem, load_document
from export_pipeline.contract.validation import validate_document
from export_pipeline.settings import DeliverySettings, InboxSettings, resource_field

REQUEST_ID_TAG = "export_pipeline/request_id"
INBOX_KEY_TAG = "export_pipeline/inbox_key"
INBOX_ETAG_TAG = "export_pipeline/inbox_etag"
RUN_KEY_TAG = "dagster/run_key"
MAX_REQUEST_BYTES = 1024 * 1024


class RequestInbox(dg.ConfigurableResource):
    """Where clients drop request files and find their results."""

    s3: dg.ResourceDependency[S3Resource] = s3_field()
    bucket: str = resource_field(InboxSettings, "inbox_bucket", required=True)
    prefix: str = resource_field(InboxSettings, "inbox_prefix")
    results_prefix: str = resource_field(InboxSettings, "results_prefix")
    max_listed_per_tick: int = Field(
        10_000, description="inbox objects listed per tick at most; the rest wait for the next"
    )
    max_requests_per_tick: int = Field(
        50, description="request files read and launched per tick at most"
    )
    tick_budget_seconds: float = Field(
        20.0, description="a tick stops taking new files after this long, well inside "
        "Dagster's sensor time limit"
    )

    def get_client(self) -> Any:
        return self.s3.get_client()

    def result_key(self, request_id: str) -> str:
        return inbox.result_key(self.results_prefix, request_id)


def build_inbox_sensor(
    minimum_interval_seconds: int, default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    @dg.sensor(
        name="request_inbox_sensor",
        # Named, not the job object: a sensor holding a job that the Definitions binds
        # resources to is rebuilt by Dagster, which then warns about a beta parameter on
        # every code location load.
        job_name=export_job.name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Launch export_job for every new or changed request file in the inbox.",
    )
    def request_inbox_sensor(
        context: dg.SensorEvaluationContext,
        request_inbox: RequestInbox,
        metric_source: MetricSourceResource,
    ):
        started = time.monotonic()
        cursor = inbox.InboxCursor.from_json(context.cursor, time.time())
        client = request_inbox.get_client()
        scan = inbox.scan(
            client, request_inbox.bucket, request_inbox.prefix, cursor, time.time(),
            max_listed=request_inbox.max_listed_per_tick,
            max_candidates=request_inbox.max_requests_per_tick,
            exclude_prefix=request_inbox.results_prefix,
        )
        schema_cache: list = []

        def schema():
            if not schema_cache:
                try:
                    schema_cache.append(metric_source.get_source().schema())
                except MetricSourceError as error:  # the run's plan step reports it again
                    context.log.warning(f"validating without the store schema: {error}")
                    schema_cache.append(None)
            return schema_cache[0]

        run_requests: list[dg.RunRequest] = []
        seen = dict(scan.cursor.seen)
        next_cursor = scan.cursor
        for i, item in enumerate(scan.candidates):
            if time.monotonic() - started > request_inbox.tick_budget_seconds:
                next_cursor = _resume_before(cursor, scan, i, seen)
                context.log.info(f"tick budget spent; resuming at {item.key} next tick")
                break
            try:
                run_request = _handle(context, request_inbox, client, item, schema)
            except (BotoCoreError, ClientError) as error:
                context.log.warning(f"{item.key}: {error}; retrying next tick")
                next_cursor = _resume_before(cursor, scan, i, seen)
                break
            seen[item.seen_key] = item.last_modified
            if run_request is not None:
                run_requests.append(run_request)
        else:
            next_cursor = _with_seen(scan.cursor, seen)
        context.log.info(
            f"listed {scan.listed} keys, {len(scan.candidates)} new or changed, "
            f"{len(run_requests)} runs requested"
            + ("; pass complete" if scan.pass_completed else "")
        )
        return dg.SensorResult(run_requests=run_requests, cursor=next_cursor.to_json())

    return request_inbox_sensor


def _with_seen(cursor: inbox.InboxCursor, seen: dict[str, float]) -> inbox.InboxCursor:
    return inbox.InboxCursor(
        after=cursor.after, since=cursor.since, pass_started=cursor.pass_started, seen=seen
    )


def _resume_before(
    cursor: inbox.InboxCursor, scan: inbox.Scan, index: int, seen: dict[str, float]
) -> inbox.InboxCursor:
    """Stay in the current pass, just before the candidate not yet handled."""
    after = scan.candidates[index - 1].key if index else cursor.after
    return inbox.InboxCursor(
        after=after, since=cursor.since, pass_started=cursor.pass_started, seen=seen
    )


def _handle(
    context: dg.SensorEvaluationContext, request_inbox: RequestInbox, client: Any,
    item: inbox.InboxFile, schema,
) -> dg.RunRequest | None:
    """One candidate file: skip it if it already ran, else validate it and either request a
    run (result ``queued``) or write a ``failed`` result naming every problem."""
    if context.instance.get_run_ids(filters=dg.RunsFilter(tags={RUN_KEY_TAG: item.run_key}), limit=1):
        return None
    try:
        obj = client.get_object(Bucket=request_inbox.bucket, Key=item.key)
    except client.exceptions.NoSuchKey:
        return None  # deleted since it was listed
    if obj["ETag"].strip('"') != item.etag:
        obj["Body"].close()
        return None  # replaced since it was listed: the next pass sees the new version
    document: Any = None
    notification = None
    problems: list[Problem] = []
    if obj["ContentLength"] > MAX_REQUEST_BYTES:
        problems.append(Problem("", f"a request file is at most {MAX_REQUEST_BYTES} bytes"))
    else:
        try:
            document = load_document(obj["Body"].read().decode("utf-8"), item.key)
        except (InvalidRequest, UnicodeDecodeError) as error:
            problems += getattr(error, "problems", [Problem("", f"{item.key} is not UTF-8 text")])
    request_document, notification_document = inbox.split_notification(document)
    request_id = inbox.request_id_for(item.key, request_inbox.prefix, request_document)
    validated = None
    if not problems:
        try:
            validated = validate_document(request_document, schema())
        except InvalidRequest as error:
            problems += error.problems
        if notification_document is not None:
            notification, notification_problems = parse_notification(notification_document)
            problems += notification_problems
    if not problems:
        try:  # inline credentials never enter run config in plaintext
            request_document = seal_for_run_config(
                request_document, DeliverySettings.load().sealing_keys()
            )
        except ValueError as error:
            problems.append(Problem("destination", str(error)))
    result_key = request_inbox.result_key(request_id)
    if problems:
        context.log.info(f"{item.key}: invalid request, {len(problems)} problems; see {result_key}")
        inbox.put_result(client, request_inbox.bucket, result_key, inbox.result_document(
            request_id, inbox.Status.failed, source=item, bucket=request_inbox.bucket, errors=problems,
        ))
        return None
    inbox.put_result(client, request_inbox.bucket, result_key, inbox.result_document(
        request_id, inbox.Status.queued, source=item, bucket=request_inbox.bucket,
    ))
    metric_requests = validated.request.metric_requests
    window = (
        f"{min(m.start for m in metric_requests).isoformat()}/"
        f"{max(m.end for m in metric_requests).isoformat()}"
    )
    tags = {
        REQUEST_ID_TAG: request_id,
        INBOX_KEY_TAG: item.key,
        INBOX_ETAG_TAG: item.etag,
        NAME_TAG: request_id,
        WINDOW_TAG: window,
    }
    if notification is not None:
        tags[NOTIFICATION_TAG] = json.dumps(notification.model_dump(mode="json"))
    context.log.info(f"{item.key}: requesting a run for {request_id}")
    return dg.RunRequest(run_key=item.run_key, run_config=request_document, tags=tags)


def _write_status(
    context, request_inbox: RequestInbox, status: str, *, response=None, errors=None
) -> None:
    run = context.dagster_run
    request_id = run.tags.get(REQUEST_ID_TAG)
    if request_id is None or INBOX_KEY_TAG not in run.tags:
        return
    client = request_inbox.get_client()
    key = request_inbox.result_key(request_id)
    current = inbox.get_result(client, request_inbox.bucket, key)
    if current is not None:
        source = current.get("request") or {}
        if source.get("etag") not in (None, run.tags[INBOX_ETAG_TAG]):
            return  # the file changed since: its newer run owns the result
        if current.get("runId") == run.run_id and current.get("status") in inbox.Status.terminal:
            return  # run-status sensors are independent: never step back from a final status
    item = inbox.InboxFile(key=run.tags[INBOX_KEY_TAG], etag=run.tags[INBOX_ETAG_TAG], last_modified=0, size=0)
    inbox.put_result(client, request_inbox.bucket, key, inbox.result_document(
        request_id, status, source=item, bucket=request_inbox.bucket, run_id=run.run_id,
        response=response, errors=errors,
    ))
    context.log.info(f"{key}: {status} (run {run.run_id})")


def build_result_sensors(minimum_interval_seconds: int) -> list[dg.SensorDefinition]:
    running = dg.DefaultSensorStatus.RUNNING

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.STARTED, name="inbox_result_running",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Mark an inbox request's result 'running' when its run starts.",
    )
    def inbox_result_running(context: dg.RunStatusSensorContext, request_inbox: RequestInbox):
        _write_status(context, request_inbox, inbox.Status.running)

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS, name="inbox_result_complete",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Write an inbox request's file, signed URL, rows and bytes to its result.",
    )
    def inbox_result_complete(context: dg.RunStatusSensorContext, request_inbox: RequestInbox):
        response = export_response(context.instance, context.dagster_run.run_id)
        if response is None:
            _write_status(context, request_inbox, inbox.Status.failed, errors=[
                {"path": "", "message": "the run succeeded without writing an export file"}
            ])
        else:
            _write_status(context, request_inbox, inbox.Status.complete, response=response)

    @dg.run_failure_sensor(
        name="inbox_result_failed",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Write why an inbox request's run failed to its result.",
    )
    def inbox_result_failed(context: dg.RunFailureSensorContext, request_inbox: RequestInbox):
        errors = failure_errors(context.get_step_failure_events(), context.failure_event)
        _write_status(context, request_inbox, inbox.Status.failed, errors=errors)

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.CANCELED, name="inbox_result_canceled",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Mark an inbox request's result 'failed' when its run is canceled.",
    )
    def inbox_result_canceled(context: dg.RunStatusSensorContext, request_inbox: RequestInbox):
        _write_status(context, request_inbox, inbox.Status.failed, errors=[
            {"path": "", "message": "the run was canceled"}
        ])

    return [inbox_result_running, inbox_result_complete, inbox_result_failed, inbox_result_canceled]
