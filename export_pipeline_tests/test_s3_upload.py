"""The streamed multipart upload against the real S3 server: parts, concurrency, abort."""

from __future__ import annotations

import threading

import pytest

from export_pipeline.s3_upload import _parts, upload_stream
from export_pipeline_tests.helpers import all_objects

MIB = 1024 * 1024


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
    data = b"".join(bytes([n]) * MIB for n in range(23))  # 23 MiB, every MiB different
    chunks = (data[i:i + 700_000] for i in range(0, len(data), 700_000))
    client = CountingClient(s3_client)
    result = upload_stream(client, bucket, "big.csv", chunks, "text/csv", 5 * MIB, concurrency=3)
    assert result.bytes == len(data)
    assert client.parts >= 4 and 1 <= client.most_running <= 3
    body = s3_client.get_object(Bucket=bucket, Key="big.csv")["Body"].read()
    assert body == data


def test_a_failure_mid_stream_aborts_and_leaves_nothing(s3_client, bucket):
    def chunks():
        for _ in range(3):
            yield b"x" * (5 * MIB)  # parts already uploading when the failure comes
        raise ValueError("the CSV encoder broke")

    with pytest.raises(ValueError, match="the CSV encoder broke"):
        upload_stream(s3_client, bucket, "broken.csv", chunks(), "text/csv", 5 * MIB)
    assert all_objects(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_failed_part_aborts_the_upload(s3_client, bucket):
    class FailingThirdPart(CountingClient):
        def upload_part(self, **kwargs):
            if kwargs["PartNumber"] == 3:
                raise ConnectionError("connection reset uploading part 3")
            return super().upload_part(**kwargs)

    chunks = (b"y" * MIB for _ in range(30))
    with pytest.raises(ConnectionError, match="part 3"):
        upload_stream(FailingThirdPart(s3_client), bucket, "f.csv", chunks, "text/csv", 5 * MIB)
    assert all_objects(s3_client, bucket) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
