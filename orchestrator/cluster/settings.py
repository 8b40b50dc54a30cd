"""Tune's settings for a run (environment variables), and its logs kept off the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

from orchestrator.search import algorithm_of
from orchestrator.spec import StudySpec


def tune_settings(study: StudySpec) -> dict[str, str]:
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
def tune_environment(settings: Mapping[str, str]) -> Iterator[None]:
    """Tune's ``settings`` in this process's environment (a user's own setting wins);
    the environment is restored afterwards."""
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update({k: v for k, v in settings.items() if saved[k] is None})
    quiet_tune()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def quiet_tune() -> None:
    """Tune's notes (on its snapshots, on result files our Parquet replaces) are not for the
    user, nor its tracebacks of failed trials: the run names each failure in one line, and
    ``trials.parquet`` keeps its error text. Tune's other errors still show."""
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _snapshot_period(study: StudySpec) -> float:
    """Seconds between snapshots of the Tune experiment (its state, every trial of it, is
    rewritten whole each time, so the period grows with the study: the driver's cost of a
    snapshot per trial stays flat).

    A grid without a scheduler is never restored from a snapshot (a resume runs a new
    experiment over what the trial book holds unended): one an hour. A grid's trials are
    fixed, so with a scheduler a killed driver only loses progress, which checkpoints
    bound: a trial that ended after the last snapshot starts again on resume, finds its
    rows complete and ends at once. A searcher's trial proposed after the last snapshot is
    forgotten (then abandoned): snapshot nearly every step while the study is small, and
    at most every two minutes.
    """
    if runs_from_its_book(study):
        return UNREAD_SNAPSHOT_S
    algorithm = algorithm_of(study)
    n = algorithm.count(study)
    if algorithm.proposes:
        return max(0.1, min(120.0, n / 100))
    return max(2.0, n / 200)


UNREAD_SNAPSHOT_S = 3600.0  # Tune's snapshots of an experiment nothing restores


def runs_from_its_book(study: StudySpec) -> bool:
    """Whether each run of the study is a new Tune experiment over the trials its book
    holds unended, never restored from Tune: a grid (or random search) without a
    scheduler, whose points are all known and of which Tune keeps no state."""
    return not algorithm_of(study).proposes and study.scheduler is None
