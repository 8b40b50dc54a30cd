"""Column names and types of the study's Parquet tables (docs/schema.md).

Types are named as strings here (``"double"``, ``"string"``, ``"bool"``, ``"int64"``) so the
spec layer can check metric names without importing pyarrow; :mod:`orchestrator.sink`
turns them into Arrow types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The first columns of every metrics row, in order.
KEY_COLUMNS: dict[str, str] = {
    "study": "string",
    "trial_id": "string",
    "epoch": "int64",
    "step": "int64",
    "written_at": "timestamp",
    "spec_hash": "string",
    "code_version": "string",
}

# Hyperparameter columns present in every study, swept or not.
ALWAYS_PARAMS: tuple[str, ...] = (
    "train.lr",
    "train.batch_size",
    "train.l2",
    "train.gc_reg.alpha",
    "train.seed",
)
SEED_PARAM = "train.seed"

# Metric columns before the few-shot ones, in the schema's order.
_METRICS_HEAD: dict[str, str] = {
    "train_loss": "double",
    "train_acc": "double",
    "test_acc": "double",
    "gc": "double",
    "gc_estimator": "string",
    "gc_exact": "double",
    "gc_logits": "double",
    "geo_collapse": "double",
    "nc_cdnv": "double",
    "nc1": "double",
    "nc2_etf": "double",
    "nc2_equinorm": "double",
    "nc3": "double",
    "nc4": "double",
    "target_nc_cdnv": "double",
}
_METRICS_TAIL: dict[str, str] = {
    "ncc_test_error": "double",
    "nc_bound": "double",
    "diverged": "bool",
    "wall_time_s": "double",
}
_FEWSHOT = re.compile(r"^fewshot_(acc|ci)_([1-9][0-9]*)shot$")

# trials.parquet, around the hyperparameter columns.
TRIALS_HEAD: dict[str, str] = {
    "study": "string",
    "trial_id": "string",
    "status": "string",
    "diverged": "bool",
    "attempts": "int64",
    "error": "string",
    "config": "string",
}
TRIALS_TAIL: dict[str, str] = {
    "epochs_done": "int64",
    "failed_runs": "int64",
    "updated_at": "timestamp",
}
# A trial's status: not started, running, started and not ended, reached its last epoch
# (or diverged), ended earlier by the scheduler, failed.
STATUSES: tuple[str, ...] = ("pending", "running", "interrupted", "done", "stopped", "error")


def metric_columns(shots: Iterable[int]) -> dict[str, str]:
    """Every metric column of a study whose few-shot evaluation uses ``shots``."""
    fewshot: dict[str, str] = {}
    for k in sorted(set(shots)):
        fewshot[f"fewshot_acc_{k}shot"] = "double"
        fewshot[f"fewshot_ci_{k}shot"] = "double"
    return {**_METRICS_HEAD, **fewshot, **_METRICS_TAIL}


def is_metric_name(name: str) -> bool:
    """Whether ``name`` is a metric column of some study (few-shot columns for any k)."""
    return name in _METRICS_HEAD or name in _METRICS_TAIL or bool(_FEWSHOT.match(name))


def known_metric_names() -> list[str]:
    """The fixed metric names, with the few-shot pattern spelled out for error messages."""
    return [*_METRICS_HEAD, "fewshot_acc_<k>shot", "fewshot_ci_<k>shot", *_METRICS_TAIL]
