"""A study as one Ray Tune experiment in ``<study dir>/tune``, run or restored.

Grids and random searches give Tune the index of each point (``{"point": i}``); an Optuna
search proposes the points itself. Each trial runs :func:`orchestrator.trial.run_trial`,
which gives Tune each row as a result; its checkpoints are the study's own
(:mod:`orchestrator.checkpoints`), so Tune's experiment state never names a checkpoint.
Resuming restores the experiment: unfinished and errored trials start again and continue
from their newest checkpoint, finished ones are kept.

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
from ray.tune.search.optuna import OptunaSearch

from orchestrator.book import Counts
from orchestrator.cluster.callback import StudyCallback, reporting_to
from orchestrator.driver import StudyRun
from orchestrator.interrupts import StopRequests
from orchestrator.progress import ProgressView
from orchestrator.search import OptunaSearch as OptunaAlgorithm
from orchestrator.search import algorithm_of
from orchestrator.spec import StudySpec
from orchestrator.trial import RERUN, SETUP_FAILED, TrialJob, run_trial
from studyfiles import StudyDir
from studyfiles.schema import KEY_COLUMNS

_ROW_KEYS = frozenset(KEY_COLUMNS) - {"epoch", "step"}  # a stored row's bookkeeping


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
    """The trial side of Tune: each row's metrics as a Tune result, for its scheduler and
    searcher. Checkpoints never go to Tune (see :mod:`orchestrator.checkpoints`)."""

    def report_result(self, metrics: Mapping[str, Any]) -> None:
        tune.report({k: v for k, v in metrics.items() if k not in _ROW_KEYS and _reportable(v)})


def _reportable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, bool | int | str)


def _tune_trial(config: dict[str, Any], job: TrialJob) -> None:
    """What each Tune trial runs (its results went to Tune as it reported them)."""
    # Ray's train session logs at INFO in the trial; through Ray Client, the user would see it.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    trial_id = job.trial_id(config, tune.get_context().get_trial_id())
    run_trial(job, job.point(config), trial_id, TuneReporter())


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
    """The study's experiment: restored where Tune saved it, else new."""
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


def _rerun_tuner(
    study: StudySpec, job: TrialJob, sdir: StudyDir, configs: list[dict[str, Any]]
) -> tune.Tuner:
    """A new experiment of the given trials alone (each ``{"rerun": ...}``), whose rows were
    lost: no searcher (their points are known), no scheduler (each runs to its end)."""
    name = f"{posixpath.basename(sdir.tune)}-rerun-{time.strftime('%Y%m%d-%H%M%S')}"
    return tune.Tuner(
        _trainable(study, job),
        param_space={RERUN: tune.grid_search(configs)},
        tune_config=_tune_config(study, search_alg=None, scheduler=None, num_samples=1),
        run_config=_run_config(study, job, sdir, name=name),
    )


def _trainable(study: StudySpec, job: TrialJob) -> Any:
    res = study.resources
    return tune.with_resources(
        tune.with_parameters(_tune_trial, job=job),
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


def _scheduler(study: StudySpec, job: TrialJob) -> Any:
    sched = study.scheduler
    if sched is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    search = study.search
    max_t = sched.max_t or max(
        [int(job.config(p)["train"]["epochs"]) for p in job.points or ()] or [study.train.epochs]
    )
    return ASHAScheduler(
        time_attr="epoch",
        metric=sched.metric or (search.metric if search else None),
        mode=sched.mode or (search.mode if search else None),
        max_t=max(1, max_t),
        grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor,
    )
