"""Fixtures of the orchestrator tests: processes started in sessions of their own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # gcnc_testkit, any import mode

from gcnc_testkit import reap_session


@pytest.fixture
def spawn(ray_tmpdir, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a command in a new session; every session is reaped at the end of the test.

    With ``log=True`` its output goes to a file in ``tmp_path`` (a daemon's pipe that
    nobody reads would fill and stall it), else to a pipe for ``communicate``.
    """
    sessions: list[int] = []

    def start(*args: str, env: dict[str, str] | None = None, log: bool = False) -> subprocess.Popen:
        with contextlib.ExitStack() as stack:  # the child keeps its own copy of a log file
            out = (stack.enter_context(open(tmp_path / f"spawned-{len(sessions)}.log", "w"))
                   if log else subprocess.PIPE)  # fmt: skip
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True, env=env)  # fmt: skip
        sessions.append(proc.pid)
        return proc

    yield start
    for sid in sessions:
        reap_session(sid)
