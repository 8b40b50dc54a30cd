"""Studies through ``gcnc run`` on the session's Ray: grids, faults, resume, ASHA, TPE, and
studies whose trials no node can hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from gcnc_testkit import raw_rows, read_rows, read_trials, sleep_study, starts, write_study

from orchestrator import cli
from orchestrator.cluster import remove_dead_private_folders
from orchestrator.provenance import open_study_dir
from orchestrator.studyfile import load_spec
from studyfiles import StudyDir


def run_resume(study_dir: Path) -> int:
    return cli.main(["resume", str(study_dir), "--no-report"])


def run(path: Path, storage: Path | str, *extra: str) -> int:
    return cli.main(["run", str(path), "--storage", str(storage), "--no-report", *extra])


def test_a_grid_runs_every_trial_and_writes_the_study_dir(ray_cluster, tmp_path, capsys):
    """Through a ``file://`` URI, the way every ``pyarrow.fs`` storage is addressed."""
    path = sleep_study(
        tmp_path,
        "[sweep]\nseeds = [0, 1]\n[sweep.grid]\ntrain.lr = [0.1, 0.5]\n",
        epochs=2,
        sleep_s=0.1,
    )
    assert run(path, f"file://{tmp_path}/runs") == 0
    out = capsys.readouterr().out
    assert f"gcnc: running study sleepy: 4 trials -> file://{tmp_path}/runs/sleepy" in out
    assert "sleepy: 4/4 trials done (0 diverged), 0 failed, 0 not run; 12 rows" in out
    study_dir = tmp_path / "runs" / "sleepy"
    info = json.loads((study_dir / "study.json").read_text())
    assert info["sweep_params"] == ["train.lr", "train.seed"]
    trials = read_trials(study_dir)
    assert trials["trial_id"].tolist() == ["t00000", "t00001", "t00002", "t00003"]
    assert trials["status"].tolist() == ["done"] * 4 and trials["attempts"].tolist() == [1] * 4
    assert trials["epochs_done"].tolist() == [2] * 4
    assert list(zip(trials["train.lr"], trials["train.seed"], strict=True)) == [
        (0.1, 0),
        (0.5, 0),
        (0.1, 1),
        (0.5, 1),
    ]
    (part,) = (study_dir / "metrics").iterdir()  # every trial merged when the run ended
    assert part.name.startswith("part-") and part.suffix == ".parquet"
    assert len(raw_rows(study_dir)) == len(read_rows(study_dir)) == 12
    assert (study_dir / "tune").is_dir()


def test_a_trial_that_cannot_start_fails_once_and_a_resume_tries_it_once_more(
    ray_cluster, tmp_path, capsys
):
    path = sleep_study(
        tmp_path,
        "[sweep.grid]\ntrain.lr = [0.1, 0.5]\nmodel.options.fail_lr = [0.5]\n",
        epochs=1,
        sleep_s=0.0,
    )
    assert run(path, tmp_path / "runs") == 1
    out, err = capsys.readouterr()
    assert "sleepy: 1/2 trials done (0 diverged), 1 failed, 0 not run" in out
    assert (  # it could not start: retrying cannot help, so it fails once
        "gcnc: trial t00001 failed (not retried): ValueError: train.lr = 0.5 is at or "
        "above fail_lr = 0.5\n"
    ) in out
    assert (
        "error (the whole of it is in trials.parquet's error column):\n"
        "  t00001: ValueError: train.lr = 0.5 is at or above fail_lr = 0.5\n"
        f"gcnc: finish it with: gcnc resume {tmp_path / 'runs' / 'sleepy'}"
    ) in out
    assert "Traceback" not in out + err  # Tune's tracebacks stay off the terminal
    trials = read_trials(tmp_path / "runs" / "sleepy").set_index("trial_id")
    assert trials["status"].tolist() == ["done", "error"]
    assert trials.loc["t00001", "attempts"] == 1  # not max_failures + 1 = 3
    assert len([s for s in starts(tmp_path) if s["lr"] == 0.5]) == 1
    # a resume tries it once more (its cause may be fixed), then says resuming will not help
    assert run_resume(tmp_path / "runs" / "sleepy") == 1
    out = capsys.readouterr().out
    assert "t00001: ValueError: train.lr = 0.5 is at or above fail_lr = 0.5 (failed in every" in out
    assert "resuming helps only once the cause named above is fixed" in out
    assert "finish it with" not in out
    assert len([s for s in starts(tmp_path) if s["lr"] == 0.5]) == 2


@pytest.mark.slow
def test_crashed_and_diverged_trials(ray_cluster, tmp_path):
    marker = tmp_path / "crashed-{lr}-{seed}"
    extra = f"""
        diverge_lr = 1.0
        diverge_at = 2
        crash_marker = "{marker}"
        [sweep.grid]
        train.lr = [0.1, 1.0]
        model.options.crash_at = [0, 2]
    """
    path = sleep_study(tmp_path, "", epochs=3, sleep_s=0.1)
    text = path.read_text().replace("[resources]", _dedent(extra) + "[resources]", 1)
    path.write_text(text.replace("[sweep.grid]", "\n[sweep.grid]"))
    assert run(path, tmp_path / "runs") == 0

    study_dir = tmp_path / "runs" / "sleepy"
    trials = read_trials(study_dir).set_index("trial_id")
    assert trials["status"].tolist() == ["done"] * 4
    assert trials["diverged"].tolist() == [False, False, True, True]
    assert trials["attempts"].tolist() == [1, 2, 1, 2]  # crash_at = 2: one restart
    rows = read_rows(study_dir)
    assert len(raw_rows(study_dir)) == len(rows)  # one row per (trial, epoch)
    assert rows.groupby("trial_id")["epoch"].max().tolist() == [3, 3, 2, 2]
    restarted = [s for s in starts(tmp_path) if s["start_epoch"] > 0]
    assert sorted((s["lr"], s["start_epoch"]) for s in restarted) == [(0.1, 1), (1.0, 1)]
    assert rows.loc[rows["diverged"], "train_loss"].isna().all()


def _dedent(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"


def test_running_a_finished_study_again_reruns_nothing(ray_cluster, tmp_path, capsys):
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]\n", epochs=2, sleep_s=0.05)
    assert run(path, tmp_path / "runs") == 0
    study_dir = tmp_path / "runs" / "sleepy"
    before, logged = read_rows(study_dir), len(starts(tmp_path))
    capsys.readouterr()
    assert run(path, tmp_path / "runs") == 0  # the same spec: a resume
    assert "gcnc: resuming study sleepy" in capsys.readouterr().out
    assert len(starts(tmp_path)) == logged
    pd.testing.assert_frame_equal(read_rows(study_dir), before)


def test_a_different_spec_in_the_same_dir_is_refused(ray_cluster, tmp_path, capsys):
    path = sleep_study(tmp_path, epochs=1, sleep_s=0.0)
    assert run(path, tmp_path / "runs") == 0
    capsys.readouterr()
    assert run(path, tmp_path / "runs", "--set", "train.epochs=2") == 2
    err = capsys.readouterr().err
    assert err.startswith("gcnc: error: study.json: ") and "train.epochs" in err
    assert len(err.splitlines()) == 1


def test_asha_stops_the_worse_trials_early(ray_cluster, tmp_path):
    extra = """
        [sweep.grid]
        train.lr = [0.5, 0.01, 0.001]
        [scheduler]
        metric = "test_acc"
        mode = "max"
        grace_period = 1
        reduction_factor = 2
    """
    path = sleep_study(tmp_path, _dedent(extra), epochs=4, sleep_s=0.05)
    assert run(path, tmp_path / "runs", "--set", "resources.max_concurrent=1") == 0
    trials = read_trials(tmp_path / "runs" / "sleepy")
    assert trials["status"].tolist() == ["done", "stopped", "stopped"]  # stopped, not done
    assert trials["epochs_done"].tolist() == [4, 1, 1]  # each later trial is worse at rung 1
    rows = read_rows(tmp_path / "runs" / "sleepy")
    assert rows.groupby("trial_id")["epoch"].max().tolist() == [4, 1, 1]


def test_optuna_tpe_runs_its_budget_inside_the_space(ray_cluster, tmp_path):
    extra = """
        [search]
        metric = "test_acc"
        mode = "max"
        budget = 3
        [search.space]
        train.lr = {loguniform = [0.01, 1.0]}
        train.seed = {choice = [0, 1]}
    """
    path = sleep_study(tmp_path, _dedent(extra), epochs=1, sleep_s=0.0)
    assert run(path, tmp_path / "runs") == 0
    trials = read_trials(tmp_path / "runs" / "sleepy")
    assert len(trials) == 3 and (trials["status"] == "done").all()
    assert trials["train.lr"].between(0.01, 1.0).all()
    assert set(trials["train.seed"]) <= {0, 1}
    assert all(t.startswith("t") and t != "t00000" for t in trials["trial_id"])
    assert len(read_rows(tmp_path / "runs" / "sleepy")) == 6


def test_a_study_no_node_can_hold_is_refused_before_anything_is_written(
    ray_cluster, tmp_path, capsys
):
    """The session's cluster has one node of 2 CPUs and no GPU."""
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]\n", epochs=1, sleep_s=0.0, cpus=3)
    assert run(path, tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("gcnc: error: resources.cpus_per_trial: a trial needs 3 CPUs")
    assert "no node of the Ray cluster has more than 2 CPUs (1 node, 2 CPUs in all)" in err
    assert "--set resources.cpus_per_trial=2" in err
    assert not (tmp_path / "runs" / "sleepy").exists() and starts(tmp_path) == []

    assert run(path, tmp_path / "runs", "--set", "resources.gpus_per_trial=0.5") == 2
    err = capsys.readouterr().err  # both short: the first named, both fixed
    assert err.startswith("gcnc: error: resources.cpus_per_trial: a trial needs 3 CPUs and")
    assert "--set resources.cpus_per_trial=2 --set resources.gpus_per_trial=0," in err

    # The fix the message gives: the same file, corrected on the command line, runs.
    assert run(path, tmp_path / "runs", "--set", "resources.cpus_per_trial=2") == 0
    assert "sleepy: 2/2 trials done" in capsys.readouterr().out
    assert len(starts(tmp_path)) == 2


def test_a_gpu_study_on_a_cluster_without_gpus_is_refused(ray_cluster, tmp_path, capsys):
    path = sleep_study(tmp_path, epochs=1, sleep_s=0.0)
    assert run(path, tmp_path / "runs", "--set", "resources.gpus_per_trial=0.5") == 2
    err = capsys.readouterr().err
    assert err.startswith("gcnc: error: resources.gpus_per_trial: a trial needs 0.5 GPUs")
    assert "no node of the Ray cluster has any GPU" in err
    assert "--set resources.gpus_per_trial=0," in err
    assert not (tmp_path / "runs").exists()


def test_resuming_a_stored_study_no_node_can_hold_is_refused(ray_cluster, tmp_path, capsys):
    """A study started on a bigger cluster: its resources are part of the stored spec."""
    path = sleep_study(tmp_path, epochs=1, sleep_s=0.0, cpus=4)
    sdir = StudyDir.of(str(tmp_path / "runs"), "sleepy")
    open_study_dir(sdir, load_spec(path))
    before = sorted(p.name for p in (tmp_path / "runs" / "sleepy").iterdir())
    assert cli.main(["resume", str(tmp_path / "runs" / "sleepy"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gcnc: error: resources.cpus_per_trial: a trial needs 4 CPUs")
    assert "study.json" in err and "--address" in err and "--set" not in err
    assert sorted(p.name for p in (tmp_path / "runs" / "sleepy").iterdir()) == before
    assert run(path, tmp_path / "runs") == 2  # `gcnc run` of the same spec is a resume
    assert "study.json" in capsys.readouterr().err
    assert starts(tmp_path) == []


def test_folders_of_private_rays_whose_driver_was_killed_are_removed(tmp_path):
    """A SIGKILLed driver leaves its private Ray's folder behind; the next private Ray
    removes it once the driver is gone and the folder has been quiet for a while."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid, live_pid = int(gone.stdout), os.getpid()
    old = time.time() - 3600

    def private(name: str, pid: int, *, mtime: float) -> Path:
        session = tmp_path / name / f"session_2026-11-28_04-58-01_449625_{pid}"
        (session / "logs").mkdir(parents=True)
        for path in (session, session.parent):
            os.utime(path, (mtime, mtime))
        return session.parent

    killed = private("gcnc-killed", dead_pid, mtime=old)
    running = private("gcnc-running", live_pid, mtime=old)
    recent = private("gcnc-recent", dead_pid, mtime=time.time())
    unrelated = private("someone-else", dead_pid, mtime=old)
    not_ray = tmp_path / "gcnc-bench-analysis"
    not_ray.mkdir()

    assert remove_dead_private_folders(str(tmp_path)) == [str(killed)]
    assert not killed.exists()
    assert running.exists() and recent.exists() and unrelated.exists() and not_ray.exists()


def test_a_study_whose_dataset_files_are_missing_is_refused_before_anything_is_written(
    ray_cluster, tmp_path, capsys
):
    path = write_study(tmp_path, '[data]\nname = "cifar10"\ndata_root = "/nowhere"\n')
    assert run(path, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "gcnc: error: data.data_root: dataset 'cifar10': files not found (looked in "
        "/nowhere/cifar-10-batches-py) (set data.data_root to the folder that holds them"
    ), err
    assert not (tmp_path / "runs").exists()
