"""``gcnc``: run, resume, inspect and report studies (also ``python -m orchestrator``).

Bad input exits 2 with one line on stderr, ``gcnc: error: <field>: <problem> (<fix>)``,
before anything is written. Ray is imported only by ``run`` and ``resume``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from orchestrator.launch import execute, stored_spec
from orchestrator.provenance import open_study_dir
from orchestrator.reporting import (
    PROG,
    analysis_overrides,
    analysis_package,
    write_json,
    write_report,
)
from orchestrator.search import trial_count
from orchestrator.status import format_status, read_status
from orchestrator.studyfile import load_spec
from studyfiles import InputError, StudyDir
from studyfiles.plan import COMPARISONS, CORRECTIONS, PROGRESS_MEASURES, alpha_problem
from trainables.data.inventory import dataset_entries, format_entries
from trainables.overrides import add_set_option


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

    analyze = sub.add_parser("analyze", help="print the verdicts and correlation tables")
    analyze.add_argument("study_dir", metavar="STUDY_DIR")
    analyze.add_argument(
        "--json",
        metavar="FILE",
        help="also write every verdict, interval, p-value and option to FILE as JSON",
    )
    _add_analysis_options(analyze)

    datasets = sub.add_parser(
        "datasets", help="each dataset, its classes and shape, and whether its files are here"
    )
    datasets.add_argument(
        "--data-root",
        metavar="DIR",
        help="where to look for the files, as data.data_root (default: unset, as in a study)",
    )
    datasets.add_argument("--json", action="store_true", help="print them as a JSON list")

    compare = sub.add_parser("compare", help="the replication view of several studies")
    compare.add_argument("study_dirs", metavar="STUDY_DIR", nargs="+")
    compare.add_argument("-o", "--output", metavar="FILE", help="also write it as HTML to FILE")

    serve = sub.add_parser("serve", help="the live interactive explorer (Dash) of studies")
    serve.add_argument("study_dirs", metavar="STUDY_DIR", nargs="+")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, this machine only; any other is reachable "
        "by others and warned about)",
    )
    serve.add_argument("--port", type=int, default=8050, help="default 8050")
    serve.add_argument(
        "--interval", type=float, default=5.0, metavar="SECONDS",
        help="how often the page reads new results (default 5; 0: never)",
    )  # fmt: skip
    serve.add_argument(
        "--allow-missing",
        action="store_true",
        help="serve without the rows of metrics files that cannot be read (named on the page)",
    )
    return parser


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    plan = parser.add_argument_group(
        "analysis plan",
        "each defaults to the study's [analysis] plan; a value that differs from it makes "
        "every result EXPLORATORY (labelled so)",
    )
    plan.add_argument(
        "--progress-by",
        choices=PROGRESS_MEASURES,
        help="the training-progress measure of matched comparisons (plan default train_loss)",
    )
    plan.add_argument(
        "--progress-quantile",
        type=_unit_fraction,
        metavar="Q",
        help="match at the level this fraction of trials reached (plan default 1: every "
        "trial; 0.7 drops the least-trained 30%%)",
    )
    plan.add_argument(
        "--alpha",
        type=_alpha,
        metavar="A",
        help="familywise error rate of the verdicts; intervals at 1 - A (plan default 0.05)",
    )
    plan.add_argument(
        "--correction",
        choices=CORRECTIONS,
        help="multiplicity control over the claims tested (plan default holm)",
    )
    plan.add_argument(
        "--comparison",
        choices=COMPARISONS,
        help="where claims are tested: final epoch, matched progress, or both (plan default)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="go on without the rows of metrics files that cannot be read (named)",
    )


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    problem = alpha_problem(value)  # the range a study file's [analysis] alpha has
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _unit_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


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
    return execute(study, sdir, info, address=args.address, report=not args.no_report)


def _cmd_resume(args: argparse.Namespace) -> int:
    sdir = StudyDir.at(args.study_dir)
    info = sdir.read_info()
    return execute(stored_spec(info), sdir, info, address=args.address, report=not args.no_report)


def _cmd_status(args: argparse.Namespace) -> int:
    status = read_status(StudyDir.at(args.study_dir))
    print(format_status(status))
    return 1 if status.unreadable else 0


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
    return write_report(StudyDir.at(args.study_dir).location, output=args.output, args=args)


@contextmanager
def _study_dirs_read(analysis: Any, fix: str = "check the study directories") -> Iterator[None]:
    """An ``analysis.ResultsError`` (a directory that is no study, a file that cannot be
    read) becomes the one-line input error naming STUDY_DIR, with ``fix``."""
    try:
        yield
    except analysis.ResultsError as err:
        raise InputError("STUDY_DIR", str(err), fix) from None


def _cmd_analyze(args: argparse.Namespace) -> int:
    location = StudyDir.at(args.study_dir).location
    analysis = analysis_package()
    if analysis is None:
        return 1
    with _study_dirs_read(analysis, "check the study directory"):
        study = analysis.load_results(location, allow_missing=args.allow_missing)
        results = analysis.compute_results(study, overrides=analysis_overrides(args))
        print(analysis.format_tables(study, results=results))
    if args.json:
        write_json(args.json, analysis.results_json(results))
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    entries = dataset_entries(data_root=args.data_root)
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
    else:
        print(format_entries(entries))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    analysis = analysis_package()
    if analysis is None:
        return 1
    locations = [StudyDir.at(d).location for d in args.study_dirs]
    from analysis.compare import compare_studies

    with _study_dirs_read(analysis):
        text, written = compare_studies(locations, output=args.output)
    print(text, end="")
    if written:
        print(f"{PROG}: comparison: {written}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    analysis = analysis_package()
    if analysis is None:
        return 1
    locations = [StudyDir.at(d).location for d in args.study_dirs]
    from analysis.explore import serve

    with _study_dirs_read(analysis):
        serve(
            locations,
            host=args.host,
            port=args.port,
            interval_s=args.interval,
            allow_missing=args.allow_missing,
        )
    return 0


COMMANDS = {
    "run": _cmd_run,
    "resume": _cmd_resume,
    "status": _cmd_status,
    "validate": _cmd_validate,
    "report": _cmd_report,
    "analyze": _cmd_analyze,
    "datasets": _cmd_datasets,
    "compare": _cmd_compare,
    "serve": _cmd_serve,
}

if __name__ == "__main__":
    sys.exit(main())
