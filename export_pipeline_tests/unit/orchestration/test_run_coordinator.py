"""The local instance's run coordinator: when it launches at once and when it queues, what a
failed launch leaves, and the lock that makes its check for room and its taking of a slot one
step for every process sharing the instance's folder."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_shared.record import copy
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.run_coordinator import SubmitRunContext
from dagster._core.storage.dagster_run import RunOpConcurrency
from dagster._core.test_utils import create_run_for_test, instance_for_test

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


# The coordinator on a real instance; the launchers are Dagster's own test launchers, one
# recording each launch and one failing it, since no code server runs here (the integration
# tests launch real runs).
WORKSPACE = object()  # handed to the launcher only
ORIGIN = RemoteJobOrigin(  # where a queued run is to be launched from; Dagster requires one
    repository_origin=RemoteRepositoryOrigin(
        code_location_origin=GrpcServerCodeLocationOrigin(host="127.0.0.1", port=4000, location_name="exports"),
        repository_name="__repository__"),
    job_name="export_job",
)


@contextlib.contextmanager
def _instance(launcher: str, max_concurrent_runs: int = 1):
    with instance_for_test(overrides={
        "run_coordinator": {"module": "export_pipeline.orchestration.run_coordinator",
                            "class": "PromptRunCoordinator",
                            "config": {"max_concurrent_runs": max_concurrent_runs}},
        "run_launcher": {"module": "dagster._core.test_utils", "class": launcher},
    }) as instance:
        yield instance


def _submit(instance) -> dg.DagsterRun:
    run = create_run_for_test(instance, job_name="export_job", remote_job_origin=ORIGIN)
    submitted = instance.run_coordinator.submit_run(SubmitRunContext(run, WORKSPACE))
    coordinator = instance.run_coordinator
    coordinator._launches.shutdown(wait=True)  # the launch thread has done its work
    coordinator._launches = ThreadPoolExecutor(1)
    return submitted


def test_a_run_with_room_starts_and_the_next_waits_in_the_queue():
    with _instance("MockedRunLauncher") as instance:
        first, second = _submit(instance), _submit(instance)
        assert first.status is dg.DagsterRunStatus.STARTING
        assert instance.run_launcher.did_run_launch(first.run_id)
        assert second.status is dg.DagsterRunStatus.QUEUED
        assert not instance.run_launcher.did_run_launch(second.run_id)


def test_a_queued_run_goes_first_even_when_a_slot_is_free():
    with _instance("MockedRunLauncher", max_concurrent_runs=2) as instance:
        first = _submit(instance)
        instance.report_run_canceled(instance.get_run_by_id(first.run_id))  # slot free again
        waiting = create_run_for_test(instance, job_name="export_job", remote_job_origin=ORIGIN)
        instance.run_coordinator.submit_run(SubmitRunContext(waiting, None))  # no workspace: queued
        assert _submit(instance).status is dg.DagsterRunStatus.QUEUED


def test_a_launch_that_fails_fails_the_run_saying_why_and_frees_its_slot():
    with _instance("ExplodingRunLauncher") as instance:
        run = _submit(instance)
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status is dg.DagsterRunStatus.FAILURE
        messages = [record.event_log_entry.message for record in instance.get_records_for_run(run.run_id).records]
        assert any("throw on launch" in (message or "") for message in messages)
        assert _submit(instance).status is not dg.DagsterRunStatus.QUEUED  # its slot is free


def test_runs_using_pools_and_tag_limits_are_left_to_the_queue():
    with instance_for_test(overrides={
        "run_coordinator": {"module": "export_pipeline.orchestration.run_coordinator",
                            "class": "PromptRunCoordinator",
                            "config": {"tag_concurrency_limits": [{"key": "tenant", "limit": 1}]}},
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
    }) as instance:
        assert _submit(instance).status is dg.DagsterRunStatus.QUEUED


def test_a_run_whose_ops_take_pool_slots_is_left_to_the_queue():
    with _instance("MockedRunLauncher", max_concurrent_runs=4) as instance:
        run = create_run_for_test(instance, job_name="export_job", remote_job_origin=ORIGIN)
        pooled = copy(run, run_op_concurrency=RunOpConcurrency(
            root_key_counts={"warehouse": 1}, has_unconstrained_root_nodes=False, all_pools={"warehouse"}))
        assert instance.run_coordinator.submit_run(SubmitRunContext(pooled, WORKSPACE)).status is dg.DagsterRunStatus.QUEUED
        assert not instance.run_launcher.did_run_launch(run.run_id)
