"""Tune's trial events, passed on to the study's :class:`~orchestrator.driver.StudyRun`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator.cluster.settings import quiet_tune
from orchestrator.driver import RunnerTrial, StudyRun
from orchestrator.progress import ProgressView
from orchestrator.spec import StudySpec
from orchestrator.trial import TrialJob

_RUNS: dict[str, StudyRun] = {}  # the runs in progress in this process, by study directory


@contextlib.contextmanager
def reporting_to(run: StudyRun) -> Iterator[None]:
    """Make ``run`` the one that callbacks of its study in this process report to (also a
    callback Tune unpickled from a restored experiment)."""
    _RUNS[run.sdir.location] = run
    try:
        yield
    finally:
        _RUNS.pop(run.sdir.location, None)


class StudyCallback(tune.Callback):
    """Forwards Tune's trial events to the study's :class:`StudyRun`.

    In the driver process that is the run in progress (also for a callback unpickled from
    a restored experiment). Where Tune drives the trials from another process (Ray
    Client), the callback keeps its own records there, in the same study directory.
    """

    def __init__(self, study: StudySpec, job: TrialJob) -> None:
        self._study, self._job = study, job
        self._own: StudyRun | None = None
        self._adopted = False

    def __reduce__(self) -> tuple[Any, tuple[StudySpec, TrialJob]]:
        return (StudyCallback, (self._study, self._job))

    def setup(self, **info: Any) -> None:
        quiet_tune()  # in Tune's driver, wherever it runs

    def _run(self) -> StudyRun:
        active = _RUNS.get(self._job.location)
        if active is not None:
            return active
        if self._own is None:
            view = ProgressView(self._study.name)
            self._own = StudyRun(self._study, self._job, self._job.study_dir(), view=view)
        return self._own

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run().started(trial.trial_id, trial.config)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._run().result(trial.trial_id, trial.config, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run().completed(trial.trial_id, trial.config)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run().errored(trial.trial_id, trial.config, _error_text(trial), retrying=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run().errored(trial.trial_id, trial.config, _error_text(trial), retrying=False)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._adopted:  # once, before the first trial event of this run
            self._adopted = True
            self._run().adopt([_runner_trial(t) for t in trials])

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._run().tick()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        run = self._run()
        run.experiment_ended([_runner_trial(t) for t in trials])
        run.tick(force=True)


_STATES = {"PENDING": "pending", "RUNNING": "running", "PAUSED": "pending",
           "TERMINATED": "done", "ERROR": "error"}  # fmt: skip


def _runner_trial(trial: Any) -> RunnerTrial:
    return RunnerTrial(
        trial.trial_id, trial.config, _STATES.get(trial.status, "pending"), trial.last_result or {}
    )


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and os.path.exists(path):
            return Path(path).read_text()[-4000:]
    except OSError:
        pass
    return "the trial failed (no error file)"
