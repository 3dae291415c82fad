from __future__ import annotations

from datetime import datetime, timedelta, timezone

from export_pipeline.service.exports import (
    ExportRecord,
    RunObservation,
    Status,
    apply,
    decode_cursor,
    encode_cursor,
    resource,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def record(**extra) -> ExportRecord:
    values = dict(id="e1", tenant="acme", created=T0, modified=T0, created_by="ci", name="n",
                  notes="", tags=["a"], format="csv", bucket="b", key="exports/tenants/acme/e1.csv")
    return ExportRecord(**{**values, **extra})


def test_a_queued_export_shows_no_counts_no_url_and_no_internal_fields():
    body = resource(record(), url="https://signed")
    assert body["status"] == "queued" and body["url"] is None and body["number_of_rows"] is None
    assert "bucket" not in body and "key" not in body and "run_id" not in body and "progress" not in body
    assert body["created"] == "2026-05-01T12:00:00.000000Z"


def test_complete_shows_counts_and_url_running_shows_progress_failed_shows_errors():
    r = record()
    later = T0 + timedelta(seconds=5)
    assert apply(r, RunObservation(Status.running), later)
    assert resource(r, progress={"fetches_done": 1, "fetches_total": 2, "rows": None})["progress"]["fetches_done"] == 1
    assert not apply(r, RunObservation(Status.running), later)
    assert apply(r, RunObservation(Status.complete, rows=30, bytes=506), later)
    body = resource(r, url="https://signed")
    assert (body["status"], body["number_of_rows"], body["total_bytes"], body["url"]) == (
        "complete", 30, 506, "https://signed")
    assert body["modified"] == "2026-05-01T12:00:05.000000Z"
    failed = record()
    apply(failed, RunObservation(Status.failed, [{"path": "x", "message": "bad"}]), later)
    assert resource(failed)["errors"] == [{"path": "x", "message": "bad"}]


def test_a_cursor_round_trips_and_garbage_is_refused():
    assert decode_cursor(encode_cursor(record())) == ("2026-05-01T12:00:00.000000Z", "e1")
    for bad in ("", "garbage", "W10", "WyJ4IiwgMV0"):
        assert decode_cursor(bad) is None
