"""Interrupted studies finish on one resume: Ctrl-C, SIGTERM, and a killed driver at scale.

Every driver runs in a session of its own (``spawn``), reaped at the end of the test; a
Ctrl-C is a SIGINT to the driver's whole process group, as a terminal sends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from gcnc_testkit import (
    assert_unchanged,
    compacted,
    finish,
    gcnc,
    kill_driver,
    raw_rows,
    read_rows,
    read_trials,
    run_study,
    session_pids,
    sleep_study,
    starts,
    trial_files,
    wait_for,
    write_study,
)

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent

# The quickstart's model and data, with short epochs: about 0.2 s an epoch on one core.
QUICK = """
name = "quick"
[data]
name = "digits"
source_classes = [0, 1, 2, 3, 4]
target_classes = [5, 6, 7, 8, 9]
[model]
name = "vgg11"
width = 8
[train]
lr = 0.02
batch_size = 64
epochs = 24
device = "cpu"
[metrics]
every = 1
gc_batches = 1
gc_batch_size = 64
nc_per_class = 50
fewshot_shots = [5]
fewshot_episodes = 50
[sweep]
seeds = [0, 1]
[sweep.grid]
"train.lr" = [0.005, 0.1]
[resources]
cpus_per_trial = 1
"""
TRAINED = ["train_loss", "train_acc", "test_acc", "gc", "nc_cdnv", "target_nc_cdnv",
           "fewshot_acc_5shot", "ncc_test_error", "step"]  # fmt: skip


def rows_of(study_dir: Path) -> pd.DataFrame:
    return read_rows(study_dir).set_index(["trial_id", "epoch"]).sort_index()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, ray_tmpdir) -> pd.DataFrame:
    """The quick study run once without a stop: the rows every interrupted run must match."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    run_study(write_study(folder, QUICK), folder / "runs", timeout_s=300)
    return rows_of(folder / "runs" / "quick")


@pytest.mark.parametrize(
    ("signum", "whole_group", "code"),
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stopped_run_records_what_it_left_and_one_resume_equals_an_uninterrupted_run(
    uninterrupted, spawn, tmp_path, signum, whole_group, code
):
    path = write_study(tmp_path, QUICK)
    study_dir = tmp_path / "runs" / "quick"
    driver = gcnc(spawn, "run", str(path), "--storage", str(tmp_path / "runs"), "--no-report")
    wait_for(  # a trial some epochs in, and a trial not started yet (2 run at a time of 4)
        lambda: any(len(read_rows(study_dir).query(f"trial_id == '{t}'")) >= 4
                    for t in trial_files(study_dir)) and len(trial_files(study_dir)) < 4,
        timeout_s=240, what="a trial some epochs in",
    )  # fmt: skip
    stopped_at = time.monotonic()
    os.killpg(driver.pid, signum) if whole_group else os.kill(driver.pid, signum)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == code, out
    assert time.monotonic() - stopped_at < 60, "the run did not stop promptly"
    wait_for(lambda: not session_pids(driver.pid), timeout_s=30, what="no process left")

    name = signal.Signals(signum).name
    summary = next(line for line in out.splitlines() if "stopped by" in line)
    trials = read_trials(study_dir).set_index("trial_id")
    by_status = trials["status"].value_counts().to_dict()
    assert set(by_status) <= {"done", "interrupted", "pending"}, by_status
    assert by_status.get("interrupted", 0) >= 1 and by_status.get("pending", 0) >= 1
    assert (
        f"quick: stopped by {name} after" in summary
        and f"{by_status.get('done', 0)}/4 trials done, {by_status['interrupted']} interrupted, "
        f"{by_status['pending']} not started"
        in summary
    ), summary
    assert f"finish it with: gcnc resume {study_dir}" in out
    rows = read_rows(study_dir)
    for trial_id, rec in trials.iterrows():  # nothing recorded done that is not
        reached = rows.loc[rows["trial_id"] == trial_id, "epoch"].max()
        if rec["status"] == "done":
            assert reached == 24
        if rec["status"] == "interrupted":
            assert rec["epochs_done"] == reached < 24
    status = subprocess.run(
        [sys.executable, "-m", "orchestrator", "status", str(study_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "interrupted (a resume continues them):" in status, status

    finish(gcnc(spawn, "resume", str(study_dir), "--no-report"))
    assert (read_trials(study_dir)["status"] == "done").all()
    assert len(raw_rows(study_dir)) == 4 * 25  # exactly one row per (trial, epoch)
    pd.testing.assert_frame_equal(rows_of(study_dir)[TRAINED], uninterrupted[TRAINED])


def test_a_second_ctrl_c_stops_at_once_and_the_study_still_resumes(spawn, tmp_path):
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1, 2, 3, 4, 5]\n", epochs=6, sleep_s=0.5)
    study_dir = tmp_path / "runs" / "sleepy"
    driver = gcnc(spawn, "run", str(path), "--storage", str(tmp_path / "runs"), "--no-report")
    wait_for(lambda: len(read_rows(study_dir)) >= 4, timeout_s=240, what="some epochs")
    os.killpg(driver.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out
    assert "SIGINT again: stopping at once" in out and "Traceback" not in out
    wait_for(lambda: not session_pids(driver.pid), timeout_s=30, what="no process left")
    before = read_rows(study_dir)
    assert "done" not in set(read_trials(study_dir)["status"])  # none reached epoch 6

    finish(gcnc(spawn, "resume", str(study_dir), "--no-report"))
    assert (read_trials(study_dir)["status"] == "done").all()
    assert len(read_rows(study_dir)) == len(raw_rows(study_dir)) == 6 * 7
    assert_unchanged(before, read_rows(study_dir))


# ------------------------------------------------------------ a killed driver at scale

MANY = 300
EPOCHS = 3


def many_study(tmp_path: Path) -> Path:
    """300 short trials of the stand-in trainable, up to 16 at a time on two cores (about
    a dozen in flight once Ray has started their workers)."""
    seeds = ", ".join(str(s) for s in range(MANY // 10))
    lrs = ", ".join(f"{0.1 * (i + 1):.1f}" for i in range(10))
    extra = f'[sweep]\nseeds = [{seeds}]\n[sweep.grid]\n"train.lr" = [{lrs}]\n'
    return sleep_study(tmp_path, extra, name="many", epochs=EPOCHS, sleep_s=0.2, cpus=0.125)


def newest_checkpoints(study_dir: Path) -> dict[str, int]:
    """Each trial's newest checkpoint epoch."""
    out = {}
    for folder in (study_dir / "checkpoints").glob("t*"):
        epochs = [int(p.stem.split("=")[1]) for p in folder.glob("epoch=*.ckpt")]
        if epochs:
            out[folder.name] = max(epochs)
    return out


def in_flight(study_dir: Path) -> int:
    """Trials with rows that have not ended."""
    return sum("compacted.parquet" not in files for files in trial_files(study_dir).values())


def running(driver: subprocess.Popen, ready) -> bool:
    """``ready()``, for a driver that must still be running."""
    assert driver.poll() is None, "the driver ended before it could be killed"
    return ready()


@pytest.mark.parametrize("moment", ["early", "middle", "merging"])
def test_a_driver_killed_at_any_moment_of_a_big_study_finishes_in_one_resume(
    spawn, tmp_path, moment
):
    path = many_study(tmp_path)
    study_dir = tmp_path / "runs" / "many"
    run = ["run", str(path), "--storage", str(tmp_path / "runs"), "--no-report"]
    marker = tmp_path / "merging"
    if moment == "merging":  # the first merge (64 finished trials) waits after its writes
        driver = spawn(sys.executable, str(HERE / "slow_merge.py"), str(marker), *run)
        wait_for(lambda: running(driver, marker.exists), timeout_s=600, what="a merge half done")
    else:
        driver = gcnc(spawn, *run)
        ended = 3 if moment == "early" else MANY // 2
        wait_for(lambda: running(driver, lambda: len(compacted(study_dir)) >= ended
                                 and in_flight(study_dir) >= 4),
                 timeout_s=600, what=f"{ended} trials ended, 4 in flight")  # fmt: skip
    kill_driver(driver)
    before, ended_before = read_rows(study_dir), compacted(study_dir)
    newest = newest_checkpoints(study_dir)
    logged = len(starts(tmp_path))
    assert 0 < len(ended_before) < MANY
    if moment == "merging":  # the merged trials' rows are in a part and still in their folders
        assert any("compacted.parquet" in fs for t, fs in trial_files(study_dir).items()
                   if t in ended_before)  # fmt: skip

    out = finish(gcnc(spawn, "resume", str(study_dir), "--no-report"), timeout_s=900)
    assert f"many: {MANY}/{MANY} trials done" in out, out
    assert "finish it with" not in out
    trials = read_trials(study_dir)
    assert (trials["status"] == "done").all()
    raw = raw_rows(study_dir)
    assert len(raw) == MANY * (EPOCHS + 1)  # every trial all its rows, none twice
    per_trial = raw.groupby("trial_id")["epoch"].agg(["min", "max", "nunique"])
    assert (per_trial["min"] == 0).all() and (per_trial["max"] == EPOCHS).all()
    assert (per_trial["nunique"] == EPOCHS + 1).all()
    assert_unchanged(before, read_rows(study_dir))

    ids = {(t["train.lr"], t["train.seed"]): t["trial_id"] for t in trials.to_dict("records")}
    resumed = Counter()
    for attempt in starts(tmp_path)[logged:]:
        trial_id = ids[(attempt["lr"], attempt["seed"])]
        assert trial_id not in ended_before, f"{trial_id} had ended and ran again"
        # a trial continues from its newest checkpoint, or starts when it had none
        assert attempt["start_epoch"] == newest.get(trial_id, 0), trial_id
        resumed[trial_id] += 1
    assert max(resumed.values()) == 1, "a trial started twice in the resume"
    assert json.loads((study_dir / "study.json").read_text())["name"] == "many"
