"""Signals as stop requests, without Ray: the first in order, the second at once."""

from __future__ import annotations

import io
import os
import signal

import pytest

from orchestrator.interrupts import StopNow, StopRequests


def test_the_first_signal_goes_to_the_run_and_the_second_stops_at_once():
    asked = []
    stop = StopRequests(out=io.StringIO())
    stop.graceful = lambda: asked.append(True) or True
    stop.handle(signal.SIGINT)
    assert stop.requested and asked == [True] and stop.exit_code == 130
    with pytest.raises(StopNow) as raised:
        stop.handle(signal.SIGINT)
    assert isinstance(raised.value, KeyboardInterrupt)  # passes every `except Exception`
    assert asked == [True]
    assert "Ctrl-C stops at once" in stop._out.getvalue()


def test_a_signal_no_run_can_take_stops_at_once():
    stop = StopRequests(out=io.StringIO())
    with pytest.raises(StopNow) as raised:
        stop.handle(signal.SIGTERM)
    assert raised.value.signum == signal.SIGTERM and stop.exit_code == 143
    stop = StopRequests(out=io.StringIO())
    stop.graceful = lambda: False  # the runner cannot stop in order (say, not started yet)
    with pytest.raises(StopNow):
        stop.handle(signal.SIGINT)


def test_a_third_signal_exits_the_process(monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    stop = StopRequests(out=io.StringIO())
    stop.graceful = lambda: True
    stop.handle(signal.SIGTERM)
    with pytest.raises(StopNow):
        stop.handle(signal.SIGTERM)
    stop.handle(signal.SIGTERM)
    assert exits == [143]


def test_installed_handlers_take_real_signals_and_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop = StopRequests(out=io.StringIO())
    stop.graceful = lambda: True
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)  # handled in this thread before kill returns
        assert stop.requested and stop.name == "SIGTERM"
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a library takes it …
        stop.reclaim()  # … and the run takes it back
        assert signal.getsignal(signal.SIGTERM) == stop.handle
    assert {s: signal.getsignal(s) for s in before} == before
