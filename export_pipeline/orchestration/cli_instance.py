"""The Dagster instance a command-line run is recorded in: ``DAGSTER_HOME``'s, else an
ephemeral one.

Several commands may start at once on one ``DAGSTER_HOME``. The first to open a fresh home
creates its SQLite databases and stamps their schema version; two doing that at once stamp
two versions ("more than one head"), and every later run on that home fails. So a process
opens the instance holding an exclusive lock on a file in the home; once the databases exist
the lock is released and the runs share them (SQLite serialises their writes). A signal that
arrives meanwhile takes effect once the databases are whole.

This suits one machine. A deployment whose runs start on several machines, or many at once,
needs instance storage made for that (dagster-postgres); see the README.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from export_pipeline import interrupts

LOCK_FILE = ".export-pipeline-instance.lock"


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


@contextlib.contextmanager
def cli_instance(home: str | None) -> Iterator[dg.DagsterInstance]:
    if not home:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance
        return
    Path(home).mkdir(parents=True, exist_ok=True)
    with interrupts.deferred(), _exclusive(Path(home) / LOCK_FILE):
        instance = dg.DagsterInstance.get()  # creates (or migrates) its databases
    with instance:
        yield instance
