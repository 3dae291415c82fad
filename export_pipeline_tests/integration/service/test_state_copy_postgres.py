"""Moving a SQLite state to a real PostgreSQL with the real command (a process of its own):
every record, field for field, and every tenant's quota count arrive, each tenant seeing only
its own; what must be refused is, and leaves the database as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from export_pipeline.service.exports import ListQuery
from export_pipeline.service.state import PostgresStateStore, open_state, state_target
from export_pipeline_tests.support.state_contract import T0, fill_as_the_service_does, record

TENANTS = ("acme", "globex", "hooli")


@pytest.fixture
def database(postgres) -> str:
    return postgres.url(postgres.new_database("copy"))


@pytest.fixture
def source(tmp_path) -> tuple[Path, list]:
    path = tmp_path / "dagster_home" / "export-service.sqlite"
    store = open_state(path)  # as the service opens EXPORT_SERVICE_STATE
    saved = fill_as_the_service_does(store)
    store.close()
    return path, saved


def _copy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export_pipeline", "service-state", "copy", *args],
                          capture_output=True, text=True, timeout=120)


def _postgres(url: str) -> PostgresStateStore:
    return PostgresStateStore(state_target(url))


def _tables(postgres, url: str) -> list[str]:
    with postgres.connect(url.rsplit("/", 1)[1]) as con:
        return [name for (name,) in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_every_record_and_quota_count_arrives_for_its_tenant_alone(source, database):
    path, saved = source
    done = _copy("--from", str(path), "--to", database)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"copied 18 export record(s) (acme 6, globex 6, hooli 6) from {path} to "
        f"{state_target(database).describe()}"]
    before, after = open_state(path), _postgres(database)
    assert list(after.all_records()) == list(before.all_records()) == sorted(saved, key=lambda r: r.id)
    for tenant in TENANTS:
        mine = [r for r in saved if r.tenant == tenant]
        for r in mine:
            assert after.get(tenant, r.id) == (None if r.deleted else r)
            for other in set(TENANTS) - {tenant}:
                assert after.get(other, r.id) is None
        assert after.list(tenant, ListQuery()) == before.list(tenant, ListQuery())
        assert [r.tenant for r in after.list(tenant, ListQuery())] == [tenant] * 4
        assert after.unfinished(tenant, deleted=True) == before.unfinished(tenant, deleted=True)
        for since in (T0, T0.replace(day=20)):
            assert after.created_since(tenant, since) == before.created_since(tenant, since)
        assert after.created_since(tenant, T0) == 6  # the deleted ones still count
    assert after.created_since("initech", T0) == 0
    after.close()
    before.close()


def test_a_database_holding_records_is_refused_and_left_as_it_was(source, database):
    path, _ = source
    store = _postgres(database)
    store.insert(record(1, tenant="initech"))
    held = list(store.all_records())
    done = _copy("--from", str(path), "--to", database)
    assert done.returncode == 2 and done.stdout == ""
    assert "--to postgresql://127.0.0.1:" in done.stderr and "already holds 1 export record(s)" in done.stderr
    assert list(store.all_records()) == held
    store.close()


def test_merge_adds_what_the_database_lacks(source, database):
    path, saved = source
    store = _postgres(database)
    store.insert(saved[0])
    store.insert(record(1, tenant="initech"))
    done = _copy("--from", str(path), "--to", database, "--merge")
    assert done.returncode == 0, done.stderr
    assert "copied 17 export record(s) (acme 5, globex 6, hooli 6)" in done.stdout
    assert "skipped 1 the target held (acme 1)" in done.stdout
    assert list(store.all_records()) == sorted([*saved, record(1, tenant="initech")], key=lambda r: r.id)
    store.close()


def test_a_copy_failing_midway_writes_nothing(tmp_path, database):
    """More records than one insert statement takes, the last one unreadable: the statements
    already run are rolled back with the rest."""
    path = tmp_path / "state.sqlite"
    store = open_state(path)
    for i in range(120):
        store.insert(record(i, id=f"e{i:03d}"))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE exports SET created = 'not a time' WHERE id = 'e119'")
    db.close()
    done = _copy("--from", str(path), "--to", database)
    assert done.returncode == 1 and "service-state copy failed" in done.stderr
    target = _postgres(database)
    assert list(target.all_records()) == []
    target.close()


def test_refusals_leave_the_database_as_it_was(source, database, postgres, tmp_path):
    path, _ = source
    store = _postgres(database)
    store.insert(record(1, tenant="initech"))
    held, tables = list(store.all_records()), _tables(postgres, database)
    missing = tmp_path / "typo" / "export-service.sqlite"
    with_password = database.replace("postgres@", "postgres:s3cret@")
    with_password_option = f"{database}?password=s3cret"
    cases = [
        (("--from", str(missing), "--to", database), f"--from {missing}: no such file"),
        (("--from", database, "--to", database), "--from and --to name the same state"),
        (("--from", database, "--to", database.replace("127.0.0.1", "localhost")),
         "--from and --to name the same state"),
        (("--from", str(path), "--to", with_password), "--to: the URL must not carry a password"),
        (("--from", str(path), "--to", with_password_option), "--to: the URL must not carry a password"),
        (("--from", with_password, "--to", str(tmp_path / "back.sqlite")),
         "--from: the URL must not carry a password"),
    ]
    for args, says in cases:
        done = _copy(*args)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert says in done.stderr and "s3cret" not in done.stderr
        assert list(store.all_records()) == held and _tables(postgres, database) == tables
    assert not missing.parent.exists() and not (tmp_path / "back.sqlite").exists()
    store.close()


def test_a_database_without_a_state_is_no_source_and_stays_empty(database, postgres, tmp_path):
    done = _copy("--from", database, "--to", str(tmp_path / "back.sqlite"))
    assert done.returncode == 2 and "not an export service state" in done.stderr
    assert _tables(postgres, database) == [] and not (tmp_path / "back.sqlite").exists()


def test_back_from_postgresql_to_a_sqlite_file(source, database, tmp_path):
    path, saved = source
    assert _copy("--from", str(path), "--to", database).returncode == 0
    back = tmp_path / "back" / "export-service.sqlite"
    done = _copy("--from", database, "--to", str(back))
    assert done.returncode == 0, done.stderr
    store = open_state(back)
    assert list(store.all_records()) == sorted(saved, key=lambda r: r.id)
    store.close()
