"""The request inbox, wired into Dagster: a sensor that launches ``export_job`` for each new or
changed request file, run-status sensors that keep each request's result object current
(``queued`` -> ``running`` -> ``complete`` | ``failed``), and the hook with which a run writes
its own ``complete`` result. The logic lives in ``export_pipeline.inbox.requests``.
"""

import json
import time
import traceback
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from export_pipeline.inbox import requests as inbox
from export_pipeline.destinations.host_tag import destination_host_tags
from export_pipeline.destinations.sealing import seal_for_run_config
from export_pipeline.notifications.messages import parse_notification
from export_pipeline.orchestration.jobs import export_job, request_run_config
from export_pipeline.orchestration.ops import record_export
from export_pipeline.orchestration.resources import (
    ExportStorage,
    MetricSourceResource,
    S3Connection,
    s3_field,
)
from export_pipeline.orchestration.run_outcomes import (
    NAME_TAG,
    NOTIFICATION_TAG,
    WINDOW_TAG,
    canceled_errors,
    export_response,
    failure_errors,
)
from export_pipeline.contract.documents import MAX_DOCUMENT_BYTES, decode_document
from export_pipeline.contract.problems import InvalidRequest, Problem
from export_pipeline.contract.validation import validate_document
from export_pipeline.settings import DeliverySettings, InboxSettings, resource_field

REQUEST_ID_TAG = "export_pipeline/request_id"
INBOX_KEY_TAG = "export_pipeline/inbox_key"
INBOX_ETAG_TAG = "export_pipeline/inbox_etag"
RUN_KEY_TAG = "dagster/run_key"
# A run the daemon created but never submitted (it stopped in between and the tick was not
# resumed) stays NOT_STARTED: its file is requested again, under the same run key, and the
# daemon then submits that run instead of creating another.
SUBMITTED = [s for s in dg.DagsterRunStatus if s is not dg.DagsterRunStatus.NOT_STARTED]
# the export job's last step: once it succeeds, the file is written and delivered
FINAL_STEP = record_export.name


class RequestInbox(dg.ConfigurableResource):
    """Where clients drop request files and find their results."""

    s3: dg.ResourceDependency[S3Connection] = s3_field()
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

    def result_key(self, key: str) -> str | None:
        """The result object of the request file ``key``."""
        return inbox.result_key(self.results_prefix, self.prefix, key)


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
        """Only an unreachable inbox (its listing fails) fails a tick: whatever goes wrong with
        one file ends as that file's ``failed`` result, and the tick goes on with the others."""
        deadline = time.monotonic() + request_inbox.tick_budget_seconds
        cursor = inbox.InboxCursor.from_json(context.cursor, time.time())
        client = request_inbox.get_client()
        scan = inbox.scan(
            client, request_inbox.bucket, request_inbox.prefix, cursor, time.time(),
            max_listed=request_inbox.max_listed_per_tick,
            max_candidates=request_inbox.max_requests_per_tick,
            exclude_prefix=request_inbox.results_prefix,
            deadline=deadline,
        )
        schema_cache: list = []

        def schema():
            if not schema_cache:
                try:
                    schema_cache.append(metric_source.get_source().schema())
                except Exception as error:  # the run's plan step reports it again
                    context.log.warning(f"validating without the store schema: {error}")
                    schema_cache.append(None)
            return schema_cache[0]

        run_requests: list[dg.RunRequest] = []
        seen = dict(scan.cursor.seen)
        next_cursor = scan.cursor
        for i, item in enumerate(scan.candidates):
            if i and time.monotonic() > deadline:
                next_cursor = _resume_before(cursor, scan, i, seen)
                context.log.info(f"tick budget spent; resuming at {item.key} next tick")
                break
            try:
                run_request = _handle(context, request_inbox, client, item, schema)
            except (BotoCoreError, ClientError) as error:  # only transient ones get here
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
    """One candidate file: skip it if a run for it was submitted, else read and check it and
    either request a run (result ``queued``) or write a ``failed`` result naming every problem.

    Raises only a transient S3 error (the file is tried again next tick); an S3 error about
    this file alone becomes its result, or, when not even its result can be written, a log
    line."""
    if context.instance.get_run_ids(
        filters=dg.RunsFilter(tags={RUN_KEY_TAG: item.run_key}, statuses=SUBMITTED), limit=1
    ):
        return None
    result_key = request_inbox.result_key(item.key)
    if result_key is None:
        context.log.error(f"{item.key}: its result key would be too long for S3; skipped")
        return None
    request_id = inbox.id_from_key(item.key, request_inbox.prefix)
    run_request = None
    try:
        obj = client.get_object(Bucket=request_inbox.bucket, Key=item.key)
        if obj["ETag"].strip('"') != item.etag:
            obj["Body"].close()
            return None  # replaced since it was listed: the next pass sees the new version
        if obj["ContentLength"] > MAX_DOCUMENT_BYTES:
            obj["Body"].close()
            problems = [Problem("", f"a request file is at most {MAX_DOCUMENT_BYTES} bytes")]
        else:
            data = obj["Body"].read()
            request_id, run_request, problems = _evaluate(context, request_inbox, item, data, schema)
    except client.exceptions.NoSuchKey:
        return None  # deleted since it was listed
    except (BotoCoreError, ClientError) as error:
        if inbox.is_transient(error):
            raise
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        problems = [Problem("", f"the request file cannot be read ({code})")]
    status = inbox.Status.failed if problems else inbox.Status.queued
    document = inbox.result_document(
        request_id, status, source=item, bucket=request_inbox.bucket, errors=problems or None,
    )
    try:
        inbox.put_result(client, request_inbox.bucket, result_key, document)
    except (BotoCoreError, ClientError) as error:
        if inbox.is_transient(error):
            raise
        context.log.error(f"{item.key}: its result cannot be written to {result_key} ({error}); skipped")
        return None
    if problems:
        context.log.info(f"{item.key}: {len(problems)} problems; see {result_key}")
        return None
    context.log.info(f"{item.key}: requesting a run for {request_id}; see {result_key}")
    return run_request


def _evaluate(
    context: dg.SensorEvaluationContext, request_inbox: RequestInbox, item: inbox.InboxFile,
    data: bytes, schema,
) -> tuple[str, dg.RunRequest | None, list[Problem]]:
    """The file's request id and either its run request or its problems. Never raises: a
    file that breaks a parser or a rule in a way nobody foresaw fails alone."""
    request_id = inbox.id_from_key(item.key, request_inbox.prefix)
    try:
        try:
            document = decode_document(data, item.key)
        except InvalidRequest as error:
            return request_id, None, list(error.problems)
        request_document, notification_document = inbox.split_notification(document)
        request_id = inbox.request_id_for(item.key, request_inbox.prefix, request_document)
        problems: list[Problem] = []
        try:
            validated = validate_document(request_document, schema())
        except InvalidRequest as error:
            problems += error.problems
        notification = None
        if notification_document is not None:
            notification, notification_problems = parse_notification(notification_document)
            problems += notification_problems
        if problems:
            return request_id, None, problems
        try:  # inline credentials never enter run config in plaintext
            request_document = seal_for_run_config(
                request_document, DeliverySettings.load().sealing_keys()
            )
        except ValueError as error:
            return request_id, None, [Problem("destination", str(error))]
        return request_id, _run_request(item, request_id, request_document, validated, notification), []
    except Exception as error:
        context.log.error(f"{item.key}: handling it failed: {type(error).__name__} at {_where(error)}")
        return request_id, None, [inbox.unexpected_problem(error)]


def _where(error: BaseException) -> str:
    """Where an error was raised, for the log; never its message, which may quote the file's
    values (credentials among them)."""
    frames = traceback.extract_tb(error.__traceback__, limit=-1)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _run_request(
    item: inbox.InboxFile, request_id: str, request_document: Any, validated, notification
) -> dg.RunRequest:
    """The run request, checked as the daemon will use it: the job's config mapping must take
    it and it must serialize, or launching it would fail the whole tick."""
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
        **destination_host_tags(validated.request.deliveries()),
    }
    if notification is not None:
        tags[NOTIFICATION_TAG] = json.dumps(notification.model_dump(mode="json"))
    request_run_config(request_document)
    run_request = dg.RunRequest(run_key=item.run_key, run_config=request_document, tags=tags)
    dg.serialize_value(run_request)
    return run_request


def _write_result(
    instance: dg.DagsterInstance, run: dg.DagsterRun, request_inbox: RequestInbox, status: str,
    log, *, response=None, errors=None,
) -> None:
    """Write the result of the inbox request a run serves (none for other runs), unless it is
    settled (``inbox.result_is_settled``)."""
    request_id = run.tags.get(REQUEST_ID_TAG)
    if request_id is None or INBOX_KEY_TAG not in run.tags:
        return
    key = request_inbox.result_key(run.tags[INBOX_KEY_TAG])
    if key is None:
        return
    if status == inbox.Status.running:
        latest = instance.get_run_by_id(run.run_id)
        if latest is not None and latest.is_finished:
            # Its final status is written by the run or its own sensor: a late 'running' read
            # before that write and put after it would undo it.
            return
    client = request_inbox.get_client()
    current = inbox.get_result(client, request_inbox.bucket, key)
    if inbox.result_is_settled(current, run.tags[INBOX_ETAG_TAG], run.run_id):
        return
    item = inbox.InboxFile(key=run.tags[INBOX_KEY_TAG], etag=run.tags[INBOX_ETAG_TAG], last_modified=0, size=0)
    inbox.put_result(client, request_inbox.bucket, key, inbox.result_document(
        request_id, status, source=item, bucket=request_inbox.bucket, run_id=run.run_id,
        response=response, errors=errors,
    ))
    log.info(f"{key}: {status} (run {run.run_id})")


def _write_status(context, request_inbox: RequestInbox, status: str, **result) -> None:
    _write_result(context.instance, context.dagster_run, request_inbox, status, context.log, **result)


@dg.success_hook(required_resource_keys={"request_inbox"})
def inbox_result_hook(context: dg.HookContext):
    """The run writes its request's ``complete`` result itself, as its last step succeeds, so
    a client sees it at once rather than at the result sensor's next tick, which also handles
    only so many runs a tick (a burst's results would trickle out). The sensor still writes it
    if this write fails, and every other status stays the sensors'. A job-level hook: it fires
    after each step, and only the last one's counts."""
    if context.op.name != FINAL_STEP:
        return
    run = context.instance.get_run_by_id(context.run_id)
    if run is None or INBOX_KEY_TAG not in run.tags:
        return
    response = export_response(context.instance, context.run_id)
    if response is not None:
        _write_result(
            context.instance, run, context.resources.request_inbox, inbox.Status.complete,
            context.log, response=response,
        )


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
        description="Write an inbox request's file, a URL signed as it is written, rows and bytes to its result.",
    )
    def inbox_result_complete(
        context: dg.RunStatusSensorContext, request_inbox: RequestInbox, export_storage: ExportStorage
    ):
        response = export_response(
            context.instance, context.dagster_run.run_id, sign=export_storage.signed_url
        )
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
        _write_status(context, request_inbox, inbox.Status.failed, errors=canceled_errors())

    return [inbox_result_running, inbox_result_complete, inbox_result_failed, inbox_result_canceled]
