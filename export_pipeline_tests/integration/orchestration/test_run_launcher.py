"""The local instance's warm run launcher with a real export service launching: each run is a
process of its own, forked from the launcher's fork server, makes the right file, and is
terminated by a DELETE while it runs. The run's store is a PostgreSQL table, so a test can hold
a run at its store read (a table lock) with nothing timed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import pytest
import yaml
from dagster_graphql import DagsterGraphQLClient

from export_pipeline.cli import INSTANCE_CONFIG
from export_pipeline.orchestration.export_assets import request_asset_key
from export_pipeline.orchestration.run_launcher import WORKER_TAG
from export_pipeline.worker_processes import live_worker
from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.dagster_dev import LOCATION, dagster_dev, webhooks  # noqa: F401 (fixtures)
from export_pipeline_tests.support.helpers import wait_for_run
from export_pipeline_tests.support.requests import REPO, SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import tenant_service, wait_for_status

EXPORT_TAG = "export_pipeline/export_id"


@pytest.fixture
def s3(s3_endpoint):
    return boto3.client(
        "s3", endpoint_url=s3_endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


@pytest.fixture
def service(tmp_path, s3, s3_endpoint, demo_store_path, postgres):
    bucket = f"warm-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    database = postgres.new_database("warm")
    source = postgres.load(pl.read_parquet(demo_store_path / "**/*.parquet"), database=database)
    server = tenant_service(tmp_path, {"acme": {}}, bucket, demo_store_path, s3_endpoint, FAKE_CREDENTIALS,
                            INSTANCE_CONFIG, EXPORT_METRICS_SOURCE=source, PGUSER=postgres.user)
    server.bucket, server.database = bucket, database
    server.start()
    yield server
    server.stop()


def _run(service, export_id: str) -> dg.DagsterRun | None:
    with dg.DagsterInstance.from_config(service.env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={EXPORT_TAG: export_id}))
        return runs[0] if runs else None


def _messages(service, run_id: str) -> list[str]:
    with dg.DagsterInstance.from_config(service.env["DAGSTER_HOME"]) as instance:
        return [entry.message for entry in instance.all_logs(run_id)]


def _ancestors(pid: int) -> list[int]:
    found = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rpartition(")")[2].split()[1])
        found.append(pid)
    return found


def test_a_launched_export_runs_in_a_process_forked_by_the_launcher_and_is_right(service):
    with service.client("acme") as client:
        created = client.post("/v1/exports", json=SEED_BODY)
        assert created.status_code == 202, created.text
        done = wait_for_status(client, created.json()["id"], {"complete", "failed"})
    assert done["status"] == "complete", done
    data = download(done["url"])
    assert len(parse_csv(data)) - 1 == 30
    # the same as the CLI's export of the request from the Parquet files the table was loaded from
    env = {k: v for k, v in service.env.items() if k not in ("EXPORT_METRICS_SOURCE", "DAGSTER_HOME")}
    cli = subprocess.run([sys.executable, "-m", "export_pipeline", "run", "-"], input=json.dumps(SEED_BODY),
                         env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert download(json.loads(cli.stdout.strip().splitlines()[-1])["signedUrl"]) == data
    run = _run(service, done["id"])
    host, pid, _ = run.tags[WORKER_TAG].rsplit(":", 2)
    messages = _messages(service, run.run_id)
    assert f"Started process for run (pid: {pid})." in messages
    assert f"Process for run exited (pid: {pid})." in messages
    assert run.status is dg.DagsterRunStatus.SUCCESS


def _held_run(service, client, deadline: float) -> tuple[str, dg.DagsterRun, int]:
    """POST the seed export and wait until its run has started, held at its store read: the
    export's id, the run and the pid of its process, forked by the service's fork server."""
    export_id = client.post("/v1/exports", json=SEED_BODY).json()["id"]
    while (run := _run(service, export_id)) is None or run.status is not dg.DagsterRunStatus.STARTED \
            or WORKER_TAG not in run.tags:
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    pid = live_worker(run.tags[WORKER_TAG])
    assert pid is not None
    assert service.process.pid in _ancestors(pid)
    return export_id, run, pid


def _finished(service, export_id: str, deadline: float) -> dg.DagsterRun:
    while not (run := _run(service, export_id)).is_finished:
        assert time.monotonic() < deadline, run.status
        time.sleep(0.2)
    return run


def test_a_delete_terminates_the_running_process_and_leaves_no_file(service, postgres, s3):
    deadline = time.monotonic() + 120
    with postgres.connect(service.database) as lock, service.client("acme") as client:
        with lock.transaction():
            lock.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")  # the store read waits
            export_id, run, _ = _held_run(service, client, deadline)
            assert client.delete(f"/v1/exports/{export_id}").status_code == 204
            run = _finished(service, export_id, deadline)
        assert run.status is dg.DagsterRunStatus.CANCELED
        assert postgres.wait_until(lambda: live_worker(run.tags[WORKER_TAG]) is None)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=service.bucket).get("Contents", [])]
    assert not any(export_id in key for key in keys), keys


def test_a_run_outlives_the_process_that_launched_it(service, postgres, s3):
    """The service killed while its run is held: the fork server goes with it, the run goes on
    and writes its file, as a run the code server spawned does."""
    deadline = time.monotonic() + 120
    with postgres.connect(service.database) as lock, service.client("acme") as client:
        with lock.transaction():
            lock.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")
            export_id, run, pid = _held_run(service, client, deadline)
            service.process.kill()
            service.process.wait()
            service.process = None
        run = _finished(service, export_id, deadline)
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert postgres.wait_until(lambda: live_worker(run.tags[WORKER_TAG]) is None)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=service.bucket).get("Contents", [])]
    assert [key for key in keys if export_id in key] == [f"exports/tenants/acme/{export_id}.csv"], keys


def _fork_server_of(pid: int) -> int | None:
    """The fork server the process ``pid`` started, once it has imported what runs need."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = _ancestors(int(entry))[0]
            maps = Path(f"/proc/{entry}/maps").read_text()
        except (OSError, IndexError):
            continue
        if parent == pid and b"from multiprocessing.forkserver import main" in _cmdline(entry) \
                and "polars" in maps:
            return int(entry)
    return None


def test_the_service_starts_its_fork_server_before_its_first_export(service, postgres):
    """Started with the service, not at its first export, whose run would otherwise wait for
    the server's imports."""
    deadline = time.monotonic() + 120
    while (server := _fork_server_of(service.process.pid)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with postgres.connect(service.database) as lock, service.client("acme") as client:
        with lock.transaction():
            lock.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")
            export_id, run, pid = _held_run(service, client, deadline)
            assert _ancestors(pid)[0] == server
        assert _finished(service, export_id, deadline).status is dg.DagsterRunStatus.SUCCESS


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _another_python(tmp_path: Path) -> Path:
    """A workspace whose code location runs on this environment's Python under another path:
    the same packages, but for the launcher another environment, whose runs it leaves to the
    code server (Dagster's own launch), as it would a code location on another machine."""
    env = tmp_path / "another-env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    if (Path(sys.prefix) / "pyvenv.cfg").exists():  # a venv: its packages come with its prefix
        shutil.copy(Path(sys.prefix) / "pyvenv.cfg", env / "pyvenv.cfg")
        (env / "lib").symlink_to(Path(sys.prefix) / "lib")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": LOCATION, "working_directory": str(REPO),
        "executable_path": str(env / "bin" / "python"),
    }}]}))
    return workspace


@pytest.mark.parametrize("dagster_dev", [_another_python], indirect=True)
def test_a_run_of_code_in_another_python_is_launched_by_its_code_server(dagster_dev, monkeypatch):
    port, home = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("export_job", run_config=SEED_BODY)
    assert wait_for_run(client, run_id) == dg.DagsterRunStatus.SUCCESS
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        messages = [entry.message for entry in instance.all_logs(run_id)]
        event = instance.get_latest_materialization_event(request_asset_key(run_id))
    assert run.job_code_origin.repository_origin.executable_path == str(
        Path(home).parent / "another-env" / "bin" / "python")
    assert WORKER_TAG not in run.tags  # not forked here
    assert any(m.startswith("Started process for run (pid: ") for m in messages)
    assert len(parse_csv(download(event.asset_materialization.metadata["signed_url"].value))) - 1 == 30
