"""Parquet helpers of the metrics sink: encode, read whole, keep the latest row per key."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.storage import Storage

ROW_GROUP_ROWS = 32_768  # large enough to read fast, small enough to look one trial up


def to_bytes(table: pa.Table, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """``table`` as a Parquet file, with ``metadata`` added to its schema's key-value pairs."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def read_parquet(storage: Storage, path: str) -> pa.Table:
    """One Parquet file, read whole and synchronously (no dataset discovery, no threads)."""
    with storage.fs.open_input_file(path) as source:
        return pq.ParquetFile(source).read(use_threads=False)


def row_count(storage: Storage, path: str) -> int:
    """The rows of a Parquet file, from its footer."""
    with storage.fs.open_input_file(path) as source:
        return pq.read_metadata(source).num_rows


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
    """Integer codes that sort like the column's values (nulls last)."""
    if pa.types.is_integer(column.type):
        return column.fill_null(-1).to_numpy()
    encoded = column.combine_chunks().dictionary_encode(null_encoding="encode")
    values = encoded.dictionary.to_pylist()
    order = sorted(range(len(values)), key=lambda i: (values[i] is None, values[i]))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)]


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables of one study, columns matched by name (missing ones become null, an integer
    column meeting a float one becomes float)."""
    return pa.concat_tables(tables, promote_options="permissive")
