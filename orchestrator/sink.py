"""The metrics sink: one Parquet file per (trial, epoch), compacted when the trial ends.

A trial writes ``metrics/trial_id=<id>/epoch=<00000>.parquet`` for every evaluation,
atomically, before its checkpoint is reported; a trial restarted from an earlier checkpoint
replays the epochs after it and replaces those files, so a key is never duplicated. When
the trial ends its rows go into one ``compacted.parquet`` (written atomically, then the
per-epoch files are removed), so a finished study is read from one file per trial.
A reader keeps, for each ``(trial_id, epoch)``, the row with the latest ``written_at``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import columns
from orchestrator.storage import Storage
from orchestrator.studydir import StudyDir

ARROW_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "int64": pa.int64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("ns", tz="UTC"),
}


@dataclass(frozen=True)
class RowContext:
    """What every row of a study carries, and its hyperparameter columns' types.

    Attributes:
        param_types: dotted key -> type name (``double``, ``int64``, ``string``, ``bool``),
            the always-present keys first, then the swept ones.
        shots: the few-shot ``k`` values whose columns the metrics table holds.
    """

    study: str
    spec_hash: str
    code_version: str
    param_types: dict[str, str]
    shots: tuple[int, ...]


def type_name(values: Sequence[Any]) -> str:
    """The column type for a hyperparameter taking ``values`` (None ignored)."""
    seen = {_kind(v) for v in values if v is not None}
    if seen <= {"int64"} and seen:
        return "int64"
    if seen <= {"int64", "double"} and seen:
        return "double"
    if len(seen) == 1 and seen <= {"bool", "string"}:
        return seen.pop()
    return "string" if seen else "double"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "double"
    return "string"


def cell(value: Any, kind: str) -> Any:
    """``value`` as stored in a column of type ``kind`` (non-finite floats become null)."""
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if kind == "double":
        value = float(value)
        return value if math.isfinite(value) else None
    if kind == "int64":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def row_table(
    ctx: RowContext, trial_id: str, params: Mapping[str, Any], metrics: Mapping[str, Any]
) -> pa.Table:
    """One metrics row: keys, provenance, hyperparameters, then every metric column."""
    keys: dict[str, Any] = {
        "study": ctx.study,
        "trial_id": trial_id,
        "epoch": metrics.get("epoch"),
        "step": metrics.get("step"),
        "written_at": now(),
        "spec_hash": ctx.spec_hash,
        "code_version": ctx.code_version,
    }
    values: dict[str, tuple[Any, str]] = {k: (v, columns.KEY_COLUMNS[k]) for k, v in keys.items()}
    for key, kind in ctx.param_types.items():
        values[key] = (params.get(key), kind)
    for name, kind in columns.metric_columns(ctx.shots).items():
        values[name] = (metrics.get(name), kind)
    for name, value in metrics.items():  # anything else the trainable measured
        if name not in values and value is not None:
            values[name] = (value, _kind(value) if not isinstance(value, list | dict) else "string")
    return pa.table(
        {
            name: pa.array([cell(v, kind)], type=ARROW_TYPES[kind])
            for name, (v, kind) in values.items()
        }
    )


def to_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def read_parquet(storage: Storage, path: str) -> pa.Table:
    """One Parquet file, read whole and synchronously (no dataset discovery, no threads)."""
    with storage.fs.open_input_file(path) as source:
        return pq.ParquetFile(source).read(use_threads=False)


def latest_per_key(table: pa.Table, keys: Sequence[str] = ("trial_id", "epoch")) -> pa.Table:
    """For each key, the row with the latest ``written_at``; sorted by the key."""
    if table.num_rows == 0:
        return table
    written = table.column("written_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    codes = [_codes(table.column(k)) for k in keys]
    order = np.lexsort((-written, *reversed(codes)))
    stacked = np.stack([c[order] for c in codes])
    first = np.ones(len(order), dtype=bool)
    first[1:] = (stacked[:, 1:] != stacked[:, :-1]).any(axis=0)
    return table.take(pa.array(order[first]))


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes that sort like the column's values."""
    if pa.types.is_integer(column.type):
        return column.fill_null(-1).to_numpy()
    values = column.to_pylist()
    ranks = {v: i for i, v in enumerate(sorted(set(values), key=lambda v: (v is None, v)))}
    return np.array([ranks[v] for v in values])


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables of one study, columns matched by name (missing ones become null, an integer
    column meeting a float one becomes float)."""
    return pa.concat_tables(tables, promote_options="permissive")


class TrialSink:
    """Writes, compacts and reads back the metrics rows of one trial.

    Args:
        sdir: the study directory.
        ctx: the study's row context.
        trial_id: the trial.
        params: the trial's hyperparameter values, by dotted key.
    """

    def __init__(
        self, sdir: StudyDir, ctx: RowContext, trial_id: str, params: Mapping[str, Any]
    ) -> None:
        self.sdir, self.ctx, self.trial_id = sdir, ctx, trial_id
        self.params = {k: params.get(k) for k in ctx.param_types}

    def write(self, metrics: Mapping[str, Any]) -> None:
        """Write one evaluation's row; a row of the same epoch is replaced."""
        table = row_table(self.ctx, self.trial_id, self.params, metrics)
        path = self.sdir.epoch_file(self.trial_id, int(metrics["epoch"]))
        self.sdir.storage.write_bytes(path, to_bytes(table))

    def _files(self) -> list[str]:
        return self.sdir.storage.files(self.sdir.trial_folder(self.trial_id), suffix=".parquet")

    def _read(self, files: Sequence[str]) -> pa.Table | None:
        tables = [read_parquet(self.sdir.storage, f) for f in files]
        return latest_per_key(concat(tables), ("epoch",)) if tables else None

    def rows(self) -> pa.Table | None:
        """The trial's rows, one per epoch, or None if there are none."""
        return self._read(self._files())

    def compact(self) -> int:
        """Merge every row into ``compacted.parquet`` and remove the per-epoch files.

        Returns:
            The number of rows of the trial.
        """
        files = self._files()
        table = self._read(files)
        if table is None:
            return 0
        epoch_files = [f for f in files if posixpath.basename(f).startswith("epoch=")]
        if epoch_files:
            compacted = self.sdir.compacted_file(self.trial_id)
            self.sdir.storage.write_bytes(compacted, to_bytes(table))
            for path in epoch_files:
                self.sdir.storage.delete(path)
        return table.num_rows

    def finished_row(self) -> dict[str, Any] | None:
        """The last row of a trial that already ended with these params, else None."""
        if not self.sdir.storage.is_file(self.sdir.compacted_file(self.trial_id)):
            return None
        table = self.rows()
        if table is None or not self._same_params(table):
            return None
        return table.slice(table.num_rows - 1).to_pylist()[0]

    def has_foreign_rows(self) -> bool:
        """Whether rows of this trial id hold other params (an abandoned earlier trial)."""
        table = self.rows()
        return table is not None and not self._same_params(table)

    def _same_params(self, table: pa.Table) -> bool:
        row = table.slice(0, 1).to_pylist()[0]
        kinds = self.ctx.param_types
        return all(row.get(k) == cell(v, kinds[k]) for k, v in self.params.items())

    def clear(self) -> None:
        """Remove every row of this trial."""
        for path in self._files():
            self.sdir.storage.delete(path)
