"""The local instance's run coordinator: Dagster's run queue, except that a run submitted while
nothing is queued and fewer than ``max_concurrent_runs`` runs are active is launched at once.

Through the plain queue, every run launched from the Launchpad, the API, a sensor or a backfill
waits for the daemon's next look at the queue (at best every second, in whole seconds), which
on a small machine is a fifth of the user's whole wait. Launching at once is what Dagster's
``DefaultRunCoordinator`` does; keeping the queue for everything beyond the limit keeps a burst
of exports (a hundred inbox files) to ``max_concurrent_runs`` processes. Each run still runs in
a process of its own, started by the instance's run launcher.

The check for room and the taking of the slot (the run's STARTING event) are one step for
every process sharing the instance's folder (webserver, daemon, API service, CLI) through a
lock file in it, so two submitters cannot both take the last slot. That lock is only as wide as
one machine's file system, so the deployments, whose processes share a database rather than a
folder, keep Dagster's queue.

The launch itself runs in a thread of the submitting process, as the daemon's threaded dequeue
does: the code server answers only once the run's new process is up, and the Launchpad, a POST
to the API or a sensor tick would otherwise wait for that too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.launcher import LaunchRunContext
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._utils.error import serializable_error_info_from_exc_info

if TYPE_CHECKING:  # every process opening the instance imports this module, each run's too
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

LOCK_FILE = "run-submit.lock"
# Another submitter holds the lock only while it counts runs and writes one event; one that
# waits longer than this (a stuck process, a stalled disk) queues its run instead.
LOCK_WAIT_SECONDS = 2.0


class PromptRunCoordinator(QueuedRunCoordinator):
    """Launches a run at once while there is room and nothing waits in the queue; otherwise
    queues it for the daemon, exactly as ``QueuedRunCoordinator`` (whose settings it takes)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # not daemon threads: a process that exits finishes its launches first
        self._launches = ThreadPoolExecutor(4, thread_name_prefix="prompt-launch")

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.status == DagsterRunStatus.NOT_STARTED and self._may_launch_at_once(context, run):
            with _held(os.path.join(self._instance.root_directory, LOCK_FILE)) as held:
                if not held or not self._has_room():
                    return super().submit_run(context)
                self._instance.report_dagster_event(
                    DagsterEvent(event_type_value=DagsterEventType.PIPELINE_STARTING.value,
                                 job_name=run.job_name),
                    run_id=run.run_id,
                )
            assert context.workspace is not None
            self._launches.submit(self._launch, run.run_id, context.workspace)
            starting = self._instance.get_run_by_id(run.run_id)
            assert starting is not None
            return starting
        return super().submit_run(context)

    def _launch(self, run_id: str, workspace: "BaseWorkspaceRequestContext") -> None:
        """What ``DagsterInstance.launch_run`` does after the STARTING event: a launch that
        fails fails the run, with the reason in its event log."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.status != DagsterRunStatus.STARTING:
            return  # canceled meanwhile
        try:
            self._instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=workspace))
        except Exception:
            error = serializable_error_info_from_exc_info(sys.exc_info())
            self._instance.report_engine_event(error.message, run, EngineEventData.engine_error(error))
            self._instance.report_run_failed(run)

    def _may_launch_at_once(self, context: SubmitRunContext, run: DagsterRun) -> bool:
        """Only the run count is checked here: tag limits and op-concurrency pools are the
        daemon's to apply, so with tag limits configured, or a run whose ops take pool slots,
        the run goes through the queue."""
        queue = self.get_run_queue_config()
        uses_pools = bool(run.run_op_concurrency and run.run_op_concurrency.all_pools)
        return (
            context.workspace is not None
            and not queue.tag_concurrency_limits
            and not (queue.should_block_op_concurrency_limited_runs and uses_pools)
        )

    def _has_room(self) -> bool:
        instance = self._instance
        if instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.QUEUED])):
            return False  # those go first, in the daemon's order
        limit = self.get_run_queue_config().max_concurrent_runs
        return limit == -1 or instance.get_runs_count(RunsFilter(statuses=ACTIVE_RUN_STATUSES)) < limit


@contextlib.contextmanager
def _held(path: str) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path``, waited for up to ``LOCK_WAIT_SECONDS``; yields
    whether it is held. A lock per open file, so threads of one process exclude each other too."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.01)
        yield True
    finally:
        os.close(descriptor)
