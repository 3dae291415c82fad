"""Which runs the warm run launcher starts itself, and how it names a run's process so that
only that process is ever signalled. The launches and terminations themselves, with a real
export service and Dagster instance, are in the integration tests."""

from __future__ import annotations

import os
import socket
import sys
from types import SimpleNamespace

import pytest

from export_pipeline.orchestration.run_launcher import live_worker, runs_here, same_python, worker_identity


def _run(executable=sys.executable, image=None, host="localhost", with_origin=True):
    repository = SimpleNamespace(container_image=image, executable_path=executable)
    location = SimpleNamespace(host=host) if host is not None else SimpleNamespace()
    return SimpleNamespace(
        job_code_origin=SimpleNamespace(repository_origin=repository) if with_origin else None,
        remote_job_origin=SimpleNamespace(
            repository_origin=SimpleNamespace(code_location_origin=location)),
    )


@pytest.mark.parametrize("run, here", [
    (_run(), True),                                  # `dg dev`'s own code server
    (_run(host="127.0.0.1"), True),
    (_run(host=None), True),                         # a location this process manages itself
    (_run(host="code-server"), False),               # a code server in another container or host
    (_run(executable=os.path.join(os.path.dirname(sys.executable), "python3")), True),
    (_run(executable="/opt/other/bin/python"), False),  # another Python: its own packages
    (_run(image="exports:1.2"), False),              # code that runs in an image
    (_run(with_origin=False), False),
])
def test_only_runs_of_this_machines_python_start_here(run, here):
    assert runs_here(run) is here


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
