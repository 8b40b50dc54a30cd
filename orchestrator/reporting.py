"""The analysis behind ``gcnc report`` and ``gcnc analyze``, and the end of ``gcnc run``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from studyfiles import InputError

PROG = "gcnc"


def write_report(
    location: str, *, output: str | None, args: argparse.Namespace | None = None
) -> int:
    """Write the study's HTML report (and with ``--png``, its figures); the exit status."""
    analysis = analysis_package()
    if analysis is None:
        return 1
    options = analysis_options(analysis, args) if args is not None else None
    png_dir = args.png if args is not None else None
    try:
        allow = bool(args is not None and args.allow_missing)
        path = analysis.write_report(
            location, output=output, png_dir=png_dir, options=options, allow_missing=allow
        )
    except analysis.ResultsError as err:
        raise InputError("STUDY_DIR", str(err), "check the study directory") from None
    except analysis.PngExportError as err:  # the HTML report is written before the images
        print(f"{PROG}: report written, no PNG images: {err}", file=sys.stderr)
        return 1
    print(f"{PROG}: report: {path}")
    if png_dir is not None:
        print(f"{PROG}: figures: {png_dir}")
    return 0


def analysis_package() -> Any:
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


def analysis_options(analysis: Any, args: argparse.Namespace) -> Any:
    return analysis.Options(progress_by=args.progress_by, progress_quantile=args.progress_quantile)
