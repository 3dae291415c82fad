"""Deliver an export table to the export bucket: write it in the requested format (CSV, XLSX or
the PDF report), stream it up, then sign a link to it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from export_pipeline import csv_writer, pdf_report, xlsx_writer
from export_pipeline.combine import ExportTable
from export_pipeline.csv_writer import CONTENT_TYPE, CsvOptions, iter_csv
from export_pipeline.request import ExportRequest, FileFormat
from export_pipeline.s3_upload import PART_SIZE, presign_get, upload_stream

CONTENT_TYPES = {
    FileFormat.csv: csv_writer.CONTENT_TYPE,
    FileFormat.xlsx: xlsx_writer.CONTENT_TYPE,
    FileFormat.pdf: pdf_report.CONTENT_TYPE,
}


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


def csv_options(request: ExportRequest) -> CsvOptions:
    fmt = request.format
    return CsvOptions(delimiter=fmt.csv_delimiter, bom=fmt.with_bom, formula_guard=fmt.formula_guard)


def deliver(
    table: ExportTable,
    request: ExportRequest,
    *,
    request_id: str,
    client: Any,
    presign_client: Any,
    bucket: str,
    key: str,
    url_ttl_seconds: int,
    part_size: int = PART_SIZE,
    branding: pdf_report.Branding = pdf_report.Branding(),
) -> ExportResult:
    """Write ``table`` as ``request.format`` asks and upload it to ``key``."""
    extension = request.format.extension
    content_type = CONTENT_TYPES[extension]

    def upload(chunks) -> int:
        return upload_stream(client, bucket, key, chunks, content_type, part_size).bytes

    if extension is FileFormat.xlsx:
        with xlsx_writer.xlsx_file(table) as path:
            size = upload(xlsx_writer.iter_file(path))
    elif extension is FileFormat.pdf:
        pdf = pdf_report.render_pdf(
            request, table, request_id=request_id, branding=branding, previous=table.previous
        )
        size = upload([pdf])
    else:
        size = upload(iter_csv(table, options=csv_options(request)))
    url = presign_get(presign_client, bucket, key, url_ttl_seconds)
    return ExportResult(
        request_id=request_id, bucket=bucket, key=key, signed_url=url, rows=table.rows, bytes=size,
    )
