"""One trial, runner-agnostic: its id, config and sink, and the reporter that writes rows.

:func:`run_trial` is what every trial process runs; the Ray adapter
(:mod:`orchestrator.cluster.tuner`) only passes each result on to Tune.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator import entrypoints
from orchestrator.checkpoints import CheckpointStore
from orchestrator.points import trial_config
from orchestrator.search import trial_points
from orchestrator.sink import LAYERS, RowContext, TrialSink, type_name
from orchestrator.spec import StudySpec
from studyfiles import StudyDir, schema
from studyfiles.storage import Storage
from trainables.overrides import get_dotted
from trainables.reporter import Reporter

Trainable = Callable[[dict[str, Any], Reporter], dict[str, Any]]
RERUN = "rerun"  # a runner config {"rerun": {"trial_id": ..., "point": {...}}}: a trial again
SETUP_FAILED = "gcnc_setup_failed"  # the result of a trial that could not start: its error
# What a trial raises before its first row when its config or its inputs are wrong: starting
# it again cannot help, so it fails once (its result names the error) instead of being retried.
SETUP_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    LookupError,
    ImportError,
    FileNotFoundError,
    NotImplementedError,
)


@dataclass(frozen=True)
class TrialJob:
    """What every trial of a study needs; small and picklable, sent to each trial process.

    Attributes:
        location: the study directory (local path or URI).
        ctx: the row context of the study's metrics.
        trainable: the trainable's ``module:function`` (resolved by the driver, so a trial
            process needs only to import it).
        base_config: the config every trial starts from.
        points: every trial's point, or None where a searcher proposes them.
    """

    location: str
    ctx: RowContext
    trainable: str
    base_config: dict[str, Any]
    points: tuple[dict[str, Any], ...] | None

    def point(self, tune_config: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's point from the config the runner gave it."""
        if RERUN in tune_config:
            return dict(tune_config[RERUN]["point"])
        if self.points is not None:
            return dict(self.points[int(tune_config["point"])])
        return {k: v for k, v in tune_config.items() if k in self.ctx.param_types}

    def trial_id(self, tune_config: Mapping[str, Any], runner_id: str) -> str:
        """``t00042`` for the 43rd point of a grid; ``t<runner id>`` for a searcher's trial;
        the id it names for a trial run again."""
        if RERUN in tune_config:
            return str(tune_config[RERUN]["trial_id"])
        if self.points is not None:
            return f"t{int(tune_config['point']):05d}"
        return f"t{runner_id}"

    def config(self, point: Mapping[str, Any]) -> dict[str, Any]:
        return trial_config(self.base_config, dict(point))

    def params(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the hyperparameter columns."""
        return {k: get_dotted(dict(config), k) for k in self.ctx.param_types}

    def study_dir(self) -> StudyDir:
        return StudyDir(Storage.open(self.location))

    def sink(self, trial_id: str, config: Mapping[str, Any]) -> TrialSink:
        return TrialSink(self.study_dir(), self.ctx, trial_id, self.params(config))

    def checkpoints(self, trial_id: str, config: Mapping[str, Any]) -> CheckpointStore:
        return CheckpointStore(self.study_dir(), trial_id, self.params(config))


def make_job(study: StudySpec, sdir: StudyDir, info: Mapping[str, Any]) -> TrialJob:
    """The job of ``study`` writing to ``sdir`` (``info`` is its ``study.json``)."""
    points = trial_points(study)
    base = study.base_config()
    configs = [trial_config(base, p) for p in points] if points is not None else [base]
    keys = list(schema.ALWAYS_PARAMS)
    keys += [k for k in study.sweep_params() if k not in keys]
    candidates = {k: [get_dotted(c, k) for c in configs] for k in keys}
    if study.search is not None:
        for key, dist in study.search.space.items():
            candidates[key] += dist.edge_values()
    ctx = RowContext(
        study=study.name,
        spec_hash=info["spec_hash"],
        code_version=info["code_version"],
        param_types={k: type_name(v) for k, v in candidates.items()},
        shots=tuple(sorted({k for c in configs for k in c["metrics"]["fewshot_shots"]})),
    )
    frozen = tuple(points) if points is not None else None
    return TrialJob(sdir.location, ctx, entrypoints.resolve(study.trainable), base, frozen)


def load_trainable(target: str) -> Trainable:
    """The trainable at ``module:function`` (imported in the process that runs it)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class ResultSink(Protocol):
    """Where a trial's results go besides its rows: the runner (say, Tune's scheduler and
    searcher). It gets no checkpoint: checkpoints are the study's own."""

    def report_result(self, metrics: Mapping[str, Any]) -> None: ...


class SinkingReporter:
    """A :class:`~trainables.reporter.Reporter` that writes each row, then its checkpoint,
    to the study, then passes the row on to the runner.

    The row (and its layer rows) lands before the checkpoint: a trial killed in between
    replays the epoch from the previous checkpoint and rewrites the same rows. The runner
    gets the row without its layer rows.
    """

    def __init__(self, sink: TrialSink, store: CheckpointStore, runner: ResultSink) -> None:
        self.sink, self.store, self.runner = sink, store, runner
        self._restored: dict[str, Any] | None = None
        self._asked = False
        self.reports = 0

    def restore(self) -> dict[str, Any] | None:
        if not self._asked:
            self._restored, self._asked = self.store.load(), True
        return self._restored

    def report(self, metrics: Mapping[str, Any], *, checkpoint: Mapping[str, Any]) -> None:
        self.sink.write(metrics)
        self.store.save(checkpoint, epoch=int(metrics["epoch"]))
        self.reports += 1
        self.runner.report_result({k: v for k, v in metrics.items() if k != LAYERS})


def run_trial(
    job: TrialJob, point: Mapping[str, Any], trial_id: str, runner: ResultSink
) -> dict[str, Any]:
    """Run one trial to its end from its newest checkpoint, writing its rows and
    checkpoints, and compacting its rows at the end.

    A trial whose rows were already compacted (it ended before) returns without training,
    passing its last row to the runner (a searcher still wants its final result); a fresh
    start over rows of other params clears them. A trial that cannot start (one of
    :data:`SETUP_ERRORS` before its first row) ends with a result that names the error
    (:data:`SETUP_FAILED`): the runner would only start it again to fail the same way.
    """
    config = job.config(point)
    sink = job.sink(trial_id, config)
    last = sink.finished_row()
    if last is not None:
        runner.report_result(last)
        return {"epochs_done": last.get("epoch"), "diverged": last.get("diverged"), "last": last}
    store = job.checkpoints(trial_id, config)
    sinking = SinkingReporter(sink, store, runner)
    if sinking.restore() is None and sink.has_foreign_rows():
        sink.clear()
    try:
        summary = load_trainable(job.trainable)(config, sinking)
    except SETUP_ERRORS as err:
        if sinking.reports:
            raise  # it trained: what broke may not break again
        text = "".join(traceback.format_exception(err))[-4000:]
        runner.report_result({SETUP_FAILED: text})
        return {"setup_failed": text}
    sink.compact()
    store.prune(1)  # the final model stays
    return summary
