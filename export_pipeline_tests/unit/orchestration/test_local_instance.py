"""The local dagster.yaml (``export-pipeline instance-config`` without a template, and what the
CLI writes into a fresh ``DAGSTER_HOME``), as Dagster itself reads it."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.runs import SqliteRunStorage

from export_pipeline.cli import INSTANCE_CONFIG, main
from export_pipeline.orchestration.run_coordinator import PromptRunCoordinator
from export_pipeline.orchestration.run_launcher import WarmRunLauncher


def test_instance_config_without_a_template_writes_the_local_defaults(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["instance-config"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {home / 'dagster.yaml'}"
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, PromptRunCoordinator)
        assert isinstance(coordinator, QueuedRunCoordinator)  # so the daemon runs the queue
        assert coordinator.get_run_queue_config().max_concurrent_runs == 4
        assert coordinator.dequeue_interval_seconds == 1  # Dagster's default: 5
        assert coordinator.dequeue_use_threads
        # every launched run still in a process of its own, its records in this home; runs of
        # code elsewhere through their code server
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        assert isinstance(instance.run_launcher, DefaultRunLauncher)
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert instance.root_directory == str(home)
        assert instance.telemetry_enabled is False


def test_opening_the_local_instance_starts_no_fork_server(tmp_path):
    """Every run's process opens the instance and loads its run coordinator (for its
    concurrency settings) and may load its launcher: a fork server started there would cost
    each run a Python's imports. Only a process that launches starts one."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_CONFIG)
    probe = (
        "import multiprocessing.forkserver as f, dagster as dg\n"
        f"with dg.DagsterInstance.from_config({str(home)!r}) as instance:\n"
        "    instance.run_coordinator, instance.run_launcher, instance.get_concurrency_config()\n"
        "print(f._forkserver._forkserver_pid)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
