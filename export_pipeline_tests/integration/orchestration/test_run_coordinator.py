"""The local instance's run coordinator with a real export service submitting, a real code
server launching, and no daemon until a test starts one: a run with room starts at once and
every other run waits in Dagster's queue for the daemon."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import dagster as dg
import pytest
import yaml

from export_pipeline.cli import INSTANCE_CONFIG
from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import dagster_daemon, tenant_service, wait_for_status

EXPORT_TAG = "export_pipeline/export_id"


def _one_run_at_a_time() -> str:
    settings = yaml.safe_load(INSTANCE_CONFIG)
    settings["run_coordinator"]["config"]["max_concurrent_runs"] = 1
    return yaml.safe_dump(settings)


@pytest.fixture
def service(tmp_path, s3_endpoint, demo_store_path):
    bucket = f"prompt-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=s3_endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
    ).create_bucket(Bucket=bucket)
    server = tenant_service(tmp_path, {"acme": {}}, bucket, demo_store_path, s3_endpoint,
                            FAKE_CREDENTIALS, _one_run_at_a_time())
    server.start()
    yield server
    server.stop()


def _post(client) -> str:
    response = client.post("/v1/exports", json=SEED_BODY)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _run(service, export_id: str) -> dg.DagsterRun:
    with dg.DagsterInstance.from_config(service.env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={EXPORT_TAG: export_id}))
        return run


def _event_types(service, run_id: str) -> set[dg.DagsterEventType]:
    with dg.DagsterInstance.from_config(service.env["DAGSTER_HOME"]) as instance:
        return {record.event_log_entry.dagster_event.event_type
                for record in instance.get_records_for_run(run_id).records
                if record.event_log_entry.dagster_event}


def test_a_run_with_room_starts_at_once_and_one_beyond_the_limit_waits_for_the_daemon(service):
    with service.client("acme") as client:
        first = _post(client)
        second = _post(client)  # the first is still running: no room left
        assert _run(service, first).status is not dg.DagsterRunStatus.QUEUED
        assert _run(service, second).status is dg.DagsterRunStatus.QUEUED

        done = wait_for_status(client, first, {"complete", "failed"})  # no daemon runs
        assert done["status"] == "complete", done
        assert len(parse_csv(download(done["url"]))) - 1 == 30
        events = _event_types(service, _run(service, first).run_id)
        assert dg.DagsterEventType.RUN_ENQUEUED not in events
        assert dg.DagsterEventType.RUN_STARTING in events

        # Room again, but a run waits in the queue: a new one queues behind it, not ahead.
        third = _post(client)
        assert _run(service, second).status is dg.DagsterRunStatus.QUEUED
        assert _run(service, third).status is dg.DagsterRunStatus.QUEUED

        with dagster_daemon(service.env):
            for export_id in (second, third):
                done = wait_for_status(client, export_id, {"complete", "failed"})
                assert done["status"] == "complete", done
    assert dg.DagsterEventType.RUN_ENQUEUED in _event_types(service, _run(service, second).run_id)


def test_four_submitted_at_once_start_one_and_queue_three(service):
    with service.client("acme") as client, ThreadPoolExecutor(4) as pool:
        export_ids = list(pool.map(lambda _: _post(client), range(4)))
        statuses = [_run(service, export_id).status for export_id in export_ids]
        assert statuses.count(dg.DagsterRunStatus.QUEUED) == 3, statuses

        with dagster_daemon(service.env):
            for export_id in export_ids:
                done = wait_for_status(client, export_id, {"complete", "failed"})
                assert done["status"] == "complete", done
