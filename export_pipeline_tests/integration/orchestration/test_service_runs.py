"""What the export service reads back from a run of the API's job in a real instance: its
progress (store reads done of total, rows combined) and its outcome."""

from __future__ import annotations

import copy

import dagster as dg
import pytest

from export_pipeline.orchestration.definitions import build_definitions
from export_pipeline.orchestration.run_outcomes import run_progress
from export_pipeline.orchestration.service_runs import api_run_config, run_errors
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv


def _run(instance, document, file_path="tenants/acme/e1"):
    job = build_definitions().resolve_job_def("api_export_job")
    return job.execute_in_process(
        run_config={"request": document, "file_path": file_path}, instance=instance,
        raise_on_error=False,
    )


def test_progress_counts_each_store_read_and_the_combined_rows(instance, bucket, demo_store_path, monkeypatch):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    body = copy.deepcopy(SEED_BODY)
    # 2024-01-01 .. 2024-04-30 is 121 days: two 90-day windows, two store reads
    body["metricRequests"][0]["start"] = "2024-01-01T00:00:00Z"
    result = _run(instance, body)
    assert result.success
    export = result.output_for_node("materialize_export")
    assert export.key == "exports/tenants/acme/e1.csv"
    rows = parse_csv(download(export.signed_url))
    assert run_progress(instance, result.run_id) == {
        "fetches_done": 2, "fetches_total": 2, "rows": len(rows) - 1}
    assert len(rows) - 1 == 121


def test_a_failed_runs_errors_carry_the_request_paths(instance, bucket, demo_store_path, monkeypatch):
    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    body = copy.deepcopy(SEED_BODY)
    body["csvFormat"]["columns"][1]["fetchValue"] = "no_such_measure"
    result = _run(instance, body)
    assert not result.success
    errors = run_errors(instance, result.run_id)
    assert any(e["path"] == "csvFormat.columns[1].fetchValue" for e in errors), errors


def test_the_run_config_puts_the_file_at_the_services_path_and_refuses_plaintext_secrets():
    config = api_run_config({"request": SEED_BODY, "file_path": "tenants/acme/x"})
    assert config["ops"]["materialize_export"] == {"config": {"fixed_key": "tenants/acme/x"}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        api_run_config({"request": {**SEED_BODY, "destinations": [
            {"type": "sftp", "server": "h", "username": "u", "password": "p"}]}, "file_path": "x"})


def test_a_tenants_branding_replaces_the_deployments_on_its_pdf(instance, bucket, demo_store_path, monkeypatch):
    import io

    from pypdf import PdfReader

    monkeypatch.setenv("EXPORT_METRICS_PATH", str(demo_store_path))
    monkeypatch.setenv("EXPORT_BRAND_NAME", "Deployment Default")
    job = build_definitions().resolve_job_def("api_export_job")
    result = job.execute_in_process(
        run_config={"request": {**SEED_BODY, "format": "pdf"}, "file_path": "tenants/acme/p1",
                    "branding": {"name": "Acme Analytics", "primary_color": "#112233"}},
        instance=instance, raise_on_error=False,
    )
    assert result.success
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(download(
        result.output_for_node("materialize_export").signed_url))).pages)
    assert "Acme Analytics" in text and "Deployment Default" not in text
