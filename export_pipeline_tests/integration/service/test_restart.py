"""The service's state outlives its process: a restarted service answers for the exports of
the one before, with fresh URLs to the same files."""

from __future__ import annotations

from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import wait_for_status


def test_a_restart_keeps_exports_their_fields_and_their_files(service):
    with service.client("acme") as client:
        created = client.post("/v1/exports", json={**SEED_BODY, "name": "kept", "tags": ["t"]}).json()
        before = wait_for_status(client, created["id"], {"complete", "failed"})
    assert before["status"] == "complete", before
    service.stop()
    service.start()
    with service.client("acme") as client:
        after = client.get(f"/v1/exports/{created['id']}").json()
        listed = client.get("/v1/exports").json()["exports"]
    assert {k: v for k, v in after.items() if k != "url"} == {k: v for k, v in before.items() if k != "url"}
    assert after["name"] == "kept" and after["tags"] == ["t"] and after["number_of_rows"] == 30
    assert [e["id"] for e in listed] == [created["id"]]
    assert parse_csv(download(after["url"])) == parse_csv(download(before["url"]))
