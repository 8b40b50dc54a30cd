"""The analysis behind ``gcnc report`` and ``gcnc analyze``, and the end of ``gcnc run``."""

from __future__ import annotations

import argparse
import json
import math
import numbers
import sys
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from studyfiles import InputError, Storage

PROG = "gcnc"


def write_report(
    location: str, *, output: str | None, args: argparse.Namespace | None = None
) -> int:
    """Write the study's HTML report (and with ``--png``, its figures); the exit status."""
    analysis = analysis_package()
    if analysis is None:
        return 1
    overrides = analysis_overrides(args) if args is not None else None
    png_dir = args.png if args is not None else None
    try:
        allow = bool(args is not None and args.allow_missing)
        path = analysis.write_report(
            location, output=output, png_dir=png_dir, overrides=overrides, allow_missing=allow
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


def analysis_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The analysis-plan fields given on the command line (the rest come from the plan)."""
    names = ("progress_by", "progress_quantile", "alpha", "correction", "comparison")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def write_json(target: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to a local path or storage URI; bad JSON values (NaN, ±inf)
    become null, wherever they are (:func:`json_safe`)."""
    text = json.dumps(json_safe(data), indent=2, allow_nan=False, default=str)
    storage = Storage.open(target)
    try:
        storage.write_bytes(storage.root, text.encode("utf-8"))
    except (OSError, pa.ArrowException) as err:
        raise InputError(
            "--json", f"cannot write {target}: {err}", "give a writable path"
        ) from None
    print(f"{PROG}: verdicts as JSON: {storage.location}")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite number (NaN, ±inf) made None, through mappings,
    lists and tuples at any depth; numpy's numbers and arrays become Python's. Other
    values are left as they are (``json.dumps(default=str)`` writes them as text)."""
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if callable(getattr(value, "tolist", None)):  # a numpy array or scalar (np.bool_)
        return json_safe(value.tolist())
    return value
