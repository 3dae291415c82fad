"""The export resource: what a caller sees of one export, its status workflow
(``queued`` → ``running`` → ``complete`` or ``failed``) and the list filters and cursor.

Status comes from the run that makes the file; the record keeps what the run does not know
(name, notes, tags, owner) and, once the run has finished, its outcome, so finished exports
are answered without asking the run's storage again.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any


class Status(str, Enum):
    queued = "queued"
    running = "running"
    complete = "complete"
    failed = "failed"

    @property
    def finished(self) -> bool:
        return self in (Status.complete, Status.failed)


@dataclass
class ExportRecord:
    id: str
    tenant: str
    created: datetime
    modified: datetime
    created_by: str
    name: str
    notes: str
    tags: list[str]
    format: str
    bucket: str
    key: str
    status: Status = Status.queued
    run_id: str | None = None
    errors: list[dict[str, str]] | None = None
    number_of_rows: int | None = None
    total_bytes: int | None = None
    deleted: bool = False


@dataclass(frozen=True)
class RunObservation:
    """What the run that makes an export reports: its status, and once finished its outcome;
    while running, ``progress`` (store reads done of total, rows combined)."""

    status: Status
    errors: list[dict[str, str]] | None = None
    rows: int | None = None
    bytes: int | None = None
    progress: dict[str, int | None] | None = None


def apply(record: ExportRecord, seen: RunObservation, now: datetime) -> bool:
    """Fold what the run reports into the record; whether anything changed."""
    if seen.status is record.status:
        return False
    record.status = seen.status
    record.modified = now
    if seen.status is Status.complete:
        record.number_of_rows, record.total_bytes = seen.rows, seen.bytes
    if seen.status is Status.failed:
        record.errors = seen.errors or [{"path": "", "message": "the export's run failed"}]
    return True


def expires_at(record: ExportRecord, retention: timedelta | None) -> datetime | None:
    """When a complete export's file is gone: ``retention`` after the export was created. The
    file was written after that, so its lifecycle rule or sweep deletes it no earlier: past
    this instant the export is answered expired, never with a link that may already be dead."""
    if retention is None or record.status is not Status.complete:
        return None
    return record.created + retention


def resource(record: ExportRecord, url: str | None = None,
             progress: dict[str, int | None] | None = None,
             expiry: datetime | None = None, expired: bool = False) -> dict[str, Any]:
    """The JSON a caller sees. Counts and the URL only once complete (no URL once expired),
    progress only while running; the bucket, key and run stay inside the service."""
    complete = record.status is Status.complete
    body: dict[str, Any] = {
        "id": record.id,
        "created": iso(record.created),
        "modified": iso(record.modified),
        "created_by": record.created_by,
        "name": record.name,
        "notes": record.notes,
        "status": record.status.value,
        "errors": record.errors if record.status is Status.failed else None,
        "number_of_rows": record.number_of_rows if complete else None,
        "total_bytes": record.total_bytes if complete else None,
        "tags": list(record.tags),
        "format": record.format,
        "url": url if complete and not expired else None,
    }
    if complete and expiry is not None:
        body["expires_at"] = iso(expiry)
        body["expired"] = expired
    if record.status is Status.running:
        body["progress"] = progress
    return body


def iso(instant: datetime) -> str:
    """UTC with microseconds, fixed width: the text sorts as the instants do."""
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ListQuery:
    status: Status | None = None
    format: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 50
    after: tuple[str, str] | None = field(default=None)  # (created, id) of the last one seen


def encode_cursor(record: ExportRecord) -> str:
    raw = json.dumps([iso(record.created), record.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSOR_MAX = 200
"""Longer than any cursor this service gives out (an instant and an id, in base64)."""


def decode_cursor(cursor: str) -> tuple[str, str] | None:
    """The position a cursor names, or None if it is not one of ours."""
    if len(cursor) > CURSOR_MAX:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(position, list) and len(position) == 2
                and all(isinstance(part, str) for part in position)):
            return None
        datetime.fromisoformat(position[0])
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return position[0], position[1]
