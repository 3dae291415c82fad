"""The deployment files (Compose, Helm values, workspace, Dockerfile) against the product:
each command is a console script the image installs, each EXPORT_* variable a real setting,
the numbers those of the settings' defaults, and the code location named alike everywhere."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata

import yaml

from export_pipeline.deployment import render_instance_config
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
    # the chart's own blocks are off: the sections go into dagster.yaml whole, as the
    # template renders them with the settings' defaults
    assert daemon["runMonitoring"] == {"enabled": False} and daemon["runRetries"] == {"enabled": False}
    rendered = yaml.safe_load(render_instance_config((DEPLOY / "dagster.yaml").read_text(), DeploymentSettings()))
    extra = values["additionalInstanceConfig"]
    assert set(extra) == {"run_monitoring", "run_retries"}
    for section in extra:
        assert extra[section] == rendered[section], section
    assert values["postgresql"]["postgresqlScheme"] == rendered["storage"]["postgres"]["postgres_db"]["scheme"]


def test_the_code_location_has_one_name_where_the_api_the_code_server_and_the_workspace_meet():
    (entry,) = _load("workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    command = OURS["code-server"]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == DEFINITIONS_MODULE
    assert command[command.index("--location-name") + 1] == server["location_name"] == DEFINITIONS_MODULE
    assert (server["host"], server["port"]) == ("code-server", int(command[command.index("-p") + 1]))


# The keys of Dagster's Helm chart (its values schema: helm/dagster/schema in the dagster
# repository, the pydantic models the chart's values.schema.json is generated from) at each
# place this deployment's values set keys. Most of these models forbid other keys, and where
# one does not, the chart's templates read only these: a misspelt key would be dropped.
CHART_KEYS = {
    "": {"dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
         "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
         "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox",
         "migrate", "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "dagster-user-deployments.deployments[]": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "port",
        "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
        "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName"},
    "dagster-user-deployments.deployments[].image": {"repository", "tag", "pullPolicy"},
    "dagster-user-deployments.deployments[].includeConfigInLaunchedRuns": {"enabled"},
    "dagster-user-deployments.deployments[].env[]": {"name", "value", "valueFrom"},
    "dagster-user-deployments.deployments[].envSecrets[]": {"name", "optional"},
    "runLauncher": {"type", "config"},
    "runLauncher.config": {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig"},
    "runLauncher.config.k8sRunLauncher.envSecrets[]": {"name", "optional"},
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"},
    "postgresql": {"image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
    "postgresql.service": {"port"},
    "dagsterDaemon": {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
        "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
        "securityContext", "resources", "checkDbReadyInitContainer", "livenessProbe", "readinessProbe",
        "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules", "backfills",
        "schedulerName", "logFormat", "volumeMounts", "volumes", "initContainerResources",
        "extraContainers", "extraPrependedInitContainers"},
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config": {"queuedRunCoordinator", "customRunCoordinator"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
        "dequeueUseThreads", "blockOpConcurrencyLimitedRuns"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[]": {"key", "value", "limit"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[].value": {
        "applyLimitPerUniqueValue"},
    "dagsterDaemon.runMonitoring": {"enabled", "startTimeoutSeconds", "cancelTimeoutSeconds",
                                    "maxResumeRunAttempts", "pollIntervalSeconds",
                                    "freeSlotsAfterRunEndSeconds"},
    "dagsterDaemon.runRetries": {"enabled", "maxRetries", "retryOnAssetOrOpFailure"},
    "telemetry": {"enabled"},
}
# what the chart's schema requires of an entry of a list, which replaces the chart's default list
CHART_REQUIRED = {
    "dagster-user-deployments.deployments[]": {"name", "image", "port"},
    "dagster-user-deployments.deployments[].image": {"repository", "tag", "pullPolicy"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[]": {"key", "limit"},
}


def _mappings(value, path: str = ""):
    """Every mapping in ``value`` with its path (``a.b[].c``), additionalInstanceConfig aside
    (it is Dagster's own instance config, checked against Dagster's schema)."""
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            if path == "" and key == "additionalInstanceConfig":
                continue
            yield from _mappings(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for child in value:
            yield from _mappings(child, f"{path}[]")


def test_the_helm_values_use_only_keys_of_dagsters_chart_and_give_each_list_entry_what_it_requires():
    values = _load("helm/values.yaml")
    checked = set()
    for path, mapping in _mappings(values):
        if path in CHART_KEYS:
            assert set(mapping) <= CHART_KEYS[path], (path, set(mapping) - CHART_KEYS[path])
            checked.add(path)
        if path in CHART_REQUIRED:
            assert CHART_REQUIRED[path] <= set(mapping), (path, CHART_REQUIRED[path] - set(mapping))
        # below these the chart passes Kubernetes objects or Dagster config on unread
        assert path in CHART_KEYS or path.split(".")[-1] in {"resources", "requests", "limits", "containerConfig"}, path
    assert checked == {p for p, _ in _mappings(values)} & set(CHART_KEYS)
    args = values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"]
    assert all(isinstance(a, str) for a in args)


def test_the_helm_instance_sections_are_ones_dagster_accepts(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    extra = _load("helm/values.yaml")["additionalInstanceConfig"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(extra))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert config["run_monitoring"]["max_runtime_seconds"] == DEFAULTS["EXPORT_RUN_MAX_RUNTIME"]


# The service keys of the Compose specification that these files use.
COMPOSE_SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "volumes", "ports",
                        "depends_on", "restart", "healthcheck", "container_name", "group_add"}
LAUNCHER_OVERRIDE = _load("docker-compose.docker-launcher.yaml")
LAUNCHER = _load("run-launcher-docker.yaml")["run_launcher"]


def test_the_compose_files_use_only_compose_service_keys():
    for services in (COMPOSE["services"], LAUNCHER_OVERRIDE["services"]):
        for name, service in services.items():
            assert set(service) <= COMPOSE_SERVICE_KEYS, (name, set(service) - COMPOSE_SERVICE_KEYS)


def test_the_docker_launcher_override_gives_the_runs_a_container_with_the_code_servers_image_mounts_and_settings():
    override = LAUNCHER_OVERRIDE["services"]
    assert set(override) <= set(COMPOSE["services"])
    assert override["instance-config"]["command"] == [
        "export-pipeline", "instance-config", "deploy/dagster.yaml", "deploy/run-launcher-docker.yaml"]
    assert (LAUNCHER["module"], LAUNCHER["class"]) == ("dagster_docker", "DockerRunLauncher")
    config = LAUNCHER["config"]
    # each run starts from the image the code server runs, on the Compose network, with its mounts
    assert config["image"] == OURS["code-server"]["image"] == override["code-server"]["environment"][
        "DAGSTER_CURRENT_IMAGE"]
    assert config["network"] == LAUNCHER_OVERRIDE["networks"]["default"]["name"]
    assert config["container_kwargs"]["volumes_from"] == [override["code-server"]["container_name"]]
    # the processes that start (daemon) and stop (webserver, API) runs reach Docker
    for name in ("daemon", "webserver", "api"):
        assert override[name]["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock"], name
        assert override[name]["group_add"], name
    assert "docker.sock" not in str(override.get("code-server"))
    # a run sees every variable the code server has, but the queue's and monitor's numbers
    environment = OURS["code-server"]["environment"]
    assert set(config["env_vars"]) == set(environment) - set(DEFAULTS)


def test_the_api_keeps_its_state_in_the_instances_postgresql_with_the_password_from_the_environment():
    from export_pipeline.service.state import state_target

    compose = OURS["api"]["environment"]
    assert {k: v for k, v in compose.items() if k not in ("EXPORT_SERVICE_STATE", "PGPASSWORD")} == (
        OURS["code-server"]["environment"])
    target = state_target(compose["EXPORT_SERVICE_STATE"])
    assert (target.host, target.database, target.user) == (
        "postgres", COMPOSE["services"]["postgres"]["environment"]["POSTGRES_DB"],
        COMPOSE["services"]["postgres"]["environment"]["POSTGRES_USER"])
    assert compose["PGPASSWORD"] == COMPOSE["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert all("PGPASSWORD" not in service.get("environment", {})
               for name, service in OURS.items() if name != "api")  # the API's alone

    values = _load("helm/values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    helm = {v["name"]: v["value"] for v in deployment["env"]}
    target = state_target(helm["EXPORT_SERVICE_STATE"])
    database = values["postgresql"]
    assert (target.host, target.database, target.user) == (
        database["postgresqlHost"], database["postgresqlDatabase"], database["postgresqlUsername"])
    # the image's deploy extra brings the state's driver, with a libpq of its own
    assert any(d.startswith("psycopg[binary]") for d in PYPROJECT["project"]["optional-dependencies"]["deploy"])


# The export API as several replicas: in Compose behind nginx, on Kubernetes as a Deployment
# of its own (deploy/kubernetes/export-api.yaml) beside the chart.
PROXY = COMPOSE["services"]["proxy"]
NGINX = (DEPLOY / "nginx-api.conf").read_text()
MANIFEST = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "export-api.yaml").read_text()))
# secret settings: SecretStr fields of the settings, and the passwords and keys of the libraries
SECRET_SETTINGS = {env_name(section, field) for section in SECTIONS.values()
                   for field, info in section.model_fields.items() if "SecretStr" in str(info.annotation)}
SECRETS = SECRET_SETTINGS | {"PGPASSWORD", "DAGSTER_PG_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# what the API's environment may set beyond the settings: Dagster's home and what the chart's
# dagster.yaml reads ({env: ...}), libpq's password, boto3's credentials and region
OUTSIDE = {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD", "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
           "DAGSTER_K8S_PG_PASSWORD_SECRET", "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP", "PGPASSWORD",
           "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}


def _served(path: str) -> bool:
    """Whether the service has a GET route at ``path`` (that a probe needs no key there is
    checked on the real server, ``integration/service/test_exports_api.py``)."""
    from export_pipeline.service.app import create_app

    return any(getattr(route, "path", None) == path and "GET" in getattr(route, "methods", ())
               for route in create_app(object(), 1024).routes)


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_compose_api_publishes_no_host_port_and_the_proxy_forwards_to_every_replica():
    api = OURS["api"]
    # a fixed host port or name would let only one replica start
    assert "ports" not in api and "container_name" not in api
    assert _option(api["command"], "--host") == "0.0.0.0"
    assert PROXY["image"].startswith("nginx:") and "build" not in PROXY
    assert PROXY["ports"] == ["127.0.0.1:8000:8000"]
    assert PROXY["volumes"] == ["./nginx-api.conf:/etc/nginx/conf.d/default.conf:ro"]
    assert PROXY["depends_on"] == {"api": {"condition": "service_started"}}
    assert re.search(r"^\s*listen 8000;$", NGINX, re.M)
    # the service's name through Docker's DNS, looked up again while it runs: every replica,
    # the ones added later too
    assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s", NGINX, re.M)
    (target,) = re.findall(r"set \$api (\S+);", NGINX)
    assert target == f"http://api:{_option(api['command'], '--port')}"
    assert re.search(r"proxy_pass \$api;", NGINX)
    # the service answers an oversized body itself
    assert "client_max_body_size 0;" in NGINX and "proxy_request_buffering off;" in NGINX
    (probe,) = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w*)", " ".join(api["healthcheck"]["test"]))
    assert probe[0] == _option(api["command"], "--port") and _served(probe[1])


def _deployment():
    kinds = {document["kind"]: document for document in MANIFEST}
    assert set(kinds) == {"Deployment", "Service"} and len(MANIFEST) == 2
    return kinds["Deployment"], kinds["Service"]


def test_the_kubernetes_api_runs_the_charts_image_as_replicas_behind_a_service():
    deployment, service = _deployment()
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]
    assert spec["selector"]["matchLabels"] == pod["metadata"]["labels"] == service["spec"]["selector"]
    (container,) = pod["spec"]["containers"]
    image = _load("helm/values.yaml")["dagster-user-deployments"]["deployments"][0]["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    command = container["command"]
    assert command[:2] == ["export-pipeline", "serve"] and command[0] in _console_scripts()
    assert _option(command, "--host") == "0.0.0.0"
    (port,) = container["ports"]
    assert port["containerPort"] == int(_option(command, "--port"))
    (exposed,) = service["spec"]["ports"]
    assert exposed["targetPort"] == port["name"]
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container[kind]["httpGet"]
        assert probe["port"] == port["name"] and _served(probe["path"]), kind
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    # the chart's service account: its Role lets a cancel delete a run's Job
    assert pod["spec"]["serviceAccountName"] == "dagster"


def test_the_kubernetes_api_environment_is_settings_the_code_reads_with_every_secret_from_a_secret():
    deployment, _ = _deployment()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "envFrom" not in container
    env = {variable["name"]: variable for variable in container["env"]}
    assert len(env) == len(container["env"])
    unknown = {n for n in env if n.startswith("EXPORT_")} - SETTINGS
    assert not unknown, unknown
    assert set(env) - SETTINGS <= OUTSIDE, set(env) - SETTINGS - OUTSIDE
    for name, variable in env.items():
        if name in SECRETS:
            assert set(variable) == {"name", "valueFrom"}, name
            assert set(variable["valueFrom"]) == {"secretKeyRef"}, name
        else:
            assert set(variable) == {"name", "value"} and isinstance(variable["value"], str), name
    assert {"PGPASSWORD", "DAGSTER_PG_PASSWORD", "EXPORT_SEALING_KEY"} <= set(env)
    # the instance's password, from the Secret the chart's pods read it from
    database = {"name": "dagster-postgresql-secret", "key": "postgresql-password"}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == database
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == database
    # every replica seals with the deployment's key: without it each would make its own
    assert env["EXPORT_SEALING_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "export-pipeline-env", "key": "EXPORT_SEALING_KEY"}
    # the same settings as the chart's user deployment, whose runs the API launches
    values = _load("helm/values.yaml")
    (chart,) = values["dagster-user-deployments"]["deployments"]
    for variable in chart["env"]:
        assert env[variable["name"]] == variable, variable["name"]
    assert {s["name"] for s in chart["envSecrets"]} == {
        v["valueFrom"]["secretKeyRef"]["name"] for n, v in env.items()
        if "valueFrom" in v and n not in ("PGPASSWORD", "DAGSTER_PG_PASSWORD")}
    from export_pipeline.service.state import state_target

    target = state_target(env["EXPORT_SERVICE_STATE"]["value"])
    assert (target.host, target.database, target.user) == (
        values["postgresql"]["postgresqlHost"], values["postgresql"]["postgresqlDatabase"],
        values["postgresql"]["postgresqlUsername"])
    assert "deploy/kubernetes/export-api.yaml" in (DEPLOY / "helm" / "values.yaml").read_text()


def test_the_kubernetes_api_runs_unprivileged_on_a_read_only_root_writing_only_to_an_empty_dir():
    deployment, _ = _deployment()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    uid = re.search(r"useradd .*--uid (\d+)", (DEPLOY / "Dockerfile").read_text())[1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    # the code server the service starts listens on a socket in the temporary directory
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    # the chart's instance file in DAGSTER_HOME, the tenants file in a mounted folder
    instance = mounts[f"{env['DAGSTER_HOME']}/dagster.yaml"]
    assert instance["subPath"] == "dagster.yaml"
    assert volumes[instance["name"]]["configMap"] == {"name": "dagster-instance"}
    tenants = env["EXPORT_TENANTS_FILE"]
    assert any(tenants.startswith(path + "/") and "configMap" in volumes[m["name"]]
               for path, m in mounts.items())
