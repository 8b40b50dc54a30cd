"""The folders of private Ray instances: under ``RAY_TMPDIR`` (else ``/tmp``), one per driver."""

from __future__ import annotations

import glob
import os
import shutil
import time

from orchestrator.lock import pid_alive

PRIVATE_PREFIX = "gcnc-"  # the folder of a private Ray: <temp root>/gcnc-XXXXXXXX/


def remove_dead_private_folders(root: str, *, min_age_s: float = 600.0) -> list[str]:
    """Remove the folders that private Rays of killed ``gcnc`` drivers left in ``root``.

    A private Ray's folder is ``<root>/gcnc-*/`` holding ``session_<date>_<time>_<us>_<pid>``,
    ``pid`` being its driver's. A driver killed by SIGKILL cannot remove it; this does, once
    every driver named there is gone and nothing was written there for ``min_age_s`` (Ray's
    agents outlive a killed driver by a few minutes). Returns the folders removed.
    """
    removed = []
    for folder in glob.glob(os.path.join(glob.escape(root), f"{PRIVATE_PREFIX}*")):
        sessions = glob.glob(os.path.join(glob.escape(folder), "session_2*_*"))
        pids = [name.rsplit("_", 1)[1] for name in sessions]
        if not sessions or not all(p.isdigit() and not pid_alive(int(p)) for p in pids):
            continue
        try:
            newest = max(os.stat(d).st_mtime for d in [folder, *sessions])
        except OSError:
            continue
        if time.time() - newest >= min_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def short_temp_root() -> str | None:
    """Where the private Ray's folder goes: ``RAY_TMPDIR``, else ``/tmp`` (Ray's socket
    paths have a length limit, and the system temp folder can be long)."""
    for folder in (os.environ.get("RAY_TMPDIR"), "/tmp"):
        if folder and os.path.isdir(folder):
            return folder
    return None
