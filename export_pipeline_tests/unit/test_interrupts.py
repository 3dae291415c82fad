"""Signals sent to this very process (``signal.raise_signal``): what ``watched`` records and
raises, whoever handles the signal, and what ``deferred`` holds back."""

from __future__ import annotations

import signal

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
