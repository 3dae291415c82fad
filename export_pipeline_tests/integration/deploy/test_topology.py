"""The production topology as processes on loopback: a real PostgreSQL holding the instance
(deploy/dagster.yaml, written by ``export-pipeline instance-config``), ``dagster code-server
start``, ``dagster-daemon run`` and ``dagster-webserver`` on the gRPC workspace, and the export
API. Thirty exports from three tenants with a per-tenant limit of 2; run workers killed in
the middle of their upload, alone or with their code server; the daemon killed while the inbox
is being read."""

from __future__ import annotations

import calendar
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import psutil
import pytest
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, WILL_RETRY_TAG

from export_pipeline.contract.validation import validate_document
from export_pipeline.demo.store import LOCATIONS
from export_pipeline.orchestration.service_runs import DEFINITIONS_MODULE
from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.helpers import free_port, wait_for_http
from export_pipeline_tests.support.reference import reference_csv_rows
from export_pipeline_tests.support.requests import REPO, SEED_BODY, download, parse_csv
from export_pipeline_tests.support.s3_gate import S3Gate
from export_pipeline_tests.support.service import (
    ServiceProcess,
    service_environment,
    tenants_yaml,
    wait_for_status,
)
from export_pipeline_tests.support.sql_stores import PostgresServer, postgres_binaries

TENANTS = ("acme", "globex", "hooli")
TENANT_LIMIT = 2
EXPORTS_PER_TENANT = 10
# every tenant at its limit and no more: the total bounds the run workers' memory
TOTAL_LIMIT = TENANT_LIMIT * len(TENANTS)
RETRIES = 1
MONITOR_INTERVAL = 2
# the runtime limit of the lost-worker test (the other tests keep the default)
HUNG_MAX_RUNTIME = 60
BIN = Path(sys.executable).parent


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None, f"{what} exited ({process.returncode})"
        assert time.monotonic() < deadline, f"{what} did not listen on {port}"
        time.sleep(0.3)


class Topology:
    def __init__(self, root: Path, s3_endpoint: str, bucket: str, store: Path, postgres: PostgresServer,
                 inbox_bucket: str):
        self.root = root
        self.bucket = bucket
        self.inbox_bucket = inbox_bucket
        self.keys: dict[str, str] = {}
        (root / "tenants.yaml").write_text(tenants_yaml({t: {} for t in TENANTS}, self.keys))
        home = root / "dagster_home"
        self.env = service_environment(home, root / "tenants.yaml", bucket, store, s3_endpoint, FAKE_CREDENTIALS)
        self.env.update(
            DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_PORT=str(postgres.port), DAGSTER_PG_DB="dagster",
            DAGSTER_PG_USERNAME=postgres.user, DAGSTER_PG_PASSWORD="trust-auth-ignores-it",
            EXPORT_MAX_CONCURRENT_RUNS=str(TOTAL_LIMIT), EXPORT_TENANT_CONCURRENT_RUNS=str(TENANT_LIMIT),
            EXPORT_RUN_RETRIES=str(RETRIES), EXPORT_RUN_MONITOR_INTERVAL=str(MONITOR_INTERVAL),
            EXPORT_INBOX_BUCKET=inbox_bucket, EXPORT_INBOX_SENSOR="running",
            EXPORT_SENSOR_INTERVAL_SECONDS="2",
            # the runs read the demo store's rows from PostgreSQL, so a test can hold them
            # (a table lock) at the store read with nothing timed
            EXPORT_METRICS_SOURCE=postgres.load(pl.scan_parquet(f"{store}/*.parquet").collect()),
        )
        self.postgres = postgres
        self.configure()
        # the runs (processes of the code server) reach the store through a relay that can
        # hold their part uploads, so a test can stop a worker mid-upload
        self.gate = S3Gate(s3_endpoint).start()
        self.grpc_port = free_port()
        self.workspace = root / "workspace.yaml"
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n"
            f"      host: 127.0.0.1\n      port: {self.grpc_port}\n      location_name: {DEFINITIONS_MODULE}\n"
        )
        self.processes: dict[str, subprocess.Popen] = {}
        self.service = ServiceProcess(env=self.env, keys=self.keys)

    def configure(self, **settings: str) -> None:
        """Write $DAGSTER_HOME/dagster.yaml from the template, as a deployment does."""
        done = subprocess.run(
            [sys.executable, "-m", "export_pipeline", "instance-config", str(REPO / "deploy" / "dagster.yaml")],
            check=False, env={**self.env, **settings}, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr

    def _start(self, name: str, *command: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        process = subprocess.Popen(list(command), env=env or self.env, cwd=str(REPO), stdout=log,
                                   stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def start_daemon(self) -> subprocess.Popen:
        return self._start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace))

    def restart_daemon(self, **settings: str) -> None:
        """The daemon (the only process that reads run monitoring's numbers) on a new instance file."""
        daemon = self.processes["daemon"]
        daemon.terminate()
        daemon.wait(timeout=120)
        self.configure(**settings)
        self.start_daemon()

    def start_code_server(self) -> None:
        code_server = self._start(
            "code-server", str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
            "-p", str(self.grpc_port), "-m", DEFINITIONS_MODULE, "--location-name", DEFINITIONS_MODULE,
            env={**self.env, "AWS_ENDPOINT_URL_S3": self.gate.url},
        )
        _wait_for_port(self.grpc_port, code_server, "code server")

    def start(self) -> None:
        self.start_code_server()
        self.start_daemon()
        web_port = free_port()
        self.web_url = f"http://127.0.0.1:{web_port}"
        webserver = self._start("webserver", str(BIN / "dagster-webserver"), "-h", "127.0.0.1",
                                "-p", str(web_port), "-w", str(self.workspace))
        wait_for_http(f"{self.web_url}/server_info", webserver, 180, "dagster-webserver")
        self.service.start()

    def stop(self) -> None:
        self.service.stop()
        for process in reversed(list(self.processes.values())):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.gate.stop()

    def instance(self) -> dg.DagsterInstance:
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_PG_")})
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def open_uploads(self) -> list[dict]:
        return self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])

    def sweep_uploads(self) -> str:
        """The product's stale-upload sweep, every open upload counting as stale."""
        done = subprocess.run(
            [sys.executable, "-m", "export_pipeline", "cleanup", "uploads", "--older-than-hours", "0"],
            check=False, env=self.env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def _s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", aws_session_token="testing",
                        region_name="us-east-1")


@pytest.fixture(scope="module")
def topology(tmp_path_factory, s3_endpoint, demo_store_path) -> Iterator[Topology]:
    if postgres_binaries() is None:
        pytest.fail("PostgreSQL binaries not found: apt-get install postgresql")
    postgres = PostgresServer().start()
    with postgres.connect() as con:
        con.execute("CREATE DATABASE dagster")
    bucket, inbox = f"topology-{uuid.uuid4().hex[:12]}", f"inbox-{uuid.uuid4().hex[:12]}"
    for name in (bucket, inbox):
        _s3(s3_endpoint).create_bucket(Bucket=name)
    topology = Topology(tmp_path_factory.mktemp("topology"), s3_endpoint, bucket, demo_store_path, postgres,
                        inbox)
    topology.s3 = _s3(s3_endpoint)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
        postgres.stop()


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one instant (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _request(tenant: int, number: int) -> dict:
    """The seed request for one month of 2024 and one location, a different pair per export."""
    body = copy.deepcopy(SEED_BODY)
    (metric,) = body["metricRequests"]
    month = number + 1
    metric.update(start=f"2024-{month:02d}-01T00:00:00.000Z",
                  end=f"2024-{month:02d}-{calendar.monthrange(2024, month)[1]}T23:59:59.000Z",
                  entities=[LOCATIONS[(len(TENANTS) * number + tenant) % len(LOCATIONS)]])
    return body


def _assert_file(store: Path, url: str, body: dict) -> None:
    """The file behind the signed URL, against the independent reference computation."""
    rows = parse_csv(download(url))
    expected = reference_csv_rows(store, validate_document(body).request)
    assert rows[0] == [c["heading"] for c in body["csvFormat"]["columns"]]
    assert len(expected) >= 28 and rows[1:] == expected


def _runs_of(instance: dg.DagsterInstance, export_id: str) -> list[dg.DagsterRun]:
    """The export's runs, first attempt first."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": export_id}))
    return sorted(runs, key=lambda r: int(r.tags.get("dagster/retry_number", "0")))


def _statuses(instance: dg.DagsterInstance, ids: dict[str, list[str]]) -> dict[str, list[dg.DagsterRunStatus]]:
    """Each tenant's runs' statuses, in the order the exports were created."""
    return {tenant: [run.status for export_id in export_ids for run in _runs_of(instance, export_id)]
            for tenant, export_ids in ids.items()}


def test_thirty_exports_from_three_tenants_never_more_than_two_at_once_per_tenant(topology, demo_store_path):
    in_progress = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
    created: dict[str, list[str]] = {t: [] for t in TENANTS}
    bodies: dict[str, dict] = {}
    with topology.postgres.connect() as lock, topology.instance() as instance:
        with lock.transaction():
            # every run's store read waits on this lock until the block ends
            lock.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")
            for t, tenant in enumerate(TENANTS):  # acme's ten first, then globex's, then hooli's
                with topology.service.client(tenant) as client:
                    for number in range(EXPORTS_PER_TENANT):
                        body = _request(t, number)
                        response = client.post("/v1/exports", json=body)
                        assert response.status_code == 202, response.text
                        created[tenant].append(response.json()["id"])
                        bodies[response.json()["id"]] = body
            deadline = time.monotonic() + 600
            while True:
                statuses = _statuses(instance, created)
                if all(sum(s in in_progress for s in statuses[t]) >= TENANT_LIMIT for t in TENANTS):
                    break
                assert time.monotonic() < deadline, statuses
                time.sleep(0.5)
            # The queue takes runs first in, first out, passing over those a limit holds back:
            # hooli's runs, queued after acme's eight waiting ones, are under way while those
            # still wait, which only the per-tenant limit explains.
            for tenant in TENANTS:
                assert set(statuses[tenant][:TENANT_LIMIT]) <= in_progress, statuses
                assert set(statuses[tenant][TENANT_LIMIT:]) == {dg.DagsterRunStatus.QUEUED}, statuses

        for tenant, ids in created.items():
            with topology.service.client(tenant) as client:
                for export_id in ids:
                    done = wait_for_status(client, export_id, {"complete", "failed"}, timeout=900)
                    assert done["status"] == "complete", done
                    _assert_file(demo_store_path, done["url"], bodies[export_id])

        every = []
        for tenant, ids in created.items():
            records = [instance.get_run_record_by_id(run.run_id)
                       for export_id in ids for run in _runs_of(instance, export_id)]
            assert len(records) == EXPORTS_PER_TENANT  # one run each: none failed, none retried
            assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
            assert {r.dagster_run.tags["export_pipeline/tenant"] for r in records} == {tenant}
            intervals = [(r.start_time, r.end_time) for r in records]
            assert all(start and end for start, end in intervals)
            # never above the limit, and at it at some time: the limit was what held runs back
            assert _most_at_once(intervals) == TENANT_LIMIT, (tenant, intervals)
            every += intervals
        assert _most_at_once(every) <= TOTAL_LIMIT


def _run_workers(code_server: subprocess.Popen) -> set[int]:
    """The code server's live run processes (spawned children of its gRPC server; not
    multiprocessing's resource tracker)."""
    found = set()
    for child in psutil.Process(code_server.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _held_worker(topology: Topology, held: int) -> int:
    """The one run worker, once it is waiting on its ``held``-th part upload."""
    assert topology.gate.wait_for_held(held, timeout=600), "no run reached its part upload"
    (worker,) = _run_workers(topology.processes["code-server"])
    return worker


def _failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The messages of the run's failure and engine events (who failed it, and why)."""
    kinds = (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELING,
             dg.DagsterEventType.ENGINE_EVENT)
    return [e.dagster_event.message or e.user_message for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.event_type in kinds]


def test_a_worker_killed_mid_upload_in_every_attempt_fails_the_export_and_the_sweep_clears_its_uploads(
        topology, demo_store_path):
    """SIGKILL: the code server, whose child the run worker is, sees it die and fails the run;
    the retry is killed too, so the retries are spent and the export answers failed."""
    assert topology.open_uploads() == []
    topology.gate.close()
    try:
        with topology.service.client("globex") as client:
            export_id = client.post("/v1/exports", json=_request(1, 0)).json()["id"]
            for attempt in range(1 + RETRIES):
                os.kill(_held_worker(topology, attempt + 1), signal.SIGKILL)
            done = wait_for_status(client, export_id, {"complete", "failed"}, timeout=600)
    finally:
        topology.gate.open()
    assert done["status"] == "failed" and not done.get("url"), done

    with topology.instance() as instance:
        first, retry = _runs_of(instance, export_id)
        assert retry.tags[PARENT_RUN_ID_TAG] == first.run_id
        assert (first.tags[WILL_RETRY_TAG], retry.tags[WILL_RETRY_TAG]) == ("true", "false")
        for run in (first, retry):
            assert run.status is dg.DagsterRunStatus.FAILURE
            crash = f"Run execution process for {run.run_id} was terminated by signal 9 (SIGKILL)."
            messages = _failure_messages(instance, run.run_id)
            assert any(crash in m for m in messages), "\n".join(messages)

    # each attempt left its upload open, and no file at the export's key
    left = topology.open_uploads()
    assert len(left) == 1 + RETRIES and len({u["UploadId"] for u in left}) == 1 + RETRIES
    for upload in left:
        assert "Contents" not in topology.s3.list_objects_v2(Bucket=topology.bucket, Prefix=upload["Key"])
    assert f"{1 + RETRIES} upload(s)" in topology.sweep_uploads()
    assert topology.open_uploads() == []


def test_a_worker_lost_with_its_code_server_is_failed_by_run_monitoring_at_the_runtime_limit(
        topology, demo_store_path):
    """A worker lost together with the code server that would report its end (a machine gone)
    is what only the daemon's run monitoring can see: it fails the run once it has run longer
    than EXPORT_RUN_MAX_RUNTIME, at its next check; the retry then writes the file."""
    assert topology.open_uploads() == []
    topology.restart_daemon(EXPORT_RUN_MAX_RUNTIME=str(HUNG_MAX_RUNTIME))
    body = _request(2, 1)
    held = len(topology.gate.held)
    try:
        topology.gate.close()
        with topology.service.client("hooli") as client:
            export_id = client.post("/v1/exports", json=body).json()["id"]
            worker = _held_worker(topology, held + 1)
            # the code server first (its gRPC server and their helpers), then the worker: no
            # process is left that saw the worker die
            code_server = topology.processes["code-server"]
            for process in [psutil.Process(code_server.pid), *psutil.Process(code_server.pid).children(True)]:
                if process.pid != worker:
                    process.kill()
            code_server.wait(timeout=60)
            os.kill(worker, signal.SIGKILL)
            topology.gate.open()  # the retry's upload goes through
            topology.start_code_server()
            done = wait_for_status(client, export_id, {"complete", "failed"}, timeout=600)
        assert done["status"] == "complete", done
        _assert_file(demo_store_path, done["url"], body)
        with topology.instance() as instance:
            first, retry = _runs_of(instance, export_id)
            assert retry.tags[PARENT_RUN_ID_TAG] == first.run_id
            assert first.status is dg.DagsterRunStatus.FAILURE and retry.status is dg.DagsterRunStatus.SUCCESS
            messages = _failure_messages(instance, first.run_id)
            assert any(f"exceeding maximum runtime of {HUNG_MAX_RUNTIME} seconds" in m
                       for m in messages), "\n".join(messages)
            assert not any("Run execution process for" in m for m in messages), "\n".join(messages)
            record = instance.get_run_record_by_id(first.run_id)
            # failed by the monitor, not before the limit, and by the check after it (a check
            # every EXPORT_RUN_MONITOR_INTERVAL seconds; a minute allowed for a slow iteration)
            ran = record.end_time - record.start_time
            assert HUNG_MAX_RUNTIME <= ran <= HUNG_MAX_RUNTIME + MONITOR_INTERVAL + 60, ran
    finally:
        topology.gate.open()
        topology.restart_daemon()

    assert len(topology.open_uploads()) == 1  # the lost attempt's; the retry completed its own
    assert "1 upload(s)" in topology.sweep_uploads()
    assert topology.open_uploads() == []
    _assert_file(demo_store_path, done["url"], body)  # the sweep leaves complete files alone


def test_a_daemon_killed_during_inbox_processing_restarts_with_each_file_run_once(topology):
    keys = [f"requests/restart-{i}.json" for i in range(4)]
    for key in keys:
        topology.s3.put_object(Bucket=topology.inbox_bucket, Key=key, Body=json.dumps(SEED_BODY).encode())
    with topology.instance() as instance:
        def inbox_runs(key: str) -> list[dg.DagsterRun]:
            # Each run's own tags, not the tag index: Dagster writes a run's row and its tag rows
            # in two autocommitted statements, so a daemon killed between them leaves a run
            # (launched once the tick resumes) that a tag filter does not find.
            return [run for run in instance.get_runs()
                    if run.tags.get("export_pipeline/inbox_key") == key]

        deadline = time.monotonic() + 600
        while not any(inbox_runs(key) for key in keys):
            assert time.monotonic() < deadline, "the inbox sensor launched nothing"
            time.sleep(0.2)
        daemon = topology.processes["daemon"]
        daemon.send_signal(signal.SIGKILL)  # no chance to finish its tick
        daemon.wait(timeout=60)
        topology.start_daemon()

        results = {}
        deadline = time.monotonic() + 900
        while len(results) < len(keys):
            for key in set(keys) - set(results):
                result_key = "results/" + key.removeprefix("requests/")
                try:
                    body = json.loads(topology.s3.get_object(
                        Bucket=topology.inbox_bucket, Key=result_key)["Body"].read())
                except topology.s3.exceptions.NoSuchKey:
                    continue
                if body["status"] in ("complete", "failed"):
                    results[key] = body
            assert time.monotonic() < deadline, results
            time.sleep(0.5)
        for key in keys:
            runs = inbox_runs(key)
            assert len(runs) == 1, (key, results[key], [r.run_id for r in runs])  # once, across the restart
            (run,) = runs
            assert run.status is dg.DagsterRunStatus.SUCCESS
            assert results[key]["status"] == "complete" and results[key]["runId"] == run.run_id
            assert results[key]["rows"] == 30
