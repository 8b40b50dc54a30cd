"""Ray Tune wiring: the only module of the project that imports ``ray``.

A study runs as one Tune experiment in ``<study dir>/tune``. Grids and random searches
give Tune the index of each point (``{"point": i}``); an Optuna search proposes the
points itself. Each trial runs :func:`orchestrator.trial.run_trial`, which gives Tune each
row as a result; its checkpoints are the study's own (:mod:`orchestrator.checkpoints`), so
Tune's experiment state never names a checkpoint. Resuming restores the experiment:
unfinished and errored trials start again and continue from their newest checkpoint,
finished ones are kept.

SIGINT and SIGTERM stop a run in order (:mod:`orchestrator.interrupts`): Tune is asked to
end its experiment as on its own SIGUSR1 (it saves its state, then stops the trials), and
the trials still running are recorded interrupted.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import posixpath
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator.book import Counts
from orchestrator.capacity import check_capacity, check_shared_storage
from orchestrator.driver import RunnerTrial, StudyRun
from orchestrator.interrupts import StopRequests
from orchestrator.lock import pid_alive
from orchestrator.progress import ProgressView
from orchestrator.space import optuna_space, trial_count
from orchestrator.spec import StudySpec
from orchestrator.trial import TrialJob, run_trial
from studyfiles import StudyDir
from studyfiles.schema import KEY_COLUMNS
from studyfiles.storage import Storage

PRIVATE_PREFIX = "gcnc-"  # the folder of a private Ray: <temp root>/gcnc-XXXXXXXX/
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # trials exchange no large objects
SHARED_CHECK_S = 120.0  # for every node to say whether it sees --storage
_ACTIVE: StudyRun | None = None  # the run Tune's callback reports to
_ROW_KEYS = frozenset(KEY_COLUMNS) - {"epoch", "step"}  # a stored row's bookkeeping


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
    # Ray logs every checkpoint it stores; through Ray Client, the user would see each one.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    trial_id = job.trial_id(config, tune.get_context().get_trial_id())
    run_trial(job, job.point(config), trial_id, TuneReporter())


class _OptunaSearch(OptunaSearch):
    """Optuna search that skips results without the metric (rows after a divergence)."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


class _StudyCallback(tune.Callback):
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
        return (_StudyCallback, (self._study, self._job))

    def setup(self, **info: Any) -> None:
        _quiet_tune()  # in Tune's driver, wherever it runs

    def _run(self) -> StudyRun:
        if _ACTIVE is not None:
            return _ACTIVE
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


def _connect(address: str, options: dict[str, Any], *, attempts: int = 3) -> None:
    """Join the cluster at ``address``. A Ray Client server may fail a new connection while
    it sets up its per-client server (seen under load); such a refusal is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionAbortedError as err:
            if not address.startswith("ray://") or attempt == attempts:
                raise
            ray.shutdown()  # the refused attempt's log stream would print every line twice
            first = str(err).strip().splitlines()[-1] if str(err).strip() else "refused"
            print(f"gcnc: {address} refused the connection ({first}); trying again",
                  file=sys.stderr)  # fmt: skip
            time.sleep(2.0 * attempt)


@contextlib.contextmanager
def ray_session(address: str | None, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Ray for the run: the one already initialised, a cluster at ``address``, or a private
    local instance with its own temp dir (never a stranger's cluster).

    Through Ray Client (``ray://``), Tune's driver runs in the cluster: ``env`` (Tune's
    settings, set in this process by the caller) is sent with the job, and the user's
    own values of those variables win as they do here.
    """
    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"logging_level": logging.WARNING}
    if (address or "").startswith("ray://"):  # Ray Client takes fewer options
        sent = {k: os.environ.get(k, v) for k, v in (env or {}).items()}
        quiet["runtime_env"] = {"env_vars": sent}
    else:
        quiet["log_to_driver"] = False
    if address:
        _connect(address, quiet)
        temp = None
    else:
        root = _short_temp_root()
        remove_dead_private_folders(root or tempfile.gettempdir())
        temp = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=root)
        # Ray notes that a new local instance uses token authentication: expected here.
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        ray.init(
            address="local",
            _temp_dir=temp,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            # Ray starts idle workers for a new driver, but Tune's trial actors carry a
            # runtime env and never use them: they would only take CPU from the trials'
            # start-up.
            _system_config={"prestart_worker_first_driver": False},
            **quiet,
        )
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def remove_dead_private_folders(root: str, *, min_age_s: float = 600.0) -> list[str]:
    """Remove the folders that private Rays of killed ``gcnc`` drivers left in ``root``.

    A private Ray's folder is ``<root>/gcnc-*/`` holding ``session_<date>_<time>_<us>_<pid>``,
    ``pid`` being its driver's. A driver killed by SIGKILL cannot remove it; this does, once
    every driver named there is gone and nothing was written there for ``min_age_s`` (Ray's
    agents outlive a killed driver by a few minutes). Returns the folders removed.
    """
    removed = []
    for folder in glob.glob(os.path.join(glob.escape(root), f"{PRIVATE_PREFIX}*")):
        sessions = glob.glob(os.path.join(glob.escape(folder), "session_2*_*"))
        pids = [name.rsplit("_", 1)[1] for name in sessions]
        if not sessions or not all(p.isdigit() and not pid_alive(int(p)) for p in pids):
            continue
        try:
            newest = max(os.stat(d).st_mtime for d in [folder, *sessions])
        except OSError:
            continue
        if time.time() - newest >= min_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _short_temp_root() -> str | None:
    """Where the private Ray's folder goes: ``RAY_TMPDIR``, else ``/tmp`` (Ray's socket
    paths have a length limit, and the system temp folder can be long)."""
    for folder in (os.environ.get("RAY_TMPDIR"), "/tmp"):
        if folder and os.path.isdir(folder):
            return folder
    return None


@contextlib.contextmanager
def session(
    study: StudySpec,
    *,
    address: str | None = None,
    stored: bool = False,
    storage: Storage | None = None,
) -> Iterator[None]:
    """Ray (see :func:`ray_session`) and Tune's settings for running ``study``.

    As soon as Ray is up, before the caller writes to the study directory, a study is
    refused whose trials no node of the cluster can hold (Tune would wait for such a node
    forever), or whose ``storage`` folder is on a disk some node does not share.

    Args:
        study: the study to run.
        address: a Ray cluster, or None for a private local Ray.
        stored: whether the study's spec is already stored (its resources are fixed).
        storage: the ``--storage`` folder (None: not checked).

    Raises:
        InputError: a trial's resources exceed every node's, or a node does not see
            ``storage``.
    """
    settings = _tune_settings(study)
    with _tune_environment(settings), ray_session(address, settings):
        check_capacity(study.resources, _node_resources(), stored=stored)
        if storage is not None:
            _check_shared(storage)
        yield


def _check_shared(storage: Storage) -> None:
    """Each live node looks for a file the driver writes next to the study directory
    ``storage`` (in the ``--storage`` folder, a local path); a node that does not see it is
    refused. Skipped for object stores, which every node reaches, and for one node on the
    driver's own machine (a private Ray)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    remote = ray.util.client.ray.is_connected()
    if storage.fs.type_name != "local" or (len(nodes) <= 1 and not remote):
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    folder = posixpath.dirname(storage.root)
    probe = posixpath.join(folder, f".gcnc-probe-{token}")
    storage.write_bytes(probe, token.encode())
    try:
        refs = [
            _sees.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(probe, token)
            for n in nodes
        ]
        try:
            seen = ray.get(refs, timeout=SHARED_CHECK_S)
        except ray.exceptions.GetTimeoutError:
            print(f"gcnc: could not check within {SHARED_CHECK_S:.0f} s that every node sees "
                  f"{folder}; going on", file=sys.stderr)  # fmt: skip
            return
    finally:
        storage.delete(probe)
    check_shared_storage(
        folder, [(n["NodeManagerAddress"], saw) for n, saw in zip(nodes, seen, strict=True)]
    )


@ray.remote
def _sees(path: str, token: str) -> bool:
    """Whether this node reads ``token`` in the file at ``path``."""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def run_study(
    study: StudySpec,
    sdir: StudyDir,
    job: TrialJob,
    *,
    view: ProgressView | None = None,
    stop: StopRequests | None = None,
) -> Counts:
    """Run (or resume) every trial of ``study`` in ``sdir`` inside :func:`session`;
    returns the final counts.

    With ``stop`` installed, a first SIGINT / SIGTERM during the trials ends the experiment
    in order; a stop at once (:class:`~orchestrator.interrupts.StopNow`) is raised on after
    the trials still running are recorded interrupted.
    """
    global _ACTIVE
    stopping = (lambda: stop.requested) if stop is not None else None
    run = StudyRun(study, job, sdir, view=view, stopping=stopping)
    _ACTIVE = run
    try:
        if stop is not None:
            stop.graceful = _end_tune_experiment
        _tuner(study, job, sdir).fit()
    except BaseException:
        run.abort(look=False)
        raise
    finally:
        _ACTIVE = None
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


def _node_resources() -> list[dict[str, float]]:
    """The total resources of each live node of the cluster."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def _tune_settings(study: StudySpec) -> dict[str, str]:
    """Tune's settings for this run, as environment variables."""
    return {
        "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # rows after a divergence lack metrics
        "TUNE_DISABLE_SIGINT_HANDLER": "1",  # ours stops the run (orchestrator.interrupts)
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # our Parquet is the record
        "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: Tune prints nothing
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TUNE_GLOBAL_CHECKPOINT_S": str(_snapshot_period(study)),
    }


@contextlib.contextmanager
def _tune_environment(settings: Mapping[str, str]) -> Iterator[None]:
    """Tune's ``settings`` in this process's environment (a user's own setting wins);
    the environment is restored afterwards."""
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update({k: v for k, v in settings.items() if saved[k] is None})
    _quiet_tune()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def _quiet_tune() -> None:
    """Tune's notes (on its snapshots, on result files our Parquet replaces) are not for the
    user, nor its tracebacks of failed trials: the run names each failure in one line, and
    ``trials.parquet`` keeps its error text. Tune's other errors still show."""
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _snapshot_period(study: StudySpec) -> float:
    """Seconds between snapshots of the Tune experiment (its state is rewritten whole).

    A grid's trials are fixed, so a killed driver only loses progress, which checkpoints
    bound: every few seconds will do. A searcher's trial proposed after the last snapshot
    is forgotten (then abandoned): snapshot nearly every step while the study is small.
    """
    n = trial_count(study)
    if study.search is not None and study.search.algorithm != "random":
        return max(0.1, min(30.0, n / 100))
    return max(2.0, min(30.0, n / 200))


def _tuner(study: StudySpec, job: TrialJob, sdir: StudyDir) -> tune.Tuner:
    res = study.resources
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trial, job=job),
        {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial},
    )
    storage = sdir.storage
    fs = None if storage.fs.type_name == "local" else storage.fs
    if _restorable(sdir):
        return tune.Tuner.restore(
            sdir.tune,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=_param_space(job),
            storage_filesystem=fs,
        )
    search_alg, num_samples = _search(study, job)
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=_scheduler(study, job),
        num_samples=num_samples,
        max_concurrent_trials=res.max_concurrent or None,
        reuse_actors=True,  # a worker imports torch and the data once, not once per trial
        trial_dirname_creator=_trial_dirname,
        trial_name_creator=_trial_dirname,
    )
    run_config = tune.RunConfig(
        name="tune",
        storage_path=storage.root,
        storage_filesystem=fs,
        callbacks=[_StudyCallback(study, job)],
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=res.max_failures),
    )
    return tune.Tuner(
        trainable, param_space=_param_space(job), tune_config=tune_config, run_config=run_config
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
    search = study.search
    assert search is not None
    space = optuna_space(study)
    if search.algorithm == "grid":
        grid = {k: list(d.choice or ()) for k, d in search.space.items()}
        sampler: Any = optuna.samplers.GridSampler(grid, seed=search.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=search.seed)
    searcher = _OptunaSearch(space=space, metric=search.metric, mode=search.mode, sampler=sampler)
    return searcher, trial_count(study)


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
