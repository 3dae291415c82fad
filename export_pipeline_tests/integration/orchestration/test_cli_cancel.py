"""Which command-line runs end canceled, on a real Dagster instance, the signal sent to this
very process while a step runs (``signal.raise_signal``), as Ctrl-C sends it."""

from __future__ import annotations

import signal
import time
import uuid

import dagster as dg
import pytest

from export_pipeline import interrupts
from export_pipeline.orchestration.cli_cancel import cancel_when_stopped


def _job(step) -> dg.JobDefinition:
    the_step = dg.op(name="step")(step)

    @dg.job(name="stopped_job", executor_def=dg.in_process_executor)
    def stopped_job() -> None:
        the_step()

    return stopped_job


def _sleep_until_interrupted() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    raise AssertionError("the signal never interrupted the step")


def _run(instance: dg.DagsterInstance, step) -> dg.DagsterRun:
    run_id = str(uuid.uuid4())
    with interrupts.watched():
        cancel_when_stopped(instance, run_id)
        result = _job(step).execute_in_process(
            instance=instance, raise_on_error=False, run_id=run_id
        )
    assert not result.success
    return instance.get_run_by_id(run_id)


def _events(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.DagsterEventType]:
    return [r.dagster_event.event_type for r in instance.all_logs(run.run_id) if r.dagster_event]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_the_command_was_stopped_in_ends_canceled(instance, signum):
    def step() -> None:
        signal.raise_signal(signum)
        _sleep_until_interrupted()

    run = _run(instance, step)
    assert run.status is dg.DagsterRunStatus.CANCELED
    events = _events(instance, run)
    assert dg.DagsterEventType.RUN_FAILURE not in events
    canceling = next(r for r in instance.all_logs(run.run_id)
                     if r.dagster_event and r.dagster_event.event_type is dg.DagsterEventType.RUN_CANCELING)
    assert canceling.message == f"Stopped by {signal.Signals(signum).name} on the command line."


def _fails() -> None:
    raise RuntimeError("the store is gone")


def test_a_step_that_fails_with_no_signal_fails_the_run(instance):
    run = _run(instance, _fails)
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert dg.DagsterEventType.RUN_CANCELING not in _events(instance, run)


def test_a_run_the_instance_ended_stays_failed(instance):
    """As one past its maximum runtime, which the daemon marks failed: a time-out is a
    failure, even if the command is stopped afterwards."""

    def step(context) -> None:
        context.instance.report_run_failed(context.dagster_run, "Exceeded maximum runtime of 1 seconds.")
        signal.raise_signal(signal.SIGINT)
        _sleep_until_interrupted()

    run = _run(instance, step)
    assert run.status is dg.DagsterRunStatus.FAILURE
    events = _events(instance, run)
    assert dg.DagsterEventType.RUN_CANCELING not in events
    assert dg.DagsterEventType.RUN_CANCELED not in events


def test_outside_a_watched_command_nothing_is_reported(instance):
    run_id = str(uuid.uuid4())
    cancel_when_stopped(instance, run_id)
    assert not _job(_fails).execute_in_process(
        instance=instance, raise_on_error=False, run_id=run_id
    ).success
    run = instance.get_run_by_id(run_id)
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert dg.DagsterEventType.RUN_CANCELING not in _events(instance, run)
