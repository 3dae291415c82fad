"""A real PostgreSQL server on loopback for the SQL metric source's tests (one per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from export_pipeline_tests.support.sql_stores import PostgresServer, postgres_binaries


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if postgres_binaries() is None:
        pytest.fail("PostgreSQL binaries not found: apt-get install postgresql")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
