"""An export whose file the retention sweep deleted, over real HTTP: the service answers it
`expired`, still `complete`, with no link. Its own module, so its own service and bucket:
the sweep clears the whole export prefix."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from export_pipeline.publishing import cleanup
from export_pipeline_tests.support.helpers import all_objects
from export_pipeline_tests.support.requests import SEED_BODY, download, parse_csv
from export_pipeline_tests.support.service import wait_for_status


def test_an_export_past_its_retention_answers_expired_with_no_url(service, service_s3, service_bucket):
    with service.client("acme") as client:
        created = client.post("/v1/exports", json=SEED_BODY).json()
        done = wait_for_status(client, created["id"], {"complete", "failed"})
        assert done["status"] == "complete", done
        assert done["expired"] is False and len(parse_csv(download(done["url"]))) == 31
        created_at = datetime.fromisoformat(done["created"])
        assert datetime.fromisoformat(done["expires_at"]) == created_at + timedelta(days=30)  # the default

        # 31 days on: the sweep deletes the file, and the service's record is that old too
        later = datetime.now(timezone.utc) + timedelta(days=31)
        key = f"exports/tenants/acme/{created['id']}.csv"
        assert cleanup.delete_expired_exports(service_s3, service_bucket, "exports",
                                              timedelta(days=30), later) == [key]
        assert key not in all_objects(service_s3, service_bucket)
        state = Path(service.env["EXPORT_SERVICE_STATE"])
        with sqlite3.connect(state) as db:
            month_ago = (created_at - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            assert db.execute("UPDATE exports SET created = ? WHERE id = ?",
                              (month_ago, created["id"])).rowcount == 1

        expired = client.get(f"/v1/exports/{created['id']}").json()
        assert expired["status"] == "complete" and expired["expired"] is True
        assert expired["url"] is None and expired["number_of_rows"] == 30
        listed = {e["id"]: e for e in client.get("/v1/exports").json()["exports"]}
        assert listed[created["id"]]["expired"] is True and listed[created["id"]]["url"] is None
