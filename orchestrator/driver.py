"""The driver's side of a running study, runner-agnostic: trial events in, records out.

The Ray runner forwards Tune's trial events here as plain values (the runner's trial id,
the config it gave the trial, the result); this keeps ``trials.parquet`` and the live view,
and merges finished trials' rows into part files (:mod:`orchestrator.parts`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator import damage
from orchestrator.book import Counts, TrialBook, last_line
from orchestrator.parts import MERGE_TRIALS, merge_finished
from orchestrator.progress import ProgressView
from orchestrator.search import trial_count
from orchestrator.spec import StudySpec
from orchestrator.trial import SETUP_FAILED, TrialJob
from studyfiles import StudyDir
from studyfiles.layout import LAYERS_TABLE


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

    A trial is recorded ``done`` only once its rows reach its last epoch (or it diverged),
    and ``stopped`` when it ended earlier (the scheduler stopped it); what the runner says of
    its trials while the run is being stopped is not taken as their end.

    Args:
        study: the study.
        job: its trial job.
        sdir: its directory.
        view: the live view, or None for none.
        stopping: whether the user asked the run to stop (a signal); None: never.
    """

    def __init__(
        self,
        study: StudySpec,
        job: TrialJob,
        sdir: StudyDir,
        *,
        view: ProgressView | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.job, self.sdir, self.view = job, sdir, view
        self._stopping = stopping or (lambda: False)
        self.total = trial_count(study)
        self.default_epochs = int(study.train.epochs)
        # trials.parquet is rewritten whole; the book spaces its writes by their cost
        self.book = TrialBook(sdir, job.ctx, total=self.total)
        self.book.load()
        self.book.interrupted()  # whatever an earlier run left running has not ended
        self.epochs: dict[str, int] = {}
        self.points: dict[str, dict[str, Any]] = {}
        self.ended_since_merge = 0
        self.scheduled = study.scheduler is not None
        self.rerun: set[str] = set()  # ended trials whose rows were lost: to run again
        self.started_here: set[str] = set()  # trials this run started
        self.setup_failed: set[str] = set()  # trials that could not start (not retried)
        found = layers = damage.Scan(None, {})
        if self.book.trials:
            found, layers = damage.scan(sdir), damage.scan(sdir, table=LAYERS_TABLE)
        damage.move_aside(sdir, sorted(found.unreadable) + sorted(layers.unreadable))
        self.reach, self.layer_reach = found.reach(), layers.reach()
        for index, point in enumerate(job.points or ()):
            self._declare(job.trial_id({"point": index}, ""), point)
        self.book.flush(force=True)

    def _declare(self, trial_id: str, point: Mapping[str, Any]) -> None:
        if trial_id in self.epochs:
            return
        config = self.job.config(point)
        self.epochs[trial_id] = int(config["train"]["epochs"])
        self.points[trial_id] = dict(point)
        self.book.declare(trial_id, config, self.job.params(config))

    def trial_id(self, runner_id: str, tune_config: Mapping[str, Any]) -> str:
        """Our id of the runner's trial, recording the trial the first time it is seen."""
        trial_id = self.job.trial_id(tune_config, runner_id)
        self._declare(trial_id, self.job.point(tune_config))
        return trial_id

    def started(self, runner_id: str, tune_config: Mapping[str, Any]) -> None:
        trial_id = self.trial_id(runner_id, tune_config)
        self.started_here.add(trial_id)
        self.book.started(trial_id)

    def result(
        self, runner_id: str, tune_config: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        trial_id = self.trial_id(runner_id, tune_config)
        if SETUP_FAILED in result:  # it could not start: it fails once, not once per retry
            self.setup_failed.add(trial_id)
            self._failed(trial_id, str(result[SETUP_FAILED]), retrying=False, note="not retried")
            return
        epoch = result.get("epoch")
        self.book.result(
            trial_id,
            epoch=int(epoch) if epoch is not None else None,
            diverged=bool(result.get("diverged", False)),
        )

    def completed(self, runner_id: str, tune_config: Mapping[str, Any]) -> None:
        """A trial ended (its own end or a scheduler's stop): record it, compact its rows."""
        trial_id = self.trial_id(runner_id, tune_config)
        if trial_id in self.setup_failed:
            return  # recorded failed with its error
        self._record_end(trial_id, self.book.trials[trial_id].config)

    def _record_end(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """Compact the rows of a trial that ended, and record it ``done`` when they reach
        its last epoch (or it diverged), else ``stopped`` at its last epoch."""
        sink = self.job.sink(trial_id, config)
        sink.compact()
        rows = sink.rows()
        last = int(pc.max(rows["epoch"]).as_py()) if rows is not None else None
        diverged = rows is not None and bool(pc.any(rows["diverged"]).as_py())
        target = self.epochs.get(trial_id, self.default_epochs)
        stopped = not diverged and (last is None or last < target)
        self.book.result(trial_id, epoch=last, diverged=diverged)
        self.book.finished(trial_id, epoch=last, stopped=stopped)
        self.job.checkpoints(trial_id, config).prune(1)  # the last model stays
        self._ended()

    def _ended(self) -> None:
        """Count a trial compacted; merge once :data:`MERGE_TRIALS` have been."""
        self.ended_since_merge += 1
        if self.ended_since_merge >= MERGE_TRIALS:
            self.merge(min_trials=MERGE_TRIALS)

    def merge(self, *, min_trials: int = 1) -> int:
        """Merge finished trials' rows into part files (the layers table's first, where the
        study has one); returns the trials whose metrics rows were merged.

        A merge that fails (say, storage that went away) leaves the rows where they were,
        readable; it is said on stderr and the run goes on.
        """
        self.ended_since_merge = 0
        try:
            merge_finished(self.sdir, min_trials=min_trials, table=LAYERS_TABLE)
            return merge_finished(self.sdir, min_trials=min_trials)
        except (OSError, pa.ArrowException) as err:
            print(f"gcnc: finished trials' rows stay unmerged for now: {err}", file=sys.stderr)
            return 0

    def errored(
        self, runner_id: str, tune_config: Mapping[str, Any], error: str, *, retrying: bool
    ) -> None:
        """A trial's attempt failed (``retrying``: the runner starts it again). While the run
        is being stopped, a failure is the stop's doing: the trial is interrupted, not failed."""
        if self._stopping():
            return
        self._failed(self.trial_id(runner_id, tune_config), error, retrying=retrying)

    def _failed(self, trial_id: str, error: str, *, retrying: bool, note: str = "") -> None:
        self.book.failed(trial_id, error, retrying=retrying)
        if self.view is not None:
            rec = self.book.trials[trial_id]
            what = f"failed (attempt {rec.attempts}), retrying" if retrying else "failed"
            what += f" ({note})" if note else ""
            self.view.note(f"gcnc: trial {trial_id} {what}: {last_line(error)}")

    def adopt(self, trials: list[RunnerTrial]) -> None:
        """Take the runner's word on trials it holds as ended: a resumed run starts them no
        more, so no event would correct what an earlier, killed run last wrote of them.
        Whether an ended trial is done or stopped is read from its rows; one that ended
        before this run and whose rows were lost since (as read when the run began) is to
        run again."""
        for trial in trials:
            if trial.state not in ("done", "error"):
                continue
            trial_id = self.trial_id(trial.runner_id, trial.config)
            rec = self.book.trials[trial_id]
            if trial.state == "done" and trial_id in self.rerun | self.setup_failed:
                continue  # it runs again after the runner's experiment / it could not start
            ended_before = trial_id not in self.started_here
            if trial.state == "done" and ended_before and self._rows_lost(trial_id):
                self._run_again(trial_id)
            elif trial.state == "done" and rec.status not in ("done", "stopped"):
                self._record_end(trial_id, rec.config)
            elif trial.state == "error" and rec.status != "error":
                epoch, diverged = trial.last_result.get("epoch"), trial.last_result.get("diverged")
                self.book.result(trial_id, epoch=epoch, diverged=bool(diverged))
                self.book.failed(trial_id, rec.error or "failed (before a resume)", retrying=False)

    def _rows_lost(self, trial_id: str) -> bool:
        """Whether a trial the runner holds as ended lacks rows it had written (a damaged
        file moved aside, a file removed by hand): none at all, or fewer than its epochs
        when no scheduler could have stopped it, or fewer than where the scheduler did; or
        layer rows that stop short of its metrics rows."""
        reach, rec = self.reach.get(trial_id), self.book.trials[trial_id]
        if reach is None:
            return True  # a trial reports its first row before it can end
        if damage.measures_layers(rec.config) and damage.layers_short(
            reach, self.layer_reach.get(trial_id)
        ):
            return True
        if reach.diverged or reach.last_epoch >= self.epochs.get(trial_id, self.default_epochs):
            return False
        if rec.status == "stopped":
            return reach.last_epoch < (rec.epochs_done or 0)
        return not self.scheduled or rec.status == "done"

    def _run_again(self, trial_id: str) -> None:
        """Run a trial whose rows were lost again from its start: its checkpoints (which would
        resume it past the lost epochs) and the rows left of it are removed first."""
        rec = self.book.trials[trial_id]
        self.job.checkpoints(trial_id, rec.config).clear()
        self.job.sink(trial_id, rec.config).remove_unmerged()
        self.book.rerun(trial_id)
        self.rerun.add(trial_id)

    def grid_points_to_run(self) -> list[int]:
        """The indices of a grid's points this run starts, read from the trial book alone:
        every trial that has not ended (pending, interrupted, failed: a failed trial is
        tried again, its cause may be fixed), and every trial that ended before this run
        and whose rows were lost since (run again from its start). A trial that ended after
        the book's last write (a driver killed in between) is among them: it finds its rows
        compacted and ends at once, without training."""
        assert self.job.points is not None, "a searcher's trials are not known ahead"
        indices = []
        for index in range(len(self.job.points)):
            trial_id = self.job.trial_id({"point": index}, "")
            rec = self.book.trials[trial_id]
            if rec.status in ("done", "stopped") and self._rows_lost(trial_id):
                self._run_again(trial_id)
            if rec.status not in ("done", "stopped"):
                indices.append(index)
        self.book.flush(force=True)
        return indices

    def rerun_configs(self) -> list[dict[str, Any]]:
        """What the runner gives each trial to run again, under
        :data:`orchestrator.trial.RERUN`: its id and its point."""
        return [{"trial_id": t, "point": self.points[t]} for t in sorted(self.rerun)]

    def experiment_ended(self, trials: list[RunnerTrial]) -> None:
        """The runner's experiment ended with ``trials``. A searcher's trial it does not know
        was proposed after its last snapshot of a killed run: it is abandoned (or done, if
        it finished before the kill). A run being stopped takes nothing from the runner's
        last word: it marks the trials it stopped as ended."""
        if self._stopping():
            return
        self.adopt(trials)
        self.rerun -= {
            t for t, rec in self.book.trials.items() if rec.status in ("done", "stopped")
        }
        if self.job.points is not None:
            return  # grid ids are fixed: the runner proposes every point again
        ids = {self.job.trial_id(t.config, t.runner_id) for t in trials}
        for rec in list(self.book.trials.values()):
            if rec.status not in ("pending", "running") or rec.trial_id in ids:
                continue
            sink = self.job.sink(rec.trial_id, rec.config)
            if sink.finished_row() is not None:
                self._record_end(rec.trial_id, rec.config)  # it ended; its record was lost
            else:
                self.book.abandon(rec.trial_id)

    def work(self) -> tuple[float, float]:
        """Trial-epochs done and left (a finished trial has none left, however it ended)."""
        done = left = 0.0
        for trial_id, rec in self.book.trials.items():
            target = self.epochs.get(trial_id, self.default_epochs)
            reached = min(rec.epochs_done or 0, target)
            ended = rec.status in ("done", "stopped")
            done += target if ended else reached
            left += 0 if ended else target - reached
        left += max(0, self.total - len(self.book.trials)) * self.default_epochs
        return done, left

    def tick(self, *, force: bool = False) -> None:
        """Write ``trials.parquet`` if due and redraw the live view if due (each is a pass
        over every trial: not once per runner step)."""
        self.book.flush(force=force)
        if self.view is not None and (force or self.view.due()):
            done, left = self.work()
            self.view.update(self.book.counts(), work_done=done, work_left=left, force=force)

    def _read_progress(self, trial_id: str) -> None:
        """Bring a running trial's record up to its rows (results the runner had not passed
        on yet): done if they reach its last epoch, else at the last epoch they hold."""
        rec = self.book.trials[trial_id]
        try:
            rows = self.job.sink(trial_id, rec.config).rows()
            if rows is None or not rows.num_rows:
                return
            last = int(pc.max(rows["epoch"]).as_py())
            if last >= self.epochs.get(trial_id, self.default_epochs):
                self._record_end(trial_id, rec.config)
            else:
                self.book.result(trial_id, epoch=last, diverged=False)
        except (OSError, pa.ArrowException):
            return  # the recorded state stands

    def finish(self) -> Counts:
        """Close the run: every finished trial's rows are merged, trials still running are
        interrupted; returns the final counts."""
        self.merge()
        return self.abort()

    def abort(self, *, look: bool = True) -> Counts:
        """Close a run stopped where it was: trials still running are interrupted (their
        rows stay where they are, readable); returns the final counts.

        Args:
            look: first read each running trial's rows, to record it at the epoch they
                reach (done, if that is its last); False for a stop at once.
        """
        for rec in list(self.book.trials.values()):
            if look and rec.status == "running":
                self._read_progress(rec.trial_id)
        self.book.interrupted()
        self.tick(force=True)
        if self.view is not None:
            self.view.close()
        return self.book.counts()
