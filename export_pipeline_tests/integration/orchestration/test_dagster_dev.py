"""The UI path: ``dg dev`` (webserver and daemon) on loopback. The Launchpad's checks of
the export job's config (Dagster's GraphQL ``isPipelineConfigValid``, which the editor calls
on every change) and the job launched with a request body as config; then the daemon's inbox
sensor picking up a request file, and a saved export backfilled from its asset and from its
job, the way the UI's backfill dialogs do, with its notifications and its history per
partition."""

from __future__ import annotations

import copy
import hashlib
import json
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError


from export_pipeline.orchestration.export_assets import request_asset_key
from export_pipeline.orchestration.export_assets import saved_export_asset_key
from export_pipeline.orchestration.inbox_sensors import INBOX_ETAG_TAG, INBOX_KEY_TAG, RUN_KEY_TAG
from export_pipeline.saved_exports.definitions import parse_saved_export
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.helpers import wait_for_run
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE, parse_csv

from export_pipeline_tests.support.dagster_dev import (  # noqa: F401 (fixtures)
    LOCATION,
    SAVED_JOB,
    SAVED_NAME,
    dagster_dev,
    saved_definition,
    webhooks,
)


CONFIG_VALID = """
query($selector: PipelineSelector!, $config: RunConfigData) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
    __typename
    ... on RunConfigValidationInvalid { errors { __typename message reason } }
    ... on PythonError { message }
  }
}
"""

CONFIG_SCHEMA = """
query($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) {
    __typename
    ... on RunConfigSchema {
      rootConfigType { key }
      allConfigTypes {
        key
        ... on CompositeConfigType { fields { name description isRequired configTypeKey } }
      }
    }
  }
}
"""

EXPORT_JOB = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
              "pipelineName": "export_job"}


def config_check(client, document) -> list[tuple[str, str]]:
    """The Launchpad's verdict: [] when valid, else (error type, message) for each error."""
    answer = client._execute(CONFIG_VALID, {"selector": EXPORT_JOB, "config": document})
    verdict = answer["isPipelineConfigValid"]
    if verdict["__typename"] == "PipelineConfigValidationValid":
        return []
    assert verdict["__typename"] == "RunConfigValidationInvalid", verdict
    return [(e["__typename"], e["message"]) for e in verdict["errors"]]


def test_the_launchpad_checks_the_request_then_launches_it(dagster_dev, monkeypatch, tmp_path):
    port, home = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    assert config_check(client, SEED_BODY) == []
    assert config_check(client, SEED_ENVELOPE) == []

    misspelt = copy.deepcopy(SEED_BODY)
    misspelt["csvFormat"]["sortby"] = misspelt["csvFormat"].pop("sortBy")
    errors = dict(config_check(client, misspelt))
    assert '"sortby"' in errors["FieldNotDefinedConfigError"]
    assert '"sortBy"' in errors["MissingFieldConfigError"]

    wrong_type = copy.deepcopy(SEED_ENVELOPE)
    wrong_type["data"]["body"]["metricRequests"][0]["facets"] = "segments"
    [(kind, message)] = config_check(client, wrong_type)
    assert kind == "RuntimeMismatchConfigError"
    assert "root:data:body:metricRequests[0]:facets" in message

    [(kind, message)] = config_check(client, {"data": {"body": {}}})
    assert kind == "MissingFieldsConfigError"
    assert "csvFormat" in message and "metricRequests" in message

    # the editor's field descriptions come from the request models
    schema = client._execute(CONFIG_SCHEMA, {"selector": EXPORT_JOB})["runConfigSchemaOrError"]
    types = {t["key"]: t for t in schema["allConfigTypes"]}
    root = {f["name"]: f for f in types[schema["rootConfigType"]["key"]]["fields"]}
    assert set(root) == {"csvFormat", "metricRequests", "format", "destination", "destinations",
                         "action", "data"}
    assert root["csvFormat"]["description"].startswith("The file's columns, sort order")
    csv_format = {f["name"]: f for f in types[root["csvFormat"]["configTypeKey"]]["fields"]}
    assert csv_format["sortBy"]["isRequired"]
    assert csv_format["sortBy"]["description"] == "Indices into columns to sort the rows by, e.g. [0]."

    # an empty editor passes the schema (a body or an envelope: neither is required there)
    # but launching it is refused before any run exists
    assert config_check(client, {}) == []
    with pytest.raises(DagsterGraphQLClientError) as refused:
        client.submit_job_execution("export_job", run_config={})
    assert "the request is missing csvFormat, metricRequests" in str(refused.value)

    run_id = client.submit_job_execution("export_job", run_config=SEED_BODY)
    assert wait_for_run(client, run_id) == dg.DagsterRunStatus.SUCCESS

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert [r.run_id for r in instance.get_runs()] == [run_id]
        event = instance.get_latest_materialization_event(request_asset_key(run_id))
    metadata = event.asset_materialization.metadata
    assert event.run_id == run_id
    with urllib.request.urlopen(metadata["signed_url"].value, timeout=30) as response:
        body = response.read()
    assert body.startswith(b"Date,Entries\r\n2024-04-01,")
    assert len(body) == metadata["bytes"].value
    # the start-up warnings a user could do nothing about are gone at their cause
    started = (tmp_path / "dagster_dev.log").read_text()
    assert "Serving dagster-webserver" in started
    for warning in ("BetaWarning", "SupersessionWarning", "No dagster instance configuration"):
        assert warning not in started


def wait_for(what: str, check, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1)


def result_object(s3_client, bucket, name):
    try:
        body = s3_client.get_object(Bucket=bucket, Key=f"results/{name}")["Body"]
    except s3_client.exceptions.NoSuchKey:
        return None
    return json.loads(body.read())


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def test_daemon_sensor_picks_up_an_inbox_file_and_ui_backfills_run(
    dagster_dev, s3_client, bucket, demo_store_path, webhooks, monkeypatch
):
    port, home = dagster_dev
    # a client drops a request into the inbox; the daemon's sensor launches it
    s3_client.put_object(
        Bucket=bucket, Key="requests/from-a-client.json", Body=json.dumps(SEED_ENVELOPE).encode()
    )
    done = wait_for("the inbox request's result", lambda: (
        (r := result_object(s3_client, bucket, "from-a-client.json")) and r["status"] in ("complete", "failed") and r
    ))
    assert done["status"] == "complete", done
    with urllib.request.urlopen(done["body"][0]["signedUrl"], timeout=30) as response:
        rows = parse_csv(response.read())
    assert rows[1:] == reference_csv_rows(demo_store_path, validate_document(SEED_BODY).request)

    # two partitions backfilled from the saved export's asset page (no run config, no job),
    # one from its job's backfill dialog
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    partitions = ["2024-04-01", "2024-04-02", "2024-04-03"]
    asset_key = saved_export_asset_key(SAVED_NAME)
    response = client._execute(LAUNCH_BACKFILL, {"params": {
        "assetSelection": [{"path": asset_key.path}],
        "partitionNames": partitions[:2],
    }})
    assert response["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", response
    response = client._execute(LAUNCH_BACKFILL, {"params": {
        "selector": {
            "partitionSetName": f"{SAVED_JOB}_partition_set",
            "repositorySelector": {"repositoryName": "__repository__", "repositoryLocationName": LOCATION},
        },
        "partitionNames": partitions[2:],
    }})
    assert response["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", response
    keys = [f"exports/{SAVED_NAME}/{p}.csv" for p in partitions]

    def files():
        listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"exports/{SAVED_NAME}/")
        found = sorted(o["Key"] for o in listed.get("Contents", []))
        return found if found == keys else None

    wait_for("one file per partition", files)
    saved = saved_definition()
    for partition, key in zip(partitions, keys):
        data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        rows = parse_csv(data)
        assert [r[0] for r in rows[1:]] == [partition]
        start = datetime.fromisoformat(partition).replace(tzinfo=ZoneInfo("Europe/Berlin"))
        document = parse_saved_export(saved).request_for_window(start, start + timedelta(days=1))
        assert rows[1:] == reference_csv_rows(demo_store_path, validate_document(document).request)

    # the daemon's notification sensor posts one Slack message per partition, with its link
    wait_for("three Slack messages", lambda: len(webhooks.to("/slack/hook")) >= 3)
    texts = sorted(r.body["text"] for r in webhooks.to("/slack/hook"))
    for partition, text in zip(partitions, texts):
        assert text.startswith(f"*{SAVED_NAME} {partition}*\n1 rows: http://127.0.0.1:")
        assert f"exports/{SAVED_NAME}/{partition}.csv" in text

    # the asset's page shows each partition's own materialization, its file
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for partition, key in zip(partitions, keys):
            [record] = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=5
            ).records
            assert record.asset_materialization.metadata["key"].value == key


def test_the_daemon_launches_a_run_its_predecessor_created_but_never_submitted(
    dagster_dev, s3_client, bucket, demo_store_path, monkeypatch
):
    """A daemon that stopped between creating a tick's run and submitting it, down too long
    for the tick to be resumed, leaves the run NOT_STARTED. When the inbox sensor sees the
    file, the daemon launches that run: the file runs once, as that run."""
    port, home = dagster_dev
    s3_client.put_object(
        Bucket=bucket, Key="requests/first.json", Body=json.dumps(SEED_ENVELOPE).encode()
    )
    wait_for("the first request's result", lambda: (
        (r := result_object(s3_client, bucket, "first.json")) and r["status"] == "complete"
    ))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    key, body = "requests/stranded.json", json.dumps(SEED_ENVELOPE).encode()
    etag = hashlib.md5(body).hexdigest()  # a single-part object's ETag
    with dg.DagsterInstance.get() as instance:
        def runs_of(inbox_key: str) -> list[dg.DagsterRun]:
            return [r for r in instance.get_runs() if r.tags.get(INBOX_KEY_TAG) == inbox_key]

        # the run as the daemon's tick created it: the first run's origin, snapshots and
        # config (the same request), this file's tags
        [first] = runs_of("requests/first.json")
        stranded = first._replace(
            run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.NOT_STARTED,
            tags={**first.tags, INBOX_KEY_TAG: key, INBOX_ETAG_TAG: etag,
                  RUN_KEY_TAG: f"{key}@{etag}"},
        )
        instance.add_run(stranded)
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
        done = wait_for("the stranded request's result", lambda: (
            (r := result_object(s3_client, bucket, "stranded.json"))
            and r["status"] in ("complete", "failed") and r
        ))
        assert done["status"] == "complete", done
        assert done["runId"] == stranded.run_id
        [run] = runs_of(key)
        assert run.run_id == stranded.run_id and run.status is dg.DagsterRunStatus.SUCCESS
    with urllib.request.urlopen(done["body"][0]["signedUrl"], timeout=30) as response:
        rows = parse_csv(response.read())
    assert rows[1:] == reference_csv_rows(demo_store_path, validate_document(SEED_BODY).request)
