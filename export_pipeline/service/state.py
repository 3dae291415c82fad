"""The service's own records of exports, in SQLite: one row per export (deleted ones kept,
marked, so a month's quota counts them). The run's status stays in Dagster; a row caches a
finished run's outcome."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from export_pipeline.service.exports import ExportRecord, ListQuery, Status, iso

_SCHEMA = """
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
    number_of_rows INTEGER,
    total_bytes INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS exports_by_tenant ON exports (tenant, deleted, created DESC, id DESC);
"""
_COLUMNS = (
    "id", "tenant", "created", "modified", "created_by", "name", "notes", "tags", "format",
    "bucket", "key", "status", "run_id", "errors", "number_of_rows", "total_bytes", "deleted",
)


class StateStore:
    """Every query names the tenant: no method reaches another tenant's rows."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def insert(self, record: ExportRecord) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO exports ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                _row(record),
            )

    def save(self, record: ExportRecord) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _COLUMNS[2:])
        with self._lock:
            self._db.execute(
                f"UPDATE exports SET {assignments} WHERE id = ? AND tenant = ?",
                (*_row(record)[2:], record.id, record.tenant),
            )

    def remove(self, tenant: str, export_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM exports WHERE id = ? AND tenant = ?", (export_id, tenant))

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
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM exports WHERE tenant = ? AND created >= ?", (tenant, iso(since))
            ).fetchone()
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
            where.append("EXISTS (SELECT 1 FROM json_each(exports.tags) WHERE value = ?)")
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
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_record(row) for row in rows]


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
