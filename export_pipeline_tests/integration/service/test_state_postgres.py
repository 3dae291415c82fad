"""The state store contract (``support.state_contract``) on a real PostgreSQL, each check on a
database of its own; and the rate limit bucket two stores (two replicas) share."""

from __future__ import annotations

import threading

import pytest

from export_pipeline.service.state import PostgresStateStore, StateError, open_state
from export_pipeline_tests.support.state_contract import CONTRACT


@pytest.fixture
def database(postgres) -> str:
    return postgres.url(postgres.new_database("state"))


@pytest.mark.parametrize("check", CONTRACT, ids=lambda check: check.__name__)
def test_the_postgres_store_keeps_the_contract(check, database):
    check(lambda: open_state(database))


def test_two_stores_starting_at_once_both_create_the_schema(database):
    start, opened, failed = threading.Barrier(4), [], []

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_state(database))
        except Exception as error:  # noqa: BLE001 - reported below
            failed.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == [] and len(opened) == 4
    for store in opened:
        store.close()


def test_two_stores_share_one_rate_limit_bucket(database):
    first, second = open_state(database), open_state(database)
    assert isinstance(first, PostgresStateStore)
    answers = [store.retry_after("acme", 4, 3600) for store in (first, second) * 3]
    assert answers[:4] == [0, 0, 0, 0] and all(wait > 0 for wait in answers[4:])
    assert first.retry_after("globex", 4, 3600) == 0
    first.close()
    second.close()


def test_an_unreachable_database_names_the_setting(postgres):
    with pytest.raises(StateError, match=r"^EXPORT_SERVICE_STATE postgresql://127.0.0.1:\d+/no_such_db: "):
        open_state(postgres.url("no_such_db"))


def test_connections_cut_while_idle_are_replaced_without_a_failed_call(database, postgres):
    """A database restart (or a proxy's idle timeout) cuts the pooled connections; the next
    calls get new ones instead of failing once per cut connection."""
    store = open_state(database)
    assert store.retry_after("acme", 100, 1) == 0
    with postgres.connect() as admin:
        [[cut]] = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (database.rsplit("/", 1)[1],),
        ).fetchall()
    assert cut >= 1
    assert [store.retry_after("acme", 100, 1) for _ in range(3)] == [0, 0, 0]
    store.close()
