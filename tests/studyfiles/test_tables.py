"""The rule every reader and writer keeps rows by, against a pandas reference, for both
tables; and a whole table read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studyfiles import Storage, StudyDir
from studyfiles.schema import LAYER_KEY
from studyfiles.tables import latest_rows, read_table


def _table(n: int, *, times: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "trial_id": pa.array(rng.choice(["a", "b", "c", "t00010"], n)),
            "epoch": pa.array(rng.integers(0, 5, n), pa.int64()),
            "written_at": pa.array(rng.integers(0, times, n).astype("datetime64[ns]")).cast(
                pa.timestamp("ns", tz="UTC")
            ),
            "row": pa.array(np.arange(n)),  # each row's place in the table
        }
    )


@pytest.mark.parametrize(("times", "seed"), [(10_000, 0), (5, 1), (1, 2)])
def test_the_latest_write_of_each_key_wins_and_of_equal_times_the_last_in_the_table(times, seed):
    table = _table(300, times=times, seed=seed)  # few distinct times: many ties
    got, dropped = latest_rows(table)
    ref = (
        table.to_pandas()
        .sort_values("written_at", kind="stable")  # equal times keep the table's order
        .drop_duplicates(["trial_id", "epoch"], keep="last")
        .sort_values(["trial_id", "epoch"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(got.to_pandas(), ref)
    assert dropped == table.num_rows - len(ref)


def test_sorted_rows_without_duplicates_come_back_as_they_are():
    table = pa.table(
        {
            "trial_id": ["a", "a", "b"],
            "epoch": pa.array([0, 1, 0], pa.int64()),
            "written_at": pa.array([3, 1, 2], pa.timestamp("ns", tz="UTC")),
        }
    )
    got, dropped = latest_rows(table)
    assert got.equals(table) and dropped == 0
    empty, dropped = latest_rows(table.slice(0, 0))
    assert empty.num_rows == 0 and dropped == 0


@pytest.mark.parametrize(("times", "seed"), [(10_000, 3), (3, 4)])
def test_the_layers_table_keeps_the_latest_write_of_each_trial_epoch_and_layer(times, seed):
    table = _table(400, times=times, seed=seed)
    rng = np.random.default_rng(seed)
    table = table.append_column("layer", pa.array(rng.integers(1, 6, table.num_rows), pa.int64()))
    got, dropped = latest_rows(table, key=LAYER_KEY)
    ref = (
        table.to_pandas()
        .sort_values("written_at", kind="stable")
        .drop_duplicates(["trial_id", "epoch", "layer"], keep="last")
        .sort_values(["trial_id", "epoch", "layer"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(got.to_pandas(), ref)
    assert dropped == table.num_rows - len(ref)


def test_read_table_reads_a_table_deduplicated_and_names_the_files_it_cannot_read(tmp_path):
    sdir = StudyDir(Storage.open(str(tmp_path)))
    stamp = pa.timestamp("ns", tz="UTC")
    old = pa.table({"trial_id": ["t1"] * 2, "epoch": pa.array([0, 0]),
                    "layer": pa.array([1, 2]), "written_at": pa.array([1, 1], stamp),
                    "gc": [1.0, 2.0]})  # fmt: skip
    new = pa.table({"trial_id": ["t1"], "epoch": pa.array([0]), "layer": pa.array([2]),
                    "written_at": pa.array([5], stamp), "gc": [9.0]})  # fmt: skip
    Path(sdir.trial_folder("t1", table="layers")).mkdir(parents=True)
    pq.write_table(old, sdir.rolled_file("t1", table="layers"))
    pq.write_table(new, sdir.epoch_file("t1", 0, table="layers"))
    Path(sdir.part_file("0" * 16, table="layers")).write_bytes(b"not parquet")
    table, bad = read_table(sdir, "layers")
    assert table.select(["layer", "gc"]).to_pylist() == [
        {"layer": 1, "gc": 1.0},
        {"layer": 2, "gc": 9.0},
    ]
    assert list(bad) == [sdir.part_file("0" * 16, table="layers")]
    assert read_table(sdir, "metrics") == (None, {})
