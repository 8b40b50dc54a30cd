"""Fixtures of the orchestrator tests: processes started in sessions of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

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


@pytest.fixture
def cluster_tmpdir() -> Iterator[Path]:
    """A RAY_TMPDIR of one cluster (set up before, removed after ``spawn`` reaps it)."""
    folder = Path(tempfile.mkdtemp(prefix="gcnc-c", dir="/tmp"))
    (folder / "ray").mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
