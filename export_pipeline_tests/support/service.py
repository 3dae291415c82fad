"""The export service as the tests run it: ``export-pipeline serve`` in its own process on a
free loopback port, with a Dagster home whose run launcher really executes runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from export_pipeline.service.tenants import key_hash, new_key
from export_pipeline_tests.support.helpers import free_port, wait_for_http
from export_pipeline_tests.support.requests import REPO

# The default (synchronous) run coordinator: submit_run launches at once, no daemon needed.
DAGSTER_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
telemetry:
  enabled: false
"""
# The queue most deployments use: submit_run queues, the daemon launches.
QUEUED_DAGSTER_YAML = DAGSTER_YAML.replace("DefaultRunCoordinator", "QueuedRunCoordinator")


@dataclass
class ServiceProcess:
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    url: str = ""

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(Path(self.env["DAGSTER_HOME"]) / f"service-{port}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "export_pipeline", "serve", "--port", str(port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
        )
        wait_for_http(f"{self.url}/openapi.json", self.process, 120, "export service")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def client(self, tenant: str | None = None, key: str | None = None) -> httpx.Client:
        headers = {}
        if key or tenant:
            headers["Authorization"] = f"Bearer {key or self.keys[tenant]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def tenants_yaml(tenants: dict[str, dict], keys: dict[str, str]) -> str:
    """A tenants file for ``tenants`` (name -> extra fields), one new key each into ``keys``."""
    import json

    entries = []
    for name, extra in tenants.items():
        keys[name] = new_key()
        entries.append({"name": name, **extra, "keys": [{"name": f"{name}-ci", "sha256": key_hash(keys[name])}]})
    return json.dumps({"tenants": entries}, indent=2)


def tenant_service(folder: Path, tenants: dict[str, dict], bucket: str, store: Path, s3_endpoint: str,
                   credentials: dict[str, str], dagster_yaml: str = DAGSTER_YAML,
                   **env: str) -> ServiceProcess:
    """The service (not started) for ``tenants``, its tenants file and Dagster home in
    ``folder``, the inbox sensor stopped; ``env`` adds or replaces variables."""
    keys: dict[str, str] = {}
    (folder / "tenants.yaml").write_text(tenants_yaml(tenants, keys))
    environment = service_environment(folder / "dagster_home", folder / "tenants.yaml", bucket, store,
                                      s3_endpoint, credentials, dagster_yaml)
    environment.update(EXPORT_INBOX_SENSOR="stopped", **env)
    return ServiceProcess(env=environment, keys=keys)


def unlimited_tenant(folder: Path, name: str) -> tuple[Path, str]:
    """A tenants file in ``folder`` with one tenant whose quota and rate limit no benchmark
    reaches: the file and the tenant's key."""
    keys: dict[str, str] = {}
    path = folder / "tenants.yaml"
    path.write_text(tenants_yaml({name: {
        "monthly_quota": 100_000, "rate_limit": {"requests": 1_000_000, "per_seconds": 1}}}, keys))
    return path, keys[name]


def service_environment(home: Path, tenants_file: Path, bucket: str, store: Path,
                        s3_endpoint: str, credentials: dict[str, str],
                        dagster_yaml: str = DAGSTER_YAML) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORT_", "AWS_", "DAGSTER_"))}
    env.update(credentials)
    env.update(
        PYTHONPATH=str(REPO),
        DAGSTER_HOME=str(home),
        EXPORT_TENANTS_FILE=str(tenants_file),
        EXPORT_SERVICE_STATE=str(home / "service-state" / "exports.sqlite"),
        EXPORT_BUCKET=bucket,
        EXPORT_METRICS_PATH=str(store),
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def wait_for_status(client: httpx.Client, export_id: str, statuses: set[str], timeout: float = 300) -> dict:
    """Poll the export until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/exports/{export_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"export {export_id} still {body['status']}"
        time.sleep(0.5)


@contextlib.contextmanager
def dagster_daemon(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """The Dagster daemon on the code location, in ``env`` (a service's), for the block: what
    launches queued runs."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-m", "export_pipeline.orchestration.definitions"],
        env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield daemon
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
