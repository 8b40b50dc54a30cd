"""Run one trial in this process: ``python -m trainables --set train.epochs=5 …``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from trainables.config import TrialConfig
from trainables.overrides import add_set_option, apply_overrides
from trainables.train import run

SHOWN = (
    "train_loss",
    "train_acc",
    "test_acc",
    "gc",
    "geo_collapse",
    "nc_cdnv",
    "target_nc_cdnv",
    "fewshot_acc_5shot",
)


class PrintingReporter:
    """Prints one line per evaluation and keeps the rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def restore(self) -> None:
        return None

    def report(self, metrics: Mapping[str, Any], *, checkpoint: Mapping[str, Any]) -> None:
        self.rows.append(dict(metrics))
        if len(self.rows) == 1:
            print(f"{'epoch':>5} " + " ".join(f"{k:>17}" for k in SHOWN), flush=True)
        cells = " ".join(f"{_fmt(metrics.get(k)):>17}" for k in SHOWN)
        print(f"{metrics['epoch']:>5} {cells}", flush=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainables", description=__doc__)
    add_set_option(parser)
    parser.add_argument("--json", metavar="FILE", help="write every reported row to FILE")
    args = parser.parse_args(argv)
    try:
        config = TrialConfig.from_dict(apply_overrides({}, args.overrides)).model_dump()
    except (ValueError, ValidationError) as err:
        print(f"python -m trainables: error: {_one_line(err)}", file=sys.stderr)
        return 2
    reporter = PrintingReporter()
    summary = run(config, reporter)
    print(
        f"done: {summary['epochs_done']} epochs, {summary['steps']} steps"
        + (", DIVERGED" if summary["diverged"] else "")
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": config, "rows": reporter.rows}, fh, indent=1)
    return 0


def _one_line(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"{loc}: {first['msg']}"
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
