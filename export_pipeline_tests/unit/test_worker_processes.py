"""How a run's process is named so that only that process is ever signalled, and when two
paths are one Python environment. Real processes: a fork server's child, this one, its parent."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from export_pipeline.worker_processes import live_worker, same_python, worker_identity


def test_pythons_are_the_same_in_one_bin_folder_only(tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    for name in ("python", "python3"):
        (tmp_path / "venv" / "bin" / name).symlink_to(sys.executable)
    (tmp_path / "other" / "python").symlink_to(sys.executable)
    venv = tmp_path / "venv" / "bin"
    assert same_python(str(venv / "python3"), str(venv / "python"))
    assert same_python(str(venv / ".." / "bin" / "python"), str(venv / "python"))
    assert not same_python(str(tmp_path / "other" / "python"), str(venv / "python"))  # the same binary
    assert not same_python(str(venv / "python3.99"), str(venv / "python"))
    assert not same_python(None, str(venv / "python"))


@pytest.fixture
def forked_run():
    """A process forked by a fork server, as a warm run is."""
    import multiprocessing
    import time

    process = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(60,))
    process.start()
    yield process
    process.kill()
    process.join()


def test_a_forked_run_is_found_by_its_identity_and_only_on_this_host(forked_run):
    identity = worker_identity(forked_run.pid)
    assert identity.startswith(f"{socket.gethostname()}:{forked_run.pid}:")
    assert live_worker(identity) == forked_run.pid
    other_host = "elsewhere.example" + identity[len(socket.gethostname()):]
    assert live_worker(other_host) is None


def test_an_ended_process_a_reused_pid_or_another_process_is_not_signalled(forked_run):
    identity = worker_identity(forked_run.pid)
    forked_run.kill()
    forked_run.join()
    assert live_worker(identity) is None
    host, pid, start = worker_identity(os.getpid()).rsplit(":", 2)
    # a live process, but not a run: a made-up tag naming the launching process itself
    assert live_worker(f"{host}:{pid}:{start}") is None
    parent = worker_identity(os.getppid())
    assert live_worker(parent) is None
    for garbage in ("", "x", "host:pid:start", f"{host}:-1:0", f"{host}:{pid}:"):
        assert live_worker(garbage) is None


def test_a_pid_with_another_start_time_is_another_process(forked_run):
    host, pid, start = worker_identity(forked_run.pid).rsplit(":", 2)
    assert live_worker(f"{host}:{pid}:{int(start) + 1}") is None
