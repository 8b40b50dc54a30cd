"""The metrics table's columns (docs/schema.md) and how the analysis names them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pyarrow as pa

KEY = ("trial_id", "epoch")
REQUIRED_HYPER = ("train.lr", "train.batch_size", "train.l2", "train.gc_reg.alpha")
FEWSHOT_RE = re.compile(r"^fewshot_(acc|ci)_(\d+)shot$")

_STRING, _INT, _FLOAT, _BOOL, _TIME = "string", "integer", "float", "bool", "timestamp"

#: Every fixed column of ``metrics/**.parquet`` with the kind of type it must have.
METRIC_SCHEMA: dict[str, str] = {
    "study": _STRING,
    "trial_id": _STRING,
    "epoch": _INT,
    "step": _INT,
    "written_at": _TIME,
    "spec_hash": _STRING,
    "code_version": _STRING,
    "train_loss": _FLOAT,
    "train_acc": _FLOAT,
    "test_acc": _FLOAT,
    "gc": _FLOAT,
    "gc_estimator": _STRING,
    "gc_exact": _FLOAT,
    "gc_logits": _FLOAT,
    "geo_collapse": _FLOAT,
    "nc_cdnv": _FLOAT,
    "nc1": _FLOAT,
    "nc2_etf": _FLOAT,
    "nc2_equinorm": _FLOAT,
    "nc3": _FLOAT,
    "nc4": _FLOAT,
    "target_nc_cdnv": _FLOAT,
    "ncc_test_error": _FLOAT,
    "nc_bound": _FLOAT,
    "diverged": _BOOL,
    "wall_time_s": _FLOAT,
}

#: Columns without which a file is not a metrics file at all.
REQUIRED = ("study", "trial_id", "epoch", "step", "written_at")

#: The paper's source-side quantities, raw GC first and the scale-free ones beside it (SPEC 5).
SOURCE_METRICS = ("gc", "geo_collapse", "nc_cdnv")
TRANSFER_METRICS = ("gc", "target_nc_cdnv")
PROGRESS_COLUMNS = ("train_loss", "train_acc")
#: Final quantities compared across trials; few-shot accuracies go before ``test_acc``.
FINAL_QUANTITIES = ("gc", "geo_collapse", "nc_cdnv", "target_nc_cdnv", "test_acc")

_LABELS = {
    "gc": "GC (raw)",
    "gc_exact": "GC (exact)",
    "gc_logits": "GC of logits",
    "geo_collapse": "geometric collapse",
    "nc_cdnv": "NC (CDNV)",
    "target_nc_cdnv": "target NC (CDNV)",
    "test_acc": "test accuracy",
    "train_acc": "train accuracy",
    "train_loss": "train loss",
    "ncc_test_error": "NCC test error",
    "nc_bound": "NC bound (reconstructed)",
    "epoch": "epoch",
    "step": "step",
}


def label(column: str) -> str:
    """A reader's name for a column: ``fewshot_acc_5shot`` -> ``5-shot accuracy``."""
    match = FEWSHOT_RE.match(column)
    if match:
        kind = "accuracy" if match.group(1) == "acc" else "CI half-width"
        return f"{match.group(2)}-shot {kind}"
    if column in _LABELS:
        return _LABELS[column]
    return column.removeprefix("train.")


def fewshot_columns(columns: Iterable[str]) -> list[str]:
    """The ``fewshot_acc_<k>shot`` columns, by k."""
    found = [(int(m.group(2)), c) for c in columns if (m := FEWSHOT_RE.match(c)) and m[1] == "acc"]
    return [c for _, c in sorted(found)]


def kind_checker(kind: str) -> Callable[[pa.DataType], bool]:
    """A predicate that accepts the Arrow types allowed for a column kind (null always passes)."""
    checks: dict[str, Callable[[pa.DataType], bool]] = {
        _STRING: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        _INT: pa.types.is_integer,
        _FLOAT: lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
        _BOOL: pa.types.is_boolean,
        _TIME: pa.types.is_timestamp,
    }
    check = checks[kind]

    def accepts(typ: pa.DataType) -> bool:
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        return pa.types.is_null(typ) or check(typ)

    return accepts


def expected_kind(column: str) -> str | None:
    """The kind a column must have, or None for a column the schema does not fix."""
    if column in METRIC_SCHEMA:
        return METRIC_SCHEMA[column]
    return _FLOAT if FEWSHOT_RE.match(column) else None
