"""The service's own records of exports: one row per export (deleted ones kept, marked, so a
month's quota counts them). The run's status stays in Dagster; a row caches a finished run's
outcome.

One interface (``StateStore``), two databases: a SQLite file for one service process, or
PostgreSQL for replicas that share their records (``EXPORT_SERVICE_STATE``, ``open_state``).
Both run the same queries; only what the engines spell differently (placeholders, a JSON array's
elements) and how a transaction shuts out other processes differ. Every query the service makes
names the tenant: no request reaches another tenant's rows. Only moving the state to another
database (``all_records``, ``copy_from``) reads and writes every tenant's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from export_pipeline.service.exports import ExportRecord, ListQuery, Status, iso
from export_pipeline.service.limits import Limiter, RateLimiter, take_token, within_quota
from export_pipeline.store.sql_url import POSTGRES_SCHEMES, SqlTarget

_TABLE = """
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    created_by TEXT NOT NULL,
    name TEXT NOT NULL,
    notes TEXT NOT NULL,
    tags TEXT NOT NULL,
    format TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    run_id TEXT,
    errors TEXT,
    number_of_rows BIGINT,
    total_bytes BIGINT,
    deleted INTEGER NOT NULL DEFAULT 0
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS exports_by_tenant ON exports (tenant, deleted, created DESC, id DESC)"
_COLUMNS = (
    "id", "tenant", "created", "modified", "created_by", "name", "notes", "tags", "format",
    "bucket", "key", "status", "run_id", "errors", "number_of_rows", "total_bytes", "deleted",
)
_INSERT = f"INSERT INTO exports ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_COUNT = "SELECT COUNT(*) FROM exports WHERE tenant = ? AND created >= ?"
# Rows per statement when copying: 17 placeholders each stays under SQLite's oldest limit (999).
_COPY_BATCH = 50

Execute = Callable[[str, tuple], list[tuple]]


class StateError(RuntimeError):
    """The state's database cannot be opened (the message names the setting, no secret)."""


class StateRefused(StateError):
    """The state is not one the operation may use (a source that holds no state, a target that
    already holds records); nothing was written."""


@dataclass
class Copied:
    """What ``copy_from`` did, per tenant: records inserted, and records the target already held
    (``merge``)."""

    copied: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def state_target(location: str) -> SqlTarget | None:
    """The PostgreSQL database ``EXPORT_SERVICE_STATE`` names, or ``None`` for a SQLite
    file; a URL of any other kind, or one carrying a password, is refused (``ValueError``)."""
    if "://" not in location:
        return None
    if location.partition("://")[0].lower() not in POSTGRES_SCHEMES:
        raise ValueError("a SQLite file path or postgresql://host[:port]/database")
    return SqlTarget.parse(location, POSTGRES_SCHEMES)


def open_state(location: str | Path, *, create: bool = True,
               setting: str = "EXPORT_SERVICE_STATE") -> StateStore:
    """The store ``EXPORT_SERVICE_STATE`` names: a PostgreSQL URL or a SQLite file path.
    ``create=False`` opens only an existing state and writes nothing to it (a copy's source:
    a mistyped path must not become an empty state); ``setting`` is the name errors give."""
    target = state_target(str(location))
    if target is not None:
        return PostgresStateStore(target, create=create, setting=setting)
    return SqliteStateStore(location, create=create, setting=setting)


class StateStore(ABC):
    """The queries, written once with ``?`` placeholders; each database runs them
    (``_execute``) and makes the quota's count and insert one step (``_tenant_transaction``)."""

    _TAG_IN = "EXISTS (SELECT 1 FROM json_each(exports.tags) WHERE value = ?)"

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def rate_limiter(self) -> Limiter:
        """Where the tenants' rate limit buckets are kept."""

    @abstractmethod
    def _execute(self, sql: str, args: tuple = ()) -> list[tuple]: ...

    @abstractmethod
    def _tenant_transaction(self, tenant: str) -> AbstractContextManager[Execute]:
        """Statements (``Execute``) that commit together, while no other thread or process
        is inside such a transaction for ``tenant``."""

    @abstractmethod
    def identity(self) -> tuple:
        """Equal for two stores on one table of records, however their locations are spelled
        (a symbolic link, a host's other name): a copy onto itself is refused."""

    @abstractmethod
    def _exclusive_transaction(self) -> AbstractContextManager[Execute]:
        """Statements (``Execute``) that commit together, or not at all, while no other thread
        or process writes any record."""

    def all_records(self, batch: int = 500) -> Iterator[ExportRecord]:
        """Every tenant's records, deleted and unfinished ones too, in id order, a page at a
        time: what moving the state to another database copies."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM exports WHERE id > ? ORDER BY id LIMIT {int(batch)}"
        after = ""
        while True:
            rows = self._execute(sql, (after,))
            yield from map(_record, rows)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def copy_from(self, source: StateStore, merge: bool = False) -> Copied:
        """Insert every record of ``source`` in one transaction, so a failure leaves this state
        as it was. A state already holding records is refused (``StateRefused``), unless
        ``merge``: then a record it holds for the same tenant is skipped, and one whose id it
        holds for another tenant refuses the whole copy (records are keyed by id alone)."""
        done = Copied()
        try:
            with self._exclusive_transaction() as execute:
                ((held,),) = execute("SELECT COUNT(*) FROM exports", ())
                if held and not merge:
                    raise StateRefused(f"already holds {held} export record(s)")
                records = source.all_records()
                while batch := list(islice(records, _COPY_BATCH)):
                    if held:
                        batch = self._not_held(execute, batch, done)
                    if batch:
                        execute(_insert_many(len(batch)), tuple(v for r in batch for v in _row(r)))
                    done.copied.update(r.tenant for r in batch)
        except _engine_errors() as error:
            raise StateError(f"the copy failed, nothing was written: {_first_line(error)}") from None
        return done

    @staticmethod
    def _not_held(execute: Execute, batch: list[ExportRecord], done: Copied) -> list[ExportRecord]:
        marks = ", ".join("?" * len(batch))
        owners = dict(execute(f"SELECT id, tenant FROM exports WHERE id IN ({marks})",
                              tuple(r.id for r in batch)))
        for record in batch:
            owner = owners.get(record.id)
            if owner is not None and owner != record.tenant:
                raise StateRefused(f"holds export {record.id} for tenant {owner}, not "
                                   f"{record.tenant}: nothing was copied")
            if owner is not None:
                done.skipped[record.tenant] += 1
        return [r for r in batch if r.id not in owners]

    def insert(self, record: ExportRecord) -> None:
        self._execute(_INSERT, _row(record))

    def insert_within_quota(self, record: ExportRecord, since: datetime, quota: int) -> int:
        """Insert ``record`` only if its tenant has created fewer than ``quota`` exports
        since ``since``; returns that count. Count and insert are one step for every process
        sharing the store, so racing requests cannot both take the last export."""
        with self._tenant_transaction(record.tenant) as execute:
            ((used,),) = execute(_COUNT, (record.tenant, iso(since)))
            if within_quota(used, quota):
                execute(_INSERT, _row(record))
        return used

    def save(self, record: ExportRecord) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _COLUMNS[2:])
        self._execute(
            f"UPDATE exports SET {assignments} WHERE id = ? AND tenant = ?",
            (*_row(record)[2:], record.id, record.tenant),
        )

    def remove(self, tenant: str, export_id: str) -> None:
        self._execute("DELETE FROM exports WHERE id = ? AND tenant = ?", (export_id, tenant))

    def get(self, tenant: str, export_id: str) -> ExportRecord | None:
        rows = self._select("tenant = ? AND id = ? AND deleted = 0", (tenant, export_id))
        return rows[0] if rows else None

    def unfinished(self, tenant: str, deleted: bool = False) -> list[ExportRecord]:
        """Exports whose run may still change them (``deleted``: the deleted ones, whose
        run may still write a file that must go too)."""
        return self._select(
            "tenant = ? AND deleted = ? AND status IN ('queued', 'running')", (tenant, int(deleted))
        )

    def created_since(self, tenant: str, since: datetime) -> int:
        ((count,),) = self._execute(_COUNT, (tenant, iso(since)))
        return count

    def list(self, tenant: str, query: ListQuery) -> list[ExportRecord]:
        """Newest first, ``query.limit + 1`` at most (the extra one says there is a next page)."""
        where, args = ["tenant = ?", "deleted = 0"], [tenant]
        if query.status is not None:
            where.append("status = ?")
            args.append(query.status.value)
        if query.format is not None:
            where.append("format = ?")
            args.append(query.format)
        if query.tag is not None:
            where.append(self._TAG_IN)
            args.append(query.tag)
        if query.created_after is not None:
            where.append("created > ?")
            args.append(iso(query.created_after))
        if query.created_before is not None:
            where.append("created < ?")
            args.append(iso(query.created_before))
        if query.after is not None:
            where.append("(created < ? OR (created = ? AND id < ?))")
            args += [query.after[0], query.after[0], query.after[1]]
        return self._select(" AND ".join(where), tuple(args), limit=query.limit + 1)

    def _select(self, where: str, args: tuple, limit: int | None = None) -> list[ExportRecord]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM exports WHERE {where} ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(row) for row in self._execute(sql, args)]


class SqliteStateStore(StateStore):
    """A SQLite file, for one service process (its rate limits are kept in memory).
    ``BEGIN IMMEDIATE`` takes the file's write lock before the quota's count, so the count
    and the insert are one step whoever else has the file open."""

    def __init__(self, path: str | Path, create: bool = True,
                 setting: str = "EXPORT_SERVICE_STATE"):
        if not create and not Path(path).is_file():
            raise StateRefused(f"{setting} {path}: no such file")
        try:
            if create:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                       timeout=30)
            if create:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(_TABLE)
                self._db.execute(_INDEX)
            else:
                found = self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exports'"
                ).fetchall()
        except (OSError, sqlite3.Error) as error:
            raise StateError(f"{setting} {path}: {error}") from None
        if not create and not found:
            self._db.close()
            raise StateRefused(f"{setting} {path}: not an export service state (no exports table)")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def identity(self) -> tuple:
        ((database,),) = self._execute("SELECT file FROM pragma_database_list WHERE name = 'main'")
        status = Path(database).stat()
        return ("sqlite", status.st_dev, status.st_ino)

    def rate_limiter(self) -> Limiter:
        return RateLimiter()

    def _execute(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _tenant_transaction(self, tenant: str) -> AbstractContextManager[Execute]:
        return self._exclusive_transaction()

    @contextmanager
    def _exclusive_transaction(self) -> Iterator[Execute]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield lambda sql, args: self._db.execute(sql, args).fetchall()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


# Advisory locks, two-int keys: (class, 0) while the schema is created; (class, hash of the
# tenant) around a tenant's quota check and insert.
_SCHEMA_LOCK, _QUOTA_LOCK = 0x45585053, 0x45585051
_BUCKETS = """
CREATE TABLE IF NOT EXISTS export_rate_buckets (
    tenant TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL
)"""
_NOW = "extract(epoch FROM clock_timestamp())::float8"


class PostgresStateStore(StateStore):
    """A PostgreSQL database shared by every service replica: the records, the quota (a
    transaction holding the tenant's advisory lock) and the rate limit buckets (a row per
    tenant, timed by the database's clock so the replicas' clocks do not matter).
    Connections are pooled, at most ``pool_size`` at once; a broken one is dropped, and an
    idle one is checked before it is used again."""

    _TAG_IN = "EXISTS (SELECT 1 FROM jsonb_array_elements_text(exports.tags::jsonb) AS t WHERE t = ?)"

    def __init__(self, target: SqlTarget, pool_size: int = 8,
                 application_name: str = "export_pipeline service", create: bool = True,
                 setting: str = "EXPORT_SERVICE_STATE"):
        self.target = target
        self._application_name = application_name
        self._idle: list[Any] = []
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()
        try:
            import psycopg
        except ImportError:
            raise StateError(f"{setting} {target.describe()}: a PostgreSQL state needs psycopg: "
                             "pip install 'export-pipeline[deploy]'") from None

        try:
            with self._connection() as con, con.transaction():
                if create:
                    # two replicas starting at once: CREATE ... IF NOT EXISTS is not safe concurrently
                    con.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_SCHEMA_LOCK,))
                    for statement in (_TABLE, _INDEX, _BUCKETS):
                        con.execute(statement)
                else:
                    ((found,),) = con.execute("SELECT to_regclass('exports') IS NOT NULL").fetchall()
        except psycopg.Error as error:
            raise StateError(f"{setting} {target.describe()}: {_first_line(error)}") from None
        if not create and not found:
            self.close()
            raise StateRefused(f"{setting} {target.describe()}: not an export service state "
                               "(no exports table)")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for con in idle:
            con.close()

    def rate_limiter(self) -> Limiter:
        return self

    def identity(self) -> tuple:
        ((started, database, table),) = self._execute(
            "SELECT pg_postmaster_start_time()::text, (SELECT oid FROM pg_database WHERE "
            "datname = current_database()), to_regclass('exports')::oid")
        return ("postgres", started, database, table)

    def retry_after(self, tenant: str, requests: int, per_seconds: float) -> int:
        """The tenant's bucket row, locked by the upsert that reads it, updated in the same
        transaction: one bucket for every replica."""
        with self._connection() as con, con.transaction():
            tokens, then, now = con.execute(
                "INSERT INTO export_rate_buckets AS b (tenant, tokens, updated) "
                f"VALUES (%s, %s, {_NOW}) ON CONFLICT (tenant) DO UPDATE SET tenant = b.tenant "
                f"RETURNING b.tokens, b.updated, {_NOW}",
                (tenant, float(requests)),
            ).fetchone()
            tokens, wait = take_token(tokens, then, now, requests, per_seconds)
            con.execute("UPDATE export_rate_buckets SET tokens = %s, updated = %s WHERE tenant = %s",
                        (tokens, now, tenant))
        return wait

    def _execute(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._connection() as con:
            return _rows(con.execute(_placeholders(sql), args))

    @contextmanager
    def _tenant_transaction(self, tenant: str) -> Iterator[Execute]:
        with self._connection() as con, con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_QUOTA_LOCK, tenant))
            yield lambda sql, args: _rows(con.execute(_placeholders(sql), args))

    @contextmanager
    def _exclusive_transaction(self) -> Iterator[Execute]:
        with self._connection() as con, con.transaction():
            con.execute("LOCK TABLE exports IN EXCLUSIVE MODE")  # readers go on, writers wait
            yield lambda sql, args: _rows(con.execute(_placeholders(sql), args))

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._slots:
            with self._lock:
                con = self._idle.pop() if self._idle else None
            if con is not None and not _alive(con):
                con.close()
                con = None
            if con is None:
                con = self._connect()
            try:
                yield con
            finally:
                if con.closed or con.broken:
                    con.close()
                else:
                    with self._lock:
                        self._idle.append(con)

    def _connect(self) -> Any:
        import psycopg

        target = self.target
        options = {"application_name": self._application_name, "connect_timeout": 10,
                   **target.options}
        return psycopg.connect(host=target.host or None, port=target.port,
                               dbname=target.database or None, user=target.user,
                               autocommit=True, **options)


def _alive(con: Any) -> bool:
    """Whether an idle connection still reaches the server. One that a restart of the
    database (or a proxy's idle timeout) cut would fail the call that takes it next, a 500 for
    a request that a fresh connection answers."""
    import psycopg

    try:
        con.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _engine_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _insert_many(rows: int) -> str:
    values = f"({', '.join('?' * len(_COLUMNS))})"
    return f"INSERT INTO exports ({', '.join(_COLUMNS)}) VALUES {', '.join([values] * rows)}"


def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


def _rows(cursor: Any) -> list[tuple]:
    return cursor.fetchall() if cursor.description is not None else []


def _row(record: ExportRecord) -> tuple:
    return (
        record.id, record.tenant, iso(record.created), iso(record.modified), record.created_by,
        record.name, record.notes, json.dumps(record.tags), record.format, record.bucket,
        record.key, record.status.value, record.run_id,
        json.dumps(record.errors) if record.errors is not None else None,
        record.number_of_rows, record.total_bytes, int(record.deleted),
    )


def _record(row: tuple) -> ExportRecord:
    values = dict(zip(_COLUMNS, row))
    return ExportRecord(
        **{
            **values,
            "created": datetime.fromisoformat(values["created"]),
            "modified": datetime.fromisoformat(values["modified"]),
            "tags": json.loads(values["tags"]),
            "status": Status(values["status"]),
            "errors": json.loads(values["errors"]) if values["errors"] else None,
            "deleted": bool(values["deleted"]),
        }
    )
