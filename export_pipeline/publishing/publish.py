"""Deliver an export table to the export bucket: write it in the requested format (CSV, XLSX or
the PDF report), stream it up, then sign a link to it.

The XLSX and PDF writers are imported when a request asks for them, not at every export's
start-up (reportlab is heavy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from export_pipeline.formats import csv_writer
from export_pipeline.formats.branding import Branding
from export_pipeline.table.model import ExportTable
from export_pipeline.formats.csv_writer import CsvOptions, iter_csv
from export_pipeline.contract.models import ExportRequest, FileFormat
from export_pipeline.contract.response import build_response
from export_pipeline.publishing.keys import ExportLocation, named_after_key
from export_pipeline.publishing.s3_upload import PART_SIZE, presign_get, upload_stream


@dataclass(frozen=True)
class ExportResult:
    """The export response body (bucket, key, signedUrl) plus what a client polls for."""

    request_id: str
    bucket: str
    key: str
    signed_url: str
    rows: int
    bytes: int
    delivery_name: str | None = None
    """The file's name in a destination's folder (``keys.ExportLocation``). None only in a
    result stored by a run made before the name was carried; see ``file_name_at_destination``."""

    @property
    def file_name_at_destination(self) -> str:
        """The name the file is delivered under at an SFTP/FTP/S3/GCS folder. A result stored
        before ``delivery_name`` was carried (a run re-executed from failure across an upgrade)
        keeps the name it was given then, ``<request id>_<last segment of the key>``."""
        return self.delivery_name or named_after_key(self.request_id, self.key)

    def to_response(self, run_id: str | None = None, deliveries: list[dict] | None = None) -> dict[str, Any]:
        return build_response(
            request_id=self.request_id, bucket=self.bucket, key=self.key,
            signed_url=self.signed_url, rows=self.rows, bytes=self.bytes,
            run_id=run_id, deliveries=deliveries,
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
    location: ExportLocation,
    url_ttl_seconds: int,
    part_size: int = PART_SIZE,
    branding: Branding = Branding(),
) -> ExportResult:
    """Write ``table`` as ``request.format`` asks and upload it to ``location.key``; the result
    carries the name it is delivered under (``location.delivery_name``)."""
    extension = request.format.extension
    key = location.key

    def upload(chunks, content_type: str) -> int:
        return upload_stream(client, bucket, key, chunks, content_type, part_size).bytes

    if extension is FileFormat.xlsx:
        from export_pipeline.formats import xlsx_writer

        size = upload(xlsx_writer.iter_xlsx(table), xlsx_writer.CONTENT_TYPE)
    elif extension is FileFormat.pdf:
        from export_pipeline.formats import pdf_report

        pdf = pdf_report.render_pdf(
            request, table, request_id=request_id, branding=branding, previous=table.previous
        )
        size = upload([pdf], pdf_report.CONTENT_TYPE)
    else:
        size = upload(iter_csv(table, options=csv_options(request)), csv_writer.CONTENT_TYPE)
    url = presign_get(presign_client, bucket, key, url_ttl_seconds)
    return ExportResult(
        request_id=request_id, bucket=bucket, key=key, signed_url=url, rows=table.rows, bytes=size,
        delivery_name=location.delivery_name,
    )
