"""The delivery tests' environment (the demo store, our bucket, real SFTP, FTPS, customer-S3
and GCS servers, a sealing key) and the destinations a request names to reach them."""

from __future__ import annotations

import copy

import pytest

from export_pipeline.destinations.sealing import Sealer, generate_key, seal_document
from export_pipeline_tests.support.requests import SEED_ENVELOPE


SEALING_KEY = generate_key()


@pytest.fixture
def delivery_env(monkeypatch, demo_store_path, bucket, sftp_server, ftps_server, customer_s3,
                 gcs_emulator):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    monkeypatch.setenv("EXPORT_DESTINATION_ALLOW_LOOPBACK", "1")
    monkeypatch.setenv("EXPORT_SEALING_KEY", SEALING_KEY)
    monkeypatch.setenv("EXPORT_SFTP_KNOWN_HOSTS", str(sftp_server.known_hosts))
    monkeypatch.setenv("EXPORT_SFTP_KEYS_DIR", str(sftp_server.client_key.parent))
    monkeypatch.setenv("EXPORT_FTPS_CA_FILE", str(ftps_server.ca_file))
    monkeypatch.setenv("EXPORT_DESTINATION_S3_ENDPOINT", customer_s3.endpoint)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    return bucket


def request_with(*destinations: dict, request_id: str | None = None, big: bool = False) -> dict:
    """The seed 000 envelope with these destinations, credentials sealed. ``big``: every
    entity by the hour for a month (about 0.5 MB), so a transfer takes many writes."""
    document = copy.deepcopy(SEED_ENVELOPE)
    if request_id:
        document["data"]["id"] = request_id
    body = document["data"]["body"]
    if big:
        body["csvFormat"]["columns"].insert(1, {"heading": "Entity"})
        metric_request = body["metricRequests"][0]
        del metric_request["entities"], metric_request["entityType"]
        metric_request["aggregationPeriod"] = "hour"
    if len(destinations) == 1:
        body["destination"] = destinations[0]
    else:
        body["destinations"] = list(destinations)
    return seal_document(document, Sealer(SEALING_KEY))


def sftp_destination(server, **extra) -> dict:
    return {"type": "sftp", "server": "127.0.0.1", "port": str(server.port),
            "username": server.username, "password": server.password, "path": "/outbox", **extra}


def ftp_destination(server, **extra) -> dict:
    return {"type": "ftps" if server.tls else "ftp", "server": "127.0.0.1", "port": server.port,
            "username": server.username, "password": server.password, "path": "/outbox", **extra}


def s3_destination(customer, **extra) -> dict:
    return {"type": "s3", "aws_access_key_id": customer.access_key_id,
            "aws_secret_access_key": customer.secret_access_key,
            "aws_bucket": customer.bucket, "aws_region": "us-west-2", "path": "folder", **extra}
