"""deploy/dagster.yaml as Dagster opens it: written by ``export-pipeline instance-config``,
loaded by ``DagsterInstance`` against a real PostgreSQL on loopback, with runs stored there
and seen by a second process's instance."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pytest

from export_pipeline_tests.support.requests import REPO
from export_pipeline_tests.support.sql_stores import PostgresServer, postgres_binaries


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    if postgres_binaries() is None:
        pytest.fail("PostgreSQL binaries not found: apt-get install postgresql")
    server = PostgresServer().start()
    with server.connect() as con:
        con.execute("CREATE DATABASE dagster")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path, postgres, monkeypatch):
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USERNAME": postgres.user,
        "DAGSTER_PG_PASSWORD": "trust-auth-ignores-it",
        "EXPORT_TENANT_CONCURRENT_RUNS": "3", "EXPORT_RUN_RETRIES": "1",
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    done = subprocess.run(
        [sys.executable, "-m", "export_pipeline", "instance-config", str(REPO / "deploy" / "dagster.yaml"),
         "--output", str(home / "dagster.yaml")],
        env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return home


@dg.op
def hello() -> int:
    return 1


@dg.job
def tiny_job():
    hello()


def test_the_instance_stores_in_postgresql_with_the_queue_monitoring_and_retries(home):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 10
        assert {(l["key"], l["limit"]) for l in queue.tag_concurrency_limits} == {
            ("export_pipeline/tenant", 3), ("export_pipeline/destination_host", 2)}
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 7200
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        run_id = tiny_job.execute_in_process(instance=instance).run_id

    # another process's instance (the webserver's, the daemon's) sees the run and its events
    seen = subprocess.run(
        [sys.executable, "-c",
         "import sys, dagster as dg\n"
         f"with dg.DagsterInstance.from_config({str(home)!r}) as i:\n"
         f"    r = i.get_run_by_id({run_id!r}); print(r.status.value, len(i.all_logs({run_id!r})) > 0)"],
        env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split() == ["SUCCESS", "True"]
