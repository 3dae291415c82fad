"""Each destination against its real server, called directly: a connection dropped in the
middle of an upload, or a command's signal whose raise was lost, leaves no file at the final
path and no temporary file behind, and the next attempt delivers the whole file."""

from __future__ import annotations

import io
import os
import signal

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from export_pipeline import interrupts
from export_pipeline.destinations.base import DeliveryError, TransientDeliveryError, Upload
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


def sftp_destination(server, folder: str) -> SftpDestination:
    return SftpDestination(
        server="127.0.0.1", port=server.port, username=server.username,
        password=server.password, key_path=None, folder=f"/outbox/{folder}",
        known_hosts_path=str(server.known_hosts), host_policy=LOOPBACK, timeout=10,
    )


def ftp_destination(server, folder: str, tls: bool = False) -> FtpDestination:
    return FtpDestination(
        server="127.0.0.1", port=server.port, username=server.username,
        password=server.password, folder=f"/outbox/{folder}", tls=tls,
        ca_file=str(server.ca_file) if tls else None, host_policy=LOOPBACK, timeout=10,
    )


def test_sftp(sftp_server):
    destination = sftp_destination(sftp_server, "atomic-sftp")
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
    destination = ftp_destination(server, "atomic", tls)
    drop_then_deliver(
        destination, server.drop,
        lambda: (folder / "export.csv").exists(), lambda: (folder / "export.csv").read_bytes(),
        folder,
    )
    assert leftovers(folder) == []


def test_ftp_a_file_stored_short_never_reaches_its_path(ftp_server):
    """A server that answers 226 but kept fewer bytes: the size is checked on the temporary
    file, so the final path never holds a wrong file (and a previous file there stays)."""
    folder = ftp_server.root / "outbox" / "short"
    folder.mkdir()
    (folder / "export.csv").write_bytes(b"the previous run's file")
    destination = ftp_destination(ftp_server, "short")
    ftp_server.short.arm()
    with pytest.raises(TransientDeliveryError, match="not put in place"):
        destination.deliver(upload())
    assert ftp_server.short.dropped == 1
    assert (folder / "export.csv").read_bytes() == b"the previous run's file"
    assert leftovers(folder) == []
    receipt = destination.deliver(upload())
    assert (folder / "export.csv").read_bytes() == DATA and receipt.bytes == len(DATA)


@pytest.mark.parametrize("kind", ["sftp", "ftp"])
def test_a_server_that_will_not_rename_over_a_file_never_loses_the_previous_one(
    sftp_server, ftp_server, kind
):
    """Without a replacing rename (plain SFTP, some FTP servers), the previous file at a fixed
    key is moved aside, not deleted: when the new file then cannot be put in place, the old
    one is back at its path; when it can, the old one is gone and nothing is left over."""
    server = sftp_server if kind == "sftp" else ftp_server
    folder = server.root / "outbox" / "no-replace"
    folder.mkdir()
    final = folder / "export.csv"
    final.write_bytes(b"the previous run's file")
    destination = (sftp_destination if kind == "sftp" else ftp_destination)(server, "no-replace")
    server.renames.replaces = False
    try:
        server.renames.refuse = 1
        with pytest.raises(DeliveryError):
            destination.deliver(upload("t1"))
        assert server.renames.refuse == 0
        assert final.read_bytes() == b"the previous run's file"
        assert leftovers(folder) == []
        receipt = destination.deliver(upload("t2"))
        assert final.read_bytes() == DATA and receipt.bytes == len(DATA)
        assert sorted(p.name for p in folder.iterdir()) == ["export.csv"]
    finally:
        server.renames.replaces, server.renames.refuse = True, 0


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


class SignalledStream(io.BytesIO):
    """The file, with a SIGTERM raised while it is read: after its first read, or as its end
    is read (the last read before the file is renamed into place)."""

    def __init__(self, data: bytes, at_end: bool):
        super().__init__(data)
        self.at_end = at_end
        self.raised = False

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if not self.raised and (not data if self.at_end else data):
            self.raised = True
            signal.raise_signal(signal.SIGTERM)
        return data


def deliver_with_lost_signal(destination, data: bytes, at_end: bool) -> None:
    """A command's watch records the signal, but its handler does not raise (as when Python
    ignores a raise inside a weakref callback): the delivery must stop anyway."""
    stream = SignalledStream(data, at_end)
    with interrupts.watched() as watch:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        with pytest.raises(interrupts.Interrupted):
            destination.deliver(Upload(stream, len(data), "export.csv", "text/csv", "t"))
        assert watch.received() == signal.SIGTERM
    assert stream.raised


@pytest.mark.parametrize("at_end", [False, True], ids=["mid-transfer", "before-rename"])
@pytest.mark.parametrize("kind", ["sftp", "ftp"])
def test_a_signal_whose_raise_was_lost_leaves_no_file(sftp_server, ftp_server, kind, at_end):
    server = sftp_server if kind == "sftp" else ftp_server
    name = f"lost-{kind}-{'end' if at_end else 'mid'}"
    folder = server.root / "outbox" / name
    folder.mkdir()
    destination = (sftp_destination if kind == "sftp" else ftp_destination)(server, name)
    deliver_with_lost_signal(destination, DATA, at_end)
    assert not (folder / "export.csv").exists()
    assert leftovers(folder) == []
    receipt = destination.deliver(upload())  # outside a command's watch: nothing to stop it
    assert (folder / "export.csv").read_bytes() == DATA
    assert receipt.bytes == len(DATA)


def test_a_signal_whose_raise_was_lost_stops_a_gcs_upload(gcs_emulator, monkeypatch):
    from export_pipeline.destinations.gcs import CHUNK_SIZE

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    if not client.bucket("lost-signal").exists():
        client.create_bucket("lost-signal")
    destination = GcsDestination(bucket="lost-signal", key="lost.bin", project="test", timeout=30)
    deliver_with_lost_signal(destination, os.urandom(CHUNK_SIZE + 1), at_end=False)
    assert client.bucket("lost-signal").get_blob("lost.bin") is None
