"""Moving the export service's state to another database (a SQLite file to PostgreSQL, to run
replicas, or back) without losing any tenant's exports or the month's quota counts: every
record, deleted and unfinished ones too, goes over in one transaction on the target.

The rate limit buckets are not copied: SQLite keeps none (a process's memory does), and
PostgreSQL's refill on their own within a tenant's ``per_seconds``.

What a careful operator would not want is refused before anything is written
(``CopyRefused``, naming the argument): a URL with a password or of another kind, the same
state twice, a source that is not there (a mistyped SQLite path is not made into an empty
state), a target that already holds records (unless ``merge``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from export_pipeline.service.state import Copied, StateRefused, open_state, state_target
from export_pipeline.store.sql_url import SqlTarget

SOURCE, TARGET = "--from", "--to"


class CopyRefused(ValueError):
    """A copy not made, and why (the argument named, no secret); nothing was written."""


@dataclass(frozen=True)
class CopyDone:
    source: str
    target: str
    copied: Copied

    def summary(self) -> str:
        """One line: the records copied in all and per tenant, and those ``--merge`` skipped."""
        copied, skipped = self.copied.copied, self.copied.skipped
        line = (f"copied {copied.total()} export record(s){_per_tenant(copied)} "
                f"from {self.source} to {self.target}")
        if skipped:
            line += f"; skipped {skipped.total()} the target held{_per_tenant(skipped)}"
        return line


def copy_state(source: str, target: str, merge: bool = False) -> CopyDone:
    """Copy every record of the state ``source`` names into the state ``target`` names (each
    a SQLite file path or ``postgresql://host[:port]/database``). Raises ``CopyRefused``, or
    ``StateError`` when a database cannot be reached or the copy fails (rolled back)."""
    source_db, target_db = _parse(SOURCE, source), _parse(TARGET, target)
    if _same(source, source_db, target, target_db):
        raise CopyRefused(f"{SOURCE} and {TARGET} name the same state")
    new_file = target_db is None and not os.path.lexists(target)
    try:
        reader = open_state(source, create=False, setting=SOURCE)
    except StateRefused as refused:
        raise CopyRefused(str(refused)) from None
    try:
        writer = open_state(target, setting=TARGET)
        try:
            if writer.identity() == reader.identity():
                raise CopyRefused(f"{SOURCE} and {TARGET} name the same state")
            copied = writer.copy_from(reader, merge=merge)
        finally:
            writer.close()
    except BaseException as error:
        if new_file:
            _remove_sqlite(target)
        if isinstance(error, StateRefused):
            raise CopyRefused(f"{TARGET} {_describe(target, target_db)}: {error}"
                              + ("" if merge else " (--merge adds the records it lacks)")) from None
        raise
    finally:
        reader.close()
    return CopyDone(_describe(source, source_db), _describe(target, target_db), copied)


def _parse(argument: str, location: str) -> SqlTarget | None:
    try:
        return state_target(location)
    except ValueError as error:
        raise CopyRefused(f"{argument}: {error}") from None


def _same(source: str, source_db: SqlTarget | None, target: str,
          target_db: SqlTarget | None) -> bool:
    """Whether both name one database, told before opening either: one file however its path
    is spelled; one host, port and database name. Once both are open, their ``identity``
    tells the spellings this misses (an address for a host name)."""
    if source_db is None and target_db is None:
        if os.path.exists(source) and os.path.exists(target):
            return os.path.samefile(source, target)
        return Path(source).resolve() == Path(target).resolve()
    if source_db is None or target_db is None:
        return False
    return _endpoint(source_db) == _endpoint(target_db)


def _endpoint(db: SqlTarget) -> tuple[str, int, str]:
    host = db.host.lower()
    return ("localhost" if host in ("", "localhost") else host, db.port or 5432,
            db.database or db.user or "")


def _describe(location: str, db: SqlTarget | None) -> str:
    return db.describe() if db is not None else location


def _per_tenant(counts) -> str:
    return f" ({', '.join(f'{tenant} {n}' for tenant, n in sorted(counts.items()))})" if counts else ""


def _remove_sqlite(path: str) -> None:
    """A target file this copy created, with SQLite's companions: a failed copy leaves no
    empty state where none was."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except OSError:
            pass
