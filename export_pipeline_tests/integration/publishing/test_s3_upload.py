"""Streaming multipart upload (parts, concurrency, abort) and SigV4 signed links, against a
real local S3 server (moto)."""

from __future__ import annotations

import base64
import random
import signal
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from export_pipeline import interrupts
from export_pipeline.publishing.s3_upload import PART_SIZE, UploadResult, _parts, presign_get, upload_stream
from export_pipeline_tests.support.helpers import all_objects

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part S3 takes


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` in chunks of the given sizes, cycling through them."""
    offset, i = 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        yield data[offset:offset + size]
        offset += size
        i += 1


def read_object(s3_client, bucket: str, key: str) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def pending_uploads(s3_client, bucket: str) -> list[dict]:
    return s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_default_part_size_is_at_least_the_s3_minimum():
    assert PART_SIZE >= PART


def landed_parts(s3_client, bucket: str, key: str, upload_id: str, wanted: int = 1) -> int:
    """How many parts the server holds, once ``wanted`` have landed: parts upload on a pool
    thread while the stream goes on, so this waits for them (a synchronisation, not a timing:
    it gives up after a minute)."""
    deadline = time.monotonic() + 60
    while True:
        parts = s3_client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
        if len(parts) >= wanted or time.monotonic() > deadline:
            return len(parts)
        time.sleep(0.05)


def part_sizes(s3_client, bucket: str, key: str) -> list[int]:
    """The size of each part of a multipart object, as S3 reports them."""
    first = s3_client.head_object(Bucket=bucket, Key=key, PartNumber=1)
    sizes = [first["ContentLength"]]
    for number in range(2, first.get("PartsCount", 1) + 1):
        sizes.append(s3_client.head_object(Bucket=bucket, Key=key, PartNumber=number)["ContentLength"])
    return sizes


def test_multipart_upload_round_trips_byte_exact(s3_client, bucket):
    data = payload(11 * MiB + 12345)
    key = "exports/r1/big.csv"
    result = upload_stream(
        s3_client, bucket, key, chunked(data, [MiB + 7, 333_333, 2 * MiB]),
        "text/csv; charset=utf-8", part_size=PART,
    )
    assert isinstance(result, UploadResult)
    assert (result.bucket, result.key, result.bytes) == (bucket, key, len(data))
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "text/csv; charset=utf-8"
    assert head["ETag"] == result.etag
    sizes = part_sizes(s3_client, bucket, key)
    assert len(sizes) >= 2, "more than two part sizes of data went up in one part"
    assert result.etag.strip('"').endswith(f"-{len(sizes)}")
    assert sum(sizes) == len(data)
    assert all(size >= PART for size in sizes[:-1]), sizes  # S3's minimum for all but the last
    assert read_object(s3_client, bucket, key) == data
    assert pending_uploads(s3_client, bucket) == []


def test_the_store_checks_each_part_and_keeps_a_composite_crc32(s3_client, bucket):
    """The object's checksum is recomputed here from the bytes: CRC32 of each part, then CRC32
    of those digests (S3's composite checksum)."""
    data = payload(11 * MiB + 5, seed=4)
    upload_stream(s3_client, bucket, "sum.csv", chunked(data, [MiB]), "text/csv", part_size=PART)
    sizes = part_sizes(s3_client, bucket, "sum.csv")
    digests, offset = b"", 0
    for size in sizes:
        digests += zlib.crc32(data[offset:offset + size]).to_bytes(4, "big")
        offset += size
    expected = base64.b64encode(zlib.crc32(digests).to_bytes(4, "big")).decode()
    head = s3_client.head_object(Bucket=bucket, Key="sum.csv", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"].split("-")[0] == expected
    attributes = s3_client.get_object_attributes(
        Bucket=bucket, Key="sum.csv", ObjectAttributes=["Checksum"]
    )
    assert attributes["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert read_object(s3_client, bucket, "sum.csv") == data


def test_no_checksum_is_declared_when_the_client_computes_them_only_where_required(bucket):
    client = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
    data = payload(6 * MiB, seed=5)
    upload_stream(client, bucket, "plain.csv", iter([data]), "text/csv", part_size=PART)
    assert "ChecksumCRC32" not in client.head_object(Bucket=bucket, Key="plain.csv", ChecksumMode="ENABLED")
    assert read_object(client, bucket, "plain.csv") == data


def test_one_chunk_of_several_parts_round_trips(s3_client, bucket):
    data = payload(11 * MiB, seed=1)
    result = upload_stream(s3_client, bucket, "one.bin", iter([data]), "application/octet-stream", part_size=PART)
    assert result.bytes == len(data)
    sizes = part_sizes(s3_client, bucket, "one.bin")
    assert sum(sizes) == len(data)
    assert all(size >= PART for size in sizes[:-1]), sizes
    assert read_object(s3_client, bucket, "one.bin") == data


def test_a_small_file_is_one_part(s3_client, bucket):
    chunks = [b"Date,Entries\r\n", b"2024-04-01,12\r\n", b"2024-04-02,\r\n"]
    result = upload_stream(s3_client, bucket, "small.csv", iter(chunks), "text/csv")
    assert result.bytes == sum(map(len, chunks))
    assert read_object(s3_client, bucket, "small.csv") == b"".join(chunks)


def test_an_empty_stream_uploads_an_empty_object(s3_client, bucket):
    result = upload_stream(s3_client, bucket, "empty.csv", iter([]), "text/csv")
    assert result.bytes == 0
    assert read_object(s3_client, bucket, "empty.csv") == b""


def test_a_failing_stream_leaves_no_object_and_no_pending_upload(s3_client, bucket):
    key = "exports/r2/failed.csv"
    seen_in_flight: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield payload(PART + 1)  # fills the first part, which starts going up at once
        uploads = pending_uploads(s3_client, bucket)
        seen_in_flight.append(len(uploads))
        seen_in_flight.append(landed_parts(s3_client, bucket, key, uploads[0]["UploadId"]))
        raise RuntimeError("the metric store went away")

    with pytest.raises(RuntimeError, match="the metric store went away"):
        upload_stream(s3_client, bucket, key, chunks(), "text/csv", part_size=PART)

    assert seen_in_flight == [1, 1]  # the failure really came mid-upload, after one part
    assert pending_uploads(s3_client, bucket) == []
    assert all_objects(s3_client, bucket) == []
    with pytest.raises(ClientError) as caught:
        s3_client.head_object(Bucket=bucket, Key=key)
    assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_an_interrupted_stream_is_aborted_too(s3_client, bucket):
    class Cancelled(BaseException):
        pass

    def chunks() -> Iterator[bytes]:
        yield payload(PART)
        raise Cancelled()

    with pytest.raises(Cancelled):
        upload_stream(s3_client, bucket, "cancelled.csv", chunks(), "text/csv", part_size=PART)
    assert pending_uploads(s3_client, bucket) == []
    assert all_objects(s3_client, bucket) == []


def test_a_signal_whose_raise_was_lost_stops_the_upload_before_it_completes(s3_client, bucket):
    """A command's watch recorded a signal, but no handler raised it where the stream runs
    (Python ignored the raise): completing would put the file at its key anyway."""
    def chunks() -> Iterator[bytes]:
        yield payload(PART)
        signal.raise_signal(signal.SIGTERM)  # taken by a handler that does not raise
        yield payload(PART, seed=1)

    with interrupts.watched() as watch:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        with pytest.raises(interrupts.Interrupted):
            upload_stream(s3_client, bucket, "lost.csv", chunks(), "text/csv", part_size=PART)
        assert watch.received() == signal.SIGTERM
    assert pending_uploads(s3_client, bucket) == []
    assert all_objects(s3_client, bucket) == []


def test_a_failed_upload_leaves_an_earlier_object_untouched(s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="k.csv", Body=b"earlier")

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("boom")

    with pytest.raises(ValueError):
        upload_stream(s3_client, bucket, "k.csv", chunks(), "text/csv")
    assert read_object(s3_client, bucket, "k.csv") == b"earlier"
    assert pending_uploads(s3_client, bucket) == []


def test_upload_to_a_missing_bucket_raises(s3_client):
    with pytest.raises(ClientError):
        upload_stream(s3_client, "no-such-bucket-here", "k.csv", iter([b"x"]), "text/csv")


@pytest.fixture
def sigv4_client():
    return boto3.client("s3", config=Config(signature_version="s3v4"))


@pytest.mark.parametrize("key", ["exports/req-csv-001/2024-04-15T10-15-00Z_abcdef12.csv", "dir a/ü b+c.csv"])
def test_presigned_url_is_sigv4_and_downloads_the_bytes(s3_client, sigv4_client, bucket, key):
    data = b"Date,Entries\r\n2024-04-01,12\r\n" + "é".encode()
    upload_stream(s3_client, bucket, key, iter([data]), "text/csv; charset=utf-8")
    url = presign_get(sigv4_client, bucket, key, expires_in=300)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert query["X-Amz-Expires"] == ["300"]
    assert "X-Amz-Signature" in query
    assert url.startswith(s3_client.meta.endpoint_url)
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == data
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


# --- parts and concurrency --------------------------------------------------------------------


@pytest.mark.parametrize("part_size", [1, 3, 10, 64])
def test_parts_keep_every_byte_in_order_and_respect_the_part_size(part_size):
    chunks = [bytes([i % 256]) * (i * 7 % 50) for i in range(40)]
    parts = list(_parts(chunks, part_size))
    assert b"".join(parts) == b"".join(chunks)
    assert all(part_size <= len(p) < 2 * part_size for p in parts[:-1])
    assert 0 < len(parts[-1]) < 2 * part_size


def test_an_empty_stream_is_one_empty_part():
    assert list(_parts([], 10)) == [b""]
    assert list(_parts([b"", b""], 10)) == [b""]


class CountingClient:
    """The real boto3 client, counting how many parts are uploading at once."""

    def __init__(self, client):
        self._client = client
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.parts = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_part(self, **kwargs):
        with self._lock:
            self.running += 1
            self.parts += 1
            self.most_running = max(self.most_running, self.running)
        try:
            return self._client.upload_part(**kwargs)
        finally:
            with self._lock:
                self.running -= 1


def test_concurrent_parts_assemble_the_file_in_order(s3_client, bucket):
    data = b"".join(bytes([n]) * MiB for n in range(23))  # 23 MiB, every MiB different
    chunks = (data[i:i + 700_000] for i in range(0, len(data), 700_000))
    client = CountingClient(s3_client)
    result = upload_stream(client, bucket, "big.csv", chunks, "text/csv", 5 * MiB, concurrency=3)
    assert result.bytes == len(data)
    assert client.parts >= 4 and 1 <= client.most_running <= 3
    body = s3_client.get_object(Bucket=bucket, Key="big.csv")["Body"].read()
    assert body == data


def test_a_failure_mid_stream_aborts_and_leaves_nothing(s3_client, bucket):
    def chunks():
        for _ in range(3):
            yield b"x" * (5 * MiB)  # parts already uploading when the failure comes
        raise ValueError("the CSV encoder broke")

    with pytest.raises(ValueError, match="the CSV encoder broke"):
        upload_stream(s3_client, bucket, "broken.csv", chunks(), "text/csv", 5 * MiB)
    assert all_objects(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_failed_part_aborts_the_upload(s3_client, bucket):
    class FailingThirdPart(CountingClient):
        def upload_part(self, **kwargs):
            if kwargs["PartNumber"] == 3:
                raise ConnectionError("connection reset uploading part 3")
            return super().upload_part(**kwargs)

    chunks = (b"y" * MiB for _ in range(30))
    with pytest.raises(ConnectionError, match="part 3"):
        upload_stream(FailingThirdPart(s3_client), bucket, "f.csv", chunks, "text/csv", 5 * MiB)
    assert all_objects(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
