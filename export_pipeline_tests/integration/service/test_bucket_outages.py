"""The export bucket missing or out of reach: ``export-pipeline serve`` does not start without
it (it would take exports it can neither show nor delete), and a running service answers a
DELETE it cannot carry out with 503 and leaves the export as it was. Real processes: the
service, and a moto server of the test's own that it stops and starts again."""

from __future__ import annotations

import subprocess
import sys
import uuid

import boto3

from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.helpers import free_port, wait_for_http
from export_pipeline_tests.support.requests import REPO, SEED_BODY
from export_pipeline_tests.support.service import tenant_service, wait_for_status


def _serve_until_exit(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export_pipeline", "serve", "--port", str(free_port())],
                          env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300)


def _environment(tmp_path, bucket, store, s3_endpoint, credentials=FAKE_CREDENTIALS) -> dict[str, str]:
    return tenant_service(tmp_path, {"acme": {}}, bucket, store, s3_endpoint, credentials).env


def test_the_service_does_not_start_without_its_bucket(tmp_path, s3_endpoint, demo_store_path):
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    done = _serve_until_exit(_environment(tmp_path, bucket, demo_store_path, s3_endpoint))
    assert done.returncode == 1, done.stderr
    assert f"cannot start the service: bucket {bucket} does not exist at {s3_endpoint}" in done.stderr
    assert "Uvicorn running" not in done.stderr + done.stdout
    assert not (tmp_path / "dagster_home" / "service-state").exists()  # nothing written


def test_the_service_does_not_start_without_s3_credentials(tmp_path, s3_endpoint, demo_store_path):
    env = _environment(tmp_path, "exports", demo_store_path, s3_endpoint,
                       {"AWS_DEFAULT_REGION": "us-east-1"})
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance role to ask for, off the loopback
    done = _serve_until_exit(env)
    assert done.returncode == 1, done.stderr
    assert "cannot start the service: no S3 credentials found" in done.stderr
    assert "Uvicorn running" not in done.stderr + done.stdout


def _moto(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_http(f"http://127.0.0.1:{port}/moto-api/", process, 60, "moto server")
    return process


def _create_bucket(endpoint: str, bucket: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=bucket)


def test_a_delete_while_the_bucket_is_out_of_reach_is_a_503_and_changes_nothing(tmp_path, demo_store_path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = _moto(port)
    bucket = "outage"
    _create_bucket(endpoint, bucket)
    server = tenant_service(tmp_path, {"acme": {}}, bucket, demo_store_path, endpoint, FAKE_CREDENTIALS)
    server.start()
    try:
        with server.client("acme") as client:
            export_id = client.post("/v1/exports", json=SEED_BODY).json()["id"]
            assert wait_for_status(client, export_id, {"complete", "failed"})["status"] == "complete"
            moto.terminate()
            moto.wait(timeout=30)

            refused = client.delete(f"/v1/exports/{export_id}")
            assert refused.status_code == 503, refused.text
            assert refused.json() == {"reason": "unavailable", "message":
                                      "the export bucket cannot be reached to delete its file; try again"}
            assert refused.headers["Retry-After"] == "30"
            kept = client.get(f"/v1/exports/{export_id}")
            assert kept.status_code == 200 and kept.json()["status"] == "complete"
            assert [e["id"] for e in client.get("/v1/exports").json()["exports"]] == [export_id]

            moto = _moto(port)  # back, empty: deleting a file that is not there succeeds
            _create_bucket(endpoint, bucket)
            assert client.delete(f"/v1/exports/{export_id}").status_code == 204
            assert client.get(f"/v1/exports/{export_id}").status_code == 404
    finally:
        server.stop()
        moto.terminate()
        moto.wait(timeout=30)
    log = next((tmp_path / "dagster_home").glob("service-*.log")).read_text(errors="replace")
    assert f"could not delete the file of export {export_id}" in log
