"""The state store contract (``support.state_contract``) on SQLite; PostgreSQL runs the same
checks in ``integration/service/test_state_postgres.py``. And ``EXPORT_SERVICE_STATE``'s kinds."""

from __future__ import annotations

import sys

import pytest

from export_pipeline.service.limits import RateLimiter
from export_pipeline.service.state import (
    PostgresStateStore,
    SqliteStateStore,
    StateError,
    open_state,
    state_target,
)
from export_pipeline_tests.support.state_contract import CONTRACT


@pytest.mark.parametrize("check", CONTRACT, ids=lambda check: check.__name__)
def test_the_sqlite_store_keeps_the_contract(check, tmp_path):
    check(lambda: SqliteStateStore(tmp_path / "state" / "s.sqlite"))


def test_a_path_is_sqlite_with_rate_limits_in_memory(tmp_path, monkeypatch):
    store = open_state(tmp_path / "s.sqlite")
    assert isinstance(store, SqliteStateStore) and isinstance(store.rate_limiter(), RateLimiter)
    store.close()
    monkeypatch.setattr(PostgresStateStore, "__init__", lambda self, target, **_: setattr(self, "target", target))
    store = open_state("postgresql://db.internal:6432/exports?sslmode=require")
    assert isinstance(store, PostgresStateStore) and store.rate_limiter() is store
    assert (store.target.host, store.target.port, store.target.database) == ("db.internal", 6432, "exports")
    assert store.target.options == {"sslmode": "require"}


@pytest.mark.parametrize("location, mentions", [
    ("postgresql://exports:s3cret@db.internal/exports", "must not carry a password"),
    ("postgres://db.internal/exports?password=s3cret", "must not carry a password"),
    ("postgresql://db.internal:s3cret/exports", "the port is not a number"),
    ("mysql://exports:s3cret@db.internal/exports", "a SQLite file path or postgresql://"),
    ("sqlite:///srv/state.sqlite", "a SQLite file path or postgresql://"),
])
def test_a_bad_state_url_is_refused_without_its_secret(location, mentions):
    with pytest.raises(ValueError, match=mentions) as refused:
        state_target(location)
    assert "s3cret" not in str(refused.value)


def test_a_state_file_that_cannot_be_opened_names_the_setting(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StateError, match="^EXPORT_SERVICE_STATE "):
        open_state(tmp_path / "a-file" / "s.sqlite")


def test_a_postgresql_state_without_psycopg_says_what_to_install(monkeypatch):
    """An installation without the ``deploy`` extra: one line naming the setting and the
    extra, not an ImportError's traceback from the service's start-up."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StateError) as refused:
        open_state("postgresql://db.internal/exports")
    assert str(refused.value) == (
        "EXPORT_SERVICE_STATE postgresql://db.internal/exports: a PostgreSQL state needs "
        "psycopg: pip install 'export-pipeline[deploy]'"
    )
