"""Which process on this machine is a run's: a name for a process that holds only while that
process lives, and whether two paths are one Python environment. Linux's process table
(``/proc``) answers both the start time and the command line; where it is missing, nothing
here names a process."""

from __future__ import annotations

import os
import socket

PROCESS_TABLE = "/proc/self"


def same_python(path: str | None, ours: str) -> bool:
    """Whether ``path`` is this environment's Python: ``python`` and ``python3`` of one virtual
    environment are the same (console scripts start one, ``python -m`` the other), while the
    system's Python is another environment although the venv's links resolve to it."""
    if not path:
        return False
    path, ours = os.path.abspath(path), os.path.abspath(ours)
    try:
        return os.path.dirname(path) == os.path.dirname(ours) and os.path.samefile(path, ours)
    except OSError:
        return False


def worker_identity(pid: int) -> str:
    """``host:pid:start``: a pid names the run's process only on its host and only while that
    process lives (the kernel reuses pids), so its start time goes with it."""
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def live_worker(identity: str) -> int | None:
    """The pid of the run process ``identity`` names, if it still runs on this machine (Linux's
    process table tells a process's start). Only a process a fork server forked qualifies: a
    run's tags can be set by whoever launches it, and a Terminate must never signal anything
    else (the webserver, say) that a made-up tag names."""
    try:
        host, pid_text, start = identity.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if pid <= 0 or not start or host != socket.gethostname() or _start_time(pid) != start:
        return None
    parent = _stat(pid)[1:2]
    if not (_forkserver_process(pid) and parent and _forkserver_process(int(parent[0]))):
        return None
    return pid


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: state, parent, …"""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return []


def _start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _forkserver_process(pid: int) -> bool:
    """Whether ``pid`` is a fork server or one of its children, which share its command line."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"from multiprocessing.forkserver import main" in cmdline.read()
    except OSError:
        return False
