"""One trial without Ray: rows before checkpoints, replays after a kill, finished trials."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import pytest
from gcnc_testkit import read_rows, sleep_study, starts

from orchestrator._testing import curve
from orchestrator.parts import merge_finished
from orchestrator.spec import load_study
from orchestrator.studydir import StudyDir, open_study_dir
from orchestrator.trial import make_job, run_trial
from trainables.reporter import MemoryReporter, TrialInterrupted

VALUES = ["epoch", "step", "train_loss", "train_acc", "test_acc", "gc", "nc_cdnv", "diverged"]


@pytest.fixture
def job(tmp_path):
    study = load_study(sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]", epochs=4, sleep_s=0.0))
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    return make_job(study, sdir, info)


def test_a_trial_writes_one_row_per_evaluation_then_compacts(job, tmp_path):
    reporter = MemoryReporter()
    summary = run_trial(job, job.points[1], "t00001", reporter)
    assert summary == {"epochs_done": 4, "diverged": False}
    rows = read_rows(job.location)
    assert rows["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert rows["train.seed"].tolist() == [1] * 5
    expected = [curve(0.01, 1, e)["train_loss"] for e in range(5)]
    assert rows["train_loss"].tolist() == pytest.approx(expected)
    assert rows["spec_hash"].unique().tolist() == [job.ctx.spec_hash]
    folder = tmp_path / "runs" / "sleepy" / "metrics" / "trial_id=t00001"
    assert [p.name for p in folder.iterdir()] == ["compacted.parquet"]
    assert [r["epoch"] for r in reporter.rows] == [0, 1, 2, 3, 4]


def test_a_trial_stopped_after_a_checkpoint_resumes_to_the_same_rows(job, tmp_path):
    run_trial(job, job.points[0], "t00000", MemoryReporter())
    whole = read_rows(job.location)[VALUES]

    other = job.__class__(
        str(tmp_path / "runs2"), job.ctx, job.trainable, job.base_config, job.points
    )
    first = MemoryReporter(stop_after=3)
    with pytest.raises(TrialInterrupted):
        run_trial(other, other.points[0], "t00000", first)
    assert read_rows(other.location)["epoch"].tolist() == [0, 1, 2]
    run_trial(other, other.points[0], "t00000", MemoryReporter(first.last_checkpoint))
    pd.testing.assert_frame_equal(read_rows(other.location)[VALUES], whole)
    assert [s["start_epoch"] for s in starts(tmp_path)] == [0, 0, 2]


class _DiesBeforeCheckpoint:
    """Accepts ``n`` checkpoints, then dies on the next report (its row already written)."""

    def __init__(self, n: int) -> None:
        self.n, self.checkpoints = n, []

    def restore(self) -> None:
        return None

    def report(self, metrics: Mapping[str, Any], *, checkpoint: Mapping[str, Any]) -> None:
        if len(self.checkpoints) == self.n:
            raise TrialInterrupted("killed before the checkpoint landed")
        self.checkpoints.append(dict(checkpoint))


def test_a_row_written_before_a_lost_checkpoint_is_replayed_not_duplicated(job):
    dying = _DiesBeforeCheckpoint(2)
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[0], "t00000", dying)
    assert read_rows(job.location)["epoch"].tolist() == [0, 1, 2]  # epoch 2 has no checkpoint
    run_trial(job, job.points[0], "t00000", MemoryReporter(dying.checkpoints[-1]))
    rows = read_rows(job.location)
    assert rows["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert rows["train_loss"].tolist() == pytest.approx(
        [curve(0.01, 0, e)["train_loss"] for e in range(5)]
    )


def test_a_finished_trial_is_not_trained_again(job, tmp_path):
    run_trial(job, job.points[0], "t00000", MemoryReporter())
    before = read_rows(job.location)
    again = _ResultReporter()
    summary = run_trial(job, job.points[0], "t00000", again)
    assert summary["epochs_done"] == 4
    assert len(starts(tmp_path)) == 1  # no second attempt started
    assert [r["epoch"] for r in again.results] == [4]  # its final result, given again
    assert again.rows == []
    pd.testing.assert_frame_equal(read_rows(job.location), before)


def test_a_trial_merged_into_a_part_is_not_trained_again(job, tmp_path):
    run_trial(job, job.points[0], "t00000", MemoryReporter())
    run_trial(job, job.points[1], "t00001", MemoryReporter())
    assert merge_finished(job.study_dir()) == 2
    assert not (tmp_path / "runs" / "sleepy" / "metrics" / "trial_id=t00000").exists()
    before = read_rows(job.location)
    again = _ResultReporter()
    summary = run_trial(job, job.points[0], "t00000", again)
    assert summary["epochs_done"] == 4
    assert len(starts(tmp_path)) == 2  # one attempt per trial, none after the merge
    assert [r["epoch"] for r in again.results] == [4]
    pd.testing.assert_frame_equal(read_rows(job.location), before)


class _ResultReporter(MemoryReporter):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict] = []

    def report_result(self, metrics: Mapping[str, Any]) -> None:
        self.results.append(dict(metrics))


def test_a_fresh_trial_clears_rows_left_by_other_params_under_its_id(job):
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[0], "t00009", MemoryReporter(stop_after=3))
    run_trial(job, job.points[1], "t00009", MemoryReporter())
    rows = read_rows(job.location)
    assert rows["train.seed"].tolist() == [1] * 5


def test_a_diverged_trial_reports_it_with_null_metrics(tmp_path):
    extra = "diverge_lr = 0.5\ndiverge_at = 2\n"
    path = sleep_study(tmp_path, epochs=5, sleep_s=0.0)
    path.write_text(path.read_text().replace("[resources]", extra + "[resources]"))
    study = load_study(path, overrides=["train.lr=1.0"])
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    job = make_job(study, sdir, info)
    summary = run_trial(job, job.points[0], "t00000", MemoryReporter())
    rows = read_rows(job.location)
    assert summary["diverged"] is True
    assert rows["diverged"].tolist() == [False, False, True]
    assert rows["train_loss"].isna().tolist() == [False, False, True]
