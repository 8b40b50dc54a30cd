"""The columns of a study's Parquet tables (docs/schema.md): one entry per column.

A column's type is one of :data:`KINDS` (``double``, ``int64``, ``string``, ``bool``,
``timestamp``), the writer's Arrow type by the same name (:data:`ARROW_TYPES`). Readers
accept what a type promotes from (an ``int64`` column where a ``double`` is expected, a
dictionary-encoded string, an all-null column). A metric is one entry of :data:`METRICS`
(its type and its label): the writer, the search's metric check and the analysis read it
from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from studyfiles.errors import InputError
from studyfiles.layout import LAYERS_TABLE, METRICS_TABLE

ARROW_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "int64": pa.int64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("ns", tz="UTC"),
}
KINDS: tuple[str, ...] = tuple(ARROW_TYPES)
#: The range of a quantity's values: ``positive`` (> 0 where finite: intervals on the log
#: scale, changes as ratios), ``unit`` (a fraction in [0, 1]: intervals kept inside it) or
#: ``real`` (anything).
SCALES: tuple[str, ...] = ("positive", "unit", "real")

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
KEY = ("trial_id", "epoch")  # a row's identity: the latest written one of a key wins
REQUIRED = ("study", "trial_id", "epoch", "step", "written_at")  # without them, no metrics file

# Hyperparameter columns present in every study, swept or not.
ALWAYS_PARAMS: tuple[str, ...] = (
    "train.lr",
    "train.batch_size",
    "train.l2",
    "train.gc_reg.alpha",
    "train.seed",
)
SEED_PARAM = "train.seed"


@dataclass(frozen=True)
class Metric:
    """A metric column: its type (one of :data:`KINDS`), the name a reader sees (default:
    the column's) and the range of its values (one of :data:`SCALES`), which says how an
    interval around it is drawn (docs/analysis.md)."""

    kind: str
    label: str | None = None
    scale: str = "real"


# Every metric column but the few-shot ones, in the schema's order. The few-shot columns
# (``fewshot_acc_<k>shot``, ``fewshot_ci_<k>shot``) go between ``target_nc_cdnv`` and
# ``ncc_test_error``, one pair per k a study measures.
METRICS: dict[str, Metric] = {
    "train_loss": Metric("double", "train loss", "positive"),
    "train_acc": Metric("double", "train accuracy", "unit"),
    "test_acc": Metric("double", "test accuracy", "unit"),
    "gc": Metric("double", "GC (raw)", "positive"),
    "gc_estimator": Metric("string"),
    "gc_exact": Metric("double", "GC (exact)", "positive"),
    "gc_logits": Metric("double", "GC of logits", "positive"),
    "geo_collapse": Metric("double", "geometric collapse", "positive"),
    "nc_cdnv": Metric("double", "NC (CDNV)", "positive"),
    "nc1": Metric("double", "NC1 (within / between)", "positive"),
    "nc2_etf": Metric("double", "NC2 (simplex-ETF error)", "positive"),
    "nc2_equinorm": Metric("double", "NC2 (equinorm)", "positive"),
    "nc3": Metric("double", "NC3 (self-duality)", "positive"),
    "nc4": Metric("double", "NC4 (NCC disagreement)", "unit"),
    "target_nc_cdnv": Metric("double", "target NC (CDNV)", "positive"),
    "ncc_test_error": Metric("double", "NCC test error", "unit"),
    "nc_bound": Metric("double", "NCC error bound (train-side, reconstructed)", "positive"),
    "poincare_kappa": Metric("double", "Poincaré ratio κ̂ (train-side)", "positive"),
    "geocol_bound": Metric("double", "NCC error bound through GeoCol (train-side)", "positive"),
    "fewshot_nc_bound": Metric("double", "few-shot error bound (train-side)", "positive"),
    "diverged": Metric("bool"),
    "wall_time_s": Metric("double", "wall time (s)", "positive"),
}
_FEWSHOT_AFTER = "target_nc_cdnv"
FEWSHOT = re.compile(r"^fewshot_(acc|ci)_([1-9][0-9]*)shot$")
NOT_SEARCHABLE = frozenset({"diverged", "gc_estimator"})  # not a quantity to optimise

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


# The layers table (docs/schema.md): one row per (trial, evaluation, measured layer). Its
# first columns, in order; then the hyperparameters, as in the metrics table.
LAYER_KEY_COLUMNS: dict[str, str] = {
    "study": "string",
    "trial_id": "string",
    "epoch": "int64",
    "layer": "int64",  # 1 for the first layer from the input; the last is the embedding
    "layer_name": "string",  # the model's name of it, e.g. block3, layer2
    "step": "int64",
    "written_at": "timestamp",
    "spec_hash": "string",
    "code_version": "string",
}
LAYER_KEY = ("trial_id", "epoch", "layer")
# A layer's quantities: the metrics table's of the same name, measured on that layer's
# output, and the layer's width; the few-shot columns after ``target_nc_cdnv`` as there.
_PER_LAYER = ("gc", "gc_estimator", "geo_collapse", "nc_cdnv", "nc1", "target_nc_cdnv",
              "ncc_test_error")  # fmt: skip
LAYER_METRICS: dict[str, Metric] = {
    "layer_dim": Metric("int64", "layer width"),
    **{name: METRICS[name] for name in _PER_LAYER},
}
# Each table's key: of the rows of one key, the latest written wins.
TABLE_KEYS: dict[str, tuple[str, ...]] = {METRICS_TABLE: KEY, LAYERS_TABLE: LAYER_KEY}


def metric_columns(shots: Iterable[int]) -> dict[str, str]:
    """Every metric column of a study whose few-shot evaluation uses ``shots``, with its type."""
    return _with_fewshot(METRICS, shots)


def layer_metric_columns(shots: Iterable[int]) -> dict[str, str]:
    """Every metric column of a layers table whose few-shot evaluation uses ``shots``."""
    return _with_fewshot(LAYER_METRICS, shots)


def _with_fewshot(metrics: dict[str, Metric], shots: Iterable[int]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, metric in metrics.items():
        out[name] = metric.kind
        if name == _FEWSHOT_AFTER:
            for k in sorted(set(shots)):
                out[f"fewshot_acc_{k}shot"] = "double"
                out[f"fewshot_ci_{k}shot"] = "double"
    return out


def fixed_columns() -> dict[str, str]:
    """Every column of a metrics file whatever the study, with its type: the keys, then the
    metrics (the few-shot ones depend on the study)."""
    return {**KEY_COLUMNS, **{name: m.kind for name, m in METRICS.items()}}


def kind_of(column: str) -> str | None:
    """The type a column must have, or None for one the schema does not fix (a
    hyperparameter, or anything else a trainable measured)."""
    if column in KEY_COLUMNS:
        return KEY_COLUMNS[column]
    if column in METRICS:
        return METRICS[column].kind
    return "double" if FEWSHOT.match(column) else None


def is_metric_name(name: str) -> bool:
    """Whether ``name`` is a metric column of some study (few-shot columns for any k)."""
    return name in METRICS or bool(FEWSHOT.match(name))


def searchable_names() -> list[str]:
    """The metrics a search or scheduler may optimise, few-shot ones spelled as a pattern."""
    names = [n for n in METRICS if n not in NOT_SEARCHABLE]
    at = names.index(_FEWSHOT_AFTER) + 1
    return [*names[:at], "fewshot_acc_<k>shot", "fewshot_ci_<k>shot", *names[at:]]


def check_metric(field: str, name: str) -> None:
    """Refuse a ``search.metric`` / ``scheduler.metric`` that is no metric one can optimise.

    Raises:
        InputError: naming ``field`` and the known metrics.
    """
    if not is_metric_name(name) or name in NOT_SEARCHABLE:
        known = ", ".join(searchable_names())
        raise InputError(field, f"unknown metric {name!r}", f"known: {known}")


def fewshot_columns(columns: Iterable[str]) -> list[str]:
    """The ``fewshot_acc_<k>shot`` columns among ``columns``, by k."""
    found = [(int(m.group(2)), c) for c in columns if (m := FEWSHOT.match(c)) and m[1] == "acc"]
    return [c for _, c in sorted(found)]


def label(column: str) -> str:
    """A reader's name for a column: ``fewshot_acc_5shot`` -> ``5-shot accuracy``."""
    match = FEWSHOT.match(column)
    if match:
        kind = "accuracy" if match.group(1) == "acc" else "CI half-width"
        return f"{match.group(2)}-shot {kind}"
    metric = METRICS.get(column)
    if metric is not None and metric.label is not None:
        return metric.label
    return column.removeprefix("train.")


def scale_of(column: str) -> str:
    """The range of a column's values (one of :data:`SCALES`): a few-shot accuracy is a
    fraction, its CI half-width positive, a column the schema does not know ``real``."""
    match = FEWSHOT.match(column)
    if match:
        return "unit" if match.group(1) == "acc" else "positive"
    metric = METRICS.get(column)
    return metric.scale if metric is not None else "real"


def accepts(kind: str, typ: pa.DataType) -> bool:
    """Whether a reader takes an Arrow column of type ``typ`` as a ``kind`` column: its own
    type, a dictionary of it, all nulls, or (for ``double``) integers."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_null(typ):
        return True
    checks = {
        "double": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
        "int64": pa.types.is_integer,
        "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        "bool": pa.types.is_boolean,
        "timestamp": pa.types.is_timestamp,
    }
    return checks[kind](typ)
