"""Inline credentials never reach Dagster's storage in plaintext: not the run config, the
event log, the compute logs, stored outputs, the CLI's output or error messages. Each test
runs real exports with secrets of its own making, then reads every byte the instance wrote."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from export_pipeline.destinations.sealing import Sealer, seal_document
from export_pipeline_tests.support.helpers import wait_for_run
from export_pipeline_tests.support.dagster_dev import dagster_dev, webhooks  # noqa: F401 (fixtures)
from export_pipeline_tests.support.deliveries import (  # noqa: F401 (delivery_env: fixture)
    SEALING_KEY,
    delivery_env,
    ftp_destination,
    s3_destination,
    sftp_destination,
)
from export_pipeline_tests.support.requests import SEED_ENVELOPE, run_job


def plaintext_request(*destinations: dict, request_id: str) -> dict:
    document = copy.deepcopy(SEED_ENVELOPE)
    document["data"]["id"] = request_id
    document["data"]["body"]["destinations"] = list(destinations)
    return document


def file_contents(root: Path):
    """Each file under ``root`` with its bytes. A running ``dagster dev`` creates and removes
    SQLite's ``-shm``/``-wal`` files while we read, so a file gone since listing is skipped."""
    for path in root.rglob("*"):
        try:
            if path.is_file():
                yield path, path.read_bytes()
        except FileNotFoundError:
            continue


def leaks(root: Path, secrets: list[str]) -> dict[str, list[str]]:
    """Each secret found in any file under ``root``, with the files holding it."""
    found: dict[str, list[str]] = {}
    for path, data in file_contents(root):
        for secret in secrets:
            if secret.encode() in data:
                found.setdefault(secret, []).append(str(path.relative_to(root)))
    return found


def anywhere(root: Path, text: str) -> bool:
    return any(text.encode() in data for _, data in file_contents(root))


@pytest.fixture
def wrong_ftp_password() -> str:
    return "wrong-ftp-" + os.urandom(8).hex()


def test_plaintext_run_config_is_refused_before_a_run_exists(delivery_env, sftp_server):
    document = plaintext_request(sftp_destination(sftp_server), request_id="plain")
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        run_job(document, instance=instance)
    message = str(refused.value)
    assert "plaintext credentials are refused" in message
    assert "data.body.destinations[0].password" in message
    assert sftp_server.password not in message
    # the body's fields at the root and an envelope beside them: both are looked at
    both = {**copy.deepcopy(SEED_ENVELOPE["data"]["body"]), "data": document["data"]}
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        run_job(both, instance=instance)
    assert "data.body.destinations[0].password" in str(refused.value)
    assert instance.get_runs() == []


def test_cli_run_with_inline_credentials_leaks_nothing(
    delivery_env, sftp_server, ftp_server, customer_s3, tmp_path, wrong_ftp_password
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("EXPORT_SEALING_KEY")  # the CLI seals with a key of its own
    request = tmp_path / "request.json"
    good = plaintext_request(sftp_destination(sftp_server), s3_destination(customer_s3),
                             request_id="cli-secrets")
    request.write_text(json.dumps(good))
    done = subprocess.run([sys.executable, "-m", "export_pipeline", "run", str(request)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert [d["destination"]["type"] for d in response["deliveries"]] == ["sftp", "s3"]

    bad = plaintext_request(ftp_destination(ftp_server, password=wrong_ftp_password),
                            request_id="cli-wrong")
    request.write_text(json.dumps(bad))
    failed = subprocess.run([sys.executable, "-m", "export_pipeline", "run", str(request)],
                            env=env, capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1
    assert "login refused (wrong username or password)" in failed.stderr

    secrets = [sftp_server.password, customer_s3.secret_access_key, customer_s3.access_key_id,
               wrong_ftp_password]
    assert leaks(home, secrets) == {}
    for output in (done.stdout, done.stderr, failed.stdout, failed.stderr):
        assert not [s for s in secrets if s in output]
    assert anywhere(home, "sealed:v2:")  # the run config was stored, sealed
    assert anywhere(home, "delivered")  # and so were the delivery logs


def test_ui_submissions_leak_nothing(
    delivery_env, dagster_dev, sftp_server, customer_s3, ftp_server, wrong_ftp_password, tmp_path
):
    port, home = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    good = plaintext_request(sftp_destination(sftp_server), s3_destination(customer_s3),
                             request_id="ui-secrets")
    with pytest.raises(DagsterGraphQLClientError) as refused:
        client.submit_job_execution("export_job", run_config=good)
    assert "plaintext credentials are refused" in str(refused.value)
    assert sftp_server.password not in str(refused.value)

    sealer = Sealer(SEALING_KEY)
    bad = plaintext_request(ftp_destination(ftp_server, password=wrong_ftp_password),
                            request_id="ui-wrong")
    run_ids = [client.submit_job_execution("export_job", run_config=seal_document(d, sealer))
               for d in (good, bad)]
    statuses = [wait_for_run(client, run_id) for run_id in run_ids]
    assert statuses == [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]

    secrets = [sftp_server.password, customer_s3.secret_access_key, customer_s3.access_key_id,
               wrong_ftp_password]
    assert leaks(tmp_path, secrets) == {}  # the instance and dagster dev's own log
    assert (tmp_path / "dagster_dev.log").stat().st_size > 0
    assert anywhere(home, "sealed:v2:")
    assert anywhere(home, "login refused (wrong username or password)")
    assert anywhere(home, "delivered")
    compute_logs = [p for p in home.rglob("*") if p.is_file() and p.suffix in (".err", ".out", ".complete")]
    assert compute_logs  # the runs' captured stdout/stderr were among the files read
