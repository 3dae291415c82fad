"""The deployment files (Compose, Helm values, workspace, Dockerfile) against the product:
each command is a console script the image installs, each EXPORT_* variable a real setting,
the numbers those of the settings' defaults, and the code location named alike everywhere."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata

import yaml

from export_pipeline.orchestration.service_runs import DEFINITIONS_MODULE
from export_pipeline.settings import SECTIONS, DeploymentSettings, env_name
from export_pipeline_tests.unit.test_settings import REPO

DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETTINGS = {env_name(section, field) for section in SECTIONS.values() for field in section.model_fields}
DEFAULTS = {env_name(DeploymentSettings, f): info.default
            for f, info in DeploymentSettings.model_fields.items()}


def _load(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


def _console_scripts() -> set[str]:
    """What the image's `pip install .[deploy,sql]` puts on PATH that the services may run:
    our own scripts, and those of Dagster's packages."""
    scripts = set(PYPROJECT["project"]["scripts"])
    for package in ("dagster", "dagster-webserver", "dagster-postgres"):
        scripts |= {e.name for e in metadata.distribution(package).entry_points
                    if e.group == "console_scripts"}
    return scripts


def _named_settings(text: str) -> set[str]:
    return set(re.findall(r"\bEXPORT_[A-Z0-9_]+", text))


COMPOSE = _load("docker-compose.yaml")
OURS = {name: service for name, service in COMPOSE["services"].items()
        if service.get("image", "").startswith("export-pipeline:")}


def test_every_service_of_our_image_runs_a_console_script_the_image_installs():
    assert set(OURS) == {"instance-config", "code-server", "webserver", "daemon", "api"}
    scripts = _console_scripts()
    for name, service in OURS.items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert service["command"][0] in scripts, (name, service["command"])
    assert OURS["webserver"]["command"][:1] + OURS["webserver"]["command"][-2:] == [
        "dagster-webserver", "-w", "deploy/workspace.yaml"]
    assert OURS["daemon"]["command"] == ["dagster-daemon", "run", "-w", "deploy/workspace.yaml"]
    assert OURS["api"]["command"][:2] == ["export-pipeline", "serve"]
    assert OURS["instance-config"]["command"] == ["export-pipeline", "instance-config", "deploy/dagster.yaml"]
    for name in ("code-server", "webserver", "daemon", "api"):
        assert OURS[name]["depends_on"]["instance-config"] == {"condition": "service_completed_successfully"}


def test_the_image_installs_the_extras_the_deployment_needs():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert 'pip install ".[deploy,sql]"' in dockerfile
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(d.startswith("dagster-postgres") for d in extras["deploy"]) and "sql" in extras
    assert "deploy" in extras["dev"][0]  # the tests load the instance with dagster-postgres


def test_every_export_variable_the_files_name_is_a_setting_and_each_default_the_settings():
    compose_text = (DEPLOY / "docker-compose.yaml").read_text()
    helm_text = (DEPLOY / "helm" / "values.yaml").read_text()
    template = (DEPLOY / "dagster.yaml").read_text()
    for text in (compose_text, helm_text, template):
        unknown = _named_settings(text) - SETTINGS
        assert not unknown, unknown
    environment = next(iter(OURS.values()))["environment"]
    assert set(DEFAULTS) <= set(environment)
    for name, default in DEFAULTS.items():
        assert environment[name] == f"${{{name}:-{default}}}", name


def test_the_helm_values_make_the_project_the_user_deployment_with_the_settings_numbers():
    values = _load("helm/values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == DEFINITIONS_MODULE
    assert importlib.util.find_spec(DEFINITIONS_MODULE) is not None
    assert args[args.index("--location-name") + 1] == DEFINITIONS_MODULE
    assert deployment["envSecrets"] == [{"name": "export-pipeline-env"}]
    for variable in deployment["env"]:
        assert variable["name"] in SETTINGS and isinstance(variable["value"], str)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert queue["maxConcurrentRuns"] == DEFAULTS["EXPORT_MAX_CONCURRENT_RUNS"]
    assert queue["tagConcurrencyLimits"] == [
        {"key": "export_pipeline/tenant", "value": {"applyLimitPerUniqueValue": True},
         "limit": DEFAULTS["EXPORT_TENANT_CONCURRENT_RUNS"]},
        {"key": "export_pipeline/destination_host", "value": {"applyLimitPerUniqueValue": True},
         "limit": DEFAULTS["EXPORT_DESTINATION_HOST_CONCURRENT_RUNS"]},
    ]
    assert daemon["runMonitoring"] == {
        "enabled": True, "startTimeoutSeconds": DEFAULTS["EXPORT_RUN_START_TIMEOUT"],
        "maxRuntimeSeconds": DEFAULTS["EXPORT_RUN_MAX_RUNTIME"],
        "pollIntervalSeconds": DEFAULTS["EXPORT_RUN_MONITOR_INTERVAL"],
        "maxResumeRunAttempts": DEFAULTS["EXPORT_RUN_MAX_RESUME_ATTEMPTS"],
    }
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": DEFAULTS["EXPORT_RUN_RETRIES"],
                                    "retryOnAssetOrOpFailure": False}


def test_the_code_location_has_one_name_where_the_api_the_code_server_and_the_workspace_meet():
    (entry,) = _load("workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    command = OURS["code-server"]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == DEFINITIONS_MODULE
    assert command[command.index("--location-name") + 1] == server["location_name"] == DEFINITIONS_MODULE
    assert (server["host"], server["port"]) == ("code-server", int(command[command.index("-p") + 1]))
