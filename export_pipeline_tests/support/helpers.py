"""Small helpers the tests share."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from export_pipeline.store.parquet import ParquetMetricSource


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def write_store(folder: Path, frame: pl.DataFrame, files: int = 1) -> Path:
    """Write ``frame`` as a metric store of ``files`` Parquet files (split by row)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-frame.height // files)
    for i in range(files):
        frame.slice(i * size, size).write_parquet(folder / f"part-{i}.parquet")
    return folder


def all_objects(s3_client, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Until ``url`` answers (any HTTP status); a server that exits or never answers fails the
    test setup."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.1)


def start_moto_server(bucket: str | None = None, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """moto's S3 server in its own process on a free loopback port, with ``bucket`` created:
    the process (terminate it when done) and its endpoint, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/moto-api/", process, timeout, "moto server")
    if bucket:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="moto",
                     aws_secret_access_key="moto").create_bucket(Bucket=bucket)
    return process, endpoint


def wait_for_run(client, run_id: str, timeout: float = 180):
    """The final status of a run launched through Dagster's GraphQL API."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    status = client.get_run_status(run_id)
    while status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
        status = client.get_run_status(run_id)
    return status


class CountingSource(ParquetMetricSource):
    """The real store, counting its schema reads and its fetches (a fetch may call itself
    for slices of its window: counted once)."""

    def __init__(self, path):
        super().__init__(path)
        self.schema_reads = 0
        self.fetches = 0
        self._depth = 0

    def schema(self):
        self.schema_reads += 1
        return super().schema()

    def fetch(self, query):
        self.fetches += self._depth == 0
        self._depth += 1
        try:
            return super().fetch(query)
        finally:
            self._depth -= 1


def signature(url: str) -> dict[str, str]:
    """A presigned URL's query: ``X-Amz-Algorithm``, ``X-Amz-Date``, ``X-Amz-Expires``…"""
    return {k: v for k, [v] in parse_qs(urlsplit(url).query).items()}


def signed_at(url: str) -> datetime:
    """When a SigV4 presigned URL was signed (whole seconds)."""
    return datetime.strptime(signature(url)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
