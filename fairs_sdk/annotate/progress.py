"""A one-line progress display for ``fairs annotate``: objects done, objects/s, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour) of a non-negative duration."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Prints ``done/total objects, rate objects/s, ETA`` to ``stream``.

    On a terminal the line is redrawn at most every ``interval`` seconds; elsewhere
    (logs) a new line is printed at most every ``log_interval`` seconds. The rate counts
    the objects computed in this run since :meth:`start` (not those taken from a journal).
    """

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, enabled: bool = True,
                 interval: float = 0.5, log_interval: float = 10.0) -> None:
        self.total, self.done, self.computed = total, done, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self.started = self._last = time.perf_counter()

    def start(self) -> None:
        """Restart the clock (call when the first worker is ready to count from there)."""
        self.started = time.perf_counter()

    @property
    def rate(self) -> float:
        """Objects computed per second since :meth:`start`."""
        elapsed = time.perf_counter() - self.started
        return self.computed / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        left = self.total - self.done
        eta = format_duration(left / rate) if rate > 0 else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.done}/{self.total} objects ({pct:.1f} %), {rate:.2f} objects/s, ETA {eta}"

    def update(self, objects: int) -> None:
        """Count ``objects`` more as done; redraw if it is time."""
        self.done += objects
        self.computed += objects
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.interval or self.done == self.total):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line on a terminal."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
