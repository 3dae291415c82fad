"""A real ``dg dev`` (webserver and daemon) on loopback with the demo store, a saved export
and a webhook server for its notifications: the UI path the integration tests drive."""

from __future__ import annotations

import copy
import os
import signal
import subprocess

import pytest
import yaml

from export_pipeline.cli import INSTANCE_CONFIG
from export_pipeline_tests.support.helpers import free_port, wait_for_http
from export_pipeline_tests.support.notification_servers import WebhookServer
from export_pipeline_tests.support.requests import REPO, SEED_BODY


SAVED_NAME = "daily-entries"
SAVED_JOB = "saved_export_daily_entries"
LOCATION = "export_pipeline.orchestration.definitions"


def saved_definition() -> dict:
    body = copy.deepcopy(SEED_BODY)
    for metric_request in body["metricRequests"]:
        del metric_request["start"], metric_request["end"]
    return {
        "name": SAVED_NAME, "cadence": "daily", "start": "2024-04-01", "timezone": "Europe/Berlin",
        "enabled": False, "request": body,
        "notification": {"messages": [{
            "policy": "onSuccess", "medium": "slack", "title": "{{name}} {{partition}}",
            "text": "{{rows}} rows: {{signedUrl}}",
        }]},
    }


@pytest.fixture
def webhooks():
    with WebhookServer() as server:
        yield server


@pytest.fixture
def dagster_dev(request, tmp_path, demo_store_path, bucket, webhooks):
    """``dg dev`` on the repository's ``workspace.yaml``, or on the workspace file that
    ``request.param(tmp_path)`` writes when a test parametrizes this fixture indirectly."""
    workspace = request.param(tmp_path) if hasattr(request, "param") else "workspace.yaml"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_CONFIG)  # as the CLI's first run leaves it
    port = free_port()
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "daily.yaml").write_text(yaml.safe_dump(saved_definition()))
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "EXPORT_METRICS_PATH": str(demo_store_path),
        "EXPORT_DEFINITIONS_PATH": str(definitions), "EXPORT_SENSOR_INTERVAL_SECONDS": "1",
        "EXPORT_SLACK_WEBHOOK_URL": webhooks.url("/slack/hook"),
    }
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen(
        ["dg", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", process, 120, "dg dev")
    except RuntimeError:
        os.killpg(process.pid, signal.SIGKILL)
        raise RuntimeError((tmp_path / "dagster_dev.log").read_text()) from None
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
