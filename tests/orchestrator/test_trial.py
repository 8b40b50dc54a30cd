"""One trial without Ray: rows before checkpoints, replays after a kill, finished trials,
checkpoints that are gone or unreadable; a trial's layer rows through the same."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from gcnc_testkit import Results, raw_rows, read_rows, sleep_study, starts
from sleepy import curve
from sleepy import layer_rows as layer_rows_of

from orchestrator.checkpoints import CheckpointStore
from orchestrator.parts import merge_finished
from orchestrator.provenance import open_study_dir
from orchestrator.studyfile import load_spec
from orchestrator.trial import make_job, run_trial
from studyfiles import StudyDir
from trainables.reporter import TrialInterrupted

VALUES = ["epoch", "step", "train_loss", "train_acc", "test_acc", "gc", "nc_cdnv", "diverged"]


@pytest.fixture
def job(tmp_path):
    study = load_spec(sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]", epochs=4, sleep_s=0.0))
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    return make_job(study, sdir, info)


def checkpoint_epochs(job, trial_id: str) -> list[int]:
    folder = Path(job.location, "checkpoints", trial_id)
    return sorted(int(p.stem.split("=")[1]) for p in folder.glob("*.ckpt"))


def test_a_trial_writes_one_row_per_evaluation_then_compacts(job, tmp_path):
    results = Results()
    summary = run_trial(job, job.points[1], "t00001", results)
    assert summary == {"epochs_done": 4, "diverged": False}
    rows = read_rows(job.location)
    assert rows["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert rows["train.seed"].tolist() == [1] * 5
    expected = [curve(0.01, 1, e)["train_loss"] for e in range(5)]
    assert rows["train_loss"].tolist() == pytest.approx(expected)
    assert rows["spec_hash"].unique().tolist() == [job.ctx.spec_hash]
    folder = tmp_path / "runs" / "sleepy" / "metrics" / "trial_id=t00001"
    assert [p.name for p in folder.iterdir()] == ["compacted.parquet"]
    assert results.epochs == [0, 1, 2, 3, 4]
    assert checkpoint_epochs(job, "t00001") == [4]  # the final state stays


def test_a_trial_stopped_after_a_checkpoint_resumes_to_the_same_rows(job, tmp_path):
    run_trial(job, job.points[0], "t00000", Results())
    whole = read_rows(job.location)[VALUES]

    other = job.__class__(
        str(tmp_path / "runs2"), job.ctx, job.trainable, job.base_config, job.points
    )
    with pytest.raises(TrialInterrupted):
        run_trial(other, other.points[0], "t00000", Results(stop_after=3))
    assert read_rows(other.location)["epoch"].tolist() == [0, 1, 2]
    assert checkpoint_epochs(other, "t00000") == [1, 2]  # the newest two while it runs
    run_trial(other, other.points[0], "t00000", Results())
    pd.testing.assert_frame_equal(read_rows(other.location)[VALUES], whole)
    assert [s["start_epoch"] for s in starts(tmp_path)] == [0, 0, 2]


def killed_before_the_checkpoint_of_epoch_2(job, monkeypatch) -> None:
    """Run the job's first trial until it is killed with epoch 2's row written and its
    checkpoint not yet saved."""
    save = CheckpointStore.save

    def dies_at_epoch_2(self, state, *, epoch):
        if epoch == 2:
            raise TrialInterrupted("killed before the checkpoint landed")
        save(self, state, epoch=epoch)

    monkeypatch.setattr(CheckpointStore, "save", dies_at_epoch_2)
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[0], "t00000", Results())
    monkeypatch.undo()


def test_a_row_written_before_a_lost_checkpoint_is_replayed_not_duplicated(job, monkeypatch):
    killed_before_the_checkpoint_of_epoch_2(job, monkeypatch)
    assert read_rows(job.location)["epoch"].tolist() == [0, 1, 2]  # epoch 2 has no checkpoint
    run_trial(job, job.points[0], "t00000", Results())
    rows = read_rows(job.location)
    assert rows["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert len(raw_rows(job.location)) == 5  # the replayed epoch's row replaced the first
    assert rows["train_loss"].tolist() == pytest.approx(
        [curve(0.01, 0, e)["train_loss"] for e in range(5)]
    )


@pytest.mark.parametrize(("removed", "resumes_at"), [([2], 1), ([1, 2], 0)])
def test_a_trial_whose_newest_checkpoints_are_gone_continues_from_one_that_exists(
    job, tmp_path, removed, resumes_at
):
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[0], "t00000", Results(stop_after=3))
    for epoch in removed:
        Path(job.location, "checkpoints", "t00000", f"epoch={epoch:05d}.ckpt").unlink()
    run_trial(job, job.points[0], "t00000", Results())
    assert [s["start_epoch"] for s in starts(tmp_path)] == [0, resumes_at]
    rows = read_rows(job.location)
    assert rows["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert rows["train_loss"].tolist() == pytest.approx(
        [curve(0.01, 0, e)["train_loss"] for e in range(5)]
    )


def test_an_unreadable_newest_checkpoint_is_passed_over_for_the_one_before(job, tmp_path, capsys):
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[0], "t00000", Results(stop_after=3))
    newest = Path(job.location, "checkpoints", "t00000", "epoch=00002.ckpt")
    newest.write_bytes(newest.read_bytes()[:10])  # cut off
    run_trial(job, job.points[0], "t00000", Results())
    assert [s["start_epoch"] for s in starts(tmp_path)] == [0, 1]
    assert "checkpoint epoch=00002.ckpt is unreadable" in capsys.readouterr().err


def test_a_finished_trial_is_not_trained_again(job, tmp_path):
    run_trial(job, job.points[0], "t00000", Results())
    before = read_rows(job.location)
    again = Results()
    summary = run_trial(job, job.points[0], "t00000", again)
    assert summary["epochs_done"] == 4
    assert len(starts(tmp_path)) == 1  # no second attempt started
    assert again.epochs == [4]  # its final result, given again
    pd.testing.assert_frame_equal(read_rows(job.location), before)


def test_a_trial_merged_into_a_part_is_not_trained_again(job, tmp_path):
    run_trial(job, job.points[0], "t00000", Results())
    run_trial(job, job.points[1], "t00001", Results())
    assert merge_finished(job.study_dir()) == 2
    assert not (tmp_path / "runs" / "sleepy" / "metrics" / "trial_id=t00000").exists()
    before = read_rows(job.location)
    again = Results()
    summary = run_trial(job, job.points[0], "t00000", again)
    assert summary["epochs_done"] == 4
    assert len(starts(tmp_path)) == 2  # one attempt per trial, none after the merge
    assert again.epochs == [4]
    pd.testing.assert_frame_equal(read_rows(job.location), before)


def test_a_trial_id_given_to_other_params_starts_afresh_not_from_their_checkpoint(job, tmp_path):
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[0], "t00009", Results(stop_after=3))
    run_trial(job, job.points[1], "t00009", Results())
    rows = read_rows(job.location)
    assert rows["train.seed"].tolist() == [1] * 5
    assert [(s["seed"], s["start_epoch"]) for s in starts(tmp_path)] == [(0, 0), (1, 0)]
    assert checkpoint_epochs(job, "t00009") == [4]


def test_a_diverged_trial_reports_it_with_null_metrics(tmp_path):
    extra = "diverge_lr = 0.5\ndiverge_at = 2\n"
    path = sleep_study(tmp_path, epochs=5, sleep_s=0.0)
    path.write_text(path.read_text().replace("[resources]", extra + "[resources]"))
    study = load_spec(path, overrides=["train.lr=1.0"])
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    job = make_job(study, sdir, info)
    summary = run_trial(job, job.points[0], "t00000", Results())
    rows = read_rows(job.location)
    assert summary["diverged"] is True
    assert rows["diverged"].tolist() == [False, False, True]
    assert rows["train_loss"].isna().tolist() == [False, False, True]


# ---------------------------------------------------------- a trial that measures layers


@pytest.fixture
def layers_job(tmp_path):
    extra = '[metrics]\nlayers = "all"\n[sweep]\nseeds = [0, 1]'
    study = load_spec(sleep_study(tmp_path, extra, epochs=4, sleep_s=0.0))
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    return make_job(study, sdir, info)


def expected_layers(lr: float, seed: int, epochs: range) -> list[list]:
    return [[e, r["layer"], r["layer_name"], r["gc"], r["nc_cdnv"]]
            for e in epochs for r in layer_rows_of(lr, seed, e, "all")]  # fmt: skip


def test_a_trial_writes_one_layer_row_per_epoch_and_layer_then_compacts_both_tables(layers_job):
    results = Results()
    run_trial(layers_job, layers_job.points[1], "t00001", results)
    rows = read_rows(layers_job.location, "layers")
    got = rows[["epoch", "layer", "layer_name", "gc", "nc_cdnv"]].values.tolist()
    assert got == expected_layers(0.01, 1, range(5))
    assert (rows["train.seed"] == 1).all() and (rows["spec_hash"] == layers_job.ctx.spec_hash).all()
    assert (
        rows.merge(read_rows(layers_job.location), on=["trial_id", "epoch"])[
            ["step_x", "written_at_x"]
        ]
        .notna()
        .all()
        .all()
    )
    for table in ("metrics", "layers"):
        folder = Path(layers_job.location, table, "trial_id=t00001")
        assert [p.name for p in folder.iterdir()] == ["compacted.parquet"]
    assert all("layers" not in r for r in results.results)  # the runner gets the row alone


def test_a_trial_killed_and_resumed_leaves_exactly_one_layer_row_per_key(layers_job, monkeypatch):
    killed_before_the_checkpoint_of_epoch_2(layers_job, monkeypatch)
    assert read_rows(layers_job.location, "layers")["epoch"].unique().tolist() == [0, 1, 2]
    with pytest.raises(TrialInterrupted):  # replays epoch 2, killed after epoch 4
        run_trial(layers_job, layers_job.points[0], "t00000", Results(stop_after=3))
    run_trial(layers_job, layers_job.points[0], "t00000", Results())
    rows = read_rows(layers_job.location, "layers")
    got = rows[["epoch", "layer", "layer_name", "gc", "nc_cdnv"]].values.tolist()
    assert got == expected_layers(0.01, 0, range(5))
    assert len(raw_rows(layers_job.location, "layers")) == 5 * 3  # compacted: no copy left
    merge_finished(layers_job.study_dir(), table="layers")
    assert len(raw_rows(layers_job.location, "layers")) == 5 * 3
    assert read_rows(layers_job.location, "layers")[["epoch", "layer"]].values.tolist() == [
        [e, k] for e in range(5) for k in (1, 2, 3)
    ]
