"""The inbox sensor and the result sensors on a real Dagster instance against a real S3 server:
new, duplicate, changed and invalid request files, runs launched from the sensor's requests,
and the result objects a client polls."""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from datetime import datetime, timezone

import dagster as dg
import pytest

from export_pipeline.orchestration.definitions import (
    STATUS_SENSOR_FETCH_LIMIT,
    STATUS_SENSOR_PROCESS_LIMIT,
    build_definitions,
)
from export_pipeline.orchestration.inbox_sensors import RUN_KEY_TAG
from export_pipeline.orchestration.resources import S3Connection
from export_pipeline.orchestration.run_outcomes import export_response
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.helpers import free_port, signature, signed_at
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE, parse_csv


@pytest.fixture
def env(monkeypatch, demo_store_path, bucket):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    return demo_store_path


def sensor_resources(defs: dg.Definitions) -> dict:
    return {k: defs.resources[k] for k in ("request_inbox", "metric_source", "notifier", "export_storage")}


class Inbox:
    """The definitions, the instance and the bucket, driven tick by tick as the daemon would."""

    def __init__(self, instance, s3_client, bucket, prefix="requests/", results_prefix="results/"):
        self.defs = build_definitions()
        self.instance = instance
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self.results_prefix = results_prefix
        self.cursor = None
        self.resources = sensor_resources(self.defs)

    def put(self, name: str, document) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}{name}", Body=body)

    def configure(self, **settings) -> None:
        """The inbox resource built again with some of its settings changed, as a deployment
        would set them (a copy of the resource would keep the original's config)."""
        current = self.resources["request_inbox"]
        fields = {name: getattr(current, name) for name in type(current).model_fields}
        self.resources = {**self.resources, "request_inbox": type(current)(**{**fields, **settings})}

    def tick(self, cursor="keep") -> list[dg.RunRequest]:
        sensor = self.defs.resolve_sensor_def("request_inbox_sensor")
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor if cursor == "keep" else cursor,
            resources=self.resources,
        ) as context:
            data = sensor.evaluate_tick(context)
        dg.serialize_value(data)  # the code server ships every tick's result to the daemon so
        self.cursor = data.cursor
        return list(data.run_requests)

    def result(self, name: str) -> dict:
        """The result of the request file ``name`` (its path under the inbox)."""
        key = f"{self.results_prefix}{name}"
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def results(self) -> dict[str, dict]:
        """Every result object, by key."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.results_prefix)
        return {
            o["Key"]: json.loads(self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read())
            for o in listed.get("Contents", [])
        }

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

    def run_without_its_own_write(self, run_request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """The run, with its own result write failing (the inbox's S3 refuses the connection),
        so that only the result sensors can write its final status."""
        unreachable = type(self.resources["request_inbox"])(
            s3=S3Connection(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1),
            bucket=self.bucket, prefix=self.prefix, results_prefix=self.results_prefix,
        )
        result = self.defs.resolve_job_def("export_job").execute_in_process(
            run_config=run_request.run_config, instance=self.instance, raise_on_error=False,
            tags={**run_request.tags, RUN_KEY_TAG: run_request.run_key},
            resources={"request_inbox": unreachable},
        )
        [error] = [e for e in result.all_events if e.event_type_value == "HOOK_ERRORED"]
        assert "Could not connect" in str(error.event_specific_data.error)
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
    assert inbox.result("april.json")["status"] == "queued"
    failed = inbox.result("0-invalid.json")
    assert failed["status"] == "failed" and failed["runId"] is None
    assert {(e["path"], e["message"]) for e in failed["errors"]} == {
        ("csvFormat.sortBy[0]", "index 9 is out of range (2 columns)"),
        ("metricRequests[0].facets[0]",
         "unknown dimension 'weather' (the store has: entity, entity_type, segments, age, taxonomy)"),
    }
    assert "neither JSON nor YAML" in inbox.result("1-broken.yaml")["errors"][0]["message"]

    # repeated ticks launch nothing more
    assert inbox.tick() == []

    # the runs, as the daemon would launch them, and the results the run-status sensors write
    result = inbox.launch(requests[0])
    assert result.success
    done = inbox.result("april.json")
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
    assert inbox.result("april.json")["status"] == "complete"

    # a changed file runs again and its result starts over
    changed = copy.deepcopy(SEED_ENVELOPE)
    changed["data"]["body"]["metricRequests"][0]["end"] = "2024-04-10T23:59:59Z"
    inbox.put("april.json", changed)
    [again] = inbox.tick()
    assert again.run_key != requests[0].run_key
    assert inbox.result("april.json")["status"] == "queued"
    inbox.launch(again)
    assert inbox.result("april.json")["rows"] == 10


def test_a_failed_run_writes_its_errors(env, instance, s3_client, bucket, tmp_path, monkeypatch):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("q.json", SEED_ENVELOPE)
    [request] = inbox.tick()
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(tmp_path / "no-store"))
    inbox.defs = build_definitions()
    inbox.resources = sensor_resources(inbox.defs)
    result = inbox.launch(request)
    assert not result.success
    failed = inbox.result("q.json")
    assert failed["status"] == "failed" and failed["runId"] == result.run_id
    assert "no-store" in failed["errors"][0]["message"]
    assert failed["body"] is None and failed["rows"] is None


def test_the_run_writes_its_complete_result_itself(env, instance, s3_client, bucket):
    """No result sensor ticks here: the run's own last step wrote ``complete``, with the file's
    link, before the run ended. The complete sensor, ticking after it, leaves it as it is."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("own.json", SEED_BODY)
    [request] = inbox.tick()
    result = inbox.defs.resolve_job_def("export_job").execute_in_process(
        run_config=request.run_config, instance=instance,
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
    )
    done = inbox.result("own.json")
    assert (done["status"], done["runId"], done["errors"]) == ("complete", result.run_id, None)
    assert done["request"] == {"bucket": bucket, "key": "requests/own.json", "etag": request.tags["export_pipeline/inbox_etag"]}
    [file] = done["body"]
    assert file == {k: v for k, v in export_response(instance, result.run_id).items() if k in file}
    with urllib.request.urlopen(file["signedUrl"], timeout=30) as response:
        rows = parse_csv(response.read())
    assert rows[1:] == reference_csv_rows(env, validate_document(SEED_BODY).request)
    assert done["rows"] == 30
    inbox.status_sensor("inbox_result_complete", result.get_run_success_event(),
                        instance.get_run_by_id(result.run_id))
    assert inbox.result("own.json") == done


def test_a_run_whose_own_result_write_fails_still_succeeds_and_its_sensor_writes_it(
    env, instance, s3_client, bucket
):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("fallback.json", SEED_BODY)
    [request] = inbox.tick()
    result = inbox.run_without_its_own_write(request)
    assert result.success
    assert inbox.result("fallback.json")["status"] == "queued"
    inbox.status_sensor("inbox_result_complete", result.get_run_success_event(),
                        instance.get_run_by_id(result.run_id))
    done = inbox.result("fallback.json")
    assert (done["status"], done["runId"], done["rows"]) == ("complete", result.run_id, 30)


def test_a_run_never_writes_the_result_of_a_file_changed_since(env, instance, s3_client, bucket):
    """The file was replaced while its run ran: the newer file's run owns the result."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("moving.json", SEED_BODY)
    [first] = inbox.tick()
    changed = copy.deepcopy(SEED_BODY)
    changed["metricRequests"][0]["end"] = "2024-04-10T23:59:59Z"
    inbox.put("moving.json", changed)
    [second] = inbox.tick()
    inbox.defs.resolve_job_def("export_job").execute_in_process(
        run_config=first.run_config, instance=instance,
        tags={**first.tags, RUN_KEY_TAG: first.run_key},
    )
    assert inbox.result("moving.json")["status"] == "queued"
    assert inbox.result("moving.json")["request"]["etag"] == second.tags["export_pipeline/inbox_etag"]


def test_a_run_not_from_the_inbox_writes_no_result(env, instance, s3_client, bucket):
    inbox = Inbox(instance, s3_client, bucket)
    result = inbox.defs.resolve_job_def("export_job").execute_in_process(
        run_config=SEED_BODY, instance=instance,
    )
    assert result.success and inbox.results() == {}


def test_a_late_started_event_never_overwrites_a_final_status(env, instance, s3_client, bucket):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("q.json", SEED_BODY)
    [request] = inbox.tick()
    result = inbox.launch(request)
    run = instance.get_run_by_id(result.run_id)
    start = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_START)[0]
    inbox.status_sensor("inbox_result_running", start.dagster_event, run)
    assert inbox.result("q.json")["status"] == "complete"


def test_a_result_written_late_carries_a_link_signed_as_it_is_written(
    env, instance, s3_client, bucket, monkeypatch
):
    """The result sensor may write long after the file was (the daemon was down): the link in
    the result is signed then, with SigV4, for the configured lifetime."""
    monkeypatch.setenv("EXPORT_URL_TTL", "600")
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("late.json", SEED_BODY)
    [request] = inbox.tick()
    result = inbox.run_without_its_own_write(request)
    written = export_response(instance, result.run_id)["signedUrl"]
    time.sleep(1.1)  # a signature's date counts whole seconds
    writing = datetime.now(timezone.utc).replace(microsecond=0)
    inbox.status_sensor("inbox_result_complete", result.get_run_success_event(),
                        instance.get_run_by_id(result.run_id))
    [file] = inbox.result("late.json")["body"]
    url = file["signedUrl"]
    assert signature(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert signature(url)["X-Amz-Expires"] == "600"
    assert signed_at(url) >= writing > signed_at(written)
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read().startswith(b"Date,")


def test_a_tick_is_bounded(env, instance, s3_client, bucket, monkeypatch):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.configure(max_requests_per_tick=2)
    for i in range(5):
        body = copy.deepcopy(SEED_BODY)
        body["metricRequests"][0]["name"] = f"copy {i}"
        inbox.put(f"r{i}.json", body)
    launched = []
    for _ in range(3):
        launched.append(request_ids(inbox.tick()))
    assert launched == [["r0", "r1"], ["r2", "r3"], ["r4"]]
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
    failed = inbox.result("no-key.json")
    assert failed["status"] == "failed"
    assert "EXPORT_SEALING_KEY is not set" in failed["errors"][0]["message"]
    assert "hunter2-inline-secret" not in json.dumps(failed)

    monkeypatch.setenv("EXPORT_SEALING_KEY", generate_key())
    inbox.put("sealed.json", document)
    [request] = inbox.tick()
    password = request.run_config["destination"]["password"]
    assert is_sealed(password) and "hunter2-inline-secret" not in json.dumps(request.run_config)
    # the queue's per-host limit counts it; the tag names the host, never a credential
    assert request.tags["export_pipeline/destination_host"] == "sftp.example.com"
    assert "hunter2-inline-secret" not in json.dumps(request.tags)


def body_named(name: str) -> dict:
    body = copy.deepcopy(SEED_BODY)
    body["metricRequests"][0]["name"] = name
    return body


def request_ids(run_requests) -> list[str]:
    return [r.tags["export_pipeline/request_id"] for r in run_requests]


def test_a_poison_file_never_stops_the_inbox(env, instance, s3_client, bucket):
    """Files whose handling raises (a date that overflows, brackets nested past the parser's
    depth, a run config the daemon could not ship) fail on their own; the files around them
    run, the cursor moves on, and the next tick redoes nothing."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("a-good.json", body_named("first"))
    overflow = body_named("overflow")
    overflow["metricRequests"][0]["end"] = "9999-12-31T23:59:59-01:00"
    inbox.put("b-overflow.json", overflow)
    nested = b"[" * 100_000 + b"]" * 100_000
    assert len(nested) < 1024 * 1024
    inbox.put("c-nested.json", nested)
    deep = copy.deepcopy(SEED_ENVELOPE)
    deep["data"]["id"] = "deep"
    deep["action"] = json.loads("[" * 600 + "]" * 600)  # parses, validates, but cannot be shipped
    inbox.put("d-deep.json", deep)
    inbox.put("e-good.yaml", body_named("last"))

    requests = inbox.tick()
    assert request_ids(requests) == ["a-good", "e-good"]
    results = inbox.results()
    assert {k: r["status"] for k, r in results.items()} == {
        "results/a-good.json": "queued",
        "results/b-overflow.json": "failed",
        "results/c-nested.json": "failed",
        "results/d-deep.json": "failed",
        "results/e-good.yaml": "queued",
    }
    for name in ("b-overflow.json", "c-nested.json", "d-deep.json"):
        failed = results[f"results/{name}"]
        assert failed["runId"] is None and failed["errors"], failed
        assert all(e["message"] for e in failed["errors"])
        assert failed["request"]["key"] == f"requests/{name}"
    # nested past the documents' depth limit, its data.id is never read: the file's name stands in
    assert results["results/d-deep.json"]["id"] == "d-deep"

    state = json.loads(inbox.cursor)  # the pass went on to its end, every file handled once
    assert state["after"] == "" and len(state["seen"]) == 5
    assert inbox.tick() == []
    assert inbox.results() == results  # nothing written again
    [done] = [inbox.launch(r) for r in requests[:1]]
    assert done.success and inbox.result("a-good.json")["status"] == "complete"


def test_each_file_owns_its_result(env, instance, s3_client, bucket):
    """A result is keyed by its request file, so no file can write over another's result,
    whatever ``data.id`` it claims and however its path reads as an id."""
    inbox = Inbox(instance, s3_client, bucket)
    victim = copy.deepcopy(SEED_ENVELOPE)
    victim["data"]["id"] = "shared"
    inbox.put("victim.json", victim)
    [request] = inbox.tick()
    assert request.tags["export_pipeline/request_id"] == "shared"

    # another client reuses the id: once with an invalid file, once with a valid one
    squatter = copy.deepcopy(victim)
    squatter["data"]["body"]["csvFormat"]["sortBy"] = [9]
    inbox.put("squatter.json", squatter)
    twin = copy.deepcopy(victim)
    twin["data"]["body"]["metricRequests"][0]["end"] = "2024-04-10T23:59:59Z"
    inbox.put("twin.json", twin)
    [twin_request] = inbox.tick()
    assert inbox.result("victim.json")["status"] == "queued"
    squatted = inbox.result("squatter.json")
    assert (squatted["id"], squatted["status"]) == ("shared", "failed")
    assert squatted["errors"][0]["path"] == "data.body.csvFormat.sortBy[0]"

    # both runs write their own results, whatever order they finish in
    twin_run = inbox.launch(twin_request)
    run = inbox.launch(request)
    mine = inbox.result("victim.json")
    assert (mine["id"], mine["status"], mine["runId"], mine["rows"]) == ("shared", "complete", run.run_id, 30)
    assert mine["request"]["key"] == "requests/victim.json"
    theirs = inbox.result("twin.json")
    assert (theirs["status"], theirs["runId"], theirs["rows"]) == ("complete", twin_run.run_id, 10)
    assert inbox.result("squatter.json")["status"] == "failed"

    # paths that read as one id: four files, four results, each about its own file
    inbox.put("team/april.json", body_named("slash"))
    inbox.put("team.april.json", body_named("dot"))
    invalid = body_named("space")
    invalid["csvFormat"]["sortBy"] = [7]
    inbox.put("team april.json", invalid)
    inbox.put("team-april.json", body_named("dash"))
    requests = inbox.tick()
    assert sorted(r.tags["export_pipeline/inbox_key"] for r in requests) == [
        "requests/team-april.json", "requests/team.april.json", "requests/team/april.json",
    ]
    for name, status in [("team/april.json", "queued"), ("team.april.json", "queued"),
                         ("team april.json", "failed"), ("team-april.json", "queued")]:
        result = inbox.result(name)
        assert (result["status"], result["request"]["key"]) == (status, f"requests/{name}")
    for r in requests:
        inbox.launch(r)
    names = {
        name: inbox.result(name)["runId"]
        for name in ("team/april.json", "team.april.json", "team-april.json")
    }
    assert len(set(names.values())) == 3 and None not in names.values()
    assert inbox.result("team april.json")["status"] == "failed"


def test_a_tick_stops_when_its_budget_is_spent(env, instance, s3_client, bucket):
    """The budget is checked before each file after the first: with none left, every tick
    still handles one file, and the rest wait for the next ticks."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.configure(tick_budget_seconds=0.0)
    for i in range(3):
        inbox.put(f"r{i}.json", body_named(f"copy {i}"))
    assert [request_ids(inbox.tick()) for _ in range(3)] == [["r0"], ["r1"], ["r2"]]
    assert inbox.tick() == []
    assert sorted(inbox.results()) == ["results/r0.json", "results/r1.json", "results/r2.json"]


def test_a_canceled_run_fails_its_result(env, instance, s3_client, bucket):
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("q.json", SEED_BODY)
    [request] = inbox.tick()
    job = inbox.defs.resolve_job_def("export_job")
    run = instance.create_run_for_job(
        job_def=job, run_config=request.run_config,
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
    )
    instance.report_run_canceled(run)
    run = instance.get_run_by_id(run.run_id)
    assert run.status == dg.DagsterRunStatus.CANCELED
    [canceled] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED)
    inbox.status_sensor("inbox_result_canceled", canceled.dagster_event, run)
    result = inbox.result("q.json")
    assert (result["status"], result["runId"]) == ("failed", run.run_id)
    assert result["errors"] == [{"path": "", "message": "the run was canceled"}]
    assert result["body"] is None


@pytest.mark.parametrize("setting", ["stopped", " Stopped ", "running", None])
def test_the_inbox_sensor_can_start_stopped(env, monkeypatch, setting):
    if setting is None:
        monkeypatch.delenv("EXPORT_INBOX_SENSOR", raising=False)
    else:
        monkeypatch.setenv("EXPORT_INBOX_SENSOR", setting)
    defs = build_definitions()
    stopped = setting is not None and setting.strip().lower() == "stopped"
    expected = dg.DefaultSensorStatus.STOPPED if stopped else dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("request_inbox_sensor").default_status == expected
    for name in ("inbox_result_running", "inbox_result_complete", "inbox_result_failed",
                 "inbox_result_canceled"):  # results of runs already requested still arrive
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_other_inbox_and_results_prefixes(env, instance, s3_client, bucket, monkeypatch):
    monkeypatch.setenv("EXPORT_INBOX_PREFIX", "clients/in/")
    monkeypatch.setenv("EXPORT_RESULTS_PREFIX", "clients/out/")
    inbox = Inbox(instance, s3_client, bucket, prefix="clients/in/", results_prefix="clients/out/")
    s3_client.put_object(Bucket=bucket, Key="requests/ignored.json", Body=json.dumps(SEED_BODY).encode())
    inbox.put("team/april.json", SEED_ENVELOPE)
    invalid = copy.deepcopy(SEED_BODY)
    invalid["csvFormat"]["sortBy"] = [9]
    inbox.put("bad.json", invalid)
    [request] = inbox.tick()
    assert request.tags["export_pipeline/inbox_key"] == "clients/in/team/april.json"
    assert sorted(inbox.results()) == ["clients/out/bad.json", "clients/out/team/april.json"]
    run = inbox.launch(request)
    done = inbox.result("team/april.json")
    assert (done["status"], done["runId"], done["id"]) == ("complete", run.run_id, "req-csv-001")
    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert not any(o["Key"].startswith("results/") for o in listed)


def test_a_file_s3_will_not_serve_fails_alone(env, instance, s3_client, bucket):
    """An archived object cannot be read until it is restored: a lasting error about that file
    alone, so it gets its own failed result instead of holding the inbox at it for ever."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("a.json", body_named("first"))
    s3_client.put_object(
        Bucket=bucket, Key="requests/b-archived.json", Body=json.dumps(SEED_BODY).encode(),
        StorageClass="GLACIER",
    )
    inbox.put("c.json", body_named("last"))
    assert request_ids(inbox.tick()) == ["a", "c"]
    archived = inbox.result("b-archived.json")
    assert archived["status"] == "failed" and archived["runId"] is None
    assert archived["errors"] == [
        {"path": "", "message": "the request file cannot be read (InvalidObjectState)"}
    ]
    assert inbox.tick() == []


def test_a_request_above_the_cost_limits_is_refused_without_a_run(env, instance, s3_client, bucket):
    inbox = Inbox(instance, s3_client, bucket)
    huge = copy.deepcopy(SEED_BODY)
    huge["metricRequests"][0]["entities"] = [f"e{i:06d}" for i in range(10_001)]
    inbox.put("huge.json", huge)
    assert inbox.tick() == []
    failed = inbox.result("huge.json")
    assert failed["status"] == "failed" and failed["runId"] is None
    assert [e["path"] for e in failed["errors"]] == ["metricRequests[0].entities"]
    assert "(EXPORT_MAX_ENTITIES)" in failed["errors"][0]["message"]


def test_unreadable_documents_get_a_failed_result_and_no_run(env, instance, s3_client, bucket):
    """Not UTF-8, nested past the limit, or a key given twice: the client reads why in the
    result object; the sensor neither crashes nor requests a run."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("latin1.json", json.dumps(SEED_BODY).replace("Entries", "Entr\u00e9es").encode("latin-1"))
    inbox.put("deep.yaml", b"request: " + b"[" * 200_000)
    inbox.put("twice.json", json.dumps(SEED_ENVELOPE).replace(
        '"sortBy": [0]', '"sortBy": [0], "sortBy": [1]').encode())
    assert inbox.tick() == []  # an unreadable file's id is its name: it has no readable data.id
    latin1, deep, twice = inbox.result("latin1.json"), inbox.result("deep.yaml"), inbox.result("twice.json")
    assert [r["status"] for r in (latin1, deep, twice)] == ["failed"] * 3
    assert "requests/latin1.json is not UTF-8 text" in latin1["errors"][0]["message"]
    assert "nested deeper than 32 levels" in deep["errors"][0]["message"]
    assert twice["errors"] == [{"path": "data.body.csvFormat.sortBy",
                                "message": "is given twice in the same object; give it once"}]


def test_a_burst_of_finished_runs_has_every_result_after_one_tick(env, instance, s3_client, bucket, monkeypatch):
    """Dagster's run-status sensors take five runs per tick unless their environment says
    otherwise; the definitions raise that, so a burst of finished inbox runs does not wait
    one sensor interval per five results."""
    for name in (STATUS_SENSOR_PROCESS_LIMIT, STATUS_SENSOR_FETCH_LIMIT):
        monkeypatch.delenv(name, raising=False)
    inbox = Inbox(instance, s3_client, bucket)
    sensor = inbox.defs.resolve_sensor_def("inbox_result_canceled")

    def tick(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=inbox.resources) as context:
            return sensor.evaluate_tick(context).cursor

    cursor = tick(None)  # a run-status sensor's first tick only starts its cursor
    for i in range(12):
        inbox.put(f"burst{i:02d}.json", SEED_BODY)
    requests = inbox.tick()
    assert len(requests) == 12
    job = inbox.defs.resolve_job_def("export_job")
    runs = {}
    for request in requests:
        run = instance.create_run_for_job(
            job_def=job, run_config=request.run_config,
            tags={**request.tags, RUN_KEY_TAG: request.run_key},
        )
        instance.report_run_canceled(run)
        runs[request.tags["export_pipeline/inbox_key"]] = run.run_id
    tick(cursor)
    results = inbox.results()
    assert {key: (results[key.replace("requests/", "results/")]["status"],
                  results[key.replace("requests/", "results/")]["runId"]) for key in runs} == {
        key: ("failed", run_id) for key, run_id in runs.items()
    }


def test_a_finished_run_is_never_marked_running(env, instance, s3_client, bucket):
    """The running sensor may tick after the run has finished but before the complete sensor
    has written (sensors in parallel threads): it leaves the result for the final status."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("q.json", SEED_BODY)
    [request] = inbox.tick()
    result = inbox.run_without_its_own_write(request)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    start = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_START)[0]
    inbox.status_sensor("inbox_result_running", start.dagster_event, run)
    assert inbox.result("q.json")["status"] == "queued"
    inbox.status_sensor("inbox_result_complete", result.get_run_success_event(), run)
    assert (inbox.result("q.json")["status"], inbox.result("q.json")["runId"]) == ("complete", run.run_id)


def test_a_run_created_but_never_submitted_is_requested_again_under_its_run_key(
    env, instance, s3_client, bucket
):
    """The daemon creates a tick's runs, then submits them. One that stopped in between, and
    whose tick was not resumed, leaves a NOT_STARTED run that nothing will launch: the file is
    requested again under the same run key (the daemon then submits that run), while a run
    past NOT_STARTED keeps the file from running twice."""
    inbox = Inbox(instance, s3_client, bucket)
    inbox.put("stranded.json", SEED_ENVELOPE)
    [request] = inbox.tick()
    job = inbox.defs.resolve_job_def("export_job")
    stranded = instance.create_run_for_job(
        job, run_config=request.run_config, status=dg.DagsterRunStatus.NOT_STARTED,
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
    )
    [again] = inbox.tick(cursor=None)
    assert again.run_key == request.run_key
    assert again.run_config == request.run_config
    assert inbox.result("stranded.json")["status"] == "queued"

    # once it has left NOT_STARTED (here canceled, as the UI can), the file does not run again
    instance.report_run_canceled(instance.get_run_by_id(stranded.run_id))
    assert instance.get_run_by_id(stranded.run_id).status is dg.DagsterRunStatus.CANCELED
    assert inbox.tick(cursor=None) == []
