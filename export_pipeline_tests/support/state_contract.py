"""What every state store promises (``service.state.StateStore``), as checks run against each
backend: SQLite in the unit tests, PostgreSQL in the integration tests. ``open_store()``
opens the store under test, again on the same database each time it is called."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from export_pipeline.service.exports import ExportRecord, ListQuery, Status
from export_pipeline.service.state import StateStore

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
OpenStore = Callable[[], StateStore]


def record(i: int, tenant: str = "acme", **extra) -> ExportRecord:
    created = T0 + timedelta(minutes=i)
    values = dict(id=f"{tenant}-e{i}", tenant=tenant, created=created, modified=created,
                  created_by="ci", name=f"n{i}", notes="", tags=[], format="csv", bucket="b",
                  key=f"k{i}")
    return ExportRecord(**{**values, **extra})


def records_survive_reopening_and_stay_with_their_tenant(open_store: OpenStore) -> None:
    store = open_store()
    store.insert(record(1, tags=["x"], errors=[{"path": "", "message": "m"}],
                        number_of_rows=3_000_000_000, total_bytes=5 << 30))
    store.insert(record(2, tenant="globex"))
    store.close()
    store = open_store()
    again = store.get("acme", "acme-e1")
    assert again.tags == ["x"] and again.errors == [{"path": "", "message": "m"}]
    assert again.created == T0 + timedelta(minutes=1)
    assert (again.number_of_rows, again.total_bytes) == (3_000_000_000, 5 << 30)
    assert store.get("globex", "acme-e1") is None and store.get("acme", "globex-e2") is None
    assert [r.id for r in store.list("globex", ListQuery())] == ["globex-e2"]
    store.close()


def filters_pages_and_deleted_records(open_store: OpenStore) -> None:
    store = open_store()
    for i in range(5):
        store.insert(record(i, tags=["even"] if i % 2 == 0 else ["odd"],
                            format="pdf" if i == 3 else "csv",
                            status=Status.complete if i < 2 else Status.queued))
    store.insert(record(9, tenant="globex", tags=["even"]))
    ids = lambda **q: [r.id.removeprefix("acme-") for r in store.list("acme", ListQuery(**q))]  # noqa: E731
    assert ids() == ["e4", "e3", "e2", "e1", "e0"]
    assert ids(tag="even") == ["e4", "e2", "e0"]
    assert ids(tag="ev") == []
    assert ids(format="pdf") == ["e3"]
    assert ids(status=Status.complete) == ["e1", "e0"]
    assert ids(created_after=T0 + timedelta(minutes=2)) == ["e4", "e3"]
    assert ids(created_before=T0 + timedelta(minutes=1)) == ["e0"]
    assert ids(limit=2) == ["e4", "e3", "e2"]  # one more than the page: there is a next one
    assert ids(limit=2, after=("2026-05-01T00:03:00.000000Z", "acme-e3")) == ["e2", "e1", "e0"]
    deleted = store.get("acme", "acme-e4")
    deleted.deleted = True
    store.save(deleted)
    assert store.get("acme", "acme-e4") is None and "e4" not in ids()
    assert [r.id for r in store.unfinished("acme", deleted=True)] == ["acme-e4"]
    assert [r.id for r in store.unfinished("acme")] == ["acme-e3", "acme-e2"]
    assert store.created_since("acme", T0) == 5  # a deleted export still counts for the quota
    assert store.created_since("acme", T0 + timedelta(minutes=4)) == 1
    store.close()


def writes_name_the_tenant(open_store: OpenStore) -> None:
    """Another tenant's id in a save or a remove changes nothing."""
    store = open_store()
    store.insert(record(1))
    stranger = record(1, tenant="globex", id="acme-e1", name="taken over")
    store.save(stranger)
    store.remove("globex", "acme-e1")
    assert store.get("acme", "acme-e1").name == "n1"
    store.remove("acme", "acme-e1")
    assert store.get("acme", "acme-e1") is None
    store.close()


def the_quota_admits_exactly_its_number(open_store: OpenStore) -> None:
    store = open_store()
    used = [store.insert_within_quota(record(i), T0, 2) for i in range(3)]
    assert used == [0, 1, 2]
    assert store.get("acme", "acme-e2") is None and store.created_since("acme", T0) == 2
    assert store.insert_within_quota(record(0, tenant="globex"), T0, 2) == 0  # per tenant
    assert store.insert_within_quota(record(5), T0 + timedelta(minutes=3), 2) == 0  # a new month
    store.close()


def racing_stores_cannot_pass_the_quota(open_store: OpenStore, quota: int = 3) -> None:
    """Two stores on one database (as two processes have), several threads each, all asking
    for the last exports at once: exactly ``quota`` are inserted."""
    stores = [open_store(), open_store()]
    start = threading.Barrier(8)
    admitted: list[int] = []

    def create(i: int) -> None:
        start.wait()
        if stores[i % 2].insert_within_quota(record(i), T0, quota) < quota:
            admitted.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == quota
    assert sorted(r.id for r in stores[0].list("acme", ListQuery())) == sorted(f"acme-e{i}" for i in admitted)
    for store in stores:
        store.close()


def the_rate_limit_allows_a_burst_per_tenant(open_store: OpenStore) -> None:
    limiter = open_store().rate_limiter()
    answers = [limiter.retry_after("acme", 3, 3600) for _ in range(4)]
    assert answers[:3] == [0, 0, 0] and 1190 <= answers[3] <= 1200
    assert limiter.retry_after("globex", 3, 3600) == 0


CONTRACT = [
    records_survive_reopening_and_stay_with_their_tenant,
    filters_pages_and_deleted_records,
    writes_name_the_tenant,
    the_quota_admits_exactly_its_number,
    racing_stores_cannot_pass_the_quota,
    the_rate_limit_allows_a_burst_per_tenant,
]
