"""One export service process for the module's tests (starting one costs a Dagster start-up
and a code server), on its own bucket, Dagster home and tenants."""

from __future__ import annotations

import uuid

import boto3
import pytest

from export_pipeline.destinations.sealing import generate_key
from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.requests import REPO
from export_pipeline_tests.support.service import ServiceProcess, service_environment, tenants_yaml

SEED_ENTITY = "64a1b2c3d4e5f6a7b8c9d0e3"

TENANTS = {
    "acme": {"customer_scopes": {"entity_types": ["location"]},
             "saved_exports": ["daily-entries"]},  # the Reports page runs it
    "globex": {"saved_exports": ["daily-entries"]},
    "hooli": {},  # the list test's alone, so its pages are exactly its exports
    "initech": {"customer_scopes": {"entities": [SEED_ENTITY], "entity_types": ["location"]},
                "formats": ["csv"]},
    "dormant": {"active": False},
    "tiny": {"monthly_quota": 1},
    "chatty": {"rate_limit": {"requests": 3, "per_seconds": 3600}},
    "fuzz": {"rate_limit": {"requests": 1_000_000, "per_seconds": 1}},
    "umbrella": {},  # granted none of the deployment's saved keys, buckets, saved exports or chats
    # (and no email recipient)
    "mailer": {"email_recipients": ["ops@acme.example", "@Partner.Example"]},
}


@pytest.fixture(scope="module")
def service_bucket(s3_endpoint: str) -> str:
    name = f"service-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials()).create_bucket(Bucket=name)
    return name


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        "region_name": FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def service_s3(s3_endpoint: str):
    return boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())


@pytest.fixture(scope="module")
def service(tmp_path_factory, s3_endpoint, service_bucket, demo_store_path):
    root = tmp_path_factory.mktemp("service")
    keys: dict[str, str] = {}
    tenants_file = root / "tenants.yaml"
    tenants_file.write_text(tenants_yaml(TENANTS, keys))
    env = service_environment(root / "dagster_home", tenants_file, service_bucket,
                              demo_store_path, s3_endpoint, FAKE_CREDENTIALS)
    env["EXPORT_DEFINITIONS_PATH"] = str(REPO / "export_pipeline" / "examples" / "definitions")
    env["EXPORT_SEALING_KEY"] = generate_key()
    server = ServiceProcess(env=env, keys=keys)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dagster_instance(service):
    """The service's Dagster instance, as an operator (or the UI) opens it."""
    import dagster as dg

    with dg.DagsterInstance.from_config(service.env["DAGSTER_HOME"]) as instance:
        yield instance
