"""The driver's side of a running study, runner-agnostic: trial events in, records out.

The Ray runner forwards Tune's trial events here as plain values (the runner's trial id,
the config it gave the trial, the result); this keeps ``trials.parquet`` and the live view,
and merges finished trials' rows into part files (:mod:`orchestrator.parts`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from orchestrator.book import Counts, TrialBook
from orchestrator.parts import MERGE_TRIALS, merge_finished
from orchestrator.progress import ProgressView
from orchestrator.space import trial_count
from orchestrator.spec import Study
from orchestrator.studydir import StudyDir
from orchestrator.trial import TrialJob


@dataclass(frozen=True)
class RunnerTrial:
    """A trial as the runner holds it: its id and config, ``state`` one of ``pending``,
    ``running``, ``done``, ``error``, and its last result."""

    runner_id: str
    config: Mapping[str, Any]
    state: str
    last_result: Mapping[str, Any]


class StudyRun:
    """Records the trials of one run of a study and shows its progress.

    Args:
        study: the study.
        job: its trial job.
        sdir: its directory.
        view: the live view, or None for none.
    """

    def __init__(
        self, study: Study, job: TrialJob, sdir: StudyDir, *, view: ProgressView | None = None
    ) -> None:
        self.job, self.sdir, self.view = job, sdir, view
        self.total = trial_count(study)
        self.default_epochs = int(study.train.epochs)
        # trials.parquet is rewritten whole: less often for big studies
        interval = max(2.0, self.total / 2000)
        self.book = TrialBook(sdir, job.ctx, total=self.total, min_interval_s=interval)
        self.book.load()
        self.book.interrupted()  # whatever an earlier run left running has not finished
        self.epochs: dict[str, int] = {}
        self.ended_since_merge = 0
        for index, point in enumerate(job.points or ()):
            self._declare(job.trial_id({"point": index}, ""), point)
        self.book.flush(force=True)

    def _declare(self, trial_id: str, point: Mapping[str, Any]) -> None:
        if trial_id in self.epochs:
            return
        config = self.job.config(point)
        self.epochs[trial_id] = int(config["train"]["epochs"])
        self.book.declare(trial_id, config, self.job.params(config))

    def trial_id(self, runner_id: str, tune_config: Mapping[str, Any]) -> str:
        """Our id of the runner's trial, recording the trial the first time it is seen."""
        trial_id = self.job.trial_id(tune_config, runner_id)
        self._declare(trial_id, self.job.point(tune_config))
        return trial_id

    def started(self, runner_id: str, tune_config: Mapping[str, Any]) -> None:
        self.book.started(self.trial_id(runner_id, tune_config))

    def result(
        self, runner_id: str, tune_config: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        epoch = result.get("epoch")
        self.book.result(
            self.trial_id(runner_id, tune_config),
            epoch=int(epoch) if epoch is not None else None,
            diverged=bool(result.get("diverged", False)),
        )

    def completed(self, runner_id: str, tune_config: Mapping[str, Any]) -> None:
        """A trial ended (its own end or a scheduler's stop): record it, compact its rows."""
        trial_id = self.trial_id(runner_id, tune_config)
        self.book.finished(trial_id)
        self.job.sink(trial_id, self.job.config(self.job.point(tune_config))).compact()
        self._ended()

    def _ended(self) -> None:
        """Count a trial compacted; merge once :data:`MERGE_TRIALS` have been."""
        self.ended_since_merge += 1
        if self.ended_since_merge >= MERGE_TRIALS:
            self.merge(min_trials=MERGE_TRIALS)

    def merge(self, *, min_trials: int = 1) -> int:
        """Merge finished trials' rows into part files; returns the trials merged.

        A merge that fails (say, storage that went away) leaves the rows where they were,
        readable; it is said on stderr and the run goes on.
        """
        self.ended_since_merge = 0
        try:
            return merge_finished(self.sdir, min_trials=min_trials)
        except (OSError, pa.ArrowException) as err:
            print(f"gcnc: finished trials' rows stay unmerged for now: {err}", file=sys.stderr)
            return 0

    def errored(
        self, runner_id: str, tune_config: Mapping[str, Any], error: str, *, retrying: bool
    ) -> None:
        self.book.failed(self.trial_id(runner_id, tune_config), error, retrying=retrying)

    def adopt(self, trials: list[RunnerTrial]) -> None:
        """Take the runner's word on trials it holds as ended: a resumed run starts them no
        more, so no event would correct what an earlier, killed run last wrote of them."""
        for trial in trials:
            if trial.state not in ("done", "error"):
                continue
            trial_id = self.trial_id(trial.runner_id, trial.config)
            rec = self.book.trials[trial_id]
            epoch, diverged = trial.last_result.get("epoch"), trial.last_result.get("diverged")
            if rec.status != trial.state:
                self.book.result(trial_id, epoch=epoch, diverged=bool(diverged))
            if trial.state == "done" and rec.status != "done":
                self.book.finished(trial_id)
                self.job.sink(trial_id, rec.config).compact()
                self._ended()
            elif trial.state == "error" and rec.status != "error":
                self.book.failed(trial_id, rec.error or "failed (before a resume)", retrying=False)

    def experiment_ended(self, trials: list[RunnerTrial]) -> None:
        """The runner's experiment ended with ``trials``. A searcher's trial it does not know
        was proposed after its last snapshot of a killed run: it is abandoned (or done, if
        it finished before the kill)."""
        self.adopt(trials)
        if self.job.points is not None:
            return  # grid ids are fixed: the runner proposes every point again
        ids = {self.job.trial_id(t.config, t.runner_id) for t in trials}
        for rec in list(self.book.trials.values()):
            if rec.status not in ("pending", "running") or rec.trial_id in ids:
                continue
            sink = self.job.sink(rec.trial_id, rec.config)
            if sink.finished_row() is not None:
                self.book.finished(rec.trial_id)  # it ended; only its record was lost
            else:
                self.book.abandon(rec.trial_id)

    def work(self) -> tuple[float, float]:
        """Trial-epochs done and left (a finished trial has none left, however it ended)."""
        done = left = 0.0
        for trial_id, rec in self.book.trials.items():
            target = self.epochs.get(trial_id, self.default_epochs)
            reached = min(rec.epochs_done or 0, target)
            done += target if rec.status == "done" else reached
            left += 0 if rec.status == "done" else target - reached
        left += max(0, self.total - len(self.book.trials)) * self.default_epochs
        return done, left

    def tick(self, *, force: bool = False) -> None:
        """Write ``trials.parquet`` if due and redraw the live view."""
        self.book.flush(force=force)
        if self.view is not None:
            done, left = self.work()
            self.view.update(self.book.counts(), work_done=done, work_left=left, force=force)

    def finish(self) -> Counts:
        """Close the run: every finished trial's rows are merged, trials still running become
        pending; returns the final counts."""
        self.merge()
        self.book.interrupted()
        self.tick(force=True)
        if self.view is not None:
            self.view.close()
        return self.book.counts()
