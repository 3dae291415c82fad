"""With the QueuedRunCoordinator (as in the deployments), the service only queues a run;
the Dagster daemon launches it. A real daemon process on the same instance."""

from __future__ import annotations

import dagster as dg
import pytest

from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.integration.service.conftest import TENANTS
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import (
    QUEUED_DAGSTER_YAML,
    dagster_daemon,
    tenant_service,
    wait_for_status,
)


@pytest.fixture(scope="module")
def queued_service(tmp_path_factory, s3_endpoint, service_bucket, demo_store_path):
    server = tenant_service(tmp_path_factory.mktemp("queued"), TENANTS, service_bucket, demo_store_path,
                            s3_endpoint, FAKE_CREDENTIALS, QUEUED_DAGSTER_YAML)
    server.start()
    yield server
    server.stop()


def test_the_service_queues_and_the_daemon_launches(queued_service):
    with queued_service.client("globex") as client:
        response = client.post("/v1/exports", json=SEED_BODY)
        assert response.status_code == 202, response.text
        export_id = response.json()["id"]
        assert client.get(f"/v1/exports/{export_id}").json()["status"] == "queued"
        with dg.DagsterInstance.from_config(queued_service.env["DAGSTER_HOME"]) as instance:
            run = instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": export_id}))[0]
            assert run.status is dg.DagsterRunStatus.QUEUED  # nothing launches it but the daemon
        with dagster_daemon(queued_service.env):
            done = wait_for_status(client, export_id, {"complete", "failed"})
    assert done["status"] == "complete", done
    assert len(parse_csv(download(done["url"]))) - 1 == 30


def test_an_export_canceled_in_the_ui_is_failed_saying_so(queued_service):
    """An operator cancels a queued run from the Dagster UI: the export is ``failed``, with
    the wording the inbox and the notifications use."""
    with queued_service.client("globex") as client:
        export_id = client.post("/v1/exports", json=SEED_BODY).json()["id"]
        with dg.DagsterInstance.from_config(queued_service.env["DAGSTER_HOME"]) as instance:
            run = instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/export_id": export_id}))[0]
            assert run.status is dg.DagsterRunStatus.QUEUED
            instance.report_run_canceled(run)  # what the UI's Terminate does to a queued run
        done = client.get(f"/v1/exports/{export_id}").json()
    assert done["status"] == "failed"
    assert done["errors"] == [{"path": "", "message": "the run was canceled"}]


def test_an_unexpected_failure_is_a_500_in_the_apis_shape_with_its_headers(
    tmp_path, s3_endpoint, service_bucket, demo_store_path
):
    """The run storage gone while an export is queued: viewing it cannot be answered. The
    answer is still JSON, uncached and unsniffed, and the error is in the service's log."""
    home = tmp_path / "dagster_home"
    server = tenant_service(tmp_path, TENANTS, service_bucket, demo_store_path, s3_endpoint,
                            FAKE_CREDENTIALS, QUEUED_DAGSTER_YAML)
    server.start()
    try:
        with server.client("globex") as client:
            export_id = client.post("/v1/exports", json=SEED_BODY).json()["id"]
            runs = home / "history" / "runs.db"
            runs.rename(home / "history" / "runs.db.moved")
            runs.mkdir()  # no database can be opened there
            response = client.get(f"/v1/exports/{export_id}")
    finally:
        server.stop()
    assert response.status_code == 500
    assert response.json() == {
        "reason": "internal_error", "message": "the service failed to answer; its log has the error",
    }
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    [log] = home.glob("service-*.log")
    assert "unable to open database file" in log.read_text(errors="replace")
