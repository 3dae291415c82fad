"""The export service on a SQL metric source (``EXPORT_METRICS_SOURCE``): a request is checked
against the table's columns, the ones its runs read, not against a Parquet folder."""

from __future__ import annotations

import polars as pl

from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import tenant_service, wait_for_status
from export_pipeline_tests.support.sql_stores import load_duckdb


def test_requests_are_checked_against_the_sql_table(
    tmp_path, s3_endpoint, service_bucket, demo_store_path
):
    """The table has a measure (``returns``) no Parquet store has, and ``EXPORT_METRICS_PATH``
    names no folder: the service takes a request for it, refuses one for a measure the table
    lacks, and the run exports the table's numbers."""
    frame = pl.read_parquet(demo_store_path / "**/*.parquet").with_columns(
        returns=pl.col("entries") * 2
    )
    server = tenant_service(tmp_path, {"acme": {}}, service_bucket, tmp_path / "no-parquet-here",
                            s3_endpoint, FAKE_CREDENTIALS,
                            EXPORT_METRICS_SOURCE=load_duckdb(tmp_path / "metrics.db", frame))
    body = {**SEED_BODY, "csvFormat": {**SEED_BODY["csvFormat"], "columns": [
        {"heading": "Date"},
        {"heading": "Entries", "metricId": "entries-by-day", "fetchValue": "entries"},
        {"heading": "Returns", "metricId": "entries-by-day", "fetchValue": "returns"},
    ]}}
    wrong = {**body, "csvFormat": {**body["csvFormat"], "columns": [
        *body["csvFormat"]["columns"],
        {"heading": "Refunds", "metricId": "entries-by-day", "fetchValue": "refunds"},
    ]}}
    server.start()
    try:
        with server.client("acme") as client:
            refused = client.post("/v1/exports", json=wrong)
            created = client.post("/v1/exports", json=body)
            assert created.status_code == 202, created.text
            done = wait_for_status(client, created.json()["id"], {"complete", "failed"})
    finally:
        server.stop()
    assert refused.status_code == 422
    [problem] = refused.json()["errors"]
    assert problem["path"] == "csvFormat.columns[3].fetchValue"
    assert "refunds" in problem["message"] and "returns" in problem["message"]
    assert done["status"] == "complete", done
    rows = parse_csv(download(done["url"]))
    assert rows[0] == ["Date", "Entries", "Returns"]
    assert len(rows) == 31
    assert all(int(returns) == 2 * int(entries) for _, entries, returns in rows[1:])
    assert sum(int(entries) for _, entries, _ in rows[1:]) > 0
