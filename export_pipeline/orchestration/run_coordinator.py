"""The local instance's run coordinator: Dagster's run queue, except that a run submitted while
nothing is queued and fewer than ``max_concurrent_runs`` runs are active is launched at once.

Through the plain queue, every run launched from the Launchpad, the API, a sensor or a backfill
waits for the daemon's next look at the queue (at best every second, in whole seconds), which
on a small machine is a fifth of the user's whole wait. Launching at once is what Dagster's
``DefaultRunCoordinator`` does; keeping the queue for everything beyond the limit keeps a burst
of exports (a hundred inbox files) to ``max_concurrent_runs`` processes. Each run still runs in
a process of its own, started by the instance's run launcher.

The check for room and the launch are one step for every process sharing the instance's
folder (webserver, daemon, API service, CLI) through a lock file in it, so two submitters
cannot both take the last slot. That lock is only as wide as one machine's file system, so the
deployments, whose processes share a database rather than a folder, keep Dagster's queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES, DagsterRun, DagsterRunStatus, RunsFilter

LOCK_FILE = "run-submit.lock"
# Another submitter holds the lock only while it launches one run (the code server starting a
# process); one that waits longer than this queues its run instead of waiting on a stuck launch.
LOCK_WAIT_SECONDS = 2.0


class PromptRunCoordinator(QueuedRunCoordinator):
    """Launches a run at once while there is room and nothing waits in the queue; otherwise
    queues it for the daemon, exactly as ``QueuedRunCoordinator`` (whose settings it takes)."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.status == DagsterRunStatus.NOT_STARTED and self._may_launch_at_once(context, run):
            with _held(os.path.join(self._instance.root_directory, LOCK_FILE)) as held:
                if held and self._has_room():
                    self._instance.launch_run(run.run_id, context.workspace)
                    launched = self._instance.get_run_by_id(run.run_id)
                    assert launched is not None
                    return launched
                if held:
                    return super().submit_run(context)
        return super().submit_run(context)

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
