"""Studies through ``gcnc run`` on the session's Ray: grids, faults, resume, ASHA, TPE."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from gcnc_testkit import raw_rows, read_rows, read_trials, sleep_study, starts

from orchestrator import cli


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
    for trial_id in trials["trial_id"]:
        files = list((study_dir / "metrics" / f"trial_id={trial_id}").iterdir())
        assert [f.name for f in files] == ["compacted.parquet"]
    assert len(raw_rows(study_dir)) == len(read_rows(study_dir)) == 12
    assert (study_dir / "tune").is_dir()


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
    assert trials["status"].tolist() == ["done"] * 3
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
