"""Stream a file into S3 and sign a download link for it.

The upload is multipart: parts go up as they fill, so the file is never held whole, and the
object appears at its key only when the upload completes. Any failure aborts the upload, so a
failed export leaves nothing at its final key and no parts billed in the bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PART_SIZE = 16 * 1024 * 1024  # S3 needs at least 5 MiB for every part but the last


@dataclass(frozen=True)
class UploadResult:
    bucket: str
    key: str
    bytes: int
    etag: str
    version_id: str | None = None


def upload_stream(
    client: Any,
    bucket: str,
    key: str,
    chunks: Iterable[bytes],
    content_type: str,
    part_size: int = PART_SIZE,
) -> UploadResult:
    upload_id = client.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType=content_type
    )["UploadId"]
    parts: list[dict] = []
    total = 0

    def send(body: bytes) -> None:
        number = len(parts) + 1
        response = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": response["ETag"]})

    try:
        buffer = bytearray()
        for chunk in chunks:
            buffer += chunk
            total += len(chunk)
            while len(buffer) >= part_size:
                send(bytes(buffer[:part_size]))
                del buffer[:part_size]
        if buffer or not parts:
            send(bytes(buffer))
        response = client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException as error:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as abort_error:  # keep the first failure as the one raised
            error.add_note(f"aborting multipart upload {upload_id} failed too: {abort_error}")
        raise
    return UploadResult(
        bucket=bucket, key=key, bytes=total, etag=response.get("ETag", ""),
        version_id=response.get("VersionId"),
    )


def presign_get(client: Any, bucket: str, key: str, expires_in: int) -> str:
    """A GET URL for the object. ``client`` must sign with SigV4 (see ``ExportStorage``)."""
    return client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
    )
