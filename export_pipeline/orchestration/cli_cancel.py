"""A command-line run its user stopped (Ctrl-C, SIGTERM) is recorded canceled, as a run
canceled in the UI is, not failed: the canceled-run sensors and wording then apply to it.

Dagster ends a run that an interrupt cut short as failed unless the run is CANCELING by then:
a termination requested from the UI reports that before it signals the run's process. The
command's signals come with no such request, so it is made here, once the interrupt has
reached the run and before Dagster ends it: an interrupt always fails the step it lands in,
and that step failure, stored while the command's watch holds a signal, reports the run
canceling. It happens in Dagster's event handling on the main thread, not in a signal
handler, so the handlers stay as small as they are. A run that a step failed before any
signal, or that the instance already ended (past its maximum runtime), stays failed; so does
one whose resources were still being set up, since Dagster ends it without a step failure.
"""

from __future__ import annotations

import contextlib

import dagster as dg

from export_pipeline import interrupts


def cancel_when_stopped(instance: dg.DagsterInstance, run_id: str) -> None:
    """From here on, a failed step of run ``run_id`` after a signal reports the run canceling."""

    def on_event(entry) -> None:
        event = entry.dagster_event
        if event is None or not event.is_step_failure:
            return
        signum = interrupts.received()
        if signum is None:
            return
        # An instance that cannot record it leaves the run failed, as Dagster would.
        with contextlib.suppress(Exception):
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status is dg.DagsterRunStatus.STARTED:
                instance.report_run_canceling(
                    run, message=f"Stopped by {interrupts.signal_name(signum)} on the command line."
                )

    instance.add_event_listener(run_id, on_event)
