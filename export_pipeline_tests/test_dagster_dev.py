"""The UI path: ``dagster dev`` (webserver and daemon) on loopback, the export job launched
through Dagster's GraphQL API, the way the Launchpad does, with the seed 000 body as config."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from export_pipeline.orchestration.ops import EXPORT_ASSET_KEY
from export_pipeline_tests.test_export_job import SEED_BODY

REPO = Path(__file__).parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dagster_dev(tmp_path, demo_store_path, bucket):
    home = tmp_path / "dagster_home"
    home.mkdir()
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "EXPORT_METRICS_PATH": str(demo_store_path)}
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen(
        ["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError((tmp_path / "dagster_dev.log").read_text())
            time.sleep(0.5)
    try:
        yield port, home
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


def test_launchpad_launch_through_graphql(dagster_dev, monkeypatch):
    port, home = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("export_job", run_config=SEED_BODY)
    deadline = time.monotonic() + 180
    status = client.get_run_status(run_id)
    while status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status == dg.DagsterRunStatus.SUCCESS

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(EXPORT_ASSET_KEY)
    metadata = event.asset_materialization.metadata
    assert event.run_id == run_id
    with urllib.request.urlopen(metadata["signed_url"].value, timeout=30) as response:
        body = response.read()
    assert body.startswith(b"Date,Entries\r\n2024-04-01,")
    assert len(body) == metadata["bytes"].value
