"""Ctrl-C and SIGTERM as requests to stop a run: the first stops it in order, the second at once.

The first SIGINT or SIGTERM asks the run in progress to stop (:attr:`StopRequests.graceful`,
set by the runner while its trials run): the trials are stopped, their state is saved and
Ray is shut down, then the driver says what is done and what is not and exits with
``128 + signal`` (130 for SIGINT, 143 for SIGTERM). Where no run can take the request
(Ray starting, the report being written), and on a second signal, :class:`StopNow` is
raised in the main thread: every write of the study is atomic, so unwinding at any point
leaves it readable, and the context managers on the way out shut Ray down. A third signal
exits the process there and then.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopNow(KeyboardInterrupt):
    """Raised in the main thread to stop a run where it is.

    A ``KeyboardInterrupt`` so that ``except Exception`` clauses on its way (Ray's, Tune's)
    let it through, as they would a Ctrl-C.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self) -> tuple:
        return type(self), (self.signum,)


class StopRequests:
    """Counts SIGINT / SIGTERM while installed, and turns them into stops.

    Attributes:
        graceful: called on the first signal while a run can stop in order; returns whether
            it took the request (False: stop at once instead).
    """

    def __init__(self, *, out: TextIO | None = None) -> None:
        self.signum: int | None = None
        self.count = 0
        self.graceful: Callable[[], bool] | None = None
        self._out = out

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """``128 + signal``, as a shell reports a process ended by that signal."""
        return 128 + int(self.signum or 0)

    def handle(self, signum: int, frame: object = None) -> None:
        """The signal handler (also callable directly, as tests do)."""
        self.count += 1
        if self.count == 1:
            self.signum = signum
            if self.graceful is not None and self.graceful():
                again = "Ctrl-C" if signum == signal.SIGINT else "a second signal"
                self._say(f"{self.name}: stopping the trials and saving the study "
                          f"({again} stops at once)")  # fmt: skip
                return
            raise StopNow(signum)
        if self.count == 2:
            self._say(f"{signal.Signals(signum).name} again: stopping at once")
            raise StopNow(signum)
        os._exit(self.exit_code)  # a third: the user wants out whatever it costs

    def _say(self, text: str) -> None:
        out = self._out or sys.stderr
        print(f"gcnc: {text}", file=out, flush=True)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Handle SIGINT and SIGTERM with :meth:`handle` (only the main thread can)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self.handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def reclaim(self) -> None:
        """Handle the signals again after a library took them: Ray's core installs its own
        SIGTERM handler when it starts, which would end the driver on the spot."""
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                signal.signal(sig, self.handle)
