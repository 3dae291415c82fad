"""Signals sent to this very process (``signal.raise_signal``): what ``watched`` records and
raises, whoever handles the signal, and what ``deferred`` holds back."""

from __future__ import annotations

import signal
import sys
import weakref

import pytest

from export_pipeline import interrupts


def test_a_signal_raises_an_interrupt_and_is_recorded():
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    with interrupts.watched() as watch:
        assert watch.received() is None
        with pytest.raises(KeyboardInterrupt) as caught:
            signal.raise_signal(signal.SIGTERM)
        assert isinstance(caught.value, interrupts.Interrupted)
        assert watch.received() == signal.SIGTERM
    assert {s: signal.getsignal(s) for s in interrupts.SIGNALS} == before


def test_a_signal_another_handler_took_is_recorded_too():
    """As while a Dagster run executes: its handlers replace ours and do not say which came."""
    seen = []
    with interrupts.watched() as watch:
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(True))
        signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(True))
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        assert seen == [True, True]
        assert watch.received() == signal.SIGTERM  # the first one


def test_a_deferred_signal_takes_effect_when_the_block_ends():
    steps = []
    with interrupts.watched() as watch:
        with pytest.raises(interrupts.Interrupted):
            with interrupts.deferred():
                signal.raise_signal(signal.SIGINT)
                steps.append("the block went on")
            steps.append("never")
        assert steps == ["the block went on"]
        assert watch.received() == signal.SIGINT


def test_after_settling_signals_do_nothing():
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    try:
        with interrupts.watched() as watch:
            watch.settle()
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


class _Thing:
    pass


def _lost_in_a_weakref_callback(signum: int) -> None:
    """The signal arrives while a weakref callback runs (an import's module-lock callback is
    one): the handler raises there, and Python ignores what a callback raises."""
    thing = _Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signum))
    del thing
    assert ref() is None


def test_a_signal_whose_raise_was_lost_stops_the_command_at_the_next_checkpoint(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    with interrupts.watched() as watch:
        interrupts.checkpoint()  # nothing yet
        _lost_in_a_weakref_callback(signal.SIGTERM)
        assert watch.received() == signal.SIGTERM
        with pytest.raises(interrupts.Interrupted, match="SIGTERM"):
            interrupts.checkpoint()
    assert reported == []  # no trace on the console: the command says it once, at the end
    assert sys.unraisablehook == reported.append


def test_other_errors_python_ignores_are_still_reported(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def fails(_):
        raise ValueError("in a callback")

    with interrupts.watched():
        thing = _Thing()
        ref = weakref.ref(thing, fails)
        del thing
        assert ref() is None
    assert [type(r.exc_value) for r in reported] == [ValueError]


def test_a_checkpoint_outside_a_watched_command_does_nothing():
    interrupts.checkpoint()


def test_the_command_s_signal_can_be_read_from_anywhere_in_it():
    """What a Dagster event handler asks, deep inside a run, while Dagster's handlers are in."""
    assert interrupts.received() is None
    with interrupts.watched():
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        assert interrupts.received() is None
        signal.raise_signal(signal.SIGTERM)
        assert interrupts.received() == signal.SIGTERM
    assert interrupts.received() is None
