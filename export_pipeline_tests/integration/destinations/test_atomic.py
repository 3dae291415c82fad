"""Each destination against its real server, called directly: a connection dropped in the
middle of an upload leaves no file at the final path and no temporary file behind, and the
next attempt delivers the whole file."""

from __future__ import annotations

import io
import os

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from export_pipeline.destinations.base import TransientDeliveryError, Upload
from export_pipeline.destinations.ftp import FtpDestination
from export_pipeline.destinations.gcs import GcsDestination
from export_pipeline.destinations.host_policy import HostPolicy
from export_pipeline.destinations.s3 import S3Destination
from export_pipeline.destinations.sftp import SftpDestination
from export_pipeline_tests.support import destination_servers as servers

LOOPBACK = HostPolicy(allow_loopback=True)
DATA = b"".join(b"2024-04-01,entity-%06d,%d\r\n" % (i, i * 7) for i in range(40_000))


def upload(tag: str = "t1") -> Upload:
    return Upload(stream=io.BytesIO(DATA), size=len(DATA), file_name="export.csv",
                  content_type="text/csv", attempt_tag=tag)


def leftovers(root) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and p.name.endswith(".part")]


def drop_then_deliver(destination, switch, final_exists, read_final, folder=None):
    assert len(DATA) > 4 * servers.DROP_AFTER_BYTES
    switch.arm(times=3)  # enough to defeat any client-side retry of a single request
    with pytest.raises(TransientDeliveryError):
        destination.deliver(upload())
    assert switch.dropped >= 1
    assert not final_exists()
    if folder is not None:  # the temporary file was removed over a fresh connection
        assert leftovers(folder) == []
    switch.arm(times=0)
    receipt = destination.deliver(upload())
    assert read_final() == DATA
    assert receipt.bytes == len(DATA)
    return receipt


def test_sftp(sftp_server):
    destination = SftpDestination(
        server="127.0.0.1", port=sftp_server.port, username=sftp_server.username,
        password=sftp_server.password, key_path=None, folder="/outbox/atomic-sftp",
        known_hosts_path=str(sftp_server.known_hosts), host_policy=LOOPBACK, timeout=10,
    )
    folder = sftp_server.root / "outbox" / "atomic-sftp"
    folder.mkdir()
    receipt = drop_then_deliver(
        destination, sftp_server.drop,
        lambda: (folder / "export.csv").exists(), lambda: (folder / "export.csv").read_bytes(),
        folder,
    )
    assert receipt.remote["remoteSize"] == len(DATA)
    assert leftovers(folder) == []


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_ftp(ftp_server, ftps_server, tls):
    server = ftps_server if tls else ftp_server
    folder = server.root / "outbox" / "atomic"
    folder.mkdir()
    destination = FtpDestination(
        server="127.0.0.1", port=server.port, username=server.username,
        password=server.password, folder="/outbox/atomic", tls=tls,
        ca_file=str(server.ca_file) if tls else None, host_policy=LOOPBACK, timeout=10,
    )
    drop_then_deliver(
        destination, server.drop,
        lambda: (folder / "export.csv").exists(), lambda: (folder / "export.csv").read_bytes(),
        folder,
    )
    assert leftovers(folder) == []


def test_s3(customer_s3):
    proxy = servers.CuttingProxy(int(customer_s3.endpoint.rsplit(":", 1)[1]))
    try:
        destination = S3Destination(
            bucket=customer_s3.bucket, region="us-west-2", key="atomic/export.csv",
            access_key_id=customer_s3.access_key_id,
            secret_access_key=customer_s3.secret_access_key,
            endpoint_url=proxy.endpoint, timeout=10, part_size=5 * 1024 * 1024,
        )
        client = customer_s3.client()

        def exists():
            try:
                client.head_object(Bucket=customer_s3.bucket, Key="atomic/export.csv")
                return True
            except client.exceptions.ClientError as error:
                assert error.response["Error"]["Code"] == "404"
                return False

        receipt = drop_then_deliver(
            destination, proxy.drop, exists,
            lambda: client.get_object(Bucket=customer_s3.bucket, Key="atomic/export.csv")["Body"].read(),
        )
        assert receipt.remote["etag"]
        assert client.list_multipart_uploads(Bucket=customer_s3.bucket).get("Uploads", []) == []
    finally:
        proxy.close()


def test_gcs(gcs_emulator, monkeypatch):
    proxy = servers.CuttingProxy(int(gcs_emulator.rsplit(":", 1)[1]))
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        client = storage.Client(project="test", credentials=AnonymousCredentials())
        if not client.bucket("atomic-gcs").exists():
            client.create_bucket("atomic-gcs")
        bucket = client.bucket("atomic-gcs")
        destination = GcsDestination(bucket="atomic-gcs", key="atomic/export.csv",
                                     project="test", timeout=10)
        receipt = drop_then_deliver(
            destination, proxy.drop,
            lambda: bucket.get_blob("atomic/export.csv") is not None,
            lambda: bucket.blob("atomic/export.csv").download_as_bytes(),
        )
        assert receipt.remote["generation"]
    finally:
        proxy.close()


def test_gcs_resumable_upload_of_a_file_larger_than_one_chunk(gcs_emulator, monkeypatch):
    from export_pipeline.destinations.gcs import CHUNK_SIZE

    proxy = servers.CuttingProxy(int(gcs_emulator.rsplit(":", 1)[1]))
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        client = storage.Client(project="test", credentials=AnonymousCredentials())
        if not client.bucket("atomic-gcs-big").exists():
            client.create_bucket("atomic-gcs-big")
        bucket = client.bucket("atomic-gcs-big")
        big = os.urandom(CHUNK_SIZE + 123_457)
        destination = GcsDestination(bucket="atomic-gcs-big", key="big.bin", project="test", timeout=30)

        def send():
            return destination.deliver(Upload(io.BytesIO(big), len(big), "big.bin",
                                              "application/octet-stream", "t"))

        proxy.drop.arm(times=1)
        with pytest.raises(TransientDeliveryError):
            send()
        assert bucket.get_blob("big.bin") is None
        receipt = send()
        assert bucket.blob("big.bin").download_as_bytes() == big
        assert receipt.bytes == receipt.remote["remoteSize"] == len(big)
    finally:
        proxy.close()


def test_gcs_without_usable_credentials_is_permanent(tmp_path, monkeypatch):
    from export_pipeline.destinations.base import PermanentDeliveryError

    broken = tmp_path / "service-account.json"
    broken.write_text('{"type": "service_account"}')
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(broken))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never probe a metadata server
    destination = GcsDestination(bucket="b-b-b", key="k", project="p", timeout=5)
    with pytest.raises(PermanentDeliveryError, match="no usable GCS credentials"):
        destination.deliver(upload())
