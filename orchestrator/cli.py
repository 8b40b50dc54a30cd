"""``gcnc``: run, resume, inspect and report studies (also ``python -m orchestrator``).

Bad input exits 2 with one line on stderr, ``gcnc: error: <field>: <problem> (<fix>)``,
before anything is written. Ray is imported only by ``run`` and ``resume``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from orchestrator.book import Counts
from orchestrator.errors import from_validation
from orchestrator.interrupts import StopRequests
from orchestrator.lock import driver_lock
from orchestrator.progress import ProgressView, format_duration
from orchestrator.provenance import open_study_dir
from orchestrator.space import check_study, trial_count
from orchestrator.spec import StudySpec, load_spec
from orchestrator.status import (
    StudyStatus,
    count_rows,
    failure_lines,
    format_status,
    next_steps,
    read_status,
)
from orchestrator.trial import make_job
from studyfiles import InputError, StudyDir
from trainables.overrides import add_set_option

PROG = "gcnc"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="validate a study file, run every trial, write the report")
    run.add_argument("study", metavar="STUDY.toml")
    run.add_argument("--storage", default="./runs", help="local path or URI (default ./runs)")
    _add_study_options(run)
    _add_run_options(run)

    resume = sub.add_parser("resume", help="finish an interrupted study")
    resume.add_argument("study_dir", metavar="STUDY_DIR")
    _add_run_options(resume)

    status = sub.add_parser("status", help="trials done / running / failed / diverged, rows")
    status.add_argument("study_dir", metavar="STUDY_DIR")

    validate = sub.add_parser("validate", help="check study files without running anything")
    validate.add_argument("studies", metavar="STUDY.toml", nargs="+")
    _add_study_options(validate)

    report = sub.add_parser("report", help="write the interactive HTML report")
    report.add_argument("study_dir", metavar="STUDY_DIR")
    report.add_argument("-o", "--output", metavar="FILE", help="default STUDY_DIR/report.html")
    report.add_argument(
        "--png",
        metavar="DIR",
        help="also write every figure as DIR/<figure>.png (needs: pip install 'gcnc[png]' "
        "and a Chromium)",
    )
    _add_analysis_options(report)

    analyze = sub.add_parser("analyze", help="print the correlation tables")
    analyze.add_argument("study_dir", metavar="STUDY_DIR")
    _add_analysis_options(analyze)
    return parser


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress-by",
        choices=("train_loss", "train_acc"),
        default="train_loss",
        help="the training-progress measure of matched comparisons (default train_loss)",
    )
    parser.add_argument(
        "--progress-quantile",
        type=_unit_fraction,
        default=1.0,
        metavar="Q",
        help="match at the level this fraction of trials reached (default 1: every trial; "
        "0.7 drops the least-trained 30%%)",
    )


def _unit_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _analysis_options(analysis: Any, args: argparse.Namespace) -> Any:
    return analysis.Options(progress_by=args.progress_by, progress_quantile=args.progress_quantile)


def _add_study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="apply the file's [smoke] table")
    add_set_option(parser)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        help="a Ray cluster: auto, host:port or ray://host:port (default: a private local Ray)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gcnc`` command; returns the exit status.

    Without ``argv`` it is the program (``sys.argv``), and the process ends on return: every
    object left is frozen, which spares the exit the garbage collector's passes over all
    that torch, Ray and pandas made (a second or more).
    """
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as err:
        print(f"{PROG}: error: {err.line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a run (which stops in order: _execute)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        if argv is None:
            gc.freeze()


def _cmd_run(args: argparse.Namespace) -> int:
    study = load_spec(args.study, overrides=args.overrides, smoke=args.smoke)
    sdir = StudyDir.of(args.storage, study.name)
    # An existing study dir with another spec is refused now; a new one is written once
    # the cluster has been found to hold the study's trials.
    info = open_study_dir(sdir, study)[0] if sdir.exists() else None
    return _execute(study, sdir, info, args=args)


def _cmd_resume(args: argparse.Namespace) -> int:
    sdir = StudyDir.at(args.study_dir)
    info = sdir.read_info()
    return _execute(stored_spec(info), sdir, info, args=args)


def stored_spec(info: dict[str, Any]) -> StudySpec:
    """The study a ``study.json`` holds, checked as a study file would be."""
    try:
        study = StudySpec.model_validate(info["spec"])
    except ValidationError as err:
        raise from_validation(err, model=StudySpec, prefix="study.json:spec") from None
    check_study(study)
    return study


def _execute(
    study: StudySpec, sdir: StudyDir, info: dict[str, Any] | None, *, args: argparse.Namespace
) -> int:
    """Run ``study`` in ``sdir``, whose ``study.json`` holds ``info`` (None: not written yet).

    SIGINT and SIGTERM stop the run (:mod:`orchestrator.interrupts`): the driver then says
    what is done and what is not, and exits with 130 or 143.
    """
    verb = "running" if info is None else "resuming"
    print(
        f"{PROG}: {verb} study {study.name}: {trial_count(study)} trials -> {sdir.location}",
        flush=True,
    )
    view = ProgressView(study.name)
    stop = StopRequests()
    with stop.installed():
        try:
            counts = _run_trials(study, sdir, info, address=args.address, view=view, stop=stop)
        except KeyboardInterrupt:  # StopNow, or Ray's own when a signal cuts a wait short
            counts = None
            stop.signum = stop.signum or signal.SIGINT
        if stop.requested:
            return _stopped(study, sdir, stop, elapsed_s=view.elapsed_s)
        assert counts is not None
        try:
            _summarise(study, sdir, counts, elapsed_s=view.elapsed_s)
            if not args.no_report:
                _final_report(sdir)
        except KeyboardInterrupt:
            stop.signum = stop.signum or signal.SIGINT
            print(f"{PROG}: {stop.name}: stopped; the study's trials are complete, the report "
                  f"can be written with: {PROG} report {sdir.location}", flush=True)  # fmt: skip
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
    from orchestrator import runner  # imports ray

    with contextlib.ExitStack() as held:
        if info is not None:  # a study another driver is running is refused before Ray starts
            held.enter_context(driver_lock(sdir))
        held.enter_context(
            runner.session(study, address=address, stored=info is not None, storage=sdir.storage)
        )
        stop.reclaim()
        if info is None:
            info, _ = open_study_dir(sdir, study)
            held.enter_context(driver_lock(sdir))
        job = make_job(study, sdir, info)
        return runner.run_study(study, sdir, job, view=view, stop=stop)


def _summarise(study: StudySpec, sdir: StudyDir, counts: Counts, *, elapsed_s: float) -> None:
    """What the run left: trials by state, rows, and how to go on where that can help."""
    rows, _ = count_rows(sdir)
    stopped = f", {counts.stopped} stopped early by the scheduler" if counts.stopped else ""
    print(
        f"{PROG}: {study.name}: {counts.done}/{counts.total} trials done{stopped} "
        f"({counts.diverged} diverged), {counts.failed} failed, {counts.pending} not run"
        + (f", {counts.abandoned} abandoned" if counts.abandoned else "")
        + f"; {rows} rows in {format_duration(elapsed_s)} -> {sdir.location}",
        flush=True,
    )
    st = read_status(sdir)
    if counts.failed:
        print(f"{PROG}: failed trials, with the last line of their error (the whole of it is "
              "in trials.parquet's error column):", flush=True)  # fmt: skip
        print("\n".join(failure_lines(st.errors, limit=3, repeated=st.repeated)), flush=True)
    _say_next_steps(st)


def _final_report(sdir: StudyDir) -> None:
    try:
        _report(sdir.location, output=None)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # the study is complete; a report can be written later
        print(
            f"{PROG}: could not write the report ({type(err).__name__}: {err}); "
            f"try again with: {PROG} report {sdir.location}",
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


def _report(location: str, *, output: str | None, args: argparse.Namespace | None = None) -> int:
    analysis = _analysis()
    if analysis is None:
        return 1
    options = _analysis_options(analysis, args) if args is not None else None
    png_dir = args.png if args is not None else None
    try:
        path = analysis.write_report(location, output=output, png_dir=png_dir, options=options)
    except analysis.ResultsError as err:
        raise InputError("STUDY_DIR", str(err), "check the study directory") from None
    except analysis.PngExportError as err:  # the HTML report is written before the images
        print(f"{PROG}: report written, no PNG images: {err}", file=sys.stderr)
        return 1
    print(f"{PROG}: report: {path}")
    if png_dir is not None:
        print(f"{PROG}: figures: {png_dir}")
    return 0


def _analysis() -> Any:
    """The analysis package, or None (with a message) where it cannot be imported."""
    try:
        import analysis
    except ImportError as err:
        print(
            f"{PROG}: the analysis package is not available ({err}); the study's Parquet "
            "files are complete without it",
            file=sys.stderr,
        )
        return None
    return analysis


def _cmd_status(args: argparse.Namespace) -> int:
    print(format_status(read_status(StudyDir.at(args.study_dir))))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.studies:
        try:
            study = load_spec(path, overrides=args.overrides, smoke=args.smoke)
            smoke = ""
            if study.smoke and not args.smoke:
                tiny = load_spec(path, overrides=args.overrides, smoke=True)
                smoke = f", smoke: {trial_count(tiny)} trials"
            print(f"ok: {path}: study {study.name}, {trial_count(study)} trials{smoke}")
        except InputError as err:
            where = f"{path}: " if len(args.studies) > 1 else ""
            print(f"{PROG}: error: {where}{err.line()}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    return _report(StudyDir.at(args.study_dir).location, output=args.output, args=args)


def _cmd_analyze(args: argparse.Namespace) -> int:
    location = StudyDir.at(args.study_dir).location
    analysis = _analysis()
    if analysis is None:
        return 1
    try:
        options = _analysis_options(analysis, args)
        print(analysis.format_tables(analysis.load_results(location), options=options))
    except analysis.ResultsError as err:
        raise InputError("STUDY_DIR", str(err), "check the study directory") from None
    return 0


COMMANDS = {
    "run": _cmd_run,
    "resume": _cmd_resume,
    "status": _cmd_status,
    "validate": _cmd_validate,
    "report": _cmd_report,
    "analyze": _cmd_analyze,
}

if __name__ == "__main__":
    sys.exit(main())
