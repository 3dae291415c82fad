"""Real servers for the integration tests: an S3-compatible HTTP server (moto in server mode,
on loopback) that every integration test's boto3 talks to, the delivery servers, and a
PostgreSQL server (the SQL metric source, the service's shared state)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import boto3
import pytest

from export_pipeline_tests.support.helpers import free_port, wait_for_http
from export_pipeline_tests.support.sql_stores import PostgresServer, postgres_binaries


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL on loopback, one per session; each user makes its own database."""
    if postgres_binaries() is None:
        pytest.fail("PostgreSQL binaries not found: apt-get install postgresql")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, fake_aws_credentials, s3_endpoint: str) -> None:
    """Every integration test talks to the local server with fake credentials, never to AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)


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
