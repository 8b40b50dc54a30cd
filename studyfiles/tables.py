"""Parquet in and out, and the rule every reader and writer keeps rows by.

:func:`latest_rows` is that rule: for each ``(trial_id, epoch)`` the row with the latest
``written_at`` wins, and of rows written at the same instant (identical copies a step
left), the one that comes last in the table. Its cost is a sort of one integer per row
(none when the rows come sorted, as merged parts do), and the rows kept are sliced, not
copied, where they run in long stretches.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from studyfiles.storage import Storage

ROW_GROUP_ROWS = 32_768  # large enough to read fast, small enough to look one trial up
_MAX_SLICES = 10_000  # rows kept in more stretches than this are taken, not sliced
_ROW_KEYS = ("trial_id", "epoch", "written_at", "diverged")  # what a trial's latest row needs


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
        keys = [c for c in ("trial_id", "epoch", "written_at") if c in table.column_names]
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


def latest_rows(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per ``(trial_id, epoch)`` (see the module docstring), sorted by trial, then
    epoch; and how many rows were dropped. Every row must have both keys."""
    if table.num_rows == 0:
        return table, 0
    key = _sort_key(table)
    ordered = bool(np.all(key[1:] >= key[:-1]))
    order = np.arange(len(key)) if ordered else np.argsort(key, kind="stable")
    keep = _latest(key[order], _written(table)[order])
    return _rows(table, order[keep]), int(len(keep) - keep.sum())


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


def _sort_key(table: pa.Table) -> np.ndarray:
    """One int64 per row that sorts like ``(trial_id, epoch)``."""
    trial = table["trial_id"].combine_chunks()
    if not pa.types.is_dictionary(trial.type):
        trial = trial.dictionary_encode()
    names = trial.dictionary.to_numpy(zero_copy_only=False)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    codes = rank[trial.indices.to_numpy()]
    epoch = table["epoch"].to_numpy().astype(np.int64)
    low, span = int(epoch.min()), int(epoch.max()) - int(epoch.min()) + 1
    if span * len(names) >= 2**62:  # no room in one int64: rank the distinct pairs
        _, key = np.unique(np.stack([codes, epoch]), axis=1, return_inverse=True)
        return key.ravel().astype(np.int64)
    return codes * span + (epoch - low)


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
