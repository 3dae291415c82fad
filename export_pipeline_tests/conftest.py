"""Shared fixtures: a real S3-compatible HTTP server (moto in server mode, on loopback), fake
AWS credentials for every test, and small metric stores written as Parquet."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest

from export_pipeline.demo_store import build_demo_store
from export_pipeline_tests.helpers import free_port, wait_for_http

# Real SFTP, FTP(S), GCS and customer-S3 servers for the delivery tests (started on first use).
pytest_plugins = ["export_pipeline_tests.destination_servers"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in its own process, so it never competes with a test for the GIL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/moto-api/", process, 30, "moto server")
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> None:
    """Every test talks to the local server with fake credentials, never to AWS."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def s3_client(aws_environment):
    return boto3.client("s3")


@pytest.fixture
def bucket(s3_client, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty export bucket, also set as ``EXPORT_BUCKET``."""
    name = f"exports-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    monkeypatch.setenv("EXPORT_BUCKET", name)
    return name


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
