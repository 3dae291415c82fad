"""Fixtures every test may use, and the markers: a test under ``unit/`` is marked ``unit`` (no
server, seconds), one under ``integration/`` ``integration`` (real servers on 127.0.0.1).

Select with ``-m unit`` or ``-m integration``; a test outside both folders fails collection."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from export_pipeline.demo.store import build_demo_store

# Real SFTP, FTP(S), GCS and customer-S3 servers for the delivery tests (started on first use).
pytest_plugins = ["export_pipeline_tests.support.destination_servers"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(str(item.fspath)).relative_to(_TESTS).parts[0]
        if layer not in ("unit", "integration"):
            raise pytest.UsageError(f"{item.nodeid}: tests live under unit/ or integration/")
        item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever reaches AWS: fake credentials, no profile or config file. Integration tests
    point boto3 at their local S3 server on top of this."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def demo_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_store(tmp_path_factory.mktemp("demo-store"))


@pytest.fixture
def instance(tmp_path):
    """A real Dagster instance (run and event storage) in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
