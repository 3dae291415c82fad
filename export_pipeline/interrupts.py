"""Ctrl-C (SIGINT) and SIGTERM for a one-shot command: stop promptly, clean up, say so once.

A signal becomes a ``KeyboardInterrupt`` (``Interrupted``) where the command's own code runs.
While a Dagster run executes, Dagster swaps in its own handlers for both signals and raises
its interrupt error inside the running step instead, so the step's clean-up (aborting a
multipart upload) runs either way. Its handlers do not say which signal came, so the
interpreter's wakeup file descriptor does: the interpreter writes each caught signal's
number there, whichever Python handler runs, which gives the exit status (128 + the number).

A handler's raise can be lost: it happens inside whatever the main thread runs at that moment,
and Python ignores what a weakref callback or ``__del__`` raises (an import's module-lock
callback is one). The record in the wakeup file descriptor is never lost, so ``checkpoint``,
called before the steps that cannot be undone, stops the command there instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal arrived while the command's own code ran (a ``KeyboardInterrupt``, so code that
    cleans up on Ctrl-C cleans up on SIGTERM too)."""


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _raise(signum: int, frame) -> None:
    raise Interrupted(signal_name(signum))


class SignalWatch:
    """The signals a block received (see ``watched``)."""

    def __init__(self, read_fd: int | None) -> None:
        self._fd = read_fd
        self._seen: list[int] = []
        self.settled = False

    def received(self) -> int | None:
        """The first signal that arrived so far, or None."""
        if self._fd is not None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while data := os.read(self._fd, 64):
                    self._seen.extend(n for n in data if n in SIGNALS)
        return self._seen[0] if self._seen else None

    def settle(self) -> None:
        """From here on (after the block too), SIGINT and SIGTERM do nothing: the command is
        already stopping, and saying so once and exiting must not be cut short by another."""
        if self._fd is not None:
            self.settled = True
            for s in SIGNALS:
                signal.signal(s, lambda *_: None)


_active: list[SignalWatch] = []


def received() -> int | None:
    """The first signal the command's watch has recorded, or None (also outside a watched
    command): whoever handled it, the command is stopping."""
    return _active[-1].received() if _active else None


def checkpoint() -> None:
    """Raise ``Interrupted`` if the command's watch has recorded a signal: a step that cannot be
    undone (starting the run, completing an upload) must not begin after one, even if the
    handler's own raise was lost. Outside a watched command it does nothing."""
    signum = received()
    if signum is not None:
        raise Interrupted(signal_name(signum))


def _quiet_lost_interrupts(watch: SignalWatch, previous_hook):
    """An unraisable hook: an interrupt raised where Python cannot raise it is not reported as
    an error (a trace on the console), since the watch has it and ``checkpoint`` acts on it.
    Anything else goes to the previous hook."""

    def hook(unraisable) -> None:
        value = unraisable.exc_value
        if not isinstance(value, Exception) and watch.received() is not None:
            return
        previous_hook(unraisable)

    return hook


def _restore(handlers: dict) -> None:
    for s, handler in handlers.items():
        if handler is not None:  # None: set outside Python, cannot be put back
            signal.signal(s, handler)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def watched() -> Iterator[SignalWatch]:
    """SIGINT and SIGTERM raise ``Interrupted`` in the block, and the watch records every one
    that arrives, whoever handles it, for ``checkpoint``. Off the main thread (where handlers
    cannot be set) the block runs as it is and nothing is recorded."""
    if not _on_main_thread():
        yield SignalWatch(None)
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    previous_handlers = {s: signal.getsignal(s) for s in SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watch = SignalWatch(read_fd)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_lost_interrupts(watch, previous_hook)
    _active.append(watch)
    try:
        for s in SIGNALS:
            signal.signal(s, _raise)
        yield watch
    finally:
        if not watch.settled:
            _restore(previous_handlers)
        signal.set_wakeup_fd(previous_fd)
        _active.remove(watch)
        sys.unraisablehook = previous_hook
        os.close(read_fd)
        os.close(write_fd)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block a signal must not cut in half (creating the Dagster instance's database,
    aborting an upload): a signal arriving in it takes effect when it ends."""
    if not _on_main_thread():
        yield
        return
    pending: list[int] = []
    previous_handlers = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        _restore(previous_handlers)
        if pending:
            signal.raise_signal(pending[0])
