"""``gcnc run`` and ``gcnc resume``: Ray up, the study directory written and held, every
trial run, then what is done and what is left said (and the report written).

SIGINT and SIGTERM stop the run (:mod:`orchestrator.interrupts`): the driver then says what
is done and what is not, and exits with 130 or 143.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
from typing import Any

from pydantic import ValidationError

from orchestrator.book import Counts
from orchestrator.checks import check_spec
from orchestrator.errors import from_validation
from orchestrator.interrupts import StopRequests
from orchestrator.lock import driver_lock
from orchestrator.progress import ProgressView, format_duration
from orchestrator.provenance import open_study_dir
from orchestrator.reporting import PROG, write_report
from orchestrator.search import trial_count
from orchestrator.spec import StudySpec
from orchestrator.status import StudyStatus, failure_lines, next_steps, read_status
from orchestrator.trial import make_job
from studyfiles import StudyDir


def stored_spec(info: dict[str, Any]) -> StudySpec:
    """The study a ``study.json`` holds, checked as a study file would be."""
    try:
        study = StudySpec.model_validate(info["spec"])
    except ValidationError as err:
        raise from_validation(err, model=StudySpec, prefix="study.json:spec") from None
    check_spec(study)
    return study


def execute(
    study: StudySpec,
    sdir: StudyDir,
    info: dict[str, Any] | None,
    *,
    address: str | None,
    report: bool,
) -> int:
    """Run ``study`` in ``sdir``, whose ``study.json`` holds ``info`` (None: not written yet),
    on the cluster at ``address`` (None: a private Ray); returns the exit status."""
    verb = "running" if info is None else "resuming"
    print(
        f"{PROG}: {verb} study {study.name}: {trial_count(study)} trials -> {sdir.location}",
        flush=True,
    )
    view = ProgressView(study.name)
    stop = StopRequests()
    with stop.installed():
        try:
            counts = _run_trials(study, sdir, info, address=address, view=view, stop=stop)
        except KeyboardInterrupt:  # StopNow, or Ray's own when a signal cuts a wait short
            counts = None
            stop.signum = stop.signum or signal.SIGINT
        if stop.requested:
            return _stopped(study, sdir, stop, elapsed_s=view.elapsed_s)
        assert counts is not None
        try:
            _summarise(study, sdir, counts, elapsed_s=view.elapsed_s)
            if report:
                _final_report(sdir)
        except KeyboardInterrupt:
            stop.signum = stop.signum or signal.SIGINT
            where = shlex.quote(sdir.location)
            print(f"{PROG}: {stop.name}: stopped; the study's trials are complete, the report "
                  f"can be written with: {PROG} report {where}", flush=True)  # fmt: skip
            return stop.exit_code
    return 0 if counts.ended == counts.total else 1


def _run_trials(
    study: StudySpec,
    sdir: StudyDir,
    info: dict[str, Any] | None,
    *,
    address: str | None,
    view: ProgressView,
    stop: StopRequests,
) -> Counts:
    """Ray up, ``study.json`` written (if new) and held, then every trial run."""
    from orchestrator import cluster  # imports ray

    with contextlib.ExitStack() as held:
        if info is not None:  # a study another driver is running is refused before Ray starts
            held.enter_context(driver_lock(sdir))
        held.enter_context(
            cluster.session(study, address=address, stored=info is not None, storage=sdir.storage)
        )
        stop.reclaim()
        if info is None:
            info, _ = open_study_dir(sdir, study)
            held.enter_context(driver_lock(sdir))
        job = make_job(study, sdir, info)
        return cluster.run_study(study, sdir, job, view=view, stop=stop)


def _summarise(study: StudySpec, sdir: StudyDir, counts: Counts, *, elapsed_s: float) -> None:
    """What the run left: trials by state, rows, and how to go on where that can help."""
    st = read_status(sdir)
    stopped = f", {counts.stopped} stopped early by the scheduler" if counts.stopped else ""
    print(
        f"{PROG}: {study.name}: {counts.done}/{counts.total} trials done{stopped} "
        f"({counts.diverged} diverged), {counts.failed} failed, {counts.pending} not run"
        + (f", {counts.abandoned} abandoned" if counts.abandoned else "")
        + f"; {st.rows} rows in {format_duration(elapsed_s)} -> {sdir.location}",
        flush=True,
    )
    if counts.failed:
        print(f"{PROG}: failed trials, with the last line of their error (the whole of it is "
              "in trials.parquet's error column):", flush=True)  # fmt: skip
        print("\n".join(failure_lines(st.errors, limit=3, repeated=st.repeated)), flush=True)
    _say_next_steps(st)


def _final_report(sdir: StudyDir) -> None:
    try:
        write_report(sdir.location, output=None)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # the study is complete; a report can be written later
        print(
            f"{PROG}: could not write the report ({type(err).__name__}: {err}); "
            f"try again with: {PROG} report {shlex.quote(sdir.location)}",
            file=sys.stderr,
        )


def _stopped(study: StudySpec, sdir: StudyDir, stop: StopRequests, *, elapsed_s: float) -> int:
    """Say what a run stopped by a signal left, and return its exit code (128 + signal)."""
    if not sdir.exists():
        print(f"{PROG}: {stop.name}: stopped before the study started; nothing was written",
              flush=True)  # fmt: skip
        return stop.exit_code
    st = read_status(sdir)
    get = st.by_status.get
    stopped = f", {get('stopped', 0)} stopped early" if get("stopped", 0) else ""
    failed = f", {get('error', 0)} failed" if get("error", 0) else ""
    print(
        f"{PROG}: {study.name}: stopped by {stop.name} after {format_duration(elapsed_s)}: "
        f"{get('done', 0)}/{st.total} trials done{stopped}, "
        f"{get('interrupted', 0) + get('running', 0)} interrupted, "
        f"{get('pending', 0)} not started{failed}; {st.rows} rows -> {sdir.location}",
        flush=True,
    )
    _say_next_steps(st)
    return stop.exit_code


def _say_next_steps(st: StudyStatus) -> None:
    for line in next_steps(st):
        print(f"{PROG}: {line}", flush=True)
