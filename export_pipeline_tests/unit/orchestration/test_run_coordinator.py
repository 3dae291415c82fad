"""The lock that makes the run coordinator's check for room and its launch one step for every
process sharing the instance's folder."""

from __future__ import annotations

import subprocess
import sys
import time

from export_pipeline.orchestration import run_coordinator
from export_pipeline.orchestration.run_coordinator import _held

HOLD = """
import fcntl, os, sys, time
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_lock_held_by_another_process_is_waited_for_then_given_up(tmp_path, monkeypatch):
    monkeypatch.setattr(run_coordinator, "LOCK_WAIT_SECONDS", 0.3)
    path = tmp_path / "run-submit.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with _held(str(path)) as held:
            assert held is False
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()
    with _held(str(path)) as held:  # the holder's exit released it
        assert held is True


def test_a_lock_released_while_waiting_is_taken(tmp_path):
    path = tmp_path / "run-submit.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with _held(str(path)) as held:
            assert held is True
    finally:
        holder.wait()


def test_threads_of_one_process_exclude_each_other(tmp_path, monkeypatch):
    monkeypatch.setattr(run_coordinator, "LOCK_WAIT_SECONDS", 0.05)
    path = str(tmp_path / "run-submit.lock")
    with _held(path) as outer:
        assert outer is True
        with _held(path) as inner:
            assert inner is False


def test_an_unwritable_folder_queues_rather_than_fails(tmp_path):
    with _held(str(tmp_path / "missing" / "run-submit.lock")) as held:
        assert held is False
