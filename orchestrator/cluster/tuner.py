"""A study as one Ray Tune experiment in ``<study dir>/tune``, run or restored.

Grids and random searches give Tune the index of each point (``{"point": i}``); an Optuna
search proposes the points itself. Each trial runs :func:`orchestrator.trial.run_trial`,
which gives Tune each row as a result; its checkpoints are the study's own
(:mod:`orchestrator.checkpoints`), so Tune's experiment state never names a checkpoint.
A grid without a scheduler runs, each time the study is run or resumed, a new experiment
over the points gcnc's trial book holds unended (:meth:`StudyRun.grid_points_to_run`):
nothing of it lives in Tune but the trials of the run, so a resume never rebuilds the
trials that ended. Where Tune holds the study's state (a searcher's history, a
scheduler's rungs), resuming restores the experiment: unfinished and errored trials start
again, finished ones are kept. Either way a trial that starts again continues from its
newest checkpoint.

SIGINT and SIGTERM stop a run in order (:mod:`orchestrator.interrupts`): Tune is asked to
end its experiment as on its own SIGUSR1 (it saves its state, then stops the trials), and
the trials still running are recorded interrupted.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import signal
import time
from collections.abc import Mapping
from typing import Any

import ray
from ray import tune
from ray.train._internal import session as _tune_session  # where Tune's function trials live
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from orchestrator.book import Counts
from orchestrator.cluster.callback import StudyCallback, reporting_to
from orchestrator.cluster.settings import runs_from_its_book
from orchestrator.driver import StudyRun
from orchestrator.interrupts import StopRequests
from orchestrator.progress import ProgressView
from orchestrator.search import OptunaSearch as OptunaAlgorithm
from orchestrator.search import algorithm_of
from orchestrator.spec import StudySpec
from orchestrator.trial import RERUN, SETUP_FAILED, TrialJob, run_trial
from studyfiles import StudyDir


def run_study(
    study: StudySpec,
    sdir: StudyDir,
    job: TrialJob,
    *,
    view: ProgressView | None = None,
    stop: StopRequests | None = None,
) -> Counts:
    """Run (or resume) every trial of ``study`` in ``sdir`` inside
    :func:`orchestrator.cluster.session`; returns the final counts.

    With ``stop`` installed, a first SIGINT / SIGTERM during the trials ends the experiment
    in order; a stop at once (:class:`~orchestrator.interrupts.StopNow`) is raised on after
    the trials still running are recorded interrupted.
    """
    stopping = (lambda: stop.requested) if stop is not None else None
    run = StudyRun(study, job, sdir, view=view, stopping=stopping)
    try:
        with reporting_to(run):
            if stop is not None:
                stop.graceful = _end_tune_experiment
            if runs_from_its_book(study):
                points = run.grid_points_to_run()
                if points:
                    _grid_tuner(study, job, sdir, points).fit()
            else:
                _tuner(study, job, sdir).fit()
                if run.rerun and not (stop is not None and stop.requested):
                    _rerun_tuner(study, job, sdir, run.rerun_configs()).fit()
    except BaseException:
        run.abort(look=False)
        raise
    finally:
        if stop is not None:
            stop.graceful = None
    if ray.util.client.ray.is_connected():  # Tune ran in the cluster and kept the records
        run = StudyRun(study, job, sdir, view=view, stopping=stopping)
    return run.finish()


def _end_tune_experiment() -> bool:
    """Ask Tune's experiment loop to end in order, as its own SIGUSR1 handler does (it
    saves the experiment, then stops the trials); False where Tune's handler is not there
    (not yet installed, or Tune runs in the cluster through Ray Client)."""
    if ray.util.client.ray.is_connected() or not callable(signal.getsignal(signal.SIGUSR1)):
        return False
    os.kill(os.getpid(), signal.SIGUSR1)
    return True


class TuneReporter:
    """The trial side of Tune: of each row, what Tune acts on (the epoch, a divergence, the
    metric of the searcher and the scheduler) as a Tune result. The row itself is already
    in the study's Parquet; every key more would be kept, summarised and snapshotted by Tune
    for each trial of the study. Checkpoints never go to Tune (see
    :mod:`orchestrator.checkpoints`).

    Where nothing in Tune acts on a trial's rows (a grid without a scheduler), a row goes to
    Tune only every ``every_s`` seconds (and at once when it diverged or the trial could not
    start): the driver then learns of a running trial's progress a little later, and a
    trial of short epochs costs it a few results instead of one per epoch. The rows and the
    trial's end are read from the study directory either way. A trial Tune asked to stop
    (the run is being stopped) learns so at its next report: its next row is passed on at
    once, so it stops there instead of training on until the interval is up.

    Args:
        keys: the keys Tune is given (:func:`tune_keys`).
        every_s: the least seconds between two results of the trial (0: every row).
    """

    def __init__(self, keys: frozenset[str], every_s: float = 0.0) -> None:
        self.keys, self.every_s = keys, every_s
        self._last = float("-inf")

    def report_result(self, metrics: Mapping[str, Any]) -> None:
        now = time.monotonic()
        urgent = SETUP_FAILED in metrics or bool(metrics.get("diverged"))
        if not urgent and now - self._last < self.every_s and not asked_to_stop():
            return
        self._last = now
        tune.report({k: v for k, v in metrics.items() if k in self.keys and _reportable(v)})


def asked_to_stop() -> bool:
    """Whether Tune asked the trial running in this thread's process to stop (it sets its
    session's stop event, which the trial sees at its next report). False outside a trial."""
    session = _tune_session.get_session()
    event = getattr(session, "stop_event", None)
    return event is not None and event.is_set()


# A grid trial's results to Tune, at most this often (nothing acts on them). Tune can stop a
# trial only between two of its results (its actor is busy waiting for the next one until
# then): a stop of the run reaches such a trial within this interval, or its next epoch.
REPORT_EVERY_S = 1.0


def report_every_s(study: StudySpec) -> float:
    """How often a trial's rows go to Tune: each one where a searcher or a scheduler acts on
    them, else every :data:`REPORT_EVERY_S` seconds."""
    return 0.0 if study.search is not None or study.scheduler is not None else REPORT_EVERY_S


def tune_keys(study: StudySpec) -> frozenset[str]:
    """What Tune needs of a trial's rows: the epoch (the scheduler's time), whether it
    diverged, why it could not start, and the searcher's and the scheduler's metrics."""
    search, sched = study.search, study.scheduler
    metrics = {search.metric if search else None, sched.metric if sched else None}
    return frozenset({"epoch", "diverged", SETUP_FAILED} | (metrics - {None}))


def _reportable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, bool | int | str)


def _tune_trial(
    config: dict[str, Any], job: TrialJob, keys: frozenset[str], every_s: float
) -> None:
    """What each Tune trial runs (its results went to Tune as it reported them)."""
    # Ray's train session logs at INFO in the trial; through Ray Client, the user would see it.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    trial_id = job.trial_id(config, tune.get_context().get_trial_id())
    run_trial(job, job.point(config), trial_id, TuneReporter(keys, every_s))


class _OptunaSearch(OptunaSearch):
    """Optuna search that skips results without the metric (rows after a divergence), and
    tells Optuna of a trial that could not start as failed."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        super().on_trial_complete(trial_id, result, error=error or SETUP_FAILED in (result or {}))


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


def _tuner(study: StudySpec, job: TrialJob, sdir: StudyDir) -> tune.Tuner:
    """The experiment of a study whose state lives in Tune (a searcher's, a scheduler's):
    restored where Tune saved it, else new. A grid without a scheduler has its own
    (:func:`_grid_tuner`)."""
    trainable = _trainable(study, job)
    if _restorable(sdir):
        return tune.Tuner.restore(
            sdir.tune,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=_param_space(job),
            storage_filesystem=_filesystem(sdir),
        )
    search_alg, num_samples = _search(study, job)
    tune_config = _tune_config(
        study, search_alg=search_alg, scheduler=_scheduler(study, job), num_samples=num_samples
    )
    return tune.Tuner(
        trainable,
        param_space=_param_space(job),
        tune_config=tune_config,
        run_config=_run_config(study, job, sdir, name=posixpath.basename(sdir.tune)),
    )


def _grid_tuner(study: StudySpec, job: TrialJob, sdir: StudyDir, points: list[int]) -> tune.Tuner:
    """A new experiment over the given points of a grid without a scheduler (Tune keeps no
    state of such a study that a resume would need: the trial book says what is left)."""
    name = posixpath.basename(sdir.tune)
    return _plain_tuner(study, job, sdir, {"point": tune.grid_search(points)}, name=name)


def _rerun_tuner(
    study: StudySpec, job: TrialJob, sdir: StudyDir, configs: list[dict[str, Any]]
) -> tune.Tuner:
    """A new experiment of the given trials alone (each ``{"rerun": ...}``), whose rows were
    lost: no searcher (their points are known), no scheduler (each runs to its end)."""
    name = f"{posixpath.basename(sdir.tune)}-rerun-{time.strftime('%Y%m%d-%H%M%S')}"
    return _plain_tuner(study, job, sdir, {RERUN: tune.grid_search(configs)}, name=name)


def _plain_tuner(
    study: StudySpec, job: TrialJob, sdir: StudyDir, param_space: dict[str, Any], *, name: str
) -> tune.Tuner:
    """A new experiment of the trials ``param_space`` lists, each once, first in first out:
    no searcher, no scheduler."""
    return tune.Tuner(
        _trainable(study, job),
        param_space=param_space,
        tune_config=_tune_config(study, search_alg=None, scheduler=_FIFO(), num_samples=1),
        run_config=_run_config(study, job, sdir, name=name),
    )


def _trainable(study: StudySpec, job: TrialJob) -> Any:
    res = study.resources
    return tune.with_resources(
        tune.with_parameters(
            _tune_trial, job=job, keys=tune_keys(study), every_s=report_every_s(study)
        ),
        {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial},
    )


def _filesystem(sdir: StudyDir) -> Any:
    return None if sdir.storage.fs.type_name == "local" else sdir.storage.fs


def _tune_config(
    study: StudySpec, *, search_alg: Any, scheduler: Any, num_samples: int
) -> tune.TuneConfig:
    return tune.TuneConfig(
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=study.resources.max_concurrent or None,
        reuse_actors=True,  # a worker imports torch and the data once, not once per trial
        trial_dirname_creator=_trial_dirname,
        trial_name_creator=_trial_dirname,
    )


def _run_config(study: StudySpec, job: TrialJob, sdir: StudyDir, *, name: str) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=sdir.storage.root,
        storage_filesystem=_filesystem(sdir),
        callbacks=[StudyCallback(study, job)],
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
    )


def _restorable(sdir: StudyDir) -> bool:
    """Whether Tune saved the experiment's state (a driver killed before its first
    snapshot leaves only ``tuner.pkl``; such a study starts its experiment afresh, and its
    trials find the rows they already wrote)."""
    names = [posixpath.basename(p) for p in sdir.storage.files(sdir.tune, suffix=".json")]
    has_state = any(n.startswith("experiment_state-") for n in names)
    return has_state and sdir.storage.is_file(posixpath.join(sdir.tune, "tuner.pkl"))


def _param_space(job: TrialJob) -> dict[str, Any]:
    """Tune's param space: the index of each point, or nothing (a searcher's own space)."""
    if job.points is None:
        return {}
    return {"point": tune.grid_search(list(range(len(job.points))))}


def _search(study: StudySpec, job: TrialJob) -> tuple[Any, int]:
    """Tune's search algorithm (None: its grid generator) and number of samples."""
    if job.points is not None:
        return None, 1
    search, algorithm = study.search, algorithm_of(study)
    assert search is not None and isinstance(algorithm, OptunaAlgorithm)
    searcher = _OptunaSearch(
        space=algorithm.optuna_space(study),
        metric=search.metric,
        mode=search.mode,
        sampler=algorithm.sampler(study),
    )
    return searcher, algorithm.count(study)


class _LiveFirst:
    """A Tune scheduler's choice of the next trial to run among the live trials (pending,
    running, paused) alone: Tune's own looks through every trial of the experiment, ended
    ones first, at each step of its loop, which costs a big study's driver more per trial
    the more trials have ended. The order is Tune's: the earliest pending trial, else the
    earliest paused one."""

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        live = tune_controller.get_live_trials()
        for status in (Trial.PENDING, Trial.PAUSED):
            waiting = [t for t in live if t.status == status]
            if waiting:
                return min(waiting, key=_creation_order)
        return None


def _creation_order(trial: Trial) -> tuple[int, str]:
    """Trials in the order the experiment made them (``<experiment>_<counter>``)."""
    prefix, _, counter = trial.trial_id.rpartition("_")
    return (int(counter), prefix) if counter.isdigit() else (0, trial.trial_id)


class _FIFO(_LiveFirst, FIFOScheduler):
    """Tune's first-in first-out scheduler, choosing among live trials only."""


class _ASHA(_LiveFirst, ASHAScheduler):
    """Tune's ASHA, choosing among live trials only."""


def _scheduler(study: StudySpec, job: TrialJob) -> Any:
    sched = study.scheduler
    if sched is None:
        return _FIFO()
    search = study.search
    max_t = sched.max_t or max(
        [int(job.config(p)["train"]["epochs"]) for p in job.points or ()] or [study.train.epochs]
    )
    return _ASHA(
        time_attr="epoch",
        metric=sched.metric or (search.metric if search else None),
        mode=sched.mode or (search.mode if search else None),
        max_t=max(1, max_t),
        grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor,
    )
