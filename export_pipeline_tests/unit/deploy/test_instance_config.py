"""deploy/dagster.yaml, rendered with the deployment settings, is an instance configuration
Dagster's own schema accepts, with the numbers the settings give."""

from __future__ import annotations

import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from export_pipeline.cli import main
from export_pipeline.deployment import render_instance_config
from export_pipeline.settings import DeploymentSettings
from export_pipeline_tests.unit.test_settings import REPO

TEMPLATE = REPO / "deploy" / "dagster.yaml"


@pytest.fixture(autouse=True)
def no_export_settings(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("EXPORT_"):
            monkeypatch.delenv(name)


def _checked(text: str, tmp_path) -> dict:
    (tmp_path / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(tmp_path))
    return config


def test_defaults_render_to_a_config_dagster_accepts(tmp_path):
    config = _checked(render_instance_config(TEMPLATE.read_text(), DeploymentSettings()), tmp_path)
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    queue = config["run_coordinator"]["config"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert queue["max_concurrent_runs"] == 10
    assert queue["tag_concurrency_limits"] == [
        {"key": "export_pipeline/tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 2},
        {"key": "export_pipeline/destination_host", "value": {"applyLimitPerUniqueValue": True}, "limit": 2},
    ]
    assert config["run_monitoring"] == {
        "enabled": True, "start_timeout_seconds": 180, "max_runtime_seconds": 7200,
        "poll_interval_seconds": 120, "max_resume_run_attempts": 0,
    }
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


def test_every_number_comes_from_its_setting(tmp_path, monkeypatch):
    for name, value in {
        "EXPORT_MAX_CONCURRENT_RUNS": "40", "EXPORT_TENANT_CONCURRENT_RUNS": "3",
        "EXPORT_DESTINATION_HOST_CONCURRENT_RUNS": "1", "EXPORT_RUN_START_TIMEOUT": "90",
        "EXPORT_RUN_MAX_RUNTIME": "0", "EXPORT_RUN_MONITOR_INTERVAL": "15",
        "EXPORT_RUN_MAX_RESUME_ATTEMPTS": "4", "EXPORT_RUN_RETRIES": "5",
    }.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "home" / "dagster.yaml"
    assert main(["instance-config", str(TEMPLATE), "--output", str(output)]) == 0
    config = yaml.safe_load(output.read_text())
    queue = config["run_coordinator"]["config"]
    assert queue["max_concurrent_runs"] == 40
    assert [limit["limit"] for limit in queue["tag_concurrency_limits"]] == [3, 1]
    assert config["run_monitoring"]["start_timeout_seconds"] == 90
    assert config["run_monitoring"]["max_runtime_seconds"] == 0
    assert config["run_monitoring"]["poll_interval_seconds"] == 15
    assert config["run_monitoring"]["max_resume_run_attempts"] == 4
    assert config["run_retries"]["max_retries"] == 5


def test_a_bad_value_or_an_unknown_placeholder_writes_nothing(tmp_path, monkeypatch, capsys):
    output = tmp_path / "dagster.yaml"
    monkeypatch.setenv("EXPORT_TENANT_CONCURRENT_RUNS", "0")
    assert main(["instance-config", str(TEMPLATE), "--output", str(output)]) == 1
    assert "EXPORT_TENANT_CONCURRENT_RUNS" in capsys.readouterr().err and not output.exists()
    monkeypatch.delenv("EXPORT_TENANT_CONCURRENT_RUNS")
    with pytest.raises(ValueError, match="EXPORT_RUN_RETRYS"):
        render_instance_config("run_retries: {max_retries: ${EXPORT_RUN_RETRYS}}", DeploymentSettings())


def test_dagster_itself_refuses_a_template_left_unrendered(tmp_path):
    """Why the numbers are filled in first: Dagster does not read these fields from the
    environment, so the placeholder reaches its schema as a string."""
    with pytest.raises(DagsterInvalidConfigError):
        _checked(TEMPLATE.read_text(), tmp_path)


LAUNCHER = REPO / "deploy" / "run-launcher-docker.yaml"


def test_the_docker_launcher_template_adds_a_launcher_dagster_docker_itself_accepts(tmp_path, monkeypatch):
    from dagster._serdes.config_class import ConfigurableClassData
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_docker import DockerRunLauncher

    output = tmp_path / "dagster.yaml"
    assert main(["instance-config", str(TEMPLATE), str(LAUNCHER), "--output", str(output)]) == 0
    config = _checked(output.read_text(), tmp_path)
    (tmp_path / "base").mkdir()
    base = _checked(render_instance_config(TEMPLATE.read_text(), DeploymentSettings()), tmp_path / "base")
    assert {k: v for k, v in config.items() if k not in ("run_launcher", "compute_logs")} == base
    section = config["run_launcher"]
    # dagster-docker's own schema and checks, as the daemon runs them when it loads the instance
    launcher = ConfigurableClassData(section["module"], section["class"],
                                     yaml.safe_dump(section["config"])).rehydrate(DockerRunLauncher)
    assert isinstance(launcher, DockerRunLauncher)
    assert launcher.networks == ["export-pipeline"] and launcher.image == "export-pipeline:0.1.0"
    assert "DAGSTER_PG_PASSWORD" in launcher.env_vars
    assert launcher.container_kwargs == {"volumes_from": ["export-pipeline-code-server"]}
    # a run's stdout/stderr outlive its container: dagster-aws keeps them in the export bucket
    monkeypatch.setenv("EXPORT_BUCKET", "exports")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    logs = config["compute_logs"]
    manager = ConfigurableClassData(logs["module"], logs["class"],
                                    yaml.safe_dump(logs["config"])).rehydrate(S3ComputeLogManager)
    assert isinstance(manager, S3ComputeLogManager)
    assert manager._s3_bucket == "exports" and manager._s3_prefix == "dagster-compute-logs"


def test_a_section_two_templates_set_stops_instance_config_and_writes_nothing(tmp_path, capsys):
    output = tmp_path / "dagster.yaml"
    assert main(["instance-config", str(TEMPLATE), str(TEMPLATE), "--output", str(output)]) == 1
    assert "section 'storage' is in template 1 and template 2" in capsys.readouterr().err
    assert not output.exists()
