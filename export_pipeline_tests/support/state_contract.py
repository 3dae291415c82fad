"""What every state store promises (``service.state.StateStore``), as checks run against each
backend: SQLite in the unit tests, PostgreSQL in the integration tests. ``open_store()``
opens the store under test, again on the same database each time it is called."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from uuid import uuid4

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


def every_record_is_read_for_a_copy(open_store: OpenStore) -> None:
    """``all_records``: every tenant's, deleted and unfinished ones too, in id order, whatever
    the page size."""
    store = open_store()
    for i in range(7):
        store.insert(record(i, tenant=("acme", "globex")[i % 2], deleted=i == 3,
                            status=Status.running if i == 4 else Status.complete))
    ids = sorted(f"{('acme', 'globex')[i % 2]}-e{i}" for i in range(7))
    assert [r.id for r in store.all_records(batch=3)] == ids
    assert list(store.all_records(batch=3)) == list(store.all_records(batch=7)) == list(store.all_records())
    assert [r.id for r in store.all_records() if r.deleted] == ["globex-e3"]
    store.close()


def fill_as_the_service_does(store: StateStore, quota: int = 100) -> list[ExportRecord]:
    """A state in use, written as the service writes it (quota-checked inserts, then saves):
    three tenants, and one export per tenant of each kind a copy must keep: finished with its
    outcome, failed with its errors, queued, running, deleted while running, deleted when
    done. Returns the records as saved."""
    saved = []
    for t, tenant in enumerate(("acme", "globex", "hooli")):
        kinds = [
            dict(status=Status.complete, run_id=f"run-{tenant}-0", number_of_rows=3_000_000_000,
                 total_bytes=5 << 30),
            dict(status=Status.failed, run_id=f"run-{tenant}-1",
                 errors=[{"path": "/measures/0", "message": "no 'such' measure — «x»"}]),
            dict(status=Status.queued, run_id=None),
            dict(status=Status.running, run_id=f"run-{tenant}-3"),
            dict(status=Status.running, run_id=f"run-{tenant}-4", deleted=True),
            dict(status=Status.complete, run_id=f"run-{tenant}-5", number_of_rows=0,
                 total_bytes=0, deleted=True),
        ]
        for i, kind in enumerate(kinds):
            created = T0 + timedelta(days=i * 9, microseconds=t * 1001 + i)
            new = ExportRecord(
                id=f"{uuid4()}", tenant=tenant, created=created, modified=created,
                created_by=f"key-{t}", name=f"Export {i} of {tenant}", notes='quoted "notes"\nline 2',
                tags=["daily", f"t{i}", "ünïcode"][: i % 4], format=("csv", "xlsx", "pdf")[i % 3],
                bucket="exports", key=f"exports/{tenant}/{i}.csv",
            )
            assert store.insert_within_quota(new, T0, quota) < quota
            done = replace(new, modified=created + timedelta(minutes=5), **kind)
            store.save(done)
            saved.append(done)
    return saved


CONTRACT = [
    every_record_is_read_for_a_copy,
    records_survive_reopening_and_stay_with_their_tenant,
    filters_pages_and_deleted_records,
    writes_name_the_tenant,
    the_quota_admits_exactly_its_number,
    racing_stores_cannot_pass_the_quota,
    the_rate_limit_allows_a_burst_per_tenant,
]
