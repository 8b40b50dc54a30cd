"""Helpers for the orchestrator tests: study files, an independent metrics reader, processes."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trainables.reporter import TrialInterrupted

SLEEP_STUDY = """
name = "{name}"
trainable = "testing.sleep"
[train]
epochs = {epochs}
[model.options]
sleep_s = {sleep_s}
log_dir = "{log_dir}"
[resources]
cpus_per_trial = {cpus}
max_failures = 2
"""


class Results:
    """The runner's side of a trial run by hand: it keeps each result the trial reports.

    Args:
        stop_after: raise :class:`TrialInterrupted` on this many-th result, as a process
            killed right after its row and checkpoint were written.
    """

    def __init__(self, *, stop_after: int | None = None) -> None:
        self.results: list[dict] = []
        self.stop_after = stop_after

    def report_result(self, metrics) -> None:
        self.results.append(dict(metrics))
        if self.stop_after is not None and len(self.results) >= self.stop_after:
            raise TrialInterrupted(f"stopped after {len(self.results)} results")

    @property
    def epochs(self) -> list[int]:
        return [r["epoch"] for r in self.results]


def fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, where nothing is imported yet."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def write_study(folder: Path, text: str, *, filename: str = "study.toml") -> Path:
    """Write a study file (dedented) and return its path."""
    path = Path(folder, filename)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def sleep_study(
    folder: Path,
    extra: str = "",
    *,
    name: str = "sleepy",
    epochs: int = 3,
    sleep_s: float = 0.2,
    cpus: float = 1.0,
) -> Path:
    """A study of the stand-in trainable, logging every attempt's start to ``folder/logs``."""
    logs = Path(folder, "logs")
    logs.mkdir(exist_ok=True)
    text = SLEEP_STUDY.format(name=name, epochs=epochs, sleep_s=sleep_s, log_dir=logs, cpus=cpus)
    return write_study(folder, text + textwrap.dedent(extra), filename=f"{name}.toml")


def starts(folder: Path) -> list[dict]:
    """The attempts the stand-in trainable logged, in order."""
    path = Path(folder, "logs", "starts.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# A table's key (docs/schema.md): the metrics table's, and the layers table's.
KEYS = {"metrics": ["trial_id", "epoch"], "layers": ["trial_id", "epoch", "layer"]}


def _table_files(study_dir: str | os.PathLike, table: str) -> list[str]:
    return sorted(glob.glob(os.path.join(study_dir, table, "**", "*.parquet"), recursive=True))


def read_rows(study_dir: str | os.PathLike, table: str = "metrics") -> pd.DataFrame:
    """Every row of ``table`` (metrics or layers) as docs/schema.md tells a reader to:
    concatenate all files, keep the latest ``written_at`` per key. Written with pandas,
    independently of the orchestrator's own reader."""
    files = _table_files(study_dir, table)
    if not files:
        return pd.DataFrame()
    frames = [pq.ParquetFile(f).read().to_pandas() for f in files]
    raw = pd.concat(frames, ignore_index=True)
    key = KEYS[table]
    latest = raw.sort_values("written_at", kind="stable").drop_duplicates(key, keep="last")
    return latest.sort_values(key).reset_index(drop=True)


def raw_rows(study_dir: str | os.PathLike, table: str = "metrics") -> pd.DataFrame:
    """Every row of every file of ``table`` (metrics or layers), duplicates included."""
    tables = [pq.ParquetFile(f).read() for f in _table_files(study_dir, table)]
    if not tables:
        return pd.DataFrame()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def read_trials(study_dir: str | os.PathLike) -> pd.DataFrame:
    return pq.ParquetFile(os.path.join(study_dir, "trials.parquet")).read().to_pandas()


# ---------------------------------------------------------------- processes

VALUES = [  # what the stand-in trainable writes, compared across a kill and a resume
    "train.lr",
    "train.seed",
    "step",
    "train_loss",
    "train_acc",
    "test_acc",
    "gc",
    "nc_cdnv",
    "diverged",
]


def gcnc(spawn, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return spawn(sys.executable, "-m", "orchestrator", *args, env=env)


def finish(proc: subprocess.Popen, *, timeout_s: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, out
    return out


def run_study(study: Path, storage: Path, *, timeout_s: float) -> str:
    """``gcnc run STUDY --storage STORAGE --no-report`` to its end (exit 0 asserted) in a
    session of its own, reaped after: for a module's fixture, which cannot use ``spawn``.
    Returns its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(study), "--storage", str(storage),
         "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        reap_session(proc.pid)
    assert proc.returncode == 0, out
    return out


def trial_files(study_dir: Path) -> dict[str, list[str]]:
    folder = study_dir / "metrics"
    if not folder.is_dir():
        return {}
    return {
        d.name.split("=", 1)[1]: sorted(f.name for f in d.iterdir() if f.suffix == ".parquet")
        for d in folder.iterdir()
        if d.is_dir()
    }


def compacted(study_dir: Path) -> set[str]:
    """Trials that ended: compacted in their folder, or merged into a part."""
    folders = {t for t, files in trial_files(study_dir).items() if "compacted.parquet" in files}
    return folders | merged(study_dir)


def merged(study_dir: Path) -> set[str]:
    parts = (study_dir / "metrics").glob("part-*.parquet")
    return {t for p in parts for t in json.loads(pq.read_metadata(p).metadata[b"gcnc.trials"])}


def kill_driver(spawn_proc: subprocess.Popen) -> None:
    os.kill(spawn_proc.pid, signal.SIGKILL)
    spawn_proc.wait(timeout=30)
    reap_session(spawn_proc.pid)  # the Ray it started, left behind


def assert_unchanged(
    before: pd.DataFrame, after: pd.DataFrame, *, columns: list[str] = VALUES
) -> None:
    """Every row written before the kill holds the same values after the resume."""
    both = before.merge(after, on=["trial_id", "epoch"], suffixes=("_b", "_a"), how="left")
    for col in columns:
        pd.testing.assert_series_equal(both[f"{col}_b"], both[f"{col}_a"], check_names=False)


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux ``/proc``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session
            pids.append(int(entry))
    return pids


def reap_session(sid: int, *, timeout_s: float = 30.0) -> None:
    """SIGKILL every process of session ``sid`` (one this test started) and wait for them."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes of session {sid} still alive: {pids}")
        time.sleep(0.2)


def wait_for(predicate, *, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``predicate`` until it is true, or fail naming ``what``. A file that vanishes
    while the predicate reads it (a live study rolls up and merges its files) counts as
    not yet."""
    deadline = time.monotonic() + timeout_s
    while not _holds(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def _holds(predicate) -> bool:
    try:
        return bool(predicate())
    except FileNotFoundError:
        return False


# --- a test's own multi-process Ray cluster (``ray start`` nodes on loopback) ----------

# What every node of a test's own cluster runs with: in the foreground (``spawn`` reaps its
# session), a small object store, on loopback.
NODE_FLAGS = ("--object-store-memory", str(80 * 1024**2), "--block", "--disable-usage-stats",
              "--node-ip-address", "127.0.0.1")  # fmt: skip


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(cluster_tmpdir: Path) -> dict[str, str]:
    """The environment of a test's own cluster and its driver: a shared token (Ray's token
    auth) and a private RAY_TMPDIR."""
    return os.environ | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_TMPDIR": str(cluster_tmpdir),
    }


def start_head(spawn, env: dict[str, str], *resources: str) -> str:
    """Start a head node with ``resources`` (``ray start`` flags); return its address once
    it accepts connections."""
    port = free_port()
    spawn("ray", "start", "--head", "--port", str(port), "--include-dashboard", "false",
          *NODE_FLAGS, *resources, *agent_ports(), env=env, log=True)  # fmt: skip
    address = f"127.0.0.1:{port}"
    wait_for(lambda: connects(address), timeout_s=120, what="the head node")
    return address


def agent_ports() -> list[str]:
    """Free ports for a node's agents: their defaults are fixed, and the session's own
    cluster already holds them."""
    names = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
             "--runtime-env-agent-port", "--metrics-export-port")  # fmt: skip
    return [arg for name in names for arg in (name, str(free_port()))]


def connects(address: str) -> bool:
    """Whether something accepts connections at ``host:port``."""
    host, port = address.split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0
