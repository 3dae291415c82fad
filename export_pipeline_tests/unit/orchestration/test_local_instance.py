"""The local dagster.yaml (``export-pipeline instance-config`` without a template, and what the
CLI writes into a fresh ``DAGSTER_HOME``), as Dagster itself reads it."""

from __future__ import annotations

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.runs import SqliteRunStorage

from export_pipeline.cli import main
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
