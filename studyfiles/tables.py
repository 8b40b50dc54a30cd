"""Parquet in and out, and the rule every reader and writer keeps rows by.

:func:`latest_rows` is that rule: for each key (``(trial_id, epoch)`` in the metrics
table, ``(trial_id, epoch, layer)`` in the layers table) the row with the latest
``written_at`` wins, and of rows written at the same instant (identical copies a step
left), the one that comes last in the table. Its cost is a sort of one integer per row
(none when the rows come sorted, as merged parts do), and the rows kept are sliced, not
copied, where they run in long stretches. :func:`read_table` reads a whole table so.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from studyfiles.errors import first_line
from studyfiles.layout import StudyDir
from studyfiles.schema import KEY, TABLE_KEYS
from studyfiles.storage import Storage

ROW_GROUP_ROWS = 32_768  # large enough to read fast, small enough to look one trial up
_MAX_SLICES = 10_000  # rows kept in more stretches than this are taken, not sliced
_ROW_KEYS = ("trial_id", "epoch", "written_at", "diverged")  # what a trial's latest row needs
_LISTINGS = 3  # listings of a table tried while a running study moves files under it


def to_bytes(table: pa.Table, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """``table`` as a Parquet file, with ``metadata`` added to its schema's key-value pairs."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def write_verified(
    storage: Storage, path: str, table: pa.Table, *, metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``table`` to ``path`` (atomically), then read it back and check that it holds
    the same rows, so that the files it replaces are removed only after it is known good.

    Raises:
        OSError: the file does not read back as written (the caller keeps its inputs).
    """
    storage.write_bytes(path, to_bytes(table, metadata=metadata))
    try:
        back = read_parquet(storage, path)
        names = ("trial_id", "epoch", "layer", "written_at")
        keys = [c for c in names if c in table.column_names]
        if back.num_rows != table.num_rows or not back.select(keys).equals(table.select(keys)):
            raise OSError(f"{path} does not hold the rows written to it")
    except (OSError, pa.ArrowException) as err:
        storage.delete(path)  # a bad copy; the rows are still where they were
        raise OSError(f"{path} did not read back as written: {err}") from err


def read_parquet(storage: Storage, path: str) -> pa.Table:
    """One Parquet file, read whole and synchronously (no dataset discovery, no threads)."""
    with storage.fs.open_input_file(path) as source:
        return pq.ParquetFile(source).read(use_threads=False)


def row_count(storage: Storage, path: str) -> int:
    """The rows of a Parquet file, from its footer."""
    with storage.fs.open_input_file(path) as source:
        return pq.read_metadata(source).num_rows


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables of one study, columns matched by name (missing ones become null, an integer
    column meeting a float one becomes float)."""
    return pa.concat_tables(tables, promote_options="permissive")


def latest_rows(table: pa.Table, *, key: Sequence[str] = KEY) -> tuple[pa.Table, int]:
    """One row per ``key`` (by default ``(trial_id, epoch)``; see the module docstring),
    sorted by it; and how many rows were dropped. Every row must have every key column:
    ``trial_id``, a string, then integers."""
    if table.num_rows == 0:
        return table, 0
    key = _sort_key(table, key)
    ordered = bool(np.all(key[1:] >= key[:-1]))
    order = np.arange(len(key)) if ordered else np.argsort(key, kind="stable")
    keep = _latest(key[order], _written(table)[order])
    return _rows(table, order[keep]), int(len(keep) - keep.sum())


def read_table(sdir: StudyDir, table: str) -> tuple[pa.Table | None, dict[str, str]]:
    """Every row of ``table`` (``"metrics"`` or ``"layers"``, docs/schema.md), one per key
    (:func:`latest_rows`, sorted by it), and the files that could not be read (path -> why).
    None where the table has no row. A file that vanishes while it is read (a running
    driver rolled it up or merged it) sends the reading back to a new listing of the
    folder, as many as three times; then it is named as unreadable.
    """
    folder, key = sdir.table(table), TABLE_KEYS[table]
    for _ in range(_LISTINGS):
        tables, bad, vanished = [], {}, False
        for path in sdir.storage.files(folder, suffix=".parquet"):
            try:
                tables.append(read_parquet(sdir.storage, path).replace_schema_metadata(None))
            except FileNotFoundError as err:
                vanished, bad[path] = True, first_line(err)
            except (OSError, pa.ArrowException) as err:
                bad[path] = first_line(err)
        if not vanished:
            break
    if not tables:
        return None, bad
    rows = concat(tables)
    valid = pc.and_(pc.is_valid(rows["trial_id"]), pc.is_valid(rows["epoch"]))
    for name in key[2:]:
        valid = pc.and_(valid, pc.is_valid(rows[name]))
    rows, _ = latest_rows(rows.filter(valid), key=key)
    return (rows if rows.num_rows else None), bad


def latest_per_trial(storage: Storage, folder: str, columns: Sequence[str]) -> pa.Table | None:
    """Each trial's latest row (its last epoch, as last written) with ``columns`` where the
    files hold them, from every readable Parquet file under ``folder`` (a study's
    ``metrics/``): one skipped file is one a running driver moved, or a damaged one, which
    the orchestrator's ``damage.scan`` names. None where no row has a trial and an epoch."""
    tables = []
    for path in storage.files(folder, suffix=".parquet"):
        try:
            with storage.fs.open_input_file(path) as source:
                file = pq.ParquetFile(source)
                held = set(file.schema_arrow.names)
                names = [c for c in dict.fromkeys([*_ROW_KEYS, *columns]) if c in held]
                tables.append(file.read(columns=names, use_threads=False))
        except (OSError, pa.ArrowException):  # moved by a running driver, or unreadable
            continue
    if not tables:
        return None
    table = concat(tables)
    if not {"trial_id", "epoch", "written_at"} <= set(table.column_names):
        return None
    table = table.filter(pc.and_(pc.is_valid(table["trial_id"]), pc.is_valid(table["epoch"])))
    if table.num_rows == 0:
        return None
    table, _ = latest_rows(table)  # sorted by trial, then epoch
    trials = table["trial_id"].combine_chunks()
    if not pa.types.is_dictionary(trials.type):
        trials = trials.dictionary_encode()
    codes = trials.indices.to_numpy(zero_copy_only=False)
    return table.filter(pa.array(np.r_[codes[1:] != codes[:-1], True]))


def _sort_key(table: pa.Table, key: Sequence[str]) -> np.ndarray:
    """One int64 per row that sorts like the ``key`` columns: ``trial_id`` by name, then
    integers."""
    trial = table[key[0]].combine_chunks()
    if not pa.types.is_dictionary(trial.type):
        trial = trial.dictionary_encode()
    names = trial.dictionary.to_numpy(zero_copy_only=False)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    columns = [rank[trial.indices.to_numpy()]]
    spans = [len(names)]
    for name in key[1:]:
        values = table[name].to_numpy().astype(np.int64)
        low = int(values.min())
        columns.append(values - low)
        spans.append(int(values.max()) - low + 1)
    if float(np.prod(spans, dtype=np.float64)) >= 2**62:  # no room in one int64: rank them
        _, ranked = np.unique(np.stack(columns), axis=1, return_inverse=True)
        return ranked.ravel().astype(np.int64)
    combined = columns[0]
    for values, span in zip(columns[1:], spans[1:], strict=True):
        combined = combined * span + values
    return combined


def _written(table: pa.Table) -> np.ndarray:
    written = pc.cast(table["written_at"], pa.int64()).fill_null(np.iinfo(np.int64).min)
    return written.to_numpy()


def _latest(key: np.ndarray, written: np.ndarray) -> np.ndarray:
    """Which rows of a key-sorted run to keep: in each key, the latest ``written`` (the last
    of equals)."""
    keep = np.ones(len(key), dtype=bool)
    same = key[1:] == key[:-1]
    if not same.any():
        return keep
    in_group = np.zeros(len(key), dtype=bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    pos = np.flatnonzero(in_group)
    pos = pos[np.lexsort((written[pos], key[pos]))]  # stable: equal times stay in order
    keep[pos] = np.r_[key[pos][1:] != key[pos][:-1], True]  # the last of each key
    return keep


def _rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)``, as slices (no copy) where ``rows`` runs through few stretches."""
    if len(rows) == 0:
        return table.slice(0, 0)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1] + 1])
    if len(starts) > _MAX_SLICES:
        return table.take(pa.array(rows))
    ends = np.r_[starts[1:], len(rows)]
    return pa.concat_tables(
        [table.slice(rows[a], b - a) for a, b in zip(starts, ends, strict=True)]
    )
