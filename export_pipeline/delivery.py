"""Deliver an export table to the export bucket: stream the CSV up, then sign a link to it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from export_pipeline.combine import ExportTable
from export_pipeline.csv_writer import CONTENT_TYPE, iter_csv
from export_pipeline.s3_upload import PART_SIZE, presign_get, upload_stream


@dataclass(frozen=True)
class ExportResult:
    """The seed-000 response body (bucket, key, signedUrl) plus what a client polls for."""

    request_id: str
    bucket: str
    key: str
    signed_url: str
    rows: int
    bytes: int

    def to_response(self) -> dict[str, Any]:
        fields = asdict(self)
        return {
            "requestId": fields.pop("request_id"),
            "signedUrl": fields.pop("signed_url"),
            **fields,
        }


def deliver_csv(
    table: ExportTable,
    *,
    request_id: str,
    client: Any,
    presign_client: Any,
    bucket: str,
    key: str,
    url_ttl_seconds: int,
    part_size: int = PART_SIZE,
) -> ExportResult:
    upload = upload_stream(client, bucket, key, iter_csv(table), CONTENT_TYPE, part_size)
    url = presign_get(presign_client, bucket, key, url_ttl_seconds)
    return ExportResult(
        request_id=request_id, bucket=bucket, key=key, signed_url=url,
        rows=table.rows, bytes=upload.bytes,
    )
