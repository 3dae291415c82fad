"""The production topology as processes on loopback: a real PostgreSQL holding the instance
(deploy/dagster.yaml, written by ``export-pipeline instance-config``), ``dagster code-server
start``, ``dagster-daemon run`` and ``dagster-webserver`` on the gRPC workspace, and the export
API. Exports from three tenants with a per-tenant limit of 2, and a run worker killed outright."""

from __future__ import annotations

import os
import signal
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

from export_pipeline.orchestration.service_runs import DEFINITIONS_MODULE
from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.helpers import free_port, wait_for_http
from export_pipeline_tests.support.requests import REPO, SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import (
    ServiceProcess,
    service_environment,
    tenants_yaml,
    wait_for_status,
)
from export_pipeline_tests.support.sql_stores import PostgresServer, postgres_binaries

TENANTS = ("acme", "globex", "hooli")
TENANT_LIMIT = 2


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 180) -> None:
    import socket

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
        self.inbox_bucket = inbox_bucket
        self.keys: dict[str, str] = {}
        (root / "tenants.yaml").write_text(tenants_yaml({t: {} for t in TENANTS}, self.keys))
        home = root / "dagster_home"
        self.env = service_environment(home, root / "tenants.yaml", bucket, store, s3_endpoint, FAKE_CREDENTIALS)
        self.env.update(
            DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_PORT=str(postgres.port), DAGSTER_PG_DB="dagster",
            DAGSTER_PG_USERNAME=postgres.user, DAGSTER_PG_PASSWORD="trust-auth-ignores-it",
            EXPORT_TENANT_CONCURRENT_RUNS=str(TENANT_LIMIT), EXPORT_RUN_RETRIES="1",
            EXPORT_INBOX_BUCKET=inbox_bucket, EXPORT_INBOX_SENSOR="running",
            EXPORT_SENSOR_INTERVAL_SECONDS="2",
            # the runs read the demo store's rows from PostgreSQL, so a test can hold them
            # (a table lock) at the store read with nothing timed
            EXPORT_METRICS_SOURCE=postgres.load(pl.scan_parquet(f"{store}/*.parquet").collect()),
        )
        self.postgres = postgres
        done = subprocess.run(
            [sys.executable, "-m", "export_pipeline", "instance-config", str(REPO / "deploy" / "dagster.yaml")],
            env=self.env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        self.grpc_port = free_port()
        self.workspace = root / "workspace.yaml"
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n"
            f"      host: 127.0.0.1\n      port: {self.grpc_port}\n      location_name: {DEFINITIONS_MODULE}\n"
        )
        self.processes: dict[str, subprocess.Popen] = {}
        self.service = ServiceProcess(env=self.env, keys=self.keys)

    def _start(self, name: str, *command: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        process = subprocess.Popen(list(command), env=self.env, cwd=str(REPO), stdout=log,
                                   stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def start(self) -> None:
        bin_dir = Path(sys.executable).parent
        code_server = self._start(
            "code-server", str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1",
            "-p", str(self.grpc_port), "-m", DEFINITIONS_MODULE, "--location-name", DEFINITIONS_MODULE,
        )
        _wait_for_port(self.grpc_port, code_server, "code server")
        self._start("daemon", str(bin_dir / "dagster-daemon"), "run", "-w", str(self.workspace))
        web_port = free_port()
        self.web_url = f"http://127.0.0.1:{web_port}"
        webserver = self._start("webserver", str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1",
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

    def instance(self) -> dg.DagsterInstance:
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_PG_")})
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])


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


def _statuses(instance: dg.DagsterInstance, ids: dict[str, list[str]]) -> dict[str, list[dg.DagsterRunStatus]]:
    """Each tenant's runs' statuses, in the order the exports were created."""
    out = {}
    for tenant, export_ids in ids.items():
        out[tenant] = []
        for export_id in export_ids:
            (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": export_id}))
            out[tenant].append(run.status)
    return out


def test_no_tenant_has_more_runs_at_once_than_its_limit(topology):
    in_progress = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
    created: dict[str, list[str]] = {t: [] for t in TENANTS}
    with topology.postgres.connect() as lock, topology.instance() as instance:
        with lock.transaction():
            # every run's store read waits on this lock until the block ends
            lock.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")
            for tenant in TENANTS:  # acme's three first, then globex's, then hooli's
                with topology.service.client(tenant) as client:
                    for _ in range(TENANT_LIMIT + 1):
                        response = client.post("/v1/exports", json=SEED_BODY)
                        assert response.status_code == 202, response.text
                        created[tenant].append(response.json()["id"])
            deadline = time.monotonic() + 600
            while True:
                statuses = _statuses(instance, created)
                if all(sum(s in in_progress for s in statuses[t]) >= TENANT_LIMIT for t in TENANTS):
                    break
                assert time.monotonic() < deadline, statuses
                time.sleep(0.5)
            # The queue takes runs first in, first out, passing over those a limit holds back:
            # hooli's runs, queued after acme's third, are under way while acme's third still
            # waits, which only the per-tenant limit explains (the total allows 10).
            for tenant in TENANTS:
                assert set(statuses[tenant][:TENANT_LIMIT]) <= in_progress, statuses
                assert statuses[tenant][TENANT_LIMIT] is dg.DagsterRunStatus.QUEUED, statuses

        for tenant, ids in created.items():
            with topology.service.client(tenant) as client:
                for export_id in ids:
                    done = wait_for_status(client, export_id, {"complete", "failed"}, timeout=900)
                    assert done["status"] == "complete", done
                    assert len(parse_csv(download(done["url"]))) == 31

        for tenant in TENANTS:
            records = instance.get_run_records(
                filters=dg.RunsFilter(tags={"export_pipeline/tenant": tenant}))
            assert len(records) == TENANT_LIMIT + 1
            intervals = [(r.start_time, r.end_time) for r in records]
            assert all(start and end for start, end in intervals)
            assert _most_at_once(intervals) <= TENANT_LIMIT, (tenant, intervals)


def _run_workers(code_server: subprocess.Popen) -> set[int]:
    """The code server's run processes (spawned children of its gRPC server; not
    multiprocessing's resource tracker)."""
    found = set()
    for child in psutil.Process(code_server.pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_run_whose_worker_is_killed_is_failed_and_retried_and_the_export_completes(topology):
    code_server = topology.processes["code-server"]
    before = _run_workers(code_server)
    with topology.service.client("acme") as client:
        export_id = client.post("/v1/exports", json=SEED_BODY).json()["id"]
    deadline = time.monotonic() + 300
    while not (_run_workers(code_server) - before):
        assert time.monotonic() < deadline, "the run's process never appeared"
        time.sleep(0.05)
    (worker,) = _run_workers(code_server) - before
    os.kill(worker, signal.SIGKILL)

    with topology.instance() as instance:
        (original,) = instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": export_id},
                                                              exclude_subruns=True))
        deadline = time.monotonic() + 600
        while True:
            run = instance.get_run_by_id(original.run_id)
            retries = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": original.run_id}))
            if run.status is dg.DagsterRunStatus.FAILURE and retries and retries[0].is_finished:
                break
            assert not (run.is_finished and run.status is not dg.DagsterRunStatus.FAILURE), run.status
            assert time.monotonic() < deadline, (run.status, [r.status for r in retries])
            time.sleep(1)
        (retry,) = retries
        assert retry.tags["dagster/retry_number"] == "1"
        assert retry.tags["export_pipeline/export_id"] == export_id
        assert retry.status is dg.DagsterRunStatus.SUCCESS
    # the export followed the retry: complete, with the file, not failed with the first run
    with topology.service.client("acme") as client:
        done = wait_for_status(client, export_id, {"complete", "failed"})
    assert done["status"] == "complete", done
    assert len(parse_csv(download(done["url"]))) == 31


def test_a_daemon_killed_during_inbox_processing_restarts_with_each_file_run_once(topology):
    import json

    keys = [f"requests/restart-{i}.json" for i in range(4)]
    for key in keys:
        topology.s3.put_object(Bucket=topology.inbox_bucket, Key=key, Body=json.dumps(SEED_BODY).encode())
    with topology.instance() as instance:
        def inbox_runs(key: str) -> list[dg.DagsterRun]:
            return instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/inbox_key": key}))

        deadline = time.monotonic() + 600
        while not any(inbox_runs(key) for key in keys):
            assert time.monotonic() < deadline, "the inbox sensor launched nothing"
            time.sleep(0.2)
        daemon = topology.processes["daemon"]
        daemon.send_signal(signal.SIGKILL)  # no chance to finish its tick
        daemon.wait(timeout=60)
        topology._start("daemon", str(Path(sys.executable).parent / "dagster-daemon"), "run",
                        "-w", str(topology.workspace))

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
            (run,) = inbox_runs(key)  # exactly once, across the restart
            assert run.status is dg.DagsterRunStatus.SUCCESS
            assert results[key]["status"] == "complete" and results[key]["runId"] == run.run_id
            assert results[key]["rows"] == 30
