from __future__ import annotations

from datetime import datetime, timedelta, timezone

from export_pipeline.service.exports import ExportRecord, ListQuery, Status
from export_pipeline.service.state import StateStore

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _record(i: int, tenant: str = "acme", **extra) -> ExportRecord:
    created = T0 + timedelta(minutes=i)
    values = dict(id=f"e{i}", tenant=tenant, created=created, modified=created, created_by="ci",
                  name=f"n{i}", notes="", tags=[], format="csv", bucket="b", key=f"k{i}")
    return ExportRecord(**{**values, **extra})


def test_records_survive_reopening_and_stay_with_their_tenant(tmp_path):
    path = tmp_path / "state" / "s.sqlite"
    store = StateStore(path)
    store.insert(_record(1, tags=["x"], errors=None))
    store.insert(_record(2, tenant="globex"))
    store.close()
    store = StateStore(path)
    assert store.get("acme", "e1").tags == ["x"]
    assert store.get("globex", "e1") is None and store.get("acme", "e2") is None
    assert [r.id for r in store.list("globex", ListQuery())] == ["e2"]


def test_filters_pages_and_deleted_records(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    for i in range(5):
        store.insert(_record(i, tags=["even"] if i % 2 == 0 else ["odd"],
                             format="pdf" if i == 3 else "csv",
                             status=Status.complete if i < 2 else Status.queued))
    ids = lambda **q: [r.id for r in store.list("acme", ListQuery(**q))]  # noqa: E731
    assert ids() == ["e4", "e3", "e2", "e1", "e0"]
    assert ids(tag="even") == ["e4", "e2", "e0"]
    assert ids(format="pdf") == ["e3"]
    assert ids(status=Status.complete) == ["e1", "e0"]
    assert ids(created_after=T0 + timedelta(minutes=2)) == ["e4", "e3"]
    assert ids(created_before=T0 + timedelta(minutes=1)) == ["e0"]
    assert ids(limit=2) == ["e4", "e3", "e2"]  # one more than the page: there is a next one
    assert ids(limit=2, after=("2026-05-01T00:03:00.000000Z", "e3")) == ["e2", "e1", "e0"]
    deleted = store.get("acme", "e4")
    deleted.deleted = True
    store.save(deleted)
    assert store.get("acme", "e4") is None and "e4" not in ids()
    assert [r.id for r in store.unfinished("acme", deleted=True)] == ["e4"]
    assert store.created_since("acme", T0) == 5  # a deleted export still counts for the quota
