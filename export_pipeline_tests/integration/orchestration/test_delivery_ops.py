"""The export job delivering to real servers on 127.0.0.1: SFTP, FTP, FTPS, GCS and a second
S3-compatible store with the customer's own credentials."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from export_pipeline_tests.support import destination_servers as servers
from export_pipeline_tests.support.helpers import all_objects
from export_pipeline_tests.support.deliveries import (  # noqa: F401 (delivery_env: fixture)
    SEALING_KEY,
    delivery_env,
    ftp_destination,
    request_with,
    s3_destination,
    sftp_destination,
)
from export_pipeline_tests.support.requests import download, run_job

def gcs_bucket(endpoint: str, name: str):
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    bucket = client.bucket(name)
    if not bucket.exists():
        client.create_bucket(name)
    return client.bucket(name)


def our_file(result) -> tuple[object, bytes]:
    export = result.output_for_node("materialize_export")
    return export, download(export.signed_url)


def receipts(result) -> list[dict]:
    found = result.output_for_node("deliver_export")
    return [found[k] for k in sorted(found)]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_sftp_password_receives_the_same_bytes(delivery_env, sftp_server):
    result = run_job(request_with(sftp_destination(sftp_server)))
    assert result.success, result.get_step_failure_events()
    export, data = our_file(result)
    [receipt] = receipts(result)
    name = f"req-csv-001_{os.path.basename(export.key)}"
    assert receipt["remotePath"] == f"/outbox/{name}"
    assert (sftp_server.root / "outbox" / name).read_bytes() == data
    assert receipt["bytes"] == receipt["remoteSize"] == len(data)
    assert receipt["destination"] == {"type": "sftp", "server": "127.0.0.1",
                                      "port": sftp_server.port, "username": "alice",
                                      "auth": "password"}
    assert not [f for f in files_under(sftp_server.root) if f.endswith(".part")]


def test_sftp_saved_key(delivery_env, sftp_server):
    destination = sftp_destination(sftp_server, savedKey="partner-key", path="/outbox")
    del destination["password"]
    result = run_job(request_with(destination, request_id="by-key"))
    assert result.success, result.get_step_failure_events()
    export, data = our_file(result)
    assert (sftp_server.root / "outbox" / f"by-key_{os.path.basename(export.key)}").read_bytes() == data
    assert receipts(result)[0]["destination"]["auth"] == "key"


def test_sftp_two_runs_of_a_named_file_leave_two_files(delivery_env, sftp_server):
    """With format.filename, each run is delivered under its own name
    (<request id>_<timestamp>_<run>_<filename>.<ext>): the second run does not replace the first."""
    document = request_with(sftp_destination(sftp_server), request_id="named-twice")
    document["data"]["body"]["format"] = {"filename": "daily"}
    delivered = []
    for _ in range(2):
        result = run_job(document)
        assert result.success, result.get_step_failure_events()
        export, data = our_file(result)
        [receipt] = receipts(result)
        assert export.key.endswith("/daily.csv")
        stamp_and_run = os.path.basename(os.path.dirname(export.key))  # <timestamp>_<run>
        name = f"named-twice_{stamp_and_run}_daily.csv"
        assert receipt["remotePath"] == f"/outbox/{name}"
        delivered.append((name, data))
    assert delivered[0][0] != delivered[1][0]
    assert sorted(f for f in files_under(sftp_server.root) if "named-twice" in f) == sorted(
        f"outbox/{name}" for name, _ in delivered
    )
    for name, data in delivered:
        assert (sftp_server.root / "outbox" / name).read_bytes() == data


def failure_text(result) -> str:
    return "\n".join(
        (e.step_failure_data.user_failure_data.description
         if e.step_failure_data.user_failure_data else e.step_failure_data.error.message)
        for e in result.get_step_failure_events()
    )


def test_sftp_unknown_host_key_is_refused(delivery_env, sftp_server, tmp_path, monkeypatch):
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sftp_server.port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIB0bTtzOwpPKEeJ0Pm4ZPGZ7PhbBUkXoDfKnc1kMF+8g\n")
    monkeypatch.setenv("EXPORT_SFTP_KNOWN_HOSTS", str(other))
    result = run_job(request_with(sftp_destination(sftp_server), request_id="bad-hostkey"))
    assert not result.success
    assert "host key does not match known_hosts" in failure_text(result)
    assert len(result.get_step_failure_events()) == 1  # permanent: no retries
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    monkeypatch.setenv("EXPORT_SFTP_KNOWN_HOSTS", str(empty))
    result = run_job(request_with(sftp_destination(sftp_server), request_id="no-hostkey"))
    assert "host key is not in known_hosts" in failure_text(result)
    assert not [f for f in files_under(sftp_server.root) if "hostkey" in f]


def test_sftp_wrong_password_fails_fast_with_a_clear_message(delivery_env, sftp_server):
    wrong = sftp_destination(sftp_server, password="not-the-password")
    result = run_job(request_with(wrong, request_id="wrong-pw"))
    assert not result.success
    text = failure_text(result)
    assert "authentication refused (wrong username, password or key)" in text
    assert "not-the-password" not in text
    assert len(result.get_step_failure_events()) == 1
    assert result.output_for_node("materialize_export")  # the file itself was made


def test_sftp_dropped_mid_transfer_leaves_nothing_then_the_retry_delivers(delivery_env, sftp_server):
    sftp_server.drop.arm()
    result = run_job(request_with(sftp_destination(sftp_server), request_id="sftp-drop", big=True))
    assert result.success, result.get_step_failure_events()
    assert sftp_server.drop.dropped >= 1
    export, data = our_file(result)
    assert len(data) > 4 * servers.DROP_AFTER_BYTES
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    assert (sftp_server.root / "outbox" / f"sftp-drop_{os.path.basename(export.key)}").read_bytes() == data
    assert not [f for f in files_under(sftp_server.root) if f.endswith(".part")]


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_ftp_and_ftps_receive_the_same_bytes(delivery_env, ftp_server, ftps_server, tls):
    server = ftps_server if tls else ftp_server
    result = run_job(request_with(ftp_destination(server), request_id=f"ftp-{tls}"))
    assert result.success, result.get_step_failure_events()
    export, data = our_file(result)
    [receipt] = receipts(result)
    name = f"ftp-{tls}_{os.path.basename(export.key)}"
    assert receipt["remotePath"] == f"/outbox/{name}"
    assert (server.root / "outbox" / name).read_bytes() == data
    assert receipt["bytes"] == receipt["remoteSize"] == len(data)
    assert receipt["destination"]["type"] == ("ftps" if tls else "ftp")


def test_ftps_untrusted_certificate_is_refused(delivery_env, ftps_server, monkeypatch):
    monkeypatch.delenv("EXPORT_FTPS_CA_FILE")
    result = run_job(request_with(ftp_destination(ftps_server), request_id="ftps-untrusted"))
    assert not result.success
    assert "TLS certificate is not trusted" in failure_text(result)
    assert len(result.get_step_failure_events()) == 1


def test_ftp_wrong_password_fails_fast(delivery_env, ftp_server):
    result = run_job(request_with(ftp_destination(ftp_server, password="nope-nope"), request_id="ftp-bad"))
    assert not result.success
    text = failure_text(result)
    assert "login refused (wrong username or password)" in text and "nope-nope" not in text
    assert len(result.get_step_failure_events()) == 1


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_ftp_dropped_mid_transfer_leaves_nothing_then_the_retry_delivers(
    delivery_env, ftp_server, ftps_server, tls
):
    server = ftps_server if tls else ftp_server
    server.drop.arm()
    result = run_job(request_with(ftp_destination(server), request_id=f"ftp-drop-{tls}", big=True))
    assert result.success, result.get_step_failure_events()
    assert server.drop.dropped >= 1
    export, data = our_file(result)
    assert (server.root / "outbox" / f"ftp-drop-{tls}_{os.path.basename(export.key)}").read_bytes() == data
    assert not [f for f in files_under(server.root) if f.endswith(".part")]


def test_customer_s3_with_their_credentials(delivery_env, customer_s3, s3_client, bucket):
    result = run_job(request_with(s3_destination(customer_s3), request_id="to-s3"))
    assert result.success, result.get_step_failure_events()
    export, data = our_file(result)
    [receipt] = receipts(result)
    key = f"folder/to-s3_{os.path.basename(export.key)}"
    assert receipt["remotePath"] == f"s3://{customer_s3.bucket}/{key}"
    got = customer_s3.client().get_object(Bucket=customer_s3.bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ContentType"] == "text/csv; charset=utf-8" or got["ContentType"].startswith("text/csv")
    assert receipt["etag"] == got["ETag"].strip('"')
    assert receipt["destination"] == {"type": "s3", "bucket": customer_s3.bucket,
                                      "region": "us-west-2", "endpoint": customer_s3.endpoint}
    assert all_objects(s3_client, bucket) == [export.key]  # ours is untouched


def test_customer_s3_path_naming_the_file(delivery_env, customer_s3):
    result = run_job(request_with(s3_destination(customer_s3, path="/reports/daily.csv"),
                                  request_id="s3-named"))
    assert result.success, result.get_step_failure_events()
    _, data = our_file(result)
    got = customer_s3.client().get_object(Bucket=customer_s3.bucket, Key="reports/daily.csv")
    assert got["Body"].read() == data


@pytest.mark.parametrize("field,reason", [
    ("aws_secret_access_key", "the secret access key is wrong"),
    ("aws_access_key_id", "the access key id is not known"),
])
def test_customer_s3_wrong_credentials_fail_fast(delivery_env, customer_s3, field, reason):
    destination = s3_destination(customer_s3, path="wrong")
    destination[field] = "AKIAWRONGWRONGWRONG0"
    result = run_job(request_with(destination, request_id="s3-wrong"))
    assert not result.success
    text = failure_text(result)
    assert reason in text and "AKIAWRONGWRONGWRONG0" not in text
    assert len(result.get_step_failure_events()) == 1
    keys = [o["Key"] for o in customer_s3.client().list_objects_v2(
        Bucket=customer_s3.bucket).get("Contents", [])]
    assert not [k for k in keys if k.startswith("wrong/")]


def test_gcs_receives_the_same_bytes(delivery_env, gcs_emulator):
    target = gcs_bucket(gcs_emulator, "customer-gcs")
    result = run_job(request_with(
        {"type": "GCS", "gcs_bucket": "customer-gcs", "path": "/audiencetrendsexport"},
        request_id="to-gcs",
    ))
    assert result.success, result.get_step_failure_events()
    export, data = our_file(result)
    [receipt] = receipts(result)
    key = f"audiencetrendsexport/to-gcs_{os.path.basename(export.key)}"
    assert receipt["remotePath"] == f"gs://customer-gcs/{key}"
    blob = target.get_blob(key)
    assert blob.download_as_bytes() == data
    assert receipt["remoteSize"] == len(data)
    # the emulator reports the generation on upload but not on a later read
    assert isinstance(receipt["generation"], int) and receipt["generation"] > 0
    assert blob.generation in (None, receipt["generation"])


def test_gcs_missing_bucket_fails_fast(delivery_env, gcs_emulator):
    result = run_job(request_with({"type": "gcs", "gcs_bucket": "no-such-bucket-here"},
                                  request_id="gcs-missing"))
    assert not result.success
    assert "gs://no-such-bucket-here/" in failure_text(result)
    assert len(result.get_step_failure_events()) == 1


def test_one_file_many_destinations(delivery_env, sftp_server, ftp_server, customer_s3, gcs_emulator):
    target = gcs_bucket(gcs_emulator, "fan-out")
    result = run_job(request_with(
        {"type": "aws"},
        sftp_destination(sftp_server),
        ftp_destination(ftp_server),
        s3_destination(customer_s3, path="fan"),
        {"type": "gcs", "gcs_bucket": "fan-out"},
        request_id="fan-out",
    ))
    assert result.success, result.get_step_failure_events()
    export, data = our_file(result)
    name = f"fan-out_{os.path.basename(export.key)}"
    got = receipts(result)
    assert [r["where"] for r in got] == [f"destinations[{i}]" for i in (1, 2, 3, 4)]
    assert (sftp_server.root / "outbox" / name).read_bytes() == data
    assert (ftp_server.root / "outbox" / name).read_bytes() == data
    assert customer_s3.client().get_object(Bucket=customer_s3.bucket, Key=f"fan/{name}")["Body"].read() == data
    assert target.get_blob(name).download_as_bytes() == data
    # the data was computed once
    assert len([e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
                and e.step_key == "combine_metrics"]) == 1


def export_job_for_reexecution():
    from export_pipeline.orchestration.definitions import build_definitions

    return build_definitions().resolve_job_def("export_job")


def test_failed_delivery_reexecutes_from_failure_without_recomputing(
    delivery_env, sftp_server, tmp_path, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EXPORT_SFTP_KNOWN_HOSTS", str(tmp_path / "not-there"))
    job = dg.build_reconstructable_job(
        "export_pipeline_tests.integration.orchestration.test_delivery_ops", "export_job_for_reexecution"
    )
    document = request_with(sftp_destination(sftp_server), request_id="reexec")
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(
            job, instance=instance, run_config=document, raise_on_error=False
        ) as first:
            assert not first.success
            assert "no known_hosts file is configured" in failure_text(first)
            export = first.output_for_node("materialize_export")
        monkeypatch.setenv("EXPORT_SFTP_KNOWN_HOSTS", str(sftp_server.known_hosts))
        again = dg.execute_job(
            job, instance=instance, raise_on_error=False,
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        )
        assert again.success, again.get_step_failure_events()
        executed = {e.step_key for e in again.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert executed == {"deliver_export[destination0_sftp]", "record_export"}
    with urllib.request.urlopen(export.signed_url, timeout=30) as response:
        data = response.read()
    assert (sftp_server.root / "outbox" / f"reexec_{os.path.basename(export.key)}").read_bytes() == data


def test_preflight_failure_reexecutes_from_failure_without_recomputing(
    delivery_env, sftp_server, tmp_path, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (tmp_path / "no-keys").mkdir()
    monkeypatch.setenv("EXPORT_SFTP_KEYS_DIR", str(tmp_path / "no-keys"))
    job = dg.build_reconstructable_job(
        "export_pipeline_tests.integration.orchestration.test_delivery_ops", "export_job_for_reexecution"
    )
    destination = sftp_destination(sftp_server, savedKey="partner-key")
    del destination["password"]
    document = request_with(destination, request_id="preflight")
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(job, instance=instance, run_config=document, raise_on_error=False) as first:
            assert not first.success
            assert "destination.savedKey: no saved key named 'partner-key'" in failure_text(first)
            export = first.output_for_node("materialize_export")
        monkeypatch.setenv("EXPORT_SFTP_KEYS_DIR", str(sftp_server.client_key.parent))
        again = dg.execute_job(
            job, instance=instance, raise_on_error=False,
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        )
        assert again.success, again.get_step_failure_events()
        executed = {e.step_key for e in again.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert executed == {"plan_deliveries", "deliver_export[destination0_sftp]", "record_export"}
    assert (sftp_server.root / "outbox" / f"preflight_{os.path.basename(export.key)}").exists()


def test_versioned_customer_bucket_receipt_has_the_version(delivery_env, customer_s3):
    client = customer_s3.client()
    client.create_bucket(Bucket="customer-versioned",
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    client.put_bucket_versioning(Bucket="customer-versioned",
                                 VersioningConfiguration={"Status": "Enabled"})
    result = run_job(request_with(s3_destination(customer_s3, aws_bucket="customer-versioned",
                                                 path="v/report.csv"), request_id="versioned"))
    assert result.success, result.get_step_failure_events()
    [receipt] = receipts(result)
    head = client.head_object(Bucket="customer-versioned", Key="v/report.csv")
    assert receipt["versionId"] == head["VersionId"]
    assert receipt["etag"] == head["ETag"].strip('"')


@pytest.mark.parametrize("server,reason", [
    ("10.0.0.1", "resolves to 10.0.0.1, a private or reserved address"),
    ("169.254.169.254", "resolves to 169.254.169.254, a link-local address"),
    ("localhost", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),  # reaches the server below if let through
    ("64:ff9b::a9fe:a9fe", "carrying 169.254.169.254, a link-local address"),
])
def test_refused_hosts_fail_before_any_connection(delivery_env, sftp_server, monkeypatch, server, reason):
    monkeypatch.delenv("EXPORT_DESTINATION_ALLOW_LOOPBACK")
    connections_before = len(sftp_server.connections)
    result = run_job(request_with(dict(sftp_destination(sftp_server), server=server), request_id="ssrf"))
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "plan_deliveries"
    assert reason in failure_text(result)
    assert len(sftp_server.connections) == connections_before


def test_the_sftp_server_counts_connections(delivery_env, sftp_server):
    """The check above means something: a delivery that is let through is counted."""
    connections_before = len(sftp_server.connections)
    result = run_job(request_with(sftp_destination(sftp_server), request_id="counted"))
    assert result.success
    assert len(sftp_server.connections) > connections_before


def test_every_refused_destination_is_named(delivery_env, sftp_server, monkeypatch):
    monkeypatch.delenv("EXPORT_DESTINATION_ALLOW_LOOPBACK")
    connections_before = len(sftp_server.connections)
    result = run_job(request_with(
        dict(sftp_destination(sftp_server), server="10.0.0.1"),
        dict(sftp_destination(sftp_server), server="169.254.169.254", path="/other"),
        request_id="ssrf-all",
    ))
    assert not result.success
    text = failure_text(result)
    assert "destinations[0]: destination host '10.0.0.1' resolves to 10.0.0.1" in text
    assert "destinations[1]: destination host '169.254.169.254' resolves to 169.254.169.254" in text
    assert len(sftp_server.connections) == connections_before
    # as a client reads them (inbox result, API errors): each at its path in the envelope
    from export_pipeline.orchestration.run_outcomes import failure_errors

    errors = failure_errors(result.get_step_failure_events(), None)
    assert [e["path"] for e in errors] == ["data.body.destinations[0]", "data.body.destinations[1]"]
    assert errors[0]["message"].startswith("destination host '10.0.0.1' resolves to")


def test_allow_list_refuses_other_hosts(delivery_env, sftp_server, monkeypatch):
    monkeypatch.setenv("EXPORT_DESTINATION_HOSTS", "sftp.partner.example")
    result = run_job(request_with(sftp_destination(sftp_server), request_id="not-listed"))
    assert "'127.0.0.1' is not in the allowed destination hosts" in failure_text(result)


def test_failure_messages_mask_credentials_a_library_might_echo():
    from export_pipeline.orchestration.delivery_ops import DeliveryTask, _reason
    from export_pipeline.contract.models import DestinationSpec

    task = DeliveryTask(0, "destinations[0]", DestinationSpec(type="ftp"))
    assert _reason(task, "530 bad password hunter2 for bob", ["hunter2", ""]) == (
        "destinations[0]: 530 bad password *** for bob"
    )
    assert _reason(task, "destinations[0].password: x", []) == "destinations[0].password: x"
