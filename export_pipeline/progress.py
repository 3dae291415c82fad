"""How ``export-pipeline run`` shows an export's progress on stderr: a bar redrawn in place
on a terminal, a plain line per change otherwise (a log file, a CI job)."""

from __future__ import annotations

import threading
from typing import TextIO


def render_bar(done: int, total: int, rows: int | None, width: int = 30) -> str:
    """``[#########.....] 3/5 store reads`` (and the rows, once combined)."""
    filled = width * done // total if total else 0
    text = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} store reads"
    return text + (f", {rows:,} rows" if rows is not None else "")


def plain_line(done: int, total: int, rows: int | None) -> str:
    return f"progress: {done}/{total} store reads" + (f", {rows} rows" if rows is not None else "")


class ProgressStream:
    """Stands in for stderr during a run: the bar stays on the last line, and every line
    written meanwhile (the run's log) is printed above it."""

    def __init__(self, stream: TextIO, terminal: bool):
        self._stream, self._terminal = stream, terminal
        self._bar = ""
        self._last: tuple[int, int, int | None] | None = None
        self._lock = threading.Lock()

    def show(self, done: int, total: int, rows: int | None) -> None:
        state = (done, total, rows)
        if state == self._last or not total:
            return
        self._last = state
        with self._lock:
            if self._terminal:
                self._bar = render_bar(done, total, rows)
                self._stream.write("\r\x1b[K" + self._bar)
            else:
                self._stream.write(plain_line(done, total, rows) + "\n")
            self._stream.flush()

    def finish(self) -> None:
        with self._lock:
            if self._terminal and self._bar:
                self._stream.write("\n")
                self._stream.flush()
            self._bar = ""

    def write(self, text: str) -> int:
        with self._lock:
            if self._terminal and self._bar:
                self._stream.write("\r\x1b[K" + text)
                if text.endswith("\n"):
                    self._stream.write(self._bar)
            else:
                self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._terminal

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
