"""One driver per study directory: ``driver.json``, its heartbeat, and what is refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from gcnc_testkit import sleep_study

from orchestrator import cli, lock
from orchestrator.provenance import open_study_dir
from orchestrator.status import format_status, read_status
from orchestrator.studyfile import load_spec
from studyfiles import InputError, StudyDir


@pytest.fixture
def sdir(tmp_path) -> StudyDir:
    """A study directory with its study.json, as ``gcnc run`` leaves it."""
    study = load_spec(sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]\n"))
    folder = StudyDir.of(str(tmp_path / "runs"), study.name)
    open_study_dir(folder, study)
    return folder


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def hold(sdir: StudyDir, *, pid: int, host: str | None = None, age_s: float = 0.0) -> dict:
    record = {
        "host": host or socket.gethostname(),
        "pid": pid,
        "token": "theirs",
        "started_at": "2026-11-28T04:00:00+00:00",
        "heartbeat": time.time() - age_s,
    }
    sdir.storage.write_bytes(sdir.storage.path(lock.LOCK_FILE), json.dumps(record).encode())
    return record


def lock_record(sdir: StudyDir) -> dict | None:
    path = sdir.storage.path(lock.LOCK_FILE)
    return json.loads(sdir.storage.read_bytes(path)) if sdir.storage.is_file(path) else None


def test_a_live_driver_on_this_host_keeps_the_study(sdir):
    theirs = hold(sdir, pid=os.getpid())
    with (
        pytest.raises(InputError, match=f"another gcnc driver \\(pid {os.getpid()} on"),
        lock.driver_lock(sdir),
    ):
        pytest.fail("the lock was taken from a live driver")
    assert lock_record(sdir) == theirs


def test_a_killed_driver_on_this_host_is_taken_over_at_once(sdir):
    hold(sdir, pid=dead_pid())
    with lock.driver_lock(sdir):
        mine = lock_record(sdir)
        assert mine["pid"] == os.getpid() and mine["host"] == socket.gethostname()
    assert lock_record(sdir) is None, "released at the end"


def test_a_driver_on_another_host_holds_until_its_heartbeat_is_stale(sdir):
    hold(sdir, pid=1, host="elsewhere", age_s=lock.STALE_S / 2)
    with pytest.raises(InputError, match="pid 1 on elsewhere"), lock.driver_lock(sdir):
        pytest.fail("the lock was taken from a live driver")
    hold(sdir, pid=1, host="elsewhere", age_s=lock.STALE_S + 1)
    with lock.driver_lock(sdir):
        assert lock_record(sdir)["pid"] == os.getpid()


def test_the_holder_rewrites_its_heartbeat(sdir, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.05)
    with lock.driver_lock(sdir):
        first = lock_record(sdir)["heartbeat"]
        deadline = time.time() + 10
        while lock_record(sdir)["heartbeat"] == first and time.time() < deadline:
            time.sleep(0.02)
        assert lock_record(sdir)["heartbeat"] > first


def test_resume_of_a_study_another_driver_runs_is_refused_before_ray_starts(sdir, capsys):
    hold(sdir, pid=os.getpid())
    assert cli.main(["resume", sdir.location]) == 2
    err = capsys.readouterr().err
    assert "is being run by another gcnc driver" in err and len(err.strip().splitlines()) == 1
    assert not sdir.storage.exists(sdir.tune), "nothing was started"


def test_status_names_the_driver_running_the_study(sdir):
    hold(sdir, pid=os.getpid())
    assert f"driver: running (pid {os.getpid()} on" in format_status(read_status(sdir))
    hold(sdir, pid=dead_pid())
    lines = format_status(read_status(sdir)).splitlines()
    assert "driver: none" in lines
    assert f"finish it with: gcnc resume {sdir.location}" in lines
