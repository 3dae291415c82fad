"""Delivery throughput to each destination kind, against the test suite's local servers on
127.0.0.1 (SFTP: asyncssh, FTP/FTPS: pyftpdlib, S3: moto with IAM auth, GCS: the emulator).

    python benchmarks/delivery_throughput.py [MEGABYTES]

Local servers in Python are the bottleneck, not the network: read the numbers as this code's
overhead ceiling and as a comparison between kinds, not as what a real server will do.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from export_pipeline.destinations.base import Upload  # noqa: E402
from export_pipeline.destinations.ftp import FtpDestination  # noqa: E402
from export_pipeline.destinations.gcs import GcsDestination  # noqa: E402
from export_pipeline.destinations.host_policy import HostPolicy  # noqa: E402
from export_pipeline.destinations.s3 import S3Destination  # noqa: E402
from export_pipeline.destinations.sftp import SftpDestination  # noqa: E402
from export_pipeline_tests import destination_servers as servers  # noqa: E402


def main() -> None:
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    data = os.urandom(1024 * 1024) * megabytes
    loopback = HostPolicy(allow_loopback=True)
    tmp = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    sftp = servers.start_sftp_server(tmp)
    ftp = servers.start_ftp_server(tmp, tls=False)
    ftps = servers.start_ftp_server(tmp, tls=True)
    s3 = servers.start_customer_s3()
    gcs_endpoint, gcs_process = servers.start_gcs_emulator()
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_endpoint
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage.Client(project="bench", credentials=AnonymousCredentials()).create_bucket("bench")
    destinations = {
        "sftp": SftpDestination(
            server="127.0.0.1", port=sftp.port, username=sftp.username, password=sftp.password,
            key_path=None, folder="/outbox", known_hosts_path=str(sftp.known_hosts),
            host_policy=loopback, timeout=60),
        "ftp": FtpDestination(
            server="127.0.0.1", port=ftp.port, username=ftp.username, password=ftp.password,
            folder="/outbox", tls=False, ca_file=None, host_policy=loopback, timeout=60),
        "ftps": FtpDestination(
            server="127.0.0.1", port=ftps.port, username=ftps.username, password=ftps.password,
            folder="/outbox", tls=True, ca_file=str(ftps.ca_file), host_policy=loopback, timeout=60),
        "s3": S3Destination(
            bucket=s3.bucket, region="us-west-2", key="bench/file.bin",
            access_key_id=s3.access_key_id, secret_access_key=s3.secret_access_key,
            endpoint_url=s3.endpoint, timeout=60, part_size=16 * 1024 * 1024),
        "gcs": GcsDestination(bucket="bench", key="bench/file.bin", project="bench", timeout=60),
    }
    print(f"{megabytes} MiB per delivery")
    try:
        for name, destination in destinations.items():
            started = time.perf_counter()
            receipt = destination.deliver(Upload(io.BytesIO(data), len(data), "file.bin",
                                                 "application/octet-stream", "bench"))
            seconds = time.perf_counter() - started
            assert receipt.bytes == len(data)
            print(f"  {name:5} {seconds:6.2f} s  {megabytes / seconds:7.1f} MiB/s")
    finally:
        sftp.stop()
        ftp.stop()
        ftps.stop()
        s3.process.terminate()
        gcs_process.terminate()


if __name__ == "__main__":
    main()
