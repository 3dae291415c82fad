"""The answer to a request is built in one place; the CLI, the inbox's result objects and the
publishing step say the same thing."""

from __future__ import annotations

from export_pipeline.contract.response import build_response, response_body
from export_pipeline.inbox.requests import Status, result_document
from export_pipeline.publishing.publish import ExportResult

FILE = dict(request_id="req-1", bucket="exports", key="exports/req-1/a.csv",
            signed_url="https://s3.example/exports/req-1/a.csv?X-Amz-Signature=1", rows=30,
            bytes=506)


def test_the_response_has_the_documented_fields():
    assert build_response(**FILE) == {
        "requestId": "req-1", "bucket": "exports", "key": "exports/req-1/a.csv",
        "signedUrl": "https://s3.example/exports/req-1/a.csv?X-Amz-Signature=1",
        "rows": 30, "bytes": 506,
    }


def test_the_cli_adds_its_run_id_and_deliveries():
    deliveries = [{"where": "destination", "bytes": 506}]
    response = ExportResult(**FILE).to_response(run_id="r-1", deliveries=deliveries)
    assert response == {"run_id": "r-1", **build_response(**FILE), "deliveries": deliveries}
    assert "deliveries" not in ExportResult(**FILE).to_response(run_id="r-1")


def test_the_inbox_result_carries_the_body_rows_and_bytes_of_the_same_response():
    response = build_response(**FILE)
    document = result_document("req-1", Status.complete, response=response)
    assert document["body"] == response_body(response) == [{
        "bucket": "exports", "key": "exports/req-1/a.csv",
        "signedUrl": "https://s3.example/exports/req-1/a.csv?X-Amz-Signature=1",
    }]
    assert (document["rows"], document["bytes"]) == (30, 506)
