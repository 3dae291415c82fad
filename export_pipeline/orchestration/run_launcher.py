"""The local instance's run launcher: each run is still a process of its own, but forked from a
server process that has already imported Dagster and the libraries every export needs, instead
of a fresh interpreter that imports them all again.

Through Dagster's ``DefaultRunLauncher`` the code server spawns a new Python for each run, and
that interpreter imports Dagster, its storage, polars and boto3 before it loads the code
location: most of what a user waits between launching a run from the Launchpad, the API or a
sensor and its success, and the one cost the CLI does not pay. Here Python's ``forkserver``
imports those libraries once (``warm_imports``) and forks each run from it. The package's own
modules and the code location are not preloaded: each run imports them afresh, so an edited
definition or saved export counts at the next run, as with Dagster's launcher.

A run whose code lives elsewhere (a code server on another host, in another Python or in a
container) is launched by ``DefaultRunLauncher``, which this extends, through its code server.
A run started here is terminated by a signal to its process (Dagster turns it into the run's
cancellation), from any process of the machine sharing the instance.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from dagster._core.events import EngineEventData
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from export_pipeline.worker_processes import PROCESS_TABLE, live_worker, same_python, worker_identity

WORKER_TAG = "export_pipeline/run_worker"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
TAG_WAIT_SECONDS = 5.0


class WarmRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose runs of this machine's Python start from a warm process."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._context: Any = None
        self._workers: list[Any] = []

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if not runs_here(run):
            super().launch_run(context)
            if run.tags.get(WORKER_TAG):  # one given at launch names no process of this run
                self._instance.add_run_tags(run.run_id, {WORKER_TAG: ""})
            return
        process = self._forkserver().Process(
            target=execute_run, args=(run.run_id, self._instance.get_ref()),
            name=f"dagster-run-{run.run_id}",
        )
        with self._lock:
            self._reap()
            process.start()
            # Not multiprocessing's child to wait for: a webserver or service that stops would
            # otherwise wait at its exit until every run it launched has ended.
            multiprocessing.process._children.discard(process)
            self._workers.append(process)
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: worker_identity(process.pid)})
        self._run_ids.add(run.run_id)

    def terminate(self, run_id: str) -> bool:
        run = self._worker_run(run_id) if self.has_instance else None
        if run is None or run.is_finished or not run.tags.get(WORKER_TAG):
            return super().terminate(run_id)
        self._instance.report_run_canceling(run)
        pid = live_worker(run.tags[WORKER_TAG])
        if pid is None:
            self._instance.report_engine_event(
                f"The run's process ({run.tags[WORKER_TAG]}) is not running on this machine "
                f"({socket.gethostname()}): nothing to stop.", run, cls=self.__class__,
            )
            return False
        os.kill(pid, signal.SIGINT)
        return True

    def _worker_run(self, run_id: str) -> DagsterRun | None:
        """The run, with its process's tag if it is launched here: a run terminated in the
        instant between its process's start and the tag is waited for, briefly."""
        deadline = time.monotonic() + TAG_WAIT_SECONDS
        while True:
            run = self._instance.get_run_by_id(run_id)
            if (run is None or run.is_finished or WORKER_TAG in run.tags or GRPC_INFO_TAG in run.tags
                    or run.status is not DagsterRunStatus.STARTING or not runs_here(run)
                    or time.monotonic() > deadline):
                return run
            time.sleep(0.1)

    def prestart(self) -> None:
        """Start the fork server now, not at the first launch, whose run would otherwise wait
        for the server's imports: for a process that starts in order to launch (the export
        service). Nothing that every process opening the instance does may call this: each
        run's own process loads the run coordinator (for its concurrency settings), and a
        fork server started there would cost every run a Python's imports."""
        if os.path.isdir(PROCESS_TABLE):  # where runs_here can say yes
            self._forkserver()
            multiprocessing.forkserver.ensure_running()

    def _forkserver(self) -> Any:
        with self._lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["export_pipeline.orchestration.warm_imports"])
                self._context = context
            return self._context

    def _reap(self) -> None:
        """Close the handles of runs that have ended (one pipe each)."""
        for process in [p for p in self._workers if not p.is_alive()]:
            process.close()
            self._workers.remove(process)


def runs_here(run: DagsterRun) -> bool:
    """Whether the run's code is this machine's and this Python's, so a process forked here
    runs exactly what the code server would have run."""
    origin, remote = run.job_code_origin, run.remote_job_origin
    if origin is None or remote is None or not os.path.isdir(PROCESS_TABLE):
        return False  # without a process table no run's process could be told apart
    repository = origin.repository_origin
    if repository.container_image or not same_python(repository.executable_path, sys.executable):
        return False
    location = remote.repository_origin.code_location_origin
    host = getattr(location, "host", None)
    return host is None or host in LOOPBACK_HOSTS


def execute_run(run_id: str, instance_ref: Any) -> None:
    """The run's process: what Dagster's code server runs in the process it spawns for a run."""
    import dagster as dg
    from dagster._grpc.impl import core_execute_run
    from dagster._utils.hosted_user_process import recon_job_from_origin
    from dagster._utils.interrupts import capture_interrupts, setup_interrupt_handlers

    setup_interrupt_handlers()  # SIGTERM cancels the run, as SIGINT does
    with capture_interrupts(), dg.DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        if run is None or run.job_code_origin is None:
            return
        pid = os.getpid()
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run,
                                     EngineEventData.in_process(pid))
        try:
            for _ in core_execute_run(recon_job_from_origin(run.job_code_origin), run, instance,
                                      inject_env_vars=True):
                pass
        except Exception:  # noqa: BLE001 - core_execute_run has logged it to the run's events
            pass
        finally:
            instance.report_engine_event(f"Process for run exited (pid: {pid}).", run)
