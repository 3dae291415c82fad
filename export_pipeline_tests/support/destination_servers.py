"""Real servers for delivery tests, on 127.0.0.1: SFTP (asyncssh), FTP and FTPS (pyftpdlib),
GCS (gcp-storage-emulator) and a second S3-compatible server that checks credentials (moto
with IAM auth on). Each can be told to drop the connection in the middle of the next upload.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from export_pipeline_tests.support.helpers import free_port, wait_for_http

DROP_AFTER_BYTES = 64 * 1024


@dataclass
class DropSwitch:
    """Drop the connection once, after ``DROP_AFTER_BYTES`` of the next upload."""

    armed: int = 0
    dropped: int = 0

    def arm(self, times: int = 1) -> None:
        self.armed = times

    def should_drop(self, received: int) -> bool:
        if self.armed and received >= DROP_AFTER_BYTES:
            self.armed -= 1
            self.dropped += 1
            return True
        return False


@dataclass
class RenameRules:
    """How the server renames: ``replaces`` off, it refuses to rename over a file (plain SFTP
    without ``posix-rename``, some FTP servers); ``refuse`` > 0, it refuses that many renames
    of an upload's temporary file into place, as a full or read-only folder would."""

    replaces: bool = True
    refuse: int = 0

    def check(self, source: str, target: str) -> str | None:
        """Why the rename is refused, or ``None``."""
        if not self.replaces and os.path.exists(target):
            return "exists"
        if self.refuse and source.endswith(".part") and not source.endswith(".old.part"):
            self.refuse -= 1
            return "refused"
        return None


# --- SFTP -----------------------------------------------------------------------------------

@dataclass
class SftpServer:
    port: int
    root: Path
    username: str
    password: str
    known_hosts: Path
    client_key: Path
    drop: DropSwitch
    stop: callable = field(repr=False, default=None)
    connections: list = field(default_factory=list)
    """The peer address of every connection the server accepted (a test that expects none
    to be made checks this stays as it was)."""
    renames: RenameRules = field(default_factory=RenameRules)
    """``replaces`` off: the server also lacks ``posix-rename``."""


def start_sftp_server(tmp: Path) -> SftpServer:
    root = tmp / "sftp-root"
    root.mkdir()
    (root / "outbox").mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key_path = tmp / "keys" / "partner-key"
    client_key_path.parent.mkdir()
    client_key.write_private_key(str(client_key_path), format_name="openssh")
    username, password = "alice", "sftp-Pa55-" + os.urandom(6).hex()
    port = free_port()
    drop, renames = DropSwitch(), RenameRules()
    authorized = asyncssh.import_authorized_keys(
        client_key.export_public_key("openssh").decode()
    )

    connections: list = []

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn):
            connections.append(conn.get_extra_info("peername"))

        def begin_auth(self, user):
            return True

        def password_auth_supported(self):
            return True

        def validate_password(self, user, given):
            return user == username and given == password

        def public_key_auth_supported(self):
            return True

        def validate_public_key(self, user, key):
            return user == username and authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None

    class DroppingSftp(asyncssh.SFTPServer):
        def __init__(self, chan):
            super().__init__(chan, chroot=str(root))
            self.received = 0

        def write(self, file_obj, offset, data):
            self.received += len(data)
            if drop.should_drop(self.received):
                self.connection.abort()
                return None
            return super().write(file_obj, offset, data)

        def rename(self, oldpath, newpath):
            self._check(oldpath, newpath)
            return super().rename(oldpath, newpath)

        def posix_rename(self, oldpath, newpath):
            if not renames.replaces:
                raise asyncssh.SFTPOpUnsupported("posix-rename is not supported")
            self._check(oldpath, newpath)
            return super().posix_rename(oldpath, newpath)

        def _check(self, oldpath, newpath):
            why = renames.check(
                os.fsdecode(self.map_path(oldpath)), os.fsdecode(self.map_path(newpath))
            )
            if why == "exists":
                raise asyncssh.SFTPFileAlreadyExists("File already exists")
            if why:
                raise asyncssh.SFTPPermissionDenied("Permission denied")

    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve():
        return await asyncssh.listen(
            "127.0.0.1", port, server_host_keys=[host_key], server_factory=Server,
            sftp_factory=DroppingSftp, allow_scp=False,
        )

    holder = {}

    def run():
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{port} {host_key.export_public_key('openssh').decode().strip()}\n"
    )

    def stop():
        loop.call_soon_threadsafe(holder["server"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return SftpServer(
        port, root, username, password, known_hosts, client_key_path, drop, stop, connections,
        renames,
    )


# --- FTP / FTPS -----------------------------------------------------------------------------

@dataclass
class FtpServer:
    port: int
    root: Path
    username: str
    password: str
    tls: bool
    ca_file: Path | None
    drop: DropSwitch
    stop: callable = field(repr=False, default=None)
    short: DropSwitch = field(default_factory=DropSwitch)
    """Armed: the next upload is stored one byte short, and the server still answers 226."""
    renames: RenameRules = field(default_factory=RenameRules)


def self_signed_certificate(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made for this test run, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "ftps-cert.pem", tmp / "ftps-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


def start_ftp_server(tmp: Path, tls: bool) -> FtpServer:
    root = tmp / ("ftps-root" if tls else "ftp-root")
    (root / "outbox").mkdir(parents=True)
    username, password = "bob", "ftp-Pa55-" + os.urandom(6).hex()
    authorizer = DummyAuthorizer()
    authorizer.add_user(username, password, str(root), perm="elradfmwMT")
    drop, short, renames = DropSwitch(), DropSwitch(), RenameRules()
    base_dtp = TLS_DTPHandler if tls else DTPHandler

    class DroppingDtp(base_dtp):
        def handle_read(self):
            super().handle_read()
            if drop.should_drop(self.tot_bytes_received):
                self.cmd_channel.close()  # the server goes away: control and data
                self.close()

        handle_read_event = handle_read  # pyftpdlib's loop calls this alias

        def close(self):
            stored = self.file_obj
            if short.armed and self.receive and stored is not None and not stored.closed:
                short.armed -= 1
                short.dropped += 1
                stored.flush()
                stored.truncate(max(stored.tell() - 1, 0))
            super().close()

    base = TLS_FTPHandler if tls else FTPHandler

    def ftp_RNTO(self, path):  # noqa: N802 (pyftpdlib's command name)
        if self._rnfr and renames.check(self._rnfr, path):
            self._rnfr = None
            self.respond("550 Can't rename.")
            return None
        return base.ftp_RNTO(self, path)

    handler = type("Handler", (base,), {"ftp_RNTO": ftp_RNTO})
    handler.authorizer = authorizer
    handler.dtp_handler = DroppingDtp
    handler.passive_ports = None
    ca_file = None
    if tls:
        ca_file, key_file = self_signed_certificate(tmp)
        handler.certfile, handler.keyfile = str(ca_file), str(key_file)
        handler.tls_control_required = True
        handler.tls_data_required = True
    # Its own IOLoop: pyftpdlib's default is one per process, and the FTP and FTPS servers
    # must not share it.
    server = ThreadedFTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
    port = server.address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()

    def stop():
        server.close_all()
        thread.join(5)

    return FtpServer(port, root, username, password, tls, ca_file, drop, stop, short, renames)


# --- GCS and S3 (subprocess servers) --------------------------------------------------------

def start_gcs_emulator() -> tuple[str, subprocess.Popen]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/storage/v1/b", process, 30, "the GCS emulator")
    return endpoint, process


@dataclass
class CustomerS3:
    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    process: subprocess.Popen

    def client(self):
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
            aws_session_token=None,
        ).client("s3", endpoint_url=self.endpoint, region_name="us-west-2")


def start_customer_s3() -> CustomerS3:
    """moto with IAM auth on after the set-up calls: the customer's keys are real to it and
    wrong ones are refused, as S3 does."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/moto-api/", process, 30, "the customer S3 server")
    setup = dict(endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="setup", aws_secret_access_key="setup", aws_session_token=None)
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="customer")
    iam.put_user_policy(
        UserName="customer", PolicyName="s3",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
                       '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName="customer")["AccessKey"]
    customer = CustomerS3(endpoint, "customer-drop", key["AccessKeyId"], key["SecretAccessKey"], process)
    customer.client().create_bucket(
        Bucket=customer.bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    return customer


# --- fixtures (import them into a test module) ---------------------------------------------

@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory):
    server = start_sftp_server(tmp_path_factory.mktemp("sftp"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory):
    server = start_ftp_server(tmp_path_factory.mktemp("ftp"), tls=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory):
    server = start_ftp_server(tmp_path_factory.mktemp("ftps"), tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator():
    endpoint, process = start_gcs_emulator()
    yield endpoint
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def customer_s3():
    customer = start_customer_s3()
    yield customer
    customer.process.terminate()
    customer.process.wait(10)




# --- a TCP proxy that can cut uploads (for the HTTP servers: S3 and GCS) --------------------

class CuttingProxy:
    """Forwards 127.0.0.1:port to a server; while armed, a connection that has sent more
    than ``DROP_AFTER_BYTES`` towards the server is cut in both directions."""

    def __init__(self, target_port: int):
        import socket

        self.target_port = target_port
        self.drop = DropSwitch()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, sink, upload: bool) -> None:
        import socket

        sent = 0
        try:
            while data := source.recv(65536):
                sent += len(data)
                if upload and self.drop.should_drop(sent):
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
