"""The export bucket is checked as a run starts: a missing bucket, an unknown access key or a
wrong secret is one line before anything is read, from the plain check, the Dagster job and
the command line. Wrong credentials are refused by a second moto server with IAM auth on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import dagster as dg
import pytest

from export_pipeline.orchestration.environment import export_resources
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.publishing.preflight import StorageUnavailable, check_writable
from export_pipeline_tests.support.helpers import free_port
from export_pipeline_tests.support.requests import SEED_BODY


def customer_client(customer_s3, secret: str | None = None, key_id: str | None = None):
    return boto3.session.Session(
        aws_access_key_id=key_id or customer_s3.access_key_id,
        aws_secret_access_key=secret or customer_s3.secret_access_key, aws_session_token=None,
    ).client("s3", endpoint_url=customer_s3.endpoint, region_name="us-west-2")


def test_a_writable_bucket_passes_and_the_check_leaves_nothing(s3_client, bucket):
    check_writable(s3_client, bucket, "exports")
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_real_credentials_pass_on_a_server_that_checks_them(customer_s3):
    check_writable(customer_client(customer_s3), customer_s3.bucket, "exports")


@pytest.mark.parametrize("case, expected", [
    ("missing bucket", "bucket no-such-bucket-here does not exist at http://127.0.0.1:"),
    ("wrong secret", "S3 refused the secret key (the signature does not match): check "
                     "AWS_SECRET_ACCESS_KEY (SignatureDoesNotMatch)"),
    ("unknown key", "S3 does not know the access key: check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (InvalidAccessKeyId)"),
])
def test_each_refusal_is_one_line_naming_its_cause(customer_s3, case, expected):
    client, bucket = customer_client(customer_s3), customer_s3.bucket
    if case == "missing bucket":
        bucket = "no-such-bucket-here"
    elif case == "wrong secret":
        client = customer_client(customer_s3, secret="not-the-secret")
    else:
        client = customer_client(customer_s3, key_id="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(StorageUnavailable) as caught:
        check_writable(client, bucket, "exports")
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert (case == "missing bucket") == message.endswith("(NoSuchBucket)")


def test_an_endpoint_that_does_not_answer(s3_client):
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}",
                          config=boto3.session.Config(retries={"max_attempts": 1}))
    with pytest.raises(StorageUnavailable, match=r"^cannot reach S3 at http://127\.0\.0\.1:\d+$"):
        check_writable(client, "exports", "exports")


def test_the_dagster_run_fails_before_reading_anything(monkeypatch, instance, s3_endpoint,
                                                       demo_store_path):
    monkeypatch.setenv("EXPORT_BUCKET", "no-such-bucket-here")
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    job = dg.Definitions(jobs=[export_job], resources=export_resources()).resolve_job_def("export_job")
    result = job.execute_in_process(run_config=SEED_BODY, instance=instance, raise_on_error=False)
    assert not result.success
    assert result.get_step_success_events() == []  # not even the plan, let alone a fetch
    from export_pipeline.orchestration.run_outcomes import failure_errors

    errors = failure_errors(result.get_step_failure_events(), result.get_run_failure_event())
    assert [e["message"] for e in errors] == [
        f"bucket no-such-bucket-here does not exist at {s3_endpoint}: check EXPORT_BUCKET "
        "(NoSuchBucket)"
    ]


@pytest.mark.parametrize("case", ["missing bucket", "wrong secret", "no answer"])
def test_the_command_line_says_it_in_one_line_before_any_fetch(
    customer_s3, demo_store_path, tmp_path, case
):
    request = tmp_path / "request.json"
    request.write_text(json.dumps(SEED_BODY))
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(
        AWS_ENDPOINT_URL_S3=customer_s3.endpoint, AWS_DEFAULT_REGION="us-west-2",
        AWS_ACCESS_KEY_ID=customer_s3.access_key_id,
        AWS_SECRET_ACCESS_KEY=customer_s3.secret_access_key,
        EXPORT_BUCKET=customer_s3.bucket, EXPORT_METRICS_PATH=str(demo_store_path),
    )
    env.pop("AWS_SESSION_TOKEN", None)
    if case == "missing bucket":
        env["EXPORT_BUCKET"] = "no-such-bucket-here"
        expected = "does not exist"
    elif case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        expected = "S3 refused the secret key"
    else:
        env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
        expected = f"cannot reach S3 at {env['AWS_ENDPOINT_URL_S3']}"
    done = subprocess.run([sys.executable, "-m", "export_pipeline", "run", str(request)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("export failed: run ") and expected in lines[-1]
    assert all(" - INFO - " in line for line in lines[:-1]), done.stderr
    assert "fetched" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
