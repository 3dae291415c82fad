"""The inbox sensor and the result sensors on a real Dagster instance against a real S3 server:
new, duplicate, changed and invalid request files, runs launched from the sensor's requests,
and the result objects a client polls."""

from __future__ import annotations

import copy
import json
import urllib.request

import dagster as dg
import pytest

from export_pipeline.orchestration.definitions import build_definitions
from export_pipeline.orchestration.inbox_sensors import RUN_KEY_TAG
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE, parse_csv


@pytest.fixture
def env(monkeypatch, demo_store_path, bucket):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    return demo_store_path


def sensor_resources(defs: dg.Definitions) -> dict:
    return {k: defs.resources[k] for k in ("request_inbox", "metric_source", "notifier")}


class Inbox:
    """The definitions, the instance and the bucket, driven tick by tick as the daemon would."""

    def __init__(self, instance, s3_client, bucket):
        self.defs = build_definitions()
        self.instance = instance
        self.s3 = s3_client
        self.bucket = bucket
        self.cursor = None
        self.resources = sensor_resources(self.defs)

    def put(self, name: str, document) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.s3.put_object(Bucket=self.bucket, Key=f"requests/{name}", Body=body)

    def tick(self, cursor="keep") -> list[dg.RunRequest]:
        sensor = self.defs.resolve_sensor_def("request_inbox_sensor")
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor if cursor == "keep" else cursor,
            resources=self.resources,
        ) as context:
            data = sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return list(data.run_requests)

    def result(self, request_id: str) -> dict:
        return json.loads(
            self.s3.get_object(Bucket=self.bucket, Key=f"results/{request_id}.json")["Body"].read()
        )

    def launch(self, run_request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Run the request as the daemon would (its config and tags, its run key), then let
        the run-status sensors see the run's events."""
        job = self.defs.resolve_job_def("export_job")
        result = job.execute_in_process(
            run_config=run_request.run_config, instance=self.instance, raise_on_error=False,
            tags={**run_request.tags, RUN_KEY_TAG: run_request.run_key},
        )
        run = self.instance.get_run_by_id(result.run_id)
        start = self.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_START)[0]
        self.status_sensor("inbox_result_running", start.dagster_event, run)
        if result.success:
            self.status_sensor("inbox_result_complete", result.get_run_success_event(), run)
        else:
            self.status_sensor("inbox_result_failed", result.get_run_failure_event(), run)
        return result

    def status_sensor(self, name, event, run) -> None:
        sensor = self.defs.resolve_sensor_def(name)
        with dg.build_run_status_sensor_context(
            sensor_name=name, dagster_event=event, dagster_instance=self.instance,
            dagster_run=run, resources=self.resources,
        ) as context:
            sensor(context.for_run_failure() if name == "inbox_result_failed" else context)


def test_new_duplicate_changed_and_invalid_files(env, instance, s3_client, bucket):
    inbox = Inbox(instance, s3_client, bucket)
    invalid = copy.deepcopy(SEED_BODY)
    invalid["csvFormat"]["sortBy"] = [9]
    invalid["metricRequests"][0]["facets"] = ["weather"]
    inbox.put("0-invalid.json", invalid)  # sorts first: must not block the others
    inbox.put("1-broken.yaml", b"csvFormat: [unclosed")
    inbox.put("april.json", SEED_ENVELOPE)
    inbox.put("body-only.yaml", SEED_BODY)

    requests = inbox.tick()
    assert [r.tags["export_pipeline/request_id"] for r in requests] == ["req-csv-001", "body-only"]
    assert requests[0].run_config == SEED_ENVELOPE
    assert inbox.result("req-csv-001")["status"] == "queued"
    failed = inbox.result("0-invalid")
    assert failed["status"] == "failed" and failed["runId"] is None
    assert {(e["path"], e["message"]) for e in failed["errors"]} == {
        ("csvFormat.sortBy[0]", "index 9 is out of range (2 columns)"),
        ("metricRequests[0].facets[0]",
         "unknown dimension 'weather' (the store has: entity, entity_type, segments, age, taxonomy)"),
    }
    assert "neither JSON nor YAML" in inbox.result("1-broken")["errors"][0]["message"]

    # repeated ticks launch nothing more
    assert inbox.tick() == []

    # the runs, as the daemon would launch them, and the results the run-status sensors write
    result = inbox.launch(requests[0])
    assert result.success
    done = inbox.result("req-csv-001")
    assert done["status"] == "complete" and done["runId"] == result.run_id
    assert done["request"]["key"] == "requests/april.json"
    [file] = done["body"]
    with urllib.request.urlopen(file["signedUrl"], timeout=30) as response:
        data = response.read()
    rows = parse_csv(data)
    assert rows[1:] == reference_csv_rows(env, validate_document(SEED_BODY).request)
    assert (done["rows"], done["bytes"]) == (len(rows) - 1, len(data)) == (30, len(data))
    assert file["bucket"] == bucket and file["key"].startswith("exports/req-csv-001/")

    # the same bytes uploaded again: a new LastModified, the same ETag, no new run — also
    # with the cursor lost (a reset sensor, a new daemon): the run key is in the instance
    inbox.put("april.json", SEED_ENVELOPE)
    assert inbox.tick() == []
    assert [r.tags["export_pipeline/request_id"] for r in inbox.tick(cursor=None)] == ["body-only"]
    assert inbox.result("req-csv-001")["status"] == "complete"

    # a changed file runs again and its result starts over
    changed = copy.deepcopy(SEED_ENVELOPE)
    changed["data"]["body"]["metricRequests"][0]["end"] = "2024-04-10T23:59:59Z"
    inbox.put("april.json", changed)
    [again] = inbox.tick()
    assert again.run_key != requests[0].run_key
    assert inbox.result("req-csv-001")["status"] == "queued"
    inbox.launch(again)
    assert inbox.result("req-csv-001")["rows"] == 10


def test_a_failed_run_writes_its_errors(env, instance, s3_client, bucket, tmp_path, monkeypatch):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("q.json", SEED_ENVELOPE)
    [request] = inbox.tick()
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(tmp_path / "no-store"))
    inbox.defs = build_definitions()
    inbox.resources = sensor_resources(inbox.defs)
    result = inbox.launch(request)
    assert not result.success
    failed = inbox.result("req-csv-001")
    assert failed["status"] == "failed" and failed["runId"] == result.run_id
    assert "no-store" in failed["errors"][0]["message"]
    assert failed["body"] is None and failed["rows"] is None


def test_a_late_started_event_never_overwrites_a_final_status(env, instance, s3_client, bucket):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("q.json", SEED_BODY)
    [request] = inbox.tick()
    result = inbox.launch(request)
    run = instance.get_run_by_id(result.run_id)
    start = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_START)[0]
    inbox.status_sensor("inbox_result_running", start.dagster_event, run)
    assert inbox.result("q")["status"] == "complete"


def test_a_tick_is_bounded(env, instance, s3_client, bucket, monkeypatch):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.resources = {
        **inbox.resources,
        "request_inbox": inbox.resources["request_inbox"].model_copy(
            update={"max_requests_per_tick": 2}
        ),
    }
    for i in range(5):
        body = copy.deepcopy(SEED_BODY)
        body["metricRequests"][0]["name"] = f"copy {i}"
        inbox.put(f"r{i}.json", body)
    launched = []
    for _ in range(3):
        launched += [r.tags["export_pipeline/request_id"] for r in inbox.tick()]
    assert launched == ["r0", "r1", "r2", "r3", "r4"]
    assert inbox.tick() == []


def test_inline_credentials_are_sealed_before_they_become_run_config(
    env, instance, s3_client, bucket, monkeypatch
):
    from export_pipeline.destinations.sealing import generate_key, is_sealed

    document = copy.deepcopy(SEED_BODY)
    document["destination"] = {
        "type": "sftp", "server": "sftp.example.com", "port": "22",
        "username": "exports", "password": "hunter2-inline-secret", "path": "/drop",
    }
    monkeypatch.delenv("EXPORT_SEALING_KEY", raising=False)
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("no-key.json", document)
    assert inbox.tick() == []
    failed = inbox.result("no-key")
    assert failed["status"] == "failed"
    assert "EXPORT_SEALING_KEY is not set" in failed["errors"][0]["message"]
    assert "hunter2-inline-secret" not in json.dumps(failed)

    monkeypatch.setenv("EXPORT_SEALING_KEY", generate_key())
    inbox.put("sealed.json", document)
    [request] = inbox.tick()
    password = request.run_config["destination"]["password"]
    assert is_sealed(password) and "hunter2-inline-secret" not in json.dumps(request.run_config)


def test_unreadable_documents_get_a_failed_result_and_no_run(env, instance, s3_client, bucket):
    """Not UTF-8, nested past the limit, or a key given twice: the client reads why in the
    result object; the sensor neither crashes nor requests a run."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("latin1.json", json.dumps(SEED_BODY).replace("Entries", "Entr\u00e9es").encode("latin-1"))
    inbox.put("deep.yaml", b"request: " + b"[" * 200_000)
    inbox.put("twice.json", json.dumps(SEED_ENVELOPE).replace(
        '"sortBy": [0]', '"sortBy": [0], "sortBy": [1]').encode())
    assert inbox.tick() == []  # an unreadable file's id is its name: it has no readable data.id
    latin1, deep, twice = inbox.result("latin1"), inbox.result("deep"), inbox.result("twice")
    assert [r["status"] for r in (latin1, deep, twice)] == ["failed"] * 3
    assert "requests/latin1.json is not UTF-8 text" in latin1["errors"][0]["message"]
    assert "nested deeper than 32 levels" in deep["errors"][0]["message"]
    assert twice["errors"] == [{"path": "data.body.csvFormat.sortBy",
                                "message": "is given twice in the same object; give it once"}]
