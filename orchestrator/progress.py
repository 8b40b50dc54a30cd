"""The live terminal view of a running study: trials done / running / failed / diverged, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from orchestrator.book import Counts


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m07s``, ``12s``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def eta_seconds(*, elapsed_s: float, work_done: float, work_left: float) -> float | None:
    """Time left at the rate seen so far (``work`` in trial-epochs); None before any work."""
    if work_left <= 0:
        return 0.0
    if work_done <= 0 or elapsed_s <= 0:
        return None
    return elapsed_s * work_left / work_done


def status_line(name: str, counts: Counts, *, eta_s: float | None) -> str:
    """One line: ``name: 3/8 done · 2 running · 0 failed · 1 diverged · ETA 1m10s`` (with
    the trials stopped by the scheduler, when there are)."""
    stopped = f" · {counts.stopped} stopped early" if counts.stopped else ""
    return (
        f"{name}: {counts.done}/{counts.total} done{stopped} · {counts.running} running · "
        f"{counts.failed} failed · {counts.diverged} diverged · ETA {format_duration(eta_s)}"
    )


class ProgressView:
    """Redraws one status line on a terminal; elsewhere prints a line when counts change.

    Args:
        name: the study's name.
        out: where to write (stdout by default).
        interval_s: the least time between two lines (terminals redraw at this rate).
        quiet_interval_s: off a terminal, the most time between two lines.
    """

    def __init__(
        self,
        name: str,
        *,
        out: TextIO | None = None,
        interval_s: float = 1.0,
        quiet_interval_s: float = 60.0,
    ) -> None:
        self.name, self.out = name, out or sys.stdout
        self.interval_s, self.quiet_interval_s = interval_s, quiet_interval_s
        self.started = time.monotonic()
        self._base_work: float | None = None
        self._first_work: tuple[float, float] | None = None  # (when, work done) first seen
        self._last_time = float("-inf")
        self._last_line = ""
        self._tty = bool(getattr(self.out, "isatty", lambda: False)())

    def due(self) -> bool:
        """Whether an :meth:`update` now could draw (its counts are worth working out)."""
        return time.monotonic() - self._last_time >= self.interval_s or self._base_work is None

    def update(
        self, counts: Counts, *, work_done: float, work_left: float, force: bool = False
    ) -> None:
        """Show the current state; ``work`` counts trial-epochs (done this run, and left)."""
        now = time.monotonic()
        if self._base_work is None:
            self._base_work = work_done  # work resumed from an earlier run is not a rate
        if self._first_work is None and work_done > self._base_work:
            self._first_work = (now, work_done)
        if not force and now - self._last_time < self.interval_s:
            return
        line = status_line(self.name, counts, eta_s=self._eta(now, work_done, work_left))
        changed = line.split(" · ETA")[0] != self._last_line.split(" · ETA")[0]
        if self._tty:
            self.out.write("\r\033[K" + line)
        elif changed or now - self._last_time >= self.quiet_interval_s:
            self.out.write(line + "\n")
        else:
            return
        self.out.flush()
        self._last_time, self._last_line = now, line

    def _eta(self, now: float, work_done: float, work_left: float) -> float | None:
        """Time left at the rate seen since this run's first work was done: the start
        before it (Ray, a resumed study's trials set up again) is not a rate of work."""
        since, done = self._first_work or (now, work_done)  # none yet: 0 if none is left
        return eta_seconds(elapsed_s=now - since, work_done=work_done - done, work_left=work_left)

    def note(self, text: str) -> None:
        """A line of its own (say, a trial that failed), above the redrawn status line."""
        if self._tty:
            self.out.write("\r\033[K" + text + "\n" + self._last_line)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the redrawn line so what follows starts on its own."""
        if self._tty and self._last_line:
            self.out.write("\n")
            self.out.flush()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started
