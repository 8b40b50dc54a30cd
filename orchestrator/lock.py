"""One driver at a time per study directory.

A driver running a study holds ``<study dir>/driver.json``: its host, PID, start time and a
heartbeat it rewrites every :data:`HEARTBEAT_S` seconds. Another ``gcnc run`` or
``gcnc resume`` of the same directory is refused while that driver lives: two drivers would
run the same trials twice and overwrite each other's Tune experiment. A driver counts as
gone when its heartbeat is older than :data:`STALE_S`, or, on the same host, when its
process has exited (a killed driver is taken over at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from studyfiles import InputError, StudyDir

LOCK_FILE = "driver.json"
HEARTBEAT_S = 30.0
STALE_S = 120.0


@contextlib.contextmanager
def driver_lock(sdir: StudyDir) -> Iterator[None]:
    """Hold ``sdir`` for this process while the block runs.

    Raises:
        InputError: another driver holds the study directory.
    """
    path = sdir.storage.path(LOCK_FILE)
    check_free(sdir)
    token = uuid.uuid4().hex
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": _now(),
        "token": token,
    }
    _write(sdir, path, record)
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(sdir, path, record, stop), name="gcnc-lock", daemon=True
    )
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        with contextlib.suppress(OSError, ValueError):
            if _read(sdir, path).get("token") == token:
                sdir.storage.delete(path)


def check_free(sdir: StudyDir) -> None:
    """Raise an InputError when a live driver holds ``sdir``."""
    holder = live_holder(sdir)
    if holder is not None:
        raise InputError(
            "STUDY_DIR",
            f"{sdir.location} is being run by another gcnc driver ({describe(holder)})",
            "wait for it to finish, or stop it first; a driver that was killed on another "
            f"host is taken over {STALE_S:.0f} s after its last heartbeat",
        )


def live_holder(sdir: StudyDir) -> dict[str, Any] | None:
    """The record of the live driver holding ``sdir``, if one does."""
    holder = _read(sdir, sdir.storage.path(LOCK_FILE))
    return holder if holder and is_live(holder) else None


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host, since <time>, last seen 4 s ago``."""
    age = time.time() - float(holder.get("heartbeat", 0.0))
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started_at')}, "
        f"last seen {age:.0f} s ago"
    )


def is_live(holder: dict[str, Any]) -> bool:
    """Whether the driver ``holder`` describes is still running (see the module doc)."""
    try:
        fresh = time.time() - float(holder["heartbeat"]) < STALE_S
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if not fresh:
        return False
    return holder.get("host") != socket.gethostname() or pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _heartbeat(sdir: StudyDir, path: str, record: dict[str, Any], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):  # a storage hiccup: the next beat tries again
            _write(sdir, path, record)


def _write(sdir: StudyDir, path: str, record: dict[str, Any]) -> None:
    record["heartbeat"] = time.time()
    sdir.storage.write_bytes(path, json.dumps(record, indent=1).encode())


def _read(sdir: StudyDir, path: str) -> dict[str, Any]:
    try:
        if not sdir.storage.is_file(path):
            return {}
        value = json.loads(sdir.storage.read_bytes(path))
    except (OSError, ValueError):
        return {}  # unreadable: treated as no holder (a crash mid-write leaves no driver)
    return value if isinstance(value, dict) else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
