"""The metrics sink: a file per evaluation, rolled up as a trial runs, merged when it ends.

A trial writes ``metrics/trial_id=<id>/epoch=<00000>.parquet`` for every evaluation,
atomically, before its checkpoint is written; a trial restarted from an earlier checkpoint
replays the epochs after it and replaces those files. Every :data:`ROLL_EVERY` writes the
trial's per-epoch files are rolled up into its ``rolled.parquet`` (written first, then the
per-epoch files removed), and when the trial ends all its rows go into ``compacted.parquet``
the same way. The driver then merges finished trials into shared part files
(:mod:`orchestrator.parts`). A row keeps its ``written_at`` through all of this, and a
reader keeps, for each ``(trial_id, epoch)``, the row with the latest ``written_at``: a copy
left by a step that stopped midway is identical, and a replayed epoch's newer row wins.

A study that measures layers (``metrics.layers``) has a second table, ``layers/``, laid out
and moved the same way (:class:`TableSink`), keyed ``(trial_id, epoch, layer)``: an
evaluation's layer rows land, one file for them all, before its metrics row.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from orchestrator.parts import merged_rows, retrying
from studyfiles import StudyDir, schema
from studyfiles.layout import COMPACTED, LAYERS_TABLE, METRICS_TABLE
from studyfiles.schema import ARROW_TYPES, TABLE_KEYS
from studyfiles.tables import (
    concat,
    latest_rows,
    read_parquet,
    row_count,
    to_bytes,
    write_verified,
)

ROLL_EVERY = 4  # per-epoch files a running trial leaves before they are rolled up
LAYERS = "layers"  # the key of a trainable's row that holds its per-layer rows


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
    values = _typed(keys, schema.KEY_COLUMNS, ctx, params)
    return _one_table([_with_metrics(values, schema.metric_columns(ctx.shots), metrics)])


def layer_table(
    ctx: RowContext,
    trial_id: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    layers: Sequence[Mapping[str, Any]],
) -> pa.Table:
    """The layers rows of one evaluation (``metrics``, whose ``layers`` they are): keys,
    provenance and hyperparameters as the metrics row's, then every layer metric column."""
    written_at, rows = now(), []
    for layer in layers:
        keys: dict[str, Any] = {
            "study": ctx.study,
            "trial_id": trial_id,
            "epoch": metrics.get("epoch"),
            "layer": layer.get("layer"),
            "layer_name": layer.get("layer_name"),
            "step": metrics.get("step"),
            "written_at": written_at,
            "spec_hash": ctx.spec_hash,
            "code_version": ctx.code_version,
        }
        values = _typed(keys, schema.LAYER_KEY_COLUMNS, ctx, params)
        quantities = {k: v for k, v in layer.items() if k not in ("layer", "layer_name")}
        rows.append(_with_metrics(values, schema.layer_metric_columns(ctx.shots), quantities))
    return _one_table(rows)


def _typed(
    keys: Mapping[str, Any], kinds: Mapping[str, str], ctx: RowContext, params: Mapping[str, Any]
) -> dict[str, tuple[Any, str]]:
    """The key columns and the hyperparameters, each with its type."""
    values: dict[str, tuple[Any, str]] = {k: (v, kinds[k]) for k, v in keys.items()}
    for key, kind in ctx.param_types.items():
        values[key] = (params.get(key), kind)
    return values


def _with_metrics(
    values: dict[str, tuple[Any, str]], columns: Mapping[str, str], metrics: Mapping[str, Any]
) -> dict[str, tuple[Any, str]]:
    """``values`` and every metric column, then anything else the trainable measured."""
    for name, kind in columns.items():
        values[name] = (metrics.get(name), kind)
    for name, value in metrics.items():
        if name not in values and value is not None:
            values[name] = (value, _kind(value) if not isinstance(value, list | dict) else "string")
    return values


def _one_table(rows: Sequence[dict[str, tuple[Any, str]]]) -> pa.Table:
    """The rows (same columns, in order; a column missing from a row is null) as a table."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    kinds = {name: kind for row in rows for name, (_, kind) in row.items()}
    return pa.table(
        {
            name: pa.array(
                [cell(row[name][0] if name in row else None, kinds[name]) for row in rows],
                type=ARROW_TYPES[kinds[name]],
            )
            for name in names
        }
    )


class TableSink:
    """Writes, rolls up, compacts and reads back the rows of one trial in one table.

    Args:
        sdir: the study directory.
        trial_id: the trial.
        table: ``"metrics"`` or ``"layers"``.
        roll_every: per-epoch files written before they are rolled up.
    """

    def __init__(
        self, sdir: StudyDir, trial_id: str, *, table: str, roll_every: int = ROLL_EVERY
    ) -> None:
        self.sdir, self.trial_id, self.table = sdir, trial_id, table
        self.key = TABLE_KEYS[table]
        self.roll_every = roll_every
        self._unrolled = 0  # per-epoch files this sink wrote since its last roll-up

    def write_row(self, rows: pa.Table) -> None:
        """Write one evaluation's rows (all of one epoch) as the trial's per-epoch file,
        rolling the per-epoch files up after every ``roll_every`` writes."""
        epoch = int(rows.column("epoch")[0].as_py())
        path = self.sdir.epoch_file(self.trial_id, epoch, table=self.table)
        self.sdir.storage.write_bytes(path, to_bytes(rows))
        self._unrolled += 1
        if self._unrolled >= self.roll_every:
            self.roll()

    def files(self) -> list[str]:
        """The files of the trial's folder."""
        folder = self.sdir.trial_folder(self.trial_id, table=self.table)
        return self.sdir.storage.files(folder, suffix=".parquet")

    def read(self, files: Sequence[str], merged: pa.Table | None = None) -> pa.Table | None:
        """The rows of ``files`` (and ``merged``), one per key, or None for none."""
        tables = [read_parquet(self.sdir.storage, f) for f in files]
        tables += [merged] if merged is not None else []
        return latest_rows(concat(tables), key=self.key)[0] if tables else None

    def merged(self) -> pa.Table | None:
        """The trial's rows that parts hold, or None if no part holds the trial."""
        return merged_rows(self.sdir, self.trial_id, table=self.table)

    def rows(self) -> pa.Table | None:
        """The trial's rows, one per key (merged ones included), or None if there are none."""
        files = self.files()  # before the parts: a merge writes its part, then removes these
        return self.read(files, self.merged())

    def _gather(self, files: Sequence[str], target: str) -> int:
        """Write the rows of ``files`` into ``target``, then remove the others; returns the
        rows written."""
        if list(files) == [target]:  # gathered already
            return row_count(self.sdir.storage, target)
        table = self.read(files)
        if table is None:
            return 0
        write_verified(self.sdir.storage, target, table)
        for path in files:  # only now: their rows are in target, read back
            if path != target:
                self.sdir.storage.delete(path)
        return table.num_rows

    def roll(self) -> None:
        """Roll the per-epoch files up into ``rolled.parquet`` (written first, then they are
        removed); a later file of an epoch, from a replay, still wins over the rolled row."""
        self._unrolled = 0
        files = [f for f in self.files() if posixpath.basename(f) != COMPACTED]
        if any(posixpath.basename(f).startswith("epoch=") for f in files):
            self._gather(files, self.sdir.rolled_file(self.trial_id, table=self.table))

    def compact(self) -> int:
        """Gather the trial folder's rows into ``compacted.parquet``, the other files removed.

        Returns:
            The number of rows in the trial folder.
        """
        target = self.sdir.compacted_file(self.trial_id, table=self.table)
        return self._gather(self.files(), target)

    def remove_unmerged(self) -> None:
        """Remove the trial's files in its own folder (rows merged into parts stay)."""
        for path in self.files():
            self.sdir.storage.delete(path)


class TrialSink:
    """Writes, rolls up, compacts and reads back the rows of one trial: its metrics rows
    and, where the study measures layers, its layers rows (a :class:`TableSink` each). The
    metrics rows say whether the trial ended.

    Args:
        sdir: the study directory.
        ctx: the study's row context.
        trial_id: the trial.
        params: the trial's hyperparameter values, by dotted key.
        roll_every: per-epoch files written before they are rolled up.
    """

    def __init__(
        self,
        sdir: StudyDir,
        ctx: RowContext,
        trial_id: str,
        params: Mapping[str, Any],
        *,
        roll_every: int = ROLL_EVERY,
    ) -> None:
        self.sdir, self.ctx, self.trial_id = sdir, ctx, trial_id
        self.params = {k: params.get(k) for k in ctx.param_types}
        self.metrics = TableSink(sdir, trial_id, table=METRICS_TABLE, roll_every=roll_every)
        self.layers = TableSink(sdir, trial_id, table=LAYERS_TABLE, roll_every=roll_every)

    def write(self, metrics: Mapping[str, Any]) -> None:
        """Write one evaluation's rows; rows of the same epoch are replaced. Its layer rows
        (``metrics["layers"]``, where the study measures layers) land first, so that a
        metrics row always has its layers written."""
        layers = metrics.get(LAYERS)
        row = {k: v for k, v in metrics.items() if k != LAYERS}
        if layers:
            self.layers.write_row(layer_table(self.ctx, self.trial_id, self.params, row, layers))
        self.write_row(row_table(self.ctx, self.trial_id, self.params, row))

    def write_row(self, row: pa.Table) -> None:
        """Write a one-row metrics table as the trial's per-epoch file."""
        self.metrics.write_row(row)

    def rows(self) -> pa.Table | None:
        """The trial's metrics rows, one per epoch (merged ones included), or None."""
        return self.metrics.rows()

    def roll(self) -> None:
        """Roll each table's per-epoch files of the trial up now (:meth:`TableSink.roll`)."""
        self.layers.roll()
        self.metrics.roll()

    def compact(self) -> int:
        """Gather each table's rows of the trial into its ``compacted.parquet``: the layers
        first, so that a trial whose metrics are compacted (it ended) has both compacted.

        Returns:
            The number of metrics rows in the trial folder.
        """
        self.layers.compact()
        return self.metrics.compact()

    def finished_row(self) -> dict[str, Any] | None:
        """The last row of a trial that already ended with these params, else None.

        A trial ended when its folder holds ``compacted.parquet`` or a part holds its rows;
        a merge that moves them meanwhile is waited out by looking again.
        """
        return retrying(self._finished_row)

    def _finished_row(self) -> dict[str, Any] | None:
        files = self.metrics.files()  # before the parts: a merge writes its part, then
        merged = self.metrics.merged()  # removes these
        if merged is None and self.sdir.compacted_file(self.trial_id) not in files:
            return None
        table = self.metrics.read(files, merged)
        if table is None or not self._same_params(table):
            return None
        return table.slice(table.num_rows - 1).to_pylist()[0]

    def has_foreign_rows(self) -> bool:
        """Whether rows of this trial id hold other params (an abandoned earlier trial)."""
        tables = [t for t in (self.metrics.rows(), self.layers.rows()) if t is not None]
        return any(t.num_rows and not self._same_params(t) for t in tables)

    def _same_params(self, table: pa.Table) -> bool:
        row = table.slice(0, 1).to_pylist()[0]
        kinds = self.ctx.param_types
        return all(row.get(k) == cell(v, kinds[k]) for k, v in self.params.items())

    def clear(self) -> None:
        """Remove every row of this trial.

        Raises:
            RuntimeError: a part holds rows of the trial; parts are only ever merged, so
                the trial id cannot be given to other params.
        """
        for sink in (self.metrics, self.layers):
            if sink.merged() is not None:
                raise RuntimeError(
                    f"trial {self.trial_id} already has merged rows of other params in "
                    f"{self.sdir.table(sink.table)}; a trial id is not reused once its trial "
                    "has ended"
                )
        self.remove_unmerged()

    def remove_unmerged(self) -> None:
        """Remove the trial's files in its own folders (rows merged into parts stay)."""
        self.layers.remove_unmerged()
        self.metrics.remove_unmerged()
